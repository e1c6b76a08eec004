//! SAML logins through the gate's phases: an unverified response borrows a
//! free seat at most and never evicts; a verified one may take an idle
//! holder's seat *before* the app sees the assertion, or wait and go back
//! through SSO; a replayed, forged or encrypted one is no more than a claim.

use super::lane_tests::gate_with;
use super::*;
use crate::proxy::ConnInfo;
use crate::sim::saml_idp::{SamlIdp, SamlLogin};
use crate::wire::body::{empty, full, Body};
use http::{Request, Response, StatusCode};
use std::sync::atomic::Ordering;

const CONSUMER: &str = "/plugins/servlet/samlconsumer";
const AUDIENCE: &str = "https://jira.example.com";
const DESTINATION: &str = "https://jira.example.com/plugins/servlet/samlconsumer";
/// The gate's clock (ms): assertions are issued at this time.
const NOW: u64 = 1_790_000_000_000;

fn conn() -> ConnInfo {
    ConnInfo::new("127.0.0.1:40000".parse().unwrap(), false, false)
}

/// Casual c1..c7, `holders` holding (active at NOW − `idle_min` minutes);
/// a tier of 6 (5 shared seats); with `verify`, `[sso.saml]` names the
/// IdP's certificate.
async fn world(
    holders: &[&str],
    idle_min: u64,
    idp: &SamlIdp,
    verify: bool,
) -> (Arc<Gate>, tempfile::NamedTempFile) {
    let clock = Arc::new(crate::clock::ManualClock::new(NOW - idle_min * 60_000));
    let dir = crate::directory::Fixed::new(6)
        .group(
            "IUM_user_software",
            ["c1", "c2", "c3", "c4", "c5", "c6", "c7"],
        )
        .group("IUM_access_software", holders.iter().copied())
        .group("jira-software-users", ["alice"]);
    let g = gate_with(dir, clock.clone()).await;
    clock.advance(idle_min * 60_000);
    let cert = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cert.path(), idp.certificate_pem()).unwrap();
    let mut cfg = crate::config::SamlConfig::default();
    if verify {
        cfg.idp_certificate_file = Some(cert.path().to_path_buf());
        cfg.audience = Some(AUDIENCE.into());
        cfg.destination = Some(DESTINATION.into());
    }
    let mut s = (**g.settings.load()).clone();
    s.saml = SamlVerifier::from_config(&cfg);
    assert_eq!(s.saml.is_some(), verify);
    g.settings.store(Arc::new(s));
    (g, cert)
}

fn login_for(user: &str) -> SamlLogin {
    let mut l = SamlLogin::new(user, AUDIENCE, DESTINATION);
    l.issued = jiff::Timestamp::from_millisecond(NOW as i64).unwrap();
    l
}

fn post(response_b64: &str) -> Request<Body> {
    let body = format!(
        "SAMLResponse={}&RelayState=%2Fbrowse%2FA-1",
        percent_encoding::utf8_percent_encode(response_b64, percent_encoding::NON_ALPHANUMERIC)
    );
    Request::builder()
        .method("POST")
        .uri(CONSUMER)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html")
        .header("content-length", body.len().to_string())
        .body(full(body))
        .unwrap()
}

fn b64(xml: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(xml)
}

/// The app logged `user` in: a redirect with a session naming them.
fn logged_in(user: &str) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::FOUND;
    let h = r.headers_mut();
    h.insert("location", "/browse/A-1".parse().unwrap());
    h.insert("x-ausername", user.parse().unwrap());
    h.insert(
        "set-cookie",
        format!("JSESSIONID=sso-{user}; Path=/").parse().unwrap(),
    );
    r
}

/// The app refused the assertion: its error page, nobody logged in.
fn refused() -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r.headers_mut()
        .insert("x-ausername", "anonymous".parse().unwrap());
    r
}

fn holders(g: &Gate) -> Vec<String> {
    let mut h: Vec<String> = g
        .with_pool(|p| p.holders())
        .into_iter()
        .map(|r| r.user.to_string())
        .collect();
    h.sort();
    h
}

#[tokio::test]
async fn an_unverified_response_borrows_a_free_seat_kept_only_when_the_app_logs_that_user_in() {
    let idp = SamlIdp::new("https://idp.example.com").unwrap();
    for (answer, kept) in [("logged in", true), ("refused", false)] {
        let (g, _cert) = world(&["c1", "c2"], 60, &idp, false).await;
        let c3 = UserId::new("c3");
        let (_, ctx) = g
            .through_request(&conn(), post(&idp.response(&login_for("c3"))))
            .await
            .unwrap();
        assert!(
            g.holds(&c3),
            "{answer}: a free seat lent before the app sees it"
        );
        assert_eq!(g.borrowed_seats(), 1);
        let resp = if kept { logged_in("c3") } else { refused() };
        g.through_answer(ctx, resp).await;
        assert_eq!(g.holds(&c3), kept, "{answer}");
        assert_eq!(g.borrowed_seats(), 0, "{answer}");
    }
}

#[tokio::test]
async fn an_unverified_response_never_takes_anyones_seat() {
    let idp = SamlIdp::new("https://idp.example.com").unwrap();
    let full_house = ["c1", "c2", "c4", "c5", "c6"];
    // Idle past min_idle: a proven user could take a seat; a claim may not.
    let (g, _cert) = world(&full_house, 60, &idp, false).await;
    let before = holders(&g);
    let r = g
        .through_request(&conn(), post(&idp.response(&login_for("c3"))))
        .await;
    assert!(r.is_ok(), "forwarded: the app decides about the assertion");
    assert_eq!(holders(&g), before, "nobody evicted, nobody queued");
    assert_eq!(g.with_pool(|p| p.queue_len()), 0);
}

#[tokio::test]
async fn a_verified_response_takes_an_idle_holders_seat_before_the_app_sees_it() {
    let idp = SamlIdp::new("https://idp.example.com").unwrap();
    let full_house = ["c1", "c2", "c4", "c5", "c6"];
    let (g, _cert) = world(&full_house, 60, &idp, true).await;
    let c3 = UserId::new("c3");
    let (_, ctx) = g
        .through_request(&conn(), post(&idp.response(&login_for("c3"))))
        .await
        .unwrap();
    assert!(
        g.holds(&c3),
        "the seat is in place before the assertion is used"
    );
    assert_eq!(g.with_pool(|p| p.in_use()), 5, "never above capacity");
    g.through_answer(ctx, logged_in("c3")).await;
    assert!(g.holds(&c3));
    assert_eq!(g.borrowed_seats(), 0);
}

#[tokio::test]
async fn a_verified_response_the_app_refuses_gives_the_seat_back() {
    let idp = SamlIdp::new("https://idp.example.com").unwrap();
    let (g, _cert) = world(&["c1", "c2"], 60, &idp, true).await;
    let c3 = UserId::new("c3");
    let (_, ctx) = g
        .through_request(&conn(), post(&idp.response(&login_for("c3"))))
        .await
        .unwrap();
    assert!(g.holds(&c3));
    g.through_answer(ctx, refused()).await;
    assert!(!g.holds(&c3));
}

#[tokio::test]
async fn a_verified_response_with_every_holder_active_waits_and_goes_back_through_sso() {
    let idp = SamlIdp::new("https://idp.example.com").unwrap();
    let full_house = ["c1", "c2", "c4", "c5", "c6"];
    // Active a minute ago: nobody may be evicted.
    let (g, _cert) = world(&full_house, 1, &idp, true).await;
    let answer = match g
        .through_request(&conn(), post(&idp.response(&login_for("c3"))))
        .await
    {
        Err(r) => r,
        Ok(_) => panic!("a verified user with no seat to take must wait, not reach the app"),
    };
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        answer.headers()["location"],
        "/iumgate/wait?to=/plugins/servlet/external-login"
    );
    assert!(answer.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("iumgate_wait="));
    assert_eq!(g.with_pool(|p| p.queue_len()), 1);
}

#[tokio::test]
async fn a_replayed_or_forged_response_is_only_a_claim() {
    let idp = SamlIdp::new("https://idp.example.com").unwrap();
    let full_house = ["c1", "c2", "c4", "c5", "c6"];
    let (g, _cert) = world(&full_house, 60, &idp, true).await;
    let c3_login = login_for("c3");
    let first = idp.response(&c3_login);
    let (_, ctx) = g.through_request(&conn(), post(&first)).await.unwrap();
    g.through_answer(ctx, logged_in("c3")).await;
    assert!(g.holds(&UserId::new("c3")));
    let before = holders(&g);

    // The same assertion again (now for someone else's benefit it cannot
    // be, but the seat map must not move): a claim, and c3 holds already.
    // A forged one for c7 (NameID changed after signing): a claim, no
    // eviction although every other holder is idle.
    let forged = b64(&idp.forged_xml(&login_for("c7"), "c7-x"));
    for (what, body) in [("replayed", first), ("forged", forged)] {
        let r = g.through_request(&conn(), post(&body)).await;
        assert!(r.is_ok(), "{what}: forwarded; the app refuses it");
        assert_eq!(holders(&g), before, "{what}: nobody evicted");
    }
    // A replay of c7's valid response after a first use: no eviction either.
    let c7 = idp.response(&login_for("c7"));
    let (_, ctx) = g.through_request(&conn(), post(&c7)).await.unwrap();
    g.through_answer(ctx, refused()).await;
    let before = holders(&g);
    assert_eq!(before.len(), 4, "c7's seat went back when the app refused");
    let r = g.through_request(&conn(), post(&c7)).await;
    assert!(r.is_ok());
    let after = holders(&g);
    assert!(
        before.iter().all(|h| after.contains(h)),
        "a replayed assertion evicts nobody: {before:?} → {after:?}"
    );
    assert_eq!(g.borrowed_seats(), 1, "the free seat is only lent");
}

#[tokio::test]
async fn an_encrypted_assertion_is_counted_and_forwarded_unread() {
    let idp = SamlIdp::new("https://idp.example.com").unwrap();
    let (g, _cert) = world(&["c1", "c2"], 60, &idp, true).await;
    let enc = b64(&idp.encrypted_xml(&login_for("c3")));
    let r = g.through_request(&conn(), post(&enc)).await;
    assert!(r.is_ok());
    assert_eq!(g.counters.saml_encrypted.load(Ordering::Relaxed), 1);
    assert!(!g.holds(&UserId::new("c3")));
    assert_eq!(g.borrowed_seats(), 0);
}
