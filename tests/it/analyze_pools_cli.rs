//! `iumgate analyze` per pool through the real binary (issue 20): the pools
//! come from `-c` (`[pools.*]`: names, needs, min_idle, reserved, a fixed
//! tier) and/or `--service-management`; a small Jira access log of software
//! users, agents and portal customers is counted per pool in the text, JSON
//! and HTML reports; without pools the output is today's, byte for byte.

use crate::analyze_support::jira_line;
use crate::check_diagnostics::config_toml;
use iumgate::analyze::{self, Options};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

const QUEUE_PAGE: &str = "/jira/servicedesk/projects/HELP/queues/custom/1";
const QUEUE_REFRESH: &str = "/rest/servicedesk/1/servicedesk/HELP/queues/1/issues";
const REQUEST: &str = "/rest/servicedeskapi/request/HELP-1";
const PORTAL: &str = "/servicedesk/customer/portal/1";

/// ann works in both (an issue, then the queue); bob works requests; dan is a
/// software user; cid a portal customer; two anonymous lines.
fn log(dir: &Path) -> PathBuf {
    let lines = [
        jira_line("09:00:00", "ann", "GET", "/browse/ABC-1"),
        jira_line("09:05:00", "ann", "GET", QUEUE_PAGE),
        jira_line("09:06:00", "ann", "GET", QUEUE_REFRESH),
        jira_line("09:00:00", "cid", "GET", PORTAL),
        jira_line(
            "09:01:00",
            "cid",
            "POST",
            "/servicedesk/customer/portal/1/create/10",
        ),
        jira_line("09:02:00", "-", "GET", PORTAL),
        jira_line("10:00:00", "bob", "GET", REQUEST),
        jira_line("10:01:00", "bob", "POST", &format!("{REQUEST}/comment")),
        jira_line("10:02:00", "bob", "GET", "/servicedesk/agent/HELP"),
        jira_line("11:00:00", "dan", "PUT", "/rest/api/2/issue/ABC-2"),
        jira_line("11:01:00", "-", "GET", "/s/batch.js"),
    ];
    let path = dir.join("access_log.2024-03-05");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn analyze_cli(args: &[&str]) -> Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iumgate"))
        .arg("analyze")
        .args(args)
        .env("IUMGATE_TEST_DIRECTORY_PASSWORD", "demo")
        .env_remove("IUMGATE_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(args: &[&str]) -> Value {
    let mut with = args.to_vec();
    with.push("--json");
    serde_json::from_slice(&analyze_cli(&with).stdout).unwrap()
}

fn pool<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no pool {name}: {v}"))
}

fn users(p: &Value) -> Vec<&str> {
    let mut u: Vec<&str> = p["report"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap())
        .collect();
    u.sort_unstable();
    u
}

#[test]
fn service_management_counts_each_line_for_the_pool_its_path_needs() {
    let dir = tempfile::tempdir().unwrap();
    let log = log(dir.path());
    let log = log.to_str().unwrap();
    let v = json(&[log, "--service-management"]);
    assert_eq!(v["pooled"], true);
    let names: Vec<&str> = v["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "service"]);
    assert_eq!(v["totals"]["lines"], 11);
    assert_eq!(v["totals"]["requests"], 11);
    assert_eq!(
        v["totals"]["no_seat_requests"], 3,
        "cid's two, one anonymous"
    );
    assert_eq!(v["totals"]["users"], 3, "cid is in no pool");
    let (default, service) = (pool(&v, "default"), pool(&v, "service"));
    assert_eq!(users(default), ["ann", "dan"]);
    assert_eq!(users(service), ["ann", "bob"]);
    assert_eq!(default["report"]["totals"]["requests"], 3);
    assert_eq!(default["report"]["totals"]["anonymous_requests"], 1);
    assert_eq!(service["report"]["totals"]["requests"], 5);
    // ann's queue page is activity, her queue refresh not.
    let ann = service["report"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == "ann")
        .unwrap();
    assert_eq!(
        (&ann["requests"], &ann["activity_requests"]),
        (&2.into(), &1.into())
    );

    // The text report: the overview and one section per pool.
    let text = String::from_utf8(analyze_cli(&[log, "--service-management"]).stdout).unwrap();
    assert!(text.contains("jira access logs, 2 pools"), "{text}");
    assert!(
        text.contains("11 requests, 3 need no seat (customer portal)"),
        "{text}"
    );
    let row = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}: {text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("default")[1..3], ["3", "2"], "requests, users");
    assert_eq!(row("service")[1..3], ["5", "2"]);
    assert!(text.contains("== pool service ("), "{text}");

    // HTML and the power-user lists, one per pool.
    let html = dir.path().join("report.html");
    let power = dir.path().join("power.txt");
    analyze_cli(&[
        log,
        "--service-management",
        "--html",
        html.to_str().unwrap(),
        "--power-users",
        power.to_str().unwrap(),
    ]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<table id=\"pools\">"), "{page}");
    assert!(page.contains("href=\"#pool-service\""), "{page}");
    assert_eq!(std::fs::read_to_string(&power).unwrap(), "");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("power.txt.service")).unwrap(),
        ""
    );
}

#[test]
fn the_configs_pools_bring_their_own_idle_time_tier_and_reserved_seats() {
    let dir = tempfile::tempdir().unwrap();
    let log = log(dir.path());
    let log = log.to_str().unwrap();
    let cfg = dir.path().join("iumgate.toml");
    std::fs::write(
        &cfg,
        config_toml(
            "http://127.0.0.1:9",
            r#"min_idle = "20m"

[pools.agents]
application = "jira-servicedesk"
tier = 4
reserved = 1
min_idle = "45m"
fixed_groups = ["jira-servicedesk-users"]
user_group = "IUM_user_service"
access_group = "IUM_access_service"
needs = ['^[A-Z]+ /jira/servicedesk/', '^[A-Z]+ /rest/servicedesk/', '^[A-Z]+ /rest/servicedeskapi/', '^[A-Z]+ /servicedesk/(?!customer/)']
"#,
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    for args in [
        vec![log, "-c", cfg],
        vec![log, "-c", cfg, "--service-management"],
    ] {
        let v = json(&args);
        let names: Vec<&str> = v["pools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["default", "agents"],
            "{args:?}: the config's Service Management pool, once"
        );
        let (default, agents) = (pool(&v, "default"), pool(&v, "agents"));
        assert_eq!(users(agents), ["ann", "bob"]);
        assert_eq!(agents["report"]["totals"]["requests"], 5);
        assert_eq!(agents["report"]["min_idle_s"], 45 * 60);
        assert_eq!(default["report"]["min_idle_s"], 20 * 60);
        let rec = &agents["report"]["recommendation"];
        assert_eq!(rec["reserved"], 1);
        assert_eq!(rec["current"]["tier"], 4);
        assert_eq!(rec["current"]["shared_seats"], 3, "tier 4 − 1 reserved");
        assert!(default["report"]["recommendation"]["current"].is_null());
        // Service Management's activity rules come with the application:
        // ann's queue refresh is no activity.
        let ann = agents["report"]["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["user"] == "ann")
            .unwrap();
        assert_eq!(ann["activity_requests"], 1);
    }
}

#[test]
fn without_pools_the_output_is_todays_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let log = log(dir.path());
    let report = analyze::analyze_files(std::slice::from_ref(&log), Options::default()).unwrap();
    let out = analyze_cli(&[log.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        analyze::render_text(&report)
    );
    let v = json(&[log.to_str().unwrap()]);
    assert!(v.get("pools").is_none(), "{v}");
    assert_eq!(v, serde_json::to_value(&report).unwrap());
}

#[test]
fn a_service_pool_of_another_application_clashes_with_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let log = log(dir.path());
    let cfg = dir.path().join("iumgate.toml");
    std::fs::write(
        &cfg,
        config_toml(
            "http://127.0.0.1:9",
            r#"
[pools.service]
application = "jira-core"
user_group = "IUM_user_core"
access_group = "IUM_access_core"
needs = ['^[A-Z]+ /core/']
"#,
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iumgate"))
        .args([
            "analyze",
            log.to_str().unwrap(),
            "--service-management",
            "-c",
        ])
        .arg(&cfg)
        .env("IUMGATE_TEST_DIRECTORY_PASSWORD", "demo")
        .env_remove("IUMGATE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--service-management: the config has a pool named `service` already"),
        "{err}"
    );
}
