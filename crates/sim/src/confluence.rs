//! Confluence Data Center, as `shared/ATLASSIAN.md` describes it: Seraph
//! logins at `/dologin.action` (remember-me cookie `seraph.confluence`), pages
//! that need application access, and the 8.x/9.x REST API for group
//! membership (`PUT`/`DELETE` → 204, idempotent) and the licence.

use super::auth::{self, AdminAuth, Cx, Login};
use super::state::{State, UserRec, Write};
use super::web::{self, escape, Reply, Req};
use http::Method;
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

const DASHBOARD: &str = "/index.action";
const BAD_PASSWORD: &str = "Sorry, your username and password are incorrect - please try again.";
const NO_PERMISSION: &str = "You do not have permission to use Confluence";
const CAPTCHA: &str = "Sorry, your userid is required to answer a CAPTCHA question correctly.";

pub(crate) fn route(st: &mut State, req: &Req, cx: &mut Cx) -> Reply {
    let path = req.path.as_str();
    if ["/s/", "/images/", "/download/resources/", "/favicon.ico"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        return Reply::text(200, "/* static resource */\n");
    }
    if let Some(r) = admin_api(st, req, cx) {
        return r;
    }
    match (req.method.clone(), path) {
        (Method::GET, "/status") => Reply::json(200, json!({ "state": "RUNNING" })),
        (Method::GET, "/login.action") => login_page(req.q("os_destination"), None),
        (Method::POST, "/dologin.action") => form_login(st, req, cx),
        (_, "/logout.action") => {
            auth::close_session(st, req, cx);
            Reply::redirect("/login.action?logout=true")
        }
        _ if cx.bad_credentials => Reply::json(
            401,
            json!({ "statusCode": 401, "message": "Basic authentication failed" }),
        ),
        (Method::GET, "/rest/api/user/current") => current_user(st, cx),
        (_, p) if p.starts_with("/rest/") => rest(st, req, cx),
        (Method::GET, "/") => Reply::redirect(DASHBOARD),
        (Method::GET, p)
            if p == DASHBOARD
                || p == "/dashboard.action"
                || p.starts_with("/display/")
                || p.starts_with("/pages/") =>
        {
            page(st, req, cx)
        }
        _ => Reply::html(404, "Page Not Found - Confluence", "<p>Page not found</p>"),
    }
}

fn decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

fn error(status: u16, message: &str) -> Reply {
    Reply::json(
        status,
        json!({
            "statusCode": status,
            "data": { "authorized": status != 403, "valid": true, "errors": [], "successful": false },
            "message": message,
        }),
    )
}

fn user_json(u: &UserRec) -> Value {
    json!({
        "type": "known",
        "username": u.name,
        "userKey": format!("8a7f808a{:024x}", u.id),
        "displayName": u.name,
        "_links": { "self": format!("/rest/api/user?username={}", web::query_value(&u.name)) },
    })
}

// ---- pages and logins -----------------------------------------------------------

fn login_page(dest: Option<&str>, error: Option<&str>) -> Reply {
    let error = error
        .map(|e| format!("<div class=\"aui-message error\">{}</div>\n", escape(e)))
        .unwrap_or_default();
    let dest = escape(&web::local_destination(dest, DASHBOARD));
    Reply::html(
        200,
        "Log In - Confluence",
        &format!(
            "{error}<form id=\"loginform\" method=\"post\" action=\"/dologin.action\">\n\
             <input type=\"text\" name=\"os_username\" id=\"os_username\">\n\
             <input type=\"password\" name=\"os_password\" id=\"os_password\">\n\
             <input type=\"checkbox\" name=\"os_cookie\" value=\"true\"> Remember me\n\
             <input type=\"hidden\" name=\"os_destination\" value=\"{dest}\">\n\
             <input type=\"submit\" id=\"loginButton\" value=\"Log in\">\n</form>"
        ),
    )
}

fn no_permission(status: u16) -> Reply {
    Reply::html(
        status,
        "Not Permitted - Confluence",
        &format!("<div class=\"aui-message warning\">{NO_PERMISSION}.</div>"),
    )
}

fn form_login(st: &mut State, req: &Req, cx: &mut Cx) -> Reply {
    let form = req.form();
    let user = Req::field(&form, "os_username").unwrap_or("");
    let password = Req::field(&form, "os_password").unwrap_or("");
    let remember = Req::field(&form, "os_cookie").is_some_and(|v| v == "true");
    let dest = web::local_destination(Req::field(&form, "os_destination"), DASHBOARD);
    match auth::check_login(st, user, password) {
        Login::Ok(u) => {
            auth::open_session(st, req, cx, &u, remember);
            cx.login_reason = Some("OK");
            Reply::redirect(&dest)
        }
        Login::BadPassword { .. } => {
            cx.login_reason = Some("AUTHENTICATED_FAILED");
            cx.shown = None;
            login_page(Some(&dest), Some(BAD_PASSWORD))
        }
        Login::Denied => {
            cx.login_reason = Some("AUTHENTICATION_DENIED");
            cx.shown = None;
            login_page(Some(&dest), Some(CAPTCHA))
        }
        Login::NoAccess => {
            cx.login_reason = Some("AUTHORISATION_FAILED");
            cx.shown = None;
            no_permission(200)
        }
    }
}

fn page(st: &State, req: &Req, cx: &Cx) -> Reply {
    if cx.user.is_some() && !cx.access {
        return no_permission(403);
    }
    let Some(user) = cx.authed().and_then(|u| st.user(u)) else {
        let mut dest = req.path.clone();
        if !req.query.is_empty() {
            let q: Vec<String> = req.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            dest = format!("{dest}?{}", q.join("&"));
        }
        return Reply::redirect(&format!(
            "/login.action?os_destination={}",
            web::query_value(&dest)
        ));
    };
    let title = req
        .q("pageId")
        .and_then(|id| st.items.get(id).cloned())
        .unwrap_or_else(|| {
            req.path
                .rsplit('/')
                .next()
                .unwrap_or("Page")
                .replace('+', " ")
        });
    Reply::html(
        200,
        &format!("{title} - Confluence"),
        &format!(
            "<meta name=\"ajs-remote-user\" content=\"{u}\">\n<h1 id=\"title-text\">{t}</h1>\n\
             <p>Logged in as <a id=\"user-menu-link\" data-username=\"{u}\">{u}</a></p>",
            u = escape(&user.name),
            t = escape(&title)
        ),
    )
}

/// Anonymous callers get an anonymous user (200), as Confluence answers.
fn current_user(st: &State, cx: &Cx) -> Reply {
    match cx.authed().and_then(|u| st.user(u)) {
        Some(u) => Reply::json(200, user_json(u)),
        None => Reply::json(
            200,
            json!({ "type": "anonymous", "displayName": "Anonymous", "_links": {} }),
        ),
    }
}

fn rest(st: &mut State, req: &Req, cx: &Cx) -> Reply {
    if cx.authed().is_none() {
        return error(401, "This resource requires authentication");
    }
    let path = req.path.as_str();
    if let Some(id) = path.strip_prefix("/rest/api/content/") {
        let id = id.trim_end_matches('/').to_string();
        if id.is_empty() || id.contains('/') {
            return error(404, "No content found");
        }
        if req.method == Method::PUT {
            let Some(body) = req.json() else {
                return error(400, "Could not parse the body as JSON");
            };
            if let Some(t) = body.get("title").and_then(Value::as_str) {
                st.items.insert(id.clone(), t.to_string());
            }
        }
        let title = st
            .items
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("Page {id}"));
        return Reply::json(200, json!({ "id": id, "type": "page", "title": title }));
    }
    if req.method == Method::GET
        && path.starts_with("/rest/mywork/")
        && path.ends_with("/notification/count")
    {
        return Reply::json(200, json!({ "count": 0 }));
    }
    error(404, "null for uri: the simulator does not serve this path")
}

// ---- admin REST -----------------------------------------------------------------

/// Which admin call a request is, with its decoded path parameters.
enum Call {
    Write {
        add: bool,
        user: String,
        group: String,
    },
    Members(String),
    MemberOf,
    User,
    Licence(String),
}

fn classify(req: &Req) -> Option<Call> {
    let path = req.path.as_str();
    if let Some(rest) = path.strip_prefix("/rest/api/user/") {
        if rest == "memberof" && req.method == Method::GET {
            return Some(Call::MemberOf);
        }
        // {username}/group/{groupName}
        let parts: Vec<&str> = rest.split('/').collect();
        if let [user, "group", group] = parts.as_slice() {
            let add = match req.method {
                Method::PUT => true,
                Method::DELETE => false,
                _ => return None,
            };
            return Some(Call::Write {
                add,
                user: decode(user),
                group: decode(group),
            });
        }
        return None;
    }
    if path == "/rest/api/user" && req.method == Method::GET {
        return Some(Call::User);
    }
    if let Some(rest) = path.strip_prefix("/rest/api/group/") {
        if let Some(group) = rest.strip_suffix("/member") {
            if req.method == Method::GET {
                return Some(Call::Members(decode(group)));
            }
        }
        return None;
    }
    path.strip_prefix("/rest/license/1.0/license/")
        .filter(|_| req.method == Method::GET)
        .map(|what| Call::Licence(what.to_string()))
}

fn admin_api(st: &mut State, req: &Req, cx: &mut Cx) -> Option<Reply> {
    let call = classify(req)?;
    if let Some(status) = st.fail_admin {
        cx.shown = None;
        return Some(error(
            status,
            "sim: the admin REST API is failing on purpose",
        ));
    }
    let caller = auth::admin(st, req);
    auth::show_admin(st, cx, &caller);
    match caller {
        AdminAuth::Ok(_) => {}
        AdminAuth::Unauthenticated => {
            return Some(error(401, "This resource requires authentication"))
        }
        AdminAuth::NotAdmin(_) => {
            return Some(error(
                403,
                "User is not permitted to manage users and groups",
            ))
        }
    }
    Some(match call {
        Call::Write { add, user, group } => write(st, add, &user, &group),
        Call::Members(group) => members(st, req, &group),
        Call::MemberOf => member_of(st, req),
        Call::User => match st.user(req.q("username").unwrap_or("")) {
            Some(u) => Reply::json(200, user_json(u)),
            None => error(404, "No user found with the given username"),
        },
        Call::Licence(what) => {
            let count = st.user_count() as i64;
            let seats = i64::from(st.seats);
            match what.as_str() {
                "userCount" => Reply::json(200, json!({ "count": count })),
                "maxUsers" => Reply::json(200, json!({ "count": seats })),
                "remainingSeats" => Reply::json(200, json!({ "count": seats - count })),
                _ => error(404, "No such licence resource"),
            }
        }
    })
}

fn write(st: &mut State, add: bool, user: &str, group: &str) -> Reply {
    match st.rest_write(add, user, group) {
        Write::Done => Reply::new(204),
        // Idempotent: adding a member or removing a non-member still succeeds.
        Write::Already | Write::NotMember => {
            st.record_noop_write(add, user, group);
            Reply::new(204)
        }
        Write::NoGroup => error(404, &format!("Group not found: {group}")),
        Write::NoUser => error(404, &format!("User not found: {user}")),
        // Status unconfirmed for Confluence; 400 like Jira, the message names the cause.
        Write::ReadOnly => error(
            400,
            "Cannot update group membership: the user directory 'LDAP' is read-only",
        ),
    }
}

fn members(st: &State, req: &Req, group: &str) -> Reply {
    let Some(list) = st.members(group) else {
        return error(404, &format!("Group not found: {group}"));
    };
    // Confluence caps a page at 200.
    let start = req.q_num("start", 0);
    let limit = req.q_num("limit", 200).min(200);
    let results: Vec<Value> = list
        .iter()
        .skip(start)
        .take(limit)
        .map(|u| user_json(u))
        .collect();
    let more = start.saturating_add(results.len()) < list.len();
    let base = format!("/rest/api/group/{}/member", web::query_value(group));
    let mut links = json!({ "self": base, "base": "", "context": "" });
    if more {
        links["next"] = json!(format!("{base}?limit={limit}&start={}", start + limit));
    }
    Reply::json(
        200,
        json!({
            "results": results,
            "start": start,
            "limit": limit,
            "size": results.len(),
            "_links": links,
        }),
    )
}

fn member_of(st: &State, req: &Req) -> Reply {
    let name = req.q("username").unwrap_or("");
    if st.user(name).is_none() {
        return error(404, "No user found with the given username");
    }
    let start = req.q_num("start", 0);
    let limit = req.q_num("limit", 200).min(200);
    let groups = st.groups_of(name);
    let results: Vec<Value> = groups
        .iter()
        .skip(start)
        .take(limit)
        .map(|g| json!({ "type": "group", "name": g }))
        .collect();
    Reply::json(
        200,
        json!({ "results": results, "start": start, "limit": limit, "size": results.len(), "_links": {} }),
    )
}
