//! The nightly cleanup at `cleanup_at` local time removes deactivated users
//! and users who now hold a fixed licence from both IUM groups, frees their
//! seats, and leaves everyone else alone.

use crate::housekeeping_support::*;
use iumgate::clock::ManualClock;
use iumgate::user::UserId;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_two_in_the_morning_deactivated_and_newly_fixed_users_leave_both_groups() {
    let sim = jira_sim().await;
    let mut cfg = config(&sim);
    cfg.jobs.cleanup_at = "02:00".into();
    cfg.jobs.timezone = Some("+01:00".into());
    // T0 is 01:30 local time.
    let clock = Arc::new(ManualClock::new(T0));
    let running = start_gate(&sim, cfg, clock.clone()).await;
    let gate = running.gate.clone().unwrap();
    let jobs = running.jobs.clone().unwrap();
    let proxy = running.proxy_addr;

    for u in ["casual03", "casual04", "casual05"] {
        login(proxy, u).await;
    }
    sim.set_active("casual03", false);
    sim.add_to_group("casual04", "jira-software-users");
    let before = sim.members("IUM_user_software");

    // 01:59 local: not yet.
    clock.set(T0 + 29 * MIN);
    let tick = jobs.tick(gate.now()).await;
    assert!(tick.cleanup.is_none(), "nothing at 01:59");
    assert!(jobs.last_runs().cleanup.is_none());
    assert_eq!(sim.members("IUM_user_software"), before);

    // 02:00 local.
    clock.set(T0 + 30 * MIN);
    jobs.tick(gate.now()).await;
    let report = jobs.last_runs().cleanup.expect("the cleanup ran at 02:00");
    assert_eq!(report.deactivated, vec![UserId::new("casual03")]);
    assert_eq!(report.fixed, vec![UserId::new("casual04")]);
    assert_eq!(report.seats_freed, 2);
    assert!(report.failed.is_empty());

    let user_group = sim.members("IUM_user_software");
    let access = sim.members("IUM_access_software");
    for u in ["casual03", "casual04"] {
        assert!(
            !user_group.contains(&u.to_string()),
            "{u} left the IUM user group"
        );
        assert!(
            !access.contains(&u.to_string()),
            "{u} left the IUM access group"
        );
        assert!(!gate.holds(&UserId::new(u)), "{u}'s seat is free");
    }
    assert_eq!(
        access,
        vec!["casual05"],
        "the active casual holder keeps the seat"
    );
    assert!(gate.holds(&UserId::new("casual05")));
    let expected: Vec<String> = before
        .iter()
        .filter(|u| *u != "casual03" && *u != "casual04")
        .cloned()
        .collect();
    assert_eq!(user_group, expected, "every other casual user stays");
    assert!(
        sim.members("jira-software-users")
            .contains(&"casual04".to_string()),
        "the fixed licence is untouched"
    );

    // Once a day: a later tick the same night does nothing more.
    clock.set(T0 + 90 * MIN);
    let again = jobs.tick(gate.now()).await;
    assert!(again.cleanup.is_none());
    running.begin_drain();
}
