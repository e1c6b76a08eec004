//! Reconcile: the upstream's groups are the truth about who holds a licence;
//! iumgate's memory is a copy of it. Re-read the groups, adopt holders added
//! by hand, drop holders removed by hand, recompute the capacity.

use super::{Arithmetic, Class, Gate};
use crate::config::Tier;
use crate::directory::DirectoryError;
use crate::pool::ReleaseReason;
use crate::user::UserId;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileReport {
    pub holders: usize,
    pub adopted: Vec<UserId>,
    pub dropped: Vec<UserId>,
    pub released: Vec<UserId>,
    pub casual: usize,
    pub arithmetic: Arithmetic,
}

impl Gate {
    /// One reconcile pass. Fails (changing nothing) when the directory fails.
    pub async fn reconcile(&self) -> Result<ReconcileReport, DirectoryError> {
        let started = self.now();
        let s = self.settings.load_full();
        // The groups are read side by side: with tens of thousands of members
        // each is a thousand pages or more, and one after the other would
        // add up (start-up with a 50,000-member access group).
        let (access, casual, fixed_lists) = tokio::try_join!(
            self.directory.group_members(&s.access_group),
            self.directory.group_members(&s.user_group),
            futures_util::future::try_join_all(
                s.fixed_groups
                    .iter()
                    .map(|g| self.directory.group_members(g))
            ),
        )?;
        let fixed: HashSet<UserId> = fixed_lists
            .into_iter()
            .flatten()
            .filter(|m| m.active)
            .map(|m| m.name)
            .collect();
        let tier = match s.tier {
            // The configured tier, but never above what the app itself says it
            // allows: going over the real tier stops the app for everyone.
            Tier::Fixed(n) => match self.directory.licence(&s.application).await {
                Ok(Some(l)) => l.seats.map_or(n, |app| app.min(n)),
                Ok(None) => n,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the app's seat count; using the configured tier");
                    n
                }
            },
            Tier::Auto => match self.directory.licence(&s.application).await? {
                Some(l) => l.seats.unwrap_or(u32::MAX),
                None => {
                    return Err(DirectoryError::Unexpected {
                        status: 0,
                        detail: format!(
                            "licence.tier = \"auto\" but the application `{}` reports no seat count; set the tier as a number",
                            s.application
                        ),
                    })
                }
            },
        };
        let fixed_n = u32::try_from(fixed.len()).unwrap_or(u32::MAX);
        let capacity = tier.saturating_sub(fixed_n).saturating_sub(s.reserved);

        // Classes: casual members, then power users (a power user inside an
        // IUM group stays a power user: never queued, never removed).
        let mut classes: HashMap<UserId, Class> = HashMap::new();
        for m in &casual {
            classes.insert(
                m.name.clone(),
                if m.active {
                    Class::Casual
                } else {
                    Class::Unmanaged
                },
            );
        }
        let mut power_in_ium: Vec<UserId> = Vec::new();
        let in_ium: HashSet<&UserId> = casual
            .iter()
            .chain(access.iter())
            .map(|m| &m.name)
            .collect();
        for u in &fixed {
            if in_ium.contains(u) {
                power_in_ium.push(u.clone());
            }
            classes.insert(u.clone(), Class::Power);
        }
        power_in_ium.sort();
        self.state.set_classes(classes);

        // Holders: the access group's active casual members.
        let now = self.now();
        let access_set: HashSet<UserId> = access
            .iter()
            .filter(|m| m.active && !fixed.contains(&m.name))
            .map(|m| m.name.clone())
            .collect();
        let mut report = ReconcileReport {
            casual: casual.len(),
            ..Default::default()
        };
        let pending = self.state.granting();
        let over = self.with_pool(|p| {
            for u in &access_set {
                if !p.holds(u) {
                    p.adopt(u, now, None);
                    report.adopted.push(u.clone());
                }
            }
            for h in p.holders() {
                // A seat granted after this pass started may not show in the
                // list we read: leave it alone.
                if !access_set.contains(&h.user) && h.since < started && !pending.contains(&h.user)
                {
                    p.release(&h.user);
                    report.dropped.push(h.user.clone());
                }
            }
            p.in_use() > capacity as usize
        });
        for u in &report.dropped {
            self.count_release(ReleaseReason::Reconcile);
            self.record("reconcile_drop", u, None);
        }
        if self.cluster().is_some() {
            let holders: Vec<(UserId, u64)> = self
                .state
                .seat_records()
                .into_iter()
                .filter(|r| access_set.contains(&r.user))
                .map(|r| (r.user, r.last_active))
                .collect();
            self.cluster_reconciled(&holders, &report.dropped, started)
                .await;
        }
        // Over the new capacity: release the longest-idle down to it, even
        // inside min_idle — going over the tier stops the app for everyone.
        // In a cluster only the replica holding the jobs' lease releases;
        // the others keep their holders (granting nothing above the new
        // capacity) and learn its releases through the store.
        let may_shrink = match self.cluster() {
            None => true,
            Some(store) => store.jobs_lease().await.unwrap_or(false),
        };
        if over && may_shrink {
            report.released = self.shrink_to(capacity as usize).await;
        } else if over {
            self.with_pool(|p| p.set_capacity_keeping(capacity as usize));
        } else {
            self.with_pool(|p| p.set_capacity(capacity as usize));
        }
        report.holders = self.with_pool(|p| p.in_use());

        let prev = self.arithmetic();
        let arith = Arithmetic {
            tier,
            fixed: fixed_n,
            reserved: s.reserved,
            capacity,
            power_in_ium: power_in_ium.clone(),
        };
        if let Ok(mut a) = self.arithmetic.lock() {
            *a = arith.clone();
        }
        report.arithmetic = arith;
        let first = self.state.mark_reconciled();
        if !first && capacity < prev.capacity {
            self.alerts.raise(
                "pool_shrunk",
                format!(
                    "The shared pool shrank from {} to {} seats (tier {tier}, {fixed_n} fixed-licence users, {} reserved).",
                    prev.capacity, capacity, s.reserved
                ),
                "More users hold a fixed licence than before: raise the tier or move users to the IUM groups.",
                now,
            );
        }
        if fixed_n.saturating_add(s.reserved) > tier {
            self.alerts.raise(
                "tier_exceeded",
                format!("{fixed_n} fixed-licence users and {} reserved seats exceed the tier of {tier}.", s.reserved),
                "Move power users to the IUM groups or raise the licence tier.",
                now,
            );
        } else {
            self.alerts.resolve("tier_exceeded");
        }
        if power_in_ium.is_empty() {
            self.alerts.resolve("power_user_in_ium_group");
        } else {
            let names: Vec<&str> = power_in_ium.iter().take(10).map(UserId::as_str).collect();
            self.alerts.raise(
                "power_user_in_ium_group",
                format!(
                    "{} user(s) hold a fixed licence and are also in an IUM group: {}{}",
                    power_in_ium.len(),
                    names.join(", "),
                    if power_in_ium.len() > 10 { ", …" } else { "" }
                ),
                "Remove them from the IUM groups (iumgate treats them as power users meanwhile).",
                now,
            );
        }
        tracing::info!(
            tier,
            fixed = fixed_n,
            capacity,
            holders = report.holders,
            adopted = report.adopted.len(),
            dropped = report.dropped.len(),
            "reconciled with the directory"
        );
        Ok(report)
    }

    /// Lowers the capacity and releases the longest-idle holders down to it.
    pub async fn shrink_to(&self, capacity: usize) -> Vec<UserId> {
        let released = self.with_pool(|p| p.set_capacity(capacity));
        let access = self.settings.load().access_group.clone();
        let mut out = Vec::new();
        for seat in released {
            match self.directory.remove_from_group(&seat.user, &access).await {
                Ok(()) => {
                    self.cluster_release(&seat.user).await;
                    self.count_release(ReleaseReason::TierShrink);
                    self.record("tier_shrink", &seat.user, None);
                    out.push(seat.user);
                }
                Err(e) => {
                    // Still in the group: it still counts against the tier.
                    tracing::warn!(user = %seat.user, error = %e, "cannot release a seat while shrinking the pool");
                    self.with_pool(|p| {
                        p.adopt(&seat.user, seat.last_active, Some(seat.last_active))
                    });
                }
            }
        }
        out
    }
}
