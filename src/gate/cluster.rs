//! The gate in a cluster (`[cluster]`, [`crate::cluster`]): the local pool
//! decides as always, and a grant or an eviction it decides is confirmed by
//! the shared store's atomic script before anything is written to the
//! directory. The store may decide otherwise (another replica took the seat,
//! or idles someone else longer): the local pool then follows the store.
//!
//! The sync loop ([`Gate::cluster_sync`], every
//! [`crate::cluster::SYNC_EVERY`]) brings the local pool to the store's
//! holders — another replica's grants adopted, its evictions and releases
//! dropped — and flushes local activity times to the store. A holder's
//! request never waits for Redis.
//!
//! Redis unreachable: holders keep being served from the local view; no
//! grant is made (an admission answers `Unavailable`: the waiting page or
//! 503); alert `cluster_store_unreachable` until a call succeeds again.

use super::{Gate, Outcome};
use crate::alerts::AlertKey;
use crate::cluster::{ClusterStore, Reserve, ReserveMode, StoreError};
use crate::identity::{BindingChange, Kind, Observer, SessionKey};
use crate::pool::{Admission, Mode, SeatRecord};
use crate::user::UserId;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What one sync pass changed locally.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Holders another replica granted, now held here too.
    pub adopted: usize,
    /// Holders another replica evicted or released, dropped here.
    pub dropped: usize,
    /// Activity times written to the store.
    pub flushed: usize,
    /// The store had lost its holders and was written back from here.
    pub rebuilt: bool,
    /// The local queue was brought to the shared queue's order.
    pub queue_mirrored: bool,
}

impl Gate {
    /// Joins the cluster: admissions are confirmed by `store` from now on.
    /// Set once, before the proxy serves.
    pub fn set_cluster(&self, store: Arc<ClusterStore>) {
        if self.cluster.set(store).is_err() {
            tracing::warn!("the cluster store was set twice; the first stays");
        }
    }

    pub fn cluster(&self) -> Option<&Arc<ClusterStore>> {
        self.cluster.get()
    }

    /// The local pool's proposal, decided by the store: a grant or an
    /// eviction is confirmed or overruled, and a waiter's poll (a local
    /// `Wait`) goes to the shared queue, whose order every replica follows —
    /// the store may also admit them at once, when this replica's view of
    /// the queue or the seats was behind. `Err`: the outcome to answer at
    /// once (nothing granted).
    pub(super) async fn arbitrate(
        &self,
        store: &ClusterStore,
        user: &UserId,
        now: u64,
        mode: Mode,
        local: Admission,
    ) -> Result<Admission, Outcome> {
        let local_victim = match &local {
            Admission::Granted => None,
            Admission::Evicted { victim } => Some(victim.clone()),
            Admission::Wait { .. } => None,
            Admission::Holding | Admission::NoFreeSeat => return Ok(local),
        };
        let local_granted = !matches!(local, Admission::Wait { .. });
        // Keep the sync loop off this seat while the store decides.
        self.state.grant_started(user);
        let pool = self.with_pool(|p| p.config());
        let reserve_mode = match mode {
            Mode::FreeOnly => ReserveMode::FreeOnly,
            Mode::MayEvict => ReserveMode::MayEvict,
        };
        let decided = store.reserve(user, pool, now, reserve_mode).await;
        // Back to what the pool was before its proposal.
        let undo_local = |p: &mut crate::pool::Pool| {
            if local_granted {
                p.release(user);
            }
            if let Some(v) = &local_victim {
                p.adopt(&v.user, v.since, Some(v.last_active));
            }
        };
        // The store's seat for a user this replica had queued.
        let take_seat = |p: &mut crate::pool::Pool| {
            if !local_granted {
                p.leave_queue(user);
                p.adopt(user, now, Some(now));
            }
        };
        match decided {
            Ok(Reserve::Granted | Reserve::Holding) => {
                self.cluster_ok();
                self.with_pool(|p| {
                    take_seat(p);
                    if let Some(v) = &local_victim {
                        // The store had a free seat: nobody is evicted.
                        p.adopt(&v.user, v.since, Some(v.last_active));
                    }
                });
                Ok(Admission::Granted)
            }
            Ok(Reserve::Evicted {
                victim,
                last_active,
            }) => {
                self.cluster_ok();
                let record = self.with_pool(|p| {
                    take_seat(p);
                    if let Some(v) = &local_victim {
                        if v.user != victim {
                            p.adopt(&v.user, v.since, Some(v.last_active));
                        }
                    }
                    p.release(&victim)
                });
                let victim = match (record, local_victim) {
                    (Some(r), _) => r,
                    (None, Some(v)) if v.user == victim => v,
                    (None, _) => SeatRecord {
                        user: victim,
                        since: last_active,
                        last_active,
                    },
                };
                Ok(Admission::Evicted { victim })
            }
            Ok(Reserve::Queued { position }) => {
                self.cluster_ok();
                self.with_pool(|p| {
                    undo_local(p);
                    p.enqueue(user, now);
                });
                self.state.grant_ended(user);
                Ok(Admission::Wait { position })
            }
            Ok(Reserve::Full) => {
                self.cluster_ok();
                self.with_pool(undo_local);
                self.state.grant_ended(user);
                Ok(match mode {
                    Mode::FreeOnly => Admission::NoFreeSeat,
                    // Not an answer the script gives to MayEvict; queue here.
                    Mode::MayEvict => Admission::Wait {
                        position: self.with_pool(|p| p.enqueue(user, now)),
                    },
                })
            }
            Ok(Reserve::Unbuilt) => {
                self.with_pool(undo_local);
                self.state.grant_ended(user);
                tracing::info!(user = %user, "the cluster store is being rebuilt: nothing granted for a moment");
                match local {
                    Admission::Wait { .. } => Ok(local),
                    _ => Err(Outcome::Unavailable),
                }
            }
            Err(e) => {
                self.with_pool(undo_local);
                self.state.grant_ended(user);
                self.cluster_failed(&e);
                match local {
                    // A waiter keeps waiting (the waiting page) while the
                    // seats cannot be coordinated.
                    Admission::Wait { .. } => Ok(local),
                    _ => Err(Outcome::Unavailable),
                }
            }
        }
    }

    /// A grant the store confirmed failed in the directory: the store gets
    /// the seat back (and the victim theirs, while that fits).
    pub(super) async fn cluster_give_back(&self, user: &UserId, victim: Option<&SeatRecord>) {
        let Some(store) = self.cluster() else { return };
        let capacity = self.with_pool(|p| p.capacity());
        let v = victim.map(|v| (&v.user, v.last_active));
        if let Err(e) = store.give_back(user, capacity, v).await {
            self.cluster_failed(&e);
        }
    }

    /// A seat released here (logout, cleanup, tier shrink): gone from the
    /// store too. A failure is retried by the sync loop, which meanwhile
    /// does not take the seat back from the store.
    pub(super) async fn cluster_release(&self, user: &UserId) {
        let Some(store) = self.cluster() else { return };
        if let Err(e) = store.release(user, self.now()).await {
            self.cluster_failed(&e);
            self.cluster_releasing.insert(user.clone());
        }
    }

    /// One pass of the sync loop. Until the first reconcile the local pool
    /// knows nothing worth comparing: the pass does nothing.
    pub async fn cluster_sync(&self) -> Result<SyncReport, StoreError> {
        let Some(store) = self.cluster().cloned() else {
            return Ok(SyncReport::default());
        };
        if !self.is_reconciled() {
            return Ok(SyncReport::default());
        }
        // Releases that could not reach the store before.
        let retry: Vec<UserId> = self.cluster_releasing.iter().map(|u| u.clone()).collect();
        for u in retry {
            store.release(&u, self.now()).await?;
            self.cluster_releasing.remove(&u);
        }
        let mut report = SyncReport::default();
        if !store.is_built().await? {
            // Emptied or replaced: written back from this replica's view
            // (the directory's, as of the last reconcile) before anyone is
            // granted a seat again.
            let mine: Vec<(UserId, u64)> = self
                .state
                .seat_records()
                .into_iter()
                .map(|r| (r.user, r.last_active))
                .collect();
            store.adopt_many(&mine, None).await?;
            tracing::warn!(
                holders = mine.len(),
                "the cluster store had lost its holders: written back from this replica"
            );
            report.rebuilt = true;
        }
        let remote: HashMap<UserId, u64> = store.holders().await?.into_iter().collect();
        let pending = self.state.granting();
        let now = self.now();
        let local = self.state.seat_records();
        let mut flush = Vec::new();
        let mut drop = Vec::new();
        for h in &local {
            if pending.contains(&h.user) {
                continue;
            }
            match remote.get(&h.user) {
                None => drop.push(h.user.clone()),
                Some(&t) if h.last_active > t => flush.push((h.user.clone(), h.last_active)),
                Some(&t) if t > h.last_active => self.state.touch(&h.user, t),
                Some(_) => {}
            }
        }
        let adopt: Vec<(UserId, u64)> = remote
            .iter()
            .filter(|(u, _)| {
                !pending.contains(*u)
                    && !self.cluster_releasing.contains(*u)
                    && !local.iter().any(|h| &h.user == *u)
            })
            .map(|(u, t)| (u.clone(), *t))
            .collect();
        if !drop.is_empty() || !adopt.is_empty() {
            // Only a pass that changes something moves the epoch.
            self.with_pool(|p| {
                let pending = self.state.granting();
                for u in &drop {
                    if !pending.contains(u) && p.release(u).is_some() {
                        report.dropped += 1;
                    }
                }
                for (u, t) in &adopt {
                    if !pending.contains(u) && !p.holds(u) {
                        p.adopt(u, now, Some(*t));
                        report.adopted += 1;
                    }
                }
            });
        }
        store.touch_many(&flush).await?;
        report.flushed = flush.len();
        // The shared queue, in its order (first come over every replica):
        // positions, the waiting page and the status page agree everywhere.
        let queue = store.queue().await?;
        if self.state.peek_pool(|p| p.queue()) != queue {
            self.with_pool(|p| p.mirror_queue(&queue));
            report.queue_mirrored = true;
        }
        self.cluster_ok();
        Ok(report)
    }

    /// Reconcile in a cluster: the directory's holders are written to the
    /// store (rebuilding it if it was emptied), and holders the directory
    /// dropped before `started` leave it.
    pub(super) async fn cluster_reconciled(
        &self,
        holders: &[(UserId, u64)],
        dropped: &[UserId],
        started: u64,
    ) {
        let Some(store) = self.cluster() else { return };
        let r = async {
            // Not those released since this pass read the directory.
            store.adopt_many(holders, Some(started)).await?;
            store.drop_stale(dropped, started).await
        }
        .await;
        match r {
            Ok(_) => self.cluster_ok(),
            Err(e) => self.cluster_failed(&e),
        }
    }

    fn cluster_failed(&self, e: &StoreError) {
        tracing::warn!(error = %crate::proxy::error_chain(e), "the cluster store (Redis) failed: no new grants until it answers");
        self.alerts.raise(
            AlertKey::ClusterStoreUnreachable.as_str(),
            format!("The shared pool on Redis cannot be used: {e}. Holders are served; nobody new gets a seat."),
            "Check that Redis ([cluster] redis_url) is up and reachable from every replica.",
            self.now(),
        );
    }

    fn cluster_ok(&self) {
        self.alerts
            .resolve(AlertKey::ClusterStoreUnreachable.as_str());
    }
}

/// At most this many binding changes wait for Redis; more are dropped
/// (counted): the other replicas then learn those sessions from the app.
const BINDINGS_QUEUE: usize = 10_000;
/// At most this many changes are written in one round trip.
const BINDINGS_BATCH: usize = 512;

impl Gate {
    /// Shares this replica's session bindings through the store: every new
    /// or dropped binding is queued (never blocking the request) and written
    /// by a background task, each expiring after its kind's time to live.
    pub fn share_bindings(self: &Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let Some(store) = self.cluster().cloned() else {
            return;
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<BindingChange>(BINDINGS_QUEUE);
        let me = Arc::downgrade(self);
        self.sessions.set_observer(Observer(Box::new(move |change| {
            if tx.try_send(change).is_err() {
                if let Some(g) = me.upgrade() {
                    g.counters
                        .cluster_bindings_dropped
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        })));
        let gate = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BINDINGS_BATCH);
            loop {
                let first = tokio::select! {
                    _ = stop.cancelled() => return,
                    c = rx.recv() => match c { Some(c) => c, None => return },
                };
                batch.push(first);
                while batch.len() < BINDINGS_BATCH {
                    match rx.try_recv() {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
                let Some(g) = gate.upgrade() else { return };
                let s = g.settings.load();
                let (mut bind, mut forget) = (Vec::new(), Vec::new());
                for c in batch.drain(..) {
                    match c {
                        BindingChange::Bound { key, kind, user } => {
                            let ttl = match kind {
                                Kind::Session | Kind::Wait => s.session_ttl_ms,
                                Kind::RememberMe | Kind::Token => s.remember_ttl_ms,
                            };
                            bind.push((key, kind, user, ttl));
                        }
                        BindingChange::Forgotten(key) => forget.push(key),
                    }
                }
                let r = async {
                    store.bind_many(&bind).await?;
                    store.forget_many(&forget).await
                }
                .await;
                if let Err(e) = r {
                    g.counters
                        .cluster_bindings_dropped
                        .fetch_add((bind.len() + forget.len()) as u64, Ordering::Relaxed);
                    g.cluster_failed(&e);
                }
            }
        });
    }

    /// The waiter a wait cookie (or session) another replica bound names:
    /// they wait, and may be admitted, here too.
    pub(crate) async fn shared_waiting_user(&self, headers: &http::HeaderMap) -> Option<UserId> {
        self.cluster()?;
        let s = self.settings.load();
        let mut keys: Vec<(Kind, SessionKey)> = crate::identity::cookies(headers)
            .filter(|(n, _)| *n == super::waiting::WAIT_COOKIE)
            .map(|(_, v)| (Kind::Wait, self.sessions.hash(Kind::Wait, v)))
            .collect();
        keys.extend(
            crate::identity::session_cookies(s.profile, headers)
                .map(|(kind, v)| (kind, self.sessions.hash(kind, v))),
        );
        if !self.may_share_lookup(&keys, self.now()) {
            return None;
        }
        self.shared_lookup(&keys).await.map(|(u, _)| u)
    }

    /// Whether an unknown session is worth asking Redis about: in a
    /// cluster, and not every key was found unbound a moment ago.
    pub(super) fn may_share_lookup(&self, keys: &[(Kind, SessionKey)], now: u64) -> bool {
        self.cluster().is_some()
            && !keys.is_empty()
            && !keys
                .iter()
                .all(|(_, k)| self.anonymous.is_anonymous(k, now))
    }

    /// The user another replica bound one of `keys` to, bound here too
    /// (with the index of the key). Keys bound nowhere are remembered as
    /// such for a few seconds, so that an anonymous browser does not ask
    /// Redis on every request.
    pub(super) async fn shared_lookup(
        &self,
        keys: &[(Kind, SessionKey)],
    ) -> Option<(UserId, usize)> {
        let store = self.cluster()?;
        let hashes: Vec<SessionKey> = keys.iter().map(|(_, k)| *k).collect();
        let now = self.now();
        let found = match store.lookup(&hashes).await {
            Ok(f) => f,
            Err(e) => {
                self.cluster_failed(&e);
                return None;
            }
        };
        let hit = found
            .iter()
            .enumerate()
            .find_map(|(i, f)| f.as_ref().map(|(_, u)| (u.clone(), i)));
        match &hit {
            Some((user, _)) => {
                for ((kind, key), f) in keys.iter().zip(&found) {
                    if f.as_ref().is_some_and(|(_, u)| u == user) {
                        self.sessions.bind_key(*key, *kind, user, now);
                    }
                }
            }
            None => {
                for k in &hashes {
                    self.anonymous.remember(*k, now + 5_000);
                }
            }
        }
        hit
    }
}

impl Gate {
    /// This replica's node id (in a cluster).
    pub fn cluster_node(&self) -> Option<&str> {
        self.cluster().map(|s| s.node())
    }

    /// The other replicas' alerts and job runs, as of the last sync pass.
    pub fn cluster_peers(&self) -> Vec<crate::cluster::PeerState> {
        match self.cluster_peers.lock() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Publishes this replica's alerts and job runs and reads the others'.
    async fn exchange_peers(&self, runs: &crate::jobs::JobRuns) -> Result<(), StoreError> {
        let Some(store) = self.cluster() else {
            return Ok(());
        };
        let mine = crate::cluster::PeerState {
            node: store.node().to_string(),
            alerts: self.alerts.list(),
            jobs: runs
                .list()
                .into_iter()
                .map(|(j, r)| (j.to_string(), r))
                .collect(),
        };
        let peers = store.exchange_peers(&mine).await?;
        match self.cluster_peers.lock() {
            Ok(mut p) => *p = peers,
            Err(poisoned) => *poisoned.into_inner() = peers,
        }
        Ok(())
    }
}

/// Runs [`Gate::cluster_sync`] every [`crate::cluster::SYNC_EVERY`] until
/// `stop`; every fourth pass also exchanges the replicas' alerts and job
/// runs for the status page.
pub async fn sync_loop(
    gate: Arc<Gate>,
    runs: Arc<crate::jobs::JobRuns>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut pass: u64 = 0;
    let mut tick = tokio::time::interval(crate::cluster::SYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let c = &gate.counters;
        match gate.cluster_sync().await {
            Ok(r) => {
                c.cluster_syncs_ok.fetch_add(1, Ordering::Relaxed);
                if r.adopted + r.dropped > 0 || r.rebuilt {
                    tracing::debug!(
                        adopted = r.adopted,
                        dropped = r.dropped,
                        rebuilt = r.rebuilt,
                        "cluster sync"
                    );
                }
            }
            Err(e) => {
                c.cluster_syncs_failed.fetch_add(1, Ordering::Relaxed);
                gate.cluster_failed(&e);
            }
        }
        if pass % 4 == 0 {
            if let Err(e) = gate.exchange_peers(&runs).await {
                tracing::debug!(error = %crate::proxy::error_chain(&e), "cluster: the replicas' status could not be exchanged");
            }
        }
        pass = pass.wrapping_add(1);
    }
}
