//! State that survives a restart: what only iumgate knows and the upstream
//! does not — holders' activity times and since when, the queue in order,
//! session bindings (keyed hashes only) and the key that hashes them.
//!
//! The directory stays the truth about group membership: at start the
//! snapshot is loaded *before* the first reconcile, which then adopts holders
//! added by hand and drops holders removed by hand (imported holders are
//! dated before the pass so that they qualify).
//!
//! Writes are atomic (temp file, fsync, rename, fsync of the directory), so a
//! `kill -9` at any moment leaves either the previous or the new snapshot,
//! never half of one. A file that cannot be understood is renamed aside (never
//! deleted) with a warning and an alert, and the start goes on from the
//! directory alone.

mod file;

pub use file::{set_aside, write_atomic};

use crate::alerts::{AlertKey, Alerts};
use crate::config::StateConfig;
use crate::gate::Gate;
use crate::identity::SessionRecord;
use crate::pool::PoolState;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The snapshot format this build writes and reads. Bump it when a field
/// changes meaning; an older or newer file is then set aside, not misread.
pub const FORMAT_VERSION: u32 = 1;

/// The snapshot file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    /// When it was taken (the gate's clock, ms since the epoch).
    pub written_at_ms: u64,
    /// The sessions' hashing key: without it the stored hashes match nothing.
    #[serde(with = "hex32")]
    pub hash_key: [u8; 32],
    /// Holders (user, since, last activity) and the queue, head first.
    pub pool: PoolState,
    pub sessions: Vec<SessionRecord>,
}

/// What a restore put back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    pub holders: usize,
    pub waiters: usize,
    pub sessions: usize,
}

impl Snapshot {
    /// Takes the gate's state. Holders and queue are read under one pool
    /// lock, so they agree with each other (nobody both holds and waits).
    pub fn capture(gate: &Gate) -> Snapshot {
        let pool = gate.with_pool(|p| p.export());
        let mut sessions = gate.sessions.export();
        // Stable order: two snapshots of the same state are byte-identical.
        sessions.sort_by_key(|s| s.key);
        Snapshot {
            version: FORMAT_VERSION,
            written_at_ms: gate.now(),
            hash_key: gate.sessions.hash_key(),
            pool,
            sessions,
        }
    }

    /// The pool state to import at `now`:
    /// - a holder's `since` is moved before `now`, so that the first reconcile
    ///   (which starts at or after `now`) may drop holders removed from the
    ///   access group by hand while iumgate was down;
    /// - times from the future (a clock set back, a file from another machine)
    ///   are clamped to `now`, so nobody looks more active than possible;
    /// - waiters get a fresh `last_poll`: they could not poll while iumgate was
    ///   down, and a restart must not cost them their place.
    pub fn pool_at(&self, now: u64) -> PoolState {
        let mut state = self.pool.clone();
        let before = now.saturating_sub(1);
        for h in &mut state.holders {
            h.since = h.since.min(before);
            h.last_active = h.last_active.min(now);
        }
        for w in &mut state.queue {
            w.since = w.since.min(now);
            w.last_poll = now;
        }
        state
    }

    /// Puts the snapshot into a gate built with [`Snapshot::hash_key`]; call
    /// it before the first reconcile. Sessions are skipped (with a warning)
    /// when the gate hashes with another key: they would match nothing.
    pub fn restore(&self, gate: &Gate) -> Restored {
        let now = gate.now();
        let state = self.pool_at(now);
        let mut out = Restored {
            holders: state.holders.len(),
            waiters: state.queue.len(),
            sessions: 0,
        };
        gate.with_pool(|p| {
            p.import(state);
            // `import` merges duplicates; report what the pool really holds.
            out.holders = p.in_use();
            out.waiters = p.queue_len();
        });
        if gate.sessions.hash_key() == self.hash_key {
            gate.sessions.import(self.sessions.clone());
            out.sessions = self.sessions.len();
        } else {
            tracing::warn!("state: the gate hashes sessions with another key; the snapshot's session bindings are not restored");
        }
        out
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data to a Vec cannot fail; keep a visible marker
        // rather than a panic should that ever change.
        serde_json::to_vec(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes())
    }
}

/// What was found at the state path.
#[derive(Debug)]
pub enum Loaded {
    /// No file: a first start.
    Missing,
    Found(Snapshot),
    /// Not understood; renamed to `kept_at` (not deleted).
    SetAside {
        kept_at: PathBuf,
        reason: String,
    },
}

/// An error that stops the start: the file is there but cannot be read or
/// set aside (permissions, a full disk). Starting anyway would overwrite it.
/// The text names the key, the file and the operation; the I/O error is the
/// source (print the chain with [`crate::proxy::error_chain`]).
#[derive(Debug, thiserror::Error)]
#[error("state.path {}: cannot {op}", path.display())]
pub struct StateError {
    pub path: PathBuf,
    pub op: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// Why the bytes are not a snapshot this build can use.
fn parse(bytes: &[u8]) -> Result<Snapshot, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "format version {v}, this build reads {FORMAT_VERSION}"
            ))
        }
        None => return Err("no format version".into()),
    }
    serde_json::from_value(value).map_err(|e| format!("not a snapshot ({e})"))
}

/// Reads the snapshot at `path`; a corrupt or wrong-version file is renamed
/// aside (suffix `.corrupt-<now_ms>`).
pub fn load(path: &Path, now_ms: u64) -> Result<Loaded, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(source) => {
            return Err(StateError {
                path: path.to_owned(),
                op: "read",
                source,
            })
        }
    };
    match parse(&bytes) {
        Ok(s) => Ok(Loaded::Found(s)),
        Err(reason) => {
            let kept_at = set_aside(path, now_ms).map_err(|source| StateError {
                path: path.to_owned(),
                op: "rename the unreadable snapshot aside",
                source,
            })?;
            Ok(Loaded::SetAside { kept_at, reason })
        }
    }
}

/// At start: loads `[state] path` (if set), logs what it found and raises an
/// alert for a file set aside. Returns the snapshot to build the gate from.
pub fn load_at_start(
    cfg: &StateConfig,
    alerts: &Alerts,
    now_ms: u64,
) -> Result<Option<Snapshot>, StateError> {
    let Some(path) = &cfg.path else {
        tracing::info!(
            "no [state] path: activity times, the queue and sessions are not kept across restarts"
        );
        return Ok(None);
    };
    match load(path, now_ms)? {
        Loaded::Missing => {
            tracing::info!(path = %path.display(), "no state snapshot yet: starting from the directory");
            Ok(None)
        }
        Loaded::Found(s) => {
            tracing::info!(
                path = %path.display(),
                holders = s.pool.holders.len(),
                waiters = s.pool.queue.len(),
                sessions = s.sessions.len(),
                age_s = now_ms.saturating_sub(s.written_at_ms) / 1000,
                "state snapshot loaded; the directory has the last word on group membership"
            );
            Ok(Some(s))
        }
        Loaded::SetAside { kept_at, reason } => {
            tracing::warn!(
                path = %path.display(),
                kept_at = %kept_at.display(),
                %reason,
                "state snapshot unreadable: set aside, starting from the directory"
            );
            alerts.raise(
                AlertKey::StateSetAside.as_str(),
                format!(
                    "The state snapshot {} could not be read ({reason}); it was kept as {}. Activity times, the queue and sessions were not restored.",
                    path.display(),
                    kept_at.display()
                ),
                "Nothing to do for the seats (the directory was read). Keep the file for a bug report, then delete it.",
                now_ms,
            );
            Ok(None)
        }
    }
}

/// Writes the gate's snapshots to one path. Saves are serialised, so a later
/// capture is never overwritten by an earlier one.
pub struct StateStore {
    path: PathBuf,
    gate: Arc<Gate>,
    saving: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl StateStore {
    pub fn new(path: PathBuf, gate: Arc<Gate>) -> StateStore {
        StateStore {
            path,
            gate,
            saving: tokio::sync::Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Captures and writes one snapshot (the file I/O off the async threads).
    /// A failure raises the `state_write_failed` alert; a success resolves it.
    pub async fn save(&self) -> Result<Snapshot, String> {
        let _one_at_a_time = self.saving.lock().await;
        let snap = Snapshot::capture(&self.gate);
        let bytes = snap.to_json();
        let path = self.path.clone();
        let res = tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .map_err(|e| format!("state {}: the writer task failed: {e}", self.path.display()))
            .and_then(|r| r.map_err(|e| e.to_string()));
        match res {
            Ok(()) => {
                self.gate
                    .alerts
                    .resolve(AlertKey::StateWriteFailed.as_str());
                Ok(snap)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot write the state snapshot");
                self.gate.alerts.raise(
                    AlertKey::StateWriteFailed.as_str(),
                    format!("The state snapshot cannot be written: {e}"),
                    "Check that [state] path is on a writable volume with free space; a restart would lose activity times and the queue.",
                    self.gate.now(),
                );
                Err(e)
            }
        }
    }
}

/// Starts the snapshot loop when `[state] path` is set; the returned store
/// also writes the final snapshot after a graceful drain.
pub fn start(
    cfg: &StateConfig,
    gate: Arc<Gate>,
    stop: CancellationToken,
) -> Option<Arc<StateStore>> {
    let path = cfg.path.clone()?;
    let store = Arc::new(StateStore::new(path, gate));
    tokio::spawn(snapshot_loop(store.clone(), cfg.snapshot_every.get(), stop));
    Some(store)
}

/// Writes a snapshot every `every` until `stop`. The final one is written by
/// the shutdown path after the drain, when no request can change it.
pub async fn snapshot_loop(store: Arc<StateStore>, every: Duration, stop: CancellationToken) {
    let every = every.max(Duration::from_millis(100));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    // A slow disk must not cause a burst of catch-up writes.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Errors are logged and alerted by `save`; the next tick retries.
        let _ = store.save().await;
    }
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(k: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(64);
        for b in k {
            out.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        if s.len() != 64 || !s.is_ascii() {
            return Err(serde::de::Error::custom("hash key: 64 hex digits expected"));
        }
        let mut k = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let t = std::str::from_utf8(chunk).map_err(serde::de::Error::custom)?;
            k[i] = u8::from_str_radix(t, 16).map_err(serde::de::Error::custom)?;
        }
        Ok(k)
    }
}

#[cfg(test)]
mod tests;
