//! OpenID Connect logins (Atlassian's SSO for Data Center with an OIDC
//! IdP). The app's callback names nobody — the app redeems the code itself
//! — so with `[sso.oidc]` iumgate is a relying party of the same IdP and
//! learns who logs in *before* the app's flow starts:
//!
//! 1. An anonymous browser opens the app's OIDC start page
//!    (`/plugins/servlet/oidc/initiate-login`): iumgate answers with a
//!    redirect to the IdP — its own authorization-code request with
//!    `state`, `nonce` and PKCE — and keeps what the callback needs, by
//!    `state`, bounded and for [`STARTED_TTL_MS`] at most; the browser gets
//!    the `state` in a cookie, so that a callback only finishes the flow
//!    its own browser started.
//! 2. The IdP sends the browser to iumgate's callback
//!    (`/iumgate/oidc/callback`, an own page): the code is redeemed with the
//!    PKCE verifier and the ID token verified (signature against the JWKS,
//!    issuer, audience, expiry, nonce — [`crate::sso::oidc`]). The user it
//!    names counts like a proven password: a free seat, an idle holder's,
//!    or the waiting room (which sends them through the start page again
//!    once admitted).
//! 3. The browser goes back to the start page with a one-time pass cookie:
//!    that request is forwarded, and the app's own flow runs (silently at
//!    the IdP, whose session is fresh) and finds the seat in place.
//!
//! A failure at any step admits nobody and shows a page that starts again.
//! Until discovery has succeeded (it is retried in the background), start
//! pages are forwarded as without `[sso.oidc]`: the user is learned from
//! the app's answer only.

use super::waiting::WaitFor;
use super::{Gate, Outcome};
use crate::config::OidcConfig;
use crate::identity;
use crate::pages::{self, local_path, Own};
use crate::pool::Mode;
use crate::sso::oidc::{PendingAuth, Provider};
use crate::user::UserId;
use crate::wire::body::Body;
use crate::wire::HeaderView;
use dashmap::DashMap;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// How long a sign-in may stay at the IdP.
pub const STARTED_TTL_MS: u64 = 10 * 60 * 1000;
/// How long the pass back to the app's start page is good.
pub const PASS_TTL_MS: u64 = 2 * 60 * 1000;
/// At most this many sign-ins under way; more are answered 503.
pub const MAX_STARTED: usize = 10_000;
/// At most this many passes outstanding.
pub const MAX_PASSES: usize = 10_000;
/// The cookie that binds a callback to the browser that started the flow.
pub const STATE_COOKIE: &str = "iumgate_oidc_state";
/// The cookie that lets the browser through to the app's start page once.
pub const PASS_COOKIE: &str = "iumgate_oidc_pass";

/// `[sso.oidc]` as the request path needs it (reloadable parts).
#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub redirect_uri: Option<String>,
    pub start_paths: Vec<String>,
}

impl OidcSettings {
    pub fn from_config(cfg: &OidcConfig) -> Option<OidcSettings> {
        cfg.issuer.as_ref()?;
        Some(OidcSettings {
            redirect_uri: cfg.redirect_uri.clone(),
            start_paths: cfg.start_paths.clone(),
        })
    }
}

/// A flow iumgate started, until its callback.
struct Started {
    auth: PendingAuth,
    redirect_uri: String,
    /// The app's start page with its query (where the browser goes next).
    return_to: String,
    until: u64,
}

/// A verified user on their way back to the app's start page.
struct Pass {
    user: UserId,
    until: u64,
}

/// The relying party's state.
#[derive(Default)]
pub(crate) struct OidcRp {
    provider: arc_swap::ArcSwapOption<Provider>,
    started: DashMap<String, Started>,
    passes: DashMap<String, Pass>,
}

impl std::fmt::Debug for OidcRp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcRp")
            .field("ready", &self.provider.load().is_some())
            .field("started", &self.started.len())
            .field("passes", &self.passes.len())
            .finish()
    }
}

/// The client reached iumgate over TLS (itself, or a trusted proxy in
/// front that says so).
pub(crate) fn client_secure(tls: bool, trusted: bool, headers: &impl HeaderView) -> bool {
    static X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");
    tls || (trusted
        && headers
            .value(&X_FORWARDED_PROTO)
            .is_some_and(|v| v.eq_ignore_ascii_case(b"https")))
}

fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age_s: u64,
    secure: bool,
) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age_s}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

/// A host (and port) as a `Host` field may carry one: letters, digits,
/// `.-:[]` — nothing that could change the URL around it.
fn plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

impl Gate {
    /// Discovery succeeded: OIDC start pages are signed in before from now on.
    pub fn set_oidc_provider(&self, provider: Provider) {
        self.oidc.provider.store(Some(Arc::new(provider)));
    }

    /// Whether iumgate signs OIDC users in itself (discovery succeeded).
    pub fn oidc_ready(&self) -> bool {
        self.oidc.provider.load().is_some()
    }

    /// Sign-ins under way and passes outstanding.
    pub fn oidc_pending(&self) -> (usize, usize) {
        (self.oidc.started.len(), self.oidc.passes.len())
    }

    /// An anonymous request for an OIDC start page that iumgate must sign
    /// in first. A browser coming back with its pass goes through (the
    /// pass is used up).
    pub(crate) fn oidc_intercepts(
        &self,
        s: &super::GateSettings,
        method: &Method,
        path: &str,
        headers: &impl HeaderView,
        now: u64,
    ) -> bool {
        let Some(o) = &s.oidc else { return false };
        if !(method == Method::GET || method == Method::HEAD)
            || !o.start_paths.iter().any(|p| p == path)
            || !self.oidc_ready()
        {
            return false;
        }
        let pass = identity::cookies(headers)
            .find(|(n, _)| *n == PASS_COOKIE)
            .and_then(|(_, v)| self.oidc.passes.remove(v));
        match pass {
            Some((_, p)) if p.until > now => {
                tracing::debug!(user = %p.user, "back at the OIDC start page with a pass");
                false
            }
            _ => true,
        }
    }

    /// Step 1: the redirect to the IdP, with the state cookie.
    pub(crate) fn oidc_start(
        &self,
        s: &super::GateSettings,
        target: &str,
        secure: bool,
        headers: &HeaderMap,
        uri: &http::Uri,
    ) -> Response<Body> {
        let (Some(o), Some(provider)) = (&s.oidc, self.oidc.provider.load_full()) else {
            return self.oidc_failed(
                StatusCode::SERVICE_UNAVAILABLE,
                headers,
                "single sign-on is not ready yet",
                target,
            );
        };
        let redirect_uri = match &o.redirect_uri {
            Some(r) => r.clone(),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .or_else(|| uri.authority().map(|a| a.as_str()))
                    .filter(|h| plain_host(h));
                let Some(host) = host else {
                    return self.oidc_failed(
                        StatusCode::BAD_REQUEST,
                        headers,
                        "the request names no host to come back to",
                        "/",
                    );
                };
                let scheme = if secure { "https" } else { "http" };
                format!("{scheme}://{host}{}", OidcConfig::CALLBACK_PATH)
            }
        };
        let now = self.now();
        if self.oidc.started.len() >= MAX_STARTED {
            self.prune_oidc(now);
            if self.oidc.started.len() >= MAX_STARTED {
                tracing::warn!(
                    max = MAX_STARTED,
                    "too many OIDC sign-ins under way: a new one is refused"
                );
                let page = pages::html_page(
                    pages::Lang::from_headers(headers),
                    "Too many sign-ins at once",
                    "<h1>Too many sign-ins at once</h1><p>Please try again in a minute.</p>",
                    "",
                );
                return Own::new(StatusCode::SERVICE_UNAVAILABLE, pages::HTML, page)
                    .retry_after(60)
                    .build();
            }
        }
        let (url, auth) = provider.start(&redirect_uri);
        let state = auth.state.clone();
        self.oidc.started.insert(
            state.clone(),
            Started {
                auth,
                redirect_uri,
                return_to: local_path(target).unwrap_or("/").to_string(),
                until: now + STARTED_TTL_MS,
            },
        );
        let mut own = Own::redirect(StatusCode::FOUND, url.as_str());
        if let Some(c) = cookie(
            STATE_COOKIE,
            &state,
            "/iumgate/oidc/",
            STARTED_TTL_MS / 1000,
            secure,
        ) {
            own = own.cookie(c);
        }
        own.build()
    }

    /// Step 2: iumgate's callback. Verifies, admits, and sends the browser
    /// on to the app's start page with a pass (or to the waiting room).
    pub(crate) async fn oidc_callback(&self, secure: bool, req: Request<Body>) -> Response<Body> {
        let headers = req.headers();
        let q: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let now = self.now();
        let state = get("state").unwrap_or("");
        // The flow this browser started: the state cookie names it.
        let ours = identity::cookies(headers)
            .find(|(n, _)| *n == STATE_COOKIE)
            .is_some_and(|(_, v)| {
                !state.is_empty() && bool::from(v.as_bytes().ct_eq(state.as_bytes()))
            });
        let started = if ours {
            self.oidc.started.remove(state).map(|(_, s)| s)
        } else {
            None
        };
        let Some(started) = started.filter(|s| s.until > now) else {
            self.counters.oidc_refused.fetch_add(1, Ordering::Relaxed);
            return self.oidc_failed(
                StatusCode::BAD_REQUEST,
                headers,
                "this sign-in link has expired, was used already, or was started in another browser",
                "/",
            );
        };
        let again = started.return_to.as_str();
        if let Some(error) = get("error") {
            self.counters.oidc_refused.fetch_add(1, Ordering::Relaxed);
            let error: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            tracing::info!(error = %error, "the OIDC IdP did not sign the user in");
            return self.oidc_failed(
                StatusCode::UNAUTHORIZED,
                headers,
                &format!("the identity provider did not sign you in ({error})"),
                again,
            );
        }
        let (Some(code), Some(provider)) = (get("code"), self.oidc.provider.load_full()) else {
            self.counters.oidc_refused.fetch_add(1, Ordering::Relaxed);
            return self.oidc_failed(
                StatusCode::BAD_REQUEST,
                headers,
                "the identity provider sent no code",
                again,
            );
        };
        let at = i64::try_from(now)
            .ok()
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .unwrap_or_else(jiff::Timestamp::now);
        let verified = match provider
            .finish_at(code, state, &started.auth, &started.redirect_uri, at)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                self.counters.oidc_refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %crate::proxy::error_chain(&e), "an OIDC sign-in did not verify: nobody admitted");
                return self.oidc_failed(
                    StatusCode::UNAUTHORIZED,
                    headers,
                    "the sign-in could not be verified",
                    again,
                );
            }
        };
        if !identity::valid_username(&verified.username) {
            self.counters.oidc_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("an OIDC ID token names no usable user name: nobody admitted");
            return self.oidc_failed(
                StatusCode::UNAUTHORIZED,
                headers,
                "the identity provider named no usable user",
                again,
            );
        }
        self.counters.oidc_verified.fetch_add(1, Ordering::Relaxed);
        let user = UserId::new(&verified.username);
        // Verified by iumgate: like a proven password, it may take an idle
        // holder's seat or wait for one.
        // With pools: the seat of the only pool the user is casual in.
        let pool = self.login_pool(&user, None).await;
        if self.needs_seat_for(pool, &user).await {
            // A browser that comes back to the start page once admitted.
            let w = WaitFor {
                html: true,
                git: false,
                get_or_post: true,
                redirect_url: false,
                secure,
                target: again,
            };
            match self.admit_for(pool, &user, Mode::MayEvict).await {
                Outcome::Pass | Outcome::NoFreeSeat => {}
                Outcome::Wait { position } => {
                    return self.wait_response(&w, &user, position, None, None);
                }
                Outcome::Unavailable => return self.unavailable_response(&w, headers),
            }
        }
        self.oidc_pass(&user, again, secure, now)
    }

    /// Step 3: back to the app's start page, with a pass for it.
    fn oidc_pass(&self, user: &UserId, return_to: &str, secure: bool, now: u64) -> Response<Body> {
        if self.oidc.passes.len() >= MAX_PASSES {
            self.prune_oidc(now);
        }
        let mut own = Own::redirect(StatusCode::SEE_OTHER, return_to);
        // Full even after pruning: the browser goes on without a pass and
        // meets the start again (silent at the IdP), never a loop of errors.
        if self.oidc.passes.len() < MAX_PASSES {
            let token = random_token();
            let path = return_to.split(['?', '#']).next().unwrap_or("/");
            if let Some(c) = cookie(PASS_COOKIE, &token, path, PASS_TTL_MS / 1000, secure) {
                own = own.cookie(c);
            }
            self.oidc.passes.insert(
                token,
                Pass {
                    user: user.clone(),
                    until: now + PASS_TTL_MS,
                },
            );
        }
        own.build()
    }

    /// A page that says what went wrong and starts again.
    fn oidc_failed(
        &self,
        status: StatusCode,
        headers: &impl HeaderView,
        why: &str,
        again: &str,
    ) -> Response<Body> {
        let again = local_path(again).unwrap_or("/");
        let body = format!(
            "<h1>Single sign-on did not finish</h1><p>{}.</p><p><a id=\"again\" href=\"{}\">Sign in again</a></p>",
            pages::escape(why),
            pages::escape(again)
        );
        let page = pages::html_page(
            pages::Lang::from_headers(headers),
            "Single sign-on",
            &body,
            "",
        );
        Own::new(status, pages::HTML, page).build()
    }

    /// Forgets sign-ins and passes past their time (the prune job).
    pub fn prune_oidc(&self, now: u64) {
        self.oidc.started.retain(|_, s| s.until > now);
        self.oidc.passes.retain(|_, p| p.until > now);
    }
}

/// Reads the IdP's discovery document and keys, retrying with back-off
/// (2 s doubling to 5 min) until it succeeds or `stop`: an IdP that is down
/// when iumgate starts must not keep the site from being served. Until then
/// OIDC start pages are forwarded as without `[sso.oidc]`.
pub async fn discover_until_ready(
    gate: Arc<Gate>,
    cfg: OidcConfig,
    secret: crate::config::Secret,
    stop: tokio_util::sync::CancellationToken,
) {
    let Some(issuer) = cfg.issuer.clone() else {
        return;
    };
    let http = match crate::sso::oidc::http_client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %crate::proxy::error_chain(&e), "sso.oidc: no HTTP client: OIDC users are learned from the app's answer only");
            return;
        }
    };
    let mut wait = std::time::Duration::from_secs(2);
    loop {
        match Provider::discover(&issuer, &cfg.client_id, secret.expose(), http.clone()).await {
            Ok(p) => {
                let p = p
                    .with_username_claim(&cfg.username_claim)
                    .with_scopes(&cfg.scopes)
                    .with_skew(cfg.clock_skew.get());
                tracing::info!(issuer = %issuer, "sso.oidc: discovery done; iumgate signs OIDC users in before the app");
                gate.set_oidc_provider(p);
                return;
            }
            Err(e) => {
                tracing::warn!(issuer = %issuer, error = %crate::proxy::error_chain(&e), retry_in_s = wait.as_secs(), "sso.oidc: discovery failed; OIDC users are learned from the app's answer until it succeeds");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(std::time::Duration::from_secs(300));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_host_makes_a_redirect_uri() {
        for ok in ["jira.example.com", "127.0.0.1:8080", "[::1]:8443", "a-b.c"] {
            assert!(plain_host(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example/x",
            "a b",
            "x\"y",
            "host@evil",
            "host?x",
            "host#x",
            "h\r\nX: y",
        ] {
            assert!(!plain_host(bad), "{bad:?}");
        }
        assert!(!plain_host(&"a".repeat(256)));
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_under_tls() {
        let c = cookie(PASS_COOKIE, "t", "/p", 120, true).unwrap();
        let c = c.to_str().unwrap();
        for part in [
            "iumgate_oidc_pass=t",
            "Path=/p",
            "Max-Age=120",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
        ] {
            assert!(c.contains(part), "{c}");
        }
        let plain = cookie(STATE_COOKIE, "s", "/iumgate/oidc/", 600, false).unwrap();
        assert!(!plain.to_str().unwrap().contains("Secure"));
    }
}
