//! The tier check follows the licence: fixed users added behind the proxy's
//! back shrink the pool, the longest-idle holders lose their seats (even
//! inside min_idle), and the admin hears about it once, by webhook.

use crate::housekeeping_support::*;
use iumgate::clock::ManualClock;
use iumgate::config::Dur;
use iumgate::sim::SimUser;
use iumgate::user::UserId;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_fixed_users_shrink_the_pool_release_the_longest_idle_and_alert_once() {
    let sim = jira_sim().await;
    let hook = Webhook::start(0).await;
    let mut cfg = config(&sim);
    cfg.jobs.tier_check_every = Dur::secs(10 * 60);
    cfg.alerts.webhook_url = Some(hook.url.clone());
    let clock = Arc::new(ManualClock::new(T0));
    let running = start_gate(&sim, cfg, clock.clone()).await;
    let gate = running.gate.clone().unwrap();
    let jobs = running.jobs.clone().unwrap();
    let proxy = running.proxy_addr;

    // Tier 10, 3 power users: 7 shared seats, all taken one minute apart.
    let mut clients = Vec::new();
    for i in 1..=7 {
        clients.push(login(proxy, &format!("casual{i:02}")).await);
        clock.advance(MIN);
    }
    assert_eq!(sim.members("IUM_access_software").len(), 7);
    // casual01 and casual02 are active again: now the longest idle are 03, 04, 05.
    browse(proxy, &clients[0]).await;
    browse(proxy, &clients[1]).await;

    // Three users get a fixed licence without iumgate's knowledge: 6 fixed → 4 shared.
    for i in 4..=6 {
        sim.add_user(SimUser::new(&format!("power{i}"), &["jira-software-users"]));
    }
    clock.advance(10 * MIN);
    jobs.tick(gate.now()).await;

    let access = sim.members("IUM_access_software");
    assert_eq!(
        access,
        vec!["casual01", "casual02", "casual06", "casual07"],
        "the three longest idle lost their seats"
    );
    for u in ["casual03", "casual04", "casual05"] {
        assert!(!gate.holds(&UserId::new(u)), "{u} no longer holds a seat");
    }
    // All were idle far less than min_idle (30 min): the tier still wins.
    assert_eq!(gate.arithmetic().capacity, 4);
    assert_eq!(
        sim.licensed_count(),
        10,
        "6 fixed + 4 shared: exactly the tier"
    );
    assert!(gate.alerts.is_active("pool_shrunk"));

    wait_until("the webhook to receive the alert", || {
        !hook.received().is_empty()
    })
    .await;
    // Another tier check with the same situation only refreshes the alert.
    clock.advance(10 * MIN);
    jobs.tick(gate.now()).await;
    let alerts = gate.alerts.list();
    assert_eq!(alerts.len(), 1, "one alert: {alerts:?}");
    assert_eq!(alerts[0].key, "pool_shrunk");
    let got = hook.received();
    assert_eq!(got.len(), 1, "sent once: {got:?}");
    assert_eq!(got[0]["key"], "pool_shrunk");
    let text = got[0]["text"].as_str().unwrap();
    assert!(text.contains("from 7 to 4 seats"), "{text}");
    assert!(text.contains("Fix:"), "{text}");
    let last = jobs.last_runs().tier.expect("a tier report");
    assert_eq!(last.app_seats, Some(10));
    running.begin_drain();
}
