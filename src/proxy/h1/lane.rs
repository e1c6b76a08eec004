//! The fast lane's connection driver: reads a client connection's request
//! heads, decides through the proxy's phases, forwards on a plain upstream
//! connection it owns and relays the answer with its framing checked, until
//! the connection ends or is handed to hyper.

use super::chunked::{Chunks, Malformed};
use super::codec::{
    parse_request, parse_response, Answer, Framing, Head, Parsed, Raw, Spans, UpstreamBody,
};
use super::encode::{
    write_edited_head, write_forwarded_head, write_relayed_head, write_request_head,
    write_response_head,
};
use super::rewind::Rewind;
use crate::access_log::{self, AccessLog, Entry, Note, Trace};
use crate::proxy::{
    edit_request, ConnInfo, Decision, Handover, Hooks, Learned, Proxy, Ready, Step, UpstreamError,
};
use crate::wire::body::{self, Body};
use crate::wire::Fields;
use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use std::io;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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

/// What the head-reading loop found.
// Moved once per request; boxing the head would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(Head),
    Close,
    Handover(Handover),
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

/// Why asking the upstream failed.
enum Failed {
    Upstream(UpstreamError, Option<io::Error>),
    /// The connection ended before any byte of an answer: on a kept
    /// connection, most likely closed by the upstream's keep-alive time-out
    /// just as the request went out (Tomcat's is 20 s by default).
    Silent(io::Error),
}

/// What an error page for the request needs (`Accept`, `Accept-Language`),
/// made only when one is.
enum ErrHeaders {
    Made(crate::proxy::ErrorPageHeaders),
    /// The request's head as it came (its fields in the lane's `qspans`).
    Raw(Bytes),
}

impl ErrHeaders {
    fn make(self, spans: &Spans) -> crate::proxy::ErrorPageHeaders {
        match self {
            ErrHeaders::Made(e) => e,
            ErrHeaders::Raw(head) => {
                let get = |name: &HeaderName| {
                    let (_, r) = spans.iter().find(|(n, _)| n == name)?;
                    HeaderValue::from_maybe_shared(head.slice(r.clone())).ok()
                };
                crate::proxy::ErrorPageHeaders::new(
                    get(&header::ACCEPT),
                    get(&header::ACCEPT_LANGUAGE),
                )
            }
        }
    }
}

/// Why the fast lane cut a client connection in the middle of an answer
/// (logged with the client's address; the client sees the answer cut, never
/// complete).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Cut {
    /// Writing to the client failed (it went away).
    #[error("writing to the client failed")]
    ClientWrite(#[source] io::Error),
    /// The upstream closed before the end its framing announced.
    #[error("the upstream closed the answer's body before its end")]
    UpstreamClosed,
    /// The upstream's chunked body does not parse.
    #[error("the upstream sent a malformed chunked body")]
    MalformedChunks,
    /// An answer to relay with no upstream connection behind it (a bug).
    #[error("no upstream connection to relay the answer from")]
    NoUpstream,
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
                    Ok(_) => break Exit::Closed,
                    Err(cut) => {
                        tracing::debug!(peer = %conn.peer, reason = %crate::proxy::error_chain(&cut), "fast lane: connection cut");
                        break Exit::Closed;
                    }
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
        proxy.client.raw().park(up);
    }
    exit
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
    ) -> Result<bool, Cut>
    where
        S: AsyncWrite + Unpin,
    {
        let start = Instant::now();
        let is_head = head.method == Method::HEAD;
        let safe = head.method.is_safe();
        let log = proxy.access_log.as_ref();
        let mut trace = Trace::new(log.is_some());
        // The hooks decide from the head as it came, as on the hyper lane.
        let (decision, line) = {
            let fields = Fields::new(&head.head, &self.qspans);
            // What the access log line needs of the request, kept before
            // it moves on (shared bytes, no copies).
            let line = log.map(|log| Line::of(log, proxy, conn, &head, &fields));
            (
                proxy.hooks.decide(conn, &head.method, &head.uri, &fields),
                line,
            )
        };
        let decided = match decision {
            // The common request: its head written from its raw fields,
            // with no header map built. A trusted peer's forwarding chain
            // is edited on the map.
            Decision::Forward(ctx) if !conn.trusted => {
                if trace.on {
                    trace.note = proxy.hooks.note(&ctx);
                }
                self.out.clear();
                write_forwarded_head(&mut self.out, &proxy.settings, conn, &head, &self.qspans);
                Ok((ctx, ErrHeaders::Raw(head.head)))
            }
            decision => {
                let mut parts = head.into_parts(&self.qspans);
                edit_request(&proxy.settings, conn, &mut parts, false);
                match proxy
                    .carry_out(conn, decision, parts, body::empty(), &mut trace)
                    .await
                {
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
                let sent = Instant::now();
                let asked = tokio::select! {
                    biased;
                    r = self.ask(proxy, is_head, safe) => Some(r),
                    _ = &mut timer => None,
                };
                if trace.on {
                    trace.upstream = Some(sent.elapsed());
                }
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
        let mut sent = 0u64;
        let (status, kept) = match reply {
            Reply::Relay {
                status,
                framing,
                reusable,
                close,
            } => (
                status,
                self.relay(io, framing, reusable, close, &mut sent).await,
            ),
            Reply::Page(mut resp) => {
                if let Some(n) = resp.extensions_mut().remove::<Note>() {
                    trace.note = n.over(std::mem::take(&mut trace.note));
                }
                (
                    resp.status(),
                    self.write_page(io, resp, is_head, close, &mut sent).await,
                )
            }
        };
        let end = Instant::now();
        if let (Some(log), Some(line)) = (log, line) {
            // Also for an answer cut short (the client left): what went out.
            log.log(line.entry(status.as_u16(), sent, trace, end - start));
        }
        let kept = kept?;
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
        // The hooks learn from the head as it came when it can go out as
        // it came; otherwise (hop-by-hop fields to drop) from the map, as
        // on the hyper lane.
        let (ctx, learned) = if raw.plain {
            let fields = Fields::new(&raw.head, &self.spans);
            match proxy.hooks.learn(ctx, status, &fields) {
                Learned::Done => {
                    self.out.clear();
                    write_relayed_head(&mut self.out, &raw, &self.spans, close);
                    return Reply::Relay {
                        status,
                        framing,
                        reusable,
                        close,
                    };
                }
                Learned::Edit(ctx) => (ctx, true),
            }
        } else {
            (ctx, false)
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
        let resp = if learned {
            proxy.edit_answer(ctx, resp).await
        } else {
            proxy.finish(ctx, resp).await
        };
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
                    .filter(super::pool::still_open)
                    .or_else(|| proxy.client.raw().take())
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
        sent: &mut u64,
    ) -> Result<bool, Cut> {
        let Some(mut up) = self.up.take() else {
            return Err(Cut::NoUpstream);
        };
        let head_len = self.out.len();
        let mut left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let mut chunks = Chunks::default();
        // What is already read goes out with the head, in one write.
        // (On a malformed body the head still goes out, then the cut.)
        let first = self.take_body(framing, &mut left, &mut chunks);
        io.write_all(&self.out).await.map_err(Cut::ClientWrite)?;
        *sent += (self.out.len() - head_len) as u64;
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
                    Err(Cut::UpstreamClosed)
                };
            }
            self.out.clear();
            done = self.take_body(framing, &mut left, &mut chunks)?;
            io.write_all(&self.out).await.map_err(Cut::ClientWrite)?;
            *sent += self.out.len() as u64;
        }
        io.flush().await.map_err(Cut::ClientWrite)?;
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
    ) -> Result<bool, Cut> {
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
                    return Err(Cut::MalformedChunks);
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
        sent: &mut u64,
    ) -> Result<bool, Cut> {
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
        io.write_all(&self.out).await.map_err(Cut::ClientWrite)?;
        io.flush().await.map_err(Cut::ClientWrite)?;
        if !is_head {
            *sent = bytes.len() as u64;
        }
        Ok(!close)
    }
}

/// What a fast-lane request's access log line needs, kept from its head.
struct Line {
    at_ms: u64,
    client: std::net::IpAddr,
    method: Method,
    target: http::Uri,
    referer: Option<HeaderValue>,
    agent: Option<HeaderValue>,
}

impl Line {
    fn of<H: Hooks>(
        log: &AccessLog,
        proxy: &Proxy<H>,
        conn: &ConnInfo,
        head: &Head,
        fields: &Fields<'_>,
    ) -> Line {
        use crate::wire::HeaderView;
        let get = |name: &HeaderName| {
            fields
                .value(name)
                .and_then(|v| HeaderValue::from_bytes(v).ok())
        };
        let (referer, agent) = if log.wants_headers {
            (get(&header::REFERER), get(&header::USER_AGENT))
        } else {
            (None, None)
        };
        Line {
            at_ms: log.now_ms(),
            client: access_log::client_addr(
                conn.peer.ip(),
                conn.trusted,
                &proxy.settings.trusted,
                fields,
            ),
            method: head.method.clone(),
            target: head.uri.clone(),
            referer,
            agent,
        }
    }

    fn entry(self, status: u16, bytes: u64, trace: Trace, total: Duration) -> Entry {
        Entry {
            at_ms: self.at_ms,
            client: self.client,
            method: self.method,
            target: self.target,
            version: http::Version::HTTP_11,
            status,
            bytes,
            upstream: trace.upstream,
            total,
            note: trace.note,
            referer: self.referer,
            agent: self.agent,
        }
    }
}

/// The page for an upstream that could not answer (nothing left to relay).
fn failure_page<H: Hooks>(
    proxy: &Proxy<H>,
    kind: UpstreamError,
    e: Option<io::Error>,
    err: crate::proxy::ErrorPageHeaders,
) -> Reply {
    Reply::Page(proxy.upstream_failed(kind, e.as_ref().map(|e| e as &dyn std::error::Error), err))
}

#[cfg(test)]
mod cut_tests {
    use super::Cut;

    /// A cut connection's log line says why, down to the IO error.
    #[test]
    fn a_cut_names_its_reason_and_keeps_its_cause() {
        let cut = Cut::ClientWrite(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "broken pipe",
        ));
        let line = crate::proxy::error_chain(&cut);
        assert!(line.contains("writing to the client failed"), "{line}");
        assert!(line.contains("broken pipe"), "{line}");
        assert!(crate::proxy::error_chain(&Cut::UpstreamClosed).contains("before its end"));
    }
}
