//! Jira Data Center's own cluster (issue 19, item 7): a group change made
//! through one node reaches the other nodes' caches a moment later, so a
//! login right after its seat was put in place may be refused the licence
//! (`AUTHORISATION_FAILED`) by a node that has not seen it yet. With
//! `[identity] authorisation_retries` iumgate repeats the login (at most 3
//! times within 2 s, the seat still lent); without it the seat goes back.

use crate::gate_support::{browser, jira_login, text, World};
use iumgate::product::Product;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_refused_while_the_grant_spreads_is_repeated_and_ends_licensed() {
    let w = World::start(
        Product::Jira,
        |_| {},
        |c| c.identity.authorisation_retries = 3,
    )
    .await;
    w.sim.set_access_lag(Duration::from_millis(400));
    let (c, _) = browser();
    let (status, path, _) = text(jira_login(&w, &c, "casual01", "demo", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
    assert!(w.holds("casual01"));
    assert_eq!(w.access_members(), vec!["casual01".to_string()]);
    assert_eq!(w.gate.borrowed_seats(), 0, "kept for good");
    let c_ok = w.gate.counters.login_replays_ok.load(Ordering::Relaxed);
    assert_eq!(c_ok, 1);
    // The session the repeat opened is the browser's.
    let r = c.get(w.url("/browse/DEMO-1")).send().await.unwrap();
    assert_eq!(r.headers()["x-ausername"], "casual01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retries_or_past_two_seconds_the_seat_goes_back() {
    // Off (the default): refused once, the lent seat goes back.
    let w = World::jira().await;
    w.sim.set_access_lag(Duration::from_millis(400));
    let (c, _) = browser();
    let (_, path, _) = text(jira_login(&w, &c, "casual01", "demo", false).await).await;
    assert_ne!(path, "/browse/DEMO-1");
    assert!(!w.holds("casual01"));
    assert!(w.access_members().is_empty());

    // On, but the app's nodes take longer than the repeats may wait.
    let w = World::start(
        Product::Jira,
        |_| {},
        |c| c.identity.authorisation_retries = 3,
    )
    .await;
    w.sim.set_access_lag(Duration::from_secs(10));
    let (c, _) = browser();
    let (_, path, _) = text(jira_login(&w, &c, "casual02", "demo", false).await).await;
    assert_ne!(path, "/browse/DEMO-1");
    assert!(!w.holds("casual02"));
    assert!(w.access_members().is_empty());
    let refused = w
        .gate
        .counters
        .login_replays_refused
        .load(Ordering::Relaxed);
    assert_eq!(refused, 1);
}
