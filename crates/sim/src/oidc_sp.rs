//! OpenID Connect single sign-on in the simulated apps (all three
//! products): the app's side of Atlassian's OIDC SSO, against the
//! simulator's IdP ([`crate::oidc_idp`], given by [`crate::Sim::set_oidc_idp`]).
//!
//! | request | answer |
//! |---|---|
//! | `GET /plugins/servlet/oidc/initiate-login[?returnUrl=/path]` | 302 to the IdP's `/authorize` (client [`OIDC_CLIENT_ID`], PKCE `S256`, `state`, `nonce`; the callback is `http://<X-Forwarded-Host or Host>/plugins/servlet/oidc/callback`); 404 without an IdP |
//! | `GET /plugins/servlet/oidc/callback?code=…&state=…` | the app redeems the code itself (in process, by the IdP's `/token` rules: single use, PKCE, redirect URI): a new session for the IdP's user, 302 to `returnUrl`; the user without application access: 403 with the no-permission page, `X-Seraph-LoginReason: AUTHORISATION_FAILED`; an unknown `state`, an IdP `error`, a refused code or an unknown user: 401, nobody logged in |
//!
//! The callback names nobody in its request: who logs in is known only
//! once the app has redeemed the code. The name of the start page's return
//! parameter (`returnUrl`) is the simulator's (UNCONFIRMED upstream);
//! iumgate keeps the start page's whole query, whatever it is called.

use super::auth::{self, Cx};
use super::oidc_idp::{Redeemer, OIDC_CLIENT_ID};
use super::saml_sp::no_permission;
use super::state::State;
use super::web::{self, Reply, Req};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use rsa::sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub(crate) const INITIATE: &str = "/plugins/servlet/oidc/initiate-login";
pub(crate) const CALLBACK: &str = "/plugins/servlet/oidc/callback";
/// At most this many sign-ins under way (the oldest go first).
const MAX_PENDING: usize = 10_000;
/// How long a sign-in may take at the IdP.
const PENDING_LIFETIME: Duration = Duration::from_secs(600);

struct Started {
    verifier: String,
    return_to: String,
    redirect_uri: String,
    at: Instant,
}

/// The app's OIDC state.
#[derive(Default)]
pub(crate) struct Rp {
    pub idp: Option<Redeemer>,
    started: HashMap<String, Started>,
    /// Callbacks that logged someone in.
    pub accepted: usize,
}

pub(crate) fn is_oidc_path(path: &str) -> bool {
    matches!(path, INITIATE | CALLBACK)
}

fn random() -> String {
    let bytes: [u8; 32] = rand::random();
    B64URL.encode(bytes)
}

/// Answers the request if it is OIDC's; `None` leaves it to the product.
pub(crate) fn route(st: &mut State, rp: &mut Rp, req: &Req, cx: &mut Cx) -> Option<Reply> {
    match req.path.as_str() {
        INITIATE => Some(initiate(rp, req)),
        CALLBACK => Some(callback(st, rp, req, cx)),
        _ => None,
    }
}

fn initiate(rp: &mut Rp, req: &Req) -> Reply {
    let Some(idp) = &rp.idp else {
        return Reply::text(404, "OpenID Connect is not configured\n");
    };
    let host = ["x-forwarded-host", "host"]
        .iter()
        .find_map(|h| req.headers.get(*h).and_then(|v| v.to_str().ok()))
        .unwrap_or("127.0.0.1")
        .to_string();
    let redirect_uri = format!("http://{host}{CALLBACK}");
    let (state, nonce, verifier) = (random(), random(), random());
    let challenge = B64URL.encode(Sha256::digest(verifier.as_bytes()));
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", OIDC_CLIENT_ID)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", "openid profile")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let location = format!("{}/authorize?{}", idp.issuer(), q.finish());
    rp.started.retain(|_, s| s.at.elapsed() < PENDING_LIFETIME);
    if rp.started.len() >= MAX_PENDING {
        rp.started.clear();
    }
    rp.started.insert(
        state,
        Started {
            verifier,
            return_to: web::local_destination(req.q("returnUrl"), "/"),
            redirect_uri,
            at: Instant::now(),
        },
    );
    Reply::redirect(&location)
}

fn refused(cx: &mut Cx, why: &str) -> Reply {
    // Whoever the request came as, this answer names nobody.
    cx.shown = None;
    Reply::html(
        401,
        "Single sign-on failed",
        &format!("<p>Single sign-on failed: {}.</p>", web::escape(why)),
    )
}

fn callback(st: &mut State, rp: &mut Rp, req: &Req, cx: &mut Cx) -> Reply {
    let Some(started) = req.q("state").and_then(|s| rp.started.remove(s)) else {
        return refused(cx, "unknown state");
    };
    if started.at.elapsed() >= PENDING_LIFETIME {
        return refused(cx, "the sign-in took too long");
    }
    if let Some(error) = req.q("error") {
        return refused(cx, error);
    }
    let (Some(idp), Some(code)) = (&rp.idp, req.q("code")) else {
        return refused(cx, "no code");
    };
    let user = match idp.redeem(code, &started.redirect_uri, &started.verifier) {
        Ok((user, _nonce)) => user,
        Err(error) => return refused(cx, error),
    };
    let Some(user) = st.user(&user).map(|u| u.name.clone()) else {
        return refused(cx, "unknown user");
    };
    if !st.has_access(&user) {
        cx.shown = None;
        cx.login_reason = Some("AUTHORISATION_FAILED");
        return no_permission(st.product);
    }
    rp.accepted += 1;
    auth::open_session(st, req, cx, &user, false);
    cx.login_reason = Some("OK");
    Reply::redirect(&started.return_to)
}
