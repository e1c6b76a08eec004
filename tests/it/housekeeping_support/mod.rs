//! Shared by the housekeeping, check and sync tests: a gate in front of the
//! Jira simulator on a manual clock, logins through the proxy, a recording
//! webhook server, and bounded waits.

#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use iumgate::app::{self, Options, Running};
use iumgate::clock::ManualClock;
use iumgate::config::{Config, Dur};
use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// 2025-01-15T00:30:00Z (01:30 at +01:00).
pub const T0: u64 = 1_736_901_000_000;
pub const MIN: u64 = 60_000;

pub async fn jira_sim() -> Sim {
    Sim::start(SimConfig::demo(Product::Jira))
        .await
        .expect("sim starts")
}

pub fn config(sim: &Sim) -> Config {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut cfg = iumgate::demo::demo_config(
        Product::Jira,
        &sim.url(),
        any,
        any,
        Duration::from_secs(30 * 60),
    );
    // demo_config leaves the credentials to Options.directory; `check` needs none either.
    cfg.ium.min_idle = Dur::secs(30 * 60);
    cfg
}

/// Starts iumgate in front of `sim` on a manual clock and waits for the first reconcile.
pub async fn start_gate(sim: &Sim, cfg: Config, clock: Arc<ManualClock>) -> Running {
    let directory = iumgate::demo::demo_directory(Product::Jira, &sim.url()).unwrap();
    let running = app::start_opts(
        cfg,
        Options {
            clock,
            directory: Some(directory),
        },
    )
    .await
    .expect("iumgate starts");
    let gate = running.gate.clone().expect("gate on");
    wait_until("the first reconcile", || gate.is_reconciled()).await;
    running
}

/// Polls `cond` every 20 ms for up to 20 s (generous: 2 shared cores).
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client with its own cookie jar, logged in as `user` through the proxy.
pub async fn login(proxy: SocketAddr, user: &str) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .post(format!("http://{proxy}/login.jsp"))
        .form(&[
            ("os_username", user),
            ("os_password", "demo"),
            ("os_destination", "/browse/DEMO-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "{user} logs in through the gate");
    client
}

/// An activity (an issue view) of the client's user.
pub async fn browse(proxy: SocketAddr, client: &reqwest::Client) {
    let resp = client
        .get(format!("http://{proxy}/browse/DEMO-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// A webhook receiver: records each JSON body; the first `fail_first`
/// requests get a 500.
pub struct Webhook {
    pub url: String,
    pub bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    pub requests: Arc<AtomicUsize>,
}

impl Webhook {
    pub async fn start(fail_first: usize) -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let (b, r) = (bodies.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (b, r) = (b.clone(), r.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (b, r) = (b.clone(), r.clone());
                        async move {
                            let n = r.fetch_add(1, Ordering::SeqCst);
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let status = if n < fail_first {
                                500
                            } else {
                                if let Ok(v) = serde_json::from_slice(&body) {
                                    b.lock().unwrap().push(v);
                                }
                                200
                            };
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from_static(b"ok")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Webhook {
            url,
            bodies,
            requests,
        }
    }

    pub fn received(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }
}
