//! Request-path costs of identity and the gate (issue 8):
//!
//! - `identity/*`: cookie parse + keyed hash + session look-up among 1,000,000 sessions,
//!   login body parse (form and JSON);
//! - `gate/holder_decide`: the gate's whole per-request decision for a seat holder
//!   (identify → class → seat check → activity touch), as both lanes call it;
//! - `gate/holder_learn`: learning from the upstream's answer head (`X-AUSERNAME`);
//! - `proxy/header_ops`: the proxy's own header fix-ups per request.
//!
//! `cargo bench --bench gate -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use iumgate::alerts::Alerts;
use iumgate::clock::ManualClock;
use iumgate::directory::Fixed;
use iumgate::gate::{Gate, GateSettings};
use iumgate::identity::{self, Kind, Sessions};
use iumgate::pool::PoolConfig;
use iumgate::product::{Product, JIRA};
use iumgate::proxy::body::empty;
use iumgate::proxy::{headers, ConnInfo, Decision, Hooks, Learned};
use iumgate::user::UserId;

const USERS: usize = 100_000;
const SESSIONS_PER_USER: usize = 10;
const CASUAL: usize = 3_000;
const POWER: usize = 1_000;

/// A browser's cookie header: Jira's XSRF token, the session, a third-party cookie.
fn cookie_header(session: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "atlassian.xsrf.token=BWP3-NZB2-6EDY-6C7K_2b6ab8bbb6a1b1b6b6b6b6b6b6b6b6b6b6b6b6b6_lin; \
         JSESSIONID={session}; _ga=GA1.2.1234567890.1234567890"
    ))
    .unwrap()
}

fn browser_headers(session: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, HeaderValue::from_static("jira.example.com"));
    h.insert(
        header::USER_AGENT,
        HeaderValue::from_static("Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"),
    );
    h.insert(
        header::ACCEPT,
        HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
    );
    h.insert(
        header::ACCEPT_LANGUAGE,
        HeaderValue::from_static("en-GB,en;q=0.5"),
    );
    h.insert(header::COOKIE, cookie_header(session));
    h
}

fn session_value(user: usize, k: usize) -> String {
    // Tomcat's JSESSIONID: 32 hex digits.
    format!("{:016X}{:016X}", user as u64 * 7_919 + 1, k as u64 + 13)
}

fn identity_benches(c: &mut Criterion) {
    let sessions = Sessions::new([7u8; 32]);
    let users: Vec<UserId> = (0..USERS)
        .map(|i| UserId::new(&format!("u{i:06}")))
        .collect();
    for (i, u) in users.iter().enumerate() {
        for k in 0..SESSIONS_PER_USER {
            sessions.bind(Kind::Session, &session_value(i, k), u, 1);
        }
    }
    assert_eq!(sessions.len(), USERS * SESSIONS_PER_USER);
    // Stride through the sessions so that look-ups do not stay in one cache line.
    let probes: Vec<HeaderMap> = (0..4096)
        .map(|j| {
            let i = (j * 7_919) % USERS;
            browser_headers(&session_value(i, j % SESSIONS_PER_USER))
        })
        .collect();
    let mut j = 0usize;
    c.bench_function("identity/cookie_parse_and_session_lookup_1m", |b| {
        b.iter(|| {
            j = (j + 1) % probes.len();
            let mut found = None;
            for (kind, value) in identity::session_cookies(&JIRA, &probes[j]) {
                let key = sessions.hash(kind, value);
                found = sessions.lookup_key(&key, 2);
            }
            assert!(found.is_some());
            black_box(found)
        })
    });
    c.bench_function("identity/cookie_parse_only", |b| {
        b.iter(|| {
            j = (j + 1) % probes.len();
            black_box(identity::session_cookies(&JIRA, &probes[j]).count())
        })
    });
    let form = b"os_username=casual0042&os_password=correct+horse+battery&os_cookie=true\
                 &os_destination=%2Fbrowse%2FDEMO-1&user_role=&atl_token=&login=Log+In";
    c.bench_function("identity/login_form_parse", |b| {
        b.iter(|| {
            let a = identity::login_attempt(
                &JIRA,
                "/login.jsp",
                None,
                Some("application/x-www-form-urlencoded"),
                black_box(form),
            );
            assert!(a.is_some());
            black_box(a)
        })
    });
    let json = br#"{"username":"casual0042","password":"correct horse battery"}"#;
    c.bench_function("identity/login_json_parse", |b| {
        b.iter(|| {
            let a = identity::login_attempt(
                &JIRA,
                "/rest/auth/1/session",
                None,
                Some("application/json"),
                black_box(json),
            );
            assert!(a.is_some());
            black_box(a)
        })
    });
}

/// `prefix000000`, `prefix000001`, … (`n` names).
fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:06}")).collect()
}

/// The directory as reconcile sees it: casual users `c…` all holding a seat,
/// power users `p…`, tier large enough for everyone.
fn world() -> Fixed {
    Fixed::new(100_000)
        .group("IUM_user_software", names("c", CASUAL))
        .group("IUM_access_software", names("c", CASUAL))
        .group("jira-software-users", names("p", POWER))
}

fn gate_benches(c: &mut Criterion) {
    let cfg = iumgate::demo::demo_config(
        Product::Jira,
        "http://127.0.0.1:9",
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        std::time::Duration::from_secs(1800),
    );
    let clock = Arc::new(ManualClock::new(1_000_000));
    let gate = Gate::new(
        GateSettings::from_config(&cfg).unwrap(),
        PoolConfig {
            capacity: 0,
            min_idle_ms: 1_800_000,
            abandon_after_ms: 120_000,
        },
        Arc::new(world()),
        clock.clone(),
        Arc::new(Alerts::default()),
        [9u8; 32],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(gate.reconcile()).unwrap();
    assert_eq!(report.holders, CASUAL);
    // Two sessions per user, as in the load benchmark.
    let sessions: Vec<(String, UserId)> = (0..CASUAL)
        .map(|i| format!("c{i:06}"))
        .chain((0..POWER).map(|i| format!("p{i:06}")))
        .flat_map(|name| {
            let u = UserId::new(&name);
            (0..2).map(move |k| (format!("{name}.{k}"), u.clone()))
        })
        .collect();
    for (v, u) in &sessions {
        gate.sessions.bind(Kind::Session, v, u, 1_000_000);
    }
    let conn = ConnInfo::new("127.0.0.1:40000".parse().unwrap(), false, false);
    // Casual holders only: the full path (class, seat check, activity touch).
    let holder_reqs: Vec<HeaderMap> = (0..2 * CASUAL)
        .step_by(7)
        .map(|i| browser_headers(&sessions[i].0))
        .collect();
    let mut j = 0usize;
    let request = |j: &mut usize| {
        *j = (*j + 1) % holder_reqs.len();
        let mut r = Request::new(empty());
        *r.uri_mut() = "http://127.0.0.1:8081/browse/DEMO-42".parse().unwrap();
        *r.headers_mut() = holder_reqs[*j].clone();
        r
    };
    let decide = |req: &Request<_>| gate.decide(&conn, req.method(), req.uri(), req.headers());
    c.bench_function("gate/holder_decide", |b| {
        b.iter_batched(
            || request(&mut j),
            |req| match decide(&req) {
                // Returned, so that dropping them is not timed.
                Decision::Forward(ctx) => (req, ctx),
                Decision::Continue(_) => panic!("a holder must pass from the head"),
            },
            BatchSize::SmallInput,
        )
    });
    let make_ctx = |j: &mut usize| match decide(&request(j)) {
        Decision::Forward(ctx) => ctx,
        Decision::Continue(_) => panic!("a holder must pass from the head"),
    };
    c.bench_function("gate/holder_learn", |b| {
        b.iter_batched(
            || {
                let ctx = make_ctx(&mut j);
                let mut resp = Response::new(empty());
                resp.headers_mut()
                    .insert("x-ausername", HeaderValue::from_static("c000042"));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html;charset=UTF-8"),
                );
                (ctx, resp)
            },
            |(ctx, resp)| match gate.learn(ctx, StatusCode::OK, resp.headers()) {
                Learned::Done => resp,
                Learned::Edit(_) => panic!("a holder's plain answer is learned from its head"),
            },
            BatchSize::SmallInput,
        )
    });
    let in_use = gate.with_pool(|p| p.in_use());
    assert_eq!(in_use, CASUAL, "the benchmark must not change who holds");
}

fn proxy_benches(c: &mut Criterion) {
    let h = browser_headers("c000001.0");
    c.bench_function("proxy/header_ops", |b| {
        let peer = headers::peer_value("127.0.0.1".parse().unwrap());
        b.iter_batched(
            || h.clone(),
            |mut h| {
                let up = headers::is_upgrade(&h);
                headers::remove_hop_by_hop(&mut h, up);
                headers::strip_upstream_only(&mut h, &iumgate::product::UPSTREAM_ONLY);
                headers::set_forwarded(
                    &mut h,
                    &peer,
                    false,
                    "http",
                    Some(HeaderValue::from_static("jira.example.com")),
                );
                h
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, identity_benches, gate_benches, proxy_benches);
criterion_main!(benches);
