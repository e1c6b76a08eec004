//! Graceful drain (what SIGTERM starts): an upload in flight and an open
//! websocket both finish after the drain began; new connections are refused;
//! the drain ends once they are done. `proxy_process` proves that
//! SIGTERM starts exactly this drain in the real binary.

use crate::proxy_support::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_in_flight_and_an_open_websocket_finish_after_the_drain_began() {
    // Upstream: websockets echo; everything else counts the body it got.
    let ws = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = ws.local_addr().unwrap();
    // Told when a request reaches the upstream (the upload is in flight).
    let reached = std::sync::Arc::new(tokio::sync::Notify::new());
    let told = reached.clone();
    let up = upstream(move |req| {
        told.notify_one();
        async move {
            let n = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().len())
                .unwrap_or(0);
            respond(http::StatusCode::OK, format!("got {n}"))
        }
    })
    .await;
    tokio::spawn(async move {
        while let Ok((s, _)) = ws.accept().await {
            tokio::spawn(async move {
                if let Ok(mut conn) = tokio_tungstenite::accept_async(s).await {
                    while let Some(Ok(m)) = conn.next().await {
                        if m.is_text() {
                            let _ = conn.send(m).await;
                        }
                    }
                }
            });
        }
    });
    // One proxy for the uploads, one for the websocket (each its own upstream).
    let upload_proxy = start_proxy(&up.url(), "shutdown_grace = \"60s\"").await;
    let ws_proxy = start_proxy(&format!("http://{ws_addr}"), "shutdown_grace = \"60s\"").await;

    // A streamed upload: the first half is sent, the rest held back.
    let (tx, rx) = mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let url = format!("http://{}/upload", upload_proxy.proxy_addr);
    let upload = tokio::spawn(async move { client().post(url).body(body).send().await });
    tx.send(Ok(bytes::Bytes::from(vec![b'a'; 64 * 1024])))
        .await
        .unwrap();

    // A websocket, open and working.
    let (mut sock, _) = within(
        "the websocket handshake",
        tokio_tungstenite::connect_async(format!("ws://{}/synchrony/x", ws_proxy.proxy_addr)),
    )
    .await
    .unwrap();
    sock.send(Message::text("before")).await.unwrap();
    let m = within("the echo", sock.next()).await.unwrap().unwrap();
    assert_eq!(m.into_text().unwrap().as_str(), "before");

    // The upload is in flight through the proxy (not still on its way in:
    // a connection that has sent nothing yet is closed by a drain).
    within("the upload to reach the upstream", reached.notified()).await;

    // SIGTERM's drain begins on both.
    upload_proxy.begin_drain();
    ws_proxy.begin_drain();
    assert!(!upload_proxy.health.is_ready());
    // New connections are no longer accepted.
    let refused = within(
        "a new connection to be refused",
        client()
            .get(format!("http://{}/x", upload_proxy.proxy_addr))
            .send(),
    )
    .await;
    assert!(
        refused.is_err(),
        "a draining proxy accepted a new connection"
    );

    // The upload finishes after the drain began, whole.
    tx.send(Ok(bytes::Bytes::from(vec![b'b'; 64 * 1024])))
        .await
        .unwrap();
    drop(tx);
    let r = within("the upload's answer", upload)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), format!("got {}", 128 * 1024));

    // The websocket still carries messages after the drain began.
    sock.send(Message::text("during the drain")).await.unwrap();
    let m = within("the echo during the drain", sock.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.into_text().unwrap().as_str(), "during the drain");
    sock.close(None).await.unwrap();
    drop(sock);

    // With nothing left in flight, both drains end well inside the grace.
    within("the upload proxy's drain", upload_proxy.wait()).await;
    within("the websocket proxy's drain", ws_proxy.wait()).await;
}

/// A channel as a body stream.
fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
