//! The alert webhook: a JSON POST with a human `text`, once per alert,
//! retried with back-off, never holding up whoever raised the alert.

use crate::housekeeping_support::*;
use iumgate::alerts::{Alerts, WebhookOptions, WebhookSink};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;

fn quick() -> WebhookOptions {
    WebhookOptions {
        timeout: Duration::from_secs(5),
        attempts: 4,
        backoff: Duration::from_millis(20),
        queue: 16,
    }
}

#[tokio::test]
async fn a_failing_webhook_is_retried_until_it_takes_the_alert_once() {
    let hook = Webhook::start(2).await;
    let sink = WebhookSink::spawn(&hook.url, quick()).unwrap();
    let alerts = Alerts::default();
    alerts.set_sink(sink.clone());
    assert!(alerts.raise(
        "directory_read_only",
        "Grants fail: read-only.",
        "Make it read/write.",
        1
    ));
    assert!(!alerts.raise(
        "directory_read_only",
        "Grants fail: read-only.",
        "Make it read/write.",
        2
    ));
    wait_until("delivery", || sink.stats().settled() == 1).await;
    assert_eq!(sink.stats().delivered.load(Ordering::Relaxed), 1);
    assert_eq!(
        hook.requests.load(Ordering::SeqCst),
        3,
        "two 500s, then success"
    );
    let got = hook.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0]["text"],
        "iumgate: Grants fail: read-only.\nFix: Make it read/write."
    );
    assert_eq!(got[0]["key"], "directory_read_only");
}

#[tokio::test]
async fn a_webhook_that_never_answers_does_not_hold_up_raising() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let opts = WebhookOptions {
        timeout: Duration::from_secs(60),
        ..quick()
    };
    let sink = WebhookSink::spawn(&url, opts).unwrap();
    let alerts = Alerts::default();
    alerts.set_sink(sink.clone());
    // Were `raise` to wait for the POST, this would take minutes.
    tokio::time::timeout(Duration::from_secs(5), async {
        for i in 0..20 {
            alerts.raise(&format!("k{i}"), "text", "fix", i);
        }
    })
    .await
    .expect("raising never waits for the webhook");
    let s = sink.stats();
    assert_eq!(
        s.queued.load(Ordering::Relaxed) + s.dropped.load(Ordering::Relaxed),
        20
    );
    assert!(
        s.dropped.load(Ordering::Relaxed) >= 3,
        "a full queue drops instead of blocking"
    );
    assert_eq!(s.delivered.load(Ordering::Relaxed), 0);
}
