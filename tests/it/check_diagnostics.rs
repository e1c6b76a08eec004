//! `iumgate check` finds each classic misconfiguration on a simulator set up
//! with it, and passes on a clean one.

use crate::housekeeping_support::*;
use iumgate::check::{self, Verdict};
use iumgate::config::{Config, Secret};
use iumgate::directory::{Auth, ClientOptions, Directory, JiraDirectory};
use iumgate::sim::{Sim, SimUser};
use std::sync::Arc;
use std::time::Duration;

fn directory(sim: &Sim, user: &str, password: &str) -> Arc<dyn Directory> {
    let auth = Auth::Basic {
        username: user.into(),
        password: Secret::new(password),
    };
    let opts = ClientOptions {
        timeout: Duration::from_secs(5),
        retries: 0,
        ..ClientOptions::default()
    };
    Arc::new(JiraDirectory::new(&sim.url(), auth, opts).unwrap())
}

async fn run(sim: &Sim, cfg: &Config) -> check::Report {
    check::run(cfg, directory(sim, "iumgate-admin", "demo").as_ref()).await
}

fn verdict(r: &check::Report, name: &str) -> Verdict {
    r.get(name)
        .unwrap_or_else(|| panic!("no finding {name}: {r:#?}"))
        .verdict
}

#[tokio::test]
async fn a_clean_setup_passes() {
    let sim = jira_sim().await;
    let r = run(&sim, &config(&sim)).await;
    assert_eq!(r.exit_code(), 0, "{}", r.human());
    for name in [
        "upstream_reachable",
        "directory_credentials",
        "groups_exist",
        "power_users_in_ium_groups",
        "directory_writable",
        "tier_arithmetic",
        "tier_application",
    ] {
        assert_eq!(verdict(&r, name), Verdict::Pass, "{}", r.human());
    }
    assert!(r
        .get("tier_arithmetic")
        .unwrap()
        .evidence
        .contains("tier 10 = 3 fixed + 0 reserved + 7 shared"));
    // Not checkable over REST: a reminder with the exact fix.
    assert_eq!(verdict(&r, "browse_users_permission"), Verdict::Unverified);
    assert!(r
        .get("browse_users_permission")
        .unwrap()
        .fix
        .as_deref()
        .unwrap()
        .contains("Browse users and groups"));
    // No group writes beyond the harmless re-add probe.
    assert!(sim.group_writes().is_empty(), "{:?}", sim.group_writes());
}

#[tokio::test]
async fn power_users_inside_ium_groups_are_named() {
    let sim = jira_sim().await;
    sim.add_to_group("power2", "IUM_user_software");
    sim.add_to_group("power3", "IUM_access_software");
    let r = run(&sim, &config(&sim)).await;
    assert_eq!(r.exit_code(), 1);
    let f = r.get("power_users_in_ium_groups").unwrap();
    assert_eq!(f.verdict, Verdict::Fail);
    assert!(f.evidence.contains("power2, power3"), "{}", f.evidence);
    assert!(f.evidence.contains("waiting screen"), "{}", f.evidence);
    assert!(f.fix.as_deref().unwrap().contains("Remove these users"));
}

#[tokio::test]
async fn a_read_only_directory_is_detected_from_the_apps_answer() {
    let sim = jira_sim().await;
    sim.set_read_only(true);
    let r = run(&sim, &config(&sim)).await;
    assert_eq!(r.exit_code(), 1);
    let f = r.get("directory_writable").unwrap();
    assert_eq!(f.verdict, Verdict::Fail, "{}", r.human());
    assert!(f.evidence.contains("read-only"), "{}", f.evidence);
    assert!(f
        .fix
        .as_deref()
        .unwrap()
        .contains("Read Only, with Local Groups"));
}

#[tokio::test]
async fn an_unknown_time_zone_is_flagged() {
    let sim = jira_sim().await;
    let mut cfg = config(&sim);
    cfg.jobs.timezone = Some("Europe/Atlantis".into());
    let r = run(&sim, &cfg).await;
    assert_eq!(verdict(&r, "cleanup_schedule"), Verdict::Fail);
    assert_eq!(r.exit_code(), 1);
    cfg.jobs.timezone = Some("Europe/Berlin".into());
    let r = run(&sim, &cfg).await;
    assert!(r
        .get("cleanup_schedule")
        .unwrap()
        .evidence
        .contains("02:00 (Europe/Berlin)"));
}

#[tokio::test]
async fn missing_groups_are_listed() {
    let sim = jira_sim().await;
    let mut cfg = config(&sim);
    cfg.ium.access_group = "IUM_acces_software".into();
    let r = run(&sim, &cfg).await;
    assert_eq!(r.exit_code(), 1);
    let f = r.get("groups_exist").unwrap();
    assert_eq!(f.verdict, Verdict::Fail);
    assert!(f.evidence.contains("IUM_acces_software"), "{}", f.evidence);
}

#[tokio::test]
async fn bad_credentials_and_missing_admin_rights_are_told_apart() {
    let sim = jira_sim().await;
    let cfg = config(&sim);
    let r = check::run(&cfg, directory(&sim, "iumgate-admin", "wrong").as_ref()).await;
    assert_eq!(r.exit_code(), 1);
    let f = r.get("directory_credentials").unwrap();
    assert_eq!(f.verdict, Verdict::Fail);
    assert!(f.evidence.contains("401"), "{}", f.evidence);
    let r = check::run(&cfg, directory(&sim, "casual01", "demo").as_ref()).await;
    let f = r.get("directory_credentials").unwrap();
    assert_eq!(f.verdict, Verdict::Fail);
    assert!(
        f.evidence.contains("not an administrator"),
        "{}",
        f.evidence
    );
    assert!(f.fix.as_deref().unwrap().contains("administrator rights"));
}

#[tokio::test]
async fn tier_arithmetic_shows_the_numbers_when_fixed_users_exceed_the_tier() {
    let sim = jira_sim().await;
    for i in 4..=11 {
        sim.add_user(SimUser::new(&format!("power{i}"), &["jira-software-users"]));
    }
    let r = run(&sim, &config(&sim)).await;
    assert_eq!(r.exit_code(), 1);
    let f = r.get("tier_arithmetic").unwrap();
    assert_eq!(f.verdict, Verdict::Fail);
    assert!(
        f.evidence
            .contains("11 fixed-licence users + 0 reserved exceed the tier of 10"),
        "{}",
        f.evidence
    );
    let app = r.get("tier_application").unwrap();
    assert_eq!(app.verdict, Verdict::Fail);
    assert!(
        app.evidence.contains("11 licensed users against 10 seats"),
        "{}",
        app.evidence
    );
}

#[tokio::test]
async fn a_configured_tier_that_differs_from_the_licence_is_flagged() {
    let sim = jira_sim().await;
    let mut cfg = config(&sim);
    cfg.licence.tier = iumgate::config::Tier::Fixed(500);
    let r = run(&sim, &cfg).await;
    let f = r.get("tier_application").unwrap();
    assert_eq!(f.verdict, Verdict::Warn);
    assert!(
        f.evidence
            .contains("licence.tier is 500 but the application reports 10 seats"),
        "{}",
        f.evidence
    );
}

#[tokio::test]
async fn the_email_hint_depends_on_the_jira_version() {
    let sim = jira_sim().await;
    let cfg = config(&sim);
    sim.set_version("8.20.10");
    let r = run(&sim, &cfg).await;
    let f = r.get("email_notifications").unwrap();
    assert_eq!(f.verdict, Verdict::Info);
    assert!(f
        .fix
        .as_deref()
        .unwrap()
        .contains(check::EMAIL_DARK_FEATURE));
    assert_eq!(r.exit_code(), 0, "a hint needs no action");
    sim.set_version("8.19.1");
    let f = run(&sim, &cfg)
        .await
        .get("email_notifications")
        .cloned()
        .unwrap();
    assert!(f.fix.as_deref().unwrap().contains("Upgrade to Jira 8.20.6"));
    sim.set_version("8.13.0");
    assert_eq!(
        verdict(&run(&sim, &cfg).await, "email_notifications"),
        Verdict::Pass
    );
}

#[tokio::test]
async fn an_unreachable_upstream_means_the_check_could_not_run() {
    let sim = jira_sim().await;
    let mut cfg = config(&sim);
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    cfg.proxy.upstream = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let r = run(&sim, &cfg).await;
    assert_eq!(verdict(&r, "upstream_reachable"), Verdict::Error);
    assert_eq!(r.exit_code(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_become_alerts_at_start_up_in_serve() {
    let sim = jira_sim().await;
    sim.add_to_group("power1", "IUM_user_software");
    sim.set_read_only(true);
    let clock = Arc::new(iumgate::clock::ManualClock::new(T0));
    let running = start_gate(&sim, config(&sim), clock).await;
    let gate = running.gate.clone().unwrap();
    wait_until("the start-up checks", || {
        gate.alerts.is_active("directory_read_only")
    })
    .await;
    let alerts = gate.alerts.list();
    let ro = alerts
        .iter()
        .find(|a| a.key == "directory_read_only")
        .unwrap();
    assert!(ro.fix.contains("Read Only, with Local Groups"), "{ro:?}");
    assert!(
        alerts
            .iter()
            .any(|a| a.key == "power_user_in_ium_group" && a.text.contains("power1")),
        "{alerts:?}"
    );
    running.begin_drain();
}

/// The command itself: exit codes and `--json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_exits_0_when_clean_and_1_with_json_findings_otherwise() {
    let sim = jira_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iumgate.toml");
    std::fs::write(&path, config_toml(&sim.url(), "")).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("all is well"));

    sim.add_to_group("power1", "IUM_access_software");
    let out = run_cli(&["check", "--config", path.to_str().unwrap(), "--json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "power_users_in_ium_groups")
        .unwrap();
    assert_eq!(f["verdict"], "fail");
    assert!(f["evidence"].as_str().unwrap().contains("power1"));
    assert!(f["fix"].as_str().is_some());

    std::fs::write(&path, "[proxy]\nupstream = 42\n").unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()]).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "a broken config: the check cannot run"
    );
}

pub fn config_toml(url: &str, extra: &str) -> String {
    format!(
        r#"[proxy]
upstream = "{url}"
product = "jira"

[directory]
username = "iumgate-admin"
password_env = "IUMGATE_TEST_DIRECTORY_PASSWORD"
timeout = "5s"
retries = 0

[licence]
tier = "auto"
application = "jira-software"
fixed_groups = ["jira-software-users"]

[ium]
user_group = "IUM_user_software"
access_group = "IUM_access_software"
{extra}
"#
    )
}

async fn run_cli(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_iumgate"))
        .args(args)
        .env("IUMGATE_TEST_DIRECTORY_PASSWORD", "demo")
        .env_remove("IUMGATE_CONFIG")
        .output()
        .await
        .unwrap()
}

/// The writability probe re-adds a member of the IUM *user* group only: a
/// member of the access group read a moment earlier may have lost the seat
/// since, and re-adding them there would grant a licence behind the pool's back.
#[tokio::test]
async fn the_writability_probe_never_writes_to_the_access_group() {
    let sim = jira_sim().await;
    sim.add_to_group("casual01", "IUM_access_software");
    let r = run(&sim, &config(&sim)).await;
    assert_eq!(
        verdict(&r, "directory_writable"),
        Verdict::Pass,
        "{}",
        r.human()
    );
    assert!(
        r.get("directory_writable")
            .unwrap()
            .evidence
            .contains("IUM_user_software"),
        "{}",
        r.human()
    );
}
