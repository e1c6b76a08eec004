use super::*;
use crate::alerts::Alerts;
use crate::clock::ManualClock;
use crate::gate::GateSettings;
use crate::identity::Kind;
use crate::pool::{Mode, PoolConfig, SeatRecord, Waiter};
use crate::product::Product;
use crate::user::UserId;
use std::time::Duration;

fn u(name: &str) -> UserId {
    UserId::new(name)
}

fn snapshot() -> Snapshot {
    Snapshot {
        version: FORMAT_VERSION,
        written_at_ms: 5_000,
        hash_key: [7u8; 32],
        pool: PoolState {
            holders: vec![
                SeatRecord {
                    user: u("ann"),
                    since: 1_000,
                    last_active: 4_000,
                },
                SeatRecord {
                    user: u("bob"),
                    since: 2_000,
                    last_active: 9_999,
                },
            ],
            queue: vec![
                Waiter {
                    user: u("cid"),
                    since: 3_000,
                    last_poll: 3_500,
                },
                Waiter {
                    user: u("dee"),
                    since: 3_100,
                    last_poll: 3_600,
                },
            ],
        },
        sessions: vec![],
    }
}

fn gate(clock: Arc<ManualClock>, key: [u8; 32]) -> Arc<Gate> {
    let addr = "127.0.0.1:0".parse().unwrap();
    let cfg = crate::demo::demo_config(
        Product::Jira,
        "http://127.0.0.1:9",
        addr,
        addr,
        Duration::from_secs(60),
    );
    // Never called: these tests do not reconcile or admit through the directory.
    let directory = crate::demo::demo_directory(Product::Jira, "http://127.0.0.1:9").unwrap();
    let pool_cfg = PoolConfig {
        capacity: 10,
        min_idle_ms: 60_000,
        abandon_after_ms: 120_000,
    };
    Gate::new(
        GateSettings::from_config(&cfg).unwrap(),
        pool_cfg,
        directory,
        clock,
        Arc::new(Alerts::default()),
        key,
    )
}

#[test]
fn json_round_trip_keeps_every_field() {
    let s = snapshot();
    let back = parse(&s.to_json()).unwrap();
    assert_eq!(back, s);
    let text = String::from_utf8(s.to_json()).unwrap();
    assert!(
        text.contains(&"07".repeat(32)),
        "the key is stored as hex: {text}"
    );
}

#[test]
fn pool_at_dates_holders_before_now_clamps_the_future_and_refreshes_waiters() {
    let mut s = snapshot();
    s.pool.holders[0].since = 20_000; // a clock set back since the snapshot
    let p = s.pool_at(10_000);
    assert_eq!(
        p.holders[0].since, 9_999,
        "a holder must predate the first reconcile"
    );
    assert_eq!(
        p.holders[0].last_active, 4_000,
        "activity times are kept as they were"
    );
    assert_eq!(p.holders[1].since, 2_000);
    assert_eq!(p.holders[1].last_active, 9_999);
    let future = s.pool_at(9_000);
    assert_eq!(
        future.holders[1].last_active, 9_000,
        "nobody is more active than now"
    );
    let users: Vec<_> = p.queue.iter().map(|w| w.user.as_str().to_owned()).collect();
    assert_eq!(users, ["cid", "dee"], "queue order kept");
    assert!(p.queue.iter().all(|w| w.last_poll == 10_000));
    assert_eq!(p.queue[0].since, 3_000);
}

#[test]
fn capture_then_restore_gives_the_same_holders_queue_and_sessions() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let a = gate(clock.clone(), [3u8; 32]);
    a.with_pool(|p| {
        p.adopt(&u("ann"), 900_000, Some(950_000));
        p.adopt(&u("bob"), 910_000, Some(990_000));
        p.set_capacity(2);
        assert!(matches!(
            p.admit(&u("cid"), 1_000_000, Mode::MayEvict),
            crate::pool::Admission::Wait { position: 1 }
        ));
        assert!(matches!(
            p.admit(&u("dee"), 1_000_000, Mode::MayEvict),
            crate::pool::Admission::Wait { position: 2 }
        ));
    });
    a.sessions
        .bind(Kind::Session, "JSESSION-ANN", &u("ann"), 999_000);
    let snap = Snapshot::capture(&a);
    assert_eq!(snap.hash_key, [3u8; 32]);

    clock.set(2_000_000);
    let b = gate(clock.clone(), snap.hash_key);
    let r = snap.restore(&b);
    assert_eq!(
        r,
        Restored {
            holders: 2,
            waiters: 2,
            sessions: 1
        }
    );
    let (holders, queue, _) = b.snapshot_view();
    let mut holders: Vec<_> = holders
        .into_iter()
        .map(|h| (h.user.as_str().to_owned(), h.since, h.last_active))
        .collect();
    holders.sort();
    assert_eq!(
        holders,
        [
            ("ann".to_owned(), 900_000, 950_000),
            ("bob".to_owned(), 910_000, 990_000)
        ]
    );
    let queue: Vec<_> = queue.iter().map(|w| w.user.as_str().to_owned()).collect();
    assert_eq!(queue, ["cid", "dee"]);
    assert_eq!(
        b.sessions.lookup(Kind::Session, "JSESSION-ANN", 2_000_000),
        Some(u("ann"))
    );

    // A gate with another key cannot use the hashes: they are not imported.
    let c = gate(clock, [4u8; 32]);
    assert_eq!(snap.restore(&c).sessions, 0);
    assert!(c.sessions.is_empty());
}

#[test]
fn write_atomic_replaces_the_file_privately_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("state.json");
    write_atomic(&path, b"first").unwrap();
    write_atomic(&path, b"second").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second");
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["state.json"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the file holds the session hashing key");
    }
}

#[test]
fn a_temp_file_left_by_a_crash_does_not_matter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    write_atomic(&path, &snapshot().to_json()).unwrap();
    // A crash between "create temp" and "rename": half a file beside it.
    std::fs::write(dir.path().join(".state.json.tmp"), b"{\"version\":1,\"writ").unwrap();
    match load(&path, 1).unwrap() {
        Loaded::Found(s) => assert_eq!(s, snapshot()),
        other => panic!("expected the last complete snapshot, got {other:?}"),
    }
    write_atomic(&path, b"{}").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"{}");
}

#[test]
fn missing_file_is_a_clean_start() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        load(&dir.path().join("none.json"), 1).unwrap(),
        Loaded::Missing
    ));
}

#[test]
fn corrupt_and_wrong_version_files_are_set_aside_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut newer = serde_json::to_value(snapshot()).unwrap();
    newer["version"] = serde_json::json!(FORMAT_VERSION + 1);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"\x00\x01garbage".to_vec(), "not JSON"),
        (snapshot().to_json()[..40].to_vec(), "not JSON"),
        (serde_json::to_vec(&newer).unwrap(), "format version"),
        (b"{\"version\":1,\"pool\":7}".to_vec(), "not a snapshot"),
        (b"{\"holders\":[]}".to_vec(), "no format version"),
    ];
    for (i, (bytes, why)) in cases.into_iter().enumerate() {
        std::fs::write(&path, &bytes).unwrap();
        match load(&path, 1_000 + i as u64).unwrap() {
            Loaded::SetAside { kept_at, reason } => {
                assert!(reason.contains(why), "case {i}: {reason}");
                assert_eq!(
                    std::fs::read(&kept_at).unwrap(),
                    bytes,
                    "case {i}: kept byte for byte"
                );
                assert!(
                    !path.exists(),
                    "case {i}: the bad file no longer blocks the path"
                );
                assert!(kept_at
                    .to_string_lossy()
                    .ends_with(&format!("state.json.corrupt-{}", 1_000 + i)));
            }
            other => panic!("case {i}: expected SetAside, got {other:?}"),
        }
    }
    // Same time stamp twice: the second gets its own name.
    std::fs::write(&path, b"x").unwrap();
    let Loaded::SetAside { kept_at, .. } = load(&path, 1_000).unwrap() else {
        panic!()
    };
    assert!(kept_at.to_string_lossy().ends_with(".corrupt-1000-1"));
}

#[test]
fn load_at_start_raises_an_alert_for_a_file_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, b"not json").unwrap();
    let alerts = Alerts::default();
    let cfg = StateConfig {
        path: Some(path.clone()),
        ..StateConfig::default()
    };
    assert!(load_at_start(&cfg, &alerts, 42).unwrap().is_none());
    assert!(alerts.is_active("state_set_aside"));
    write_atomic(&path, &snapshot().to_json()).unwrap();
    assert_eq!(load_at_start(&cfg, &alerts, 43).unwrap(), Some(snapshot()));
}

#[test]
fn an_unreadable_path_stops_the_start_instead_of_being_overwritten() {
    // A directory where the file should be: readable by nobody as a file,
    // root included (permission bits would not stop root).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::create_dir(&path).unwrap();
    let err = load(&path, 1).unwrap_err();
    assert_eq!(err.op, "read");
    assert!(err.to_string().contains("state.json"), "{err}");
    assert!(path.is_dir(), "nothing was moved or removed");
}

#[test]
fn load_at_start_names_the_key_and_file_and_keeps_the_io_error() {
    use std::error::Error as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::create_dir(&path).unwrap();
    let cfg = StateConfig {
        path: Some(path.clone()),
        ..StateConfig::default()
    };
    let alerts = Alerts::default();
    let err = load_at_start(&cfg, &alerts, 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("state.path {}: cannot read", path.display())
    );
    let io = err
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("the io::Error is the source");
    // In the chain once: the error's own text does not repeat it.
    let chain = crate::proxy::error_chain(&err);
    assert_eq!(chain.matches(&io.to_string()).count(), 1, "{chain}");
    assert!(!alerts.is_active("state_set_aside"));
}

#[tokio::test]
async fn store_saves_what_the_gate_holds_now() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(50_000));
    let g = gate(clock.clone(), [9u8; 32]);
    g.with_pool(|p| p.adopt(&u("ann"), 10_000, Some(20_000)));
    let store = StateStore::new(dir.path().join("state.json"), g.clone());
    store.save().await.unwrap();
    g.touch(&u("ann"), 40_000);
    clock.set(60_000);
    let saved = store.save().await.unwrap();
    let Loaded::Found(on_disk) = load(store.path(), 1).unwrap() else {
        panic!()
    };
    assert_eq!(on_disk, saved);
    assert_eq!(on_disk.written_at_ms, 60_000);
    assert_eq!(
        on_disk.pool.holders,
        vec![SeatRecord {
            user: u("ann"),
            since: 10_000,
            last_active: 40_000
        }]
    );
}

#[tokio::test]
async fn a_failing_save_raises_an_alert_and_a_later_success_clears_it() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let clock = Arc::new(ManualClock::new(1));
    let g = gate(clock, [1u8; 32]);
    let bad = StateStore::new(blocker.join("state.json"), g.clone());
    let err = bad.save().await.unwrap_err();
    assert!(err.contains("not-a-dir"), "{err}");
    assert!(g.alerts.is_active("state_write_failed"));
    let good = StateStore::new(dir.path().join("state.json"), g.clone());
    good.save().await.unwrap();
    assert!(!g.alerts.is_active("state_write_failed"));
}
