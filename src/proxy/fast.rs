//! The HTTP/1.1 fast lane: the common request (HTTP/1.1, no body, no
//! upgrade) served without hyper, the way nginx does it.
//!
//! hyper is a general HTTP engine: per request it runs a server and a client
//! state machine, a body channel, boxed timers and two header maps, and turns
//! the answer's head back into a map and out again. On a proxy's request path
//! that machinery cost more than everything else iumgate does in user space
//! (docs/PERFORMANCE.md). Here a client connection's task reads the request
//! head into its own buffer, parses it in place with `httparse`, lets the
//! proxy and its hooks edit and decide exactly as on the hyper lane
//! ([`Proxy::prepare`] / [`Proxy::finish`], shared), writes the head to a
//! plain upstream connection it owns, and copies the answer back with its
//! framing checked (`Content-Length`, chunked, or until close).
//!
//! Anything else goes to hyper, for the rest of the connection: the fast lane
//! hands over the connection with the bytes it has read ([`Rewind`]) the
//! moment it sees a request it does not take — a body, `Transfer-Encoding`,
//! an upgrade, `Expect`, HTTP/1.0 or 2, a head that does not parse or does
//! not fit, a non-origin-form target, iumgate's own pages. hyper then answers
//! as it always did (including the 400 or 431), so the fast lane never has to
//! decide a doubtful case: a request is either plainly simple or not its own.
//! The same goes for an https upstream (the hyper lane's client speaks TLS).

use super::body::{self, Body};
use super::{ConnInfo, Handover, Hooks, Proxy, Ready, Step, UpstreamError};
use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Headers per message, at most (hyper's limit too: more goes to hyper, which
/// refuses it).
const MAX_HEADERS: usize = 100;

/// How much of an answer's head the upstream may send (as the hyper lane's
/// client allows).
const MAX_UPSTREAM_HEAD: usize = 64 * 1024;

/// Read size towards both sides.
const CHUNK: usize = 16 * 1024;

/// What the fast lane needs from `[proxy]`.
#[derive(Debug, Clone, Copy)]
pub struct LaneLimits {
    /// The first request's head, and any head once its first byte came.
    pub header_timeout: Duration,
    /// A kept-alive connection waiting for its next request (as nginx's
    /// `keepalive_timeout` next to `client_header_timeout`).
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
}

/// How a connection left the fast lane.
pub enum Exit<S> {
    /// Closed (the client left, timed out, asked to close, or the drain began).
    Closed,
    /// A request the fast lane does not take: hyper serves the connection
    /// from here, starting with the bytes already read.
    Handover(Rewind<S>),
}

/// Serves the connection's simple requests until it ends or hands over.
pub async fn serve<H: Hooks, S>(
    proxy: &Proxy<H>,
    conn: &ConnInfo,
    mut io: S,
    limits: LaneLimits,
    stop: &CancellationToken,
) -> Exit<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut lane = Lane {
        up: None,
        ubuf: BytesMut::with_capacity(CHUNK),
        out: Vec::with_capacity(4096),
        spans: Spans::with_capacity(32),
        qspans: Spans::with_capacity(32),
        answered_at: None,
    };
    let mut buf = BytesMut::with_capacity(8192);
    // One timer for the connection, moved for each request.
    // One timer for the connection, moved for each wait (head, answer),
    // and one drain signal: neither made again per request.
    let sleep = tokio::time::sleep(limits.header_timeout);
    tokio::pin!(sleep);
    let drain = stop.cancelled();
    tokio::pin!(drain);
    let mut first = true;
    let exit = loop {
        // The first request's head within `header_timeout` of the accept;
        // a later one within `idle_timeout` of the last answer, and within
        // `header_timeout` of its first byte.
        let mut started = first || !buf.is_empty();
        let wait = if started {
            limits.header_timeout
        } else {
            limits.idle_timeout
        };
        first = false;
        // From the end of the last answer (read once, for its metrics too).
        let base = lane.answered_at.take().unwrap_or_else(Instant::now);
        sleep.as_mut().reset(base + wait);
        let head = loop {
            if !buf.is_empty() {
                match parse_request(&mut buf, &mut lane.qspans) {
                    Parsed::Simple(head) => break Next::Head(head),
                    Parsed::Partial if buf.len() < limits.max_header_bytes => {}
                    Parsed::Partial => break Next::Handover(Handover::LargeHead),
                    Parsed::NotOurs(why) => break Next::Handover(why),
                }
            }
            let idle = buf.is_empty();
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(8192);
            }
            let read = tokio::select! {
                biased;
                r = io.read_buf(&mut buf) => r,
                _ = &mut sleep => {
                    tracing::debug!(peer = %conn.peer, started, "no request head in time; closed");
                    break Next::Close;
                }
                _ = &mut drain, if idle => break Next::Close,
            };
            match read {
                Ok(n) if n > 0 => {
                    if !started {
                        started = true;
                        sleep.as_mut().reset(Instant::now() + limits.header_timeout);
                    }
                }
                // Gone, possibly half-way through a head: nothing to answer.
                _ => break Next::Close,
            }
        };
        match head {
            Next::Head(head) => {
                let close = head.close || stop.is_cancelled();
                match lane
                    .request(proxy, conn, head, &mut io, close, sleep.as_mut())
                    .await
                {
                    Ok(true) if !stop.is_cancelled() => {}
                    _ => break Exit::Closed,
                }
            }
            Next::Close => break Exit::Closed,
            Next::Handover(why) => {
                proxy.observer.handover(why);
                break Exit::Handover(Rewind {
                    pre: buf.split().freeze(),
                    inner: io,
                });
            }
        }
    };
    if let Some(up) = lane.up.take() {
        proxy.client.park_raw(up);
    }
    exit
}

/// What the head-reading loop found.
// Moved once per request; boxing the head would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(Head),
    Close,
    Handover(Handover),
}

/// A request head the fast lane takes: its fields' names and where their
/// values lie are in the lane's `qspans`; no header map is built unless the
/// hooks want the whole request.
struct Head {
    method: Method,
    uri: Uri,
    head: Bytes,
    /// `Connection: close`.
    close: bool,
}

impl Head {
    /// The request as the header-map path takes it.
    fn into_parts(self, spans: &Spans) -> http::request::Parts {
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
enum Parsed {
    Simple(Head),
    /// More bytes needed.
    Partial,
    /// Not a request for the fast lane (hyper decides what it is), and why.
    NotOurs(Handover),
}

/// Parses the head at the start of `buf`; a simple one is taken out of it.
fn parse_request(buf: &mut BytesMut, spans: &mut Spans) -> Parsed {
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
    if super::target::classify(path.split('?').next().unwrap_or(path))
        != super::target::Target::Upstream
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
enum Framing {
    /// No body (HEAD, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// A client connection's fast-lane state.
struct Lane {
    /// Its plain upstream connection, idle between requests.
    up: Option<TcpStream>,
    /// Bytes read from the upstream, not yet handled.
    ubuf: BytesMut,
    /// The head being written (reused).
    out: Vec<u8>,
    /// Header names and where their values lie in an answer's head (reused).
    spans: Spans,
    /// The same for the request being served (reused).
    qspans: Spans,
    /// When the last answer was written (the next head's wait starts there).
    answered_at: Option<Instant>,
}

/// Header names with the byte range of each value in the head being parsed.
type Spans = Vec<(HeaderName, std::ops::Range<usize>)>;

/// Why asking the upstream failed.
enum Failed {
    Upstream(UpstreamError, Option<io::Error>),
    /// The connection ended before any byte of an answer: on a kept
    /// connection, most likely closed by the upstream's keep-alive time-out
    /// just as the request went out (Tomcat's is 20 s by default).
    Silent(io::Error),
}

impl Lane {
    /// One request: decide, forward, answer. `Ok(true)`: the connection can
    /// take another request.
    async fn request<H: Hooks, S>(
        &mut self,
        proxy: &Proxy<H>,
        conn: &ConnInfo,
        head: Head,
        io: &mut S,
        close: bool,
        mut timer: Pin<&mut tokio::time::Sleep>,
    ) -> Result<bool, ()>
    where
        S: AsyncWrite + Unpin,
    {
        let start = Instant::now();
        let is_head = head.method == Method::HEAD;
        let safe = head.method.is_safe();
        // The hooks may take the request as it came (its head then written
        // from its raw fields); otherwise it goes the header-map way.
        let shortcut = if conn.trusted {
            // A trusted peer's forwarding chain is edited on the map.
            None
        } else {
            let fields = super::Fields::new(&head.head, &self.qspans);
            proxy
                .hooks
                .on_request_head(conn, &head.method, &head.uri, &fields)
        };
        let decided = match shortcut {
            Some(ctx) => {
                self.out.clear();
                write_forwarded_head(&mut self.out, &proxy.settings, conn, &head, &self.qspans);
                Ok((ctx, ErrHeaders::Raw(head.head)))
            }
            None => {
                let parts = head.into_parts(&self.qspans);
                match proxy.prepare(conn, parts, body::empty(), false).await {
                    Step::Answer(resp) => Err(resp),
                    Step::Forward(Ready { req, ctx, err }) => {
                        self.out.clear();
                        write_request_head(&mut self.out, &req);
                        Ok((ctx, ErrHeaders::Made(err)))
                    }
                }
            }
        };
        // What to write: the upstream's answer (its head already in `out`,
        // its body still to relay) or one iumgate made (an own page, a wait
        // or error page).
        let reply = match decided {
            Err(resp) => Reply::Page(resp),
            Ok((ctx, err)) => {
                timer
                    .as_mut()
                    .reset(Instant::now() + proxy.settings.request_timeout);
                let asked = tokio::select! {
                    biased;
                    r = self.ask(proxy, is_head, safe) => Some(r),
                    _ = &mut timer => None,
                };
                match asked {
                    Some(Ok(answer)) => self.answered(proxy, ctx, answer, close, err).await,
                    failed => {
                        let (kind, e) = match failed {
                            Some(Err(Failed::Upstream(kind, e))) => (kind, e),
                            Some(Err(Failed::Silent(e))) => (UpstreamError::Protocol, Some(e)),
                            _ => (UpstreamError::Timeout, None),
                        };
                        self.drop_upstream();
                        failure_page(proxy, kind, e, err.make(&self.qspans))
                    }
                }
            }
        };
        let (status, kept) = match reply {
            Reply::Relay {
                status,
                framing,
                reusable,
                close,
            } => (status, self.relay(io, framing, reusable, close).await?),
            Reply::Page(resp) => (
                resp.status(),
                self.write_page(io, resp, is_head, close).await?,
            ),
        };
        let end = Instant::now();
        self.answered_at = Some(end);
        proxy
            .observer
            .request_done(status.as_u16(), (end - start).as_secs_f64());
        proxy.observer.fast_request();
        Ok(kept)
    }

    /// The upstream answered: the hooks learn from its head, and either let
    /// it go out as it came (written to `out` with no header map built), or
    /// see the whole answer in `on_response`, which may also answer instead.
    async fn answered<H: Hooks>(
        &mut self,
        proxy: &Proxy<H>,
        ctx: H::Ctx,
        raw: Raw,
        close: bool,
        err: ErrHeaders,
    ) -> Reply {
        let close = close || raw.framing == Framing::Close;
        let (status, framing, reusable) = (raw.status, raw.framing, raw.reusable);
        let ctx = if raw.plain {
            let fields = super::Fields::new(&raw.head, &self.spans);
            match proxy.hooks.on_answer_head(ctx, status, &fields) {
                None => {
                    self.out.clear();
                    write_relayed_head(&mut self.out, &raw, &self.spans, close);
                    return Reply::Relay {
                        status,
                        framing,
                        reusable,
                        close,
                    };
                }
                Some(ctx) => ctx,
            }
        } else {
            ctx
        };
        let resp = match raw.into_response(&mut self.spans) {
            Ok(r) => r,
            Err(msg) => {
                self.drop_upstream();
                let e = io::Error::other(msg);
                let err = err.make(&self.qspans);
                return failure_page(proxy, UpstreamError::Protocol, Some(e), err);
            }
        };
        let resp = proxy.finish(ctx, resp).await;
        if resp.extensions().get::<UpstreamBody>().is_none() {
            // The hooks answered instead: the upstream's body is not wanted.
            if framing != Framing::None {
                self.drop_upstream();
            }
            return Reply::Page(resp);
        }
        let (mut parts, _) = resp.into_parts();
        self.out.clear();
        write_edited_head(
            &mut self.out,
            parts.status,
            &mut parts.headers,
            framing,
            close,
        );
        Reply::Relay {
            status: parts.status,
            framing,
            reusable,
            close,
        }
    }

    fn drop_upstream(&mut self) {
        self.up = None;
        self.ubuf.clear();
    }

    /// Writes the request head in `out` to the upstream and reads the
    /// answer's head. On a kept connection, a request that could not be
    /// written, or a safe one (GET, HEAD, …) whose connection closed before
    /// any byte of an answer, is sent once more on a new connection; any
    /// other request the upstream may have read is never sent again.
    async fn ask(
        &mut self,
        proxy: &Proxy<impl Hooks>,
        is_head: bool,
        safe: bool,
    ) -> Result<Raw, Failed> {
        let mut fresh = false;
        loop {
            let kept = if fresh {
                None
            } else {
                self.up
                    .take()
                    .filter(super::client::still_open)
                    .or_else(|| proxy.client.unpark_raw())
            };
            let mut up = match kept {
                Some(s) => s,
                None => {
                    fresh = true;
                    proxy.client.connect_tcp().await.map_err(|e| {
                        Failed::Upstream(UpstreamError::Connect, Some(io::Error::other(e)))
                    })?
                }
            };
            self.ubuf.clear();
            match up.write_all(&self.out).await {
                Ok(()) => match self.read_answer(&mut up, is_head).await {
                    Ok(answer) => {
                        self.up = Some(up);
                        return Ok(answer);
                    }
                    // A safe request may be sent again (RFC 9110 §9.2.2),
                    // once, on a new connection; any other never is.
                    Err(Failed::Silent(e)) if !fresh && safe => {
                        tracing::debug!(error = %e, "kept upstream connection closed without answering; asking again on a new one");
                        fresh = true;
                    }
                    Err(Failed::Silent(e)) => {
                        return Err(Failed::Upstream(UpstreamError::Protocol, Some(e)))
                    }
                    Err(f) => return Err(f),
                },
                Err(e) if fresh => {
                    return Err(Failed::Upstream(UpstreamError::Protocol, Some(e)));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "kept upstream connection closed before the request was written; using a new one");
                    fresh = true;
                }
            }
        }
    }

    /// Reads an answer's head from `up` (skipping interim 1xx answers).
    async fn read_answer(&mut self, up: &mut TcpStream, is_head: bool) -> Result<Raw, Failed> {
        let protocol = |msg: &str| {
            Failed::Upstream(
                UpstreamError::Protocol,
                Some(io::Error::other(msg.to_string())),
            )
        };
        // Whether any byte of an answer came.
        let mut got = false;
        loop {
            match parse_response(&mut self.ubuf, is_head, &mut self.spans) {
                Ok(Answer::Final(answer)) => return Ok(answer),
                // Look again: the next head may be read already.
                Ok(Answer::Interim) => continue,
                Ok(Answer::Partial) if self.ubuf.len() < MAX_UPSTREAM_HEAD => {}
                Ok(Answer::Partial) => return Err(protocol("answer head too large")),
                Err(msg) => return Err(protocol(msg)),
            }
            self.ubuf.reserve(CHUNK);
            match up.read_buf(&mut self.ubuf).await {
                Ok(0) if !got => {
                    return Err(Failed::Silent(io::Error::other(
                        "the upstream closed the connection without answering",
                    )))
                }
                Ok(0) => return Err(protocol("the upstream closed the connection mid-answer")),
                Ok(_) => got = true,
                Err(e) if !got => return Err(Failed::Silent(e)),
                Err(e) => return Err(Failed::Upstream(UpstreamError::Protocol, Some(e))),
            }
        }
    }

    /// Writes the upstream's answer: its head (in `out`), then its body as it
    /// arrives, checked against its framing. `Ok(true)`: keep the client
    /// connection.
    async fn relay<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        framing: Framing,
        reusable: bool,
        close: bool,
    ) -> Result<bool, ()> {
        let Some(mut up) = self.up.take() else {
            return Err(());
        };
        let mut left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let mut chunks = Chunks::default();
        // What is already read goes out with the head, in one write.
        // (On a malformed body the head still goes out, then the cut.)
        let first = self.take_body(framing, &mut left, &mut chunks);
        if io.write_all(&self.out).await.is_err() {
            return Err(());
        }
        let mut done = first?;
        while !done {
            self.ubuf.clear();
            self.ubuf.reserve(CHUNK);
            // An error reads as the end: the upstream is gone either way.
            let n = up.read_buf(&mut self.ubuf).await.unwrap_or_default();
            if n == 0 {
                // The upstream closed: the end for `Close`, a cut otherwise
                // (the client must see it cut, not complete).
                let _ = io.flush().await;
                return if framing == Framing::Close {
                    Ok(false)
                } else {
                    Err(())
                };
            }
            self.out.clear();
            done = self.take_body(framing, &mut left, &mut chunks)?;
            if io.write_all(&self.out).await.is_err() {
                return Err(());
            }
        }
        if io.flush().await.is_err() {
            return Err(());
        }
        // Bytes after the end of the answer were never asked for.
        if reusable && self.ubuf.is_empty() {
            self.up = Some(up);
        }
        Ok(!close)
    }

    /// Moves the body bytes of `ubuf` that belong to this answer to `out`;
    /// `Ok(true)` once the body is complete (what follows stays in `ubuf`).
    fn take_body(
        &mut self,
        framing: Framing,
        left: &mut u64,
        chunks: &mut Chunks,
    ) -> Result<bool, ()> {
        let n = match framing {
            Framing::None => return Ok(true),
            Framing::Close => self.ubuf.len(),
            Framing::Length(_) => {
                usize::try_from(*left).map_or(self.ubuf.len(), |l| l.min(self.ubuf.len()))
            }
            Framing::Chunked => match chunks.feed(&self.ubuf) {
                Ok(Some(end)) => end,
                Ok(None) => self.ubuf.len(),
                Err(Malformed) => {
                    tracing::warn!("the upstream sent a malformed chunked body; connection cut");
                    return Err(());
                }
            },
        };
        self.out.extend_from_slice(&self.ubuf[..n]);
        self.ubuf.advance(n);
        Ok(match framing {
            Framing::Length(_) => {
                *left -= n as u64;
                *left == 0
            }
            Framing::Chunked => chunks.done(),
            _ => false,
        })
    }

    /// Writes an answer iumgate made (a page, whole in memory).
    async fn write_page<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        resp: Response<Body>,
        is_head: bool,
        close: bool,
    ) -> Result<bool, ()> {
        let (mut parts, body) = resp.into_parts();
        let bytes = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                tracing::warn!(error = %e, "page body failed");
                Bytes::new()
            }
        };
        parts.headers.remove(header::TRANSFER_ENCODING);
        if !(is_head && parts.headers.contains_key(header::CONTENT_LENGTH)) {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        }
        self.out.clear();
        write_response_head(&mut self.out, parts.status, &parts.headers, close);
        if !is_head {
            self.out.extend_from_slice(&bytes);
        }
        if io.write_all(&self.out).await.is_err() || io.flush().await.is_err() {
            return Err(());
        }
        Ok(!close)
    }
}

/// What an error page for the request needs (`Accept`, `Accept-Language`),
/// made only when one is.
enum ErrHeaders {
    Made(super::ErrorPageHeaders),
    /// The request's head as it came (its fields in the lane's `qspans`).
    Raw(Bytes),
}

impl ErrHeaders {
    fn make(self, spans: &Spans) -> super::ErrorPageHeaders {
        match self {
            ErrHeaders::Made(e) => e,
            ErrHeaders::Raw(head) => {
                let get = |name: &HeaderName| {
                    let (_, r) = spans.iter().find(|(n, _)| n == name)?;
                    HeaderValue::from_maybe_shared(head.slice(r.clone())).ok()
                };
                super::ErrorPageHeaders::new(get(&header::ACCEPT), get(&header::ACCEPT_LANGUAGE))
            }
        }
    }
}

/// What a request is answered with.
enum Reply {
    /// The upstream's answer: its head is in the lane's `out`, its body is
    /// still to relay.
    Relay {
        status: StatusCode,
        framing: Framing,
        reusable: bool,
        close: bool,
    },
    /// An answer iumgate made, whole.
    Page(Response<Body>),
}

/// The page for an upstream that could not answer (nothing left to relay).
fn failure_page<H: Hooks>(
    proxy: &Proxy<H>,
    kind: UpstreamError,
    e: Option<io::Error>,
    err: super::ErrorPageHeaders,
) -> Reply {
    Reply::Page(proxy.upstream_failed(kind, e.as_ref().map(|e| e as &dyn std::error::Error), err))
}

/// Marks an answer whose body is still in the upstream connection.
#[derive(Debug, Clone, Copy)]
struct UpstreamBody;

/// An answer head parsed from the upstream's bytes.
enum Answer {
    Final(Raw),
    /// An interim (1xx) answer, skipped.
    Interim,
    /// More bytes needed.
    Partial,
}

/// A final answer's head as the upstream sent it. Its fields' names and
/// where their values lie are in the lane's `spans`; no header map is built
/// unless the hooks want the whole answer.
struct Raw {
    head: Bytes,
    status: StatusCode,
    framing: Framing,
    /// The upstream connection can be used again after this answer.
    reusable: bool,
    /// `Connection` names no other field (only `close`/`keep-alive`): the
    /// hop-by-hop fields are the fixed ones, so the head can be relayed as it
    /// came, less those.
    plain: bool,
}

impl Raw {
    /// The answer as a `Response` (for the hooks' `on_response`).
    fn into_response(self, spans: &mut Spans) -> Result<Response<Body>, &'static str> {
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

/// Parses an answer head at the start of `ubuf` (taken out of it); its
/// fields go to `spans`.
fn parse_response(
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

/// A request the hooks took as it came, written for the upstream without a
/// header map: what [`super::edit_request`] and [`write_request_head`] make
/// of it through one (for a peer that is not a trusted proxy).
fn write_forwarded_head(
    out: &mut Vec<u8>,
    settings: &super::Settings,
    conn: &ConnInfo,
    head: &Head,
    spans: &Spans,
) {
    use super::headers::{is_hop_by_hop, FORWARDING, UPSTREAM_ONLY};
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
        if is_hop_by_hop(name)
            || name == header::EXPECT
            || UPSTREAM_ONLY.contains(name)
            || FORWARDING.contains(name)
        {
            continue;
        }
        write_field(out, name.as_str().as_bytes(), value);
    }
    let host = match client_host {
        Some(h) if settings.preserve_host => h,
        _ => settings.upstream_host.as_bytes(),
    };
    write_field(out, b"host", host);
    write_field(out, b"x-forwarded-for", conn.peer_value.as_bytes());
    let proto: &[u8] = if conn.tls { b"https" } else { b"http" };
    write_field(out, b"x-forwarded-proto", proto);
    if let Some(h) = client_host {
        write_field(out, b"x-forwarded-host", h);
    }
    out.extend_from_slice(b"\r\n");
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn write_request_head(out: &mut Vec<u8>, req: &http::Request<Body>) {
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

fn write_response_head(out: &mut Vec<u8>, status: StatusCode, headers: &HeaderMap, close: bool) {
    write_status(out, status, close);
    write_fields(out, headers);
    out.extend_from_slice(b"\r\n");
}

/// The upstream's answer head as it came, less its hop-by-hop fields, with
/// the framing the body is relayed by: what [`Proxy::finish`] and
/// [`Lane::relay`] make of it through a header map, without the map. Only for
/// a [`Raw::plain`] head (`Connection` names no other field).
fn write_relayed_head(out: &mut Vec<u8>, raw: &Raw, spans: &Spans, close: bool) {
    write_status(out, raw.status, close);
    let framed = matches!(raw.framing, Framing::Length(_) | Framing::Chunked);
    for (name, span) in spans {
        if super::headers::is_hop_by_hop(name) || (framed && name == header::CONTENT_LENGTH) {
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
fn write_edited_head(
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

/// Finds where a chunked body ends as its bytes pass through, unchanged
/// (RFC 9112 §7.1: size line with optional extensions, data, CRLF; a zero
/// size, trailer lines, CRLF). Anything else is an error.
#[derive(Debug, Default)]
pub struct Chunks {
    state: ChunkState,
    size: u64,
    digits: u8,
}

/// A chunked body that breaks RFC 9112's grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

impl Chunks {
    /// Feeds the next bytes: `Ok(Some(n))` when the body ends after the
    /// first `n` of them, `Ok(None)` when all belong to it.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<usize>, Malformed> {
        use ChunkState::*;
        let mut i = 0;
        while i < data.len() {
            if self.state == Data {
                let take =
                    usize::try_from(self.size).map_or(data.len() - i, |s| s.min(data.len() - i));
                self.size -= take as u64;
                i += take;
                if self.size == 0 {
                    self.state = DataCr;
                }
                continue;
            }
            let b = data[i];
            i += 1;
            self.state = match (self.state, b) {
                (Size, b) if b.is_ascii_hexdigit() => {
                    // 15 hex digits: far beyond any body, short of overflow.
                    if self.digits >= 15 {
                        return Err(Malformed);
                    }
                    self.digits += 1;
                    self.size = self.size * 16 + u64::from(hex(b));
                    Size
                }
                (Size, b';' | b' ' | b'\t') if self.digits > 0 => Ext,
                (Size, b'\r') if self.digits > 0 => SizeLf,
                (Ext, b'\r') => SizeLf,
                (Ext, b'\n') => return Err(Malformed),
                (Ext, _) => Ext,
                (SizeLf, b'\n') if self.size == 0 => TrailerStart,
                (SizeLf, b'\n') => Data,
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => {
                    self.digits = 0;
                    Size
                }
                (TrailerStart, b'\r') => EndLf,
                (TrailerStart | Trailer, b'\n') => return Err(Malformed),
                (Trailer, b'\r') => TrailerLf,
                (TrailerStart | Trailer, _) => Trailer,
                (TrailerLf, b'\n') => TrailerStart,
                (EndLf, b'\n') => {
                    self.state = Done;
                    return Ok(Some(i));
                }
                (Done, _) => return Ok(Some(i - 1)),
                _ => return Err(Malformed),
            };
        }
        Ok(if self.state == Done { Some(0) } else { None })
    }

    pub fn done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// A stream whose first bytes were already read: they are read again first.
/// Hands a connection from the fast lane to hyper mid-way.
pub struct Rewind<S> {
    pre: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    /// `inner`, nothing read yet.
    pub fn new(inner: S) -> Rewind<S> {
        Rewind {
            pre: Bytes::new(),
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pre.is_empty() {
            let n = this.pre.len().min(buf.remaining());
            buf.put_slice(&this.pre[..n]);
            this.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(chunks: &[Vec<u8>], trailers: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks.iter().filter(|c| !c.is_empty()) {
            out.extend_from_slice(format!("{:x};n=v\r\n", c.len()).as_bytes());
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n");
        for t in trailers {
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Feeds `data` in pieces cut at `cuts`; the end as found.
    fn end_of(data: &[u8], cuts: &[usize]) -> Result<Option<usize>, Malformed> {
        let mut c = Chunks::default();
        let mut points: Vec<usize> = cuts.iter().map(|x| x % (data.len() + 1)).collect();
        points.push(0);
        points.push(data.len());
        points.sort_unstable();
        points.dedup();
        for w in points.windows(2) {
            if let Some(n) = c.feed(&data[w[0]..w[1]])? {
                return Ok(Some(w[0] + n));
            }
        }
        Ok(None)
    }

    proptest! {
        #[test]
        fn the_end_of_a_chunked_body_is_found_wherever_it_is_cut(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
            trailer in any::<bool>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            after in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let trailers: &[&str] = if trailer { &["X-T: 1", "Y: 2"] } else { &[] };
            let body = encode(&chunks, trailers);
            let mut wire = body.clone();
            wire.extend_from_slice(&after);
            prop_assert_eq!(end_of(&wire, &cuts), Ok(Some(body.len())));
            // Cut short: never complete.
            prop_assert_eq!(end_of(&body[..body.len() - 1], &cuts), Ok(None));
        }
    }

    #[test]
    fn malformed_chunked_bodies_are_errors() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"5\r\nhelloX\r\n",
            b"5\nhello\r\n",
            b"1000000000000000\r\n",
            b"0\r\nX: y\nZ",
            b"3;ext\nabc",
        ] {
            assert_eq!(
                Chunks::default().feed(bad),
                Err(Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

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

/// Entry points for the `fast_lane` fuzz target (not an API).
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// Parses `data` as request heads, as the fast lane does, and checks that
    /// every one it takes is plainly simple, and that its head written raw
    /// for the upstream is the one the header-map path writes.
    pub fn requests(data: &[u8]) {
        let mut b = BytesMut::from(data);
        let mut spans = Spans::new();
        while let Parsed::Simple(head) = parse_request(&mut b, &mut spans) {
            for (preserve_host, tls) in [(false, false), (true, true)] {
                let (raw, mapped) = request_heads(&head, &spans, preserve_host, tls);
                assert_eq!(raw, mapped, "preserve_host: {preserve_host}, tls: {tls}");
            }
            let uri = head.uri.clone();
            let h = head.into_parts(&spans).headers;
            assert!(!h.contains_key(header::TRANSFER_ENCODING));
            assert!(!h.contains_key(header::UPGRADE) && !h.contains_key(header::EXPECT));
            assert!(h.get_all(header::CONTENT_LENGTH).iter().all(|v| v == "0"));
            assert!(uri.path().starts_with('/'));
            assert_eq!(
                super::super::target::classify(uri.path()),
                super::super::target::Target::Upstream
            );
        }
    }

    /// A simple request's head for the upstream, written raw and through the
    /// header map (from a peer that is not a trusted proxy), each as its
    /// request line and sorted fields, lower-cased.
    pub(super) fn request_heads(
        head: &Head,
        spans: &Spans,
        preserve_host: bool,
        tls: bool,
    ) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let settings = super::super::Settings {
            upstream_host: HeaderValue::from_static("upstream.internal:8080"),
            preserve_host,
            trusted: Vec::new(),
            request_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
        };
        let conn = ConnInfo::new(
            std::net::SocketAddr::from(([192, 0, 2, 7], 40000)),
            tls,
            false,
        );
        let mut raw = Vec::new();
        write_forwarded_head(&mut raw, &settings, &conn, head, spans);
        let copy = Head {
            method: head.method.clone(),
            uri: head.uri.clone(),
            head: head.head.clone(),
            close: head.close,
        };
        let mut parts = copy.into_parts(spans);
        super::super::edit_request(&settings, &conn, &mut parts, false);
        let mut mapped = Vec::new();
        write_request_head(
            &mut mapped,
            &http::Request::from_parts(parts, body::empty()),
        );
        (lines(&raw), lines(&mapped))
    }

    /// Parses `data` as the upstream's answers; a final one that may be
    /// relayed as it came must come out as the header-map path writes it.
    pub fn answers(data: &[u8], is_head: bool) {
        let mut b = BytesMut::from(data);
        let mut spans = Spans::new();
        loop {
            match parse_response(&mut b, is_head, &mut spans) {
                Ok(Answer::Interim) => continue,
                Ok(Answer::Final(raw)) if raw.plain => {
                    for close in [false, true] {
                        let (relayed, mapped) = both_heads(&raw, &mut spans.clone(), close);
                        assert_eq!(relayed, mapped, "close: {close}");
                    }
                }
                _ => {}
            }
            break;
        }
    }

    /// A plain answer's head as relayed raw and as written from a header map
    /// (after the proxy's hop-by-hop clean-up), each as its status line and
    /// sorted fields, lower-cased: the two must agree up to field order.
    pub(super) fn both_heads(
        raw: &Raw,
        spans: &mut Spans,
        close: bool,
    ) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let mut relayed = Vec::new();
        write_relayed_head(&mut relayed, raw, spans, close);
        let copy = Raw {
            head: raw.head.clone(),
            ..*raw
        };
        let mut mapped = Vec::new();
        if let Ok(resp) = copy.into_response(spans) {
            let (mut parts, _) = resp.into_parts();
            super::super::headers::remove_hop_by_hop(&mut parts.headers, false);
            write_edited_head(
                &mut mapped,
                parts.status,
                &mut parts.headers,
                raw.framing,
                close,
            );
        }
        (lines(&relayed), lines(&mapped))
    }

    fn lines(head: &[u8]) -> Vec<Vec<u8>> {
        let mut l: Vec<Vec<u8>> = head
            .split(|b| *b == b'\n')
            .map(|l| l.to_ascii_lowercase())
            .collect();
        if let Some((_status, fields)) = l.split_first_mut() {
            fields.sort();
        }
        l
    }

    /// Where a chunked body ends does not depend on how its bytes are cut.
    pub fn chunks(data: &[u8], cut: usize) {
        let whole = Chunks::default().feed(data);
        let cut = cut % (data.len() + 1);
        let mut c = Chunks::default();
        let split = match c.feed(&data[..cut]) {
            Ok(None) => c.feed(&data[cut..]).map(|end| end.map(|n| n + cut)),
            other => other,
        };
        assert_eq!(whole, split, "cut at {cut}");
    }
}
