//! Alerts — the admin's "popup". Every alert is a WARN log line and an entry
//! in the status API's list (and, with `[alerts] webhook_url`, a POST).
//! Raising the same alert again only refreshes it.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
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
    sink: Mutex<Option<std::sync::Arc<dyn AlertSink>>>,
}

impl Alerts {
    pub fn set_sink(&self, sink: std::sync::Arc<dyn AlertSink>) {
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
        let text = text.into();
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

#[cfg(test)]
mod tests {
    use super::*;

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
