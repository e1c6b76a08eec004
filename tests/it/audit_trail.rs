//! `[audit]` (issue 21): every seat movement through a real gate in front of
//! the simulator, on real sockets, leaves a line with its reason — grants
//! (free, evicted_for), releases (eviction for whom, logout, rollback,
//! reconcile, tier_shrink, cleanup), queued, admitted with its wait,
//! abandoned, refused (unverified claim, directory failure) — and the admin
//! page shows a user's recent events.

use crate::gate_support::*;
use iumgate::config::Dur;
use iumgate::pool::ReleaseReason;
use iumgate::user::UserId;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) const TOKEN: &str = "audit-admin-token-0123456789abcdef";

/// The trail's lines as JSON — the file at `path` and its rotations (gzip),
/// in time order — once there are at least `n` (a bounded wait: the writer
/// flushes every second). No line may be malformed.
pub(crate) async fn trail(path: &Path, n: usize) -> Vec<Value> {
    use iumgate::audit::read;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let files = read::files_of_config_path(path);
        let (lines, inputs) = read::collect(&files, &read::Filter::default()).unwrap();
        for i in &inputs {
            assert_eq!(i.malformed, 0, "{i:?}");
        }
        if lines.len() >= n {
            return lines
                .into_iter()
                .map(|(_, l)| serde_json::to_value(l).unwrap())
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "{files:?}: {} lines, expected {n}: {lines:#?}",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An admin page (`path` under `/iumgate/admin/`) with the token: 200 and
/// its text.
async fn admin_page(w: &World, path: &str) -> String {
    let r = reqwest::Client::new()
        .get(format!("http://{}/iumgate/admin/{path}", w.run.admin_addr))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

/// The lines of `kind` with `reason` for `user`.
fn of<'a>(all: &'a [Value], kind: &str, reason: &str, user: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|l| l["kind"] == kind && l["reason"] == reason && l["user"] == user)
        .collect()
}

fn one<'a>(all: &'a [Value], kind: &str, reason: &str, user: &str) -> &'a Value {
    let found = of(all, kind, reason, user);
    assert_eq!(
        found.len(),
        1,
        "one {kind}/{reason} line for {user}: {found:?}\n{all:#?}"
    );
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seat_event_is_written_with_its_reason_and_the_admin_page_shows_a_users() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut token = tempfile::NamedTempFile::new().unwrap();
    writeln!(token, "{TOKEN}").unwrap();
    let (p, t) = (path.clone(), token.path().to_path_buf());
    let w = World::start(
        iumgate::product::Product::Jira,
        |_| {},
        move |cfg| {
            cfg.audit.path = Some(p);
            cfg.admin.token_file = Some(t);
            cfg.ium.min_idle = Dur::secs(30 * 60);
        },
    )
    .await;

    // A wrong password borrows a free seat for the exchange: given back.
    let (c, _) = browser();
    let _ = text(jira_login(&w, &c, "casual01", "wrong", false).await).await;
    assert!(!w.holds("casual01"));
    // Seven casual users fill the seven seats.
    let mut clients = Vec::new();
    for u in SEVEN {
        let (c, _) = browser();
        let r = jira_login(&w, &c, u, "demo", false).await;
        assert_eq!(r.status(), 200, "{u}");
        clients.push(c);
    }
    // casual07 logs out (a session the app ended): released; back in.
    let r = clients[6]
        .get(w.url("/secure/Logout!default.jspa"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!w.holds("casual07"));
    let (c7, _) = browser();
    assert_eq!(
        jira_login(&w, &c7, "casual07", "demo", false)
            .await
            .status(),
        200
    );
    // casual08 and casual10 wait (nobody idle long enough).
    let (c8, _) = browser();
    let (_, at, _) = text(jira_login(&w, &c8, "casual08", "demo", false).await).await;
    assert_eq!(at, "/iumgate/wait");
    let (c10, _) = browser();
    let (_, at, _) = text(jira_login(&w, &c10, "casual10", "demo", false).await).await;
    assert_eq!(at, "/iumgate/wait");
    // An API client's Basic name is a claim: no free seat, refused.
    let r = w.get_as("/rest/api/2/myself", "casual09", "demo").await;
    assert!(!r.status().is_success(), "{}", r.status());
    assert!(!w.holds("casual09"));
    // Past min_idle, casual08's waiting page takes the longest-idle seat.
    w.advance_min(31);
    let q = poll_queue(&w, &c8, "").await;
    assert_eq!(q["state"], "admitted", "{q}");
    let victim = SEVEN
        .iter()
        .find(|u| !w.holds(u))
        .expect("someone lost a seat")
        .to_string();
    // The admin page: a user's recent events, behind the token (within the
    // writer's flush, a bounded wait).
    let deadline = Instant::now() + Duration::from_secs(10);
    let html = loop {
        let html = admin_page(&w, "audit?user=casual08").await;
        if html.contains("from_queue") || Instant::now() > deadline {
            break html;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        html.contains("<td>admitted</td><td>from_queue</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td>queued</td><td>no_free_seat</td>"),
        "{html}"
    );
    let denied = reqwest::get(format!(
        "http://{}/iumgate/admin/audit?user=casual08",
        w.run.admin_addr
    ))
    .await
    .unwrap();
    assert_eq!(denied.status(), 401, "the events need the admin token");
    let status_page = admin_page(&w, "").await;
    assert!(
        status_page.contains("<a href=\"audit?user=casual08\""),
        "the status page links a holder to their events"
    );
    // Reconcile finds a holder gone from the access group.
    let gone = SEVEN
        .iter()
        .find(|u| w.holds(u))
        .expect("a holder")
        .to_string();
    w.sim.remove_from_group(&gone, w.groups().access);
    w.advance_min(1);
    w.gate.reconcile().await.unwrap();
    assert!(!w.holds(&gone));
    // The tier shrinks by one; a nightly cleanup releases another.
    let shrunk = w.gate.shrink_to(w.in_use() - 1).await;
    assert_eq!(shrunk.len(), 1, "{shrunk:?}");
    let cleaned = SEVEN
        .iter()
        .find(|u| w.holds(u))
        .expect("a holder left")
        .to_string();
    assert!(
        w.gate
            .release(&UserId::new(&cleaned), ReleaseReason::Cleanup)
            .await
    );
    // The directory fails a grant: refused, nothing granted (two seats
    // free: casual10 still waits ahead of a newcomer).
    w.gate.with_pool(|p| p.set_capacity_keeping(p.in_use() + 2));
    w.sim.fail_admin(Some(500));
    let (c11, _) = browser();
    let r = jira_login(&w, &c11, "casual11", "demo", false).await;
    assert_eq!(r.status(), 503);
    w.sim.fail_admin(None);
    // casual10 stopped polling a day ago: abandoned by the prune job.
    w.advance_min(25 * 60);
    iumgate::jobs::prune(&w.gate, w.gate.now());

    // A day later the events are in yesterday's rotation (once the day's
    // first event rotated the file): the page reads the newest rotated file.
    let deadline = Instant::now() + Duration::from_secs(10);
    while iumgate::audit::read::newest_rotation(&path).is_none()
        || std::fs::read_to_string(&path)
            .unwrap_or_default()
            .contains("casual08")
    {
        assert!(Instant::now() < deadline, "no rotation at the new day");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let html = admin_page(&w, "audit?user=casual08").await;
    assert!(
        html.contains("<td>admitted</td><td>from_queue</td>"),
        "after the rotation: {html}"
    );
    let events_total = metric(&w, "iumgate_audit_events_total{kind=\"grant\"}");
    w.stop().await;

    // Shut down: everything is written (fsync at the end of the drain),
    // the day before in a rotated, gzipped file.
    let all = trail(&path, 20).await;
    assert!(
        std::fs::read_dir(dir.path()).unwrap().flatten().any(|e| e
            .file_name()
            .to_string_lossy()
            .starts_with("audit.jsonl.2027-01-15.1.gz")),
        "the first day's lines were rotated at midnight"
    );
    for l in &all {
        let ts = l["ts"].as_str().unwrap();
        assert!(
            ts.parse::<jiff::Timestamp>().is_ok() && ts.ends_with('Z'),
            "RFC 3339, UTC: {l}"
        );
        assert_eq!(l["pool"], "default", "{l}");
        assert_eq!(l["node"], iumgate::audit::host_name(), "{l}");
        assert!(l["in_use"].as_u64().is_some() && l["capacity"].as_u64().is_some());
    }
    let grants = all.iter().filter(|l| l["kind"] == "grant").count();
    assert_eq!(grants as f64, events_total, "the metric counts the lines");

    // The borrowed seat of the wrong password, and its rollback.
    let rollback = one(&all, "release", "rollback", "casual01");
    assert_eq!(rollback["in_use"], 0);
    assert_eq!(of(&all, "grant", "free", "casual01").len(), 2);
    for u in SEVEN {
        assert!(!of(&all, "grant", "free", u).is_empty(), "{u}");
    }
    let full = of(&all, "grant", "free", "casual07");
    assert_eq!(full.last().unwrap()["in_use"], 7);
    assert_eq!(full.last().unwrap()["capacity"], 7);
    assert_eq!(one(&all, "release", "logout", "casual07")["in_use"], 6);
    assert_eq!(
        one(&all, "queued", "no_free_seat", "casual08")["position"],
        1
    );
    assert_eq!(
        one(&all, "queued", "no_free_seat", "casual10")["position"],
        2
    );
    one(&all, "refused", "unverified_claim", "casual09");
    // The eviction: the victim's release names whom for, the grant the victim.
    let evicted = one(&all, "release", "eviction", &victim);
    assert_eq!(evicted["for"], "casual08");
    assert_eq!(evicted["in_use"], 6);
    let taken = one(&all, "grant", "evicted_for", "casual08");
    assert_eq!(taken["victim"], victim.as_str());
    assert_eq!(taken["in_use"], 7);
    let admitted = one(&all, "admitted", "from_queue", "casual08");
    assert!(
        admitted["waited_ms"].as_u64().unwrap() >= 31 * MIN,
        "{admitted}"
    );
    one(&all, "release", "reconcile", &gone);
    assert_eq!(
        all.iter()
            .filter(|l| l["kind"] == "release" && l["reason"] == "tier_shrink")
            .count(),
        1
    );
    one(&all, "release", "cleanup", &cleaned);
    let refused = one(&all, "refused", "directory_failure", "casual11");
    assert_eq!(refused["operation"], "grant");
    one(&all, "abandoned", "stopped_polling", "casual10");
    // Service user only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    drop(token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_path_there_is_no_trail_and_a_path_that_cannot_be_opened_stops_the_start() {
    let w = World::jira().await;
    assert!(w.gate.audit_trail().is_none());
    let (c, _) = browser();
    assert_eq!(
        jira_login(&w, &c, "casual01", "demo", false).await.status(),
        200
    );
    assert_eq!(
        metric(&w, "iumgate_audit_events_total{kind=\"grant\"}"),
        0.0
    );
    let sim = w.stop().await;
    let clock = std::sync::Arc::new(iumgate::clock::ManualClock::new(1_800_000_000_000));
    let any = "127.0.0.1:0".parse().unwrap();
    let mut cfg = iumgate::demo::demo_config(
        iumgate::product::Product::Jira,
        &sim.url(),
        any,
        any,
        Duration::from_secs(60),
    );
    cfg.audit.path = Some("/nonexistent-iumgate-dir/audit.jsonl".into());
    let directory =
        iumgate::demo::demo_directory(iumgate::product::Product::Jira, &sim.url()).unwrap();
    let Err(e) = iumgate::app::start_opts(
        cfg,
        iumgate::app::Options {
            clock,
            directory: Some(directory),
        },
    )
    .await
    else {
        panic!("started with a trail it cannot write")
    };
    assert_eq!(e.key(), "audit.path");
    let chain = iumgate::proxy::error_chain(&e);
    assert!(
        chain.starts_with(
            "audit.path /nonexistent-iumgate-dir/audit.jsonl: cannot open for appending: "
        ),
        "{chain}"
    );
}
