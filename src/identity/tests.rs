use super::*;
use crate::product::{BITBUCKET, JIRA};
use crate::wire::Fields;
use http::{HeaderMap, HeaderValue};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn finds_session_and_remember_me_cookies() {
    let h = headers(&[
        ("cookie", "a=1; JSESSIONID=abc; atlassian.xsrf.token=x"),
        ("cookie", "seraph.rememberme.cookie=\"r%3A1\""),
    ]);
    let got: Vec<_> = session_cookies(&JIRA, &h).collect();
    assert_eq!(
        got,
        vec![(Kind::Session, "abc"), (Kind::RememberMe, "r%3A1")]
    );
    let none: Vec<_> = session_cookies(&BITBUCKET, &h).collect();
    assert!(none.is_empty());
}

#[test]
fn set_cookie_values_and_deletions() {
    let h = headers(&[
        ("set-cookie", "JSESSIONID=new1; Path=/; HttpOnly"),
        ("set-cookie", "seraph.rememberme.cookie=; Max-Age=0; Path=/"),
        ("set-cookie", "other=1"),
    ]);
    let got: Vec<_> = set_session_cookies(&JIRA, &h).collect();
    assert_eq!(
        got,
        vec![(Kind::Session, Some("new1")), (Kind::RememberMe, None)]
    );
}

#[test]
fn basic_auth_names_the_user() {
    let h = headers(&[("authorization", "Basic QWxpY2U6c2VjcmV0")]); // Alice:secret
    assert_eq!(basic_user(&h), Some(UserId::new("alice")));
    let h = headers(&[("authorization", "Basic !!!")]);
    assert_eq!(basic_user(&h), None);
    let h = headers(&[("authorization", "Bearer tok")]);
    assert_eq!(basic_user(&h), None);
    assert_eq!(bearer_token(&h), Some("tok"));
}

#[test]
fn reads_form_and_json_logins() {
    let a = login_attempt(
        &JIRA,
        "/login.jsp",
        None,
        Some("application/x-www-form-urlencoded"),
        b"os_username=Bob+B&os_password=pw&os_destination=%2Fbrowse%2FABC-1",
    )
    .unwrap();
    assert_eq!(a.user, UserId::new("bob b"));
    assert_eq!(a.destination.as_deref(), Some("/browse/ABC-1"));
    assert!(!a.json);
    let a = login_attempt(
        &JIRA,
        "/rest/auth/1/session",
        None,
        Some("application/json"),
        br#"{"username":"carol","password":"x"}"#,
    )
    .unwrap();
    assert_eq!(a.user, UserId::new("carol"));
    assert!(a.json);
    let b = login_attempt(
        &BITBUCKET,
        "/j_atl_security_check",
        None,
        Some(FORM),
        b"j_username=dave&j_password=x",
    );
    assert_eq!(b.unwrap().user, UserId::new("dave"));
    assert!(login_attempt(&JIRA, "/login.jsp", None, Some(FORM), b"os_password=x").is_none());
}

#[test]
fn hostile_usernames_are_refused() {
    assert!(login_attempt(&JIRA, "/login.jsp", None, Some(FORM), b"os_username=a%0Ab").is_none());
    assert!(
        login_attempt(&JIRA, "/login.jsp", None, Some(FORM), b"os_username=%FF%FE")
            .is_some_and(|a| !a.user.as_str().is_empty())
    );
    let long = format!("os_username={}", "x".repeat(300));
    assert!(login_attempt(&JIRA, "/login.jsp", None, Some(FORM), long.as_bytes()).is_none());
}

#[test]
fn upstream_user_and_reason() {
    let h = headers(&[("x-ausername", "Erin"), ("x-seraph-loginreason", "OK")]);
    assert_eq!(
        upstream_user(&h, None),
        Some(UpstreamUser::User(UserId::new("erin")))
    );
    assert_eq!(login_reason(&h), Some(LoginReason::Ok));
    let h = headers(&[
        ("x-ausername", "anonymous"),
        ("x-seraph-loginreason", "AUTHORISATION_FAILED"),
    ]);
    assert_eq!(upstream_user(&h, None), Some(UpstreamUser::Anonymous));
    assert_eq!(login_reason(&h), Some(LoginReason::AuthorisationFailed));
    assert_eq!(upstream_user(&HeaderMap::new(), None), None);
}

#[test]
fn sessions_store_hashes_and_forget() {
    let s = Sessions::new([7; 32]);
    let u = UserId::new("frank");
    s.bind(Kind::Session, "cookie-value", &u, 10);
    assert_eq!(s.lookup(Kind::Session, "cookie-value", 11), Some(u.clone()));
    // Same value as another kind is not the same credential.
    assert_eq!(s.lookup(Kind::RememberMe, "cookie-value", 11), None);
    let exported = serde_json::to_string(&s.export()).unwrap();
    assert!(!exported.contains("cookie-value"));
    s.bind(Kind::RememberMe, "r", &u, 12);
    assert_eq!(s.users(), 1);
    assert_eq!(s.forget_user(&u), 2);
    assert!(s.is_empty());
}

#[test]
fn sessions_prune_by_kind() {
    let s = Sessions::new([1; 32]);
    let u = UserId::new("g");
    s.bind(Kind::Session, "s", &u, 0);
    s.bind(Kind::RememberMe, "r", &u, 0);
    assert_eq!(s.prune(1_000, 500, 5_000), 1);
    assert_eq!(s.lookup(Kind::RememberMe, "r", 1_000), Some(u));
}

#[test]
fn snapshot_round_trip() {
    let s = Sessions::new([3; 32]);
    s.bind(Kind::Token, "pat", &UserId::new("h"), 5);
    let json = serde_json::to_string(&s.export()).unwrap();
    let t = Sessions::new([3; 32]);
    t.import(serde_json::from_str(&json).unwrap());
    assert_eq!(t.lookup(Kind::Token, "pat", 6), Some(UserId::new("h")));
}

#[tokio::test]
async fn peek_returns_prefix_and_replays_whole_body() {
    use crate::wire::body::boxed;
    use http_body_util::{BodyExt, StreamBody};
    let chunks: Vec<Result<http_body::Frame<bytes::Bytes>, std::io::Error>> = (0..10)
        .map(|i| {
            Ok(http_body::Frame::data(bytes::Bytes::from(vec![
                b'a' + i
                    as u8;
                100
            ])))
        })
        .collect();
    let body = boxed(StreamBody::new(futures_util::stream::iter(chunks)));
    let (prefix, rest) = peek_body(body, 250).await;
    assert_eq!(prefix.len(), 250);
    assert_eq!(&prefix[..100], &[b'a'; 100][..]);
    let all = rest.collect().await.unwrap().to_bytes();
    assert_eq!(all.len(), 1000);
    assert_eq!(all[999], b'j');
}

#[test]
fn the_upstream_naming_the_known_user_shares_its_id_and_anyone_else_is_read_as_before() {
    use crate::identity::{upstream_user, UpstreamUser};
    let known = UserId::new("alice");
    let mut h = HeaderMap::new();
    h.insert("x-ausername", HeaderValue::from_static("alice"));
    match upstream_user(&h, Some(&known)) {
        Some(UpstreamUser::User(u)) => assert_eq!(u, known),
        other => panic!("{other:?}"),
    }
    for named in ["bob", "Alice", " alice ", "anonymous", ""] {
        let mut h = HeaderMap::new();
        h.insert("x-ausername", HeaderValue::from_str(named).unwrap());
        assert_eq!(
            upstream_user(&h, Some(&known)),
            upstream_user(&h, None),
            "{named:?}"
        );
    }
}

#[test]
fn the_upstream_user_is_read_from_raw_bytes_as_header_map_text() {
    use crate::identity::{upstream_user, UpstreamUser};
    let known = UserId::new("alice");
    let user = |n: &str| Some(UpstreamUser::User(UserId::new(n)));
    let cases: [(&[u8], Option<UpstreamUser>); 8] = [
        (b"alice", user("alice")),
        (b"bob", user("bob")),
        (b" Alice\t", user("alice")),
        (b"anonymous", Some(UpstreamUser::Anonymous)),
        (b"  ", Some(UpstreamUser::Anonymous)),
        // Not visible ASCII: `HeaderValue::to_str` refuses these, so no name.
        (b"caf\xe9", None),
        (b"x\x7f", None),
        (b"x\x01", None),
    ];
    for (raw, want) in cases {
        let (head, spans) = raw_fields(&[("x-ausername", raw)]);
        assert_eq!(
            upstream_user(&Fields::new(&head, &spans), Some(&known)),
            want,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
        let map_text = HeaderValue::from_bytes(raw)
            .ok()
            .map(|v| v.to_str().is_ok());
        if want.is_none() {
            assert_ne!(map_text, Some(true), "the map would read {raw:?} as text");
        }
    }
    let (head, spans) = raw_fields(&[]);
    assert_eq!(
        upstream_user(&Fields::new(&head, &spans), Some(&known)),
        None
    );
}

const FORM: &str = "application/x-www-form-urlencoded";

#[test]
fn a_login_is_read_from_the_query_string_first_as_the_servlet_container_does() {
    let q = Some("os_username=alice&os_destination=%2Fbrowse%2FX-1");
    let a = login_attempt(&JIRA, "/login.jsp", q, Some(FORM), b"os_password=pw").unwrap();
    assert_eq!(a.user, UserId::new("alice"));
    assert_eq!(a.destination.as_deref(), Some("/browse/X-1"));
    // Query and body disagree: no claim (the app reads the query's).
    assert!(login_attempt(
        &JIRA,
        "/login.jsp",
        Some("os_username=attacker"),
        Some(FORM),
        b"os_username=victim&os_password=x"
    )
    .is_none());
    // Agreeing readings (case aside) are one claim.
    let a = login_attempt(
        &JIRA,
        "/login.jsp",
        Some("os_username=Bob"),
        Some(FORM),
        b"os_username=bob",
    )
    .unwrap();
    assert_eq!(a.user, UserId::new("bob"));
}

#[test]
fn a_login_body_counts_only_with_the_exact_media_type() {
    let body = b"os_username=carol&os_password=x";
    for ct in [
        "application/x-www-form-urlencoded",
        "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
        " application/x-www-form-urlencoded ;x=json",
    ] {
        assert!(
            login_attempt(&JIRA, "/login.jsp", None, Some(ct), body).is_some(),
            "{ct}"
        );
    }
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded-x",
        "multipart/form-data; boundary=x",
        "application/json",
    ] {
        assert!(
            login_attempt(&JIRA, "/login.jsp", None, Some(ct), body).is_none(),
            "{ct}"
        );
    }
    assert!(login_attempt(&JIRA, "/login.jsp", None, None, body).is_none());
}

#[test]
fn a_json_polyglot_dressed_as_a_form_names_the_forms_user_or_nobody() {
    // The review's reproduction: JSON naming the victim, a form naming the
    // attacker inside it, sent as a form with a `json` parameter.
    let body = br#"{"username":"casual15","x":"=&os_username=casual08&os_password=demo&y="}"#;
    let a = login_attempt(
        &JIRA,
        "/login.jsp",
        None,
        Some("application/x-www-form-urlencoded; x=json"),
        body,
    );
    assert_eq!(a.map(|a| a.user), Some(UserId::new("casual08")));
    // JSON is read only on the JSON login, and only as application/json.
    let json = br#"{"username":"casual15","password":"x"}"#;
    let path = "/rest/auth/1/session";
    assert!(login_attempt(
        &JIRA,
        path,
        None,
        Some("application/json; charset=utf-8"),
        json
    )
    .is_some());
    assert!(login_attempt(&JIRA, path, None, Some("text/json"), json).is_none());
    assert!(login_attempt(&JIRA, path, None, Some("application/jsonx"), json).is_none());
    assert!(login_attempt(&JIRA, path, None, Some(FORM), json).is_none());
}

#[test]
fn the_gates_reading_of_a_login_is_the_apps() {
    // The simulator reads parameters as Tomcat does; whenever the gate makes
    // a claim, it names the user the app would log in.
    let cases: &[(Option<&str>, Option<&str>, &[u8])] = &[
        (None, Some(FORM), b"os_username=a&os_username=b"),
        (Some("os_username=q"), Some(FORM), b"os_username=q"),
        (Some("os_username=q"), Some("text/plain"), b"os_username=b"),
        (Some("x=1"), Some(FORM), b"os_username=%41lice"),
        (
            None,
            Some("application/x-www-form-urlencoded;json"),
            b"os_username=z",
        ),
    ];
    for (q, ct, body) in cases {
        if let Some(a) = login_attempt(&JIRA, "/login.jsp", *q, *ct, body) {
            let app = crate::sim::servlet_parameter(*q, *ct, body, "os_username");
            assert_eq!(app.map(|u| UserId::new(&u)), Some(a.user), "{q:?} {ct:?}");
        }
    }
}

#[test]
fn only_the_first_session_cookie_of_each_name_counts() {
    // 2,400 `JSESSIONID`s and as many remember-me cookies, across two
    // headers: the app reads the first of each, and so does the gate.
    let mut flood = String::from("JSESSIONID=real; a=1");
    for i in 0..2_400 {
        flood.push_str(&format!(
            "; JSESSIONID=rand{i}; seraph.rememberme.cookie=r{i}"
        ));
    }
    let h = headers(&[("cookie", &flood), ("cookie", "JSESSIONID=later")]);
    let got: Vec<_> = session_cookies(&JIRA, &h).collect();
    assert_eq!(got.len(), 2, "one value a cookie name");
    assert_eq!(got, vec![(Kind::Session, "real"), (Kind::RememberMe, "r0")]);

    // Across headers: the first header's value wins.
    let h = headers(&[
        ("cookie", "x=1; seraph.rememberme.cookie=first"),
        (
            "cookie",
            "JSESSIONID=s1; seraph.rememberme.cookie=second; JSESSIONID=s2",
        ),
    ]);
    let got: Vec<_> = session_cookies(&JIRA, &h).collect();
    assert_eq!(
        got,
        vec![(Kind::RememberMe, "first"), (Kind::Session, "s1")]
    );

    // An empty value is no session (Tomcat moves on to the next one).
    let h = headers(&[("cookie", "JSESSIONID=; JSESSIONID=s1; JSESSIONID=s2")]);
    let got: Vec<_> = session_cookies(&JIRA, &h).collect();
    assert_eq!(got, vec![(Kind::Session, "s1")]);

    // The raw-bytes form (the fast lane's) reads the same.
    let (head, spans) = raw_fields(&[
        ("cookie", flood.as_bytes()),
        ("cookie", b"JSESSIONID=later"),
    ]);
    let fields = Fields::new(&head, &spans);
    let got: Vec<_> = session_cookies(&JIRA, &fields).collect();
    assert_eq!(got.len(), 2, "one value a cookie name");
    assert_eq!(got, vec![(Kind::Session, "real"), (Kind::RememberMe, "r0")]);
}

fn limits(per_user: usize, total: usize) -> Limits {
    Limits { per_user, total }
}

#[test]
fn a_user_at_the_cap_loses_their_least_recently_seen_binding() {
    let s = Sessions::<()>::with_limits([2; 32], limits(3, 1_000));
    let u = UserId::new("ann");
    for (i, v) in ["s0", "s1", "s2"].iter().enumerate() {
        s.bind(Kind::Session, v, &u, i as u64);
    }
    // s0 is used again: s1 is now the least recently seen.
    assert_eq!(s.lookup(Kind::Session, "s0", 10), Some(u.clone()));
    s.bind(Kind::RememberMe, "r", &u, 11);
    assert_eq!(s.len(), 3);
    assert_eq!(s.lookup(Kind::Session, "s1", 12), None);
    for (kind, v) in [
        (Kind::Session, "s0"),
        (Kind::Session, "s2"),
        (Kind::RememberMe, "r"),
    ] {
        assert_eq!(s.lookup(kind, v, 12), Some(u.clone()), "{v}");
    }
    assert_eq!(s.dropped().per_user, 1);
    assert_eq!(s.user_bindings(&u), 3);

    // A flood in one user's name: their live session survives, nobody
    // else's binding moves, and the map stays at the cap for them.
    let bob = UserId::new("bob");
    s.bind(Kind::Session, "bob-live", &bob, 12);
    for i in 0..5_000u64 {
        // The live session is seen on each of the user's requests.
        assert!(s.lookup(Kind::Session, "s0", 20 + i).is_some(), "{i}");
        s.bind(Kind::Session, &format!("junk{i}"), &u, 20 + i);
    }
    assert_eq!(s.user_bindings(&u), 3);
    assert_eq!(s.len(), 4);
    assert_eq!(s.lookup(Kind::Session, "s0", 9_000), Some(u.clone()));
    assert_eq!(
        s.lookup(Kind::Session, "bob-live", 9_000),
        Some(bob.clone())
    );
    assert_eq!(s.users(), 2);
    assert_eq!(s.forget_user(&u), 3);
    assert_eq!((s.len(), s.users()), (1, 1));
}

#[test]
fn a_full_session_map_refuses_new_bindings_and_keeps_the_old() {
    let s = Sessions::<()>::with_limits([4; 32], limits(10, 5));
    let users: Vec<UserId> = (0..6).map(|i| UserId::new(&format!("u{i}"))).collect();
    for (i, u) in users.iter().enumerate().take(5) {
        s.bind(Kind::Session, &format!("s{i}"), u, 1);
    }
    s.bind(Kind::Session, "s5", &users[5], 2);
    assert_eq!(s.len(), 5);
    assert_eq!(s.lookup(Kind::Session, "s5", 3), None);
    assert_eq!(
        s.dropped(),
        Dropped {
            per_user: 0,
            total: 1
        }
    );
    for (i, u) in users.iter().enumerate().take(5) {
        assert_eq!(
            s.lookup(Kind::Session, &format!("s{i}"), 3),
            Some(u.clone())
        );
    }
    // No empty entry is left for the refused user.
    assert_eq!(s.users(), 5);
    // Refreshing or moving an existing key needs no room.
    s.bind(Kind::Session, "s0", &users[0], 4);
    s.bind(Kind::Session, "s1", &users[5], 4);
    assert_eq!(s.lookup(Kind::Session, "s1", 5), Some(users[5].clone()));
    assert_eq!(s.forget_user(&users[1]), 0, "s1 is not u1's any more");
    assert_eq!(s.dropped().total, 1);
    // Room again once a binding goes (forgotten, or pruned).
    s.forget(Kind::Session, "s2");
    s.bind(Kind::Session, "s5", &users[5], 6);
    assert_eq!(s.lookup(Kind::Session, "s5", 7), Some(users[5].clone()));
    assert_eq!(s.prune(100, 50, 50), 5);
    assert!(s.is_empty());
    assert_eq!(s.users(), 0);
    s.bind(Kind::Session, "new", &users[0], 100);
    assert_eq!(s.len(), 1);
}

#[test]
fn a_restored_snapshot_keeps_within_the_caps_the_most_recent() {
    let src = Sessions::new([5; 32]);
    let ann = UserId::new("ann");
    for i in 0..10u64 {
        src.bind(Kind::Session, &format!("a{i}"), &ann, i);
    }
    for u in ["b", "c", "d"] {
        src.bind(Kind::Session, u, &UserId::new(u), 100);
    }
    let records = src.export();
    assert_eq!(records.len(), 13);

    // Per user: ann keeps her four most recent.
    let t = Sessions::<()>::with_limits([5; 32], limits(4, 1_000));
    t.import(records.clone());
    assert_eq!(t.len(), 7);
    assert_eq!(t.user_bindings(&ann), 4);
    for i in 0..10u64 {
        let bound = t.lookup_key(&t.hash(Kind::Session, &format!("a{i}")), 0);
        assert_eq!(bound.is_some(), i >= 6, "a{i}");
    }
    assert_eq!(t.dropped().per_user, 6);

    // In total: the five most recent overall.
    let t = Sessions::<()>::with_limits([5; 32], limits(64, 5));
    t.import(records);
    assert_eq!(t.len(), 5);
    assert_eq!(t.dropped().total, 8);
    for u in ["b", "c", "d"] {
        assert_eq!(t.lookup(Kind::Session, u, 200), Some(UserId::new(u)));
    }
    assert!(t.lookup(Kind::Session, "a9", 200).is_some());
    assert!(t.lookup(Kind::Session, "a8", 200).is_some());
    assert!(t.lookup(Kind::Session, "a7", 200).is_none());
}

#[test]
fn the_caps_hold_under_concurrent_binding() {
    let s = std::sync::Arc::new(Sessions::<()>::with_limits([6; 32], limits(8, 40)));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..2_000u64 {
                    let u = UserId::new(&format!("u{}", (i + t) % 7));
                    // Some keys shared between threads and users.
                    s.bind(Kind::Session, &format!("k{}", (i * 31 + t) % 500), &u, i);
                    if i % 97 == 0 {
                        s.forget_user(&u);
                    }
                    if i % 13 == 0 {
                        s.forget(Kind::Session, &format!("k{}", i % 500));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(s.len() <= 40, "{}", s.len());
    for i in 0..7 {
        assert!(s.user_bindings(&UserId::new(&format!("u{i}"))) <= 8);
    }
    // Every binding is in its user's list: forgetting every user empties it.
    for i in 0..7 {
        s.forget_user(&UserId::new(&format!("u{i}")));
    }
    assert!(s.is_empty(), "{} left", s.len());
    assert_eq!(s.prune(0, 1, 1), 0);
    // The count is right: the whole cap is available again.
    for i in 0..40u64 {
        s.bind(
            Kind::Session,
            &format!("z{i}"),
            &UserId::new(&format!("w{i}")),
            1,
        );
    }
    assert_eq!(s.len(), 40);
}

#[test]
fn the_anonymous_cache_is_bounded_and_never_pruned_by_a_request() {
    let c = AnonymousCache::new(100);
    let s = Sessions::new([8; 32]);
    let key = |i: u64| s.hash(Kind::Session, &format!("anon{i}"));
    // Filled with entries that expire at 1_000, then asked to take more
    // well after they expired: nothing is walked, nothing inserted.
    for i in 0..100 {
        c.remember(key(i), 1_000);
    }
    assert_eq!(c.len(), 100);
    for i in 100..1_000 {
        c.remember(key(i), 61_000);
        assert!(!c.is_anonymous(&key(i), 2_000));
    }
    assert_eq!(c.len(), 100);
    assert_eq!(c.refused(), 900);
    assert_eq!(c.prunes(), 0, "remember never prunes");
    // Expired entries are not anonymous any more, though still held.
    assert!(!c.is_anonymous(&key(5), 2_000));
    assert!(c.is_anonymous(&key(5), 999));
    // A key already held is refreshed in place, full or not.
    c.remember(key(5), 61_000);
    assert!(c.is_anonymous(&key(5), 2_000));
    assert_eq!(c.len(), 100);
    // The prune job makes the room.
    assert_eq!(c.prune(2_000), 99);
    assert_eq!((c.len(), c.prunes()), (1, 1));
    c.remember(key(500), 61_000);
    assert!(c.is_anonymous(&key(500), 2_000));
    assert_eq!(c.len(), 2);
}

#[test]
fn the_anonymous_cache_holds_its_capacity_under_concurrent_inserts() {
    let c = std::sync::Arc::new(AnonymousCache::new(1_000));
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..5_000u32 {
                    // Uniform keys, as the gate's keyed hashes are.
                    let mut k = [0u8; 16];
                    k.copy_from_slice(
                        &blake3::hash(&[&[t][..], &i.to_le_bytes()].concat()).as_bytes()[..16],
                    );
                    c.remember(k, u64::from(i % 3));
                    if i % 1_000 == 0 {
                        c.prune(1);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(c.len() <= 1_000, "{}", c.len());
    c.prune(10);
    assert_eq!(c.len(), 0);
}

#[test]
fn credentials_are_read_from_the_raw_value_whatever_the_passwords_length() {
    use base64::Engine;
    let enc = |s: &[u8]| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    };
    let long = [b"Alice:".as_slice(), &[b'p'; 2000]].concat();
    for raw in [&b"Alice:pw"[..], &long, b"alice:\xff\xfe"] {
        assert_eq!(
            credentials_of(enc(raw).as_bytes()),
            Some(Credentials::Basic(UserId::new("alice"))),
            "{:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(10)])
        );
    }
    assert_eq!(credentials_of(enc(b"no-colon").as_bytes()), None);
    assert_eq!(credentials_of(enc(b":pw").as_bytes()), None);
    assert_eq!(credentials_of(b"Basic !!!"), None);
    assert_eq!(
        credentials_of(b"bearer  tok.1 "),
        Some(Credentials::Bearer("tok.1"))
    );
    assert_eq!(credentials_of(b"Bearer "), None);
    assert_eq!(credentials_of(b"Digest x"), None);
    assert_eq!(credentials_of(b"Basic \xff"), None);
}

/// A head's fields as the fast lane's codec finds them: the raw bytes and
/// where each value lies.
fn raw_fields(
    fields: &[(&str, &[u8])],
) -> (Vec<u8>, Vec<(http::HeaderName, std::ops::Range<usize>)>) {
    let mut head = Vec::new();
    let mut spans = Vec::new();
    for (name, value) in fields {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        let at = head.len();
        head.extend_from_slice(value);
        spans.push((
            http::HeaderName::from_bytes(name.as_bytes()).expect("a field name"),
            at..head.len(),
        ));
        head.extend_from_slice(b"\r\n");
    }
    (head, spans)
}

/// The platform login of today's versions (Jira 10, Confluence 9,
/// Bitbucket 9): JSON on both paths, for every product, with its
/// `targetUrl`; only as `application/json`; a repeated field is no login;
/// the code step is no login (it names nobody).
#[test]
fn the_platform_login_is_read_on_both_paths_for_every_product() {
    use crate::product::CONFLUENCE;
    let body =
        br#"{"username":"Erin","password":"pw","rememberMe":true,"targetUrl":"/browse/A-1"}"#;
    for profile in [&JIRA, &CONFLUENCE, &BITBUCKET] {
        for path in [
            "/rest/tsv/latest/authenticate",
            "/rest/tsv/1.0/authenticate",
        ] {
            let post = http::Method::POST;
            assert!(is_login(profile, &post, path), "{path}");
            let a = login_attempt(profile, path, None, Some("application/json"), body)
                .unwrap_or_else(|| panic!("{:?} {path}", profile.product));
            assert_eq!(a.user, UserId::new("erin"));
            assert_eq!(a.destination.as_deref(), Some("/browse/A-1"));
            assert!(a.json);
            assert!(login_attempt(profile, path, None, Some(FORM), body).is_none());
            // Only a JSON object is a login (serde alone would read a
            // struct from an array; the app does not). Found by the fuzzer.
            let array = br#" ["erin", "pw"]"#;
            assert!(
                login_attempt(profile, path, None, Some("application/json"), array).is_none(),
                "an array is no login"
            );
            let twice = br#"{"username":"erin","username":"mallory","password":"pw"}"#;
            assert!(
                login_attempt(profile, path, None, Some("application/json"), twice).is_none(),
                "a repeated username is no login"
            );
        }
        let code = "/rest/tsv/latest/authenticate/totp-code";
        assert!(!is_login(profile, &http::Method::POST, code));
        assert!(profile.is_second_step(code));
        assert!(profile.is_second_step("/rest/tsv/1.0/authenticate/recovery-code"));
    }
}
