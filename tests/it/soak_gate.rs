//! A bounded soak through the gate in front of the Jira simulator, on
//! 127.0.0.1 only: thousands of concurrent keep-alive connections of seat
//! holders and anonymous visitors, while churn workers log users in, browse
//! and log out again as fast as they can. It stops by itself after
//! `IUMGATE_SOAK_SECS` seconds of load (default 10; CI or a release check
//! may set 60) and reports the numbers and the process's RSS (the proxy and
//! the simulator run in this process, which runs this test alone:
//! `own_process`) after warm-up and at the end.
//!
//! At the end: no unexpected answer, the seat count equals the access
//! group's member count, the group never went above the capacity, and RSS
//! stayed flat after warm-up.

use crate::gate_support::*;
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use iumgate::product::Product;
use iumgate::sim::SimUser;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Casual users who churn (each worker owns a disjoint slice of them).
const CHURN_USERS: usize = 400;
/// Holders whose sessions the long-lived connections carry.
const HOLDERS: usize = 40;
const FIXED: u32 = 3;

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    churns: AtomicU64,
    waits: AtomicU64,
    unexpected: AtomicU64,
}

fn soak_secs() -> u64 {
    std::env::var("IUMGATE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

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

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: std::net::SocketAddr) -> Option<Sender> {
    let s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (send, conn) = http1::handshake(TokioIo::new(s)).await.ok()?;
    tokio::spawn(conn);
    Some(send)
}

/// One request on `send`; the status, the session cookie it set, the body length.
async fn call(
    send: &mut Sender,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    form: Option<String>,
) -> Option<(StatusCode, Option<String>, http::HeaderMap)> {
    send.ready().await.ok()?;
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "jira.example.com")
        .header(header::ACCEPT, "text/html");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    let body = match form {
        Some(f) => {
            b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Full::new(Bytes::from(f))
        }
        None => Full::new(Bytes::new()),
    };
    let resp = send.send_request(b.body(body).ok()?).await.ok()?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let session = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let first = v.split(';').next()?;
            let (n, val) = first.split_once('=')?;
            (n == "JSESSIONID" && !val.is_empty()).then(|| format!("JSESSIONID={val}"))
        });
    resp.into_body().collect().await.ok()?;
    Some((status, session, headers))
}

/// Logs `user` in on `send`; `Some(cookie)` when the login got a seat.
async fn login(send: &mut Sender, user: &str, tally: &Tally) -> Option<String> {
    let form = format!("os_username={user}&os_password=demo&os_destination=%2Fbrowse%2FDEMO-1");
    let (status, session, headers) =
        call(send, Method::POST, "/login.jsp", None, Some(form)).await?;
    tally.requests.fetch_add(1, Ordering::Relaxed);
    let location = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if status.is_redirection() && location.starts_with("/iumgate/wait") {
        tally.waits.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    if status.is_redirection() && location.ends_with("/browse/DEMO-1") && session.is_some() {
        return session;
    }
    tally.unexpected.fetch_add(1, Ordering::Relaxed);
    eprintln!("unexpected login answer for {user}: {status} {location}");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_connections_and_session_churn_keep_seats_consistent_and_memory_flat() {
    if !crate::own_process::alone(
        module_path!(),
        "soak_connections_and_session_churn_keep_seats_consistent_and_memory_flat",
    ) {
        return;
    }
    let secs = soak_secs();
    let conns: usize = std::env::var("IUMGATE_SOAK_CONNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if secs >= 60 { 3000 } else { 2000 });
    let capacity = CHURN_USERS + HOLDERS;
    let w = World::start(
        Product::Jira,
        |sc| {
            sc.seats = FIXED + capacity as u32;
            for i in 0..CHURN_USERS + HOLDERS {
                sc.users
                    .push(SimUser::new(&format!("soak{i:04}"), &["IUM_user_software"]));
            }
        },
        |cfg| {
            cfg.proxy.max_connections = 10_000;
        },
    )
    .await;
    assert_eq!(w.gate.with_pool(|p| p.capacity()), capacity);
    // The simulator's log of group writes grows by one record per write by
    // design (tests read it); off, so the memory reading shows iumgate.
    w.sim.log_group_writes(false);
    let addr = w.run.proxy_addr;
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);

    // Holders log in once; their sessions are carried by the connections.
    let mut holder_cookies = Vec::new();
    {
        let mut send = connect(addr).await.expect("connect");
        for i in CHURN_USERS..CHURN_USERS + HOLDERS {
            let c = login(&mut send, &format!("soak{i:04}"), &tally)
                .await
                .expect("a holder gets a seat");
            holder_cookies.push(c);
        }
    }
    let holder_cookies = Arc::new(holder_cookies);

    // Long-lived keep-alive connections: a request about every 3 s each
    // (thousands open at once matter here; the churn workers make the rate).
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..conns {
        let tally = tally.clone();
        let cookies = holder_cookies.clone();
        tasks.spawn(async move {
            let Some(mut send) = connect(addr).await else {
                tally.unexpected.fetch_add(1, Ordering::Relaxed);
                eprintln!("connection {i} refused");
                return;
            };
            // Spread the first requests over the first three seconds.
            tokio::time::sleep(Duration::from_millis((i as u64 * 7) % 3000)).await;
            let mut n = 0usize;
            while Instant::now() < end {
                let (path, cookie) = if i % 4 == 0 {
                    ("/login.jsp", None)
                } else {
                    (
                        if n % 2 == 0 {
                            "/browse/DEMO-1"
                        } else {
                            "/rest/api/2/issue/DEMO-2"
                        },
                        Some(cookies[(i + n) % cookies.len()].as_str()),
                    )
                };
                match call(&mut send, Method::GET, path, cookie, None).await {
                    Some((s, _, _)) if s == StatusCode::OK => {
                        tally.requests.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        tally.unexpected.fetch_add(1, Ordering::Relaxed);
                        eprintln!("held connection {i}: {:?}", other.map(|o| o.0));
                        return;
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(3000)).await;
            }
        });
    }

    // Churn: log in (seat granted), browse, log out (seat released).
    let workers = 32;
    let per = CHURN_USERS / workers;
    for wk in 0..workers {
        let tally = tally.clone();
        tasks.spawn(async move {
            let Some(mut send) = connect(addr).await else {
                tally.unexpected.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let mut k = 0usize;
            while Instant::now() < end {
                let user = format!("soak{:04}", wk * per + k % per);
                k += 1;
                let Some(cookie) = login(&mut send, &user, &tally).await else {
                    continue;
                };
                for path in ["/browse/DEMO-1", "/secure/Logout!default.jspa"] {
                    match call(&mut send, Method::GET, path, Some(&cookie), None).await {
                        Some((s, _, _)) if s == StatusCode::OK || s.is_redirection() => {
                            tally.requests.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            tally.unexpected.fetch_add(1, Ordering::Relaxed);
                            eprintln!("churn {user} {path}: {:?}", other.map(|o| o.0));
                            match connect(addr).await {
                                Some(s) => send = s,
                                None => return,
                            }
                        }
                    }
                }
                tally.churns.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    // RSS after warm-up: every connection has made its first request (3 s)
    // and the pools have grown; a fifth of the run, at least 4 s.
    let warm = Duration::from_secs((secs / 5).max(4));
    tokio::time::sleep(warm.min(Duration::from_secs(secs))).await;
    let rss_warm = vm_rss_kib();
    let churns_warm = tally.churns.load(Ordering::Relaxed);

    let deadline = end + Duration::from_secs(60);
    while tasks.join_next().await.is_some() {
        assert!(Instant::now() < deadline, "the soak did not stop by itself");
    }
    let rss_end = vm_rss_kib();
    let elapsed = start.elapsed().as_secs_f64();
    let requests = tally.requests.load(Ordering::Relaxed);
    let churns = tally.churns.load(Ordering::Relaxed);
    let waits = tally.waits.load(Ordering::Relaxed);
    let unexpected = tally.unexpected.load(Ordering::Relaxed);
    eprintln!(
        "soak: {secs} s, {conns} concurrent connections + {workers} churn workers; \
         {requests} requests ({:.0}/s), {churns} session churns ({:.0}/s), {waits} waits, \
         {unexpected} unexpected; VmRSS after warm-up {rss_warm} KiB ({churns_warm} churns in), \
         at the end {rss_end} KiB; sessions bound {}, seats {}",
        requests as f64 / elapsed,
        churns as f64 / elapsed,
        w.gate.sessions.len(),
        w.in_use(),
    );
    assert_eq!(unexpected, 0, "unexpected answers");
    assert!(churns > 0 && requests > conns as u64);
    // Every seat iumgate counts is a member of the access group, and back.
    let members = w.access_members();
    assert_eq!(w.in_use(), members.len(), "pool and group disagree");
    assert_eq!(members.len(), HOLDERS, "only the holders are left");
    assert!(w.sim.peak_members("IUM_access_software") <= capacity);
    // Flat after warm-up: growth well below what one record per churn would cost.
    let grew_mib = rss_end.saturating_sub(rss_warm) / 1024;
    assert!(grew_mib < 64, "RSS grew {grew_mib} MiB after warm-up");
}
