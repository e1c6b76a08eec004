//! The keep-alive client towards the upstream (HTTP/1.1 over http or https).
//!
//! Built on hyper's low-level HTTP/1 connections rather than a general pooled
//! client, because on a proxy's request path the pool is the cost: a pooled
//! client runs every upstream connection as a task of its own, so each request
//! crosses tasks twice (request in, answer out) and pays a pool check-out with
//! a lock and a hashed key. Here an upstream connection is **driven by the task
//! of the client connection that uses it** ([`Driven`]): the request is written
//! and its answer read in the same task that serves the client, with no
//! cross-task hand-off. nginx works the same way (one event loop, the upstream
//! connection handled inline).
//!
//! - Each client connection has a [`Local`] set of upstream connections it
//!   opened or adopted; a request takes a ready one, else adopts a parked one,
//!   else connects.
//! - When the client connection ends, its idle upstream connections are
//!   **parked** in the shared [`Upstream`] for the next client connection
//!   (reuse across clients, as a pool would do); a sweep every few seconds
//!   closes parked connections that the upstream closed or that stayed idle
//!   longer than `idle_timeout`.
//! - A request that was not sent (the connection closed just before) is
//!   retried once on a fresh connection; one that was sent is never repeated.

use super::body::Body;
use crate::config::ProxyConfig;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{pem::PemObject, CertificateDer, ServerName};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Idle upstream connections kept for later client connections, at most.
const MAX_PARKED: usize = 1024;

/// An upstream connection's I/O future (hyper's connection state machine).
type ConnFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why the upstream could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection could be opened (refused, unreachable, DNS, time-out,
    /// TLS). `source` is the I/O error of the `step` that failed (a TLS
    /// failure is an `io::Error` holding the `rustls::Error`; a time-out has
    /// kind `TimedOut`): log it with [`super::error_chain`].
    #[error("upstream {addr} (proxy.upstream): {step} failed")]
    Connect {
        addr: String,
        step: ConnectStep,
        #[source]
        source: std::io::Error,
    },
    /// The connection failed while the request or answer was under way
    /// (transparent: hyper's error and its cause, each once in the chain).
    #[error(transparent)]
    Protocol(hyper::Error),
}

impl ClientError {
    pub fn is_connect(&self) -> bool {
        matches!(self, ClientError::Connect { .. })
    }
}

/// The part of opening an upstream connection that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectStep {
    /// Name look-up and TCP connect, under `connect_timeout`.
    Tcp,
    /// The TLS handshake of an https upstream, under `connect_timeout`.
    Tls,
}

impl std::fmt::Display for ConnectStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConnectStep::Tcp => "tcp connect",
            ConnectStep::Tls => "tls handshake",
        })
    }
}

/// An `io::Error` of kind `TimedOut` for a step that took longer than `limit`.
fn timed_out(limit: Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("timed out after {limit:?} (proxy.connect_timeout)"),
    )
}

/// Why the upstream client cannot be made: the setting at fault and the
/// error underneath, where there is one.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `proxy.upstream` is not an `http://` or `https://` URL with a host.
    #[error("proxy.upstream {url:?}: {problem}")]
    Upstream {
        url: String,
        problem: &'static str,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// `proxy.upstream_ca_file` cannot be read or holds no usable certificate.
    #[error("proxy.upstream_ca_file {}: {problem}", path.display())]
    CaFile {
        path: std::path::PathBuf,
        problem: &'static str,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// rustls refused the client settings (a bug rather than a setting).
    #[error("proxy.upstream: the TLS client settings cannot be made")]
    Tls(#[source] rustls::Error),
}

impl SetupError {
    /// The config key at fault.
    pub fn key(&self) -> &'static str {
        match self {
            SetupError::Upstream { .. } | SetupError::Tls(_) => "proxy.upstream",
            SetupError::CaFile { .. } => "proxy.upstream_ca_file",
        }
    }
}

/// The rustls client config: the system's roots plus `upstream_ca_file`.
pub fn tls_client_config(
    extra_ca: Option<&std::path::Path>,
) -> Result<rustls::ClientConfig, SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = extra_ca {
        let ca = |problem, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
            SetupError::CaFile {
                path: path.to_owned(),
                problem,
                source,
            }
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca("cannot read the file", Some(e.into())))?
            .collect::<Result<_, _>>()
            .map_err(|e| ca("not PEM certificates", Some(e.into())))?;
        if certs.is_empty() {
            return Err(ca("no certificate in the file", None));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| ca("a certificate is not usable", Some(e.into())))?;
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(SetupError::Tls)
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// Where and how to connect.
struct Target {
    /// `host:port` for DNS (`[v6]:port` as written).
    addr: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    h1: http1::Builder,
}

/// An idle upstream connection that no client connection drives right now.
struct Parked {
    send: http1::SendRequest<Body>,
    conn: ConnFuture,
    since: Instant,
}

/// The upstream: where it is, plus the parked idle connections.
pub struct Upstream {
    target: Target,
    parked: Mutex<VecDeque<Parked>>,
    /// Idle plain TCP connections of the HTTP/1.1 fast lane ([`super::h1`]).
    raw: super::h1::RawPool,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.target.addr)
            .field("tls", &self.target.tls.is_some())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain lists behind: still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn build(cfg: &ProxyConfig) -> Result<Arc<Upstream>, SetupError> {
    let bad =
        |problem, source: Option<Box<dyn std::error::Error + Send + Sync>>| SetupError::Upstream {
            url: cfg.upstream.clone(),
            problem,
            source,
        };
    let uri: http::Uri = cfg
        .upstream
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad("not a URL", Some(e.into())))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") | None => false,
        Some(_) => return Err(bad("the scheme must be http or https", None)),
    };
    let host = uri.host().ok_or_else(|| bad("no host", None))?;
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let addr = if bare_host.contains(':') {
        format!("[{bare_host}]:{port}")
    } else {
        format!("{bare_host}:{port}")
    };
    let tls = if https {
        let mut tls = tls_client_config(cfg.upstream_ca_file.as_deref())?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(bare_host.to_string())
            .map_err(|e| bad("the host is not a TLS server name", Some(e.into())))?;
        Some((tokio_rustls::TlsConnector::from(Arc::new(tls)), name))
    } else {
        None
    };
    let mut h1 = http1::Builder::new();
    h1.max_buf_size(cfg.max_header_bytes.max(8192).max(64 * 1024));
    Ok(Arc::new(Upstream {
        target: Target {
            addr,
            tls,
            connect_timeout: cfg.connect_timeout.get(),
            idle_timeout: cfg.idle_timeout.get(),
            h1,
        },
        parked: Mutex::new(VecDeque::new()),
        raw: super::h1::RawPool::new(cfg.idle_timeout.get()),
    }))
}

/// The upstream connections of one client connection, driven by its task
/// (see [`Driven`]).
#[derive(Default)]
pub struct Local {
    inner: Mutex<LocalInner>,
}

#[derive(Default)]
struct LocalInner {
    /// Request sides not in use (free, or once the answer in flight is read),
    /// by connection id.
    idle: Vec<(u64, http1::SendRequest<Body>)>,
    /// The I/O of every connection, idle or in use, by connection id.
    conns: Vec<(u64, ConnFuture)>,
    next_id: u64,
    /// The driving task, woken when a connection is added.
    waker: Option<Waker>,
    /// The client connection ended: nothing drives `conns` any more.
    closed: bool,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = lock(&self.inner);
        f.debug_struct("Local")
            .field("idle", &inner.idle.len())
            .field("conns", &inner.conns.len())
            .field("closed", &inner.closed)
            .finish()
    }
}

impl Local {
    /// Hands a connection's I/O to the driving task (or, once the client
    /// connection is gone, to a task of its own).
    /// Returns the connection's id here.
    fn adopt(&self, conn: ConnFuture) -> u64 {
        let mut inner = lock(&self.inner);
        if inner.closed {
            drop(inner);
            tokio::spawn(conn);
            return u64::MAX;
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.conns.push((id, conn));
        if let Some(w) = &inner.waker {
            w.wake_by_ref();
        }
        id
    }

    fn take_ready(&self) -> Option<(u64, http1::SendRequest<Body>)> {
        let mut inner = lock(&self.inner);
        inner.idle.retain(|(_, s)| !s.is_closed());
        let i = inner.idle.iter().position(|(_, s)| s.is_ready())?;
        Some(inner.idle.swap_remove(i))
    }

    fn give_back(&self, id: u64, send: http1::SendRequest<Body>) {
        let mut inner = lock(&self.inner);
        if !inner.closed {
            inner.idle.push((id, send));
        }
    }

    /// Polls every connection; finished ones are dropped.
    fn poll_conns(&self, cx: &mut Context<'_>) {
        let mut inner = lock(&self.inner);
        if !inner
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            inner.waker = Some(cx.waker().clone());
        }
        inner
            .conns
            .retain_mut(|(_, c)| c.as_mut().poll(cx).is_pending());
    }

    /// The client connection ended: idle connections are parked for others,
    /// the rest (an answer still in flight to a client that left) closed.
    fn close(&self, upstream: &Upstream) {
        let (idle, mut conns) = {
            let mut inner = lock(&self.inner);
            inner.closed = true;
            inner.waker = None;
            (
                std::mem::take(&mut inner.idle),
                std::mem::take(&mut inner.conns),
            )
        };
        let now = Instant::now();
        let mut parked = lock(&upstream.parked);
        for (id, send) in idle {
            if parked.len() >= MAX_PARKED || !send.is_ready() {
                continue;
            }
            if let Some(i) = conns.iter().position(|(cid, _)| *cid == id) {
                let (_, conn) = conns.swap_remove(i);
                parked.push_back(Parked {
                    send,
                    conn,
                    since: now,
                });
            }
        }
    }
}

impl Upstream {
    /// Sends `req` over one of `local`'s connections (or a parked or new one).
    /// `req`'s URI must be in origin form (`/path?query`).
    pub async fn request(
        &self,
        local: &Local,
        mut req: Request<Body>,
    ) -> Result<Response<Incoming>, ClientError> {
        // A kept-alive connection may turn out closed just as the request is
        // handed to it: a request hyper did not send is retried once, on a
        // new connection; one it sent never is, nor one a new connection failed.
        let mut fresh = false;
        loop {
            let kept = if fresh {
                None
            } else {
                local.take_ready().or_else(|| self.unpark(local))
            };
            let (id, mut send) = match kept {
                Some(s) => s,
                None => {
                    fresh = true;
                    self.connect(local).await?
                }
            };
            match send.try_send_request(req).await {
                Ok(resp) => {
                    local.give_back(id, send);
                    return Ok(resp);
                }
                Err(mut e) => match e.take_message() {
                    Some(back) if !fresh => {
                        tracing::debug!(error = %e.error(), "upstream connection closed before the request was sent; retrying on a new one");
                        req = back;
                        fresh = true;
                    }
                    _ => return Err(ClientError::Protocol(e.into_error())),
                },
            }
        }
    }

    /// A parked connection that is still open, handed to `local`.
    fn unpark(&self, local: &Local) -> Option<(u64, http1::SendRequest<Body>)> {
        let mut parked = lock(&self.parked);
        while let Some(mut p) = parked.pop_back() {
            if p.since.elapsed() >= self.target.idle_timeout {
                continue;
            }
            // Notices a close by the upstream (EOF) that arrived while parked.
            let mut cx = Context::from_waker(Waker::noop());
            if p.conn.as_mut().poll(&mut cx).is_ready() || !p.send.is_ready() {
                continue;
            }
            drop(parked);
            return Some((local.adopt(p.conn), p.send));
        }
        None
    }

    /// Opens a new connection (TCP, TLS when https) and hands its I/O to `local`.
    async fn connect(&self, local: &Local) -> Result<(u64, http1::SendRequest<Body>), ClientError> {
        let t = &self.target;
        let fail = |source| ClientError::Connect {
            addr: t.addr.clone(),
            step: ConnectStep::Tls,
            source,
        };
        let tcp = self.connect_tcp().await?;
        let (send, conn): (_, ConnFuture) = match &t.tls {
            None => {
                let (send, conn) =
                    t.h1.handshake(TokioIo::new(tcp))
                        .await
                        .map_err(ClientError::Protocol)?;
                (send, Box::pin(run(conn.with_upgrades())))
            }
            Some((connector, name)) => {
                let tls =
                    tokio::time::timeout(t.connect_timeout, connector.connect(name.clone(), tcp))
                        .await
                        .map_err(|_| fail(timed_out(t.connect_timeout)))?
                        .map_err(fail)?;
                let (send, conn) =
                    t.h1.handshake(TokioIo::new(tls))
                        .await
                        .map_err(ClientError::Protocol)?;
                (send, Box::pin(run(conn.with_upgrades())))
            }
        };
        Ok((local.adopt(conn), send))
    }

    /// Closes parked connections that the upstream closed or that idled too
    /// long. Called every few seconds by [`Upstream::sweep_every`].
    pub fn sweep(&self) {
        let mut cx = Context::from_waker(Waker::noop());
        let idle_timeout = self.target.idle_timeout;
        lock(&self.parked).retain_mut(|p| {
            p.since.elapsed() < idle_timeout && p.conn.as_mut().poll(&mut cx).is_pending()
        });
        self.raw.sweep();
    }

    pub async fn sweep_every(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let every =
            (self.target.idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(15));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => self.sweep(),
            }
        }
    }

    /// Parked connections (for tests and the status page).
    pub fn parked(&self) -> usize {
        lock(&self.parked).len() + self.raw.len()
    }

    /// Whether the upstream speaks plain http (the fast lane's condition).
    pub fn is_plain(&self) -> bool {
        self.target.tls.is_none()
    }

    /// Opens a TCP connection to the upstream (under `connect_timeout`).
    pub async fn connect_tcp(&self) -> Result<tokio::net::TcpStream, ClientError> {
        let t = &self.target;
        let fail = |source| ClientError::Connect {
            addr: t.addr.clone(),
            step: ConnectStep::Tcp,
            source,
        };
        let tcp = tokio::time::timeout(t.connect_timeout, async {
            let mut last = None;
            for a in tokio::net::lookup_host(t.addr.as_str()).await? {
                match tokio::net::TcpStream::connect(a).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| std::io::Error::other("the name resolved to no address")))
        })
        .await
        .map_err(|_| fail(timed_out(t.connect_timeout)))?
        .map_err(fail)?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    /// The fast lane's idle plain connections.
    pub fn raw(&self) -> &super::h1::RawPool {
        &self.raw
    }
}

async fn run<F>(conn: F)
where
    F: Future<Output = hyper::Result<()>>,
{
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "upstream connection ended");
    }
}

pin_project_lite::pin_project! {
    /// A client connection's future together with the upstream connections its
    /// requests use, polled by one task.
    pub struct Driven<F> {
        #[pin]
        inner: F,
        local: Arc<Local>,
        upstream: Arc<Upstream>,
    }

    impl<F> PinnedDrop for Driven<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.local.close(this.upstream);
        }
    }
}

impl<F> Driven<F> {
    pub fn new(inner: F, local: Arc<Local>, upstream: Arc<Upstream>) -> Driven<F> {
        Driven {
            inner,
            local,
            upstream,
        }
    }
}

impl<F: Future> Future for Driven<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // The client side first (it may send a request or adopt a
        // connection), then the upstream connections (write it, read answers).
        if let Poll::Ready(out) = this.inner.poll(cx) {
            return Poll::Ready(out);
        }
        this.local.poll_conns(cx);
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn upstream(url: &str) -> Arc<Upstream> {
        build(&ProxyConfig {
            upstream: url.to_string(),
            connect_timeout: crate::config::Dur::secs(5),
            ..ProxyConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn a_client_that_cannot_be_made_names_the_key_and_keeps_the_cause() {
        let e = build(&ProxyConfig {
            upstream: "http://exa mple".into(),
            ..ProxyConfig::default()
        })
        .unwrap_err();
        assert_eq!(e.key(), "proxy.upstream");
        assert_eq!(
            e.to_string(),
            "proxy.upstream \"http://exa mple\": not a URL"
        );
        assert!(e.source().is_some_and(|s| s.is::<http::uri::InvalidUri>()));

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ca.pem");
        let e = build(&ProxyConfig {
            upstream: "https://jira.example.com".into(),
            upstream_ca_file: Some(missing.clone()),
            ..ProxyConfig::default()
        })
        .unwrap_err();
        assert_eq!(e.key(), "proxy.upstream_ca_file");
        assert_eq!(
            e.to_string(),
            format!(
                "proxy.upstream_ca_file {}: cannot read the file",
                missing.display()
            )
        );
        assert!(e.source().is_some(), "{e:?}");
    }

    /// An upstream that closes without answering: a Protocol error whose
    /// chain names hyper's error and its cause once each.
    #[tokio::test]
    async fn a_protocol_error_is_hypers_own_in_the_chain() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            // Closes without an answer.
        });
        let up = upstream(&format!("http://{addr}"));
        let local = Arc::new(Local::default());
        let req = Request::get("/").body(super::super::body::empty()).unwrap();
        let sent = Driven::new(up.request(&local, req), local.clone(), up.clone()).await;
        let Err(err) = sent else {
            panic!("an answer from a server that sent none")
        };
        assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
        let chain = crate::proxy::error_chain(&err);
        let first = chain.split(": ").next().unwrap();
        assert_eq!(chain.matches(first).count(), 1, "{chain}");
    }

    #[tokio::test]
    async fn a_refused_connect_keeps_the_io_error_as_its_source() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = upstream(&format!("http://{addr}"))
            .connect_tcp()
            .await
            .unwrap_err();
        assert!(err.is_connect());
        assert_eq!(
            err.to_string(),
            format!("upstream {addr} (proxy.upstream): tcp connect failed")
        );
        let ClientError::Connect { step, source, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*step, ConnectStep::Tcp);
        assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        let io = err
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>());
        assert!(io.is_some(), "{err:?}");
        let chain = crate::proxy::error_chain(&err);
        assert!(chain.contains("tcp connect failed: "), "{chain}");
    }

    #[tokio::test]
    async fn a_failed_tls_handshake_says_so_and_keeps_the_tls_error() {
        // Speaks plain text where TLS is expected.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        });
        let up = upstream(&format!("https://{addr}"));
        let err = match up.connect(&Local::default()).await {
            Ok(_) => panic!("a plain-text server passed the TLS handshake"),
            Err(e) => e,
        };
        let ClientError::Connect { step, source, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*step, ConnectStep::Tls);
        // tokio-rustls reports the TLS error inside an io::Error.
        assert!(source.get_ref().is_some(), "{source:?}");
        let chain = crate::proxy::error_chain(&err);
        assert!(
            chain.starts_with(&format!(
                "upstream {addr} (proxy.upstream): tls handshake failed: "
            )),
            "{chain}"
        );
    }
}
