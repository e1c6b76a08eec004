//! Metrics without holes (issue 22, item 3): a fresh `iumgate serve` process,
//! scraped at once — before its first reconcile, before any request, alert
//! or job run — already has a series for every metric *and label set* the
//! Grafana dashboard and the Prometheus rules in `deploy/` select. A
//! labelled metric that appears only once its first event happens leaves
//! the dashboard's panels empty and `absent()`-style rules blind.

use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PASSWORD_VAR: &str = "IUMGATE_TEST_METRICS_ZERO_DIR_PASSWORD";

/// Labels Prometheus itself puts on every series (or that name a bucket):
/// a selector on them says nothing about what iumgate exports.
const PROMETHEUS_LABELS: [&str; 3] = ["instance", "job", "le"];

struct Binary(Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `iumgate serve` and returns it with its admin URL (from the
/// start-up log line).
fn spawn(config: &Path) -> (Binary, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iumgate"))
        .args(["serve", "--config"])
        .arg(config)
        .env(PASSWORD_VAR, "demo")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start iumgate");
    let log = child.stderr.take().unwrap();
    let bin = Binary(child);
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(log).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("iumgate did not log its listening addresses in time");
        if let Some(rest) = line.split("admin on http://").nth(1) {
            return (bin, format!("http://{}", rest.trim()));
        }
    }
}

/// One exported series: its name and labels.
type Series = (String, BTreeMap<String, String>);

/// The series of a text exposition (comments skipped).
fn parse_exposition(text: &str) -> Vec<Series> {
    let label = regex::Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)""#).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name, labels) = match line.find('{') {
            Some(i) => {
                let end = line.rfind('}').expect("closed label set");
                (&line[..i], &line[i + 1..end])
            }
            None => (line.split_whitespace().next().unwrap_or(""), ""),
        };
        let labels = label
            .captures_iter(labels)
            .map(|c| (c[1].to_string(), c[2].to_string()))
            .collect();
        out.push((name.to_string(), labels));
    }
    out
}

/// A label matcher in a selector: `label op "value"`.
#[derive(Debug)]
struct Matcher {
    label: String,
    op: String,
    value: String,
}

impl Matcher {
    fn accepts(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.label).map(String::as_str).unwrap_or("");
        let re = || regex::Regex::new(&format!("^(?:{})$", self.value)).unwrap();
        match self.op.as_str() {
            "=" => v == self.value,
            "!=" => v != self.value,
            "=~" => re().is_match(v),
            "!~" => !re().is_match(v),
            other => panic!("unknown matcher {other}"),
        }
    }
}

/// A metric selector found in an expression: the metric and its matchers on
/// labels iumgate sets (Grafana variables and Prometheus' own labels left out).
#[derive(Debug)]
struct Selector {
    metric: String,
    matchers: Vec<Matcher>,
}

/// Every `iumgate_…` selector of a PromQL expression, and the labels its
/// `by (…)` clauses group on (that iumgate must set).
fn selectors(expr: &str) -> (Vec<Selector>, BTreeSet<String>) {
    let sel = regex::Regex::new(r"\b(iumgate_[a-z0-9_]+)\s*(?:\{([^}]*)\})?").unwrap();
    let matcher =
        regex::Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)""#).unwrap();
    let by = regex::Regex::new(r"\bby\s*\(([^)]*)\)").unwrap();
    let found = sel
        .captures_iter(expr)
        .map(|c| Selector {
            metric: c[1].to_string(),
            matchers: c
                .get(2)
                .map(|m| m.as_str())
                .into_iter()
                .flat_map(|body| matcher.captures_iter(body))
                .filter(|m| !PROMETHEUS_LABELS.contains(&&m[1]) && !m[3].contains('$'))
                .map(|m| Matcher {
                    label: m[1].to_string(),
                    op: m[2].to_string(),
                    value: m[3].to_string(),
                })
                .collect(),
        })
        .collect();
    let grouped = by
        .captures_iter(expr)
        .flat_map(|c| {
            c[1].split(',')
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty() && !PROMETHEUS_LABELS.contains(&l.as_str()))
                .collect::<Vec<_>>()
        })
        .collect();
    (found, grouped)
}

/// Every `expr` in the dashboard JSON (panels, rows, templating).
fn dashboard_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// Every rule's `expr` in a Prometheus rules file.
fn rule_exprs(yaml: &str) -> Vec<String> {
    let doc: serde_json::Value = serde_norway::from_str(yaml).expect("rules parse as YAML");
    let groups = doc["groups"].as_array().expect("rules have groups");
    groups
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["expr"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_process_exports_every_series_the_dashboard_and_rules_select() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut exprs: Vec<(String, String)> = Vec::new();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("grafana/iumgate-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut d = Vec::new();
    dashboard_exprs(&dashboard, &mut d);
    assert!(d.len() >= 20, "the dashboard has only {} queries", d.len());
    exprs.extend(d.into_iter().map(|e| ("dashboard".to_string(), e)));
    let rules = rule_exprs(&std::fs::read_to_string(root.join("prometheus/alerts.yml")).unwrap());
    assert!(
        rules.len() >= 5,
        "alerts.yml has only {} rules",
        rules.len()
    );
    exprs.extend(rules.into_iter().map(|e| ("alerts.yml".to_string(), e)));

    // A directory the app cannot reach would raise alerts; the simulator
    // answers, but the scrape below comes before the first reconcile anyway.
    let sim = Sim::start(SimConfig::demo(Product::Jira)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("iumgate.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[proxy]
listen = "127.0.0.1:0"
upstream = "{url}"
product = "jira"

[admin]
listen = "127.0.0.2:0"

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
"#,
            url = sim.url()
        ),
    )
    .unwrap();
    let (_bin, admin) = spawn(&cfg);
    let text = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = parse_exposition(&text);

    let mut holes = Vec::new();
    let mut checked = 0;
    for (file, expr) in &exprs {
        let (sels, grouped) = selectors(expr);
        let mut labels_seen = BTreeSet::new();
        for s in &sels {
            let matching: Vec<&Series> = series
                .iter()
                .filter(|(name, labels)| {
                    *name == s.metric && s.matchers.iter().all(|m| m.accepts(labels))
                })
                .collect();
            checked += 1;
            if matching.is_empty() {
                holes.push(format!(
                    "{file}: `{}` {:?} in `{expr}`",
                    s.metric, s.matchers
                ));
            }
            for (_, labels) in matching {
                labels_seen.extend(labels.keys().cloned());
            }
        }
        for g in grouped {
            if !sels.is_empty() && !labels_seen.contains(&g) {
                holes.push(format!(
                    "{file}: no series has the label `{g}` grouped on in `{expr}`"
                ));
            }
        }
    }
    assert!(checked >= 40, "only {checked} selectors checked");
    assert!(
        holes.is_empty(),
        "a fresh process has no series for:\n  {}\n\nit exports:\n{text}",
        holes.join("\n  ")
    );

    // The dashboard's alert panel groups by `alert`: every known key is there.
    for key in iumgate::alerts::AlertKey::ALL {
        let found = series.iter().any(|(n, l)| {
            n == "iumgate_alert_active" && l.get("alert").map(String::as_str) == Some(key.as_str())
        });
        assert!(found, "no iumgate_alert_active{{alert=\"{key}\"}}");
    }
}
