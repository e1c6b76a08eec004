//! OpenID Connect single sign-on in a real browser (Debian's chromium,
//! headless, through chromedriver), through iumgate in front of the Jira
//! simulator and the simulator's OIDC IdP (issue 18, items 4 and 7).
//!
//! A person types their name and password on the IdP's sign-in page once;
//! iumgate's authorization and then the app's run on that IdP session and
//! the user lands in the app, licensed. With every seat held by active
//! colleagues the user waits; once they idle, the waiting page goes back to
//! the app's OIDC start by itself, iumgate's sign-in and the app's pass
//! silently, and the user is in — nothing is clicked.

use crate::browser_support::{browser_or_skip, Driver};
use crate::gate_oidc::oidc_world_with;
use crate::gate_support::{fill, SEVEN};
use iumgate::config::Dur;
use iumgate::product::Product;
use iumgate_sim::oidc_idp::OIDC_PASSWORD;
use std::time::Duration;

/// Generous: the page polls every second, the machine is small and shared.
const PAGE_WAIT: Duration = Duration::from_secs(60);
const START: &str = "/plugins/servlet/oidc/initiate-login?returnUrl=/browse/DEMO-1";

/// The issue page itself (the waiting page's URL ends with it too, in its
/// `to`).
fn in_the_app(url: &str) -> bool {
    url.ends_with("/browse/DEMO-1") && !url.contains("/iumgate/") && !url.contains("oidc")
}

async fn sign_in_at_idp(browser: &Driver, user: &str) {
    browser
        .wait_for_url("the IdP's sign-in page", PAGE_WAIT, |u| {
            u.contains("/authorize")
        })
        .await;
    browser.type_into("#idp-username", user).await;
    browser.type_into("#idp-password", OIDC_PASSWORD).await;
    browser.click("#idp-submit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_at_the_idp_and_a_waiting_one_gets_in_by_itself() {
    let Some((chromium, chromedriver)) = browser_or_skip() else {
        return;
    };
    let o = oidc_world_with(
        Product::Jira,
        |_| {},
        |c| c.queue.retry_every = Dur::secs(1),
    )
    .await;
    let w = &o.w;
    let browser = Driver::start(&chromium, &chromedriver).await;

    // A free seat: sign in once at the IdP, land in the app, licensed.
    browser.goto(&w.url(START)).await;
    sign_in_at_idp(&browser, "casual08").await;
    let url = browser
        .wait_for_url("the issue after signing in", PAGE_WAIT, in_the_app)
        .await;
    assert!(url.starts_with(&w.base), "{url}");
    assert!(w.holds("casual08"));
    assert_eq!(w.sim.oidc_logins(), 1);
    browser.screenshot("oidc-01-logged-in").await;

    // Six colleagues take the other seats and stay active; casual09, in a
    // new browser, must wait.
    fill(w, &SEVEN[..6]).await;
    assert_eq!(w.in_use(), 7);
    let browser = Driver::start(&chromium, &chromedriver).await;
    browser.goto(&w.url(START)).await;
    sign_in_at_idp(&browser, "casual09").await;
    browser
        .wait_for_url("the waiting page", PAGE_WAIT, |u| {
            u.contains("/iumgate/wait")
        })
        .await;
    browser.screenshot("oidc-02-waiting").await;
    assert!(!w.holds("casual09"));
    assert_eq!(w.sim.oidc_logins(), 1, "the app's flow never started");

    // Everyone idles: the page is admitted and goes through the start page
    // again by itself; the IdP session makes both authorizations silent.
    w.advance_min(31);
    browser
        .wait_for_url("the issue after waiting", PAGE_WAIT, in_the_app)
        .await;
    browser.screenshot("oidc-03-in-after-waiting").await;
    assert!(w.holds("casual09"));
    assert_eq!(w.sim.oidc_logins(), 2);
    assert_eq!(w.access_members().len(), 7);
}
