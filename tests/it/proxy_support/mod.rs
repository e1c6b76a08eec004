//! Shared helpers for the proxy integration tests: upstreams on ephemeral
//! ports, a proxy started in-process from a config text, a raw HTTP/1 reader
//! for byte-exact checks, and bounded waits (never a sleep that must be
//! "long enough").

#![allow(dead_code)] // a helper for some tests, not all

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use iumgate::app::Running;
use iumgate::config::Config;
use iumgate::proxy::body::{full, Body};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};
use tokio::net::TcpListener;

/// The bound for every wait: generous, because the tests share 2 noisy cores.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test with `what` if it takes longer than [`DEADLINE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// An upstream HTTP/1.1 server on `127.0.0.1:0`.
pub struct Upstream {
    pub addr: SocketAddr,
    /// How many requests reached it.
    pub hits: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Starts an upstream answering every request with `handler`.
pub async fn upstream<F, Fut>(handler: F) -> Upstream
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(handler);
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let fut = handler(req);
                    async move { Ok::<_, std::convert::Infallible>(fut.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Upstream { addr, hits }
}

/// An upstream that describes the request it received as JSON:
/// `{"method","uri","version","headers":{name:[values]},"body"}`.
pub async fn echo_upstream() -> Upstream {
    upstream(|req| async move { echo(req).await }).await
}

pub async fn echo(req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<serde_json::Value> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned().into())
            .collect();
        headers.insert(name.as_str().to_string(), values.into());
    }
    let doc = serde_json::json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut resp = Response::new(full(doc.to_string()));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// What the echo upstream saw.
pub struct Seen(pub serde_json::Value);

impl Seen {
    pub fn parse(body: &[u8]) -> Seen {
        Seen(serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "upstream echo is not JSON ({e}): {}",
                String::from_utf8_lossy(body)
            )
        }))
    }
    /// All values of a request header, as the upstream received them.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0["headers"][name]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
    /// The single value of a request header (panics if repeated).
    pub fn header(&self, name: &str) -> Option<String> {
        let all = self.all(name);
        assert!(all.len() <= 1, "{name} sent {} times: {all:?}", all.len());
        all.into_iter().next()
    }
    pub fn str(&self, field: &str) -> String {
        self.0[field].as_str().unwrap_or_default().to_string()
    }
}

/// A config for a proxy on `127.0.0.1:0` in front of `upstream_url`;
/// `proxy_extra` are more `key = value` lines for the `[proxy]` table.
pub fn config(upstream_url: &str, proxy_extra: &str) -> Config {
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream_url}\"\n{proxy_extra}\n"
    );
    let mut cfg = Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    // Set after validation: the check "admin.listen must differ from
    // proxy.listen" would refuse two ephemeral ports on the same address.
    cfg.admin.listen = "127.0.0.1:0".parse().unwrap();
    cfg
}

/// Starts iumgate in-process (no gate) in front of `upstream_url`.
pub async fn start_proxy(upstream_url: &str, proxy_extra: &str) -> Running {
    iumgate::app::start(config(upstream_url, proxy_extra))
        .await
        .unwrap()
}

/// A reqwest client that talks to the proxy directly (no system proxy, no pool reuse surprises).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Sends `raw` on a fresh TCP connection and returns the stream for reading.
pub async fn raw_connect(addr: SocketAddr) -> tokio::io::BufReader<tokio::net::TcpStream> {
    let stream = within("connect", tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    tokio::io::BufReader::new(stream)
}

/// A response read byte-exactly off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was chunk-framed on the wire.
    pub chunked: bool,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// Reads one response. `head_request`: the request was HEAD (no body follows).
/// Bodies are framed as the wire says: chunked, content-length, or until close.
pub async fn read_response<R: AsyncBufRead + Unpin>(r: &mut R, head_request: bool) -> RawResponse {
    within("a response", read_response_inner(r, head_request)).await
}

async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R) -> String {
    let mut line = String::new();
    let n = r.read_line(&mut line).await.unwrap();
    assert!(n > 0, "connection closed before the response was complete");
    line.trim_end_matches(['\r', '\n']).to_string()
}

async fn read_response_inner<R: AsyncBufRead + Unpin>(
    r: &mut R,
    head_request: bool,
) -> RawResponse {
    let status_line = read_line(r).await;
    let mut it = status_line.splitn(3, ' ');
    let version = it.next().unwrap_or_default().to_string();
    let status: u16 = it
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a status line: {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let line = read_line(r).await;
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("bad header {line:?}"));
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut resp = RawResponse {
        version,
        status,
        headers,
        body: Vec::new(),
        chunked: false,
    };
    if head_request || status < 200 || status == 204 || status == 304 {
        return resp;
    }
    if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        resp.chunked = true;
        loop {
            let size_line = read_line(r).await;
            let size_hex = size_line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
            if size == 0 {
                // Trailers (none expected), then the empty line.
                while !read_line(r).await.is_empty() {}
                break;
            }
            let mut chunk = vec![0; size];
            r.read_exact(&mut chunk).await.unwrap();
            resp.body.extend_from_slice(&chunk);
            assert!(read_line(r).await.is_empty(), "chunk not followed by CRLF");
        }
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().unwrap();
        resp.body = vec![0; len];
        r.read_exact(&mut resp.body).await.unwrap();
    } else {
        r.read_to_end(&mut resp.body).await.unwrap();
    }
    resp
}

/// Reads until the peer closes; returns what came. Fails after [`DEADLINE`].
pub async fn read_until_closed<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Vec<u8> {
    let mut rest = Vec::new();
    within("the connection to close", async {
        // A reset counts as closed too.
        let _ = r.read_to_end(&mut rest).await;
    })
    .await;
    rest
}

/// A `Response` with `status` and a body.
pub fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body.into()));
    *r.status_mut() = status;
    r
}

/// An address nobody listens on (bound, then released).
pub async fn closed_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}
