//! The upstream's admin REST API, behind one trait: Jira, Confluence,
//! Bitbucket and Crowd each have a client. Calls are made with a service
//! account (Basic auth or a personal access token, which avoids WebSudo),
//! under a time-out, retried with back-off on 5xx and time-outs, never on 4xx.

/// Each product's client: a [`http::Transport`] with the product's name, a
/// constructor, and the metrics observer hook.
macro_rules! client {
    ($ty:ident, $product:literal) => {
        #[derive(Debug)]
        pub struct $ty {
            t: Transport,
        }

        impl $ty {
            /// A client for `base_url` (Crowd: `auth` is the application's
            /// name and password).
            pub fn new(
                base_url: &str,
                auth: $crate::directory::Auth,
                opts: $crate::directory::ClientOptions,
            ) -> Result<Self, $crate::directory::SetupError> {
                Ok($ty {
                    t: Transport::new($product, base_url, auth, opts)?,
                })
            }

            /// Reports every operation to `observer` (metrics).
            pub fn with_observer(
                self,
                observer: std::sync::Arc<dyn $crate::directory::CallObserver>,
            ) -> Self {
                self.observed_by(Some(observer))
            }

            pub(crate) fn observed_by(
                mut self,
                observer: Option<std::sync::Arc<dyn $crate::directory::CallObserver>>,
            ) -> Self {
                self.t.set_observer(observer);
                self
            }
        }
    };
}

mod bitbucket;
mod confluence;
mod crowd;
mod http;
mod jira;

pub(crate) use http::says_basic_auth_disabled;

pub use bitbucket::BitbucketDirectory;
pub use confluence::ConfluenceDirectory;
pub use crowd::CrowdDirectory;
pub use jira::JiraDirectory;

use crate::config::{Config, DirectoryKind, Secret};
use crate::user::UserId;
use async_trait::async_trait;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    /// The app refuses Basic authentication on API calls (blocked through
    /// `/rest/basicauth/1.0/config`; Jira 11's default), so the service
    /// account's password is refused whether right or wrong. Holds the app's
    /// answer (status and message).
    #[error("directory: the application refuses Basic authentication (a password) on API calls ({0}): create a personal access token for the service account and set [directory] token_env or token_file")]
    BasicAuthDisabled(String),
    #[error(
        "directory: group `{0}` does not exist: create it, or fix the group name in the config"
    )]
    GroupMissing(String),
    #[error("directory: user `{0}` does not exist")]
    UserMissing(String),
    #[error("directory: the user directory is read-only ({0}): make it read/write, or \"Read Only, with Local Groups\"")]
    ReadOnly(String),
    /// The directory could not be asked: time-out, refused connection, TLS,
    /// 5xx to the last retry, rate limited. `detail` says which call and how
    /// it ended (for a log line read with `%e`); `source` keeps the error
    /// underneath (a `reqwest::Error` with its I/O cause, or [`ErrorStatus`])
    /// for [`crate::proxy::error_chain`] and for code that looks inside.
    #[error("directory: unavailable: cannot {operation}: {detail}")]
    Unavailable {
        /// What iumgate was doing: "add user to group", "list group members", …
        operation: &'static str,
        detail: String,
        #[source]
        source: Option<Cause>,
    },
    #[error("directory: unexpected answer {status}: {detail}")]
    Unexpected { status: u16, detail: String },
}

impl DirectoryError {
    /// A [`DirectoryError::Unavailable`] for `operation` (see [`op_name`]),
    /// with `cause` kept as its source.
    pub fn unavailable(
        operation: &'static str,
        detail: impl Into<String>,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> DirectoryError {
        DirectoryError::Unavailable {
            operation,
            detail: detail.into(),
            source: Some(Cause::new(cause)),
        }
    }

    /// Worth another try later (5xx, time-out, connection refused).
    pub fn is_retryable(&self) -> bool {
        matches!(self, DirectoryError::Unavailable { .. })
    }

    /// Every [`DirectoryError::kind`], in declaration order: the metrics'
    /// `result` label values besides `ok` and the `directory_<kind>` alert
    /// keys ([`crate::alerts::AlertKey`]).
    pub const KINDS: [&'static str; 8] = [
        "bad_credentials",
        "not_admin",
        "basic_auth_disabled",
        "group_missing",
        "user_missing",
        "read_only",
        "unavailable",
        "unexpected",
    ];

    /// A short, stable label for metrics (one of [`DirectoryError::KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            DirectoryError::BadCredentials => "bad_credentials",
            DirectoryError::NotAdmin => "not_admin",
            DirectoryError::BasicAuthDisabled(_) => "basic_auth_disabled",
            DirectoryError::GroupMissing(_) => "group_missing",
            DirectoryError::UserMissing(_) => "user_missing",
            DirectoryError::ReadOnly(_) => "read_only",
            DirectoryError::Unavailable { .. } => "unavailable",
            DirectoryError::Unexpected { .. } => "unexpected",
        }
    }
}

/// What each [`Directory`] operation is called in errors: `add_to_group` is
/// "add user to group", and so on (the metrics' `op` label → words).
pub fn op_name(op: &str) -> &'static str {
    match op {
        "add_to_group" => "add user to group",
        "remove_from_group" => "remove user from group",
        "group_members" => "list group members",
        "user" => "look up user",
        "licence" => "read licence",
        _ => "call the admin REST API",
    }
}

/// The error under [`DirectoryError::Unavailable`], shared so that the
/// directory's errors stay `Clone`. It reads as the error it holds, and its
/// `source()` is that error's source: the chain goes on unbroken.
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    pub fn new(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Cause {
        Cause(Arc::from(e.into()))
    }

    /// The error itself, to downcast (`reqwest::Error`, [`ErrorStatus`], …).
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Two causes are equal when they are the same error or read the same (for
/// tests comparing whole results).
impl PartialEq for Cause {
    fn eq(&self, other: &Cause) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

/// The directory's own answer as an error: the last 5xx of a call retried to
/// the end, or a 429 (rate limited). `body` is the start of its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HTTP {status}: {body}")]
pub struct ErrorStatus {
    pub status: u16,
    pub body: String,
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

/// A directory whose groups never change: writes succeed and change nothing,
/// users are unknown, the licence has `seats` seats. For benchmarks and
/// unit tests that need a reconciled gate without an app.
#[derive(Debug, Default)]
pub struct Fixed {
    groups: std::collections::HashMap<String, Vec<Member>>,
    seats: Option<u32>,
}

impl Fixed {
    pub fn new(seats: u32) -> Fixed {
        Fixed {
            groups: Default::default(),
            seats: Some(seats),
        }
    }

    /// Adds `group` with these active members.
    pub fn group<S: AsRef<str>>(
        mut self,
        group: &str,
        members: impl IntoIterator<Item = S>,
    ) -> Fixed {
        let members = members
            .into_iter()
            .map(|n| Member {
                name: UserId::new(n.as_ref()),
                active: true,
            })
            .collect();
        self.groups.insert(group.to_string(), members);
        self
    }
}

#[async_trait]
impl Directory for Fixed {
    async fn add_to_group(&self, _: &UserId, _: &str) -> Result<(), DirectoryError> {
        Ok(())
    }
    async fn remove_from_group(&self, _: &UserId, _: &str) -> Result<(), DirectoryError> {
        Ok(())
    }
    async fn group_members(&self, group: &str) -> Result<Vec<Member>, DirectoryError> {
        Ok(self.groups.get(group).cloned().unwrap_or_default())
    }
    async fn user(&self, _: &UserId) -> Result<Option<UserInfo>, DirectoryError> {
        Ok(None)
    }
    async fn licence(&self, _: &str) -> Result<Option<LicenceInfo>, DirectoryError> {
        Ok(Some(LicenceInfo {
            seats: self.seats,
            used: None,
            groups: Vec::new(),
        }))
    }
}

/// How the service account proves who it is.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Basic` (Crowd: the application's name and password).
    Basic { username: String, password: Secret },
    /// `Authorization: Bearer` with a personal access token (Jira 8.14+,
    /// Confluence 7.9+, Bitbucket 5.5+).
    Bearer(Secret),
}

/// Time-out, retries and trust for every call of one client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Whole-call time-out (connect, send, read the answer).
    pub timeout: Duration,
    /// Retries after the first try, on 5xx, time-outs and connection errors only.
    pub retries: u32,
    /// First back-off; doubled on each retry, plus up to a quarter of jitter.
    pub backoff: Duration,
    /// A PEM file of extra CA certificates (an internal CA), trusted besides the
    /// public roots.
    pub extra_ca: Option<PathBuf>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(10),
            retries: 3,
            backoff: Duration::from_millis(200),
            extra_ca: None,
        }
    }
}

/// Why a directory client cannot be made (at start-up, `iumgate check`,
/// `iumgate sync`): the product, the setting at fault, what is wrong with
/// it, and the error underneath where there is one. Never holds a secret.
#[derive(Debug, thiserror::Error)]
#[error("{product} directory: {problem} ({key})")]
pub struct SetupError {
    /// "jira", "confluence", "bitbucket", "crowd".
    pub product: &'static str,
    /// The config key: `directory.url`, `proxy.upstream_ca_file`, …
    pub key: &'static str,
    pub problem: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SetupError {
    pub(crate) fn new(
        product: &'static str,
        key: &'static str,
        problem: impl Into<String>,
    ) -> Self {
        SetupError {
            product,
            key,
            problem: problem.into(),
            source: None,
        }
    }

    pub(crate) fn because(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }
}

/// Hears about every directory operation, for metrics.
///
/// `op` is `add_to_group`, `remove_from_group`, `group_members`, `user` or
/// `licence`; `result` is `"ok"` or [`DirectoryError::kind`]; `seconds` covers
/// the whole operation, retries and all pages included.
pub trait CallObserver: Send + Sync {
    fn observe(&self, op: &'static str, result: &'static str, seconds: f64);
}

/// Builds the client for `cfg.directory.kind_for(cfg.proxy.product)` at
/// `cfg.directory_url()`, with the credentials read from their env variable or
/// file now (so a missing secret fails at start-up, not at the first login).
///
/// A token wins as `Bearer`; otherwise `username` + password as `Basic`. For
/// Crowd the username is the application's name and the password its
/// application password. `proxy.upstream_ca_file`, when set, is trusted too:
/// the directory is usually the upstream itself.
pub fn from_config(cfg: &Config) -> Result<Arc<dyn Directory>, SetupError> {
    build(cfg, None)
}

/// [`from_config`] with a metrics observer attached.
pub fn from_config_with_observer(
    cfg: &Config,
    observer: Arc<dyn CallObserver>,
) -> Result<Arc<dyn Directory>, SetupError> {
    build(cfg, Some(observer))
}

fn build(
    cfg: &Config,
    observer: Option<Arc<dyn CallObserver>>,
) -> Result<Arc<dyn Directory>, SetupError> {
    const TOKEN: &str = "directory.token_env / token_file";
    let d = &cfg.directory;
    let kind = d.kind_for(cfg.proxy.product);
    let product = match kind {
        DirectoryKind::Jira => "jira",
        DirectoryKind::Confluence => "confluence",
        DirectoryKind::Bitbucket => "bitbucket",
        DirectoryKind::Crowd => "crowd",
    };
    let fail = |key, problem| SetupError::new(product, key, problem);
    let token = d
        .token()
        .resolve()
        .map_err(|e| fail(TOKEN, String::from("the token cannot be read")).because(e))?;
    let password = d.password().resolve().map_err(|e| {
        fail(
            "directory.password_env / password_file",
            String::from("the password cannot be read"),
        )
        .because(e)
    })?;
    let auth = match (token, password, &d.username) {
        (Some(_), _, _) if kind == DirectoryKind::Crowd => {
            return Err(fail(
                TOKEN,
                "Crowd takes the application name and password \
                 (username + password_env/password_file), not a token"
                    .into(),
            ))
        }
        (Some(token), _, _) => Auth::Bearer(token),
        (None, Some(password), Some(username)) => Auth::Basic {
            username: username.clone(),
            password,
        },
        (None, Some(_), None) => {
            return Err(fail(
                "directory.username",
                "a password is set but no username".into(),
            ))
        }
        (None, None, _) => {
            return Err(fail(
                "directory",
                "no credentials: set username + password_env/password_file, \
                 or token_env/token_file"
                    .into(),
            ))
        }
    };
    let opts = ClientOptions {
        timeout: d.timeout.get(),
        retries: d.retries,
        backoff: d.backoff.get(),
        extra_ca: cfg.proxy.upstream_ca_file.clone(),
    };
    let url = cfg.directory_url();
    // The URL is proxy.upstream's unless the directory has its own.
    let url_key = |mut e: SetupError| {
        if e.key == "directory.url" && cfg.directory.url.is_none() {
            e.key = "proxy.upstream";
        }
        e
    };
    let dir: Arc<dyn Directory> = match (kind, observer) {
        (DirectoryKind::Jira, o) => Arc::new(
            JiraDirectory::new(url, auth, opts)
                .map_err(url_key)?
                .observed_by(o),
        ),
        (DirectoryKind::Confluence, o) => Arc::new(
            ConfluenceDirectory::new(url, auth, opts)
                .map_err(url_key)?
                .observed_by(o),
        ),
        (DirectoryKind::Bitbucket, o) => Arc::new(
            BitbucketDirectory::new(url, auth, opts)
                .map_err(url_key)?
                .observed_by(o),
        ),
        (DirectoryKind::Crowd, o) => Arc::new(
            CrowdDirectory::new(url, auth, opts)
                .map_err(url_key)?
                .observed_by(o),
        ),
    };
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// A config with a token in a file, so that only the setting under test fails.
    fn config(dir: &tempfile::TempDir, upstream: &str) -> Config {
        let token = dir.path().join("token");
        std::fs::write(&token, "PAT-1\n").unwrap();
        let mut cfg = Config::default();
        cfg.proxy.upstream = upstream.into();
        cfg.directory.token_file = Some(token);
        cfg
    }

    #[test]
    fn a_setup_error_names_the_key_the_url_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(&dir, "not a url");
        let e = from_config(&cfg).unwrap_err();
        assert_eq!(e.key, "proxy.upstream", "{e}");
        assert_eq!(
            e.to_string(),
            "jira directory: the base URL is not a URL (proxy.upstream)"
        );
        assert!(e.source().is_some(), "the URL parser's error is kept");

        cfg.directory.url = Some("ftp://x".into());
        let e = from_config(&cfg).unwrap_err();
        assert_eq!(e.key, "directory.url", "{e}");
        assert!(e.source().is_none());
    }

    #[test]
    fn an_unreadable_ca_file_keeps_the_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(&dir, "https://jira.example.com");
        cfg.proxy.upstream_ca_file = Some(dir.path().join("missing.pem"));
        let e = from_config(&cfg).unwrap_err();
        assert_eq!(e.key, "proxy.upstream_ca_file");
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::NotFound));
    }

    #[test]
    fn an_unavailable_error_made_by_hand_keeps_its_cause() {
        let e = DirectoryError::unavailable(
            "add user to group",
            "test",
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        );
        assert_eq!(
            e.to_string(),
            "directory: unavailable: cannot add user to group: test"
        );
        assert_eq!(e.kind(), "unavailable");
        // The Cause reads as the error it holds and can be downcast.
        let DirectoryError::Unavailable {
            source: Some(cause),
            ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert!(cause.get().is::<std::io::Error>());
        assert_eq!(e.source().map(|s| s.to_string()), Some("timed out".into()));
    }
}
