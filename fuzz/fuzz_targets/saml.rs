//! SAML responses as the browser posts them: `sso::saml::read` on the
//! base64 form field, `read_xml` and `verify` (with it the exclusive
//! canonicalisation) on the XML. Byte 0 picks the mode:
//!
//! - 0: the rest is the `SAMLResponse` field (base64 text);
//! - 1: the rest is the XML itself;
//! - 2: the rest edits a valid signed response from the simulator's IdP
//!   (bytes 1–2 pick where, byte 3 how much to cut, the rest is spliced
//!   in), so the signature and canonicalisation paths are reached without a
//!   corpus.
//!
//! Nothing may panic, and nothing but the one signed response verifies.
#![no_main]

use iumgate::sim::saml_idp::{SamlIdp, SamlLogin};
use iumgate::sso::saml::{self, Expected, IdpCertificates, Limits};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const SP: &str = "https://jira.example.com";
const ACS: &str = "https://jira.example.com/plugins/servlet/samlconsumer";

struct Fixture {
    xml: String,
    certs: IdpCertificates,
    expected: Expected,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let idp = SamlIdp::new("https://idp.example.com").expect("sim IdP");
        let login = SamlLogin::new("fuzz", SP, ACS);
        Fixture {
            xml: idp.response_xml(&login),
            certs: IdpCertificates::from_pem(idp.certificate_pem()).expect("certificate"),
            expected: Expected::new(SP, ACS, login.issued),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_encoded: 64 * 1024,
        ..Limits::default()
    };
    match mode % 3 {
        0 => {
            let b64 = String::from_utf8_lossy(rest);
            if let Ok(a) = saml::read(&b64, &limits) {
                let _ = a.username(None);
            }
        }
        1 => xml(&String::from_utf8_lossy(rest), &limits, false),
        _ => {
            let f = fixture();
            let (at, cut, splice) = match rest {
                [a, b, c, splice @ ..] => {
                    (u16::from_le_bytes([*a, *b]) as usize, *c as usize, splice)
                }
                _ => return,
            };
            let bytes = f.xml.as_bytes();
            let at = at % bytes.len();
            let end = (at + cut).min(bytes.len());
            let mut edited = bytes[..at].to_vec();
            edited.extend_from_slice(splice);
            edited.extend_from_slice(&bytes[end..]);
            let unchanged = edited == bytes;
            xml(&String::from_utf8_lossy(&edited), &limits, unchanged);
        }
    }
});

fn xml(text: &str, limits: &Limits, unchanged: bool) {
    let f = fixture();
    if let Ok(a) = saml::read_xml(text, limits) {
        let _ = (
            a.username(None),
            a.username(Some("email")),
            format!("{a:?}"),
        );
    }
    match saml::verify(text, &f.certs, &f.expected, limits) {
        Ok(v) => {
            // Only the IdP's own response verifies (an edit that leaves
            // the signed bytes alone, such as white space between the
            // Response's children, may too: then the user is unchanged).
            assert_eq!(v.username(None), Some("fuzz"), "edited: {}", !unchanged);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
