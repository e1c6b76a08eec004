//! The upstream's admin REST API, behind one trait: Jira, Confluence,
//! Bitbucket and Crowd each have a client. Calls are made with a service
//! account (Basic auth or a personal access token, which avoids WebSudo),
//! under a time-out, retried with back-off on 5xx and time-outs, never on 4xx.

use crate::user::UserId;
use async_trait::async_trait;
use std::fmt;

/// A member of a group as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: UserId,
    pub active: bool,
}

/// A user as the directory describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: UserId,
    pub active: bool,
    /// Group names, as the directory spells them.
    pub groups: Vec<String>,
}

/// The app's own view of its licence, where its API gives one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenceInfo {
    /// Seats the licence allows (`None`: unlimited).
    pub seats: Option<u32>,
    /// Users currently counted against it.
    pub used: Option<u32>,
    /// Groups that give access (Jira's application role).
    pub groups: Vec<String>,
}

/// What went wrong, classified so the log line and the admin's fix are clear.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("directory: the service account's credentials were refused (401): check [directory] username and password/token")]
    BadCredentials,
    #[error("directory: the service account is not an administrator (403): it needs admin rights to change groups")]
    NotAdmin,
    #[error(
        "directory: group `{0}` does not exist: create it, or fix the group name in the config"
    )]
    GroupMissing(String),
    #[error("directory: user `{0}` does not exist")]
    UserMissing(String),
    #[error("directory: the user directory is read-only ({0}): make it read/write, or \"Read Only, with Local Groups\"")]
    ReadOnly(String),
    #[error("directory: unavailable: {0}")]
    Unavailable(String),
    #[error("directory: unexpected answer {status}: {detail}")]
    Unexpected { status: u16, detail: String },
}

impl DirectoryError {
    /// Worth another try later (5xx, time-out, connection refused).
    pub fn is_retryable(&self) -> bool {
        matches!(self, DirectoryError::Unavailable(_))
    }

    /// A short, stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            DirectoryError::BadCredentials => "bad_credentials",
            DirectoryError::NotAdmin => "not_admin",
            DirectoryError::GroupMissing(_) => "group_missing",
            DirectoryError::UserMissing(_) => "user_missing",
            DirectoryError::ReadOnly(_) => "read_only",
            DirectoryError::Unavailable(_) => "unavailable",
            DirectoryError::Unexpected { .. } => "unexpected",
        }
    }
}

/// Group operations and look-ups against the upstream's user directory.
///
/// `add_to_group` of a member and `remove_from_group` of a non-member both
/// succeed: the gate only cares about the end state.
#[async_trait]
pub trait Directory: Send + Sync + fmt::Debug {
    async fn add_to_group(&self, user: &UserId, group: &str) -> Result<(), DirectoryError>;
    async fn remove_from_group(&self, user: &UserId, group: &str) -> Result<(), DirectoryError>;
    /// All members, inactive ones included, all pages read.
    async fn group_members(&self, group: &str) -> Result<Vec<Member>, DirectoryError>;
    /// `Ok(None)` when the user does not exist.
    async fn user(&self, user: &UserId) -> Result<Option<UserInfo>, DirectoryError>;
    /// The licence of `application` (Jira: the application role key).
    async fn licence(&self, application: &str) -> Result<Option<LicenceInfo>, DirectoryError>;
}
