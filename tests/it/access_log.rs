//! `[access_log]`: a line per request on both lanes, with the gate's
//! decision; rotation (`create` and `copytruncate`) and SIGHUP; a stuck log
//! device drops lines (counted) and never holds a request up; and the loop
//! from traffic through a gate to `iumgate analyze` recommending seats.

use crate::gate_support::*;
use iumgate::config::{AccessLogFormat, Dur};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A gate in front of the demo's Jira with the access log at `path`.
async fn world(path: &Path, fast_lane: bool, buffer: usize) -> World {
    let path = path.to_owned();
    World::start(
        iumgate::product::Product::Jira,
        |_| {},
        move |cfg| {
            cfg.access_log.path = Some(path);
            cfg.access_log.format = AccessLogFormat::Json;
            cfg.access_log.buffer = buffer;
            cfg.proxy.fast_lane = fast_lane;
            cfg.ium.min_idle = Dur::secs(30 * 60);
        },
    )
    .await
}

/// The file's lines as JSON, once it has at least `n` (waits up to 10 s:
/// the writer flushes every second).
async fn lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let got: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {} lines, expected {n}:\n{text}",
            path.display(),
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A browser's cookie jar, and a new client on it (a new connection: the
/// fast lane takes it unless a request with a body came on it).
fn fresh(jar: &std::sync::Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    browser_no_redirect(jar.clone())
}

fn find<'a>(all: &'a [Value], method: &str, path: &str, user: Option<&str>) -> Vec<&'a Value> {
    all.iter()
        .filter(|l| {
            l["method"] == method
                && l["path"] == path
                && match user {
                    Some(u) => l["user"] == u,
                    None => l["user"].is_null(),
                }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_lanes_log_each_request_with_its_user_and_the_gates_decision() {
    for fast_lane in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let w = world(&path, fast_lane, 8192).await;

        // Anonymous, on a new connection.
        let r = no_redirect()
            .get(w.url("/secure/Dashboard.jspa?q=secret"))
            .send()
            .await
            .unwrap();
        let anon_status = r.status().as_u16();
        // Seven casual users log in (a form: a body, so the hyper lane).
        let mut jars = Vec::new();
        for u in SEVEN {
            let (c, jar) = browser();
            let r = jira_login(&w, &c, u, "demo", false).await;
            assert_eq!(r.status(), 200, "{u}");
            jars.push(jar);
        }
        // The eighth waits.
        let (c8, _) = browser();
        let (_, at, _) = text(jira_login(&w, &c8, "casual08", "demo", false).await).await;
        assert_eq!(at, "/iumgate/wait");
        // Past min_idle, casual08's waiting page gets casual01's seat…
        w.advance_min(31);
        let q = poll_queue(&w, &c8, "").await;
        assert_eq!(q["state"], "admitted", "{q}");
        // … and casual01, back with a page, takes casual02's (a GET on a
        // new connection: the fast lane when it is on).
        let r = fresh(&jars[0])
            .get(w.url("/browse/DEMO-1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page = r.bytes().await.unwrap().len() as u64;
        // casual03 still holds a seat: passes.
        let r = fresh(&jars[2])
            .get(w.url("/browse/DEMO-3"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);

        let all = lines(&path, 20).await;
        let lane = if fast_lane { "fast lane" } else { "hyper" };
        for l in &all {
            assert_eq!(l["client"], "127.0.0.1", "{lane}: {l}");
            assert_eq!(l["pool"], "default", "{lane}: {l}");
            assert!(l["status"].as_u64().is_some(), "{lane}: {l}");
            assert!(l["bytes"].as_u64().is_some(), "{lane}: {l}");
            let total = l["total_ms"].as_f64().unwrap();
            if let Some(up) = l["upstream_ms"].as_f64() {
                assert!(up <= total + 0.001, "{lane}: {l}");
            }
            // The manual clock's time (2027-01-15 08:00 UTC on), with the
            // machine's offset.
            let ts = l["ts"].as_str().unwrap();
            assert!(ts.starts_with("2027-01-1"), "{lane}: {l}");
            assert!(!l["path"].as_str().unwrap().contains('?'), "{lane}: {l}");
        }
        let anon = find(&all, "GET", "/secure/Dashboard.jspa", None);
        assert_eq!(anon.len(), 1, "{lane}: {all:#?}");
        assert_eq!(anon[0]["decision"], "anonymous");
        assert_eq!(anon[0]["status"], anon_status);
        assert!(anon[0]["upstream_ms"].as_f64().is_some());
        for u in SEVEN {
            let login = find(&all, "POST", "/login.jsp", Some(u));
            assert_eq!(login.len(), 1, "{lane}: {u}");
            assert_eq!(login[0]["decision"], "admitted", "{lane}: {u}");
        }
        let waited = find(&all, "POST", "/login.jsp", Some("casual08"));
        assert_eq!(waited[0]["decision"], "waited", "{lane}");
        // The app checked the password first: it was forwarded.
        assert!(waited[0]["upstream_ms"].as_f64().is_some(), "{lane}");
        let own = find(&all, "GET", "/iumgate/api/queue", Some("casual08"));
        assert!(
            own.iter().all(|l| l["decision"] == "own"),
            "{lane}: {own:?}"
        );
        let evicting = find(&all, "GET", "/browse/DEMO-1", Some("casual01"));
        let last = evicting.last().unwrap();
        assert_eq!(last["decision"], "evicted-for", "{lane}: {evicting:?}");
        assert_eq!(last["status"], 200);
        assert_eq!(last["bytes"], page, "{lane}: the body's bytes");
        let passing = find(&all, "GET", "/browse/DEMO-3", Some("casual03"));
        assert_eq!(passing.len(), 1, "{lane}");
        assert_eq!(passing[0]["decision"], "pass", "{lane}");
        assert!(
            !w.holds("casual02") && w.holds("casual01"),
            "{lane}: the eviction the line names happened"
        );

        let fast = metric(&w, "iumgate_proxy_fast_lane_requests_total");
        if fast_lane {
            assert!(fast >= 2.0, "the GETs took the fast lane: {fast}");
        } else {
            assert_eq!(fast, 0.0);
        }
        assert_eq!(
            metric(
                &w,
                "iumgate_access_log_lines_total{decision=\"evicted-for\"}"
            ),
            1.0
        );
        assert_eq!(metric(&w, "iumgate_access_log_dropped_total"), 0.0);
        w.stop().await;
    }
}

async fn get_n(w: &World, n: usize) {
    for _ in 0..n {
        let r = no_redirect().get(w.url("/status")).send().await.unwrap();
        let _ = r.bytes().await;
    }
}

fn count_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_by_rename_by_copytruncate_and_sighup_loses_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let w = world(&path, true, 8192).await;
    get_n(&w, 3).await;
    until("3 lines", || count_lines(&path) == 3).await;

    // logrotate `create`: renamed away; the next lines go to a new file at
    // the path without any signal.
    let first = dir.path().join("access.log.1");
    std::fs::rename(&path, &first).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    get_n(&w, 2).await;
    until("2 lines in the new file", || count_lines(&path) == 2).await;
    assert_eq!(count_lines(&first), 3, "the old file keeps its lines");

    // logrotate `copytruncate`: copied, then cut to nothing in place.
    let second = dir.path().join("access.log.2");
    std::fs::copy(&path, &second).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    get_n(&w, 4).await;
    until("4 lines after the truncation", || count_lines(&path) == 4).await;
    let bytes = std::fs::read(&path).unwrap();
    assert!(!bytes.contains(&0), "no hole of zeros before the new lines");
    for l in String::from_utf8(bytes).unwrap().lines() {
        serde_json::from_str::<Value>(l).unwrap();
    }
    assert_eq!(count_lines(&second), 2);

    // SIGHUP (what `run_until_signalled` calls): reopened at once.
    let third = dir.path().join("access.log.3");
    std::fs::rename(&path, &third).unwrap();
    w.run.reload();
    until("the file made again on SIGHUP", || path.exists()).await;
    get_n(&w, 1).await;
    until("1 line after SIGHUP", || count_lines(&path) == 1).await;
    assert_eq!(count_lines(&third), 4);
    assert_eq!(metric(&w, "iumgate_access_log_dropped_total"), 0.0);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_log_drops_and_counts_lines_and_never_holds_a_request_up() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("access.fifo");
    // A reader that opens the pipe and never reads: the log's device is stuck
    // once the pipe's buffer is full.
    let reader = stuck_fifo(&fifo);
    let w = world(&fifo, true, 16).await;
    let reader = reader.join().unwrap();
    let client = no_redirect();
    let mut slowest = Duration::ZERO;
    for _ in 0..1500 {
        let t = Instant::now();
        let r = client.get(w.url("/status")).send().await.unwrap();
        assert!(r.status().is_success() || r.status().is_redirection());
        let _ = r.bytes().await;
        slowest = slowest.max(t.elapsed());
    }
    let dropped = metric(&w, "iumgate_access_log_dropped_total");
    assert!(dropped > 500.0, "lines dropped and counted: {dropped}");
    assert!(
        slowest < Duration::from_secs(2),
        "no request waited for the log: the slowest took {slowest:?}"
    );
    // Unstick the writer (its writes fail now; counted as errors).
    drop(reader);
    w.stop().await;
}

/// A working morning at the demo's site, through the gate: ten casual users
/// in three waves of short sessions, seven shared seats.
async fn demo_morning(w: &World) {
    // (user, first minute, last minute) of each session.
    let sessions: [(&str, u64, u64); 12] = [
        ("casual01", 0, 20),
        ("casual02", 0, 25),
        ("casual03", 5, 20),
        ("casual04", 5, 30),
        ("casual05", 60, 80),
        ("casual06", 60, 75),
        ("casual07", 65, 90),
        ("casual08", 70, 85),
        ("casual09", 120, 140),
        ("casual10", 120, 150),
        ("casual01", 125, 145),
        ("casual02", 130, 140),
    ];
    let mut clients: std::collections::HashMap<&str, reqwest::Client> = Default::default();
    for minute in (0..=150).step_by(5) {
        for (i, (user, from, to)) in sessions.iter().enumerate() {
            if minute < *from || minute > *to {
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = clients.entry(user) {
                let (c, _) = browser();
                let r = jira_login(w, &c, user, "demo", false).await;
                assert_eq!(r.status(), 200, "{user} logs in");
                e.insert(c);
            }
            let c = &clients[user];
            let r = c
                .get(w.url(&format!("/browse/DEMO-{}", i + 1)))
                .send()
                .await
                .unwrap();
            let _ = r.bytes().await;
        }
        w.advance_min(5);
    }
}

fn analyze_options() -> iumgate::analyze::Options {
    iumgate::analyze::Options {
        min_idle: Duration::from_secs(30 * 60),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_traffic_through_the_gate_makes_a_log_that_analyze_turns_into_a_seat_count() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("access.log");
    let w = world(&path, true, 8192).await;
    demo_morning(&w).await;
    // Flushed at the end of the drain.
    w.stop().await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.lines().count() > 60, "{}", text.lines().count());

    let report =
        iumgate::analyze::analyze_files(std::slice::from_ref(&path), analyze_options()).unwrap();
    let file = &report.inputs[0];
    assert_eq!(file.format, "iumgate", "detected as iumgate's JSON lines");
    assert_eq!(file.malformed, 0, "{:?}", file.malformed_examples);
    assert_eq!(file.requests, file.lines);
    assert_eq!(report.totals.users, 10, "{:?}", report.users);
    assert!(report.power_users.is_empty(), "{:?}", report.power_users);
    // Four users at once at most in a wave (their seats idle on for
    // min_idle): a seat count between that and the users there are.
    let seats = report.recommendation.shared_seats;
    assert!(
        (4..=10).contains(&seats),
        "{seats}: {:?}",
        report.recommendation
    );
    assert!(report.recommendation.meets_target);
    assert!(report.peak_demand >= 4, "{}", report.peak_demand);

    // The real command reads the same file to the same recommendation.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iumgate"))
        .args(["analyze", "--idle", "30m", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["recommendation"]["shared_seats"], seats);
    assert_eq!(json["inputs"][0]["format"], "iumgate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_combined_format_names_the_client_behind_a_trusted_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let p = path.clone();
    let w = World::start(
        iumgate::product::Product::Jira,
        |_| {},
        move |cfg| {
            cfg.access_log.path = Some(p);
            cfg.access_log.format = AccessLogFormat::Combined;
            cfg.proxy.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        },
    )
    .await;
    let r = no_redirect()
        .get(w.url("/secure/Dashboard.jspa?q=1"))
        .header("x-forwarded-for", "203.0.113.9, 127.0.0.5")
        .header("referer", "http://example.com/")
        .header("user-agent", "curl/8")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let _ = r.bytes().await;
    until("a line", || count_lines(&path) == 1).await;
    let line = std::fs::read_to_string(&path).unwrap();
    // (The manual clock's day, in whatever zone this machine is in.)
    assert!(line.starts_with("203.0.113.9 - - ["), "{line}");
    assert!(line.contains("/Jan/2027:"), "{line}");
    assert!(
        line.contains(&format!(
            "\"GET /secure/Dashboard.jspa HTTP/1.1\" {status} "
        )),
        "{line}"
    );
    assert!(
        line.contains("\"http://example.com/\" \"curl/8\" "),
        "{line}"
    );
    assert!(line.trim_end().ends_with(" anonymous default"), "{line}");
    w.stop().await;
}
