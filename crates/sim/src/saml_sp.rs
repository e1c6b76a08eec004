//! SAML single sign-on in the simulated apps (all three products), and a
//! tiny identity provider on the same server to drive it.
//!
//! | request | answer |
//! |---|---|
//! | `POST /plugins/servlet/samlconsumer` (form: `SAMLResponse`, `RelayState`) | a response this simulator's IdP issued, unexpired and never posted before: a new session, 302 to `RelayState` (a local path) or `/`; the user without application access: 403 with the no-permission page, `X-Seraph-LoginReason: AUTHORISATION_FAILED`; anything else (forged, replayed, expired, unknown): 401, nobody logged in |
//! | `GET /plugins/servlet/external-login` | 302 to the IdP's `/sim-idp/sso` |
//! | `GET /sim-idp/sso?user=U&RelayState=/path` | NOT Atlassian's: the test IdP. An auto-posting form to the consumer with a fresh response for `U` (or for [`crate::Sim::set_idp_user`]'s user); 401 without a user |
//!
//! The app does not verify XML signatures: it accepts exactly the responses
//! its own IdP issued (kept by a digest of the base64 text), each once.
//! That is enough for a stand-in (a forged or altered response differs from
//! every issued one) and keeps the simulator independent of iumgate's
//! verifier. The real app checks the signature, audience, destination and
//! time window; its single-use rule is our reading (UNCONFIRMED).
//!
//! The IdP is one per process ([`idp`]: the RSA key takes a second or so to
//! make in a debug build), its responses name [`SAML_AUDIENCE`] and
//! [`SAML_DESTINATION`], and are issued on the SAML clock
//! ([`crate::Sim::set_saml_clock`], real time by default) so that a test can
//! match iumgate's manual clock.

use super::auth::{self, Cx};
use super::saml_idp::{SamlIdp, SamlLogin};
use super::state::State;
use super::web::{self, escape, Reply, Req};
use http::Method;
use iumgate_core::product::Product;
use jiff::Timestamp;
use rsa::sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The SP entity ID (`Audience`) the simulator's IdP puts in its responses.
pub const SAML_AUDIENCE: &str = "https://app.sim.invalid";
/// The ACS URL (`Destination`, `Recipient`) in the IdP's responses.
pub const SAML_DESTINATION: &str = "https://app.sim.invalid/plugins/servlet/samlconsumer";
/// The IdP's entity ID (`Issuer`).
pub const SAML_IDP_ENTITY_ID: &str = "https://idp.sim.invalid";

const CONSUMER: &str = "/plugins/servlet/samlconsumer";
const EXTERNAL_LOGIN: &str = "/plugins/servlet/external-login";
const IDP_SSO: &str = "/sim-idp/sso";

/// The simulator's IdP, made at first use and shared by every simulator of
/// the process; `None` if its key could not be made.
pub fn idp() -> Option<&'static SamlIdp> {
    static IDP: OnceLock<Option<SamlIdp>> = OnceLock::new();
    IDP.get_or_init(|| match SamlIdp::new(SAML_IDP_ENTITY_ID) {
        Ok(idp) => Some(idp),
        Err(e) => {
            tracing::warn!(error = %e, "sim: no SAML IdP");
            None
        }
    })
    .as_ref()
}

struct Issued {
    user: String,
    not_before: Timestamp,
    until: Timestamp,
    used: bool,
}

/// The app's SAML state: responses the IdP issued, the IdP's logged-in user,
/// the SAML clock.
#[derive(Default)]
pub(crate) struct Sp {
    issued: HashMap<[u8; 32], Issued>,
    pub idp_user: Option<String>,
    pub clock: Option<Timestamp>,
    /// Consumer posts that logged someone in.
    pub accepted: usize,
}

fn digest(b64: &str) -> [u8; 32] {
    // Line breaks and spaces are not part of the response (IdPs wrap base64).
    let compact: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    Sha256::digest(compact.as_bytes()).into()
}

impl Sp {
    pub fn now(&self) -> Timestamp {
        self.clock.unwrap_or_else(Timestamp::now)
    }

    /// A fresh login for `user` on the SAML clock.
    pub fn login(&self, user: &str) -> SamlLogin {
        SamlLogin {
            issued: self.now(),
            ..SamlLogin::new(user, SAML_AUDIENCE, SAML_DESTINATION)
        }
    }

    /// Signs `login` and remembers the response as issued.
    pub fn issue(&mut self, login: &SamlLogin) -> Option<String> {
        let b64 = idp()?.response(login);
        let validity = jiff::SignedDuration::try_from(login.validity).ok()?;
        let until = login.issued.checked_add(validity).ok()?;
        let not_before = login
            .issued
            .checked_sub(jiff::SignedDuration::from_mins(1))
            .ok()?;
        self.issued.insert(
            digest(&b64),
            Issued {
                user: login.user.clone(),
                not_before,
                until,
                used: false,
            },
        );
        Some(b64)
    }

    /// The user of an issued, unexpired, unused response (now used).
    fn consume(&mut self, b64: &str) -> Option<String> {
        let now = self.now();
        let rec = self.issued.get_mut(&digest(b64))?;
        if rec.used || now < rec.not_before || now >= rec.until {
            return None;
        }
        rec.used = true;
        Some(rec.user.clone())
    }
}

pub(crate) fn is_saml_path(path: &str) -> bool {
    matches!(path, CONSUMER | EXTERNAL_LOGIN | IDP_SSO)
}

/// Answers the request if it is SAML's; `None` leaves it to the product.
pub(crate) fn route(st: &mut State, sp: &mut Sp, req: &Req, cx: &mut Cx) -> Option<Reply> {
    match req.path.as_str() {
        CONSUMER => Some(if req.method == Method::POST {
            consume(st, sp, req, cx)
        } else {
            Reply::new(405).header("Allow", "POST")
        }),
        EXTERNAL_LOGIN => Some(Reply::redirect(IDP_SSO)),
        IDP_SSO => Some(idp_page(sp, req)),
        _ => None,
    }
}

fn consume(st: &mut State, sp: &mut Sp, req: &Req, cx: &mut Cx) -> Reply {
    let form = req.form();
    let user = Req::field(&form, "SAMLResponse")
        .and_then(|r| sp.consume(r))
        .and_then(|u| st.user(&u).map(|u| u.name.clone()));
    let Some(user) = user else {
        // Whoever the request came as, this answer names nobody.
        cx.shown = None;
        return Reply::html(
            401,
            "Single sign-on failed",
            "<p>The identity provider's response could not be accepted.</p>",
        );
    };
    if !st.has_access(&user) {
        cx.shown = None;
        cx.login_reason = Some("AUTHORISATION_FAILED");
        return no_permission(st.product);
    }
    sp.accepted += 1;
    auth::open_session(st, req, cx, &user, false);
    cx.login_reason = Some("OK");
    let dest = web::local_destination(Req::field(&form, "RelayState"), "/");
    Reply::redirect(&dest)
}

pub(crate) fn no_permission(product: Product) -> Reply {
    let (title, text) = match product {
        Product::Jira => ("Log in - Jira", "You do not have a permission to log in"),
        Product::Confluence => (
            "Log In - Confluence",
            "You do not have permission to use Confluence",
        ),
        Product::Bitbucket => (
            "Log in - Bitbucket",
            "You do not have permission to access Bitbucket",
        ),
    };
    Reply::html(
        403,
        title,
        &format!("<div class=\"aui-message warning\" id=\"login-error\">{text}.</div>"),
    )
}

/// The test IdP's page: an auto-posting form with a fresh response.
fn idp_page(sp: &mut Sp, req: &Req) -> Reply {
    let user = req
        .q("user")
        .map(str::to_string)
        .or_else(|| sp.idp_user.clone());
    let Some(user) = user.filter(|u| !u.trim().is_empty()) else {
        return Reply::html(401, "Sim IdP", "<p>Nobody is logged in at the IdP.</p>");
    };
    let login = sp.login(&user);
    let Some(response) = sp.issue(&login) else {
        return Reply::html(500, "Sim IdP", "<p>The IdP has no key.</p>");
    };
    let relay = web::local_destination(req.q("RelayState"), "/");
    Reply::html(
        200,
        "Sim IdP",
        &format!(
            "<form method=\"post\" action=\"{CONSUMER}\">\n\
             <input type=\"hidden\" name=\"SAMLResponse\" value=\"{}\">\n\
             <input type=\"hidden\" name=\"RelayState\" value=\"{}\">\n\
             <noscript><button type=\"submit\">Continue</button></noscript>\n\
             </form>\n<script>document.forms[0].submit()</script>",
            escape(&response),
            escape(&relay)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    fn sp_at(now: Timestamp) -> Sp {
        Sp {
            clock: Some(now),
            ..Sp::default()
        }
    }

    #[test]
    fn an_issued_response_is_taken_once_within_its_window() {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let mut sp = sp_at(t0);
        let r = sp.issue(&sp.login("power1")).unwrap();
        // IdPs wrap base64 lines; the response is the same.
        let wrapped: String = r
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n");
        assert_eq!(sp.consume(&wrapped).as_deref(), Some("power1"));
        assert_eq!(sp.consume(&r), None, "single use");
        // Five minutes of validity, a minute of slack before the issue time.
        let r = sp.issue(&sp.login("power2")).unwrap();
        sp.clock = Some(t0 + SignedDuration::from_secs(300));
        assert_eq!(sp.consume(&r), None, "expired");
        sp.clock = Some(t0 - SignedDuration::from_secs(61));
        let r = sp.issue(&SamlLogin {
            issued: t0,
            ..sp.login("power3")
        });
        assert_eq!(sp.consume(&r.unwrap()), None, "not yet valid");
        // Never issued.
        assert_eq!(sp.consume("bm90IGEgcmVzcG9uc2U="), None);
    }
}
