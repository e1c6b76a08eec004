//! The gate as the proxy's request hooks: identify → decide → (forward) →
//! learn from the upstream's answer.

use super::pools::Needed;
use super::sso;
use super::two_step::SecondStep;
use super::waiting::resume::PendingLogin;
use super::waiting::WaitFor;
use super::{Borrow, Class, Gate, Outcome, Standing};
use crate::access_log::{Note, Verdict};
use crate::identity::{self, Kind, LoginReason, Peeked, SessionKey, UpstreamUser};
use crate::pages::{local_path, Own};
use crate::pool::{Mode, ReleaseReason};
use crate::proxy::{ConnInfo, Decision, Hooks, Learned};
use crate::user::UserId;
use crate::wire::body::Body;
use crate::wire::{wants_html, HeaderView};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use std::sync::atomic::Ordering;

/// How much of a login answer is read to find Jira's "no permission" text.
const LOGIN_PAGE_PEEK: usize = 256 * 1024;

/// A session memo still good: the user's class, and their seat if they hold one.
type Remembered = (Class, Option<std::sync::Arc<crate::pool::Seat>>);

/// What `on_request` learned, for `on_response`.
#[derive(Debug, Default)]
pub struct Ctx {
    /// Known before forwarding (session, remember-me, token, Basic, login).
    user: Option<UserId>,
    /// How `user` is known (what it may cost anyone: [`Standing::rights`]).
    standing: Option<Standing>,
    /// The request's session cookies, hashed.
    keys: Vec<(Kind, SessionKey)>,
    /// Which of `keys` named `user` (its binding is fresh already).
    named_by: Option<usize>,
    /// When the request came.
    now: u64,
    /// The bearer token's hash, to bind to the user the upstream names.
    bearer: Option<SessionKey>,
    /// The bearer token named `user` (its binding is fresh already).
    bearer_named: bool,
    login: Option<LoginCtx>,
    /// A free seat lent to an unconfirmed claim (a Basic name) for this
    /// exchange: given back unless the answer names that user, and on every
    /// path that drops the context unanswered.
    borrow: Option<Borrow>,
    /// An unconfirmed claim's request that counts as activity: recorded only
    /// once the answer names that user.
    touch_on_confirm: bool,
    logout: bool,
    /// What the decision still needs once the head was read.
    pending: Option<Pending>,
    /// A two-step login's code step: the login waiting for it, and the
    /// half-session key it waited under.
    second_step: Option<SessionKey>,
    /// The client reached iumgate over TLS (itself or a trusted proxy):
    /// iumgate's own cookies are `Secure`.
    secure: bool,
    html: bool,
    /// The original path and query (for 307 and the waiting room's `to`).
    target: Target,
    method: Method,
    git: bool,
    /// What the gate did for the request's seat, when it did anything (the
    /// access log's decision; otherwise told from the rest, [`Gate::note`]).
    verdict: Option<Verdict>,
}

impl Ctx {
    /// What the waiting room's answers need of the request.
    fn wait_for(&self) -> WaitFor<'_> {
        WaitFor {
            html: self.html,
            git: self.git,
            get_or_post: matches!(self.method, Method::GET | Method::POST | Method::HEAD),
            redirect_url: false,
            secure: self.secure,
            target: self.target.as_str(),
        }
    }

    /// What every request's context starts with, whichever path it took.
    fn new(s: &super::GateSettings, method: &Method, uri: &http::Uri, html: bool, now: u64) -> Ctx {
        Ctx {
            html,
            target: uri
                .path_and_query()
                .map_or(Target::Root, |p| Target::Request(p.clone())),
            method: method.clone(),
            git: s.profile.is_git(uri.path()),
            now,
            ..Ctx::default()
        }
    }
}

/// Where the request was going. The request's own path and query is kept by
/// sharing its bytes: copying it into a `String` cost an allocation on every
/// request, and only the rare wait/retry answers read it.
#[derive(Debug, Default)]
enum Target {
    #[default]
    Root,
    Request(http::uri::PathAndQuery),
}

impl Target {
    fn as_str(&self) -> &str {
        match self {
            Target::Root => "/",
            Target::Request(p) => p.as_str(),
        }
    }
}

#[derive(Debug)]
struct LoginCtx {
    user: UserId,
    destination: Option<String>,
    json: bool,
    /// The platform login (Jira 10's page): its script follows a JSON
    /// `redirectUrl`, and 412 means a second step comes.
    platform: bool,
    /// A SAML login: its assertion is good once, so it is never repeated;
    /// a user who must wait or retry goes through SSO again.
    sso: bool,
    /// A seat taken before forwarding for a verified SAML login (not lent):
    /// released if the app does not log the user in.
    admitted: bool,
    class: Class,
    /// Whose seat the login takes (`[pools.*]`: the pool its destination
    /// needs, or the only pool the user is casual in; else the default).
    pool: Needed,
    /// A free seat lent before forwarding (given back unless the login
    /// succeeds, on every path).
    borrow: Option<Borrow>,
    /// The whole form, kept to repeat the login once a seat is free, and
    /// the browser it came from (its `User-Agent`, hashed): only that
    /// browser may have it repeated.
    replay: Option<(Option<HeaderValue>, Vec<u8>, SessionKey)>,
    /// The login as sent, kept while a seat is lent for it when
    /// `[identity] authorisation_retries` is on: repeated if the app's
    /// other nodes have not seen the grant yet.
    lag: Option<LagReplay>,
}

/// A login to repeat after the app's cache lag (see `Gate::replay_after_lag`).
#[derive(Debug)]
struct LagReplay {
    target: String,
    headers: Vec<(http::HeaderName, HeaderValue)>,
    body: Vec<u8>,
}

/// The request fields a repeated login carries.
const LAG_REPLAY_FIELDS: [http::HeaderName; 8] = [
    header::CONTENT_TYPE,
    header::COOKIE,
    header::HOST,
    header::USER_AGENT,
    header::ACCEPT,
    header::ACCEPT_LANGUAGE,
    header::ORIGIN,
    header::REFERER,
];

/// What a decision still needs after the head ([`Hooks::on_request`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// A session iumgate does not know, on an app that may not name the
    /// user in a header: ask the app who owns it, then decide as usual.
    Whoami,
    /// A login: who logs in is in its body.
    Login,
    /// A user iumgate has not seen in any group: the directory must say.
    Lookup,
    /// A casual user without a seat; `activity`: the request is real work.
    Admit { activity: bool },
    /// A request that needs the seat of pool `pool` (`[pools.*]`), for a
    /// user that pool's gate has not seen in its groups.
    PoolLookup { pool: usize },
    /// A user casual in pool `pool` without a seat there.
    PoolAdmit { pool: usize, activity: bool },
    /// An anonymous browser at the app's OIDC start page: iumgate's own
    /// sign-in first.
    OidcStart,
    /// A session this replica does not know, in a cluster: another replica
    /// may have bound it (Redis says).
    SharedLookup,
}

impl Hooks for Gate {
    type Ctx = Ctx;

    /// Identify (session cookies, then `Authorization`), then decide what
    /// the head allows: forward a known user who may pass as they are, an
    /// anonymous request or a logout; continue for a login, an unknown
    /// session or user, or a casual user without a seat.
    fn decide(
        &self,
        conn: &ConnInfo,
        method: &Method,
        uri: &http::Uri,
        headers: &impl HeaderView,
    ) -> Decision<Ctx> {
        let s = self.settings.load();
        let mut ctx = Ctx::new(&s, method, uri, wants_html(headers), self.now());
        // iumgate's own cookies are `Secure` when the client came over TLS,
        // to iumgate or to a trusted proxy in front of it.
        ctx.secure = super::oidc::client_secure(conn.tls, conn.trusted, headers);
        let epoch = self.epoch();
        let remembered = self.identify(
            identity::session_cookies(s.profile, headers),
            headers.value(&header::AUTHORIZATION),
            &mut ctx,
            epoch,
        );
        // Apps that may not name the user in a header: ask who owns an
        // unknown session before forwarding, so the seat comes first.
        let path = uri.path();
        let pending =
            if ctx.user.is_none() && self.oidc_intercepts(&s, method, path, headers, ctx.now) {
                // An anonymous browser at the app's OIDC start: iumgate signs
                // it in first (`gate::oidc`).
                Some(Pending::OidcStart)
            } else if ctx.user.is_none() && self.may_share_lookup(&ctx.keys, ctx.now) {
                // A session another replica of the cluster bound: ask
                // Redis before anything else (`gate::cluster`).
                Some(Pending::SharedLookup)
            } else if ctx.user.is_none()
                && !ctx.keys.is_empty()
                && s.profile.whoami.is_some_and(|w| w != path)
            {
                Some(Pending::Whoami)
            } else {
                self.decide_known(&s, &mut ctx, method, path, remembered, epoch)
            };
        match pending {
            None => Decision::Forward(ctx),
            Some(p) => {
                ctx.pending = Some(p);
                Decision::Continue(ctx)
            }
        }
    }

    async fn on_request(
        &self,
        _conn: &ConnInfo,
        mut ctx: Ctx,
        req: Request<Body>,
    ) -> Result<(Request<Body>, Ctx), Response<Body>> {
        let s = self.settings.load();
        let (parts, body) = req.into_parts();
        let mut pending = ctx.pending.take();
        if pending == Some(Pending::SharedLookup) {
            if let Some((user, at)) = self.shared_lookup(&ctx.keys).await {
                ctx.user = Some(user);
                ctx.standing = Some(Standing::Session);
                ctx.named_by = Some(at);
                let path = parts.uri.path();
                pending = self.decide_known(&s, &mut ctx, &parts.method, path, None, self.epoch());
            } else if s.profile.whoami.is_some_and(|w| w != parts.uri.path()) {
                pending = Some(Pending::Whoami);
            } else {
                let path = parts.uri.path();
                pending = self.decide_known(&s, &mut ctx, &parts.method, path, None, self.epoch());
            }
        }
        if pending == Some(Pending::Whoami) {
            if let (Some(whoami), Some(cookie)) =
                (s.profile.whoami, parts.headers.get(header::COOKIE))
            {
                ctx.user = self.whoami(whoami, cookie, &ctx.keys).await;
                ctx.standing = ctx.user.as_ref().map(|_| Standing::Proven);
            }
            let path = parts.uri.path();
            pending = self.decide_known(&s, &mut ctx, &parts.method, path, None, self.epoch());
        }
        let activity = match (pending, ctx.user.clone()) {
            (Some(Pending::Login), _) => return self.on_login(&s, ctx, parts, body).await,
            (Some(Pending::OidcStart), _) => {
                let target = ctx.target.as_str();
                return Err(self.oidc_start(&s, target, ctx.secure, &parts.headers, &parts.uri));
            }
            (Some(Pending::Lookup), Some(user)) => {
                let class = self.class_or_lookup(&user).await;
                let asked = Asked {
                    user: &user,
                    method: parts.method.as_str(),
                    path: parts.uri.path(),
                    now: ctx.now,
                    may_touch: ctx.standing.is_some_and(|st| st.rights().refresh_activity),
                };
                match self.check_class(&s, &asked, class, SeatKnown::Ask) {
                    Check::Pass { activity } => {
                        self.passes(&mut ctx, &user, activity);
                        None
                    }
                    Check::Admit { activity } => Some((user, activity)),
                }
            }
            (Some(Pending::Admit { activity }), Some(user)) => Some((user, activity)),
            (Some(Pending::PoolLookup { pool }), Some(user)) => {
                let may_touch = ctx.standing.is_some_and(|st| st.rights().refresh_activity);
                let (m, path) = (parts.method.as_str(), parts.uri.path());
                match self
                    .pool_check_or_lookup(pool, &user, m, path, ctx.now, may_touch)
                    .await
                {
                    Check::Pass { .. } => None,
                    Check::Admit { activity } => {
                        self.admit_known(&mut ctx, Some(pool), &user, activity, &parts.headers)
                            .await?;
                        None
                    }
                }
            }
            (Some(Pending::PoolAdmit { pool, activity }), Some(user)) => {
                self.admit_known(&mut ctx, Some(pool), &user, activity, &parts.headers)
                    .await?;
                None
            }
            _ => None,
        };
        if let Some((user, activity)) = activity {
            self.admit_known(&mut ctx, None, &user, activity, &parts.headers)
                .await?;
        }
        Ok((Request::from_parts(parts, body), ctx))
    }

    /// The common answer names the user the request was taken for (or
    /// another, or nobody) and sets no cookie: the request's keys are bound
    /// to whoever it names, and it goes out as it came. Logins, logouts, a
    /// lent seat, any `Set-Cookie`, and a user first learned from the
    /// answer need the whole answer.
    fn learn(&self, ctx: Ctx, _status: StatusCode, headers: &impl HeaderView) -> Learned<Ctx> {
        if ctx.logout
            || ctx.login.is_some()
            || ctx.second_step.is_some()
            || ctx.borrow.is_some()
            || ctx.user.is_none()
            || headers.has(&header::SET_COOKIE)
        {
            return Learned::Edit(ctx);
        }
        if let Some(UpstreamUser::User(u)) = identity::upstream_user(headers, ctx.user.as_ref()) {
            self.bind_request_keys(&ctx, &u, ctx.now);
        }
        Learned::Done
    }

    async fn on_response(&self, mut ctx: Ctx, resp: Response<Body>) -> Response<Body> {
        let s = self.settings.load();
        let now = self.now();
        let upstream = identity::upstream_user(resp.headers(), ctx.user.as_ref());

        // Learn: bind the request's and the response's session cookies to the
        // user the upstream names (its response headers are trusted).
        if let Some(UpstreamUser::User(u)) = &upstream {
            self.bind_request_keys(&ctx, u, now);
        }
        // Whether the answer ends a session of the request: it deletes one
        // of the request's session cookies (or sets a new one in its place).
        let mut session_replaced = false;
        for (kind, value) in identity::set_session_cookies(s.profile, resp.headers()) {
            if ctx.keys.iter().any(|(k, _)| *k == kind) {
                session_replaced = true;
            }
            match (value, &upstream) {
                (Some(v), Some(UpstreamUser::User(u))) => self.sessions.bind(kind, v, u, now),
                (None, _) => {
                    for (k, key) in &ctx.keys {
                        if *k == kind {
                            self.sessions.forget_key(key);
                        }
                    }
                }
                _ => {}
            }
        }

        if ctx.logout {
            self.finish_logout(&s, &ctx, resp.status(), &upstream, session_replaced)
                .await;
            return resp;
        }

        if let Some(login) = ctx.login.take() {
            return self.finish_login(&ctx, login, resp, upstream).await;
        }

        if let Some(key) = ctx.second_step.take() {
            return self.finish_second_step(key, resp, &upstream).await;
        }

        if let Some(lent) = ctx.borrow.take() {
            // (A confirmed seat was kept by `bind_request_keys` above.)
            if matches!(&upstream, Some(UpstreamUser::User(u)) if lent.user() == Some(u)) {
                lent.confirm();
            } else {
                // The password was wrong: give the seat back.
                self.counters.login_failed.fetch_add(1, Ordering::Relaxed);
                lent.give_back().await;
            }
            return resp;
        }

        // A user first learned from the response (SSO callback, token,
        // remember-me unknown to us): the app proved them, so they are
        // admitted now and the client retries.
        if ctx.user.is_none() {
            if let Some(UpstreamUser::User(u)) = &upstream {
                let path = ctx.target.as_str();
                let path = path.split_once('?').map_or(path, |(p, _)| p);
                let needed = self.needed(ctx.method.as_str(), path);
                if self.needs_seat_for(needed, u).await {
                    return match self.admit_for(needed, u, Standing::Proven.mode()).await {
                        Outcome::Pass => {
                            let verdict = self.seat_verdict_for(needed, u, ctx.now);
                            let mut r = retry_response(ctx.target.as_str(), resp.headers());
                            r.extensions_mut()
                                .insert(Note::new(Some(u.clone()), verdict));
                            r
                        }
                        Outcome::Wait { position } => self.wait_response(
                            &ctx.wait_for(),
                            u,
                            position,
                            None,
                            Some(resp.headers()),
                        ),
                        Outcome::NoFreeSeat => resp,
                        Outcome::Unavailable => {
                            self.unavailable_response(&ctx.wait_for(), &HeaderMap::new())
                        }
                    };
                }
            }
        }
        resp
    }

    /// The request's user as far as the gate knows it before forwarding (a
    /// login's: the name it logs in with), and what it did for their seat.
    fn note(&self, ctx: &Ctx) -> Note {
        if let Some(login) = &ctx.login {
            let lent = login.borrow.is_some() || login.admitted;
            let verdict = ctx.verdict.unwrap_or(if lent {
                Verdict::Admitted
            } else {
                Verdict::Pass
            });
            return Note::new(Some(login.user.clone()), verdict);
        }
        let verdict = ctx.verdict.unwrap_or(if ctx.user.is_some() {
            Verdict::Pass
        } else {
            Verdict::Anonymous
        });
        Note::new(ctx.user.clone(), verdict)
    }

    async fn own_page(&self, conn: &ConnInfo, req: Request<Body>) -> Response<Body> {
        if req.uri().path() == crate::config::OidcConfig::CALLBACK_PATH {
            let secure = super::oidc::client_secure(conn.tls, conn.trusted, req.headers());
            return self.oidc_callback(secure, req).await;
        }
        self.waitroom(req).await
    }

    fn error_page(
        &self,
        status: StatusCode,
        request: &impl HeaderView,
        message: &str,
    ) -> Response<Body> {
        crate::pages::error(status, request, message)
    }
}

/// A known user's request, as the seat check reads it.
struct Asked<'a> {
    user: &'a UserId,
    method: &'a str,
    path: &'a str,
    now: u64,
    /// The identity may refresh the holder's idle clock ([`Standing`]).
    may_touch: bool,
}

/// What is known of a user's seat before the check.
enum SeatKnown {
    /// The session's memo: this seat.
    Held(std::sync::Arc<crate::pool::Seat>),
    /// The session's memo: none.
    NotHeld,
    /// Nothing remembered: ask the seat map.
    Ask,
}

/// What a known user's request needs, as far as the gate can tell without
/// waiting.
pub(super) enum Check {
    /// Unmanaged, power user, or a casual holder (activity recorded when
    /// the identity may refresh it); `activity`: the request is real work.
    Pass { activity: bool },
    /// A casual user without a seat; `activity`: the request is real work.
    Admit { activity: bool },
}

impl Gate {
    /// Identifies the request, the same way on both lanes: its session
    /// cookies first (the first one bound names `ctx.user`; each is hashed
    /// into `ctx.keys`), then its `Authorization`: a Basic name (a claim) or
    /// a bearer token the app named a user for. Returns the naming key and
    /// its memo, if still good at `epoch`.
    fn identify<'a>(
        &self,
        cookies: impl Iterator<Item = (Kind, &'a str)>,
        authorization: Option<&[u8]>,
        ctx: &mut Ctx,
        epoch: u64,
    ) -> Option<(SessionKey, Option<Remembered>)> {
        let mut remembered = None;
        for (kind, value) in cookies {
            let key = self.sessions.hash(kind, value);
            if ctx.user.is_none() {
                let found = self.sessions.lookup_memo(&key, ctx.now, |m| m.at(epoch));
                if let Some((user, memo)) = found {
                    ctx.user = Some(user);
                    ctx.standing = Some(Standing::Session);
                    ctx.named_by = Some(ctx.keys.len());
                    remembered = Some((key, memo));
                }
            }
            ctx.keys.push((kind, key));
        }
        if ctx.user.is_some() {
            return remembered;
        }
        match identity::credentials_of(authorization?)? {
            identity::Credentials::Basic(u) => {
                // A name, not a proof: the app has not checked the password.
                ctx.user = Some(u);
                ctx.standing = Some(Standing::Unconfirmed);
            }
            identity::Credentials::Bearer(t) => {
                let key = self.sessions.hash(Kind::Token, t);
                ctx.bearer = Some(key);
                // Bound only after the app named the token's user.
                let (user, memo) = self.sessions.lookup_memo(&key, ctx.now, |m| m.at(epoch))?;
                ctx.user = Some(user);
                ctx.bearer_named = true;
                ctx.standing = Some(Standing::Session);
                remembered = Some((key, memo));
            }
        }
        remembered
    }

    /// The decision once it is known who asks (or that nobody is): a
    /// logout is forwarded (decided on its answer), a login needs its body,
    /// a known user passes as they are, or needs a directory lookup or a
    /// seat. `None`: forward now.
    fn decide_known(
        &self,
        s: &super::GateSettings,
        ctx: &mut Ctx,
        method: &Method,
        path: &str,
        remembered: Option<(SessionKey, Option<Remembered>)>,
        epoch: u64,
    ) -> Option<Pending> {
        if s.profile.is_logout(method, path) {
            // Decided on the answer: only a session's user, and only once
            // the answer shows the session ended.
            ctx.logout = true;
            return None;
        }
        if identity::is_login(s.profile, method, path) {
            return Some(Pending::Login);
        }
        if method == Method::POST && s.profile.is_second_step(path) {
            // The code step of a login whose password step passed: its
            // answer says whether the seat kept for it stays.
            let keys = ctx.keys.iter().map(|(_, k)| *k);
            ctx.second_step = self.second_steps.find(keys, ctx.now);
        }
        let user = ctx.user.clone()?;
        let may_touch = ctx.standing.is_some_and(|st| st.rights().refresh_activity);
        match self.needed(method.as_str(), path) {
            Needed::Default => {}
            Needed::Nobody => return None,
            Needed::Pool(pool) => {
                let m = method.as_str();
                return match self.check_in_pool(pool, &user, m, path, ctx.now, may_touch) {
                    None => Some(Pending::PoolLookup { pool }),
                    Some(Check::Pass { .. }) => None,
                    Some(Check::Admit { activity }) => Some(Pending::PoolAdmit { pool, activity }),
                };
            }
        }
        let asked = Asked {
            user: &user,
            method: method.as_str(),
            path,
            now: ctx.now,
            may_touch,
        };
        match self.check_known(s, &asked, remembered, epoch) {
            None => Some(Pending::Lookup),
            Some(Check::Pass { activity }) => {
                self.passes(ctx, &user, activity);
                None
            }
            Some(Check::Admit { activity }) => Some(Pending::Admit { activity }),
        }
    }

    /// A casual user without a seat — in the default pool, or in the pool
    /// `pool` the request needs. An unconfirmed claim borrows a free seat of
    /// the default pool for this exchange at most (no eviction, no queue, no
    /// wait cookie), and no seat of another pool; a confirmed user is
    /// admitted, taking an idle colleague's seat only for real work. `Err`:
    /// the answer instead of forwarding.
    async fn admit_known(
        &self,
        ctx: &mut Ctx,
        pool: Option<usize>,
        user: &UserId,
        activity: bool,
        req_headers: &HeaderMap,
    ) -> Result<(), Response<Body>> {
        let standing = ctx.standing.unwrap_or(Standing::Unconfirmed);
        if !standing.rights().evict && pool.is_some() {
            ctx.html = false;
            return Err(self.wait_response(&ctx.wait_for(), user, 0, None, None));
        }
        if !standing.rights().evict {
            // Without a free seat, an API client hears "retry later" and
            // nothing changed.
            return match self.borrow(user).await {
                (Outcome::Pass, lent) => {
                    if lent.is_some() {
                        ctx.verdict = Some(Verdict::Admitted);
                    }
                    ctx.borrow = lent;
                    ctx.touch_on_confirm = activity;
                    Ok(())
                }
                (Outcome::Unavailable, _) => {
                    Err(self.unavailable_response(&ctx.wait_for(), req_headers))
                }
                (Outcome::NoFreeSeat | Outcome::Wait { .. }, _) => {
                    ctx.html = false;
                    Err(self.wait_response(&ctx.wait_for(), user, 0, None, None))
                }
            };
        }
        // A seat may be taken from an idle colleague only for real work: a
        // page the user opens, or an activity request. Background traffic
        // (an open tab's polling) takes a free seat at most, and otherwise
        // passes unlicensed, as the app answers it anyway.
        let background = !activity && !ctx.html;
        let mode = if background {
            Mode::FreeOnly
        } else {
            Mode::MayEvict
        };
        let needed = pool.map_or(Needed::Default, Needed::Pool);
        match self.admit_for(needed, user, mode).await {
            Outcome::Pass => ctx.verdict = Some(self.seat_verdict_for(needed, user, ctx.now)),
            Outcome::NoFreeSeat if background => {}
            Outcome::Wait { position } => {
                return Err(self.wait_response(&ctx.wait_for(), user, position, None, None));
            }
            Outcome::NoFreeSeat => {
                return Err(self.wait_response(&ctx.wait_for(), user, 0, None, None))
            }
            Outcome::Unavailable => {
                return Err(self.unavailable_response(&ctx.wait_for(), req_headers))
            }
        }
        if activity {
            self.touch_for(needed, user, ctx.now);
        }
        Ok(())
    }

    /// A known user's request passes as it is. A confirmed holder: a seat
    /// lent to a claim in their name meanwhile is theirs for good. An
    /// unconfirmed one: their activity counts once the answer names them.
    fn passes(&self, ctx: &mut Ctx, user: &UserId, activity: bool) {
        if ctx.standing.is_some_and(|st| st.rights().evict) {
            self.confirm_seat(user);
        } else {
            ctx.touch_on_confirm = activity;
        }
    }

    /// [`Check`] for a known user, from the session's memo when it is good,
    /// else from the class and seat maps (and the memo is made anew). `None`:
    /// iumgate has not seen the user in any group (the directory must say).
    fn check_known(
        &self,
        s: &super::GateSettings,
        asked: &Asked<'_>,
        remembered: Option<(SessionKey, Option<Remembered>)>,
        epoch: u64,
    ) -> Option<Check> {
        let (class, seat) = match remembered {
            Some((_, Some((class, Some(seat))))) => (class, SeatKnown::Held(seat)),
            Some((_, Some((class, None)))) => (class, SeatKnown::NotHeld),
            stale => {
                let class = self.class_of(asked.user)?;
                if let Some((key, _)) = stale {
                    if self.epoch() == epoch {
                        self.sessions.set_memo(
                            &key,
                            asked.user,
                            self.memo(asked.user, epoch, class),
                        );
                    }
                }
                (class, SeatKnown::Ask)
            }
        };
        Some(self.check_class(s, asked, class, seat))
    }

    /// [`Check`] for a user of `class`, with what is known of their seat.
    fn check_class(
        &self,
        s: &super::GateSettings,
        asked: &Asked<'_>,
        class: Class,
        seat: SeatKnown,
    ) -> Check {
        if class != Class::Casual {
            return Check::Pass { activity: false };
        }
        let activity = s.activity.is_activity(asked.method, asked.path);
        let touch = activity && asked.may_touch;
        let holds = match seat {
            SeatKnown::Held(seat) => {
                if touch {
                    seat.touch(asked.now);
                }
                true
            }
            SeatKnown::NotHeld => false,
            SeatKnown::Ask => self.holds_touching(asked.user, touch, asked.now),
        };
        if holds {
            Check::Pass { activity }
        } else {
            Check::Admit { activity }
        }
    }

    /// What the app naming `user` in its answer teaches, on both lanes: the
    /// request's session cookies and token are bound to them (the cookie
    /// that named them already is), and when they are the request's user,
    /// their seat is confirmed and a deferred activity recorded.
    fn bind_request_keys(&self, ctx: &Ctx, user: &UserId, now: u64) {
        if ctx.user.as_ref() == Some(user) {
            // The app named the request's user: a seat lent to a claim in
            // their name (by this request or a concurrent one) stays, and
            // an unconfirmed claim's activity counts now.
            self.confirm_seat(user);
            if ctx.touch_on_confirm {
                self.touch(user, now);
            }
        }
        let fresh = ctx.named_by.filter(|_| ctx.user.as_ref() == Some(user));
        for (i, (kind, key)) in ctx.keys.iter().enumerate() {
            if Some(i) != fresh {
                self.sessions.bind_key(*key, *kind, user, now);
            }
        }
        let fresh = ctx.bearer_named && ctx.user.as_ref() == Some(user);
        if let (Some(key), false) = (ctx.bearer, fresh) {
            self.sessions.bind_key(key, Kind::Token, user, now);
        }
    }

    /// A logout's answer. The request's session cookies are forgotten and
    /// its user's seat released only when the user is a session's (never a
    /// Basic name, a token's or a login field's) and the answer shows that
    /// session ended: not refused (401/403), and the app deleted or replaced
    /// the session cookie or names nobody any more. A cross-site link to the
    /// logout page that the app answers with its confirmation page (still
    /// naming the user) frees nothing.
    async fn finish_logout(
        &self,
        s: &super::GateSettings,
        ctx: &Ctx,
        status: StatusCode,
        upstream: &Option<UpstreamUser>,
        session_replaced: bool,
    ) {
        let refused = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
        let ended =
            !refused && (session_replaced || matches!(upstream, Some(UpstreamUser::Anonymous)));
        if !ended {
            return;
        }
        for (_, key) in &ctx.keys {
            self.sessions.forget_key(key);
        }
        let by_session =
            ctx.named_by.is_some() && ctx.standing.is_some_and(|st| st.rights().release_on_logout);
        if let (Some(user), true) = (&ctx.user, by_session) {
            if s.release_on_logout && self.holds(user) {
                self.release(user, ReleaseReason::Logout).await;
            }
            // The seats of every other pool go with the session too.
            for p in self.pools() {
                if s.release_on_logout && p.gate.holds(user) {
                    p.gate.release(user, ReleaseReason::Logout).await;
                }
            }
        }
    }

    /// A login request: read who it logs in as the app will (the whole
    /// body, within the header time-out), and lend that claim a free seat
    /// for the exchange at most.
    async fn on_login(
        &self,
        s: &super::GateSettings,
        mut ctx: Ctx,
        parts: http::request::Parts,
        body: Body,
    ) -> Result<(Request<Body>, Ctx), Response<Body>> {
        let sso = parts.uri.path() == s.profile.saml_consumer;
        let limit = if sso {
            // A SAML response (base64, often with the IdP's certificate
            // inside, and percent-encoded in the form: up to three times
            // longer) is larger than a login form.
            s.login_body_limit
                .max(s.saml_max_response.saturating_mul(3).saturating_add(4096))
        } else {
            s.login_body_limit
        };
        let peek = identity::peek_body_status(body, limit);
        let Ok((prefix, body, peeked)) = tokio::time::timeout(s.login_read_timeout, peek).await
        else {
            tracing::debug!("a login body did not arrive in time");
            return Err(crate::pages::error(
                StatusCode::REQUEST_TIMEOUT,
                &parts.headers,
                "the request body did not arrive in time",
            ));
        };
        // Only a body read to its end is read as the app reads it: a cut or
        // reset one logs nobody in, an over-long one the app may not read.
        let whole = peeked == Peeked::Whole;
        let ct = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if sso {
            let claim = whole
                .then(|| self.saml_claim(s, parts.uri.query(), ct, &prefix))
                .flatten();
            if let Some(claim) = claim {
                return self.on_saml_login(s, ctx, claim, parts, body).await;
            }
            return Ok((Request::from_parts(parts, body), ctx));
        }
        let attempt = whole
            .then(|| {
                identity::login_attempt(s.profile, parts.uri.path(), parts.uri.query(), ct, &prefix)
            })
            .flatten();
        if let Some(attempt) = attempt {
            let pool = self
                .login_pool(&attempt.user, attempt.destination.as_deref())
                .await;
            let lg = self.gate_for(pool);
            let class = match lg {
                Some(g) => g.class_or_lookup(&attempt.user).await,
                None => Class::Unmanaged,
            };
            let mut borrow = None;
            if let (Class::Casual, Some(lg)) = (class, lg) {
                // Only a free seat before the password is checked, lent for
                // this exchange: a wrong password must never cost a
                // colleague their seat, nor keep one.
                match lg.borrow(&attempt.user).await {
                    (Outcome::Pass, lent) => borrow = lent,
                    (Outcome::Unavailable, _) => {
                        return Err(self.unavailable_response(&ctx.wait_for(), &parts.headers));
                    }
                    (Outcome::NoFreeSeat | Outcome::Wait { .. }, _) => {}
                }
            }
            // A browser form can be repeated later if the user has to wait
            // for a seat.
            let replay = (class == Class::Casual && borrow.is_none() && !attempt.json).then(|| {
                (
                    parts.headers.get(header::CONTENT_TYPE).cloned(),
                    prefix.to_vec(),
                    self.agent_key(&parts.headers),
                )
            });
            ctx.user = Some(attempt.user.clone());
            ctx.standing = Some(Standing::Unconfirmed);
            // The session's user, if any, is not who logs in now.
            ctx.named_by = None;
            let lag = (borrow.is_some() && s.authorisation_retries > 0).then(|| {
                let mut headers: Vec<(http::HeaderName, HeaderValue)> = LAG_REPLAY_FIELDS
                    .iter()
                    .flat_map(|n| {
                        parts
                            .headers
                            .get_all(n)
                            .iter()
                            .map(|v| (n.clone(), v.clone()))
                    })
                    .collect();
                if let Some(t) = parts.headers.get("x-atlassian-token") {
                    headers.push((
                        http::HeaderName::from_static("x-atlassian-token"),
                        t.clone(),
                    ));
                }
                LagReplay {
                    target: parts
                        .uri
                        .path_and_query()
                        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
                    headers,
                    body: prefix.to_vec(),
                }
            });
            ctx.login = Some(LoginCtx {
                user: attempt.user,
                destination: attempt.destination,
                json: attempt.json,
                platform: s.profile.platform_logins.contains(&parts.uri.path()),
                sso: false,
                admitted: false,
                class,
                pool,
                borrow,
                replay,
                lag,
            });
        }
        Ok((Request::from_parts(parts, body), ctx))
    }

    async fn finish_login(
        &self,
        ctx: &Ctx,
        mut login: LoginCtx,
        resp: Response<Body>,
        upstream: Option<UpstreamUser>,
    ) -> Response<Body> {
        if login.platform && resp.status() == StatusCode::PRECONDITION_FAILED {
            return self.start_second_step(ctx, login, resp).await;
        }
        let mut resp = resp;
        let mut reason = identity::login_reason(resp.headers());
        if reason.is_none()
            && is_html(resp.headers())
            && upstream != Some(UpstreamUser::User(login.user.clone()))
        {
            // No reason header: recognise Jira's page text instead.
            let (parts, body) = resp.into_parts();
            let (prefix, body) = identity::peek_body(body, LOGIN_PAGE_PEEK).await;
            let s = self.settings.load();
            let texts = s.profile.no_permission_texts.iter().copied();
            let extra = s.no_permission_texts.iter().map(String::as_str);
            if texts.chain(extra).any(|t| memchr_str(&prefix, t)) {
                reason = Some(LoginReason::AuthorisationFailed);
            }
            resp = Response::from_parts(parts, body);
        }
        // When the app names whoever it logged in, that must be the user the
        // seat was taken for: a form the app read differently than iumgate
        // did must not leave a colleague holding a seat.
        let named_other = matches!(&upstream, Some(UpstreamUser::User(u)) if *u != login.user);
        let succeeded = !named_other
            && (reason == Some(LoginReason::Ok)
                || (reason.is_none() && upstream == Some(UpstreamUser::User(login.user.clone()))));
        // Apps that do not name the user in a header: the session the login
        // opened must be the claimed user's, asked of the app itself where
        // it can say, before it is bound or the seat kept.
        let succeeded = succeeded
            && (upstream.is_some() || self.login_session_is(&login.user, resp.headers()).await);
        if succeeded {
            if let Some(lent) = login.borrow.take() {
                lent.confirm();
            }
            return resp;
        }
        if login.admitted {
            // A verified SAML login whose seat was taken before the app saw
            // it, and the app did not log the user in: the seat goes back.
            self.counters.login_failed.fetch_add(1, Ordering::Relaxed);
            let lg = self.gate_for(login.pool).unwrap_or(self);
            if lg.holds(&login.user) {
                lg.release(&login.user, ReleaseReason::Rollback).await;
            }
            return resp;
        }
        // A seat lent for this login and the app still refusing the licence:
        // the app did not log in the user the seat was lent to (it read the
        // request differently). A mismatch, never a proven password.
        let mismatch = reason == Some(LoginReason::AuthorisationFailed) && login.borrow.is_some();
        match reason {
            Some(LoginReason::AuthorisationFailed) if login.class == Class::Casual && !mismatch => {
                // The password is right; only the licence is missing. Now a
                // seat may be taken from an idle holder.
                match self
                    .admit_for(login.pool, &login.user, Mode::MayEvict)
                    .await
                {
                    // A SAML assertion is good once: through SSO again.
                    Outcome::Pass if login.sso => {
                        let start = self.settings.load().profile.sso_start;
                        Own::redirect(StatusCode::SEE_OTHER, start)
                            .cookies_of(resp.headers())
                            .build()
                    }
                    Outcome::Pass => retry_response(ctx.target.as_str(), resp.headers()),
                    Outcome::Wait { position } => {
                        let dest = login
                            .destination
                            .as_deref()
                            .and_then(local_path)
                            .unwrap_or("/")
                            .to_owned();
                        let profile = self.settings.load().profile;
                        // With the form kept, the waiting room repeats the
                        // login itself once admitted; without it (a JSON
                        // login, a huge form), back to the login page.
                        let pending = login.replay.take().map(|(ct, body, agent)| {
                            let expires = self.now()
                                + self.with_pool(|p| p.config().abandon_after_ms).max(60_000);
                            PendingLogin::new(
                                login.user.clone(),
                                ctx.target.as_str().to_owned(),
                                ct,
                                body,
                                agent,
                                expires,
                            )
                        });
                        let to = if pending.is_some() {
                            dest
                        } else if login.sso {
                            profile.sso_start.to_owned()
                        } else {
                            login_again(profile, &dest)
                        };
                        // Today's login page: a JSON `redirectUrl`, or a 303
                        // its `fetch` follows (`[queue] platform_login_wait`).
                        let by_redirect_url =
                            login.platform && self.settings.load().platform_wait_redirect_url;
                        let wait_for = WaitFor {
                            html: !login.json || (login.platform && !by_redirect_url),
                            git: false,
                            redirect_url: by_redirect_url,
                            get_or_post: true,
                            ..ctx.wait_for()
                        };
                        let wait_for = WaitFor {
                            target: &to,
                            ..wait_for
                        };
                        self.wait_response(
                            &wait_for,
                            &login.user,
                            position,
                            pending,
                            Some(resp.headers()),
                        )
                    }
                    Outcome::NoFreeSeat => resp,
                    Outcome::Unavailable => {
                        self.unavailable_response(&ctx.wait_for(), &HeaderMap::new())
                    }
                }
            }
            _ => {
                // A Data Center cluster whose other nodes have not seen the
                // grant yet: repeat the login a few times, the seat still
                // lent, before calling it a mismatch.
                if mismatch {
                    if let Some(lag) = login.lag.take() {
                        if let Some(r) = self.replay_after_lag(&mut login, lag).await {
                            return r;
                        }
                    }
                }
                // Wrong password, CAPTCHA, a mismatch or no verdict: nobody
                // keeps a seat lent for this attempt.
                self.counters.login_failed.fetch_add(1, Ordering::Relaxed);
                if mismatch {
                    tracing::warn!(user = %login.user, "the app refused the licence to a login that had a seat: it read the login differently; seat given back");
                }
                if let Some(lent) = login.borrow.take() {
                    lent.give_back().await;
                }
                resp
            }
        }
    }

    /// A SAML consumer post whose user iumgate could read. An unverified
    /// claim borrows a free seat for the exchange at most, like a login
    /// form. A verified one counts like a proven password, and since the
    /// app takes an assertion once only, its seat is settled *before* the
    /// app sees it: a free seat, an idle holder's, or the waiting room (and
    /// back through SSO once admitted).
    async fn on_saml_login(
        &self,
        s: &super::GateSettings,
        mut ctx: Ctx,
        claim: sso::SamlClaim,
        parts: http::request::Parts,
        body: Body,
    ) -> Result<(Request<Body>, Ctx), Response<Body>> {
        // Whose seat: with pools, the only pool the user is casual in (an
        // SSO login names no destination iumgate can read).
        let pool = self.login_pool(&claim.user, None).await;
        let lg = self.gate_for(pool).unwrap_or(self);
        let class = lg.class_or_lookup(&claim.user).await;
        let mut borrow = None;
        let mut admitted = false;
        if class == Class::Casual && !lg.holds(&claim.user) {
            if claim.standing.rights().evict {
                match self.admit_for(pool, &claim.user, Mode::MayEvict).await {
                    Outcome::Pass => admitted = true,
                    Outcome::Wait { position } => {
                        let wait_for = WaitFor {
                            html: true,
                            get_or_post: true,
                            target: s.profile.sso_start,
                            ..ctx.wait_for()
                        };
                        return Err(self.wait_response(
                            &wait_for,
                            &claim.user,
                            position,
                            None,
                            None,
                        ));
                    }
                    Outcome::NoFreeSeat => {}
                    Outcome::Unavailable => {
                        return Err(self.unavailable_response(&ctx.wait_for(), &parts.headers));
                    }
                }
            } else {
                match lg.borrow(&claim.user).await {
                    (Outcome::Pass, lent) => borrow = lent,
                    (Outcome::Unavailable, _) => {
                        return Err(self.unavailable_response(&ctx.wait_for(), &parts.headers));
                    }
                    (Outcome::NoFreeSeat | Outcome::Wait { .. }, _) => {}
                }
            }
        }
        ctx.user = Some(claim.user.clone());
        ctx.standing = Some(claim.standing);
        ctx.named_by = None;
        ctx.login = Some(LoginCtx {
            user: claim.user,
            destination: None,
            json: false,
            platform: false,
            sso: true,
            admitted,
            class,
            pool,
            borrow,
            replay: None,
            lag: None,
        });
        Ok((Request::from_parts(parts, body), ctx))
    }

    /// Repeats a login the app refused the licence although a seat was lent
    /// for it — the grant has not reached the app node that answered yet
    /// (Jira Data Center replicates its caches asynchronously). Up to
    /// `[identity] authorisation_retries` times (at most 3), within 2 s,
    /// the seat still lent. The first answer that logs in this very user
    /// goes to the browser and the seat is kept; `None` when every repeat
    /// was refused (the caller gives the seat back).
    async fn replay_after_lag(
        &self,
        login: &mut LoginCtx,
        lag: LagReplay,
    ) -> Option<Response<Body>> {
        const WITHIN: std::time::Duration = std::time::Duration::from_secs(2);
        let s = self.settings.load();
        let client = self.app.http()?;
        let started = std::time::Instant::now();
        for i in 0..s.authorisation_retries.min(3) {
            let wait = std::time::Duration::from_millis(250 * (u64::from(i) + 1));
            let Some(left) = WITHIN.checked_sub(started.elapsed() + wait) else {
                break;
            };
            tokio::time::sleep(wait).await;
            let mut req = client
                .post(format!("{}{}", s.upstream, lag.target))
                .body(lag.body.clone());
            for (n, v) in &lag.headers {
                req = req.header(n.clone(), v.clone());
            }
            let Ok(Ok(answer)) = tokio::time::timeout(left, req.send()).await else {
                break;
            };
            let reason = identity::login_reason(answer.headers());
            let named = identity::upstream_user(answer.headers(), None);
            if reason == Some(LoginReason::Ok)
                && matches!(&named, Some(UpstreamUser::User(u)) if *u == login.user)
            {
                self.counters
                    .login_replays_ok
                    .fetch_add(1, Ordering::Relaxed);
                let now = self.now();
                let up_headers = answer.headers().clone();
                for (kind, value) in identity::set_session_cookies(s.profile, &up_headers) {
                    if let Some(v) = value {
                        self.sessions.bind(kind, v, &login.user, now);
                    }
                }
                if let Some(lent) = login.borrow.take() {
                    lent.confirm();
                }
                tracing::info!(user = %login.user, tries = i + 1, "login repeated after the app's cache lag");
                return Some(super::app_client::pass_on(answer).await);
            }
            if reason != Some(LoginReason::AuthorisationFailed) {
                break;
            }
        }
        self.counters
            .login_replays_refused
            .fetch_add(1, Ordering::Relaxed);
        None
    }

    /// A platform login's password step answered 412: the password is
    /// right and a code step follows. The seat the user will need is put in
    /// place now — a free seat lent for the login is kept for the code step;
    /// without one, the proven password may take an idle holder's seat or
    /// wait — and goes back if the code step does not end in a session
    /// within `second_step_timeout`.
    async fn start_second_step(
        &self,
        ctx: &Ctx,
        mut login: LoginCtx,
        resp: Response<Body>,
    ) -> Response<Body> {
        let s = self.settings.load();
        let now = self.now();
        // The half session the code step will come with: the one the answer
        // sets, else the one the login came with.
        let set = identity::set_session_cookie_pairs(s.profile, resp.headers())
            .find(|(kind, _, _)| *kind == Kind::Session)
            .map(|(kind, _, value)| self.sessions.hash(kind, value));
        let key = set.or_else(|| {
            ctx.keys
                .iter()
                .find(|(kind, _)| *kind == Kind::Session)
                .map(|(_, key)| *key)
        });
        let borrow = login.borrow.take();
        let admitted =
            // (A login for another pool's seat without a loan is passed on:
            // its destination asks that pool once the code step is done.)
            if borrow.is_some()
                || login.class != Class::Casual
                || login.pool != Needed::Default
                || self.holds(&login.user)
            {
                false
            } else {
                match self.admit(&login.user, Mode::MayEvict).await {
                    Outcome::Pass => true,
                    Outcome::Wait { position } => {
                        // The half session cannot be kept: once admitted, the
                        // user logs in again (now with a seat).
                        let dest = login
                            .destination
                            .as_deref()
                            .and_then(local_path)
                            .unwrap_or("/");
                        let to = login_again(s.profile, dest);
                        let wait_for = WaitFor {
                            html: !s.platform_wait_redirect_url,
                            git: false,
                            redirect_url: s.platform_wait_redirect_url,
                            get_or_post: true,
                            ..ctx.wait_for()
                        };
                        let wait_for = WaitFor {
                            target: &to,
                            ..wait_for
                        };
                        return self.wait_response(&wait_for, &login.user, position, None, None);
                    }
                    Outcome::NoFreeSeat => false,
                    Outcome::Unavailable => {
                        return self.unavailable_response(&ctx.wait_for(), &HeaderMap::new())
                    }
                }
            };
        if borrow.is_none() && !admitted {
            return resp;
        }
        let step = SecondStep {
            user: login.user.clone(),
            borrow,
            admitted,
            deadline_ms: now + s.second_step_timeout_ms,
        };
        match key {
            Some(key) => {
                for older in self.second_steps.keep(key, step) {
                    self.abandon_second_step(older).await;
                }
            }
            // No session to know the code step by: nothing can keep the seat.
            None => self.abandon_second_step(step).await,
        }
        resp
    }

    /// The code step's answer. A session for the user the login was for:
    /// the seat is theirs for good. A wrong code (401): the login may try
    /// again until its deadline. Anything else ends the login, and its seat
    /// goes back.
    async fn finish_second_step(
        &self,
        key: SessionKey,
        resp: Response<Body>,
        upstream: &Option<UpstreamUser>,
    ) -> Response<Body> {
        // Settled by one answer at a time (two concurrent code steps: the
        // second finds nothing left to settle).
        let Some(step) = self.second_steps.take(&key) else {
            return resp;
        };
        let named = matches!(upstream, Some(UpstreamUser::User(u)) if *u == step.user);
        let named_other = matches!(upstream, Some(UpstreamUser::User(u)) if *u != step.user);
        let ok_reason = identity::login_reason(resp.headers()) == Some(LoginReason::Ok);
        if resp.status().is_success() && !named_other && (named || ok_reason) {
            if !named {
                // Bound to the user the login was for: the app said OK.
                let s = self.settings.load();
                let now = self.now();
                for (kind, _, value) in
                    identity::set_session_cookie_pairs(s.profile, resp.headers())
                {
                    self.sessions.bind(kind, value, &step.user, now);
                }
            }
            if let Some(lent) = step.borrow {
                lent.confirm();
            }
            tracing::info!(user = %step.user, "two-step login finished; seat kept");
            return resp;
        }
        if resp.status() == StatusCode::UNAUTHORIZED && !named_other {
            self.second_steps.put_back(key, step);
            return resp;
        }
        self.abandon_second_step(step).await;
        resp
    }

    /// Whether the session a login's answer opened is `user`'s, for apps
    /// that do not name the user in a header: asked of the app (its whoami)
    /// with the new cookies, which are bound on a match. An app with no
    /// whoami: the login was read as the app reads it, so the claim stands.
    pub(super) async fn login_session_is(&self, user: &UserId, headers: &HeaderMap) -> bool {
        let s = self.settings.load();
        let now = self.now();
        let cookies: Vec<(Kind, &str, &str)> =
            identity::set_session_cookie_pairs(s.profile, headers).collect();
        let Some(whoami) = s.profile.whoami else {
            for (kind, _, value) in &cookies {
                self.sessions.bind(*kind, value, user, now);
            }
            return true;
        };
        if cookies.is_empty() {
            return false;
        }
        let header = cookies
            .iter()
            .map(|(_, name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        let Ok(header) = HeaderValue::from_str(&header) else {
            return false;
        };
        let keys: Vec<(Kind, SessionKey)> = cookies
            .iter()
            .map(|(kind, _, value)| (*kind, self.sessions.hash(*kind, value)))
            .collect();
        // whoami binds the keys to whoever the app names.
        self.whoami(whoami, &header, &keys).await.as_ref() == Some(user)
    }
}

/// The login page, taking the user to `dest` afterwards.
fn login_again(profile: &crate::product::Profile, dest: &str) -> String {
    format!(
        "{}?{}={}",
        profile.login_page,
        profile.login_destination_param,
        super::waiting::pct(dest)
    )
}

/// `307` to the same URL: the client repeats the request, now licensed.
fn retry_response(target: &str, upstream_headers: &HeaderMap) -> Response<Body> {
    Own::redirect(
        StatusCode::TEMPORARY_REDIRECT,
        local_path(target).unwrap_or("/"),
    )
    .cookies_of(upstream_headers)
    .build()
}

fn is_html(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

fn memchr_str(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    hay.windows(n.len()).any(|w| w == n)
}

#[cfg(test)]
impl Gate {
    /// A request through the gate's phases as the hyper lane runs them
    /// (`decide` on the map, then `on_request` if it must continue).
    pub(crate) async fn through_request(
        &self,
        conn: &ConnInfo,
        req: Request<Body>,
    ) -> Result<(Request<Body>, Ctx), Response<Body>> {
        let (parts, body) = req.into_parts();
        let decision = self.decide(conn, &parts.method, &parts.uri, &parts.headers);
        let req = Request::from_parts(parts, body);
        match decision {
            Decision::Forward(ctx) => Ok((req, ctx)),
            Decision::Continue(ctx) => self.on_request(conn, ctx, req).await,
        }
    }

    /// An answer through the gate's phases as the hyper lane runs them
    /// (`learn` on the map, then `on_response` if it must see it whole).
    pub(crate) async fn through_answer(&self, ctx: Ctx, resp: Response<Body>) -> Response<Body> {
        match self.learn(ctx, resp.status(), resp.headers()) {
            Learned::Done => resp,
            Learned::Edit(ctx) => self.on_response(ctx, resp).await,
        }
    }
}
