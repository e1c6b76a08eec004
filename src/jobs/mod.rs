//! Housekeeping that runs inside `iumgate serve`: reconcile with the
//! directory, prune abandoned waiters and stale sessions, and the scheduled
//! jobs — the tier check, the nightly cleanup and the optional user sync.
//!
//! The scheduled jobs are decided by [`Housekeeping::tick`], a function of
//! "now" (the gate's clock) and the last runs; a thin loop calls it every
//! second. Tests move a manual clock to "02:00" and call `tick` themselves.

mod cleanup;
mod error;
pub mod runs;
pub mod schedule;
mod tier;

pub use cleanup::{cleanup, CleanupReport};
pub use error::JobError;
pub use runs::{JobRun, JobRuns};
pub use tier::{run_checks, tier_check, TierReport};

use crate::alerts::{AlertKey, WebhookOptions, WebhookSink};
use crate::check;
use crate::config::{parse_hh_mm, parse_timezone, Config};
use crate::gate::Gate;
use schedule::Daily;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often [`prune_loop`] runs.
const PRUNE_EVERY: Duration = Duration::from_secs(5);

/// Declares the periodic jobs [`spawn_all`] starts, so a fresh process
/// exports each job's series from its first scrape ("never succeeded" as 0,
/// the interval for the lateness rule) instead of once its loop first runs.
/// Declaring twice changes nothing.
pub fn declare(cfg: &Config, runs: &JobRuns) {
    runs.register("reconcile", cfg.jobs.reconcile_every.get().as_secs());
    runs.register("prune", PRUNE_EVERY.as_secs());
}

/// Starts every job; they stop with `stop`. The periodic ones report their
/// runs to `runs`. The returned handle lets the status API read the last
/// reports and tests drive the schedule.
pub fn spawn_all(
    cfg: &Config,
    gate: Arc<Gate>,
    runs: Arc<JobRuns>,
    stop: CancellationToken,
) -> Arc<Housekeeping> {
    if let Some(url) = &cfg.alerts.webhook_url {
        match WebhookSink::spawn(url, WebhookOptions::default()) {
            Ok(sink) => gate.alerts.set_sink(sink),
            Err(e) => tracing::error!("{e}; alerts are not posted"),
        }
    }
    declare(cfg, &runs);
    let reconcile_every = cfg.jobs.reconcile_every.get();
    tokio::spawn(reconcile_loop(
        gate.clone(),
        runs.clone(),
        reconcile_every,
        stop.clone(),
    ));
    tokio::spawn(prune_loop(gate.clone(), runs, PRUNE_EVERY, stop.clone()));
    let hk = Arc::new(Housekeeping::new(cfg, gate));
    tokio::spawn(hk.clone().run(Duration::from_secs(1), stop));
    hk
}

/// Reconciles at start and every `every`. A failed pass is retried with a
/// growing back-off (1 s, 2 s, 4 s … up to `every`) and raises an alert.
async fn reconcile_loop(
    gate: Arc<Gate>,
    runs: Arc<JobRuns>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        runs.started("reconcile", gate.now());
        let wait = match gate.reconcile().await {
            Ok(_) => {
                runs.succeeded("reconcile", gate.now());
                gate.alerts.resolve(AlertKey::ReconcileFailed.as_str());
                backoff = Duration::from_secs(1);
                every
            }
            Err(e) => {
                let e = crate::proxy::error_chain(&e);
                runs.failed("reconcile", gate.now(), e.clone());
                gate.alerts.raise(
                    AlertKey::ReconcileFailed.as_str(),
                    format!("Cannot read the IUM groups from the directory: {e}"),
                    "Check [directory] and that the application is reachable; iumgate retries by itself.",
                    gate.now(),
                );
                let w = backoff.min(every);
                backoff = (backoff * 2).min(every);
                w
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Drops abandoned waiters, sessions past their time to live and expired
/// anonymous sessions ([`prune`]), gives back the seats of two-step logins
/// abandoned between their steps and retries failed give-backs, every
/// `every`.
async fn prune_loop(gate: Arc<Gate>, runs: Arc<JobRuns>, every: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let now = gate.now();
        runs.started("prune", now);
        prune(&gate, now);
        let abandoned = gate.expire_second_steps(now).await;
        if abandoned > 0 {
            tracing::info!(
                logins = abandoned,
                "two-step logins abandoned between their steps; seats given back"
            );
        }
        let out = gate.retry_give_backs().await;
        if out > 0 {
            tracing::warn!(
                seats = out,
                "lent seats could not be given back yet (the directory failed); retrying"
            );
        }
        runs.succeeded("prune", now);
    }
}

/// What one prune pass dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Session bindings past their time to live.
    pub sessions: usize,
    /// Expired entries of the whoami fallback's anonymous cache.
    pub anonymous: usize,
}

/// One pass of the prune job at `now`: abandoned waiters, login forms left
/// waiting, sessions past their time to live, and expired anonymous
/// sessions. The walks over whole maps happen here, off the request path.
pub fn prune(gate: &Gate, now: u64) -> PruneReport {
    let abandoned = gate.with_pool(|p| p.prune(now));
    for u in &abandoned {
        gate.audit(
            crate::audit::Kind::Abandoned,
            crate::audit::Reason::StoppedPolling,
            u,
            |_| {},
        );
    }
    gate.prune_pending_logins(now);
    gate.prune_saml_seen(now);
    gate.prune_oidc(now);
    let s = gate.settings.load();
    PruneReport {
        sessions: gate
            .sessions
            .prune(now, s.session_ttl_ms, s.remember_ttl_ms),
        anonymous: gate.anonymous.prune(now),
    }
}

/// What one tick did (each `None`: not due, or not configured).
#[derive(Debug, Default)]
pub struct Tick {
    /// The start-up diagnostics (first tick only).
    pub startup_checks: Option<check::Report>,
    pub tier: Option<Result<TierReport, JobError>>,
    pub cleanup: Option<Result<CleanupReport, JobError>>,
    pub sync: Option<Result<crate::sync::ApplyReport, JobError>>,
    /// `[cluster]`: another replica holds the jobs' lease (or Redis did not
    /// answer), so the jobs due now were left to it.
    pub left_to_another_replica: bool,
}

/// The last outcome of each scheduled job, for the status API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LastRuns {
    pub tier: Option<TierReport>,
    pub cleanup: Option<CleanupReport>,
    pub sync: Option<crate::sync::ApplyReport>,
}

#[derive(Debug)]
struct Schedule {
    started: bool,
    /// Time of the previous tick: the nightly job runs when its time of day
    /// falls after it.
    last_tick_ms: u64,
    last_tier_ms: u64,
    last_sync_ms: u64,
}

/// The scheduled jobs of one gate.
#[derive(Debug)]
pub struct Housekeeping {
    cfg: Config,
    gate: Arc<Gate>,
    daily: Option<Daily>,
    tier_every_ms: u64,
    sync_every_ms: Option<u64>,
    /// A tokio mutex: ticks from the loop and from a test never overlap, and
    /// the second one sees the first one's runs.
    schedule: tokio::sync::Mutex<Schedule>,
    last: Mutex<LastRuns>,
}

impl Housekeeping {
    pub fn new(cfg: &Config, gate: Arc<Gate>) -> Housekeeping {
        let daily = parse_hh_mm(&cfg.jobs.cleanup_at).and_then(|(h, m)| {
            let tz = parse_timezone(cfg.jobs.timezone.as_deref())?;
            Daily::new(h, m, tz)
        });
        let daily = match daily {
            Ok(d) => Some(d),
            Err(e) => {
                gate.alerts.raise(
                    AlertKey::CleanupNotScheduled.as_str(),
                    format!("The nightly cleanup is off: {e}"),
                    "Fix [jobs] cleanup_at (\"02:00\") and timezone (\"+01:00\" or \"Europe/Berlin\").",
                    gate.now(),
                );
                None
            }
        };
        let now = gate.now();
        Housekeeping {
            tier_every_ms: cfg.jobs.tier_check_every.get().as_millis() as u64,
            sync_every_ms: if cfg.sync.source_groups.is_empty() {
                None
            } else {
                cfg.sync.every.map(|d| d.get().as_millis() as u64)
            },
            cfg: cfg.clone(),
            gate,
            daily,
            schedule: tokio::sync::Mutex::new(Schedule {
                started: false,
                last_tick_ms: now,
                last_tier_ms: now,
                last_sync_ms: now,
            }),
            last: Mutex::new(LastRuns::default()),
        }
    }

    /// Whether this replica may run the jobs now: always outside a
    /// cluster; in one, when it holds (or just took, or renewed) the lease.
    async fn holds_jobs_lease(&self) -> bool {
        let Some(store) = self.gate.cluster() else {
            return true;
        };
        match store.jobs_lease().await {
            Ok(held) => held,
            Err(e) => {
                tracing::debug!(error = %crate::proxy::error_chain(&e), "cluster: the jobs' lease could not be renewed; jobs wait");
                false
            }
        }
    }

    /// Calls `tick` every `poll` until `stop`.
    pub async fn run(self: Arc<Self>, poll: Duration, stop: CancellationToken) {
        loop {
            self.tick(self.gate.now()).await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Runs whatever is due at `now`: the diagnostics on the first tick,
    /// the tier check every `tier_check_every`, the cleanup once when
    /// `cleanup_at` local time has passed since the previous tick, and the
    /// sync every `[sync] every`.
    pub async fn tick(&self, now: u64) -> Tick {
        let mut sch = self.schedule.lock().await;
        let mut out = Tick::default();
        if !sch.started {
            sch.started = true;
            out.startup_checks = Some(run_checks(&self.gate, &self.cfg).await);
        }
        // In a cluster the jobs that write run on the lease holder only;
        // the others keep their schedule moving, so that a replica taking
        // the lease over does not run again what was just run.
        if !self.holds_jobs_lease().await {
            out.left_to_another_replica = true;
            if schedule::every_due(sch.last_tier_ms, self.tier_every_ms, now) {
                sch.last_tier_ms = now;
            }
            if let Some(every) = self.sync_every_ms {
                if schedule::every_due(sch.last_sync_ms, every, now) {
                    sch.last_sync_ms = now;
                }
            }
            sch.last_tick_ms = sch.last_tick_ms.max(now);
            return out;
        }
        if schedule::every_due(sch.last_tier_ms, self.tier_every_ms, now) {
            sch.last_tier_ms = now;
            let r = tier_check(&self.gate, &self.cfg).await;
            match &r {
                Ok(rep) => {
                    self.gate.alerts.resolve(AlertKey::TierCheckFailed.as_str());
                    self.set_last(|l| l.tier = Some(rep.clone()));
                }
                Err(e) => {
                    self.gate.alerts.raise(
                        AlertKey::TierCheckFailed.as_str(),
                        e.chain(),
                        "Check [directory] and that the application is reachable; the tier check runs again next time.",
                        now,
                    );
                }
            }
            out.tier = Some(r);
        }
        if self
            .daily
            .as_ref()
            .is_some_and(|d| d.due(sch.last_tick_ms, now))
        {
            out.cleanup = Some(self.cleanup(now).await);
        }
        if let Some(every) = self.sync_every_ms {
            if schedule::every_due(sch.last_sync_ms, every, now) {
                sch.last_sync_ms = now;
                out.sync = Some(self.sync().await);
            }
        }
        sch.last_tick_ms = sch.last_tick_ms.max(now);
        out
    }

    async fn cleanup(&self, now: u64) -> Result<CleanupReport, JobError> {
        match cleanup(&self.gate).await {
            Ok(rep) => {
                tracing::info!(
                    deactivated = rep.deactivated.len(),
                    fixed = rep.fixed.len(),
                    seats_freed = rep.seats_freed,
                    failed = rep.failed.len(),
                    "nightly cleanup: removed deactivated and fixed-licence users from the IUM groups"
                );
                if rep.failed.is_empty() {
                    self.gate.alerts.resolve(AlertKey::CleanupFailed.as_str());
                } else {
                    let names: Vec<&str> = rep
                        .failed
                        .iter()
                        .take(10)
                        .map(|(u, _)| u.as_str())
                        .collect();
                    self.gate.alerts.raise(
                        AlertKey::CleanupFailed.as_str(),
                        format!(
                            "The nightly cleanup could not remove {} user(s) from the IUM groups: {} ({})",
                            rep.failed.len(),
                            names.join(", "),
                            rep.failed[0].1
                        ),
                        "Check that the IUM groups are writable and the service account is an administrator.",
                        now,
                    );
                }
                self.set_last(|l| l.cleanup = Some(rep.clone()));
                Ok(rep)
            }
            Err(source) => {
                let e = JobError::Directory {
                    job: "nightly cleanup",
                    step: "read the groups",
                    source,
                };
                self.gate.alerts.raise(
                    AlertKey::CleanupFailed.as_str(),
                    e.chain(),
                    "Check [directory] and that the application is reachable; the cleanup runs again tomorrow.",
                    now,
                );
                Err(e)
            }
        }
    }

    async fn sync(&self) -> Result<crate::sync::ApplyReport, JobError> {
        let run = async {
            let s = crate::sync::SyncSettings::from_config(&self.cfg).map_err(|message| {
                JobError::Settings {
                    job: "sync",
                    message,
                }
            })?;
            let dir = self.gate.directory.as_ref();
            let plan = crate::sync::plan(dir, &s)
                .await
                .map_err(|source| JobError::Directory {
                    job: "sync",
                    step: "read the groups to plan",
                    source,
                })?;
            let opts = crate::sync::RunOptions {
                journal: crate::sync::job_journal(&self.cfg),
                progress: false,
            };
            let rep = crate::sync::apply(dir, &s, &plan, &opts)
                .await
                .map_err(|e| match e {
                    // Named here as a directory step: SyncError's own text
                    // would repeat the directory's.
                    crate::sync::SyncError::Directory(source) => JobError::Directory {
                        job: "sync",
                        step: "apply the plan",
                        source,
                    },
                    source => JobError::Sync {
                        job: "sync",
                        source,
                    },
                })?;
            tracing::info!("sync job: {}", plan.summary(true));
            Ok::<_, JobError>(rep)
        };
        let r = run.await;
        match &r {
            Ok(rep) => {
                self.gate.alerts.resolve(AlertKey::SyncFailed.as_str());
                self.set_last(|l| l.sync = Some(rep.clone()));
            }
            Err(e) => {
                self.gate.alerts.raise(
                    AlertKey::SyncFailed.as_str(),
                    e.chain(),
                    "Run `iumgate sync --config FILE` by hand to see the plan and the error.",
                    self.gate.now(),
                );
            }
        }
        r
    }

    pub fn last_runs(&self) -> LastRuns {
        self.last.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn set_last(&self, f: impl FnOnce(&mut LastRuns)) {
        if let Ok(mut l) = self.last.lock() {
            f(&mut l);
        }
    }
}
