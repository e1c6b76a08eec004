//! The two lanes run the gate's one implementation of every phase, the fast
//! lane on the raw head ([`Fields`]), the hyper lane on its header map; these
//! tests hold the two views to the same decisions and lessons:
//! - `decide` forwards, from raw fields, exactly what it forwards from the
//!   map, with the same effect on seats, activity and bindings;
//! - `learn` learns from raw fields what the map path (`learn` then
//!   `on_response`) learns from the same answer, and hands every answer it
//!   cannot judge from the head to `on_response`;
//! - a session's memo of its user's class and seat: never used once the pool,
//!   a grant, a class or the settings changed since it was made.

use super::*;
use crate::identity::Kind;
use crate::proxy::{ConnInfo, Decision, Hooks, Learned};
use crate::wire::body::empty;
use crate::wire::Fields;
use http::{HeaderName, Request, Response, StatusCode};

/// Power users alice, bob, carol; casual c1 holding a seat, casual c2 not;
/// the app's licence has `seats` seats.
fn directory(seats: u32) -> crate::directory::Fixed {
    crate::directory::Fixed::new(seats)
        .group("IUM_user_software", ["c1", "c2"])
        .group("IUM_access_software", ["c1"])
        .group("jira-software-users", ["alice", "bob", "carol"])
}

async fn gate() -> Arc<Gate> {
    gate_with_seats(10).await
}

async fn gate_with_seats(seats: u32) -> Arc<Gate> {
    gate_on(seats, Arc::new(crate::clock::ManualClock::new(5_000_000))).await
}

async fn gate_on(seats: u32, clock: Arc<crate::clock::ManualClock>) -> Arc<Gate> {
    let g = gate_with(directory(seats), clock).await;
    assert!(g.holds(&UserId::new("c1")));
    for (session, user) in [("s-alice", "alice"), ("s-c1", "c1"), ("s-c2", "c2")] {
        g.sessions
            .bind(Kind::Session, session, &UserId::new(user), 4_000_000);
    }
    g
}

/// A reconciled gate of 5 shared seats on `directory`, for Jira.
pub(super) async fn gate_with(
    directory: impl crate::directory::Directory + 'static,
    clock: Arc<crate::clock::ManualClock>,
) -> Arc<Gate> {
    let addr = "127.0.0.1:0".parse().unwrap();
    let cfg = crate::demo::demo_config(
        crate::product::Product::Jira,
        "http://127.0.0.1:9",
        addr,
        addr,
        std::time::Duration::from_secs(1800),
    );
    let g = Gate::new(
        GateSettings::from_config(&cfg).unwrap(),
        crate::pool::PoolConfig {
            capacity: 5,
            min_idle_ms: 1_800_000,
            abandon_after_ms: 120_000,
        },
        Arc::new(directory),
        clock,
        Arc::new(crate::alerts::Alerts::default()),
        [3u8; 32],
    );
    g.reconcile().await.unwrap();
    g
}

/// An answer head as the upstream sends it, and its fields' spans.
fn head(fields: &[(&str, &str)]) -> (Vec<u8>, Vec<(HeaderName, std::ops::Range<usize>)>) {
    let mut bytes = b"HTTP/1.1 200 OK\r\n".to_vec();
    let mut spans = Vec::new();
    for (n, v) in fields {
        bytes.extend_from_slice(n.as_bytes());
        bytes.extend_from_slice(b": ");
        let start = bytes.len();
        bytes.extend_from_slice(v.as_bytes());
        spans.push((
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            start..bytes.len(),
        ));
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    (bytes, spans)
}

fn request(path: &str, cookie: &str) -> Request<crate::wire::body::Body> {
    Request::builder()
        .uri(path)
        .header("accept", "text/html")
        .header("cookie", cookie)
        .body(empty())
        .unwrap()
}

fn response(fields: &[(&str, &str)]) -> Response<crate::wire::body::Body> {
    let mut r = Response::new(empty());
    for (n, v) in fields {
        r.headers_mut().append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

fn bindings(g: &Gate) -> Vec<(String, String)> {
    let mut b: Vec<(String, String)> = g
        .sessions
        .export()
        .into_iter()
        .map(|r| (format!("{:?}{:?}", r.kind, r.key), r.user.to_string()))
        .collect();
    b.sort();
    b
}

/// A request's path and cookies, the answer's fields, and whether the
/// shortcut decides alone.
type Case = (
    &'static str,
    String,
    Vec<(&'static str, &'static str)>,
    bool,
);

#[tokio::test]
async fn learning_from_the_raw_head_learns_what_the_map_path_learns_and_passes_on_what_it_cannot_judge(
) {
    let conn = ConnInfo::new("127.0.0.1:40000".parse().unwrap(), false, false);
    let remember = "seraph.rememberme.cookie";
    let cases: [Case; 8] = [
        // A known session with a new remember-me cookie: both bound.
        (
            "/browse/A-1",
            format!("JSESSIONID=s-alice; {remember}=r-1"),
            vec![("X-AUSERNAME", "alice"), ("Content-Length", "2")],
            true,
        ),
        // The upstream names someone else: the session is theirs now.
        (
            "/browse/A-1",
            "JSESSIONID=s-alice".into(),
            vec![("X-AUSERNAME", "bob")],
            true,
        ),
        (
            "/",
            "JSESSIONID=s-alice".into(),
            vec![("X-AUSERNAME", "anonymous")],
            true,
        ),
        ("/", "JSESSIONID=s-alice".into(), vec![], true),
        // A casual holder's activity.
        (
            "/browse/A-2",
            "JSESSIONID=s-c1".into(),
            vec![("X-AUSERNAME", "c1")],
            true,
        ),
        // A cookie set by the upstream.
        (
            "/",
            "JSESSIONID=s-alice".into(),
            vec![
                ("X-AUSERNAME", "alice"),
                ("Set-Cookie", "JSESSIONID=s-new; Path=/"),
            ],
            false,
        ),
        // A user first learned from the answer (may have to be admitted).
        (
            "/",
            "JSESSIONID=s-unknown".into(),
            vec![("X-AUSERNAME", "carol")],
            false,
        ),
        // A logout.
        (
            "/logout",
            "JSESSIONID=s-alice".into(),
            vec![("X-AUSERNAME", "alice")],
            false,
        ),
    ];
    for (path, cookie, fields, alone) in cases {
        let (short, long) = (gate().await, gate().await);
        let (bytes, spans) = head(&fields);
        let (_, ctx) = short
            .through_request(&conn, request(path, &cookie))
            .await
            .unwrap();
        match short.learn(ctx, StatusCode::OK, &Fields::new(&bytes, &spans)) {
            Learned::Done => assert!(alone, "{path} {cookie} {fields:?}: decided alone"),
            Learned::Edit(ctx) => {
                assert!(!alone, "{path} {cookie} {fields:?}: passed on");
                short.on_response(ctx, response(&fields)).await;
            }
        }
        let (_, ctx) = long
            .through_request(&conn, request(path, &cookie))
            .await
            .unwrap();
        long.through_answer(ctx, response(&fields)).await;
        assert_eq!(
            bindings(&short),
            bindings(&long),
            "{path} {cookie} {fields:?}"
        );
    }

    // Not vacuous: the first case bound the new cookie to alice.
    let g = gate().await;
    let (bytes, spans) = head(&[("X-AUSERNAME", "Alice")]);
    let cookie = format!("JSESSIONID=s-alice; {remember}=r-1");
    let (_, ctx) = g
        .through_request(&conn, request("/", &cookie))
        .await
        .unwrap();
    assert!(matches!(
        g.learn(ctx, StatusCode::OK, &Fields::new(&bytes, &spans)),
        Learned::Done
    ));
    assert_eq!(
        g.sessions.lookup(Kind::RememberMe, "r-1", 5_000_000),
        Some(UserId::new("alice"))
    );
}

#[tokio::test]
async fn a_sessions_memo_of_its_users_seat_never_outlives_a_change_to_the_pool() {
    let conn = ConnInfo::new("127.0.0.1:40000".parse().unwrap(), false, false);
    // Three fixed-licence users and four seats: one shared seat, c1's.
    let g = gate_with_seats(4).await;
    let (c1, c2) = (UserId::new("c1"), UserId::new("c2"));
    let passes = |session: &'static str| {
        let g = &g;
        let conn = &conn;
        async move {
            g.through_request(
                conn,
                request("/browse/A-1", &format!("JSESSIONID={session}")),
            )
            .await
            .is_ok()
        }
    };
    // The first request makes the memo, the second uses it.
    assert!(passes("s-c1").await);
    assert!(passes("s-c1").await);

    // c1's seat goes behind the memo's back (the pool alone changes).
    assert!(g.with_pool(|p| p.release(&c1)).is_some());
    assert!(passes("s-c1").await);
    assert!(
        g.holds(&c1),
        "c1 was waved through on a stale memo instead of being admitted again"
    );

    // Again, and c2 (waiting) takes the seat this time: c1 must now wait.
    assert!(!passes("s-c2").await, "the one seat is c1's: c2 waits");
    assert!(g.with_pool(|p| p.release(&c1)).is_some());
    assert!(passes("s-c2").await, "c2 gets the free seat");
    assert!(g.holds(&c2) && !g.holds(&c1));
    assert!(
        !passes("s-c1").await,
        "c1's memo of a seat outlived the change: c1 passed without one"
    );
    assert_eq!(g.with_pool(|p| p.in_use()), 1, "never more seats than one");
}

#[tokio::test]
async fn deciding_from_the_raw_head_forwards_what_the_map_forwards_and_does_the_same() {
    let conn = ConnInfo::new("127.0.0.1:40000".parse().unwrap(), false, false);
    let basic = |u: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:pw"))
        )
    };
    // (method, path, cookies, Authorization, forwarded from the head alone)
    let cases: Vec<(&str, &str, &str, String, bool)> = vec![
        (
            "GET",
            "/browse/A-1",
            "JSESSIONID=s-alice",
            String::new(),
            true,
        ),
        (
            "GET",
            "/browse/A-1",
            "x=1; JSESSIONID=s-c1",
            String::new(),
            true,
        ),
        (
            "GET",
            "/rest/mywork/latest/notification/count",
            "JSESSIONID=s-c1",
            String::new(),
            true,
        ),
        // A casual user without a seat: an admission.
        (
            "GET",
            "/browse/A-1",
            "JSESSIONID=s-c2",
            String::new(),
            false,
        ),
        // Nobody known: forwarded (the answer may name someone).
        (
            "GET",
            "/browse/A-1",
            "JSESSIONID=s-unknown",
            String::new(),
            true,
        ),
        ("GET", "/", "", String::new(), true),
        // A logout: forwarded, decided on its answer.
        ("GET", "/logout", "JSESSIONID=s-alice", String::new(), true),
        // A login: its body says who logs in.
        (
            "POST",
            "/login.jsp",
            "JSESSIONID=s-alice",
            String::new(),
            false,
        ),
        // A user in none of the groups after a reconcile: unmanaged.
        (
            "GET",
            "/browse/A-1",
            "JSESSIONID=s-dora",
            String::new(),
            true,
        ),
        // Basic names: a holder and a power user pass as they are (their
        // activity waits for the answer); one without a seat is admitted
        // on the long path.
        ("GET", "/browse/A-1", "", basic("c1"), true),
        ("GET", "/rest/api/2/search", "", basic("alice"), true),
        ("GET", "/browse/A-1", "", basic("c2"), false),
        // A session cookie comes before Basic.
        ("GET", "/browse/A-1", "JSESSIONID=s-c1", basic("c2"), true),
        // Bearer tokens the app named a user for, as cookie sessions.
        ("GET", "/browse/A-1", "", "Bearer t-c1".into(), true),
        ("GET", "/browse/A-1", "", "Bearer t-c2".into(), false),
        ("GET", "/browse/A-1", "", "Bearer t-unknown".into(), true),
    ];
    for (method, path, cookie, auth, taken) in cases {
        let clocks = [0, 1].map(|_| Arc::new(crate::clock::ManualClock::new(5_000_000)));
        let short = gate_on(10, clocks[0].clone()).await;
        let long = gate_on(10, clocks[1].clone()).await;
        for (g, clock) in [(&short, &clocks[0]), (&long, &clocks[1])] {
            g.sessions
                .bind(Kind::Session, "s-dora", &UserId::new("dora"), 4_000_000);
            for (t, u) in [("t-c1", "c1"), ("t-c2", "c2")] {
                g.sessions.bind(Kind::Token, t, &UserId::new(u), 4_000_000);
            }
            // Time moves on: an activity touch shows in the seat.
            clock.advance(60_000);
        }
        let mut fields = vec![("Accept", "text/html"), ("Cookie", cookie)];
        if !auth.is_empty() {
            fields.push(("Authorization", auth.as_str()));
        }
        let (bytes, spans) = head(&fields);
        let uri: http::Uri = path.parse().unwrap();
        let method: http::Method = method.parse().unwrap();
        let fields = Fields::new(&bytes, &spans);
        let raw = short.decide(&conn, &method, &uri, &fields);
        let mut req = request(path, cookie);
        *req.method_mut() = method.clone();
        if !auth.is_empty() {
            req.headers_mut()
                .insert("authorization", auth.parse().unwrap());
        }
        let map = long.decide(&conn, &method, &uri, req.headers());
        let forwarded = |d: &Decision<super::hooks::Ctx>| matches!(d, Decision::Forward(_));
        assert_eq!(
            forwarded(&raw),
            taken,
            "{method} {path} {cookie:?} {auth:?}"
        );
        assert_eq!(
            forwarded(&map),
            taken,
            "{method} {path} {cookie:?} {auth:?}: the map decides otherwise"
        );
        assert_eq!(
            short.with_pool(|p| p.export()),
            long.with_pool(|p| p.export()),
            "{path} {cookie:?}: the seats and their activity differ"
        );
        assert_eq!(bindings(&short), bindings(&long), "{path} {cookie:?}");
    }
}

#[test]
fn a_memo_gives_back_its_class_and_seat_at_its_own_epoch_only() {
    for epoch in [1, 2, 1 << 40, (1 << 62) - 1] {
        for class in [Class::Casual, Class::Power, Class::Unmanaged] {
            let m = Memo::new(epoch, class, None);
            let (c, s) = m.at(epoch).unwrap();
            assert_eq!(c, class);
            assert!(s.is_none());
            assert!(m.at(epoch + 1).is_none() && m.at(epoch - 1).is_none());
        }
    }
    for epoch in [0, 1, 7] {
        assert!(Memo::default().at(epoch).is_none(), "a memo never made");
    }
}
