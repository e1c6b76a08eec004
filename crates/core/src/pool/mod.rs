//! The licence pool: who holds one of the shared seats, who waits for one, and whose seat goes
//! to a newcomer when the pool is full.
//!
//! A pure state machine: no I/O, no timers. Every time is an argument (`now`, milliseconds since
//! any fixed epoch; the gate passes unix ms), so tests and the log replay drive it with their own
//! clock.
//!
//! Two paths with different costs:
//! - **Hot path** (every request of a holder): `seats().get(user)` and [`Seat::touch`], on a
//!   concurrent map with atomic times — no lock shared with admissions.
//! - **Admission path** (`&mut self`, serialised by the gate): grants, evictions, the queue. The
//!   longest-idle holder is found through an ordered index that touches do not update; see
//!   [`Pool::longest_idle`] for why that stays correct.

mod queue;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::user::UserId;

use queue::WaitQueue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Shared seats (tier − fixed-licence users − reserved seats).
    pub capacity: usize,
    /// A holder idle at least this long may lose the seat to a newcomer.
    pub min_idle_ms: u64,
    /// A waiter who has not polled for this long leaves the queue.
    pub abandon_after_ms: u64,
}

/// One held seat. Shared with the hot path through the seat map; a touch is an atomic store.
pub struct Seat {
    since: u64,
    last_active: AtomicU64,
    /// The key under which the pool's activity index files this seat. Only the pool writes it,
    /// under `&mut Pool`; it lives here so that release needs no second map lookup.
    indexed: AtomicU64,
}

impl Seat {
    fn new(since: u64, last_active: u64) -> Seat {
        Seat {
            since,
            last_active: AtomicU64::new(last_active),
            indexed: AtomicU64::new(last_active),
        }
    }

    /// When the seat was granted (or adopted).
    pub fn since(&self) -> u64 {
        self.since
    }

    pub fn last_active(&self) -> u64 {
        self.last_active.load(Ordering::Relaxed)
    }

    /// Records activity. `fetch_max`, so requests finishing out of order (or a clock stepping
    /// back) never make a holder look idler than it is.
    pub fn touch(&self, now: u64) {
        // Relaxed: the value is a lone timestamp; nothing else is published through it.
        self.last_active.fetch_max(now, Ordering::Relaxed);
    }

    fn indexed(&self) -> u64 {
        self.indexed.load(Ordering::Relaxed)
    }

    /// This seat as `user`'s record (times as now).
    pub fn record(&self, user: &UserId) -> SeatRecord {
        SeatRecord {
            user: user.clone(),
            since: self.since,
            last_active: self.last_active(),
        }
    }
}

impl fmt::Debug for Seat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seat")
            .field("since", &self.since)
            .field("last_active", &self.last_active())
            .finish()
    }
}

/// Concurrent read-only view for the request hot path (the gate clones the Arc once).
/// Only the pool inserts and removes; others may `get` and [`Seat::touch`].
///
/// FxHash instead of SipHash: it halves a cold lookup among 100k holders (benches/pool.rs).
/// Hash flooding needs attacker-chosen *keys*, and only the pool inserts, only users the
/// directory knows; a lookup of any name probes at most what is there.
pub type SeatMap = dashmap::DashMap<UserId, Arc<Seat>, rustc_hash::FxBuildHasher>;

/// How an admission may get a seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Take a free seat, else evict a holder idle at least `min_idle`, else queue.
    MayEvict,
    /// Take a free seat or nothing (no eviction, no queueing, no trace).
    FreeOnly,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeatRecord {
    pub user: UserId,
    pub since: u64,
    pub last_active: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Already held a seat (no change).
    Holding,
    /// Took a free seat.
    Granted,
    /// Took the victim's seat; the victim no longer holds.
    Evicted { victim: SeatRecord },
    /// Queued (1-based position); MayEvict only.
    Wait { position: usize },
    /// FreeOnly: nothing free; no side effects at all.
    NoFreeSeat,
}

/// Why a seat was given back (for the directory call, logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReleaseReason {
    Eviction,
    Logout,
    TierShrink,
    Cleanup,
    Reconcile,
    Rollback,
}

impl ReleaseReason {
    /// Every reason, in the order the metrics export them.
    pub const ALL: [ReleaseReason; 6] = [
        ReleaseReason::Eviction,
        ReleaseReason::Logout,
        ReleaseReason::TierShrink,
        ReleaseReason::Cleanup,
        ReleaseReason::Reconcile,
        ReleaseReason::Rollback,
    ];

    /// The metrics' `reason` label (`iumgate_releases_total`).
    pub const fn label(self) -> &'static str {
        match self {
            ReleaseReason::Eviction => "eviction",
            ReleaseReason::Logout => "logout",
            ReleaseReason::TierShrink => "tier_shrink",
            ReleaseReason::Cleanup => "cleanup",
            ReleaseReason::Reconcile => "reconcile",
            ReleaseReason::Rollback => "rollback",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Waiter {
    pub user: UserId,
    pub since: u64,
    pub last_poll: u64,
}

/// Everything needed to restore the pool after a restart (the snapshot file).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolState {
    pub holders: Vec<SeatRecord>,
    pub queue: Vec<Waiter>,
}

pub struct Pool {
    cfg: PoolConfig,
    seats: Arc<SeatMap>,
    /// `(indexed last_active, user)`, exactly one entry per holder. Touches bypass it, so a key
    /// may be older than the seat's real `last_active`, never newer (times only grow). That
    /// lets a touch stay one atomic op while finding the longest-idle holder stays O(log n)
    /// amortised: see [`Pool::longest_idle`].
    by_activity: BTreeSet<(u64, UserId)>,
    queue: WaitQueue,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("cfg", &self.cfg)
            .field("in_use", &self.in_use())
            .field("queue_len", &self.queue_len())
            .finish()
    }
}

impl Pool {
    pub fn new(cfg: PoolConfig) -> Pool {
        Pool {
            cfg,
            seats: Arc::new(SeatMap::default()),
            by_activity: BTreeSet::new(),
            queue: WaitQueue::default(),
        }
    }

    /// The hot-path view; the same Arc for the pool's lifetime (import clears it in place).
    pub fn seats(&self) -> Arc<SeatMap> {
        Arc::clone(&self.seats)
    }

    pub fn config(&self) -> PoolConfig {
        self.cfg
    }

    /// Asks for a seat for `user` at `now`. The rules, in order:
    /// 1. abandoned waiters leave the queue (as [`Pool::prune`]; FreeOnly only when it grants);
    /// 2. a holder gets `Holding`;
    /// 3. `ahead` = waiters before the user (all of them if not queued), `free` = unheld seats;
    /// 4. `ahead < free` → `Granted` (the seats of those ahead stay free for them);
    /// 5. FreeOnly → `NoFreeSeat`, with nothing changed;
    /// 6. `ahead == free`, the pool not over capacity, and the longest-idle holder idle at least
    ///    `min_idle` → `Evicted`;
    /// 7. else queue (or stay queued) and record the poll → `Wait`.
    pub fn admit(&mut self, user: &UserId, now: u64, mode: Mode) -> Admission {
        let abandon = self.cfg.abandon_after_ms;
        if mode == Mode::MayEvict {
            self.queue.prune(now, abandon);
        }
        if self.holds(user) {
            return Admission::Holding;
        }
        // For FreeOnly this counts as if pruned, so both modes decide alike.
        let ahead = self.queue.ahead_after_prune(user, now, abandon);
        let free = self.cfg.capacity.saturating_sub(self.in_use());
        if ahead < free {
            self.queue.prune(now, abandon);
            self.queue.remove(user);
            self.insert_seat(user, now, now);
            return Admission::Granted;
        }
        if mode == Mode::FreeOnly {
            return Admission::NoFreeSeat;
        }
        // Eviction swaps one holder for another, so it must not happen while adopted seats
        // keep the pool above capacity: that would be a new grant above the tier.
        if ahead == free && self.in_use() <= self.cfg.capacity {
            if let Some((victim, last_active)) = self.longest_idle() {
                if now.saturating_sub(last_active) >= self.cfg.min_idle_ms {
                    if let Some(victim) = self.remove_seat(&victim) {
                        self.queue.remove(user);
                        self.insert_seat(user, now, now);
                        return Admission::Evicted { victim };
                    }
                }
            }
        }
        if !self.queue.record_poll(user, now) {
            self.queue.push(user, now, now);
        }
        Admission::Wait {
            position: ahead + 1,
        }
    }

    /// Records activity of a holder. `&self`: the same atomic store the hot path does.
    /// False if `user` holds no seat.
    pub fn touch(&self, user: &UserId, now: u64) -> bool {
        match self.seats.get(user) {
            Some(seat) => {
                seat.touch(now);
                true
            }
            None => false,
        }
    }

    pub fn holds(&self, user: &UserId) -> bool {
        self.seats.contains_key(user)
    }

    /// Frees `user`'s seat; the record says what it was.
    pub fn release(&mut self, user: &UserId) -> Option<SeatRecord> {
        self.remove_seat(user)
    }

    /// Undo an eviction whose directory call failed: the victim holds again with its old times.
    /// May only be called right after the grant it undoes was released (so never above capacity).
    pub fn restore(&mut self, seat: SeatRecord) {
        self.queue.remove(&seat.user);
        // Already holding should not happen (the victim lost its seat); then keep the newer
        // activity rather than a second seat.
        if !self.touch(&seat.user, seat.last_active) {
            self.insert_seat(&seat.user, seat.since, seat.last_active);
        }
    }

    /// Reconcile/snapshot: the directory says `user` holds a seat. Idempotent. The directory is
    /// the truth, so this may put in_use above capacity (then no new grants until it falls
    /// below). `last_active` None => now (for a new holder; a known holder keeps its times, and
    /// `Some` only moves its activity forward). Removes the user from the queue.
    pub fn adopt(&mut self, user: &UserId, now: u64, last_active: Option<u64>) {
        self.queue.remove(user);
        if !self.holds(user) {
            self.insert_seat(user, now, last_active.unwrap_or(now));
        } else if let Some(t) = last_active {
            self.touch(user, t);
        }
    }

    /// New capacity (tier check, live reload). Returns the holders released to get down to it,
    /// longest-idle first — even inside min_idle (going over the tier stops the app).
    pub fn set_capacity(&mut self, capacity: usize) -> Vec<SeatRecord> {
        self.cfg.capacity = capacity;
        let mut released = Vec::new();
        while self.in_use() > capacity {
            let Some((victim, _)) = self.longest_idle() else {
                break;
            };
            match self.remove_seat(&victim) {
                Some(record) => released.push(record),
                None => break,
            }
        }
        released
    }

    /// New capacity without releasing anyone: a pool above it grants
    /// nothing new until holders leave (a cluster replica that is not the
    /// one shrinking: the others' releases reach it through the shared
    /// store).
    pub fn set_capacity_keeping(&mut self, capacity: usize) {
        self.cfg.capacity = capacity;
    }

    pub fn set_min_idle(&mut self, ms: u64) {
        self.cfg.min_idle_ms = ms;
    }

    pub fn set_abandon_after(&mut self, ms: u64) {
        self.cfg.abandon_after_ms = ms;
    }

    /// A waiter's keep-alive (the waiting page polls). Some(1-based position) if queued.
    /// Abandoned waiters are pruned first, so a poll that comes too late does not revive one.
    pub fn poll(&mut self, user: &UserId, now: u64) -> Option<usize> {
        self.queue.prune(now, self.cfg.abandon_after_ms);
        if !self.queue.record_poll(user, now) {
            return None;
        }
        self.position(user)
    }

    /// 1-based queue position (O(queue length)).
    pub fn position(&self, user: &UserId) -> Option<usize> {
        self.queue.index_of(user).map(|i| i + 1)
    }

    /// Queues `user` (or records their poll) without granting anything: a
    /// seat that another authority (the shared store of a cluster) refused
    /// although this pool had one. The 1-based position.
    pub fn enqueue(&mut self, user: &UserId, now: u64) -> usize {
        if self.holds(user) {
            return 0;
        }
        if !self.queue.record_poll(user, now) {
            self.queue.push(user, now, now);
        }
        self.position(user).unwrap_or(1)
    }

    /// Replaces the queue by `waiters`, in their order (a cluster replica
    /// following the shared queue). Holders and repeated names are skipped:
    /// a holder waits for nothing.
    pub fn mirror_queue(&mut self, waiters: &[Waiter]) {
        self.queue.clear();
        for w in waiters {
            if !self.holds(&w.user) && !self.queue.contains(&w.user) {
                self.queue.push(&w.user, w.since, w.last_poll);
            }
        }
    }

    pub fn leave_queue(&mut self, user: &UserId) -> bool {
        self.queue.remove(user)
    }

    /// Drops waiters idle >= abandon_after; returns them (oldest poll first).
    pub fn prune(&mut self, now: u64) -> Vec<UserId> {
        self.queue.prune(now, self.cfg.abandon_after_ms)
    }

    pub fn capacity(&self) -> usize {
        self.cfg.capacity
    }

    pub fn in_use(&self) -> usize {
        // The index has one entry per holder and, unlike `DashMap::len`, takes no shard locks.
        self.by_activity.len()
    }

    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Every holder, in no particular order.
    pub fn holders(&self) -> Vec<SeatRecord> {
        self.seats
            .iter()
            .map(|entry| entry.value().record(entry.key()))
            .collect()
    }

    /// The waiters, head first.
    pub fn queue(&self) -> Vec<Waiter> {
        self.queue.waiters()
    }

    /// Everything needed to restore after a restart. Holders sorted by user, so that two
    /// snapshots of the same state are byte-identical.
    pub fn export(&self) -> PoolState {
        let mut holders = self.holders();
        holders.sort_by(|a, b| a.user.cmp(&b.user));
        PoolState {
            holders,
            queue: self.queue(),
        }
    }

    /// Replaces holders and queue with `state`, keeps the config. Like [`Pool::adopt`], this may
    /// leave the pool above capacity. Duplicates are merged (latest activity wins); a user who
    /// is both holder and waiter only holds.
    pub fn import(&mut self, state: PoolState) {
        self.seats.clear();
        self.by_activity.clear();
        self.queue.clear();
        for h in state.holders {
            if !self.touch(&h.user, h.last_active) {
                self.insert_seat(&h.user, h.since, h.last_active);
            }
        }
        self.mirror_queue(&state.queue);
    }

    fn insert_seat(&mut self, user: &UserId, since: u64, last_active: u64) {
        let seat = Arc::new(Seat::new(since, last_active));
        self.by_activity.insert((last_active, user.clone()));
        if let Some(old) = self.seats.insert(user.clone(), seat) {
            // Callers check `holds` first; keep the index exact even if one did not.
            self.by_activity.remove(&(old.indexed(), user.clone()));
        }
    }

    fn remove_seat(&mut self, user: &UserId) -> Option<SeatRecord> {
        let (user, seat) = self.seats.remove(user)?;
        self.by_activity.remove(&(seat.indexed(), user.clone()));
        Some(seat.record(&user))
    }

    /// The holder with the smallest `(last_active, user)` and its `last_active`; does not remove
    /// it. Pops the smallest index entry; if the seat was touched since it was filed, re-files
    /// it under its real time and looks again. Index keys are never newer than real times, so
    /// an entry whose key equals its real time is below every other holder's real time: the true
    /// minimum. Each touch causes at most one re-filing, so the cost is O(log n) amortised.
    fn longest_idle(&mut self) -> Option<(UserId, u64)> {
        loop {
            let (key, user) = self.by_activity.first()?.clone();
            let real = match self.seats.get(&user) {
                Some(seat) => {
                    let real = seat.last_active();
                    if real > key {
                        seat.indexed.store(real, Ordering::Relaxed);
                    }
                    real
                }
                None => {
                    // Only possible if someone removed from the shared map behind our back.
                    self.by_activity.remove(&(key, user));
                    continue;
                }
            };
            if real <= key {
                return Some((user, real));
            }
            self.by_activity.remove(&(key, user.clone()));
            self.by_activity.insert((real, user));
        }
    }

    /// Internal consistency: the index and the seat map describe the same holders (tests only).
    #[cfg(test)]
    fn check(&self) {
        assert_eq!(
            self.by_activity.len(),
            self.seats.len(),
            "index vs seat map"
        );
        for entry in self.seats.iter() {
            let seat = entry.value();
            let key = seat.indexed();
            assert!(
                self.by_activity.contains(&(key, entry.key().clone())),
                "{} missing from the index",
                entry.key()
            );
            assert!(key <= seat.last_active(), "index key newer than the seat");
            assert!(
                !self.queue.contains(entry.key()),
                "{} holds and waits",
                entry.key()
            );
        }
        self.queue.check();
    }
}
