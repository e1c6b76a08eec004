//! Listeners: accept under a connection limit, TLS handshake inside the
//! connection's task under a time-out, HTTP/1.1 + HTTP/2 (auto-detected, ALPN
//! on TLS) with upgrades, and graceful drain.

use super::client::{Driven, Local};
use super::{tls::CertStore, ConnInfo, Hooks, Proxy};
use crate::config::ProxyConfig;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
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
    pub handshake_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl Limits {
    pub fn from_config(cfg: &ProxyConfig) -> Limits {
        Limits {
            max_connections: cfg.max_connections,
            max_header_bytes: cfg.max_header_bytes,
            header_timeout: cfg.header_timeout.get(),
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
    let builder = Arc::new(builder(&limits));
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let acceptor = match &tls {
        Some(store) => match store.server_config() {
            Ok(cfg) => Some(tokio_rustls::TlsAcceptor::from(cfg)),
            Err(e) => {
                tracing::error!(error = %e, "TLS set-up failed; not serving");
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
        let conn = Arc::new(ConnInfo::new(
            peer,
            acceptor.is_some(),
            proxy.settings.is_trusted(&peer),
        ));
        let proxy = proxy.clone();
        let builder = builder.clone();
        let head_timeout = limits.header_timeout;
        let got_request = Arc::new(AtomicBool::new(false));
        // This connection's upstream connections, driven by its task.
        let local = Arc::new(Local::default());
        let upstream = proxy.client.clone();
        let svc = {
            let conn = conn.clone();
            let got_request = got_request.clone();
            let local = local.clone();
            service_fn(move |req| {
                got_request.store(true, Ordering::Release);
                let proxy = proxy.clone();
                let conn = conn.clone();
                let local = local.clone();
                async move { Ok::<_, Infallible>(proxy.handle(&conn, &local, req).await) }
            })
        };
        match &acceptor {
            None => {
                let c = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .into_owned();
                let watched = Driven::new(graceful.watch(c), local, upstream);
                tokio::spawn(async move {
                    match first_request_within(watched, &got_request, head_timeout).await {
                        Some(Err(e)) => {
                            tracing::debug!(peer = %conn.peer, error = %e, "connection ended with error");
                        }
                        None => tracing::debug!(peer = %conn.peer, "no request in time; closed"),
                        Some(Ok(())) => {}
                    }
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let hs_timeout = limits.handshake_timeout;
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(hs_timeout, acceptor.accept(stream)).await
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
                    let c = builder
                        .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                        .into_owned();
                    let watched = Driven::new(watcher.watch(c), local, upstream);
                    match first_request_within(watched, &got_request, head_timeout).await {
                        Some(Err(e)) => {
                            tracing::debug!(peer = %conn.peer, error = %e, "connection ended with error");
                        }
                        None => tracing::debug!(peer = %conn.peer, "no request in time; closed"),
                        Some(Ok(())) => {}
                    }
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    proxy.tasks.close();
    let grace = limits.shutdown_grace;
    let drained = tokio::time::timeout(grace, async {
        graceful.shutdown().await;
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

/// Runs `conn`, but drops it (closing the socket) if no request has arrived
/// `limit` after the start. hyper's own header timer only starts once
/// hyper-util has sniffed the protocol from the first bytes, and that sniffing
/// waits without a deadline: a client that connects and stays silent would
/// hold a connection permit forever (and `max_connections` of them would shut
/// everyone else out). Later requests are covered by hyper's timer.
async fn first_request_within<F>(
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
