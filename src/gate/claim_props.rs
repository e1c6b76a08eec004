//! The claim model's invariant as a property: no sequence of unconfirmed
//! requests — Basic names with wrong passwords, login forms and today's JSON
//! login page the app refuses, SAML responses iumgate cannot verify,
//! exchanges that break off, logouts by name — changes who holds a seat or
//! when they were last active, or puts anyone in the queue. And the cases
//! around it: a lent seat is kept only when the app confirms that very user.

use super::lane_tests::gate_with;
use super::*;
use crate::identity::Kind;
use crate::proxy::ConnInfo;
use crate::wire::body::{empty, full, Body};
use base64::Engine;
use http::{Method, Request, Response};
use proptest::prelude::*;
use std::sync::atomic::Ordering;

const USERS: [&str; 6] = ["c1", "c2", "c3", "c4", "c5", "alice"];

/// Casual c1..c5, c1 and c2 holding; alice a power user; 5 shared seats.
fn directory() -> crate::directory::Fixed {
    crate::directory::Fixed::new(10)
        .group("IUM_user_software", ["c1", "c2", "c3", "c4", "c5"])
        .group("IUM_access_software", ["c1", "c2"])
        .group("jira-software-users", ["alice"])
}

async fn world() -> (Arc<Gate>, Arc<crate::clock::ManualClock>) {
    let clock = Arc::new(crate::clock::ManualClock::new(5_000_000));
    let g = gate_with(directory(), clock.clone()).await;
    assert!(g.holds(&UserId::new("c1")) && g.holds(&UserId::new("c2")));
    (g, clock)
}

/// What the app answers an unconfirmed request.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// 401, names nobody, the password was wrong.
    Refused,
    /// 200 naming nobody (a page anyone may see).
    Anonymous,
    /// No answer: an upstream error, a time-out, a reset client.
    Broken,
}

#[derive(Debug, Clone)]
enum Op {
    Basic {
        user: usize,
        path: usize,
        html: bool,
        answer: Answer,
    },
    Login {
        user: usize,
        json: bool,
        answer: Answer,
    },
    /// Today's login page (JSON to `/rest/tsv/latest/authenticate`).
    Platform {
        user: usize,
        answer: Answer,
    },
    /// A SAML response naming `user`, posted to the consumer; the gate has
    /// no IdP certificate, so it is a claim.
    Saml {
        user: usize,
        answer: Answer,
    },
    Advance {
        minutes: u64,
    },
}

const PATHS: [(&str, &str); 6] = [
    ("GET", "/browse/A-1"),
    ("POST", "/rest/api/2/issue/A-1/comment"),
    ("GET", "/rest/api/2/search"),
    ("GET", "/secure/Logout!default.jspa"),
    ("GET", "/logout"),
    ("DELETE", "/rest/auth/1/session"),
];

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        Just(Answer::Refused),
        Just(Answer::Anonymous),
        Just(Answer::Broken)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..USERS.len(), 0..PATHS.len(), any::<bool>(), answer()).prop_map(
            |(user, path, html, answer)| Op::Basic {
                user,
                path,
                html,
                answer
            }
        ),
        (0..USERS.len(), any::<bool>(), answer()).prop_map(|(user, json, answer)| Op::Login {
            user,
            json,
            answer
        }),
        (0..USERS.len(), answer()).prop_map(|(user, answer)| Op::Platform { user, answer }),
        (0..USERS.len(), answer()).prop_map(|(user, answer)| Op::Saml { user, answer }),
        (0u64..90).prop_map(|minutes| Op::Advance { minutes }),
    ]
}

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn request(method: &str, path: &str, headers: &[(&str, String)], body: Body) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path);
    for (n, v) in headers {
        b = b.header(*n, v);
    }
    b.body(body).unwrap()
}

fn login(user: &str, json: bool) -> Request<Body> {
    if json {
        let body = format!(r#"{{"username":"{user}","password":"wrong"}}"#);
        request(
            "POST",
            "/rest/auth/1/session",
            &[
                ("content-type", "application/json".into()),
                ("content-length", body.len().to_string()),
            ],
            full(body),
        )
    } else {
        let body = format!("os_username={user}&os_password=wrong");
        request(
            "POST",
            "/login.jsp",
            &[
                ("content-type", "application/x-www-form-urlencoded".into()),
                ("content-length", body.len().to_string()),
                ("accept", "text/html".into()),
            ],
            full(body),
        )
    }
}

fn app_answer(a: Answer) -> Option<Response<Body>> {
    let mut r = Response::new(empty());
    match a {
        Answer::Refused => {
            *r.status_mut() = http::StatusCode::UNAUTHORIZED;
            r.headers_mut()
                .insert("x-ausername", "anonymous".parse().unwrap());
            r.headers_mut().insert(
                "x-seraph-loginreason",
                "AUTHENTICATED_FAILED".parse().unwrap(),
            );
        }
        Answer::Anonymous => {
            r.headers_mut()
                .insert("x-ausername", "anonymous".parse().unwrap());
        }
        Answer::Broken => return None,
    }
    Some(r)
}

/// A SAML consumer post for `user`, signed by the simulator's IdP (whose
/// certificate the gate does not have: a claim).
fn saml_post(user: &str) -> Request<Body> {
    use crate::sim::saml_idp::SamlLogin;
    let idp = crate::sim::Sim::saml_idp().expect("the simulator's IdP");
    let response = idp.response(&SamlLogin::new(
        user,
        "https://jira.example.com",
        "https://jira.example.com/plugins/servlet/samlconsumer",
    ));
    let body = format!(
        "SAMLResponse={}",
        percent_encoding::utf8_percent_encode(&response, percent_encoding::NON_ALPHANUMERIC)
    );
    let h = [
        (
            "content-type",
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("content-length", body.len().to_string()),
    ];
    request("POST", "/plugins/servlet/samlconsumer", &h, full(body))
}

/// A client connection, not a trusted proxy's.
fn conn() -> ConnInfo {
    ConnInfo::new("127.0.0.1:40000".parse().unwrap(), false, false)
}

/// The app's answer naming `user`.
fn named(user: &str) -> Response<Body> {
    let mut r = Response::new(empty());
    r.headers_mut().insert("x-ausername", user.parse().unwrap());
    r
}

/// One exchange through the hooks, as either lane drives them.
async fn exchange(g: &Gate, req: Request<Body>, answer: Answer) -> Option<Response<Body>> {
    let conn = conn();
    match g.through_request(&conn, req).await {
        Err(own) => Some(own),
        Ok((_req, ctx)) => match app_answer(answer) {
            Some(resp) => Some(g.through_answer(ctx, resp).await),
            // The lane drops the context unanswered.
            None => {
                drop(ctx);
                None
            }
        },
    }
}

/// Lets the give-backs that dropped guards spawned finish (bounded).
async fn settle(g: &Gate) {
    for _ in 0..1000 {
        if g.borrowed_seats() == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("a lent seat was never given back");
}

fn seats(g: &Gate) -> Vec<(UserId, u64)> {
    let mut h: Vec<(UserId, u64)> = g
        .with_pool(|p| p.holders())
        .into_iter()
        .map(|r| (r.user, r.last_active))
        .collect();
    h.sort();
    h
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (g, clock) = world().await;
    let before = seats(&g);
    let sessions_before = g.sessions.len();
    for op in ops {
        let out = match &op {
            Op::Basic {
                user,
                path,
                html,
                answer,
            } => {
                let (method, path) = PATHS[*path];
                let mut h = vec![("authorization", basic(USERS[*user], "wrong"))];
                if *html {
                    h.push(("accept", "text/html".into()));
                }
                exchange(&g, request(method, path, &h, empty()), *answer).await
            }
            Op::Login { user, json, answer } => {
                exchange(&g, login(USERS[*user], *json), *answer).await
            }
            Op::Platform { user, answer } => {
                let body = format!(
                    r#"{{"username":"{}","password":"wrong","targetUrl":"/"}}"#,
                    USERS[*user]
                );
                let h = [
                    ("content-type", "application/json".to_string()),
                    ("content-length", body.len().to_string()),
                ];
                let req = request("POST", "/rest/tsv/latest/authenticate", &h, full(body));
                exchange(&g, req, *answer).await
            }
            Op::Saml { user, answer } => exchange(&g, saml_post(USERS[*user]), *answer).await,
            Op::Advance { minutes } => {
                clock.advance(minutes * 60_000);
                None
            }
        };
        settle(&g).await;
        prop_assert_eq!(seats(&g), before.clone(), "after {:?}", op);
        prop_assert!(
            g.with_pool(|p| p.queue()).is_empty(),
            "queued after {:?}",
            op
        );
        if let Some(resp) = out {
            let cookies: Vec<_> = resp.headers().get_all("set-cookie").iter().collect();
            prop_assert!(cookies.is_empty(), "{:?} got cookies {:?}", op, cookies);
        }
        prop_assert_eq!(g.sessions.len(), sessions_before, "bound after {:?}", op);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_sequence_of_unconfirmed_requests_changes_who_holds_a_seat(
        ops in proptest::collection::vec(op(), 1..24)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(ops))?;
    }
}

#[tokio::test]
async fn a_seat_lent_to_a_login_the_app_refuses_a_licence_is_a_mismatch_and_goes_back() {
    let (g, _) = world().await;
    let conn = conn();
    let (_, ctx) = g.through_request(&conn, login("c3", false)).await.unwrap();
    assert!(g.holds(&UserId::new("c3")), "a free seat is lent first");
    // The app logged in someone else without a licence (it read the request
    // differently): its verdict is about them, not c3.
    let mut r = Response::new(empty());
    r.headers_mut().insert(
        "x-seraph-loginreason",
        "AUTHORISATION_FAILED".parse().unwrap(),
    );
    r.headers_mut()
        .insert("x-ausername", "anonymous".parse().unwrap());
    let resp = g.through_answer(ctx, r).await;
    assert_ne!(resp.status(), http::StatusCode::TEMPORARY_REDIRECT);
    assert!(!g.holds(&UserId::new("c3")), "the lent seat went back");
    assert_eq!(g.counters.release_rollback.load(Ordering::Relaxed), 1);
    assert!(g.with_pool(|p| p.queue()).is_empty(), "nobody queued");
}

#[tokio::test]
async fn a_seat_lent_to_a_claim_is_kept_when_the_app_names_that_user() {
    let (g, _) = world().await;
    let conn = conn();
    let h = [("authorization", basic("c3", "right"))];
    let (_, ctx) = g
        .through_request(&conn, request("GET", "/rest/api/2/search", &h, empty()))
        .await
        .unwrap();
    let r = named("c3");
    g.through_answer(ctx, r).await;
    settle(&g).await;
    assert!(g.holds(&UserId::new("c3")));
    assert_eq!(g.borrowed_seats(), 0);
}

#[tokio::test]
async fn a_seat_its_users_session_confirms_outlives_a_failed_claim_in_their_name() {
    let (g, _) = world().await;
    let conn = conn();
    let c3 = UserId::new("c3");
    g.sessions.bind(Kind::Session, "s-c3", &c3, 5_000_000);
    // A wrong-password claim borrows the free seat...
    let h = [("authorization", basic("c3", "wrong"))];
    let (_, claim) = g
        .through_request(&conn, request("GET", "/rest/api/2/search", &h, empty()))
        .await
        .unwrap();
    assert!(g.holds(&c3));
    // ...while c3 works in their own session: the seat is theirs now.
    let h = [
        ("cookie", "JSESSIONID=s-c3".to_string()),
        ("accept", "text/html".into()),
    ];
    let (_, own) = g
        .through_request(&conn, request("GET", "/browse/A-1", &h, empty()))
        .await
        .unwrap();
    let r = named("c3");
    g.through_answer(own, r).await;
    // The claim's exchange fails: c3 keeps the seat.
    drop(claim);
    settle(&g).await;
    assert!(g.holds(&c3), "c3's confirmed seat was given back");
}

#[tokio::test]
async fn a_seat_its_users_own_login_confirms_outlives_a_failed_claim_in_their_name() {
    let (g, _) = world().await;
    let conn = conn();
    let c3 = UserId::new("c3");
    // Mallory's wrong password borrows the free seat...
    let h = [("authorization", basic("c3", "wrong"))];
    let (_, claim) = g
        .through_request(&conn, request("GET", "/rest/api/2/search", &h, empty()))
        .await
        .unwrap();
    assert!(g.holds(&c3));
    // ...while c3 logs in with the right one (nothing more to lend).
    let (_, login_ctx) = g.through_request(&conn, login("c3", false)).await.unwrap();
    let mut r = Response::new(empty());
    r.headers_mut()
        .insert("x-seraph-loginreason", "OK".parse().unwrap());
    r.headers_mut().insert("x-ausername", "c3".parse().unwrap());
    g.through_answer(login_ctx, r).await;
    // Mallory's exchange fails: c3 keeps the seat they logged in with.
    drop(claim);
    settle(&g).await;
    assert!(g.holds(&c3), "c3 lost the seat of their own login");
}

/// [`directory`] whose group removals fail while `failing` is set.
#[derive(Debug)]
struct Flaky {
    inner: crate::directory::Fixed,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl crate::directory::Directory for Flaky {
    async fn add_to_group(
        &self,
        user: &UserId,
        group: &str,
    ) -> Result<(), crate::directory::DirectoryError> {
        self.inner.add_to_group(user, group).await
    }
    async fn remove_from_group(
        &self,
        user: &UserId,
        group: &str,
    ) -> Result<(), crate::directory::DirectoryError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(crate::directory::DirectoryError::unavailable(
                "remove user from group",
                "test",
                "the directory is down",
            ));
        }
        self.inner.remove_from_group(user, group).await
    }
    async fn group_members(
        &self,
        group: &str,
    ) -> Result<Vec<crate::directory::Member>, crate::directory::DirectoryError> {
        self.inner.group_members(group).await
    }
    async fn user(
        &self,
        user: &UserId,
    ) -> Result<Option<crate::directory::UserInfo>, crate::directory::DirectoryError> {
        self.inner.user(user).await
    }
    async fn licence(
        &self,
        application: &str,
    ) -> Result<Option<crate::directory::LicenceInfo>, crate::directory::DirectoryError> {
        self.inner.licence(application).await
    }
}

#[tokio::test]
async fn a_lent_seat_the_directory_could_not_take_back_is_given_back_by_the_prune_job() {
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dir = Flaky {
        inner: directory(),
        failing: failing.clone(),
    };
    let clock = Arc::new(crate::clock::ManualClock::new(5_000_000));
    let g = gate_with(dir, clock).await;
    let conn = conn();
    let c3 = UserId::new("c3");
    let (_, claim) = g.through_request(&conn, login("c3", false)).await.unwrap();
    assert!(g.holds(&c3));
    // The password was wrong, and the directory is down as the seat goes back.
    failing.store(true, Ordering::SeqCst);
    g.through_answer(claim, app_answer(Answer::Refused).unwrap())
        .await;
    assert!(g.holds(&c3), "the directory refused: the seat is still out");
    assert_eq!(g.borrowed_seats(), 1, "and still counted as lent");
    assert_eq!(g.retry_give_backs().await, 1, "still down: kept for later");
    // The directory is back: the next prune pass gives the seat back.
    failing.store(false, Ordering::SeqCst);
    assert_eq!(g.retry_give_backs().await, 0);
    assert!(!g.holds(&c3), "a wrong password kept a seat");
    assert_eq!(g.borrowed_seats(), 0);
}
