//! SAML single sign-on in a real browser (Debian's chromium, headless,
//! through chromedriver), through iumgate in front of the Jira simulator:
//! the simulator's IdP page posts the response by its own script, as IdPs'
//! pages do (issue 18, items 3 and 7).
//!
//! With a free seat the user lands in the app, licensed. With every seat
//! held by active colleagues the verified login waits; once they idle, the
//! waiting page sends the browser through SSO again by itself and the new
//! assertion logs the user in — nothing is clicked.

use crate::browser_support::{browser_or_skip, Driver};
use crate::gate_saml::{cert_file, sync_clock, verified};
use crate::gate_support::{fill, World, SEVEN};
use iumgate::config::Dur;
use iumgate::product::Product;
use std::time::{Duration, Instant};

/// Generous: the page polls every second, the machine is small and shared.
const PAGE_WAIT: Duration = Duration::from_secs(60);

/// Waits (bounded) until the app has taken `n` SAML logins.
async fn saml_logins(w: &World, n: usize, what: &str) {
    let start = Instant::now();
    while w.sim.saml_logins() < n {
        assert!(start.elapsed() < PAGE_WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idp_page_posts_by_itself_and_a_waiting_login_comes_back_through_sso() {
    let Some((chromium, chromedriver)) = browser_or_skip() else {
        return;
    };
    let (_dir, cert) = cert_file();
    let saml = verified(cert);
    let w = World::start(
        Product::Jira,
        |_| {},
        move |c| {
            saml(c);
            c.queue.retry_every = Dur::secs(1);
        },
    )
    .await;
    sync_clock(&w);
    let browser = Driver::start(&chromium, &chromedriver).await;

    // A free seat: the IdP's page posts, the app logs casual08 in.
    w.sim.set_idp_user(Some("casual08"));
    browser
        .goto(&w.url("/plugins/servlet/external-login"))
        .await;
    saml_logins(&w, 1, "casual08's SAML login").await;
    let url = browser
        .wait_for_url("the app after the IdP", PAGE_WAIT, |u| {
            !u.contains("/sim-idp/") && !u.contains("samlconsumer")
        })
        .await;
    assert!(url.starts_with(&w.base), "{url}");
    assert!(w.holds("casual08"));
    browser.screenshot("saml-01-logged-in").await;

    // Six colleagues take the other seats and stay active; casual09, in a
    // new browser, must wait.
    fill(&w, &SEVEN[..6]).await;
    assert_eq!(w.in_use(), 7);
    let browser = Driver::start(&chromium, &chromedriver).await;
    w.sim.set_idp_user(Some("casual09"));
    browser
        .goto(&w.url("/plugins/servlet/external-login"))
        .await;
    browser
        .wait_for_url("the waiting page", PAGE_WAIT, |u| {
            u.contains("/iumgate/wait")
        })
        .await;
    browser.screenshot("saml-02-waiting").await;
    assert!(!w.holds("casual09"));
    assert_eq!(
        w.sim.saml_logins(),
        1,
        "the waiting assertion never reached the app"
    );

    // Everyone idles: the page is admitted, goes through SSO again by
    // itself, and the new assertion logs casual09 in.
    w.advance_min(31);
    sync_clock(&w);
    saml_logins(&w, 2, "casual09's SAML login after waiting").await;
    browser
        .wait_for_url("the app after waiting", PAGE_WAIT, |u| {
            !u.contains("/iumgate/wait") && !u.contains("/sim-idp/") && !u.contains("samlconsumer")
        })
        .await;
    browser.screenshot("saml-03-in-after-waiting").await;
    assert!(w.holds("casual09"));
    assert_eq!(w.access_members().len(), 7);
}
