//! The simulated Jira's Service Management over real sockets (issue 20): the
//! `jira-servicedesk` role with its own tier beside `jira-software`, agent
//! views that need it, software pages that keep needing the software role,
//! and the customer portal that needs only a login.

use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig, IUM_ACCESS_SERVICE, SERVICE_DESK_ROLE, SERVICE_DESK_USERS};
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const SOFTWARE: &str = "jira-software";
const ACCESS_SOFTWARE: &str = "IUM_access_software";

fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn sm_sim() -> Sim {
    Sim::start(SimConfig::demo_service_management())
        .await
        .unwrap()
}

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

/// The `JSESSIONID` a login answer set.
fn session_cookie(r: &Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find_map(|c| {
            let v = c
                .strip_prefix("JSESSIONID=")?
                .split(';')
                .next()?
                .to_string();
            (!v.is_empty()).then(|| format!("JSESSIONID={v}"))
        })
}

async fn login(sim: &Sim, user: &str, dest: &str) -> Response {
    client()
        .post(format!("{}/login.jsp", sim.url()))
        .form(&[
            ("os_username", user),
            ("os_password", "demo"),
            ("os_destination", dest),
        ])
        .send()
        .await
        .unwrap()
}

/// Logs in through `/login.jsp` and returns the cookie header value.
async fn session(sim: &Sim, user: &str) -> String {
    let r = login(sim, user, "/").await;
    assert_eq!(r.status(), StatusCode::FOUND, "login of {user}");
    session_cookie(&r).unwrap()
}

async fn get(sim: &Sim, path: &str, cookie: &str) -> Response {
    client()
        .get(format!("{}{path}", sim.url()))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
}

async fn admin_get(sim: &Sim, path: &str) -> Value {
    let r = client()
        .get(format!("{}{path}", sim.url()))
        .basic_auth("iumgate-admin", Some("demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().await.unwrap()
}

async fn grant(sim: &Sim, user: &str, group: &str) {
    let r = client()
        .post(format!(
            "{}/rest/api/2/group/user?groupname={group}",
            sim.url()
        ))
        .basic_auth("iumgate-admin", Some("demo"))
        .json(&json!({ "name": user }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "add {user} to {group}");
}

async fn revoke(sim: &Sim, user: &str, group: &str) {
    let r = client()
        .delete(format!(
            "{}/rest/api/2/group/user?groupname={group}&username={user}",
            sim.url()
        ))
        .basic_auth("iumgate-admin", Some("demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "remove {user} from {group}");
}

const QUEUE: &str = "/jira/servicedesk/projects/HELP/queues/custom/1";
const QUEUE_REFRESH: &str = "/rest/servicedesk/1/servicedesk/HELP/queues/1/issues";
const SLA_REFRESH: &str = "/rest/servicedesk/1/servicedesk/HELP/sla/HELP-1";
const REQUEST: &str = "/rest/servicedeskapi/request/HELP-1";
const PORTAL: &str = "/servicedesk/customer/portal/1";

#[tokio::test]
async fn applicationrole_lists_both_roles_each_with_its_own_tier() {
    let sim = sm_sim().await;
    let roles = admin_get(&sim, "/rest/api/2/applicationrole").await;
    let roles = roles.as_array().unwrap();
    assert_eq!(roles.len(), 2);
    let (software, service) = (&roles[0], &roles[1]);
    assert_eq!(software["key"], SOFTWARE);
    assert_eq!(software["numberOfSeats"], 10);
    assert_eq!(software["userCount"], 3);
    assert_eq!(service["key"], SERVICE_DESK_ROLE);
    assert_eq!(service["name"], "Jira Service Management");
    assert_eq!(
        service["groups"],
        json!([SERVICE_DESK_USERS, IUM_ACCESS_SERVICE])
    );
    assert_eq!(service["defaultGroups"], json!([SERVICE_DESK_USERS]));
    assert_eq!(service["numberOfSeats"], 5);
    assert_eq!(service["userCount"], 1, "agent1");
    assert_eq!(service["remainingSeats"], 4);
    assert_eq!(service["hasUnlimitedSeats"], false);
    let one = admin_get(&sim, "/rest/api/2/applicationrole/jira-servicedesk").await;
    assert_eq!(&one, service);

    // The tier and the groups change at run time; over the tier is negative.
    sim.set_service_tier(1);
    grant(&sim, "agent01", IUM_ACCESS_SERVICE).await;
    let one = admin_get(&sim, "/rest/api/2/applicationrole/jira-servicedesk").await;
    assert_eq!(
        (
            &one["numberOfSeats"],
            &one["userCount"],
            &one["remainingSeats"]
        ),
        (&json!(1), &json!(2), &json!(-1))
    );
    assert_eq!(sim.role_user_count(SERVICE_DESK_ROLE), Some(2));
    assert_eq!(sim.role_user_count(SOFTWARE), Some(3));
    assert!(sim.set_role_groups(SERVICE_DESK_ROLE, &[IUM_ACCESS_SERVICE]));
    assert_eq!(sim.role_groups(SERVICE_DESK_ROLE), vec![IUM_ACCESS_SERVICE]);
    assert_eq!(sim.role_user_count(SERVICE_DESK_ROLE), Some(1));
    assert_eq!(sim.peak_role_count(SERVICE_DESK_ROLE), Some(2));
}

#[tokio::test]
async fn without_service_management_nothing_changes() {
    let sim = Sim::start(SimConfig::demo(Product::Jira)).await.unwrap();
    let roles = admin_get(&sim, "/rest/api/2/applicationrole").await;
    assert_eq!(roles.as_array().unwrap().len(), 1);
    let r = client()
        .get(format!(
            "{}/rest/api/2/applicationrole/jira-servicedesk",
            sim.url()
        ))
        .basic_auth("iumgate-admin", Some("demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let cookie = session(&sim, "power1").await;
    assert_eq!(get(&sim, QUEUE, &cookie).await.status(), 404);
    assert_eq!(get(&sim, PORTAL, &cookie).await.status(), 404);
    assert_eq!(sim.role_user_count(SERVICE_DESK_ROLE), None);
    assert!(!sim.set_role_groups(SERVICE_DESK_ROLE, &["x"]));
}

#[tokio::test]
async fn agent_views_need_the_service_role_and_software_pages_the_software_role() {
    let sim = sm_sim().await;
    // A casual agent without a role cannot log in at all.
    let r = login(&sim, "agent01", QUEUE).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "x-seraph-loginreason").as_deref(),
        Some("AUTHORISATION_FAILED")
    );
    // With the service access group: agent views, refreshes and requests.
    grant(&sim, "agent01", IUM_ACCESS_SERVICE).await;
    assert!(sim.has_role("agent01", SERVICE_DESK_ROLE) && !sim.has_role("agent01", SOFTWARE));
    let r = login(&sim, "agent01", QUEUE).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(header(&r, "location").as_deref(), Some(QUEUE));
    let cookie = session_cookie(&r).unwrap();
    let page = get(&sim, QUEUE, &cookie).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(header(&page, "x-ausername").as_deref(), Some("agent01"));
    assert!(page.text().await.unwrap().contains("queue-title"));
    let view = get(&sim, &format!("{QUEUE}/HELP-1"), &cookie).await;
    assert_eq!(view.status(), StatusCode::OK);
    for path in [
        QUEUE_REFRESH,
        SLA_REFRESH,
        REQUEST,
        "/rest/servicedeskapi/request/HELP-1/sla",
    ] {
        let r = get(&sim, path, &cookie).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let _: Value = r.json().await.unwrap();
    }
    let comment = client()
        .post(format!("{}{REQUEST}/comment", sim.url()))
        .header("Cookie", &cookie)
        .json(&json!({ "body": "On it", "public": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(comment.status(), StatusCode::CREATED);
    assert_eq!(sim.role_refusals(SERVICE_DESK_ROLE), 0);
    // Software pages stay closed to an agent-only user, and count.
    let browse = get(&sim, "/browse/DEMO-1", &cookie).await;
    assert_eq!(browse.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&browse, "x-ausername").as_deref(), Some("agent01"));
    let text = browse.text().await.unwrap();
    assert!(text.contains("jira-software application role"), "{text}");
    assert!(
        !text.contains("You do not have a permission to log in"),
        "not the login page's refusal: the agent may log in"
    );
    let issue = get(&sim, "/rest/api/2/issue/DEMO-1", &cookie).await;
    assert_eq!(issue.status(), StatusCode::FORBIDDEN);
    assert_eq!(sim.role_refusals(SOFTWARE), 2);
    // The session survives losing the role; the agent views do not.
    revoke(&sim, "agent01", IUM_ACCESS_SERVICE).await;
    let page = get(&sim, QUEUE, &cookie).await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("not a Jira Service Management agent"));
    let refresh = get(&sim, QUEUE_REFRESH, &cookie).await;
    assert_eq!(refresh.status(), StatusCode::FORBIDDEN);
    let body: Value = refresh.json().await.unwrap();
    assert!(body["errorMessages"][0]
        .as_str()
        .unwrap()
        .contains("jira-servicedesk"));
    assert_eq!(sim.role_refusals(SERVICE_DESK_ROLE), 2);
}

#[tokio::test]
async fn a_software_user_is_refused_agent_views_and_anonymous_callers_are_sent_to_log_in() {
    let sim = sm_sim().await;
    let cookie = session(&sim, "power1").await;
    assert_eq!(get(&sim, "/browse/DEMO-1", &cookie).await.status(), 200);
    let page = get(&sim, QUEUE, &cookie).await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&page, "x-ausername").as_deref(), Some("power1"));
    assert_eq!(get(&sim, REQUEST, &cookie).await.status(), 403);
    assert_eq!(
        get(&sim, "/servicedesk/agent/HELP", &cookie).await.status(),
        403,
        "any /servicedesk/ page outside the portal is an agent view"
    );
    assert_eq!(sim.role_refusals(SERVICE_DESK_ROLE), 3);
    assert_eq!(sim.role_refusals(SOFTWARE), 0);

    let anon = get(&sim, QUEUE, "").await;
    assert_eq!(anon.status(), StatusCode::FOUND);
    assert_eq!(
        header(&anon, "location").unwrap(),
        format!("/login.jsp?os_destination={QUEUE}")
    );
    assert_eq!(get(&sim, QUEUE_REFRESH, "").await.status(), 401);
    assert_eq!(
        sim.role_refusals(SERVICE_DESK_ROLE),
        3,
        "anonymous is no refusal"
    );
}

#[tokio::test]
async fn one_user_may_hold_both_roles() {
    let sim = sm_sim().await;
    grant(&sim, "both1", ACCESS_SOFTWARE).await;
    grant(&sim, "both1", IUM_ACCESS_SERVICE).await;
    let cookie = session(&sim, "both1").await;
    assert_eq!(get(&sim, "/browse/DEMO-1", &cookie).await.status(), 200);
    assert_eq!(get(&sim, QUEUE, &cookie).await.status(), 200);
    assert_eq!(get(&sim, REQUEST, &cookie).await.status(), 200);
    assert_eq!(sim.role_user_count(SOFTWARE), Some(4));
    assert_eq!(sim.role_user_count(SERVICE_DESK_ROLE), Some(2));
    // Losing the software seat leaves the agent views open.
    revoke(&sim, "both1", ACCESS_SOFTWARE).await;
    assert_eq!(get(&sim, "/browse/DEMO-1", &cookie).await.status(), 403);
    assert_eq!(get(&sim, QUEUE, &cookie).await.status(), 200);
    assert_eq!(sim.peak_role_count(SOFTWARE), Some(4));
    assert_eq!(sim.licensed_count(), 3);
}

#[tokio::test]
async fn the_customer_portal_needs_a_login_but_no_role() {
    let sim = sm_sim().await;
    // Anonymous: the portal's own login page.
    let anon = get(&sim, PORTAL, "").await;
    assert_eq!(anon.status(), StatusCode::FOUND);
    assert_eq!(
        header(&anon, "location").as_deref(),
        Some("/servicedesk/customer/user/login?destination=portal/1")
    );
    // A customer without any role cannot log in to Jira itself…
    let r = login(&sim, "customer1", "/").await;
    assert_eq!(
        header(&r, "x-seraph-loginreason").as_deref(),
        Some("AUTHORISATION_FAILED")
    );
    // …but can to the portal, and is served there as who they are.
    let wrong = client()
        .post(format!("{}/servicedesk/customer/user/login", sim.url()))
        .form(&[("os_username", "customer1"), ("os_password", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::OK);
    assert!(session_cookie(&wrong).is_none());
    assert_eq!(sim.failed_logins("customer1"), 1);
    let r = client()
        .post(format!("{}/servicedesk/customer/user/login", sim.url()))
        .form(&[
            ("os_username", "customer1"),
            ("os_password", "demo"),
            ("destination", "portal/1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(header(&r, "location").as_deref(), Some(PORTAL));
    assert_eq!(sim.failed_logins("customer1"), 0);
    let cookie = session_cookie(&r).unwrap();
    let page = get(&sim, PORTAL, &cookie).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(header(&page, "x-ausername").as_deref(), Some("customer1"));
    let created = client()
        .post(format!("{}{PORTAL}/create/10", sim.url()))
        .header("Cookie", &cookie)
        .json(&json!({ "requestFieldValues": { "summary": "Printer on fire" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let key = created.json::<Value>().await.unwrap()["issueKey"]
        .as_str()
        .unwrap()
        .to_string();
    let view = get(&sim, &format!("{PORTAL}/{key}"), &cookie).await;
    assert_eq!(view.status(), StatusCode::OK);
    assert!(view.text().await.unwrap().contains("Printer on fire"));
    // Nothing else is open to them, and they hold no seat of either role.
    assert_eq!(get(&sim, QUEUE, &cookie).await.status(), 403);
    assert_eq!(get(&sim, "/browse/DEMO-1", &cookie).await.status(), 403);
    assert_eq!(get(&sim, "/rest/api/2/myself", &cookie).await.status(), 401);
    assert_eq!(sim.role_refusals(SOFTWARE), 2, "the page and the REST call");
    assert_eq!(sim.role_refusals(SERVICE_DESK_ROLE), 1);
    assert_eq!(sim.role_user_count(SERVICE_DESK_ROLE), Some(1));
    assert_eq!(sim.role_user_count(SOFTWARE), Some(3));
    // A software power user and an agent use the portal too.
    for user in ["power1", "agent1"] {
        let cookie = session(&sim, user).await;
        assert_eq!(get(&sim, PORTAL, &cookie).await.status(), 200, "{user}");
    }
    assert_eq!(sim.count("/servicedesk/customer/portal/"), 6);
}
