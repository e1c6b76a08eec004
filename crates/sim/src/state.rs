//! The simulator's whole world: users, groups, sessions, tokens and the test
//! controls. Plain data behind the one `Mutex` in `Shared`; every method is
//! synchronous so the lock is never held across an `.await`.
//!
//! Names of users and groups are kept as given (for display) and looked up by
//! their lower-case form, because the Atlassian apps compare them so.

use super::{LoginStyle, SimConfig, SimUser, SERVICE_DESK_ROLE};
use iumgate_core::product::Product;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// How long a half session (password step passed, code step pending) lasts,
/// on the simulator's clock.
pub(crate) const HALF_SESSION_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// Failed logins after which the app demands a CAPTCHA (Jira's default
/// "maximum authentication attempts allowed").
pub(crate) const CAPTCHA_AFTER: u32 = 3;

pub(crate) struct UserRec {
    /// As configured (display spelling).
    pub name: String,
    /// Jira's user key: `JIRAUSER1xxxx` for users made since Jira 8, which is
    /// why clients must use `name`, never `key`, as the username.
    pub key: String,
    /// Numeric id (Bitbucket's `X-AUSERID`, Jira's key suffix).
    pub id: u64,
    pub password: String,
    pub active: bool,
    pub admin: bool,
}

pub(crate) struct GroupRec {
    /// As configured (display spelling).
    pub name: String,
    /// Lower-case user names.
    pub members: BTreeSet<String>,
}

/// The outcome of a group write asked for over the admin REST API. Each
/// product maps these onto its own status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Done,
    NoGroup,
    NoUser,
    ReadOnly,
    /// add: already a member.
    Already,
    /// remove: not a member.
    NotMember,
}

/// A user enrolled in two-step verification: the simulator's stand-in for a
/// TOTP secret is the one code that is valid right now, set by the test.
pub(crate) struct TwoStepRec {
    pub code: String,
    /// One-time recovery codes not used yet.
    pub recovery: Vec<String>,
}

/// Which second-step code a request offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeKind {
    Totp,
    Recovery,
}

/// A session that is not logged in but remembers that `user` passed the
/// password step at `at` (simulator clock), waiting for the code step.
#[derive(Debug, Clone)]
pub(crate) struct HalfSession {
    /// Lower-case user name.
    pub user: String,
    pub at: Duration,
    /// The first step's `rememberMe`, honoured when the real session is made.
    pub remember: bool,
    /// The first step's `targetUrl` (already made local).
    pub target: String,
}

/// Jira Service Management's agent role (`jira-servicedesk`): a licence
/// tier of its own and the groups that hold it.
pub(crate) struct ServiceRole {
    /// `numberOfSeats` of the role (the agent tier).
    pub seats: u32,
    /// Lower-case names of the groups that hold the role, in config order
    /// (the first is its default group).
    groups: Vec<String>,
    /// The highest count of distinct active agents holding the role.
    peak: usize,
}

/// Which application role a request was refused for (see `State::refuse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Software,
    Service,
}

pub(crate) struct State {
    pub product: Product,
    pub application: String,
    pub seats: u32,
    users: BTreeMap<String, UserRec>,
    groups: BTreeMap<String, GroupRec>,
    /// Lower-case names of the groups that give application access, in config order.
    licensed: Vec<String>,
    /// The Service Management role, when the simulated Jira has it.
    service: Option<ServiceRole>,
    /// Requests refused because the user lacked the role: (software, service).
    refusals: (u64, u64),
    /// Personal access token → lower-case user name.
    tokens: HashMap<String, String>,
    /// Session id → lower-case user name.
    sessions: HashMap<String, String>,
    /// Remember-me cookie value → lower-case user name.
    remember: HashMap<String, String>,
    /// Half session id (a session cookie value that is not logged in) → who
    /// passed the password step, when.
    half_sessions: HashMap<String, HalfSession>,
    /// Lower-case user name → two-step enrolment.
    two_step: HashMap<String, TwoStepRec>,
    /// Lower-case user name → failed logins since the last successful one.
    failed_logins: HashMap<String, u32>,
    /// Failed logins after which every login of the user is denied until the
    /// count is reset (`None`: never).
    pub captcha_after: Option<u32>,
    /// Which login page the product serves.
    pub login_style: LoginStyle,
    /// The simulator's clock: real time since start plus what tests added.
    born: Instant,
    clock_offset: Duration,
    /// Crowd applications allowed to call the usermanagement API: name → password.
    pub crowd_apps: HashMap<String, String>,
    pub read_only: bool,
    pub latency: Duration,
    /// A Data Center cluster's cache lag: a login sees a group added this
    /// much later (the change was made through another node).
    pub access_lag: Duration,
    /// When each user last joined a group (for `access_lag`).
    joined_at: HashMap<String, Instant>,
    pub fail_admin: Option<u16>,
    pub down: bool,
    /// Whether responses carry `X-AUSERNAME` (Confluence's is unconfirmed, so
    /// tests can switch it off to prove iumgate copes without it).
    pub ausername_header: bool,
    /// Basic authentication blocked (see `SimConfig::basic_auth_blocked`).
    pub basic_auth_blocked: bool,
    /// The identity providers SSO for Data Center lists (name, `SAML` or
    /// `OIDC`), see `Sim::set_sso_idps`.
    pub sso_idps: Vec<(String, String)>,
    /// What `/rest/api/2/serverInfo` reports (Jira), e.g. `9.12.0`.
    pub version: String,
    hits: HashMap<String, usize>,
    writes: Vec<(String, String, String)>,
    /// Whether `writes` grows (a soak turns it off: it is the one record
    /// the simulator keeps per write, by design).
    pub log_writes: bool,
    peaks: HashMap<String, usize>,
    peak_licensed: usize,
    next_id: u64,
    pub requests: u64,
    /// Issue key → summary (Jira), page id → title (Confluence).
    pub items: HashMap<String, String>,
    /// Lower-case user name → last successful authentication, ms since the
    /// epoch (Bitbucket's `lastAuthenticationTimestamp`).
    last_auth: HashMap<String, u64>,
}

pub(crate) fn fold(name: &str) -> String {
    name.trim().to_lowercase()
}

impl State {
    pub fn new(cfg: SimConfig) -> State {
        let mut st = State {
            product: cfg.product,
            application: cfg.application,
            seats: cfg.seats,
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            licensed: Vec::new(),
            service: None,
            refusals: (0, 0),
            tokens: HashMap::new(),
            sessions: HashMap::new(),
            remember: HashMap::new(),
            half_sessions: HashMap::new(),
            two_step: HashMap::new(),
            failed_logins: HashMap::new(),
            captcha_after: Some(CAPTCHA_AFTER),
            login_style: cfg.login_style,
            born: Instant::now(),
            clock_offset: Duration::ZERO,
            crowd_apps: cfg.crowd_apps.into_iter().collect(),
            read_only: false,
            latency: Duration::ZERO,
            access_lag: Duration::ZERO,
            joined_at: HashMap::new(),
            fail_admin: None,
            down: false,
            ausername_header: true,
            basic_auth_blocked: cfg.basic_auth_blocked,
            sso_idps: Vec::new(),
            version: "9.12.0".into(),
            hits: HashMap::new(),
            writes: Vec::new(),
            log_writes: true,
            peaks: HashMap::new(),
            peak_licensed: 0,
            next_id: 10000,
            requests: 0,
            items: HashMap::new(),
            last_auth: HashMap::new(),
        };
        for g in cfg.groups.iter().chain(cfg.licensed_groups.iter()) {
            st.ensure_group(g);
        }
        st.licensed = cfg.licensed_groups.iter().map(|g| fold(g)).collect();
        st.licensed.dedup();
        if let Some(sm) = &cfg.service_management {
            st.set_service(Some(sm.seats), &sm.groups);
        }
        for u in cfg.users {
            st.insert_user(u);
        }
        // Once, not per user: counting licensed users is linear, so a large
        // world (50,000 members for the start-up benchmark) stays quick.
        st.note_licensed();
        for (token, user) in cfg.tokens {
            st.tokens.insert(token, fold(&user));
        }
        for t in cfg.two_step {
            let codes: Vec<&str> = t.recovery_codes.iter().map(String::as_str).collect();
            st.enrol_two_step(&t.user, &t.code, &codes);
        }
        st
    }

    fn ensure_group(&mut self, name: &str) -> String {
        let key = fold(name);
        self.groups.entry(key.clone()).or_insert_with(|| GroupRec {
            name: name.trim().to_string(),
            members: BTreeSet::new(),
        });
        key
    }

    /// Adds (or replaces) a user and puts them in their groups, creating
    /// groups that do not exist yet.
    pub fn add_user(&mut self, u: SimUser) {
        self.insert_user(u);
        self.note_licensed();
    }

    fn insert_user(&mut self, u: SimUser) {
        let key = fold(&u.name);
        let id = match self.users.get(&key) {
            Some(old) => old.id,
            None => {
                self.next_id += 100;
                self.next_id
            }
        };
        self.users.insert(
            key.clone(),
            UserRec {
                name: u.name.trim().to_string(),
                key: format!("JIRAUSER{id}"),
                id,
                password: u.password,
                active: u.active,
                admin: u.admin,
            },
        );
        for g in &u.groups {
            let gk = self.ensure_group(g);
            if let Some(group) = self.groups.get_mut(&gk) {
                group.members.insert(key.clone());
            }
            self.note_peaks(&gk);
        }
    }

    pub fn user(&self, name: &str) -> Option<&UserRec> {
        self.users.get(&fold(name))
    }

    pub fn group(&self, name: &str) -> Option<&GroupRec> {
        self.groups.get(&fold(name))
    }

    pub fn users(&self) -> impl Iterator<Item = &UserRec> {
        self.users.values()
    }

    /// The user's lower-case name if `password` is theirs (active or not).
    pub fn check_password(&self, name: &str, password: &str) -> Option<String> {
        let key = fold(name);
        match self.users.get(&key) {
            Some(u) if u.password == password => Some(key),
            _ => None,
        }
    }

    pub fn token_user(&self, token: &str) -> Option<String> {
        self.tokens.get(token).cloned()
    }

    pub fn set_active(&mut self, name: &str, active: bool) {
        if let Some(u) = self.users.get_mut(&fold(name)) {
            u.active = active;
        }
        self.note_licensed();
    }

    pub fn is_active(&self, name: &str) -> bool {
        self.user(name).is_some_and(|u| u.active)
    }

    pub fn is_admin(&self, name: &str) -> bool {
        self.user(name).is_some_and(|u| u.admin)
    }

    pub fn is_member(&self, user: &str, group: &str) -> bool {
        self.group(group)
            .is_some_and(|g| g.members.contains(&fold(user)))
    }

    /// Active and in a licensed group: what the app checks on every request.
    /// Whether a login of `user` cannot see their newest group yet (see
    /// `access_lag`).
    pub fn access_lagging(&self, user: &str) -> bool {
        !self.access_lag.is_zero()
            && self
                .joined_at
                .get(&fold(user))
                .is_some_and(|t| t.elapsed() < self.access_lag)
    }

    /// Active and holding an application role (Jira Software, or Service
    /// Management when the simulated Jira has it): may log in and use the
    /// app. Without Service Management this is the software role alone.
    pub fn has_access(&self, user: &str) -> bool {
        self.has_role(user, Role::Software) || self.has_role(user, Role::Service)
    }

    /// Active and in one of `role`'s groups (`Service`: `false` while the
    /// simulated Jira has no Service Management).
    pub fn has_role(&self, user: &str, role: Role) -> bool {
        let key = fold(user);
        let Some(groups) = self.role_groups_folded(role) else {
            return false;
        };
        self.is_active(&key)
            && groups
                .iter()
                .any(|g| self.groups.get(g).is_some_and(|g| g.members.contains(&key)))
    }

    fn role_groups_folded(&self, role: Role) -> Option<&[String]> {
        match role {
            Role::Software => Some(&self.licensed),
            Role::Service => self.service.as_ref().map(|s| s.groups.as_slice()),
        }
    }

    /// Which role an application role key names (`None`: no such role here).
    pub fn role_of_key(&self, key: &str) -> Option<Role> {
        if key == self.application {
            Some(Role::Software)
        } else if key == SERVICE_DESK_ROLE && self.service.is_some() {
            Some(Role::Service)
        } else {
            None
        }
    }

    pub fn service_enabled(&self) -> bool {
        self.service.is_some()
    }

    /// The Service Management role's tier (`None`: no Service Management).
    pub fn service_seats(&self) -> Option<u32> {
        self.service.as_ref().map(|s| s.seats)
    }

    /// Turns Service Management on (or changes its tier and groups, keeping
    /// the peak); `seats: None` turns it off. Groups that do not exist are
    /// created. An empty `groups` keeps the role's groups (the default group
    /// when it is new).
    pub fn set_service(&mut self, seats: Option<u32>, groups: &[String]) {
        let Some(seats) = seats else {
            self.service = None;
            return;
        };
        let mut folded: Vec<String> = groups.iter().map(|g| self.ensure_group(g)).collect();
        folded.dedup();
        match &mut self.service {
            Some(s) => {
                s.seats = seats;
                if !folded.is_empty() {
                    s.groups = folded;
                }
            }
            None => {
                if folded.is_empty() {
                    folded.push(self.ensure_group(super::SERVICE_DESK_USERS));
                }
                self.service = Some(ServiceRole {
                    seats,
                    groups: folded,
                    peak: 0,
                });
            }
        }
        self.note_licensed();
    }

    /// Replaces the groups that hold `role` (creating missing ones); `false`
    /// when the role does not exist here.
    pub fn set_role_groups(&mut self, role: Role, groups: &[String]) -> bool {
        let mut folded: Vec<String> = groups.iter().map(|g| self.ensure_group(g)).collect();
        folded.dedup();
        match role {
            Role::Software => self.licensed = folded,
            Role::Service => match &mut self.service {
                Some(s) => s.groups = folded,
                None => return false,
            },
        }
        self.note_licensed();
        true
    }

    /// Display names of the groups that hold `role`, in config order.
    pub fn role_groups(&self, role: Role) -> Vec<String> {
        self.role_groups_folded(role)
            .unwrap_or_default()
            .iter()
            .filter_map(|g| self.groups.get(g).map(|g| g.name.clone()))
            .collect()
    }

    /// Distinct active users holding the software role: what its licence counts.
    pub fn user_count(&self) -> usize {
        self.role_user_count(Role::Software)
    }

    /// Distinct active users holding `role` (0 for a role that does not exist).
    pub fn role_user_count(&self, role: Role) -> usize {
        let mut seen = BTreeSet::new();
        for g in self.role_groups_folded(role).unwrap_or_default() {
            if let Some(g) = self.groups.get(g) {
                for m in &g.members {
                    if self.is_active(m) {
                        seen.insert(m.as_str());
                    }
                }
            }
        }
        seen.len()
    }

    /// The highest `role_user_count` ever (the software role's is
    /// `peak_licensed`; the service role's since it was turned on).
    pub fn peak_role_count(&self, role: Role) -> usize {
        match role {
            Role::Software => self.peak_licensed,
            Role::Service => self.service.as_ref().map_or(0, |s| s.peak),
        }
    }

    /// Counts a request refused because the user lacks `role`.
    pub fn refuse(&mut self, role: Role) {
        match role {
            Role::Software => self.refusals.0 += 1,
            Role::Service => self.refusals.1 += 1,
        }
    }

    pub fn refusals(&self, role: Role) -> u64 {
        match role {
            Role::Software => self.refusals.0,
            Role::Service => self.refusals.1,
        }
    }

    /// Members of `group` (all of them, active or not), sorted by name.
    pub fn members(&self, group: &str) -> Option<Vec<&UserRec>> {
        let g = self.group(group)?;
        Some(g.members.iter().filter_map(|m| self.users.get(m)).collect())
    }

    /// One page of a group's members (`start`, at most `max`) and how many
    /// there are in all, without building the whole list: a 50,000-member
    /// group is read in 1,000 pages, each of which would otherwise cost a
    /// look-up per member.
    pub fn members_page(
        &self,
        group: &str,
        with_inactive: bool,
        start: usize,
        max: usize,
    ) -> Option<(usize, Vec<&UserRec>)> {
        let g = self.group(group)?;
        if with_inactive {
            // Users are never deleted here: every member has a record.
            let total = g.members.len();
            let page = g
                .members
                .iter()
                .skip(start)
                .filter_map(|m| self.users.get(m))
                .take(max)
                .collect();
            return Some((total, page));
        }
        let active: Vec<&UserRec> = g
            .members
            .iter()
            .filter_map(|m| self.users.get(m))
            .filter(|u| u.active)
            .collect();
        let total = active.len();
        Some((total, active.into_iter().skip(start).take(max).collect()))
    }

    /// Groups the user is in, by display name, sorted.
    pub fn groups_of(&self, user: &str) -> Vec<String> {
        let key = fold(user);
        self.groups
            .values()
            .filter(|g| g.members.contains(&key))
            .map(|g| g.name.clone())
            .collect()
    }

    /// Test control: membership change without the REST rules (creates the
    /// group if needed; not recorded in `writes`).
    pub fn force_member(&mut self, user: &str, group: &str, member: bool) {
        let gk = self.ensure_group(group);
        if let Some(g) = self.groups.get_mut(&gk) {
            if member {
                g.members.insert(fold(user));
            } else {
                g.members.remove(&fold(user));
            }
        }
        self.note_peaks(&gk);
        self.note_licensed();
    }

    /// A group write through the admin REST API. Checks in the order the apps
    /// do: the group, the user, the directory being writable, then membership.
    /// Accepted writes are recorded for `Sim::group_writes`.
    pub fn rest_write(&mut self, add: bool, user: &str, group: &str) -> Write {
        let (uk, gk) = (fold(user), fold(group));
        if !self.groups.contains_key(&gk) {
            return Write::NoGroup;
        }
        let Some(u) = self.users.get(&uk) else {
            return Write::NoUser;
        };
        let uname = u.name.clone();
        if self.read_only {
            return Write::ReadOnly;
        }
        let Some(g) = self.groups.get_mut(&gk) else {
            return Write::NoGroup;
        };
        let gname = g.name.clone();
        let changed = if add {
            if !self.access_lag.is_zero() {
                self.joined_at.insert(uk.clone(), Instant::now());
            }
            g.members.insert(uk)
        } else {
            g.members.remove(&uk)
        };
        if !changed {
            return if add {
                Write::Already
            } else {
                Write::NotMember
            };
        }
        let op = if add { "add" } else { "remove" };
        if self.log_writes {
            self.writes.push((op.to_string(), uname, gname));
        }
        self.note_peaks(&gk);
        self.note_licensed();
        Write::Done
    }

    /// Records an accepted write that changed nothing (Confluence's PUT is
    /// idempotent and still answers 204).
    pub fn record_noop_write(&mut self, add: bool, user: &str, group: &str) {
        let uname = self
            .user(user)
            .map_or_else(|| user.to_string(), |u| u.name.clone());
        let gname = self
            .group(group)
            .map_or_else(|| group.to_string(), |g| g.name.clone());
        let op = if add { "add" } else { "remove" };
        if self.log_writes {
            self.writes.push((op.to_string(), uname, gname));
        }
    }

    fn note_peaks(&mut self, gk: &str) {
        if let Some(g) = self.groups.get(gk) {
            let n = g.members.len();
            let peak = self.peaks.entry(gk.to_string()).or_insert(0);
            *peak = (*peak).max(n);
        }
    }

    fn note_licensed(&mut self) {
        self.peak_licensed = self.peak_licensed.max(self.user_count());
        if self.service.is_some() {
            let n = self.role_user_count(Role::Service);
            if let Some(s) = &mut self.service {
                s.peak = s.peak.max(n);
            }
        }
    }

    pub fn peak_members(&self, group: &str) -> usize {
        self.peaks.get(&fold(group)).copied().unwrap_or(0)
    }

    pub fn peak_licensed(&self) -> usize {
        self.peak_licensed
    }

    pub fn writes(&self) -> Vec<(String, String, String)> {
        self.writes.clone()
    }

    pub fn hit(&mut self, path: &str) {
        self.requests += 1;
        *self.hits.entry(path.to_string()).or_insert(0) += 1;
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.hits
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    // ---- sessions ---------------------------------------------------------

    /// A new server-side session for `user`; returns its id (the cookie value).
    pub fn new_session(&mut self, user: &str) -> String {
        let sid = format!("{:032X}", rand::random::<u128>());
        self.sessions.insert(sid.clone(), fold(user));
        sid
    }

    pub fn session_user(&self, sid: &str) -> Option<String> {
        self.sessions.get(sid).cloned()
    }

    pub fn end_session(&mut self, sid: &str) -> bool {
        self.sessions.remove(sid).is_some()
    }

    /// A remember-me token for `user`, shaped like Seraph's `id%3Ahex`.
    pub fn new_remember(&mut self, user: &str) -> String {
        let id = self.user(user).map_or(0, |u| u.id);
        let token = format!("{id}%3A{:040x}", rand::random::<u128>());
        self.remember.insert(token.clone(), fold(user));
        token
    }

    pub fn remember_user(&self, token: &str) -> Option<String> {
        self.remember.get(token).cloned()
    }

    pub fn forget_remember(&mut self, token: &str) {
        self.remember.remove(token);
    }

    /// Ends every session and remember-me token of `user`; returns how many
    /// (half sessions end too, uncounted: they were never logged in).
    pub fn end_sessions_of(&mut self, user: &str) -> usize {
        let key = fold(user);
        let before = self.sessions.len() + self.remember.len();
        self.sessions.retain(|_, u| *u != key);
        self.remember.retain(|_, u| *u != key);
        self.half_sessions.retain(|_, h| h.user != key);
        before - self.sessions.len() - self.remember.len()
    }

    // ---- the clock, half sessions and two-step verification ----------------

    /// The simulator's clock: time since start, plus what tests advanced.
    pub fn now(&self) -> Duration {
        self.born.elapsed() + self.clock_offset
    }

    pub fn advance_clock(&mut self, by: Duration) {
        self.clock_offset += by;
    }

    /// A new half session: `user` passed the password step now. Expired half
    /// sessions are dropped here, so they never pile up.
    pub fn new_half_session(&mut self, user: &str, remember: bool, target: &str) -> String {
        let now = self.now();
        self.half_sessions
            .retain(|_, h| now.saturating_sub(h.at) < HALF_SESSION_LIFETIME);
        let sid = format!("{:032X}", rand::random::<u128>());
        self.half_sessions.insert(
            sid.clone(),
            HalfSession {
                user: fold(user),
                at: now,
                remember,
                target: target.to_string(),
            },
        );
        sid
    }

    /// The half session `sid`, if it exists and has not expired (an expired
    /// one is removed).
    pub fn half_session(&mut self, sid: &str) -> Option<HalfSession> {
        let now = self.now();
        let h = self.half_sessions.get(sid)?;
        if now.saturating_sub(h.at) >= HALF_SESSION_LIFETIME {
            self.half_sessions.remove(sid);
            return None;
        }
        Some(h.clone())
    }

    pub fn end_half_session(&mut self, sid: &str) -> bool {
        self.half_sessions.remove(sid).is_some()
    }

    /// Enrols `user` (or replaces their enrolment): `code` is the one valid
    /// TOTP code, `recovery` the one-time recovery codes.
    pub fn enrol_two_step(&mut self, user: &str, code: &str, recovery: &[&str]) {
        self.two_step.insert(
            fold(user),
            TwoStepRec {
                code: code.to_string(),
                recovery: recovery.iter().map(|c| c.to_string()).collect(),
            },
        );
    }

    /// Changes the valid TOTP code of an enrolled user; `false` if not enrolled.
    pub fn set_totp_code(&mut self, user: &str, code: &str) -> bool {
        match self.two_step.get_mut(&fold(user)) {
            Some(t) => {
                t.code = code.to_string();
                true
            }
            None => false,
        }
    }

    pub fn unenrol_two_step(&mut self, user: &str) {
        self.two_step.remove(&fold(user));
    }

    pub fn two_step_enrolled(&self, user: &str) -> bool {
        self.two_step.contains_key(&fold(user))
    }

    /// The recovery codes `user` has not used yet.
    pub fn recovery_codes(&self, user: &str) -> Vec<String> {
        self.two_step
            .get(&fold(user))
            .map(|t| t.recovery.clone())
            .unwrap_or_default()
    }

    /// Whether `code` passes `user`'s second step. A recovery code is used up.
    pub fn check_code(&mut self, user: &str, kind: CodeKind, code: &str) -> bool {
        let Some(t) = self.two_step.get_mut(&fold(user)) else {
            return false;
        };
        let code = code.trim();
        if code.is_empty() {
            return false;
        }
        match kind {
            CodeKind::Totp => t.code == code,
            CodeKind::Recovery => match t.recovery.iter().position(|c| c == code) {
                Some(i) => {
                    t.recovery.remove(i);
                    true
                }
                None => false,
            },
        }
    }

    // ---- failed logins ------------------------------------------------------

    pub fn failed_logins(&self, user: &str) -> u32 {
        self.failed_logins.get(&fold(user)).copied().unwrap_or(0)
    }

    /// Counts a failed login of a known user; returns the new count.
    pub fn count_failed_login(&mut self, user: &str) -> u32 {
        let key = fold(user);
        if !self.users.contains_key(&key) {
            return 0;
        }
        let n = self.failed_logins.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    pub fn reset_failed_logins(&mut self, user: &str) {
        self.failed_logins.remove(&fold(user));
    }

    /// The user must answer a CAPTCHA before any login of theirs is accepted.
    pub fn captcha_required(&self, user: &str) -> bool {
        self.captcha_after
            .is_some_and(|limit| self.failed_logins(user) >= limit)
    }

    pub fn note_auth(&mut self, user: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_auth.insert(fold(user), now);
    }

    pub fn last_auth(&self, user: &str) -> Option<u64> {
        self.last_auth.get(&fold(user)).copied()
    }

    pub fn next_request_id(&mut self) -> u64 {
        self.requests
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> SimUser {
        SimUser {
            name: name.into(),
            password: "pw".into(),
            active: true,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            admin: false,
        }
    }

    fn state() -> State {
        State::new(SimConfig {
            product: Product::Jira,
            users: vec![user("Alice", &["lic"]), user("bob", &["other"])],
            groups: vec!["other".into()],
            licensed_groups: vec!["Lic".into()],
            seats: 1,
            application: "jira-software".into(),
            tokens: vec![],
            crowd_apps: vec![],
            login_style: LoginStyle::Form,
            two_step: vec![],
            basic_auth_blocked: false,
            service_management: None,
        })
    }

    #[test]
    fn access_needs_a_licensed_group_and_an_active_user() {
        let mut st = state();
        assert!(st.has_access("ALICE"));
        assert!(!st.has_access("bob"));
        st.set_active("alice", false);
        assert!(!st.has_access("alice"));
        assert_eq!(st.user_count(), 0);
    }

    #[test]
    fn the_service_role_is_a_second_tier_and_either_role_gives_access() {
        let mut st = state();
        assert!(!st.service_enabled());
        assert_eq!(st.role_of_key(crate::SERVICE_DESK_ROLE), None);
        st.force_member("bob", "agents", true);
        assert!(
            !st.has_access("bob"),
            "no role while the service role is off"
        );
        st.set_service(Some(2), &["SD-Users".into(), "agents".into()]);
        assert_eq!(st.role_of_key("jira-servicedesk"), Some(Role::Service));
        assert_eq!(st.role_of_key("jira-software"), Some(Role::Software));
        assert_eq!(st.service_seats(), Some(2));
        assert_eq!(st.role_groups(Role::Service), vec!["SD-Users", "agents"]);
        assert!(st.has_access("bob") && st.has_role("bob", Role::Service));
        assert!(!st.has_role("bob", Role::Software));
        assert!(!st.has_role("alice", Role::Service) && st.has_role("alice", Role::Software));
        st.force_member("alice", "sd-users", true);
        assert_eq!(st.role_user_count(Role::Service), 2);
        assert_eq!(st.role_user_count(Role::Software), 1, "alice holds both");
        st.force_member("alice", "sd-users", false);
        assert_eq!(st.role_user_count(Role::Service), 1);
        assert_eq!(st.peak_role_count(Role::Service), 2);
        // A new tier keeps the groups; new groups replace them.
        st.set_service(Some(3), &[]);
        assert_eq!(st.role_groups(Role::Service), vec!["SD-Users", "agents"]);
        assert!(st.set_role_groups(Role::Service, &["SD-Users".into()]));
        assert!(!st.has_access("bob"));
        st.refuse(Role::Service);
        assert_eq!(
            (st.refusals(Role::Software), st.refusals(Role::Service)),
            (0, 1)
        );
        st.set_service(None, &[]);
        assert!(!st.set_role_groups(Role::Service, &["x".into()]));
        assert_eq!(st.role_user_count(Role::Service), 0);
    }

    #[test]
    fn rest_writes_check_group_user_read_only_then_membership() {
        let mut st = state();
        assert_eq!(st.rest_write(true, "bob", "nope"), Write::NoGroup);
        assert_eq!(st.rest_write(true, "carol", "lic"), Write::NoUser);
        st.read_only = true;
        assert_eq!(st.rest_write(true, "bob", "lic"), Write::ReadOnly);
        st.read_only = false;
        assert_eq!(st.rest_write(true, "BOB", "LIC"), Write::Done);
        assert_eq!(st.rest_write(true, "bob", "lic"), Write::Already);
        assert_eq!(st.user_count(), 2);
        assert_eq!(st.peak_licensed(), 2);
        assert_eq!(st.rest_write(false, "bob", "lic"), Write::Done);
        assert_eq!(st.rest_write(false, "bob", "lic"), Write::NotMember);
        assert_eq!(st.peak_members("lic"), 2);
        assert_eq!(
            st.writes(),
            vec![
                ("add".into(), "bob".into(), "Lic".into()),
                ("remove".into(), "bob".into(), "Lic".into())
            ]
        );
    }

    #[test]
    fn sessions_and_remember_me_name_their_user() {
        let mut st = state();
        let sid = st.new_session("Alice");
        assert_eq!(st.session_user(&sid).as_deref(), Some("alice"));
        assert!(st.end_session(&sid));
        assert_eq!(st.session_user(&sid), None);
        let token = st.new_remember("alice");
        assert!(token.starts_with(&format!("{}%3A", st.user("alice").unwrap().id)));
        assert_eq!(st.remember_user(&token).as_deref(), Some("alice"));
        st.forget_remember(&token);
        assert_eq!(st.remember_user(&token), None);
    }

    #[test]
    fn half_sessions_last_five_minutes_of_the_simulator_clock() {
        let mut st = state();
        let sid = st.new_half_session("Alice", true, "/x");
        assert_eq!(
            st.session_user(&sid),
            None,
            "a half session is not logged in"
        );
        st.advance_clock(HALF_SESSION_LIFETIME - Duration::from_secs(1));
        let h = st.half_session(&sid).unwrap();
        assert_eq!(
            (h.user.as_str(), h.remember, h.target.as_str()),
            ("alice", true, "/x")
        );
        st.advance_clock(Duration::from_secs(1));
        assert!(st.half_session(&sid).is_none());
        assert!(!st.end_half_session(&sid), "an expired one is gone");
    }

    #[test]
    fn codes_check_per_kind_and_recovery_codes_are_used_up() {
        let mut st = state();
        assert!(
            !st.check_code("alice", CodeKind::Totp, "123456"),
            "not enrolled"
        );
        st.enrol_two_step("Alice", "123456", &["r1"]);
        assert!(st.two_step_enrolled("ALICE"));
        assert!(!st.check_code("alice", CodeKind::Totp, ""));
        assert!(!st.check_code("alice", CodeKind::Recovery, "123456"));
        assert!(st.check_code("alice", CodeKind::Totp, "123456"));
        assert!(
            st.check_code("alice", CodeKind::Totp, "123456"),
            "TOTP is not used up"
        );
        assert!(st.check_code("alice", CodeKind::Recovery, "r1"));
        assert!(!st.check_code("alice", CodeKind::Recovery, "r1"));
        assert!(st.set_totp_code("alice", "654321"));
        assert!(!st.check_code("alice", CodeKind::Totp, "123456"));
        assert!(!st.set_totp_code("bob", "1"));
        st.unenrol_two_step("alice");
        assert!(!st.two_step_enrolled("alice"));
    }

    #[test]
    fn failed_logins_count_for_known_users_up_to_the_captcha() {
        let mut st = state();
        assert_eq!(st.count_failed_login("nobody"), 0);
        for n in 1..=CAPTCHA_AFTER {
            assert!(!st.captcha_required("alice"));
            assert_eq!(st.count_failed_login("Alice"), n);
        }
        assert!(st.captcha_required("alice"));
        st.captcha_after = None;
        assert!(!st.captcha_required("alice"));
        st.captcha_after = Some(CAPTCHA_AFTER);
        st.reset_failed_logins("alice");
        assert_eq!(st.failed_logins("alice"), 0);
    }
}
