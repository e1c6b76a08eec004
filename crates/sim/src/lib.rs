//! The Atlassian simulator: an in-process stand-in for Jira, Confluence,
//! Bitbucket (and Crowd) Data Center on a real port, built to
//! `shared/ATLASSIAN.md`. The integration tests and `iumgate demo` run
//! iumgate in front of it.
//!
//! It shares only product facts (`iumgate_core::product`: paths, cookie names) with
//! iumgate and none of its gate, pool, identity or directory code: if both
//! were wrong the same way, the tests would pass.
//!
//! Logins: each product's old form login (and Jira's `/rest/auth/1/session`),
//! and today's platform login of Jira 10 / Confluence 9 / Bitbucket 9 in all
//! three (`login`): `POST /rest/tsv/{latest,1.0}/authenticate` with JSON, 412
//! and a half session for users enrolled in two-step verification
//! ([`Sim::enrol_two_step`]), then `…/authenticate/{totp-code,recovery-code}`;
//! `GET /rest/authconfig/{latest,1.0}/login-options`; and, with
//! [`LoginStyle::Json`], the script login page at the product's login path.
//! That page follows any `redirectUrl` in an answer, or a redirect its `fetch`
//! followed, whatever the status: iumgate's waiting room relies on it. All
//! logins share one failed-login count per user; after 3 failures every login
//! of the user is denied (`AUTHENTICATION_DENIED`, a CAPTCHA is due) until
//! [`Sim::reset_failed_logins`]. SAML single sign-on in all three
//! (`saml_sp`): `POST /plugins/servlet/samlconsumer` takes a response of the
//! simulator's own IdP once ([`Sim::saml_idp`], [`Sim::saml_response`]),
//! `GET /plugins/servlet/external-login` goes to the test IdP at
//! `/sim-idp/sso` (not Atlassian's). OpenID Connect in all three (`oidc_sp`):
//! `/plugins/servlet/oidc/initiate-login` → the IdP given by
//! [`Sim::set_oidc_idp`] ([`oidc_idp::OidcIdp`], its own server) →
//! `/plugins/servlet/oidc/callback`, where the app redeems the code itself.
//! The simulator has its own clock
//! ([`Sim::advance_clock`]) for half sessions, which last 5 minutes.
//!
//! One `std::sync::Mutex` guards the whole world; every request is answered
//! synchronously under it and the lock is released before any `.await`
//! (latency is slept afterwards).

mod auth;
mod bitbucket;
mod confluence;
mod crowd;
mod jira;
mod login;
pub mod oidc_idp;
mod oidc_sp;
pub mod saml_idp;
mod saml_sp;
mod servicedesk;
mod state;
mod web;
pub use saml_sp::{SAML_AUDIENCE, SAML_DESTINATION, SAML_IDP_ENTITY_ID};
pub use web::servlet_parameter;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use iumgate_core::product::Product;
use state::State;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use web::{Reply, Req};

/// A user of the simulated app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimUser {
    pub name: String,
    pub password: String,
    pub active: bool,
    pub groups: Vec<String>,
    /// May call the admin REST API (Jira: in `jira-administrators`).
    pub admin: bool,
}

impl SimUser {
    /// An active, non-admin user with password `demo`.
    pub fn new(name: &str, groups: &[&str]) -> SimUser {
        SimUser {
            name: name.to_string(),
            password: "demo".to_string(),
            active: true,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            admin: false,
        }
    }
}

/// Which login page the simulated product serves at its login path
/// (`/login.jsp`, `/login.action`, `/login`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginStyle {
    /// The old HTML form that posts to the product's form login
    /// (`os_username`/`j_username`).
    #[default]
    Form,
    /// Today's script page (Jira 10, Confluence 9, Bitbucket 9): it posts
    /// JSON to `/rest/tsv/latest/authenticate` and asks for a two-step code on
    /// 412. The form logins' `POST` endpoints keep working in both styles,
    /// and the `/rest/tsv/…` endpoints are served in both.
    Json,
}

/// A user enrolled in two-step verification. The simulator does not compute
/// TOTP: `code` is simply the one code that is valid now (change it with
/// [`Sim::set_totp_code`]); each recovery code works once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTwoStep {
    pub user: String,
    /// The currently valid 6-digit code.
    pub code: String,
    /// One-time recovery codes.
    pub recovery_codes: Vec<String>,
}

impl SimTwoStep {
    pub fn new(user: &str, code: &str, recovery_codes: &[&str]) -> SimTwoStep {
        SimTwoStep {
            user: user.to_string(),
            code: code.to_string(),
            recovery_codes: recovery_codes.iter().map(|c| c.to_string()).collect(),
        }
    }
}

/// Jira Service Management's application role: agents hold it, portal
/// customers need no role (shared/ATLASSIAN.md, "Service Management").
pub const SERVICE_DESK_ROLE: &str = "jira-servicedesk";
/// The role's default group.
pub const SERVICE_DESK_USERS: &str = "jira-servicedesk-users";
/// The demo's IUM groups of the Service Management pool.
pub const IUM_USER_SERVICE: &str = "IUM_user_service";
pub const IUM_ACCESS_SERVICE: &str = "IUM_access_service";

/// The simulated Jira's Service Management: the `jira-servicedesk` role
/// with a licence tier of its own, beside the software role (see
/// [`SimConfig::service_management`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceManagement {
    /// `numberOfSeats` of `jira-servicedesk` (the agent tier).
    pub seats: u32,
    /// Groups that hold the role, the first being its default group
    /// (`jira-servicedesk-users`); add an IUM access group here.
    pub groups: Vec<String>,
}

impl ServiceManagement {
    /// `seats` agent seats, held by `jira-servicedesk-users` only.
    pub fn new(seats: u32) -> ServiceManagement {
        ServiceManagement {
            seats,
            groups: vec![SERVICE_DESK_USERS.to_string()],
        }
    }
}

/// What the simulated app starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    pub product: Product,
    pub users: Vec<SimUser>,
    /// Groups that exist (members come from `users`; a user's group that is
    /// not listed here is created too).
    pub groups: Vec<String>,
    /// Groups that give application access.
    pub licensed_groups: Vec<String>,
    /// `numberOfSeats` of the application role (the licence tier).
    pub seats: u32,
    /// The application role key, e.g. `jira-software`.
    pub application: String,
    /// Personal access tokens: (token, username).
    pub tokens: Vec<(String, String)>,
    /// Crowd applications (name, password): when not empty the simulator also
    /// serves Crowd's `/rest/usermanagement/1/…` API over the same users and
    /// groups, authenticated with these as Basic credentials.
    pub crowd_apps: Vec<(String, String)>,
    /// The login page served at the product's login path (default: the old form).
    pub login_style: LoginStyle,
    /// Users enrolled in two-step verification (see [`Sim::enrol_two_step`]).
    pub two_step: Vec<SimTwoStep>,
    /// Basic authentication blocked on API calls (`/rest/basicauth/1.0/config`
    /// `block-requests`; Jira 11's default): every request carrying Basic
    /// credentials gets [`BASIC_AUTH_BLOCKED_STATUS`] with
    /// [`BASIC_AUTH_BLOCKED_MESSAGE`]; personal access tokens keep working.
    pub basic_auth_blocked: bool,
    /// Jira only: the Service Management role `jira-servicedesk` beside the
    /// software role (`None`, the default: no Service Management, and its
    /// paths are not served). With it, agent views (`/jira/servicedesk/…`,
    /// `/rest/servicedesk/…`, `/rest/servicedeskapi/…`, `/servicedesk/…`
    /// outside the portal) need that role, software pages (`/browse/…`,
    /// `/rest/api/2/issue/…`) need the software role, the customer portal
    /// (`/servicedesk/customer/…`) needs only a login, and a login needs
    /// either role.
    pub service_management: Option<ServiceManagement>,
}

/// The status of the answer to Basic credentials while Basic authentication
/// is blocked. Seen as 403 on Jira 8.16 with the bundled SSO app (a
/// third-party write-up, codeclou.io, 2021); *unconfirmed* for Jira 10/11,
/// Confluence and Bitbucket — a client should recognise the message, not
/// the status.
pub const BASIC_AUTH_BLOCKED_STATUS: u16 = 403;

/// The JSON `message` of that answer (same source, same caveat:
/// *unconfirmed* beyond Jira 8.16).
pub const BASIC_AUTH_BLOCKED_MESSAGE: &str =
    "Basic Authentication has been disabled on this instance.";

impl SimConfig {
    /// The demo world: 3 power users in the licensed group, 20 casual users in
    /// the IUM user group, an empty IUM access group (licensed), an admin
    /// service account `iumgate-admin`, every password `demo`, 10 seats.
    /// Names per product:
    ///
    /// | product | licensed | IUM user | IUM access | admin group |
    /// |---|---|---|---|---|
    /// | Jira | `jira-software-users` | `IUM_user_software` | `IUM_access_software` | `jira-administrators` |
    /// | Confluence | `confluence-users` | `IUM_user_confluence` | `IUM_access_confluence` | `confluence-administrators` |
    /// | Bitbucket | `stash-users` | `IUM_user_bitbucket` | `IUM_access_bitbucket` | `stash-sys-admin` |
    ///
    /// The admin also has the personal access token `demo-admin-token`, and
    /// the Crowd application `iumgate` (password `demo`) is configured (Crowd's
    /// API is served only when `crowd_apps` is not empty; clear it to turn
    /// Crowd off).
    pub fn demo(product: Product) -> SimConfig {
        let (licensed, ium_user, ium_access, admins, application) = match product {
            Product::Jira => (
                "jira-software-users",
                "IUM_user_software",
                "IUM_access_software",
                "jira-administrators",
                "jira-software",
            ),
            Product::Confluence => (
                "confluence-users",
                "IUM_user_confluence",
                "IUM_access_confluence",
                "confluence-administrators",
                "confluence",
            ),
            Product::Bitbucket => (
                "stash-users",
                "IUM_user_bitbucket",
                "IUM_access_bitbucket",
                "stash-sys-admin",
                "bitbucket",
            ),
        };
        let mut users: Vec<SimUser> = (1..=3)
            .map(|i| SimUser::new(&format!("power{i}"), &[licensed]))
            .collect();
        users.extend((1..=20).map(|i| SimUser::new(&format!("casual{i:02}"), &[ium_user])));
        users.push(SimUser {
            admin: true,
            ..SimUser::new("iumgate-admin", &[admins])
        });
        SimConfig {
            product,
            users,
            groups: vec![
                licensed.into(),
                ium_user.into(),
                ium_access.into(),
                admins.into(),
            ],
            licensed_groups: vec![licensed.into(), ium_access.into()],
            seats: 10,
            application: application.into(),
            tokens: vec![("demo-admin-token".into(), "iumgate-admin".into())],
            crowd_apps: vec![("iumgate".into(), "demo".into())],
            login_style: LoginStyle::Form,
            two_step: Vec::new(),
            basic_auth_blocked: false,
            service_management: None,
        }
    }

    /// Turns on Service Management with `seats` agent seats (its own tier),
    /// keeping any groups already given for the role (else its default group
    /// `jira-servicedesk-users`).
    pub fn service_management(mut self, seats: u32) -> SimConfig {
        match &mut self.service_management {
            Some(sm) => sm.seats = seats,
            None => self.service_management = Some(ServiceManagement::new(seats)),
        }
        self
    }

    /// Adds `group` to the groups holding the Service Management role (and to
    /// the groups that exist), turning the role on with 0 seats if it was off.
    /// The IUM access group of a service pool goes here.
    pub fn service_group(mut self, group: &str) -> SimConfig {
        let sm = self
            .service_management
            .get_or_insert_with(|| ServiceManagement::new(0));
        if !sm.groups.iter().any(|g| g.eq_ignore_ascii_case(group)) {
            sm.groups.push(group.to_string());
        }
        if !self.groups.iter().any(|g| g.eq_ignore_ascii_case(group)) {
            self.groups.push(group.to_string());
        }
        self
    }

    /// The Jira demo world ([`SimConfig::demo`]) with Service Management:
    /// 5 agent seats held by `jira-servicedesk-users` and `IUM_access_service`
    /// (empty), the power agent `agent1` (in `jira-servicedesk-users`), casual
    /// agents `agent01`…`agent10` in `IUM_user_service`, `both1`…`both3` in
    /// both IUM user groups (they may need either seat), and the portal
    /// customers `customer1`…`customer3` with no group at all. Every password
    /// is `demo`.
    pub fn demo_service_management() -> SimConfig {
        let mut cfg = SimConfig::demo(Product::Jira)
            .service_management(5)
            .service_group(IUM_ACCESS_SERVICE);
        cfg.groups.push(IUM_USER_SERVICE.into());
        cfg.users
            .push(SimUser::new("agent1", &[SERVICE_DESK_USERS]));
        cfg.users
            .extend((1..=10).map(|i| SimUser::new(&format!("agent{i:02}"), &[IUM_USER_SERVICE])));
        cfg.users.extend((1..=3).map(|i| {
            SimUser::new(
                &format!("both{i}"),
                &["IUM_user_software", IUM_USER_SERVICE],
            )
        }));
        cfg.users
            .extend((1..=3).map(|i| SimUser::new(&format!("customer{i}"), &[])));
        cfg
    }
}

/// State shared by the handle and the server tasks. The server holds this,
/// not `Handle`, so that dropping the last `Sim` stops the server.
struct Shared {
    state: Mutex<State>,
    /// SAML's part (`saml_sp`); always locked after `state`.
    saml: Mutex<saml_sp::Sp>,
    /// OIDC's part (`oidc_sp`); always locked after `state`.
    oidc: Mutex<oidc_sp::Rp>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the simulator down with it: the
        // state is plain data and stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_saml(&self) -> MutexGuard<'_, saml_sp::Sp> {
        self.saml.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_oidc(&self) -> MutexGuard<'_, oidc_sp::Rp> {
        self.oidc.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Handle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A running simulator. Clone-able; dropping the last handle or calling
/// `shutdown` stops it (the listener and every open connection).
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("addr", &self.inner.addr)
            .finish()
    }
}

/// Returned by the service while the simulator is down: hyper then closes
/// the connection without an answer, as a dead upstream would.
#[derive(Debug)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sim: down")
    }
}

impl std::error::Error for Down {}

impl Sim {
    /// Starts on `127.0.0.1:0` (an ephemeral port; see `addr`).
    pub async fn start(cfg: SimConfig) -> std::io::Result<Sim> {
        Sim::start_on(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(cfg: SimConfig, addr: SocketAddr) -> std::io::Result<Sim> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("sim: cannot listen on {addr}: {e}"))
        })?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(cfg)),
            saml: Mutex::new(saml_sp::Sp::default()),
            oidc: Mutex::new(oidc_sp::Rp::default()),
        });
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, shared.clone(), stop.clone()));
        Ok(Sim {
            inner: Arc::new(Handle { shared, addr, stop }),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.shared.lock()
    }

    // ---- application roles (Jira Software and Service Management) ----------

    /// Turns on Service Management with `seats` agent seats, or changes its
    /// tier (its groups stay; a new role gets `jira-servicedesk-users`).
    pub fn set_service_tier(&self, seats: u32) {
        self.lock().set_service(Some(seats), &[]);
    }

    /// Turns Service Management off: its paths are no longer served and its
    /// role no longer gives access.
    pub fn disable_service_management(&self) {
        self.lock().set_service(None, &[]);
    }

    /// Replaces the groups that hold application role `role`
    /// (`jira-software` or the product's own role, or `jira-servicedesk`);
    /// missing groups are created. `false` if there is no such role.
    pub fn set_role_groups(&self, role: &str, groups: &[&str]) -> bool {
        let mut st = self.lock();
        let Some(r) = st.role_of_key(role) else {
            return false;
        };
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        st.set_role_groups(r, &groups)
    }

    /// The groups that hold `role` (display names; empty for no such role).
    pub fn role_groups(&self, role: &str) -> Vec<String> {
        let st = self.lock();
        st.role_of_key(role)
            .map(|r| st.role_groups(r))
            .unwrap_or_default()
    }

    /// Active and in one of `role`'s groups.
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        let st = self.lock();
        st.role_of_key(role).is_some_and(|r| st.has_role(user, r))
    }

    /// Distinct active users holding `role` now (its `userCount`); `None`
    /// for no such role.
    pub fn role_user_count(&self, role: &str) -> Option<usize> {
        let st = self.lock();
        st.role_of_key(role).map(|r| st.role_user_count(r))
    }

    /// The highest `role_user_count` ever (`jira-servicedesk`: since it was
    /// turned on); `None` for no such role.
    pub fn peak_role_count(&self, role: &str) -> Option<usize> {
        let st = self.lock();
        st.role_of_key(role).map(|r| st.peak_role_count(r))
    }

    /// Jira: requests refused because the authenticated user lacked `role`.
    /// `jira-software`: the dashboard, `/browse/…` and REST refused to a user
    /// without application access, and `/browse/…` and `/rest/api/2/issue/…`
    /// refused to an agent holding only `jira-servicedesk`;
    /// `jira-servicedesk`: agent views refused to anyone not holding it.
    /// Anonymous requests and the portal never count. 0 for no such role.
    pub fn role_refusals(&self, role: &str) -> u64 {
        let st = self.lock();
        st.role_of_key(role).map_or(0, |r| st.refusals(r))
    }

    /// Members of `group` (active or not): sorted, lower-case names.
    pub fn members(&self, group: &str) -> Vec<String> {
        let st = self.lock();
        st.members(group)
            .map(|m| m.iter().map(|u| state::fold(&u.name)).collect())
            .unwrap_or_default()
    }

    /// In a licensed group and active: may use the app. With Service
    /// Management, holding either role counts (see [`Sim::has_role`]).
    pub fn has_access(&self, user: &str) -> bool {
        self.lock().has_access(user)
    }

    pub fn is_member(&self, user: &str, group: &str) -> bool {
        self.lock().is_member(user, group)
    }

    /// Groups the user is in (display names, sorted).
    pub fn groups_of(&self, user: &str) -> Vec<String> {
        self.lock().groups_of(user)
    }

    /// Adds a user, or replaces one of the same name (keeping their id).
    pub fn add_user(&self, u: SimUser) {
        self.lock().add_user(u);
    }

    pub fn set_active(&self, user: &str, active: bool) {
        self.lock().set_active(user, active);
    }

    /// Membership changes made by the test itself: no REST rules, not in
    /// `group_writes`, the group is created if needed.
    pub fn add_to_group(&self, user: &str, group: &str) {
        self.lock().force_member(user, group, true);
    }

    pub fn remove_from_group(&self, user: &str, group: &str) {
        self.lock().force_member(user, group, false);
    }

    /// While on, group writes over REST are refused as by a read-only user
    /// directory (Jira: 400 naming the read-only directory).
    pub fn set_read_only(&self, on: bool) {
        self.lock().read_only = on;
    }

    /// Added to every response. The request takes effect at once; its answer
    /// comes `d` later, as over a slow network.
    /// Blocks (or allows again) Basic authentication on every request, as
    /// `PUT /rest/basicauth/1.0/config {"block-requests": …}` does.
    /// The identity providers SSO for Data Center lists at
    /// `GET /rest/authconfig/1.0/idps` (admins only): (name, `SAML` or
    /// `OIDC`), each enabled.
    pub fn set_sso_idps(&self, idps: &[(&str, &str)]) {
        self.lock().sso_idps = idps
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
    }

    pub fn set_basic_auth_blocked(&self, on: bool) {
        self.lock().basic_auth_blocked = on;
    }

    pub fn set_latency(&self, d: Duration) {
        self.lock().latency = d;
    }

    /// Jira Data Center replicates its caches between nodes asynchronously:
    /// a login sees a group added through the admin REST API only `lag`
    /// later (it answers `AUTHORISATION_FAILED` until then). Zero: at once.
    pub fn set_access_lag(&self, lag: Duration) {
        self.lock().access_lag = lag;
    }

    /// While `Some(status)`, every admin REST call answers that status.
    pub fn fail_admin(&self, status: Option<u16>) {
        self.lock().fail_admin = status;
    }

    /// While down, new connections are closed at once and requests on open
    /// ones get no answer (the connection is closed).
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Whether responses carry `X-AUSERNAME` (on by default). Off, it proves
    /// a client learns the user some other way (Confluence's is unconfirmed).
    pub fn set_ausername_header(&self, on: bool) {
        self.lock().ausername_header = on;
    }

    /// The version the app reports (Jira's `/rest/api/2/serverInfo`).
    pub fn set_version(&self, version: &str) {
        self.lock().version = version.to_string();
    }

    /// Which login page the product serves from now on (see [`LoginStyle`]).
    pub fn set_login_style(&self, style: LoginStyle) {
        self.lock().login_style = style;
    }

    /// Enrols `user` in two-step verification, or replaces their enrolment:
    /// `code` is the one TOTP code valid from now on, `recovery_codes` the
    /// one-time recovery codes. From now on a right password alone gets 412
    /// and a half session from `/rest/tsv/…/authenticate`.
    pub fn enrol_two_step(&self, user: &str, code: &str, recovery_codes: &[&str]) {
        self.lock().enrol_two_step(user, code, recovery_codes);
    }

    /// Changes an enrolled user's valid TOTP code (as time moves on in a
    /// real authenticator app); `false` if the user is not enrolled.
    pub fn set_totp_code(&self, user: &str, code: &str) -> bool {
        self.lock().set_totp_code(user, code)
    }

    pub fn unenrol_two_step(&self, user: &str) {
        self.lock().unenrol_two_step(user);
    }

    /// The recovery codes `user` has not used yet.
    pub fn recovery_codes(&self, user: &str) -> Vec<String> {
        self.lock().recovery_codes(user)
    }

    /// Moves the simulator's clock forward (it otherwise follows real time).
    /// Half sessions expire 5 minutes after the password step on this clock.
    pub fn advance_clock(&self, by: Duration) {
        self.lock().advance_clock(by);
    }

    /// Failed logins of `user` since their last successful one (form logins,
    /// Jira's `/rest/auth/1/session` and `/rest/tsv/…/authenticate` count).
    pub fn failed_logins(&self, user: &str) -> u32 {
        self.lock().failed_logins(user)
    }

    /// Sets the count to 0, as answering the CAPTCHA or an administrator would.
    pub fn reset_failed_logins(&self, user: &str) {
        self.lock().reset_failed_logins(user);
    }

    /// Failed logins after which every login of the user is refused with
    /// `AUTHENTICATION_DENIED` until the count is reset (default 3; `None`:
    /// never).
    pub fn set_captcha_after(&self, limit: Option<u32>) {
        self.lock().captcha_after = limit;
    }

    /// Requests seen whose path (without query) starts with `path_prefix`.
    pub fn count(&self, path_prefix: &str) -> usize {
        self.lock().count(path_prefix)
    }

    /// Whether [`Sim::group_writes`] records from now on (default on; a
    /// soak turns it off so its memory reading shows iumgate, not this log).
    pub fn log_group_writes(&self, on: bool) {
        self.lock().log_writes = on;
    }

    /// Every group write the admin REST APIs accepted, in order:
    /// (`"add"`/`"remove"`, user, group), names as the app spells them.
    pub fn group_writes(&self) -> Vec<(String, String, String)> {
        self.lock().writes()
    }

    /// The highest member count `group` ever had (active or not).
    pub fn peak_members(&self, group: &str) -> usize {
        self.lock().peak_members(group)
    }

    /// The highest licence count ever (distinct active users holding access).
    pub fn peak_licensed(&self) -> usize {
        self.lock().peak_licensed()
    }

    /// Distinct active users holding access now (applicationrole `userCount`).
    pub fn licensed_count(&self) -> usize {
        self.lock().user_count()
    }

    // ---- OIDC (see `oidc_sp`) ---------------------------------------------

    /// Signs users in through `idp` at `/plugins/servlet/oidc/initiate-login`
    /// (`None`: OIDC is not configured, 404).
    pub fn set_oidc_idp(&self, idp: Option<&oidc_idp::OidcIdp>) {
        self.inner.shared.lock_oidc().idp = idp.map(oidc_idp::OidcIdp::redeemer);
    }

    /// OIDC callbacks that logged someone in.
    pub fn oidc_logins(&self) -> usize {
        let _st = self.inner.shared.lock();
        self.inner.shared.lock_oidc().accepted
    }

    // ---- SAML (see `saml_sp`) ---------------------------------------------

    /// The simulator's SAML IdP (one per process, made at first use; `None`
    /// if its key could not be made): its certificate is what iumgate's
    /// `[sso.saml] idp_certificate_file` needs. Its responses name
    /// [`SAML_AUDIENCE`], [`SAML_DESTINATION`] and [`SAML_IDP_ENTITY_ID`].
    pub fn saml_idp() -> Option<&'static saml_idp::SamlIdp> {
        saml_sp::idp()
    }

    /// A valid login for `user` as the IdP would issue it now (on the SAML
    /// clock); change it, then [`Sim::issue_saml`] it.
    pub fn saml_login(&self, user: &str) -> saml_idp::SamlLogin {
        self.inner.shared.lock_saml().login(user)
    }

    /// Signs `login` with the IdP's key and records the response as issued:
    /// the app accepts it once while it is valid. The base64 text, as the
    /// `SAMLResponse` form field carries it (`None`: no IdP key).
    pub fn issue_saml(&self, login: &saml_idp::SamlLogin) -> Option<String> {
        let _st = self.lock();
        self.inner.shared.lock_saml().issue(login)
    }

    /// A fresh, valid response for `user` ([`Sim::saml_login`] issued).
    pub fn saml_response(&self, user: &str) -> Option<String> {
        let login = self.saml_login(user);
        self.issue_saml(&login)
    }

    /// Who is logged in at the IdP: `GET /sim-idp/sso` without `?user=`
    /// (and so `/plugins/servlet/external-login`) issues for them.
    pub fn set_idp_user(&self, user: Option<&str>) {
        let _st = self.lock();
        self.inner.shared.lock_saml().idp_user = user.map(str::to_string);
    }

    /// The time the IdP issues at and the app checks responses against
    /// (`None`: real time, the default). Set it to iumgate's manual clock.
    pub fn set_saml_clock(&self, now: Option<jiff::Timestamp>) {
        let _st = self.lock();
        self.inner.shared.lock_saml().clock = now;
    }

    /// Consumer posts that logged someone in.
    pub fn saml_logins(&self) -> usize {
        let _st = self.lock();
        self.inner.shared.lock_saml().accepted
    }

    /// Stops the listener and closes every open connection.
    pub fn shutdown(&self) {
        self.inner.stop.cancel();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of
                // spinning on the error.
                tracing::debug!(error = %e, "sim: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if shared.lock().down {
            drop(stream);
            continue;
        }
        let shared = shared.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            // Title-case header names on the wire, like Tomcat.
            let conn = hyper::server::conn::http1::Builder::new()
                .title_case_headers(true)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = stop.cancelled() => {}
                r = conn => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "sim: connection ended with an error");
                    }
                }
            }
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Down> {
    if shared.lock().down {
        return Err(Down);
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, web::MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let reply = Reply::text(413, format!("sim: request body refused: {e}\n"));
            return Ok(reply.into_response());
        }
    };
    let req = Req::new(parts.method, &parts.uri, parts.headers, body);
    let (reply, latency) = {
        let mut st = shared.lock();
        if st.down {
            return Err(Down);
        }
        st.hit(&req.path);
        let reply = if oidc_sp::is_oidc_path(&req.path) {
            let mut cx = auth::identify(&mut st, &req);
            let mut rp = shared.lock_oidc();
            match oidc_sp::route(&mut st, &mut rp, &req, &mut cx) {
                Some(reply) => auth::finish(&mut st, cx, reply),
                None => route(&mut st, &req),
            }
        } else {
            let mut sp = shared.lock_saml();
            route_with_saml(&mut st, &mut sp, &req)
        };
        (reply, st.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    Ok(reply.into_response())
}

/// SAML's paths (the same in all three products, see `saml_sp`), else
/// [`route`].
fn route_with_saml(st: &mut State, sp: &mut saml_sp::Sp, req: &Req) -> Reply {
    if saml_sp::is_saml_path(&req.path) {
        let mut cx = auth::identify(st, req);
        if let Some(reply) = saml_sp::route(st, sp, req, &mut cx) {
            return auth::finish(st, cx, reply);
        }
    }
    route(st, req)
}

/// One request against the world: identify the caller, let the product
/// answer, then add the headers every answer of that product carries.
fn route(st: &mut State, req: &Req) -> Reply {
    // Crowd is a separate server with its own application auth: none of the
    // product's sessions or headers apply.
    if let Some(reply) = crowd::route(st, req) {
        return reply;
    }
    // The blocking filter runs before any authentication: Basic credentials
    // are refused whatever they are, right or wrong, and count nowhere.
    if st.basic_auth_blocked && !matches!(req.basic(), web::Basic::Absent) {
        let reply = Reply::json(
            BASIC_AUTH_BLOCKED_STATUS,
            serde_json::json!({ "message": BASIC_AUTH_BLOCKED_MESSAGE }),
        );
        return auth::finish(st, auth::Cx::default(), reply);
    }
    if req.path == "/rest/authconfig/1.0/idps" {
        let mut cx = auth::Cx::default();
        let reply = sso_idps(st, req, &mut cx);
        return auth::finish(st, cx, reply);
    }
    if req.path == "/rest/basicauth/1.0/config" {
        let mut cx = auth::Cx::default();
        let reply = basicauth_config(st, req, &mut cx);
        return auth::finish(st, cx, reply);
    }
    let mut cx = auth::identify(st, req);
    // Today's login is one platform in all three products.
    let reply = match login::route(st, req, &mut cx) {
        Some(reply) => reply,
        None => match st.product {
            Product::Jira => jira::route(st, req, &mut cx),
            Product::Confluence => confluence::route(st, req, &mut cx),
            Product::Bitbucket => bitbucket::route(st, req, &mut cx),
        },
    };
    auth::finish(st, cx, reply)
}

/// `/rest/basicauth/1.0/config` (admins only): the blocking switch and its
/// allow-lists, in the documented shape
/// `{"block-requests", "allowed-paths", "allowed-users"}`. The simulator
/// keeps no allow-lists: they are always empty and a `PUT` of them is ignored.
/// `GET /rest/authconfig/1.0/idps`: SSO for Data Center's identity
/// providers. The field names (`sso-type`, `enabled`) are *unconfirmed*;
/// iumgate's check reads the usual spellings.
fn sso_idps(st: &mut State, req: &Req, cx: &mut auth::Cx) -> Reply {
    let caller = auth::admin(st, req);
    auth::show_admin(st, cx, &caller);
    match caller {
        auth::AdminAuth::Ok(_) => {}
        auth::AdminAuth::Unauthenticated => return Reply::new(401),
        auth::AdminAuth::NotAdmin(_) => return Reply::new(403),
    }
    if req.method != http::Method::GET {
        return Reply::new(405);
    }
    let list: Vec<serde_json::Value> = st
        .sso_idps
        .iter()
        .enumerate()
        .map(|(i, (name, kind))| {
            serde_json::json!({ "id": i + 1, "name": name, "sso-type": kind, "enabled": true })
        })
        .collect();
    Reply::json(200, serde_json::Value::Array(list))
}

fn basicauth_config(st: &mut State, req: &Req, cx: &mut auth::Cx) -> Reply {
    let caller = auth::admin(st, req);
    auth::show_admin(st, cx, &caller);
    match caller {
        auth::AdminAuth::Ok(_) => {}
        auth::AdminAuth::Unauthenticated => return Reply::new(401),
        auth::AdminAuth::NotAdmin(_) => return Reply::new(403),
    }
    if req.method == http::Method::PUT {
        let Some(body) = req.json() else {
            return Reply::new(400);
        };
        if let Some(on) = body.get("block-requests").and_then(|v| v.as_bool()) {
            st.basic_auth_blocked = on;
        }
    } else if req.method != http::Method::GET {
        return Reply::new(405);
    }
    Reply::json(
        200,
        serde_json::json!({
            "block-requests": st.basic_auth_blocked,
            "allowed-paths": [],
            "allowed-users": [],
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_can_be_shared_across_tasks() {
        fn shareable<T: Send + Sync + Clone + 'static>() {}
        shareable::<Sim>();
    }

    fn get(st: &mut State, path: &str, auth: &str) -> (u16, serde_json::Value) {
        let mut headers = http::HeaderMap::new();
        if !auth.is_empty() {
            headers.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        }
        let uri: http::Uri = path.parse().unwrap();
        let req = Req::new(http::Method::GET, &uri, headers, Bytes::new());
        let reply = route(st, &req);
        let body = serde_json::from_slice(&reply.body).unwrap_or(serde_json::Value::Null);
        (reply.status.as_u16(), body)
    }

    fn basic(user: &str, password: &str) -> String {
        use base64::Engine;
        let raw = format!("{user}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    #[test]
    fn blocked_basic_auth_refuses_every_password_but_not_tokens() {
        for product in [Product::Jira, Product::Confluence, Product::Bitbucket] {
            let mut st = State::new(SimConfig {
                basic_auth_blocked: true,
                ..SimConfig::demo(product)
            });
            let config = "/rest/basicauth/1.0/config";
            let blocked = (
                BASIC_AUTH_BLOCKED_STATUS,
                serde_json::json!({ "message": BASIC_AUTH_BLOCKED_MESSAGE }),
            );
            for (user, password) in [("iumgate-admin", "demo"), ("iumgate-admin", "wrong")] {
                assert_eq!(get(&mut st, config, &basic(user, password)), blocked);
            }
            assert_eq!(
                get(&mut st, config, "Basic !!").0,
                BASIC_AUTH_BLOCKED_STATUS
            );
            let (status, body) = get(&mut st, config, "Bearer demo-admin-token");
            assert_eq!(status, 200, "{product:?}");
            assert_eq!(body["block-requests"], true);
            assert_eq!(get(&mut st, config, "").0, 401);
            st.basic_auth_blocked = false;
            let (status, body) = get(&mut st, config, &basic("iumgate-admin", "demo"));
            assert_eq!((status, &body["block-requests"]), (200, &false.into()));
            assert_eq!(get(&mut st, config, &basic("power1", "demo")).0, 403);
        }
    }

    #[test]
    fn the_service_management_demo_has_agents_customers_and_users_of_both() {
        let cfg = SimConfig::demo_service_management();
        let sm = cfg.service_management.clone().unwrap();
        assert_eq!(sm.seats, 5);
        assert_eq!(sm.groups, vec![SERVICE_DESK_USERS, IUM_ACCESS_SERVICE]);
        let st = State::new(cfg);
        use state::Role;
        assert_eq!(st.role_user_count(Role::Service), 1, "agent1");
        assert_eq!(st.role_user_count(Role::Software), 3);
        assert_eq!(st.members(IUM_USER_SERVICE).map(|m| m.len()), Some(13));
        assert_eq!(st.members(IUM_ACCESS_SERVICE).map(|m| m.len()), Some(0));
        assert!(st.is_member("both2", "IUM_user_software"));
        assert!(st.check_password("customer3", "demo").is_some());
        assert!(!st.has_access("customer3") && !st.has_access("agent05"));
        // Off by default, and the builder keeps groups given before the tier.
        assert_eq!(SimConfig::demo(Product::Jira).service_management, None);
        let cfg = SimConfig::demo(Product::Jira)
            .service_group("agents")
            .service_management(7);
        let sm = cfg.service_management.unwrap();
        assert_eq!((sm.seats, sm.groups.len()), (7, 2));
        assert!(cfg.groups.iter().any(|g| g == "agents"));
    }

    #[test]
    fn demo_worlds_match_the_brief() {
        let cfg = SimConfig::demo(Product::Jira);
        let st = State::new(cfg.clone());
        assert_eq!(cfg.seats, 10);
        assert_eq!(cfg.application, "jira-software");
        assert_eq!(st.members("jira-software-users").map(|m| m.len()), Some(3));
        assert_eq!(st.members("IUM_user_software").map(|m| m.len()), Some(20));
        assert_eq!(st.members("IUM_access_software").map(|m| m.len()), Some(0));
        assert!(st.is_admin("iumgate-admin") && !st.has_access("iumgate-admin"));
        assert!(st.is_member("iumgate-admin", "jira-administrators"));
        assert!(st.check_password("casual20", "demo").is_some());
        assert_eq!(st.user_count(), 3);
        for p in [Product::Confluence, Product::Bitbucket] {
            let st = State::new(SimConfig::demo(p));
            assert_eq!(st.user_count(), 3, "{p:?}");
            assert_eq!(st.role_groups(state::Role::Software).len(), 2, "{p:?}");
        }
    }
}
