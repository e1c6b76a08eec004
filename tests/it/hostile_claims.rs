//! The red-team review's claim findings (docs/SECURITY.md, "Claims"), each
//! with the bytes that reproduced it, against the gate in front of the Jira
//! (or Confluence) simulator over real sockets. Only what the app confirmed
//! may cost anyone a seat: an anonymous client can neither release, take,
//! refresh nor queue for anyone's seat.

use crate::gate_support::*;
use iumgate::identity::Kind;
use iumgate::product::Product;
use iumgate::user::UserId;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn addr(w: &World) -> String {
    w.base.trim_start_matches("http://").to_string()
}

/// Waits (bounded) until no seat is lent to an unconfirmed claim: the
/// give-back of a dropped exchange runs on its own task.
async fn settle(w: &World) {
    for _ in 0..500 {
        if w.gate.borrowed_seats() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("a lent seat was never given back");
}

// ---- 1. logout by name --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_name_with_any_password_on_a_logout_path_frees_nobodys_seat() {
    let w = World::jira().await;
    fill(&w, &["casual01", "casual02", "casual03"]).await;
    let a = addr(&w);
    for (method, path, user) in [
        ("GET", "/secure/Logout!default.jspa", "casual01"),
        ("GET", "/logout", "casual02"),
        ("DELETE", "/rest/auth/1/session", "casual03"),
        // The right password does not make a Basic request a session either.
        ("GET", "/secure/Logout!default.jspa", "casual01"),
    ] {
        let password = if path.ends_with("jspa") && user == "casual01" {
            "not-the-password"
        } else {
            "demo"
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: j\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            basic(user, password)
        );
        let answer = raw(&a, req.as_bytes(), false).await;
        assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    }
    assert_eq!(
        w.access_members(),
        vec!["casual01", "casual02", "casual03"],
        "a logout by name released a seat"
    );
    assert_eq!(w.gate.counters.release_logout.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_logout_by_session_still_frees_the_seat_and_a_refused_one_does_not() {
    let w = World::jira().await;
    let (alice, jar) = browser();
    let (status, _, _) = text(jira_login(&w, &alice, "casual01", "demo", false).await).await;
    assert_eq!(status, 200);
    // A JSON logout the app refuses (no session in it): nothing moves.
    let r = no_redirect()
        .delete(w.url("/rest/auth/1/session"))
        .header("authorization", basic("casual01", "demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(w.holds("casual01"));
    // The user's own session logs out: the seat is free.
    let r = browser_no_redirect(jar)
        .delete(w.url("/rest/auth/1/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(!w.holds("casual01"));
    assert_eq!(w.gate.counters.release_logout.load(Ordering::Relaxed), 1);
}

// ---- 2. a broken exchange gives the borrowed seat back --------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_cut_one_byte_short_gives_its_borrowed_seat_back() {
    let w = World::jira().await;
    let a = addr(&w);
    for n in 14..=20 {
        let body = format!("os_username=casual{n}&os_password=x");
        let req = format!(
            "POST /login.jsp HTTP/1.1\r\nHost: j\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len() + 1
        );
        let answer = raw(&a, req.as_bytes(), true).await;
        assert!(!answer.contains(" 200 "), "{answer}");
    }
    settle(&w).await;
    assert_eq!(w.in_use(), 0, "seats kept by logins that never happened");
    assert!(w.access_members().is_empty(), "{:?}", w.access_members());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_post_reset_mid_body_gives_its_borrowed_seat_back() {
    let w = World::jira().await;
    let a = addr(&w);
    let req = format!(
        "POST /rest/api/2/issue/DEMO-1/comment HTTP/1.1\r\nHost: j\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{{",
        basic("casual06", "wrong")
    );
    let mut s = TcpStream::connect(&a).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    // Let the gate take the request in, then reset the connection.
    for _ in 0..200 {
        if w.in_use() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SO_LINGER 0: the close is a reset (nothing blocks on a zero linger).
    #[allow(deprecated)]
    s.set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);
    settle(&w).await;
    assert!(!w.holds("casual06"));
    assert!(w.access_members().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_cannot_be_reached_or_never_answers_costs_no_seat() {
    // Connect error: the app's address is dead, the directory works.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let w = World::start(
        Product::Jira,
        |_| {},
        |c| {
            c.proxy.upstream = dead_url;
        },
    )
    .await;
    let r = w.get_as("/rest/api/2/search", "casual05", "demo").await;
    assert_eq!(r.status(), 502);
    let body = "os_username=casual07&os_password=demo";
    let r = no_redirect()
        .post(w.url("/login.jsp"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    settle(&w).await;
    assert_eq!(w.in_use(), 0);
    assert!(w.access_members().is_empty());
    assert_eq!(w.gate.counters.release_rollback.load(Ordering::Relaxed), 2);

    // Time-out: the app accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            conns.push(s);
        }
    });
    let w = World::start(
        Product::Jira,
        |_| {},
        |c| {
            c.proxy.upstream = silent_url;
            c.proxy.request_timeout = iumgate::config::Dur::secs(1);
        },
    )
    .await;
    let r = w.get_as("/rest/api/2/search", "casual05", "demo").await;
    assert_eq!(r.status(), 504);
    settle(&w).await;
    assert!(w.access_members().is_empty());
    held.abort();
}

// ---- 3. no wait cookie, queue or eviction for a name ----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_name_with_a_wrong_password_gets_no_wait_cookie_and_evicts_nobody() {
    let w = World::jira().await;
    let holders = SEVEN;
    fill(&w, &holders).await;
    w.advance_min(40); // every holder idle past min_idle (30 minutes)
    let req = format!(
        "GET /browse/DEMO-1 HTTP/1.1\r\nHost: j\r\nAccept: text/html\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        basic("casual20", "WRONG")
    );
    let answer = raw(&addr(&w), req.as_bytes(), false).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("iumgate_wait"),
        "a wait cookie for a name: {answer}"
    );
    assert!(
        w.gate.with_pool(|p| p.queue()).is_empty(),
        "the name was queued"
    );
    let mut members = w.access_members();
    members.sort();
    assert_eq!(members, holders, "someone was evicted for a name");
    assert_eq!(w.gate.counters.admit_evicted.load(Ordering::Relaxed), 0);
    assert_eq!(w.gate.sessions.len(), 7, "a binding for the name");
}

// ---- 4. a wrong password does not keep a seat fresh -----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_basic_password_does_not_refresh_the_holders_idle_clock_and_a_right_one_does() {
    let w = World::jira().await;
    fill(&w, &["casual01"]).await;
    let since = w.last_active("casual01").unwrap();
    w.advance_min(40);
    for path in ["/browse/DEMO-1", "/rest/api/2/issue/DEMO-1"] {
        let r = w.get_as(path, "casual01", "WRONG").await;
        assert_eq!(r.status(), 401, "{path}");
    }
    assert_eq!(
        w.last_active("casual01"),
        Some(since),
        "a wrong password kept the seat fresh"
    );
    // The app names the user for the right password: that is activity.
    let r = w
        .get_as("/rest/api/2/issue/DEMO-1", "casual01", "demo")
        .await;
    assert_eq!(r.status(), 200);
    assert!(w.last_active("casual01").unwrap() > since);
}

// ---- 5. the login is read as the app reads it -----------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_dressed_as_json_gives_no_seat_to_the_colleague_it_names() {
    let w = World::jira().await;
    let body = r#"{"username":"casual15","x":"=&os_username=casual08&os_password=demo&y="}"#;
    let req = format!(
        "POST /login.jsp HTTP/1.1\r\nHost: j\r\nAccept: text/html\r\nContent-Type: application/x-www-form-urlencoded; x=json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = raw(&addr(&w), req.as_bytes(), false).await;
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    settle(&w).await;
    assert!(
        !w.holds("casual15"),
        "the colleague named in the JSON got a seat"
    );
    // The app logged in whom it read, and the gate read the same.
    assert!(w.holds("casual08"));
    assert_eq!(w.access_members(), vec!["casual08"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_whose_query_and_body_name_two_users_gives_neither_a_seat_before_the_app_answers() {
    let w = World::jira().await;
    // The servlet container reads the query string first: the app logs in
    // casual08; the body names casual15.
    let r = no_redirect()
        .post(w.url("/login.jsp?os_username=casual08&os_password=demo"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html")
        .body("os_username=casual15&os_password=x")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success() || r.status().is_redirection());
    settle(&w).await;
    assert!(!w.holds("casual15"));
    // And a query-string login alone is read like the app's.
    let r = no_redirect()
        .post(w.url("/login.jsp?os_username=casual09&os_password=demo"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "the app logged casual09 in");
    assert!(w.holds("casual09"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluence_without_x_ausername_binds_a_new_session_only_to_whom_the_app_names() {
    let w = World::start(Product::Confluence, |_| {}, |_| {}).await;
    w.sim.set_ausername_header(false);
    let body = r#"{"username":"casual05","x":"=&os_username=power1&os_password=demo&y="}"#;
    let r = no_redirect()
        .post(w.url("/dologin.action"))
        .header("content-type", "application/x-www-form-urlencoded; x=json")
        .header("accept", "text/html")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let session = set_cookie(&r, "JSESSIONID").expect("a new session");
    let session = session["JSESSIONID=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    settle(&w).await;
    assert!(
        !w.holds("casual05"),
        "casual05 got a seat for power1's login"
    );
    let now = iumgate::clock::Clock::now_ms(&*w.clock);
    assert_eq!(
        w.gate.sessions.lookup(Kind::Session, &session, now),
        Some(UserId::new("power1")),
        "power1's session must be power1's"
    );
    // A casual user's header-less login keeps its seat once whoami agrees.
    let r = w.form_login("/dologin.action", "casual06", "demo").await;
    assert_eq!(r.status(), 302);
    settle(&w).await;
    assert!(w.holds("casual06"));
}

// ---- 10. the wait cookie under TLS ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_cookie_is_secure_when_the_client_came_over_tls() {
    let w = World::start(
        Product::Jira,
        |_| {},
        |c| {
            c.proxy.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        },
    )
    .await;
    fill(&w, &SEVEN).await;
    for (proto, secure) in [("https", true), ("http", false)] {
        let r = no_redirect()
            .post(w.url("/login.jsp"))
            .header("x-forwarded-proto", proto)
            .header("accept", "text/html")
            .form(&[("os_username", "casual08"), ("os_password", "demo")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let cookie = set_cookie(&r, "iumgate_wait").expect("a wait cookie");
        assert_eq!(cookie.contains("; Secure"), secure, "{proto}: {cookie}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_wait_cookie_does_not_have_the_waiting_login_repeated_for_another_browser() {
    let w = World::jira().await;
    fill(&w, &SEVEN).await;
    let (c, jar) = browser();
    let (_, path, _) = text(jira_login(&w, &c, "casual08", "demo", false).await).await;
    assert_eq!(path, "/iumgate/wait");
    w.advance_min(31);
    let q = poll_queue(&w, &c, "").await;
    assert_eq!(q["state"], "admitted", "{q}");
    let url: reqwest::Url = w.url("/iumgate/resume").parse().unwrap();
    let cookies = reqwest::cookie::CookieStore::cookies(&*jar, &url)
        .map(|h| h.to_str().unwrap().to_string())
        .unwrap_or_default();
    let wait = cookies
        .split("; ")
        .find(|c| c.starts_with("iumgate_wait="))
        .expect("a wait cookie")
        .to_string();
    // Another browser with the cookie: back to the login page, no session.
    let r = no_redirect()
        .get(w.url("/iumgate/resume"))
        .header("cookie", &wait)
        .header("user-agent", "curl/8.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login.jsp");
    assert!(r.headers().get("set-cookie").is_none());
    // The browser that waited still gets its login repeated.
    let r = c.get(w.url("/iumgate/resume")).send().await.unwrap();
    let (status, path, _) = text(r).await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_logins_of_one_waiting_account_keep_one_form_in_memory() {
    let w = World::jira().await;
    fill(&w, &SEVEN).await;
    for _ in 0..50 {
        let r = w.form_login("/login.jsp", "casual08", "demo").await;
        assert_eq!(r.status(), 303);
    }
    assert_eq!(w.gate.pending_login_count(), 1);
}
