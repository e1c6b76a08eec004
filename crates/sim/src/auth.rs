//! Who is calling, the way the apps decide it: a server-side session cookie,
//! else a remember-me cookie (which opens a new session), else Basic auth,
//! else a personal access token. Access (active and in a licensed group) is
//! checked on every request, so a grant or a removal takes effect at once.
//!
//! Cookie names come from `iumgate_core::product` (shared facts); the decisions are
//! the simulator's own.

use super::state::State;
use super::web::{self, Basic, Reply, Req};
use iumgate_core::product::Product;

/// The request's caller and what the answer must say about them.
#[derive(Debug, Default)]
pub(crate) struct Cx {
    /// Lower-case name of the user whose credentials were valid (whether or
    /// not they may use the app).
    pub user: Option<String>,
    /// `user` is active and holds application access.
    pub access: bool,
    /// Basic credentials or a token were sent and refused.
    pub bad_credentials: bool,
    /// The session in use (existing or just opened).
    pub session: Option<String>,
    /// Whom `X-AUSERNAME` names (lower case); `None` → `anonymous`.
    pub shown: Option<String>,
    /// `Set-Cookie` values to send.
    pub cookies: Vec<String>,
    /// `X-Seraph-LoginReason`, on login answers.
    pub login_reason: Option<&'static str>,
}

impl Cx {
    /// The caller, if they may use the app.
    pub fn authed(&self) -> Option<&str> {
        if self.access {
            self.user.as_deref()
        } else {
            None
        }
    }
}

pub(crate) fn session_cookie(st: &State) -> &'static str {
    st.product
        .profile()
        .session_cookies
        .first()
        .copied()
        .unwrap_or("JSESSIONID")
}

pub(crate) fn remember_cookie(st: &State) -> Option<&'static str> {
    st.product.profile().remember_cookies.first().copied()
}

pub(crate) fn identify(st: &mut State, req: &Req) -> Cx {
    let mut cx = Cx::default();
    if let Some(sid) = req.cookie(session_cookie(st)) {
        if let Some(u) = st.session_user(&sid) {
            cx.user = Some(u);
            cx.session = Some(sid);
        }
    }
    if cx.user.is_none() {
        let token = remember_cookie(st).and_then(|c| req.cookie(c));
        if let Some(u) = token.and_then(|t| st.remember_user(&t)) {
            // A returning user: the app opens a new session for them, but
            // only if they may still use it.
            if st.has_access(&u) {
                let sid = st.new_session(&u);
                cx.cookies.push(web::set_cookie(session_cookie(st), &sid));
                cx.session = Some(sid);
            }
            cx.user = Some(u);
        }
    }
    if cx.user.is_none() {
        match req.basic() {
            Basic::Credentials(u, p) => match st.check_password(&u, &p) {
                Some(u) => cx.user = Some(u),
                None => cx.bad_credentials = true,
            },
            Basic::Malformed => cx.bad_credentials = true,
            Basic::Absent => {}
        }
    }
    if cx.user.is_none() && !cx.bad_credentials {
        if let Some(token) = req.bearer() {
            match st.token_user(token) {
                Some(u) => cx.user = Some(u),
                None => cx.bad_credentials = true,
            }
        }
    }
    cx.access = cx.user.as_deref().is_some_and(|u| st.has_access(u));
    cx.shown = cx.authed().map(str::to_string);
    cx
}

/// Adds what every answer of the product carries.
pub(crate) fn finish(st: &mut State, cx: Cx, mut reply: Reply) -> Reply {
    for c in cx.cookies {
        reply = reply.header("Set-Cookie", c);
    }
    let shown = cx.shown.as_deref().and_then(|u| st.user(u));
    if st.ausername_header {
        let name = shown.map_or("anonymous", |u| u.name.as_str());
        reply = reply.header("X-AUSERNAME", web::header_name_value(name));
    }
    match st.product {
        Product::Jira => {
            if let Some(sid) = &cx.session {
                let short: String = sid.chars().take(7).collect();
                reply = reply.header("X-ASESSIONID", short.to_lowercase());
            }
            let n = st.next_request_id();
            reply = reply.header("X-AREQUESTID", format!("{}x{}x1", 600 + n / 1000, n));
        }
        Product::Bitbucket => {
            if let Some(u) = shown {
                reply = reply.header("X-AUSERID", u.id.to_string());
            }
        }
        Product::Confluence => {}
    }
    if let Some(reason) = cx.login_reason {
        reply = reply.header("X-Seraph-LoginReason", reason);
    }
    reply
}

/// The outcome of a username/password login.
pub(crate) enum Login {
    Ok(String),
    /// Unknown user or wrong password; `captcha`: this failure brought the
    /// user's failed-login count to the CAPTCHA limit.
    BadPassword {
        captcha: bool,
    },
    /// The user's failed-login count is at the limit: the app wants a CAPTCHA
    /// answered first and refuses the login, right password or not
    /// (`AUTHENTICATION_DENIED`).
    Denied,
    /// Right password, but inactive or without application access.
    NoAccess,
}

/// Checks a username/password login the way Seraph's elevated security does,
/// for every login the simulator serves (the form logins, Jira's
/// `/rest/auth/1/session` and the new `/rest/tsv/…/authenticate`): a user
/// whose failed-login count is at the limit is denied without a look at the
/// password; a wrong password for a known user counts; a successful login
/// resets the count. A right password without application access
/// (`AUTHORISATION_FAILED`) neither counts nor resets here, though
/// `shared/ATLASSIAN.md` says it may count "as far as the code reads"
/// (unconfirmed). Unknown users have no count; Basic auth does not count.
pub(crate) fn check_login(st: &mut State, user: &str, password: &str) -> Login {
    if st.user(user).is_some() && st.captcha_required(user) {
        return Login::Denied;
    }
    match st.check_password(user, password) {
        None => {
            st.count_failed_login(user);
            Login::BadPassword {
                captcha: st.user(user).is_some() && st.captcha_required(user),
            }
        }
        Some(u) if st.has_access(&u) && !st.access_lagging(&u) => {
            st.reset_failed_logins(&u);
            Login::Ok(u)
        }
        Some(_) => Login::NoAccess,
    }
}

/// Opens a new session for `user` (ending the one the request came with, so
/// a login never inherits an old session id) and sets the cookies.
pub(crate) fn open_session(st: &mut State, req: &Req, cx: &mut Cx, user: &str, remember: bool) {
    if let Some(old) = req.cookie(session_cookie(st)) {
        st.end_session(&old);
    }
    let sid = st.new_session(user);
    cx.cookies.push(web::set_cookie(session_cookie(st), &sid));
    if remember {
        if let Some(name) = remember_cookie(st) {
            let token = st.new_remember(user);
            cx.cookies.push(web::set_remember_cookie(name, &token));
        }
    }
    cx.session = Some(sid);
    cx.user = Some(user.to_string());
    cx.access = st.has_access(user);
    cx.shown = Some(user.to_string());
}

/// Ends the request's session and remember-me token and clears both cookies.
pub(crate) fn close_session(st: &mut State, req: &Req, cx: &mut Cx) {
    if let Some(sid) = req.cookie(session_cookie(st)) {
        st.end_session(&sid);
    }
    if let Some(sid) = &cx.session {
        st.end_session(sid);
    }
    if let Some(name) = remember_cookie(st) {
        if let Some(token) = req.cookie(name) {
            st.forget_remember(&token);
        }
        // Drop any Set-Cookie identify() queued for a remember-me session.
        cx.cookies.clear();
        cx.cookies.push(web::clear_cookie(session_cookie(st)));
        cx.cookies.push(web::clear_cookie(name));
    } else {
        cx.cookies.clear();
        cx.cookies.push(web::clear_cookie(session_cookie(st)));
    }
    cx.session = None;
    cx.user = None;
    cx.access = false;
    cx.shown = None;
}

/// The caller of an admin REST call (Basic auth or a token only: cookie
/// sessions would meet WebSudo).
pub(crate) enum AdminAuth {
    Ok(String),
    /// No credentials, wrong ones, or an inactive user: 401.
    Unauthenticated,
    /// A valid user who is not an administrator: 403.
    NotAdmin(String),
}

pub(crate) fn admin(st: &State, req: &Req) -> AdminAuth {
    let user = match req.basic() {
        Basic::Credentials(u, p) => st.check_password(&u, &p),
        Basic::Malformed => None,
        Basic::Absent => req.bearer().and_then(|t| st.token_user(t)),
    };
    match user {
        Some(u) if !st.is_active(&u) => AdminAuth::Unauthenticated,
        Some(u) if !st.is_admin(&u) => AdminAuth::NotAdmin(u),
        Some(u) => AdminAuth::Ok(u),
        None => AdminAuth::Unauthenticated,
    }
}

/// Shows the admin in `X-AUSERNAME` (they are authenticated for this call).
pub(crate) fn show_admin(st: &State, cx: &mut Cx, outcome: &AdminAuth) {
    match outcome {
        AdminAuth::Ok(u) => cx.shown = Some(u.clone()),
        AdminAuth::NotAdmin(u) if st.has_access(u) => cx.shown = Some(u.clone()),
        _ => cx.shown = None,
    }
}
