//! The seat audit trail (`[audit]`, issue 21): one JSON line per seat
//! event — a grant, a release and its reason, a waiter queued, admitted or
//! gone, a refusal — so that every seat movement can be traced to a line,
//! and `iumgate audit report` can answer "did we ever use more seats than
//! we bought?" from the trail alone.
//!
//! Off the request path, as the access log ([`crate::access_log`]): the gate
//! hands a small [`Event`] (nothing formatted) to a bounded channel with
//! `try_send`; a full channel drops it and counts it
//! (`iumgate_audit_dropped_total`, and the `audit_dropping` alert), so a slow
//! disk never holds a request up. One writer thread formats the lines,
//! flushes them at least once a second, and rotates the file itself — by
//! size (`max_bytes`) and by day (UTC) — with an fsync before each rotation
//! and at shutdown; rotated files are gzipped and deleted after `retain`
//! days. Files are made mode 0600: readable by the service user only.

pub mod read;
pub mod report;
mod writer;

pub use writer::{Audit, Counters, OpenError};

use crate::pool::ReleaseReason;
use crate::user::UserId;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What happened to a seat (the line's `kind`, the metric's `kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A seat went to `user` (reason `free`, or `evicted_for` naming the
    /// `victim`).
    Grant,
    /// `user`'s seat was freed (reason: why; an eviction names `for` whom).
    Release,
    /// No seat: `user` entered the queue.
    Queued,
    /// A waiter got a seat, after `waited_ms`.
    Admitted,
    /// A waiter stopped polling and left the queue.
    Abandoned,
    /// Nothing granted: an unverified claim found no free seat, or the
    /// directory failed.
    Refused,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Grant,
        Kind::Release,
        Kind::Queued,
        Kind::Admitted,
        Kind::Abandoned,
        Kind::Refused,
    ];

    pub const fn label(self) -> &'static str {
        match self {
            Kind::Grant => "grant",
            Kind::Release => "release",
            Kind::Queued => "queued",
            Kind::Admitted => "admitted",
            Kind::Abandoned => "abandoned",
            Kind::Refused => "refused",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why (the line's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A grant of a free seat.
    Free,
    /// A grant of the longest-idle holder's seat.
    EvictedFor,
    /// A release, with the gate's reason ([`ReleaseReason::label`]:
    /// eviction, logout, tier_shrink, cleanup, reconcile, rollback).
    Release(ReleaseReason),
    /// Queued: no free seat and no holder idle long enough.
    NoFreeSeat,
    /// Admitted: a waiter got a seat.
    FromQueue,
    /// Abandoned: the waiting page stopped polling.
    StoppedPolling,
    /// Refused: a claim the app has not confirmed may only take a free seat.
    UnverifiedClaim,
    /// Refused: the directory failed; nothing was granted.
    DirectoryFailure,
    /// Refused: `[cluster]`'s shared store did not answer; nothing granted.
    ClusterStoreFailure,
}

impl Reason {
    pub const fn label(self) -> &'static str {
        match self {
            Reason::Free => "free",
            Reason::EvictedFor => "evicted_for",
            Reason::Release(r) => r.label(),
            Reason::NoFreeSeat => "no_free_seat",
            Reason::FromQueue => "from_queue",
            Reason::StoppedPolling => "stopped_polling",
            Reason::UnverifiedClaim => "unverified_claim",
            Reason::DirectoryFailure => "directory_failure",
            Reason::ClusterStoreFailure => "cluster_store_failure",
        }
    }
}

/// One seat event, as the gate hands it over: values it has, nothing
/// formatted (the writer makes the line).
#[derive(Debug, Clone)]
pub struct Event {
    /// When (ms since the epoch, the gate's clock).
    pub at_ms: u64,
    pub kind: Kind,
    pub reason: Reason,
    /// The pool the seat belongs to (`default` for `[ium]`).
    pub pool: Arc<str>,
    pub user: UserId,
    /// A grant by eviction (or one refused when the victim could not be
    /// taken out of the group): the victim; a release by eviction: for whom.
    pub other: Option<UserId>,
    /// Admitted: how long the user waited.
    pub waited_ms: Option<u64>,
    /// Queued: the position in the queue.
    pub position: Option<u32>,
    /// Refused by a directory failure: the operation (grant, revoke).
    pub operation: Option<&'static str>,
    /// Seats in use and the capacity after the event.
    pub in_use: u32,
    pub capacity: u32,
}

impl Event {
    /// An event with no optional field set.
    pub fn new(
        at_ms: u64,
        kind: Kind,
        reason: Reason,
        pool: Arc<str>,
        user: UserId,
        (in_use, capacity): (usize, usize),
    ) -> Event {
        Event {
            at_ms,
            kind,
            reason,
            pool,
            user,
            other: None,
            waited_ms: None,
            position: None,
            operation: None,
            in_use: u32::try_from(in_use).unwrap_or(u32::MAX),
            capacity: u32::try_from(capacity).unwrap_or(u32::MAX),
        }
    }
}

/// One line of the trail, as written and as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// RFC 3339, UTC, milliseconds.
    pub ts: String,
    pub kind: Kind,
    pub pool: String,
    pub user: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victim: Option<String>,
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    pub in_use: u32,
    pub capacity: u32,
    pub node: String,
}

impl Line {
    /// The line for `e`, written at `node`.
    pub fn of(e: &Event, node: &str) -> Line {
        let other = e.other.as_ref().map(|u| u.as_str().to_string());
        // A grant (or a refused one) names whose seat; a release for whom.
        let (victim, for_user) = match e.kind {
            Kind::Grant | Kind::Refused => (other, None),
            _ => (None, other),
        };
        Line {
            ts: rfc3339(e.at_ms),
            kind: e.kind,
            pool: e.pool.to_string(),
            user: e.user.as_str().to_string(),
            reason: e.reason.label().to_string(),
            victim,
            for_user,
            waited_ms: e.waited_ms,
            position: e.position,
            operation: e.operation.map(str::to_string),
            in_use: e.in_use,
            capacity: e.capacity,
            node: node.to_string(),
        }
    }

    /// Its time, ms since the epoch (None: not RFC 3339).
    pub fn at_ms(&self) -> Option<i64> {
        self.ts
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.as_millisecond())
    }
}

/// `2026-11-03T09:15:02.123Z`.
pub fn rfc3339(at_ms: u64) -> String {
    match jiff::Timestamp::from_millisecond(i64::try_from(at_ms).unwrap_or(i64::MAX)) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => "1970-01-01T00:00:00.000Z".into(),
    }
}

/// The UTC day of `at_ms` (days since the epoch).
pub fn day_of(at_ms: u64) -> u64 {
    at_ms / 86_400_000
}

/// `2026-11-03` for a day since the epoch.
pub fn day_name(day: u64) -> String {
    let ms = i64::try_from(day.saturating_mul(86_400_000)).unwrap_or(0);
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.strftime("%Y-%m-%d").to_string(),
        Err(_) => "1970-01-01".into(),
    }
}

/// The node name an audit line carries: the cluster's node id, or the host
/// name without a cluster.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "iumgate".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_every_field_with_an_rfc3339_time_and_reads_back() {
        let mut e = Event::new(
            1_793_778_902_123,
            Kind::Release,
            Reason::Release(ReleaseReason::Eviction),
            Arc::from("default"),
            UserId::new("casual02"),
            (6, 7),
        );
        e.other = Some(UserId::new("casual08"));
        let line = Line::of(&e, "node-a");
        let text = serde_json::to_string(&line).unwrap();
        assert_eq!(
            text,
            r#"{"ts":"2026-11-04T07:55:02.123Z","kind":"release","pool":"default","user":"casual02","reason":"eviction","for":"casual08","in_use":6,"capacity":7,"node":"node-a"}"#
        );
        let back: Line = serde_json::from_str(&text).unwrap();
        assert_eq!(back, line);
        assert_eq!(back.at_ms(), Some(1_793_778_902_123));
        assert_eq!(day_name(day_of(1_793_778_902_123)), "2026-11-04");
        assert_eq!(rfc3339(1_793_750_400_000), "2026-11-04T00:00:00.000Z");
    }
}
