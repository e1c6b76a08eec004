//! The tier check: recount the fixed-licence users (reconcile does, and
//! shrinks the pool, releasing the longest-idle holders even inside
//! `min_idle`, when the shared part got smaller), then look at the app's own
//! seat count and run the diagnostics, whose findings become alerts.

use super::JobError;
use crate::check;
use crate::config::Config;
use crate::gate::{Gate, ReconcileReport};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct TierReport {
    pub at_ms: u64,
    pub reconcile: ReconcileReport,
    /// The app's own seats and count, where its API gives them.
    pub app_seats: Option<u32>,
    pub app_used: Option<u32>,
    pub checks: check::Report,
}

pub async fn tier_check(gate: &Gate, cfg: &Config) -> Result<TierReport, JobError> {
    let reconcile = gate
        .reconcile()
        .await
        .map_err(|source| JobError::Directory {
            job: "tier check",
            step: "read the groups",
            source,
        })?;
    let app = gate
        .directory
        .licence(&cfg.licence.application)
        .await
        .ok()
        .flatten();
    let checks = run_checks(gate, cfg).await;
    Ok(TierReport {
        at_ms: gate.now(),
        reconcile,
        app_seats: app.as_ref().and_then(|l| l.seats),
        app_used: app.as_ref().and_then(|l| l.used),
        checks,
    })
}

/// The diagnostics of `iumgate check`, turned into alerts.
pub async fn run_checks(gate: &Gate, cfg: &Config) -> check::Report {
    // Each pool's gate runs its own checks on its own config: the default
    // gate's need not read every other pool's groups and role too.
    let own;
    let cfg = if cfg.pools.is_empty() {
        cfg
    } else {
        let mut c = cfg.clone();
        c.pools.clear();
        own = c;
        &own
    };
    let report = check::run(cfg, gate.directory.as_ref()).await;
    report.to_alerts(&gate.alerts, gate.now());
    report
}
