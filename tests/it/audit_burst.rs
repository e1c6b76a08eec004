//! `[audit]` under a burst (issue 21): 100,000 seat events handed to the
//! trail while requests flow. While the disk keeps up, none is lost; when
//! the disk is stuck, events are dropped and counted, the alert is raised,
//! and neither the gate nor a request ever waits for the trail. Counts
//! only, never times.

use crate::gate_support::*;
use iumgate::audit::{Kind, Reason};
use iumgate::user::UserId;
use std::path::Path;
use std::time::{Duration, Instant};

const BURST: u64 = 100_000;
const PRODUCERS: u64 = 4;

async fn world(path: &Path, buffer: usize) -> World {
    let path = path.to_owned();
    World::start(
        iumgate::product::Product::Jira,
        |_| {},
        move |cfg| {
            cfg.audit.path = Some(path);
            cfg.audit.buffer = buffer;
            cfg.audit.max_bytes = 1 << 40;
        },
    )
    .await
}

/// `BURST` events from `PRODUCERS` threads through `Gate::audit`, while 200
/// requests go through the proxy; returns how many requests were answered.
async fn burst_with_requests(w: &World) -> usize {
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let gate = w.gate.clone();
            std::thread::spawn(move || {
                let user = UserId::new(&format!("burst{p}"));
                for i in 0..BURST / PRODUCERS {
                    gate.audit(Kind::Refused, Reason::UnverifiedClaim, &user, |e| {
                        e.position = Some(i as u32);
                    });
                }
            })
        })
        .collect();
    let started = Instant::now();
    let client = no_redirect();
    let mut answered = 0;
    for _ in 0..200 {
        let r = client.get(w.url("/status")).send().await.unwrap();
        if r.status().is_success() || r.status().is_redirection() {
            answered += 1;
        }
        let _ = r.bytes().await;
    }
    for p in producers {
        p.join().unwrap();
    }
    // Information only (never asserted): what the burst took here.
    eprintln!(
        "{BURST} events from {PRODUCERS} threads and 200 requests: {:?}",
        started.elapsed()
    );
    answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_100000_events_loses_none_while_the_disk_keeps_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // The channel holds the burst: the writer drains it as fast as the disk
    // takes the lines.
    let w = world(&path, 131_072).await;
    assert_eq!(burst_with_requests(&w).await, 200, "every request answered");
    // Written within the writer's flush (a bounded wait, not a measurement).
    let burst_done = Instant::now();
    let deadline = burst_done + Duration::from_secs(60);
    while metric(&w, "iumgate_audit_events_total{kind=\"refused\"}") < BURST as f64 {
        assert!(Instant::now() < deadline, "the writer fell behind for 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "all {BURST} written {:?} after the burst ended (information only)",
        burst_done.elapsed()
    );
    assert_eq!(metric(&w, "iumgate_audit_dropped_total"), 0.0);
    assert_eq!(metric(&w, "iumgate_audit_write_errors_total"), 0.0);
    w.stop().await;
    let text = std::fs::read_to_string(&path).unwrap();
    let mut per_producer = [0u64; PRODUCERS as usize];
    let mut seen_positions = vec![vec![false; (BURST / PRODUCERS) as usize]; PRODUCERS as usize];
    for line in text.lines() {
        let l: iumgate::audit::Line = serde_json::from_str(line).unwrap();
        if l.reason != "unverified_claim" {
            continue;
        }
        let p: usize = l.user.trim_start_matches("burst").parse().unwrap();
        per_producer[p] += 1;
        seen_positions[p][l.position.unwrap() as usize] = true;
    }
    assert_eq!(per_producer, [BURST / PRODUCERS; PRODUCERS as usize]);
    assert!(
        seen_positions.iter().flatten().all(|s| *s),
        "every event is there once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_disk_drops_and_counts_events_raises_the_alert_and_never_holds_anyone_up() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("audit.fifo");
    // A reader that opens the pipe and never reads: the trail's device is
    // stuck once the pipe's buffer is full.
    let reader = stuck_fifo(&fifo);
    let w = world(&fifo, 16).await;
    let reader = reader.join().unwrap();
    // (A hang guard, not a measurement: a send that waited would never end.)
    let answered = tokio::time::timeout(Duration::from_secs(300), burst_with_requests(&w))
        .await
        .expect("the burst ended: nobody waited for the stuck trail");
    assert_eq!(answered, 200, "every request answered");
    let dropped = metric(&w, "iumgate_audit_dropped_total");
    eprintln!("stuck disk: {dropped} of {BURST} events dropped");
    assert!(
        dropped > (BURST / 2) as f64 && dropped <= BURST as f64,
        "events dropped and counted: {dropped}"
    );
    assert!(
        w.run
            .alerts
            .list()
            .iter()
            .any(|a| a.key == "audit_dropping"),
        "the alert is raised"
    );
    let text = w
        .run
        .metrics
        .render(Some(&w.gate), &w.run.job_runs, &w.run.health);
    assert!(
        text.lines().any(
            |l| l.starts_with("iumgate_alert_active{alert=\"audit_dropping\"") && l.ends_with(" 1")
        ),
        "the alert is exported"
    );
    // Unstick the writer (its writes fail now; counted as errors).
    drop(reader);
    w.stop().await;
}
