//! The Confluence, Bitbucket and Crowd flavours of the simulator over real
//! sockets (shared/ATLASSIAN.md).

use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig};
use reqwest::header::HeaderMap;
use reqwest::redirect::Policy;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).map(|v| v.to_str().unwrap().to_string())
}

fn cookie_value(h: &HeaderMap, name: &str) -> Option<String> {
    h.get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

async fn admin(sim: &Sim, method: Method, path: &str) -> reqwest::Response {
    client()
        .request(method, format!("{}{path}", sim.url()))
        .basic_auth("iumgate-admin", Some("demo"))
        .send()
        .await
        .unwrap()
}

// ---- Confluence -------------------------------------------------------------------

const C_ACCESS: &str = "IUM_access_confluence";

#[tokio::test]
async fn confluence_login_needs_access_and_sets_seraph_confluence() {
    let sim = Sim::start(SimConfig::demo(Product::Confluence))
        .await
        .unwrap();
    let login = |user: &'static str| {
        let url = format!("{}/dologin.action", sim.url());
        async move {
            client()
                .post(url)
                .form(&[
                    ("os_username", user),
                    ("os_password", "demo"),
                    ("os_cookie", "true"),
                    ("os_destination", "/display/DEMO/Home"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let r = login("casual01").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(r.headers(), "x-seraph-loginreason").as_deref(),
        Some("AUTHORISATION_FAILED")
    );
    assert!(cookie_value(r.headers(), "JSESSIONID").is_none());

    let r = admin(
        &sim,
        Method::PUT,
        &format!("/rest/api/user/casual01/group/{C_ACCESS}"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let r = login("casual01").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        header(r.headers(), "location").as_deref(),
        Some("/display/DEMO/Home")
    );
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("casual01")
    );
    let remember = cookie_value(r.headers(), "seraph.confluence").unwrap();

    // A returning user with only the remember-me cookie is known again.
    let r = client()
        .get(format!("{}/rest/api/user/current", sim.url()))
        .header("Cookie", format!("seraph.confluence={remember}"))
        .send()
        .await
        .unwrap();
    assert!(cookie_value(r.headers(), "JSESSIONID").is_some());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "known");
    assert_eq!(v["username"], "casual01");

    // Anonymous: an anonymous user, and pages send to the login.
    let r = client()
        .get(format!("{}/rest/api/user/current", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["type"], "anonymous");
    let r = client()
        .get(format!("{}/display/DEMO/Home", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        header(r.headers(), "location").as_deref(),
        Some("/login.action?os_destination=/display/DEMO/Home")
    );
}

#[tokio::test]
async fn confluence_group_writes_are_idempotent_204s_and_members_page() {
    let sim = Sim::start(SimConfig::demo(Product::Confluence))
        .await
        .unwrap();
    let put = format!("/rest/api/user/casual02/group/{C_ACCESS}");
    assert_eq!(
        admin(&sim, Method::PUT, &put).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        admin(&sim, Method::PUT, &put).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(sim.members(C_ACCESS), vec!["casual02"]);
    assert_eq!(
        admin(
            &sim,
            Method::PUT,
            "/rest/api/user/nobody/group/IUM_access_confluence"
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin(&sim, Method::PUT, "/rest/api/user/casual02/group/nope")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let r = admin(
        &sim,
        Method::GET,
        "/rest/api/group/IUM_user_confluence/member?start=0&limit=15",
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["size"], 15);
    assert_eq!(v["results"][0]["username"], "casual01");
    assert!(v["_links"]["next"].is_string());
    let r = admin(
        &sim,
        Method::GET,
        "/rest/api/group/IUM_user_confluence/member?start=15&limit=15",
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["size"], 5);
    assert!(v["_links"].get("next").is_none());

    let r = admin(
        &sim,
        Method::GET,
        "/rest/api/user/memberof?username=casual02",
    )
    .await;
    let v: Value = r.json().await.unwrap();
    let groups: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(groups, vec![C_ACCESS, "IUM_user_confluence"]);

    let r = admin(&sim, Method::GET, "/rest/license/1.0/license/userCount").await;
    assert_eq!(r.json::<Value>().await.unwrap()["count"], 4);
    let r = admin(
        &sim,
        Method::GET,
        "/rest/license/1.0/license/remainingSeats",
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["count"], 6);

    assert_eq!(
        admin(&sim, Method::DELETE, &put).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(!sim.has_access("casual02"));
    let ops: Vec<String> = sim
        .group_writes()
        .into_iter()
        .map(|(op, _, _)| op)
        .collect();
    assert_eq!(ops, vec!["add", "add", "remove"]);

    // Non-admins are refused.
    let r = client()
        .put(format!("{}{put}", sim.url()))
        .basic_auth("power1", Some("demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn confluence_can_hide_x_ausername() {
    let sim = Sim::start(SimConfig::demo(Product::Confluence))
        .await
        .unwrap();
    let r = client()
        .get(format!("{}/login.action", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("anonymous")
    );
    sim.set_ausername_header(false);
    let r = client()
        .get(format!("{}/login.action", sim.url()))
        .send()
        .await
        .unwrap();
    assert!(header(r.headers(), "x-ausername").is_none());
}

// ---- Bitbucket ----------------------------------------------------------------------

const B_ACCESS: &str = "IUM_access_bitbucket";

#[tokio::test]
async fn bitbucket_login_uses_j_username_and_bitbucketsessionid() {
    let sim = Sim::start(SimConfig::demo(Product::Bitbucket))
        .await
        .unwrap();
    let r = client()
        .post(format!("{}/j_atl_security_check", sim.url()))
        .form(&[
            ("j_username", "power1"),
            ("j_password", "demo"),
            ("_atl_remember_me", "on"),
            ("next", "/projects/DEMO"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        header(r.headers(), "location").as_deref(),
        Some("/projects/DEMO")
    );
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("power1")
    );
    assert!(header(r.headers(), "x-auserid").is_some());
    let sid = cookie_value(r.headers(), "BITBUCKETSESSIONID").unwrap();
    assert!(cookie_value(r.headers(), "_atl_bitbucket_remember_me").is_some());

    let page = client()
        .get(format!("{}/projects/DEMO/repos/app/browse", sim.url()))
        .header("Cookie", format!("BITBUCKETSESSIONID={sid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("power1"));

    let r = client()
        .post(format!("{}/j_atl_security_check", sim.url()))
        .form(&[("j_username", "casual01"), ("j_password", "demo")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(cookie_value(r.headers(), "BITBUCKETSESSIONID").is_none());
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("anonymous")
    );

    let r = client()
        .get(format!("{}/dashboard", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        header(r.headers(), "location").as_deref(),
        Some("/login?next=/dashboard")
    );
}

#[tokio::test]
async fn bitbucket_git_over_http_needs_basic_auth_with_access() {
    let sim = Sim::start(SimConfig::demo(Product::Bitbucket))
        .await
        .unwrap();
    let url = format!(
        "{}/scm/demo/app.git/info/refs?service=git-upload-pack",
        sim.url()
    );
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(header(r.headers(), "www-authenticate")
        .unwrap()
        .starts_with("Basic"));

    let r = client()
        .get(&url)
        .basic_auth("casual03", Some("demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    sim.add_to_group("casual03", B_ACCESS);
    let r = client()
        .get(&url)
        .basic_auth("casual03", Some("demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(r.headers(), "content-type").as_deref(),
        Some("application/x-git-upload-pack-advertisement")
    );
    assert_eq!(
        header(r.headers(), "x-ausername").as_deref(),
        Some("casual03")
    );
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with("001e# service=git-upload-pack\n0000"),
        "{body:?}"
    );
    assert!(body.ends_with("0000"));
    assert_eq!(sim.count("/scm/"), 3);
}

#[tokio::test]
async fn bitbucket_admin_groups_use_context_for_the_user_and_item_name_for_the_group() {
    let sim = Sim::start(SimConfig::demo(Product::Bitbucket))
        .await
        .unwrap();
    let post = |path: &'static str, body: Value| {
        let url = format!("{}{path}", sim.url());
        async move {
            client()
                .post(url)
                .basic_auth("iumgate-admin", Some("demo"))
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = post(
        "/rest/api/1.0/admin/users/add-group",
        json!({ "context": "casual04", "itemName": B_ACCESS }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(sim.has_access("casual04"));
    // Swapped fields, as in Atlassian's own example, name no such user.
    let r = post(
        "/rest/api/1.0/admin/users/add-group",
        json!({ "context": B_ACCESS, "itemName": "casual05" }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(!sim.has_access("casual05"));

    let r = admin(
        &sim,
        Method::GET,
        "/rest/api/1.0/admin/groups/more-members?context=IUM_user_bitbucket&start=0&limit=8",
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["size"], 8);
    assert_eq!(v["isLastPage"], false);
    assert_eq!(v["nextPageStart"], 8);
    assert_eq!(v["values"][0]["name"], "casual01");
    assert_eq!(v["values"][0]["active"], true);

    let r = admin(&sim, Method::GET, "/rest/api/1.0/admin/license").await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["maximumNumberOfUsers"], 10);
    assert_eq!(v["status"]["currentNumberOfUsers"], 4);

    // A login records the last authentication time.
    client()
        .post(format!("{}/j_atl_security_check", sim.url()))
        .form(&[("j_username", "casual04"), ("j_password", "demo")])
        .send()
        .await
        .unwrap();
    let r = admin(
        &sim,
        Method::GET,
        "/rest/api/1.0/admin/users?filter=casual04",
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["values"][0]["name"], "casual04");
    assert!(
        v["values"][0]["lastAuthenticationTimestamp"]
            .as_u64()
            .unwrap()
            > 0
    );

    let r = post(
        "/rest/api/latest/admin/users/remove-group",
        json!({ "context": "casual04", "itemName": B_ACCESS }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!sim.has_access("casual04"));

    sim.fail_admin(Some(502));
    let r = admin(&sim, Method::GET, "/rest/api/1.0/admin/license").await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
}

// ---- Crowd ----------------------------------------------------------------------------

async fn crowd(sim: &Sim, method: Method, query: &str, body: Option<Value>) -> reqwest::Response {
    let mut rb = client()
        .request(
            method,
            format!(
                "{}/rest/usermanagement/1/group/user/direct?{query}",
                sim.url()
            ),
        )
        .basic_auth("iumgate", Some("demo"));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    rb.send().await.unwrap()
}

#[tokio::test]
async fn crowd_group_membership_answers_201_400_404_409() {
    let sim = Sim::start(SimConfig::demo(Product::Jira)).await.unwrap();
    let g = "groupname=IUM_access_software";
    let add = |u: &str| Some(json!({ "name": u }));
    assert_eq!(
        crowd(&sim, Method::POST, g, add("casual06")).await.status(),
        StatusCode::CREATED
    );
    // The app sees the change at once: Crowd and the app share the groups.
    assert!(sim.has_access("casual06"));
    assert_eq!(
        crowd(&sim, Method::POST, g, add("casual06")).await.status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        crowd(&sim, Method::POST, g, add("nobody")).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        crowd(&sim, Method::POST, "groupname=nope", add("casual06"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let r = crowd(
        &sim,
        Method::GET,
        &format!("{g}&start-index=0&max-results=1000"),
        None,
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["users"][0]["name"], "casual06");

    let del = format!("{g}&username=casual06");
    assert_eq!(
        crowd(&sim, Method::DELETE, &del, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        crowd(&sim, Method::DELETE, &del, None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(!sim.has_access("casual06"));

    // Only a Crowd application may call it, and user credentials are not one.
    let r = client()
        .post(format!(
            "{}/rest/usermanagement/1/group/user/direct?{g}",
            sim.url()
        ))
        .basic_auth("iumgate-admin", Some("demo"))
        .json(&json!({ "name": "casual07" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn crowd_is_off_without_applications() {
    let mut cfg = SimConfig::demo(Product::Jira);
    cfg.crowd_apps.clear();
    let sim = Sim::start(cfg).await.unwrap();
    let r = crowd(
        &sim,
        Method::POST,
        "groupname=IUM_access_software",
        Some(json!({ "name": "casual06" })),
    )
    .await;
    assert_ne!(r.status(), StatusCode::CREATED);
    assert!(!sim.has_access("casual06"));
}
