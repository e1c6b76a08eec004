//! Bitbucket Data Center, as `shared/ATLASSIAN.md` describes it: form login
//! at `/j_atl_security_check` (`j_username`, `BITBUCKETSESSIONID`), git over
//! HTTP under `/scm/` with Basic auth, and the admin REST API
//! (`add-group`/`remove-group` with `context` = user and `itemName` = group).

use super::auth::{self, AdminAuth, Cx, Login};
use super::state::{State, UserRec, Write};
use super::web::{self, escape, Basic, Reply, Req};
use http::Method;
use serde_json::{json, Value};

const DASHBOARD: &str = "/dashboard";
const BAD_PASSWORD: &str = "Invalid username or password. Please try again.";
const NO_PERMISSION: &str = "You do not have permission to access Bitbucket";
const CAPTCHA: &str =
    "You have exceeded the maximum number of login attempts: a CAPTCHA must be answered.";

pub(crate) fn route(st: &mut State, req: &Req, cx: &mut Cx) -> Reply {
    let path = req.path.as_str();
    if ["/s/", "/images/", "/download/resources/", "/favicon.ico"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        return Reply::text(200, "/* static resource */\n");
    }
    if path.starts_with("/scm/") {
        return git(st, req, cx);
    }
    if let Some(api) = path
        .strip_prefix("/rest/api/1.0/admin/")
        .or_else(|| path.strip_prefix("/rest/api/latest/admin/"))
    {
        return admin(st, req, cx, api);
    }
    match (req.method.clone(), path) {
        (Method::GET, "/status") => Reply::json(200, json!({ "state": "RUNNING" })),
        (Method::GET, "/login") => login_page(req.q("next"), None),
        (Method::POST, "/j_atl_security_check") => form_login(st, req, cx),
        (_, "/j_atl_security_logout") => {
            auth::close_session(st, req, cx);
            Reply::redirect("/login?logout")
        }
        _ if cx.bad_credentials => error(
            401,
            "Authentication failed. Please check your credentials and try again.",
        ),
        (_, p) if p.starts_with("/rest/") => {
            if cx.authed().is_none() {
                error(
                    401,
                    "Authentication failed. Please check your credentials and try again.",
                )
            } else {
                error(404, "The simulator does not serve this resource")
            }
        }
        (Method::GET, "/") => Reply::redirect(DASHBOARD),
        (Method::GET, p)
            if p == DASHBOARD
                || p == "/profile"
                || p.starts_with("/projects/")
                || p.starts_with("/users/") =>
        {
            page(st, req, cx)
        }
        _ => Reply::html(404, "Page not found - Bitbucket", "<p>Page not found</p>"),
    }
}

fn error(status: u16, message: &str) -> Reply {
    Reply::json(
        status,
        json!({ "errors": [{ "context": null, "message": message, "exceptionName": null }] }),
    )
}

fn login_page(next: Option<&str>, error: Option<&str>) -> Reply {
    let error = error
        .map(|e| format!("<div class=\"aui-message error\">{}</div>\n", escape(e)))
        .unwrap_or_default();
    let next = escape(&web::local_destination(next, DASHBOARD));
    Reply::html(
        200,
        "Log in - Bitbucket",
        &format!(
            "{error}<form id=\"j_atl_security_form\" method=\"post\" action=\"/j_atl_security_check\">\n\
             <input type=\"text\" name=\"j_username\" id=\"j_username\">\n\
             <input type=\"password\" name=\"j_password\" id=\"j_password\">\n\
             <input type=\"checkbox\" name=\"_atl_remember_me\" value=\"on\"> Keep me logged in\n\
             <input type=\"hidden\" name=\"next\" value=\"{next}\">\n\
             <input type=\"submit\" id=\"submit\" value=\"Log in\">\n</form>"
        ),
    )
}

fn no_permission(status: u16) -> Reply {
    Reply::html(
        status,
        "Log in - Bitbucket",
        &format!("<div class=\"aui-message error\">{NO_PERMISSION}.</div>"),
    )
}

fn form_login(st: &mut State, req: &Req, cx: &mut Cx) -> Reply {
    let form = req.form();
    let user = Req::field(&form, "j_username").unwrap_or("");
    let password = Req::field(&form, "j_password").unwrap_or("");
    let remember = Req::field(&form, "_atl_remember_me").is_some_and(|v| v == "on");
    let next = web::local_destination(Req::field(&form, "next"), DASHBOARD);
    match auth::check_login(st, user, password) {
        Login::Ok(u) => {
            auth::open_session(st, req, cx, &u, remember);
            st.note_auth(&u);
            Reply::redirect(&next)
        }
        Login::BadPassword { .. } => {
            cx.shown = None;
            login_page(Some(&next), Some(BAD_PASSWORD))
        }
        Login::Denied => {
            cx.shown = None;
            login_page(Some(&next), Some(CAPTCHA))
        }
        Login::NoAccess => {
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
        return Reply::redirect(&format!("/login?next={}", web::query_value(&req.path)));
    };
    Reply::html(
        200,
        "Bitbucket",
        &format!(
            "<meta name=\"application-name\" content=\"Bitbucket\">\n\
             <p>Logged in as <span id=\"current-user\" data-username=\"{u}\">{u}</span></p>\n\
             <h1>{p}</h1>",
            u = escape(&user.name),
            p = escape(&req.path)
        ),
    )
}

/// Git over HTTP: Basic auth (or a token) on every request, never a cookie;
/// a refusal is a 401 challenge the git CLI understands.
fn git(st: &mut State, req: &Req, cx: &mut Cx) -> Reply {
    let user = match req.basic() {
        Basic::Credentials(u, p) => st.check_password(&u, &p),
        Basic::Malformed => None,
        Basic::Absent => req.bearer().and_then(|t| st.token_user(t)),
    };
    let Some(user) = user.filter(|u| st.has_access(u)) else {
        cx.shown = None;
        return Reply::text(401, "Authentication failed\n")
            .header("WWW-Authenticate", "Basic realm=\"Atlassian Bitbucket\"");
    };
    st.note_auth(&user);
    cx.shown = Some(user);
    let service = req.q("service").unwrap_or("git-upload-pack");
    if req.path.ends_with("/info/refs") && req.method == Method::GET {
        // A minimal advertisement of an empty repository.
        let announce = format!("# service={service}\n");
        let caps = format!(
            "{} capabilities^{{}}\0report-status delete-refs side-band-64k\n",
            "0".repeat(40)
        );
        let body = format!(
            "{}{announce}0000{}{caps}0000",
            pkt_len(&announce),
            pkt_len(&caps)
        );
        let mut r = Reply::text(200, body);
        r.content_type = None;
        return r
            .header(
                "Content-Type",
                format!("application/x-{service}-advertisement"),
            )
            .header("Cache-Control", "no-cache");
    }
    if req.method == Method::POST {
        let service = req.path.rsplit('/').next().unwrap_or("git-upload-pack");
        let mut r = Reply::text(200, "0000");
        r.content_type = None;
        return r.header("Content-Type", format!("application/x-{service}-result"));
    }
    Reply::text(404, "Not found\n")
}

fn pkt_len(line: &str) -> String {
    format!("{:04x}", line.len() + 4)
}

// ---- admin REST -----------------------------------------------------------------

fn admin(st: &mut State, req: &Req, cx: &mut Cx, api: &str) -> Reply {
    if let Some(status) = st.fail_admin {
        cx.shown = None;
        return error(status, "sim: the admin REST API is failing on purpose");
    }
    let caller = auth::admin(st, req);
    auth::show_admin(st, cx, &caller);
    match caller {
        AdminAuth::Ok(_) => {}
        AdminAuth::Unauthenticated => {
            return error(
                401,
                "Authentication failed. Please check your credentials and try again.",
            )
        }
        AdminAuth::NotAdmin(u) => {
            return error(
                403,
                &format!(
                    "You are not permitted to access this resource ({u} is not an administrator)"
                ),
            )
        }
    }
    match (req.method.clone(), api) {
        (Method::POST, "users/add-group") => write(st, req, true),
        (Method::POST, "users/remove-group") => write(st, req, false),
        (Method::GET, "groups/more-members") => members(st, req),
        (Method::GET, "users") => users(st, req),
        (Method::GET, "license") => licence(st),
        _ => error(404, "The simulator does not serve this admin resource"),
    }
}

fn write(st: &mut State, req: &Req, add: bool) -> Reply {
    let body = req.json().unwrap_or(Value::Null);
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    // context = the user, itemName = the group (Atlassian's own example swaps
    // them; a client that does the same meets a 404 here).
    let (Some(user), Some(group)) = (field("context"), field("itemName")) else {
        return error(
            400,
            "Both \"context\" (the user) and \"itemName\" (the group) are required",
        );
    };
    match st.rest_write(add, &user, &group) {
        Write::Done => Reply::new(200),
        Write::Already | Write::NotMember => {
            st.record_noop_write(add, &user, &group);
            Reply::new(200)
        }
        Write::NoUser => error(404, &format!("User {user} does not exist.")),
        Write::NoGroup => error(404, &format!("Group {group} does not exist.")),
        Write::ReadOnly => error(
            400,
            "Cannot update group membership: the user directory 'LDAP' is read-only",
        ),
    }
}

fn user_json(st: &State, u: &UserRec) -> Value {
    let mut v = json!({
        "name": u.name,
        "emailAddress": format!("{}@example.com", u.name),
        "id": u.id,
        "displayName": u.name,
        "active": u.active,
        "slug": u.name.to_lowercase(),
        "type": "NORMAL",
        "directoryName": "Bitbucket Internal Directory",
        "deletable": true,
        "mutableDetails": true,
        "mutableGroups": true,
    });
    if let Some(t) = st.last_auth(&u.name) {
        v["lastAuthenticationTimestamp"] = json!(t);
    }
    v
}

/// One page in Bitbucket's shape; `limit` defaults to 25 and is capped at 1000.
fn page_of(req: &Req, all: Vec<Value>) -> Reply {
    let start = req.q_num("start", 0);
    let limit = req.q_num("limit", 25).min(1000);
    let total = all.len();
    let values: Vec<Value> = all.into_iter().skip(start).take(limit).collect();
    let last = start.saturating_add(values.len()) >= total;
    let mut page = json!({
        "size": values.len(),
        "limit": limit,
        "isLastPage": last,
        "start": start,
        "values": values,
    });
    if !last {
        page["nextPageStart"] = json!(start + limit);
    }
    Reply::json(200, page)
}

fn members(st: &State, req: &Req) -> Reply {
    let group = req.q("context").unwrap_or("");
    let Some(list) = st.members(group) else {
        return error(404, &format!("Group {group} does not exist."));
    };
    let filter = req.q("filter").unwrap_or("").to_lowercase();
    let all = list
        .into_iter()
        .filter(|u| u.name.to_lowercase().contains(&filter))
        .map(|u| user_json(st, u))
        .collect();
    page_of(req, all)
}

fn users(st: &State, req: &Req) -> Reply {
    let filter = req.q("filter").unwrap_or("").to_lowercase();
    let all = st
        .users()
        .filter(|u| u.name.to_lowercase().contains(&filter))
        .map(|u| user_json(st, u))
        .collect();
    page_of(req, all)
}

fn licence(st: &State) -> Reply {
    Reply::json(
        200,
        json!({
            "creationDate": 1_700_000_000_000u64,
            "purchaseDate": 1_700_000_000_000u64,
            "expiryDate": 4_102_444_800_000u64,
            "maximumNumberOfUsers": st.seats,
            "unlimitedNumberOfUsers": false,
            "serverId": "SIM-0000-0000-0000",
            "supportEntitlementNumber": "SEN-SIM",
            "status": {
                "serverId": "SIM-0000-0000-0000",
                "currentNumberOfUsers": st.user_count(),
            },
        }),
    )
}
