//! Per-app facts (../shared/ATLASSIAN.md): how a login looks, which cookies
//! carry the session, what counts as activity, how logout looks.
//!
//! Pure data and pure functions. The gate and the pool stay product-neutral;
//! everything that differs between Jira, Confluence and Bitbucket lives here
//! (and in the product's directory client). The simulator may use these facts
//! too — but never the gate's decisions.

use http::HeaderName;
use regex::RegexSet;

/// The user the app served (the response header of every Atlassian app).
pub const X_AUSERNAME: HeaderName = HeaderName::from_static("x-ausername");
/// Why a login failed (Seraph's response header).
pub const X_SERAPH_LOGINREASON: HeaderName = HeaderName::from_static("x-seraph-loginreason");

/// Headers only the app may speak (who is logged in, how a login went): a
/// client sending them is trying to impersonate someone. Handed to the proxy
/// as the list it strips from every request.
pub static UPSTREAM_ONLY: [HeaderName; 4] = [
    X_AUSERNAME,
    HeaderName::from_static("x-auserid"),
    HeaderName::from_static("x-asessionid"),
    X_SERAPH_LOGINREASON,
];
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    #[default]
    Jira,
    Confluence,
    Bitbucket,
}

impl Product {
    pub fn name(self) -> &'static str {
        match self {
            Product::Jira => "jira",
            Product::Confluence => "confluence",
            Product::Bitbucket => "bitbucket",
        }
    }

    pub fn profile(self) -> &'static Profile {
        match self {
            Product::Jira => &JIRA,
            Product::Confluence => &CONFLUENCE,
            Product::Bitbucket => &BITBUCKET,
        }
    }
}

impl std::str::FromStr for Product {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "jira" => Ok(Product::Jira),
            "confluence" => Ok(Product::Confluence),
            "bitbucket" => Ok(Product::Bitbucket),
            other => Err(format!(
                "unknown product `{other}`: expected jira, confluence or bitbucket"
            )),
        }
    }
}

/// A login form: `POST path` with the username in `user_field`.
#[derive(Debug, Clone, Copy)]
pub struct LoginForm {
    pub path: &'static str,
    pub user_field: &'static str,
    /// The form field that carries where to go after the login.
    pub destination_field: &'static str,
}

/// Everything the proxy needs to know about one app.
#[derive(Debug)]
pub struct Profile {
    pub product: Product,
    /// Cookies that name a session (short-lived).
    pub session_cookies: &'static [&'static str],
    /// Remember-me cookies (long-lived: a returning user carries only this).
    pub remember_cookies: &'static [&'static str],
    /// Form logins (`application/x-www-form-urlencoded`).
    pub login_forms: &'static [LoginForm],
    /// JSON login: `POST path` with `{"username": …}`; `DELETE path` logs out.
    pub json_login: Option<&'static str>,
    /// The platform's login page of today's versions (Jira 10, Confluence 9,
    /// Bitbucket 9): `POST` with JSON `{"username","password","rememberMe",
    /// "targetUrl"}`; 200 with a session, 401 refused, 412 when the user is
    /// enrolled in two-step verification.
    pub platform_logins: &'static [&'static str],
    /// Its second step: `POST` with JSON `{"code"}` on the session the first
    /// step handed out; the app checks application access again then.
    pub second_steps: &'static [&'static str],
    /// SSO for Data Center's SAML consumer: the IdP's browser form posts
    /// `SAMLResponse` (and `RelayState`) here.
    pub saml_consumer: &'static str,
    /// Where a browser starts single sign-on (the IdP's login, then back).
    pub sso_start: &'static str,
    /// Paths that log the user out (any method).
    pub logout_paths: &'static [&'static str],
    /// Prefixes of SSO callbacks: the user is learned from the response only.
    pub sso_callbacks: &'static [&'static str],
    /// Where a browser logs in (used to send a waiter back after admission).
    pub login_page: &'static str,
    /// The query parameter of `login_page` that carries the destination.
    pub login_destination_param: &'static str,
    /// Default activity rules, matched against `"METHOD /path"`.
    pub activity_include: &'static [&'static str],
    /// Default non-activity rules (win over the includes).
    pub activity_exclude: &'static [&'static str],
    /// Paths whose requests are git over HTTP (plain-text answers for the CLI).
    pub git_prefixes: &'static [&'static str],
    /// Page texts of a right password without application access (used when
    /// the login answer carries no `X-Seraph-LoginReason`; *unconfirmed*
    /// wording, extended by `[identity] no_permission_texts`).
    pub no_permission_texts: &'static [&'static str],
    /// A REST path that names the current user of a session (JSON field
    /// `username`), for apps whose `X-AUSERNAME` is not confirmed.
    pub whoami: Option<&'static str>,
}

/// The platform login of Jira 10, Confluence 9 and Bitbucket 9 (both paths).
const PLATFORM_LOGINS: &[&str] = &[
    "/rest/tsv/latest/authenticate",
    "/rest/tsv/1.0/authenticate",
];

/// Its second step: a TOTP code or a one-time recovery code.
const SECOND_STEPS: &[&str] = &[
    "/rest/tsv/latest/authenticate/totp-code",
    "/rest/tsv/latest/authenticate/recovery-code",
    "/rest/tsv/1.0/authenticate/totp-code",
    "/rest/tsv/1.0/authenticate/recovery-code",
];

/// Static resources, polling and analytics are never activity, whatever the app.
const COMMON_EXCLUDE: &[&str] = &[
    r"^[A-Z]+ /s/",
    r"^[A-Z]+ /images/",
    r"^[A-Z]+ /download/resources/",
    r"^[A-Z]+ /rest/mywork/.*/notification/count",
    r"^[A-Z]+ /rest/analytics/",
    r"^[A-Z]+ /rest/webResources/",
    r"^[A-Z]+ /rest/servicedesk/.*/sla",
    r"^[A-Z]+ /rest/servicedeskapi/.*/sla",
    r"^[A-Z]+ /favicon\.ico",
];

pub static JIRA: Profile = Profile {
    product: Product::Jira,
    session_cookies: &["JSESSIONID"],
    remember_cookies: &["seraph.rememberme.cookie"],
    login_forms: &[
        LoginForm {
            path: "/login.jsp",
            user_field: "os_username",
            destination_field: "os_destination",
        },
        LoginForm {
            path: "/rest/gadget/1.0/login",
            user_field: "os_username",
            destination_field: "os_destination",
        },
    ],
    json_login: Some("/rest/auth/1/session"),
    platform_logins: PLATFORM_LOGINS,
    second_steps: SECOND_STEPS,
    saml_consumer: "/plugins/servlet/samlconsumer",
    sso_start: "/plugins/servlet/external-login",
    logout_paths: &["/secure/Logout!default.jspa", "/logout"],
    sso_callbacks: &[
        "/plugins/servlet/samlconsumer",
        "/plugins/servlet/oidc/callback",
    ],
    login_page: "/login.jsp",
    login_destination_param: "os_destination",
    activity_include: &[
        r"^GET /browse/[^/]+",
        r"^[A-Z]+ /secure/AjaxIssueAction",
        r"^[A-Z]+ /secure/AjaxIssueEditAction",
        r"^[A-Z]+ /secure/EditIssue",
        r"^[A-Z]+ /secure/QuickEditIssue",
        r"^[A-Z]+ /secure/AddComment",
        r"^[A-Z]+ /secure/QuickCreateIssue",
        r"^[A-Z]+ /secure/CreateIssue",
        r"^[A-Z]+ /rest/api/(2|latest)/issue/",
        r"^[A-Z]+ /secure/RapidBoard\.jspa",
    ],
    activity_exclude: COMMON_EXCLUDE,
    git_prefixes: &[],
    no_permission_texts: &["You do not have a permission to log in"],
    whoami: None,
};

pub static CONFLUENCE: Profile = Profile {
    product: Product::Confluence,
    session_cookies: &["JSESSIONID"],
    remember_cookies: &["seraph.confluence"],
    login_forms: &[LoginForm {
        path: "/dologin.action",
        user_field: "os_username",
        destination_field: "os_destination",
    }],
    json_login: None,
    platform_logins: PLATFORM_LOGINS,
    second_steps: SECOND_STEPS,
    saml_consumer: "/plugins/servlet/samlconsumer",
    sso_start: "/plugins/servlet/external-login",
    logout_paths: &["/logout.action"],
    sso_callbacks: &[
        "/plugins/servlet/samlconsumer",
        "/plugins/servlet/oidc/callback",
    ],
    login_page: "/login.action",
    login_destination_param: "os_destination",
    activity_include: &[
        r"^GET /display/",
        r"^[A-Z]+ /pages/viewpage\.action",
        r"^[A-Z]+ /pages/editpage\.action",
        r"^[A-Z]+ /pages/createpage\.action",
        r"^PUT /rest/api/content/",
        r"^POST /rest/tinymce/1/content/.*/comment",
    ],
    activity_exclude: COMMON_EXCLUDE,
    git_prefixes: &[],
    no_permission_texts: &[
        "You do not have permission to use Confluence",
        "You do not have a permission to log in",
    ],
    whoami: Some("/rest/api/user/current"),
};

pub static BITBUCKET: Profile = Profile {
    product: Product::Bitbucket,
    session_cookies: &["BITBUCKETSESSIONID"],
    remember_cookies: &["_atl_bitbucket_remember_me"],
    login_forms: &[LoginForm {
        path: "/j_atl_security_check",
        user_field: "j_username",
        destination_field: "next",
    }],
    json_login: None,
    platform_logins: PLATFORM_LOGINS,
    second_steps: SECOND_STEPS,
    saml_consumer: "/plugins/servlet/samlconsumer",
    sso_start: "/plugins/servlet/external-login",
    logout_paths: &["/j_atl_security_logout"],
    sso_callbacks: &[
        "/plugins/servlet/samlconsumer",
        "/plugins/servlet/oidc/callback",
    ],
    login_page: "/login",
    login_destination_param: "next",
    activity_include: &[
        r"^[A-Z]+ /projects/",
        r"^[A-Z]+ /users/[^/]+/repos/",
        r"^GET /dashboard",
        r"^[A-Z]+ /scm/",
    ],
    activity_exclude: COMMON_EXCLUDE,
    git_prefixes: &["/scm/"],
    no_permission_texts: &["You do not have permission to access Bitbucket"],
    whoami: None,
};

impl Profile {
    pub fn is_session_cookie(&self, name: &str) -> bool {
        self.session_cookies.contains(&name) || self.remember_cookies.contains(&name)
    }

    pub fn login_form(&self, path: &str) -> Option<&LoginForm> {
        self.login_forms.iter().find(|f| f.path == path)
    }

    /// Whether `path` takes a JSON login (`{"username": …}`).
    pub fn is_json_login(&self, path: &str) -> bool {
        self.json_login == Some(path) || self.platform_logins.contains(&path)
    }

    /// Whether `path` is the second step of a two-step login.
    pub fn is_second_step(&self, path: &str) -> bool {
        self.second_steps.contains(&path)
    }

    pub fn is_logout(&self, method: &http::Method, path: &str) -> bool {
        self.logout_paths.contains(&path)
            || (method == http::Method::DELETE && self.json_login == Some(path))
    }

    pub fn is_git(&self, path: &str) -> bool {
        self.git_prefixes.iter().any(|p| path.starts_with(p))
    }
}

/// Which requests count as activity: the profile's defaults plus the admin's
/// `[activity] include`/`exclude` (regexes over `"METHOD /path"`). An exclude
/// wins over an include, so JSM's SLA polling never keeps a holder "active".
#[derive(Debug, Clone)]
pub struct ActivityRules {
    include: RegexSet,
    exclude: RegexSet,
}

impl ActivityRules {
    /// `extra_include`/`extra_exclude` come from the config; a bad regex is an
    /// error that names it.
    pub fn new(
        profile: &Profile,
        extra_include: &[String],
        extra_exclude: &[String],
    ) -> Result<Self, regex::Error> {
        let include = RegexSet::new(
            profile
                .activity_include
                .iter()
                .copied()
                .chain(extra_include.iter().map(String::as_str)),
        )?;
        let exclude = RegexSet::new(
            profile
                .activity_exclude
                .iter()
                .copied()
                .chain(extra_exclude.iter().map(String::as_str)),
        )?;
        Ok(ActivityRules { include, exclude })
    }

    /// Whether `method path` (path without query) is activity.
    pub fn is_activity(&self, method: &str, path: &str) -> bool {
        with_request_line(method, path, |line| {
            self.include.is_match(line) && !self.exclude.is_match(line)
        })
    }
}

/// Runs `f` on `"METHOD /path"`, the line request rules (`[activity]`,
/// `[pools.*] needs`) are written over: put together on the stack when it
/// fits (every request asks), else in a `String`.
pub fn with_request_line<R>(method: &str, path: &str, f: impl FnOnce(&str) -> R) -> R {
    let n = method.len() + 1 + path.len();
    let mut buf = [0u8; 256];
    if let Some(b) = buf.get_mut(..n) {
        b[..method.len()].copy_from_slice(method.as_bytes());
        b[method.len()] = b' ';
        b[method.len() + 1..].copy_from_slice(path.as_bytes());
        // Two `str`s and an ASCII space: always UTF-8.
        return f(std::str::from_utf8(b).unwrap_or_default());
    }
    let mut owned = String::with_capacity(n);
    owned.push_str(method);
    owned.push(' ');
    owned.push_str(path);
    f(&owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jira() -> ActivityRules {
        ActivityRules::new(&JIRA, &[], &[]).unwrap()
    }

    #[test]
    fn jira_issue_view_and_edit_are_activity() {
        let r = jira();
        assert!(r.is_activity("GET", "/browse/ABC-1"));
        assert!(r.is_activity("POST", "/secure/AjaxIssueAction!default.jspa"));
        assert!(r.is_activity("PUT", "/rest/api/2/issue/ABC-1"));
        assert!(r.is_activity("GET", "/rest/api/latest/issue/ABC-1"));
    }

    #[test]
    fn a_path_of_any_length_is_judged_the_same() {
        let r = jira();
        for n in [0, 200, 246, 247, 248, 255, 256, 1000] {
            let long = format!("/browse/ABC-1{}", "x".repeat(n));
            assert!(r.is_activity("GET", &long), "{n}");
            let poll = format!(
                "/rest/mywork/latest/notification/count{}",
                "/x".repeat(n / 2)
            );
            assert!(!r.is_activity("GET", &poll), "{n}");
        }
    }

    #[test]
    fn polling_and_static_resources_are_not_activity() {
        let r = jira();
        assert!(!r.is_activity("GET", "/rest/mywork/latest/notification/count"));
        assert!(!r.is_activity("GET", "/s/abc/_/download/batch.js"));
        assert!(!r.is_activity("GET", "/rest/analytics/1.0/publish/bulk"));
        assert!(!r.is_activity("GET", "/secure/Dashboard.jspa"));
        assert!(!r.is_activity("GET", "/rest/servicedesk/1/customer/sla/ABC-1"));
    }

    #[test]
    fn admin_rules_extend_and_exclude_wins() {
        let r = ActivityRules::new(
            &JIRA,
            &[r"^GET /secure/Dashboard\.jspa".into()],
            &[r"^GET /browse/SLA-".into()],
        )
        .unwrap();
        assert!(r.is_activity("GET", "/secure/Dashboard.jspa"));
        assert!(!r.is_activity("GET", "/browse/SLA-7"));
        assert!(r.is_activity("GET", "/browse/ABC-7"));
    }

    #[test]
    fn bitbucket_git_over_http_is_activity() {
        let r = ActivityRules::new(&BITBUCKET, &[], &[]).unwrap();
        assert!(r.is_activity("GET", "/scm/proj/repo.git/info/refs"));
        assert!(BITBUCKET.is_git("/scm/proj/repo.git/info/refs"));
    }

    #[test]
    fn logout_shapes() {
        assert!(JIRA.is_logout(&http::Method::GET, "/secure/Logout!default.jspa"));
        assert!(JIRA.is_logout(&http::Method::DELETE, "/rest/auth/1/session"));
        assert!(!JIRA.is_logout(&http::Method::POST, "/rest/auth/1/session"));
    }
}
