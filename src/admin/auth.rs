//! The admin token, compared in constant time. Scripts send
//! `Authorization: Bearer <token>`; a browser answers the Basic challenge of
//! the HTML page with any user name and the token as password, or opens a
//! link `/iumgate/admin/login?token=…` (what `iumgate demo` prints), which
//! sets a cookie and sends it on to `/iumgate/admin/`.
//!
//! That cookie is scoped: cookies ignore the port, so a cookie set by the
//! admin listener also travels to the proxy on the same host. It is sent
//! only under `Path=/iumgate/admin/`, a path under iumgate's own prefix that
//! the proxy answers itself and never forwards, so it never reaches the
//! upstream app. Its value is not the token but a keyed hash of it (a key
//! made at start): a cookie seen elsewhere does not give the token away,
//! and a restart or a new token ends every such session.

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

pub struct AdminAuth {
    token: Option<Secret>,
    /// The cookie's key (random per process).
    cookie_key: [u8; 32],
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// The admin page's cookie (sent only under [`COOKIE_PATH`]).
pub const COOKIE: &str = "iumgate_admin";
/// Where the browser sends [`COOKIE`]: under iumgate's own prefix, which
/// the proxy never forwards.
pub const COOKIE_PATH: &str = "/iumgate/admin/";

/// Equal in time independent of where the strings differ (and, since both
/// are hashed to 32 bytes first, of their lengths).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let ha = blake3::hash(a);
    let hb = blake3::hash(b);
    ha.as_bytes().ct_eq(hb.as_bytes()).into()
}

impl AdminAuth {
    pub fn new(token: Option<Secret>) -> AdminAuth {
        AdminAuth {
            token,
            cookie_key: rand::random(),
        }
    }

    /// The cookie value a browser gets for the token (hex of a keyed hash:
    /// never the token itself).
    fn session_value(&self, token: &Secret) -> String {
        blake3::keyed_hash(&self.cookie_key, token.expose().as_bytes())
            .to_hex()
            .to_string()
    }

    /// `?token=…` of a login link: the `Set-Cookie` value when it is the
    /// token (compared in constant time), None otherwise.
    pub fn login(&self, presented: &[u8], secure: bool) -> Option<String> {
        let token = self.token.as_ref()?;
        if !ct_eq(presented, token.expose().as_bytes()) {
            return None;
        }
        let secure = if secure { "; Secure" } else { "" };
        Some(format!(
            "{COOKIE}={}; Path={COOKIE_PATH}; HttpOnly; SameSite=Strict{secure}",
            self.session_value(token)
        ))
    }

    pub fn is_configured(&self) -> bool {
        self.token.is_some()
    }

    pub fn check(&self, headers: &HeaderMap) -> Access {
        let Some(token) = &self.token else {
            return Access::NotConfigured;
        };
        if let Some(presented) = presented(headers) {
            return if ct_eq(&presented, token.expose().as_bytes()) {
                Access::Allowed
            } else {
                Access::Denied
            };
        }
        let session = self.session_value(token);
        let cookie_ok = crate::identity::cookies(headers)
            .any(|(name, value)| name == COOKIE && ct_eq(value.as_bytes(), session.as_bytes()));
        if cookie_ok {
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
    fn a_login_link_gives_a_scoped_cookie_that_is_not_the_token() {
        let auth = AdminAuth::new(Some(Secret::new("s3cret-token")));
        assert_eq!(auth.login(b"s3cret-tokeN", false), None);
        assert_eq!(auth.login(b"", false), None);
        let set = auth.login(b"s3cret-token", false).unwrap();
        assert!(!set.contains("s3cret-token"), "{set}");
        assert!(
            set.contains("; Path=/iumgate/admin/; HttpOnly; SameSite=Strict"),
            "{set}"
        );
        assert!(auth
            .login(b"s3cret-token", true)
            .unwrap()
            .ends_with("; Secure"));
        let pair = set.split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
        assert_eq!(auth.check(&h), Access::Allowed);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("iumgate_admin=s3cret-token"),
        );
        assert_eq!(auth.check(&h), Access::Denied, "the token is no cookie");
        // Another process (another key) does not take it.
        let other = AdminAuth::new(Some(Secret::new("s3cret-token")));
        h.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
        assert_eq!(other.check(&h), Access::Denied);
        // Without a token, no login.
        assert_eq!(AdminAuth::new(None).login(b"x", false), None);
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
