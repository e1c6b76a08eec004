//! SAML logins end to end (issue 18, items 3 and 7): iumgate in front of the
//! simulator on real sockets, the simulator's IdP (`GET /sim-idp/sso`, a
//! test helper, not Atlassian's) issuing signed responses, its apps taking
//! `POST /plugins/servlet/samlconsumer` once per response. With the IdP's
//! certificate in `[sso.saml]` a verified first-use response may take an
//! idle holder's seat before the app sees it, or wait; without it a
//! response is a claim that takes no seat from anyone until the app itself
//! answers that it authenticated the user (and found no licence); a forged
//! or replayed response evicts nobody.

use crate::gate_support::{
    browser, browser_no_redirect, fill, no_redirect, poll_queue, World, SEVEN,
};
use iumgate::clock::Clock;
use iumgate::config::Config;
use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig, SimUser, SAML_AUDIENCE, SAML_DESTINATION, SAML_IDP_ENTITY_ID};
use std::path::PathBuf;
use std::time::Duration;

const CONSUMER: &str = "/plugins/servlet/samlconsumer";

/// The IdP's certificate in a file for `idp_certificate_file` (the
/// directory lives as long as the returned guard).
pub(crate) fn cert_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idp.pem");
    let idp = Sim::saml_idp().expect("the sim's IdP has a key");
    std::fs::write(&path, idp.certificate_pem()).unwrap();
    (dir, path)
}

/// `[sso.saml]` verifying the sim IdP's responses.
pub(crate) fn verified(cert: PathBuf) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.sso.saml.idp_certificate_file = Some(cert);
        c.sso.saml.audience = Some(SAML_AUDIENCE.into());
        c.sso.saml.destination = Some(SAML_DESTINATION.into());
        c.sso.saml.issuer = Some(SAML_IDP_ENTITY_ID.into());
    }
}

/// The IdP issues and the app checks on iumgate's (manual) clock.
pub(crate) fn sync_clock(w: &World) {
    let ms = i64::try_from(w.clock.now_ms()).unwrap();
    w.sim
        .set_saml_clock(Some(jiff::Timestamp::from_millisecond(ms).unwrap()));
}

/// The `value` of the hidden input `name` in the IdP's form.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).expect("the field is in the form") + marker.len();
    let len = page[start..].find('"').unwrap();
    page[start..start + len].to_string()
}

/// The response the IdP's page gives `user` (through the proxy).
async fn idp_response(w: &World, c: &reqwest::Client, user: &str) -> String {
    let r = c
        .get(w.url(&format!("/sim-idp/sso?user={user}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    hidden(&r.text().await.unwrap(), "SAMLResponse")
}

/// The browser's auto-post of the IdP's form.
async fn post(w: &World, c: &reqwest::Client, response: &str, relay: &str) -> reqwest::Response {
    c.post(w.url(CONSUMER))
        .form(&[("SAMLResponse", response), ("RelayState", relay)])
        .send()
        .await
        .unwrap()
}

fn ausername(r: &reqwest::Response) -> &str {
    r.headers()
        .get("x-ausername")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn sorted(users: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn the_simulated_app_takes_a_response_of_its_idp_once() {
    let sim = Sim::start(SimConfig::demo(Product::Jira)).await.unwrap();
    let c = no_redirect();
    let post = |r: String| {
        c.post(format!("{}{CONSUMER}", sim.url()))
            .form(&[
                ("SAMLResponse", r.as_str()),
                ("RelayState", "/browse/DEMO-1"),
            ])
            .send()
    };
    let r = sim.saml_response("power1").unwrap();
    let first = post(r.clone()).await.unwrap();
    assert_eq!(first.status(), 302);
    assert_eq!(first.headers()["location"], "/browse/DEMO-1");
    assert_eq!(ausername(&first), "power1");
    assert!(first.headers().get("set-cookie").is_some());
    let again = post(r).await.unwrap();
    assert_eq!(
        (again.status().as_u16(), ausername(&again)),
        (401, "anonymous")
    );
    // Expired.
    let old = sim
        .saml_login("power2")
        .issued_ago(jiff::SignedDuration::from_mins(10));
    let r = post(sim.issue_saml(&old).unwrap()).await.unwrap();
    assert_eq!((r.status().as_u16(), ausername(&r)), (401, "anonymous"));
    // Signed by the IdP but never issued by it, and altered.
    let idp = Sim::saml_idp().unwrap();
    let login = sim.saml_login("power2");
    let forged = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        idp.forged_xml(&login, "power3"),
    );
    let r = post(forged).await.unwrap();
    assert_eq!((r.status().as_u16(), ausername(&r)), (401, "anonymous"));
    // No application access: the form login's answer.
    let r = post(sim.saml_response("casual01").unwrap()).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-seraph-loginreason"], "AUTHORISATION_FAILED");
    assert_eq!(ausername(&r), "anonymous");
    assert!(r.text().await.unwrap().contains("do not have a permission"));
    assert_eq!(sim.saml_logins(), 1);
    // The app sends SSO logins to the IdP.
    let r = c
        .get(format!("{}/plugins/servlet/external-login", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/sim-idp/sso");
    let r = c
        .get(format!("{}/sim-idp/sso", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "nobody logged in at the IdP");
}

#[tokio::test]
async fn a_verified_login_with_a_free_seat_ends_licensed() {
    let (_dir, cert) = cert_file();
    let w = World::start(Product::Jira, |_| {}, verified(cert)).await;
    sync_clock(&w);
    w.sim.set_idp_user(Some("casual08"));
    let (c, _) = browser();
    // The app's SSO start sends the browser to the IdP, whose form posts
    // the response to the app.
    let page = c
        .get(w.url("/plugins/servlet/external-login"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.url().path(), "/sim-idp/sso");
    let response = hidden(&page.text().await.unwrap(), "SAMLResponse");
    let r = post(&w, &c, &response, "/browse/DEMO-1").await;
    assert_eq!(
        (r.status().as_u16(), r.url().path()),
        (200, "/browse/DEMO-1")
    );
    assert_eq!(w.access_members(), vec!["casual08".to_string()]);
    assert!(w.holds("casual08"));
    assert_eq!(w.sim.saml_logins(), 1);
    // The app session works afterwards.
    let r = c.get(w.url("/browse/DEMO-1")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), ausername(&r)), (200, "casual08"));
}

#[tokio::test]
async fn a_verified_login_works_in_confluence_and_bitbucket_too() {
    let (_dir, cert) = cert_file();
    for product in [Product::Confluence, Product::Bitbucket] {
        let w = World::start(product, |_| {}, verified(cert.clone())).await;
        sync_clock(&w);
        let (_, jar) = browser();
        let c = browser_no_redirect(jar);
        let response = idp_response(&w, &c, "casual08").await;
        let r = post(&w, &c, &response, "/").await;
        assert_eq!(
            (r.status().as_u16(), ausername(&r)),
            (302, "casual08"),
            "{product:?}"
        );
        assert_eq!(
            w.access_members(),
            vec!["casual08".to_string()],
            "{product:?}"
        );
        // The session the login opened is the user's.
        let r = c.get(w.url("/")).send().await.unwrap();
        assert_eq!(ausername(&r), "casual08", "{product:?}");
        w.stop().await;
    }
}

#[tokio::test]
async fn a_verified_login_takes_the_longest_idle_seat_of_a_full_pool() {
    let (_dir, cert) = cert_file();
    let w = World::start(Product::Jira, |_| {}, verified(cert)).await;
    let clients = fill(&w, &SEVEN).await;
    // casual01 idles longest: the others were active a minute later.
    w.advance_min(1);
    for c in &clients[1..] {
        let r = c.get(w.url("/browse/DEMO-1")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    w.advance_min(31);
    sync_clock(&w);
    let (c, _) = browser();
    let response = idp_response(&w, &c, "casual08").await;
    let r = post(&w, &c, &response, "/browse/DEMO-1").await;
    assert_eq!(
        (r.status().as_u16(), r.url().path()),
        (200, "/browse/DEMO-1")
    );
    let mut expected: Vec<&str> = SEVEN[1..].to_vec();
    expected.push("casual08");
    assert_eq!(w.access_members(), sorted(&expected));
    assert!(w.holds("casual08") && !w.holds("casual01"));
    // The assertion reached the app once and worked the first time.
    assert_eq!((w.sim.count(CONSUMER), w.sim.saml_logins()), (1, 1));
    assert!(w.in_use() <= 7);
}

#[tokio::test]
async fn a_verified_login_waits_when_every_holder_is_active() {
    let (_dir, cert) = cert_file();
    let w = World::start(Product::Jira, |_| {}, verified(cert)).await;
    fill(&w, &SEVEN).await;
    sync_clock(&w);
    let c = no_redirect();
    let response = w.sim.saml_response("casual08").unwrap();
    let r = post(&w, &c, &response, "/browse/DEMO-1").await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/iumgate/wait"), "{location}");
    assert!(location.contains("external-login"), "{location}");
    assert_eq!(w.access_members(), sorted(&SEVEN));
    assert!(!w.holds("casual08"));
    assert_eq!(w.sim.count(CONSUMER), 0, "the app never saw the assertion");
}

/// Without the certificate a response is a claim: a full pool of idle
/// holders is not touched by it, and a response the app refuses costs
/// nobody. Only the app's own answer that it authenticated the user and
/// found no licence (`AUTHORISATION_FAILED`) proves the user; then the gate
/// takes an idle seat and sends the browser through SSO again, as the
/// assertion was used up.
#[tokio::test]
async fn a_waiting_verified_login_goes_through_sso_again_once_admitted() {
    let (_dir, cert) = cert_file();
    let w = World::start(Product::Jira, |_| {}, verified(cert)).await;
    fill(&w, &SEVEN).await;
    sync_clock(&w);
    w.sim.set_idp_user(Some("casual08"));
    let (b, _) = browser();
    let response = idp_response(&w, &b, "casual08").await;
    let r = post(&w, &b, &response, "/browse/DEMO-1").await;
    assert_eq!(
        (r.status().as_u16(), r.url().path()),
        (200, "/iumgate/wait")
    );
    // The holders idle: the waiting room admits casual08.
    w.advance_min(31);
    sync_clock(&w);
    let q = poll_queue(&w, &b, "").await;
    assert_eq!(q["state"], "admitted", "{q}");
    eprintln!("QQQ {q}");
    assert!(w.holds("casual08"));
    assert_eq!(w.access_members().len(), 7);
    // The first assertion never reached the app; a new one logs in.
    assert_eq!(w.sim.count(CONSUMER), 0);
    let page = b
        .get(w.url("/plugins/servlet/external-login"))
        .send()
        .await
        .unwrap();
    let again = hidden(&page.text().await.unwrap(), "SAMLResponse");
    let r = post(&w, &b, &again, "/browse/DEMO-1").await;
    assert_eq!(
        (r.status().as_u16(), r.url().path()),
        (200, "/browse/DEMO-1")
    );
    assert_eq!(w.sim.saml_logins(), 1);
}

#[tokio::test]
async fn an_unverified_login_takes_no_seat_before_the_app_proves_the_user() {
    let w = World::start(Product::Jira, |_| {}, |_| {}).await;
    fill(&w, &SEVEN).await;
    w.advance_min(31);
    sync_clock(&w);
    let c = no_redirect();
    // Never issued by the IdP (altered): the app refuses it.
    let idp = Sim::saml_idp().unwrap();
    let forged = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        idp.forged_xml(&w.sim.saml_login("casual09"), "casual08"),
    );
    let r = post(&w, &c, &forged, "/browse/DEMO-1").await;
    assert_eq!((r.status().as_u16(), ausername(&r)), (401, "anonymous"));
    assert_eq!(w.access_members(), sorted(&SEVEN));
    assert!(!w.holds("casual08"));
    // Issued by the IdP: the app says it has no licence for the user.
    w.sim.set_idp_user(Some("casual08"));
    let (b, _) = browser();
    let response = idp_response(&w, &b, "casual08").await;
    let r = post(&w, &c, &response, "/browse/DEMO-1").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/plugins/servlet/external-login");
    assert!(w.holds("casual08"));
    assert_eq!(w.access_members().len(), 7);
    // Through SSO again: the IdP's new response logs the user in.
    let page = b
        .get(w.url("/plugins/servlet/external-login"))
        .send()
        .await
        .unwrap();
    let again = hidden(&page.text().await.unwrap(), "SAMLResponse");
    let r = post(&w, &b, &again, "/browse/DEMO-1").await;
    assert_eq!(
        (r.status().as_u16(), r.url().path()),
        (200, "/browse/DEMO-1")
    );
    assert_eq!(w.sim.saml_logins(), 1);
}

#[tokio::test]
async fn forged_and_replayed_responses_never_evict() {
    let (_dir, cert) = cert_file();
    let w = World::start(Product::Jira, |_| {}, verified(cert)).await;
    sync_clock(&w);
    // casual08 logs in with a response valid for two hours.
    let login = iumgate::sim::saml_idp::SamlLogin {
        validity: Duration::from_secs(2 * 3600),
        ..w.sim.saml_login("casual08")
    };
    let response = w.sim.issue_saml(&login).unwrap();
    let c = no_redirect();
    let r = post(&w, &c, &response, "/").await;
    assert_eq!((r.status().as_u16(), ausername(&r)), (302, "casual08"));
    // Six others fill the pool; casual08 idles, and casual09's login takes
    // its seat.
    let clients = fill(&w, &SEVEN[..6]).await;
    w.advance_min(31);
    for b in &clients {
        let r = b.get(w.url("/browse/DEMO-1")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    fill(&w, &["casual09"]).await;
    assert!(!w.holds("casual08"));
    let full = w.access_members();
    assert_eq!(full.len(), 7);
    // Every holder idle, the response still in its time window: posted
    // again, it is a replay, a claim at most, and the app refuses it.
    w.advance_min(31);
    sync_clock(&w);
    let r = post(&w, &c, &response, "/").await;
    assert_eq!((r.status().as_u16(), ausername(&r)), (401, "anonymous"));
    assert_eq!(w.access_members(), full);
    assert!(!w.holds("casual08"));
    // Signed for casual10, the NameID changed to casual11.
    let idp = Sim::saml_idp().unwrap();
    let forged = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        idp.forged_xml(&w.sim.saml_login("casual10"), "casual11"),
    );
    let r = post(&w, &c, &forged, "/").await;
    assert_eq!((r.status().as_u16(), ausername(&r)), (401, "anonymous"));
    assert_eq!(w.access_members(), full);
    assert!(!w.holds("casual10") && !w.holds("casual11"));
    assert_eq!(w.sim.saml_logins(), 1);
}

#[tokio::test]
async fn fifty_concurrent_verified_logins_never_overfill_the_access_group() {
    let (_dir, cert) = cert_file();
    let w = World::start(
        Product::Jira,
        |sc| {
            for i in 21..=57 {
                sc.users.push(SimUser::new(
                    &format!("casual{i:02}"),
                    &["IUM_user_software"],
                ));
            }
        },
        verified(cert),
    )
    .await;
    fill(&w, &SEVEN).await;
    // The seven idle: the first logins may take their seats.
    w.advance_min(31);
    sync_clock(&w);
    let capacity = w.gate.with_pool(|p| p.capacity());
    assert_eq!(capacity, 7);
    let users: Vec<String> = (8..=57).map(|i| format!("casual{i:02}")).collect();
    let responses: Vec<String> = users
        .iter()
        .map(|u| w.sim.saml_response(u).unwrap())
        .collect();
    let w = std::sync::Arc::new(w);
    let mut tasks = Vec::new();
    for response in responses {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let c = no_redirect();
            post(&w, &c, &response, "/").await.status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let logged_in = statuses.iter().filter(|s| **s == 302).count();
    assert!(
        statuses.iter().all(|s| [302, 303].contains(s)),
        "{statuses:?}"
    );
    assert!(logged_in >= 1 && logged_in <= capacity, "{statuses:?}");
    assert!(
        w.access_members().len() <= capacity,
        "{:?}",
        w.access_members()
    );
    assert!(w.in_use() <= capacity);
    assert!(w.sim.peak_members("IUM_access_software") <= capacity);
    assert_eq!(w.sim.saml_logins(), logged_in);
}
