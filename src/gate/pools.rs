//! Seat pools beside the default one (`[pools.<name>]`, issue 20).
//!
//! Each further pool is a [`Gate`] of its own, made from
//! [`crate::config::Config::pool_config`]: its pool, groups, capacity
//! arithmetic, queue, reconcile, jobs, snapshot and (in a cluster) keys on
//! Redis. It never sees a request: the default gate identifies every request
//! as always, and when the request's `"METHOD /path"` matches a pool's
//! `needs`, asks that pool's gate for the seat instead of its own:
//!
//! - a user casual in that pool (in its IUM user group) passes with a seat
//!   there — touched when the request is activity by the pool's rules — or
//!   is admitted to one, or waits; everyone else passes;
//! - the default pool's seat is neither needed nor touched by such a request
//!   (each pool is idle on its own);
//! - the Service Management customer portal needs no seat in any pool;
//! - an unconfirmed claim (a Basic name) gets no seat of another pool at all
//!   — not even a loan: it hears "retry later" unless it holds one.

use super::hooks::Check;
use super::{Class, Gate, Outcome};
use crate::pool::Mode;
use crate::user::UserId;
use iumgate_analyze::pools::Needs;
use std::sync::Arc;

/// One pool beside the default one.
pub struct ExtraPool {
    pub name: Arc<str>,
    pub needs: Needs,
    pub gate: Arc<Gate>,
    /// Its jobs' last runs (the status page and metrics read them).
    pub runs: Arc<crate::jobs::JobRuns>,
    /// Its scheduled jobs (tier check, cleanup, sync), once started.
    pub jobs: std::sync::OnceLock<Arc<crate::jobs::Housekeeping>>,
}

impl std::fmt::Debug for ExtraPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtraPool")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Whose seat a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needed {
    /// The default pool's (`[licence]` + `[ium]`).
    Default,
    /// No seat at all (the customer portal, when there are pools).
    Nobody,
    /// The seat of [`Gate::pools`]`()[i]`.
    Pool(usize),
}

/// The customer portal: portal customers hold no licence.
fn is_portal(path: &str) -> bool {
    path.starts_with("/servicedesk/customer/")
}

impl Gate {
    /// Sets the pools beside this (the default) one. Set once, before the
    /// proxy serves.
    pub fn set_pools(&self, pools: Vec<Arc<ExtraPool>>) {
        if self.pools.set(pools).is_err() {
            tracing::warn!("the seat pools were set twice; the first stay");
        }
    }

    /// The pools beside this one (none without `[pools.*]`).
    pub fn pools(&self) -> &[Arc<ExtraPool>] {
        self.pools.get().map_or(&[], Vec::as_slice)
    }

    /// This gate's pool name (`default`, or the `[pools.<name>]`).
    pub fn pool_name(&self) -> &str {
        &self.pool_name
    }

    /// Whose seat `method path` needs. Without pools, always the default
    /// pool's: nothing changes for a site with one.
    pub fn needed(&self, method: &str, path: &str) -> Needed {
        let pools = self.pools();
        if pools.is_empty() {
            return Needed::Default;
        }
        if is_portal(path) {
            return Needed::Nobody;
        }
        let found = crate::product::with_request_line(method, path, |line| {
            pools.iter().position(|p| p.needs.is_match(line))
        });
        match found {
            Some(i) => Needed::Pool(i),
            None => Needed::Default,
        }
    }

    /// What pool `i`'s seat means for a request of `user`: `None` when
    /// the pool's gate has not seen the user in its groups (the directory
    /// must say), else pass (touching the seat for activity when the user's
    /// standing allows) or admit.
    pub(super) fn check_in_pool(
        &self,
        i: usize,
        user: &UserId,
        method: &str,
        path: &str,
        now: u64,
        may_touch: bool,
    ) -> Option<Check> {
        let g = &self.pools().get(i)?.gate;
        let class = g.class_of(user)?;
        Some(g.check_pool_class(user, class, method, path, now, may_touch))
    }

    /// As [`Gate::check_in_pool`], once the class is known.
    fn check_pool_class(
        &self,
        user: &UserId,
        class: Class,
        method: &str,
        path: &str,
        now: u64,
        may_touch: bool,
    ) -> Check {
        if class != Class::Casual {
            return Check::Pass { activity: false };
        }
        let activity = self.settings.load().activity.is_activity(method, path);
        if self.holds_touching(user, activity && may_touch, now) {
            Check::Pass { activity }
        } else {
            Check::Admit { activity }
        }
    }

    /// The class in pool `i`, asking the directory when its gate has not
    /// seen the user.
    pub(super) async fn pool_check_or_lookup(
        &self,
        i: usize,
        user: &UserId,
        method: &str,
        path: &str,
        now: u64,
        may_touch: bool,
    ) -> Check {
        let Some(p) = self.pools().get(i) else {
            return Check::Pass { activity: false };
        };
        let class = p.gate.class_or_lookup(user).await;
        p.gate
            .check_pool_class(user, class, method, path, now, may_touch)
    }

    /// A seat in pool `i` for a confirmed user (`mode` as the default pool
    /// would use). The waiting room remembers which pool the user waits
    /// for, so that its polls ask that pool.
    pub(super) async fn admit_in_pool(&self, i: usize, user: &UserId, mode: Mode) -> Outcome {
        let Some(p) = self.pools().get(i) else {
            return Outcome::Unavailable;
        };
        let out = p.gate.admit(user, mode).await;
        match out {
            Outcome::Wait { .. } => {
                if self.pool_waits.len() < MAX_POOL_WAITS || self.pool_waits.contains_key(user) {
                    self.pool_waits.insert(user.clone(), i);
                }
            }
            Outcome::Pass => {
                self.pool_waits.remove(user);
            }
            Outcome::NoFreeSeat | Outcome::Unavailable => {}
        }
        out
    }

    /// The pool a waiter waits for, if not the default one: remembered when
    /// it sent them to the waiting room, or (a waiter of another replica)
    /// found in a pool's queue.
    pub(super) fn waits_in_pool(&self, user: &UserId) -> Option<usize> {
        if let Some(i) = self.pool_waits.get(user) {
            return Some(*i);
        }
        self.pools()
            .iter()
            .position(|p| p.gate.with_pool_read(|pool| pool.position(user).is_some()))
    }

    /// A waiter of pool `i` was let in (or left): no longer remembered.
    pub(super) fn pool_wait_over(&self, user: &UserId) {
        self.pool_waits.remove(user);
    }
}

/// At most this many users are remembered as waiting for another pool
/// (beyond it, a waiter is found in the pool's queue instead).
const MAX_POOL_WAITS: usize = 100_000;

impl Gate {
    /// The gate whose seat `needed` names (`None`: no seat is needed).
    pub(super) fn gate_for(&self, needed: Needed) -> Option<&Gate> {
        match needed {
            Needed::Default => Some(self),
            Needed::Pool(i) => self.pools().get(i).map(|p| &*p.gate),
            Needed::Nobody => None,
        }
    }

    /// A seat where `needed` says (the default pool's, or another's).
    pub(super) async fn admit_for(&self, needed: Needed, user: &UserId, mode: Mode) -> Outcome {
        match needed {
            Needed::Default => self.admit(user, mode).await,
            Needed::Pool(i) => self.admit_in_pool(i, user, mode).await,
            Needed::Nobody => Outcome::Pass,
        }
    }

    /// Whether `user` is casual where `needed` says and holds no seat there.
    pub(super) async fn needs_seat_for(&self, needed: Needed, user: &UserId) -> bool {
        match self.gate_for(needed) {
            Some(g) => g.class_or_lookup(user).await == Class::Casual && !g.holds(user),
            None => false,
        }
    }

    /// The access log's decision for a seat just got where `needed` says.
    pub(super) fn seat_verdict_for(
        &self,
        needed: Needed,
        user: &UserId,
        since: u64,
    ) -> crate::access_log::Verdict {
        match self.gate_for(needed) {
            Some(g) => g.seat_verdict(user, since),
            None => crate::access_log::Verdict::Pass,
        }
    }

    /// Activity on the seat `needed` names.
    pub(super) fn touch_for(&self, needed: Needed, user: &UserId, now: u64) {
        if let Some(g) = self.gate_for(needed) {
            g.touch(user, now);
        }
    }
}

impl Gate {
    /// Whose seat a login takes: the pool its destination needs, if the
    /// user is casual there; else the only pool the user is casual in;
    /// else the default pool.
    pub(super) async fn login_pool(&self, user: &UserId, destination: Option<&str>) -> Needed {
        if self.pools().is_empty() {
            return Needed::Default;
        }
        if let Some(dest) = destination.and_then(crate::pages::local_path) {
            let path = dest.split_once('?').map_or(dest, |(p, _)| p);
            let wanted = self.needed("GET", path);
            if let Some(g) = self.gate_for(wanted) {
                if g.class_or_lookup(user).await == Class::Casual {
                    return wanted;
                }
            }
        }
        let mut casual_in = Vec::new();
        if self.class_or_lookup(user).await == Class::Casual {
            casual_in.push(Needed::Default);
        }
        for (i, p) in self.pools().iter().enumerate() {
            if p.gate.class_or_lookup(user).await == Class::Casual {
                casual_in.push(Needed::Pool(i));
            }
        }
        match casual_in.as_slice() {
            [only] => *only,
            _ => Needed::Default,
        }
    }
}
