//! A small recording HTTP server for the directory client tests: it answers
//! what the test's handler says and keeps every request it saw.

#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use iumgate::config::Secret;
use iumgate::directory::{Auth, CallObserver, ClientOptions};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The raw query, still percent-encoded.
    pub query: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub atlassian_token: Option<String>,
    pub body: String,
}

impl Seen {
    /// A query parameter, decoded.
    pub fn param(&self, key: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("request body is JSON")
    }

    /// `"METHOD /path"`.
    pub fn call(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

pub struct Reply {
    pub status: u16,
    pub body: String,
    /// Wait this long before answering (a slow or hung upstream).
    pub delay: Duration,
}

pub fn reply(status: u16, body: impl Into<String>) -> Reply {
    Reply {
        status,
        body: body.into(),
        delay: Duration::ZERO,
    }
}

pub fn json(status: u16, v: serde_json::Value) -> Reply {
    reply(status, v.to_string())
}

type Handler = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

pub struct Fake {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    /// Serves on 127.0.0.1:0. The handler gets each request and how many came
    /// before it (0 for the first), to script sequences such as 500, 500, 201.
    pub async fn start(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let seen2 = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen2.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let seen = seen.clone();
                        let handler = handler.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let header = |n: &str| {
                                parts
                                    .headers
                                    .get(n)
                                    .map(|v| v.to_str().unwrap_or("<binary>").to_string())
                            };
                            let s = Seen {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_string(),
                                query: parts.uri.query().unwrap_or("").to_string(),
                                authorization: header("authorization"),
                                content_type: header("content-type"),
                                atlassian_token: header("x-atlassian-token"),
                                body: String::from_utf8_lossy(&body).into_owned(),
                            };
                            let n = {
                                let mut v = seen.lock().unwrap();
                                v.push(s.clone());
                                v.len() - 1
                            };
                            let r = handler(&s, n);
                            if !r.delay.is_zero() {
                                tokio::time::sleep(r.delay).await;
                            }
                            let resp = Response::builder()
                                .status(r.status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(r.body)))
                                .unwrap();
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Fake {
            url: format!("http://{addr}"),
            seen,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

pub const PASSWORD: &str = "s3cret-Pa55";

pub fn basic() -> Auth {
    Auth::Basic {
        username: "svc".into(),
        password: Secret::new(PASSWORD),
    }
}

/// What `basic()` puts on the wire.
pub fn basic_header() -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("svc:{PASSWORD}"))
    )
}

/// Generous time-out (noisy CI), tiny back-off.
pub fn opts(retries: u32) -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(10),
        retries,
        backoff: Duration::from_millis(1),
        extra_ca: None,
    }
}

/// Remembers every observation.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<(&'static str, &'static str)>>);

impl CallObserver for Recorder {
    fn observe(&self, op: &'static str, result: &'static str, seconds: f64) {
        assert!(seconds >= 0.0);
        self.0.lock().unwrap().push((op, result));
    }
}
