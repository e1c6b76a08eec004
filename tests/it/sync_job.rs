//! `[sync] every` runs the sync as a job inside `iumgate serve`.

use crate::housekeeping_support::*;
use iumgate::clock::ManualClock;
use iumgate::config::Dur;
use iumgate::sim::SimUser;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_job_brings_new_staff_in_every_interval() {
    let sim = jira_sim().await;
    sim.add_user(SimUser::new("staff01", &["staff"]));
    sim.add_user(SimUser {
        active: false,
        ..SimUser::new("gone01", &["staff"])
    });
    let mut cfg = config(&sim);
    cfg.sync.source_groups = vec!["staff".into()];
    cfg.sync.every = Some(Dur::secs(3600));
    cfg.sync.pace = Some(Dur::millis(0));
    cfg.jobs.tier_check_every = Dur::secs(24 * 3600);
    let clock = Arc::new(ManualClock::new(T0));
    let running = start_gate(&sim, cfg, clock.clone()).await;
    let gate = running.gate.clone().unwrap();
    let jobs = running.jobs.clone().unwrap();

    clock.advance(30 * MIN);
    assert!(jobs.tick(gate.now()).await.sync.is_none(), "not due yet");
    assert!(!sim
        .members("IUM_user_software")
        .contains(&"staff01".to_string()));

    clock.advance(30 * MIN);
    jobs.tick(gate.now()).await;
    let last = jobs.last_runs().sync.expect("the sync job ran");
    assert_eq!(last.added.len(), 1);
    let members = sim.members("IUM_user_software");
    assert!(members.contains(&"staff01".to_string()));
    assert!(
        !members.contains(&"gone01".to_string()),
        "deactivated users are not brought in"
    );
    running.begin_drain();
}
