//! Why a background job failed: which job, which step, and the error
//! underneath kept as the source (log and alert it with
//! [`crate::proxy::error_chain`], which adds the causes once).

use crate::directory::DirectoryError;
use crate::sync::SyncError;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A directory call of the job failed.
    #[error("{job}: cannot {step}")]
    Directory {
        /// "tier check", "nightly cleanup", "sync".
        job: &'static str,
        /// What the job was doing: "read the groups", …
        step: &'static str,
        #[source]
        source: DirectoryError,
    },
    /// The job's settings cannot be used; `message` names the key.
    #[error("{job}: {message}")]
    Settings { job: &'static str, message: String },
    /// The sync could not apply its plan for want of its journal (a
    /// directory failure while applying is [`JobError::Directory`]).
    #[error("{job}: cannot apply the plan")]
    Sync {
        job: &'static str,
        #[source]
        source: SyncError,
    },
}

impl JobError {
    /// The job that failed.
    pub fn job(&self) -> &'static str {
        match self {
            JobError::Directory { job, .. }
            | JobError::Settings { job, .. }
            | JobError::Sync { job, .. } => job,
        }
    }

    /// The message with every cause, for an alert or the job board.
    pub fn chain(&self) -> String {
        crate::proxy::error_chain(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_directory_failure_names_the_job_and_step_and_keeps_the_directory_error() {
        let e = JobError::Directory {
            job: "tier check",
            step: "read the groups",
            source: DirectoryError::unavailable(
                "list group members",
                "jira GET /rest/api/2/group/member: cannot connect (after 1 try)",
                std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            ),
        };
        assert_eq!(e.to_string(), "tier check: cannot read the groups");
        assert_eq!(e.job(), "tier check");
        let src = e.source().expect("the directory error");
        assert!(src.downcast_ref::<DirectoryError>().is_some(), "{src:?}");
        let chain = e.chain();
        assert!(
            chain.starts_with(
                "tier check: cannot read the groups: directory: unavailable: cannot list group members: "
            ),
            "{chain}"
        );
        assert!(chain.ends_with("connection refused"), "{chain}");
    }

    #[test]
    fn a_sync_failure_keeps_the_sync_error() {
        let e = JobError::Sync {
            job: "sync",
            source: SyncError::BadJournal {
                path: "/var/lib/iumgate/sync.journal".into(),
                detail: "line 3 is not JSON".into(),
            },
        };
        assert_eq!(e.to_string(), "sync: cannot apply the plan");
        assert!(e.source().is_some_and(|s| s.is::<SyncError>()));
        assert!(e.chain().contains("line 3 is not JSON"), "{}", e.chain());
    }

    #[test]
    fn a_settings_failure_reads_as_its_message() {
        let e = JobError::Settings {
            job: "sync",
            message: "sync.source_groups is empty".into(),
        };
        assert_eq!(e.to_string(), "sync: sync.source_groups is empty");
        assert!(e.source().is_none());
    }
}
