//! Crowd's usermanagement REST API over the same users and groups, served
//! when `SimConfig::crowd_apps` is not empty: the app then reads its groups
//! from "Crowd", so a write here changes who has access in the app at once.
//! Callers authenticate as a Crowd application (Basic auth with the
//! application's name and password), never as a user.

use super::state::{State, Write};
use super::web::{self, Basic, Reply, Req};
use http::Method;
use serde_json::{json, Value};

const PREFIX: &str = "/rest/usermanagement/1/";

/// `None` when the request is not for Crowd (or Crowd is off).
pub(crate) fn route(st: &mut State, req: &Req) -> Option<Reply> {
    if st.crowd_apps.is_empty() {
        return None;
    }
    let api = req.path.strip_prefix(PREFIX)?;
    if let Some(status) = st.fail_admin {
        return Some(error(
            status,
            "OPERATION_FAILED",
            "sim: the admin REST API is failing on purpose",
        ));
    }
    let app_ok = matches!(req.basic(), Basic::Credentials(app, pw)
        if st.crowd_apps.get(&app).is_some_and(|p| *p == pw));
    if !app_ok {
        return Some(
            error(
                401,
                "APPLICATION_ACCESS_DENIED",
                "Application failed to authenticate",
            )
            .header("WWW-Authenticate", "Basic realm=\"Crowd REST Service\""),
        );
    }
    Some(match (req.method.clone(), api) {
        (Method::POST, "group/user/direct") => add(st, req),
        (Method::DELETE, "group/user/direct") => remove(st, req),
        (Method::GET, "group/user/direct") => members(st, req),
        (Method::GET, "user") => user(st, req),
        (Method::GET, "user/group/direct") => groups_of(st, req),
        _ => error(
            404,
            "OPERATION_FAILED",
            "The simulator does not serve this resource",
        ),
    })
}

fn error(status: u16, reason: &str, message: &str) -> Reply {
    Reply::json(status, json!({ "reason": reason, "message": message }))
}

fn add(st: &mut State, req: &Req) -> Reply {
    let Some(group) = req.q("groupname").map(str::to_string) else {
        return error(400, "INVALID_GROUP", "groupname is required");
    };
    let Some(user) = req
        .json()
        .and_then(|b| b.get("name").and_then(Value::as_str).map(str::to_string))
    else {
        return error(
            400,
            "INVALID_USER",
            "the body must be {\"name\":\"<user>\"}",
        );
    };
    match st.rest_write(true, &user, &group) {
        Write::Done => Reply::new(201).header(
            "Location",
            format!(
                "{PREFIX}group/user/direct?groupname={}&username={}",
                web::query_value(&group),
                web::query_value(&user)
            ),
        ),
        Write::NoUser => error(
            400,
            "USER_NOT_FOUND",
            &format!("User <{user}> does not exist"),
        ),
        Write::NoGroup => error(
            404,
            "GROUP_NOT_FOUND",
            &format!("Group <{group}> does not exist"),
        ),
        Write::Already => error(
            409,
            "MEMBERSHIP_ALREADY_EXISTS",
            &format!("User <{user}> is already a direct member of <{group}>"),
        ),
        Write::ReadOnly => read_only(),
        Write::NotMember => error(500, "OPERATION_FAILED", "sim: unexpected outcome"),
    }
}

fn read_only() -> Reply {
    error(
        403,
        "APPLICATION_PERMISSION_DENIED",
        "Cannot update group membership: the user directory 'LDAP' is read-only",
    )
}

fn remove(st: &mut State, req: &Req) -> Reply {
    let (Some(group), Some(user)) = (req.q("groupname"), req.q("username")) else {
        return error(400, "INVALID_GROUP", "groupname and username are required");
    };
    match st.rest_write(false, user, group) {
        Write::Done => Reply::new(204),
        Write::NoUser => error(
            404,
            "USER_NOT_FOUND",
            &format!("User <{user}> does not exist"),
        ),
        Write::NoGroup => error(
            404,
            "GROUP_NOT_FOUND",
            &format!("Group <{group}> does not exist"),
        ),
        Write::NotMember => error(
            404,
            "MEMBERSHIP_NOT_FOUND",
            &format!("User <{user}> is not a direct member of <{group}>"),
        ),
        Write::ReadOnly => read_only(),
        Write::Already => error(500, "OPERATION_FAILED", "sim: unexpected outcome"),
    }
}

fn members(st: &State, req: &Req) -> Reply {
    let group = req.q("groupname").unwrap_or("");
    let Some(list) = st.members(group) else {
        return error(
            404,
            "GROUP_NOT_FOUND",
            &format!("Group <{group}> does not exist"),
        );
    };
    let start = req.q_num("start-index", 0);
    let max = req.q_num("max-results", 1000);
    let users: Vec<Value> = list
        .iter()
        .skip(start)
        .take(max)
        .map(|u| {
            json!({
                "name": u.name,
                "link": { "href": format!("{PREFIX}user?username={}", web::query_value(&u.name)), "rel": "self" },
            })
        })
        .collect();
    Reply::json(200, json!({ "expand": "user", "users": users }))
}

fn user(st: &State, req: &Req) -> Reply {
    let name = req.q("username").unwrap_or("");
    match st.user(name) {
        Some(u) => Reply::json(
            200,
            json!({
                "name": u.name,
                "active": u.active,
                "display-name": u.name,
                "email": format!("{}@example.com", u.name),
                "key": format!("{}:{}", 32769, u.id),
            }),
        ),
        None => error(
            404,
            "USER_NOT_FOUND",
            &format!("User <{name}> does not exist"),
        ),
    }
}

fn groups_of(st: &State, req: &Req) -> Reply {
    let name = req.q("username").unwrap_or("");
    if st.user(name).is_none() {
        return error(
            404,
            "USER_NOT_FOUND",
            &format!("User <{name}> does not exist"),
        );
    }
    let groups: Vec<Value> = st
        .groups_of(name)
        .iter()
        .map(|g| json!({ "name": g }))
        .collect();
    Reply::json(200, json!({ "expand": "group", "groups": groups }))
}
