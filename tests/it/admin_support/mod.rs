//! Shared by the admin and browser tests: iumgate in front of the Jira
//! simulator, on ephemeral ports, with a manual clock.
#![allow(dead_code)]

use iumgate::app::{self, Options, Running};
use iumgate::clock::ManualClock;
use iumgate::config::{Config, Dur};
use iumgate::demo::{demo_config, demo_directory};
use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "admin-token-for-tests-0123456789";
/// Any fixed start; the manual clock only moves when a test says so.
pub const T0: u64 = 1_760_000_000_000;
pub const MIN_IDLE: Duration = Duration::from_secs(120);

pub struct World {
    pub sim: Sim,
    pub running: Running,
    pub clock: Arc<ManualClock>,
    pub proxy: String,
    pub admin: String,
    _dir: tempfile::TempDir,
}

/// The demo world (10 seats, 3 power users → 7 shared), the admin token in a
/// file, waiters never abandoned (tests move the clock by minutes).
pub async fn start(tweak: impl FnOnce(&mut Config)) -> World {
    let sim = Sim::start(SimConfig::demo(Product::Jira)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let mut cfg = demo_config(Product::Jira, &sim.url(), any, any, MIN_IDLE);
    cfg.admin.token_file = Some(token_file);
    cfg.queue.abandon_after = Dur::secs(24 * 3600);
    tweak(&mut cfg);
    let clock = Arc::new(ManualClock::new(T0));
    let running = app::start_opts(
        cfg,
        Options {
            clock: clock.clone(),
            directory: Some(demo_directory(Product::Jira, &sim.url()).unwrap()),
        },
    )
    .await
    .unwrap();
    let proxy = format!("http://{}", running.proxy_addr);
    let admin = format!("http://{}", running.admin_addr);
    let w = World {
        sim,
        running,
        clock,
        proxy,
        admin,
        _dir: dir,
    };
    let gate = w.running.gate.clone().unwrap();
    wait_until("the first reconcile", Duration::from_secs(20), || {
        gate.is_reconciled()
    })
    .await;
    w
}

impl World {
    pub fn gate(&self) -> Arc<iumgate::gate::Gate> {
        self.running.gate.clone().unwrap()
    }

    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// A browser-like client of its own (cookies kept, redirects not followed).
    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }

    /// Logs `user` in through the proxy; returns the client holding the
    /// session. A 307 (a seat was just granted: "send the login again") is
    /// followed as a browser would, re-posting the form once.
    pub async fn login(&self, user: &str) -> (reqwest::Client, reqwest::Response) {
        let c = Self::client();
        let post = || {
            c.post(format!("{}/login.jsp", self.proxy))
                .header("Accept", "text/html")
                .form(&[
                    ("os_username", user),
                    ("os_password", "demo"),
                    ("os_destination", "/browse/DEMO-1"),
                ])
                .send()
        };
        let mut r = post().await.unwrap();
        if r.status() == reqwest::StatusCode::TEMPORARY_REDIRECT {
            r = post().await.unwrap();
        }
        (c, r)
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Waits for `cond`, checking every 20 ms, failing after `limit` (generous:
/// the machine is small and shared).
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one series in a Prometheus text exposition.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Every metric family name in an exposition (from its `# TYPE` lines).
pub fn families(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}
