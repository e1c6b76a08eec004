//! Hostile bytes on the wire, against the plain proxy (no gate): request
//! smuggling shapes, oversized cookies, invalid bytes in headers, and path
//! tricks that try to reach `/iumgate/` around the prefix check. Every test
//! sends raw bytes (no client library normalises them) and checks both the
//! answer and that the upstream saw nothing it should not have.

use crate::proxy_support::*;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

/// Sends `raw` on a fresh connection; returns the first response.
async fn send_raw(addr: std::net::SocketAddr, raw: &[u8]) -> RawResponse {
    let mut conn = raw_connect(addr).await;
    conn.get_mut().write_all(raw).await.unwrap();
    read_response(&mut conn, false).await
}

/// An echo upstream that also records each request's target.
async fn recording_upstream() -> (Upstream, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let up = upstream(move |req| {
        log.lock().unwrap().push(req.uri().to_string());
        echo(req)
    })
    .await;
    (up, seen)
}

/// CL.TE and TE.CL: a front end that trusts one framing and a back end that
/// trusts the other would disagree where the next request starts. hyper
/// follows RFC 9112 §6.1: it drops `Content-Length`, reads the body as
/// chunked and closes the connection after answering, so the bytes after
/// the chunked body are never read as a second request. The upstream must
/// see one request with one framing, and nothing smuggled.
#[tokio::test]
async fn both_content_length_and_transfer_encoding_cannot_smuggle_a_request() {
    let (up, targets) = recording_upstream().await;
    let gw = start_proxy(&up.url(), "").await;
    for raw in [
        &b"POST /rest/api/2/issue HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\
Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /secure/admin HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        &b"POST /rest/api/2/issue HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\
Content-Length: 4\r\n\r\n0\r\n\r\nGET /secure/admin HTTP/1.1\r\nHost: h\r\n\r\n"[..],
    ] {
        let mut conn = raw_connect(gw.proxy_addr).await;
        conn.get_mut().write_all(raw).await.unwrap();
        let resp = read_response(&mut conn, false).await;
        // Rejecting (400) would be as good; serving must be unambiguous.
        assert!(resp.status == 200 || resp.status == 400, "{resp:?}");
        if resp.status == 200 {
            let seen = Seen::parse(&resp.body);
            assert_eq!(seen.str("uri"), "/rest/api/2/issue");
            assert_eq!(
                seen.header("content-length"),
                None,
                "two framings forwarded"
            );
            assert_eq!(seen.str("body"), "", "the chunked body is empty");
            assert_eq!(resp.header("connection"), Some("close"), "{resp:?}");
        }
        // Nothing more comes back: the rest was not served as a request.
        let rest = read_until_closed(&mut conn).await;
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    }
    let targets = targets.lock().unwrap().clone();
    assert!(
        targets.iter().all(|t| t == "/rest/api/2/issue"),
        "a smuggled request reached the upstream: {targets:?}"
    );
}

#[tokio::test]
async fn differing_duplicate_content_lengths_are_rejected() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "").await;
    for raw in [
        &b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc"[..],
        &b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 30\r\n\r\nabc"[..],
        &b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc"[..],
        &b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x3\r\n\r\nabc"[..],
    ] {
        let resp = send_raw(gw.proxy_addr, raw).await;
        assert_eq!(resp.status, 400, "{}", String::from_utf8_lossy(raw));
    }
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn transfer_encodings_other_than_a_final_chunked_are_rejected() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "").await;
    for raw in [
        // TE.TE obfuscations: one side may ignore the odd value.
        &b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"[..],
        &b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"[..],
        &b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabc"[..],
        &b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"[..],
    ] {
        let resp = send_raw(gw.proxy_addr, raw).await;
        assert_eq!(resp.status, 400, "{}", String::from_utf8_lossy(raw));
    }
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn obs_fold_header_continuation_is_rejected() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "").await;
    for raw in [
        &b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\n\tJSESSIONID=stolen\r\n\r\n"[..],
    ] {
        let resp = send_raw(gw.proxy_addr, raw).await;
        assert_eq!(resp.status, 400, "{}", String::from_utf8_lossy(raw));
    }
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn a_bare_lf_or_cr_inside_the_head_is_rejected() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "").await;
    let resp = send_raw(
        gw.proxy_addr,
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\rX-AUSERNAME: admin\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 400, "{resp:?}");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn an_oversized_cookie_header_gets_431_and_the_proxy_keeps_serving() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "max_header_bytes = 16384").await;
    let cookie = format!("JSESSIONID={}", "A".repeat(20_000));
    let raw = format!("GET /browse/X-1 HTTP/1.1\r\nHost: h\r\nCookie: {cookie}\r\n\r\n");
    let resp = send_raw(gw.proxy_addr, raw.as_bytes()).await;
    assert_eq!(resp.status, 431, "{resp:?}");
    // Many cookie headers that add up past the limit, each one small.
    let many: String = (0..2_000)
        .map(|i| format!("Cookie: c{i}=0123456789\r\n"))
        .collect();
    let raw = format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n");
    let resp = send_raw(gw.proxy_addr, raw.as_bytes()).await;
    assert_eq!(resp.status, 431, "{resp:?}");
    assert_eq!(up.hits(), 0);
    let ok = send_raw(gw.proxy_addr, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn non_utf8_and_control_bytes_in_headers_do_not_crash_the_proxy() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "").await;
    // obs-text (0x80–0xFF) is legal in a field value; it must pass or be
    // refused, never panic a task or poison the proxy.
    let mut raw = b"GET /browse/X-1 HTTP/1.1\r\nHost: h\r\nCookie: JSESSIONID=\xff\xfe\x80; seraph.rememberme.cookie=\xc3\x28\r\nAuthorization: Basic \xff\xff\r\nX-AUSERNAME: \xe2\x82\r\n\r\n".to_vec();
    let resp = send_raw(gw.proxy_addr, &raw).await;
    assert!(resp.status == 200 || resp.status == 400, "{resp:?}");
    if resp.status == 200 {
        let seen = Seen::parse(&resp.body);
        assert!(seen.all("x-ausername").is_empty(), "spoofed header passed");
    }
    // A NUL or other control byte in a value is not a legal field value.
    raw = b"GET / HTTP/1.1\r\nHost: h\r\nCookie: JSESSIONID=a\x00b\r\n\r\n".to_vec();
    let resp = send_raw(gw.proxy_addr, &raw).await;
    assert_eq!(resp.status, 400, "{resp:?}");
    let ok = send_raw(gw.proxy_addr, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_eq!(ok.status, 200, "the proxy still serves");
}

/// Targets that an upstream (Tomcat) would normalise into `/iumgate/…`, or
/// that leave `/iumgate/` after normalisation: none may be forwarded.
#[tokio::test]
async fn path_tricks_around_the_own_prefix_are_never_forwarded() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "").await;
    let tricks = [
        "/iumgate/../secure/admin",
        "/iumgate/%2e%2e/secure/admin",
        "/iumgate/%2E%2E/%2E%2E/etc/passwd",
        "/iumgate/.%2e/x",
        "/iumgate%2f..%2fsecure/admin",
        "/iumgate%2F%2E%2E%2Fsecure%2Fadmin",
        "/iumgate%5c..%5csecure/admin",
        "/iumgate;jsessionid=x/../secure/admin",
        "/%69umgate/wait",
        "/%49UMGATE/wait",
        "//iumgate/wait",
        "/./iumgate/wait",
        "/x/../iumgate/wait",
        "/x/%2e%2e/iumgate/wait",
        "/iumgate%00/x",
    ];
    for t in tricks {
        let raw = format!("GET {t} HTTP/1.1\r\nHost: h\r\n\r\n");
        let resp = send_raw(gw.proxy_addr, raw.as_bytes()).await;
        assert!(
            resp.status == 404 || resp.status == 400,
            "{t}: {}",
            resp.status
        );
        assert_eq!(up.hits(), 0, "{t} reached the upstream");
    }
    // The app's own look-alikes still pass.
    for ok in [
        "/iumgateway",
        "/browse/IUMGATE-1",
        "/rest/api/2/search?jql=iumgate",
    ] {
        let raw = format!("GET {ok} HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(
            send_raw(gw.proxy_addr, raw.as_bytes()).await.status,
            200,
            "{ok}"
        );
    }
    assert_eq!(up.hits(), 3);
}
