//! Bodies stream through the proxy in both directions: the far side sees the
//! first bytes while the near side still holds the rest back (channels, no
//! timing), and 64 MiB pass intact.

use crate::proxy_support::*;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use iumgate::proxy::body::boxed;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// A request/response body fed from a channel, so a test decides when each
/// piece is sent.
fn channel_stream<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}

#[tokio::test]
async fn upload_reaches_the_upstream_before_the_client_has_finished_sending() {
    // The upstream reports the first chunk it reads, then collects the rest.
    let (first_tx, mut first_rx) = mpsc::channel::<Bytes>(1);
    let up = upstream(move |req| {
        let first_tx = first_tx.clone();
        async move {
            let mut body = req.into_body();
            let mut all = Vec::new();
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame.unwrap().into_data() else {
                    continue;
                };
                if all.is_empty() {
                    let _ = first_tx.send(data.clone()).await;
                }
                all.extend_from_slice(&data);
            }
            respond(http::StatusCode::OK, all)
        }
    })
    .await;
    let gw = start_proxy(&up.url(), "").await;

    let (body_tx, body_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let url = format!(
        "http://{}/scm/proj/repo.git/git-receive-pack",
        gw.proxy_addr
    );
    let sent = tokio::spawn(async move {
        client()
            .post(url)
            .body(reqwest::Body::wrap_stream(channel_stream(body_rx)))
            .send()
            .await
    });
    body_tx
        .send(Ok(Bytes::from_static(b"first part;")))
        .await
        .unwrap();
    // Only once the upstream has the first part does the client send more:
    // a buffering proxy would wait for the end and this would time out.
    let first = within("the upstream to see the first chunk", first_rx.recv())
        .await
        .unwrap();
    assert_eq!(first, Bytes::from_static(b"first part;"));
    body_tx
        .send(Ok(Bytes::from_static(b"second part")))
        .await
        .unwrap();
    drop(body_tx);
    let resp = within("the response", sent).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), "first part;second part");
}

#[tokio::test]
async fn download_reaches_the_client_before_the_upstream_has_finished_sending() {
    let (chunk_tx, chunk_rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    // The body's feed, taken by the (single) request.
    let feed = Arc::new(Mutex::new(Some(chunk_rx)));
    let up = upstream(move |_req| {
        let rx = feed.lock().unwrap().take().expect("one request only");
        async move { Response::new(boxed(StreamBody::new(channel_stream(rx)))) }
    })
    .await;
    let gw = start_proxy(&up.url(), "").await;

    chunk_tx
        .send(Ok(Frame::data(Bytes::from_static(b"first part;"))))
        .await
        .unwrap();
    let mut resp = within(
        "the response head",
        client()
            .get(format!(
                "http://{}/download/attachments/1/big.zip",
                gw.proxy_addr
            ))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    // The upstream holds the rest back until the client has the first part.
    let first = within("the first chunk at the client", resp.chunk())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, Bytes::from_static(b"first part;"));
    chunk_tx
        .send(Ok(Frame::data(Bytes::from_static(b"second part"))))
        .await
        .unwrap();
    drop(chunk_tx);
    let mut rest = Vec::new();
    while let Some(c) = within("the rest", resp.chunk()).await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"second part");
}

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 1024; // 64 MiB in all

/// Deterministic, incompressible test data: chunk `i` of a xorshift stream.
fn chunk(i: usize) -> Bytes {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut out = Vec::with_capacity(CHUNK);
    while out.len() < CHUNK {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(out)
}

fn expected_hash() -> String {
    let mut h = blake3::Hasher::new();
    for i in 0..CHUNKS {
        h.update(&chunk(i));
    }
    h.finalize().to_hex().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_upload_and_download_pass_intact() {
    // The upstream hashes uploads as they stream in and generates downloads
    // chunk by chunk: neither side ever holds 64 MiB.
    let up = upstream(|req| async move {
        if req.method() == http::Method::POST {
            let mut body = req.into_body();
            let mut h = blake3::Hasher::new();
            let mut len = 0usize;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    len += data.len();
                    h.update(&data);
                }
            }
            respond(
                http::StatusCode::OK,
                format!("{len} {}", h.finalize().to_hex()),
            )
        } else {
            let frames = futures_util::stream::iter(0..CHUNKS)
                .map(|i| Ok::<_, Infallible>(Frame::data(chunk(i))));
            let mut r = Response::new(boxed(StreamBody::new(frames)));
            r.headers_mut().insert(
                http::header::CONTENT_LENGTH,
                (CHUNK * CHUNKS).to_string().parse().unwrap(),
            );
            r
        }
    })
    .await;
    let gw = start_proxy(&up.url(), "request_timeout = \"120s\"").await;
    let want = expected_hash();

    let upload = futures_util::stream::iter(0..CHUNKS).map(|i| Ok::<_, Infallible>(chunk(i)));
    let resp = within(
        "the upload",
        client()
            .post(format!("http://{}/upload", gw.proxy_addr))
            .body(reqwest::Body::wrap_stream(upload))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        format!("{} {want}", CHUNK * CHUNKS)
    );

    let mut resp = within(
        "the download head",
        client()
            .get(format!("http://{}/download", gw.proxy_addr))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let mut h = blake3::Hasher::new();
    let mut len = 0usize;
    while let Some(c) = within("a download chunk", resp.chunk()).await.unwrap() {
        len += c.len();
        h.update(&c);
    }
    assert_eq!(len, CHUNK * CHUNKS);
    assert_eq!(h.finalize().to_hex().to_string(), want);
}
