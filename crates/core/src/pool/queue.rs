//! The FIFO of users waiting for a seat.
//!
//! Three views of the same waiters, kept in step by every method:
//! `order` (FIFO), `waiters` (O(1) membership and times) and `by_poll` (oldest poll first, so
//! pruning abandoned waiters costs O(pruned · log n) instead of a scan of the whole queue).
//! Positions are O(n) scans of `order`; queues are short next to the seat count.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::user::UserId;

use super::Waiter;

#[derive(Debug, Clone, Copy)]
struct Times {
    since: u64,
    last_poll: u64,
}

#[derive(Debug, Default)]
pub(super) struct WaitQueue {
    order: VecDeque<UserId>,
    waiters: HashMap<UserId, Times>,
    by_poll: BTreeSet<(u64, UserId)>,
}

/// A waiter is abandoned once it has not polled for `abandon_after` ms. A clock that went
/// backwards counts as "just polled", never as abandoned.
fn abandoned(last_poll: u64, now: u64, abandon_after: u64) -> bool {
    now.saturating_sub(last_poll) >= abandon_after
}

impl WaitQueue {
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    pub(super) fn contains(&self, user: &UserId) -> bool {
        self.waiters.contains_key(user)
    }

    /// 0-based index in the queue.
    pub(super) fn index_of(&self, user: &UserId) -> Option<usize> {
        if !self.contains(user) {
            return None;
        }
        self.order.iter().position(|u| u == user)
    }

    /// Appends `user` (who must not be queued yet).
    pub(super) fn push(&mut self, user: &UserId, since: u64, last_poll: u64) {
        debug_assert!(!self.contains(user), "{user} queued twice");
        self.order.push_back(user.clone());
        self.waiters
            .insert(user.clone(), Times { since, last_poll });
        self.by_poll.insert((last_poll, user.clone()));
    }

    /// Records a keep-alive. Never moves the poll time backwards. False if not queued.
    pub(super) fn record_poll(&mut self, user: &UserId, now: u64) -> bool {
        let Some(times) = self.waiters.get_mut(user) else {
            return false;
        };
        if now > times.last_poll {
            self.by_poll.remove(&(times.last_poll, user.clone()));
            times.last_poll = now;
            self.by_poll.insert((now, user.clone()));
        }
        true
    }

    pub(super) fn remove(&mut self, user: &UserId) -> bool {
        let Some(times) = self.waiters.remove(user) else {
            return false;
        };
        self.by_poll.remove(&(times.last_poll, user.clone()));
        if let Some(i) = self.order.iter().position(|u| u == user) {
            self.order.remove(i);
        }
        true
    }

    /// Drops every abandoned waiter, oldest poll first, and returns them in that order.
    pub(super) fn prune(&mut self, now: u64, abandon_after: u64) -> Vec<UserId> {
        let mut gone = Vec::new();
        while let Some((last_poll, _)) = self.by_poll.first() {
            if !abandoned(*last_poll, now, abandon_after) {
                break;
            }
            if let Some((_, user)) = self.by_poll.pop_first() {
                self.waiters.remove(&user);
                gone.push(user);
            }
        }
        if !gone.is_empty() {
            let waiters = &self.waiters;
            self.order.retain(|u| waiters.contains_key(u));
        }
        gone
    }

    /// How many waiters would stand ahead of `user` after `prune(now, abandon_after)`, computed
    /// without changing anything (a FreeOnly admission that finds no seat must leave no trace).
    /// A user who is not queued — or would be pruned — stands behind everyone who stays.
    pub(super) fn ahead_after_prune(&self, user: &UserId, now: u64, abandon_after: u64) -> usize {
        let stays = |u: &UserId| {
            self.waiters
                .get(u)
                .is_some_and(|t| !abandoned(t.last_poll, now, abandon_after))
        };
        if stays(user) {
            return self
                .order
                .iter()
                .take_while(|u| *u != user)
                .filter(|u| stays(u))
                .count();
        }
        let pruned = self
            .by_poll
            .iter()
            .take_while(|(last_poll, _)| abandoned(*last_poll, now, abandon_after))
            .count();
        self.order.len() - pruned
    }

    pub(super) fn waiters(&self) -> Vec<Waiter> {
        self.order
            .iter()
            .filter_map(|u| {
                self.waiters.get(u).map(|t| Waiter {
                    user: u.clone(),
                    since: t.since,
                    last_poll: t.last_poll,
                })
            })
            .collect()
    }

    pub(super) fn clear(&mut self) {
        self.order.clear();
        self.waiters.clear();
        self.by_poll.clear();
    }

    /// Internal consistency of the three views (tests only).
    #[cfg(test)]
    pub(super) fn check(&self) {
        assert_eq!(self.order.len(), self.waiters.len(), "order vs waiters");
        assert_eq!(self.order.len(), self.by_poll.len(), "order vs by_poll");
        for u in &self.order {
            let t = self.waiters.get(u).expect("queued user without times");
            assert!(
                self.by_poll.contains(&(t.last_poll, u.clone())),
                "{u} missing from by_poll"
            );
        }
    }
}
