//! `kill -9` of the real binary (issue 21): the trail is flushed within a
//! second, so a SIGKILL loses at most the events of the last second. Five
//! logins are written (a bounded wait for the flush, no sleep), the process
//! is killed without warning, and every one of their lines is in the file,
//! whole.

use crate::state_kill9::{serve_config, spawn};
use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig};
use std::time::{Duration, Instant};

fn grants(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<iumgate::audit::Line>(l).ok())
        .filter(|l| l.kind == iumgate::audit::Kind::Grant)
        .map(|l| l.user)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_at_most_the_last_second_of_the_trail() {
    let sim = Sim::start(SimConfig::demo(Product::Jira)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("audit.jsonl");
    let cfg = dir.path().join("iumgate.toml");
    std::fs::write(
        &cfg,
        serve_config(
            &sim.url(),
            &format!("[audit]\npath = \"{}\"\n", trail.display()),
        ),
    )
    .unwrap();
    let mut gate = spawn(&cfg);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let users = ["casual01", "casual02", "casual03", "casual04", "casual05"];
    // The first reconcile lets logins in: until then they wait.
    let deadline = Instant::now() + Duration::from_secs(30);
    for u in users {
        loop {
            let r = client
                .post(format!("http://{}/login.jsp", gate.proxy))
                .header("accept", "text/html")
                .form(&[("os_username", u), ("os_password", "demo")])
                .send()
                .await
                .unwrap();
            let waited = r
                .headers()
                .get("location")
                .is_some_and(|l| l.to_str().unwrap_or("").contains("/iumgate/wait"));
            if !waited && sim.is_member(u, "IUM_access_software") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{u} got no seat:\n{}",
                gate.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The writer flushes every second: a bounded wait for it, nothing more.
    let deadline = Instant::now() + Duration::from_secs(10);
    while grants(&trail).len() < users.len() {
        assert!(
            Instant::now() < deadline,
            "not flushed: {:?}\n{}",
            grants(&trail),
            gate.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No drain, no final flush.
    gate.child.kill().unwrap();
    let status = gate.child.wait().unwrap();
    assert!(!status.success());
    let text = std::fs::read_to_string(&trail).unwrap();
    for l in text.lines() {
        serde_json::from_str::<iumgate::audit::Line>(l)
            .unwrap_or_else(|e| panic!("a torn line after kill -9: {e}: {l:?}"));
    }
    let mut got = grants(&trail);
    got.sort();
    assert_eq!(got, users, "every login of before the last second is there");
}
