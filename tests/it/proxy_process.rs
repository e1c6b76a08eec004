//! The real binary: SIGTERM drains (in-flight requests finish, `/readyz`
//! turns 503, exit 0), SIGINT exits at once, and `check-config` names the
//! key and line of each error.

use crate::proxy_support::*;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

const BIN: &str = env!("CARGO_BIN_EXE_iumgate");

/// A running `iumgate serve`; killed on drop if a test fails half-way.
struct Gate {
    child: Child,
    proxy: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Gate {
    fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        let st = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(st.success(), "kill {sig} {pid}");
    }

    fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (bounded) for the process to exit.
    async fn exit_status(&mut self) -> ExitStatus {
        let child = &mut self.child;
        within("the process to exit", async {
            loop {
                if let Some(st) = child.try_wait().unwrap() {
                    return st;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
    }
}

/// The address after `marker` in the log line, up to the next space.
fn addr_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split(|c: char| c.is_whitespace() || c == ',')
        .next()?
        .parse()
        .ok()
}

/// Starts `iumgate serve` with a config in a tempdir and reads the bound
/// addresses from its "listening" log line.
fn spawn_gate(upstream_url: &str, proxy_extra: &str) -> Gate {
    spawn_gate_env(upstream_url, proxy_extra, &[])
}

/// [`spawn_gate`] with more environment variables.
fn spawn_gate_env(upstream_url: &str, proxy_extra: &str, env: &[(&str, &str)]) -> Gate {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iumgate.toml");
    // The admin listener sits on another loopback address: validation
    // refuses `admin.listen == proxy.listen` even when both ports are 0.
    std::fs::write(
        &path,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream_url}\"\n{proxy_extra}\n\
             [admin]\nlisten = \"127.0.0.2:0\"\n"
        ),
    )
    .unwrap();
    let child = Command::new(BIN)
        .args(["serve", "-c"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Owned by the guard at once, so a failure below still kills it.
    let unbound = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut gate = Gate {
        child,
        proxy: unbound,
        admin: unbound,
        _dir: dir,
    };
    // Both streams are read to the end (a full pipe would block the child);
    // the log may go to either.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let out = gate.child.stdout.take().unwrap();
    let err = gate.child.stderr.take().unwrap();
    for stream in [
        Box::new(out) as Box<dyn std::io::Read + Send>,
        Box::new(err),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no listening line ({e}); output so far: {seen:#?}"));
        if let (Some(proxy), Some(admin)) = (
            addr_after(&line, "listening on http://"),
            addr_after(&line, "admin on http://"),
        ) {
            // Keep draining the output in the background.
            std::thread::spawn(move || while rx.recv().is_ok() {});
            gate.proxy = proxy;
            gate.admin = admin;
            return gate;
        }
        seen.push(line);
    }
}

/// An upstream that reports each request and answers only when released.
async fn held_upstream() -> (Upstream, mpsc::Receiver<()>, Arc<Notify>) {
    let (arrived_tx, arrived_rx) = mpsc::channel(8);
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let up = upstream(move |_req| {
        let arrived_tx = arrived_tx.clone();
        let gate = gate.clone();
        async move {
            let _ = arrived_tx.send(()).await;
            gate.notified().await;
            respond(http::StatusCode::OK, "slow answer")
        }
    })
    .await;
    (up, arrived_rx, release)
}

async fn readyz(admin: SocketAddr) -> Option<u16> {
    let r = client()
        .get(format!("http://{admin}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    r.ok().map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_in_flight_request_finish_then_exits_0() {
    let (up, mut arrived, release) = held_upstream().await;
    let mut gate = spawn_gate(&up.url(), "shutdown_grace = \"60s\"");
    // Ready is set just after the listening line is logged.
    within("/readyz to turn 200", async {
        while readyz(gate.admin).await != Some(200) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    let url = format!("http://{}/secure/Dashboard.jspa", gate.proxy);
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    within("the request to reach the upstream", arrived.recv())
        .await
        .unwrap();

    gate.signal("-TERM");
    within("/readyz to turn 503", async {
        while readyz(gate.admin).await != Some(503) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(gate.still_running(), "exited with a request in flight");

    release.notify_one();
    let resp = within("the in-flight response", in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "slow answer");
    let st = gate.exit_status().await;
    assert_eq!(st.code(), Some(0), "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_exits_at_once_without_draining() {
    let (up, mut arrived, _release) = held_upstream().await;
    // A grace far longer than the test's bound: only a fast exit passes.
    let mut gate = spawn_gate(&up.url(), "shutdown_grace = \"10m\"");
    let url = format!("http://{}/browse/ABC-1", gate.proxy);
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    within("the request to reach the upstream", arrived.recv())
        .await
        .unwrap();

    gate.signal("-INT");
    let st = gate.exit_status().await;
    assert_eq!(st.code(), Some(130), "{st:?}");
    let res = within("the client to notice", in_flight).await.unwrap();
    assert!(
        res.is_err(),
        "the held request cannot have been answered: {res:?}"
    );
}

fn check_config(path: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(["check-config", "-c"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_names_the_key_and_line_of_each_error_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "# line 1\n\
         [proxy]\n\
         listen = \"127.0.0.1:0\"\n\
         upstream = \"http://127.0.0.1:8080\"\n\
         max_header_bytes = 100\n\
         request_timout = \"5s\"\n",
    )
    .unwrap();
    let (code, _out, err) = check_config(&path);
    assert_eq!(code, Some(2), "{err}");
    let p = path.display();
    assert!(
        err.contains(&format!("{p}:5: `proxy.max_header_bytes`")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{p}:6: `proxy.request_timout`")),
        "{err}"
    );

    // A type error: serde's own message, still with key and line.
    std::fs::write(
        &path,
        "[proxy]\nupstream = \"http://127.0.0.1:8080\"\n\nmax_connections = \"many\"\n",
    )
    .unwrap();
    let (code, _out, err) = check_config(&path);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("{p}:4: `proxy.max_connections`")),
        "{err}"
    );

    // `serve` refuses the same file with the same code.
    let st = Command::new(BIN)
        .args(["serve", "-c"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(2));

    std::fs::write(&path, "[proxy]\nupstream = \"http://127.0.0.1:8080\"\n").unwrap();
    let (code, out, err) = check_config(&path);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("valid"), "{out}");
}

#[tokio::test]
async fn one_worker_thread_serves_proxies_and_drains() {
    // IUMGATE_WORKERS=1: the single-threaded runtime (what a 1-CPU pod gets).
    let up = echo_upstream().await;
    let mut gate = spawn_gate_env(&up.url(), "", &[("IUMGATE_WORKERS", "1")]);
    for i in 0..20 {
        let resp = within(
            "a proxied answer",
            client()
                .get(format!("http://{}/browse/ABC-{i}", gate.proxy))
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 200);
        let seen = Seen::parse(&resp.bytes().await.unwrap());
        assert_eq!(seen.str("uri"), format!("/browse/ABC-{i}"));
    }
    assert_eq!(up.hits(), 20);
    gate.signal("-TERM");
    assert_eq!(gate.exit_status().await.code(), Some(0));
}

#[test]
fn a_bad_iumgate_workers_value_is_refused_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iumgate.toml");
    std::fs::write(
        &path,
        "[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"http://127.0.0.1:9\"\n[admin]\nlisten = \"127.0.0.2:0\"\n",
    )
    .unwrap();
    for bad in ["0", "many", "-2"] {
        let out = Command::new(BIN)
            .args(["serve", "-c"])
            .arg(&path)
            .env("IUMGATE_WORKERS", bad)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("IUMGATE_WORKERS"), "{bad}: {err}");
        assert!(err.contains("from 1 to 1024"), "{bad}: {err}");
    }
}
