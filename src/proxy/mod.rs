//! The streaming reverse proxy: listeners, TLS, forwarding, upgrades, header
//! operations and shutdown. It knows nothing about licences: the gate plugs
//! in through [`Hooks`], called at the two points of a request's life where
//! a decision or a lesson is possible (before forwarding, after the answer).

/// The body type, re-exported from its leaf module [`crate::wire`].
pub use crate::wire::body;
pub mod client;
pub mod h1;
pub mod headers;
pub mod server;
pub mod target;
pub mod tls;

use crate::access_log::{self, AccessLog, Note, Trace, Verdict};
use crate::wire::HeaderView;
use body::{boxed, Body};
use http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use ipnet::IpNet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The path prefix reserved for iumgate's own pages; never forwarded.
pub const OWN_PREFIX: &str = "/iumgate/";

/// What the proxy knows about the client's connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The peer is in `trusted_proxies`.
    pub trusted: bool,
    /// The peer's address as `X-Forwarded-For` carries it (made once per
    /// connection, shared by its requests).
    pub peer_value: HeaderValue,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, tls: bool, trusted: bool) -> ConnInfo {
        ConnInfo {
            peer,
            tls,
            trusted,
            peer_value: headers::peer_value(peer.ip().to_canonical()),
        }
    }
}

/// What the hooks decided from a request's head alone ([`Hooks::decide`]).
#[derive(Debug)]
pub enum Decision<C> {
    /// Forward the request as it is.
    Forward(C),
    /// The decision needs the whole request or has to wait (a login body,
    /// the directory, a seat): [`Hooks::on_request`] takes it from here,
    /// with this context.
    Continue(C),
}

/// What the hooks learned from an answer's head alone ([`Hooks::learn`]).
#[derive(Debug)]
pub enum Learned<C> {
    /// All they need: the answer goes to the client as it came (less its
    /// hop-by-hop fields).
    Done,
    /// They must see or change the whole answer: [`Hooks::on_response`]
    /// takes it, with this context.
    Edit(C),
}

/// The request lifecycle hooks (cf. Pingora's `request_filter` /
/// `response_filter`), called by both lanes in the same order:
///
/// ```text
/// decide(head) ─ Forward ─────────────────────────┐
///      └──────── Continue → on_request(request) ──┴→ upstream
/// learn(answer head) ─ Done ──────────────────────┐
///      └────────────── Edit → on_response(answer) ┴→ client
/// ```
///
/// The fast lane calls the synchronous phases on the raw head, the hyper
/// lane on its header map, through the one [`HeaderView`]: each decision
/// is made once, by one implementation, whichever lane the request took.
/// The gate implements them; `passthrough::NoGate` passes everything.
pub trait Hooks: Send + Sync + 'static {
    /// Per-request state carried from `decide` to `on_response`.
    type Ctx: Send + 'static;

    /// From the head alone, without waiting: the method, the target and the
    /// fields as the client sent them (not yet cleaned; the hooks read only
    /// fields the clean-up leaves as they are, and the connection's TLS and
    /// trust from `conn`).
    fn decide(
        &self,
        conn: &ConnInfo,
        method: &Method,
        uri: &Uri,
        headers: &impl HeaderView,
    ) -> Decision<Self::Ctx>;

    /// A [`Decision::Continue`]d request, whole (headers cleaned), with the
    /// context `decide` made. `Err(response)` answers the client without
    /// forwarding.
    fn on_request(
        &self,
        conn: &ConnInfo,
        ctx: Self::Ctx,
        req: Request<Body>,
    ) -> impl Future<Output = Result<(Request<Body>, Self::Ctx), Response<Body>>> + Send;

    /// From the answer's status and head alone (hop-by-hop fields possibly
    /// still in it; the hooks read none of them), without waiting.
    fn learn(
        &self,
        ctx: Self::Ctx,
        status: StatusCode,
        headers: &impl HeaderView,
    ) -> Learned<Self::Ctx>;

    /// A [`Learned::Edit`] answer, whole (hop-by-hop headers removed): the
    /// hooks may change it or answer instead.
    fn on_response(
        &self,
        ctx: Self::Ctx,
        resp: Response<Body>,
    ) -> impl Future<Output = Response<Body>> + Send;

    /// What the access log says of the request: who it was for and what
    /// was decided, read from the context once the decision is made (before
    /// the answer's head is learned). An answer the hooks make themselves may
    /// carry a [`Note`] in its extensions instead, which wins.
    fn note(&self, ctx: &Self::Ctx) -> Note {
        let _ = ctx;
        Note::default()
    }

    /// `/iumgate/…`: the proxy's own pages.
    fn own_page(
        &self,
        conn: &ConnInfo,
        req: Request<Body>,
    ) -> impl Future<Output = Response<Body>> + Send;

    /// The answer when the proxy itself fails the request (`status`: 404 for
    /// a disguised own path, 408 for a stalled body, 502/504 for the
    /// upstream), in the form the client asked for (`request`'s `Accept`
    /// and `Accept-Language`).
    fn error_page(
        &self,
        status: StatusCode,
        request: &impl HeaderView,
        message: &str,
    ) -> Response<Body>;
}

/// Why the upstream could not answer; maps onto 502 vs 504 and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    Connect,
    Timeout,
    Protocol,
}

impl UpstreamError {
    pub fn label(self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Protocol => "protocol",
        }
    }
}

/// Why the fast lane handed a client connection to hyper (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// A request body (`Content-Length` other than 0, chunked, `Expect`).
    Body,
    /// A protocol upgrade (websockets).
    Upgrade,
    /// Not HTTP/1.1 in origin form (HTTP/1.0, CONNECT, an absolute target).
    Protocol,
    /// `Connection` names other fields as hop-by-hop.
    Connection,
    /// iumgate's own pages (`/iumgate/…` and look-alikes).
    OwnPage,
    /// A head larger than `max_header_bytes`.
    LargeHead,
    /// A head that does not parse (hyper answers it: 400).
    Malformed,
}

impl Handover {
    pub const ALL: [Handover; 7] = [
        Handover::Body,
        Handover::Upgrade,
        Handover::Protocol,
        Handover::Connection,
        Handover::OwnPage,
        Handover::LargeHead,
        Handover::Malformed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Handover::Body => "body",
            Handover::Upgrade => "upgrade",
            Handover::Protocol => "protocol",
            Handover::Connection => "connection",
            Handover::OwnPage => "own_page",
            Handover::LargeHead => "large_head",
            Handover::Malformed => "malformed",
        }
    }
}

/// Observes each proxied request (metrics); implemented by the admin room.
pub trait Observer: Send + Sync + 'static {
    fn request_done(&self, status: u16, seconds: f64);
    fn upstream_error(&self, kind: UpstreamError);
    /// A request served by the fast lane ([`h1`]), besides `request_done`.
    fn fast_request(&self) {}
    /// A client connection handed from the fast lane to hyper, and why.
    fn handover(&self, reason: Handover) {
        let _ = reason;
    }
}

impl Observer for () {
    fn request_done(&self, _: u16, _: f64) {}
    fn upstream_error(&self, _: UpstreamError) {}
}

/// Settings the request path needs, precomputed once.
#[derive(Debug)]
pub struct Settings {
    /// `Host` towards the upstream when the client's is not preserved
    /// (built once, not per request).
    pub upstream_host: HeaderValue,
    pub preserve_host: bool,
    pub trusted: Vec<IpNet>,
    pub request_timeout: Duration,
    /// A request body's next bytes must come within this (hyper lane).
    pub body_timeout: Duration,
    /// Headers only the upstream may send, stripped from every request
    /// (the app's list: the proxy knows no app's header names).
    pub upstream_only: &'static [HeaderName],
}

impl Settings {
    /// `upstream_only`: the headers only the upstream may send. A
    /// `proxy.upstream` that is not a URL with a host is refused with the
    /// same error as the client's ([`client::SetupError::Upstream`]).
    pub fn from_config(
        cfg: &crate::config::ProxyConfig,
        upstream_only: &'static [HeaderName],
    ) -> Result<Settings, client::SetupError> {
        let bad = |problem, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
            client::SetupError::Upstream {
                url: cfg.upstream.clone(),
                problem,
                source,
            }
        };
        let uri: Uri = cfg
            .upstream
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad("not a URL", Some(e.into())))?;
        let parts = uri.into_parts();
        let upstream_authority = parts.authority.ok_or_else(|| bad("no host", None))?;
        Ok(Settings {
            upstream_host: HeaderValue::from_str(upstream_authority.as_str())
                .unwrap_or(HeaderValue::from_static("localhost")),
            preserve_host: cfg.preserve_host,
            trusted: cfg.trusted_proxies.clone(),
            request_timeout: cfg.request_timeout.get(),
            body_timeout: cfg.body_timeout.get(),
            upstream_only,
        })
    }

    pub fn is_trusted(&self, peer: &SocketAddr) -> bool {
        let ip = peer.ip().to_canonical();
        self.trusted.iter().any(|n| n.contains(&ip))
    }
}

/// The request path: clean headers → hooks → forward → hooks → client.
pub struct Proxy<H: Hooks> {
    pub settings: Settings,
    pub client: Arc<client::Upstream>,
    pub hooks: Arc<H>,
    pub observer: Arc<dyn Observer>,
    /// Upgraded connections (websockets), drained on shutdown.
    pub tasks: tokio_util::task::TaskTracker,
    /// `[access_log]`, when on.
    pub access_log: Option<Arc<AccessLog>>,
}

impl<H: Hooks> Proxy<H> {
    /// Serves one request of a client connection; `local` holds that
    /// connection's upstream connections (see [`client`]).
    pub async fn handle(
        &self,
        conn: &ConnInfo,
        local: &client::Local,
        req: Request<Incoming>,
    ) -> Response<Body> {
        let start = std::time::Instant::now();
        let Some(log) = &self.access_log else {
            let resp = self
                .handle_inner(conn, local, req, &mut Trace::new(false))
                .await;
            self.observer
                .request_done(resp.status().as_u16(), start.elapsed().as_secs_f64());
            return resp;
        };
        // What the line needs of the request, kept before it moves on
        // (shared bytes, no copies).
        let at_ms = log.now_ms();
        let client = access_log::client_addr(
            conn.peer.ip(),
            conn.trusted,
            &self.settings.trusted,
            req.headers(),
        );
        let (method, target, version) = (req.method().clone(), req.uri().clone(), req.version());
        let (referer, agent) = if log.wants_headers {
            let h = req.headers();
            (
                h.get(header::REFERER).cloned(),
                h.get(header::USER_AGENT).cloned(),
            )
        } else {
            (None, None)
        };
        let mut trace = Trace::new(true);
        let mut resp = self.handle_inner(conn, local, req, &mut trace).await;
        let status = resp.status().as_u16();
        self.observer
            .request_done(status, start.elapsed().as_secs_f64());
        if let Some(n) = resp.extensions_mut().remove::<Note>() {
            trace.note = n.over(std::mem::take(&mut trace.note));
        }
        let entry = access_log::Entry {
            at_ms,
            client,
            method,
            target,
            version,
            status,
            bytes: 0,
            upstream: trace.upstream,
            total: std::time::Duration::ZERO,
            note: trace.note,
            referer,
            agent,
        };
        // Logged once the body has gone out (or the client left).
        resp.map(|b| boxed(access_log::Logged::new(b, entry, log.clone(), start)))
    }

    async fn handle_inner(
        &self,
        conn: &ConnInfo,
        local: &client::Local,
        req: Request<Incoming>,
        trace: &mut Trace,
    ) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        let upgrade = headers::is_upgrade(&parts.headers);
        let client_upgrade = if upgrade {
            parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
        } else {
            None
        };
        // A body that stalls fails after `body_timeout`, for every reader.
        let body = boxed(server::TimeoutBody::new(body, self.settings.body_timeout));
        let ready = match self.prepare(conn, parts, body, upgrade, trace).await {
            Step::Forward(r) => r,
            Step::Answer(resp) => return resp,
        };

        let asked = std::time::Instant::now();
        let sent = tokio::time::timeout(
            self.settings.request_timeout,
            self.client.request(local, ready.req),
        )
        .await;
        if trace.on {
            trace.upstream = Some(asked.elapsed());
        }
        let mut resp = match sent {
            Ok(Ok(r)) => r,
            Ok(Err(e)) if body_timed_out(&e) => {
                // The client's fault, not the upstream's: 408, and the
                // connection closes (the rest of the body is not waited for).
                tracing::debug!(peer = %conn.peer, "request body stalled; 408");
                let mut resp = self.hooks.error_page(
                    StatusCode::REQUEST_TIMEOUT,
                    &ready.err,
                    "the request body did not arrive in time",
                );
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return resp;
            }
            Ok(Err(e)) => {
                let kind = if e.is_connect() {
                    UpstreamError::Connect
                } else {
                    UpstreamError::Protocol
                };
                return self.upstream_failed(kind, Some(&e), ready.err);
            }
            Err(_) => return self.upstream_failed(UpstreamError::Timeout, None, ready.err),
        };

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                self.tasks.spawn(async move {
                    match tokio::try_join!(client_upgrade, upstream_upgrade) {
                        Ok((c, u)) => {
                            let mut c = hyper_util::rt::TokioIo::new(c);
                            let mut u = hyper_util::rt::TokioIo::new(u);
                            if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                                tracing::debug!(error = %e, "upgraded connection ended");
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                    }
                });
            }
        }
        self.finish(ready.ctx, resp.map(boxed)).await
    }

    /// The request half on the hyper lane: own pages, then the hooks'
    /// decision from the head as it came, then header clean-up and
    /// forwarding headers, then the rest of the decision if it needs more.
    /// `upgrade`: the request asks for a protocol upgrade.
    pub(crate) async fn prepare(
        &self,
        conn: &ConnInfo,
        mut parts: http::request::Parts,
        body: Body,
        upgrade: bool,
        trace: &mut Trace,
    ) -> Step<H::Ctx> {
        let class = target::classify(parts.uri.path());
        if trace.on && class != target::Target::Upstream {
            trace.note = Note::new(None, Verdict::Own);
        }
        match class {
            target::Target::Upstream => {}
            target::Target::Own => {
                headers::strip_upstream_only(&mut parts.headers, self.settings.upstream_only);
                return Step::Answer(
                    self.hooks
                        .own_page(conn, Request::from_parts(parts, body))
                        .await,
                );
            }
            // Dressed up to slip past the prefix check: neither ours to serve
            // nor the upstream's to see.
            target::Target::DisguisedOwn => {
                return Step::Answer(self.hooks.error_page(
                    StatusCode::NOT_FOUND,
                    &parts.headers,
                    "no such page",
                ));
            }
        }
        let decision = self
            .hooks
            .decide(conn, &parts.method, &parts.uri, &parts.headers);
        edit_request(&self.settings, conn, &mut parts, upgrade);
        self.carry_out(conn, decision, parts, body, trace).await
    }

    /// A decided request, its headers cleaned (on either lane): forwarded,
    /// or handed to [`Hooks::on_request`] when the decision needs more.
    pub(crate) async fn carry_out(
        &self,
        conn: &ConnInfo,
        decision: Decision<H::Ctx>,
        parts: http::request::Parts,
        body: Body,
        trace: &mut Trace,
    ) -> Step<H::Ctx> {
        // Only what an error page needs, not a copy of every header per request.
        let err = ErrorPageHeaders::of(&parts.headers);
        let req = Request::from_parts(parts, body);
        match decision {
            Decision::Forward(ctx) => {
                if trace.on {
                    trace.note = self.hooks.note(&ctx);
                }
                Step::Forward(Ready { req, ctx, err })
            }
            Decision::Continue(ctx) => {
                // What was known from the head, for an answer made instead
                // of forwarding that says nothing itself.
                if trace.on {
                    trace.note = self.hooks.note(&ctx);
                }
                match self.hooks.on_request(conn, ctx, req).await {
                    Ok((req, ctx)) => {
                        if trace.on {
                            trace.note = self.hooks.note(&ctx);
                        }
                        Step::Forward(Ready { req, ctx, err })
                    }
                    Err(resp) => Step::Answer(resp),
                }
            }
        }
    }

    /// The answer half on the hyper lane: hop-by-hop headers out, then the
    /// hooks learn from the head, and see the whole answer if they must.
    pub(crate) async fn finish(&self, ctx: H::Ctx, resp: Response<Body>) -> Response<Body> {
        let keep_upgrade = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        let (mut rparts, rbody) = resp.into_parts();
        headers::remove_hop_by_hop(&mut rparts.headers, keep_upgrade);
        match self.hooks.learn(ctx, rparts.status, &rparts.headers) {
            Learned::Done => Response::from_parts(rparts, rbody),
            Learned::Edit(ctx) => {
                self.hooks
                    .on_response(ctx, Response::from_parts(rparts, rbody))
                    .await
            }
        }
    }

    /// An answer the hooks asked to see whole after learning from its raw
    /// head (the fast lane): hop-by-hop headers out, then
    /// [`Hooks::on_response`].
    pub(crate) async fn edit_answer(&self, ctx: H::Ctx, resp: Response<Body>) -> Response<Body> {
        let keep_upgrade = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        let (mut rparts, rbody) = resp.into_parts();
        headers::remove_hop_by_hop(&mut rparts.headers, keep_upgrade);
        self.hooks
            .on_response(ctx, Response::from_parts(rparts, rbody))
            .await
    }

    /// The upstream could not answer: counted, logged, and a 502 (504 for a
    /// time-out) page in the client's language.
    pub(crate) fn upstream_failed(
        &self,
        kind: UpstreamError,
        error: Option<&dyn std::error::Error>,
        err: ErrorPageHeaders,
    ) -> Response<Body> {
        self.observer.upstream_error(kind);
        let status = if kind == UpstreamError::Timeout {
            tracing::warn!(
                timeout = ?self.settings.request_timeout,
                "upstream did not answer in time"
            );
            StatusCode::GATEWAY_TIMEOUT
        } else {
            let error = error.map(error_chain).unwrap_or_default();
            tracing::warn!(%error, kind = kind.label(), "upstream request failed");
            StatusCode::BAD_GATEWAY
        };
        self.hooks.error_page(status, &err, kind.label())
    }
}

/// The edits every request forwarded on the header-map path gets: hop-by-hop
/// and upstream-only headers out, `X-Forwarded-*` set, `Host` for the
/// upstream, origin form, HTTP/1.1. (The fast lane's raw path writes the
/// same head without a map: `h1::encode::write_forwarded_head`.)
pub(crate) fn edit_request(
    settings: &Settings,
    conn: &ConnInfo,
    parts: &mut http::request::Parts,
    upgrade: bool,
) {
    // Host as the client sent it (HTTP/2: the :authority) unless told otherwise.
    let client_host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    // (`Expect: 100-continue`: hyper answers it itself once the body is read.)
    headers::clean_request(
        &mut parts.headers,
        upgrade,
        settings.upstream_only,
        conn.trusted,
    );
    headers::set_forwarded(
        &mut parts.headers,
        &conn.peer_value,
        conn.trusted,
        if conn.tls { "https" } else { "http" },
        client_host.clone(),
    );
    let upstream_host = match (&client_host, settings.preserve_host) {
        (Some(h), true) => h.clone(),
        _ => settings.upstream_host.clone(),
    };
    parts.headers.insert(header::HOST, upstream_host);
    // Origin form (`/path?query`) towards the upstream: the connection
    // already says where it goes, and Host says for whom.
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path_and_query);
    }
    parts.version = http::Version::HTTP_11;
}

/// What [`Proxy::prepare`] decided.
pub(crate) enum Step<C> {
    /// Send this to the upstream.
    Forward(Ready<C>),
    /// Answer the client with this instead (own page, waiting room, …).
    Answer(Response<Body>),
}

/// A request ready for the upstream, with what its answer will need.
pub(crate) struct Ready<C> {
    pub req: Request<Body>,
    pub ctx: C,
    pub err: ErrorPageHeaders,
}

/// The request headers an error page reads (`Accept` for HTML or JSON,
/// `Accept-Language`), kept aside before the request moves on: cloning a
/// header value shares its bytes, cloning the whole map would allocate.
pub(crate) struct ErrorPageHeaders {
    accept: Option<HeaderValue>,
    accept_language: Option<HeaderValue>,
}

impl ErrorPageHeaders {
    pub(crate) fn new(
        accept: Option<HeaderValue>,
        accept_language: Option<HeaderValue>,
    ) -> ErrorPageHeaders {
        ErrorPageHeaders {
            accept,
            accept_language,
        }
    }

    fn of(headers: &http::HeaderMap) -> ErrorPageHeaders {
        ErrorPageHeaders {
            accept: headers.get(header::ACCEPT).cloned(),
            accept_language: headers.get(header::ACCEPT_LANGUAGE).cloned(),
        }
    }
}

impl HeaderView for ErrorPageHeaders {
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.value(name).into_iter()
    }

    fn value(&self, name: &HeaderName) -> Option<&[u8]> {
        let value = if name == header::ACCEPT {
            self.accept.as_ref()
        } else if name == header::ACCEPT_LANGUAGE {
            self.accept_language.as_ref()
        } else {
            None
        };
        value.map(HeaderValue::as_bytes)
    }
}

/// `a: b: c` — an error with its causes, for one log line.
/// Whether `e` is (or was caused by) a request body that stalled past
/// `body_timeout` ([`server::BodyTimedOut`]).
fn body_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.is::<server::BodyTimedOut>() {
            return true;
        }
        cur = c.source();
    }
    false
}

pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
