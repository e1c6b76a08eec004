//! A 100 MB "login": the gate must stream it, never buffer the whole body.
//! It reads a login only from a body it has whole (within
//! `identity.login_body_limit`): a servlet container ignores the parameters
//! of a body over its `maxPostSize`, so a claim read from the first bytes of
//! a huge one could name someone the app never logs in. The app's answer,
//! which names the user, admits them instead. It runs in a process of its
//! own (`own_process`), so the RSS it reads is this test's alone.
//!
//! Proof without timing: the client's body is generated lazily and stops
//! after the first 8 MiB until the upstream has *received* a first megabyte.
//! A proxy that buffered the body before forwarding would never let the
//! upstream see anything, and the test would fail at its bounded wait. The
//! upstream counts every byte and hashes nothing: it only needs the total.

use bytes::Bytes;
use futures_util::stream;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use iumgate::app::{self, Options};
use iumgate::clock::ManualClock;
use iumgate::product::Product;
use iumgate::proxy::body::full;
use iumgate::sim::{Sim, SimConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;

const TOTAL: u64 = 100 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
const HEAD: &str = "os_username=casual01&os_password=demo&os_destination=%2Fbrowse%2FDEMO-1&pad=";

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_login_body_is_streamed_to_the_upstream_whole_and_never_buffered() {
    if !crate::own_process::alone(
        module_path!(),
        "a_100_mb_login_body_is_streamed_to_the_upstream_whole_and_never_buffered",
    ) {
        return;
    }
    let sim = Sim::start(SimConfig::demo(Product::Jira)).await.unwrap();

    // The "Jira" that receives the login: counts bytes, says who logged in.
    let received = Arc::new(AtomicU64::new(0));
    let first_mb = Arc::new(Notify::new());
    let granted_before_forward = Arc::new(AtomicU64::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = listener.local_addr().unwrap();
    {
        let received = received.clone();
        let first_mb = first_mb.clone();
        let granted = granted_before_forward.clone();
        let sim = sim.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let received = received.clone();
                let first_mb = first_mb.clone();
                let granted = granted.clone();
                let sim = sim.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let received = received.clone();
                        let first_mb = first_mb.clone();
                        let granted = granted.clone();
                        let sim = sim.clone();
                        async move {
                            // The seat must exist before the login reaches the app.
                            if sim.is_member("casual01", "IUM_access_software") {
                                granted.store(1, Ordering::SeqCst);
                            }
                            let mut body = req.into_body();
                            let mut signalled = false;
                            while let Some(frame) = body.frame().await {
                                let Ok(frame) = frame else { break };
                                if let Some(d) = frame.data_ref() {
                                    let n = received.fetch_add(d.len() as u64, Ordering::SeqCst)
                                        + d.len() as u64;
                                    if !signalled && n >= 1024 * 1024 {
                                        signalled = true;
                                        first_mb.notify_one();
                                    }
                                }
                            }
                            let mut r = Response::new(full("welcome"));
                            *r.status_mut() = StatusCode::OK;
                            r.headers_mut()
                                .insert("x-ausername", "casual01".parse().unwrap());
                            r.headers_mut()
                                .insert("x-seraph-loginreason", "OK".parse().unwrap());
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
    }

    // The gate: proxying to the counting upstream, directory = the simulator.
    let any = "127.0.0.1:0".parse().unwrap();
    let mut cfg = iumgate::demo::demo_config(
        Product::Jira,
        &format!("http://{up_addr}"),
        any,
        any,
        Duration::from_secs(1800),
    );
    cfg.proxy.request_timeout = iumgate::config::Dur::secs(300);
    let run = app::start_opts(
        cfg,
        Options {
            clock: Arc::new(ManualClock::new(1_800_000_000_000)),
            directory: Some(iumgate::demo::demo_directory(Product::Jira, &sim.url()).unwrap()),
        },
    )
    .await
    .unwrap();
    let gate = run.gate.clone().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gate.is_reconciled() {
        assert!(Instant::now() < deadline, "first reconcile did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Measured once the gate is up and reconciled.
    let rss_before = vm_rss_kib();

    let gate_open = first_mb.clone();
    let sent = Arc::new(AtomicU64::new(0));
    let sent_c = sent.clone();
    let body_stream = stream::unfold(0u64, move |off| {
        let gate_open = gate_open.clone();
        let sent = sent_c.clone();
        async move {
            if off >= TOTAL {
                return None;
            }
            if off == 8 * 1024 * 1024 {
                // Hold back until the upstream has seen the first megabyte.
                gate_open.notified().await;
            }
            let chunk: Bytes = if off == 0 {
                let mut v = HEAD.as_bytes().to_vec();
                v.resize(CHUNK, b'a');
                v.into()
            } else {
                Bytes::from_static(&[b'a'; CHUNK])
            };
            let n = (chunk.len() as u64).min(TOTAL - off);
            sent.fetch_add(n, Ordering::SeqCst);
            Some((Ok::<_, std::io::Error>(chunk.slice(..n as usize)), off + n))
        }
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = tokio::time::timeout(
        Duration::from_secs(240),
        client
            .post(format!("http://{}/login.jsp", run.proxy_addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-length", TOTAL.to_string())
            .body(reqwest::Body::wrap_stream(body_stream))
            .send(),
    )
    .await
    .expect("the login finished (a buffering proxy would hang here)")
    .unwrap();
    let rss_after = vm_rss_kib();
    // The app named casual01: admitted now, the client repeats the request.
    assert_eq!(resp.status(), 307);
    assert_eq!(
        received.load(Ordering::SeqCst),
        TOTAL,
        "the upstream got it whole"
    );
    assert_eq!(sent.load(Ordering::SeqCst), TOTAL);
    assert_eq!(
        granted_before_forward.load(Ordering::SeqCst),
        0,
        "no seat lent on a claim read from part of a body"
    );
    assert!(gate.holds(&iumgate::user::UserId::new("casual01")));
    let grew_mib = rss_after.saturating_sub(rss_before) / 1024;
    eprintln!("VmRSS before {rss_before} KiB, after {rss_after} KiB (+{grew_mib} MiB) for a 100 MiB login");
    // Far below the body's size: a buffered body alone would be 100 MiB.
    assert!(grew_mib < 48, "RSS grew by {grew_mib} MiB");
}
