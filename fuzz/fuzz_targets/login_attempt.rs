//! Login bodies (form and JSON) as a client sends them: `identity::login_attempt`.
//! Byte 0 picks the product, byte 1 the login path and content type; the
//! rest is the body prefix the gate peeks at.
#![no_main]

use iumgate::identity::{login_attempt, valid_username};
use iumgate::product::Product;
use libfuzzer_sys::fuzz_target;

const TYPES: [Option<&str>; 5] = [
    None,
    Some("application/x-www-form-urlencoded"),
    Some("application/json"),
    Some("application/JSON; charset=utf-8"),
    Some("text/plain"),
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let product = [Product::Jira, Product::Confluence, Product::Bitbucket][data[0] as usize % 3];
    let profile = product.profile();
    let mut paths: Vec<&str> = profile.login_forms.iter().map(|f| f.path).collect();
    paths.extend(profile.json_login);
    paths.push("/not/a/login");
    let path = paths[(data[1] as usize >> 3) % paths.len()];
    let ct = TYPES[(data[1] & 7) as usize % TYPES.len()];
    if let Some(a) = login_attempt(profile, path, ct, &data[2..]) {
        // Whatever is recognised is a name the gate may act on.
        assert!(valid_username(a.user.as_str()), "{:?}", a.user);
        assert!(!a.user.as_str().chars().any(char::is_control));
    }
});
