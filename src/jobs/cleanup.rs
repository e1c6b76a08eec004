//! The nightly cleanup: nobody who is deactivated or now holds a fixed
//! licence stays in the IUM groups. A deactivated user would otherwise keep
//! counting in the group lists; a power user inside an IUM group causes the
//! "waiting screen for everyone" class of trouble.

use crate::directory::DirectoryError;
use crate::gate::Gate;
use crate::pool::ReleaseReason;
use crate::user::UserId;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanupReport {
    pub at_ms: u64,
    /// Removed from the IUM groups because deactivated.
    pub deactivated: Vec<UserId>,
    /// Removed because they hold a fixed licence now.
    pub fixed: Vec<UserId>,
    /// Seats freed in iumgate's pool.
    pub seats_freed: usize,
    pub failed: Vec<(UserId, String)>,
}

/// One cleanup pass. Fails (changing nothing) when the groups cannot be read.
pub async fn cleanup(gate: &Gate) -> Result<CleanupReport, DirectoryError> {
    let s = gate.settings.load_full();
    let dir = &gate.directory;
    let user_members = dir.group_members(&s.user_group).await?;
    let access_members = dir.group_members(&s.access_group).await?;
    let mut fixed: BTreeSet<UserId> = BTreeSet::new();
    for g in &s.fixed_groups {
        fixed.extend(
            dir.group_members(g)
                .await?
                .into_iter()
                .filter(|m| m.active)
                .map(|m| m.name),
        );
    }
    // name → (active, in user group, in access group)
    let mut seen: BTreeMap<UserId, (bool, bool, bool)> = BTreeMap::new();
    for m in &user_members {
        let e = seen.entry(m.name.clone()).or_insert((true, false, false));
        e.0 &= m.active;
        e.1 = true;
    }
    for m in &access_members {
        let e = seen.entry(m.name.clone()).or_insert((true, false, false));
        e.0 &= m.active;
        e.2 = true;
    }
    let mut report = CleanupReport {
        at_ms: gate.now(),
        ..Default::default()
    };
    for (user, (active, in_user, in_access)) in seen {
        let deactivated = !active;
        if !deactivated && !fixed.contains(&user) {
            continue;
        }
        match remove_from_ium(gate, &user, in_user, in_access).await {
            Ok(freed) => {
                report.seats_freed += usize::from(freed);
                if deactivated {
                    report.deactivated.push(user);
                } else {
                    report.fixed.push(user);
                }
            }
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "cleanup: cannot remove the user from the IUM groups");
                report.failed.push((user, e.to_string()));
            }
        }
    }
    Ok(report)
}

/// Access group first (that frees the seat), then the user group. Returns
/// whether a seat in iumgate's pool was freed.
async fn remove_from_ium(
    gate: &Gate,
    user: &UserId,
    in_user: bool,
    in_access: bool,
) -> Result<bool, DirectoryError> {
    let s = gate.settings.load_full();
    let mut freed = false;
    if gate.holds(user) {
        // Through the gate, so its single-flight lock, counters and events see it.
        if !gate.release(user, ReleaseReason::Cleanup).await {
            // The directory's own error was logged (and alerted) by the gate.
            return Err(DirectoryError::Unavailable {
                operation: "remove user from group",
                detail: format!("could not release the seat of `{user}` (see the log)"),
                source: None,
            });
        }
        freed = true;
    } else if in_access {
        gate.directory
            .remove_from_group(user, &s.access_group)
            .await?;
        // A seat reserved but not granted yet, or adopted meanwhile.
        if gate.with_pool(|p| p.release(user)).is_some() {
            gate.count_release(ReleaseReason::Cleanup);
            gate.audit(
                crate::audit::Kind::Release,
                crate::audit::Reason::Release(ReleaseReason::Cleanup),
                user,
                |_| {},
            );
            freed = true;
        }
        if let Some(store) = gate.cluster() {
            // Out of the group: out of the shared pool too.
            if let Err(e) = store.release(user, gate.now()).await {
                tracing::warn!(user = %user, error = %crate::proxy::error_chain(&e), "cleanup: the cluster store did not take the release; the next reconcile drops the seat");
            }
        }
    }
    if in_user {
        gate.directory
            .remove_from_group(user, &s.user_group)
            .await?;
    }
    Ok(freed)
}
