//! The HTTP/1.1 fast lane (`src/proxy/h1/`) on the wire: answers framed
//! by length, chunks (with extensions and trailers, split anywhere) or close
//! are relayed byte-exact and end where they end; HEAD, 204 and interim
//! answers carry no body; an answer with both framings is relayed but its
//! connection never used again; a malformed chunked body is cut, not passed
//! off as complete; pipelined requests are answered in order; and a request
//! the fast lane does not take (a body, a smuggling shape) hands the
//! connection to hyper mid-way without losing a byte.
//!
//! The upstream is a raw server that answers each request head with a scripted
//! answer, written in the pieces the script says, and records what it read.

use crate::proxy_support::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One answer, as the pieces the upstream writes (flushed one by one).
type Script = Vec<&'static [u8]>;

struct Scripted {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Every request head the upstream read, in order.
    seen: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Answers the request whose path is `p` with `answer(p)`; reads request
/// bodies by Content-Length. After an answer whose script ends with an
/// empty piece, closes the connection.
async fn scripted(answer: fn(&str) -> Script) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (a, s) = (accepted.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            a.fetch_add(1, Ordering::SeqCst);
            let seen = s.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(stream);
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        match r.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        head.push_str(&line);
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let path = head.split(' ').nth(1).unwrap_or_default().to_string();
                    seen.lock().unwrap().push(head);
                    let script = answer(&path);
                    let close = script.last().is_some_and(|p| p.is_empty());
                    for piece in script {
                        if r.get_mut().write_all(piece).await.is_err() {
                            return;
                        }
                        r.get_mut().flush().await.unwrap();
                        // Let each piece arrive on its own.
                        tokio::task::yield_now().await;
                    }
                    if close {
                        return;
                    }
                }
            });
        }
    });
    Scripted {
        addr,
        accepted,
        seen,
    }
}

/// Times `/drop-once` was asked for.
static DROPPED: AtomicUsize = AtomicUsize::new(0);

fn answers(path: &str) -> Script {
    match path {
        // Read, then closed without a byte of an answer: the first time only.
        "/drop-once" if DROPPED.fetch_add(1, Ordering::SeqCst) == 0 => vec![b""],
        "/drop-post" => vec![b""],
        "/length" => vec![b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Tag: length\r\n\r\nhel", b"lo"],
        // Extensions, a split size line, trailers.
        "/chunked" => vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n",
            b"1",
            b"0\r\n0123456789abcdef\r\n",
            b"0\r\nX-Trailer: t\r\n",
            b"\r\n",
        ],
        // HTTP/1.0 without a length: the body ends when the upstream closes.
        "/close" => vec![b"HTTP/1.0 200 OK\r\n\r\nuntil ", b"the end", b""],
        "/head" => vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"],
        "/nocontent" => vec![b"HTTP/1.1 204 No Content\r\nX-Tag: none\r\n\r\n"],
        "/early" => vec![
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ],
        // Both framings: relayed by its chunks, connection not used again.
        "/both" => vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
        ],
        // Hop-by-hop fields of the fixed list: relayed as it came, less those.
        "/hop" => vec![
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nTrailer: X-T\r\nX-Tag: hop\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        ],
        // `Connection` naming another field: through the header map.
        "/named" => vec![
            b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: 1\r\nX-Tag: named\r\nContent-Length: 2\r\n\r\nok",
        ],
        "/badchunk" => vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
        ],
        _ => vec![b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Tag: other\r\n\r\nbody"],
    }
}

async fn send(conn: &mut Conn, raw: &str) {
    conn.get_mut().write_all(raw.as_bytes()).await.unwrap();
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: jira.example\r\n\r\n")
}

type Conn = BufReader<tokio::net::TcpStream>;

/// The scripted upstream, iumgate in front of it (`extra` in `[proxy]`), and
/// a client connection to iumgate.
async fn setup(extra: &str) -> (Scripted, iumgate::app::Running, Conn) {
    let up = scripted(answers).await;
    let gw = start_proxy(&up.url(), extra).await;
    let c = raw_connect(gw.proxy_addr).await;
    (up, gw, c)
}

/// `GET path` on `c`, and its answer.
async fn fetch(c: &mut Conn, path: &str) -> RawResponse {
    send(c, &get(path)).await;
    read_response(c, false).await
}

#[tokio::test]
async fn answers_framed_every_way_are_relayed_whole_on_one_kept_connection() {
    let (up, _gw, mut c) = setup("").await;

    send(&mut c, &get("/length")).await;
    let r = read_response(&mut c, false).await;
    assert_eq!((r.status, r.body.as_slice()), (200, b"hello".as_slice()));
    assert_eq!(r.header("x-tag"), Some("length"));

    send(&mut c, &get("/chunked")).await;
    let r = read_response(&mut c, false).await;
    assert!(r.chunked, "chunked framing kept: {r:?}");
    assert_eq!(r.body, b"hello0123456789abcdef");

    send(&mut c, "HEAD /head HTTP/1.1\r\nHost: j\r\n\r\n").await;
    let r = read_response(&mut c, true).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some("1234"),
        "HEAD keeps the length"
    );

    send(&mut c, &get("/nocontent")).await;
    let r = read_response(&mut c, false).await;
    assert_eq!((r.status, r.header("x-tag")), (204, Some("none")));

    send(&mut c, &get("/early")).await;
    let r = read_response(&mut c, false).await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, b"ok".as_slice()),
        "the 103 is skipped"
    );

    // Everything above on one upstream connection, and this one still works.
    assert_eq!(fetch(&mut c, "/other").await.body, b"body");
    assert_eq!(up.accepted(), 1, "the upstream connection was not kept");
    assert_eq!(up.seen().len(), 6);
}

#[tokio::test]
async fn hop_by_hop_fields_of_an_answer_never_reach_the_client_on_the_fast_lane() {
    let (up, _gw, mut c) = setup("").await;
    for (path, tag) in [("/hop", "hop"), ("/named", "named"), ("/hop", "hop")] {
        let r = fetch(&mut c, path).await;
        assert_eq!((r.status, r.body.as_slice()), (200, b"ok".as_slice()));
        assert_eq!(r.header("x-tag"), Some(tag), "{r:?}");
        let names: Vec<String> = r
            .headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        for gone in [
            "connection",
            "keep-alive",
            "proxy-authenticate",
            "trailer",
            "x-secret",
        ] {
            assert!(
                !names.iter().any(|n| n == gone),
                "{gone} reached the client: {r:?}"
            );
        }
        assert_eq!(
            names.iter().filter(|n| *n == "content-length").count(),
            1,
            "one length: {r:?}"
        );
    }
    assert_eq!(up.accepted(), 1, "the upstream connection was not kept");
}

#[tokio::test]
async fn an_answer_ended_by_close_closes_the_client_connection_after_it() {
    let (_up, _gw, mut c) = setup("").await;
    send(&mut c, &get("/close")).await;
    let r = read_response(&mut c, false).await;
    assert_eq!(r.body, b"until the end");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(read_until_closed(&mut c).await.is_empty());
}

#[tokio::test]
async fn an_answer_with_both_framings_is_relayed_by_chunks_and_its_connection_dropped() {
    let (up, _gw, mut c) = setup("").await;
    send(&mut c, &get("/both")).await;
    let r = read_response(&mut c, false).await;
    assert!(r.chunked && !r.has("content-length"), "{r:?}");
    assert_eq!(r.body, b"ab");
    assert_eq!(fetch(&mut c, "/other").await.body, b"body");
    assert_eq!(up.accepted(), 2, "the doubtful connection was used again");
}

#[tokio::test]
async fn a_malformed_chunked_answer_is_cut_not_completed() {
    let (_up, _gw, mut c) = setup("").await;
    send(&mut c, &get("/badchunk")).await;
    let rest = read_until_closed(&mut c).await;
    let text = String::from_utf8_lossy(&rest);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "the client was told the body is complete: {text:?}"
    );
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (_up, _gw, mut c) = setup("").await;
    send(
        &mut c,
        &format!("{}{}{}", get("/length"), get("/chunked"), get("/other")),
    )
    .await;
    assert_eq!(read_response(&mut c, false).await.body, b"hello");
    assert_eq!(
        read_response(&mut c, false).await.body,
        b"hello0123456789abcdef"
    );
    assert_eq!(read_response(&mut c, false).await.body, b"body");
}

#[tokio::test]
async fn a_request_with_a_body_hands_the_connection_to_hyper_without_losing_a_byte() {
    let (up, _gw, mut c) = setup("").await;
    // A simple request, then one with a body and a simple one behind it, in
    // one write: the hand-over happens with bytes of both already read.
    assert_eq!(fetch(&mut c, "/length").await.body, b"hello");
    send(
        &mut c,
        &format!(
            "POST /form HTTP/1.1\r\nHost: j\r\nContent-Length: 7\r\n\r\na=1&b=2{}",
            get("/chunked")
        ),
    )
    .await;
    assert_eq!(read_response(&mut c, false).await.body, b"body");
    assert_eq!(
        read_response(&mut c, false).await.body,
        b"hello0123456789abcdef"
    );
    let seen = up.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[1].starts_with("POST /form HTTP/1.1\r\n"), "{seen:?}");
    assert!(seen[1].to_ascii_lowercase().contains("content-length: 7"));
}

#[tokio::test]
async fn a_smuggling_shaped_request_after_simple_ones_smuggles_nothing() {
    let (up, _gw, mut c) = setup("").await;
    assert_eq!(fetch(&mut c, "/length").await.body, b"hello");
    // Content-Length and Transfer-Encoding together: not the fast lane's.
    // hyper reads it by its chunks and closes the connection after the
    // answer (docs/SECURITY.md), so the "body" is never a request of its own.
    send(
        &mut c,
        "POST /a HTTP/1.1\r\nHost: j\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: j\r\n\r\n",
    )
    .await;
    let rest = read_until_closed(&mut c).await;
    let text = String::from_utf8_lossy(&rest);
    assert!(text.starts_with("HTTP/1.1 "), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "two answers: {text}");
    let seen = up.seen();
    assert!(seen.iter().all(|h| !h.contains("/smuggled")), "{seen:?}");
}

#[tokio::test]
async fn forwarding_headers_and_hop_by_hop_clean_up_hold_on_the_fast_lane() {
    let (up, _gw, mut c) = setup("").await;
    send(
        &mut c,
        "GET /x HTTP/1.1\r\nHost: jira.example\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-Forwarded-For: 6.6.6.6\r\nX-AUSERNAME: admin\r\nProxy-Authorization: secret\r\nCookie: JSESSIONID=abc\r\n\r\n",
    )
    .await;
    assert_eq!(read_response(&mut c, false).await.status, 200);
    let head = up.seen()[0].to_ascii_lowercase();
    assert!(head.starts_with("get /x http/1.1\r\n"), "{head}");
    assert!(head.contains("x-forwarded-for: 127.0.0.1\r\n"), "{head}");
    assert!(head.contains("x-forwarded-proto: http\r\n"), "{head}");
    assert!(
        head.contains("x-forwarded-host: jira.example\r\n"),
        "{head}"
    );
    assert!(head.contains("cookie: jsessionid=abc\r\n"), "{head}");
    for gone in [
        "6.6.6.6",
        "x-ausername",
        "keep-alive",
        "proxy-authorization",
    ] {
        assert!(!head.contains(gone), "{gone} reached the upstream: {head}");
    }
}

/// A counter from the admin listener's `/metrics`.
async fn counter(admin: SocketAddr, name: &str) -> u64 {
    let text = client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test]
async fn simple_requests_take_the_fast_lane_and_a_body_hands_the_connection_to_hyper() {
    let up = scripted(answers).await;
    let gw = start_proxy(&up.url(), "").await;
    let fast = "iumgate_proxy_fast_lane_requests_total";
    let handovers = "iumgate_proxy_handovers_total{reason=\"body\"}";
    let mut c = raw_connect(gw.proxy_addr).await;
    for _ in 0..3 {
        send(&mut c, &get("/other")).await;
        assert_eq!(read_response(&mut c, false).await.status, 200);
    }
    assert_eq!(counter(gw.admin_addr, fast).await, 3);
    assert_eq!(counter(gw.admin_addr, handovers).await, 0);

    // From the first request with a body, hyper serves this connection.
    send(
        &mut c,
        "PUT /x HTTP/1.1\r\nHost: j\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    assert_eq!(read_response(&mut c, false).await.status, 200);
    assert_eq!(fetch(&mut c, "/other").await.status, 200);
    assert_eq!(counter(gw.admin_addr, fast).await, 3);
    assert_eq!(counter(gw.admin_addr, handovers).await, 1);

    // A new connection starts in the fast lane again.
    let mut d = raw_connect(gw.proxy_addr).await;
    assert_eq!(fetch(&mut d, "/other").await.status, 200);
    assert_eq!(counter(gw.admin_addr, fast).await, 4);
}

#[tokio::test]
async fn with_the_fast_lane_off_hyper_serves_every_request() {
    let up = scripted(answers).await;
    let gw = start_proxy(&up.url(), "fast_lane = false").await;
    let mut c = raw_connect(gw.proxy_addr).await;
    for _ in 0..3 {
        assert_eq!(fetch(&mut c, "/other").await.status, 200);
    }
    send(
        &mut c,
        "PUT /x HTTP/1.1\r\nHost: j\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    assert_eq!(read_response(&mut c, false).await.status, 200);
    assert_eq!(
        counter(gw.admin_addr, "iumgate_proxy_fast_lane_requests_total").await,
        0
    );
    for why in iumgate::proxy::Handover::ALL {
        let series = format!(
            "iumgate_proxy_handovers_total{{reason=\"{}\"}}",
            why.label()
        );
        assert_eq!(counter(gw.admin_addr, &series).await, 0, "{series}");
    }
}

#[tokio::test]
async fn half_a_head_is_closed_after_header_timeout_in_the_fast_lane() {
    let (up, _gw, mut c) = setup("header_timeout = \"1s\"").await;
    assert_eq!(fetch(&mut c, "/other").await.status, 200);
    // Half a head, then silence: closed once header_timeout has passed.
    send(&mut c, "GET /other HTTP/1.1\r\nHo").await;
    assert!(read_until_closed(&mut c).await.is_empty());
    assert_eq!(up.seen().len(), 1);
}

#[tokio::test]
async fn an_idle_kept_connection_is_closed_after_idle_timeout_not_header_timeout() {
    let (_up, _gw, mut c) = setup("idle_timeout = \"1s\"\nheader_timeout = \"60s\"").await;
    assert_eq!(fetch(&mut c, "/other").await.status, 200);
    // Closed well before the 60 s a head may take (read_until_closed gives up long before).
    assert!(read_until_closed(&mut c).await.is_empty());
}

#[tokio::test]
async fn a_kept_connection_may_idle_longer_than_header_timeout() {
    let (_up, _gw, mut c) = setup("idle_timeout = \"60s\"\nheader_timeout = \"1s\"").await;
    assert_eq!(fetch(&mut c, "/other").await.status, 200);
    // Idle for twice header_timeout (far below idle_timeout), then the next request.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(fetch(&mut c, "/length").await.body, b"hello");
}

#[tokio::test]
async fn a_safe_request_on_a_kept_connection_the_upstream_closed_is_asked_again_once() {
    let (up, _gw, mut c) = setup("").await;
    assert_eq!(fetch(&mut c, "/other").await.status, 200);
    // The kept upstream connection reads the next request and closes without
    // answering (a keep-alive time-out crossing it): a GET is asked again on
    // a new connection, so the client never sees the race.
    let r = fetch(&mut c, "/drop-once").await;
    assert_eq!((r.status, r.body.as_slice()), (200, b"body".as_slice()));
    assert_eq!(up.accepted(), 2);
    let seen = up.seen();
    assert_eq!(
        seen.iter().filter(|h| h.contains("/drop-once")).count(),
        2,
        "{seen:?}"
    );
}

#[tokio::test]
async fn an_unsafe_request_on_a_kept_connection_the_upstream_closed_is_never_sent_again() {
    let (up, _gw, mut c) = setup("").await;
    assert_eq!(fetch(&mut c, "/other").await.status, 200);
    send(
        &mut c,
        "POST /drop-post HTTP/1.1\r\nHost: j\r\nAccept: application/json\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(read_response(&mut c, false).await.status, 502);
    let seen = up.seen();
    assert_eq!(
        seen.iter().filter(|h| h.contains("/drop-post")).count(),
        1,
        "{seen:?}"
    );
}
