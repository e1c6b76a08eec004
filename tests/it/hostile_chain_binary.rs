//! The review's complete lock-out chain, replayed against the real binary:
//! `iumgate demo` (the Jira simulator behind the gate, 7 shared seats), raw
//! sockets for the attacker, the simulator's own admin REST to read who is
//! in the access group. Before the claim model, an attacker with no
//! credentials emptied the pool by logging everyone out by name, filled it
//! with users who never logged in, and kept them from ever idling; now none
//! of it moves a seat.

use crate::gate_support::{basic, raw};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(crate) struct Demo {
    child: Child,
    pub(crate) proxy: String,
    pub(crate) sim: String,
    pub(crate) admin: String,
    /// The admin page's link (`Status …`), token included.
    pub(crate) status_link: Option<String>,
    /// Every line printed so far, and the ones still to come.
    pub(crate) printed: Vec<String>,
    pub(crate) output: mpsc::Receiver<String>,
}

impl Demo {
    /// The process id of the running binary.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with `args` (and `env`); every line it prints, on stdout
/// or stderr, arrives on the channel.
fn launch(args: &[&str], env: &[(&str, &str)]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iumgate"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start iumgate");
    let (tx, rx) = mpsc::channel::<String>();
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        // Keep draining, so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    (child, rx)
}

/// Starts `iumgate demo` on free ports and reads its addresses from what it
/// prints; returns once the first reconcile is done.
fn demo() -> Demo {
    demo_with(&[])
}

/// [`demo`] with `extra` arguments.
pub(crate) fn demo_with(extra: &[&str]) -> Demo {
    let mut args = vec![
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--min-idle",
        "30m",
    ];
    args.extend_from_slice(extra);
    demo_args(&args)
}

/// `iumgate` run with exactly `args` (a demo), once its addresses are
/// printed and the first reconcile is done.
pub(crate) fn demo_args(args: &[&str]) -> Demo {
    let (child, rx) = launch(args, &[]);
    let (mut proxy, mut sim, mut admin, mut reconciled) = (None, None, None, false);
    let mut status_link = None;
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.is_none() || sim.is_none() || admin.is_none() || !reconciled {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the demo did not start in time");
        let url_after = |label: &str| {
            line.trim()
                .strip_prefix(label)
                .and_then(|r| r.split_whitespace().next())
                .map(|u| u.trim_end_matches("/browse/DEMO-1").to_string())
        };
        if let Some(u) = url_after("Open") {
            proxy = Some(u);
        }
        if let Some(u) = url_after("Simulator") {
            sim = Some(u);
        }
        if let Some(u) = url_after("Admin") {
            admin = Some(u.trim_end_matches("/healthz").to_string());
        }
        if let Some(u) = url_after("Status") {
            status_link = Some(u);
        }
        reconciled |= line.contains("reconciled with the directory");
        printed.push(line);
    }
    Demo {
        child,
        proxy: proxy.unwrap(),
        sim: sim.unwrap(),
        admin: admin.unwrap(),
        status_link,
        printed,
        output: rx,
    }
}

/// Who is in the access group, as the simulator's admin REST says.
pub(crate) async fn access_group(d: &Demo) -> Vec<String> {
    members(d, "IUM_access_software").await
}

/// Who is in `group`, as the simulator's admin REST says.
pub(crate) async fn members(d: &Demo, group: &str) -> Vec<String> {
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/rest/api/2/group/member?groupname={group}",
            d.sim
        ))
        .header("authorization", basic("iumgate-admin", "demo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut names: Vec<String> = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// The value of one `iumgate_…` series (name with labels, as printed) on
/// `/metrics`, if it is there.
pub(crate) async fn metric_opt(d: &Demo, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", d.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The value of one `iumgate_…` series on `/metrics` (it must be there).
async fn metric(d: &Demo, series: &str) -> f64 {
    metric_opt(d, series)
        .await
        .unwrap_or_else(|| panic!("no series {series} on /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anonymous_lock_out_chain_moves_no_seat() {
    let d = demo();
    let colleagues: Vec<String> = (1..=7).map(|i| format!("casual{i:02}")).collect();
    // 1. Seven colleagues log in and hold every shared seat.
    let mut browsers = Vec::new();
    for u in &colleagues {
        let c = reqwest::Client::builder()
            .cookie_store(true)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let r = c
            .post(format!("{}/login.jsp", d.proxy))
            .header("accept", "text/html")
            .form(&[
                ("os_username", u.as_str()),
                ("os_password", "demo"),
                ("os_destination", "/browse/DEMO-1"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{u}");
        assert_eq!(r.url().path(), "/browse/DEMO-1", "{u} got in");
        browsers.push(c);
    }
    assert_eq!(access_group(&d).await, colleagues);

    // 2. Logout by name, any password, on every logout path.
    for (i, u) in colleagues.iter().enumerate() {
        let (method, path) = [
            ("GET", "/secure/Logout!default.jspa"),
            ("GET", "/logout"),
            ("DELETE", "/rest/auth/1/session"),
        ][i % 3];
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: j\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            basic(u, "x")
        );
        let answer = raw(&d.proxy, req.as_bytes(), false).await;
        assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    }
    // 3. Logins cut one byte short, then a FIN, for users who never log in.
    for n in 14..=20 {
        let body = format!("os_username=casual{n}&os_password=x");
        let req = format!(
            "POST /login.jsp HTTP/1.1\r\nHost: j\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len() + 1
        );
        raw(&d.proxy, req.as_bytes(), true).await;
    }
    // 4. A wrong Basic password for every holder (would keep them fresh),
    // and a page for a made-up waiter (would queue and evict).
    for u in &colleagues {
        let req = format!(
            "GET /browse/X HTTP/1.1\r\nHost: j\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            basic(u, "WRONG")
        );
        raw(&d.proxy, req.as_bytes(), false).await;
    }
    let req = format!(
        "GET /browse/DEMO-1 HTTP/1.1\r\nHost: j\r\nAccept: text/html\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        basic("casual20", "WRONG")
    );
    let answer = raw(&d.proxy, req.as_bytes(), false).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(!answer.contains("iumgate_wait"), "{answer}");

    // Nothing moved: the colleagues hold their seats and still work.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&d, "iumgate_seats_lent{pool=\"default\"}").await > 0.0
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(access_group(&d).await, colleagues);
    for (u, c) in colleagues.iter().zip(&browsers) {
        let r = c
            .get(format!("{}/browse/DEMO-1", d.proxy))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{u} was locked out");
        assert_eq!(r.url().path(), "/browse/DEMO-1", "{u} was sent to wait");
    }
    assert_eq!(
        metric(
            &d,
            "iumgate_releases_total{pool=\"default\",reason=\"logout\"}"
        )
        .await,
        0.0
    );
    assert_eq!(
        metric(&d, "iumgate_queue_length{pool=\"default\"}").await,
        0.0
    );
}

/// `iumgate serve` in front of an app that accepts and never answers, with
/// the simulator as its directory: every exchange breaks off.
/// The real binary (`serve`) in front of an app that accepts connections
/// and never answers (`request_timeout = "1s"`), its directory `sim`;
/// `extra` is appended to its config. Returns once it listens and has
/// reconciled, with the task holding the silent app's connections.
async fn serve_before_a_silent_app(
    sim: &iumgate::sim::Sim,
    extra: &str,
) -> (Demo, tokio::task::JoinHandle<()>) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            conns.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("iumgate.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[proxy]
listen = "127.0.0.1:0"
upstream = "http://{silent_addr}"
product = "jira"
request_timeout = "1s"

[admin]
listen = "127.0.0.2:0"

[directory]
url = "{sim}"
username = "iumgate-admin"
password_env = "IUMGATE_TEST_CHAIN_DIR_PASSWORD"

[licence]
tier = "auto"
application = "jira-software"
fixed_groups = ["jira-software-users"]

[ium]
user_group = "IUM_user_software"
access_group = "IUM_access_software"
min_idle = "30m"
{extra}
"#,
            sim = sim.url()
        ),
    )
    .unwrap();
    let cfg_path = cfg.to_str().unwrap();
    let (child, rx) = launch(
        &["serve", "--config", cfg_path],
        &[("IUMGATE_TEST_CHAIN_DIR_PASSWORD", "demo")],
    );
    let mut demo = Demo {
        child,
        proxy: String::new(),
        sim: sim.url(),
        admin: String::new(),
        status_link: None,
        printed: Vec::new(),
        output: rx,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut reconciled = false;
    while demo.proxy.is_empty() || !reconciled {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = demo
            .output
            .recv_timeout(left)
            .expect("iumgate did not start in time");
        if let Some(rest) = line.split("listening on ").nth(1) {
            demo.proxy = rest.split_whitespace().next().unwrap().to_string();
        }
        if let Some(rest) = line.split("admin on ").nth(1) {
            demo.admin = rest.trim().to_string();
        }
        reconciled |= line.contains("reconciled with the directory");
    }
    (demo, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_lent_to_a_claim_goes_back_when_the_exchange_breaks_off_on_both_lanes() {
    use iumgate::product::Product;
    use iumgate::sim::{Sim, SimConfig};
    let sim = Sim::start(SimConfig::demo(Product::Jira)).await.unwrap();
    let (demo, held) = serve_before_a_silent_app(&sim, "").await;
    // Fast lane: a GET with a Basic name (the right password, even).
    let req = format!(
        "GET /rest/api/2/search HTTP/1.1\r\nHost: j\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        basic("casual05", "demo")
    );
    let answer = raw(&demo.proxy, req.as_bytes(), false).await;
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    // Hyper lane: a login form (a body), the app never answers.
    let body = "os_username=casual07&os_password=demo";
    let req = format!(
        "POST /login.jsp HTTP/1.1\r\nHost: j\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = raw(&demo.proxy, req.as_bytes(), false).await;
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&demo, "iumgate_seats_lent{pool=\"default\"}").await > 0.0 {
        assert!(
            Instant::now() < deadline,
            "lent seats were never given back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Hyper lane: a Basic POST whose client resets before its answer.
    let req = format!(
        "POST /rest/api/2/issue/DEMO-1/comment HTTP/1.1\r\nHost: j\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}",
        basic("casual09", "demo")
    );
    let mut s = tokio::net::TcpStream::connect(demo.proxy.trim_start_matches("http://"))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, req.as_bytes())
        .await
        .unwrap();
    // The seat is lent while the app is asked; then the client goes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&demo, "iumgate_seats_lent{pool=\"default\"}").await < 1.0 {
        assert!(Instant::now() < deadline, "the Basic POST borrowed no seat");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(s);

    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&demo, "iumgate_seats_lent{pool=\"default\"}").await > 0.0
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric(&demo, "iumgate_seats_lent{pool=\"default\"}").await,
        0.0
    );
    assert_eq!(
        sim.members("IUM_access_software"),
        Vec::<String>::new(),
        "a claim kept a seat after its exchange broke off"
    );
    assert!(
        metric(
            &demo,
            "iumgate_releases_total{pool=\"default\",reason=\"rollback\"}"
        )
        .await
            >= 3.0
    );
    held.abort();
}

/// The same against two seat pools (issue 20), through the real binary: a
/// login that would take a Service Management seat borrows it from the
/// service pool only (never the software pool's), and gives it back when
/// the client breaks the exchange off; a Basic name on an agent path gets
/// no seat at all, not even for the exchange, and never reaches the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_seat_lent_to_a_login_goes_back_when_the_exchange_breaks_off() {
    use iumgate::sim::{Sim, SimConfig};
    let sim = Sim::start(SimConfig::demo_service_management())
        .await
        .unwrap();
    let pool = r#"
[pools.service]
application = "jira-servicedesk"
fixed_groups = ["jira-servicedesk-users"]
user_group = "IUM_user_service"
access_group = "IUM_access_service"
needs = ['^[A-Z]+ /jira/servicedesk/', '^[A-Z]+ /rest/servicedesk/', '^[A-Z]+ /rest/servicedeskapi/', '^[A-Z]+ /servicedesk/(?!customer/)']
"#;
    let (demo, held) = serve_before_a_silent_app(&sim, pool).await;
    let lent = |pool: &'static str| {
        let d = &demo;
        async move { metric(d, &format!("iumgate_seats_lent{{pool=\"{pool}\"}}")).await }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric_opt(&demo, "iumgate_gate_reconciled{pool=\"service\"}").await != Some(1.0) {
        assert!(Instant::now() < deadline, "the service pool reconciles");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // An agent's login to a queue (the right password, even): the seat is
    // lent from the service pool while the app is asked; then the client goes.
    let body =
        "os_username=agent01&os_password=demo&os_destination=%2Fjira%2Fservicedesk%2Fprojects%2FHELP%2Fqueues";
    let req = format!(
        "POST /login.jsp HTTP/1.1\r\nHost: j\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(demo.proxy.trim_start_matches("http://"))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, req.as_bytes())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while lent("service").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the login borrowed no service seat"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        lent("default").await,
        0.0,
        "no software seat for an agent's login"
    );
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(10);
    while lent("service").await > 0.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lent("service").await, 0.0);
    assert_eq!(
        sim.members("IUM_access_service"),
        Vec::<String>::new(),
        "a login broken off kept a service seat"
    );
    // A Basic name on an agent path (fast lane), right password or not:
    // "retry later" at once, nothing lent, nothing asked of the app.
    for password in ["demo", "wrong"] {
        let req = format!(
            "GET /rest/servicedeskapi/request/HELP-1 HTTP/1.1\r\nHost: j\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            basic("agent02", password)
        );
        let answer = raw(&demo.proxy, req.as_bytes(), false).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    }
    assert_eq!(lent("service").await, 0.0);
    assert!(sim.members("IUM_access_service").is_empty());
    assert!(sim.members("IUM_access_software").is_empty());
    held.abort();
}
