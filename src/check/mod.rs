//! `iumgate check`: the classic misconfigurations of a licence-pooling
//! setup, found and explained before users notice them. Each finding says
//! what was found (the verdict), why (the evidence) and what to do (the fix,
//! one sentence). The same checks run in `iumgate serve` at start-up and with
//! each tier check; their findings become alerts.
//!
//! Every check only reads, except the read-only probe, which re-adds a
//! current member to an IUM group: a no-op on a writable directory.

use crate::alerts::{AlertKey, Alerts};
use crate::config::{Config, DirectoryKind, Tier};
use crate::directory::{Directory, DirectoryError, LicenceInfo, Member};
use crate::product::Product;
use crate::user::UserId;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// A hint worth knowing; nothing is wrong.
    Info,
    /// Could not be verified automatically: the fix says what to check by hand.
    Unverified,
    /// Needs the admin, but nothing is broken yet.
    Warn,
    /// Broken, or about to break things for users.
    Fail,
    /// The check itself could not run (e.g. the app is unreachable).
    Error,
}

impl Verdict {
    fn tag(self) -> &'static str {
        match self {
            Verdict::Pass => " ok ",
            Verdict::Info => "info",
            Verdict::Unverified => " ?? ",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
            Verdict::Error => "ERR ",
        }
    }

    fn needs_admin(self) -> bool {
        matches!(self, Verdict::Warn | Verdict::Fail)
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable name of the check, e.g. `power_users_in_ium_groups`.
    pub check: &'static str,
    pub verdict: Verdict,
    /// What was seen, with the numbers and names.
    pub evidence: String,
    /// What to do, in one sentence (absent when all is well).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The `[pools.<name>]` this finding is about (absent: the default pool,
    /// `[licence]` + `[ium]`, or the whole setup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The alert this finding raises in `iumgate serve` (and resolves when it passes).
    #[serde(skip)]
    pub alert_key: Option<&'static str>,
}

impl Finding {
    fn new(check: &'static str, verdict: Verdict, evidence: impl Into<String>) -> Finding {
        Finding {
            check,
            verdict,
            evidence: evidence.into(),
            fix: None,
            pool: None,
            alert_key: None,
        }
    }
    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
    fn alert(mut self, key: AlertKey) -> Finding {
        self.alert_key = Some(key.as_str());
        self
    }
}

/// Every finding of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    /// 0: all is well; 1: something needs the admin; 2: the check could not run.
    pub fn exit_code(&self) -> i32 {
        if self.findings.iter().any(|f| f.verdict == Verdict::Error) {
            2
        } else if self.findings.iter().any(|f| f.verdict.needs_admin()) {
            1
        } else {
            0
        }
    }

    /// The first finding of `check` (the default pool's, when pools have
    /// one each).
    pub fn get(&self, check: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.check == check)
    }

    /// The finding of `check` about the pool `pool` (`[pools.<pool>]`).
    pub fn get_in(&self, pool: &str, check: &str) -> Option<&Finding> {
        self.findings
            .iter()
            .find(|f| f.check == check && f.pool.as_deref() == Some(pool))
    }

    fn push(&mut self, f: Finding) {
        self.findings.push(f);
    }

    /// The report for a terminal: one block per finding.
    pub fn human(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            match &f.pool {
                Some(pool) => {
                    let _ = writeln!(
                        out,
                        "[{}] {} (pool {pool}): {}",
                        f.verdict.tag(),
                        f.check,
                        f.evidence
                    );
                }
                None => {
                    let _ = writeln!(out, "[{}] {}: {}", f.verdict.tag(), f.check, f.evidence);
                }
            }
            if let Some(fix) = &f.fix {
                let _ = writeln!(out, "       fix: {fix}");
            }
        }
        let summary = match self.exit_code() {
            0 => "all is well",
            1 => "something needs the admin",
            _ => "the check could not run completely",
        };
        let _ = writeln!(out, "{summary}");
        out
    }

    /// Raises an alert for each finding that needs the admin and resolves
    /// the alert of each that passes. Returns how many alerts are raised.
    pub fn to_alerts(&self, alerts: &Alerts, now_ms: u64) -> usize {
        let mut raised = 0;
        for f in &self.findings {
            let Some(key) = f.alert_key else { continue };
            match f.verdict {
                Verdict::Warn | Verdict::Fail | Verdict::Error => {
                    let fix = f.fix.clone().unwrap_or_default();
                    alerts.raise(key, f.evidence.clone(), fix, now_ms);
                    raised += 1;
                }
                Verdict::Pass => {
                    alerts.resolve(key);
                }
                Verdict::Info | Verdict::Unverified => {}
            }
        }
        raised
    }
}

/// The e-mail dark feature that gives unlicensed users notifications back (Jira 8.20.6+).
pub const EMAIL_DARK_FEATURE: &str =
    "com.atlassian.jira.send.email.notifications.to.user.without.application.access.enabled";

/// Runs every check against the app that `cfg` names, through `directory`.
pub async fn run(cfg: &Config, directory: &dyn Directory) -> Report {
    let mut r = Report::default();
    let http = match probe_client(cfg) {
        Ok(c) => c,
        Err(e) => {
            r.push(
                Finding::new("upstream_reachable", Verdict::Error, e)
                    .fix("Fix proxy.upstream_ca_file so iumgate can build its HTTP client."),
            );
            return r;
        }
    };
    check_schedule(&mut r, cfg);
    let upstream = cfg.proxy.upstream.trim_end_matches('/').to_string();
    if !check_upstream(&mut r, &http, &upstream).await {
        return r;
    }
    if !cfg.gate_enabled() {
        r.push(
            Finding::new(
                "ium_groups_configured",
                Verdict::Info,
                "no [ium] groups are configured: iumgate runs as a plain proxy and manages no licences",
            )
            .fix("Set ium.user_group and ium.access_group to manage licences."),
        );
        return r;
    }

    let groups = read_groups(cfg, directory).await;
    let licence = directory.licence(&cfg.licence.application).await;
    if !check_credentials(&mut r, &groups, &licence) {
        return r;
    }
    check_basic_auth(&mut r, cfg, &http).await;
    check_sso(&mut r, cfg, &http).await;
    check_oidc_provider(&mut r, cfg).await;
    check_groups_exist(&mut r, &groups);
    let members = |g: &str| -> &[Member] {
        match groups.get(g) {
            Some(Ok(m)) => m,
            _ => &[],
        }
    };
    let mut fixed: BTreeSet<UserId> = BTreeSet::new();
    for g in &cfg.licence.fixed_groups {
        fixed.extend(
            members(g)
                .iter()
                .filter(|m| m.active)
                .map(|m| m.name.clone()),
        );
    }
    check_power_users(
        &mut r,
        cfg,
        &fixed,
        members(&cfg.ium.user_group),
        members(&cfg.ium.access_group),
    );
    check_read_only(&mut r, cfg, directory, members(&cfg.ium.user_group)).await;
    check_tier(
        &mut r,
        cfg,
        &Keys::default_pool(),
        &fixed,
        members(&cfg.ium.access_group),
        licence.as_ref().ok().cloned().flatten(),
    );
    if !cfg.pools.is_empty() {
        check_pools(&mut r, cfg, directory, &http, &groups).await;
    }
    if cfg.proxy.product == Product::Jira {
        check_browse_users(&mut r, cfg);
        check_email_notifications(&mut r, &http, &upstream).await;
    }
    r
}

/// The nightly cleanup needs a time zone iumgate understands.
fn check_schedule(r: &mut Report, cfg: &Config) {
    let tz = crate::config::parse_timezone(cfg.jobs.timezone.as_deref());
    let f = match tz {
        Ok(tz) => Finding::new(
            "cleanup_schedule",
            Verdict::Pass,
            format!(
                "the nightly cleanup runs at {} ({})",
                cfg.jobs.cleanup_at,
                tz.iana_name().unwrap_or(cfg.jobs.timezone.as_deref().unwrap_or("the machine's local time"))
            ),
        ),
        Err(e) => Finding::new("cleanup_schedule", Verdict::Fail, e)
            .fix("Set jobs.timezone to an offset like \"+01:00\" or a zone like \"Europe/Berlin\", or remove it to use the machine's time zone."),
    };
    r.push(f.alert(AlertKey::CleanupNotScheduled));
}

fn probe_client(cfg: &Config) -> Result<reqwest::Client, String> {
    let t = cfg.directory.timeout.get().max(Duration::from_secs(1));
    let mut b = reqwest::Client::builder()
        .timeout(t)
        .connect_timeout(t)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &cfg.proxy.upstream_ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read proxy.upstream_ca_file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            format!(
                "proxy.upstream_ca_file {}: not PEM certificates: {e}",
                path.display()
            )
        })?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// `GET /status`: every Atlassian DC app answers `{"state":"RUNNING"}` there.
async fn check_upstream(r: &mut Report, http: &reqwest::Client, upstream: &str) -> bool {
    let url = format!("{upstream}/status");
    match http.get(&url).send().await {
        Ok(resp) => {
            let status = resp.status();
            let state = resp
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v.get("state").and_then(|s| s.as_str()).map(str::to_string));
            match state.as_deref() {
                Some("RUNNING") | None if status.is_success() => r.push(
                    Finding::new(
                        "upstream_reachable",
                        Verdict::Pass,
                        format!("GET {url} answered {status}{}", state.map(|s| format!(" ({s})")).unwrap_or_default()),
                    )
                    .alert(AlertKey::UpstreamUnreachable),
                ),
                _ => r.push(
                    Finding::new(
                        "upstream_reachable",
                        Verdict::Warn,
                        format!(
                            "GET {url} answered {status}, state {}",
                            state.as_deref().unwrap_or("unknown")
                        ),
                    )
                    .fix("Wait until the application has started, or check proxy.upstream points at the application itself.")
                    .alert(AlertKey::UpstreamUnreachable),
                ),
            }
            true
        }
        Err(e) => {
            r.push(
                Finding::new("upstream_reachable", Verdict::Error, format!("GET {url} failed: {e}"))
                    .fix("Check proxy.upstream and that the application runs and is reachable from this host.")
                    .alert(AlertKey::UpstreamUnreachable),
            );
            false
        }
    }
}

type Groups = BTreeMap<String, Result<Vec<Member>, DirectoryError>>;

async fn read_groups(cfg: &Config, dir: &dyn Directory) -> Groups {
    let mut names: Vec<&String> = vec![&cfg.ium.user_group, &cfg.ium.access_group];
    names.extend(cfg.licence.fixed_groups.iter());
    names.extend(cfg.sync.source_groups.iter());
    let mut out = Groups::new();
    for g in names {
        if !out.contains_key(g) {
            out.insert(g.clone(), dir.group_members(g).await);
        }
    }
    out
}

/// Valid credentials with admin rights: the group listings and the licence
/// (Jira's application roles need an administrator) must not be refused.
fn check_credentials(
    r: &mut Report,
    groups: &Groups,
    licence: &Result<Option<LicenceInfo>, DirectoryError>,
) -> bool {
    let errors = groups
        .values()
        .filter_map(|g| g.as_ref().err())
        .chain(licence.as_ref().err());
    let mut first_other = None;
    for e in errors {
        match e {
            DirectoryError::BadCredentials => {
                r.push(
                    Finding::new("directory_credentials", Verdict::Fail, e.to_string())
                        .fix("Set [directory] username and password_env/password_file (or token_env/token_file) to a working service account.")
                        .alert(AlertKey::DirectoryBadCredentials),
                );
                return false;
            }
            DirectoryError::BasicAuthDisabled(answer) => {
                r.push(basic_auth_finding(
                    Verdict::Fail,
                    format!("the application refuses the service account's password on API calls ({answer})"),
                ));
                return false;
            }
            DirectoryError::NotAdmin => {
                r.push(
                    Finding::new("directory_credentials", Verdict::Fail, e.to_string())
                        .fix("Give the service account administrator rights (Jira: jira-administrators), which group changes need.")
                        .alert(AlertKey::DirectoryNotAdmin),
                );
                return false;
            }
            DirectoryError::Unavailable { .. } => {
                r.push(
                    Finding::new("directory_credentials", Verdict::Error, e.to_string())
                        .fix("Check [directory] url and that the application's REST API is reachable from iumgate.")
                        .alert(AlertKey::DirectoryUnavailable),
                );
                return false;
            }
            DirectoryError::GroupMissing(_) | DirectoryError::UserMissing(_) => {}
            other => {
                first_other.get_or_insert(other.clone());
            }
        }
    }
    match first_other {
        Some(e) => {
            r.push(
                Finding::new("directory_credentials", Verdict::Warn, format!("the admin REST API answered oddly: {e}"))
                    .fix("Check [directory] kind and url: they must name the application's own REST API."),
            );
        }
        None => r.push(
            Finding::new(
                "directory_credentials",
                Verdict::Pass,
                "the service account may list groups and read the licence (administrator rights)",
            )
            .alert(AlertKey::DirectoryNotAdmin),
        ),
    }
    true
}

/// "Basic authentication disabled", with the fix: a personal access token.
fn basic_auth_finding(verdict: Verdict, evidence: String) -> Finding {
    Finding::new(
        "basic_auth_disabled",
        verdict,
        format!("Basic authentication disabled: {evidence}"),
    )
    .fix("Create a personal access token for the service account and set [directory] token_env or token_file.")
    .alert(AlertKey::DirectoryBasicAuthDisabled)
}

/// A service account with a password, on an app that may block Basic
/// authentication (Jira 11 does by default): `GET /rest/basicauth/1.0/config`
/// says whether it is blocked (`{"block-requests": bool, "allowed-paths",
/// "allowed-users"}`). Blocked yet the password worked means the account is
/// on the allow-list: it works, but one edit of that list away from failing.
/// An app without that API (older, or no admin rights for it) says nothing.
async fn check_basic_auth(r: &mut Report, cfg: &Config, http: &reqwest::Client) {
    let d = &cfg.directory;
    if d.kind_for(cfg.proxy.product) == DirectoryKind::Crowd || d.token().is_set() {
        return;
    }
    let (Some(username), Ok(Some(password))) = (&d.username, d.password().resolve()) else {
        return;
    };
    let url = format!(
        "{}/rest/basicauth/1.0/config",
        cfg.directory_url().trim_end_matches('/')
    );
    let Ok(resp) = http
        .get(&url)
        .basic_auth(username, Some(password.expose()))
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
    else {
        return;
    };
    let status = resp.status().as_u16();
    let body = resp
        .json::<serde_json::Value>()
        .await
        .unwrap_or(serde_json::Value::Null);
    let message = body.get("message").and_then(|m| m.as_str()).unwrap_or("");
    if matches!(status, 401 | 403) && crate::directory::says_basic_auth_disabled(message) {
        r.push(basic_auth_finding(
            Verdict::Fail,
            format!("GET {url} with the service account's password answered {status}: {message}"),
        ));
        return;
    }
    if status != 200 {
        return;
    }
    let blocked = ["block-requests", "blockRequests"]
        .iter()
        .find_map(|k| body.get(*k).and_then(|v| v.as_bool()));
    match blocked {
        Some(true) => r.push(basic_auth_finding(
            Verdict::Warn,
            format!("GET {url} says block-requests: true; the service account's password still works, so it must be on the allow-list (allowed-users or allowed-paths), and fails as soon as it leaves it"),
        )),
        Some(false) => r.push(
            Finding::new(
                "basic_auth_disabled",
                Verdict::Pass,
                format!("Basic authentication is allowed on API calls (GET {url} says block-requests: false)"),
            )
            .alert(AlertKey::DirectoryBasicAuthDisabled),
        ),
        None => {}
    }
}

/// SSO for Data Center's identity providers, as the app lists them. A SAML
/// login is read by iumgate: verified with `[sso.saml]
/// idp_certificate_file`, a claim (a free seat at most) without. An OIDC
/// callback names nobody: iumgate learns those users from the app's answer
/// only. An app that does not answer the list (older versions, no SSO, an
/// account that may not read it) is passed over.
async fn check_sso(r: &mut Report, cfg: &Config, http: &reqwest::Client) {
    let d = &cfg.directory;
    if d.kind_for(cfg.proxy.product) == DirectoryKind::Crowd {
        return;
    }
    let url = format!(
        "{}/rest/authconfig/1.0/idps",
        cfg.directory_url().trim_end_matches('/')
    );
    let req = http
        .get(&url)
        .header(reqwest::header::ACCEPT, "application/json");
    let Some(req) = with_service_account(cfg, req) else {
        return;
    };
    let Ok(resp) = req.send().await else {
        return;
    };
    if resp.status() != reqwest::StatusCode::OK {
        return;
    }
    let Ok(body) = resp.json::<serde_json::Value>().await else {
        return;
    };
    let list = body
        .as_array()
        .or_else(|| {
            ["idps", "results", "values"]
                .iter()
                .find_map(|k| body.get(*k)?.as_array())
        })
        .cloned()
        .unwrap_or_default();
    let (mut saml, mut oidc) = (Vec::new(), Vec::new());
    for idp in &list {
        if idp.get("enabled").and_then(|v| v.as_bool()) == Some(false) {
            continue;
        }
        let kind = ["sso-type", "ssoType", "type"]
            .iter()
            .find_map(|k| idp.get(*k)?.as_str())
            .unwrap_or("")
            .to_ascii_uppercase();
        let name = idp
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or("unnamed")
            .to_string();
        match kind.as_str() {
            "OIDC" | "OPENID" | "OPENID_CONNECT" => oidc.push(name),
            "SAML" => saml.push(name),
            _ => {}
        }
    }
    if !oidc.is_empty() {
        let f = if cfg.sso.oidc.issuer.is_some() {
            Finding::new(
                "sso_oidc",
                Verdict::Pass,
                format!(
                    "the app signs users in through OIDC ({}), and iumgate signs them in first as a relying party of the IdP ([sso.oidc]; see sso_oidc_provider)",
                    oidc.join(", ")
                ),
            )
        } else {
            Finding::new(
                "sso_oidc",
                Verdict::Warn,
                format!(
                    "the app signs users in through OIDC ({}): its callback names nobody, so iumgate learns these users from the app's answer only and admits them then (the browser repeats the request), never before the app's login",
                    oidc.join(", ")
                ),
            )
            .fix("Set [sso.oidc] issuer, client_id and client_secret_file (see config/iumgate.example.toml) and register iumgate's callback, https://<your site>/iumgate/oidc/callback, at the IdP: iumgate then signs OIDC users in before the app's flow and their seat is in place when the app's callback comes.")
        };
        r.push(f);
    }
    if !saml.is_empty() {
        let verified = cfg.sso.saml.idp_certificate_file.is_some();
        let f = if verified {
            Finding::new(
                "sso_saml",
                Verdict::Pass,
                format!(
                    "the app signs users in through SAML ({}), and iumgate verifies the IdP's responses ([sso.saml] idp_certificate_file)",
                    saml.join(", ")
                ),
            )
        } else {
            Finding::new(
                "sso_saml",
                Verdict::Warn,
                format!(
                    "the app signs users in through SAML ({}), but iumgate cannot verify the IdP's responses: a SAML login is a claim that may take a free seat only, never an idle colleague's, and never waits",
                    saml.join(", ")
                ),
            )
            .fix("Set [sso.saml] idp_certificate_file (the IdP's signing certificate, PEM), audience and destination (see config/iumgate.example.toml).")
        };
        r.push(f);
    }
}

/// With `[sso.oidc]`: iumgate reads the IdP's discovery document and keys
/// as `serve` will (the client secret is only read, not sent: the token
/// endpoint is used by sign-ins only).
async fn check_oidc_provider(r: &mut Report, cfg: &Config) {
    let o = &cfg.sso.oidc;
    let Some(issuer) = &o.issuer else { return };
    let secret = match o.client_secret().resolve() {
        Ok(Some(s)) => s,
        Ok(None) => {
            r.push(
                Finding::new(
                    "sso_oidc_provider",
                    Verdict::Fail,
                    "[sso.oidc] has an issuer but no client secret".to_string(),
                )
                .fix("Set [sso.oidc] client_secret_file (or client_secret_env) to iumgate's client secret at the IdP."),
            );
            return;
        }
        Err(e) => {
            r.push(
                Finding::new(
                    "sso_oidc_provider",
                    Verdict::Fail,
                    format!(
                        "[sso.oidc] client secret: {}",
                        crate::proxy::error_chain(&e)
                    ),
                )
                .fix("Make the secret's file readable by iumgate's user, or set the variable."),
            );
            return;
        }
    };
    let http = match crate::sso::oidc::http_client() {
        Ok(c) => c,
        Err(e) => {
            r.push(Finding::new(
                "sso_oidc_provider",
                Verdict::Error,
                format!("no HTTP client: {}", crate::proxy::error_chain(&e)),
            ));
            return;
        }
    };
    match crate::sso::oidc::Provider::discover(issuer, &o.client_id, secret.expose(), http).await
    {
        Ok(p) => r.push(Finding::new(
            "sso_oidc_provider",
            Verdict::Pass,
            format!(
                "the OIDC IdP {issuer} answers discovery and publishes its keys; iumgate signs OIDC users in as client {} ({:?} client authentication), taking the user from the {} claim",
                p.client_id(),
                p.client_auth(),
                o.username_claim
            ),
        )),
        Err(e) => r.push(
            Finding::new(
                "sso_oidc_provider",
                Verdict::Fail,
                format!(
                    "the OIDC IdP {issuer} cannot be used: {}",
                    crate::proxy::error_chain(&e)
                ),
            )
            .fix("Set [sso.oidc] issuer exactly as the IdP's /.well-known/openid-configuration names it (https), and make sure iumgate can reach it. Until discovery succeeds, serve forwards OIDC start pages and learns the users from the app's answer only."),
        ),
    }
}

fn check_groups_exist(r: &mut Report, groups: &Groups) {
    let missing: Vec<&str> = groups
        .iter()
        .filter(|(_, v)| matches!(v, Err(DirectoryError::GroupMissing(_))))
        .map(|(k, _)| k.as_str())
        .collect();
    if missing.is_empty() {
        let listed: Vec<String> = groups
            .iter()
            .map(|(k, v)| format!("{k} ({})", v.as_ref().map_or(0, Vec::len)))
            .collect();
        r.push(
            Finding::new(
                "groups_exist",
                Verdict::Pass,
                format!("all groups exist: {}", listed.join(", ")),
            )
            .alert(AlertKey::DirectoryGroupMissing),
        );
    } else {
        r.push(
            Finding::new(
                "groups_exist",
                Verdict::Fail,
                format!("these groups do not exist in the application: {}", missing.join(", ")),
            )
            .fix("Create the groups in the application's user directory, or correct their names in [ium], [licence] or [sync].")
            .alert(AlertKey::DirectoryGroupMissing),
        );
    }
}

fn check_power_users(
    r: &mut Report,
    cfg: &Config,
    fixed: &BTreeSet<UserId>,
    user_members: &[Member],
    access_members: &[Member],
) {
    let in_ium: BTreeSet<&UserId> = user_members
        .iter()
        .chain(access_members)
        .map(|m| &m.name)
        .collect();
    let both: Vec<&str> = fixed
        .iter()
        .filter(|u| in_ium.contains(u))
        .map(UserId::as_str)
        .collect();
    if both.is_empty() {
        r.push(
            Finding::new(
                "power_users_in_ium_groups",
                Verdict::Pass,
                format!(
                    "no member of {} is also in {} or {}",
                    cfg.licence.fixed_groups.join(", "),
                    cfg.ium.user_group,
                    cfg.ium.access_group
                ),
            )
            .alert(AlertKey::PowerUserInIumGroup),
        );
        return;
    }
    let shown: Vec<&str> = both.iter().take(20).copied().collect();
    r.push(
        Finding::new(
            "power_users_in_ium_groups",
            Verdict::Fail,
            format!(
                "{} user(s) hold a fixed licence and are also in an IUM group (this causes \"waiting screen for every user\" and \"users not removed\"): {}{}",
                both.len(),
                shown.join(", "),
                if both.len() > shown.len() { ", …" } else { "" }
            ),
        )
        .fix(format!(
            "Remove these users from {} and {} (the nightly cleanup does it, or remove them by hand).",
            cfg.ium.user_group, cfg.ium.access_group
        ))
        .alert(AlertKey::PowerUserInIumGroup),
    );
}

const READ_ONLY_FIX: &str = "Make the user directory read/write, or set it to \"Read Only, with Local Groups\" and create the IUM groups as local groups (Bitbucket with Crowd cannot work: use Bitbucket's own directory).";

/// A read-only directory is seen in the app's answer to a write: re-adding a
/// current member changes nothing on a writable directory.
async fn check_read_only(
    r: &mut Report,
    cfg: &Config,
    dir: &dyn Directory,
    user_members: &[Member],
) {
    if cfg.proxy.product == Product::Bitbucket
        && cfg.directory.kind_for(cfg.proxy.product) == DirectoryKind::Crowd
    {
        r.push(
            Finding::new("directory_writable", Verdict::Fail, "Bitbucket with a Crowd directory: Bitbucket sees group changes made in Crowd only at its next sync")
                .fix(READ_ONLY_FIX)
                .alert(AlertKey::DirectoryReadOnly),
        );
        return;
    }
    // Only ever the user group: it carries no licence. A member of the access
    // group read a moment ago may have lost the seat since (logout, eviction);
    // re-adding them there would grant a licence behind the pool's back.
    let probe = user_members
        .first()
        .map(|m| (&cfg.ium.user_group, m.name.clone()));
    let Some((group, user)) = probe else {
        r.push(
            Finding::new(
                "directory_writable",
                Verdict::Unverified,
                "the IUM user group is empty: there is no member to re-add as a harmless write test",
            )
            .fix("Check by hand that the IUM groups are writable (a read/write directory or \"Read Only, with Local Groups\")."),
        );
        return;
    };
    match dir.add_to_group(&user, group).await {
        Ok(()) => r.push(
            Finding::new(
                "directory_writable",
                Verdict::Pass,
                format!("re-adding member `{user}` to {group} was accepted: the IUM groups are writable"),
            )
            .alert(AlertKey::DirectoryReadOnly),
        ),
        Err(e @ DirectoryError::ReadOnly(_)) => r.push(
            Finding::new(
                "directory_writable",
                Verdict::Fail,
                format!("re-adding member `{user}` to {group} was refused: {e}"),
            )
            .fix(READ_ONLY_FIX)
            .alert(AlertKey::DirectoryReadOnly),
        ),
        Err(e) => r.push(
            Finding::new(
                "directory_writable",
                Verdict::Unverified,
                format!("re-adding member `{user}` to {group} failed, so writability is unknown: {e}"),
            )
            .fix("Check by hand that the IUM groups are writable (a read/write directory or \"Read Only, with Local Groups\")."),
        ),
    }
}

/// The config keys a pool's findings name: `[licence]`'s for the default
/// pool, `[pools.<name>]`'s for the others.
struct Keys {
    tier: String,
    application: String,
    fixed_groups: String,
}

impl Keys {
    fn default_pool() -> Keys {
        Keys {
            tier: "licence.tier".into(),
            application: "licence.application".into(),
            fixed_groups: "licence.fixed_groups".into(),
        }
    }

    fn pool(name: &str) -> Keys {
        Keys {
            tier: format!("pools.{name}.tier"),
            application: format!("pools.{name}.application"),
            fixed_groups: format!("pools.{name}.fixed_groups"),
        }
    }
}

fn check_tier(
    r: &mut Report,
    cfg: &Config,
    keys: &Keys,
    fixed: &BTreeSet<UserId>,
    access_members: &[Member],
    licence: Option<LicenceInfo>,
) {
    let app_seats = licence.as_ref().and_then(|l| l.seats);
    let tier = match (cfg.licence.tier, app_seats) {
        (Tier::Fixed(n), _) => n,
        (Tier::Auto, Some(n)) => n,
        (Tier::Auto, None) => {
            r.push(
                Finding::new(
                    "tier_arithmetic",
                    Verdict::Fail,
                    format!("{} = \"auto\" but the application `{}` reports no seat count", keys.tier, cfg.licence.application),
                )
                .fix(format!("Set {} to the number of users of the licence, or {} to the right application role.", keys.tier, keys.application))
                .alert(AlertKey::TierExceeded),
            );
            return;
        }
    };
    let fixed_n = u32::try_from(fixed.len()).unwrap_or(u32::MAX);
    let reserved = cfg.licence.reserved;
    let shared = tier.saturating_sub(fixed_n).saturating_sub(reserved);
    let holders = access_members
        .iter()
        .filter(|m| m.active && !fixed.contains(&m.name))
        .count();
    if fixed_n.saturating_add(reserved) > tier {
        r.push(
            Finding::new(
                "tier_arithmetic",
                Verdict::Fail,
                format!("{fixed_n} fixed-licence users + {reserved} reserved exceed the tier of {tier}: no seat is left to share"),
            )
            .fix("Move power users into the IUM user group, or buy a larger tier.")
            .alert(AlertKey::TierExceeded),
        );
    } else {
        r.push(
            Finding::new(
                "tier_arithmetic",
                Verdict::Pass,
                format!("tier {tier} = {fixed_n} fixed + {reserved} reserved + {shared} shared seats; {holders} shared seats are held"),
            )
            .alert(AlertKey::TierExceeded),
        );
    }

    // The app's own view, where its API gives one.
    let Some(l) = licence else { return };
    let mut problems = Vec::new();
    let mut verdict = Verdict::Pass;
    let mut fix = None;
    if let (Some(seats), Some(used)) = (l.seats, l.used) {
        if used > seats {
            verdict = Verdict::Fail;
            problems.push(format!("the application counts {used} licensed users against {seats} seats and refuses work until that falls"));
            fix = Some("Remove users from the licensed groups now (the IUM access group first) until the count is within the tier.".to_string());
        }
    }
    if let (Tier::Fixed(n), Some(seats)) = (cfg.licence.tier, l.seats) {
        if n != seats {
            verdict = verdict.max(Verdict::Warn);
            problems.push(format!(
                "{} is {n} but the application reports {seats} seats",
                keys.tier
            ));
            fix.get_or_insert(format!(
                "Set {} = {seats}, or \"auto\" to read it from the application.",
                keys.tier
            ));
        }
    }
    if l.groups
        .iter()
        .any(|g| g.eq_ignore_ascii_case(&cfg.ium.user_group))
    {
        verdict = Verdict::Fail;
        problems.push(format!(
            "the IUM user group {} gives application access, so every casual user holds a licence",
            cfg.ium.user_group
        ));
        fix.get_or_insert(format!(
            "Remove {} from the application's licensed groups; only {} must carry access.",
            cfg.ium.user_group, cfg.ium.access_group
        ));
    }
    let uncounted: Vec<&str> = l
        .groups
        .iter()
        .filter(|g| {
            !g.eq_ignore_ascii_case(&cfg.ium.access_group)
                && !g.eq_ignore_ascii_case(&cfg.ium.user_group)
                && !cfg
                    .licence
                    .fixed_groups
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(g))
        })
        .map(String::as_str)
        .collect();
    if !uncounted.is_empty() {
        verdict = verdict.max(Verdict::Warn);
        problems.push(format!(
            "{} give(s) application access but is not in {}, so its members are not counted",
            uncounted.join(", "),
            keys.fixed_groups
        ));
        fix.get_or_insert(format!(
            "Add these groups to {} so their users are counted against the tier.",
            keys.fixed_groups
        ));
    }
    let mut f = if problems.is_empty() {
        Finding::new(
            "tier_application",
            Verdict::Pass,
            format!(
                "the application reports {} of {} seats in use",
                l.used.map_or("?".into(), |u| u.to_string()),
                l.seats.map_or("unlimited".into(), |s| s.to_string())
            ),
        )
    } else {
        Finding::new("tier_application", verdict, problems.join("; "))
    };
    f.fix = fix;
    r.push(f.alert(AlertKey::LicenceMismatch));
}

/// How many users a finding names at most.
const NAMED_AT_MOST: usize = 20;

/// `a, b, c` of at most [`NAMED_AT_MOST`] names, `, …` when there are more.
fn named(users: &[&str]) -> String {
    let shown: Vec<&str> = users.iter().take(NAMED_AT_MOST).copied().collect();
    format!(
        "{}{}",
        shown.join(", "),
        if users.len() > shown.len() {
            ", …"
        } else {
            ""
        }
    )
}

/// One seat pool as the cross-pool check sees it.
struct PoolView<'a> {
    name: &'a str,
    application: &'a str,
    fixed_groups: &'a [String],
    user_group: &'a str,
    access_group: &'a str,
}

/// Every `[pools.<name>]`: its application role exists (and gives the tier
/// with `tier = "auto"`), its groups exist, its own arithmetic and power
/// users as for the default pool; then, over all pools, no user holding a
/// fixed licence of one pool's application sits in another pool's IUM
/// groups. The pools' findings carry their pool's name and raise no alert
/// here: each pool's gate runs these checks on its own config in `serve`.
/// (Config errors — overlapping groups, a pool without needs — stop config
/// loading before any check runs.)
async fn check_pools(
    r: &mut Report,
    cfg: &Config,
    directory: &dyn Directory,
    http: &reqwest::Client,
    default_groups: &Groups,
) {
    let mut groups = default_groups.clone();
    let mut role_keys: Option<Option<Vec<String>>> = None;
    for name in cfg.pools.keys() {
        let Some(pcfg) = cfg.pool_config(name) else {
            continue;
        };
        let start = r.findings.len();
        let keys = Keys::pool(name);
        let application = pcfg.licence.application.clone();
        let licence = directory.licence(&application).await;
        let licence = match licence {
            Ok(Some(info)) => {
                let seats = info
                    .seats
                    .map_or_else(|| "unlimited seats".to_string(), |n| format!("{n} seats"));
                r.push(Finding::new(
                    "pool_application",
                    Verdict::Pass,
                    format!(
                        "the application role `{application}` exists: {seats}, access through {}",
                        if info.groups.is_empty() {
                            "no group".to_string()
                        } else {
                            info.groups.join(", ")
                        }
                    ),
                ));
                Some(info)
            }
            Ok(None) => {
                r.push(
                    Finding::new(
                        "pool_application",
                        Verdict::Unverified,
                        format!("the application tells nothing about the licence of `{application}`"),
                    )
                    .fix(format!(
                        "Check by hand that `{application}` is the application whose seats this pool hands out, and set {} to its number of users.",
                        keys.tier
                    )),
                );
                None
            }
            Err(e) => {
                if role_keys.is_none() {
                    role_keys = Some(application_role_keys(cfg, http).await);
                }
                let known = role_keys.clone().flatten();
                let missing = known
                    .as_ref()
                    .is_some_and(|k| !k.iter().any(|k| k == &application));
                let f = match (&known, missing) {
                    (Some(k), true) => Finding::new(
                        "pool_application",
                        Verdict::Fail,
                        format!(
                            "the application has no role `{application}`; it has: {}",
                            k.join(", ")
                        ),
                    )
                    .fix(format!(
                        "Set {} to the key of the application role whose seats this pool hands out — this Jira has {}.",
                        keys.application,
                        k.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                    )),
                    _ => Finding::new(
                        "pool_application",
                        Verdict::Fail,
                        format!("cannot read the application role `{application}`: {e}"),
                    )
                    .fix(format!(
                        "Set {} to the key of the application role whose seats this pool hands out (Jira administration → Applications → Application access), and check that the service account may read it.",
                        keys.application
                    )),
                };
                r.push(f);
                None
            }
        };
        // Its groups: IUM pair and fixed groups.
        let mut names: Vec<&String> = vec![&pcfg.ium.user_group, &pcfg.ium.access_group];
        names.extend(pcfg.licence.fixed_groups.iter());
        let mut own = Groups::new();
        for g in names {
            if !own.contains_key(g) {
                let m = match groups.get(g) {
                    Some(m) => m.clone(),
                    None => directory.group_members(g).await,
                };
                groups.insert(g.clone(), m.clone());
                own.insert(g.clone(), m);
            }
        }
        check_groups_exist(r, &own);
        if let Some(f) = r.findings.last_mut() {
            if f.verdict == Verdict::Fail {
                f.fix = Some(format!(
                    "Create the groups in the application's user directory, or correct their names in [pools.{name}]."
                ));
            }
        }
        let members = |g: &str| -> &[Member] {
            match own.get(g) {
                Some(Ok(m)) => m,
                _ => &[],
            }
        };
        let fixed = active_members(&pcfg.licence.fixed_groups, &own);
        check_power_users(
            r,
            &pcfg,
            &fixed,
            members(&pcfg.ium.user_group),
            members(&pcfg.ium.access_group),
        );
        if licence.is_some() || matches!(pcfg.licence.tier, Tier::Fixed(_)) {
            check_tier(
                r,
                &pcfg,
                &keys,
                &fixed,
                members(&pcfg.ium.access_group),
                licence,
            );
        }
        for f in &mut r.findings[start..] {
            f.pool = Some(name.clone());
            f.alert_key = None;
        }
    }
    check_power_users_across_pools(r, cfg, &groups);
}

/// The active members of `names` (groups not read count as empty).
fn active_members(names: &[String], groups: &Groups) -> BTreeSet<UserId> {
    let mut out = BTreeSet::new();
    for g in names {
        if let Some(Ok(m)) = groups.get(g) {
            out.extend(m.iter().filter(|m| m.active).map(|m| m.name.clone()));
        }
    }
    out
}

/// A power user of one application — a member of its pool's fixed groups —
/// inside another pool's IUM groups: they take that other pool's shared
/// seats although the site made them a power user, which is rarely meant
/// (the tool this project stands in for calls it a misconfiguration).
fn check_power_users_across_pools(r: &mut Report, cfg: &Config, groups: &Groups) {
    let mut pools = vec![PoolView {
        name: crate::config::DEFAULT_POOL,
        application: &cfg.licence.application,
        fixed_groups: &cfg.licence.fixed_groups,
        user_group: &cfg.ium.user_group,
        access_group: &cfg.ium.access_group,
    }];
    pools.extend(cfg.pools.iter().map(|(name, p)| PoolView {
        name,
        application: &p.application,
        fixed_groups: &p.fixed_groups,
        user_group: &p.user_group,
        access_group: &p.access_group,
    }));
    let mut found = false;
    for a in &pools {
        let fixed = active_members(a.fixed_groups, groups);
        for b in pools.iter().filter(|b| b.name != a.name) {
            // A power user of both pools is b's own case
            // (power_users_in_ium_groups).
            let fixed_b = active_members(b.fixed_groups, groups);
            let in_b: BTreeSet<&UserId> = [b.user_group, b.access_group]
                .iter()
                .filter_map(|g| groups.get(*g)?.as_ref().ok())
                .flatten()
                .map(|m| &m.name)
                .collect();
            let users: Vec<&str> = fixed
                .iter()
                .filter(|u| in_b.contains(u) && !fixed_b.contains(*u))
                .map(UserId::as_str)
                .collect();
            if users.is_empty() {
                continue;
            }
            found = true;
            let mut f = Finding::new(
                "power_users_in_other_pools",
                Verdict::Warn,
                format!(
                    "{} user(s) hold a fixed `{}` licence (pool {}: {}) and are also in pool {}'s IUM groups ({}, {}), so they take its shared `{}` seats: {}",
                    users.len(),
                    a.application,
                    a.name,
                    a.fixed_groups.join(", "),
                    b.name,
                    b.user_group,
                    b.access_group,
                    b.application,
                    named(&users)
                ),
            )
            .fix(format!(
                "Give them a fixed `{}` licence too (add them to {} and remove them from {} and {}), or, if they are casual users, remove them from {}.",
                b.application,
                b.fixed_groups.first().map_or("its fixed groups", String::as_str),
                b.user_group,
                b.access_group,
                a.fixed_groups.join(", ")
            ));
            if b.name != crate::config::DEFAULT_POOL {
                f.pool = Some(b.name.to_string());
            }
            r.push(f);
        }
    }
    if !found {
        r.push(Finding::new(
            "power_users_in_other_pools",
            Verdict::Pass,
            format!(
                "no user holding a fixed licence of one pool's application is in another pool's IUM groups ({} pools)",
                pools.len()
            ),
        ));
    }
}

/// The keys of the application roles Jira has (`GET
/// /rest/api/2/applicationrole`), for a fix that names them; None when
/// they cannot be read (another product, Crowd, no credentials, an error).
async fn application_role_keys(cfg: &Config, http: &reqwest::Client) -> Option<Vec<String>> {
    if cfg.proxy.product != Product::Jira
        || cfg.directory.kind_for(cfg.proxy.product) == DirectoryKind::Crowd
    {
        return None;
    }
    let url = format!(
        "{}/rest/api/2/applicationrole",
        cfg.directory_url().trim_end_matches('/')
    );
    let req = with_service_account(
        cfg,
        http.get(&url)
            .header(reqwest::header::ACCEPT, "application/json"),
    )?;
    let resp = req.send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let roles: Vec<serde_json::Value> = resp.json().await.ok()?;
    Some(
        roles
            .iter()
            .filter_map(|r| r.get("key")?.as_str().map(str::to_string))
            .collect(),
    )
}

/// `req` with the service account's credentials (a token first, else the
/// password); None when neither resolves.
fn with_service_account(
    cfg: &Config,
    req: reqwest::RequestBuilder,
) -> Option<reqwest::RequestBuilder> {
    let d = &cfg.directory;
    match (d.token().resolve(), &d.username, d.password().resolve()) {
        (Ok(Some(token)), _, _) => Some(req.bearer_auth(token.expose())),
        (_, Some(user), Ok(Some(password))) => Some(req.basic_auth(user, Some(password.expose()))),
        _ => None,
    }
}

/// Jira's REST API does not say which groups hold a global permission, so
/// this one is a reminder with the exact place to look.
fn check_browse_users(r: &mut Report, cfg: &Config) {
    r.push(
        Finding::new(
            "browse_users_permission",
            Verdict::Unverified,
            "Jira's REST API does not tell which groups hold the global \"Browse users and groups\" permission; without it IUM users cannot @mention anyone",
        )
        .fix(format!(
            "In Jira administration → System → Global permissions, grant \"Browse users and groups\" to {} (Jira Service Management also needs the \"Service Desk Team\" role).",
            cfg.ium.user_group
        )),
    );
}

/// Parses `8.20.6` (or the `versionNumbers` array) into (major, minor, patch).
fn parse_version(v: &serde_json::Value) -> Option<(u64, u64, u64)> {
    if let Some(nums) = v.get("versionNumbers").and_then(|n| n.as_array()) {
        let n: Vec<u64> = nums.iter().filter_map(|x| x.as_u64()).collect();
        if !n.is_empty() {
            return Some((
                n[0],
                n.get(1).copied().unwrap_or(0),
                n.get(2).copied().unwrap_or(0),
            ));
        }
    }
    let s = v.get("version")?.as_str()?;
    let mut it = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let patch = it.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((major, minor, patch))
}

/// Since Jira 8.19 unlicensed users get no e-mail notifications; 8.20.6+
/// brings them back with a dark feature.
async fn check_email_notifications(r: &mut Report, http: &reqwest::Client, upstream: &str) {
    let url = format!("{upstream}/rest/api/2/serverInfo");
    let version = match http.get(&url).send().await {
        Ok(resp) if resp.status().is_success() => resp.json::<serde_json::Value>().await.ok(),
        _ => None,
    };
    let Some((major, minor, patch)) = version.as_ref().and_then(parse_version) else {
        r.push(
            Finding::new("email_notifications", Verdict::Unverified, format!("could not read Jira's version from {url}"))
                .fix(format!("On Jira 8.20.6 or later, enable the dark feature {EMAIL_DARK_FEATURE} so IUM users without a seat still get e-mail notifications.")),
        );
        return;
    };
    let v = (major, minor, patch);
    let shown = format!("{major}.{minor}.{patch}");
    let f = if v < (8, 19, 0) {
        Finding::new(
            "email_notifications",
            Verdict::Pass,
            format!("Jira {shown} still e-mails users without application access"),
        )
    } else if v < (8, 20, 6) {
        Finding::new(
            "email_notifications",
            Verdict::Info,
            format!("Jira {shown} sends no e-mail notifications to users without a seat, and has no switch to change it"),
        )
        .fix("Upgrade to Jira 8.20.6 or later and enable the e-mail dark feature, or accept that idle IUM users get no notifications.")
    } else {
        Finding::new(
            "email_notifications",
            Verdict::Info,
            format!("Jira {shown} sends no e-mail notifications to users without a seat unless a dark feature is on (its state is not readable over REST)"),
        )
        .fix(format!("In Jira administration, open /secure/admin/SiteDarkFeatures!default.jspa and enable {EMAIL_DARK_FEATURE}."))
    };
    r.push(f);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_both_shapes() {
        let v = serde_json::json!({"version": "8.20.6", "versionNumbers": [8, 20, 6]});
        assert_eq!(parse_version(&v), Some((8, 20, 6)));
        let v = serde_json::json!({"version": "9.12.0-SNAPSHOT"});
        assert_eq!(parse_version(&v), Some((9, 12, 0)));
        assert_eq!(parse_version(&serde_json::json!({})), None);
    }

    #[test]
    fn exit_codes_follow_the_worst_verdict() {
        let mut r = Report::default();
        r.push(Finding::new("a", Verdict::Pass, "fine"));
        r.push(Finding::new("b", Verdict::Info, "hint"));
        r.push(Finding::new("c", Verdict::Unverified, "by hand"));
        assert_eq!(r.exit_code(), 0);
        r.push(Finding::new("d", Verdict::Warn, "hm"));
        assert_eq!(r.exit_code(), 1);
        r.push(Finding::new("e", Verdict::Error, "down"));
        assert_eq!(r.exit_code(), 2);
    }

    #[test]
    fn findings_raise_and_resolve_their_alerts() {
        let alerts = Alerts::default();
        let mut r = Report::default();
        r.push(
            Finding::new("x", Verdict::Fail, "broken")
                .fix("mend it")
                .alert(AlertKey::LicenceMismatch),
        );
        assert_eq!(r.to_alerts(&alerts, 1), 1);
        assert!(alerts.is_active("licence_mismatch"));
        let mut ok = Report::default();
        ok.push(Finding::new("x", Verdict::Pass, "fine").alert(AlertKey::LicenceMismatch));
        assert_eq!(ok.to_alerts(&alerts, 2), 0);
        assert!(!alerts.is_active("licence_mismatch"));
    }
}
