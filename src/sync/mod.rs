//! `iumgate sync`: brings casual users into the IUM user group.
//!
//! The plan: every member of `[sync] source_groups` who is neither
//! deactivated nor holding a fixed licence, and not in the IUM user group
//! yet, is to be added. Applying it writes each change to a journal (JSON
//! lines, flushed to disk) *before* making it, so an interrupted run can be
//! resumed and any run can be undone. Calls are paced so the app is not
//! flooded.

mod journal;

pub use journal::{Entry, Journal};

use crate::config::Config;
use crate::directory::{Directory, DirectoryError};
use crate::user::UserId;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Between two writes when `[sync] pace` is not set.
pub const DEFAULT_PACE: Duration = Duration::from_millis(100);

/// What a sync reads from the config.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub source_groups: Vec<String>,
    pub user_group: String,
    pub fixed_groups: Vec<String>,
    pub pace: Duration,
}

impl SyncSettings {
    pub fn from_config(cfg: &Config) -> Result<SyncSettings, String> {
        if cfg.sync.source_groups.is_empty() {
            return Err("sync.source_groups is empty: name the groups whose users are to become casual users".into());
        }
        if cfg.ium.user_group.is_empty() {
            return Err("ium.user_group is not set: sync adds users to it".into());
        }
        Ok(SyncSettings {
            source_groups: cfg.sync.source_groups.clone(),
            user_group: cfg.ium.user_group.clone(),
            fixed_groups: cfg.licence.fixed_groups.clone(),
            pace: cfg.sync.pace.map_or(DEFAULT_PACE, |d| d.get()),
        })
    }
}

/// Who is added, and who is left out and why. Each list is sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub add: Vec<UserId>,
    /// Filtered out: they hold a fixed licence.
    pub fixed: Vec<UserId>,
    /// Filtered out: deactivated.
    pub deactivated: Vec<UserId>,
    /// Already in the IUM user group.
    pub present: Vec<UserId>,
}

impl Plan {
    /// The counts line: `added 12, filtered out 3 (fixed licence), …`.
    pub fn summary(&self, apply: bool) -> String {
        format!(
            "{} {}, filtered out {} (fixed licence), filtered out {} (deactivated), already present {}",
            if apply { "added" } else { "to add" },
            self.add.len(),
            self.fixed.len(),
            self.deactivated.len(),
            self.present.len()
        )
    }

    /// Every user by category, for `--verbose`.
    pub fn details(&self) -> String {
        let mut out = String::new();
        for (label, list) in [
            ("to add", &self.add),
            ("fixed licence", &self.fixed),
            ("deactivated", &self.deactivated),
            ("already present", &self.present),
        ] {
            let names: Vec<&str> = list.iter().map(UserId::as_str).collect();
            out.push_str(&format!(
                "  {label} ({}): {}\n",
                list.len(),
                names.join(" ")
            ));
        }
        out
    }
}

/// Reads the groups and works out the plan. Changes nothing.
pub async fn plan(dir: &dyn Directory, s: &SyncSettings) -> Result<Plan, DirectoryError> {
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
    let present: BTreeSet<UserId> = dir
        .group_members(&s.user_group)
        .await?
        .into_iter()
        .map(|m| m.name)
        .collect();
    let mut sources: std::collections::BTreeMap<UserId, bool> = Default::default();
    for g in &s.source_groups {
        for m in dir.group_members(g).await? {
            // Listed twice with different flags: inactive wins.
            let e = sources.entry(m.name).or_insert(true);
            *e &= m.active;
        }
    }
    let mut p = Plan::default();
    for (u, active) in sources {
        if !active {
            p.deactivated.push(u);
        } else if fixed.contains(&u) {
            p.fixed.push(u);
        } else if present.contains(&u) {
            p.present.push(u);
        } else {
            p.add.push(u);
        }
    }
    Ok(p)
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A directory call failed (its text and cause are the source's).
    #[error("sync: a directory call failed")]
    Directory(#[from] DirectoryError),
    /// The journal could not be read or written.
    #[error("sync: journal {path}")]
    Journal {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sync: journal {path}: {detail}")]
    BadJournal { path: PathBuf, detail: String },
}

/// How `apply` and `undo` report progress and where they journal.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where every change is written before it is made (`None`: no journal,
    /// no resume, no undo — the `[sync] every` job without `[state] path`).
    pub journal: Option<PathBuf>,
    /// Draw a progress bar (on a terminal).
    pub progress: bool,
}

/// The outcome of `apply`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    pub run: String,
    /// Whether this continued an interrupted run.
    pub resumed: bool,
    /// Added by an earlier, interrupted part of this run.
    pub added_before: Vec<UserId>,
    pub added: Vec<UserId>,
    pub failed: Vec<(UserId, String)>,
}

fn progress_bar(n: usize, on: bool, verb: &str) -> indicatif::ProgressBar {
    if !on {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(n as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{verb} {{bar:40}} {{pos}}/{{len}} {{msg}} (eta {{eta}})"
    )) {
        pb.set_style(style);
    }
    pb
}

/// Makes the plan's additions, journaled and paced. An unfinished run in the
/// journal is resumed: its id is reused and users it added already count as
/// `added_before` (the fresh plan sees them as present, so none is added twice).
pub async fn apply(
    dir: &dyn Directory,
    s: &SyncSettings,
    plan: &Plan,
    opts: &RunOptions,
) -> Result<ApplyReport, SyncError> {
    let mut journal = match &opts.journal {
        Some(p) => Some(Journal::open(p)?),
        None => None,
    };
    let mut report = ApplyReport::default();
    let unfinished = journal.as_ref().and_then(|j| j.unfinished_run());
    match (&mut journal, unfinished) {
        (Some(j), Some(run)) => {
            let done = j.done_adds(&run);
            let present: BTreeSet<&UserId> = plan.present.iter().collect();
            report.added_before = done.into_iter().filter(|u| present.contains(u)).collect();
            report.resumed = true;
            report.run = run.clone();
            j.write(&Entry::Resume {
                run,
                at_ms: journal::now_ms(),
                planned: plan.add.len(),
            })?;
        }
        (Some(j), None) => {
            report.run = journal::new_run_id();
            j.write(&Entry::Run {
                run: report.run.clone(),
                at_ms: journal::now_ms(),
                group: s.user_group.clone(),
                planned: plan.add.len(),
            })?;
        }
        (None, _) => report.run = journal::new_run_id(),
    }
    let pb = progress_bar(plan.add.len(), opts.progress, "adding");
    for (i, user) in plan.add.iter().enumerate() {
        if i > 0 && !s.pace.is_zero() {
            tokio::time::sleep(s.pace).await;
        }
        pb.set_message(user.to_string());
        let run = report.run.clone();
        let group = s.user_group.clone();
        if let Some(j) = &mut journal {
            j.write(&Entry::Add {
                run: run.clone(),
                user: user.clone(),
                group: group.clone(),
            })?;
        }
        match dir.add_to_group(user, &s.user_group).await {
            Ok(()) => {
                if let Some(j) = &mut journal {
                    j.write(&Entry::Done {
                        run,
                        user: user.clone(),
                        group,
                    })?;
                }
                report.added.push(user.clone());
            }
            Err(e) => {
                tracing::warn!(user = %user, error = %crate::proxy::error_chain(&e), "sync: cannot add the user");
                if let Some(j) = &mut journal {
                    j.write(&Entry::Failed {
                        run,
                        user: user.clone(),
                        group,
                        error: e.to_string(),
                    })?;
                }
                report.failed.push((user.clone(), e.to_string()));
                if matches!(
                    e,
                    DirectoryError::BadCredentials
                        | DirectoryError::NotAdmin
                        | DirectoryError::BasicAuthDisabled(_)
                        | DirectoryError::ReadOnly(_)
                        | DirectoryError::GroupMissing(_)
                ) {
                    // Every further call would fail the same way.
                    pb.abandon();
                    return Err(e.into());
                }
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    if let Some(j) = &mut journal {
        j.write(&Entry::End {
            run: report.run.clone(),
            added: report.added.len() + report.added_before.len(),
            failed: report.failed.len(),
        })?;
    }
    Ok(report)
}

/// The outcome of `undo`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UndoReport {
    pub run: String,
    pub removed: Vec<UserId>,
    pub failed: Vec<(UserId, String)>,
}

/// Reverts the last run in `journal`: removes from the group every user it
/// meant to add (also those whose add was interrupted: removing a
/// non-member is harmless). Journaled too, so an interrupted undo resumes.
pub async fn undo(
    dir: &dyn Directory,
    journal_path: &Path,
    pace: Duration,
    progress: bool,
) -> Result<UndoReport, SyncError> {
    let mut j = Journal::open(journal_path)?;
    let Some(run) = j.last_run() else {
        return Err(SyncError::BadJournal {
            path: journal_path.to_owned(),
            detail: "holds no sync run to undo".into(),
        });
    };
    let todo = j.to_undo(&run);
    let mut report = UndoReport {
        run: run.clone(),
        ..Default::default()
    };
    let pb = progress_bar(todo.len(), progress, "removing");
    for (i, (user, group)) in todo.iter().enumerate() {
        if i > 0 && !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
        pb.set_message(user.to_string());
        j.write(&Entry::Undo {
            run: run.clone(),
            user: user.clone(),
            group: group.clone(),
        })?;
        match dir.remove_from_group(user, group).await {
            Ok(()) => {
                j.write(&Entry::Undone {
                    run: run.clone(),
                    user: user.clone(),
                    group: group.clone(),
                })?;
                report.removed.push(user.clone());
            }
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "sync undo: cannot remove the user");
                report.failed.push((user.clone(), e.to_string()));
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(report)
}

/// The journal of the `[sync] every` job: beside `[state] path`, if set.
pub fn job_journal(cfg: &Config) -> Option<PathBuf> {
    cfg.state.path.as_ref().map(|p| {
        p.parent()
            .unwrap_or(Path::new("."))
            .join("iumgate-sync-journal.jsonl")
    })
}

#[cfg(test)]
mod error_tests {
    use super::SyncError;
    use std::error::Error;

    /// A sync error says what failed and keeps its cause as the source,
    /// without repeating it in its own text (logs print the whole chain).
    #[test]
    fn a_sync_error_keeps_its_cause_once() {
        let e = SyncError::Journal {
            path: "/var/lib/iumgate/sync.journal".into(),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied"),
        };
        assert_eq!(e.to_string(), "sync: journal /var/lib/iumgate/sync.journal");
        assert!(e
            .source()
            .is_some_and(|s| s.to_string() == "permission denied"));
        let chain = crate::proxy::error_chain(&e);
        assert_eq!(chain.matches("permission denied").count(), 1, "{chain}");

        let e = SyncError::from(crate::directory::DirectoryError::NotAdmin);
        let chain = crate::proxy::error_chain(&e);
        assert!(
            chain.starts_with("sync: a directory call failed"),
            "{chain}"
        );
        assert_eq!(chain.matches("not an administrator").count(), 1, "{chain}");
    }
}
