//! `kill -9` of the real binary under traffic, then a restart: the same
//! holders with their activity times (within the snapshot interval), the same
//! queue in the same order, the waiting-room cookies still valid, and no group
//! written twice. The directory is a simulator in this test process; the
//! binary gets the service account's password from an environment variable.

use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig};
use iumgate::state::{self, Loaded, Snapshot};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ACCESS: &str = "IUM_access_software";
pub(crate) const PASSWORD_ENV: &str = "IUMGATE_TEST_DIRECTORY_PASSWORD";
const SNAPSHOT_EVERY_MS: u64 = 1_000;
/// Scheduling slack on two noisy cores, on top of the snapshot interval.
const SLACK_MS: u64 = 4_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The child process; killed (SIGKILL) when dropped, so a failing test
/// leaves nothing running.
pub(crate) struct Gate {
    pub(crate) child: Child,
    pub(crate) proxy: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gate {
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

fn write_config(dir: &Path, sim_url: &str, state: &Path) -> PathBuf {
    let extra = format!(
        "[queue]\nabandon_after = \"10m\"\n\n[state]\npath = \"{}\"\nsnapshot_every = \"{SNAPSHOT_EVERY_MS}ms\"\n",
        state.display()
    );
    let path = dir.join("iumgate.toml");
    std::fs::write(&path, serve_config(sim_url, &extra)).unwrap();
    path
}

/// `iumgate serve`'s config in front of the simulator at `sim_url` (ports
/// chosen by the system, the password from [`PASSWORD_ENV`]), with `extra`
/// sections appended.
pub(crate) fn serve_config(sim_url: &str, extra: &str) -> String {
    format!(
        r#"
[proxy]
listen = "127.0.0.1:0"
upstream = "{sim_url}"
product = "jira"
shutdown_grace = "5s"

[admin]
# Another loopback address: the config refuses two equal listen addresses,
# even with ephemeral ports.
listen = "127.0.0.2:0"

[log]
level = "info"

[directory]
url = "{sim_url}"
username = "iumgate-admin"
password_env = "{PASSWORD_ENV}"
timeout = "5s"
retries = 2
backoff = "100ms"

[licence]
tier = "auto"
application = "jira-software"
fixed_groups = ["jira-software-users"]

[ium]
user_group = "IUM_user_software"
access_group = "IUM_access_software"
min_idle = "1h"

{extra}"#
    )
}

/// Starts `iumgate serve` and reads the proxy's address from its log.
pub(crate) fn spawn(config: &Path) -> Gate {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iumgate"))
        .args(["serve", "--config"])
        .arg(config)
        .env(PASSWORD_ENV, "demo")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel::<String>();
    // Drain both pipes for the child's whole life: a full pipe would block it.
    let out: Vec<Box<dyn std::io::Read + Send>> = vec![
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    for pipe in out {
        let (log, tx) = (log.clone(), tx.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                log.lock().unwrap().push(line);
            }
        });
    }
    // From here on the guard kills and reaps the child on every path.
    let mut gate = Gate {
        child,
        proxy: SocketAddr::from(([0, 0, 0, 0], 0)),
        log,
    };
    let ansi = regex::Regex::new("\x1b\\[[0-9;]*m").unwrap();
    let listening = regex::Regex::new(r"listening on http://([0-9.:]+) ").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) else {
            if let Ok(Some(status)) = gate.child.try_wait() {
                panic!("iumgate exited early ({status}):\n{}", gate.log());
            }
            continue;
        };
        let line = ansi.replace_all(&line, "");
        if let Some(c) = listening.captures(&line) {
            gate.proxy = c[1].parse().unwrap();
            return gate;
        }
    }
    panic!(
        "iumgate did not log its address within 60 s:\n{}",
        gate.log()
    );
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn set_cookies(resp: &reqwest::Response) -> HashMap<String, String> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Logs in through the gate; returns the redirect target and the cookies.
async fn login(
    c: &reqwest::Client,
    proxy: SocketAddr,
    user: &str,
) -> (String, HashMap<String, String>) {
    let resp = c
        .post(format!("http://{proxy}/login.jsp"))
        .header("accept", "text/html")
        .form(&[
            ("os_username", user),
            ("os_password", "demo"),
            ("os_destination", "/browse/DEMO-1"),
        ])
        .send()
        .await
        .unwrap();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (location, set_cookies(&resp))
}

/// The waiting room's answer for a waiter: (state, position).
async fn queue_position(
    c: &reqwest::Client,
    proxy: SocketAddr,
    wait_cookie: &str,
) -> (String, u64) {
    let v: serde_json::Value = c
        .get(format!("http://{proxy}/iumgate/api/queue"))
        .header("cookie", format!("iumgate_wait={wait_cookie}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        v["state"].as_str().unwrap_or_default().to_owned(),
        v["position"].as_u64().unwrap_or(0),
    )
}

fn holders_of(s: &Snapshot) -> HashMap<String, u64> {
    s.pool
        .holders
        .iter()
        .map(|h| (h.user.as_str().to_owned(), h.last_active))
        .collect()
}

fn queue_of(s: &Snapshot) -> Vec<String> {
    s.pool
        .queue
        .iter()
        .map(|w| w.user.as_str().to_owned())
        .collect()
}

fn sigterm(gate: &mut Gate) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &gate.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = gate.child.try_wait().unwrap() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "no exit within 60 s of SIGTERM:\n{}",
            gate.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_traffic_then_restart_keeps_holders_activity_and_queue() {
    let sim = Sim::start(SimConfig::demo(Product::Jira)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state").join("state.json");
    let config = write_config(dir.path(), &sim.url(), &state_path);
    let holders: Vec<String> = (1..=7).map(|i| format!("casual{i:02}")).collect();
    let waiters: Vec<String> = (8..=10).map(|i| format!("casual{i:02}")).collect();

    let mut first = spawn(&config);
    let proxy = first.proxy;
    let c = client();

    // Seven holders (the demo's 7 shared seats). Until the first reconcile
    // has read the capacity nobody is let in, so retry for a while.
    let mut sessions: HashMap<String, String> = HashMap::new();
    for user in &holders {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (location, cookies) = login(&c, proxy, user).await;
            if location == "/browse/DEMO-1" {
                sessions.insert(user.clone(), cookies["JSESSIONID"].clone());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{user} got no seat: {location}\n{}",
                first.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Three waiters, in this order.
    let mut wait_cookies: HashMap<String, String> = HashMap::new();
    for (i, user) in waiters.iter().enumerate() {
        let (location, cookies) = login(&c, proxy, user).await;
        assert!(location.starts_with("/iumgate/wait"), "{user}: {location}");
        let token = cookies["iumgate_wait"].clone();
        assert_eq!(
            queue_position(&c, proxy, &token).await,
            ("waiting".into(), i as u64 + 1)
        );
        wait_cookies.insert(user.clone(), token);
    }

    // Traffic: holders view issues (activity), waiters poll. Each success is
    // recorded with the time its request was sent.
    let last_ok: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let running = Arc::new(AtomicBool::new(true));
    let traffic = {
        let (c, sessions, waits, last_ok, running) = (
            c.clone(),
            sessions.clone(),
            wait_cookies.clone(),
            last_ok.clone(),
            running.clone(),
        );
        tokio::spawn(async move {
            let mut rounds = 0u32;
            // Bounded: the test stops it after the kill; the cap is a backstop.
            while running.load(Ordering::SeqCst) && rounds < 100_000 {
                rounds += 1;
                for (user, sid) in &sessions {
                    let sent = now_ms();
                    let Ok(resp) = c
                        .get(format!("http://{proxy}/browse/DEMO-1"))
                        .header("cookie", format!("JSESSIONID={sid}"))
                        .send()
                        .await
                    else {
                        continue;
                    };
                    let named = resp
                        .headers()
                        .get("x-ausername")
                        .and_then(|v| v.to_str().ok())
                        == Some(user.as_str());
                    if resp.status() == 200 && named {
                        last_ok.lock().unwrap().insert(user.clone(), sent);
                    }
                }
                for token in waits.values() {
                    let _ = c
                        .get(format!("http://{proxy}/iumgate/api/queue"))
                        .header("cookie", format!("iumgate_wait={token}"))
                        .send()
                        .await;
                }
            }
        })
    };
    // Let several snapshots happen under traffic, then kill -9 mid-stream.
    tokio::time::sleep(Duration::from_millis(3 * SNAPSHOT_EVERY_MS + 500)).await;
    assert_eq!(
        last_ok.lock().unwrap().len(),
        7,
        "every holder had traffic before the kill"
    );
    let killed_at = now_ms();
    first.child.kill().unwrap();
    let status = first.child.wait().unwrap();
    running.store(false, Ordering::SeqCst);
    traffic.await.unwrap();
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "killed with SIGKILL, not shut down"
        );
    }
    let last_ok = last_ok.lock().unwrap().clone();

    // What the kill left on disk is a whole snapshot, recent enough.
    let Loaded::Found(on_disk) = state::load(&state_path, 0).unwrap() else {
        panic!("no readable snapshot after kill -9:\n{}", first.log())
    };
    assert!(
        on_disk.written_at_ms + SNAPSHOT_EVERY_MS + SLACK_MS >= killed_at,
        "the last snapshot is {} ms older than the kill",
        killed_at - on_disk.written_at_ms
    );
    drop(first);
    let writes_before_restart = sim.group_writes().len();

    let mut second = spawn(&config);
    let proxy = second.proxy;
    let c = client();
    // The queue order survives: poll in reverse order until the restarted
    // gate has reconciled (before that every waiter hears "position 1").
    // A lost queue would be rebuilt by these very polls as 10, 09, 08.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = Vec::new();
        for user in waiters.iter().rev() {
            seen.push(queue_position(&c, proxy, &wait_cookies[user]).await);
        }
        let want: Vec<(String, u64)> = vec![
            ("waiting".into(), 3),
            ("waiting".into(), 2),
            ("waiting".into(), 1),
        ];
        if seen == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queue after restart (10, 09, 08): {seen:?}\n{}",
            second.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Holders pass with their old sessions, without a new grant; the
    // dashboard is not activity, so their times stay as restored.
    for (user, sid) in &sessions {
        let resp = c
            .get(format!("http://{proxy}/secure/Dashboard.jspa"))
            .header("cookie", format!("JSESSIONID={sid}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{user}");
        assert_eq!(resp.headers()["x-ausername"], user.as_str());
    }
    assert_eq!(
        sim.group_writes().len(),
        writes_before_restart,
        "the restart granted or revoked nobody"
    );
    let mut members = sim.members(ACCESS);
    members.sort();
    assert_eq!(members, holders, "the access group is exactly the holders");
    assert!(
        sim.peak_members(ACCESS) <= 7,
        "never more members than seats"
    );

    // A graceful stop writes the restarted gate's view: compare it.
    drop(c);
    let status = sigterm(&mut second);
    assert!(status.success(), "SIGTERM exit: {status}\n{}", second.log());
    let Loaded::Found(after) = state::load(&state_path, 0).unwrap() else {
        panic!("no final snapshot")
    };
    assert_eq!(
        after.pool.holders.len(),
        7,
        "each holder once: {:?}",
        after.pool.holders
    );
    let restored = holders_of(&after);
    for user in &holders {
        let t = restored[user];
        let sent = last_ok[user];
        assert!(
            t + SNAPSHOT_EVERY_MS + SLACK_MS >= sent && t <= killed_at,
            "{user}: last activity {t}, last request sent {sent}, killed at {killed_at}"
        );
    }
    assert_eq!(queue_of(&after), waiters, "queue order");
    assert_eq!(
        after.hash_key, on_disk.hash_key,
        "the same hashing key across the restart"
    );
    sim.shutdown();
}
