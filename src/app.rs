//! Wiring: builds the rooms from the config, binds the listeners, runs until
//! told to stop. Used by `iumgate serve`, `iumgate demo` and the tests.

use crate::admin::{self, auth::AdminAuth, AdminSurface, Health, Metrics, Reloader};
use crate::alerts::Alerts;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::directory::Directory;
use crate::gate::{Gate, GateSettings};
use crate::jobs::JobRuns;
use crate::passthrough::NoGate;
use crate::pool::PoolConfig;
use crate::proxy::{self, server, tls::CertStore, Hooks, Proxy};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Why iumgate could not start: what failed, the config key it comes from,
/// and the cause, kept as the error's source and not repeated in its text
/// (print it with [`crate::proxy::error_chain`]).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("{key} {addr}: cannot listen{}", listen_hint(source))]
    Listen {
        key: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A secret (the admin token) could not be read: the source names the
    /// variable or file, never the value.
    #[error("{key}: the secret cannot be read")]
    Secret {
        key: &'static str,
        #[source]
        source: crate::config::SecretError,
    },
    /// The `[state] path` snapshot is there but cannot be read or set aside
    /// (it names the key and the file).
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The TLS certificate pair cannot be used (it names the key and file).
    #[error(transparent)]
    Tls(#[from] crate::proxy::tls::TlsError),
    /// A signal handler could not be installed.
    #[error("cannot handle {signal}")]
    Signals {
        /// `SIGTERM`, `SIGINT` or `SIGHUP`.
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A metric could not be registered (it names the metric).
    #[error(transparent)]
    Metrics(#[from] crate::admin::MetricsError),
    /// The directory client cannot be made (it names the setting).
    #[error(transparent)]
    Directory(#[from] crate::directory::SetupError),
    /// The upstream client cannot be made (it names the setting).
    #[error(transparent)]
    Upstream(#[from] crate::proxy::client::SetupError),
    /// An `[activity]` pattern does not compile.
    #[error("{key}: a pattern is not a valid regular expression")]
    Pattern {
        key: &'static str,
        #[source]
        source: regex::Error,
    },
    /// `[access_log] path` cannot be opened for appending (it names the file).
    #[error(transparent)]
    AccessLog(#[from] crate::access_log::OpenError),
    /// `[audit] path` cannot be opened for appending (it names the file).
    #[error(transparent)]
    Audit(#[from] crate::audit::OpenError),
    /// `[cluster] redis_url` is not a Redis URL.
    #[error("cluster.redis_url: not a usable Redis URL")]
    Cluster {
        #[source]
        source: crate::cluster::StoreError,
    },
}

impl StartError {
    /// The config key (or section) the failure comes from: `signals` and
    /// `metrics` for the two that no setting causes.
    pub fn key(&self) -> &'static str {
        match self {
            StartError::Listen { key, .. }
            | StartError::Secret { key, .. }
            | StartError::Pattern { key, .. } => key,
            StartError::State(_) => "state.path",
            StartError::Tls(e) => e.key(),
            StartError::Signals { .. } => "signals",
            StartError::Metrics(_) => "metrics",
            StartError::Directory(e) => e.key,
            StartError::Upstream(e) => e.key(),
            StartError::Cluster { .. } => "cluster.redis_url",
            StartError::AccessLog(_) => "access_log.path",
            StartError::Audit(_) => "audit.path",
        }
    }
}

/// What to try when a port cannot be bound.
fn listen_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another process uses this port: stop it, or choose another address)"
        }
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need CAP_NET_BIND_SERVICE: choose a higher port or grant it)"
        }
        std::io::ErrorKind::AddrNotAvailable => " (this machine has no such address)",
        _ => "",
    }
}

/// Binds `addr` (from config key `key`), and says which address it got.
async fn bind(
    key: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let listen = |source| StartError::Listen { key, addr, source };
    let l = TcpListener::bind(addr).await.map_err(listen)?;
    let got = l.local_addr().map_err(listen)?;
    Ok((l, got))
}

/// A running iumgate.
pub struct Running {
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub health: Arc<Health>,
    pub tls: Option<Arc<CertStore>>,
    /// The licence gate, when `[ium]` groups are configured.
    pub gate: Option<Arc<Gate>>,
    pub alerts: Arc<Alerts>,
    /// The scheduled jobs (tier check, cleanup, sync), when the gate is on.
    pub jobs: Option<Arc<crate::jobs::Housekeeping>>,
    /// When each background job last ran: the jobs report, the admin
    /// status page and metrics read.
    pub job_runs: Arc<JobRuns>,
    /// Every metric `/metrics` shows.
    pub metrics: Arc<Metrics>,
    /// Re-reads the config file on SIGHUP (`set_source` tells it which).
    pub reloader: Arc<Reloader>,
    /// Cancel to start a graceful drain (SIGTERM).
    pub stop: CancellationToken,
    /// Writes the state snapshots (`[state] path`); the final one after a drain.
    pub state: Option<Arc<crate::state::StateStore>>,
    /// The same for each further pool (`[pools.*]`: `<state.path>.<name>`).
    pub pool_states: Vec<Arc<crate::state::StateStore>>,
    /// The upstream client (its parked idle connections).
    pub upstream: Arc<proxy::client::Upstream>,
    /// `[access_log]`, when on (SIGHUP reopens it).
    pub access_log: Option<Arc<crate::access_log::AccessLog>>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Graceful: `/readyz` turns 503, the listener stops accepting, in-flight
    /// requests drain up to `shutdown_grace`.
    pub fn begin_drain(&self) {
        self.health.set_ready(false);
        self.stop.cancel();
    }

    /// Waits until the drain has finished, then writes the final snapshot
    /// (no request can change the state any more).
    pub async fn wait(self) {
        let _ = self.done.await;
        if let Some(log) = self.access_log.clone() {
            // The drain is over: the last lines go out before the exit.
            let _ =
                tokio::task::spawn_blocking(move || log.close(std::time::Duration::from_secs(2)))
                    .await;
        }
        if let Some(trail) = self.gate.as_ref().and_then(|g| g.audit_trail().cloned()) {
            // The last seat events reach the disk (fsync) before the exit.
            let _ =
                tokio::task::spawn_blocking(move || trail.close(std::time::Duration::from_secs(2)))
                    .await;
        }
        for store in self.state.iter().chain(&self.pool_states) {
            if store.save().await.is_ok() {
                tracing::info!(path = %store.path().display(), "final state snapshot written");
            }
        }
    }

    /// Reloads what SIGHUP reloads: the TLS certificate, and the settings
    /// of the config file that can change live (in the background).
    pub fn reload(&self) {
        if let Some(tls) = &self.tls {
            let _ = tls.reload();
        }
        if let Some(log) = &self.access_log {
            log.reopen();
        }
        let reloader = self.reloader.clone();
        tokio::spawn(async move {
            // The outcome is logged and exported by the reloader itself.
            let _ = reloader.reload().await;
        });
    }
}

/// Installs ring as the process's rustls provider (one provider, explicitly).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What tests and the demo may swap.
#[derive(Clone)]
pub struct Options {
    pub clock: Arc<dyn Clock>,
    /// A directory client to use instead of the configured one.
    pub directory: Option<Arc<dyn Directory>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Arc::new(SystemClock),
            directory: None,
        }
    }
}

/// Binds the listeners and starts serving. Errors name what failed.
pub async fn start(cfg: Config) -> Result<Running, StartError> {
    start_opts(cfg, Options::default()).await
}

pub async fn start_opts(cfg: Config, opts: Options) -> Result<Running, StartError> {
    install_crypto();
    let alerts = Arc::new(Alerts::default());
    let metrics = Arc::new(Metrics::new()?);
    if !cfg.gate_enabled() {
        tracing::info!("no [ium] groups configured: running as a plain proxy (no licence gate)");
        return start_with(cfg, Arc::new(NoGate), None, alerts, metrics).await;
    }
    let directory = match opts.directory {
        Some(d) => admin::metrics::ObservedDirectory::wrap(d, metrics.clone()),
        None => crate::directory::from_config_with_observer(&cfg, metrics.clone())?,
    };
    let settings = GateSettings::from_config(&cfg).map_err(|source| StartError::Pattern {
        key: "activity.include / activity.exclude",
        source,
    })?;
    let pool_cfg = PoolConfig {
        capacity: 0,
        min_idle_ms: cfg.ium.min_idle.get().as_millis() as u64,
        abandon_after_ms: cfg.queue.abandon_after.get().as_millis() as u64,
    };
    // The snapshot is loaded before the first reconcile (started by
    // `spawn_all` below), so the directory has the last word on membership
    // while the snapshot supplies activity times, the queue and sessions.
    let snapshot = crate::state::load_at_start(&cfg.state, &alerts, opts.clock.now_ms())?;
    let hash_key: [u8; 32] = snapshot.as_ref().map_or_else(rand::random, |s| s.hash_key);
    let cluster = if let Some(c) = &cfg.cluster {
        let url = c
            .redis_url()
            .map_err(|source| StartError::Secret {
                key: "cluster.redis_url / redis_url_env / redis_url_file",
                source,
            })?
            .unwrap_or_else(|| crate::config::Secret::new(""));
        let node = c
            .node_id
            .clone()
            .unwrap_or_else(crate::cluster::default_node_id);
        let store = crate::cluster::ClusterStore::new(url.expose(), &c.key_prefix, &node)
            .map_err(|source| StartError::Cluster { source })?
            .with_lease_ttl(c.lease.get());
        tracing::info!(node = %node, prefix = %c.key_prefix, "cluster: seats are shared on Redis");
        Some(Arc::new(store))
    } else {
        None
    };
    // Every replica hashes session cookies with the same key, so that a
    // binding one replica wrote to Redis is found by another.
    let hash_key = match &cluster {
        Some(store) => match store.shared_hash_key(hash_key).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %crate::proxy::error_chain(&e), "cluster: the shared hashing key could not be read; sessions bound at other replicas are learned from the app instead");
                hash_key
            }
        },
        None => hash_key,
    };
    let gate = Gate::new(
        settings,
        pool_cfg,
        directory.clone(),
        opts.clock.clone(),
        alerts.clone(),
        hash_key,
    );
    if let Some(store) = cluster {
        gate.set_cluster(store);
    }
    // The trail names this replica: its cluster node id, or the host.
    let node = gate
        .cluster_node()
        .map_or_else(crate::audit::host_name, str::to_string);
    if let Some(trail) = crate::audit::Audit::start(
        &cfg.audit,
        &node,
        gate.cluster().is_some(),
        opts.clock.clone(),
        alerts.clone(),
        metrics.audit_counters(),
    )? {
        gate.set_audit(trail);
    }
    let pools = start_pools(&cfg, &gate, &directory, &opts.clock)?;
    if let Some(s) = &snapshot {
        let r = s.restore(&gate);
        tracing::info!(
            holders = r.holders,
            waiters = r.waiters,
            sessions = r.sessions,
            "state restored"
        );
    }
    metrics.attach_gate(&gate)?;
    let mut running = start_with(
        cfg.clone(),
        gate.clone(),
        Some(gate.clone()),
        alerts,
        metrics,
    )
    .await?;
    running.jobs = Some(crate::jobs::spawn_all(
        &cfg,
        gate.clone(),
        running.job_runs.clone(),
        running.stop.clone(),
    ));
    if cfg.sso.oidc.issuer.is_some() {
        let secret =
            cfg.sso
                .oidc
                .client_secret()
                .resolve()
                .map_err(|source| StartError::Secret {
                    key: "sso.oidc.client_secret_env / client_secret_file",
                    source,
                })?;
        match secret {
            Some(secret) => {
                tokio::spawn(crate::gate::oidc::discover_until_ready(
                    gate.clone(),
                    cfg.sso.oidc.clone(),
                    secret,
                    running.stop.clone(),
                ));
            }
            None => tracing::error!(
                "sso.oidc has an issuer but no client secret: OIDC users are learned from the app's answer only"
            ),
        }
    }
    if gate.cluster().is_some() {
        gate.share_bindings(running.stop.clone());
        tokio::spawn(crate::gate::cluster::sync_loop(
            gate.clone(),
            running.job_runs.clone(),
            running.stop.clone(),
        ));
    }
    // Each further pool: its jobs, its sync with Redis, its snapshot.
    for (pcfg, p) in &pools {
        let hk = crate::jobs::spawn_all(pcfg, p.gate.clone(), p.runs.clone(), running.stop.clone());
        let _ = p.jobs.set(hk);
        if p.gate.cluster().is_some() {
            tokio::spawn(crate::gate::cluster::sync_loop(
                p.gate.clone(),
                p.runs.clone(),
                running.stop.clone(),
            ));
        }
        if let Some(st) = crate::state::start(&pcfg.state, p.gate.clone(), running.stop.clone()) {
            running.pool_states.push(st);
        }
    }
    running.state = crate::state::start(&cfg.state, gate, running.stop.clone());
    Ok(running)
}

/// Makes the gate of every `[pools.<name>]` (each its own pool, groups,
/// arithmetic, queue, keys on Redis, snapshot and alerts) and hands them
/// to the default gate, which asks them for the seats their `needs` name.
/// Their jobs start with the default gate's.
fn start_pools(
    cfg: &Config,
    gate: &Arc<Gate>,
    directory: &Arc<dyn crate::directory::Directory>,
    clock: &Arc<dyn Clock>,
) -> Result<Vec<(Config, Arc<crate::gate::pools::ExtraPool>)>, StartError> {
    let mut out = Vec::new();
    let mut extra = Vec::new();
    for name in cfg.pools.keys() {
        let Some(pcfg) = cfg.pool_config(name) else {
            continue;
        };
        let section = &cfg.pools[name];
        let needs = iumgate_analyze::pools::Needs::new(&section.needs).map_err(|e| {
            StartError::Pattern {
                key: "pools.<name>.needs",
                source: regex::Error::Syntax(e),
            }
        })?;
        let settings = GateSettings::from_config(&pcfg).map_err(|source| StartError::Pattern {
            key: "activity.include / activity.exclude",
            source,
        })?;
        let pool_cfg = PoolConfig {
            capacity: 0,
            min_idle_ms: pcfg.ium.min_idle.get().as_millis() as u64,
            abandon_after_ms: pcfg.queue.abandon_after.get().as_millis() as u64,
        };
        // Alerts of its own: its reconcile's success must not clear the
        // default pool's alert (and each names its pool).
        let alerts = Arc::new(Alerts::for_pool(name));
        let pg = Gate::new_named(
            name,
            settings,
            pool_cfg,
            directory.clone(),
            clock.clone(),
            alerts,
            gate.sessions.hash_key(),
        );
        if let (Some(c), Some(main)) = (&pcfg.cluster, gate.cluster()) {
            let store = main
                .with_prefix(&c.key_prefix)
                .with_lease_ttl(c.lease.get());
            pg.set_cluster(Arc::new(store));
        }
        if let Some(trail) = gate.audit_trail() {
            pg.set_audit(trail.clone());
        }
        match crate::state::load_at_start(&pcfg.state, &pg.alerts, clock.now_ms()) {
            Ok(Some(s)) => {
                let r = s.restore(&pg);
                tracing::info!(pool = %name, holders = r.holders, waiters = r.waiters, "pool state restored");
            }
            Ok(None) => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(pool = %name, application = %section.application, "seat pool beside the default one");
        let p = Arc::new(crate::gate::pools::ExtraPool {
            name: Arc::from(name.as_str()),
            needs,
            gate: pg,
            runs: Arc::new(JobRuns::default()),
            jobs: std::sync::OnceLock::new(),
        });
        extra.push(p.clone());
        out.push((pcfg, p));
    }
    if !extra.is_empty() {
        gate.set_pools(extra);
    }
    Ok(out)
}

pub async fn start_with<H: Hooks>(
    cfg: Config,
    hooks: Arc<H>,
    gate: Option<Arc<Gate>>,
    alerts: Arc<Alerts>,
    metrics: Arc<Metrics>,
) -> Result<Running, StartError> {
    let admin_token = cfg
        .admin
        .token()
        .resolve()
        .map_err(|source| StartError::Secret {
            key: "admin.token_env / token_file",
            source,
        })?;
    let settings = proxy::Settings::from_config(&cfg.proxy, &crate::product::UPSTREAM_ONLY)?;
    let client = proxy::client::build(&cfg.proxy)?;
    let tls = match &cfg.proxy.tls {
        Some(t) => Some(CertStore::load(&t.cert_file, &t.key_file)?),
        None => None,
    };
    let clock: Arc<dyn Clock> = match &gate {
        Some(g) => g.clock.clone(),
        None => Arc::new(SystemClock),
    };
    let access_log =
        crate::access_log::AccessLog::start(&cfg.access_log, clock, metrics.access_log_counters())?;
    let (listener, proxy_addr) = bind("proxy.listen", cfg.proxy.listen).await?;
    let (admin_listener, admin_addr) = bind("admin.listen", cfg.admin.listen).await?;

    let health = Arc::new(Health::default());
    let stop = CancellationToken::new();
    let admin_stop = CancellationToken::new();
    let proxy = Arc::new(Proxy {
        settings,
        client,
        hooks,
        observer: metrics.clone(),
        tasks: tokio_util::task::TaskTracker::new(),
        access_log: access_log.clone(),
    });
    let job_runs = Arc::new(JobRuns::default());
    if gate.is_some() {
        // Declared before the admin listener answers, so the first scrape
        // already has every periodic job's series (`spawn_all` starts them).
        crate::jobs::declare(&cfg, &job_runs);
    }
    let surface = AdminSurface {
        metrics: metrics.clone(),
        gate: gate.clone(),
        job_runs: job_runs.clone(),
        alerts: alerts.clone(),
        health: health.clone(),
        auth: AdminAuth::new(admin_token),
        metrics_need_token: cfg.admin.metrics_need_token,
    };
    let reloader = Arc::new(Reloader::new(cfg.clone(), gate.clone(), metrics.clone()));
    tokio::spawn(admin::serve(
        admin_listener,
        health.clone(),
        Arc::new(surface),
        admin::AdminLimits::from_config(&cfg),
        admin_stop.clone(),
    ));
    if let (Some(store), Some(t)) = (&tls, &cfg.proxy.tls) {
        tokio::spawn(server::watch_cert(
            store.clone(),
            t.reload_check.get(),
            admin_stop.clone(),
        ));
    }
    let upstream = proxy.client.clone();
    tokio::spawn(upstream.clone().sweep_every(admin_stop.clone()));
    let limits = server::Limits::from_config(&cfg.proxy);
    let scheme = if tls.is_some() { "https" } else { "http" };
    health.set_ready(true);
    tracing::info!(
        "iumgate listening on {scheme}://{proxy_addr} (upstream {}), admin on http://{admin_addr}",
        cfg.proxy.upstream
    );
    let serve_stop = stop.clone();
    let serve_tls = tls.clone();
    let done = tokio::spawn(async move {
        server::serve(listener, serve_tls, proxy, limits, serve_stop).await;
        admin_stop.cancel();
    });
    Ok(Running {
        proxy_addr,
        admin_addr,
        health,
        tls,
        gate,
        alerts,
        jobs: None,
        job_runs,
        metrics,
        reloader,
        stop,
        state: None,
        pool_states: Vec::new(),
        upstream,
        access_log,
        done,
    })
}

/// The signal streams, installed before the listeners start: a signal that
/// arrives while `start` runs is then kept for [`run_until_signalled`]
/// instead of killing the process (SIGINT/SIGTERM's default) or being lost.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> Result<Signals, StartError> {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|source| StartError::Signals {
                signal: name,
                source,
            })
        };
        Ok(Signals {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            int: install(SignalKind::interrupt(), "SIGINT")?,
            hup: install(SignalKind::hangup(), "SIGHUP")?,
        })
    }
}

/// Runs until SIGTERM (graceful drain, exit 0) or SIGINT (fast exit);
/// SIGHUP reloads.
pub async fn run_until_signalled(running: Running, signals: Signals) -> i32 {
    let Signals {
        mut term,
        mut int,
        mut hup,
    } = signals;
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: draining (readyz is 503, no new connections)");
                running.begin_drain();
                running.wait().await;
                tracing::info!("drained; bye");
                return 0;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: exiting now");
                return 130;
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading");
                running.reload();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_signal_that_cannot_be_handled_is_named_and_its_io_error_kept() {
        let e = StartError::Signals {
            signal: "SIGHUP",
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(e.to_string(), "cannot handle SIGHUP");
        assert_eq!(e.key(), "signals");
        assert!(e.source().is_some_and(|s| s.is::<std::io::Error>()));
    }

    #[test]
    fn a_metric_that_cannot_be_registered_names_the_metric_and_keeps_prometheus_error() {
        let e = StartError::from(crate::admin::MetricsError {
            metric: "iumgate_queue_wait_seconds".into(),
            source: prometheus::Error::AlreadyReg,
        });
        assert_eq!(e.key(), "metrics");
        assert_eq!(
            e.to_string(),
            "metrics: cannot register `iumgate_queue_wait_seconds`"
        );
        // Transparent: the next link is prometheus' own error.
        assert!(e.source().is_some_and(|s| s.is::<prometheus::Error>()));
    }

    #[tokio::test]
    async fn an_activity_pattern_that_does_not_compile_names_the_key_and_keeps_the_regex_error() {
        let mut cfg = Config::default();
        cfg.proxy.upstream = "http://127.0.0.1:9".into();
        cfg.ium.user_group = "IUM_user".into();
        cfg.ium.access_group = "IUM_access".into();
        cfg.activity.include = vec!["GET /(unclosed".into()];
        let Err(e) = start_opts(
            cfg,
            Options {
                directory: Some(Arc::new(crate::directory::Fixed::new(5))),
                ..Options::default()
            },
        )
        .await
        else {
            panic!("started with a broken pattern")
        };
        assert_eq!(e.key(), "activity.include / activity.exclude");
        assert!(e.source().is_some_and(|s| s.is::<regex::Error>()), "{e:?}");
    }

    /// A config for `start_with` as a plain proxy on free ports.
    fn plain(upstream: &str) -> Config {
        let mut cfg = Config::default();
        cfg.proxy.upstream = upstream.into();
        cfg.proxy.listen = ([127, 0, 0, 1], 0).into();
        cfg.admin.listen = ([127, 0, 0, 1], 0).into();
        cfg
    }

    async fn start_plain(cfg: Config) -> StartError {
        install_crypto();
        let metrics = Arc::new(Metrics::new().unwrap());
        match start_with(cfg, Arc::new(NoGate), None, Arc::default(), metrics).await {
            Ok(r) => {
                r.begin_drain();
                panic!("started")
            }
            Err(e) => e,
        }
    }

    #[tokio::test]
    async fn a_missing_admin_token_variable_names_key_and_variable_but_no_value() {
        let mut cfg = plain("http://127.0.0.1:9");
        cfg.admin.token_env = Some("IUMGATE_TEST_SURELY_UNSET_ADMIN_TOKEN".into());
        let e = start_plain(cfg).await;
        assert_eq!(e.key(), "admin.token_env / token_file");
        assert_eq!(
            e.to_string(),
            "admin.token_env / token_file: the secret cannot be read"
        );
        assert!(
            e.source()
                .is_some_and(|s| s.is::<crate::config::SecretError>()),
            "{e:?}"
        );
        let chain = crate::proxy::error_chain(&e);
        assert!(
            chain.contains("IUMGATE_TEST_SURELY_UNSET_ADMIN_TOKEN"),
            "{chain}"
        );
    }

    #[tokio::test]
    async fn an_upstream_that_is_not_a_url_names_the_key_and_keeps_the_parse_error() {
        let e = start_plain(plain("http://exa mple")).await;
        assert_eq!(e.key(), "proxy.upstream");
        assert!(e.to_string().starts_with("proxy.upstream "), "{e}");
        // Transparent: the next link is http's own URI error.
        assert!(
            e.source().is_some_and(|s| s.is::<http::uri::InvalidUri>()),
            "{e:?}"
        );
        let e = start_plain(plain("/no/host")).await;
        assert!(e.to_string().ends_with("no host"), "{e}");
    }

    #[tokio::test]
    async fn a_missing_certificate_file_names_the_key_and_file_and_keeps_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = plain("http://127.0.0.1:9");
        cfg.proxy.tls = Some(crate::config::TlsConfig {
            cert_file: dir.path().join("cert.pem"),
            key_file: dir.path().join("key.pem"),
            ..Default::default()
        });
        let e = start_plain(cfg).await;
        assert_eq!(e.key(), "proxy.tls.cert_file");
        assert!(e.to_string().contains("cert.pem"), "{e}");
        let io = e
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the io::Error is the source");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn a_state_file_that_cannot_be_read_names_the_key_and_keeps_the_io_error() {
        let e = StartError::from(crate::state::StateError {
            path: "/var/lib/iumgate/state.json".into(),
            op: "read",
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
        assert_eq!(e.key(), "state.path");
        assert_eq!(
            e.to_string(),
            "state.path /var/lib/iumgate/state.json: cannot read"
        );
        assert!(e.source().is_some_and(|s| s.is::<std::io::Error>()));
    }

    #[test]
    fn a_taken_port_keeps_the_cause_out_of_the_text_and_in_the_chain() {
        let e = StartError::Listen {
            key: "admin.listen",
            addr: ([127, 0, 0, 1], 9102).into(),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        let chain = crate::proxy::error_chain(&e);
        assert!(
            chain.starts_with("admin.listen 127.0.0.1:9102: cannot listen (another process"),
            "{chain}"
        );
        assert_eq!(chain.matches("address in use").count(), 1, "{chain}");
    }
}
