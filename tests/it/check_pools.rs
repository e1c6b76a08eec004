//! `iumgate check` with `[pools.*]` (issue 20), against the simulated Jira
//! with Service Management on real sockets: each pool's application role,
//! groups, arithmetic and power users, and a power user of one application
//! inside another pool's IUM groups.

use crate::check_diagnostics::config_toml;
use crate::housekeeping_support::*;
use iumgate::check::{self, Verdict};
use iumgate::config::{Config, Tier};
use iumgate::directory::Directory;
use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig, IUM_USER_SERVICE};
use std::sync::Arc;
use std::time::Duration;

async fn sm_sim() -> Sim {
    Sim::start(SimConfig::demo_service_management())
        .await
        .expect("sim starts")
}

/// The demo's config with the demo's `[pools.service]`.
fn two_pools(sim: &Sim) -> Config {
    let mut cfg = config(sim);
    cfg.pools.insert(
        "service".into(),
        iumgate::demo::service_pool(Duration::from_secs(30 * 60)),
    );
    cfg
}

fn directory(sim: &Sim) -> Arc<dyn Directory> {
    iumgate::demo::demo_directory(Product::Jira, &sim.url()).unwrap()
}

async fn run(sim: &Sim, cfg: &Config) -> check::Report {
    check::run(cfg, directory(sim).as_ref()).await
}

fn finding<'a>(r: &'a check::Report, pool: &str, name: &str) -> &'a check::Finding {
    r.get_in(pool, name)
        .unwrap_or_else(|| panic!("no finding {name} of pool {pool}:\n{}", r.human()))
}

#[tokio::test]
async fn a_good_two_pool_setup_passes_with_each_pools_arithmetic() {
    let sim = sm_sim().await;
    let r = run(&sim, &two_pools(&sim)).await;
    assert_eq!(r.exit_code(), 0, "{}", r.human());
    for name in [
        "pool_application",
        "groups_exist",
        "power_users_in_ium_groups",
        "tier_arithmetic",
        "tier_application",
    ] {
        assert_eq!(
            finding(&r, "service", name).verdict,
            Verdict::Pass,
            "{}",
            r.human()
        );
    }
    let app = finding(&r, "service", "pool_application");
    assert!(
        app.evidence
            .contains("`jira-servicedesk` exists: 5 seats, access through"),
        "{}",
        app.evidence
    );
    assert!(
        finding(&r, "service", "tier_arithmetic")
            .evidence
            .contains("tier 5 = 1 fixed + 0 reserved + 4 shared"),
        "{}",
        r.human()
    );
    assert!(finding(&r, "service", "groups_exist")
        .evidence
        .contains("IUM_user_service (13)"));
    // The default pool's findings are as before: no pool named.
    let default = r.get("tier_arithmetic").unwrap();
    assert_eq!(default.pool, None);
    assert!(default
        .evidence
        .contains("tier 10 = 3 fixed + 0 reserved + 7 shared"));
    let across = r.get("power_users_in_other_pools").unwrap();
    assert_eq!(across.verdict, Verdict::Pass, "{}", r.human());
    assert!(r.human().contains("tier_arithmetic (pool service): tier 5"));
    // The pools' findings raise no alert of the default gate's.
    let alerts = iumgate::alerts::Alerts::default();
    r.to_alerts(&alerts, 1);
    assert!(alerts.list().is_empty(), "{:?}", alerts.list());
}

#[tokio::test]
async fn a_wrong_application_key_fails_with_the_roles_the_app_has() {
    let sim = sm_sim().await;
    let mut cfg = two_pools(&sim);
    // The fix reads the role keys with the service account's password.
    let tmp = tempfile::tempdir().unwrap();
    let password = tmp.path().join("password");
    std::fs::write(&password, "demo\n").unwrap();
    cfg.directory.username = Some("iumgate-admin".into());
    cfg.directory.password_file = Some(password);
    let pool = cfg.pools.get_mut("service").unwrap();
    pool.application = "jira-service-desk".into();
    let r = run(&sim, &cfg).await;
    assert_eq!(r.exit_code(), 1, "{}", r.human());
    let f = finding(&r, "service", "pool_application");
    assert_eq!(f.verdict, Verdict::Fail);
    assert!(
        f.evidence.contains("no role `jira-service-desk`"),
        "{}",
        f.evidence
    );
    let fix = f.fix.as_deref().unwrap();
    assert!(fix.starts_with("Set pools.service.application"), "{fix}");
    assert!(fix.contains("`jira-software`, `jira-servicedesk`"), "{fix}");
    // tier = "auto" has nothing to read: no arithmetic for the pool.
    assert!(r.get_in("service", "tier_arithmetic").is_none());
    // The default pool is untouched.
    assert_eq!(
        r.get("pool_application").unwrap().pool.as_deref(),
        Some("service")
    );
    assert_eq!(r.get("tier_application").unwrap().verdict, Verdict::Pass);

    // With a tier of its own the arithmetic still runs.
    cfg.pools.get_mut("service").unwrap().tier = Tier::Fixed(5);
    let r = run(&sim, &cfg).await;
    assert_eq!(
        finding(&r, "service", "pool_application").verdict,
        Verdict::Fail
    );
    assert_eq!(
        finding(&r, "service", "tier_arithmetic").verdict,
        Verdict::Pass
    );
}

#[tokio::test]
async fn a_missing_pool_group_fails_naming_the_pools_section() {
    let sim = sm_sim().await;
    let mut cfg = two_pools(&sim);
    cfg.pools.get_mut("service").unwrap().user_group = "IUM_user_sevice".into();
    let r = run(&sim, &cfg).await;
    let f = finding(&r, "service", "groups_exist");
    assert_eq!(f.verdict, Verdict::Fail);
    assert!(f.evidence.contains("IUM_user_sevice"), "{}", f.evidence);
    assert!(
        f.fix.as_deref().unwrap().contains("[pools.service]"),
        "{:?}",
        f.fix
    );
    assert_eq!(r.get("groups_exist").unwrap().verdict, Verdict::Pass);
}

#[tokio::test]
async fn a_power_agent_in_the_software_pools_groups_is_named() {
    let sim = sm_sim().await;
    let cfg = two_pools(&sim);
    // agent1 holds a fixed agent licence (jira-servicedesk-users).
    sim.add_to_group("agent1", "IUM_user_software");
    let r = run(&sim, &cfg).await;
    assert_eq!(r.exit_code(), 1, "{}", r.human());
    let f = r.get("power_users_in_other_pools").unwrap();
    assert_eq!(f.verdict, Verdict::Warn, "{}", r.human());
    assert_eq!(f.pool, None, "the default pool's groups");
    assert!(
        f.evidence.starts_with(
            "1 user(s) hold a fixed `jira-servicedesk` licence (pool service: jira-servicedesk-users) and are also in pool default's IUM groups (IUM_user_software, IUM_access_software)"
        ),
        "{}",
        f.evidence
    );
    assert!(f.evidence.ends_with(": agent1"), "{}", f.evidence);
    let fix = f.fix.as_deref().unwrap();
    assert!(fix.contains("add them to jira-software-users"), "{fix}");
    assert!(
        fix.contains("remove them from jira-servicedesk-users"),
        "{fix}"
    );
    // Each pool's own power-user check is not about this.
    assert_eq!(
        r.get("power_users_in_ium_groups").unwrap().verdict,
        Verdict::Pass
    );
    assert_eq!(
        finding(&r, "service", "power_users_in_ium_groups").verdict,
        Verdict::Pass
    );

    // The other way round: a software power user among the agents.
    sim.add_to_group("power2", IUM_USER_SERVICE);
    let r = run(&sim, &cfg).await;
    let named: Vec<&check::Finding> = r
        .findings
        .iter()
        .filter(|f| f.check == "power_users_in_other_pools")
        .collect();
    assert_eq!(named.len(), 2, "{}", r.human());
    let into_service = named
        .iter()
        .find(|f| f.pool.as_deref() == Some("service"))
        .unwrap();
    assert!(
        into_service.evidence.ends_with(": power2"),
        "{}",
        into_service.evidence
    );

    // A long list is bounded: 20 names and an ellipsis.
    for i in 1..=20 {
        sim.add_to_group(&format!("casual{i:02}"), "jira-servicedesk-users");
    }
    let r = run(&sim, &cfg).await;
    let f = r
        .findings
        .iter()
        .find(|f| f.check == "power_users_in_other_pools" && f.pool.is_none())
        .unwrap();
    assert!(f.evidence.starts_with("21 user(s)"), "{}", f.evidence);
    assert!(f.evidence.ends_with(", …"), "{}", f.evidence);
    assert!(f.evidence.contains("agent1"), "{}", f.evidence);
    assert!(!f.evidence.contains("casual20"), "the 21st is left off");
}

/// The command: findings per pool in the JSON, and a pool that overlaps
/// another's groups stopped at config loading (exit 2, naming the key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_names_the_pool_and_refuses_overlapping_groups() {
    let sim = sm_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iumgate.toml");
    let pool = |user_group: &str| {
        format!(
            r#"
[pools.service]
application = "jira-servicedesk"
tier = "auto"
fixed_groups = ["jira-servicedesk-users"]
user_group = "{user_group}"
access_group = "IUM_access_service"
needs = ['^[A-Z]+ /jira/servicedesk/', '^[A-Z]+ /servicedesk/(?!customer/)']
"#
        )
    };
    std::fs::write(&path, config_toml(&sim.url(), &pool("IUM_user_service"))).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap(), "--json"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let app = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "pool_application")
        .unwrap();
    assert_eq!(app["pool"], "service");
    assert_eq!(app["verdict"], "pass");

    std::fs::write(&path, config_toml(&sim.url(), &pool("IUM_user_software"))).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pools.service.user_group"), "{err}");
    assert!(err.contains("IUM_user_software"), "{err}");
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
