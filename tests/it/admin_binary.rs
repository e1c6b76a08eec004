//! The real `iumgate serve` binary in front of the simulator: every metric
//! the Grafana dashboard and the alert rules name is one it exports, and
//! SIGHUP reloads the live settings (and reports a bad file).

use crate::admin_support::{families, sample, TOKEN};
use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig};
use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PASSWORD_VAR: &str = "IUMGATE_TEST_ADMIN_BINARY_DIR_PASSWORD";

fn config(sim_url: &str, token_file: &Path, min_idle: &str, message: &str) -> String {
    format!(
        r#"
[proxy]
listen = "127.0.0.1:0"
upstream = "{sim_url}"
product = "jira"

[admin]
# Another loopback address: the admin listener must differ from the proxy's.
listen = "127.0.0.2:0"
token_file = "{token}"

[log]
level = "info"

[directory]
username = "iumgate-admin"
password_env = "{PASSWORD_VAR}"

[licence]
tier = "auto"
application = "jira-software"
fixed_groups = ["jira-software-users"]

[ium]
user_group = "IUM_user_software"
access_group = "IUM_access_software"
min_idle = "{min_idle}"

[queue]
message = "{message}"
"#,
        token = token_file.display()
    )
}

struct Binary {
    child: Child,
    admin: String,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary and reads its admin address from the start-up log line.
fn spawn(config: &Path) -> Binary {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iumgate"))
        .args(["serve", "--config"])
        .arg(config)
        .env(PASSWORD_VAR, "demo")
        .env_remove("RUST_LOG")
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start iumgate");
    // The log goes to stderr.
    let stdout = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let admin = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("iumgate did not log its listening addresses in time");
        if let Some(rest) = line.split("admin on http://").nth(1) {
            break format!("http://{}", rest.trim());
        }
    };
    Binary { child, admin }
}

/// Every `iumgate_…` name a file mentions, histogram suffixes folded into the family.
fn names_in(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\biumgate_[a-z0-9_]+").unwrap();
    re.find_iter(text).map(|m| m.as_str().to_string()).collect()
}

fn family_of(name: &str, exported: &BTreeSet<String>) -> bool {
    exported.contains(name)
        || ["_bucket", "_count", "_sum"].iter().any(|s| {
            name.strip_suffix(s)
                .is_some_and(|base| exported.contains(base))
        })
}

async fn scrape(admin: &str) -> String {
    reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn wait_for_metrics(admin: &str, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(admin).await;
        if cond(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn status(admin: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{admin}/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn sighup(b: &Binary) {
    let ok = Command::new("kill")
        .args(["-HUP", &b.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP failed");
}

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exports_every_metric_the_dashboard_and_rules_name_and_reloads_on_sighup() {
    let sim = Sim::start(SimConfig::demo(Product::Jira)).await.unwrap();
    // A power user in an IUM group raises an alert, so the labelled
    // per-alert series exists too.
    sim.add_to_group("power1", "IUM_user_software");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let cfg = dir.path().join("iumgate.toml");
    std::fs::write(&cfg, config(&sim.url(), &token_file, "2m", "first message")).unwrap();
    let bin = spawn(&cfg);

    let text = wait_for_metrics(&bin.admin, "the first reconcile", |t| {
        sample(t, "iumgate_gate_reconciled{pool=\"default\"}") == Some(1.0)
    })
    .await;
    assert_eq!(
        sample(&text, "iumgate_seats_capacity{pool=\"default\"}"),
        Some(7.0)
    );
    assert_eq!(sample(&text, "iumgate_config_reload_success"), Some(1.0));

    // Every name the dashboard and the rules use is exported.
    let exported = families(&text);
    let dashboard = std::fs::read_to_string(deploy("grafana/iumgate-dashboard.json")).unwrap();
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let rule_tests = std::fs::read_to_string(deploy("prometheus/alerts_test.yml")).unwrap();
    let mut named = BTreeSet::new();
    for (file, text) in [
        ("dashboard", &dashboard),
        ("alerts.yml", &rules),
        ("alerts_test.yml", &rule_tests),
    ] {
        let names = names_in(text);
        assert!(names.len() >= 5, "{file} names only {names:?}");
        for n in names {
            assert!(
                family_of(&n, &exported),
                "{file} names `{n}`, which the binary does not export; it exports {exported:?}"
            );
            named.insert(n);
        }
    }
    // The issue's list, as a floor: the dashboard and rules cover these.
    for must in [
        "iumgate_seats_capacity",
        "iumgate_seats_in_use",
        "iumgate_queue_length",
        "iumgate_queue_wait_seconds_bucket",
        "iumgate_directory_calls_total",
        "iumgate_job_last_success_timestamp_seconds",
        "iumgate_alert_active",
        "iumgate_build_info",
    ] {
        assert!(
            named.contains(must),
            "neither dashboard nor rules use {must}"
        );
    }
    // Dashboard: stable uid, datasource as a variable, nothing to import by hand.
    let d: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    assert_eq!(d["uid"], "iumgate-overview");
    assert!(d.get("__inputs").is_none());
    assert!(d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["type"] == "datasource" && v["name"] == "datasource"));

    // SIGHUP with new live settings.
    let before = sample(&text, "iumgate_config_reload_success_timestamp_seconds").unwrap();
    let st = status(&bin.admin).await;
    assert_eq!(st["settings"]["min_idle_s"], 120);
    assert_eq!(st["settings"]["message"], "first message");
    // The timestamp has millisecond resolution; make sure it can move.
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(
        &cfg,
        config(&sim.url(), &token_file, "10m", "after the reload"),
    )
    .unwrap();
    sighup(&bin);
    let text = wait_for_metrics(&bin.admin, "the reload", |t| {
        sample(t, "iumgate_config_reload_success_timestamp_seconds").is_some_and(|v| v > before)
    })
    .await;
    assert_eq!(sample(&text, "iumgate_config_reload_success"), Some(1.0));
    let st = status(&bin.admin).await;
    assert_eq!(st["settings"]["min_idle_s"], 600);
    assert_eq!(st["settings"]["message"], "after the reload");

    // A broken file: reported, and the running settings stay.
    std::fs::write(&cfg, "[ium]\nmin_idle = \"soon\"\n").unwrap();
    sighup(&bin);
    wait_for_metrics(&bin.admin, "the failed reload", |t| {
        sample(t, "iumgate_config_reload_success") == Some(0.0)
    })
    .await;
    let st = status(&bin.admin).await;
    assert_eq!(st["settings"]["min_idle_s"], 600);
    assert_eq!(st["settings"]["message"], "after the reload");
}
