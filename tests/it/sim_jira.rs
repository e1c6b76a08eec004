//! The Jira simulator over real sockets: each documented behaviour iumgate's
//! gate and directory client rely on (shared/ATLASSIAN.md).

use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig, SimUser};
use reqwest::header::HeaderMap;
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ACCESS: &str = "IUM_access_software";
const IUM_USERS: &str = "IUM_user_software";

fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn demo() -> Sim {
    let mut cfg = SimConfig::demo(Product::Jira);
    cfg.tokens.push(("power1-token".into(), "power1".into()));
    Sim::start(cfg).await.unwrap()
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).map(|v| v.to_str().unwrap().to_string())
}

/// The value of cookie `name` set by this response, with its attributes.
fn set_cookie(h: &HeaderMap, name: &str) -> Option<String> {
    h.get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with(&format!("{name}=")))
}

fn cookie_value(h: &HeaderMap, name: &str) -> Option<String> {
    let c = set_cookie(h, name)?;
    let v = c[name.len() + 1..].split(';').next()?.to_string();
    (!v.is_empty()).then_some(v)
}

async fn form_login(sim: &Sim, user: &str, pw: &str, remember: bool, dest: &str) -> Response {
    let mut form = vec![
        ("os_username", user),
        ("os_password", pw),
        ("os_destination", dest),
    ];
    if remember {
        form.push(("os_cookie", "true"));
    }
    client()
        .post(format!("{}/login.jsp", sim.url()))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// Logs in and returns the JSESSIONID.
async fn session_of(sim: &Sim, user: &str) -> String {
    let r = form_login(sim, user, "demo", false, "/").await;
    assert_eq!(r.status(), StatusCode::FOUND, "login of {user}");
    cookie_value(r.headers(), "JSESSIONID").unwrap()
}

async fn get_with_cookie(sim: &Sim, path: &str, cookie: &str) -> Response {
    client()
        .get(format!("{}{path}", sim.url()))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
}

fn admin_req(c: &Client, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
    c.request(method, url)
        .basic_auth("iumgate-admin", Some("demo"))
}

async fn add(sim: &Sim, user: &str, group: &str) -> Response {
    admin_req(
        &client(),
        reqwest::Method::POST,
        format!("{}/rest/api/2/group/user?groupname={group}", sim.url()),
    )
    .json(&json!({ "name": user }))
    .send()
    .await
    .unwrap()
}

async fn remove(sim: &Sim, user: &str, group: &str) -> Response {
    admin_req(
        &client(),
        reqwest::Method::DELETE,
        format!(
            "{}/rest/api/2/group/user?groupname={group}&username={user}",
            sim.url()
        ),
    )
    .send()
    .await
    .unwrap()
}

async fn error_message(r: Response) -> String {
    let v: Value = r.json().await.unwrap();
    v["errorMessages"][0]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

// ---- logins ---------------------------------------------------------------------

#[tokio::test]
async fn login_with_access_redirects_with_a_new_session_and_reason_ok() {
    let sim = demo().await;
    let r = form_login(&sim, "power1", "demo", false, "/browse/ABC-1").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let h = r.headers();
    assert_eq!(header(h, "location").as_deref(), Some("/browse/ABC-1"));
    assert_eq!(header(h, "x-seraph-loginreason").as_deref(), Some("OK"));
    assert_eq!(header(h, "x-ausername").as_deref(), Some("power1"));
    assert!(header(h, "x-asessionid").is_some());
    assert!(header(h, "x-arequestid").is_some());
    let c = set_cookie(h, "JSESSIONID").unwrap();
    assert!(c.contains("HttpOnly") && c.contains("Path=/"), "{c}");
    assert!(set_cookie(h, "seraph.rememberme.cookie").is_none());

    let sid = cookie_value(h, "JSESSIONID").unwrap();
    let page = get_with_cookie(&sim, "/browse/ABC-1", &format!("JSESSIONID={sid}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        header(page.headers(), "x-ausername").as_deref(),
        Some("power1")
    );
    let text = page.text().await.unwrap();
    assert!(text.contains("ABC-1") && text.contains("power1"), "{text}");
}

#[tokio::test]
async fn login_without_destination_goes_to_the_dashboard_and_usernames_ignore_case() {
    let sim = demo().await;
    let r = client()
        .post(format!("{}/login.jsp", sim.url()))
        .form(&[("os_username", "POWER2"), ("os_password", "demo")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        header(r.headers(), "location").as_deref(),
        Some("/secure/Dashboard.jspa")
    );
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("power2")
    );
}

#[tokio::test]
async fn wrong_password_or_unknown_user_is_authenticated_failed() {
    let sim = demo().await;
    for (user, pw) in [("power1", "nope"), ("nobody", "demo")] {
        let r = form_login(&sim, user, pw, true, "/").await;
        assert_eq!(r.status(), StatusCode::OK, "{user}");
        let h = r.headers().clone();
        assert_eq!(
            header(&h, "x-seraph-loginreason").as_deref(),
            Some("AUTHENTICATED_FAILED")
        );
        assert_eq!(header(&h, "x-ausername").as_deref(), Some("anonymous"));
        assert!(set_cookie(&h, "JSESSIONID").is_none());
        assert!(set_cookie(&h, "seraph.rememberme.cookie").is_none());
        let text = r.text().await.unwrap();
        assert!(
            text.contains("os_username") && text.contains("incorrect"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn right_password_without_access_is_authorisation_failed_until_granted() {
    let sim = demo().await;
    let r = form_login(&sim, "casual01", "demo", false, "/browse/ABC-1").await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert_eq!(
        header(&h, "x-seraph-loginreason").as_deref(),
        Some("AUTHORISATION_FAILED")
    );
    assert_eq!(header(&h, "x-ausername").as_deref(), Some("anonymous"));
    assert!(set_cookie(&h, "JSESSIONID").is_none());
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("You do not have a permission to log in"));

    // An inactive user with access is refused the same way.
    sim.add_to_group("power3", ACCESS);
    sim.set_active("power3", false);
    let r = form_login(&sim, "power3", "demo", false, "/").await;
    assert_eq!(
        header(r.headers(), "x-seraph-loginreason").as_deref(),
        Some("AUTHORISATION_FAILED")
    );

    sim.add_to_group("casual01", ACCESS);
    let r = form_login(&sim, "casual01", "demo", false, "/browse/ABC-1").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("casual01")
    );
}

#[tokio::test]
async fn access_removal_takes_effect_at_once_on_an_open_session() {
    let sim = demo().await;
    sim.add_to_group("casual02", ACCESS);
    let cookie = format!("JSESSIONID={}", session_of(&sim, "casual02").await);
    let r = get_with_cookie(&sim, "/browse/ABC-2", &cookie).await;
    assert_eq!(r.status(), StatusCode::OK);

    sim.remove_from_group("casual02", ACCESS);
    let r = get_with_cookie(&sim, "/browse/ABC-2", &cookie).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("anonymous")
    );
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("You do not have a permission to log in"));
    let r = get_with_cookie(&sim, "/rest/api/2/issue/ABC-2", &cookie).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A grant takes effect at once too, on the same session.
    sim.add_to_group("casual02", ACCESS);
    let r = get_with_cookie(&sim, "/rest/api/2/issue/ABC-2", &cookie).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("casual02")
    );
}

#[tokio::test]
async fn anonymous_page_requests_go_to_the_login_page_with_their_destination() {
    let sim = demo().await;
    let r = client()
        .get(format!("{}/browse/ABC-1", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        header(r.headers(), "location").as_deref(),
        Some("/login.jsp?os_destination=/browse/ABC-1")
    );
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("anonymous")
    );
    assert!(header(r.headers(), "x-arequestid").is_some());

    let r = client()
        .get(format!("{}/login.jsp", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("name=\"os_password\""));

    // Static resources need no login and still name the (anonymous) user.
    let r = client()
        .get(format!("{}/s/abc/_/batch.js", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("anonymous")
    );
}

#[tokio::test]
async fn remember_me_brings_a_returning_user_back_with_a_new_session() {
    let sim = demo().await;
    let r = form_login(&sim, "power1", "demo", true, "/").await;
    let remember = cookie_value(r.headers(), "seraph.rememberme.cookie").unwrap();
    let first_sid = cookie_value(r.headers(), "JSESSIONID").unwrap();

    let r = get_with_cookie(
        &sim,
        "/browse/ABC-1",
        &format!("seraph.rememberme.cookie={remember}"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("power1")
    );
    let new_sid = cookie_value(r.headers(), "JSESSIONID").unwrap();
    assert_ne!(new_sid, first_sid);

    // Logout ends the session and the remember-me token and clears both.
    let both = format!("JSESSIONID={new_sid}; seraph.rememberme.cookie={remember}");
    let r = get_with_cookie(&sim, "/secure/Logout!default.jspa", &both).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        header(r.headers(), "location").as_deref(),
        Some("/login.jsp")
    );
    for name in ["JSESSIONID", "seraph.rememberme.cookie"] {
        let c = set_cookie(r.headers(), name).unwrap();
        assert!(c.contains("Max-Age=0"), "{c}");
    }
    let r = get_with_cookie(&sim, "/browse/ABC-1", &both).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("anonymous")
    );
}

#[tokio::test]
async fn remember_me_of_a_user_without_access_opens_no_session() {
    let sim = demo().await;
    sim.add_to_group("casual03", ACCESS);
    let r = form_login(&sim, "casual03", "demo", true, "/").await;
    let remember = cookie_value(r.headers(), "seraph.rememberme.cookie").unwrap();
    sim.remove_from_group("casual03", ACCESS);
    let r = get_with_cookie(
        &sim,
        "/browse/ABC-1",
        &format!("seraph.rememberme.cookie={remember}"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(r.headers(), "JSESSIONID").is_none());
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("anonymous")
    );
}

#[tokio::test]
async fn slash_logout_clears_the_session_too() {
    let sim = demo().await;
    let sid = session_of(&sim, "power2").await;
    let r = get_with_cookie(&sim, "/logout", &format!("JSESSIONID={sid}")).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(set_cookie(r.headers(), "JSESSIONID")
        .unwrap()
        .contains("Max-Age=0"));
    let r = get_with_cookie(&sim, "/rest/api/2/issue/A-1", &format!("JSESSIONID={sid}")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn gadget_login_answers_json_with_the_same_headers() {
    let sim = demo().await;
    let url = format!("{}/rest/gadget/1.0/login", sim.url());
    let r = client()
        .post(&url)
        .form(&[("os_username", "power1"), ("os_password", "demo")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(r.headers(), "x-seraph-loginreason").as_deref(),
        Some("OK")
    );
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("power1")
    );
    assert!(cookie_value(r.headers(), "JSESSIONID").is_some());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["loginSucceeded"], true);

    let r = client()
        .post(&url)
        .form(&[("os_username", "casual01"), ("os_password", "demo")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(r.headers(), "x-seraph-loginreason").as_deref(),
        Some("AUTHORISATION_FAILED")
    );
    assert!(cookie_value(r.headers(), "JSESSIONID").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["loginSucceeded"], false);
}

#[tokio::test]
async fn rest_auth_session_logs_in_reports_and_logs_out() {
    let sim = demo().await;
    let url = format!("{}/rest/auth/1/session", sim.url());
    let c = client();
    let r = c
        .post(&url)
        .json(&json!({ "username": "power3", "password": "demo" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(r.headers(), "x-seraph-loginreason").as_deref(),
        Some("OK")
    );
    let sid = cookie_value(r.headers(), "JSESSIONID").unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["session"]["name"], "JSESSIONID");
    assert_eq!(v["session"]["value"], sid.as_str());

    let cookie = format!("JSESSIONID={sid}");
    let r = c.get(&url).header("Cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "power3");

    let r = c
        .delete(&url)
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c.get(&url).header("Cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    for (user, reason) in [
        ("nobody", "AUTHENTICATED_FAILED"),
        ("casual01", "AUTHORISATION_FAILED"),
    ] {
        let r = c
            .post(&url)
            .json(&json!({ "username": user, "password": "demo" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{user}");
        assert_eq!(
            header(r.headers(), "x-seraph-loginreason").as_deref(),
            Some(reason)
        );
        assert!(cookie_value(r.headers(), "JSESSIONID").is_none());
    }
}

#[tokio::test]
async fn basic_auth_and_tokens_name_the_user_only_with_access() {
    let sim = demo().await;
    let url = format!("{}/rest/api/2/issue/ABC-9", sim.url());
    let c = client();
    let r = c
        .get(&url)
        .basic_auth("power1", Some("demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("power1")
    );
    assert_eq!(r.json::<Value>().await.unwrap()["key"], "ABC-9");

    let r = c
        .get(&url)
        .bearer_auth("power1-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("power1")
    );

    let r = c
        .get(&url)
        .bearer_auth("no-such-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get(&url)
        .basic_auth("power1", Some("bad"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get(&url)
        .basic_auth("casual01", Some("demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("anonymous")
    );

    // PUT edits the issue; the polling endpoint answers a count.
    let r = c
        .put(&url)
        .basic_auth("power1", Some("demo"))
        .json(&json!({ "fields": { "summary": "Renamed" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c
        .get(&url)
        .basic_auth("power1", Some("demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["fields"]["summary"],
        "Renamed"
    );
    let r = c
        .get(format!("{}/rest/mywork/1.0/notification/count", sim.url()))
        .basic_auth("power1", Some("demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({ "count": 0 }));
}

// ---- admin REST --------------------------------------------------------------------

#[tokio::test]
async fn group_add_answers_201_then_400_when_already_a_member() {
    let sim = demo().await;
    let r = add(&sim, "casual05", ACCESS).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("iumgate-admin")
    );
    assert!(sim.has_access("casual05"));
    assert_eq!(sim.members(ACCESS), vec!["casual05"]);

    let r = add(&sim, "CASUAL05", ACCESS).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        error_message(r).await,
        format!("Cannot add user. 'CASUAL05' is already a member of '{ACCESS}'")
    );
    assert_eq!(
        sim.group_writes(),
        vec![(
            "add".to_string(),
            "casual05".to_string(),
            ACCESS.to_string()
        )]
    );
}

#[tokio::test]
async fn group_writes_answer_404_for_a_missing_group_or_user() {
    let sim = demo().await;
    assert_eq!(
        add(&sim, "casual05", "no-such-group").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        add(&sim, "nobody", ACCESS).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        remove(&sim, "casual05", "no-such-group").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        remove(&sim, "nobody", ACCESS).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(sim.group_writes().is_empty());
}

#[tokio::test]
async fn group_remove_answers_200_then_400_when_not_a_member() {
    let sim = demo().await;
    sim.add_to_group("casual06", ACCESS);
    let r = remove(&sim, "casual06", ACCESS).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!sim.has_access("casual06"));
    assert_eq!(
        remove(&sim, "casual06", ACCESS).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        sim.group_writes(),
        vec![(
            "remove".to_string(),
            "casual06".to_string(),
            ACCESS.to_string()
        )]
    );
}

#[tokio::test]
async fn admin_rest_needs_admin_credentials_401_or_403() {
    let sim = demo().await;
    let url = format!("{}/rest/api/2/group/user?groupname={ACCESS}", sim.url());
    let c = client();
    let body = json!({ "name": "casual07" });
    let r = c.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .post(&url)
        .basic_auth("iumgate-admin", Some("bad"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .post(&url)
        .basic_auth("power1", Some("demo"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(&url)
        .bearer_auth("power1-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A cookie session is not enough (WebSudo): only Basic or a token.
    let sid = session_of(&sim, "power1").await;
    let r = c
        .post(&url)
        .header("Cookie", format!("JSESSIONID={sid}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!sim.has_access("casual07"));

    let r = c
        .post(&url)
        .bearer_auth("demo-admin-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(sim.has_access("casual07"));
}

#[tokio::test]
async fn members_are_paged_and_inactive_users_need_asking_for() {
    let sim = demo().await;
    sim.set_active("casual04", false);
    let c = client();
    let mut names = Vec::new();
    let mut start = 0;
    let mut pages = 0;
    loop {
        let r = admin_req(
            &c,
            reqwest::Method::GET,
            format!(
                "{}/rest/api/2/group/member?groupname={IUM_USERS}&includeInactiveUsers=true&startAt={start}&maxResults=7",
                sim.url()
            ),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["total"], 20);
        assert_eq!(v["startAt"], start);
        assert_eq!(v["maxResults"], 7);
        let values = v["values"].as_array().unwrap();
        for u in values {
            assert!(u["key"].as_str().unwrap().starts_with("JIRAUSER"));
            assert!(u["displayName"].is_string());
            names.push((
                u["name"].as_str().unwrap().to_string(),
                u["active"].as_bool().unwrap(),
            ));
        }
        pages += 1;
        start += values.len();
        if v["isLast"] == true {
            break;
        }
        assert_eq!(values.len(), 7);
        assert!(pages < 10, "paging never ended");
    }
    assert_eq!(pages, 3);
    let listed: Vec<String> = names.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(listed, sim.members(IUM_USERS));
    assert!(names.contains(&("casual04".to_string(), false)));

    let r = admin_req(
        &c,
        reqwest::Method::GET,
        format!(
            "{}/rest/api/2/group/member?groupname={IUM_USERS}",
            sim.url()
        ),
    )
    .send()
    .await
    .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["total"], 19);
    assert_eq!(v["isLast"], true);

    let r = admin_req(
        &c,
        reqwest::Method::GET,
        format!("{}/rest/api/2/group/member?groupname=nope", sim.url()),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn member_pages_are_capped_at_fifty() {
    let mut cfg = SimConfig::demo(Product::Jira);
    for i in 0..60 {
        cfg.users
            .push(SimUser::new(&format!("bulk{i:02}"), &["bulk"]));
    }
    let sim = Sim::start(cfg).await.unwrap();
    let r = admin_req(
        &client(),
        reqwest::Method::GET,
        format!(
            "{}/rest/api/2/group/member?groupname=bulk&maxResults=1000",
            sim.url()
        ),
    )
    .send()
    .await
    .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["values"].as_array().unwrap().len(), 50);
    assert_eq!(v["isLast"], false);
    assert_eq!(v["total"], 60);
}

#[tokio::test]
async fn user_lookup_expands_groups_and_answers_404_for_strangers() {
    let sim = demo().await;
    let c = client();
    let r = admin_req(
        &c,
        reqwest::Method::GET,
        format!(
            "{}/rest/api/2/user?username=Casual08&expand=groups",
            sim.url()
        ),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["name"], "casual08");
    assert_eq!(v["active"], true);
    assert_ne!(v["key"], "casual08", "keys are JIRAUSERnnnn, not names");
    assert_eq!(v["groups"]["size"], 1);
    assert_eq!(v["groups"]["items"][0]["name"], IUM_USERS);

    let r = admin_req(
        &c,
        reqwest::Method::GET,
        format!("{}/rest/api/2/user?username=nobody", sim.url()),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn applicationrole_counts_distinct_active_users_honestly() {
    let sim = demo().await;
    let role = || async {
        let r = admin_req(
            &client(),
            reqwest::Method::GET,
            format!("{}/rest/api/2/applicationrole", sim.url()),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        v[0].clone()
    };
    let v = role().await;
    assert_eq!(v["key"], "jira-software");
    assert_eq!(v["numberOfSeats"], 10);
    assert_eq!(v["userCount"], 3);
    assert_eq!(v["remainingSeats"], 7);
    assert_eq!(v["hasUnlimitedSeats"], false);
    assert_eq!(v["groups"], json!(["jira-software-users", ACCESS]));
    assert_eq!(v["defaultGroups"], json!(["jira-software-users"]));

    // A power user also in the access group counts once; inactive users not at all.
    sim.add_to_group("power1", ACCESS);
    sim.add_to_group("casual09", ACCESS);
    sim.set_active("power2", false);
    let v = role().await;
    assert_eq!(v["userCount"], 3);

    // Over the tier: Jira lets the count exceed it and says so.
    for i in 10..=20 {
        sim.add_to_group(&format!("casual{i}"), ACCESS);
    }
    let v = role().await;
    assert_eq!(v["userCount"], 14);
    assert_eq!(v["remainingSeats"], -4);
    assert_eq!(sim.peak_licensed(), 14);
    assert_eq!(sim.licensed_count(), 14);
}

#[tokio::test]
async fn read_only_directory_refuses_group_writes_with_400() {
    let sim = demo().await;
    sim.set_read_only(true);
    let r = add(&sim, "casual10", ACCESS).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        error_message(r).await,
        "Cannot update group membership: the user directory 'LDAP' is read-only"
    );
    sim.add_to_group("casual11", ACCESS);
    assert_eq!(
        remove(&sim, "casual11", ACCESS).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(sim.members(ACCESS), vec!["casual11"]);
    assert!(sim.group_writes().is_empty());

    sim.set_read_only(false);
    assert_eq!(
        add(&sim, "casual10", ACCESS).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn fail_admin_makes_only_admin_rest_answer_the_status() {
    let sim = demo().await;
    sim.fail_admin(Some(503));
    assert_eq!(
        add(&sim, "casual12", ACCESS).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let r = admin_req(
        &client(),
        reqwest::Method::GET,
        format!("{}/rest/api/2/applicationrole", sim.url()),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Ordinary traffic is unaffected.
    let sid = session_of(&sim, "power1").await;
    let r = get_with_cookie(&sim, "/browse/ABC-1", &format!("JSESSIONID={sid}")).await;
    assert_eq!(r.status(), StatusCode::OK);

    sim.fail_admin(Some(500));
    assert_eq!(
        remove(&sim, "power1", "jira-software-users").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    sim.fail_admin(None);
    assert_eq!(
        add(&sim, "casual12", ACCESS).await.status(),
        StatusCode::CREATED
    );
    assert!(sim.has_access("power1"));
}

// ---- controls -------------------------------------------------------------------

#[tokio::test]
async fn latency_is_added_to_every_answer() {
    let sim = demo().await;
    sim.set_latency(Duration::from_millis(300));
    let started = Instant::now();
    let r = client()
        .get(format!("{}/login.jsp", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(
        add(&sim, "casual13", ACCESS).await.status(),
        StatusCode::CREATED
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn down_closes_connections_until_up_again() {
    let sim = demo().await;
    let c = client();
    let url = format!("{}/login.jsp", sim.url());
    assert!(c.get(&url).send().await.is_ok());
    sim.set_down(true);
    // The pooled connection and a fresh one both fail without an answer.
    assert!(c.get(&url).send().await.is_err());
    assert!(client().get(&url).send().await.is_err());
    sim.set_down(false);
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// Polls until the simulator refuses connections (bounded; no tight sleep).
async fn wait_until_gone(url: &str) -> bool {
    for _ in 0..100 {
        if client().get(url).send().await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn shutdown_or_dropping_the_last_handle_stops_the_server() {
    let sim = demo().await;
    let url = format!("{}/login.jsp", sim.url());
    assert!(client().get(&url).send().await.is_ok());
    sim.shutdown();
    assert!(wait_until_gone(&url).await);

    let sim = demo().await;
    let other = sim.clone();
    let url = format!("{}/login.jsp", sim.url());
    drop(sim);
    // A clone keeps it running.
    assert_eq!(
        client().get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    drop(other);
    assert!(wait_until_gone(&url).await);
}

#[tokio::test]
async fn counts_requests_by_path_prefix_and_remembers_peaks() {
    let sim = demo().await;
    let sid = session_of(&sim, "power1").await;
    for key in ["A-1", "A-2", "B-1"] {
        get_with_cookie(
            &sim,
            &format!("/browse/{key}"),
            &format!("JSESSIONID={sid}"),
        )
        .await;
    }
    assert_eq!(sim.count("/browse/"), 3);
    assert_eq!(sim.count("/browse/A-"), 2);
    assert_eq!(sim.count("/login.jsp"), 1);
    assert_eq!(sim.count("/nothing"), 0);

    add(&sim, "casual14", ACCESS).await;
    add(&sim, "casual15", ACCESS).await;
    remove(&sim, "casual14", ACCESS).await;
    assert_eq!(sim.members(ACCESS), vec!["casual15"]);
    assert_eq!(sim.peak_members(ACCESS), 2);
    assert_eq!(sim.peak_members("jira-software-users"), 3);
}

#[tokio::test]
async fn start_on_a_given_address_serves_there() {
    let cfg = SimConfig::demo(Product::Jira);
    let sim = Sim::start_on(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert!(sim.url().starts_with("http://127.0.0.1:"));
    assert_ne!(sim.addr().port(), 0);
    let r = client()
        .get(format!("{}/status", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "RUNNING");
}
