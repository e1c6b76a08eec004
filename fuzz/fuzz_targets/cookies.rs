//! Cookie parsing of requests and `Set-Cookie` learning from responses:
//! `identity::cookies`, `session_cookies`, `set_session_cookies`, and the
//! session map's hashing of whatever value comes out. Each input line is
//! one header value; byte 0 picks the product.
#![no_main]

use http::{header, HeaderMap, HeaderValue};
use iumgate::identity::{cookies, session_cookies, set_session_cookies, Kind, Sessions};
use iumgate::product::Product;
use iumgate::user::UserId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let product = [Product::Jira, Product::Confluence, Product::Bitbucket][first as usize % 3];
    let profile = product.profile();
    let mut req = HeaderMap::new();
    let mut resp = HeaderMap::new();
    for line in rest.split(|b| *b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            req.append(header::COOKIE, v.clone());
            resp.append(header::SET_COOKIE, v);
        }
    }
    let sessions = Sessions::new([7; 32]);
    let user = UserId::new("fuzz");
    for (name, value) in cookies(&req) {
        assert!(!name.contains(';') && !value.contains(';'));
    }
    for (kind, value) in session_cookies(profile, &req) {
        assert!(!value.is_empty());
        sessions.bind(kind, value, &user, 1);
        assert_eq!(sessions.lookup(kind, value, 2), Some(user.clone()));
    }
    for (kind, value) in set_session_cookies(profile, &resp) {
        assert!(matches!(kind, Kind::Session | Kind::RememberMe));
        if let Some(v) = value {
            assert!(!v.is_empty());
            sessions.bind(kind, v, &user, 3);
        }
    }
});
