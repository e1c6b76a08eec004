//! Hostile clients against the gate's maps (security review 2026-12,
//! findings 6 and 7): a licensed user flooding the session map with cookie
//! values, and the session map's caps. Over real sockets, in front of the
//! Jira simulator.

use crate::gate_support::*;
use iumgate::clock::Clock;
use iumgate::identity::Kind;
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

async fn metric(w: &World, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{}/metrics", w.run.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_remember_me_value_on_every_request_stays_within_the_users_cap() {
    let w = World::start(
        iumgate::product::Product::Jira,
        |_| {},
        |cfg| cfg.identity.max_sessions_per_user = 4,
    )
    .await;
    let (c, jar) = browser();
    let (status, path, _) = text(jira_login(&w, &c, "casual01", "demo", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
    let real = jsessionid(&w, &jar);
    // One new binding a request: the real session first, then a new
    // remember-me value (the first of its name) each time.
    let plain = reqwest::Client::new();
    for i in 0..50u64 {
        let cookie = format!("JSESSIONID={real}; seraph.rememberme.cookie=r{i:08}");
        let r = plain
            .get(w.url("/rest/api/2/myself"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-ausername"], "casual01", "request {i}");
    }
    let user = iumgate::user::UserId::new("casual01");
    assert_eq!(w.gate.sessions.user_bindings(&user), 4);
    assert_eq!(w.gate.sessions.limits().per_user, 4, "the configured cap");
    // The real session, seen on every request, was never the one dropped.
    let r = c.get(w.url("/browse/DEMO-2")).send().await.unwrap();
    assert_eq!(r.headers()["x-ausername"], "casual01");
    assert!(w.holds("casual01"));
    let dropped = metric(&w, "iumgate_sessions_dropped_total{reason=\"per_user\"}").await;
    assert!(dropped.is_some_and(|n| n >= 45.0), "{dropped:?}");
    assert_eq!(
        metric(&w, "iumgate_sessions_dropped_total{reason=\"total\"}").await,
        Some(0.0)
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_session_map_keeps_the_sessions_it_has() {
    let w = World::start(
        iumgate::product::Product::Jira,
        |_| {},
        |cfg| cfg.identity.max_sessions = 2,
    )
    .await;
    let (ann, _) = browser();
    let (status, path, _) = text(jira_login(&w, &ann, "casual01", "demo", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
    let (bob, _) = browser();
    let (status, path, _) = text(jira_login(&w, &bob, "casual02", "demo", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
    assert_eq!(w.gate.sessions.len(), 2);
    // A third session and a flood of remember-me values: refused, counted.
    let (carl, _) = browser();
    let _ = jira_login(&w, &carl, "casual03", "demo", false).await;
    let plain = reqwest::Client::new();
    for i in 0..20 {
        let _ = plain
            .get(w.url("/rest/api/2/myself"))
            .header("cookie", format!("seraph.rememberme.cookie=x{i}"))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(w.gate.sessions.len(), 2);
    // The two sessions it has still name their users.
    for (c, u) in [(&ann, "casual01"), (&bob, "casual02")] {
        let r = c.get(w.url("/browse/DEMO-3")).send().await.unwrap();
        assert_eq!(r.headers()["x-ausername"], u);
        assert!(w.holds(u));
    }
    let refused = metric(&w, "iumgate_sessions_dropped_total{reason=\"total\"}").await;
    assert!(refused.is_some_and(|n| n >= 1.0), "{refused:?}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluence_whoami_cache_is_bounded_and_pruned_by_the_job_not_by_requests() {
    let w = World::start(
        iumgate::product::Product::Confluence,
        |_| {},
        |cfg| cfg.proxy.max_header_bytes = 1024 * 1024,
    )
    .await;
    let plain = no_redirect();
    let anonymous = &w.gate.anonymous;
    let sessions = w.gate.sessions.len();

    // Anonymous requests, each with 2,000 fresh JSESSIONID and remember-me
    // values: one whoami call each, and at most one cached key a name.
    let whoami = "/rest/api/user/current";
    let calls = w.sim.count(whoami);
    for i in 0..3u64 {
        let mut cookie = String::from("a=b");
        for j in 0..2_000u64 {
            let r: u64 = rand::random::<u64>() ^ (i << 40) ^ j;
            write!(cookie, "; JSESSIONID={r:016x}; seraph.confluence={r:x}").unwrap();
        }
        let r = plain
            .get(w.url("/display/DEMO/Home"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success() || r.status().is_redirection());
    }
    assert_eq!(w.sim.count(whoami) - calls, 3);
    assert!(anonymous.len() <= 6, "{} cached", anonymous.len());
    assert_eq!(w.gate.sessions.len(), sessions);

    // Full of entries that expired a minute ago: a request with one more
    // unknown session is answered as before, the cache does not grow, and
    // the request walks nothing (only the prune job does).
    let now = w.clock.now_ms();
    let room = anonymous.capacity() - anonymous.len();
    // (Keys as the gate makes them: keyed hashes, uniform.)
    for i in 0..room as u64 + 50 {
        let k = w.gate.sessions.hash(Kind::Session, &format!("filler{i}"));
        anonymous.remember(k, now + 1_000);
    }
    assert_eq!(anonymous.len(), anonymous.capacity());
    let refused = anonymous.refused();
    w.advance_min(1);
    let prunes = anonymous.prunes();
    let started = std::time::Instant::now();
    let r = plain
        .get(w.url("/display/DEMO/Home"))
        .header("cookie", "JSESSIONID=one-more-unknown")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success() || r.status().is_redirection());
    let took = started.elapsed();
    assert!(anonymous.len() <= anonymous.capacity());
    assert!(anonymous.refused() > refused, "the full cache refused it");
    if anonymous.prunes() == prunes {
        // (The job did not happen to run meanwhile.)
        assert_eq!(anonymous.len(), anonymous.capacity(), "not pruned inline");
    }
    assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    let text = reqwest::get(format!("http://{}/metrics", w.run.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("iumgate_whoami_cache_refused_total ") && !l.ends_with(" 0")),
        "{text}"
    );

    // The prune job, at the gate's (manual) clock, drops what expired.
    let report = iumgate::jobs::prune(&w.gate, w.clock.now_ms());
    assert!(anonymous.len() <= 6, "{} left", anonymous.len());
    if anonymous.prunes() == prunes + 1 {
        assert!(report.anonymous >= room, "{report:?}");
    }
    w.stop().await;
}
