//! The admin listener: `/healthz`, `/readyz` (and `/metrics`, `/status`).
//! Separate from the public listener so it can stay on a private address.

use crate::proxy::body::{full, Body};
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Ready or draining: `/readyz` turns 503 when a SIGTERM starts the drain.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// What the admin listener serves beyond health (filled by later rooms).
pub trait AdminPages: Send + Sync + 'static {
    fn handle(&self, req: &Request<Incoming>) -> Option<Response<Body>>;
}

impl AdminPages for () {
    fn handle(&self, _req: &Request<Incoming>) -> Option<Response<Body>> {
        None
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub fn route(health: &Health, pages: &dyn AdminPages, req: &Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if health.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        _ => pages
            .handle(req)
            .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "not found\n")),
    }
}

/// Serves the admin listener until `stop`.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    pages: Arc<dyn AdminPages>,
    stop: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let health = health.clone();
        let pages = pages.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let r = route(&health, &*pages, &req);
                async move { Ok::<_, Infallible>(r) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}
