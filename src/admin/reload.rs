//! SIGHUP: re-read the config file and apply what can change while running —
//! the tier, `min_idle`, the waiting page's message and logo, the log
//! filters. Everything else needs a restart and is named in the log. A file
//! that does not load changes nothing; the outcome goes to the log and to
//! `iumgate_config_reload_success` (+ `_timestamp_seconds`).

use super::metrics::Metrics;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigErrors};
use crate::gate::Gate;
use crate::telemetry::FilterHandle;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Applied now, e.g. `ium.min_idle: 30m → 10m`.
    pub applied: Vec<String>,
    /// Changed in the file but only taken on a restart.
    pub need_restart: Vec<String>,
}

/// Why a reload changed nothing. The running settings stay in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Started without a config file (the demo, a config built in code).
    #[error("config reload: no config file to reload (started without one)")]
    NoSource,
    /// The file cannot be read or does not validate; `source` lists every
    /// problem with its key and line.
    #[error("config reload: {} does not load", path.display())]
    Load {
        path: PathBuf,
        #[source]
        source: ConfigErrors,
    },
    /// The new log filter does not parse.
    #[error("config reload: `{key}` is not a valid log filter")]
    LogFilter {
        key: &'static str,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
}

struct Source {
    path: PathBuf,
    filter: Option<FilterHandle>,
}

pub struct Reloader {
    source: Mutex<Option<Source>>,
    /// The config in force (what the next file is compared with).
    current: Mutex<Config>,
    gate: Option<Arc<Gate>>,
    metrics: Arc<Metrics>,
    /// Serialises reloads: two quick SIGHUPs apply one after the other.
    running: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Reloader {
    /// `cfg` is the config the process started with (its load counts as the
    /// first successful one).
    pub fn new(cfg: Config, gate: Option<Arc<Gate>>, metrics: Arc<Metrics>) -> Reloader {
        let r = Reloader {
            source: Mutex::new(None),
            current: Mutex::new(cfg),
            gate,
            metrics,
            running: tokio::sync::Mutex::new(()),
        };
        r.metrics.config_loaded(true, r.now());
        r
    }

    fn now(&self) -> u64 {
        match &self.gate {
            Some(g) => g.now(),
            None => SystemClock.now_ms(),
        }
    }

    /// Where the config came from, and the log filter to swap. Without a
    /// source (the demo, tests that build a `Config` in code) a reload
    /// re-applies nothing and says so.
    pub fn set_source(&self, path: PathBuf, filter: Option<FilterHandle>) {
        *lock(&self.source) = Some(Source { path, filter });
    }

    /// Reads the file again and applies it (SIGHUP).
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let path = lock(&self.source).as_ref().map(|s| s.path.clone());
        let Some(path) = path else {
            let e = ReloadError::NoSource;
            self.metrics.config_loaded(false, self.now());
            tracing::warn!("{e}");
            return Err(e);
        };
        match Config::load(&path) {
            Ok(cfg) => self.apply(cfg).await,
            Err(source) => Err(self.failed(ReloadError::Load { path, source })),
        }
    }

    /// Counts and logs a failed reload.
    fn failed(&self, e: ReloadError) -> ReloadError {
        self.metrics.config_loaded(false, self.now());
        tracing::error!(
            "config reload failed, the running settings stay in force: {}",
            crate::proxy::error_chain(&e)
        );
        e
    }

    /// Applies `new` (already validated) as far as it can change live.
    pub async fn apply(&self, new: Config) -> Result<ReloadReport, ReloadError> {
        let _one = self.running.lock().await;
        let old = lock(&self.current).clone();
        let mut report = ReloadReport::default();

        // Validate what can still fail before changing anything.
        let filter = if old.log.directives() != new.log.directives() {
            match tracing_subscriber::EnvFilter::try_new(new.log.directives()) {
                Ok(_) => Some(crate::telemetry::filter_for(&new.log)),
                Err(source) => {
                    return Err(self.failed(ReloadError::LogFilter {
                        key: "log.level / log.filters",
                        source,
                    }))
                }
            }
        } else {
            None
        };

        // The default pool's gate, then each further pool's, with the
        // config that pool runs on (`Config::pool_config`).
        let mut reconcile = Vec::new();
        if let Some(gate) = &self.gate {
            if apply_to_gate(gate, &old, &new, "", &mut report) {
                reconcile.push(gate.clone());
            }
            for p in gate.pools() {
                if let (Some(o), Some(n)) = (old.pool_config(&p.name), new.pool_config(&p.name)) {
                    let prefix = format!("pools.{}.", p.name);
                    if apply_to_gate(&p.gate, &o, &n, &prefix, &mut report) {
                        reconcile.push(p.gate.clone());
                    }
                }
            }
        }
        if let Some(f) = filter {
            let handle = lock(&self.source).as_ref().and_then(|s| s.filter.clone());
            match handle {
                Some(h) => match h.reload(f) {
                    Ok(()) => report
                        .applied
                        .push(format!("log: {}", new.log.directives())),
                    Err(e) => tracing::warn!("config reload: cannot swap the log filter: {e}"),
                },
                None => report.need_restart.push("log".into()),
            }
        }
        report.need_restart.extend(restart_only_changes(&old, &new));
        *lock(&self.current) = new;
        self.metrics.config_loaded(true, self.now());
        tracing::info!(
            applied = ?report.applied,
            need_restart = ?report.need_restart,
            "config reloaded"
        );
        for gate in reconcile {
            // The capacity follows from the tier only through a reconcile
            // (it needs the fixed-licence count): run one now.
            if let Err(e) = gate.reconcile().await {
                tracing::warn!(pool = gate.pool_name(), error = %crate::proxy::error_chain(&e), "reconcile after the tier change failed; the reconcile job retries");
            }
        }
        Ok(report)
    }
}

/// Applies what can change live to one pool's gate (`prefix` names the
/// pool's keys in the report: "" for the default pool). Whether the tier
/// or the reserved seats changed (a reconcile is due).
fn apply_to_gate(
    gate: &Gate,
    old: &Config,
    new: &Config,
    prefix: &str,
    report: &mut ReloadReport,
) -> bool {
    let mut tier_changed = false;
    let cur = gate.settings.load_full();
    let mut next = (*cur).clone();
    if old.licence.tier != new.licence.tier {
        report.applied.push(format!(
            "{prefix}licence.tier: {:?} → {:?}",
            old.licence.tier, new.licence.tier
        ));
        next.tier = new.licence.tier;
        tier_changed = true;
    }
    if old.licence.reserved != new.licence.reserved {
        report.applied.push(format!(
            "{prefix}licence.reserved: {} → {}",
            old.licence.reserved, new.licence.reserved
        ));
        next.reserved = new.licence.reserved;
        tier_changed = true;
    }
    let min_idle = new.ium.min_idle.get().as_millis() as u64;
    if old.ium.min_idle.get() != new.ium.min_idle.get() {
        report.applied.push(format!(
            "{prefix}ium.min_idle: {} → {}",
            humantime::format_duration(old.ium.min_idle.get()),
            humantime::format_duration(new.ium.min_idle.get())
        ));
        next.min_idle_ms = min_idle;
    }
    if old.queue.message != new.queue.message {
        report.applied.push(format!("{prefix}queue.message"));
        next.message = new.queue.message.clone();
    }
    if old.queue.logo_url != new.queue.logo_url {
        report.applied.push(format!("{prefix}queue.logo_url"));
        next.logo_url = new.queue.logo_url.clone();
    }
    let limits = new.identity.session_limits();
    if limits != old.identity.session_limits() {
        report.applied.push(format!(
            "{prefix}identity.max_sessions_per_user / max_sessions: {} / {}",
            limits.per_user, limits.total
        ));
        gate.sessions.set_limits(limits);
        next.session_limits = limits;
    }
    // (`with_pool` below marks the sessions' memos stale.)
    gate.settings.store(Arc::new(next));
    gate.with_pool(|p| p.set_min_idle(min_idle));
    tier_changed
}

/// Sections that changed but are only read at start-up.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, changed: bool| {
        if changed {
            out.push(name.to_string());
        }
    };
    check("proxy.listen", old.proxy.listen != new.proxy.listen);
    check("proxy.upstream", old.proxy.upstream != new.proxy.upstream);
    check("proxy.product", old.proxy.product != new.proxy.product);
    check("admin.listen", old.admin.listen != new.admin.listen);
    check("access_log", old.access_log != new.access_log);
    check("audit", old.audit != new.audit);
    check(
        "admin.token",
        old.admin.token_env != new.admin.token_env || old.admin.token_file != new.admin.token_file,
    );
    check(
        "ium groups",
        old.ium.user_group != new.ium.user_group || old.ium.access_group != new.ium.access_group,
    );
    check(
        "licence.fixed_groups",
        old.licence.fixed_groups != new.licence.fixed_groups,
    );
    check("directory.url", old.directory.url != new.directory.url);
    check(
        "proxy timeouts (send_timeout, body_timeout)",
        old.proxy.send_timeout.get() != new.proxy.send_timeout.get()
            || old.proxy.body_timeout.get() != new.proxy.body_timeout.get(),
    );
    check(
        "proxy.fast_lane",
        old.proxy.fast_lane != new.proxy.fast_lane,
    );
    check(
        "admin.max_connections",
        old.admin.max_connections != new.admin.max_connections,
    );
    check(
        "queue.retry_every",
        old.queue.retry_every.get() != new.queue.retry_every.get(),
    );
    // Pools added or removed, or a pool's groups, application or `needs`.
    check(
        "pools",
        old.pools.len() != new.pools.len()
            || old.pools.iter().zip(&new.pools).any(|((on, o), (nn, n))| {
                on != nn
                    || o.application != n.application
                    || o.user_group != n.user_group
                    || o.access_group != n.access_group
                    || o.fixed_groups != n.fixed_groups
                    || o.needs != n.needs
            }),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn reloader() -> Reloader {
        Reloader::new(Config::default(), None, Arc::new(Metrics::new().unwrap()))
    }

    /// The trail's writer is made at start: a changed `[audit]` is named as
    /// needing a restart, not silently ignored.
    #[test]
    fn a_changed_audit_section_needs_a_restart() {
        let old = Config::default();
        let mut new = Config::default();
        assert!(!restart_only_changes(&old, &new).contains(&"audit".to_string()));
        new.audit.path = Some("/var/lib/iumgate/audit.jsonl".into());
        assert!(restart_only_changes(&old, &new).contains(&"audit".to_string()));
    }

    #[tokio::test]
    async fn a_file_that_does_not_load_is_named_and_its_errors_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("iumgate.toml");
        std::fs::write(&path, "[proxy]\nlisten = \"nowhere\"\n").unwrap();
        let r = reloader();
        r.set_source(path.clone(), None);
        let e = r.reload().await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("config reload: {} does not load", path.display())
        );
        let src = e.source().expect("the config errors");
        let errors = src.downcast_ref::<ConfigErrors>().expect("ConfigErrors");
        assert_eq!(errors.0[0].key, "proxy.listen", "{errors:?}");
        assert!(crate::proxy::error_chain(&e).contains("proxy.listen"));
    }

    #[tokio::test]
    async fn a_bad_log_filter_names_the_key_and_keeps_the_parse_error() {
        let r = reloader();
        let mut new = Config::default();
        new.log.filters = vec!["iumgate=loud".into()];
        let e = r.apply(new).await.unwrap_err();
        assert!(matches!(e, ReloadError::LogFilter { .. }), "{e:?}");
        assert!(e.to_string().contains("`log.level / log.filters`"), "{e}");
        assert!(e.source().is_some());
    }

    #[tokio::test]
    async fn without_a_file_there_is_nothing_to_reload() {
        let e = reloader().reload().await.unwrap_err();
        assert!(matches!(e, ReloadError::NoSource), "{e:?}");
        assert!(e.source().is_none());
    }
}
