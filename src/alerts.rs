//! Alerts — the admin's "popup". Every alert is a WARN log line and an entry
//! in the status API's list (and, with `[alerts] webhook_url`, a POST).
//! Raising the same alert again only refreshes it.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every alert iumgate raises, by its stable key: the one list the metric
/// `iumgate_alert_active{alert}` exports at 0 from the start (Prometheus'
/// advice: export every known label value, so dashboards and `absent()`
/// see a series before the first alert), and the keys the jobs, the state
/// store and `iumgate check` raise. A key raised that is not here (a bug,
/// which the unit test below looks for in the sources) still shows while
/// it is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKey {
    /// The periodic reconcile could not read the groups.
    ReconcileFailed,
    /// The daily tier check failed.
    TierCheckFailed,
    /// The nightly cleanup failed.
    CleanupFailed,
    /// `[jobs] cleanup_at` or its time zone is unusable.
    CleanupNotScheduled,
    /// The user sync failed.
    SyncFailed,
    /// The shared pool shrank at a reconcile.
    PoolShrunk,
    /// Fixed-licence users plus reserved seats exceed the tier.
    TierExceeded,
    /// A fixed-licence user is also in an IUM group.
    PowerUserInIumGroup,
    /// The state snapshot was unreadable and set aside.
    StateSetAside,
    /// The state snapshot cannot be written.
    StateWriteFailed,
    /// `iumgate check`: the application is unreachable.
    UpstreamUnreachable,
    /// `iumgate check`: the configured tier differs from the licence.
    LicenceMismatch,
    /// A directory call failed, one key per [`DirectoryError::KINDS`]
    /// (`directory_<kind>`).
    ///
    /// [`DirectoryError::KINDS`]: crate::directory::DirectoryError::KINDS
    DirectoryBadCredentials,
    DirectoryNotAdmin,
    DirectoryBasicAuthDisabled,
    DirectoryGroupMissing,
    DirectoryUserMissing,
    DirectoryReadOnly,
    DirectoryUnavailable,
    DirectoryUnexpected,
    /// `[cluster]`: Redis does not answer (no new grants meanwhile).
    ClusterStoreUnreachable,
    /// `[audit]`: the trail's writer could not keep up; events were dropped.
    AuditDropping,
}

impl AlertKey {
    pub const ALL: [AlertKey; 22] = [
        AlertKey::ReconcileFailed,
        AlertKey::TierCheckFailed,
        AlertKey::CleanupFailed,
        AlertKey::CleanupNotScheduled,
        AlertKey::SyncFailed,
        AlertKey::PoolShrunk,
        AlertKey::TierExceeded,
        AlertKey::PowerUserInIumGroup,
        AlertKey::StateSetAside,
        AlertKey::StateWriteFailed,
        AlertKey::UpstreamUnreachable,
        AlertKey::LicenceMismatch,
        AlertKey::DirectoryBadCredentials,
        AlertKey::DirectoryNotAdmin,
        AlertKey::DirectoryBasicAuthDisabled,
        AlertKey::DirectoryGroupMissing,
        AlertKey::DirectoryUserMissing,
        AlertKey::DirectoryReadOnly,
        AlertKey::DirectoryUnavailable,
        AlertKey::DirectoryUnexpected,
        AlertKey::ClusterStoreUnreachable,
        AlertKey::AuditDropping,
    ];

    /// The key as raised, logged, listed by `/status` and used as the
    /// metric's `alert` label.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertKey::ReconcileFailed => "reconcile_failed",
            AlertKey::TierCheckFailed => "tier_check_failed",
            AlertKey::CleanupFailed => "cleanup_failed",
            AlertKey::CleanupNotScheduled => "cleanup_not_scheduled",
            AlertKey::SyncFailed => "sync_failed",
            AlertKey::PoolShrunk => "pool_shrunk",
            AlertKey::TierExceeded => "tier_exceeded",
            AlertKey::PowerUserInIumGroup => "power_user_in_ium_group",
            AlertKey::StateSetAside => "state_set_aside",
            AlertKey::StateWriteFailed => "state_write_failed",
            AlertKey::UpstreamUnreachable => "upstream_unreachable",
            AlertKey::LicenceMismatch => "licence_mismatch",
            AlertKey::DirectoryBadCredentials => "directory_bad_credentials",
            AlertKey::DirectoryNotAdmin => "directory_not_admin",
            AlertKey::DirectoryBasicAuthDisabled => "directory_basic_auth_disabled",
            AlertKey::DirectoryGroupMissing => "directory_group_missing",
            AlertKey::DirectoryUserMissing => "directory_user_missing",
            AlertKey::DirectoryReadOnly => "directory_read_only",
            AlertKey::DirectoryUnavailable => "directory_unavailable",
            AlertKey::DirectoryUnexpected => "directory_unexpected",
            AlertKey::ClusterStoreUnreachable => "cluster_store_unreachable",
            AlertKey::AuditDropping => "audit_dropping",
        }
    }
}

impl std::fmt::Display for AlertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Alert {
    /// Stable identifier, e.g. `directory_unavailable`.
    pub key: String,
    /// What happened, in one sentence.
    pub text: String,
    /// What the admin should do, in one sentence.
    pub fix: String,
    pub since_ms: u64,
    pub last_ms: u64,
    pub count: u64,
}

/// Receives each new alert (the webhook sender plugs in here).
pub trait AlertSink: Send + Sync + std::fmt::Debug {
    fn send(&self, alert: &Alert);
}

#[derive(Debug, Default)]
pub struct Alerts {
    active: Mutex<BTreeMap<String, Alert>>,
    sink: Mutex<Option<Arc<dyn AlertSink>>>,
    /// A further seat pool's alerts (`[pools.<name>]`) say which pool.
    pool: Option<String>,
}

impl Alerts {
    /// The alerts of the seat pool `name` (beside the default one): each
    /// text starts with the pool's name.
    pub fn for_pool(name: &str) -> Alerts {
        Alerts {
            pool: Some(name.to_string()),
            ..Alerts::default()
        }
    }

    pub fn set_sink(&self, sink: Arc<dyn AlertSink>) {
        if let Ok(mut s) = self.sink.lock() {
            *s = Some(sink);
        }
    }

    /// Raises (or refreshes) an alert. Returns true when it is new.
    pub fn raise(
        &self,
        key: &str,
        text: impl Into<String>,
        fix: impl Into<String>,
        now_ms: u64,
    ) -> bool {
        let text = match &self.pool {
            Some(pool) => format!("Pool “{pool}”: {}", text.into()),
            None => text.into(),
        };
        let fix = fix.into();
        let Ok(mut map) = self.active.lock() else {
            return false;
        };
        if let Some(a) = map.get_mut(key) {
            a.last_ms = now_ms;
            a.count += 1;
            a.text = text;
            return false;
        }
        tracing::warn!(alert = key, fix = %fix, "{text}");
        let alert = Alert {
            key: key.to_string(),
            text,
            fix,
            since_ms: now_ms,
            last_ms: now_ms,
            count: 1,
        };
        map.insert(key.to_string(), alert.clone());
        drop(map);
        let sink = self.sink.lock().ok().and_then(|s| s.clone());
        if let Some(sink) = sink {
            sink.send(&alert);
        }
        true
    }

    /// Clears an alert whose cause is gone.
    pub fn resolve(&self, key: &str) -> bool {
        let removed = self.active.lock().ok().and_then(|mut m| m.remove(key));
        if removed.is_some() {
            tracing::info!(alert = key, "alert resolved");
        }
        removed.is_some()
    }

    pub fn list(&self) -> Vec<Alert> {
        self.active
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn is_active(&self, key: &str) -> bool {
        self.active
            .lock()
            .map(|m| m.contains_key(key))
            .unwrap_or(false)
    }
}

/// How the webhook is called.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Whole-call time-out of one attempt.
    pub timeout: Duration,
    /// Tries per alert, the first included.
    pub attempts: u32,
    /// Wait before the second try; doubled before each further one.
    pub backoff: Duration,
    /// Alerts waiting to be sent; more are dropped (with a log line) rather
    /// than making the request path wait.
    pub queue: usize,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            timeout: Duration::from_secs(10),
            attempts: 5,
            backoff: Duration::from_secs(2),
            queue: 256,
        }
    }
}

/// What the webhook sender has done so far (for tests and metrics).
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub queued: AtomicU64,
    pub delivered: AtomicU64,
    /// Alerts given up on after every attempt failed (or a 4xx).
    pub failed: AtomicU64,
    /// Alerts not queued because the queue was full.
    pub dropped: AtomicU64,
}

impl WebhookStats {
    /// Queued alerts whose sending has finished, one way or the other.
    pub fn settled(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

/// Posts each new alert as JSON with a human `text` field, so Slack- and
/// Teams-style incoming webhooks show it as it is. `send` only queues: a
/// background task posts, retrying with back-off, so whatever raised the
/// alert (a grant on the request path) never waits for the webhook.
#[derive(Debug)]
pub struct WebhookSink {
    tx: tokio::sync::mpsc::Sender<Alert>,
    stats: Arc<WebhookStats>,
}

impl WebhookSink {
    /// Starts the sender task; call inside a Tokio runtime. The task ends
    /// when the sink is dropped (after the alert it is sending).
    pub fn spawn(url: &str, opts: WebhookOptions) -> Result<Arc<WebhookSink>, String> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("alerts.webhook_url: \"{url}\" is not a URL: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout)
            .build()
            .map_err(|e| format!("alerts.webhook_url: cannot build the HTTP client: {e}"))?;
        let (tx, rx) = tokio::sync::mpsc::channel(opts.queue.max(1));
        let stats = Arc::new(WebhookStats::default());
        tokio::spawn(post_loop(client, parsed, opts, rx, stats.clone()));
        Ok(Arc::new(WebhookSink { tx, stats }))
    }

    pub fn stats(&self) -> &WebhookStats {
        &self.stats
    }
}

impl AlertSink for WebhookSink {
    fn send(&self, alert: &Alert) {
        match self.tx.try_send(alert.clone()) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(alert = %alert.key, error = %e, "alert webhook: queue full or sender gone; this alert is not posted");
            }
        }
    }
}

/// The JSON body: `text` for chat webhooks, the fields for anything smarter.
pub fn webhook_body(alert: &Alert) -> serde_json::Value {
    serde_json::json!({
        "text": format!("iumgate: {}\nFix: {}", alert.text, alert.fix),
        "key": alert.key,
        "fix": alert.fix,
        "since_ms": alert.since_ms,
    })
}

async fn post_loop(
    client: reqwest::Client,
    url: reqwest::Url,
    opts: WebhookOptions,
    mut rx: tokio::sync::mpsc::Receiver<Alert>,
    stats: Arc<WebhookStats>,
) {
    while let Some(alert) = rx.recv().await {
        let body = webhook_body(&alert);
        let mut wait = opts.backoff;
        let mut delivered = false;
        for attempt in 1..=opts.attempts.max(1) {
            let outcome = client.post(url.clone()).json(&body).send().await;
            let retry = match outcome {
                Ok(r) if r.status().is_success() => {
                    delivered = true;
                    break;
                }
                Ok(r) => {
                    let status = r.status();
                    tracing::warn!(alert = %alert.key, %status, attempt, "alert webhook refused the alert");
                    // Another try cannot fix a 4xx, except "too many requests".
                    status.is_server_error() || status.as_u16() == 429
                }
                Err(e) => {
                    tracing::warn!(alert = %alert.key, error = %e, attempt, "alert webhook unreachable");
                    true
                }
            };
            if !retry || attempt == opts.attempts.max(1) {
                break;
            }
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
        if delivered {
            stats.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(alert = %alert.key, "alert webhook: giving up on this alert (it stays in the status API)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_keys_are_distinct_and_cover_every_directory_error_kind() {
        let keys: std::collections::BTreeSet<&str> =
            AlertKey::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(keys.len(), AlertKey::ALL.len(), "a key is listed twice");
        for kind in crate::directory::DirectoryError::KINDS {
            let key = format!("directory_{kind}");
            assert!(keys.contains(key.as_str()), "AlertKey::ALL lacks {key}");
        }
    }

    /// The gate raises some alerts by literal key (`"pool_shrunk"`,
    /// `"directory_<kind>"`); every literal key raised, resolved or attached
    /// to a check finding anywhere in `src/` must be in [`AlertKey::ALL`],
    /// or its metric series would appear only while it is raised.
    #[test]
    fn every_literal_alert_key_in_the_sources_is_a_known_key() {
        let known: std::collections::BTreeSet<&str> =
            AlertKey::ALL.iter().map(|k| k.as_str()).collect();
        let call =
            regex::Regex::new(r#"\.(?:raise|resolve|is_active|alert)\(\s*"([a-z0-9_]+)""#).unwrap();
        // `for k in ["a", "b"] { self.alerts.resolve(k); }`
        let list =
            regex::Regex::new(r#"for \w+ in \[([^\]]*)\]\s*\{\s*[\w.]*alerts\.resolve"#).unwrap();
        let string = regex::Regex::new(r#""([a-z0-9_]+)""#).unwrap();
        let mut files = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        let mut seen = 0;
        while let Some(p) = files.pop() {
            if p.is_dir() {
                for e in std::fs::read_dir(&p).unwrap() {
                    files.push(e.unwrap().path());
                }
                continue;
            }
            if p.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            // Unit tests raise made-up keys ("x", "k"); only code counts.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let listed: Vec<String> = list
                .captures_iter(code)
                .flat_map(|l| {
                    string
                        .captures_iter(&l[1])
                        .map(|c| c[1].to_string())
                        .collect::<Vec<_>>()
                })
                .collect();
            let called = call.captures_iter(code).map(|c| c[1].to_string());
            for key in called.chain(listed) {
                let key = key.as_str();
                seen += 1;
                assert!(
                    known.contains(key),
                    "{} uses the alert key `{key}`, which AlertKey::ALL lacks",
                    p.display()
                );
            }
        }
        assert!(
            seen >= 10,
            "only {seen} literal alert keys found: is the pattern stale?"
        );
    }

    #[test]
    fn raising_twice_refreshes_once_raised() {
        let a = Alerts::default();
        assert!(a.raise("x", "broken", "fix it", 1));
        assert!(!a.raise("x", "still broken", "fix it", 2));
        let l = a.list();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].count, 2);
        assert_eq!(l[0].since_ms, 1);
        assert!(a.resolve("x"));
        assert!(a.list().is_empty());
    }
}
