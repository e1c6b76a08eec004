//! Housekeeping that runs inside `iumgate serve`: reconcile with the
//! directory, prune abandoned waiters and stale sessions.

use crate::config::Config;
use crate::gate::Gate;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Starts every job; they stop with `stop`.
pub fn spawn_all(cfg: &Config, gate: Arc<Gate>, stop: CancellationToken) {
    tokio::spawn(reconcile_loop(
        gate.clone(),
        cfg.jobs.reconcile_every.get(),
        stop.clone(),
    ));
    tokio::spawn(prune_loop(gate, Duration::from_secs(5), stop));
}

/// Reconciles at start and every `every`. A failed pass is retried with a
/// growing back-off (1 s, 2 s, 4 s … up to `every`) and raises an alert.
async fn reconcile_loop(gate: Arc<Gate>, every: Duration, stop: CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    gate.job_runs.register("reconcile", every.as_secs());
    loop {
        gate.job_runs.started("reconcile", gate.now());
        let wait = match gate.reconcile().await {
            Ok(_) => {
                gate.job_runs.succeeded("reconcile", gate.now());
                gate.alerts.resolve("reconcile_failed");
                backoff = Duration::from_secs(1);
                every
            }
            Err(e) => {
                gate.job_runs.failed("reconcile", gate.now(), e.to_string());
                gate.alerts.raise(
                    "reconcile_failed",
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

/// Drops abandoned waiters and sessions past their time to live.
async fn prune_loop(gate: Arc<Gate>, every: Duration, stop: CancellationToken) {
    gate.job_runs.register("prune", every.as_secs());
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let now = gate.now();
        gate.job_runs.started("prune", now);
        gate.with_pool(|p| p.prune(now));
        let s = gate.settings.load();
        gate.sessions.prune(now, s.session_ttl_ms, s.remember_ttl_ms);
        gate.job_runs.succeeded("prune", now);
    }
}
