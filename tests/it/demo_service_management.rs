//! `iumgate demo --service-management` (issue 20): the real binary in front
//! of the simulated Jira with Service Management — two seat pools. An agent
//! logs in through the printed queue URL and takes an agent seat, a software
//! user a software seat, a portal customer none; the admin listener's
//! status JSON and metrics show both pools. And the flag is refused for other products.

use crate::gate_support::browser;
use crate::hostile_chain_binary::{demo_with, members, metric_opt as metric, Demo};
use std::time::{Duration, Instant};

/// The first printed line that starts with `label`, its first word after it.
fn printed_after(d: &Demo, label: &str) -> Option<String> {
    d.printed.iter().find_map(|l| {
        l.trim()
            .strip_prefix(label)
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_string)
    })
}

/// Reads printed lines until one starts with `label` (bounded wait).
fn wait_for_line(d: &mut Demo, label: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(u) = printed_after(d, label) {
            return u;
        }
        let line = d
            .output
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the demo prints {label}: {:#?}", d.printed));
        d.printed.push(line);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_management_demo_runs_both_pools_and_an_agent_gets_the_printed_queue() {
    let mut d = demo_with(&["--service-management"]);
    let queue = wait_for_line(&mut d, "Queue");
    let portal = wait_for_line(&mut d, "Portal");
    assert_eq!(
        queue,
        format!("{}/jira/servicedesk/projects/HELP/queues/custom/1", d.proxy)
    );
    assert_eq!(
        portal,
        format!("{}/servicedesk/customer/user/login", d.proxy)
    );
    // The rest of the banner may still be on its way: read on until each
    // text is there (bounded).
    for text in ["agent01", "both1", "customer1", "4 agent seats", "7 shared"] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !d.printed.iter().any(|l| l.contains(text)) {
            let line = d
                .output
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("{text} in {:#?}", d.printed));
            d.printed.push(line);
        }
    }
    // Both pools read their groups; the service pool's is the second gate.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&d, "iumgate_gate_reconciled{pool=\"service\"}").await != Some(1.0) {
        assert!(Instant::now() < deadline, "the service pool reconciles");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric(&d, "iumgate_seats_capacity{pool=\"service\"}").await,
        Some(4.0),
        "tier 5 − agent1"
    );
    assert_eq!(
        metric(&d, "iumgate_seats_capacity{pool=\"default\"}").await,
        Some(7.0),
        "tier 10 − 3 power users"
    );

    // An agent logs in at the printed queue URL: the form's destination is
    // the queue, and the login takes an agent seat, not a software one.
    let (agent, _) = browser();
    let r = agent
        .post(format!("{}/login.jsp", d.proxy))
        .form(&[
            ("os_username", "agent01"),
            ("os_password", "demo"),
            (
                "os_destination",
                "/jira/servicedesk/projects/HELP/queues/custom/1",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().as_str(), queue, "the agent lands on the queue");
    let r = agent.get(&queue).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().as_str(), queue);
    assert_eq!(members(&d, "IUM_access_service").await, ["agent01"]);
    assert!(members(&d, "IUM_access_software").await.is_empty());

    // A software user takes a software seat; a portal customer none.
    let (casual, _) = browser();
    let r = casual
        .post(format!("{}/login.jsp", d.proxy))
        .form(&[
            ("os_username", "casual01"),
            ("os_password", "demo"),
            ("os_destination", "/browse/DEMO-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().path(), "/browse/DEMO-1");
    let (customer, _) = browser();
    let r = customer
        .post(&portal)
        .form(&[
            ("os_username", "customer1"),
            ("os_password", "demo"),
            ("destination", "portal/1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().path(), "/servicedesk/customer/portal/1");
    assert_eq!(members(&d, "IUM_access_software").await, ["casual01"]);
    assert_eq!(members(&d, "IUM_access_service").await, ["agent01"]);

    // The status JSON (behind the demo's admin token) has both pools.
    let link = match d.status_link.clone() {
        Some(l) => l,
        // Printed after the lines `demo_with` waited for.
        None => wait_for_line(&mut d, "Status"),
    };
    let token = link.rsplit("token=").next().unwrap().to_string();
    let st: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/iumgate/admin/status", d.admin))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["pool"], "default", "{st}");
    assert_eq!(st["application"], "jira-software");
    assert_eq!(st["seats"]["capacity"], 7);
    assert_eq!(st["seats"]["in_use"], 1);
    assert!(st["holders"].to_string().contains("casual01"), "{st}");
    let service = &st["pools"][0];
    assert_eq!(service["pool"], "service", "{st}");
    assert_eq!(service["application"], "jira-servicedesk");
    assert_eq!(service["seats"]["tier"], 5);
    assert_eq!(service["seats"]["capacity"], 4);
    assert_eq!(service["seats"]["in_use"], 1);
    assert!(service["holders"].to_string().contains("agent01"), "{st}");
    assert!(!service["holders"].to_string().contains("casual01"));

    // The admin listener's metrics show each pool's seats in use.
    assert_eq!(
        metric(&d, "iumgate_seats_in_use{pool=\"service\"}").await,
        Some(1.0)
    );
    assert_eq!(
        metric(&d, "iumgate_seats_in_use{pool=\"default\"}").await,
        Some(1.0)
    );
}

#[test]
fn service_management_is_refused_for_other_products_with_a_clear_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iumgate"))
        .args([
            "demo",
            "--product",
            "confluence",
            "--service-management",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--service-management needs --product jira"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing started");
}
