//! Jira Service Management inside the simulated Jira (served only when
//! `SimConfig::service_management` is set): agent views that need the
//! `jira-servicedesk` role, the queue and SLA refreshes an open agent tab
//! polls, and the customer portal, which needs a login but no role
//! (shared/ATLASSIAN.md, "Service Management").
//!
//! Paths, by who may use them:
//!
//! - agents (the role): `/jira/servicedesk/projects/<KEY>[/queues/custom/<n>[/<ISSUE>]]`
//!   (HTML); `GET /rest/servicedesk/1/servicedesk/<KEY>/queues` and
//!   `…/queues/<n>/issues` (queue refreshes), `GET
//!   /rest/servicedesk/1/servicedesk/<KEY>/sla/<ISSUE>` (SLA refresh);
//!   `GET /rest/servicedeskapi/request/<ISSUE>`, `…/sla`, `POST …/comment`,
//!   `GET /rest/servicedeskapi/servicedesk/<id>/queue/<n>/issue`; any other
//!   `/servicedesk/…` page outside the portal.
//! - any logged-in user, even one without a role: `/servicedesk/customer/portals`,
//!   `/servicedesk/customer/portal/<n>[/<ISSUE>]` (HTML), `POST
//!   /servicedesk/customer/portal/<n>/create/<type>` (JSON), and the portal's
//!   own login `GET|POST /servicedesk/customer/user/login`.
//!
//! *Unconfirmed* (shared/ATLASSIAN.md names the prefixes only): the exact
//! refresh paths, the portal login's path and fields (`os_username`,
//! `os_password`, `destination`), and the answer to a logged-in user without
//! the agent role — here a 403 page ("You are not a Jira Service Management
//! agent") or, on REST, a 403 with `errorMessages`. The real portal's own
//! REST calls are not modelled beyond the create above.

use super::auth::{self, Cx, Login};
use super::jira;
use super::state::{Role, State};
use super::web::{self, escape, Reply, Req};
use http::Method;
use serde_json::json;

const PORTAL: &str = "/servicedesk/customer/";
const PORTAL_LOGIN: &str = "/servicedesk/customer/user/login";
const PORTALS: &str = "/servicedesk/customer/portals";
const NOT_AN_AGENT: &str = "You are not a Jira Service Management agent: this page needs the \
                            jira-servicedesk application role. Ask your Jira administrator for \
                            agent access.";
const NOT_AUTHENTICATED: &str =
    "You are not authenticated. Authentication required to perform this operation.";

/// Whether Service Management answers `path` (the agent views and the portal).
pub(crate) fn is_service_path(path: &str) -> bool {
    [
        "/jira/servicedesk/",
        "/rest/servicedesk/",
        "/rest/servicedeskapi/",
    ]
    .iter()
    .any(|p| path.starts_with(p))
        || path.starts_with("/servicedesk/")
}

pub(crate) fn route(st: &mut State, req: &Req, cx: &mut Cx) -> Reply {
    if req.path.starts_with(PORTAL) {
        portal(st, req, cx)
    } else {
        agent(st, req, cx)
    }
}

// ---- the customer portal ------------------------------------------------------

fn portal(st: &mut State, req: &Req, cx: &mut Cx) -> Reply {
    if req.path == PORTAL_LOGIN {
        return match req.method {
            Method::POST => portal_login(st, req, cx),
            _ => portal_login_page(200, req.q("destination"), None),
        };
    }
    // Any active, logged-in user: a role is not needed.
    let Some(user) = cx.user.clone().filter(|u| st.is_active(u)) else {
        if req.method == Method::GET && !is_json(req) {
            let dest = req.path.trim_start_matches(PORTAL);
            return Reply::redirect(&format!(
                "{PORTAL_LOGIN}?destination={}",
                web::query_value(dest)
            ));
        }
        return Reply::error(401, NOT_AUTHENTICATED);
    };
    // The app names the logged-in customer, role or not.
    cx.shown = Some(user.clone());
    let rest = req.path.trim_start_matches(PORTAL);
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match (req.method.clone(), parts.as_slice()) {
        (Method::GET, ["portals"]) => Reply::html(
            200,
            "Help Center",
            &format!(
                "{}\n<h1>Help Center</h1>\n<a href=\"/servicedesk/customer/portal/1\">IT Help</a>",
                customer_meta(st, &user)
            ),
        ),
        (Method::GET, ["portal", n]) if is_number(n) => Reply::html(
            200,
            "IT Help - Help Center",
            &format!(
                "{}\n<h1 id=\"portal-name\" data-portal-id=\"{n}\">IT Help</h1>\n\
                 <p>Welcome! You can raise a request for IT Help using the options provided.</p>",
                customer_meta(st, &user),
                n = escape(n)
            ),
        ),
        (Method::GET, ["portal", n, key]) if is_number(n) && is_issue_key(key) => {
            let summary = summary(st, key);
            Reply::html(
                200,
                &format!("{key} - {summary}"),
                &format!(
                    "{}\n<h1 id=\"request-summary\" data-request-key=\"{k}\">{s}</h1>",
                    customer_meta(st, &user),
                    k = escape(key),
                    s = escape(&summary)
                ),
            )
        }
        (Method::POST, ["portal", n, "create", kind]) if is_number(n) => {
            let Some(body) = req.json() else {
                return Reply::error(400, "Unexpected body: expected JSON");
            };
            let text = body
                .pointer("/requestFieldValues/summary")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            if text.trim().is_empty() {
                return Reply::json(
                    400,
                    json!({ "errorMessages": [], "errors": { "summary": "Summary is required." } }),
                );
            }
            let key = format!("HELP-{}", st.items.len() + 1);
            st.items.insert(key.clone(), text.clone());
            Reply::json(
                201,
                json!({
                    "issueKey": key,
                    "requestTypeId": kind,
                    "serviceDeskId": n,
                    "reporter": { "name": st.user(&user).map_or(user.clone(), |u| u.name.clone()) },
                    "requestFieldValues": [{ "fieldId": "summary", "value": text }],
                }),
            )
        }
        _ => Reply::html(
            404,
            "Page not found - Help Center",
            "<p>This page doesn't exist.</p>",
        ),
    }
}

fn customer_meta(st: &State, user: &str) -> String {
    let name = st.user(user).map_or_else(String::new, |u| u.name.clone());
    format!(
        "<meta name=\"ajs-remote-user\" content=\"{n}\">\n<p>Logged in as <span id=\"user-name\">{n}</span></p>",
        n = escape(&name)
    )
}

fn portal_login_page(status: u16, dest: Option<&str>, error: Option<&str>) -> Reply {
    let error = error
        .map(|e| {
            format!(
                "<div class=\"error\" id=\"login-error\">{}</div>\n",
                escape(e)
            )
        })
        .unwrap_or_default();
    let dest = escape(dest.unwrap_or("portals"));
    Reply::html(
        status,
        "Log in - Help Center",
        &format!(
            "{error}<form id=\"user-login\" method=\"post\" action=\"{PORTAL_LOGIN}\">\n\
             <input type=\"text\" name=\"os_username\" id=\"login-form-username\">\n\
             <input type=\"password\" name=\"os_password\" id=\"login-form-password\">\n\
             <input type=\"hidden\" name=\"destination\" value=\"{dest}\">\n\
             <input type=\"submit\" value=\"Log in\">\n</form>"
        ),
    )
}

/// The portal's own login: any active user with the right password, role or
/// not (customers hold no licence). Failed logins count as on every login.
fn portal_login(st: &mut State, req: &Req, cx: &mut Cx) -> Reply {
    let form = req.form();
    let user = Req::field(&form, "os_username").unwrap_or("");
    let password = Req::field(&form, "os_password").unwrap_or("");
    let dest_field = Req::field(&form, "destination").unwrap_or("portals");
    // A destination relative to the portal, kept on this server.
    let dest = if dest_field.contains("//") || dest_field.contains('\\') {
        PORTALS.to_string()
    } else {
        format!("{PORTAL}{}", dest_field.trim_start_matches('/'))
    };
    let outcome = match auth::check_login(st, user, password) {
        // A right password without a role is still a customer's login.
        Login::NoAccess => match st.check_password(user, password) {
            Some(u) if st.is_active(&u) => {
                st.reset_failed_logins(&u);
                Login::Ok(u)
            }
            _ => Login::NoAccess,
        },
        other => other,
    };
    match outcome {
        Login::Ok(u) => {
            auth::open_session(st, req, cx, &u, false);
            cx.login_reason = Some("OK");
            Reply::redirect(&dest)
        }
        Login::BadPassword { .. } => {
            cx.login_reason = Some("AUTHENTICATED_FAILED");
            cx.shown = None;
            portal_login_page(
                200,
                Some(dest_field),
                Some("Your email or password is incorrect."),
            )
        }
        Login::Denied => {
            cx.login_reason = Some("AUTHENTICATION_DENIED");
            cx.shown = None;
            portal_login_page(
                200,
                Some(dest_field),
                Some("Too many failed logins: a CAPTCHA must be answered first."),
            )
        }
        Login::NoAccess => {
            cx.login_reason = Some("AUTHORISATION_FAILED");
            cx.shown = None;
            portal_login_page(200, Some(dest_field), Some("Your account is deactivated."))
        }
    }
}

// ---- agent views ----------------------------------------------------------------

fn agent(st: &mut State, req: &Req, cx: &mut Cx) -> Reply {
    let rest_api = req.path.starts_with("/rest/");
    let Some(user) = cx.user.clone() else {
        return if rest_api {
            Reply::error(401, NOT_AUTHENTICATED)
        } else {
            jira::login_redirect(&req.path)
        };
    };
    if !st.has_role(&user, Role::Service) {
        st.refuse(Role::Service);
        // Jira names a user it serves only when they may use the app.
        if !cx.access {
            cx.shown = None;
        }
        return if rest_api {
            Reply::error(403, NOT_AN_AGENT)
        } else {
            Reply::html(
                403,
                "Access denied - Jira Service Management",
                &format!(
                    "<div class=\"aui-message error\" id=\"agent-denied\">{NOT_AN_AGENT}</div>"
                ),
            )
        };
    }
    let parts: Vec<&str> = req.path.split('/').filter(|p| !p.is_empty()).collect();
    match (req.method.clone(), parts.as_slice()) {
        (Method::GET, ["jira", "servicedesk", "projects", key, tail @ ..]) => {
            agent_page(st, cx, key, tail)
        }
        (Method::GET, ["rest", "servicedesk", "1", "servicedesk", key, "queues"]) => Reply::json(
            200,
            json!({
                "projectKey": key,
                "queues": [
                    { "id": 1, "name": "All open", "count": issue_count(st, key) },
                    { "id": 2, "name": "Assigned to me", "count": 0 },
                ],
            }),
        ),
        (Method::GET, ["rest", "servicedesk", "1", "servicedesk", key, "queues", q, "issues"])
            if is_number(q) =>
        {
            let issues: Vec<_> = issues_of(st, key)
                .into_iter()
                .map(|(k, s)| json!({ "key": k, "summary": s }))
                .collect();
            Reply::json(
                200,
                json!({ "queueId": q, "total": issues.len(), "issues": issues }),
            )
        }
        (Method::GET, ["rest", "servicedesk", "1", "servicedesk", _key, "sla", issue])
            if is_issue_key(issue) =>
        {
            Reply::json(200, sla(issue))
        }
        (Method::GET, ["rest", "servicedeskapi", "request", issue]) if is_issue_key(issue) => {
            let summary = summary(st, issue);
            Reply::json(
                200,
                json!({
                    "issueKey": issue,
                    "requestFieldValues": [{ "fieldId": "summary", "label": "Summary", "value": summary }],
                    "currentStatus": { "status": "Waiting for support" },
                    "_links": { "web": format!("/servicedesk/customer/portal/1/{issue}") },
                }),
            )
        }
        (Method::GET, ["rest", "servicedeskapi", "request", issue, "sla"])
            if is_issue_key(issue) =>
        {
            Reply::json(200, json!({ "size": 1, "values": [sla(issue)] }))
        }
        (Method::POST, ["rest", "servicedeskapi", "request", issue, "comment"])
            if is_issue_key(issue) =>
        {
            let Some(body) = req.json() else {
                return Reply::error(400, "Unexpected body: expected JSON");
            };
            let text = body.get("body").and_then(|v| v.as_str()).unwrap_or("");
            Reply::json(
                201,
                json!({
                    "id": "10001",
                    "body": text,
                    "public": body.get("public").and_then(|v| v.as_bool()).unwrap_or(true),
                    "author": { "name": st.user(&user).map_or(user.clone(), |u| u.name.clone()) },
                }),
            )
        }
        (Method::GET, ["rest", "servicedeskapi", "servicedesk", _id, "queue", q, "issue"])
            if is_number(q) =>
        {
            let values: Vec<_> = st
                .items
                .iter()
                .map(|(k, s)| json!({ "key": k, "fields": { "summary": s } }))
                .collect();
            Reply::json(
                200,
                json!({ "size": values.len(), "isLastPage": true, "values": values }),
            )
        }
        _ if req.path.starts_with("/rest/") => {
            Reply::error(404, "null for uri: the simulator does not serve this path")
        }
        _ => Reply::html(
            404,
            "Page not found - Jira Service Management",
            "<p>Oops, you've found a dead link.</p>",
        ),
    }
}

/// `/jira/servicedesk/projects/<KEY>[/queues/custom/<n>[/<ISSUE>]]`.
fn agent_page(st: &State, cx: &Cx, key: &str, tail: &[&str]) -> Reply {
    let meta = jira::user_meta(st, cx);
    match tail {
        [] | ["queues"] | ["queues", "custom", _] => Reply::html(
            200,
            &format!("{key} queues - Jira Service Management"),
            &format!(
                "{meta}\n<h1 id=\"queue-title\" data-project-key=\"{k}\">All open</h1>\n<p>{n} requests</p>",
                k = escape(key),
                n = issue_count(st, key)
            ),
        ),
        ["queues", "custom", _, issue] if is_issue_key(issue) => {
            let summary = summary(st, issue);
            Reply::html(
                200,
                &format!("[{issue}] {summary} - Jira Service Management"),
                &format!(
                    "{meta}\n<h1 id=\"summary-val\">{s}</h1>\n<a id=\"key-val\" data-issue-key=\"{k}\">{k}</a>",
                    s = escape(&summary),
                    k = escape(issue)
                ),
            )
        }
        _ => Reply::html(
            404,
            "Page not found - Jira Service Management",
            "<p>Oops, you've found a dead link.</p>",
        ),
    }
}

fn sla(issue: &str) -> serde_json::Value {
    json!({
        "issueKey": issue,
        "name": "Time to first response",
        "ongoingCycle": { "breached": false, "paused": false, "remainingTime": { "millis": 14_400_000 } },
    })
}

fn summary(st: &State, key: &str) -> String {
    st.items
        .get(key)
        .cloned()
        .unwrap_or_else(|| format!("Request {key}"))
}

/// Issues of project `key` the simulator knows (set through REST or the portal).
fn issues_of(st: &State, key: &str) -> Vec<(String, String)> {
    let prefix = format!("{key}-");
    let mut v: Vec<(String, String)> = st
        .items
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(k, s)| (k.clone(), s.clone()))
        .collect();
    v.sort();
    v
}

fn issue_count(st: &State, key: &str) -> usize {
    issues_of(st, key).len()
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `ABC-12`: a project key (a letter, then letters, digits or `_`), a dash,
/// a number.
fn is_issue_key(s: &str) -> bool {
    let Some((project, n)) = s.rsplit_once('-') else {
        return false;
    };
    project.starts_with(|c: char| c.is_ascii_alphabetic())
        && project
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && is_number(n)
}

fn is_json(req: &Req) -> bool {
    req.headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json") && !v.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_keys_and_service_paths() {
        assert!(is_issue_key("HELP-12") && is_issue_key("A_1-3"));
        assert!(!is_issue_key("HELP") && !is_issue_key("-1") && !is_issue_key("1A-2"));
        assert!(!is_issue_key("HELP-") && !is_issue_key("HELP-x"));
        assert!(is_service_path("/servicedesk/customer/portal/1"));
        assert!(is_service_path("/rest/servicedeskapi/request/HELP-1"));
        assert!(is_service_path("/jira/servicedesk/projects/HELP/queues"));
        assert!(!is_service_path("/browse/HELP-1"));
        assert!(!is_service_path("/rest/api/2/issue/HELP-1"));
    }
}
