//! `iumgate demo --login json`: the real binary in front of the simulator
//! showing today's login page, with two-step verification for the demo's
//! enrolled user — the two flows a stranger tries first.

use crate::hostile_chain_binary::{access_group, demo_with};
use serde_json::json;

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn authenticate(c: &reqwest::Client, proxy: &str, user: &str) -> reqwest::Response {
    c.post(format!("{proxy}/rest/tsv/latest/authenticate"))
        .header("x-atlassian-token", "no-check")
        .json(&json!({"username": user, "password": "demo", "rememberMe": false, "targetUrl": "/browse/DEMO-1"}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_with_todays_login_page_signs_in_with_and_without_a_second_step() {
    let d = demo_with(&["--login", "json"]);
    // The login page is the script page that posts JSON.
    let page = reqwest::get(format!("{}/login.jsp", d.proxy))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/rest/tsv/latest/authenticate"), "{page}");

    // casual01: one step, licensed before the app checks.
    let c = browser();
    let r = authenticate(&c, &d.proxy, "casual01").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ausername"], "casual01");
    let r = c
        .get(format!("{}/browse/DEMO-1", d.proxy))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the session works through the gate");

    // casual20 is enrolled: 412, then a wrong code, then the right one.
    let c = browser();
    let r = authenticate(&c, &d.proxy, iumgate::demo::TWO_STEP_USER).await;
    assert_eq!(r.status(), 412);
    let r = c
        .post(format!(
            "{}/rest/tsv/latest/authenticate/totp-code",
            d.proxy
        ))
        .header("x-atlassian-token", "no-check")
        .json(&json!({"code": "000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a wrong code");
    let r = c
        .post(format!(
            "{}/rest/tsv/latest/authenticate/totp-code",
            d.proxy
        ))
        .header("x-atlassian-token", "no-check")
        .json(&json!({"code": iumgate::demo::TWO_STEP_CODE}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ausername"], iumgate::demo::TWO_STEP_USER);
    let r = c
        .get(format!("{}/browse/DEMO-1", d.proxy))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = (&d.sim, &d.admin);
}

/// `iumgate demo --login saml`: a user signs in through the simulator's
/// IdP; iumgate verifies the response and the seat is in place before the
/// app sees the single-use assertion; the same response posted again gets
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_with_saml_signs_in_through_the_idp_verified() {
    let d = demo_with(&["--login", "saml"]);
    let c = browser();
    // The IdP's auto-posting form, as the browser gets it.
    let form = c
        .get(format!(
            "{}/sim-idp/sso?user=casual03&RelayState=/browse/DEMO-1",
            d.proxy
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = form
        .split("name=\"SAMLResponse\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the IdP's form carries a SAMLResponse")
        .to_string();
    let post = |c: &reqwest::Client| {
        c.post(format!("{}/plugins/servlet/samlconsumer", d.proxy))
            .form(&[
                ("SAMLResponse", value.as_str()),
                ("RelayState", "/browse/DEMO-1"),
            ])
            .send()
    };
    let r = post(&c).await.unwrap();
    assert_eq!(r.status(), 302, "the app took the assertion");
    assert_eq!(r.headers()["x-ausername"], "casual03");
    let r = c
        .get(format!("{}/browse/DEMO-1", d.proxy))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "licensed through the gate");
    let members = access_group(&d).await;
    assert!(members.contains(&"casual03".to_string()), "{members:?}");

    // The same response again, from another browser: the app refuses it,
    // and nobody gains or loses a seat.
    let r = post(&browser()).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(access_group(&d).await, members);

    // A response for casual04 signed by another key (this test process's
    // IdP has the same entity ID, not the demo's key): forged, to the
    // demo's iumgate. It is a claim only — the app refuses it, and the
    // free seat it may have borrowed goes back.
    let idp = iumgate::sim::Sim::saml_idp().expect("a local IdP");
    let login = iumgate::sim::saml_idp::SamlLogin::new(
        "casual04",
        iumgate::sim::SAML_AUDIENCE,
        iumgate::sim::SAML_DESTINATION,
    );
    let forged = idp.response(&login);
    let r = browser()
        .post(format!("{}/plugins/servlet/samlconsumer", d.proxy))
        .form(&[("SAMLResponse", forged.as_str()), ("RelayState", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(access_group(&d).await, members);
}

/// Hostile, through the real binary: a JSON login with a colleague's name
/// and a wrong password, and a code step on a half session that never was,
/// move no seat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_json_login_or_a_made_up_code_step_moves_no_seat() {
    let d = demo_with(&["--login", "json"]);
    let c = browser();
    let r = c
        .post(format!("{}/rest/tsv/latest/authenticate", d.proxy))
        .header("x-atlassian-token", "no-check")
        .json(&json!({"username": "casual02", "password": "wrong", "targetUrl": "/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        access_group(&d).await.is_empty(),
        "a wrong password costs nobody"
    );
    let r = c
        .post(format!(
            "{}/rest/tsv/latest/authenticate/totp-code",
            d.proxy
        ))
        .header("x-atlassian-token", "no-check")
        .header("cookie", "JSESSIONID=made-up")
        .json(&json!({"code": iumgate::demo::TWO_STEP_CODE}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        access_group(&d).await.is_empty(),
        "no half session, no seat"
    );
}

/// `iumgate demo --login oidc`: a user signs in at the simulator's OIDC
/// IdP (its sign-in page, as a person would); iumgate, a relying party of
/// the same IdP, verifies who it is and puts the seat in place before the
/// app's own flow; a made-up callback moves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_with_oidc_signs_in_through_the_idp_as_a_relying_party() {
    let d = demo_with(&["--login", "oidc"]);
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    // A made-up callback first: nobody admitted.
    let r = c
        .get(format!("{}/iumgate/oidc/callback?code=x&state=y", d.proxy))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(access_group(&d).await.is_empty());
    let page = c
        .get(format!(
            "{}/plugins/servlet/oidc/initiate-login?returnUrl=/browse/DEMO-1",
            d.proxy
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let login = page.url().join("/login").unwrap();
    let html = page.text().await.unwrap();
    let marker = "name=\"q\" value=\"";
    let at = html.find(marker).expect("the IdP's sign-in page") + marker.len();
    let q = html[at..at + html[at..].find('"').unwrap()].replace("&amp;", "&");
    let r = c
        .post(login)
        .form(&[
            ("q", q.as_str()),
            ("username", "casual01"),
            ("password", "demo"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().path(), "/browse/DEMO-1");
    assert_eq!(r.headers()["x-ausername"], "casual01");
    assert_eq!(access_group(&d).await, vec!["casual01".to_string()]);
    let _ = (&d.sim, &d.admin);
}
