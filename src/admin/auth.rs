//! The admin token: `Authorization: Bearer <token>` for scripts, or a cookie
//! the login form sets for a browser. Compared in constant time.

use crate::config::Secret;
use http::{header, HeaderMap};
use subtle::ConstantTimeEq;

/// The browser's admin cookie (a keyed hash of the token, never the token).
pub const COOKIE: &str = "iumgate_admin";

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
    /// The cookie value that proves the token: keyed with a per-process
    /// random key, so it is useless to another process and reveals nothing.
    cookie: Option<String>,
}

/// Equal in time independent of where the strings differ (and, since both
/// are hashed to 32 bytes first, of their lengths).
pub fn ct_eq(a: &str, b: &str) -> bool {
    let ha = blake3::hash(a.as_bytes());
    let hb = blake3::hash(b.as_bytes());
    ha.as_bytes().ct_eq(hb.as_bytes()).into()
}

impl AdminAuth {
    pub fn new(token: Option<Secret>) -> AdminAuth {
        let key: [u8; 32] = rand::random();
        let cookie = token
            .as_ref()
            .map(|t| blake3::keyed_hash(&key, t.expose().as_bytes()).to_hex().to_string());
        AdminAuth { token, cookie }
    }

    pub fn is_configured(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `presented` is the token.
    pub fn token_matches(&self, presented: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| ct_eq(presented, t.expose()))
    }

    /// `Set-Cookie` value after a successful login form.
    pub fn set_cookie(&self) -> Option<String> {
        self.cookie.as_ref().map(|c| {
            format!("{COOKIE}={c}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200")
        })
    }

    pub fn check(&self, headers: &HeaderMap) -> Access {
        let (Some(token), Some(cookie)) = (&self.token, &self.cookie) else {
            return Access::NotConfigured;
        };
        if let Some(presented) = bearer(headers) {
            if ct_eq(presented, token.expose()) {
                return Access::Allowed;
            }
        }
        for (name, value) in crate::identity::cookies(headers) {
            if name == COOKIE && ct_eq(value, cookie) {
                return Access::Allowed;
            }
        }
        Access::Denied
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(name: header::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn bearer_token_and_cookie_open_the_pages() {
        let auth = AdminAuth::new(Some(Secret::new("s3cret-token")));
        assert_eq!(auth.check(&HeaderMap::new()), Access::Denied);
        assert_eq!(
            auth.check(&with(header::AUTHORIZATION, "Bearer s3cret-token")),
            Access::Allowed
        );
        assert_eq!(
            auth.check(&with(header::AUTHORIZATION, "bearer  s3cret-token")),
            Access::Allowed
        );
        assert_eq!(
            auth.check(&with(header::AUTHORIZATION, "Bearer s3cret-tokeN")),
            Access::Denied
        );
        assert_eq!(
            auth.check(&with(header::AUTHORIZATION, "Basic s3cret-token")),
            Access::Denied
        );
        let set = auth.set_cookie().unwrap();
        let pair = set.split(';').next().unwrap();
        assert!(!pair.contains("s3cret"), "the cookie must not carry the token");
        assert_eq!(auth.check(&with(header::COOKIE, pair)), Access::Allowed);
        assert_eq!(
            auth.check(&with(header::COOKIE, &format!("{COOKIE}=s3cret-token"))),
            Access::Denied
        );
    }

    #[test]
    fn without_a_token_the_pages_are_off() {
        let auth = AdminAuth::new(None);
        assert_eq!(
            auth.check(&with(header::AUTHORIZATION, "Bearer anything")),
            Access::NotConfigured
        );
        assert!(!auth.token_matches(""));
    }

    #[test]
    fn constant_time_comparison_is_still_a_comparison() {
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "abcd"));
        assert!(!ct_eq("", "a"));
    }
}
