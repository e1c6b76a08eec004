//! The admin listener: `/healthz`, `/readyz`, `/metrics`, and behind the
//! admin token `/status` (JSON) and `/` (HTML). Separate from the public
//! listener so it can stay on a private address.

pub mod auth;
pub mod metrics;
pub mod reload;
pub mod status;

pub use metrics::{Metrics, MetricsError};
pub use reload::{ReloadError, ReloadReport, Reloader};

use crate::alerts::Alerts;
use crate::gate::Gate;
use crate::jobs::JobRuns;
use crate::pages::{Own, HTML, TEXT};
use crate::wire::body::Body;
use async_trait::async_trait;
use auth::{Access, AdminAuth};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
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

/// What the admin listener serves beyond health.
#[async_trait]
pub trait AdminPages: Send + Sync + 'static {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body>;
}

#[async_trait]
impl AdminPages for () {
    async fn handle(&self, _req: Request<Incoming>) -> Response<Body> {
        text(StatusCode::NOT_FOUND, "not found\n")
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    Own::new(status, TEXT, body).build()
}

pub async fn route(
    health: &Health,
    pages: &dyn AdminPages,
    req: Request<Incoming>,
) -> Response<Body> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if health.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        _ => pages.handle(req).await,
    }
}

/// The admin pages proper: metrics, status and the HTML page.
pub struct AdminSurface {
    pub metrics: Arc<Metrics>,
    pub gate: Option<Arc<Gate>>,
    /// The background jobs' runs (the jobs report, the pages read).
    pub job_runs: Arc<JobRuns>,
    pub alerts: Arc<Alerts>,
    pub health: Arc<Health>,
    pub auth: AdminAuth,
    /// `[admin] metrics_need_token`.
    pub metrics_need_token: bool,
}

impl AdminSurface {
    fn status_now(&self) -> status::Status {
        status::collect(
            self.gate.as_deref(),
            &self.job_runs,
            &self.alerts,
            self.health.is_ready(),
            self.metrics.config_loaded_at_ms(),
        )
    }
}

impl AdminSurface {
    /// `audit?user=…`: the user's recent seat events, read from the end of
    /// the trail's current file (bounded: [`status::AUDIT_READ_BYTES`]).
    async fn audit_page(&self, query: &str) -> Response<Body> {
        let user = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "user")
            .map(|(_, v)| v.into_owned())
            .filter(|u| !u.is_empty() && u.len() <= 255);
        let Some(user) = user else {
            return text(
                StatusCode::BAD_REQUEST,
                "audit?user=NAME: a user name is needed\n",
            );
        };
        let Some(path) = self
            .gate
            .as_ref()
            .and_then(|g| g.audit_trail())
            .map(|t| t.path().to_owned())
        else {
            return text(
                StatusCode::NOT_FOUND,
                "the audit trail is off: set [audit] path to turn it on\n",
            );
        };
        let u = user.clone();
        let read = tokio::task::spawn_blocking(move || {
            use crate::audit::read;
            let mut lines =
                read::recent_for_user(&path, &u, status::AUDIT_READ_BYTES, status::AUDIT_LINES)?;
            // Too few since the last rotation (after midnight UTC, say):
            // the newest rotated file too, bounded likewise.
            if lines.len() < status::AUDIT_LINES {
                if let Some(prev) = read::newest_rotation(&path) {
                    lines.extend(read::user_lines_of_file(
                        &prev,
                        &u,
                        status::AUDIT_ROTATION_BYTES,
                        status::AUDIT_LINES - lines.len(),
                    )?);
                }
            }
            Ok::<_, read::ReadError>(lines)
        })
        .await;
        let (lines, note) = match read {
            Ok(Ok(lines)) => (lines, None),
            Ok(Err(e)) => (Vec::new(), Some(crate::proxy::error_chain(&e))),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        html(
            StatusCode::OK,
            status::render_audit(&user, &lines, note.as_deref()),
        )
        .build()
    }
}

/// An admin page: no script, so nothing may run in it or frame it.
fn html(status: StatusCode, body: String) -> Own {
    Own::new(status, HTML, body).header(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    )
}

fn unauthorized() -> Response<Body> {
    Own::new(
        StatusCode::UNAUTHORIZED,
        TEXT,
        "the admin token is needed: Authorization: Bearer <token>\n",
    )
    .header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"iumgate admin\""),
    )
    .build()
}

/// A browser asks for the token: any user name, the token as password.
fn unauthorized_page() -> Response<Body> {
    html(StatusCode::UNAUTHORIZED, status::render_login())
        .header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"iumgate admin (any user name, the admin token as password)\", charset=\"UTF-8\""),
        )
        .build()
}

fn not_configured() -> Response<Body> {
    text(
        StatusCode::FORBIDDEN,
        "the status pages are off: set [admin] token_env or token_file to turn them on\n",
    )
}

#[async_trait]
impl AdminPages for AdminSurface {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let full = req.uri().path();
        if full == LOGIN_PATH && req.method() == Method::GET {
            return self.login_link(req.uri().query().unwrap_or(""));
        }
        // The same pages under iumgate's own prefix, where a login link's
        // cookie is sent (`auth::COOKIE_PATH`).
        let path = match full.strip_prefix("/iumgate/admin") {
            Some("") => return Own::redirect(StatusCode::SEE_OTHER, auth::COOKIE_PATH).build(),
            Some(rest) => rest,
            None => full,
        };
        let access = self.auth.check(req.headers());
        match (req.method(), path) {
            (&Method::GET, "/metrics") => {
                if self.metrics_need_token && access != Access::Allowed {
                    return unauthorized();
                }
                let body = self
                    .metrics
                    .render(self.gate.as_deref(), &self.job_runs, &self.health);
                Own::new(StatusCode::OK, metrics::CONTENT_TYPE, body).build()
            }
            (&Method::GET, "/status") => match access {
                Access::Allowed => {
                    let st = self.status_now();
                    let body = serde_json::to_string_pretty(&st).unwrap_or_else(|e| {
                        format!("{{\"error\":{}}}", crate::pages::json_str(&e.to_string()))
                    });
                    Own::json(StatusCode::OK, body).build()
                }
                Access::Denied => unauthorized(),
                Access::NotConfigured => not_configured(),
            },
            (&Method::GET, "/audit") => match access {
                Access::Allowed => self.audit_page(req.uri().query().unwrap_or("")).await,
                Access::Denied => unauthorized_page(),
                Access::NotConfigured => not_configured(),
            },
            (&Method::GET, "/") => match access {
                Access::Allowed => {
                    html(StatusCode::OK, status::render_html(&self.status_now())).build()
                }
                Access::Denied => unauthorized_page(),
                Access::NotConfigured => not_configured(),
            },
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

/// A browser's way in from a link (`iumgate demo` prints one): the token in
/// the query. Right: a cookie for `/iumgate/admin/` (not the token) and a
/// redirect there, so the token leaves the address bar; wrong: the login
/// page. The token is compared in constant time and never logged.
pub const LOGIN_PATH: &str = "/iumgate/admin/login";

impl AdminSurface {
    fn login_link(&self, query: &str) -> Response<Body> {
        if !self.auth.is_configured() {
            return not_configured();
        }
        let token = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let cookie = self
            .auth
            .login(token.as_bytes(), false)
            .and_then(|c| HeaderValue::from_str(&c).ok());
        match cookie {
            Some(cookie) => Own::redirect(StatusCode::SEE_OTHER, auth::COOKIE_PATH)
                .cookie(cookie)
                .header(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                )
                .build(),
            None => unauthorized_page(),
        }
    }
}

/// The admin listener's connection bounds: the proxy's header and send
/// time-outs, and `[admin] max_connections`.
#[derive(Debug, Clone, Copy)]
pub struct AdminLimits {
    pub header_timeout: Duration,
    pub send_timeout: Duration,
    pub max_connections: usize,
}

impl AdminLimits {
    pub fn from_config(cfg: &crate::config::Config) -> AdminLimits {
        AdminLimits {
            header_timeout: cfg.proxy.header_timeout.get(),
            send_timeout: cfg.proxy.send_timeout.get(),
            max_connections: cfg.admin.max_connections,
        }
    }
}

impl Default for AdminLimits {
    fn default() -> AdminLimits {
        AdminLimits::from_config(&crate::config::Config::default())
    }
}

/// Serves the admin listener until `stop`. Each connection must send its
/// request head within `header_timeout` (a silent one is dropped after the
/// same time), and at most `max_connections` are served at once: one over
/// the limit is closed at once, so that idle admin connections can never use
/// up the process's file descriptors and starve the public listener.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    pages: Arc<dyn AdminPages>,
    limits: AdminLimits,
    stop: CancellationToken,
) {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "admin connection limit reached; closed");
            drop(stream);
            continue;
        };
        let health = health.clone();
        let pages = pages.clone();
        let stop = stop.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let got_request = Arc::new(AtomicBool::new(false));
            let seen = got_request.clone();
            let svc = service_fn(move |req| {
                seen.store(true, Ordering::Release);
                let health = health.clone();
                let pages = pages.clone();
                async move { Ok::<_, Infallible>(route(&health, &*pages, req).await) }
            });
            let stream = crate::proxy::server::SendTimeout::new(stream, limits.send_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            let guarded = crate::proxy::server::first_request_within(
                conn,
                &got_request,
                limits.header_timeout,
            );
            tokio::select! {
                r = guarded => {
                    if r.is_none() {
                        tracing::debug!(%peer, "admin connection sent no request in time; closed");
                    }
                }
                _ = stop.cancelled() => {}
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod own_answer_tests {
    use super::*;

    /// Every answer the admin listener makes itself comes from the one
    /// builder: never cached, with its type, and its extra fields kept.
    #[test]
    fn admin_answers_are_built_once_and_never_cached() {
        let answers = [
            text(StatusCode::OK, "ok\n"),
            unauthorized(),
            unauthorized_page(),
            not_configured(),
            html(StatusCode::OK, "<p>x</p>".into()).build(),
        ];
        for r in &answers {
            assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store", "{r:?}");
            assert!(r.headers().contains_key(header::CONTENT_TYPE), "{r:?}");
        }
        assert!(answers[1].headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .is_ok_and(|v| v.starts_with("Bearer")));
        assert!(answers[2].headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .is_ok_and(|v| v.starts_with("Basic")));
        assert!(answers[4]
            .headers()
            .contains_key(header::CONTENT_SECURITY_POLICY));
    }
}
