//! The licence gate: the only place that decides whether a request is
//! forwarded, admitted (a seat granted first) or sent to the waiting room.
//!
//! Hot path: a seat holder's request needs one concurrent-map look-up
//! (session → user, with the user's class and seat remembered in the
//! session's [`Memo`]) and an atomic store for an activity touch; it never
//! waits for another user's admission or for the directory. A memo is good
//! while nothing that decides a class or a seat has changed since it was
//! made (the gate's `epoch`); otherwise the user → class and user → seat maps
//! are read again and the memo made anew. Admissions take a per-user async lock (single flight), reserve
//! the seat in the pool under its short std mutex, then call the directory
//! outside that lock and roll back if the call fails.

mod admit;
mod app_client;
mod claim;
pub mod cluster;
mod hooks;
pub mod oidc;
pub mod pools;
mod reconcile;
mod seats;
mod sso;
mod two_step;
mod waiting;

pub use admit::Outcome;
use app_client::{AppClient, Current};
pub use claim::{Borrow, Rights, Standing};
pub use reconcile::ReconcileReport;
pub use seats::{Class, Memo, SeatState};
pub use sso::SamlVerifier;

use crate::alerts::Alerts;
use crate::clock::Clock;
use crate::config::Config;
use crate::directory::Directory;
use crate::identity::Sessions;
use crate::pool::{Pool, PoolConfig};
use crate::product::{ActivityRules, Profile};
use crate::user::UserId;
use dashmap::DashMap;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// Settings the gate reads on each request; swapped on reload.
#[derive(Debug, Clone)]
pub struct GateSettings {
    pub profile: &'static Profile,
    pub activity: ActivityRules,
    pub user_group: String,
    pub access_group: String,
    pub fixed_groups: Vec<String>,
    pub exempt: Vec<UserId>,
    pub release_on_logout: bool,
    pub login_body_limit: usize,
    /// How long a login body may take to arrive (the proxy's header time-out).
    pub login_read_timeout: std::time::Duration,
    pub retry_every_s: u64,
    pub min_idle_ms: u64,
    pub logo_url: Option<String>,
    pub message: Option<String>,
    pub tier: crate::config::Tier,
    pub application: String,
    pub reserved: u32,
    pub session_ttl_ms: u64,
    pub remember_ttl_ms: u64,
    /// `[identity] max_sessions_per_user` / `max_sessions` (a reload applies
    /// new ones to the session map; bindings over a lowered cap go as new
    /// ones are made).
    pub session_limits: crate::identity::Limits,
    pub no_permission_texts: Vec<String>,
    /// `[identity] second_step_timeout`, in ms.
    pub second_step_timeout_ms: u64,
    /// `[sso.saml]` with its certificates: SAML logins are verified.
    pub saml: Option<Arc<sso::SamlVerifier>>,
    /// `[sso.saml] username_attribute` (the NameID without it).
    pub saml_attribute: Option<String>,
    /// `[sso.saml] max_response_bytes`.
    pub saml_max_response: usize,
    /// `[sso.oidc]` (when an issuer is configured).
    pub oidc: Option<oidc::OidcSettings>,
    /// `[identity] authorisation_retries` (at most 3).
    pub authorisation_retries: u32,
    /// `[queue] platform_login_wait = "redirect_url"` (else a 303).
    pub platform_wait_redirect_url: bool,
    /// The upstream's base URL (for the whoami fallback).
    pub upstream: String,
}

impl GateSettings {
    /// Fails only on an `[activity]` pattern that does not compile (which a
    /// config loaded from a file has already been checked for).
    pub fn from_config(cfg: &Config) -> Result<GateSettings, regex::Error> {
        let profile = cfg.proxy.product.profile();
        let activity = ActivityRules::new(profile, &cfg.activity.include, &cfg.activity.exclude)?;
        Ok(GateSettings {
            profile,
            activity,
            user_group: cfg.ium.user_group.clone(),
            access_group: cfg.ium.access_group.clone(),
            fixed_groups: cfg.licence.fixed_groups.clone(),
            exempt: cfg
                .ium
                .exempt_users
                .iter()
                .map(|u| UserId::new(u))
                .collect(),
            release_on_logout: cfg.ium.release_on_logout,
            login_body_limit: cfg.identity.login_body_limit,
            login_read_timeout: cfg.proxy.header_timeout.get(),
            retry_every_s: cfg.queue.retry_every.get().as_secs().max(1),
            min_idle_ms: cfg.ium.min_idle.get().as_millis() as u64,
            logo_url: cfg.queue.logo_url.clone(),
            message: cfg.queue.message.clone(),
            tier: cfg.licence.tier,
            application: cfg.licence.application.clone(),
            reserved: cfg.licence.reserved,
            session_ttl_ms: cfg.identity.session_ttl.get().as_millis() as u64,
            remember_ttl_ms: cfg.identity.remember_ttl.get().as_millis() as u64,
            session_limits: cfg.identity.session_limits(),
            no_permission_texts: cfg.identity.no_permission_texts.clone(),
            second_step_timeout_ms: cfg.identity.second_step_timeout.get().as_millis() as u64,
            saml: sso::SamlVerifier::from_config(&cfg.sso.saml),
            saml_attribute: cfg.sso.saml.username_attribute.clone(),
            saml_max_response: cfg.sso.saml.max_response_bytes,
            oidc: oidc::OidcSettings::from_config(&cfg.sso.oidc),
            authorisation_retries: cfg.identity.authorisation_retries.min(3),
            platform_wait_redirect_url: cfg.queue.platform_login_wait
                == crate::config::PlatformLoginWait::RedirectUrl,
            upstream: cfg.proxy.upstream.trim_end_matches('/').to_string(),
        })
    }
}

/// A grant or an eviction, for the status page.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at_ms: u64,
    pub kind: &'static str,
    pub user: UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub victim: Option<UserId>,
}

/// Counters for metrics and status (plain atomics; read by the admin room).
#[derive(Debug)]
pub struct Counters {
    pub admit_holding: AtomicU64,
    pub admit_granted: AtomicU64,
    pub admit_evicted: AtomicU64,
    pub admit_waited: AtomicU64,
    pub admit_failed: AtomicU64,
    pub release_eviction: AtomicU64,
    pub release_logout: AtomicU64,
    pub release_tier_shrink: AtomicU64,
    pub release_cleanup: AtomicU64,
    pub release_rollback: AtomicU64,
    pub release_reconcile: AtomicU64,
    pub login_failed: AtomicU64,
    /// SAML responses whose assertion is encrypted (forwarded unread).
    pub saml_encrypted: AtomicU64,
    /// OIDC sign-ins iumgate verified (`[sso.oidc]`).
    pub oidc_verified: AtomicU64,
    /// OIDC sign-ins that failed (IdP error, expired or foreign state, an
    /// ID token that did not verify): nobody admitted.
    pub oidc_refused: AtomicU64,
    /// Logins repeated after the app's cache lag (`authorisation_retries`):
    /// the repeat logged the user in, or every one was refused.
    pub login_replays_ok: AtomicU64,
    pub login_replays_refused: AtomicU64,
    /// `[cluster]`: sync passes that reached Redis, and those that failed.
    pub cluster_syncs_ok: AtomicU64,
    /// Binding changes that did not reach Redis (queue full, or Redis down).
    pub cluster_bindings_dropped: AtomicU64,
    pub cluster_syncs_failed: AtomicU64,
    /// Queue entry → admission, seconds (observed once per admitted waiter).
    pub queue_wait_seconds: prometheus::Histogram,
}

/// Buckets of the queue wait: seconds to an hour (min_idle is minutes).
pub const QUEUE_WAIT_BUCKETS: [f64; 12] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 2700.0, 3600.0,
];

impl Default for Counters {
    fn default() -> Self {
        Counters::for_pool(crate::config::DEFAULT_POOL)
    }
}

impl Counters {
    /// The counters of the seat pool `pool` (its queue-wait histogram is
    /// exported with that `pool` label).
    pub fn for_pool(pool: &str) -> Self {
        let opts = prometheus::HistogramOpts::new(
            "iumgate_queue_wait_seconds",
            "Time from entering the queue to getting a seat.",
        )
        .const_label("pool", pool)
        .buckets(QUEUE_WAIT_BUCKETS.to_vec());
        Counters {
            admit_holding: AtomicU64::new(0),
            admit_granted: AtomicU64::new(0),
            admit_evicted: AtomicU64::new(0),
            admit_waited: AtomicU64::new(0),
            admit_failed: AtomicU64::new(0),
            release_eviction: AtomicU64::new(0),
            release_logout: AtomicU64::new(0),
            release_tier_shrink: AtomicU64::new(0),
            release_cleanup: AtomicU64::new(0),
            release_rollback: AtomicU64::new(0),
            release_reconcile: AtomicU64::new(0),
            login_failed: AtomicU64::new(0),
            saml_encrypted: AtomicU64::new(0),
            oidc_verified: AtomicU64::new(0),
            oidc_refused: AtomicU64::new(0),
            login_replays_ok: AtomicU64::new(0),
            login_replays_refused: AtomicU64::new(0),
            cluster_syncs_ok: AtomicU64::new(0),
            cluster_bindings_dropped: AtomicU64::new(0),
            cluster_syncs_failed: AtomicU64::new(0),
            // Constant name and increasing buckets: this cannot fail.
            queue_wait_seconds: prometheus::Histogram::with_opts(opts)
                .expect("constant histogram options are valid"), // ok: constant options, never input
        }
    }
}

/// The licence arithmetic, as last computed by reconcile.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Arithmetic {
    pub tier: u32,
    pub fixed: u32,
    pub reserved: u32,
    pub capacity: u32,
    /// Users in a fixed group *and* an IUM group (a misconfiguration).
    pub power_in_ium: Vec<UserId>,
}

pub struct Gate {
    pub settings: arc_swap::ArcSwap<GateSettings>,
    pub clock: Arc<dyn Clock>,
    pub sessions: Sessions<Memo>,
    pub directory: Arc<dyn Directory>,
    pub alerts: Arc<Alerts>,
    pub counters: Counters,
    /// The pool, seats, grants under way, classes and the epoch.
    state: SeatState,
    /// Single flight: one admission per user at a time.
    inflight: DashMap<UserId, Arc<tokio::sync::Mutex<()>>>,
    arithmetic: Mutex<Arithmetic>,
    /// Sessions the whoami fallback found anonymous, until when (ms):
    /// bounded, and pruned by the prune job, never inside a request.
    pub anonymous: crate::identity::AnonymousCache,
    /// Login forms waiting for a seat, by wait-cookie hash (memory only).
    pending_logins: DashMap<crate::identity::SessionKey, waiting::resume::PendingLogin>,
    /// The gate's own calls to the app (whoami, a login's replay).
    app: AppClient,
    events: Mutex<VecDeque<Event>>,
    /// Seats lent to unconfirmed claims for one exchange ([`Borrow`]).
    loans: claim::Loans,
    /// Logins between their password step and their code step.
    second_steps: two_step::SecondSteps,
    /// Verified SAML assertions already used.
    saml_seen: sso::SeenAssertions,
    /// iumgate's own OIDC sign-ins (`[sso.oidc]`).
    oidc: oidc::OidcRp,
    /// `[cluster]`: the shared store that confirms every grant.
    cluster: std::sync::OnceLock<Arc<crate::cluster::ClusterStore>>,
    /// Seats released here whose release has not reached the store yet.
    cluster_releasing: dashmap::DashSet<UserId>,
    /// The other replicas' alerts and job runs, as of the last sync pass.
    cluster_peers: Mutex<Vec<crate::cluster::PeerState>>,
    /// `[audit]`: the seat audit trail, when on.
    audit: std::sync::OnceLock<Arc<crate::audit::Audit>>,
    /// The pool's name (`[ium]`: "default"; else its `[pools.<name>]`).
    pool_name: Arc<str>,
    /// `[pools.<name>]`: the pools beside this one, each a gate of its own
    /// (set on the default gate only).
    pools: std::sync::OnceLock<Vec<Arc<pools::ExtraPool>>>,
    /// Waiters sent to the waiting room for another pool's seat, and which.
    pool_waits: DashMap<UserId, usize>,
    /// The gate itself, for guards that give a seat back when dropped.
    me: std::sync::Weak<Gate>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("sessions", &self.sessions.len())
            .field("seats", &self.state.len())
            .finish_non_exhaustive()
    }
}

const MAX_EVENTS: usize = 200;

impl Gate {
    pub fn new(
        settings: GateSettings,
        pool_cfg: PoolConfig,
        directory: Arc<dyn Directory>,
        clock: Arc<dyn Clock>,
        alerts: Arc<Alerts>,
        hash_key: [u8; 32],
    ) -> Arc<Gate> {
        Gate::new_named(
            crate::config::DEFAULT_POOL,
            settings,
            pool_cfg,
            directory,
            clock,
            alerts,
            hash_key,
        )
    }

    /// A gate for the pool `name` (see [`Gate::new`]).
    pub fn new_named(
        name: &str,
        settings: GateSettings,
        pool_cfg: PoolConfig,
        directory: Arc<dyn Directory>,
        clock: Arc<dyn Clock>,
        alerts: Arc<Alerts>,
        hash_key: [u8; 32],
    ) -> Arc<Gate> {
        let session_limits = settings.session_limits;
        Arc::new_cyclic(|me| Gate {
            settings: arc_swap::ArcSwap::from_pointee(settings),
            clock,
            sessions: Sessions::with_limits(hash_key, session_limits),
            directory,
            alerts,
            counters: Counters::for_pool(name),
            state: SeatState::new(pool_cfg),
            inflight: DashMap::new(),
            arithmetic: Mutex::new(Arithmetic::default()),
            anonymous: crate::identity::AnonymousCache::default(),
            pending_logins: DashMap::new(),
            app: AppClient::new(),
            events: Mutex::new(VecDeque::new()),
            loans: claim::Loans::default(),
            second_steps: two_step::SecondSteps::default(),
            saml_seen: sso::SeenAssertions::default(),
            oidc: oidc::OidcRp::default(),
            cluster: std::sync::OnceLock::new(),
            cluster_releasing: dashmap::DashSet::new(),
            cluster_peers: Mutex::new(Vec::new()),
            audit: std::sync::OnceLock::new(),
            pool_name: Arc::from(name),
            pools: std::sync::OnceLock::new(),
            pool_waits: DashMap::new(),
            me: me.clone(),
        })
    }

    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Runs `f` on the pool under its mutex (never held across an await);
    /// session memos are stale afterwards.
    pub fn with_pool<R>(&self, f: impl FnOnce(&mut Pool) -> R) -> R {
        self.state.with_pool(f)
    }

    /// Reads the pool under its mutex; nothing changes (memos stay good).
    pub fn with_pool_read<R>(&self, f: impl FnOnce(&Pool) -> R) -> R {
        self.state.peek_pool(f)
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.state.epoch()
    }

    /// A memo of `user`'s class and seat as the maps say now; `epoch` must
    /// have been read before.
    pub(crate) fn memo(&self, user: &UserId, epoch: u64, class: Class) -> Memo {
        self.state.memo(user, epoch, class)
    }

    /// Whether `user` holds a granted (not pending) seat. Lock-free.
    pub fn holds(&self, user: &UserId) -> bool {
        self.state.holds_touching(user, false, 0)
    }

    /// Whether `user` holds a seat (as [`Gate::holds`]); when they do and
    /// `activity`, records it — one look-up for a holder's request.
    pub fn holds_touching(&self, user: &UserId, activity: bool, now: u64) -> bool {
        self.state.holds_touching(user, activity, now)
    }

    /// Records activity of a holder: an atomic store.
    pub fn touch(&self, user: &UserId, now: u64) {
        self.state.touch(user, now);
    }

    pub fn class_of(&self, user: &UserId) -> Option<Class> {
        let s = self.settings.load();
        if s.exempt.contains(user) {
            return Some(Class::Unmanaged);
        }
        if let Some(c) = self.state.class(user) {
            return Some(c);
        }
        // After a full reconcile, a user in none of the groups is unmanaged.
        self.state.is_reconciled().then_some(Class::Unmanaged)
    }

    /// The class of `user`, asking the directory when iumgate has not seen
    /// them in any group yet (a user added to the IUM group since the last
    /// reconcile). Only admissions call this, never the hot path.
    pub async fn class_or_lookup(&self, user: &UserId) -> Class {
        if self.settings.load().exempt.contains(user) {
            return Class::Unmanaged;
        }
        if let Some(c) = self.state.class(user) {
            return c;
        }
        match self.directory.user(user).await {
            Ok(Some(info)) => {
                let s = self.settings.load();
                let in_group = |g: &str| info.groups.iter().any(|x| x.eq_ignore_ascii_case(g));
                let class = if !info.active {
                    Class::Unmanaged
                } else if s.fixed_groups.iter().any(|g| in_group(g)) {
                    Class::Power
                } else if in_group(&s.user_group) {
                    Class::Casual
                } else {
                    Class::Unmanaged
                };
                self.state.learn_class(user, class);
                class
            }
            Ok(None) => Class::Unmanaged,
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "cannot look the user up; passing the request untouched");
                Class::Unmanaged
            }
        }
    }

    /// Asks the app who owns a session it does not name in a header
    /// (Confluence: `GET /rest/api/user/current` with the user's own cookies).
    /// Remembers an anonymous answer for a minute so that an anonymous
    /// visitor does not cause a call per request (in a bounded cache: when
    /// full, the session is asked about again next time; see
    /// [`crate::identity::AnonymousCache`]).
    pub async fn whoami(
        &self,
        path: &str,
        cookie_header: &http::HeaderValue,
        keys: &[(crate::identity::Kind, crate::identity::SessionKey)],
    ) -> Option<UserId> {
        let now = self.now();
        if keys
            .iter()
            .all(|(_, k)| self.anonymous.is_anonymous(k, now))
        {
            return None;
        }
        let url = format!("{}{path}", self.settings.load().upstream);
        match self.app.current_user(url, cookie_header).await? {
            Current::User(user) => {
                for (kind, key) in keys {
                    self.sessions.bind_key(*key, *kind, &user, now);
                }
                Some(user)
            }
            Current::Nobody => {
                for (_, key) in keys {
                    self.anonymous.remember(*key, now + 60_000);
                }
                None
            }
        }
    }

    pub fn arithmetic(&self) -> Arithmetic {
        self.arithmetic
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    pub fn is_reconciled(&self) -> bool {
        self.state.is_reconciled()
    }

    pub(crate) fn record(&self, kind: &'static str, user: &UserId, victim: Option<&UserId>) {
        self.audit_record(kind, user, victim);
        let ev = Event {
            at_ms: self.now(),
            kind,
            user: user.clone(),
            victim: victim.cloned(),
        };
        if let Ok(mut q) = self.events.lock() {
            if q.len() >= MAX_EVENTS {
                q.pop_front();
            }
            q.push_back(ev);
        }
    }

    /// How `user` came by the seat an admission just passed them with (the
    /// access log's decision): granted free or by eviction at or after
    /// `since` (ms), or held already. Read from the recent events, which
    /// the grant recorded under the user's single-flight lock; only
    /// admissions ask, never a holder's request.
    pub(crate) fn seat_verdict(&self, user: &UserId, since: u64) -> crate::access_log::Verdict {
        use crate::access_log::Verdict;
        let Ok(q) = self.events.lock() else {
            return Verdict::Admitted;
        };
        q.iter()
            .rev()
            .take_while(|e| e.at_ms >= since)
            .find(|e| &e.user == user && (e.kind == "granted" || e.kind == "evicted"))
            .map_or(Verdict::Pass, |e| {
                if e.kind == "evicted" {
                    Verdict::EvictedFor
                } else {
                    Verdict::Admitted
                }
            })
    }

    /// Turns the trail on (at start, before any request).
    pub fn set_audit(&self, audit: Arc<crate::audit::Audit>) {
        let _ = self.audit.set(audit);
    }

    /// The audit trail, when `[audit] path` is set.
    pub fn audit_trail(&self) -> Option<&Arc<crate::audit::Audit>> {
        self.audit.get()
    }

    /// The one way into the audit trail: `user`'s seat event, with the
    /// seats in use and the capacity now (after the event); `with` sets
    /// what else the event carries. Never waits for the disk: a read of the
    /// pool's level under its short mutex (the epoch stays, so memos stay
    /// good) and a `try_send` to the trail's channel are all it costs, and
    /// nothing at all without `[audit]`. Must not be called inside
    /// [`Gate::with_pool`].
    pub fn audit(
        &self,
        kind: crate::audit::Kind,
        reason: crate::audit::Reason,
        user: &UserId,
        with: impl FnOnce(&mut crate::audit::Event),
    ) {
        let Some(trail) = self.audit.get() else {
            return;
        };
        let level = self.with_pool_read(|p| (p.in_use(), p.capacity()));
        let mut e = crate::audit::Event::new(
            self.now(),
            kind,
            reason,
            self.pool_name.clone(),
            user.clone(),
            level,
        );
        with(&mut e);
        trail.log(e);
    }

    /// The trail's lines for what [`Gate::record`] records: grants, the
    /// eviction (the victim's release, then the newcomer's grant) and the
    /// releases reconcile and the tier check make.
    fn audit_record(&self, kind: &'static str, user: &UserId, victim: Option<&UserId>) {
        use crate::audit::{Kind, Reason};
        use crate::pool::ReleaseReason as R;
        if self.audit.get().is_none() {
            return;
        }
        let release = |r: R| (Kind::Release, Reason::Release(r));
        let (k, reason) = match kind {
            "granted" => (Kind::Grant, Reason::Free),
            "evicted" => {
                if let Some(v) = victim {
                    // Swapped in one step in the pool: before the grant,
                    // the victim's release left one seat fewer in use.
                    self.audit(Kind::Release, Reason::Release(R::Eviction), v, |e| {
                        e.other = Some(user.clone());
                        e.in_use = e.in_use.saturating_sub(1);
                    });
                }
                (Kind::Grant, Reason::EvictedFor)
            }
            "reconcile_drop" => release(R::Reconcile),
            "tier_shrink" => release(R::TierShrink),
            other => match R::ALL.iter().find(|r| r.label() == other) {
                Some(r) => release(*r),
                None => return,
            },
        };
        self.audit(k, reason, user, |e| e.other = victim.cloned());
    }

    pub fn recent_events(&self) -> Vec<Event> {
        self.events
            .lock()
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Seat holders (user, since, last activity) and the queue, for status.
    pub fn snapshot_view(
        &self,
    ) -> (
        Vec<crate::pool::SeatRecord>,
        Vec<crate::pool::Waiter>,
        usize,
    ) {
        self.with_pool(|p| (p.holders(), p.queue(), p.capacity()))
    }

    pub(super) fn user_lock(&self, user: &UserId) -> Arc<tokio::sync::Mutex<()>> {
        self.inflight
            .entry(user.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone()
    }

    /// Forgets the single-flight lock of `user` when nobody else holds it.
    pub(super) fn drop_user_lock(&self, user: &UserId) {
        self.inflight
            .remove_if(user, |_, l| Arc::strong_count(l) <= 1);
    }
}

#[cfg(test)]
mod claim_props;
#[cfg(test)]
mod lane_tests;
#[cfg(test)]
mod sso_tests;
#[cfg(test)]
mod two_step_tests;
