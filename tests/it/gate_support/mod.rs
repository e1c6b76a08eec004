//! A gate in front of a simulator, over real sockets, with a manual clock.
#![allow(dead_code)]

use iumgate::app::{self, Options, Running};
use iumgate::clock::ManualClock;
use iumgate::config::{Config, Dur};
use iumgate::gate::Gate;
use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig};
use iumgate::user::UserId;
use std::sync::Arc;
use std::time::Duration;

pub const MIN: u64 = 60_000;

/// Casual users enough to fill the demo's seven shared seats.
pub const SEVEN: [&str; 7] = [
    "casual01", "casual02", "casual03", "casual04", "casual05", "casual06", "casual07",
];

/// `Authorization: Basic …` for `user:password`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Sends `bytes` on a new connection to `addr` (`host:port`, or a base URL),
/// then closes the writing half (a FIN) when `half_close`; returns all the
/// connection answered (bounded wait).
pub async fn raw(addr: &str, bytes: &[u8], half_close: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = addr.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    if half_close {
        s.shutdown().await.unwrap();
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The `Set-Cookie` of an answer that sets `name` (the whole value).
pub fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&prefix))
        .map(str::to_string)
}

pub struct World {
    pub product: Product,
    pub sim: Sim,
    pub run: Running,
    pub gate: Arc<Gate>,
    pub clock: Arc<ManualClock>,
    pub base: String,
}

pub struct Groups {
    pub user: &'static str,
    pub access: &'static str,
    pub fixed: &'static str,
}

pub fn groups(p: Product) -> Groups {
    match p {
        Product::Jira => Groups {
            user: "IUM_user_software",
            access: "IUM_access_software",
            fixed: "jira-software-users",
        },
        Product::Confluence => Groups {
            user: "IUM_user_confluence",
            access: "IUM_access_confluence",
            fixed: "confluence-users",
        },
        Product::Bitbucket => Groups {
            user: "IUM_user_bitbucket",
            access: "IUM_access_bitbucket",
            fixed: "stash-users",
        },
    }
}

impl World {
    pub async fn jira() -> World {
        World::start(Product::Jira, |_| {}, |_| {}).await
    }

    pub async fn start(
        product: Product,
        sim_tweak: impl FnOnce(&mut SimConfig),
        cfg_tweak: impl FnOnce(&mut Config),
    ) -> World {
        let mut sc = SimConfig::demo(product);
        sim_tweak(&mut sc);
        let sim = Sim::start(sc).await.expect("simulator starts");
        let clock = Arc::new(ManualClock::new(1_800_000_000_000));
        Self::start_on(product, sim, clock, cfg_tweak).await
    }

    /// Starts a proxy in front of an existing simulator (a restart).
    pub async fn start_on(
        product: Product,
        sim: Sim,
        clock: Arc<ManualClock>,
        cfg_tweak: impl FnOnce(&mut Config),
    ) -> World {
        let any = "127.0.0.1:0".parse().unwrap();
        let mut cfg =
            iumgate::demo::demo_config(product, &sim.url(), any, any, Duration::from_secs(30 * 60));
        // The manual clock jumps by many minutes; waiters must not be
        // dropped as "abandoned" by those jumps unless a test wants it.
        cfg.queue.abandon_after = Dur::secs(24 * 3600);
        cfg_tweak(&mut cfg);
        let directory = iumgate::demo::demo_directory(product, &sim.url()).unwrap();
        let run = app::start_opts(
            cfg,
            Options {
                clock: clock.clone(),
                directory: Some(directory),
            },
        )
        .await
        .expect("proxy starts");
        let gate = run.gate.clone().expect("gate enabled");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !gate.is_reconciled() {
            assert!(
                std::time::Instant::now() < deadline,
                "first reconcile did not finish"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let base = format!("http://{}", run.proxy_addr);
        World {
            product,
            sim,
            run,
            gate,
            clock,
            base,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn groups(&self) -> Groups {
        groups(self.product)
    }

    pub fn access_members(&self) -> Vec<String> {
        self.sim.members(self.groups().access)
    }

    pub fn holds(&self, user: &str) -> bool {
        self.gate.holds(&UserId::new(user))
    }

    /// When `user` was last active, if they hold a seat.
    pub fn last_active(&self, user: &str) -> Option<u64> {
        let u = UserId::new(user);
        self.gate
            .with_pool(|p| p.holders())
            .into_iter()
            .find(|h| h.user == u)
            .map(|h| h.last_active)
    }

    /// `GET path` with `Authorization: Basic user:password`, redirects not followed.
    pub async fn get_as(&self, path: &str, user: &str, password: &str) -> reqwest::Response {
        no_redirect()
            .get(self.url(path))
            .header("authorization", basic(user, password))
            .send()
            .await
            .unwrap()
    }

    /// A browser's form login at `path` (Seraph's field names), redirects
    /// not followed.
    pub async fn form_login(&self, path: &str, user: &str, password: &str) -> reqwest::Response {
        no_redirect()
            .post(self.url(path))
            .header("accept", "text/html")
            .form(&[("os_username", user), ("os_password", password)])
            .send()
            .await
            .unwrap()
    }

    pub fn in_use(&self) -> usize {
        self.gate.with_pool(|p| p.in_use())
    }

    pub fn advance_min(&self, minutes: u64) {
        self.clock.advance(minutes * MIN);
    }

    pub async fn stop(self) -> Sim {
        self.run.begin_drain();
        self.run.wait().await;
        self.sim
    }
}

/// A browser: cookies kept, redirects followed, asks for HTML.
pub fn browser() -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::ACCEPT,
        reqwest::header::HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
    );
    let c = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .default_headers(h)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    (c, jar)
}

/// A browser that does not follow redirects (to look at them).
pub fn browser_no_redirect(jar: Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::ACCEPT,
        reqwest::header::HeaderValue::from_static("text/html"),
    );
    reqwest::Client::builder()
        .cookie_provider(jar)
        .default_headers(h)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Logs in through Jira's form; returns the final response (redirects followed).
pub async fn jira_login(
    w: &World,
    c: &reqwest::Client,
    user: &str,
    password: &str,
    remember: bool,
) -> reqwest::Response {
    let mut form = vec![
        ("os_username", user),
        ("os_password", password),
        ("os_destination", "/browse/DEMO-1"),
    ];
    if remember {
        form.push(("os_cookie", "true"));
    }
    c.post(w.url("/login.jsp"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

pub async fn text(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let url = r.url().path().to_string();
    let body = r.text().await.unwrap_or_default();
    (status, url, body)
}

/// Logs `users` in, each with its own browser; asserts each got in.
pub async fn fill(w: &World, users: &[&str]) -> Vec<reqwest::Client> {
    let mut out = Vec::new();
    for u in users {
        let (c, _) = browser();
        let (status, path, _) = text(jira_login(w, &c, u, "demo", false).await).await;
        assert_eq!(
            (status, path.as_str()),
            (200, "/browse/DEMO-1"),
            "{u} should get in"
        );
        out.push(c);
    }
    out
}

/// A client that never follows redirects (to look at them).
pub fn no_redirect() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in straight at the simulator, behind iumgate's back, and returns the
/// session cookie (`NAME=value`): a session iumgate has never seen.
pub async fn session_behind_the_gates_back(w: &World, login_path: &str, user: &str) -> String {
    let r = no_redirect()
        .post(format!("{}{login_path}", w.sim.url()))
        .form(&[("os_username", user), ("os_password", "demo")])
        .send()
        .await
        .unwrap();
    r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// One poll of the waiting room, as its page makes it: `/iumgate/api/queue` + `query`.
pub async fn poll_queue(w: &World, c: &reqwest::Client, query: &str) -> serde_json::Value {
    c.get(w.url(&format!("/iumgate/api/queue{query}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A sample of the gate's metrics, as `/metrics` renders it (`series` with
/// its labels, as written there).
pub fn metric(w: &World, series: &str) -> f64 {
    let text = w
        .run
        .metrics
        .render(Some(&w.gate), &w.run.job_runs, &w.run.health);
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series}"))
}

/// A named pipe at `path` and a thread that opens it for reading and never
/// reads: a writer to it is stuck once the pipe's buffer is full. Join the
/// thread once the writer has opened the pipe (opening blocks until both
/// ends are open); drop the file it returns to unstick the writer.
pub fn stuck_fifo(path: &std::path::Path) -> std::thread::JoinHandle<std::fs::File> {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
    let fifo = path.to_owned();
    std::thread::spawn(move || std::fs::File::open(fifo).unwrap())
}
