//! Login requests (form, JSON, today's JSON login page) as a client sends them:
//! `identity::login_attempt`, with the app's reading as the oracle. Byte 0
//! picks the product, byte 1 the login path and content type, byte 2 how
//! many of the following bytes are the query string; the rest is the body.
//! Whenever the gate claims a user for a form login, the servlet container's
//! reading of the same request (`sim::servlet_parameter`, query first, body
//! only as an exact form) logs in that very user.
#![no_main]

use iumgate::identity::{login_attempt, valid_username};
use iumgate::product::Product;
use iumgate::user::UserId;
use libfuzzer_sys::fuzz_target;

const TYPES: [Option<&str>; 7] = [
    None,
    Some("application/x-www-form-urlencoded"),
    Some("application/json"),
    Some("application/JSON; charset=utf-8"),
    Some("text/plain"),
    Some("application/x-www-form-urlencoded; x=json"),
    Some("Application/X-WWW-Form-Urlencoded ;charset=UTF-8"),
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let product = [Product::Jira, Product::Confluence, Product::Bitbucket][data[0] as usize % 3];
    let profile = product.profile();
    let mut paths: Vec<&str> = profile.login_forms.iter().map(|f| f.path).collect();
    paths.extend(profile.json_login);
    // Today's login page (JSON), on both paths.
    paths.extend(profile.platform_logins);
    paths.push("/not/a/login");
    let path = paths[(data[1] as usize >> 3) % paths.len()];
    let ct = TYPES[(data[1] & 7) as usize % TYPES.len()];
    let rest = &data[3..];
    let split = (data[2] as usize).min(rest.len());
    let (query, body) = rest.split_at(split);
    let query = std::str::from_utf8(query).ok().filter(|q| !q.is_empty());
    if let Some(a) = login_attempt(profile, path, query, ct, body) {
        // Whatever is recognised is a name the gate may act on.
        assert!(valid_username(a.user.as_str()), "{:?}", a.user);
        assert!(!a.user.as_str().chars().any(char::is_control));
        if let Some(form) = profile.login_form(path) {
            let app = iumgate::sim::servlet_parameter(query, ct, body, form.user_field);
            assert_eq!(
                app.map(|u| UserId::new(&u)),
                Some(a.user),
                "the app logs in another user"
            );
        } else {
            // A JSON login: the app's JSON reader (serde_json's `Value`
            // keeps the last of a repeated key) names the same user.
            let v: serde_json::Value = serde_json::from_slice(body).expect("the gate read JSON");
            let app = v["username"].as_str().map(UserId::new);
            assert_eq!(app, Some(a.user), "the app logs in another user");
        }
    }
});
