//! The head writers: a request head for the upstream, an answer head for
//! the client (relayed as it came, edited, or iumgate's own).

use super::codec::{Framing, Head, Raw, Spans};
use crate::proxy::body::Body;
use crate::proxy::ConnInfo;
use http::{header, HeaderMap, StatusCode};

/// A request the hooks took as it came, written for the upstream without a
/// header map: what [`crate::proxy::edit_request`] and [`write_request_head`] make
/// of it through one (for a peer that is not a trusted proxy).
pub(super) fn write_forwarded_head(
    out: &mut Vec<u8>,
    settings: &crate::proxy::Settings,
    conn: &ConnInfo,
    head: &Head,
    spans: &Spans,
) {
    use crate::proxy::headers::{dropped_when_forwarded, forwarded_fields};
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    let target = head.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut client_host: Option<&[u8]> = None;
    for (name, span) in spans {
        let value = head.head.get(span.clone()).unwrap_or_default();
        if name == header::HOST {
            client_host.get_or_insert(value);
            continue;
        }
        if dropped_when_forwarded(name, settings.upstream_only, false) {
            continue;
        }
        write_field(out, name.as_str().as_bytes(), value);
    }
    let host = match client_host {
        Some(h) if settings.preserve_host => h,
        _ => settings.upstream_host.as_bytes(),
    };
    write_field(out, b"host", host);
    let proto: &[u8] = if conn.tls { b"https" } else { b"http" };
    for (name, value) in forwarded_fields(conn.peer_value.as_bytes(), proto, client_host) {
        if let Some(v) = value {
            write_field(out, name.as_str().as_bytes(), v);
        }
    }
    out.extend_from_slice(b"\r\n");
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

pub(super) fn write_request_head(out: &mut Vec<u8>, req: &http::Request<Body>) {
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_fields(out, req.headers());
    out.extend_from_slice(b"\r\n");
}

/// The status line, and `Connection: close` when the client connection ends
/// after this answer.
fn write_status(out: &mut Vec<u8>, status: StatusCode, close: bool) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
}

pub(super) fn write_response_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    close: bool,
) {
    write_status(out, status, close);
    write_fields(out, headers);
    out.extend_from_slice(b"\r\n");
}

/// The upstream's answer head as it came, less its hop-by-hop fields, with
/// the framing the body is relayed by: what [`Proxy::finish`] and
/// `Lane::relay` make of it through a header map, without the map. Only for
/// a [`Raw::plain`] head (`Connection` names no other field).
///
/// [`Proxy::finish`]: crate::proxy::Proxy::finish
pub(super) fn write_relayed_head(out: &mut Vec<u8>, raw: &Raw, spans: &Spans, close: bool) {
    write_status(out, raw.status, close);
    let framed = matches!(raw.framing, Framing::Length(_) | Framing::Chunked);
    for (name, span) in spans {
        if crate::proxy::headers::is_hop_by_hop(name) || (framed && name == header::CONTENT_LENGTH)
        {
            continue;
        }
        let value = raw.head.get(span.clone()).unwrap_or_default();
        write_field(out, name.as_str().as_bytes(), value);
    }
    write_framing(out, raw.framing);
    out.extend_from_slice(b"\r\n");
}

/// The head of an upstream's answer the hooks saw as a `Response` (and may
/// have edited), with the framing its body is relayed by.
pub(super) fn write_edited_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &mut HeaderMap,
    framing: Framing,
    close: bool,
) {
    if matches!(framing, Framing::Length(_) | Framing::Chunked) {
        headers.remove(header::CONTENT_LENGTH);
    }
    headers.remove(header::TRANSFER_ENCODING);
    write_status(out, status, close);
    write_fields(out, headers);
    write_framing(out, framing);
    out.extend_from_slice(b"\r\n");
}

/// The field that says how a relayed body ends, when one does.
fn write_framing(out: &mut Vec<u8>, framing: Framing) {
    match framing {
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Length(n) => {
            use std::io::Write as _;
            // Writing to a Vec cannot fail.
            let _ = write!(out, "content-length: {n}\r\n");
        }
        Framing::None | Framing::Close => {}
    }
}

fn write_fields(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        write_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::{parse_request, parse_response, Answer, Parsed};
    use super::super::fuzzing;
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn a_request_written_raw_has_the_head_the_header_map_path_writes() {
        let cases: [&str; 6] = [
            "GET /browse/A-1?x=1 HTTP/1.1\r\nHost: jira.example\r\nAccept: text/html\r\nCookie: JSESSIONID=a\r\nCookie: b=2\r\n\r\n",
            // Everything a client may not pass on, and two Hosts.
            "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Authorization: x\r\nX-AUSERNAME: admin\r\nX-Seraph-LoginReason: OK\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\nX-Client-IP: 6.6.6.6\r\nCF-Connecting-IP: 6.6.6.6\r\nContent-Length: 0\r\n\r\n",
            // No Host at all; an empty one.
            "HEAD /x HTTP/1.1\r\nX-Forwarded-Host: evil\r\n\r\n",
            "DELETE /x HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
            "OPTIONS /x HTTP/1.1\r\nhOsT: MiXeD.example\r\nX-Empty:\r\n\r\n",
            "GET /%2e%2e/x HTTP/1.1\r\nHost: j\r\nUser-Agent: a\tb\r\n\r\n",
        ];
        for raw in cases {
            let mut b = BytesMut::from(raw.as_bytes());
            let mut spans = Spans::new();
            let Parsed::Simple(head) = parse_request(&mut b, &mut spans) else {
                panic!("not simple: {raw:?}");
            };
            for (preserve_host, tls) in [(false, false), (true, false), (false, true), (true, true)]
            {
                let (written, mapped) = fuzzing::request_heads(&head, &spans, preserve_host, tls);
                assert_eq!(
                    written, mapped,
                    "{raw:?} preserve_host {preserve_host} tls {tls}"
                );
                let text = String::from_utf8(written.concat()).unwrap();
                for gone in [
                    "6.6.6.6",
                    "evil",
                    "admin",
                    "keep-alive",
                    "proxy-",
                    "forwarded: ",
                    "te: ",
                ] {
                    assert!(!text.contains(gone), "{gone} went upstream: {text:?}");
                }
                assert!(text.contains("x-forwarded-for: 192.0.2.7"), "{text:?}");
            }
        }
    }

    #[test]
    fn an_answer_relayed_as_it_came_has_the_head_the_header_map_path_writes() {
        let cases: [&[u8]; 7] = [
            b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 7\r\nConnection: keep-alive\r\nX-AUSERNAME: alice\r\nKeep-Alive: timeout=5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nProxy-Authenticate: Basic\r\nTE: trailers\r\nTrailer: x\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\nETag: \"x\"\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-Empty:\r\nConnection: close\r\n\r\n",
            b"HTTP/1.1 599 Whatever\r\nUpgrade: h2c\r\nContent-Length: 1\r\n\r\n",
        ];
        for raw in cases {
            for is_head in [false, true] {
                let mut b = BytesMut::from(raw);
                let mut spans = Spans::new();
                let Ok(Answer::Final(answer)) = parse_response(&mut b, is_head, &mut spans) else {
                    panic!("no answer in {:?}", String::from_utf8_lossy(raw));
                };
                assert!(answer.plain);
                for close in [false, true] {
                    let (relayed, mapped) = fuzzing::both_heads(&answer, &mut spans.clone(), close);
                    assert_eq!(relayed, mapped, "{:?}", String::from_utf8_lossy(raw));
                    assert!(relayed.len() > 2);
                }
            }
        }
        // A `Connection` naming another field: the header-map path's.
        let mut b = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nConnection: x-secret\r\nX-Secret: 1\r\nContent-Length: 0\r\n\r\n"
                [..],
        );
        let Ok(Answer::Final(answer)) = parse_response(&mut b, false, &mut Spans::new()) else {
            panic!("no answer");
        };
        assert!(!answer.plain);
    }
}
