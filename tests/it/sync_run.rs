//! `iumgate sync`: plans, applies with a journal, is killed half-way and
//! resumes without duplicates, and undoes — the real command against the
//! simulator.

use crate::housekeeping_support::*;
use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig, SimUser};
use std::path::Path;
use std::process::Stdio;

const STAFF: usize = 12;

async fn sim_with_staff() -> Sim {
    let mut cfg = SimConfig::demo(Product::Jira);
    for i in 1..=STAFF {
        cfg.users
            .push(SimUser::new(&format!("staff{i:02}"), &["staff"]));
    }
    // Filtered out: a power user, a deactivated user; already present: casual01.
    cfg.users.push(SimUser {
        active: false,
        ..SimUser::new("gone01", &["staff"])
    });
    let sim = Sim::start(cfg).await.unwrap();
    sim.add_to_group("power1", "staff");
    sim.add_to_group("casual01", "staff");
    sim
}

fn write_config(dir: &Path, url: &str, pace: &str) -> std::path::PathBuf {
    let path = dir.join("iumgate.toml");
    let text = format!(
        r#"[proxy]
upstream = "{url}"

[directory]
username = "iumgate-admin"
password_env = "IUMGATE_TEST_DIRECTORY_PASSWORD"
retries = 0

[licence]
fixed_groups = ["jira-software-users"]

[ium]
user_group = "IUM_user_software"
access_group = "IUM_access_software"

[sync]
source_groups = ["staff"]
pace = "{pace}"
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn cli(args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_iumgate"));
    c.args(args)
        .env("IUMGATE_TEST_DIRECTORY_PASSWORD", "demo")
        .env_remove("IUMGATE_CONFIG")
        .stdin(Stdio::null());
    c
}

fn staff_in_group(sim: &Sim) -> Vec<String> {
    sim.members("IUM_user_software")
        .into_iter()
        .filter(|u| u.starts_with("staff"))
        .collect()
}

fn adds_to_user_group(sim: &Sim) -> Vec<String> {
    sim.group_writes()
        .into_iter()
        .filter(|(op, _, g)| op == "add" && g == "IUM_user_software")
        .map(|(_, u, _)| u)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_plans_applies_resumes_after_a_kill_without_duplicates_and_undoes() {
    let sim = sim_with_staff().await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.jsonl");
    let journal_s = journal.to_str().unwrap();

    // The plan alone changes nothing.
    let config = write_config(dir.path(), &sim.url(), "300ms");
    let config_s = config.to_str().unwrap();
    let out = cli(&["sync", "--config", config_s, "--verbose"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("to add 12, filtered out 1 (fixed licence), filtered out 1 (deactivated), already present 1"),
        "{stdout}"
    );
    assert!(stdout.contains("fixed licence (1): power1"), "{stdout}");
    assert!(stdout.contains("deactivated (1): gone01"), "{stdout}");
    assert!(stdout.contains("already present (1): casual01"), "{stdout}");
    assert!(sim.group_writes().is_empty());

    // Apply, paced at 300 ms a write, and kill it after a few.
    let mut child = cli(&[
        "sync",
        "--config",
        config_s,
        "--apply",
        "--journal",
        journal_s,
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_until("a few users added", || staff_in_group(&sim).len() >= 3).await;
    child.kill().await.unwrap();
    let partial = staff_in_group(&sim).len();
    assert!(
        (3..STAFF).contains(&partial),
        "killed half-way: {partial} added"
    );
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(
        !text.contains("\"t\":\"end\""),
        "the interrupted run never ended"
    );

    // Run again: it resumes the interrupted run and adds only the rest.
    write_config(dir.path(), &sim.url(), "10ms");
    let out = cli(&[
        "sync",
        "--config",
        config_s,
        "--apply",
        "--journal",
        journal_s,
    ])
    .output()
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("resumed interrupted run"), "{stdout}");
    // The rest only (the kill may have landed during a call, so ± that one).
    let added: usize = stdout
        .split(": added ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in {stdout}"));
    assert!(
        added + partial == STAFF || added + partial + 1 == STAFF,
        "{added} + {partial}: {stdout}"
    );
    assert_eq!(staff_in_group(&sim).len(), STAFF);
    let mut adds = adds_to_user_group(&sim);
    adds.sort();
    let expected: Vec<String> = (1..=STAFF).map(|i| format!("staff{i:02}")).collect();
    assert_eq!(
        adds, expected,
        "every user added exactly once, nobody filtered out added"
    );

    // Undo the run (both of its parts).
    let out = cli(&["sync", "--config", config_s, "--undo", journal_s])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("removed {STAFF} user(s)")),
        "{stdout}"
    );
    assert!(staff_in_group(&sim).is_empty());
    let members = sim.members("IUM_user_software");
    assert!(
        members.contains(&"casual01".to_string()),
        "users who were there before stay"
    );
    assert_eq!(members.len(), 20);
}
