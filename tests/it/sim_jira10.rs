//! Today's Data Center login in the simulator over real sockets, in all three
//! products (Jira 10, Confluence 9, Bitbucket 9 share it): the JSON
//! `/rest/tsv/…/authenticate`, two-step verification with its half session,
//! the login options and the script login page (shared/ATLASSIAN.md, "Today's
//! Data Center versions").

use iumgate::product::Product;
use iumgate::sim::{LoginStyle, Sim, SimConfig, SimTwoStep};
use reqwest::header::HeaderMap;
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

/// What differs between the products' logins.
struct Facts {
    session: &'static str,
    remember: &'static str,
    page: &'static str,
    dest: &'static str,
    /// A field of the old form page.
    form_field: &'static str,
    licensed: &'static str,
}

fn facts(p: Product) -> Facts {
    match p {
        Product::Jira => Facts {
            session: "JSESSIONID",
            remember: "seraph.rememberme.cookie",
            page: "/login.jsp",
            dest: "os_destination",
            form_field: "os_username",
            licensed: "jira-software-users",
        },
        Product::Confluence => Facts {
            session: "JSESSIONID",
            remember: "seraph.confluence",
            page: "/login.action",
            dest: "os_destination",
            form_field: "os_username",
            licensed: "confluence-users",
        },
        Product::Bitbucket => Facts {
            session: "BITBUCKETSESSIONID",
            remember: "_atl_bitbucket_remember_me",
            page: "/login",
            dest: "next",
            form_field: "j_username",
            licensed: "stash-users",
        },
    }
}

const VERSIONS: [&str; 2] = ["latest", "1.0"];

fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The demo world, with power2 enrolled in two-step verification.
async fn start(p: Product) -> Sim {
    let mut cfg = SimConfig::demo(p);
    cfg.two_step
        .push(SimTwoStep::new("power2", "123456", &["rec-1", "rec-2"]));
    Sim::start(cfg).await.unwrap()
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).map(|v| v.to_str().unwrap().to_string())
}

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

/// A JSON `POST` as the login page sends it (XSRF header included).
async fn post_json(sim: &Sim, path: &str, cookie: Option<&str>, body: Value) -> Response {
    let mut r = client()
        .post(format!("{}{path}", sim.url()))
        .header("X-Atlassian-Token", "no-check")
        .json(&body);
    if let Some(c) = cookie {
        r = r.header("Cookie", c);
    }
    r.send().await.unwrap()
}

async fn authenticate(sim: &Sim, version: &str, user: &str, pw: &str, remember: bool) -> Response {
    post_json(
        sim,
        &format!("/rest/tsv/{version}/authenticate"),
        None,
        json!({ "username": user, "password": pw, "rememberMe": remember, "targetUrl": "/some/page?x=1" }),
    )
    .await
}

async fn code(sim: &Sim, version: &str, kind: &str, cookie: &str, code: &str) -> Response {
    post_json(
        sim,
        &format!("/rest/tsv/{version}/authenticate/{kind}"),
        Some(cookie),
        json!({ "code": code }),
    )
    .await
}

/// Whom the simulator takes a request with `cookie` for (`X-AUSERNAME`).
async fn who(sim: &Sim, cookie: &str) -> String {
    let r = client()
        .get(format!("{}/status", sim.url()))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    header(r.headers(), "x-ausername").unwrap()
}

/// The session cookie of a 412 answer, as a `Cookie` header value.
async fn half_session(sim: &Sim, f: &Facts, version: &str, remember: bool) -> String {
    let r = authenticate(sim, version, "power2", "demo", remember).await;
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    format!(
        "{}={}",
        f.session,
        cookie_value(r.headers(), f.session).unwrap()
    )
}

// ---- the password step ------------------------------------------------------------

async fn right_password_with_access_is_200_with_a_session(p: Product) {
    let sim = start(p).await;
    let f = facts(p);
    for version in VERSIONS {
        let r = authenticate(&sim, version, "POWER1", "demo", false).await;
        assert_eq!(r.status(), StatusCode::OK, "{p:?} {version}");
        let h = r.headers().clone();
        assert_eq!(header(&h, "x-ausername").as_deref(), Some("power1"));
        assert_eq!(header(&h, "x-seraph-loginreason").as_deref(), Some("OK"));
        let c = set_cookie(&h, f.session).unwrap();
        assert!(c.contains("HttpOnly") && c.contains("Path=/"), "{c}");
        assert!(set_cookie(&h, f.remember).is_none(), "no rememberMe");
        let sid = cookie_value(&h, f.session).unwrap();
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({ "redirectUrl": "/some/page?x=1" })
        );
        assert_eq!(who(&sim, &format!("{}={sid}", f.session)).await, "power1");

        let r = authenticate(&sim, version, "power1", "demo", true).await;
        assert_eq!(r.status(), StatusCode::OK);
        let token = cookie_value(r.headers(), f.remember).expect("remember-me cookie");
        assert!(set_cookie(r.headers(), f.remember)
            .unwrap()
            .contains("Max-Age=1209600"));
        assert_eq!(
            who(&sim, &format!("{}={token}", f.remember)).await,
            "power1"
        );
    }
    // No targetUrl, or one off the server: "/".
    for target in [Value::Null, json!("https://evil.example/"), json!("//evil")] {
        let r = post_json(
            &sim,
            "/rest/tsv/latest/authenticate",
            None,
            json!({ "username": "power1", "password": "demo", "targetUrl": target }),
        )
        .await;
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({ "redirectUrl": "/" }),
            "{target}"
        );
    }
}

async fn wrong_password_is_401_counted_until_a_captcha_is_due(p: Product) {
    let sim = start(p).await;
    for (n, version) in [(1, "latest"), (2, "1.0"), (3, "latest")] {
        let r = authenticate(&sim, version, "power1", "nope", false).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{p:?} failure {n}");
        let h = r.headers().clone();
        assert_eq!(
            header(&h, "x-seraph-loginreason").as_deref(),
            Some("AUTHENTICATED_FAILED")
        );
        assert_eq!(header(&h, "x-ausername").as_deref(), Some("anonymous"));
        assert!(h.get("set-cookie").is_none());
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["captchaRequired"], json!(n == 3), "failure {n}");
        assert!(v["message"].as_str().unwrap().contains("incorrect"), "{v}");
        assert_eq!(sim.failed_logins("power1"), n);
    }
    // Over the limit even the right password is denied.
    let r = authenticate(&sim, "latest", "power1", "demo", false).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(r.headers(), "x-seraph-loginreason").as_deref(),
        Some("AUTHENTICATION_DENIED")
    );
    assert_eq!(r.json::<Value>().await.unwrap()["captchaRequired"], true);
    sim.reset_failed_logins("power1");
    let r = authenticate(&sim, "latest", "power1", "demo", false).await;
    assert_eq!(r.status(), StatusCode::OK);

    // An unknown user: the same 401, nobody's count.
    for _ in 0..4 {
        let r = authenticate(&sim, "1.0", "nobody", "demo", false).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(r.headers(), "x-seraph-loginreason").as_deref(),
            Some("AUTHENTICATED_FAILED")
        );
        assert_eq!(r.json::<Value>().await.unwrap()["captchaRequired"], false);
    }
}

async fn right_password_without_access_is_403_authorisation_failed(p: Product) {
    let sim = start(p).await;
    let f = facts(p);
    for version in VERSIONS {
        let r = authenticate(&sim, version, "casual01", "demo", true).await;
        // The status is the simulator's unconfirmed reading (login::NO_ACCESS_STATUS).
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{p:?} {version}");
        let h = r.headers().clone();
        assert_eq!(
            header(&h, "x-seraph-loginreason").as_deref(),
            Some("AUTHORISATION_FAILED")
        );
        assert_eq!(header(&h, "x-ausername").as_deref(), Some("anonymous"));
        assert!(set_cookie(&h, f.session).is_none() && set_cookie(&h, f.remember).is_none());
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({ "message": "You do not have a permission to log in" })
        );
    }
    assert_eq!(sim.failed_logins("casual01"), 0);
}

async fn the_xsrf_header_and_json_are_required(p: Product) {
    let sim = start(p).await;
    let body = json!({ "username": "power1", "password": "demo" }).to_string();
    for path in [
        "/rest/tsv/latest/authenticate",
        "/rest/tsv/1.0/authenticate",
        "/rest/tsv/latest/authenticate/totp-code",
        "/rest/tsv/1.0/authenticate/recovery-code",
    ] {
        let url = format!("{}{path}", sim.url());
        let r = client()
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{p:?} {path}");
        assert_eq!(r.text().await.unwrap(), "XSRF check failed");
        for ct in ["application/x-www-form-urlencoded", "text/plain"] {
            let r = client()
                .post(&url)
                .header("Content-Type", ct)
                .header("X-Atlassian-Token", "no-check")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{path} {ct}"
            );
        }
    }
    // Refused before the password was looked at: nothing counted.
    assert_eq!(sim.failed_logins("power1"), 0);
}

// ---- two-step verification ----------------------------------------------------------

async fn two_step_412_half_session_then_the_code_makes_the_session(p: Product) {
    let sim = start(p).await;
    let f = facts(p);
    for version in VERSIONS {
        let r = authenticate(&sim, version, "power2", "demo", true).await;
        assert_eq!(
            r.status(),
            StatusCode::PRECONDITION_FAILED,
            "{p:?} {version}"
        );
        let h = r.headers().clone();
        assert_eq!(header(&h, "x-ausername").as_deref(), Some("anonymous"));
        assert_eq!(header(&h, "x-seraph-loginreason"), None);
        assert!(set_cookie(&h, f.remember).is_none(), "not yet");
        let half = format!("{}={}", f.session, cookie_value(&h, f.session).unwrap());
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({ "message": "two-step verification required" })
        );
        // The half session is anonymous.
        assert_eq!(who(&sim, &half).await, "anonymous");

        let r = code(&sim, version, "totp-code", &half, "654321").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(header(r.headers(), "x-seraph-loginreason"), None);
        assert!(r.headers().get("set-cookie").is_none());
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({ "message": "invalid code" })
        );

        let r = code(&sim, version, "totp-code", &half, "123456").await;
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers().clone();
        assert_eq!(header(&h, "x-ausername").as_deref(), Some("power2"));
        assert_eq!(header(&h, "x-seraph-loginreason").as_deref(), Some("OK"));
        let real = format!("{}={}", f.session, cookie_value(&h, f.session).unwrap());
        assert_ne!(real, half, "a new session, not the half one");
        assert!(
            cookie_value(&h, f.remember).is_some(),
            "rememberMe of step one"
        );
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({ "redirectUrl": "/some/page?x=1" })
        );
        assert_eq!(who(&sim, &real).await, "power2");
        assert_eq!(who(&sim, &half).await, "anonymous");
        // The half session is spent.
        let r = code(&sim, version, "totp-code", &half, "123456").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // No half session at all.
    let r = code(&sim, "latest", "totp-code", "JSESSIONID=nope", "123456").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A new code from the authenticator app.
    assert!(sim.set_totp_code("power2", "777777"));
    let half = half_session(&sim, &f, "latest", false).await;
    assert_eq!(
        code(&sim, "latest", "totp-code", &half, "123456")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        code(&sim, "latest", "totp-code", &half, "777777")
            .await
            .status(),
        StatusCode::OK
    );
}

async fn a_recovery_code_works_once(p: Product) {
    let sim = start(p).await;
    let f = facts(p);
    let half = half_session(&sim, &f, "1.0", false).await;
    let r = code(&sim, "1.0", "recovery-code", &half, "rec-1").await;
    assert_eq!(r.status(), StatusCode::OK, "{p:?}");
    let real = format!(
        "{}={}",
        f.session,
        cookie_value(r.headers(), f.session).unwrap()
    );
    assert_eq!(who(&sim, &real).await, "power2");
    assert_eq!(sim.recovery_codes("power2"), vec!["rec-2".to_string()]);

    let half = half_session(&sim, &f, "latest", false).await;
    let r = code(&sim, "latest", "recovery-code", &half, "rec-1").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({ "message": "invalid code" })
    );
    // The TOTP code is no recovery code, nor the other way round.
    let r = code(&sim, "latest", "recovery-code", &half, "123456").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = code(&sim, "latest", "totp-code", &half, "rec-2").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = code(&sim, "latest", "recovery-code", &half, "rec-2").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(sim.recovery_codes("power2").is_empty());
}

async fn a_half_session_expires_after_five_minutes(p: Product) {
    let sim = start(p).await;
    let f = facts(p);
    let half = half_session(&sim, &f, "latest", false).await;
    sim.advance_clock(Duration::from_secs(4 * 60));
    let r = code(&sim, "latest", "totp-code", &half, "000000").await;
    assert_eq!(r.json::<Value>().await.unwrap()["message"], "invalid code");
    sim.advance_clock(Duration::from_secs(61));
    let r = code(&sim, "latest", "totp-code", &half, "123456").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{p:?}");
    assert_ne!(r.json::<Value>().await.unwrap()["message"], "invalid code");
    assert_eq!(who(&sim, &half).await, "anonymous");
}

async fn access_is_checked_again_at_the_code_step(p: Product) {
    let sim = start(p).await;
    let f = facts(p);
    let half = half_session(&sim, &f, "latest", true).await;
    sim.remove_from_group("power2", f.licensed);
    let r = code(&sim, "latest", "totp-code", &half, "123456").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{p:?}");
    let h = r.headers().clone();
    assert_eq!(
        header(&h, "x-seraph-loginreason").as_deref(),
        Some("AUTHORISATION_FAILED")
    );
    assert!(set_cookie(&h, f.session).is_none() && set_cookie(&h, f.remember).is_none());
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({ "message": "You do not have a permission to log in" })
    );
    // Enrolled users without access are refused at the password step already.
    let r = authenticate(&sim, "latest", "power2", "demo", false).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    sim.add_to_group("power2", f.licensed);
    sim.unenrol_two_step("power2");
    let r = authenticate(&sim, "latest", "power2", "demo", false).await;
    assert_eq!(r.status(), StatusCode::OK);
}

// ---- login options and the page -----------------------------------------------------

async fn login_options_list_the_form(p: Product) {
    let sim = start(p).await;
    for version in VERSIONS {
        let r = client()
            .get(format!(
                "{}/rest/authconfig/{version}/login-options",
                sim.url()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{p:?} {version}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({ "results": [{ "type": "LOGIN_FORM" }] })
        );
    }
}

async fn the_login_page_follows_the_login_style(p: Product) {
    let sim = start(p).await;
    let f = facts(p);
    let url = format!("{}{}?{}=/projects/X", sim.url(), f.page, f.dest);
    let page = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(f.form_field), "{p:?} the old form: {page}");
    assert!(!page.contains("/rest/tsv/"));

    sim.set_login_style(LoginStyle::Json);
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    for id in [
        "username",
        "password",
        "login-submit",
        "code",
        "code-submit",
        "login-error",
    ] {
        assert!(page.contains(&format!("id=\"{id}\"")), "{p:?} #{id}");
    }
    assert!(page.contains("/rest/tsv/latest/authenticate"));
    assert!(page.contains("'X-Atlassian-Token': 'no-check'"));
    assert!(page.contains("/totp-code"));
    assert!(page.contains("data-target=\"/projects/X\""));
    // The redirect rule iumgate's waiting room relies on.
    assert!(page.contains("answer.json.redirectUrl") && page.contains("response.redirected"));
    assert!(!page.contains(f.form_field));
}

macro_rules! per_product {
    ($($name:ident),* $(,)?) => {
        mod jira { $( #[tokio::test] async fn $name() { super::$name(iumgate::product::Product::Jira).await } )* }
        mod confluence { $( #[tokio::test] async fn $name() { super::$name(iumgate::product::Product::Confluence).await } )* }
        mod bitbucket { $( #[tokio::test] async fn $name() { super::$name(iumgate::product::Product::Bitbucket).await } )* }
    };
}

per_product!(
    right_password_with_access_is_200_with_a_session,
    wrong_password_is_401_counted_until_a_captcha_is_due,
    right_password_without_access_is_403_authorisation_failed,
    the_xsrf_header_and_json_are_required,
    two_step_412_half_session_then_the_code_makes_the_session,
    a_recovery_code_works_once,
    a_half_session_expires_after_five_minutes,
    access_is_checked_again_at_the_code_step,
    login_options_list_the_form,
    the_login_page_follows_the_login_style,
);

// ---- the old logins share the count -------------------------------------------------

#[tokio::test]
async fn form_and_json_logins_share_one_failed_login_count() {
    let sim = start(Product::Jira).await;
    let form = |pw: &'static str| {
        client()
            .post(format!("{}/login.jsp", sim.url()))
            .form(&[("os_username", "power1"), ("os_password", pw)])
            .send()
    };
    let r = form("nope").await.unwrap();
    assert_eq!(
        header(r.headers(), "x-seraph-loginreason").as_deref(),
        Some("AUTHENTICATED_FAILED")
    );
    let r = authenticate(&sim, "latest", "power1", "nope", false).await;
    assert_eq!(r.json::<Value>().await.unwrap()["captchaRequired"], false);
    assert_eq!(sim.failed_logins("power1"), 2);
    let r = form("nope").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(sim.failed_logins("power1"), 3);
    // Now the form refuses the right password too, and so does the JSON login.
    let r = form("demo").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(r.headers(), "x-seraph-loginreason").as_deref(),
        Some("AUTHENTICATION_DENIED")
    );
    assert!(r.text().await.unwrap().contains("CAPTCHA"));
    let r = authenticate(&sim, "1.0", "power1", "demo", false).await;
    assert_eq!(
        header(r.headers(), "x-seraph-loginreason").as_deref(),
        Some("AUTHENTICATION_DENIED")
    );
    // Turned off, the count no longer bars the login; a success resets it.
    sim.set_captcha_after(None);
    let r = form("demo").await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(sim.failed_logins("power1"), 0);
}

#[tokio::test]
async fn the_old_form_login_still_works_with_the_json_page() {
    let mut cfg = SimConfig::demo(Product::Bitbucket);
    cfg.login_style = LoginStyle::Json;
    let sim = Sim::start(cfg).await.unwrap();
    let r = client()
        .post(format!("{}/j_atl_security_check", sim.url()))
        .form(&[("j_username", "power1"), ("j_password", "demo")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(cookie_value(r.headers(), "BITBUCKETSESSIONID").is_some());
    let page = client()
        .get(format!("{}/login", sim.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"login-submit\""));
}
