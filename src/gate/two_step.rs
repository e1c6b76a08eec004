//! Two-step verification on the platform login (Jira 10, Confluence 9,
//! Bitbucket 9). The password step answers 412 when the user is enrolled:
//! the password is right (a proof), and the app makes the real session only
//! after the code step, checking application access again then. So the seat
//! the user needs must be in place *before* the code step, and stays there
//! while they type the code — but no longer than `[identity]
//! second_step_timeout`: a login abandoned between the steps gives its seat
//! back.
//!
//! The half-finished login is kept by the half session the password step
//! handed out (its cookie, hashed), one per user, bounded in number.

use super::{Borrow, Gate};
use crate::identity::SessionKey;
use crate::pool::ReleaseReason;
use crate::user::UserId;
use dashmap::DashMap;

/// At most this many logins wait for their second step at once; past it,
/// the oldest deadline goes first.
const MAX_WAITING: usize = 10_000;

/// A login whose password step passed and whose code step has not.
#[derive(Debug)]
pub(crate) struct SecondStep {
    pub user: UserId,
    /// A free seat lent for the login: kept only if the code step ends in
    /// a real session, given back when dropped.
    pub borrow: Option<Borrow>,
    /// The seat was taken for the proven password (no free seat was lent):
    /// released if the login is abandoned.
    pub admitted: bool,
    /// When the seat goes back if the code never comes (ms).
    pub deadline_ms: u64,
}

/// The logins between their steps, by half-session key.
#[derive(Debug, Default)]
pub(crate) struct SecondSteps {
    waiting: DashMap<SessionKey, SecondStep>,
}

impl SecondSteps {
    /// Keeps `step` under the half session's key (a user has one at a
    /// time: an older one is dropped, as is the oldest when full); returns
    /// what was dropped, whose seats the caller gives back.
    pub fn keep(&self, key: SessionKey, step: SecondStep) -> Vec<SecondStep> {
        let mut dropped = Vec::new();
        let older: Vec<SessionKey> = self
            .waiting
            .iter()
            .filter(|e| e.value().user == step.user)
            .map(|e| *e.key())
            .collect();
        for k in older {
            if let Some((_, s)) = self.waiting.remove(&k) {
                dropped.push(s);
            }
        }
        if self.waiting.len() >= MAX_WAITING {
            let first = self
                .waiting
                .iter()
                .min_by_key(|e| e.value().deadline_ms)
                .map(|e| *e.key());
            if let Some((_, s)) = first.and_then(|k| self.waiting.remove(&k)) {
                dropped.push(s);
            }
        }
        self.waiting.insert(key, step);
        dropped
    }

    /// The key of the step waiting under one of `keys` (the request's
    /// session cookies), if its deadline has not passed. The step stays in
    /// place: only the code step's answer takes it, so an exchange that
    /// breaks off leaves it to its deadline.
    pub fn find(&self, mut keys: impl Iterator<Item = SessionKey>, now: u64) -> Option<SessionKey> {
        keys.find(|k| self.waiting.get(k).is_some_and(|s| s.deadline_ms > now))
    }

    /// Takes the step under `key` to settle it with the code step's answer.
    pub fn take(&self, key: &SessionKey) -> Option<SecondStep> {
        self.waiting.remove(key).map(|(_, s)| s)
    }

    /// Puts a step back under `key` (a wrong code: the user may try again
    /// until the deadline).
    pub fn put_back(&self, key: SessionKey, step: SecondStep) {
        self.waiting.insert(key, step);
    }

    /// Takes every step whose deadline passed.
    pub fn expired(&self, now: u64) -> Vec<SecondStep> {
        let keys: Vec<SessionKey> = self
            .waiting
            .iter()
            .filter(|e| e.value().deadline_ms <= now)
            .map(|e| *e.key())
            .collect();
        keys.into_iter()
            .filter_map(|k| self.waiting.remove(&k).map(|(_, s)| s))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }
}

impl Gate {
    /// Ends half-finished logins: their lent seats go back (the `Borrow`
    /// guard), seats taken for them are released unless the user holds
    /// them through a session of their own meanwhile. Run by the prune job.
    pub async fn expire_second_steps(&self, now: u64) -> usize {
        let expired = self.second_steps.expired(now);
        let n = expired.len();
        for step in expired {
            self.abandon_second_step(step).await;
        }
        n
    }

    /// A login that will not finish its second step: its seat goes back.
    pub(crate) async fn abandon_second_step(&self, step: SecondStep) {
        tracing::info!(user = %step.user, "a login did not finish its second step; seat given back");
        if let Some(lent) = step.borrow {
            lent.give_back().await;
        } else if step.admitted && self.holds(&step.user) {
            self.release(&step.user, ReleaseReason::Rollback).await;
        }
    }

    /// Logins waiting for their second step (for the status page).
    pub fn second_steps_waiting(&self) -> usize {
        self.second_steps.len()
    }
}
