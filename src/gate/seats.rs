//! The seat state: the pool, the seat map, the grants under way, the users'
//! classes, and the epoch. It is the only type that can move the epoch:
//! every change to what decides a class or a seat goes through a method
//! here that moves it afterwards, so a session's [`Memo`] made before the
//! change is never taken for newer.

use crate::pool::{Pool, PoolConfig, Seat, SeatMap};
use crate::user::UserId;
use dashmap::{DashMap, DashSet};
use rustc_hash::FxBuildHasher;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What iumgate knows about a user's licence situation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// In the IUM user group: managed.
    Casual,
    /// In a fixed-licence group: never touched (even if also in an IUM group).
    Power,
    /// Anyone else (and exempt users): passes untouched.
    Unmanaged,
}

/// What a session remembers of its user's class and seat, good while the
/// gate's epoch is still the one it was made at. Kept small: one is stored
/// with every session (a million sessions, a million memos).
#[derive(Debug, Default)]
pub struct Memo {
    /// The epoch shifted left by two, the class in the low two bits
    /// (0: never made).
    tagged: u64,
    /// The seat held (`None`: none, or its grant is not finished).
    seat: Option<Arc<Seat>>,
}

impl Memo {
    pub(crate) fn new(epoch: u64, class: Class, seat: Option<Arc<Seat>>) -> Memo {
        let code = match class {
            Class::Casual => 1,
            Class::Power => 2,
            Class::Unmanaged => 3,
        };
        Memo {
            tagged: (epoch << 2) | code,
            seat,
        }
    }

    /// The class and seat, if the memo was made at `epoch`.
    pub(crate) fn at(&self, epoch: u64) -> Option<(Class, Option<Arc<Seat>>)> {
        if self.tagged >> 2 != epoch {
            return None;
        }
        let class = match self.tagged & 3 {
            1 => Class::Casual,
            2 => Class::Power,
            3 => Class::Unmanaged,
            _ => return None,
        };
        Some((class, self.seat.clone()))
    }
}

/// The pool and what the hot path reads beside it (see the module's doc).
pub struct SeatState {
    pool: Mutex<Pool>,
    seats: Arc<SeatMap>,
    /// Seats reserved whose directory grant has not finished yet.
    pending: DashSet<UserId, FxBuildHasher>,
    classes: DashMap<UserId, Class, FxBuildHasher>,
    /// A full reconcile has run: a user in none of the groups is unmanaged.
    reconciled: AtomicBool,
    /// Moves on after every change to what decides a class or a seat (the
    /// pool, pending grants, classes, settings): session memos made before
    /// are stale.
    epoch: AtomicU64,
}

impl SeatState {
    pub fn new(pool_cfg: PoolConfig) -> SeatState {
        let pool = Pool::new(pool_cfg);
        let seats = pool.seats();
        SeatState {
            pool: Mutex::new(pool),
            seats,
            pending: DashSet::default(),
            classes: DashMap::default(),
            reconciled: AtomicBool::new(false),
            epoch: AtomicU64::new(1),
        }
    }

    /// Marks every session memo stale: called after (never before) a change
    /// to the pool, pending grants, classes or settings. A memo made from
    /// maps read after the epoch it carries is then never taken for newer.
    fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::Release);
    }

    /// The epoch now: read before the maps a memo is made from.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Reads the pool under its mutex without moving the epoch (nothing
    /// changes).
    pub fn peek_pool<R>(&self, f: impl FnOnce(&Pool) -> R) -> R {
        let guard = match self.pool.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&guard)
    }

    /// Runs `f` on the pool under its mutex (never held across an await),
    /// then moves the epoch.
    pub fn with_pool<R>(&self, f: impl FnOnce(&mut Pool) -> R) -> R {
        let mut guard = match self.pool.lock() {
            Ok(g) => g,
            // A panic while holding the lock cannot leave the pool half-changed
            // in a way that matters more than stopping all admissions would.
            Err(poisoned) => poisoned.into_inner(),
        };
        let out = f(&mut guard);
        drop(guard);
        self.changed();
        out
    }

    /// A memo of `user`'s class and seat as the maps say now; `epoch` must
    /// have been read before.
    pub fn memo(&self, user: &UserId, epoch: u64, class: Class) -> Memo {
        let seat = self.held_seat(user).map(|s| Arc::clone(s.value()));
        Memo::new(epoch, class, seat)
    }

    /// Whether `user` holds a seat whose grant finished; when they do and
    /// `activity`, records it — one look-up for a holder's request.
    pub fn holds_touching(&self, user: &UserId, activity: bool, now: u64) -> bool {
        self.held_seat(user).is_some_and(|seat| {
            if activity {
                seat.touch(now);
            }
            true
        })
    }

    /// The seat `user` holds, unless its grant is still pending.
    fn held_seat(&self, user: &UserId) -> Option<dashmap::mapref::one::Ref<'_, UserId, Arc<Seat>>> {
        if self.pending.contains(user) {
            return None;
        }
        self.seats.get(user)
    }

    /// Every seat in the pool (granted or under way), read without moving
    /// the epoch.
    pub fn seat_records(&self) -> Vec<crate::pool::SeatRecord> {
        self.seats
            .iter()
            .map(|e| e.value().record(e.key()))
            .collect()
    }

    /// Whether the pool has a seat for `user`, granted or not yet.
    pub fn has_seat(&self, user: &UserId) -> bool {
        self.seats.contains_key(user)
    }

    /// Records activity of a holder: an atomic store.
    pub fn touch(&self, user: &UserId, now: u64) {
        if let Some(seat) = self.seats.get(user) {
            seat.touch(now);
        }
    }

    /// `user`'s seat is reserved and its grant under way: not held yet.
    pub fn grant_started(&self, user: &UserId) {
        self.pending.insert(user.clone());
        self.changed();
    }

    /// `user`'s grant ended (granted, or rolled back).
    pub fn grant_ended(&self, user: &UserId) {
        self.pending.remove(user);
        self.changed();
    }

    /// The users whose grant is under way.
    pub fn granting(&self) -> HashSet<UserId> {
        self.pending.iter().map(|u| u.clone()).collect()
    }

    /// The class iumgate has seen `user` in, if any.
    pub fn class(&self, user: &UserId) -> Option<Class> {
        self.classes.get(user).map(|c| *c)
    }

    /// `user`'s class, learned from the directory.
    pub fn learn_class(&self, user: &UserId, class: Class) {
        self.classes.insert(user.clone(), class);
        self.changed();
    }

    /// Every user's class, as a reconcile read the groups: anyone not in
    /// `classes` is forgotten.
    pub fn set_classes(&self, classes: HashMap<UserId, Class>) {
        self.classes.retain(|k, _| classes.contains_key(k));
        for (k, v) in classes {
            self.classes.insert(k, v);
        }
        self.changed();
    }

    /// A full reconcile finished; `true` the first time.
    pub fn mark_reconciled(&self) -> bool {
        let first = !self.reconciled.swap(true, Ordering::AcqRel);
        self.changed();
        first
    }

    pub fn is_reconciled(&self) -> bool {
        self.reconciled.load(Ordering::Acquire)
    }

    /// How many seats the map holds (granted or not yet).
    pub fn len(&self) -> usize {
        self.seats.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seats.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every change the hot path's memos depend on moves the epoch; reads
    /// do not.
    #[test]
    fn every_change_moves_the_epoch_and_no_read_does() {
        let s = SeatState::new(PoolConfig {
            capacity: 2,
            min_idle_ms: 0,
            abandon_after_ms: 60_000,
        });
        let u = UserId::new("c1");
        let moved = |f: &dyn Fn()| {
            let before = s.epoch();
            f();
            s.epoch() != before
        };
        assert!(moved(&|| {
            s.with_pool(|p| p.adopt(&u, 1_000, None));
        }));
        assert!(moved(&|| s.grant_started(&u)));
        assert!(moved(&|| s.grant_ended(&u)));
        assert!(moved(&|| s.learn_class(&u, Class::Casual)));
        assert!(moved(&|| s.set_classes(HashMap::new())));
        assert!(moved(&|| {
            s.mark_reconciled();
        }));
        assert!(!moved(&|| {
            s.holds_touching(&u, true, 2_000);
            s.class(&u);
            s.has_seat(&u);
            s.touch(&u, 3_000);
            s.granting();
            s.memo(&u, s.epoch(), Class::Casual);
        }));
    }

    /// A seat whose grant is under way is in the map but not held.
    #[test]
    fn a_seat_being_granted_is_not_held_yet() {
        let s = SeatState::new(PoolConfig {
            capacity: 2,
            min_idle_ms: 0,
            abandon_after_ms: 60_000,
        });
        let u = UserId::new("c1");
        s.with_pool(|p| p.adopt(&u, 1_000, None));
        s.grant_started(&u);
        assert!(s.has_seat(&u) && !s.holds_touching(&u, false, 0));
        assert!(s
            .memo(&u, s.epoch(), Class::Casual)
            .at(s.epoch())
            .is_some_and(|(_, seat)| seat.is_none()));
        s.grant_ended(&u);
        assert!(s.holds_touching(&u, false, 0));
    }
}
