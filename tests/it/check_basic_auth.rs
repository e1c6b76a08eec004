//! `iumgate check` on an app that refuses Basic authentication (Jira 11's
//! default) while the service account uses a password: the finding
//! "Basic authentication disabled", with the personal access token as fix.

use crate::housekeeping_support::*;
use iumgate::alerts::Alerts;
use iumgate::check::{self, Verdict};
use iumgate::config::{Config, Secret};
use iumgate::directory::{Auth, ClientOptions, Directory, JiraDirectory};
use iumgate::sim::Sim;
use std::sync::Arc;
use std::time::Duration;

fn directory(sim: &Sim, auth: Auth) -> Arc<dyn Directory> {
    let opts = ClientOptions {
        timeout: Duration::from_secs(5),
        retries: 0,
        ..ClientOptions::default()
    };
    Arc::new(JiraDirectory::new(&sim.url(), auth, opts).unwrap())
}

fn password() -> Auth {
    Auth::Basic {
        username: "iumgate-admin".into(),
        password: Secret::new("demo"),
    }
}

/// The config with `[directory] username` + `password_file`, as the
/// directory client above authenticates.
fn password_config(sim: &Sim, tmp: &tempfile::TempDir) -> Config {
    let path = tmp.path().join("password");
    std::fs::write(&path, "demo\n").unwrap();
    let mut cfg = config(sim);
    cfg.directory.username = Some("iumgate-admin".into());
    cfg.directory.password_file = Some(path);
    cfg
}

#[tokio::test]
async fn a_password_on_an_app_that_blocks_basic_auth_is_a_failure_with_the_token_as_fix() {
    let sim = jira_sim().await;
    sim.set_basic_auth_blocked(true);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = password_config(&sim, &tmp);
    let r = check::run(&cfg, directory(&sim, password()).as_ref()).await;
    assert_eq!(r.exit_code(), 1, "{}", r.human());
    let f = r
        .get("basic_auth_disabled")
        .unwrap_or_else(|| panic!("{}", r.human()));
    assert_eq!(f.verdict, Verdict::Fail);
    assert!(
        f.evidence.starts_with("Basic authentication disabled"),
        "{}",
        f.evidence
    );
    assert!(
        f.evidence
            .contains("Basic Authentication has been disabled on this instance"),
        "{}",
        f.evidence
    );
    let fix = f.fix.as_deref().unwrap();
    assert!(fix.contains("personal access token"), "{fix}");
    assert!(fix.contains("[directory] token_env or token_file"), "{fix}");
    // Not reported as a wrong password or missing admin rights.
    assert!(r.get("directory_credentials").is_none(), "{}", r.human());

    let alerts = Alerts::default();
    assert_eq!(r.to_alerts(&alerts, 0), 1);
    assert!(
        alerts.is_active("directory_basic_auth_disabled"),
        "{alerts:?}"
    );
    assert!(sim.group_writes().is_empty(), "{:?}", sim.group_writes());
}

#[tokio::test]
async fn basic_auth_allowed_passes_and_a_token_needs_no_such_check() {
    let sim = jira_sim().await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = password_config(&sim, &tmp);
    let r = check::run(&cfg, directory(&sim, password()).as_ref()).await;
    assert_eq!(r.exit_code(), 0, "{}", r.human());
    let f = r.get("basic_auth_disabled").unwrap();
    assert_eq!(f.verdict, Verdict::Pass, "{}", r.human());
    assert!(
        f.evidence.contains("block-requests: false"),
        "{}",
        f.evidence
    );

    // With a token the blocked app is fine, and nothing is said about Basic.
    sim.set_basic_auth_blocked(true);
    let path = tmp.path().join("token");
    std::fs::write(&path, "demo-admin-token\n").unwrap();
    let mut cfg = config(&sim);
    cfg.directory.token_file = Some(path);
    let token = Auth::Bearer(Secret::new("demo-admin-token"));
    let r = check::run(&cfg, directory(&sim, token).as_ref()).await;
    assert_eq!(r.exit_code(), 0, "{}", r.human());
    assert!(r.get("basic_auth_disabled").is_none(), "{}", r.human());
    assert_eq!(
        r.get("directory_credentials").unwrap().verdict,
        Verdict::Pass
    );
}
