//! Resuming a login that had to wait. A casual user whose right password met
//! a full pool goes to the waiting room; once a seat is theirs, iumgate
//! repeats their login form to the app on their behalf (`/iumgate/resume`),
//! so the page takes them straight to where they were going — no second
//! login. The form is kept in memory only (never logged, never in the
//! snapshot), for at most `abandon_after`, and overwritten when dropped.

use super::redirect;
use crate::gate::Gate;
use crate::identity::{self, Kind, UpstreamUser};
use crate::user::UserId;
use crate::wire::body::Body;
use http::{header, HeaderMap, HeaderValue, Response};

/// A login form waiting for a seat.
pub struct PendingLogin {
    pub user: UserId,
    /// Path and query of the login request.
    pub target: String,
    pub content_type: Option<HeaderValue>,
    body: Vec<u8>,
    /// The browser that sent the form (its `User-Agent`, keyed hash): a
    /// stolen wait cookie alone does not have the login repeated.
    agent: identity::SessionKey,
    pub expires_ms: u64,
}

impl PendingLogin {
    pub fn new(
        user: UserId,
        target: String,
        content_type: Option<HeaderValue>,
        body: Vec<u8>,
        agent: identity::SessionKey,
        expires_ms: u64,
    ) -> Self {
        PendingLogin {
            user,
            target,
            content_type,
            body,
            agent,
            expires_ms,
        }
    }
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("user", &self.user)
            .field("target", &self.target)
            .field("body", &"[redacted]")
            .finish()
    }
}

impl Drop for PendingLogin {
    fn drop(&mut self) {
        // The form holds a password: overwrite it before the memory is freed.
        zeroize::Zeroize::zeroize(&mut self.body);
    }
}

impl Gate {
    /// The keyed hash of a request's `User-Agent` (empty when absent).
    pub(crate) fn agent_key(&self, headers: &HeaderMap) -> identity::SessionKey {
        let ua = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        self.sessions.hash(Kind::Wait, ua)
    }

    /// Keeps `login` for the waiter holding `wait_token`: one per user (a
    /// newer one replaces the older), so repeated logins of one account
    /// cannot pile forms up in memory.
    pub(crate) fn keep_pending_login(&self, wait_token: &str, login: PendingLogin) {
        let key = self.sessions.hash(Kind::Wait, wait_token);
        // Entries are waiting users only: the scan is as long as the queue.
        self.pending_logins.retain(|_, p| p.user != login.user);
        self.pending_logins.insert(key, login);
    }

    /// Logins kept for waiters (for tests and status).
    pub fn pending_login_count(&self) -> usize {
        self.pending_logins.len()
    }

    /// Whether the waiter behind these headers has a login to resume.
    pub(crate) fn has_pending_login(&self, headers: &HeaderMap) -> bool {
        wait_key(self, headers).is_some_and(|k| self.pending_logins.contains_key(&k))
    }

    /// Forgets pending logins past their time.
    pub fn prune_pending_logins(&self, now: u64) {
        self.pending_logins.retain(|_, p| p.expires_ms > now);
    }

    /// `GET /iumgate/resume`: repeat the waiting login to the app, now that
    /// the user holds a seat, and hand the app's answer (its session cookie,
    /// its redirect to the destination) to the browser.
    pub(crate) async fn resume_login(&self, headers: &HeaderMap) -> Response<Body> {
        let now = self.now();
        // Only the browser the form came from may have it repeated; another
        // one with the same cookie leaves it where it is.
        let agent = self.agent_key(headers);
        let pending = wait_key(self, headers)
            .and_then(|k| self.pending_logins.remove_if(&k, |_, p| p.agent == agent))
            .map(|(_, p)| p)
            .filter(|p| p.expires_ms > now);
        let s = self.settings.load();
        let login_page = s.profile.login_page;
        let Some(pending) = pending else {
            return redirect(login_page);
        };
        if !self.holds(&pending.user) {
            return redirect(login_page);
        }
        let Some(client) = self.app.http() else {
            return redirect(login_page);
        };
        let mut req = client
            .post(format!("{}{}", s.upstream, pending.target))
            .body(pending.body.clone());
        if let Some(ct) = &pending.content_type {
            req = req.header(header::CONTENT_TYPE, ct.clone());
        }
        for name in [
            header::COOKIE,
            header::HOST,
            header::USER_AGENT,
            header::ACCEPT_LANGUAGE,
        ] {
            for v in headers.get_all(&name) {
                req = req.header(name.clone(), v.clone());
            }
        }
        req = req.header(header::ACCEPT, "text/html");
        let answer = match req.send().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(user = %pending.user, error = %crate::proxy::error_chain(&e), "cannot resume the waiting login");
                return redirect(login_page);
            }
        };
        let status = answer.status();
        let up_headers = answer.headers().clone();
        if let Some(UpstreamUser::User(u)) = identity::upstream_user(&up_headers, None) {
            for (kind, value) in identity::set_session_cookies(s.profile, &up_headers) {
                if let Some(v) = value {
                    self.sessions.bind(kind, v, &u, now);
                }
            }
        } else if identity::login_reason(&up_headers) == Some(identity::LoginReason::Ok) {
            // No name in the answer: bound only once the app's whoami (where
            // it has one) names the waiting user for the new session.
            self.login_session_is(&pending.user, &up_headers).await;
        }
        tracing::info!(user = %pending.user, status = status.as_u16(), "waiting login resumed");
        super::super::app_client::pass_on(answer).await
    }
}

fn wait_key(gate: &Gate, headers: &HeaderMap) -> Option<identity::SessionKey> {
    identity::cookies(headers)
        .find(|(n, _)| *n == super::WAIT_COOKIE)
        .map(|(_, v)| gate.sessions.hash(Kind::Wait, v))
}
