//! `[audit]` with several replicas (issue 21, item 4): two replicas on one
//! real `redis-server`, one `[audit] path` on a shared directory — each
//! writes its own file named after its node id, each line names its node,
//! and `iumgate audit report` merges the directory into one month.

use crate::audit_trail::trail;
use crate::cluster_support::redis_or_skip;
use crate::gate_support::{browser, jira_login, World};
use iumgate::config::{ClusterConfig, Config};
use iumgate::product::Product;
use serde_json::Value;
use std::path::Path;

fn replica(redis_url: String, node: &str, dir: &Path) -> impl FnOnce(&mut Config) {
    let node = node.to_string();
    let path = dir.join("audit.jsonl");
    move |c: &mut Config| {
        c.cluster = Some(ClusterConfig {
            redis_url: Some(redis_url),
            node_id: Some(node),
            ..ClusterConfig::default()
        });
        c.audit.path = Some(path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_replica_writes_its_own_file_and_the_report_merges_them() {
    let Some(mut redis) = redis_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = World::start(Product::Jira, |_| {}, replica(redis.url(), "a", dir.path())).await;
    let b = World::start_on(
        Product::Jira,
        a.sim.clone(),
        a.clock.clone(),
        replica(redis.url(), "b", dir.path()),
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !a.gate.cluster().unwrap().is_built().await.unwrap_or(false) {
        assert!(std::time::Instant::now() < deadline, "the store is built");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (ca, _) = browser();
    assert_eq!(
        jira_login(&a, &ca, "casual01", "demo", false)
            .await
            .status(),
        200
    );
    let (cb, _) = browser();
    assert_eq!(
        jira_login(&b, &cb, "casual02", "demo", false)
            .await
            .status(),
        200
    );
    let file_a = dir.path().join("audit.a.jsonl");
    let file_b = dir.path().join("audit.b.jsonl");
    assert_eq!(a.gate.audit_trail().unwrap().path(), file_a);
    assert_eq!(b.gate.audit_trail().unwrap().path(), file_b);
    let lines_a = trail(&file_a, 1).await;
    let lines_b = trail(&file_b, 1).await;
    let grant = |lines: &[Value], user: &str, node: &str| {
        assert!(
            lines
                .iter()
                .any(|l| l["kind"] == "grant" && l["user"] == user && l["node"] == node),
            "{node}: {lines:#?}"
        );
        assert!(lines.iter().all(|l| l["node"] == node), "{lines:#?}");
    };
    grant(&lines_a, "casual01", "a");
    grant(&lines_b, "casual02", "b");
    // Redis down: no grant anywhere, and the refusal is on the trail.
    redis.stop();
    let (cc, _) = browser();
    let r = jira_login(&a, &cc, "casual03", "demo", false).await;
    assert!(!r.status().is_success(), "{}", r.status());
    let lines_a = trail(&file_a, lines_a.len() + 1).await;
    assert!(
        lines_a.iter().any(|l| l["kind"] == "refused"
            && l["reason"] == "cluster_store_failure"
            && l["user"] == "casual03"),
        "{lines_a:#?}"
    );
    redis.start();
    b.stop().await;
    a.stop().await;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iumgate"))
        .args(["audit", "report", "--month", "2027-01", "--json"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["nodes"], serde_json::json!(["a", "b"]));
    let day = r["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["date"] == "2027-01-15")
        .unwrap();
    assert_eq!(day["grants"], 2, "{day}");
    assert_eq!(
        day["peak_in_use"], 2,
        "one pool seen from both replicas: {day}"
    );
    assert_eq!(r["over_capacity"], false);
    drop(redis);
}
