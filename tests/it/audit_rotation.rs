//! `[audit]` rotation and retention (issue 21), with the gate's manual
//! clock: a file reaching `max_bytes` is rotated (gzipped, 0600) and loses
//! no line; a new UTC day rotates the day before; rotations older than
//! `retain` days are deleted; `iumgate audit` reads the plain and gzipped
//! files back in order.

use crate::gate_support::*;
use iumgate::audit::{Kind, Reason};
use iumgate::user::UserId;
use std::path::Path;
use std::time::{Duration, Instant};

const DAY_MIN: u64 = 24 * 60;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `n` grants of `user{i}` at the gate's time; waits (bounded) until the
/// writer has written `total` grants in all.
async fn grants(w: &World, prefix: &str, n: usize, total: f64) {
    for i in 0..n {
        w.gate.audit(
            Kind::Grant,
            Reason::Free,
            &UserId::new(&format!("{prefix}{i:03}")),
            |_| {},
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(w, "iumgate_audit_events_total{kind=\"grant\"}") < total {
        assert!(
            Instant::now() < deadline,
            "the writer did not write {total}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The users of the lines `iumgate audit --json` prints for `dir`, once
/// there are `n` (a bounded wait for the writer's flush).
async fn users_read_back(dir: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_iumgate"))
            .args(["audit", "--json"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let users: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let l: iumgate::audit::Line = serde_json::from_str(l).unwrap();
                l.user
            })
            .collect();
        if users.len() >= n || Instant::now() > deadline {
            return users;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_rotate_by_size_and_by_day_and_old_ones_go_after_retain_days() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let p = path.clone();
    let w = World::start(
        iumgate::product::Product::Jira,
        |_| {},
        move |cfg| {
            cfg.audit.path = Some(p);
            cfg.audit.max_bytes = 4096;
            cfg.audit.retain = 3;
        },
    )
    .await;
    // Day 0 (2027-01-15): 100 lines of about 130 bytes, three times 4096.
    grants(&w, "day0-", 100, 100.0).await;
    let day0: Vec<String> = names(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("audit.jsonl.2027-01-15."))
        .collect();
    assert!(day0.len() >= 2, "rotated by size: {day0:?}");
    assert!(day0.iter().all(|n| n.ends_with(".gz")), "{day0:?}");
    assert!(
        std::fs::metadata(&path).unwrap().len() <= 4096,
        "the current file stays under max_bytes"
    );
    // (The current file's last lines within the writer's flush.)
    let mut read = users_read_back(dir.path(), 100).await;
    read.sort();
    let expected: Vec<String> = (0..100).map(|i| format!("day0-{i:03}")).collect();
    assert_eq!(read, expected, "no line lost across the size rotations");

    // Day 1: the first line of the new day rotates the day before away.
    w.advance_min(DAY_MIN);
    grants(&w, "day1-", 5, 105.0).await;
    assert!(
        names(dir.path())
            .iter()
            .filter(|n| n.starts_with("audit.jsonl.2027-01-15."))
            .count()
            > day0.len(),
        "the rest of day 0 was rotated at the day's end: {:?}",
        names(dir.path())
    );
    // Day 2 with no event: the writer's tick rotates day 1 by itself.
    w.advance_min(DAY_MIN);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !names(dir.path())
        .iter()
        .any(|n| n.starts_with("audit.jsonl.2027-01-16.1.gz"))
    {
        assert!(Instant::now() < deadline, "{:?}", names(dir.path()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Day 4, retain = 3: day 0's rotations are more than 3 days old and go;
    // day 1's (3 days) stay.
    w.advance_min(2 * DAY_MIN);
    grants(&w, "day4-", 1, 106.0).await;
    w.stop().await;
    let left = names(dir.path());
    assert!(
        !left.iter().any(|n| n.contains("2027-01-15")),
        "day 0 deleted: {left:?}"
    );
    assert!(
        left.iter().any(|n| n == "audit.jsonl.2027-01-16.1.gz"),
        "day 1 kept: {left:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    for n in left.iter().filter(|n| n.starts_with("audit.jsonl")) {
        let mode = std::fs::metadata(dir.path().join(n))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{n}: {mode:o}");
    }
    let read = users_read_back(dir.path(), 6).await;
    let mut expected: Vec<String> = (0..5).map(|i| format!("day1-{i:03}")).collect();
    expected.push("day4-000".into());
    assert_eq!(read, expected, "what retain keeps, in time order");
}
