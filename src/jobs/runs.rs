//! When each background job last ran and last succeeded: shown on the status
//! page and exported as `iumgate_job_last_success_timestamp_seconds`, so an
//! alert can fire when a job has not succeeded on time.
//!
//! The board is made by the wiring (`app`) and shared by `Arc`: the jobs
//! report to it, the admin status page and metrics only read it.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// One job's record. Times are unix milliseconds from the gate's clock.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct JobRun {
    /// How often the job is meant to run (0: not periodic / unknown).
    pub every_s: u64,
    pub last_start_ms: Option<u64>,
    pub last_success_ms: Option<u64>,
    pub last_failure_ms: Option<u64>,
    /// The last failure's error, as logged.
    pub last_error: Option<String>,
    pub successes: u64,
    pub failures: u64,
}

/// The job board. Cheap: one short mutex per report, a few reports a minute.
#[derive(Debug, Default)]
pub struct JobRuns {
    jobs: Mutex<BTreeMap<&'static str, JobRun>>,
}

impl JobRuns {
    fn with<R>(&self, job: &'static str, f: impl FnOnce(&mut JobRun) -> R) -> R {
        let mut map = match self.jobs.lock() {
            Ok(m) => m,
            // A panicking reporter leaves at worst one stale record.
            Err(poisoned) => poisoned.into_inner(),
        };
        f(map.entry(job).or_default())
    }

    /// Declares a periodic job, so "not run yet" shows before its first run
    /// and the alert rule knows its interval.
    pub fn register(&self, job: &'static str, every_s: u64) {
        self.with(job, |r| r.every_s = every_s);
    }

    pub fn started(&self, job: &'static str, now_ms: u64) {
        self.with(job, |r| r.last_start_ms = Some(now_ms));
    }

    pub fn succeeded(&self, job: &'static str, now_ms: u64) {
        self.with(job, |r| {
            r.last_success_ms = Some(now_ms);
            r.successes += 1;
        });
    }

    pub fn failed(&self, job: &'static str, now_ms: u64, error: impl Into<String>) {
        let error = error.into();
        self.with(job, |r| {
            r.last_failure_ms = Some(now_ms);
            r.last_error = Some(error);
            r.failures += 1;
        });
    }

    /// Every job, by name.
    pub fn list(&self) -> Vec<(&'static str, JobRun)> {
        match self.jobs.lock() {
            Ok(m) => m.iter().map(|(k, v)| (*k, v.clone())).collect(),
            Err(poisoned) => poisoned
                .into_inner()
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_the_last_success() {
        let runs = JobRuns::default();
        runs.register("reconcile", 300);
        runs.started("reconcile", 1_000);
        runs.succeeded("reconcile", 1_200);
        runs.started("reconcile", 2_000);
        runs.failed("reconcile", 2_100, "directory: unavailable");
        let list = runs.list();
        assert_eq!(list.len(), 1);
        let (name, r) = &list[0];
        assert_eq!(*name, "reconcile");
        assert_eq!(r.every_s, 300);
        assert_eq!(r.last_success_ms, Some(1_200));
        assert_eq!(r.last_failure_ms, Some(2_100));
        assert_eq!(r.last_start_ms, Some(2_000));
        assert_eq!(r.last_error.as_deref(), Some("directory: unavailable"));
        assert_eq!((r.successes, r.failures), (1, 1));
    }
}
