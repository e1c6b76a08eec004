//! The HTTP/1.1 codec of the fast lane: request and answer heads parsed in
//! place (`httparse`), their fields as names and value spans, and how an
//! answer's body is framed.

use crate::proxy::body::{self, Body};
use crate::proxy::Handover;
use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri};

/// Header names with the byte range of each value in the head being parsed.
pub(super) type Spans = Vec<(HeaderName, std::ops::Range<usize>)>;

/// Headers per message, at most (hyper's limit too: more goes to hyper, which
/// refuses it).
const MAX_HEADERS: usize = 100;

/// A request head the fast lane takes: its fields' names and where their
/// values lie are in the lane's `qspans`; no header map is built unless the
/// hooks want the whole request.
pub(super) struct Head {
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) head: Bytes,
    /// `Connection: close`.
    pub(super) close: bool,
}

impl Head {
    /// The request as the header-map path takes it.
    pub(super) fn into_parts(self, spans: &Spans) -> http::request::Parts {
        let mut headers = HeaderMap::with_capacity(spans.len());
        for (name, value) in spans {
            // Checked by `parse_request` (a value `HeaderValue` refuses is
            // not the fast lane's).
            if let Ok(value) = HeaderValue::from_maybe_shared(self.head.slice(value.clone())) {
                headers.append(name.clone(), value);
            }
        }
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = self.method;
        parts.uri = self.uri;
        parts.headers = headers;
        parts
    }
}

/// What `HeaderValue` accepts in a value: no control characters but tab.
fn valid_value(v: &[u8]) -> bool {
    v.iter().all(|&b| (b >= 32 && b != 127) || b == b'\t')
}

#[allow(clippy::large_enum_variant)]
pub(super) enum Parsed {
    Simple(Head),
    /// More bytes needed.
    Partial,
    /// Not a request for the fast lane (hyper decides what it is), and why.
    NotOurs(Handover),
}

/// Parses the head at the start of `buf`; a simple one is taken out of it.
pub(super) fn parse_request(buf: &mut BytesMut, spans: &mut Spans) -> Parsed {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::NotOurs(Handover::Malformed),
    };
    let base = buf.as_ptr() as usize;
    // Where a slice httparse returned lies in `buf` (an empty one may point
    // anywhere: it is the empty range).
    let span = |s: &[u8]| {
        if s.is_empty() {
            return 0..0;
        }
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Parsed::NotOurs(Handover::Protocol);
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::NotOurs(Handover::Malformed);
    };
    if method == Method::CONNECT || !path.starts_with('/') {
        return Parsed::NotOurs(Handover::Protocol);
    }
    if crate::proxy::target::classify(path.split('?').next().unwrap_or(path))
        != crate::proxy::target::Target::Upstream
    {
        return Parsed::NotOurs(Handover::OwnPage);
    }
    let path = span(path.as_bytes());
    let mut close = false;
    spans.clear();
    for h in req.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else {
            return Parsed::NotOurs(Handover::Malformed);
        };
        if name == header::UPGRADE {
            return Parsed::NotOurs(Handover::Upgrade);
        }
        if name == header::TRANSFER_ENCODING
            || name == header::EXPECT
            // Exactly `0` (a body-less request); any other length, and
            // anything that is not 1*DIGIT (`+0`, `0x0`), is hyper's to
            // take or refuse.
            || (name == header::CONTENT_LENGTH && h.value != b"0")
        {
            return Parsed::NotOurs(Handover::Body);
        }
        if name == header::CONNECTION {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Parsed::NotOurs(Handover::Upgrade);
                } else if !token.eq_ignore_ascii_case(b"keep-alive") && !token.is_empty() {
                    // Names other headers as hop-by-hop: the hyper lane's
                    // clean-up reads those, so it is the hyper lane's request.
                    return Parsed::NotOurs(Handover::Connection);
                }
            }
        }
        if !valid_value(h.value) {
            return Parsed::NotOurs(Handover::Malformed);
        }
        spans.push((name, span(h.value)));
    }
    let head = buf.split_to(len).freeze();
    let Ok(uri) = Uri::from_maybe_shared(head.slice(path)) else {
        // Not ours after all: hyper must see the head too (rare; a copy).
        let mut whole = BytesMut::from(&head[..]);
        whole.unsplit(buf.split());
        *buf = whole;
        return Parsed::NotOurs(Handover::Malformed);
    };
    Parsed::Simple(Head {
        method,
        uri,
        head,
        close,
    })
}

/// How the upstream's answer body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body (HEAD, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// Marks an answer whose body is still in the upstream connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct UpstreamBody;

/// A final answer's head as the upstream sent it. Its fields' names and
/// where their values lie are in the lane's `spans`; no header map is built
/// unless the hooks want the whole answer.
pub(super) struct Raw {
    pub(super) head: Bytes,
    pub(super) status: StatusCode,
    pub(super) framing: Framing,
    /// The upstream connection can be used again after this answer.
    pub(super) reusable: bool,
    /// `Connection` names no other field (only `close`/`keep-alive`): the
    /// hop-by-hop fields are the fixed ones, so the head can be relayed as it
    /// came, less those.
    pub(super) plain: bool,
}

impl Raw {
    /// The answer as a `Response` (for the hooks' `on_response`).
    pub(super) fn into_response(self, spans: &mut Spans) -> Result<Response<Body>, &'static str> {
        let mut headers = HeaderMap::with_capacity(spans.len());
        for (name, span) in spans.drain(..) {
            let value = HeaderValue::from_maybe_shared(self.head.slice(span))
                .map_err(|_| "invalid header value")?;
            headers.append(name, value);
        }
        let mut resp = Response::new(body::empty());
        *resp.status_mut() = self.status;
        *resp.headers_mut() = headers;
        resp.extensions_mut().insert(UpstreamBody);
        Ok(resp)
    }
}

/// An answer head parsed from the upstream's bytes.
pub(super) enum Answer {
    Final(Raw),
    /// An interim (1xx) answer, skipped.
    Interim,
    /// More bytes needed.
    Partial,
}

/// Parses an answer head at the start of `ubuf` (taken out of it); its
/// fields go to `spans`.
pub(super) fn parse_response(
    ubuf: &mut BytesMut,
    is_head: bool,
    spans: &mut Spans,
) -> Result<Answer, &'static str> {
    if ubuf.is_empty() {
        return Ok(Answer::Partial);
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut slots);
    let len = match r.parse(ubuf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Answer::Partial),
        Err(_) => return Err("malformed answer head"),
    };
    let code = r.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| "invalid status")?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err("an upgrade nobody asked for");
    }
    if status.is_informational() {
        ubuf.advance(len);
        return Ok(Answer::Interim);
    }
    let base = ubuf.as_ptr() as usize;
    let http11 = r.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut keep_alive = http11;
    let mut plain = true;
    spans.clear();
    for h in r.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| "invalid header name")?;
        if name == header::CONTENT_LENGTH {
            let n = content_length(h.value).ok_or("invalid Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length");
            }
            length = Some(n);
        } else if name == header::TRANSFER_ENCODING {
            // Only the last coding decides whether the body is chunked.
            let last = h.value.rsplit(|b| *b == b',').next().unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == header::CONNECTION {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive |= !http11;
                } else if !token.is_empty() {
                    plain = false;
                }
            }
        }
        let start = if h.value.is_empty() {
            0
        } else {
            h.value.as_ptr() as usize - base
        };
        spans.push((name, start..start + h.value.len()));
    }
    let framing =
        if is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::None
        } else {
            match (chunked, length) {
                (Some(true), _) => Framing::Chunked,
                (Some(false), _) | (None, None) => Framing::Close,
                (None, Some(n)) => Framing::Length(n),
            }
        };
    // Both framings at once is a smuggling attempt's shape: answer it, but
    // never read another answer from that connection.
    let reusable =
        keep_alive && framing != Framing::Close && !(chunked.is_some() && length.is_some());
    let head = ubuf.split_to(len).freeze();
    Ok(Answer::Final(Raw {
        head,
        status,
        framing,
        reusable,
        plain,
    }))
}

/// A `Content-Length` value as hyper reads one: 1*DIGIT (no sign, no
/// white space inside, no overflow), or a comma-separated list of such
/// values that are all equal (RFC 9110 §8.6). `u64::from_str` would take
/// `+5`, which hyper (the other lane, and the client side) refuses.
fn content_length(value: &[u8]) -> Option<u64> {
    let mut length = None;
    for part in value.split(|b| *b == b',') {
        let digits = part.trim_ascii();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = digits.iter().try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;
        if length.is_some_and(|l| l != n) {
            return None;
        }
        length = Some(n);
    }
    length
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Parsed {
        let mut b = BytesMut::from(raw.as_bytes());
        parse_request(&mut b, &mut Spans::new())
    }

    #[test]
    fn only_plainly_simple_requests_are_the_fast_lanes() {
        let simple = [
            "GET /browse/A-1 HTTP/1.1\r\nHost: j\r\n\r\n",
            "GET /a?b=c HTTP/1.1\r\nHost: j\r\nConnection: keep-alive\r\n\r\n",
            "DELETE /a HTTP/1.1\r\nHost: j\r\nContent-Length: 0\r\n\r\n",
        ];
        for raw in simple {
            assert!(matches!(parse(raw), Parsed::Simple(_)), "{raw:?}");
        }
        use Handover::*;
        let not_ours = [
            ("GET /a HTTP/1.0\r\nHost: j\r\n\r\n", Protocol),
            (
                "POST /a HTTP/1.1\r\nHost: j\r\nContent-Length: 3\r\n\r\nabc",
                Body,
            ),
            (
                "POST /a HTTP/1.1\r\nHost: j\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                Body,
            ),
            (
                "GET /ws HTTP/1.1\r\nHost: j\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
                Upgrade,
            ),
            (
                "PUT /a HTTP/1.1\r\nHost: j\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
                Body,
            ),
            (
                "GET /a HTTP/1.1\r\nHost: j\r\nConnection: keep-alive, X-Secret\r\n\r\n",
                Connection,
            ),
            ("GET http://j/a HTTP/1.1\r\nHost: j\r\n\r\n", Protocol),
            ("CONNECT j:443 HTTP/1.1\r\nHost: j\r\n\r\n", Protocol),
            ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Malformed),
            ("GET /iumgate/wait HTTP/1.1\r\nHost: j\r\n\r\n", OwnPage),
            ("GET /%69umgate/wait HTTP/1.1\r\nHost: j\r\n\r\n", OwnPage),
            ("GET /a HTTP/1.1\r\nHost : j\r\n\r\n", Malformed),
            // Not 1*DIGIT: hyper refuses it, the fast lane does not take it.
            (
                "GET /a HTTP/1.1\r\nHost: j\r\nContent-Length: +0\r\n\r\n",
                Body,
            ),
            (
                "GET /a HTTP/1.1\r\nHost: j\r\nContent-Length: -0\r\n\r\n",
                Body,
            ),
        ];
        for (raw, why) in not_ours {
            assert!(
                matches!(parse(raw), Parsed::NotOurs(w) if w == why),
                "{raw:?}: not {why:?}"
            );
        }
        assert!(matches!(
            parse("GET /a HTTP/1.1\r\nHost: j\r\n"),
            Parsed::Partial
        ));
    }

    #[test]
    fn a_simple_head_is_taken_out_of_the_buffer_and_what_follows_stays() {
        let mut b =
            BytesMut::from(&b"GET /a HTTP/1.1\r\nHost: j\r\nConnection: close\r\n\r\nGET /b"[..]);
        let mut spans = Spans::new();
        let Parsed::Simple(head) = parse_request(&mut b, &mut spans) else {
            panic!("not simple");
        };
        assert!(head.close);
        assert_eq!(head.uri, "/a");
        assert_eq!(head.into_parts(&spans).headers["host"], "j");
        assert_eq!(&b[..], b"GET /b");
    }

    #[test]
    fn empty_header_values_are_kept_empty_on_both_sides() {
        let mut b =
            BytesMut::from(&b"GET / HTTP/1.1\r\nHost: j\r\nX-Empty:\r\nX-Sp:   \r\n\r\n"[..]);
        let mut spans = Spans::new();
        let Parsed::Simple(head) = parse_request(&mut b, &mut spans) else {
            panic!("not simple");
        };
        let headers = head.into_parts(&spans).headers;
        assert_eq!(headers["x-empty"], "");
        assert_eq!(headers["x-sp"], "");
        let mut b =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length: 0\r\n\r\n"[..]);
        let mut spans = Spans::new();
        let Ok(Answer::Final(raw)) = parse_response(&mut b, false, &mut spans) else {
            panic!("no answer");
        };
        assert_eq!((raw.framing, raw.reusable), (Framing::Length(0), true));
        let resp = raw.into_response(&mut spans).unwrap();
        assert_eq!(resp.headers()["x-empty"], "");
    }

    fn answer(raw: &[u8], is_head: bool) -> (Framing, bool) {
        let mut b = BytesMut::from(raw);
        match parse_response(&mut b, is_head, &mut Spans::new()) {
            Ok(Answer::Final(raw)) => (raw.framing, raw.reusable),
            _ => panic!("no final answer in {:?}", String::from_utf8_lossy(raw)),
        }
    }

    #[test]
    fn answers_are_framed_as_rfc_9112_says() {
        use Framing::*;
        let cases: [(&[u8], bool, (Framing, bool)); 8] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n",
                false,
                (Length(7), true),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                false,
                (Chunked, true),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                false,
                (Close, false),
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", false, (Close, false)),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\n",
                false,
                (Length(7), false),
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\n",
                false,
                (Length(7), false),
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
                false,
                (None, true),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n",
                true,
                (None, true),
            ),
        ];
        for (raw, is_head, want) in cases {
            assert_eq!(
                answer(raw, is_head),
                want,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let mut b = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n"[..],
        );
        assert!(
            parse_response(&mut b, false, &mut Spans::new()).is_err(),
            "conflicting lengths"
        );
        // One Content-Length rule on both lanes: 1*DIGIT, as hyper reads it.
        for bad in [
            "+5",
            "-5",
            "5 5",
            "0x5",
            "",
            "5,",
            "5, 6",
            "18446744073709551616",
        ] {
            let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            let mut b = BytesMut::from(raw.as_bytes());
            assert!(
                parse_response(&mut b, false, &mut Spans::new()).is_err(),
                "Content-Length: {bad:?} was taken"
            );
        }
        for (good, n) in [("5", 5), ("005", 5), ("5, 5", 5), ("0", 0)] {
            let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {good}\r\n\r\n");
            assert_eq!(
                answer(raw.as_bytes(), false),
                (Length(n), true),
                "Content-Length: {good:?}"
            );
        }
        let mut b = BytesMut::from(&b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[..]);
        assert!(
            parse_response(&mut b, false, &mut Spans::new()).is_err(),
            "unasked upgrade"
        );
    }
}
