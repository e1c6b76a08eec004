//! Today's login page (Jira 10: a script page posting JSON to
//! `/rest/tsv/latest/authenticate`) in a real browser (Debian's chromium,
//! headless, through chromedriver), through the proxy in front of the Jira
//! simulator: with a free seat the page lands on the issue; with every seat
//! held by someone active, the page follows the `redirectUrl` iumgate
//! answers to the waiting room, and once a seat frees the waiting page takes
//! the user back to the login page, where they sign in again. Screenshots
//! are kept under `target/screenshots/`.

use crate::admin_support::start;
use crate::browser_support::{browser_or_skip, Driver};
use iumgate::config::Dur;
use iumgate::sim::LoginStyle;
use iumgate::user::UserId;
use std::time::Duration;

/// Generous: the page polls every second, the machine is small and shared.
const PAGE_WAIT: Duration = Duration::from_secs(60);

async fn sign_in(browser: &Driver, proxy: &str, user: &str) {
    browser
        .goto(&format!(
            "{proxy}/login.jsp?os_destination=%2Fbrowse%2FDEMO-1"
        ))
        .await;
    browser.type_into("#username", user).await;
    browser.type_into("#password", "demo").await;
    browser.click("#login-submit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todays_login_page_signs_in_through_the_gate_and_follows_it_to_the_waiting_room() {
    let Some((chromium, chromedriver)) = browser_or_skip() else {
        return;
    };
    let w = start(|c| c.queue.retry_every = Dur::secs(1)).await;
    w.sim.set_login_style(LoginStyle::Json);
    let gate = w.gate();
    let browser = Driver::start(&chromium, &chromedriver).await;

    // A free seat: the page posts the JSON, the seat is in place before the
    // app checks, and the page goes where the answer says.
    sign_in(&browser, &w.proxy, "casual01").await;
    browser
        .wait_for_url("the issue after the JSON login", PAGE_WAIT, |u| {
            u.ends_with("/browse/DEMO-1")
        })
        .await;
    assert!(gate.holds(&UserId::new("casual01")));
    browser.screenshot("json-01-issue").await;

    // casual01 signs out; colleagues take every seat and stay active.
    browser.goto(&format!("{}/logout", w.proxy)).await;
    let mut colleagues = Vec::new();
    let mut next = 2;
    while gate.with_pool(|p| p.in_use()) < 7 {
        let (c, _) = w.login(&format!("casual{next:02}")).await;
        colleagues.push(c);
        next += 1;
    }
    let newcomer = format!("casual{next:02}");
    assert_eq!(gate.with_pool(|p| (p.in_use(), p.capacity())), (7, 7));

    // The newcomer: the proven password waits, and the page follows the
    // redirectUrl iumgate answered to the waiting room.
    sign_in(&browser, &w.proxy, &newcomer).await;
    browser
        .wait_for_url("the waiting page after the JSON login", PAGE_WAIT, |u| {
            u.contains("/iumgate/wait")
        })
        .await;
    browser.screenshot("json-02-waiting").await;
    assert!(!gate.holds(&UserId::new(&newcomer)));

    // A colleague leaves; the waiting page takes the newcomer to the login
    // page by itself, and they sign in again, now with a seat.
    let last = colleagues.pop().unwrap();
    last.get(format!("{}/logout", w.proxy))
        .send()
        .await
        .unwrap();
    browser
        .wait_for_url("the login page after waiting", PAGE_WAIT, |u| {
            u.contains("/login.jsp") && !u.contains("/iumgate/")
        })
        .await;
    assert!(gate.holds(&UserId::new(&newcomer)));
    browser.type_into("#username", &newcomer).await;
    browser.type_into("#password", "demo").await;
    browser.click("#login-submit").await;
    browser
        .wait_for_url("the issue after signing in again", PAGE_WAIT, |u| {
            u.ends_with("/browse/DEMO-1")
        })
        .await;
    browser.screenshot("json-03-issue-after-waiting").await;
}
