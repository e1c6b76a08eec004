//! What the gate reads from headers: the upstream's `X-AUSERNAME` and
//! `X-Seraph-LoginReason` (trusted, but still bytes off a socket), and the
//! client's `Authorization` (Basic user name, bearer token). Input lines are
//! the values, in that order, repeated.
#![no_main]

use http::{header, HeaderMap, HeaderName, HeaderValue};
use iumgate::identity::{
    basic_user, bearer_token, login_reason, upstream_user, valid_username, UpstreamUser,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let names = [
        HeaderName::from_static("x-ausername"),
        HeaderName::from_static("x-seraph-loginreason"),
        header::AUTHORIZATION,
    ];
    let mut h = HeaderMap::new();
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            h.append(names[i % names.len()].clone(), v);
        }
    }
    if let Some(UpstreamUser::User(u)) = upstream_user(&h, None) {
        assert!(valid_username(u.as_str()));
        assert!(!u.as_str().eq_ignore_ascii_case("anonymous"));
    }
    let _ = login_reason(&h);
    if let Some(u) = basic_user(&h) {
        assert!(valid_username(u.as_str()));
    }
    if let Some(t) = bearer_token(&h) {
        assert!(!t.is_empty());
    }
});
