//! Listeners: accept under a connection limit, TLS handshake inside the
//! connection's task under a time-out, HTTP/1.1 + HTTP/2 (auto-detected, ALPN
//! on TLS) with upgrades, and graceful drain.

use super::client::{Driven, Local};
use super::h1::{self, Exit, LaneLimits, Rewind};
use super::{tls::CertStore, ConnInfo, Hooks, Proxy};
use crate::config::ProxyConfig;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

type ConnError = Box<dyn std::error::Error + Send + Sync>;

/// Connection-level limits, from `[proxy]`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// A write to the client that makes no progress this long fails.
    pub send_timeout: Duration,
    /// `[proxy] fast_lane`: simple HTTP/1.1 requests take the fast lane.
    pub fast_lane: bool,
    pub handshake_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl Limits {
    pub fn from_config(cfg: &ProxyConfig) -> Limits {
        Limits {
            max_connections: cfg.max_connections,
            max_header_bytes: cfg.max_header_bytes,
            header_timeout: cfg.header_timeout.get(),
            idle_timeout: cfg.idle_timeout.get(),
            send_timeout: cfg.send_timeout.get(),
            fast_lane: cfg.fast_lane,
            handshake_timeout: cfg
                .tls
                .as_ref()
                .map(|t| t.handshake_timeout.get())
                .unwrap_or(Duration::from_secs(10)),
            shutdown_grace: cfg.shutdown_grace.get(),
        }
    }
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // hyper answers 431 when the head does not fit.
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(250);
    b
}

/// Serves `listener` until `stop` is cancelled, then drains in-flight
/// requests and upgraded connections for up to `shutdown_grace`.
pub async fn serve<H: Hooks>(
    listener: TcpListener,
    tls: Option<Arc<CertStore>>,
    proxy: Arc<Proxy<H>>,
    limits: Limits,
    stop: CancellationToken,
) {
    let shared = Arc::new(Shared {
        builder: builder(&limits),
        proxy: proxy.clone(),
        limits: limits.clone(),
        stop: stop.clone(),
    });
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Every connection's task, fast lane or hyper, for the drain.
    let conns = tokio_util::task::TaskTracker::new();
    let acceptor = match &tls {
        Some(store) => match store.server_config() {
            Ok(cfg) => Some(tokio_rustls::TlsAcceptor::from(cfg)),
            Err(e) => {
                tracing::error!(error = %super::error_chain(&e), "TLS set-up failed; not serving");
                return;
            }
        },
        None => None,
    };
    loop {
        // Take a permit before accepting: over the limit, new connections
        // wait in the kernel's backlog instead of being half-served.
        // `biased`: once the drain began, no further connection is taken.
        let permit = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // Every write to the client, on either lane (and through TLS), under
        // `send_timeout`: a client that stops reading is let go.
        let stream = SendTimeout::new(stream, limits.send_timeout);
        let conn = Arc::new(ConnInfo::new(
            peer,
            acceptor.is_some(),
            proxy.settings.is_trusted(&peer),
        ));
        let shared = shared.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        conns.spawn(async move {
            let (limits, proxy) = (&shared.limits, &shared.proxy);
            match acceptor {
                None => {
                    let fast = limits.fast_lane && proxy.client.is_plain();
                    serve_conn(&shared, &conn, stream, fast, watcher).await
                }
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(
                        limits.handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %conn.peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(peer = %conn.peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    // HTTP/2 (by ALPN) is hyper's.
                    let fast = limits.fast_lane
                        && proxy.client.is_plain()
                        && tls.get_ref().1.alpn_protocol() != Some(b"h2".as_slice());
                    serve_conn(&shared, &conn, tls, fast, watcher).await
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    proxy.tasks.close();
    conns.close();
    let grace = limits.shutdown_grace;
    let drained = tokio::time::timeout(grace, async {
        graceful.shutdown().await;
        conns.wait().await;
        proxy.tasks.wait().await;
    })
    .await;
    match drained {
        Ok(()) => tracing::info!("all connections drained"),
        Err(_) => tracing::warn!(
            ?grace,
            "shutdown grace over; closing the remaining connections"
        ),
    }
}

/// What every connection of a listener shares.
struct Shared<H: Hooks> {
    proxy: Arc<Proxy<H>>,
    /// hyper's connection builder (HTTP/1.1 and HTTP/2 settings).
    builder: auto::Builder<TokioExecutor>,
    limits: Limits,
    /// The drain signal.
    stop: CancellationToken,
}

/// One client connection: the fast lane while its requests are simple (and
/// `fast` allows it), hyper from the first one that is not.
async fn serve_conn<H: Hooks, S>(
    shared: &Shared<H>,
    conn: &Arc<ConnInfo>,
    io: S,
    fast: bool,
    watcher: Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (proxy, limits, stop) = (&shared.proxy, &shared.limits, &shared.stop);
    let io = if fast {
        let lane = LaneLimits {
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            max_header_bytes: limits.max_header_bytes,
        };
        match h1::serve(proxy, conn, io, lane, stop).await {
            Exit::Closed => return,
            Exit::Handover(io) => io,
        }
    } else {
        Rewind::new(io)
    };
    let got_request = Arc::new(AtomicBool::new(false));
    // This connection's upstream connections, driven by its task.
    let local = Arc::new(Local::default());
    let svc = {
        let conn = conn.clone();
        let got_request = got_request.clone();
        let local = local.clone();
        let proxy = proxy.clone();
        service_fn(move |req| {
            got_request.store(true, Ordering::Release);
            let proxy = proxy.clone();
            let conn = conn.clone();
            let local = local.clone();
            async move { Ok::<_, Infallible>(proxy.handle(&conn, &local, req).await) }
        })
    };
    let c = shared
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), svc)
        .into_owned();
    let watched = Driven::new(watcher.watch(c), local, proxy.client.clone());
    match first_request_within(watched, &got_request, limits.header_timeout).await {
        Some(Err(e)) => {
            tracing::debug!(peer = %conn.peer, error = %e, "connection ended with error");
        }
        None => tracing::debug!(peer = %conn.peer, "no request in time; closed"),
        Some(Ok(())) => {}
    }
}

/// Runs `conn`, but drops it (closing the socket) if no request has arrived
/// `limit` after the start. hyper's own header timer only starts once
/// hyper-util has sniffed the protocol from the first bytes, and that sniffing
/// waits without a deadline: a client that connects and stays silent would
/// hold a connection permit forever (and `max_connections` of them would shut
/// everyone else out). Later requests are covered by hyper's timer.
pub(crate) async fn first_request_within<F>(
    conn: F,
    got_request: &AtomicBool,
    limit: Duration,
) -> Option<Result<(), ConnError>>
where
    F: Future<Output = Result<(), ConnError>>,
{
    tokio::pin!(conn);
    tokio::select! {
        r = &mut conn => return Some(r),
        _ = tokio::time::sleep(limit) => {}
    }
    if got_request.load(Ordering::Acquire) {
        Some(conn.await)
    } else {
        None
    }
}

/// Re-checks the certificate files every `every` (SIGHUP reloads at once elsewhere).
pub async fn watch_cert(store: Arc<CertStore>, every: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {
                let _ = store.reload_if_changed();
            }
        }
    }
}

/// A client connection whose writes fail with `TimedOut` when one stays
/// pending (no byte accepted) longer than `limit`: nginx's `send_timeout`.
/// A client that never reads would otherwise hold its connection, and the
/// upstream connection feeding it, as long as it likes. Both lanes write
/// through it, and TLS wraps it, so every byte towards the client is covered.
/// The timer is made once, the first time a write has to wait, and costs
/// nothing while writes go straight through.
pub struct SendTimeout<S> {
    inner: S,
    limit: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A write is waiting and `timer` runs for it.
    armed: bool,
}

impl<S> SendTimeout<S> {
    pub fn new(inner: S, limit: Duration) -> SendTimeout<S> {
        SendTimeout {
            inner,
            limit,
            timer: None,
            armed: false,
        }
    }

    /// Progress: the next wait starts a new deadline.
    fn progressed<T>(&mut self, r: Poll<T>) -> Poll<T> {
        if r.is_ready() {
            self.armed = false;
        }
        r
    }

    /// A write is pending: `Ready(Err)` once it has been for `limit`.
    fn waited<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.armed {
            self.armed = true;
            let deadline = tokio::time::Instant::now() + self.limit;
            match &mut self.timer {
                Some(t) => t.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let fired = self
            .timer
            .as_mut()
            .is_some_and(|t| t.as_mut().poll(cx).is_ready());
        if fired {
            self.armed = false;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing within send_timeout",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => this.waited(cx),
            r => this.progressed(r),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.waited(cx),
            r => this.progressed(r),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.waited(cx),
            r => this.progressed(r),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => this.waited(cx),
            r => this.progressed(r),
        }
    }
}

/// Why a request body failed in [`TimeoutBody`].
#[derive(Debug, thiserror::Error)]
#[error("the request body sent nothing within body_timeout")]
pub struct BodyTimedOut;

pin_project_lite::pin_project! {
    /// A request body whose next frame must come within `limit` of asking
    /// for it (nginx's `client_body_timeout`): a client that starts a body and
    /// stalls fails it, and whoever reads it (the upstream exchange, the
    /// gate's login peek) stops waiting. The timer is made the first time a
    /// frame is not there at once.
    pub struct TimeoutBody<B> {
        #[pin]
        inner: B,
        limit: Duration,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
        armed: bool,
    }
}

impl<B> TimeoutBody<B> {
    pub fn new(inner: B, limit: Duration) -> TimeoutBody<B> {
        TimeoutBody {
            inner,
            limit,
            timer: None,
            armed: false,
        }
    }
}

impl<B> http_body::Body for TimeoutBody<B>
where
    B: http_body::Body,
    B::Error: Into<super::body::BoxError>,
{
    type Data = B::Data;
    type Error = super::body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, Self::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(r) => {
                *this.armed = false;
                Poll::Ready(r.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if !*this.armed {
                    *this.armed = true;
                    let deadline = tokio::time::Instant::now() + *this.limit;
                    match this.timer {
                        Some(t) => t.as_mut().reset(deadline),
                        None => *this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                let fired = this
                    .timer
                    .as_mut()
                    .is_some_and(|t| t.as_mut().poll(cx).is_ready());
                if fired {
                    *this.armed = false;
                    return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The bound on every wait here: far above the 200 ms limits.
    const BOUND: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_write_nobody_reads_fails_after_the_send_timeout() {
        let (a, _b) = tokio::io::duplex(64);
        let mut w = SendTimeout::new(a, Duration::from_millis(200));
        let r = tokio::time::timeout(BOUND, w.write_all(&[0; 4096]))
            .await
            .expect("the write was not cut");
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_reader_that_keeps_reading_is_never_cut() {
        let (a, mut b) = tokio::io::duplex(16);
        let mut w = SendTimeout::new(a, Duration::from_millis(200));
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 16];
            while got < 1024 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                match b.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            got
        });
        // Each write waits for the reader, never 200 ms in a row.
        tokio::time::timeout(BOUND, w.write_all(&[1; 1024]))
            .await
            .expect("bounded")
            .expect("a steady reader was cut");
        assert_eq!(reader.await.unwrap(), 1024);
    }

    #[tokio::test]
    async fn a_body_that_stalls_fails_and_one_that_ends_does_not() {
        use futures_util::StreamExt;
        // One frame, then nothing ever again.
        let frames = futures_util::stream::iter([Ok::<_, BoxErr>(http_body::Frame::data(
            bytes::Bytes::from_static(b"a"),
        ))])
        .chain(futures_util::stream::pending());
        let mut body = TimeoutBody::new(
            http_body_util::StreamBody::new(frames),
            Duration::from_millis(200),
        );
        let first = tokio::time::timeout(BOUND, body.frame()).await.unwrap();
        assert!(first.unwrap().is_ok());
        // Nothing more comes.
        let stalled = tokio::time::timeout(BOUND, body.frame()).await.unwrap();
        let err = stalled.unwrap().unwrap_err();
        assert!(err.is::<BodyTimedOut>(), "{err}");

        let empty = TimeoutBody::new(http_body_util::Empty::<bytes::Bytes>::new(), Duration::ZERO);
        assert!(http_body::Body::is_end_stream(&empty));
        let collected = tokio::time::timeout(BOUND, empty.collect()).await.unwrap();
        assert!(collected.is_ok());
    }

    type BoxErr = Box<dyn std::error::Error + Send + Sync>;
}
