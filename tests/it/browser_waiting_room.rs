//! The user pages in a real browser (Debian's chromium, headless, through
//! chromedriver), through the proxy in front of the Jira simulator.
//!
//! A casual user logs in while the pool is full: the waiting page shows the
//! position and, once a seat frees, repeats the login and takes the user to
//! the issue asked for by itself — nothing is clicked. Then the same user,
//! idle, loses the seat and comes back while the pool is full: again the
//! page lets them in by itself. Then the admin page renders with its token.
//! Screenshots are kept under `target/screenshots/`.

use crate::admin_support::{start, TOKEN};
use crate::browser_support::{browser_or_skip, Driver};
use iumgate::config::Dur;
use iumgate::user::UserId;
use std::time::Duration;

/// Generous: the page polls every second, the machine is small and shared.
const PAGE_WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_user_is_taken_to_the_issue_by_the_page_itself() {
    let Some((chromium, chromedriver)) = browser_or_skip() else {
        return;
    };
    // The waiting page polls every second (and reloads as a fallback).
    let w = start(|c| c.queue.retry_every = Dur::secs(1)).await;
    let gate = w.gate();
    let browser = Driver::start(&chromium, &chromedriver).await;

    // Seven colleagues hold every shared seat.
    let mut colleagues = Vec::new();
    for i in 1..=7 {
        let (c, _) = w.login(&format!("casual{i:02}")).await;
        colleagues.push(c);
    }
    assert_eq!(gate.with_pool(|p| (p.in_use(), p.capacity())), (7, 7));

    // casual08 logs in through the proxy's login page while the pool is full:
    // the right password lands on the waiting page, with the position.
    browser
        .goto(&format!(
            "{}/login.jsp?os_destination=%2Fbrowse%2FDEMO-1",
            w.proxy
        ))
        .await;
    browser.type_into("#login-form-username", "casual08").await;
    browser.type_into("#login-form-password", "demo").await;
    browser.click("input[name=login]").await;
    browser
        .wait_for_url("the waiting page after the login", PAGE_WAIT, |u| {
            u.contains("/iumgate/wait")
        })
        .await;
    assert_eq!(browser.text("#pos").await.as_deref(), Some("1"));
    browser.screenshot("01-waiting-after-login").await;

    // casual07 logs out; the page repeats the login by itself and shows the
    // issue asked for — nothing is clicked, no password typed again.
    let c7 = colleagues.pop().unwrap();
    c7.get(format!("{}/logout", w.proxy)).send().await.unwrap();
    browser
        .wait_for_url("the issue after waiting", PAGE_WAIT, |u| {
            u.ends_with("/browse/DEMO-1") && !u.contains("/iumgate/")
        })
        .await;
    assert!(gate.holds(&UserId::new("casual08")));
    assert_eq!(browser.text("#key-val").await.as_deref(), Some("DEMO-1"));
    browser.screenshot("02-issue-after-login-wait").await;

    // Second round: casual08 idles while six colleagues keep working.
    w.clock.advance(180_000);
    for c in &colleagues {
        let r = c
            .get(format!("{}/browse/DEMO-1", w.proxy))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // casual07 arrives and takes casual08's seat (idle longer than min_idle).
    let (c7, _) = w.login("casual07").await;
    assert!(gate.holds(&UserId::new("casual07")));
    assert!(!gate.holds(&UserId::new("casual08")));
    assert_eq!(gate.with_pool(|p| (p.in_use(), p.capacity())), (7, 7));

    // casual08 comes back to another issue: the pool is full, nobody is idle
    // long enough, so the waiting page shows the position.
    browser.goto(&format!("{}/browse/DEMO-2", w.proxy)).await;
    let url = browser
        .wait_for_url("the waiting page", PAGE_WAIT, |u| {
            u.contains("/iumgate/wait")
        })
        .await;
    let to = percent_encoding::percent_decode_str(url.split("to=").nth(1).unwrap_or(""))
        .decode_utf8_lossy()
        .into_owned();
    assert_eq!(to, "/browse/DEMO-2", "{url}");
    assert_eq!(browser.text("#pos").await.as_deref(), Some("1"));
    let title = browser.title().await;
    assert_eq!(title, "All licences are in use");
    browser.screenshot("03-waiting-page").await;
    // Several polls later it is still waiting (nothing frees by itself).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(browser.url().await.contains("/iumgate/wait"));
    assert_eq!(gate.with_pool(|p| p.queue_len()), 1);

    // casual07 logs out: a seat frees. From here on the test only watches.
    let r = c7.get(format!("{}/logout", w.proxy)).send().await.unwrap();
    assert!(r.status().is_redirection() || r.status().is_success());
    assert!(!gate.holds(&UserId::new("casual07")));
    browser
        .wait_for_url("the page to move on by itself", PAGE_WAIT, |u| {
            // The waiting page's own URL carries `to=/browse/DEMO-2` too.
            u.ends_with("/browse/DEMO-2") && !u.contains("/iumgate/")
        })
        .await;
    assert!(gate.holds(&UserId::new("casual08")));
    // The simulator shows the issue to casual08 (a page only a licensed user gets).
    assert_eq!(browser.text("#key-val").await.as_deref(), Some("DEMO-2"));
    assert!(browser
        .source()
        .await
        .contains("data-username=\"casual08\""));
    browser.screenshot("04-issue-after-waiting").await;

    // The admin page, with its token (any user name, the token as password).
    let admin = w.admin.trim_start_matches("http://");
    browser
        .goto(&format!("http://admin:{TOKEN}@{admin}/"))
        .await;
    let holders = browser.text("#holders").await.unwrap_or_default();
    assert!(
        holders.contains("casual08"),
        "admin page holders: {holders}"
    );
    assert_eq!(browser.text("#in-use").await.as_deref(), Some("7"));
    assert_eq!(browser.text("#capacity").await.as_deref(), Some("7"));
    let shot = browser.screenshot("05-admin-page").await;
    assert!(std::fs::metadata(shot).unwrap().len() > 1000);
    drop(browser);
    w.running.begin_drain();
}
