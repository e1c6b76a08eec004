//! The platform login (Jira 10's JSON login page) and its two-step
//! verification, through the gate's phases: a right password with a code to
//! come keeps the seat for the code step, a wrong code may be followed by
//! the right one, an abandoned login gives its seat back, a wrong password
//! costs nobody, and a login that must wait is sent to the waiting room the
//! way the page follows: a JSON `redirectUrl`.

use super::lane_tests::gate_with;
use super::*;
use crate::identity::Kind;
use crate::proxy::ConnInfo;
use crate::wire::body::{empty, full, Body};
use http::{Request, Response, StatusCode};

const LOGIN: &str = "/rest/tsv/latest/authenticate";
const CODE: &str = "/rest/tsv/latest/authenticate/totp-code";

fn conn() -> ConnInfo {
    ConnInfo::new("127.0.0.1:40000".parse().unwrap(), false, false)
}

/// Casual c1..c7, `holders` holding; alice a power user; a tier of 6, so
/// 5 shared seats.
async fn world(holders: &[&str]) -> (Arc<Gate>, Arc<crate::clock::ManualClock>) {
    let clock = Arc::new(crate::clock::ManualClock::new(5_000_000));
    let casual = ["c1", "c2", "c3", "c4", "c5", "c6", "c7"];
    let dir = crate::directory::Fixed::new(6)
        .group("IUM_user_software", casual)
        .group("IUM_access_software", holders.iter().copied())
        .group("jira-software-users", ["alice"]);
    let g = gate_with(dir, clock.clone()).await;
    (g, clock)
}

fn login(user: &str) -> Request<Body> {
    let body = format!(
        r#"{{"username":"{user}","password":"pw","rememberMe":false,"targetUrl":"/browse/A-1"}}"#
    );
    Request::builder()
        .method("POST")
        .uri(LOGIN)
        .header("content-type", "application/json")
        .header("x-atlassian-token", "no-check")
        .header("content-length", body.len().to_string())
        .body(full(body))
        .unwrap()
}

fn code(half: &str) -> Request<Body> {
    let body = r#"{"code":"123456"}"#;
    Request::builder()
        .method("POST")
        .uri(CODE)
        .header("content-type", "application/json")
        .header("cookie", format!("JSESSIONID={half}"))
        .header("content-length", body.len().to_string())
        .body(full(body))
        .unwrap()
}

fn answer(status: u16, fields: &[(&str, &str)]) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    for (n, v) in fields {
        r.headers_mut().append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

/// The password step answers 412 and hands out a half session `half`.
async fn password_step(g: &Gate, user: &str, half: &str) -> Response<Body> {
    let (_, ctx) = g.through_request(&conn(), login(user)).await.unwrap();
    let set = format!("JSESSIONID={half}; Path=/; HttpOnly");
    g.through_answer(ctx, answer(412, &[("set-cookie", &set)]))
        .await
}

async fn code_step(g: &Gate, half: &str, resp: Response<Body>) -> Response<Body> {
    let (_, ctx) = g.through_request(&conn(), code(half)).await.unwrap();
    g.through_answer(ctx, resp).await
}

#[tokio::test]
async fn a_right_password_keeps_its_seat_for_the_code_step_and_a_wrong_code_may_be_followed_by_the_right_one(
) {
    let (g, _) = world(&["c1", "c2"]).await;
    let c3 = UserId::new("c3");
    let r = password_step(&g, "c3", "half-1").await;
    assert_eq!(
        r.status(),
        StatusCode::PRECONDITION_FAILED,
        "the 412 reaches the page"
    );
    assert!(g.holds(&c3), "the seat is in place before the code step");
    assert_eq!(g.second_steps_waiting(), 1);
    assert_eq!(g.borrowed_seats(), 1, "still lent: no session yet");

    // A wrong code: the login may try again.
    let r = code_step(&g, "half-1", answer(401, &[])).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(g.holds(&c3));
    assert_eq!(g.second_steps_waiting(), 1);

    // The right one: a real session for c3, and the seat is theirs.
    let set = "JSESSIONID=real-1; Path=/; HttpOnly";
    let ok = answer(
        200,
        &[
            ("set-cookie", set),
            ("x-ausername", "c3"),
            ("x-seraph-loginreason", "OK"),
        ],
    );
    let r = code_step(&g, "half-1", ok).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(g.holds(&c3));
    assert_eq!(g.second_steps_waiting(), 0);
    assert_eq!(g.borrowed_seats(), 0, "confirmed for good");
    assert_eq!(
        g.sessions.lookup(Kind::Session, "real-1", 5_000_000),
        Some(c3.clone())
    );
    // Nothing expires it later.
    assert_eq!(g.expire_second_steps(u64::MAX).await, 0);
    assert!(g.holds(&c3));
}

#[tokio::test]
async fn a_login_abandoned_between_its_steps_gives_its_seat_back_after_the_timeout() {
    let (g, clock) = world(&["c1", "c2"]).await;
    let c3 = UserId::new("c3");
    password_step(&g, "c3", "half-2").await;
    assert!(g.holds(&c3));

    clock.advance(4 * 60_000);
    assert_eq!(g.expire_second_steps(g.now()).await, 0, "not yet");
    assert!(g.holds(&c3));

    clock.advance(60_000 + 1);
    assert_eq!(g.expire_second_steps(g.now()).await, 1);
    assert!(!g.holds(&c3), "the seat went back");
    assert_eq!(g.borrowed_seats(), 0);

    // A code arriving afterwards keeps nothing.
    let ok = answer(
        200,
        &[("x-ausername", "c3"), ("x-seraph-loginreason", "OK")],
    );
    code_step(&g, "half-2", ok).await;
    assert_eq!(g.second_steps_waiting(), 0);
}

#[tokio::test]
async fn a_code_on_another_session_or_naming_someone_else_keeps_nothing() {
    let (g, _) = world(&["c1", "c2"]).await;
    let c3 = UserId::new("c3");
    password_step(&g, "c3", "half-3").await;
    // Not the half session: nothing to finish.
    let ok = answer(
        200,
        &[("x-ausername", "c3"), ("x-seraph-loginreason", "OK")],
    );
    code_step(&g, "other", ok).await;
    assert_eq!(g.second_steps_waiting(), 1);
    // The app names another user: the login is over, its seat back.
    let other = answer(200, &[("x-ausername", "c4")]);
    code_step(&g, "half-3", other).await;
    assert_eq!(g.second_steps_waiting(), 0);
    assert!(!g.holds(&c3));
    assert_eq!(g.borrowed_seats(), 0);
}

#[tokio::test]
async fn a_wrong_password_on_the_platform_login_costs_nobody_a_seat() {
    let (g, _) = world(&["c1", "c2"]).await;
    let (_, ctx) = g.through_request(&conn(), login("c3")).await.unwrap();
    let refused = answer(
        401,
        &[
            ("content-type", "application/json"),
            ("x-seraph-loginreason", "AUTHENTICATED_FAILED"),
        ],
    );
    let r = g.through_answer(ctx, refused).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The give-back runs on the answer (no task to wait for).
    assert!(!g.holds(&UserId::new("c3")));
    assert_eq!(g.borrowed_seats(), 0);
    assert_eq!(g.second_steps_waiting(), 0);
}

/// Every seat held by someone active: a proven password waits, and the
/// page is sent to the waiting room by a JSON `redirectUrl`, with the wait
/// cookie the queue API needs.
#[tokio::test]
async fn a_proven_password_with_no_seat_to_take_goes_to_the_waiting_room_by_redirect_url() {
    let holders = ["c1", "c2", "c4", "c5", "c6"];
    for step in ["no licence", "two-step"] {
        let (g, _) = world(&holders).await;
        let (_, ctx) = g.through_request(&conn(), login("c3")).await.unwrap();
        let resp = match step {
            "no licence" => answer(
                403,
                &[
                    ("content-type", "application/json"),
                    ("x-seraph-loginreason", "AUTHORISATION_FAILED"),
                ],
            ),
            _ => answer(412, &[("set-cookie", "JSESSIONID=half-4; Path=/")]),
        };
        let r = g.through_answer(ctx, resp).await;
        assert_eq!(r.status(), StatusCode::OK, "{step}");
        assert_eq!(r.headers()[http::header::CACHE_CONTROL], "no-store");
        let cookie = r.headers()[http::header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.starts_with("iumgate_wait="), "{step}: {cookie}");
        let body = http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap()
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        // Once admitted, the user logs in again and goes on to where they
        // were going.
        assert_eq!(
            json["redirectUrl"], "/iumgate/wait?to=/login.jsp%3Fos_destination%3D/browse/A-1",
            "{step}: {json}"
        );
        assert_eq!(json["state"], "waiting");
        assert!(!g.holds(&UserId::new("c3")), "{step}");
        assert_eq!(g.with_pool(|p| p.in_use()), 5, "{step}: nobody evicted");
        assert_eq!(g.second_steps_waiting(), 0, "{step}");
    }
}

/// A code step whose exchange breaks off (an upstream error, a client that
/// goes) settles nothing: the login keeps its seat only until its
/// deadline, as if the code never came.
#[tokio::test]
async fn a_code_step_that_breaks_off_leaves_the_login_to_its_deadline() {
    let (g, clock) = world(&["c1", "c2"]).await;
    let c3 = UserId::new("c3");
    password_step(&g, "c3", "half-5").await;
    let (_, ctx) = g.through_request(&conn(), code("half-5")).await.unwrap();
    drop(ctx);
    assert_eq!(g.second_steps_waiting(), 1, "still waiting for its code");
    assert!(g.holds(&c3));
    clock.advance(5 * 60_000 + 1);
    assert_eq!(g.expire_second_steps(g.now()).await, 1);
    assert!(!g.holds(&c3), "the deadline still gives the seat back");
    assert_eq!(g.borrowed_seats(), 0);
}
