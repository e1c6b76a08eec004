//! Jira Data Center, as `shared/ATLASSIAN.md` describes it: Seraph logins,
//! pages that need application access, and the admin REST API for groups,
//! users and the application role.

use super::auth::{self, AdminAuth, Cx, Login};
use super::servicedesk;
use super::state::{Role, State, UserRec, Write};
use super::web::{self, escape, Reply, Req};
use http::Method;
use serde_json::{json, Value};

const DASHBOARD: &str = "/secure/Dashboard.jspa";
const NO_PERMISSION: &str = "You do not have a permission to log in";
const BAD_PASSWORD: &str = "Sorry, your username and password are incorrect - please try again.";
const CAPTCHA: &str = "Sorry, your userid is required to answer a CAPTCHA question correctly.";
const NO_SOFTWARE: &str =
    "You do not have access to Jira Software: this page needs the jira-software application role.";
const NOT_AUTHENTICATED: &str =
    "You are not authenticated. Authentication required to perform this operation.";

pub(crate) fn route(st: &mut State, req: &Req, cx: &mut Cx) -> Reply {
    let path = req.path.as_str();
    if is_static(path) {
        return Reply::text(200, "/* static resource */\n");
    }
    if path == "/status" {
        return Reply::json(200, json!({ "state": "RUNNING" }));
    }
    if let Some(api) = path
        .strip_prefix("/rest/api/2/")
        .or_else(|| path.strip_prefix("/rest/api/latest/"))
    {
        if api == "serverInfo" {
            // Served to anyone, as Jira does.
            return server_info(st);
        }
        if is_admin_api(api) {
            return admin(st, req, cx, api);
        }
    }
    match (req.method.clone(), path) {
        (Method::GET, "/login.jsp") => login_page(200, req.q("os_destination"), None),
        (Method::POST, "/login.jsp") => form_login(st, req, cx, false),
        (Method::POST, "/rest/gadget/1.0/login") => form_login(st, req, cx, true),
        (_, "/rest/auth/1/session") => json_session(st, req, cx),
        (_, "/secure/Logout!default.jspa") | (_, "/logout") => {
            auth::close_session(st, req, cx);
            Reply::redirect("/login.jsp")
        }
        _ if cx.bad_credentials => {
            // Seraph refuses a request with wrong Basic credentials outright.
            cx.login_reason = Some("AUTHENTICATED_FAILED");
            Reply::error(401, NOT_AUTHENTICATED)
        }
        (_, p) if st.service_enabled() && servicedesk::is_service_path(p) => {
            servicedesk::route(st, req, cx)
        }
        (Method::GET, "/") => Reply::redirect(DASHBOARD),
        (Method::GET, DASHBOARD) => dashboard(st, cx),
        (Method::GET, p) if p.starts_with("/browse/") => browse(st, cx, req),
        (_, p) if p.starts_with("/rest/") => rest(st, req, cx),
        _ => Reply::html(
            404,
            "Page not found",
            "<p>Oops, you've found a dead link.</p>",
        ),
    }
}

fn server_info(st: &State) -> Reply {
    let numbers: Vec<u64> = st
        .version
        .split('.')
        .filter_map(|p| p.parse().ok())
        .collect();
    Reply::json(
        200,
        json!({
            "version": st.version,
            "versionNumbers": numbers,
            "deploymentType": "Server",
            "serverTitle": "Jira",
        }),
    )
}

fn is_static(path: &str) -> bool {
    ["/s/", "/images/", "/download/resources/", "/favicon.ico"]
        .iter()
        .any(|p| path.starts_with(p))
}

fn is_admin_api(api: &str) -> bool {
    matches!(
        api,
        "group/user" | "group/member" | "user" | "applicationrole"
    ) || api.starts_with("applicationrole/")
        || api.starts_with("user/session/")
}

fn display_name(u: &UserRec) -> String {
    let mut chars = u.name.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

// ---- pages ------------------------------------------------------------------

fn login_page(status: u16, dest: Option<&str>, error: Option<&str>) -> Reply {
    let error = error
        .map(|e| {
            format!(
                "<div class=\"aui-message error\" id=\"login-error\">{}</div>\n",
                escape(e)
            )
        })
        .unwrap_or_default();
    let dest = escape(&web::local_destination(dest, DASHBOARD));
    Reply::html(
        status,
        "Log in - Jira",
        &format!(
            "{error}<form id=\"login-form\" method=\"post\" action=\"/login.jsp\">\n\
             <input type=\"text\" name=\"os_username\" id=\"login-form-username\">\n\
             <input type=\"password\" name=\"os_password\" id=\"login-form-password\">\n\
             <input type=\"checkbox\" name=\"os_cookie\" value=\"true\"> Remember my login\n\
             <input type=\"hidden\" name=\"os_destination\" value=\"{dest}\">\n\
             <input type=\"submit\" name=\"login\" value=\"Log In\">\n</form>"
        ),
    )
}

pub(crate) fn no_permission_page(status: u16) -> Reply {
    Reply::html(
        status,
        "Log in - Jira",
        &format!(
            "<div class=\"aui-message warning\" id=\"login-error\">{NO_PERMISSION}. \
             If you think you should be able to log in, contact your Jira administrator.</div>"
        ),
    )
}

/// Software pages need a user holding the software role: anonymous →
/// login, no access → 403. (Without Service Management any access is the
/// software role; with it, an agent holding only `jira-servicedesk` is
/// refused too, and counted.)
fn page_guard(st: &mut State, cx: &Cx, dest: &str) -> Option<Reply> {
    if cx.access {
        if software_refused(st, cx) {
            // Not the login page's "no permission" text: the user may log in,
            // just not use Jira Software (wording *unconfirmed*).
            return Some(Reply::html(
                403,
                "Access denied - Jira",
                &format!(
                    "{}\n<div class=\"aui-message error\" id=\"software-denied\">{NO_SOFTWARE}</div>",
                    user_meta(st, cx)
                ),
            ));
        }
        None
    } else if cx.user.is_some() {
        st.refuse(Role::Software);
        Some(no_permission_page(403))
    } else {
        Some(login_redirect(dest))
    }
}

/// Whether an authenticated caller with access lacks the software role
/// (only possible with Service Management); counts the refusal.
fn software_refused(st: &mut State, cx: &Cx) -> bool {
    let refused =
        st.service_enabled() && cx.authed().is_some_and(|u| !st.has_role(u, Role::Software));
    if refused {
        st.refuse(Role::Software);
    }
    refused
}

pub(crate) fn login_redirect(dest: &str) -> Reply {
    Reply::redirect(&format!(
        "/login.jsp?os_destination={}",
        web::query_value(dest)
    ))
}

pub(crate) fn user_meta(st: &State, cx: &Cx) -> String {
    let name = cx
        .authed()
        .and_then(|u| st.user(u))
        .map_or_else(String::new, |u| u.name.clone());
    format!(
        "<meta name=\"ajs-remote-user\" content=\"{n}\">\n\
         <p>Logged in as <span id=\"header-details-user-fullname\" data-username=\"{n}\">{n}</span></p>",
        n = escape(&name)
    )
}

fn dashboard(st: &mut State, cx: &Cx) -> Reply {
    if cx.user.is_some() && !cx.access {
        st.refuse(Role::Software);
        return no_permission_page(403);
    }
    if cx.access {
        Reply::html(
            200,
            "System Dashboard - Jira",
            &format!("{}\n<h1>System Dashboard</h1>", user_meta(st, cx)),
        )
    } else {
        // Anonymous users see the dashboard with a login gadget.
        Reply::html(
            200,
            "System Dashboard - Jira",
            "<h1>System Dashboard</h1>\n<a href=\"/login.jsp\">Log In</a>",
        )
    }
}

fn browse(st: &mut State, cx: &Cx, req: &Req) -> Reply {
    if let Some(r) = page_guard(st, cx, &req.path) {
        return r;
    }
    let key = req.path.trim_start_matches("/browse/");
    let summary = st
        .items
        .get(key)
        .cloned()
        .unwrap_or_else(|| format!("Issue {key}"));
    Reply::html(
        200,
        &format!("[{key}] {summary} - Jira"),
        &format!(
            "{}\n<h1 id=\"summary-val\">{}</h1>\n<a id=\"key-val\" data-issue-key=\"{k}\">{k}</a>",
            user_meta(st, cx),
            escape(&summary),
            k = escape(key)
        ),
    )
}

// ---- logins -----------------------------------------------------------------

/// `POST /login.jsp` (an HTML answer) and `POST /rest/gadget/1.0/login` (JSON).
fn form_login(st: &mut State, req: &Req, cx: &mut Cx, gadget: bool) -> Reply {
    let form = req.form();
    let user = Req::field(&form, "os_username").unwrap_or("");
    let password = Req::field(&form, "os_password").unwrap_or("");
    let remember = Req::field(&form, "os_cookie").is_some_and(|v| v == "true");
    let dest = web::local_destination(Req::field(&form, "os_destination"), DASHBOARD);
    let outcome = auth::check_login(st, user, password);
    let (succeeded, by_permissions, captcha) = match &outcome {
        Login::Ok(u) => {
            auth::open_session(st, req, cx, u, remember);
            cx.login_reason = Some("OK");
            (true, false, false)
        }
        Login::BadPassword { captcha } => {
            cx.login_reason = Some("AUTHENTICATED_FAILED");
            cx.shown = None;
            (false, false, *captcha)
        }
        Login::Denied => {
            cx.login_reason = Some("AUTHENTICATION_DENIED");
            cx.shown = None;
            (false, false, true)
        }
        Login::NoAccess => {
            cx.login_reason = Some("AUTHORISATION_FAILED");
            cx.shown = None;
            (false, true, false)
        }
    };
    if gadget {
        return Reply::json(
            200,
            json!({
                "loginSucceeded": succeeded,
                "loginError": !succeeded,
                "loginFailedByPermissions": by_permissions,
                "communicationError": false,
                "captchaFailure": matches!(outcome, Login::Denied),
                "captchaRequired": captcha,
                "isElevatedSecurityCheckShown": false,
                "externalUserManagement": false,
                "allowCookies": true,
                "isPublicMode": false,
            }),
        );
    }
    match outcome {
        Login::Ok(_) => Reply::redirect(&dest),
        Login::BadPassword { .. } => login_page(200, Some(&dest), Some(BAD_PASSWORD)),
        Login::Denied => login_page(200, Some(&dest), Some(CAPTCHA)),
        Login::NoAccess => no_permission_page(200),
    }
}

/// `/rest/auth/1/session`: JSON login (POST), current user (GET), logout (DELETE).
fn json_session(st: &mut State, req: &Req, cx: &mut Cx) -> Reply {
    match req.method {
        Method::POST => {
            // A JAX-RS resource that consumes `application/json` only.
            if !req.has_media_type("application/json") {
                return Reply::error(415, "Unsupported Media Type");
            }
            let Some(body) = req.json() else {
                return Reply::error(
                    400,
                    "Unrecognized body: expected {\"username\",\"password\"}",
                );
            };
            let user = body.get("username").and_then(Value::as_str).unwrap_or("");
            let password = body.get("password").and_then(Value::as_str).unwrap_or("");
            match auth::check_login(st, user, password) {
                Login::Ok(u) => {
                    auth::open_session(st, req, cx, &u, false);
                    cx.login_reason = Some("OK");
                    let sid = cx.session.clone().unwrap_or_default();
                    Reply::json(
                        200,
                        json!({
                            "session": { "name": "JSESSIONID", "value": sid },
                            "loginInfo": { "failedLoginCount": 0, "loginCount": 1 },
                        }),
                    )
                }
                Login::BadPassword { .. } => {
                    cx.login_reason = Some("AUTHENTICATED_FAILED");
                    cx.shown = None;
                    Reply::error(401, "Login failed")
                }
                Login::Denied => {
                    // Jira documents 403 for a login denied for a CAPTCHA.
                    cx.login_reason = Some("AUTHENTICATION_DENIED");
                    cx.shown = None;
                    Reply::error(403, "Login denied: a CAPTCHA must be answered first")
                        .header("X-Authentication-Denied-Reason", "CAPTCHA_CHALLENGE")
                }
                Login::NoAccess => {
                    cx.login_reason = Some("AUTHORISATION_FAILED");
                    cx.shown = None;
                    Reply::error(401, "Login failed")
                }
            }
        }
        Method::GET => match cx.authed().and_then(|u| st.user(u)) {
            Some(u) => Reply::json(
                200,
                json!({
                    "self": format!("/rest/api/latest/user?username={}", u.name),
                    "name": u.name,
                    "loginInfo": { "failedLoginCount": 0, "loginCount": 1 },
                }),
            ),
            None => Reply::error(401, NOT_AUTHENTICATED),
        },
        Method::DELETE => {
            if cx.session.is_none() {
                return Reply::error(401, NOT_AUTHENTICATED);
            }
            auth::close_session(st, req, cx);
            Reply::new(204)
        }
        _ => Reply::new(405),
    }
}

// ---- ordinary REST ------------------------------------------------------------

fn rest(st: &mut State, req: &Req, cx: &mut Cx) -> Reply {
    // REST answers 401 to anyone without access: anonymous, inactive, unlicensed.
    let Some(user) = cx.authed().map(str::to_string) else {
        if cx.user.is_some() {
            // Valid credentials without application access.
            st.refuse(Role::Software);
        }
        return Reply::error(401, NOT_AUTHENTICATED);
    };
    let path = req.path.as_str();
    let api = path
        .strip_prefix("/rest/api/2/")
        .or_else(|| path.strip_prefix("/rest/api/latest/"));
    match (req.method.clone(), api) {
        (Method::GET, Some("myself")) => match st.user(&user) {
            Some(u) => Reply::json(200, user_json(u, None)),
            None => Reply::error(401, NOT_AUTHENTICATED),
        },
        (Method::GET, Some("mypermissions")) => Reply::json(
            200,
            json!({ "permissions": { "USER_PICKER": {
                "id": "27", "key": "USER_PICKER", "name": "Browse users and groups",
                "type": "GLOBAL", "havePermission": true,
            }}}),
        ),
        (m, Some(a)) if a.starts_with("issue/") => {
            if software_refused(st, cx) {
                return Reply::error(403, NO_SOFTWARE);
            }
            let key = a.trim_start_matches("issue/").to_string();
            issue(st, req, m, &key)
        }
        (Method::GET, _)
            if path.starts_with("/rest/mywork/") && path.ends_with("/notification/count") =>
        {
            Reply::json(200, json!({ "count": 0 }))
        }
        _ => Reply::error(404, "null for uri: the simulator does not serve this path"),
    }
}

fn issue(st: &mut State, req: &Req, method: Method, key: &str) -> Reply {
    if key.is_empty() || key.contains('/') {
        return Reply::error(404, "Issue Does Not Exist");
    }
    match method {
        Method::GET => {
            let summary = st
                .items
                .get(key)
                .cloned()
                .unwrap_or_else(|| format!("Issue {key}"));
            Reply::json(
                200,
                json!({
                    "id": "10001",
                    "key": key,
                    "self": format!("/rest/api/2/issue/{key}"),
                    "fields": { "summary": summary, "status": { "name": "Open" } },
                }),
            )
        }
        Method::PUT => {
            let Some(body) = req.json() else {
                return Reply::error(400, "Unexpected body: expected JSON");
            };
            if let Some(s) = body.pointer("/fields/summary").and_then(Value::as_str) {
                st.items.insert(key.to_string(), s.to_string());
            }
            Reply::new(204)
        }
        _ => Reply::new(405),
    }
}

// ---- admin REST -----------------------------------------------------------------

fn admin(st: &mut State, req: &Req, cx: &mut Cx, api: &str) -> Reply {
    if let Some(status) = st.fail_admin {
        cx.shown = None;
        return Reply::error(status, "sim: the admin REST API is failing on purpose");
    }
    let caller = auth::admin(st, req);
    auth::show_admin(st, cx, &caller);
    match caller {
        AdminAuth::Ok(_) => {}
        AdminAuth::Unauthenticated => return Reply::error(401, NOT_AUTHENTICATED),
        AdminAuth::NotAdmin(_) => {
            return Reply::error(
                403,
                "You are not authorized to perform this operation. Administrator privileges are required.",
            )
        }
    }
    match (req.method.clone(), api) {
        (Method::POST, "group/user") => group_add(st, req),
        (Method::DELETE, "group/user") => group_remove(st, req),
        (Method::GET, "group/member") => group_members(st, req),
        (Method::GET, "user") => user(st, req),
        (Method::GET, "applicationrole") => {
            let mut roles = vec![role(st, Role::Software)];
            if st.service_enabled() {
                roles.push(role(st, Role::Service));
            }
            Reply::json(200, Value::Array(roles))
        }
        (Method::GET, a) if a.starts_with("applicationrole/") => {
            let key = a.trim_start_matches("applicationrole/");
            match st.role_of_key(key) {
                Some(r) => Reply::json(200, role(st, r)),
                None => Reply::error(
                    404,
                    &format!("The application role '{key}' does not exist."),
                ),
            }
        }
        (Method::DELETE, a) if a.starts_with("user/session/") => {
            let name = a.trim_start_matches("user/session/");
            if st.user(name).is_none() {
                return Reply::error(404, &format!("The user named '{name}' does not exist"));
            }
            st.end_sessions_of(name);
            Reply::new(204)
        }
        _ => Reply::new(405),
    }
}

fn group_add(st: &mut State, req: &Req) -> Reply {
    let Some(group) = req.q("groupname").map(str::to_string) else {
        return Reply::error(400, "Group name is required: ?groupname=");
    };
    let name = req
        .json()
        .and_then(|b| b.get("name").and_then(Value::as_str).map(str::to_string));
    let Some(user) = name else {
        return Reply::json(
            400,
            json!({ "errorMessages": [], "errors": { "name": "You must specify a user name: {\"name\":\"…\"}" } }),
        );
    };
    match st.rest_write(true, &user, &group) {
        Write::Done => {
            let g = st.group(&group).map_or(group.clone(), |g| g.name.clone());
            let size = st.members(&group).map_or(0, |m| m.len());
            Reply::json(
                201,
                json!({
                    "name": g,
                    "self": format!("/rest/api/2/group?groupname={}", web::query_value(&g)),
                    "users": { "size": size, "items": [], "max-results": 50, "start-index": 0, "end-index": 0 },
                    "expand": "users",
                }),
            )
            .header(
                "Location",
                format!("/rest/api/2/group?groupname={}", web::query_value(&g)),
            )
        }
        Write::Already => Reply::error(
            400,
            &format!("Cannot add user. '{user}' is already a member of '{group}'"),
        ),
        w => write_error(w, &user, &group),
    }
}

fn group_remove(st: &mut State, req: &Req) -> Reply {
    let (Some(group), Some(user)) = (req.q("groupname"), req.q("username")) else {
        return Reply::error(400, "Both ?groupname= and &username= are required");
    };
    match st.rest_write(false, user, group) {
        Write::Done => Reply::new(200),
        Write::NotMember => Reply::error(
            400,
            &format!("Cannot remove user '{user}' from group '{group}': the user is not a member"),
        ),
        w => write_error(w, user, group),
    }
}

fn write_error(w: Write, user: &str, group: &str) -> Reply {
    match w {
        Write::NoGroup => Reply::error(404, &format!("Specified group '{group}' does not exist.")),
        Write::NoUser => Reply::error(404, &format!("The user named '{user}' does not exist")),
        Write::ReadOnly => Reply::error(
            400,
            "Cannot update group membership: the user directory 'LDAP' is read-only",
        ),
        _ => Reply::error(500, "sim: unexpected group write outcome"),
    }
}

fn group_members(st: &State, req: &Req) -> Reply {
    let Some(group) = req.q("groupname") else {
        return Reply::error(400, "Group name is required: ?groupname=");
    };
    let inactive = req.q_bool("includeInactiveUsers");
    // Jira caps a page at 50, whatever the client asks for.
    let start = req.q_num("startAt", 0);
    let max = req.q_num("maxResults", 50).min(50);
    let Some((total, page)) = st.members_page(group, inactive, start, max) else {
        return Reply::error(404, &format!("The group '{group}' does not exist."));
    };
    let values: Vec<Value> = page.into_iter().map(|u| user_json(u, None)).collect();
    let is_last = start.saturating_add(values.len()) >= total;
    let base = format!(
        "/rest/api/2/group/member?groupname={}&includeInactiveUsers={inactive}",
        web::query_value(group)
    );
    let mut page = json!({
        "self": format!("{base}&startAt={start}&maxResults={max}"),
        "maxResults": max,
        "startAt": start,
        "total": total,
        "isLast": is_last,
        "values": values,
    });
    if !is_last {
        page["nextPage"] = json!(format!("{base}&startAt={}&maxResults={max}", start + max));
    }
    Reply::json(200, page)
}

fn user_json(u: &UserRec, groups: Option<Vec<String>>) -> Value {
    let mut v = json!({
        "self": format!("/rest/api/2/user?username={}", web::query_value(&u.name)),
        "key": u.key,
        "name": u.name,
        "emailAddress": format!("{}@example.com", u.name),
        "avatarUrls": {},
        "displayName": display_name(u),
        "active": u.active,
        "timeZone": "UTC",
    });
    if let Some(groups) = groups {
        let items: Vec<Value> = groups.iter().map(|g| json!({ "name": g })).collect();
        v["groups"] = json!({ "size": items.len(), "items": items });
    }
    v
}

fn user(st: &State, req: &Req) -> Reply {
    let name = req.q("username").unwrap_or("");
    let Some(u) = st.user(name) else {
        return Reply::error(404, &format!("The user named '{name}' does not exist"));
    };
    let expand = req.q("expand").unwrap_or("");
    let groups = expand
        .split(',')
        .any(|e| e.trim() == "groups")
        .then(|| st.groups_of(name));
    let mut v = user_json(u, groups);
    v["expand"] = json!("groups,applicationRoles");
    Reply::json(200, v)
}

fn role(st: &State, r: Role) -> Value {
    let groups = st.role_groups(r);
    let count = st.role_user_count(r);
    let (key, name, seats) = match r {
        Role::Software => (st.application.as_str(), "Jira Software", st.seats),
        Role::Service => (
            super::SERVICE_DESK_ROLE,
            "Jira Service Management",
            st.service_seats().unwrap_or(0),
        ),
    };
    json!({
        "key": key,
        "name": name,
        "groups": groups,
        "defaultGroups": groups.first().map(|g| vec![g.clone()]).unwrap_or_default(),
        "selectedByDefault": false,
        "defined": true,
        "numberOfSeats": seats,
        // Negative when the count is over the tier, as Jira reports it.
        "remainingSeats": i64::from(seats) - count as i64,
        "userCount": count,
        "userCountDescription": format!("{count} users"),
        "hasUnlimitedSeats": false,
        "platform": false,
    })
}
