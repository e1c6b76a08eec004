//! The upstream connections: kept alive and reused (within one client
//! connection and across client connections), never reused once the upstream
//! closed them, a request the upstream received never sent twice, and https
//! towards an upstream whose certificate comes from `upstream_ca_file`.
//!
//! The upstream here is a raw HTTP/1.1 server that counts the TCP connections
//! it accepted and the requests it read, so reuse is seen on the wire.

use crate::proxy_support::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// Answers every request, keeps the connection open.
    KeepAlive,
    /// Answers one request, then closes (as a keep-alive time-out would,
    /// without saying so in the answer).
    CloseAfterAnswer,
    /// Reads the request, then closes without answering.
    CloseUnanswered,
}

#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    requests: AtomicUsize,
    closed: AtomicUsize,
}

struct RawUpstream {
    addr: SocketAddr,
    counts: Arc<Counts>,
}

impl RawUpstream {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    fn accepted(&self) -> usize {
        self.counts.accepted.load(Ordering::SeqCst)
    }
    fn requests(&self) -> usize {
        self.counts.requests.load(Ordering::SeqCst)
    }
    fn closed(&self) -> usize {
        self.counts.closed.load(Ordering::SeqCst)
    }
}

async fn raw_upstream(behaviour: Behaviour) -> RawUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            c.accepted.fetch_add(1, Ordering::SeqCst);
            let c = c.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    // One request head (the tests send no bodies).
                    let mut line = String::new();
                    let mut got_any = false;
                    loop {
                        line.clear();
                        match stream.read_line(&mut line).await {
                            Ok(0) | Err(_) => {
                                c.closed.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            Ok(_) => {}
                        }
                        if line == "\r\n" && got_any {
                            break;
                        }
                        got_any = true;
                    }
                    let n = c.requests.fetch_add(1, Ordering::SeqCst) + 1;
                    if behaviour == Behaviour::CloseUnanswered {
                        c.closed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    let body = format!("answer {n}");
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    let w = stream.get_mut();
                    if w.write_all(head.as_bytes()).await.is_err()
                        || w.write_all(body.as_bytes()).await.is_err()
                    {
                        return;
                    }
                    if behaviour == Behaviour::CloseAfterAnswer {
                        let _ = w.shutdown().await;
                        c.closed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            });
        }
    });
    RawUpstream { addr, counts }
}

/// Sends one GET on an open client connection and reads the answer.
async fn get(conn: &mut BufReader<tokio::net::TcpStream>, path: &str) -> RawResponse {
    conn.get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: jira.example\r\n\r\n").as_bytes())
        .await
        .unwrap();
    within("the answer", read_response(conn, false)).await
}

/// Sends `raw` (a request asking for JSON) on a new connection, expects a
/// 502 and returns its `cause`.
async fn bad_gateway(proxy: SocketAddr, raw: &str) -> String {
    let mut conn = raw_connect(proxy).await;
    conn.get_mut().write_all(raw.as_bytes()).await.unwrap();
    let r = within("the 502", read_response(&mut conn, false)).await;
    assert_eq!(r.status, 502, "{r:?}");
    let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    doc["cause"].as_str().unwrap_or_default().to_string()
}

/// Polls `cond` until true, failing after the bounded wait.
async fn until(what: &str, cond: impl Fn() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

#[tokio::test]
async fn one_upstream_connection_serves_every_request_of_a_keep_alive_client() {
    let up = raw_upstream(Behaviour::KeepAlive).await;
    let gw = start_proxy(&up.url(), "").await;
    let mut conn = raw_connect(gw.proxy_addr).await;
    for i in 1..=50 {
        let r = get(&mut conn, &format!("/browse/ABC-{i}")).await;
        assert_eq!(r.status, 200);
        assert_eq!(String::from_utf8_lossy(&r.body), format!("answer {i}"));
    }
    assert_eq!(
        up.accepted(),
        1,
        "the upstream connection was not kept alive"
    );
    assert_eq!(up.requests(), 50);
}

#[tokio::test]
async fn a_later_client_connection_reuses_the_upstream_connection_of_one_that_left() {
    let up = raw_upstream(Behaviour::KeepAlive).await;
    let gw = start_proxy(&up.url(), "").await;

    let mut first = raw_connect(gw.proxy_addr).await;
    assert_eq!(get(&mut first, "/browse/ABC-1").await.status, 200);
    drop(first);
    // The client left: its idle upstream connection is parked for others.
    until("the upstream connection to be parked", || {
        gw.upstream.parked() == 1
    })
    .await;

    let mut second = raw_connect(gw.proxy_addr).await;
    let r = get(&mut second, "/browse/ABC-2").await;
    assert_eq!(r.status, 200);
    assert_eq!(String::from_utf8_lossy(&r.body), "answer 2");
    assert_eq!(up.accepted(), 1, "a new upstream connection was opened");
    assert_eq!(gw.upstream.parked(), 0, "the parked connection is in use");
}

#[tokio::test]
async fn an_upstream_connection_the_upstream_closed_is_not_used_again() {
    let up = raw_upstream(Behaviour::CloseAfterAnswer).await;
    let gw = start_proxy(&up.url(), "").await;
    let mut conn = raw_connect(gw.proxy_addr).await;
    for i in 1..=5 {
        let r = get(&mut conn, &format!("/browse/ABC-{i}")).await;
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        // The upstream has closed this request's connection before the next.
        until("the upstream to close", || up.closed() == i).await;
    }
    assert_eq!(up.accepted(), 5);
    assert_eq!(up.requests(), 5);

    // Parked connections the upstream closed are not handed out either.
    drop(conn);
    let mut again = raw_connect(gw.proxy_addr).await;
    assert_eq!(get(&mut again, "/browse/ABC-6").await.status, 200);
    assert_eq!(up.requests(), 6);
}

#[tokio::test]
async fn a_request_the_upstream_read_is_never_sent_twice() {
    let up = raw_upstream(Behaviour::CloseUnanswered).await;
    let gw = start_proxy(&up.url(), "").await;
    let cause = bad_gateway(
        gw.proxy_addr,
        "POST /rest/api/2/issue HTTP/1.1\r\nHost: jira.example\r\nAccept: application/json\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(cause, "protocol");
    assert_eq!(up.requests(), 1, "the request reached the upstream twice");
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn https_upstream_with_its_ca_from_upstream_ca_file() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca, ck.cert.pem()).unwrap();

    let cert = rustls_pki_types::CertificateDer::from(ck.cert.der().to_vec());
    let key = rustls_pki_types::PrivateKeyDer::try_from(ck.key_pair.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(tls),
                        hyper::service::service_fn(|req| async move {
                            Ok::<_, std::convert::Infallible>(echo(req).await)
                        }),
                    )
                    .await;
            });
        }
    });
    let url = format!("https://127.0.0.1:{}", addr.port());

    let gw = start_proxy(
        &url,
        &format!("upstream_ca_file = {:?}", ca.display().to_string()),
    )
    .await;
    let mut conn = raw_connect(gw.proxy_addr).await;
    for i in 1..=3 {
        let r = get(&mut conn, &format!("/browse/ABC-{i}?x=1")).await;
        assert_eq!(r.status, 200, "{r:?}");
        let seen = Seen::parse(&r.body);
        // Origin form on the wire, the client's Host kept.
        assert_eq!(seen.str("uri"), format!("/browse/ABC-{i}?x=1"));
        assert_eq!(seen.header("host").as_deref(), Some("jira.example"));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one TLS connection, kept alive"
    );

    // Without the CA the certificate is not trusted: a 502, nothing forwarded.
    let untrusting = start_proxy(&url, "").await;
    let cause = bad_gateway(
        untrusting.proxy_addr,
        "GET /browse/ABC-1 HTTP/1.1\r\nHost: jira.example\r\nAccept: application/json\r\n\r\n",
    )
    .await;
    assert_eq!(cause, "connect");
}
