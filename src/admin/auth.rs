//! The admin token, compared in constant time. Scripts send
//! `Authorization: Bearer <token>`; a browser answers the Basic challenge of
//! the HTML page with any user name and the token as password.
//!
//! Why not a cookie: cookies ignore the port, so a cookie set by the admin
//! listener would also travel through the proxy on the same host to the
//! upstream app. Basic credentials are kept per origin (port included).

use crate::config::Secret;
use base64::Engine;
use http::{header, HeaderMap};
use subtle::ConstantTimeEq;

/// What a request may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// No or a wrong token: 401.
    Denied,
    /// No token is configured: the protected pages are off.
    NotConfigured,
}

#[derive(Debug)]
pub struct AdminAuth {
    token: Option<Secret>,
}

/// Equal in time independent of where the strings differ (and, since both
/// are hashed to 32 bytes first, of their lengths).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let ha = blake3::hash(a);
    let hb = blake3::hash(b);
    ha.as_bytes().ct_eq(hb.as_bytes()).into()
}

impl AdminAuth {
    pub fn new(token: Option<Secret>) -> AdminAuth {
        AdminAuth { token }
    }

    pub fn is_configured(&self) -> bool {
        self.token.is_some()
    }

    pub fn check(&self, headers: &HeaderMap) -> Access {
        let Some(token) = &self.token else {
            return Access::NotConfigured;
        };
        let Some(presented) = presented(headers) else {
            return Access::Denied;
        };
        if ct_eq(&presented, token.expose().as_bytes()) {
            Access::Allowed
        } else {
            Access::Denied
        }
    }
}

/// The token from `Bearer <token>` or the password of `Basic user:token`.
fn presented(headers: &HeaderMap) -> Option<Vec<u8>> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        return Some(decoded[colon + 1..].to_vec());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn auth_header(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    fn basic(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    #[test]
    fn bearer_or_basic_password_opens_the_pages() {
        let auth = AdminAuth::new(Some(Secret::new("s3cret-token")));
        assert_eq!(auth.check(&HeaderMap::new()), Access::Denied);
        assert_eq!(
            auth.check(&auth_header("Bearer s3cret-token")),
            Access::Allowed
        );
        assert_eq!(
            auth.check(&auth_header("bearer  s3cret-token")),
            Access::Allowed
        );
        assert_eq!(
            auth.check(&auth_header("Bearer s3cret-tokeN")),
            Access::Denied
        );
        assert_eq!(auth.check(&auth_header("Bearer s3cret")), Access::Denied);
        assert_eq!(
            auth.check(&auth_header(&basic("admin:s3cret-token"))),
            Access::Allowed
        );
        assert_eq!(
            auth.check(&auth_header(&basic(":s3cret-token"))),
            Access::Allowed
        );
        assert_eq!(
            auth.check(&auth_header(&basic("s3cret-token:x"))),
            Access::Denied
        );
        assert_eq!(
            auth.check(&auth_header("Basic !!notbase64")),
            Access::Denied
        );
    }

    #[test]
    fn without_a_token_the_pages_are_off() {
        let auth = AdminAuth::new(None);
        assert!(!auth.is_configured());
        assert_eq!(
            auth.check(&auth_header("Bearer anything")),
            Access::NotConfigured
        );
    }

    #[test]
    fn constant_time_comparison_is_still_a_comparison() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(!ct_eq(b"", b"a"));
    }
}
