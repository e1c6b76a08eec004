//! The admission flow: seat first (pool), then the directory, rolled back
//! when the directory fails. One admission per user at a time.

use super::Gate;
use crate::audit::{Kind as AuditKind, Reason};
use crate::pool::{Admission, Mode, ReleaseReason};
use crate::user::UserId;
use std::sync::atomic::Ordering;

/// What an admission came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The user holds a seat now: forward.
    Pass,
    /// No seat: the user is queued at this (1-based) position.
    Wait { position: usize },
    /// Free-only admission found no free seat (nothing changed).
    NoFreeSeat,
    /// The directory refused or failed; nothing was granted.
    Unavailable,
}

impl Gate {
    /// Admits a casual user. Concurrent calls for one user cause one grant.
    pub async fn admit(&self, user: &UserId, mode: Mode) -> Outcome {
        if self.holds(user) {
            self.counters.admit_holding.fetch_add(1, Ordering::Relaxed);
            return Outcome::Pass;
        }
        let lock = self.user_lock(user);
        let out = {
            let _guard = lock.lock().await;
            self.admit_locked(user, mode).await
        };
        drop(lock);
        self.drop_user_lock(user);
        out
    }

    pub(super) async fn admit_locked(&self, user: &UserId, mode: Mode) -> Outcome {
        if self.holds(user) {
            self.counters.admit_holding.fetch_add(1, Ordering::Relaxed);
            return Outcome::Pass;
        }
        if !self.is_reconciled() {
            // Capacity is unknown until the first reconcile: nobody is let in
            // by guesswork (the tier must never be exceeded).
            return match mode {
                Mode::FreeOnly => Outcome::NoFreeSeat,
                Mode::MayEvict => Outcome::Wait { position: 1 },
            };
        }
        let now = self.now();
        let (admission, queued_since, abandoned) = self.with_pool(|p| {
            // Those the admission would drop as abandoned, dropped first so
            // that the trail names them. It decides the same either way: it
            // counts waiters as if pruned (and MayEvict prunes first itself).
            let abandoned = match self.audit_trail() {
                Some(_) => p.prune(now),
                None => Vec::new(),
            };
            // When a waiter is admitted, how long it waited (metrics). Only
            // waiters pay for the queue scan.
            let since = p
                .position(user)
                .and_then(|_| p.queue().into_iter().find(|w| &w.user == user))
                .map(|w| w.since);
            (p.admit(user, now, mode), since, abandoned)
        });
        for u in &abandoned {
            self.audit(AuditKind::Abandoned, Reason::StoppedPolling, u, |_| {});
        }
        // In a cluster, the shared store confirms (or overrules) a grant or
        // an eviction before anything reaches the directory.
        let admission = match self.cluster() {
            Some(store) => match self.arbitrate(store, user, now, mode, admission).await {
                Ok(a) => a,
                Err(out) => {
                    if out == Outcome::Unavailable {
                        self.audit(
                            AuditKind::Refused,
                            Reason::ClusterStoreFailure,
                            user,
                            |_| {},
                        );
                    }
                    return out;
                }
            },
            None => admission,
        };
        let out = self.apply_admission(user, now, admission).await;
        match (&out, queued_since) {
            (Outcome::Pass, Some(since)) => {
                let waited = now.saturating_sub(since);
                self.counters
                    .queue_wait_seconds
                    .observe(waited as f64 / 1000.0);
                self.audit(AuditKind::Admitted, Reason::FromQueue, user, |e| {
                    e.waited_ms = Some(waited);
                });
            }
            (Outcome::Wait { position }, None) => {
                let position = u32::try_from(*position).unwrap_or(u32::MAX);
                self.audit(AuditKind::Queued, Reason::NoFreeSeat, user, |e| {
                    e.position = Some(position);
                });
            }
            _ => {}
        }
        out
    }

    async fn apply_admission(&self, user: &UserId, now: u64, admission: Admission) -> Outcome {
        match admission {
            Admission::Holding => {
                self.counters.admit_holding.fetch_add(1, Ordering::Relaxed);
                Outcome::Pass
            }
            Admission::NoFreeSeat => Outcome::NoFreeSeat,
            Admission::Wait { position } => {
                self.counters.admit_waited.fetch_add(1, Ordering::Relaxed);
                Outcome::Wait { position }
            }
            Admission::Granted => {
                self.state.grant_started(user);
                self.grant(user, None).await
            }
            Admission::Evicted { victim } => {
                self.state.grant_started(user);
                let access = self.settings.load().access_group.clone();
                // The victim leaves the group first, so the group never holds
                // more members than there are seats.
                if let Err(e) = self
                    .directory
                    .remove_from_group(&victim.user, &access)
                    .await
                {
                    self.with_pool(|p| {
                        p.release(user);
                        p.restore(victim.clone());
                    });
                    self.cluster_give_back(user, Some(&victim)).await;
                    self.state.grant_ended(user);
                    self.directory_failed("revoke", &victim.user, &e);
                    self.audit(AuditKind::Refused, Reason::DirectoryFailure, user, |e| {
                        e.operation = Some("revoke");
                        e.other = Some(victim.user.clone());
                    });
                    return Outcome::Unavailable;
                }
                self.counters
                    .release_eviction
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(user = %user, victim = %victim.user, idle_s = (now.saturating_sub(victim.last_active)) / 1000, "seat taken from the longest-idle holder");
                self.grant(user, Some(victim)).await
            }
        }
    }

    async fn grant(&self, user: &UserId, victim: Option<crate::pool::SeatRecord>) -> Outcome {
        let access = self.settings.load().access_group.clone();
        match self.directory.add_to_group(user, &access).await {
            Ok(()) => {
                self.state.grant_ended(user);
                self.directory_ok();
                match &victim {
                    Some(v) => {
                        self.counters.admit_evicted.fetch_add(1, Ordering::Relaxed);
                        self.record("evicted", user, Some(&v.user));
                    }
                    None => {
                        self.counters.admit_granted.fetch_add(1, Ordering::Relaxed);
                        self.record("granted", user, None);
                        tracing::info!(user = %user, "seat granted");
                    }
                }
                Outcome::Pass
            }
            Err(e) => {
                self.with_pool(|p| p.release(user));
                self.cluster_give_back(user, victim.as_ref()).await;
                self.state.grant_ended(user);
                self.counters.admit_failed.fetch_add(1, Ordering::Relaxed);
                if let Some(v) = victim {
                    // Best effort: give the victim their seat back.
                    if self.directory.add_to_group(&v.user, &access).await.is_ok() {
                        self.with_pool(|p| p.restore(v));
                    } else {
                        // Out of the group for a grant that failed: the
                        // victim's seat is gone all the same.
                        self.audit(
                            AuditKind::Release,
                            Reason::Release(ReleaseReason::Eviction),
                            &v.user,
                            |e| e.other = Some(user.clone()),
                        );
                    }
                }
                self.directory_failed("grant", user, &e);
                self.audit(AuditKind::Refused, Reason::DirectoryFailure, user, |e| {
                    e.operation = Some("grant");
                });
                Outcome::Unavailable
            }
        }
    }

    /// Frees `user`'s seat: out of the access group first, then out of the
    /// pool (so a newcomer is never added while the old holder still counts).
    pub async fn release(&self, user: &UserId, reason: ReleaseReason) -> bool {
        if !self.state.has_seat(user) {
            return false;
        }
        let lock = self.user_lock(user);
        let done = {
            let _guard = lock.lock().await;
            self.release_locked(user, reason).await
        };
        drop(lock);
        self.drop_user_lock(user);
        done
    }

    pub(super) async fn release_locked(&self, user: &UserId, reason: ReleaseReason) -> bool {
        if !self.state.has_seat(user) {
            return false;
        }
        let access = self.settings.load().access_group.clone();
        if let Err(e) = self.directory.remove_from_group(user, &access).await {
            self.directory_failed("release", user, &e);
            return false;
        }
        // Out of the store before out of the pool: the sync loop never sees
        // a seat the store still has and this pool has not.
        self.cluster_release(user).await;
        self.with_pool(|p| p.release(user));
        self.count_release(reason);
        self.record(reason_label(reason), user, None);
        tracing::info!(user = %user, reason = reason_label(reason), "seat released");
        true
    }

    pub(crate) fn count_release(&self, reason: ReleaseReason) {
        let c = &self.counters;
        match reason {
            ReleaseReason::Eviction => &c.release_eviction,
            ReleaseReason::Logout => &c.release_logout,
            ReleaseReason::TierShrink => &c.release_tier_shrink,
            ReleaseReason::Cleanup => &c.release_cleanup,
            ReleaseReason::Reconcile => &c.release_reconcile,
            ReleaseReason::Rollback => &c.release_rollback,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    fn directory_failed(&self, what: &str, user: &UserId, e: &crate::directory::DirectoryError) {
        tracing::warn!(user = %user, op = what, error = %crate::proxy::error_chain(e), "directory call failed; nothing granted");
        let fix = match e {
            crate::directory::DirectoryError::BadCredentials => {
                "Fix [directory] username and password or token."
            }
            crate::directory::DirectoryError::NotAdmin => {
                "Give the service account administrator rights."
            }
            crate::directory::DirectoryError::GroupMissing(_) => {
                "Create the IUM groups or fix their names in [ium]."
            }
            crate::directory::DirectoryError::ReadOnly(_) => {
                "Make the user directory read/write, or \"Read Only, with Local Groups\"."
            }
            crate::directory::DirectoryError::Unavailable { .. } => {
                "Check that the application's REST API is reachable from iumgate."
            }
            _ => "See iumgate's log for the directory's answer.",
        };
        self.alerts.raise(
            &format!("directory_{}", e.kind()),
            format!("Licence grants are failing: {e}"),
            fix,
            self.now(),
        );
    }

    fn directory_ok(&self) {
        for k in [
            "directory_unavailable",
            "directory_bad_credentials",
            "directory_not_admin",
            "directory_read_only",
            "directory_group_missing",
            "directory_unexpected",
        ] {
            self.alerts.resolve(k);
        }
    }
}

pub(crate) fn reason_label(r: ReleaseReason) -> &'static str {
    match r {
        ReleaseReason::Eviction => "eviction",
        ReleaseReason::Logout => "logout",
        ReleaseReason::TierShrink => "tier_shrink",
        ReleaseReason::Cleanup => "cleanup",
        ReleaseReason::Reconcile => "reconcile",
        ReleaseReason::Rollback => "rollback",
    }
}
