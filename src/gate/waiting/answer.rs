//! The waiting room's answers to a request that found no seat: a browser
//! goes to the waiting page (with its wait cookie), git gets a line it
//! prints, an API client gets 503 and JSON; and the one who waits is found
//! again by their wait cookie.

use super::super::Gate;
use crate::access_log::{Note, Verdict};
use crate::identity::{self, Kind};
use crate::pages::{local_path, Own, HTML, JSON, TEXT};
use crate::user::UserId;
use crate::wire::body::Body;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

/// iumgate's own cookie for the waiting room (maps to the waiting user).
pub const WAIT_COOKIE: &str = "iumgate_wait";

/// What the waiting room's answer needs of the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitFor<'a> {
    /// A browser asking for a page.
    pub html: bool,
    /// A git client (it prints a text answer).
    pub git: bool,
    /// GET, HEAD or POST: a browser can be redirected to the waiting page.
    pub get_or_post: bool,
    /// A script login page (the platform login) that goes wherever its
    /// answer's JSON `redirectUrl` says: sent to the waiting page that way.
    pub redirect_url: bool,
    /// The client came over TLS: the wait cookie is `Secure`.
    pub secure: bool,
    /// Where the user was going (the waiting page sends them there).
    pub target: &'a str,
}

impl Gate {
    /// No seat: browsers go to the waiting room, API clients get 503 + JSON,
    /// git gets a line it prints to the terminal.
    pub(crate) fn wait_response(
        &self,
        w: &WaitFor<'_>,
        user: &UserId,
        position: usize,
        pending: Option<super::resume::PendingLogin>,
        upstream_headers: Option<&HeaderMap>,
    ) -> Response<Body> {
        let retry = self.settings.load().retry_every_s;
        let own = if w.git {
            let where_ = if position > 0 {
                format!(" (position {position} in the queue)")
            } else {
                String::new()
            };
            Own::new(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!(
                    "iumgate: no licence is free right now{where_}. Retry in {retry} seconds.\n"
                ),
            )
        } else if w.redirect_url || (w.html && w.get_or_post) {
            let token = new_token();
            self.sessions.bind(Kind::Wait, &token, user, self.now());
            if let Some(p) = pending {
                self.keep_pending_login(&token, p);
            }
            let to = local_path(w.target).unwrap_or("/");
            let wait_page = format!("/iumgate/wait?to={}", pct(to));
            let r = if w.redirect_url {
                // The platform login's page goes where its answer's
                // `redirectUrl` says (a 200, as for a login that passed:
                // its script shows other answers as errors).
                Own::json(
                    StatusCode::OK,
                    format!(
                        "{{\"redirectUrl\":{},\"state\":\"waiting\",\"position\":{position},\"retry_after\":{retry}}}",
                        crate::pages::json_str(&wait_page)
                    ),
                )
            } else {
                Own::redirect(StatusCode::SEE_OTHER, &wait_page)
            };
            let secure = if w.secure { "; Secure" } else { "" };
            match HeaderValue::from_str(&format!(
                "{WAIT_COOKIE}={token}; Path=/iumgate/; HttpOnly; SameSite=Lax{secure}"
            )) {
                Ok(v) => r.cookie(v),
                Err(_) => r,
            }
        } else {
            Own::json(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{{\"state\":\"waiting\",\"position\":{position},\"retry_after\":{retry}}}"
                ),
            )
        };
        // Keep the upstream's cookies (the new session of a login).
        let own = match upstream_headers {
            Some(up) => own.cookies_of(up),
            None => own,
        };
        let mut resp = own.retry_after(retry).build();
        // Queued, or a browser sent to the waiting page: it waits; an API
        // or git client told to retry was refused.
        let verdict = if position > 0 || w.redirect_url || (w.html && w.get_or_post && !w.git) {
            Verdict::Waited
        } else {
            Verdict::Refused
        };
        resp.extensions_mut()
            .insert(Note::new(Some(user.clone()), verdict));
        resp
    }

    /// The directory failed: nothing was granted; the waiting page says the
    /// licence service is unavailable (and retries by itself).
    pub(crate) fn unavailable_response(
        &self,
        w: &WaitFor<'_>,
        req_headers: &HeaderMap,
    ) -> Response<Body> {
        let retry = self.settings.load().retry_every_s;
        let (ct, body) = if w.html {
            let lang = crate::pages::Lang::from_headers(req_headers);
            (
                HTML,
                crate::pages::wait::unavailable_page(lang, retry, w.target),
            )
        } else if w.git {
            (TEXT, "iumgate: the licence service is unavailable; the administrator has been told. Retry later.\n".to_string())
        } else {
            (
                JSON,
                format!("{{\"state\":\"unavailable\",\"retry_after\":{retry}}}"),
            )
        };
        let mut resp = Own::new(StatusCode::SERVICE_UNAVAILABLE, ct, body)
            .retry_after(retry)
            .build();
        resp.extensions_mut()
            .insert(Note::new(None, Verdict::Refused));
        resp
    }

    /// Used by the waiting room to find the waiting user.
    pub(crate) fn waiting_user(&self, headers: &HeaderMap) -> Option<UserId> {
        let now = self.now();
        let s = self.settings.load();
        for (name, value) in identity::cookies(headers) {
            if name == WAIT_COOKIE {
                if let Some(u) = self.sessions.lookup(Kind::Wait, value, now) {
                    return Some(u);
                }
            }
        }
        identity::session_cookies(s.profile, headers)
            .find_map(|(kind, value)| self.sessions.lookup(kind, value, now))
    }
}

/// Query-value encoding: everything but unreserved characters and `/`.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

pub(crate) fn pct(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

fn new_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
