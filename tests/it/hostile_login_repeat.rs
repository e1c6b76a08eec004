//! Hostile, through the real binary with `[identity] authorisation_retries
//! = 3` (the login repeat for Jira Data Center's cache lag): the repeat
//! never turns a claim into a seat. A wrong password for a colleague is not
//! repeated and costs nothing; a login the app keeps refusing gives its
//! lent seat back after the repeats; a client that leaves while iumgate
//! repeats its login leaves no seat behind.

use crate::state_kill9::{serve_config, spawn};
use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig};
use std::time::{Duration, Instant};

const ACCESS: &str = "IUM_access_software";

async fn login(
    proxy: std::net::SocketAddr,
    user: &str,
    password: &str,
    timeout: Duration,
) -> Option<u16> {
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .unwrap();
    c.post(format!("http://{proxy}/login.jsp"))
        .form(&[
            ("os_username", user),
            ("os_password", password),
            ("os_destination", "/browse/DEMO-1"),
        ])
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_repeat_never_turns_a_claim_into_a_seat() {
    let sim = Sim::start(SimConfig::demo(Product::Jira)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("iumgate.toml");
    std::fs::write(
        &cfg,
        serve_config(&sim.url(), "[identity]\nauthorisation_retries = 3\n"),
    )
    .unwrap();
    let g = spawn(&cfg);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !g.log().contains("reconciled with the directory") {
        assert!(Instant::now() < deadline, "{}", g.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A colleague's name with a wrong password: refused once, no repeat.
    let status = login(g.proxy, "casual02", "wrong", Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s < 500));
    assert!(sim.members(ACCESS).is_empty());

    // The app's nodes never see the grant (a lag far past the 2 s the
    // repeats may take): the lent seat goes back.
    sim.set_access_lag(Duration::from_secs(3600));
    let status = login(g.proxy, "casual03", "demo", Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s != 302), "{status:?}");
    assert!(sim.members(ACCESS).is_empty(), "{:?}", sim.members(ACCESS));

    // A client that leaves while the login is being repeated: nothing stays.
    let gone = login(g.proxy, "casual04", "demo", Duration::from_millis(300)).await;
    assert!(gone.is_none(), "the client gave up before the answer");
    // The repeats end within 2 s; by then the lent seat must be back.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sim.members(ACCESS).is_empty() {
        assert!(Instant::now() < deadline, "{:?}", sim.members(ACCESS));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        sim.peak_members(ACCESS) <= 1,
        "never more than the one lent seat"
    );
}
