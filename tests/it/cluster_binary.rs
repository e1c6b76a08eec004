//! Two real `iumgate serve` processes with `[cluster]` in front of one
//! simulated Jira and one real redis-server (issue 19, item 9): `kill -9` of
//! one replica leaves its holders holders — the other replica serves them,
//! no seat moves — and the pool's capacity still counts them.

use crate::cluster_support::redis_or_skip;
use crate::state_kill9::{serve_config, spawn, Gate};
use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ACCESS: &str = "IUM_access_software";

fn write_config(dir: &Path, name: &str, sim_url: &str, redis_url: &str) -> PathBuf {
    let extra = format!("[cluster]\nredis_url = \"{redis_url}\"\nnode_id = \"{name}\"\n");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, serve_config(sim_url, &extra)).unwrap();
    path
}

fn wait_for_log(g: &Gate, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !g.log().contains(what) {
        assert!(
            Instant::now() < deadline,
            "no {what:?} in the log:\n{}",
            g.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A form login through `g`; whether it ended in the app (302 to the issue).
async fn logs_in(c: &reqwest::Client, g: &Gate, user: &str) -> bool {
    let r = c
        .post(format!("http://{}/login.jsp", g.proxy))
        .header("accept", "text/html")
        .form(&[
            ("os_username", user),
            ("os_password", "demo"),
            ("os_destination", "/browse/DEMO-1"),
        ])
        .send()
        .await
        .unwrap();
    r.status() == 302
        && r.headers()
            .get("location")
            .is_some_and(|l| l.to_str().unwrap_or("").ends_with("/browse/DEMO-1"))
}

fn members(sim: &Sim) -> Vec<String> {
    let mut m = sim.members(ACCESS);
    m.sort();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_replica_leaves_its_holders_holders_at_the_other() {
    let Some(redis) = redis_or_skip() else { return };
    let sim = Sim::start(SimConfig::demo(Product::Jira)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a_cfg = write_config(dir.path(), "a", &sim.url(), &redis.url());
    let b_cfg = write_config(dir.path(), "b", &sim.url(), &redis.url());
    let mut a = spawn(&a_cfg);
    let b = spawn(&b_cfg);
    for g in [&a, &b] {
        wait_for_log(g, "reconciled with the directory");
    }
    // Four log in at A.
    let mut clients = Vec::new();
    for i in 1..=4 {
        let c = browser();
        assert!(
            logs_in(&c, &a, &format!("casual{i:02}")).await,
            "{}",
            a.log()
        );
        clients.push(c);
    }
    assert_eq!(members(&sim).len(), 4);
    assert!(redis.command("ZCARD iumgate:seats").starts_with(":4"));
    // B learns them (its sync runs every 500 ms) before A dies: until then
    // B admits a holder it does not know yet on the app's answer and the
    // browser repeats the request (307).
    let deadline = Instant::now() + Duration::from_secs(20);
    for (i, c) in clients.iter().enumerate() {
        loop {
            let r = c
                .get(format!("http://{}/browse/DEMO-1", b.proxy))
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                assert_eq!(r.headers()["x-ausername"], format!("casual{:02}", i + 1));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "B never served casual{:02}",
                i + 1
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(members(&sim).len(), 4, "B granted nobody twice");

    // kill -9 of A.
    a.child.kill().unwrap();
    a.child.wait().unwrap();

    // Every one of A's holders is served by B, and keeps the seat.
    for (i, c) in clients.iter().enumerate() {
        let r = c
            .get(format!("http://{}/browse/DEMO-1", b.proxy))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "casual{:02} at B", i + 1);
    }
    assert_eq!(members(&sim).len(), 4, "no seat moved");
    assert!(redis.command("ZCARD iumgate:seats").starts_with(":4"));
    // Newcomers at B get the three seats left, not more.
    let mut admitted = 0;
    for i in 5..=8 {
        admitted += usize::from(logs_in(&browser(), &b, &format!("casual{i:02}")).await);
    }
    assert_eq!(admitted, 3, "{}", b.log());
    assert_eq!(members(&sim).len(), 7);
    assert!(sim.peak_members(ACCESS) <= 7);
}
