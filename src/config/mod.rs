//! The TOML model, its defaults and its validation.
//!
//! Every error names the key (`proxy.listen`) and, where the file has it, the
//! line. Unknown keys are errors too, with their path: a typo such as
//! `min_idel` must never be silently ignored in a licence tool. Secrets are
//! never literal: they come from an environment variable (`*_env`) or a file
//! (`*_file`), and [`Secret`] never prints its value.

mod audit;
mod duration;
mod locate;
mod pools;
mod secret;

pub use audit::AuditConfig;
pub use duration::Dur;
pub use pools::{PoolSection, Pools, DEFAULT_POOL, SERVICE_MANAGEMENT};
pub use secret::{Secret, SecretError, SecretRef};

use crate::product::Product;
use ipnet::IpNet;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A config problem: which key, which line (when known), and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            f.write_str(": ")?;
        } else if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.key, self.message)
        }
    }
}

/// All problems of one file, reported together so an admin fixes them in one go.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "the configuration has {n} error{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Config {
    pub proxy: ProxyConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    /// `[access_log]`: one line per request (absent or no `path`: off).
    pub access_log: AccessLogConfig,
    /// `[audit]`: the seat audit trail (absent or no `path`: off).
    pub audit: AuditConfig,
    pub directory: DirectoryConfig,
    pub licence: LicenceConfig,
    pub ium: IumConfig,
    pub activity: ActivityConfig,
    pub queue: QueueConfig,
    pub identity: IdentityConfig,
    pub jobs: JobsConfig,
    pub alerts: AlertsConfig,
    pub sync: SyncConfig,
    pub state: StateConfig,
    pub sso: SsoConfig,
    /// `[cluster]`: replicas sharing one pool on Redis (absent: one process).
    pub cluster: Option<ClusterConfig>,
    /// `[pools.<name>]`: seat pools beside the default one (`[licence]` +
    /// `[ium]`), e.g. Jira Service Management's agents.
    pub pools: Pools,
}

/// `[cluster]`: several replicas share one licence pool on Redis. Without
/// this section nothing changes: one process, its memory and the snapshot.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    /// `redis://[:password@]host:port[/db]` or `rediss://…` (TLS). A URL
    /// with a password belongs in `redis_url_env` or `redis_url_file`.
    pub redis_url: Option<String>,
    pub redis_url_env: Option<String>,
    pub redis_url_file: Option<PathBuf>,
    /// Every key iumgate writes starts with this (several sites may share
    /// one Redis with different prefixes).
    pub key_prefix: String,
    /// This replica's name in leases and logs (default: host name + pid).
    pub node_id: Option<String>,
    /// How long a job's lease lasts without renewal (a dead replica's jobs
    /// are taken over within it).
    pub lease: Dur,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: None,
            redis_url_env: None,
            redis_url_file: None,
            key_prefix: "iumgate:".into(),
            node_id: None,
            lease: Dur::secs(30),
        }
    }
}

impl ClusterConfig {
    /// The Redis URL: literal, or from the environment or a file (a secret:
    /// it may carry the password).
    pub fn redis_url(&self) -> Result<Option<Secret>, SecretError> {
        if let Some(u) = &self.redis_url {
            return Ok(Some(Secret::new(u.clone())));
        }
        SecretRef::new(
            "cluster.redis_url",
            self.redis_url_env.as_deref(),
            self.redis_url_file.as_deref(),
        )
        .resolve()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    pub upstream: String,
    pub product: Product,
    pub preserve_host: bool,
    pub trusted_proxies: Vec<IpNet>,
    pub connect_timeout: Dur,
    pub request_timeout: Dur,
    pub idle_timeout: Dur,
    pub header_timeout: Dur,
    /// A write to a client that makes no progress this long closes the
    /// connection (nginx's `send_timeout`).
    pub send_timeout: Dur,
    /// A request body that sends nothing this long fails (nginx's
    /// `client_body_timeout`).
    pub body_timeout: Dur,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    /// Simple HTTP/1.1 requests take iumgate's own fast lane (`false`: hyper
    /// serves every connection, a fallback should the lane misbehave).
    pub fast_lane: bool,
    pub upstream_ca_file: Option<PathBuf>,
    pub shutdown_grace: Dur,
    pub tls: Option<TlsConfig>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: ([0, 0, 0, 0], 8080).into(),
            upstream: String::new(),
            product: Product::Jira,
            preserve_host: true,
            trusted_proxies: Vec::new(),
            connect_timeout: Dur::secs(5),
            request_timeout: Dur::secs(120),
            idle_timeout: Dur::secs(90),
            header_timeout: Dur::secs(15),
            send_timeout: Dur::secs(60),
            body_timeout: Dur::secs(60),
            max_header_bytes: 64 * 1024,
            max_connections: 10_000,
            fast_lane: true,
            upstream_ca_file: None,
            shutdown_grace: Dur::secs(30),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// How often the files are checked for changes (SIGHUP reloads at once).
    pub reload_check: Dur,
    pub handshake_timeout: Dur,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            reload_check: Dur::secs(5),
            handshake_timeout: Dur::secs(10),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    /// Whether `/metrics` also needs the token (default: open, like most exporters).
    pub metrics_need_token: bool,
    /// At most this many admin connections at once; more are closed at once.
    pub max_connections: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: ([127, 0, 0, 1], 9102).into(),
            token_env: None,
            token_file: None,
            metrics_need_token: false,
            max_connections: 64,
        }
    }
}

impl AdminConfig {
    pub fn token(&self) -> SecretRef {
        SecretRef::new(
            "admin",
            self.token_env.as_deref(),
            self.token_file.as_deref(),
        )
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    pub level: String,
    pub filters: Vec<String>,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            filters: Vec::new(),
            format: LogFormat::Text,
        }
    }
}

impl LogConfig {
    /// The `EnvFilter` directive string: the level, then the per-module filters.
    pub fn directives(&self) -> String {
        let mut s = self.level.clone();
        for f in &self.filters {
            s.push(',');
            s.push_str(f);
        }
        s
    }
}

/// `[access_log] format`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    /// iumgate's JSON lines (what `iumgate analyze` reads).
    #[default]
    Json,
    /// Apache's combined format, iumgate's fields after it.
    Combined,
}

/// `[access_log]`: one line per request, written off the request path.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct AccessLogConfig {
    /// A file (appended to; reopened on SIGHUP and when rotated away), or
    /// `-` for standard output. None: no access log.
    pub path: Option<PathBuf>,
    pub format: AccessLogFormat,
    /// Log the query string too (off: it may carry tokens and search text).
    pub include_query: bool,
    /// Lines waiting for the writer at most; more are dropped and counted
    /// (`iumgate_access_log_dropped_total`), never waited for.
    pub buffer: usize,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            path: None,
            format: AccessLogFormat::Json,
            include_query: false,
            buffer: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryKind {
    Jira,
    Confluence,
    Bitbucket,
    Crowd,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DirectoryConfig {
    /// Which REST dialect; default: the proxy's product.
    pub kind: Option<DirectoryKind>,
    /// Base URL of the admin REST API; default: the proxy's upstream.
    pub url: Option<String>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    pub timeout: Dur,
    /// Retries after the first try, on 5xx and time-outs only.
    pub retries: u32,
    /// First back-off; doubled on each retry.
    pub backoff: Dur,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            kind: None,
            url: None,
            username: None,
            password_env: None,
            password_file: None,
            token_env: None,
            token_file: None,
            timeout: Dur::secs(10),
            retries: 3,
            backoff: Dur::millis(200),
        }
    }
}

impl DirectoryConfig {
    pub fn password(&self) -> SecretRef {
        SecretRef::new(
            "directory password",
            self.password_env.as_deref(),
            self.password_file.as_deref(),
        )
    }
    pub fn token(&self) -> SecretRef {
        SecretRef::new(
            "directory token",
            self.token_env.as_deref(),
            self.token_file.as_deref(),
        )
    }
    pub fn kind_for(&self, product: Product) -> DirectoryKind {
        self.kind.unwrap_or(match product {
            Product::Jira => DirectoryKind::Jira,
            Product::Confluence => DirectoryKind::Confluence,
            Product::Bitbucket => DirectoryKind::Bitbucket,
        })
    }
}

/// The licence tier: a number, or `"auto"` (read from the app).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tier {
    Fixed(u32),
    #[default]
    Auto,
}

impl<'de> Deserialize<'de> for Tier {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a number of users or \"auto\""))?
        {
            Raw::N(n) if n > 0 && n <= u32::MAX as i64 => Ok(Tier::Fixed(n as u32)),
            Raw::N(n) => Err(serde::de::Error::custom(format!(
                "the tier must be a positive number of users, not {n}"
            ))),
            Raw::S(s) if s.eq_ignore_ascii_case("auto") => Ok(Tier::Auto),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "expected a number of users or \"auto\", not \"{s}\""
            ))),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LicenceConfig {
    pub tier: Tier,
    /// The application role whose `numberOfSeats` is the tier with `tier = "auto"`.
    pub application: String,
    /// Groups that give a fixed licence (power users).
    pub fixed_groups: Vec<String>,
    /// Seats kept back for service accounts and API users.
    pub reserved: u32,
}

impl Default for LicenceConfig {
    fn default() -> Self {
        LicenceConfig {
            tier: Tier::Auto,
            application: "jira-software".into(),
            fixed_groups: Vec::new(),
            reserved: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct IumConfig {
    pub user_group: String,
    pub access_group: String,
    pub min_idle: Dur,
    pub exempt_users: Vec<String>,
    pub release_on_logout: bool,
}

impl Default for IumConfig {
    fn default() -> Self {
        IumConfig {
            user_group: String::new(),
            access_group: String::new(),
            min_idle: Dur::secs(30 * 60),
            exempt_users: Vec::new(),
            release_on_logout: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct ActivityConfig {
    /// Extra regexes over `"METHOD /path"` that count as activity.
    pub include: Vec<String>,
    /// Regexes that never count (win over includes).
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct QueueConfig {
    pub abandon_after: Dur,
    pub retry_every: Dur,
    pub logo_url: Option<String>,
    pub message: Option<String>,
    /// How a login on today's login page (`/rest/tsv/…/authenticate`) that
    /// must wait is sent to the waiting room.
    pub platform_login_wait: PlatformLoginWait,
}

/// How the platform login's script page is sent to the waiting room. What
/// the page does with the answer is *unconfirmed* upstream: the simulator's
/// page follows both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlatformLoginWait {
    /// `200 {"redirectUrl": "/iumgate/wait?to=…"}`, as for a login that
    /// passed (the page goes to `redirectUrl`).
    #[default]
    RedirectUrl,
    /// `303 See Other` to the waiting page (`fetch` follows it; the page
    /// goes where the followed answer came from).
    SeeOther,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            abandon_after: Dur::secs(120),
            retry_every: Dur::secs(10),
            logo_url: None,
            message: None,
            platform_login_wait: PlatformLoginWait::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct IdentityConfig {
    /// How many bytes of a login body are read to find the username.
    pub login_body_limit: usize,
    /// Forget a session cookie not seen for this long.
    pub session_ttl: Dur,
    /// Forget a remember-me cookie not seen for this long.
    pub remember_ttl: Dur,
    /// Extra page texts that mean "right password, no application access".
    pub no_permission_texts: Vec<String>,
    /// Session bindings one user may have; a new one beyond drops their
    /// least recently seen.
    pub max_sessions_per_user: usize,
    /// Session bindings in all; when full, new ones are refused.
    pub max_sessions: usize,
    /// How long a login may wait between its password step and its
    /// two-step verification code before its seat goes back.
    pub second_step_timeout: Dur,
    /// A Jira Data Center cluster reaches a group change on its other nodes
    /// a moment later: a login whose seat was put in place just before and
    /// that the app still refuses the licence (`AUTHORISATION_FAILED`) is
    /// repeated by iumgate up to this many times within 2 s (0: never; at
    /// most 3). Each repeat is one more login attempt at the app.
    pub authorisation_retries: u32,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        let limits = crate::identity::Limits::default();
        IdentityConfig {
            login_body_limit: 64 * 1024,
            session_ttl: Dur::secs(24 * 3600),
            remember_ttl: Dur::secs(30 * 24 * 3600),
            no_permission_texts: Vec::new(),
            max_sessions_per_user: limits.per_user,
            max_sessions: limits.total,
            second_step_timeout: Dur::secs(5 * 60),
            authorisation_retries: 0,
        }
    }
}

impl IdentityConfig {
    /// The session map's bounds.
    pub fn session_limits(&self) -> crate::identity::Limits {
        crate::identity::Limits {
            per_user: self.max_sessions_per_user,
            total: self.max_sessions,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct JobsConfig {
    pub reconcile_every: Dur,
    pub tier_check_every: Dur,
    /// Local time `HH:MM` of the nightly cleanup.
    pub cleanup_at: String,
    /// Offset of the server's local time; default: the machine's (`TZ`).
    pub timezone: Option<String>,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            reconcile_every: Dur::secs(300),
            tier_check_every: Dur::secs(3600),
            cleanup_at: "02:00".into(),
            timezone: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct AlertsConfig {
    pub webhook_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct SyncConfig {
    pub source_groups: Vec<String>,
    pub every: Option<Dur>,
    /// Pause between two directory writes of a sync run.
    pub pace: Option<Dur>,
}

/// Single sign-on (Atlassian's SSO for Data Center).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct SsoConfig {
    pub saml: SamlConfig,
    pub oidc: OidcConfig,
}

/// `[sso.oidc]`: iumgate as a relying party of the IdP that the app's
/// OpenID Connect SSO uses. The app's callback names nobody (the app redeems
/// the code itself), so before an anonymous browser reaches the app's OIDC
/// start page, iumgate runs its own authorization-code flow (PKCE, nonce;
/// silent while the IdP session lasts), verifies the ID token and admits
/// the user like a proven password, then lets the app's flow go on. Without
/// `issuer`, OIDC users are learned from the app's answer only.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct OidcConfig {
    /// The IdP's issuer URL exactly as its discovery document names it
    /// (`https://…`; `http` only to a loopback host).
    pub issuer: Option<String>,
    /// iumgate's client at the IdP (it may be the app's own client when the
    /// IdP allows iumgate's redirect URI for it).
    pub client_id: String,
    pub client_secret_env: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    /// The ID token claim that is the app's user name.
    pub username_claim: String,
    /// The scopes asked for (`openid` is always added).
    pub scopes: String,
    /// iumgate's callback as registered at the IdP, e.g.
    /// `https://jira.example.com/iumgate/oidc/callback`. Default: made from
    /// the request's `Host` (and `https` when the client came over TLS).
    pub redirect_uri: Option<String>,
    /// The app's OIDC start pages that iumgate signs anonymous browsers in
    /// before.
    pub start_paths: Vec<String>,
    /// Tolerated difference between the IdP's clock and this one.
    pub clock_skew: Dur,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            issuer: None,
            client_id: String::new(),
            client_secret_env: None,
            client_secret_file: None,
            username_claim: "preferred_username".into(),
            scopes: "openid profile".into(),
            redirect_uri: None,
            start_paths: vec!["/plugins/servlet/oidc/initiate-login".into()],
            clock_skew: Dur::secs(60),
        }
    }
}

impl OidcConfig {
    /// The path iumgate's own callback is served at.
    pub const CALLBACK_PATH: &'static str = "/iumgate/oidc/callback";

    pub fn client_secret(&self) -> SecretRef {
        SecretRef::new(
            "sso.oidc client secret",
            self.client_secret_env.as_deref(),
            self.client_secret_file.as_deref(),
        )
    }
}

/// `[sso.saml]`: who a SAML login is for, read from the IdP's response on
/// its way to the app. Without `idp_certificate_file` the response's user is
/// a claim (a free seat at most); with it, a response whose signature,
/// audience, destination and time window iumgate verified counts like a
/// proven password (it may take an idle holder's seat, or wait).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SamlConfig {
    /// The IdP's signing certificate(s), PEM.
    pub idp_certificate_file: Option<PathBuf>,
    /// The attribute that carries the user name (default: the NameID).
    pub username_attribute: Option<String>,
    /// This service provider's entity ID (the assertion's `Audience`).
    pub audience: Option<String>,
    /// The app's consumer URL as the IdP posts to it (the response's
    /// `Destination` and the confirmation's `Recipient`), e.g.
    /// `https://jira.example.com/plugins/servlet/samlconsumer`.
    pub destination: Option<String>,
    /// The IdP's entity ID; when set, the assertion's `Issuer` must be it.
    pub issuer: Option<String>,
    /// Tolerated difference between the IdP's clock and this one.
    pub clock_skew: Dur,
    /// The largest `SAMLResponse` read (bytes of the posted form).
    pub max_response_bytes: usize,
}

impl Default for SamlConfig {
    fn default() -> Self {
        SamlConfig {
            idp_certificate_file: None,
            username_attribute: None,
            audience: None,
            destination: None,
            issuer: None,
            clock_skew: Dur::secs(180),
            max_response_bytes: 256 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StateConfig {
    pub path: Option<PathBuf>,
    pub snapshot_every: Dur,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            path: None,
            snapshot_every: Dur::secs(30),
        }
    }
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: Some(path.to_owned()),
                key: String::new(),
                line: None,
                message: format!("cannot read the file: {e}"),
            }])
        })?;
        Config::parse(&text).map_err(|mut es| {
            for e in &mut es.0 {
                e.file = Some(path.to_owned());
            }
            es
        })
    }

    /// Parses and validates a config text.
    pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
        let loc = locate::Locator::new(text);
        let mut unknown = Vec::new();
        let de = toml::Deserializer::new(text);
        let parsed: Result<Config, _> = serde_ignored::deserialize(de, |p| {
            unknown.push(p.to_string());
        });
        let cfg = match parsed {
            Ok(c) => c,
            Err(e) => {
                let span = e.span();
                let key = span
                    .as_ref()
                    .and_then(|s| loc.key_at(s.start))
                    .unwrap_or_default();
                return Err(ConfigErrors(vec![ConfigError {
                    file: None,
                    line: span.map(|s| loc.line_of_offset(s.start)),
                    key,
                    message: e.message().trim().to_string(),
                }]));
            }
        };
        let mut errors: Vec<ConfigError> = unknown
            .into_iter()
            .map(|key| ConfigError {
                file: None,
                line: loc.line_of_key(&key),
                message: "unknown key (check for a typo; see config/iumgate.example.toml)".into(),
                key,
            })
            .collect();
        for (key, message) in cfg.validate() {
            errors.push(ConfigError {
                file: None,
                line: loc.line_of_key(&key),
                key,
                message,
            });
        }
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Problems serde cannot see: (key, what is wrong).
    fn validate(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        let mut err = |k: &str, m: String| errs.push((k.to_string(), m));
        let p = &self.proxy;
        if p.upstream.is_empty() {
            err(
                "proxy.upstream",
                "missing: the URL of the app behind the proxy, e.g. \"http://127.0.0.1:8080\""
                    .into(),
            );
        } else if let Err(m) = check_http_url(&p.upstream) {
            err("proxy.upstream", m);
        }
        if p.max_header_bytes < 8192 {
            err(
                "proxy.max_header_bytes",
                format!("{} is too small: at least 8192", p.max_header_bytes),
            );
        }
        if p.max_connections == 0 {
            err("proxy.max_connections", "must be at least 1".into());
        }
        if self.admin.max_connections == 0 {
            err("admin.max_connections", "must be at least 1".into());
        }
        if let Some(path) = &self.access_log.path {
            if path.as_os_str().is_empty() {
                err(
                    "access_log.path",
                    "empty: a file, or \"-\" for standard output (leave it out for no access log)"
                        .into(),
                );
            } else if path.as_os_str() != "-" && path.is_dir() {
                err(
                    "access_log.path",
                    format!("{} is a directory: name a file in it", path.display()),
                );
            }
        }
        for (k, m) in self.audit.validate() {
            err(&k, m);
        }
        if !(1..=1_000_000).contains(&self.access_log.buffer) {
            err(
                "access_log.buffer",
                format!(
                    "{} lines: between 1 and 1000000 (default 4096)",
                    self.access_log.buffer
                ),
            );
        }
        for (k, n) in [
            (
                "identity.max_sessions_per_user",
                self.identity.max_sessions_per_user,
            ),
            ("identity.max_sessions", self.identity.max_sessions),
        ] {
            if n == 0 {
                err(k, "must be at least 1".into());
            }
        }
        for (k, d) in [
            ("proxy.connect_timeout", p.connect_timeout),
            ("proxy.request_timeout", p.request_timeout),
            ("proxy.idle_timeout", p.idle_timeout),
            ("proxy.header_timeout", p.header_timeout),
            ("proxy.send_timeout", p.send_timeout),
            ("proxy.body_timeout", p.body_timeout),
            ("directory.timeout", self.directory.timeout),
            ("queue.retry_every", self.queue.retry_every),
            ("jobs.reconcile_every", self.jobs.reconcile_every),
            ("jobs.tier_check_every", self.jobs.tier_check_every),
            ("state.snapshot_every", self.state.snapshot_every),
        ] {
            if d.is_zero() {
                err(k, "must be longer than zero".into());
            }
        }
        if let Some(tls) = &p.tls {
            if tls.cert_file.as_os_str().is_empty() {
                err(
                    "proxy.tls.cert_file",
                    "missing: the PEM certificate chain".into(),
                );
            }
            if tls.key_file.as_os_str().is_empty() {
                err("proxy.tls.key_file", "missing: the PEM private key".into());
            }
        }
        let saml = &self.sso.saml;
        if let Some(file) = &saml.idp_certificate_file {
            match std::fs::read_to_string(file) {
                Err(e) => err(
                    "sso.saml.idp_certificate_file",
                    format!("{}: {e}", file.display()),
                ),
                Ok(pem) => {
                    if let Err(e) = crate::sso::saml::IdpCertificates::from_pem(&pem) {
                        err(
                            "sso.saml.idp_certificate_file",
                            format!("{}: {e}", file.display()),
                        );
                    }
                }
            }
            for (key, v) in [
                ("sso.saml.audience", &saml.audience),
                ("sso.saml.destination", &saml.destination),
            ] {
                if v.as_deref().is_none_or(str::is_empty) {
                    err(
                        key,
                        "missing: needed to verify the IdP's responses (see the example config)"
                            .into(),
                    );
                }
            }
        }
        if self.identity.authorisation_retries > 3 {
            err(
                "identity.authorisation_retries",
                "at most 3 (each repeat is a login attempt at the app)".into(),
            );
        }
        if let Some(c) = &self.cluster {
            let given = [
                c.redis_url.is_some(),
                c.redis_url_env.is_some(),
                c.redis_url_file.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if given != 1 {
                err(
                    "cluster.redis_url",
                    "give exactly one of redis_url, redis_url_env, redis_url_file".into(),
                );
            }
            if let Some(u) = &c.redis_url {
                if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                    err(
                        "cluster.redis_url",
                        "must start with redis:// or rediss://".into(),
                    );
                }
            }
            if c.key_prefix.is_empty() {
                err("cluster.key_prefix", "must not be empty".into());
            }
            if c.lease.get() < std::time::Duration::from_secs(2) {
                err("cluster.lease", "must be at least 2s".into());
            }
        }
        let oidc = &self.sso.oidc;
        if let Some(issuer) = &oidc.issuer {
            match reqwest::Url::parse(issuer) {
                Err(e) => err("sso.oidc.issuer", format!("not a URL: {e}")),
                Ok(u) => {
                    let loopback = matches!(
                        u.host_str(),
                        Some("127.0.0.1") | Some("localhost") | Some("[::1]")
                    );
                    if !(u.scheme() == "https" || (u.scheme() == "http" && loopback)) {
                        err(
                            "sso.oidc.issuer",
                            "must be https (http only to a loopback host)".into(),
                        );
                    }
                }
            }
            if oidc.client_id.trim().is_empty() {
                err(
                    "sso.oidc.client_id",
                    "missing: iumgate's client at the IdP".into(),
                );
            }
            if !oidc.client_secret().is_set() {
                err(
                    "sso.oidc.client_secret_env / client_secret_file",
                    "missing: the client's secret (from the environment or a file)".into(),
                );
            }
            if oidc.username_claim.trim().is_empty() {
                err("sso.oidc.username_claim", "must not be empty".into());
            }
            if let Some(r) = &oidc.redirect_uri {
                let ok = reqwest::Url::parse(r).is_ok_and(|u| {
                    matches!(u.scheme(), "https" | "http")
                        && u.path() == OidcConfig::CALLBACK_PATH
                        && u.query().is_none()
                });
                if !ok {
                    err(
                        "sso.oidc.redirect_uri",
                        format!(
                            "must be an http(s) URL of this proxy ending in {} (iumgate serves its callback there)",
                            OidcConfig::CALLBACK_PATH
                        ),
                    );
                }
            }
            if oidc.start_paths.iter().any(|p| !p.starts_with('/')) {
                err(
                    "sso.oidc.start_paths",
                    "each must be a path starting with /".into(),
                );
            }
        }
        if let Some(ca) = &p.upstream_ca_file {
            if !ca.exists() {
                err(
                    "proxy.upstream_ca_file",
                    format!("{} does not exist", ca.display()),
                );
            }
        }
        if self.admin.listen == p.listen && p.listen.port() != 0 {
            err(
                "admin.listen",
                "must differ from proxy.listen (the admin listener is separate)".into(),
            );
        }
        if self.admin.token_env.is_some() && self.admin.token_file.is_some() {
            err(
                "admin.token_file",
                "give either token_env or token_file, not both".into(),
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(self.log.directives()) {
            err("log.filters", format!("not a valid filter: {e}"));
        }
        let d = &self.directory;
        if let Some(url) = &d.url {
            if let Err(m) = check_http_url(url) {
                err("directory.url", m);
            }
        }
        if d.password_env.is_some() && d.password_file.is_some() {
            err(
                "directory.password_file",
                "give either password_env or password_file, not both".into(),
            );
        }
        if d.token_env.is_some() && d.token_file.is_some() {
            err(
                "directory.token_file",
                "give either token_env or token_file, not both".into(),
            );
        }
        let has_password = d.password_env.is_some() || d.password_file.is_some();
        let has_token = d.token_env.is_some() || d.token_file.is_some();
        if has_password && d.username.is_none() {
            err(
                "directory.username",
                "missing: the service account that the password belongs to".into(),
            );
        }
        if has_password && has_token {
            err(
                "directory.token_env",
                "give either a password or a token, not both".into(),
            );
        }
        if self.directory.kind == Some(DirectoryKind::Crowd) && p.product == Product::Bitbucket {
            err(
                "directory.kind",
                "Bitbucket with Crowd cannot work: Bitbucket does not see group changes made in \
                 Crowd until the next directory sync, so a granted user is still refused. Use \
                 Bitbucket's internal directory or a read/write LDAP directory"
                    .into(),
            );
        }
        let ium = &self.ium;
        let managed = !ium.user_group.is_empty() || !ium.access_group.is_empty();
        if managed {
            if ium.user_group.is_empty() {
                err(
                    "ium.user_group",
                    "missing: the group of casual users".into(),
                );
            }
            if ium.access_group.is_empty() {
                err(
                    "ium.access_group",
                    "missing: the group that carries the licence".into(),
                );
            }
            if !ium.user_group.is_empty() && ium.user_group == ium.access_group {
                err("ium.access_group", "must differ from ium.user_group".into());
            }
            for g in &self.licence.fixed_groups {
                if g.eq_ignore_ascii_case(&ium.user_group)
                    || g.eq_ignore_ascii_case(&ium.access_group)
                {
                    err(
                        "licence.fixed_groups",
                        format!("`{g}` is an IUM group; fixed groups give a fixed licence"),
                    );
                }
            }
            if !has_password && !has_token {
                err(
                    "directory",
                    "no credentials: set username + password_env/password_file, or token_env/token_file"
                        .into(),
                );
            }
        }
        if let Err(m) = parse_hh_mm(&self.jobs.cleanup_at) {
            err("jobs.cleanup_at", m);
        }
        if self.jobs.timezone.is_some() {
            if let Err(m) = parse_timezone(self.jobs.timezone.as_deref()) {
                err(
                    "jobs.timezone",
                    m.trim_start_matches("jobs.timezone: ").to_string(),
                );
            }
        }
        if let Some(url) = &self.alerts.webhook_url {
            if let Err(m) = check_http_url(url) {
                err("alerts.webhook_url", m);
            }
        }
        if let Err(e) = crate::product::ActivityRules::new(
            p.product.profile(),
            &self.activity.include,
            &self.activity.exclude,
        ) {
            err("activity", format!("a rule is not a valid regex: {e}"));
        }
        errs.extend(self.validate_pools());
        errs
    }

    /// Whether the licence gate is on (both IUM groups are set).
    pub fn gate_enabled(&self) -> bool {
        !self.ium.user_group.is_empty() && !self.ium.access_group.is_empty()
    }

    /// The directory's base URL: its own, or the upstream's.
    pub fn directory_url(&self) -> &str {
        self.directory
            .url
            .as_deref()
            .unwrap_or(&self.proxy.upstream)
    }
}

fn check_http_url(s: &str) -> Result<(), String> {
    match s.parse::<http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http") | Some("https")) && u.host().is_some() => {
            Ok(())
        }
        Ok(_) => Err(format!(
            "\"{s}\" is not an http:// or https:// URL with a host"
        )),
        Err(e) => Err(format!("\"{s}\" is not a URL: {e}")),
    }
}

/// Parses `[jobs] timezone`: a fixed offset (`"+01:00"`, `"-05:30"`, `"+02"`,
/// `"UTC"`, `"Z"`) or an IANA name (`"Europe/Berlin"`, daylight saving time
/// included). `None`: the machine's own time zone (`TZ`, `/etc/localtime`).
pub fn parse_timezone(spec: Option<&str>) -> Result<jiff::tz::TimeZone, String> {
    let Some(spec) = spec.map(str::trim) else {
        return Ok(jiff::tz::TimeZone::system());
    };
    if spec.eq_ignore_ascii_case("utc") || spec == "Z" {
        return Ok(jiff::tz::TimeZone::UTC);
    }
    if let Some(rest) = spec.strip_prefix('+').or_else(|| spec.strip_prefix('-')) {
        let sign: i32 = if spec.starts_with('-') { -1 } else { 1 };
        let bad = || {
            format!("jobs.timezone: \"{spec}\" is not an offset like \"+01:00\" or a zone like \"Europe/Berlin\"")
        };
        let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
        let h: i32 = h.parse().map_err(|_| bad())?;
        let m: i32 = m.parse().map_err(|_| bad())?;
        if !(0..=18).contains(&h) || !(0..=59).contains(&m) {
            return Err(bad());
        }
        let offset =
            jiff::tz::Offset::from_seconds(sign * (h * 3600 + m * 60)).map_err(|_| bad())?;
        return Ok(jiff::tz::TimeZone::fixed(offset));
    }
    jiff::tz::TimeZone::get(spec).map_err(|e| {
        format!("jobs.timezone: \"{spec}\" is neither an offset like \"+01:00\" nor a known time zone: {e}")
    })
}

/// Parses `"HH:MM"` into (hour, minute).
pub fn parse_hh_mm(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("\"{s}\" is not a time of day like \"02:00\"");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    let m: u32 = m.trim().parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok((h, m))
}

#[cfg(test)]
mod tests;
