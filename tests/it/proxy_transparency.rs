//! The proxy must not break the app behind it: methods, body framings,
//! HTTP/1.0, `Expect`, upgrades, and the header fix-ups (hop-by-hop,
//! X-Forwarded-*, identity headers, Host). Real sockets, ephemeral ports.

use crate::proxy_support::*;
use futures_util::{SinkExt, StreamExt};
use http::{Response, StatusCode};
use http_body_util::StreamBody;
use hyper::body::Frame;
use iumgate::proxy::body::{boxed, empty};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn get_post_and_head_pass_through() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "").await;
    let c = client();

    let resp = c
        .get(format!("http://{}/browse/ABC-1?x=1", gw.proxy_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = Seen::parse(&resp.bytes().await.unwrap());
    assert_eq!(seen.str("method"), "GET");
    assert_eq!(seen.str("uri"), "/browse/ABC-1?x=1");

    let resp = c
        .post(format!("http://{}/rest/api/2/issue", gw.proxy_addr))
        .body("{\"fields\":{}}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = Seen::parse(&resp.bytes().await.unwrap());
    assert_eq!(seen.str("method"), "POST");
    assert_eq!(seen.str("body"), "{\"fields\":{}}");
    assert_eq!(seen.header("content-length").as_deref(), Some("13"));

    // HEAD: the upstream's length comes back, no body bytes follow.
    let mut conn = raw_connect(gw.proxy_addr).await;
    conn.get_mut()
        .write_all(b"HEAD /x HTTP/1.1\r\nHost: jira.example.com\r\n\r\nGET /after-head HTTP/1.1\r\nHost: jira.example.com\r\n\r\n")
        .await
        .unwrap();
    let head = read_response(&mut conn, true).await;
    assert_eq!(head.status, 200);
    assert!(head.has("content-length"), "{head:?}");
    // Had the proxy sent a body after the HEAD answer, this would not parse
    // as the next response on the same connection.
    let next = read_response(&mut conn, false).await;
    assert_eq!(next.status, 200);
    assert_eq!(Seen::parse(&next.body).str("uri"), "/after-head");
    assert_eq!(up.hits(), 4);
}

#[tokio::test]
async fn chunked_and_content_length_bodies_pass_intact() {
    // The upstream streams its answer without a length: two chunks.
    let up = upstream(|req| async move {
        if req.uri().path() == "/stream" {
            let chunks = futures_util::stream::iter(vec![
                Ok::<_, std::convert::Infallible>(Frame::data(bytes::Bytes::from_static(
                    b"first,",
                ))),
                Ok(Frame::data(bytes::Bytes::from_static(b"second"))),
            ]);
            Response::new(boxed(StreamBody::new(chunks)))
        } else {
            echo(req).await
        }
    })
    .await;
    let gw = start_proxy(&up.url(), "").await;

    let mut conn = raw_connect(gw.proxy_addr).await;
    conn.get_mut()
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
    let resp = read_response(&mut conn, false).await;
    assert_eq!(resp.status, 200);
    let seen = Seen::parse(&resp.body);
    assert_eq!(seen.str("body"), "hello world");
    assert_eq!(seen.header("transfer-encoding").as_deref(), Some("chunked"));

    conn.get_mut()
        .write_all(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello there")
        .await
        .unwrap();
    let resp = read_response(&mut conn, false).await;
    let seen = Seen::parse(&resp.body);
    assert_eq!(seen.str("body"), "hello there");
    assert_eq!(seen.header("content-length").as_deref(), Some("11"));
    assert_eq!(seen.header("transfer-encoding"), None);

    conn.get_mut()
        .write_all(b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let resp = read_response(&mut conn, false).await;
    assert!(
        resp.chunked,
        "a body without length goes chunked to an HTTP/1.1 client: {resp:?}"
    );
    assert_eq!(resp.body, b"first,second");
}

#[tokio::test]
async fn no_body_is_sent_for_204_and_304() {
    let up = upstream(|req| async move {
        match req.uri().path() {
            "/204" => {
                let mut r = Response::new(empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
            "/304" => {
                let mut r = Response::new(empty());
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                r.headers_mut()
                    .insert(http::header::ETAG, http::HeaderValue::from_static("\"v1\""));
                r
            }
            _ => respond(StatusCode::OK, "next"),
        }
    })
    .await;
    let gw = start_proxy(&up.url(), "").await;
    let mut conn = raw_connect(gw.proxy_addr).await;
    for (path, status) in [("/204", 204), ("/304", 304)] {
        conn.get_mut()
            .write_all(
                format!(
                    "GET {path} HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let resp = read_response(&mut conn, false).await;
        assert_eq!(resp.status, status);
        assert!(!resp.chunked && !resp.has("transfer-encoding"), "{resp:?}");
        // The next response on the same connection starts right after the head.
        let next = read_response(&mut conn, false).await;
        assert_eq!((next.status, next.body.as_slice()), (200, &b"next"[..]));
    }
}

#[tokio::test]
async fn http10_without_host_is_served_and_closed() {
    // A body without length: an HTTP/1.0 client cannot take chunks, so the
    // proxy must end the body by closing.
    let up = upstream(|req| async move {
        let host = req
            .headers()
            .get(http::header::HOST)
            .map(|h| h.to_str().unwrap().to_string())
            .unwrap_or_default();
        let chunks = futures_util::stream::iter(vec![
            Ok::<_, std::convert::Infallible>(Frame::data(bytes::Bytes::from(format!(
                "host={host};"
            )))),
            Ok(Frame::data(bytes::Bytes::from_static(b"end"))),
        ]);
        Response::new(boxed(StreamBody::new(chunks)))
    })
    .await;
    let gw = start_proxy(&up.url(), "").await;
    let mut conn = raw_connect(gw.proxy_addr).await;
    conn.get_mut()
        .write_all(b"GET /status HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let resp = read_response(&mut conn, false).await;
    assert_eq!(resp.status, 200);
    assert!(!resp.chunked, "HTTP/1.0 client got chunks: {resp:?}");
    // Without a Host from the client the upstream gets its own authority.
    assert_eq!(
        String::from_utf8_lossy(&resp.body),
        format!("host={};end", up.addr)
    );
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "").await;
    let mut conn = raw_connect(gw.proxy_addr).await;
    conn.get_mut()
        .write_all(
            b"PUT /rest/api/content/1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    // The client holds the body back until it is asked for it.
    let interim = read_response(&mut conn, false).await;
    assert_eq!(interim.status, 100);
    conn.get_mut().write_all(b"hello").await.unwrap();
    let resp = read_response(&mut conn, false).await;
    assert_eq!(resp.status, 200);
    let seen = Seen::parse(&resp.body);
    assert_eq!(seen.str("body"), "hello");
    assert_eq!(
        seen.header("expect"),
        None,
        "Expect is hop-level: hyper answered it"
    );
}

#[tokio::test]
async fn websocket_echo_passes_through_the_proxy() {
    // The upstream: a tungstenite echo server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let gw = start_proxy(&format!("http://{ws_addr}"), "").await;
    let (mut ws, resp) = within(
        "the websocket handshake",
        tokio_tungstenite::connect_async(format!("ws://{}/synchrony/v1/bayeux", gw.proxy_addr)),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for text in ["hello", "second message"] {
        ws.send(Message::text(text)).await.unwrap();
        let back = within("the echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), text);
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let back = within("the binary echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(back.into_data().as_ref(), &[0u8, 1, 2, 255]);
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_in_both_directions() {
    let up = upstream(|req| async move {
        let mut resp = echo(req).await;
        let h = resp.headers_mut();
        h.insert("connection", "x-bar".parse().unwrap());
        h.insert("x-bar", "named by connection".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("proxy-authenticate", "Basic".parse().unwrap());
        h.insert("x-end-to-end", "kept".parse().unwrap());
        resp
    })
    .await;
    let gw = start_proxy(&up.url(), "").await;
    let mut conn = raw_connect(gw.proxy_addr).await;
    conn.get_mut()
        .write_all(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, x-foo\r\nX-Foo: secret\r\n\
              Keep-Alive: timeout=9\r\nTE: trailers\r\nProxy-Authorization: Basic eDp5\r\n\
              Upgrade: h2c\r\nX-End-To-End: kept\r\n\r\n",
        )
        .await
        .unwrap();
    let resp = read_response(&mut conn, false).await;
    let seen = Seen::parse(&resp.body);
    for name in [
        "connection",
        "x-foo",
        "keep-alive",
        "te",
        "proxy-authorization",
        "upgrade",
    ] {
        assert_eq!(
            seen.all(name),
            Vec::<String>::new(),
            "{name} reached the upstream"
        );
    }
    assert_eq!(seen.header("x-end-to-end").as_deref(), Some("kept"));
    for name in ["x-bar", "keep-alive", "proxy-authenticate"] {
        assert!(!resp.has(name), "{name} reached the client: {resp:?}");
    }
    assert_eq!(resp.header("x-end-to-end"), Some("kept"));
    // `Connection: x-bar` itself must not be relayed (hyper may add its own
    // keep-alive/close token, never the upstream's list).
    assert!(
        resp.header("connection")
            .is_none_or(|v| !v.contains("x-bar")),
        "{resp:?}"
    );
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_replaced() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "").await;
    let resp = client()
        .get(format!("http://{}/", gw.proxy_addr))
        .header("host", "jira.example.com")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example.com")
        .header("forwarded", "for=6.6.6.6;proto=https")
        .send()
        .await
        .unwrap();
    let seen = Seen::parse(&resp.bytes().await.unwrap());
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("jira.example.com")
    );
    assert_eq!(
        seen.header("forwarded"),
        None,
        "RFC 7239 Forwarded is as spoofable"
    );
}

#[tokio::test]
async fn forwarded_headers_from_a_trusted_peer_are_kept_and_chained() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "trusted_proxies = [\"127.0.0.1/32\"]").await;
    let resp = client()
        .get(format!("http://{}/", gw.proxy_addr))
        .header("host", "10.0.0.1:8080")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "jira.example.com")
        .send()
        .await
        .unwrap();
    let seen = Seen::parse(&resp.bytes().await.unwrap());
    assert_eq!(
        seen.header("x-forwarded-for").as_deref(),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("jira.example.com")
    );

    // A trusted peer that sends none gets them filled in.
    let resp = client()
        .get(format!("http://{}/", gw.proxy_addr))
        .header("host", "jira.example.com")
        .send()
        .await
        .unwrap();
    let seen = Seen::parse(&resp.bytes().await.unwrap());
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("jira.example.com")
    );
}

#[tokio::test]
async fn spoofed_identity_headers_are_stripped_but_the_upstream_username_reaches_the_client() {
    let up = upstream(|req| async move {
        let mut resp = echo(req).await;
        resp.headers_mut()
            .insert("x-ausername", "alice".parse().unwrap());
        resp.headers_mut()
            .insert("x-seraph-loginreason", "OK".parse().unwrap());
        resp
    })
    .await;
    let gw = start_proxy(&up.url(), "").await;
    let resp = client()
        .get(format!("http://{}/browse/ABC-1", gw.proxy_addr))
        .header("X-AUSERNAME", "admin")
        .header("X-AUSERID", "1")
        .header("X-ASESSIONID", "abc")
        .header("X-Seraph-LoginReason", "OK")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-ausername"], "alice");
    assert_eq!(resp.headers()["x-seraph-loginreason"], "OK");
    let seen = Seen::parse(&resp.bytes().await.unwrap());
    for name in [
        "x-ausername",
        "x-auserid",
        "x-asessionid",
        "x-seraph-loginreason",
    ] {
        assert_eq!(
            seen.all(name),
            Vec::<String>::new(),
            "spoofed {name} reached the upstream"
        );
    }
}

#[tokio::test]
async fn host_is_preserved_by_default() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "").await;
    let resp = client()
        .get(format!("http://{}/", gw.proxy_addr))
        .header("host", "jira.example.com")
        .send()
        .await
        .unwrap();
    let seen = Seen::parse(&resp.bytes().await.unwrap());
    assert_eq!(seen.header("host").as_deref(), Some("jira.example.com"));
}

#[tokio::test]
async fn host_is_replaced_with_preserve_host_false() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "preserve_host = false").await;
    let resp = client()
        .get(format!("http://{}/", gw.proxy_addr))
        .header("host", "jira.example.com")
        .send()
        .await
        .unwrap();
    let seen = Seen::parse(&resp.bytes().await.unwrap());
    assert_eq!(seen.header("host"), Some(up.addr.to_string()));
    // The public name still reaches the app for its links.
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("jira.example.com")
    );
}

#[tokio::test]
async fn own_prefix_is_never_forwarded() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "").await;
    for path in ["/iumgate/status", "/iumgate", "/iumgate/"] {
        let resp = client()
            .get(format!("http://{}{path}", gw.proxy_addr))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    // A raw target, not normalised by a client library.
    let mut conn = raw_connect(gw.proxy_addr).await;
    conn.get_mut()
        .write_all(b"GET /iumgate/../x?y=1 HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut conn, false).await.status, 404);
    assert_eq!(up.hits(), 0, "the upstream saw a reserved path");
    // Paths that merely start with the word are the app's.
    let resp = client()
        .get(format!("http://{}/iumgateway", gw.proxy_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn header_larger_than_max_header_bytes_gets_431() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "max_header_bytes = 8192").await;
    let resp = client()
        .get(format!("http://{}/", gw.proxy_addr))
        .header("x-big", "a".repeat(10_000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 431);
    assert_eq!(up.hits(), 0);
    // A normal request still passes.
    let resp = client()
        .get(format!("http://{}/", gw.proxy_addr))
        .header("x-small", "a".repeat(1_000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
