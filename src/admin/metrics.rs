//! Prometheus metrics: one registry, prefix `iumgate_`, base units, `_total`
//! counters, no user names as labels (per-user detail is on `/status`).
//!
//! Two kinds of sources:
//! - **events on the request path** (proxied requests, upstream errors,
//!   directory calls) are observed as they happen, into children looked up
//!   once at start-up and kept in arrays: a proxied request costs one
//!   histogram observation and nothing else;
//! - **state** (seats, queue, sessions, alerts, jobs) and the gate's own
//!   atomic counters are read at scrape time, so the gate does no metrics
//!   work at all beyond its atomics.
//!
//! No holes: every labelled metric whose label values are known in advance
//! is exported at 0 from the start (Prometheus' instrumentation advice), so a
//! dashboard panel or an `absent()` rule sees a series before the first
//! event. The label values come from one list each — [`AlertKey::ALL`],
//! [`DirectoryError::KINDS`], [`ReleaseReason::ALL`],
//! [`crate::access_log::Verdict::ALL`],
//! [`crate::proxy::Handover::ALL`] or a list below — used both for the label
//! and for the zero; the periodic jobs are declared before they first run.

use super::Health;
use crate::alerts::AlertKey;
use crate::directory::{CallObserver, Directory, DirectoryError, LicenceInfo, Member, UserInfo};
use crate::gate::Gate;
use crate::jobs::{JobRun, JobRuns};
use crate::pool::ReleaseReason;
use crate::proxy::{Observer, UpstreamError};
use crate::user::UserId;
use async_trait::async_trait;
use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const UPSTREAM_KINDS: [&str; 3] = ["connect", "timeout", "protocol"];
/// `CallObserver`'s operations; anything else is counted as `other`.
const DIR_OPS: [&str; 6] = [
    "add_to_group",
    "remove_from_group",
    "group_members",
    "user",
    "licence",
    "other",
];
/// The `result` label of directory calls: `"ok"`, every
/// [`DirectoryError::KINDS`], and `other` for anything new.
fn dir_results() -> Vec<&'static str> {
    std::iter::once("ok")
        .chain(DirectoryError::KINDS)
        .chain(std::iter::once("other"))
        .collect()
}
const ADMISSION_RESULTS: [&str; 5] = [
    "holding",
    "granted",
    "granted_by_eviction",
    "waited",
    "failed",
];
/// Why a session binding was dropped or refused ([`crate::identity::Dropped`]).
const SESSION_DROP_REASONS: [&str; 2] = ["per_user", "total"];
/// How iumgate's own OIDC sign-ins ended (`gate::oidc`): the ID token
/// verified, or nobody admitted.
const OIDC_RESULTS: [&str; 2] = ["verified", "refused"];
/// How a cluster sync pass ended (`gate::cluster`).
const SYNC_RESULTS: [&str; 2] = ["ok", "failed"];
/// How a login repeated after the app's cache lag ended.
const REPLAY_RESULTS: [&str; 2] = ["ok", "refused"];

const REQUEST_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
const DIRECTORY_BUCKETS: [f64; 11] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Every metric iumgate exports, and the registry they live in.
pub struct Metrics {
    registry: Registry,
    // Observed as they happen: children cached by index.
    request_duration: Vec<Histogram>,
    upstream_errors: Vec<IntCounter>,
    fast_lane_requests: IntCounter,
    /// By [`crate::proxy::Handover`], in the order of `Handover::ALL`.
    handovers: Vec<IntCounter>,
    directory_calls: Vec<Vec<IntCounter>>,
    /// The `result` values of `directory_calls`' rows ([`dir_results`]).
    dir_results: Vec<&'static str>,
    directory_duration: Vec<Histogram>,
    // Set at scrape time.
    // Per seat pool (`pool`: "default", or a `[pools.<name>]`).
    seats_capacity: IntGaugeVec,
    seats_in_use: IntGaugeVec,
    seats_lent: IntGaugeVec,
    seats_tier: IntGaugeVec,
    seats_fixed: IntGaugeVec,
    seats_reserved: IntGaugeVec,
    queue_length: IntGaugeVec,
    sessions_tracked: IntGauge,
    sessions_dropped: Vec<IntCounter>,
    whoami_cache_entries: IntGauge,
    whoami_cache_refused: IntCounter,
    users_tracked: IntGauge,
    gate_reconciled: IntGaugeVec,
    power_users_in_ium: IntGaugeVec,
    admissions: IntCounterVec,
    releases: IntCounterVec,
    login_failures: IntCounter,
    saml_encrypted: IntCounter,
    oidc_signins: Vec<IntCounter>,
    oidc_ready: IntGauge,
    cluster_enabled: IntGauge,
    cluster_syncs: Vec<IntCounter>,
    login_replays: Vec<IntCounter>,
    /// By [`crate::access_log::Verdict`], in the order of `Verdict::ALL`.
    access_log_lines: Vec<IntCounter>,
    access_log_dropped: IntCounter,
    access_log_errors: IntCounter,
    /// By [`crate::audit::Kind`], in the order of `Kind::ALL`.
    audit_events: Vec<IntCounter>,
    audit_dropped: IntCounter,
    audit_errors: IntCounter,
    second_steps_waiting: IntGauge,
    alerts_active: IntGauge,
    alert_active: IntGaugeVec,
    job_last_success: GaugeVec,
    job_last_run: GaugeVec,
    job_interval: GaugeVec,
    job_failures: IntCounterVec,
    ready: IntGauge,
    reload_success: IntGauge,
    reload_timestamp: Gauge,
    /// Scrapes copy the gate's atomics into counters by difference; one at a
    /// time, so a difference is never added twice.
    scrape: Mutex<()>,
    /// Unix ms of the last successful config load (the start counts).
    reload_ok_ms: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// A metric could not be made or registered: its name, and prometheus'
/// error as the source (a duplicate or malformed name: a bug, since the
/// names are fixed).
#[derive(Debug, thiserror::Error)]
#[error("metrics: cannot register `{metric}`")]
pub struct MetricsError {
    pub metric: String,
    #[source]
    pub source: prometheus::Error,
}

fn err(metric: &str, source: prometheus::Error) -> MetricsError {
    MetricsError {
        metric: metric.to_string(),
        source,
    }
}

struct Builder<'a> {
    registry: &'a Registry,
}

impl Builder<'_> {
    fn reg<C: Collector + Clone + 'static>(&self, name: &str, c: C) -> Result<C, MetricsError> {
        self.registry
            .register(Box::new(c.clone()))
            .map_err(|e| err(name, e))?;
        Ok(c)
    }
    fn int_gauge(&self, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
        self.reg(name, IntGauge::new(name, help).map_err(|e| err(name, e))?)
    }
    fn gauge(&self, name: &str, help: &str) -> Result<Gauge, MetricsError> {
        self.reg(name, Gauge::new(name, help).map_err(|e| err(name, e))?)
    }
    fn counter(&self, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
        self.reg(name, IntCounter::new(name, help).map_err(|e| err(name, e))?)
    }
    fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, MetricsError> {
        let v = IntCounterVec::new(Opts::new(name, help), labels).map_err(|e| err(name, e))?;
        self.reg(name, v)
    }
    fn int_gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, MetricsError> {
        let v = IntGaugeVec::new(Opts::new(name, help), labels).map_err(|e| err(name, e))?;
        self.reg(name, v)
    }
    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec, MetricsError> {
        let v = GaugeVec::new(Opts::new(name, help), labels).map_err(|e| err(name, e))?;
        self.reg(name, v)
    }
    fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        label: &str,
        buckets: &[f64],
    ) -> Result<HistogramVec, MetricsError> {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        let v = HistogramVec::new(opts, &[label]).map_err(|e| err(name, e))?;
        self.reg(name, v)
    }
}

/// One child per value, in the order of `values` (looked up once, here).
fn children<T: prometheus::core::Metric + Clone>(
    name: &str,
    values: &[&str],
    lookup: impl Fn(&[&str]) -> prometheus::Result<T>,
) -> Result<Vec<T>, MetricsError> {
    values
        .iter()
        .map(|v| lookup(&[v]).map_err(|e| err(&format!("{name}{{{v}}}"), e)))
        .collect()
}

fn index_of(values: &[&str], v: &str) -> usize {
    values
        .iter()
        .position(|x| *x == v)
        .unwrap_or(values.len() - 1)
}

impl Metrics {
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let b = Builder {
            registry: &registry,
        };

        let req = b.histogram_vec(
            "iumgate_proxy_request_duration_seconds",
            "Proxied requests by status class (the _count series counts them) and how long they took, iumgate's own answers included.",
            "class",
            &REQUEST_BUCKETS,
        )?;
        let request_duration = children(
            "iumgate_proxy_request_duration_seconds",
            &STATUS_CLASSES,
            |l| req.get_metric_with_label_values(l),
        )?;
        let hand = b.counter_vec(
            "iumgate_proxy_handovers_total",
            "Client connections handed from the fast lane to hyper at a request the fast lane does not take, by reason.",
            &["reason"],
        )?;
        let reasons: Vec<&str> = crate::proxy::Handover::ALL
            .iter()
            .map(|h| h.label())
            .collect();
        let handovers = children("iumgate_proxy_handovers_total", &reasons, |l| {
            hand.get_metric_with_label_values(l)
        })?;
        let up = b.counter_vec(
            "iumgate_upstream_errors_total",
            "Requests the upstream application did not answer, by kind.",
            &["kind"],
        )?;
        let upstream_errors = children("iumgate_upstream_errors_total", &UPSTREAM_KINDS, |l| {
            up.get_metric_with_label_values(l)
        })?;
        let calls = b.counter_vec(
            "iumgate_directory_calls_total",
            "Calls of the application's admin REST API, by operation and result (ok or the error kind).",
            &["op", "result"],
        )?;
        let dir_results = dir_results();
        let mut directory_calls = Vec::with_capacity(DIR_OPS.len());
        for op in DIR_OPS {
            let row = dir_results
                .iter()
                .map(|r| {
                    calls
                        .get_metric_with_label_values(&[op, r])
                        .map_err(|e| err(&format!("iumgate_directory_calls_total{{{op},{r}}}"), e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            directory_calls.push(row);
        }
        let dd = b.histogram_vec(
            "iumgate_directory_call_duration_seconds",
            "How long directory operations took, retries and pages included.",
            "op",
            &DIRECTORY_BUCKETS,
        )?;
        let directory_duration =
            children("iumgate_directory_call_duration_seconds", &DIR_OPS, |l| {
                dd.get_metric_with_label_values(l)
            })?;

        let admissions = b.counter_vec(
            "iumgate_admissions_total",
            "Admission attempts of casual users, by seat pool and result.",
            &["pool", "result"],
        )?;
        let releases = b.counter_vec(
            "iumgate_releases_total",
            "Seats given back, by seat pool and reason.",
            &["pool", "reason"],
        )?;

        let sd = b.counter_vec(
            "iumgate_sessions_dropped_total",
            "Session bindings dropped or refused by the caps: per_user (a user's least recently seen binding made room for a new one), total (the map was full: a new binding refused).",
            &["reason"],
        )?;
        let sessions_dropped = children(
            "iumgate_sessions_dropped_total",
            &SESSION_DROP_REASONS,
            |l| sd.get_metric_with_label_values(l),
        )?;

        let os = b.counter_vec(
            "iumgate_oidc_signins_total",
            "iumgate's own OIDC sign-ins ([sso.oidc]), by result: verified (the ID token verified, the user admitted like a proven password) or refused (IdP error, expired or foreign state, a token that did not verify: nobody admitted).",
            &["result"],
        )?;
        let oidc_signins = children("iumgate_oidc_signins_total", &OIDC_RESULTS, |l| {
            os.get_metric_with_label_values(l)
        })?;

        let cs = b.counter_vec(
            "iumgate_cluster_syncs_total",
            "[cluster]: passes of the sync loop (every 500 ms) that reached Redis (ok) or not (failed: no new grants until it answers).",
            &["result"],
        )?;
        let cluster_syncs = children("iumgate_cluster_syncs_total", &SYNC_RESULTS, |l| {
            cs.get_metric_with_label_values(l)
        })?;

        let lr = b.counter_vec(
            "iumgate_login_replays_total",
            "Logins the app refused the licence right after their seat was put in place, repeated by iumgate ([identity] authorisation_retries: a Data Center cluster's nodes see a group change a moment later): ok (a repeat logged the user in) or refused (every repeat was refused; the seat went back).",
            &["result"],
        )?;
        let login_replays = children("iumgate_login_replays_total", &REPLAY_RESULTS, |l| {
            lr.get_metric_with_label_values(l)
        })?;

        let al = b.counter_vec(
            "iumgate_access_log_lines_total",
            "Access log lines written ([access_log]), by the gate's decision for the request.",
            &["decision"],
        )?;
        let decisions: Vec<&str> = crate::access_log::Verdict::ALL
            .iter()
            .map(|v| v.label())
            .collect();
        let access_log_lines = children("iumgate_access_log_lines_total", &decisions, |l| {
            al.get_metric_with_label_values(l)
        })?;

        let au = b.counter_vec(
            "iumgate_audit_events_total",
            "Seat events written to the audit trail ([audit]), by kind.",
            &["kind"],
        )?;
        let kinds: Vec<&str> = crate::audit::Kind::ALL.iter().map(|k| k.label()).collect();
        let audit_events = children("iumgate_audit_events_total", &kinds, |l| {
            au.get_metric_with_label_values(l)
        })?;

        let m = Metrics {
            audit_events,
            audit_dropped: b.counter(
                "iumgate_audit_dropped_total",
                "Seat events dropped because the audit writer's buffer ([audit] buffer) was full: never waited for on the request path.",
            )?,
            audit_errors: b.counter(
                "iumgate_audit_write_errors_total",
                "Audit trail writes, flushes, fsyncs or rotations that failed (the events in them may be lost).",
            )?,
            access_log_lines,
            access_log_dropped: b.counter(
                "iumgate_access_log_dropped_total",
                "Access log lines dropped because the writer's buffer ([access_log] buffer) was full: never waited for on the request path.",
            )?,
            access_log_errors: b.counter(
                "iumgate_access_log_write_errors_total",
                "Access log writes, flushes or reopens that failed (the lines in them are lost).",
            )?,
            request_duration,
            upstream_errors,
            fast_lane_requests: b.counter(
                "iumgate_proxy_fast_lane_requests_total",
                "Requests served by the HTTP/1.1 fast lane (the rest went through hyper: bodies, upgrades, HTTP/2, own pages).",
            )?,
            handovers,
            directory_calls,
            dir_results,
            directory_duration,
            seats_capacity: b.int_gauge_vec(
                "iumgate_seats_capacity",
                "Shared seats: tier minus fixed-licence users minus reserved seats.",
                &["pool"],
            )?,
            seats_lent: b.int_gauge_vec(
                "iumgate_seats_lent",
                "Seats lent to unconfirmed claims (a login or Basic name) for one exchange.",
                &["pool"],
            )?,
            seats_in_use: b.int_gauge_vec(
                "iumgate_seats_in_use",
                "Shared seats held by casual users.",
                &["pool"],
            )?,
            seats_tier: b.int_gauge_vec(
                "iumgate_seats_tier",
                "The licence tier (user limit).",
                &["pool"],
            )?,
            seats_fixed: b.int_gauge_vec(
                "iumgate_seats_fixed",
                "Users holding a fixed licence through a licensed group.",
                &["pool"],
            )?,
            seats_reserved: b.int_gauge_vec(
                "iumgate_seats_reserved",
                "Seats kept free for API and service use.",
                &["pool"],
            )?,
            queue_length: b.int_gauge_vec(
                "iumgate_queue_length",
                "Users waiting for a seat.",
                &["pool"],
            )?,
            sessions_tracked: b.int_gauge(
                "iumgate_sessions_tracked",
                "Session, remember-me and token bindings iumgate knows.",
            )?,
            sessions_dropped,
            whoami_cache_entries: b.int_gauge(
                "iumgate_whoami_cache_entries",
                "Sessions the whoami fallback found anonymous, remembered for a minute (bounded; expired ones pruned by the prune job).",
            )?,
            whoami_cache_refused: b.counter(
                "iumgate_whoami_cache_refused_total",
                "Anonymous sessions not remembered because the whoami cache was full (each asks the app again on its next request).",
            )?,
            users_tracked: b.int_gauge(
                "iumgate_users_tracked",
                "Distinct users with at least one known session.",
            )?,
            gate_reconciled: b.int_gauge_vec(
                "iumgate_gate_reconciled",
                "1 once the groups have been read from the directory (before that nobody is admitted).",
                &["pool"],
            )?,
            power_users_in_ium: b.int_gauge_vec(
                "iumgate_power_users_in_ium_groups",
                "Fixed-licence users who are also in an IUM group (a misconfiguration).",
                &["pool"],
            )?,
            admissions,
            releases,
            login_failures: b.counter(
                "iumgate_login_failures_total",
                "Logins through iumgate that the application refused.",
            )?,
            saml_encrypted: b.counter(
                "iumgate_saml_encrypted_total",
                "SAML responses with an encrypted assertion: forwarded unread (the user is learned from the application's answer).",
            )?,
            oidc_signins,
            cluster_syncs,
            login_replays,
            cluster_enabled: b.int_gauge(
                "iumgate_cluster_enabled",
                "1 when this replica shares its pool on Redis ([cluster]).",
            )?,
            oidc_ready: b.int_gauge(
                "iumgate_oidc_ready",
                "1 once iumgate has read the OIDC IdP's discovery document and keys ([sso.oidc]); 0 without [sso.oidc] or while discovery fails (OIDC users are then learned from the app's answer only).",
            )?,
            second_steps_waiting: b.int_gauge(
                "iumgate_second_steps_waiting",
                "Logins between their password step and their two-step verification code, each holding a seat until [identity] second_step_timeout.",
            )?,
            alerts_active: b.int_gauge("iumgate_alerts_active", "Alerts currently raised.")?,
            alert_active: b.int_gauge_vec(
                "iumgate_alert_active",
                "1 for each alert currently raised, by seat pool and its stable key.",
                &["pool", "alert"],
            )?,
            job_last_success: b.gauge_vec(
                "iumgate_job_last_success_timestamp_seconds",
                "When each background job last succeeded (unix seconds).",
                &["pool", "job_name"],
            )?,
            job_last_run: b.gauge_vec(
                "iumgate_job_last_run_timestamp_seconds",
                "When each background job last started (unix seconds).",
                &["pool", "job_name"],
            )?,
            job_interval: b.gauge_vec(
                "iumgate_job_interval_seconds",
                "How often each periodic job is meant to run.",
                &["pool", "job_name"],
            )?,
            job_failures: b.counter_vec(
                "iumgate_job_failures_total",
                "Failed runs of each background job.",
                &["pool", "job_name"],
            )?,
            ready: b.int_gauge(
                "iumgate_ready",
                "1 while iumgate accepts traffic, 0 while it drains.",
            )?,
            reload_success: b.int_gauge(
                "iumgate_config_reload_success",
                "1 if the last configuration (re)load succeeded, 0 if it failed.",
            )?,
            reload_timestamp: b.gauge(
                "iumgate_config_reload_success_timestamp_seconds",
                "When the configuration was last (re)loaded successfully (unix seconds).",
            )?,
            scrape: Mutex::new(()),
            reload_ok_ms: AtomicU64::new(0),
            registry,
        };
        let info = IntGaugeVec::new(
            Opts::new(
                "iumgate_build_info",
                "Always 1; the labels say which iumgate runs.",
            ),
            &["version"],
        )
        .map_err(|e| err("iumgate_build_info", e))?;
        info.get_metric_with_label_values(&[env!("CARGO_PKG_VERSION")])
            .map_err(|e| err("iumgate_build_info", e))?
            .set(1);
        m.registry
            .register(Box::new(info))
            .map_err(|e| err("iumgate_build_info", e))?;
        m.set_alerts(&[(crate::config::DEFAULT_POOL, Vec::new())]);
        m.declare_pool(crate::config::DEFAULT_POOL);
        Ok(m)
    }

    /// Every series of seat pool `pool` with known labels, at 0 until the
    /// first scrape reads the pool (so the first scrape already has them).
    fn declare_pool(&self, pool: &str) {
        for v in [
            &self.seats_capacity,
            &self.seats_in_use,
            &self.seats_lent,
            &self.seats_tier,
            &self.seats_fixed,
            &self.seats_reserved,
            &self.queue_length,
            &self.gate_reconciled,
            &self.power_users_in_ium,
        ] {
            let _ = v.get_metric_with_label_values(&[pool]);
        }
        for r in ADMISSION_RESULTS {
            let _ = self.admissions.get_metric_with_label_values(&[pool, r]);
        }
        for r in ReleaseReason::ALL {
            let _ = self
                .releases
                .get_metric_with_label_values(&[pool, r.label()]);
        }
    }

    /// Exports the gate's queue-wait histogram (it lives in the gate, which
    /// observes it when a waiter gets a seat).
    pub fn attach_gate(&self, gate: &Gate) -> Result<(), MetricsError> {
        for g in std::iter::once(gate).chain(gate.pools().iter().map(|p| &*p.gate)) {
            self.registry
                .register(Box::new(g.counters.queue_wait_seconds.clone()))
                .map_err(|e| err("iumgate_queue_wait_seconds", e))?;
        }
        Ok(())
    }

    /// Records the outcome of a configuration (re)load at `now_ms`.
    pub fn config_loaded(&self, ok: bool, now_ms: u64) {
        self.reload_success.set(i64::from(ok));
        if ok {
            self.reload_ok_ms.store(now_ms, Ordering::Relaxed);
            self.reload_timestamp.set(now_ms as f64 / 1000.0);
        }
    }

    /// Unix ms of the last successful config (re)load.
    pub fn config_loaded_at_ms(&self) -> u64 {
        self.reload_ok_ms.load(Ordering::Relaxed)
    }

    /// The text exposition of every metric, state read now.
    pub fn render(&self, gate: Option<&Gate>, jobs: &JobRuns, health: &Health) -> String {
        let _one_scrape = match self.scrape.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.ready.set(i64::from(health.is_ready()));
        let default = crate::config::DEFAULT_POOL;
        if let Some(gate) = gate {
            let mut alerts = vec![(default, self.read_gate(gate))];
            for p in gate.pools() {
                alerts.push((&*p.name, self.read_gate(&p.gate)));
                for (job, run) in p.runs.list() {
                    self.export_job(&p.name, job, &run);
                }
            }
            self.set_alerts(&alerts);
        }
        for (job, run) in jobs.list() {
            self.export_job(default, job, &run);
        }
        let families = self.registry.gather();
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!(error = %e, "metrics: cannot encode");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// One gate's (seat pool's) series; its raised alerts' keys.
    fn read_gate(&self, gate: &Gate) -> Vec<String> {
        let pool = gate.pool_name();
        let (capacity, in_use, queue) =
            gate.with_pool_read(|p| (p.capacity(), p.in_use(), p.queue_len()));
        let a = gate.arithmetic();
        let set = |v: &IntGaugeVec, n: i64| {
            if let Ok(g) = v.get_metric_with_label_values(&[pool]) {
                g.set(n);
            }
        };
        set(&self.seats_capacity, capacity as i64);
        set(&self.seats_in_use, in_use as i64);
        set(&self.seats_lent, gate.borrowed_seats() as i64);
        set(&self.queue_length, queue as i64);
        set(&self.seats_tier, i64::from(a.tier));
        set(&self.seats_fixed, i64::from(a.fixed));
        set(&self.seats_reserved, i64::from(a.reserved));
        set(&self.power_users_in_ium, a.power_in_ium.len() as i64);
        set(&self.gate_reconciled, i64::from(gate.is_reconciled()));
        let c = &gate.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let admissions = [
            load(&c.admit_holding),
            load(&c.admit_granted),
            load(&c.admit_evicted),
            load(&c.admit_waited),
            load(&c.admit_failed),
        ];
        for (result, v) in ADMISSION_RESULTS.iter().zip(admissions) {
            if let Ok(counter) = self
                .admissions
                .get_metric_with_label_values(&[pool, result])
            {
                catch_up(&counter, v);
            }
        }
        for reason in ReleaseReason::ALL {
            let atomic = match reason {
                ReleaseReason::Eviction => &c.release_eviction,
                ReleaseReason::Logout => &c.release_logout,
                ReleaseReason::TierShrink => &c.release_tier_shrink,
                ReleaseReason::Cleanup => &c.release_cleanup,
                ReleaseReason::Reconcile => &c.release_reconcile,
                ReleaseReason::Rollback => &c.release_rollback,
            };
            if let Ok(counter) = self
                .releases
                .get_metric_with_label_values(&[pool, reason.label()])
            {
                catch_up(&counter, load(atomic));
            }
        }
        let keys = gate.alerts.list().into_iter().map(|a| a.key).collect();
        if pool != crate::config::DEFAULT_POOL {
            // The rest is the default gate's: it identifies every request.
            return keys;
        }
        self.sessions_tracked.set(gate.sessions.len() as i64);
        self.users_tracked.set(gate.sessions.users() as i64);
        let dropped = gate.sessions.dropped();
        for (counter, v) in self
            .sessions_dropped
            .iter()
            .zip([dropped.per_user, dropped.total])
        {
            catch_up(counter, v);
        }
        self.whoami_cache_entries.set(gate.anonymous.len() as i64);
        catch_up(&self.whoami_cache_refused, gate.anonymous.refused());

        catch_up(&self.login_failures, load(&c.login_failed));
        catch_up(&self.saml_encrypted, load(&c.saml_encrypted));
        for (counter, atomic) in self
            .oidc_signins
            .iter()
            .zip([&c.oidc_verified, &c.oidc_refused])
        {
            catch_up(counter, load(atomic));
        }
        self.oidc_ready.set(i64::from(gate.oidc_ready()));
        self.cluster_enabled
            .set(i64::from(gate.cluster().is_some()));
        for (counter, atomic) in self
            .cluster_syncs
            .iter()
            .zip([&c.cluster_syncs_ok, &c.cluster_syncs_failed])
        {
            catch_up(counter, load(atomic));
        }
        for (counter, atomic) in self
            .login_replays
            .iter()
            .zip([&c.login_replays_ok, &c.login_replays_refused])
        {
            catch_up(counter, load(atomic));
        }
        self.second_steps_waiting
            .set(gate.second_steps_waiting() as i64);
        keys
    }

    /// `iumgate_alert_active`: every known key at 0 or 1; a key raised that
    /// is not in [`AlertKey::ALL`] only while it is raised (a resolved one
    /// disappears rather than lingering at its last value).
    fn set_alerts(&self, active: &[(&str, Vec<String>)]) {
        self.alerts_active
            .set(active.iter().map(|(_, keys)| keys.len()).sum::<usize>() as i64);
        self.alert_active.reset();
        for (pool, keys) in active {
            let known = AlertKey::ALL.iter().map(|k| (k.as_str(), 0));
            let raised = keys.iter().map(|k| (k.as_str(), 1));
            for (key, v) in known.chain(raised) {
                if let Ok(g) = self.alert_active.get_metric_with_label_values(&[pool, key]) {
                    g.set(v);
                }
            }
        }
    }

    /// Labelled `job_name`, not `job`: Prometheus sets `job` on every series
    /// to the scrape job and would rename ours to `exported_job`.
    fn export_job(&self, pool: &str, job: &str, run: &JobRun) {
        let labels = [pool, job];
        if let Ok(g) = self.job_interval.get_metric_with_label_values(&labels) {
            g.set(run.every_s as f64);
        }
        // A job that has not succeeded yet shows 0: "never", which an alert
        // on `time() - x` treats as very late, as it should.
        if let Ok(g) = self.job_last_success.get_metric_with_label_values(&labels) {
            g.set(run.last_success_ms.unwrap_or(0) as f64 / 1000.0);
        }
        if let Ok(g) = self.job_last_run.get_metric_with_label_values(&labels) {
            g.set(run.last_start_ms.unwrap_or(0) as f64 / 1000.0);
        }
        if let Ok(c) = self.job_failures.get_metric_with_label_values(&labels) {
            catch_up(&c, run.failures);
        }
    }
}

impl Metrics {
    /// The audit writer's counters (shared: they are the exported ones).
    pub fn audit_counters(&self) -> crate::audit::Counters {
        crate::audit::Counters {
            events: self.audit_events.clone(),
            dropped: self.audit_dropped.clone(),
            errors: self.audit_errors.clone(),
        }
    }

    /// The access log writer's counters (shared: they are the exported ones).
    pub fn access_log_counters(&self) -> crate::access_log::Counters {
        crate::access_log::Counters {
            lines: self.access_log_lines.clone(),
            dropped: self.access_log_dropped.clone(),
            errors: self.access_log_errors.clone(),
        }
    }
}

/// Brings a counter up to an atomic's value (both only grow).
fn catch_up(counter: &IntCounter, value: u64) {
    let cur = counter.get();
    if value > cur {
        counter.inc_by(value - cur);
    }
}

impl Observer for Metrics {
    fn request_done(&self, status: u16, seconds: f64) {
        let i = usize::from((status / 100).clamp(1, 5)) - 1;
        self.request_duration[i].observe(seconds);
    }

    fn upstream_error(&self, kind: UpstreamError) {
        let i = match kind {
            UpstreamError::Connect => 0,
            UpstreamError::Timeout => 1,
            UpstreamError::Protocol => 2,
        };
        self.upstream_errors[i].inc();
    }

    fn fast_request(&self) {
        self.fast_lane_requests.inc();
    }

    fn handover(&self, reason: crate::proxy::Handover) {
        let i = crate::proxy::Handover::ALL
            .iter()
            .position(|h| *h == reason)
            .unwrap_or(0);
        if let Some(c) = self.handovers.get(i) {
            c.inc();
        }
    }
}

impl CallObserver for Metrics {
    fn observe(&self, op: &'static str, result: &'static str, seconds: f64) {
        let o = index_of(&DIR_OPS, op);
        let r = index_of(&self.dir_results, result);
        self.directory_calls[o][r].inc();
        self.directory_duration[o].observe(seconds);
    }
}

/// A directory client wrapped so each operation is observed (for clients
/// built elsewhere, e.g. the demo's and the tests'; the configured clients
/// report through [`crate::directory::from_config_with_observer`]).
pub struct ObservedDirectory {
    inner: Arc<dyn Directory>,
    observer: Arc<dyn CallObserver>,
}

impl ObservedDirectory {
    pub fn wrap(inner: Arc<dyn Directory>, observer: Arc<dyn CallObserver>) -> Arc<dyn Directory> {
        Arc::new(ObservedDirectory { inner, observer })
    }

    fn done<T>(&self, op: &'static str, start: Instant, r: &Result<T, DirectoryError>) {
        let result = match r {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        self.observer
            .observe(op, result, start.elapsed().as_secs_f64());
    }
}

impl std::fmt::Debug for ObservedDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedDirectory")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Directory for ObservedDirectory {
    async fn add_to_group(&self, user: &UserId, group: &str) -> Result<(), DirectoryError> {
        let start = Instant::now();
        let r = self.inner.add_to_group(user, group).await;
        self.done("add_to_group", start, &r);
        r
    }
    async fn remove_from_group(&self, user: &UserId, group: &str) -> Result<(), DirectoryError> {
        let start = Instant::now();
        let r = self.inner.remove_from_group(user, group).await;
        self.done("remove_from_group", start, &r);
        r
    }
    async fn group_members(&self, group: &str) -> Result<Vec<Member>, DirectoryError> {
        let start = Instant::now();
        let r = self.inner.group_members(group).await;
        self.done("group_members", start, &r);
        r
    }
    async fn user(&self, user: &UserId) -> Result<Option<UserInfo>, DirectoryError> {
        let start = Instant::now();
        let r = self.inner.user(user).await;
        self.done("user", start, &r);
        r
    }
    async fn licence(&self, application: &str) -> Result<Option<LicenceInfo>, DirectoryError> {
        let start = Instant::now();
        let r = self.inner.licence(application).await;
        self.done("licence", start, &r);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn requests_are_counted_by_status_class() {
        let m = Metrics::new().unwrap();
        m.request_done(200, 0.01);
        m.request_done(204, 0.02);
        m.request_done(503, 0.5);
        m.request_done(42, 0.5); // nonsense status: counted as 1xx, not a panic
        m.upstream_error(UpstreamError::Timeout);
        let text = m.render(None, &JobRuns::default(), &Health::default());
        let count = |c: &str| {
            sample(
                &text,
                &format!("iumgate_proxy_request_duration_seconds_count{{class=\"{c}\"}}"),
            )
        };
        assert_eq!(count("2xx"), Some(2.0));
        assert_eq!(count("5xx"), Some(1.0));
        assert_eq!(count("1xx"), Some(1.0));
        assert_eq!(
            sample(&text, "iumgate_upstream_errors_total{kind=\"timeout\"}"),
            Some(1.0)
        );
        let build = format!(
            "iumgate_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(sample(&text, &build), Some(1.0));
    }

    #[test]
    fn directory_calls_are_counted_by_op_and_result() {
        let m = Metrics::new().unwrap();
        m.observe("add_to_group", "ok", 0.1);
        m.observe("add_to_group", "unavailable", 2.0);
        m.observe("something_new", "weird", 0.1);
        let text = m.render(None, &JobRuns::default(), &Health::default());
        assert_eq!(
            sample(
                &text,
                "iumgate_directory_calls_total{op=\"add_to_group\",result=\"ok\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "iumgate_directory_calls_total{op=\"add_to_group\",result=\"unavailable\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "iumgate_directory_calls_total{op=\"other\",result=\"other\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "iumgate_directory_call_duration_seconds_count{op=\"add_to_group\"}"
            ),
            Some(2.0)
        );
    }

    #[test]
    fn known_label_values_are_exported_at_zero_from_the_start() {
        let m = Metrics::new().unwrap();
        let text = m.render(None, &JobRuns::default(), &Health::default());
        for key in AlertKey::ALL {
            let series = format!("iumgate_alert_active{{alert=\"{key}\",pool=\"default\"}}");
            assert_eq!(sample(&text, &series), Some(0.0), "{series}");
        }
        assert_eq!(sample(&text, "iumgate_alerts_active"), Some(0.0));
        for r in ReleaseReason::ALL {
            let series = format!(
                "iumgate_releases_total{{pool=\"default\",reason=\"{}\"}}",
                r.label()
            );
            assert_eq!(sample(&text, &series), Some(0.0), "{series}");
        }
        for r in ADMISSION_RESULTS {
            let series = format!("iumgate_admissions_total{{pool=\"default\",result=\"{r}\"}}");
            assert_eq!(sample(&text, &series), Some(0.0), "{series}");
        }
        assert_eq!(
            sample(&text, "iumgate_seats_capacity{pool=\"default\"}"),
            Some(0.0)
        );
        for v in crate::access_log::Verdict::ALL {
            let series = format!(
                "iumgate_access_log_lines_total{{decision=\"{}\"}}",
                v.label()
            );
            assert_eq!(sample(&text, &series), Some(0.0), "{series}");
        }
        assert_eq!(sample(&text, "iumgate_access_log_dropped_total"), Some(0.0));
        for k in crate::audit::Kind::ALL {
            let series = format!("iumgate_audit_events_total{{kind=\"{}\"}}", k.label());
            assert_eq!(sample(&text, &series), Some(0.0), "{series}");
        }
        assert_eq!(sample(&text, "iumgate_audit_dropped_total"), Some(0.0));
        assert_eq!(sample(&text, "iumgate_audit_write_errors_total"), Some(0.0));
        for kind in DirectoryError::KINDS {
            let series =
                format!("iumgate_directory_calls_total{{op=\"add_to_group\",result=\"{kind}\"}}");
            assert_eq!(sample(&text, &series), Some(0.0), "{series}");
        }
        // A raised key is 1, and back to 0 (known) or gone (unknown) once resolved.
        m.set_alerts(&[(
            "default",
            vec!["tier_exceeded".to_string(), "made_up".to_string()],
        )]);
        let text = m.render(None, &JobRuns::default(), &Health::default());
        assert_eq!(
            sample(
                &text,
                "iumgate_alert_active{alert=\"tier_exceeded\",pool=\"default\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "iumgate_alert_active{alert=\"made_up\",pool=\"default\"}"
            ),
            Some(1.0)
        );
        assert_eq!(sample(&text, "iumgate_alerts_active"), Some(2.0));
        m.set_alerts(&[("default", Vec::new())]);
        let text = m.render(None, &JobRuns::default(), &Health::default());
        assert_eq!(
            sample(
                &text,
                "iumgate_alert_active{alert=\"tier_exceeded\",pool=\"default\"}"
            ),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &text,
                "iumgate_alert_active{alert=\"made_up\",pool=\"default\"}"
            ),
            None
        );
    }

    #[test]
    fn a_directory_error_of_every_kind_is_counted_under_its_own_label() {
        let m = Metrics::new().unwrap();
        m.observe("user", "basic_auth_disabled", 0.1);
        let text = m.render(None, &JobRuns::default(), &Health::default());
        assert_eq!(
            sample(
                &text,
                "iumgate_directory_calls_total{op=\"user\",result=\"basic_auth_disabled\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "iumgate_directory_calls_total{op=\"user\",result=\"other\"}"
            ),
            Some(0.0)
        );
    }

    #[test]
    fn catching_up_never_counts_twice() {
        let c = IntCounter::new("x_total", "x").unwrap();
        catch_up(&c, 3);
        catch_up(&c, 3);
        assert_eq!(c.get(), 3);
        catch_up(&c, 5);
        assert_eq!(c.get(), 5);
        catch_up(&c, 4); // never backwards
        assert_eq!(c.get(), 5);
    }

    #[test]
    fn a_failed_reload_keeps_the_last_success_time() {
        let m = Metrics::new().unwrap();
        m.config_loaded(true, 10_000);
        m.config_loaded(false, 20_000);
        let text = m.render(None, &JobRuns::default(), &Health::default());
        assert_eq!(sample(&text, "iumgate_config_reload_success"), Some(0.0));
        assert_eq!(
            sample(&text, "iumgate_config_reload_success_timestamp_seconds"),
            Some(10.0)
        );
    }

    #[test]
    fn a_metric_that_cannot_be_registered_is_named_and_keeps_prometheus_error() {
        let registry = Registry::new();
        let b = Builder {
            registry: &registry,
        };
        b.counter("iumgate_twice_total", "once").unwrap();
        let e = b.counter("iumgate_twice_total", "twice").unwrap_err();
        assert_eq!(
            e.to_string(),
            "metrics: cannot register `iumgate_twice_total`"
        );
        let src = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<prometheus::Error>());
        assert!(matches!(src, Some(prometheus::Error::AlreadyReg)), "{e:?}");
        let e = children("iumgate_x_total", &["a"], |_| {
            Err::<IntCounter, _>(prometheus::Error::Msg("no such label".into()))
        })
        .unwrap_err();
        assert_eq!(e.metric, "iumgate_x_total{a}");
    }
}
