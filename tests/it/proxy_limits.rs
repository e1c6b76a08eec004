//! When things go wrong: the upstream is down or slow, a client is slow or
//! greedy. The proxy answers with the right status and protects itself.

use crate::proxy_support::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

#[tokio::test]
async fn upstream_down_gives_502_as_html_for_browsers_and_json_otherwise() {
    let down = closed_addr().await;
    let gw = start_proxy(&format!("http://{down}"), "").await;
    let url = format!("http://{}/browse/ABC-1", gw.proxy_addr);

    let resp = client()
        .get(&url)
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let page = resp.text().await.unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.contains("502"), "{page}");

    let resp = client()
        .get(&url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let doc: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(doc["status"], 502);
    assert_eq!(doc["cause"], "connect");
}

#[tokio::test]
async fn upstream_that_never_answers_gives_504_after_request_timeout() {
    // Accepts connections, reads nothing, answers nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let gw = start_proxy(&format!("http://{addr}"), "request_timeout = \"1s\"").await;
    let started = Instant::now();
    let resp = within(
        "the 504",
        client()
            .get(format!("http://{}/rest/api/2/search", gw.proxy_addr))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 504);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "answered before the timeout: {:?}",
        started.elapsed()
    );
    let doc: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(doc["cause"], "timeout");
}

#[tokio::test]
async fn second_connection_waits_until_the_first_closes_with_max_connections_1() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "max_connections = 1").await;

    let mut first = raw_connect(gw.proxy_addr).await;
    first
        .get_mut()
        .write_all(b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut first, false).await.status, 200);

    // The kernel completes the handshake (backlog); the proxy does not serve it.
    let mut second = raw_connect(gw.proxy_addr).await;
    second
        .get_mut()
        .write_all(b"GET /second HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    // A short look only: if it were served, an answer would come at once;
    // a slow machine can only make this check weaker, never flaky.
    let early = tokio::time::timeout(Duration::from_millis(500), second.fill_buf()).await;
    assert!(
        early.is_err(),
        "second connection served while the first is open"
    );
    assert_eq!(up.hits(), 1);

    drop(first);
    let resp = read_response(&mut second, false).await;
    assert_eq!(resp.status, 200);
    assert_eq!(Seen::parse(&resp.body).str("uri"), "/second");
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn client_trickling_headers_is_closed_after_header_timeout() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "header_timeout = \"1s\"").await;
    let stream = tokio::net::TcpStream::connect(gw.proxy_addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let started = Instant::now();
    // One header line every 100 ms: each byte is progress, but the head
    // never ends. Stops when the proxy hangs up (or after 20 s: fail below).
    let trickler = tokio::spawn(async move {
        if wr
            .write_all(b"GET / HTTP/1.1\r\nHost: h\r\n")
            .await
            .is_err()
        {
            return;
        }
        for i in 0..200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if wr
                .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let answer = read_until_closed(&mut rd).await;
    let elapsed = started.elapsed();
    trickler.abort();
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed too early: {elapsed:?}"
    );
    // hyper may say 408 before closing; it must never have served the request.
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn silent_connection_is_closed_after_header_timeout_and_frees_its_slot() {
    // With one slot, a client that connects and never sends a byte would
    // shut everyone else out if it were kept.
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "header_timeout = \"1s\"\nmax_connections = 1").await;
    let mut silent = tokio::net::TcpStream::connect(gw.proxy_addr).await.unwrap();
    let mut next = raw_connect(gw.proxy_addr).await;
    next.get_mut()
        .write_all(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let resp = read_response(&mut next, false).await;
    assert_eq!(resp.status, 200);
    assert_eq!(read_until_closed(&mut silent).await, b"");
}

#[tokio::test]
async fn a_taken_port_is_a_start_error_naming_the_key_the_address_and_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut cfg = config("http://127.0.0.1:9", "");
    cfg.proxy.listen = addr;
    let Err(e) = iumgate::app::start(cfg).await else {
        panic!("started on a taken port");
    };
    assert_eq!(e.key(), "proxy.listen");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("proxy.listen {addr}: cannot listen")),
        "{text}"
    );
    assert!(text.contains("another process uses this port"), "{text}");
    let source = std::error::Error::source(&e).expect("the io error is kept");
    let io = source
        .downcast_ref::<std::io::Error>()
        .expect("an io::Error");
    assert_eq!(io.kind(), std::io::ErrorKind::AddrInUse);
}
