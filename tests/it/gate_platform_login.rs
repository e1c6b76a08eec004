//! Today's login page (Jira 10, Confluence 9, Bitbucket 9: JSON to
//! `/rest/tsv/latest/authenticate`) and its two-step verification, through
//! iumgate in front of the simulator on real sockets: the seat is in place
//! before the app checks the licence, a wrong password or code costs nobody,
//! an abandoned second step gives the seat back, and a login that must wait
//! is sent to the waiting room by a `redirectUrl` the page follows.

use crate::gate_support::*;
use iumgate::product::Product;
use iumgate::sim::SimTwoStep;
use serde_json::json;

const LOGIN: &str = "/rest/tsv/latest/authenticate";
const CODE: &str = "/rest/tsv/latest/authenticate/totp-code";

async fn platform_login(
    w: &World,
    c: &reqwest::Client,
    user: &str,
    password: &str,
) -> reqwest::Response {
    c.post(w.url(LOGIN))
        .header("x-atlassian-token", "no-check")
        .json(&json!({
            "username": user,
            "password": password,
            "rememberMe": false,
            "targetUrl": "/browse/DEMO-1",
        }))
        .send()
        .await
        .unwrap()
}

async fn code(w: &World, c: &reqwest::Client, code: &str) -> reqwest::Response {
    c.post(w.url(CODE))
        .header("x-atlassian-token", "no-check")
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap()
}

fn two_step(users: &'static [&'static str]) -> impl FnOnce(&mut iumgate::sim::SimConfig) {
    move |sc| {
        for u in users {
            sc.two_step.push(SimTwoStep::new(u, "424242", &["r-1"]));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_login_gets_its_licence_before_the_app_checks_it_and_a_wrong_password_none() {
    let w = World::jira().await;
    let (c, _) = browser();
    let r = platform_login(&w, &c, "casual01", "wrong").await;
    assert_eq!(r.status(), 401);
    assert!(
        w.access_members().is_empty(),
        "a wrong password costs nobody"
    );
    assert_eq!(w.in_use(), 0);

    let r = platform_login(&w, &c, "casual01", "demo").await;
    assert_eq!(r.status(), 200, "the app saw the licence in place");
    assert_eq!(r.headers()["x-ausername"], "casual01");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["redirectUrl"], "/browse/DEMO-1");
    assert_eq!(w.access_members(), vec!["casual01".to_string()]);
    assert_eq!(w.gate.borrowed_seats(), 0, "confirmed for good");
    let (status, _, _) = text(c.get(w.url("/browse/DEMO-1")).send().await.unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_step_verification_keeps_the_seat_for_the_code_and_a_wrong_code_may_be_followed_by_the_right_one(
) {
    for product in [Product::Jira, Product::Confluence, Product::Bitbucket] {
        let w = World::start(product, two_step(&["casual01"]), |_| {}).await;
        let (c, _) = browser();
        let r = platform_login(&w, &c, "casual01", "demo").await;
        assert_eq!(r.status(), 412, "{product:?}: a code step follows");
        assert!(
            w.holds("casual01"),
            "{product:?}: the seat is in place for it"
        );
        assert_eq!(w.gate.second_steps_waiting(), 1);

        let r = code(&w, &c, "000000").await;
        assert_eq!(r.status(), 401, "{product:?}: a wrong code");
        assert!(w.holds("casual01"));

        let r = code(&w, &c, "424242").await;
        assert_eq!(r.status(), 200, "{product:?}: the right one");
        assert_eq!(r.headers()["x-ausername"], "casual01");
        assert!(w.holds("casual01"));
        assert_eq!(w.gate.second_steps_waiting(), 0);
        assert_eq!(w.gate.borrowed_seats(), 0, "{product:?}: kept for good");
        assert_eq!(w.access_members(), vec!["casual01".to_string()]);
    }
}

/// A recovery code instead of the TOTP code: the second step's other path
/// (`…/authenticate/recovery-code`), each code good once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_code_ends_licensed_and_a_used_one_does_not() {
    let w = World::start(Product::Jira, two_step(&["casual03"]), |_| {}).await;
    let recovery = |c: &reqwest::Client, code: &'static str| {
        c.post(w.url("/rest/tsv/1.0/authenticate/recovery-code"))
            .header("x-atlassian-token", "no-check")
            .json(&json!({ "code": code }))
            .send()
    };
    let (c, _) = browser();
    assert_eq!(
        platform_login(&w, &c, "casual03", "demo").await.status(),
        412
    );
    let r = recovery(&c, "r-1").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ausername"], "casual03");
    assert_eq!(w.gate.second_steps_waiting(), 0);
    assert_eq!(w.access_members(), vec!["casual03".to_string()]);
    // Another browser, the same recovery code: refused; the seat the
    // password step kept for it is given back once the step times out, and
    // casual03's first session keeps the seat it holds anyway.
    let (b, _) = browser();
    assert_eq!(
        platform_login(&w, &b, "casual03", "demo").await.status(),
        412
    );
    assert_eq!(recovery(&b, "r-1").await.unwrap().status(), 401);
    assert_eq!(w.access_members(), vec!["casual03".to_string()]);
    let r = c.get(w.url("/browse/DEMO-1")).send().await.unwrap();
    assert_eq!(r.headers()["x-ausername"], "casual03");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_abandoned_before_its_code_gives_the_seat_back() {
    let w = World::start(Product::Jira, two_step(&["casual02"]), |_| {}).await;
    let (c, _) = browser();
    assert_eq!(
        platform_login(&w, &c, "casual02", "demo").await.status(),
        412
    );
    assert!(w.holds("casual02"));
    w.advance_min(6);
    let now = w.gate.now();
    assert_eq!(w.gate.expire_second_steps(now).await, 1);
    assert!(!w.holds("casual02"), "the seat went back");
    assert!(w.access_members().is_empty(), "and left the access group");
}

/// Seven holders, all active: a proven password waits; the page is told to
/// go to the waiting room, with the cookie the queue API needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_login_that_must_wait_is_sent_to_the_waiting_room_by_redirect_url() {
    let w = World::jira().await;
    fill(&w, &SEVEN).await;
    let (c, jar) = browser();
    // casual08 has no seat; the pool is full of active holders.
    let r = platform_login(&w, &c, "casual08", "demo").await;
    assert_eq!(r.status(), 200);
    let wait_cookie = set_cookie(&r, "iumgate_wait");
    assert!(wait_cookie.is_some(), "the queue API's cookie");
    let body: serde_json::Value = r.json().await.unwrap();
    let to = body["redirectUrl"].as_str().unwrap().to_string();
    assert!(to.starts_with("/iumgate/wait?to="), "{body}");
    assert_eq!(body["state"], "waiting");
    assert_eq!(w.in_use(), 7, "nobody evicted");
    // The page follows it: the waiting room answers for casual08.
    let (status, _, page) = text(c.get(w.url(&to)).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(page.contains("iumgate"), "the waiting page");
    drop(jar);
}

/// `[queue] platform_login_wait = "see_other"`: the same waiting login is
/// sent to the waiting room by a 303 its `fetch` follows instead (what the
/// real page does with a `redirectUrl` on any status is unconfirmed, so
/// either is configurable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_login_that_must_wait_may_be_sent_by_see_other_instead() {
    let w = World::start(
        Product::Jira,
        |_| {},
        |c| {
            c.queue.platform_login_wait = iumgate::config::PlatformLoginWait::SeeOther;
        },
    )
    .await;
    fill(&w, &SEVEN).await;
    let (_, jar) = browser();
    let c = browser_no_redirect(jar);
    let r = platform_login(&w, &c, "casual08", "demo").await;
    assert_eq!(r.status(), 303);
    assert!(
        set_cookie(&r, "iumgate_wait").is_some(),
        "the queue API's cookie"
    );
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with("/iumgate/wait?to="), "{to}");
    assert_eq!(w.in_use(), 7, "nobody evicted");
    let (status, _, page) = text(c.get(w.url(&to)).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(page.contains("iumgate"), "the waiting page");
}
