//! Hostile clients against the gate's maps (security review 2026-12,
//! findings 6 and 7): a licensed user flooding the session map with cookie
//! values, and the session map's caps. Over real sockets, in front of the
//! Jira simulator.

mod gate_support;

use gate_support::*;
use std::fmt::Write;

/// The `JSESSIONID` the proxy's jar holds.
fn jsessionid(w: &World, jar: &reqwest::cookie::Jar) -> String {
    let url: reqwest::Url = w.base.parse().unwrap();
    let all = reqwest::cookie::CookieStore::cookies(jar, &url)
        .map(|h| h.to_str().unwrap().to_string())
        .unwrap_or_default();
    all.split("; ")
        .find_map(|c| c.strip_prefix("JSESSIONID="))
        .expect("a JSESSIONID after the login")
        .to_string()
}

/// `JSESSIONID=<real>` then `n` random `JSESSIONID` and `n` random
/// remember-me values, interleaved.
fn flood_cookie(real: &str, n: usize, salt: u64) -> String {
    let mut s = format!("JSESSIONID={real}");
    for i in 0..n as u64 {
        let r: u64 = rand::random::<u64>() ^ (salt << 32) ^ i;
        write!(
            s,
            "; JSESSIONID={r:016x}; seraph.rememberme.cookie=r{r:016x}"
        )
        .unwrap();
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_session_cookies_in_one_request_bind_at_most_one_each() {
    let w = World::start(
        iumgate::product::Product::Jira,
        |_| {},
        // Room for the flood: the review's requests were 60 KB; these are larger.
        |cfg| cfg.proxy.max_header_bytes = 1024 * 1024,
    )
    .await;
    let (c, jar) = browser();
    let (status, path, _) = text(jira_login(&w, &c, "casual01", "demo", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
    assert!(w.holds("casual01"));
    let real = jsessionid(&w, &jar);
    let before = w.gate.sessions.len();

    let plain = reqwest::Client::new();
    let cookie = flood_cookie(&real, 2_000, 0);
    for round in 0..6u64 {
        // A REST call (the fast lane takes it) and a page (hyper).
        let (path, accept) = if round % 2 == 0 {
            ("/rest/api/2/myself", "application/json")
        } else {
            ("/browse/DEMO-1", "text/html")
        };
        let r = plain
            .get(w.url(path))
            .header("cookie", &cookie)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            r.headers().get("x-ausername").map(|v| v.as_bytes()),
            Some(&b"casual01"[..]),
            "{path}: the app reads the first JSESSIONID, the real one"
        );
    }
    // At most the first remember-me value is new (the first JSESSIONID is
    // the real one, already bound).
    let after = w.gate.sessions.len();
    assert!(
        after <= before + 1,
        "sessions tracked went from {before} to {after}"
    );
    assert!(w.holds("casual01"));
    w.stop().await;
}
