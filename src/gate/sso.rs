//! SAML logins (Atlassian's SSO for Data Center): the IdP's browser form
//! posts `SAMLResponse` to the app's consumer, and the app accepts an
//! assertion once only — so the seat must be in place *before* the app sees
//! it; there is no "forward, then replay".
//!
//! Who the response is for is read on its way through ([`crate::sso::saml`]).
//! Without `[sso.saml] idp_certificate_file` that is a claim: a free seat at
//! most, lent for the exchange and given back unless the app logs that user
//! in. With it, a response iumgate verified (signature over the assertion it
//! reads, audience, destination, time window, never seen before) counts like
//! a proven password: it may take an idle holder's seat, or wait — and a
//! waiting SAML user is sent back through SSO once admitted, since the old
//! assertion cannot be used again.

use super::{Gate, Standing};
use crate::config::SamlConfig;
use crate::sso::saml;
use crate::user::UserId;
use dashmap::DashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// At most this many assertion IDs are remembered (each until its
/// assertion could no longer be accepted anyway).
const MAX_SEEN: usize = 100_000;

/// `[sso.saml]` with its certificates loaded: what verification needs.
#[derive(Debug)]
pub struct SamlVerifier {
    certs: saml::IdpCertificates,
    audience: String,
    destination: String,
    issuer: Option<String>,
    skew: Duration,
}

impl SamlVerifier {
    /// The verifier `cfg` asks for, if any. The config was checked when it
    /// was loaded; a certificate file that cannot be read now leaves SAML
    /// logins unverified (claims: a free seat at most), never more trusted.
    pub fn from_config(cfg: &SamlConfig) -> Option<Arc<SamlVerifier>> {
        let file = cfg.idp_certificate_file.as_ref()?;
        let certs = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|pem| saml::IdpCertificates::from_pem(&pem).map_err(|e| e.to_string()));
        match (certs, &cfg.audience, &cfg.destination) {
            (Ok(certs), Some(audience), Some(destination)) => Some(Arc::new(SamlVerifier {
                certs,
                audience: audience.clone(),
                destination: destination.clone(),
                issuer: cfg.issuer.clone(),
                skew: cfg.clock_skew.get(),
            })),
            (Err(e), _, _) => {
                tracing::error!(file = %file.display(), error = %e, "sso.saml.idp_certificate_file cannot be used: SAML logins count as unverified claims");
                None
            }
            _ => {
                tracing::error!("sso.saml.audience and sso.saml.destination are needed to verify: SAML logins count as unverified claims");
                None
            }
        }
    }
}

/// Assertion IDs seen in verified responses, until they expire: a response
/// posted again is a claim only (the app refuses it anyway).
#[derive(Debug, Default)]
pub(crate) struct SeenAssertions {
    seen: DashMap<String, u64>,
}

impl SeenAssertions {
    /// Records `id` until `until_ms`; `false` if it was seen already (or
    /// the memory is full: then nothing counts as verified, rather than
    /// anything twice).
    fn first_use(&self, id: &str, until_ms: u64, now: u64) -> bool {
        if self.seen.len() >= MAX_SEEN {
            self.prune(now);
            if self.seen.len() >= MAX_SEEN {
                return false;
            }
        }
        match self.seen.entry(id.to_owned()) {
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(v) => {
                v.insert(until_ms);
                true
            }
        }
    }

    pub(crate) fn prune(&self, now: u64) {
        self.seen.retain(|_, until| *until > now);
    }
}

/// Who a SAML response is for, and how sure iumgate is of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SamlClaim {
    pub user: UserId,
    pub standing: Standing,
}

/// Logged once per process: encrypted assertions are forwarded unread.
static ENCRYPTED_SEEN: AtomicBool = AtomicBool::new(false);

impl Gate {
    /// Reads a SAML consumer post (`SAMLResponse`, read as the servlet
    /// container reads the form). `None`: no user can be read (no or bad
    /// response, an encrypted assertion): the post is forwarded as any
    /// request.
    pub(crate) fn saml_claim(
        &self,
        s: &super::GateSettings,
        query: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Option<SamlClaim> {
        let encoded = crate::identity::form_parameter(query, content_type, body, "SAMLResponse")?;
        let limits = saml::Limits {
            max_encoded: s.saml_max_response,
            ..saml::Limits::default()
        };
        let xml = match saml::decode(&encoded, &limits) {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %crate::proxy::error_chain(&e), "a SAML response that does not decode");
                return None;
            }
        };
        let assertion = match saml::read_xml(&xml, &limits) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %crate::proxy::error_chain(&e), "a SAML response that does not parse");
                return None;
            }
        };
        if assertion.is_encrypted() {
            self.counters.saml_encrypted.fetch_add(1, Ordering::Relaxed);
            if !ENCRYPTED_SEEN.swap(true, Ordering::Relaxed) {
                tracing::warn!("the IdP encrypts its SAML assertions: iumgate cannot read who logs in, and forwards them as they are (the user is learned from the app's answer); iumgate_saml_encrypted_total counts them");
            }
            return None;
        }
        let attribute = s.saml_attribute.as_deref();
        let named = |name: Option<&str>| {
            name.filter(|n| crate::identity::valid_username(n))
                .map(UserId::new)
        };
        if let Some(v) = &s.saml {
            let now = self.now();
            let ts = jiff::Timestamp::from_millisecond(now as i64).ok()?;
            let expected = saml::Expected {
                audience: v.audience.clone(),
                destination: v.destination.clone(),
                issuer: v.issuer.clone(),
                now: ts,
                clock_skew: v.skew,
            };
            match saml::verify(&xml, &v.certs, &expected, &limits) {
                Ok(verified) => {
                    let user = named(verified.username(attribute))?;
                    let until =
                        u64::try_from(verified.replayable_until.as_millisecond()).unwrap_or(0);
                    if self
                        .saml_seen
                        .first_use(verified.assertion_id(), until, now)
                    {
                        return Some(SamlClaim {
                            user,
                            standing: Standing::Verified,
                        });
                    }
                    tracing::warn!(user = %user, "a SAML assertion was posted again: a claim only");
                }
                Err(e) => {
                    tracing::warn!(error = %crate::proxy::error_chain(&e), "a SAML response did not verify: its user is a claim only");
                }
            }
        }
        Some(SamlClaim {
            user: named(assertion.username(attribute))?,
            standing: Standing::Unconfirmed,
        })
    }

    /// Forgets assertion IDs past their time (the prune job).
    pub fn prune_saml_seen(&self, now: u64) {
        self.saml_seen.prune(now);
    }
}
