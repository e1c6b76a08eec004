//! Hostile clients against the licence gate in front of the Jira simulator:
//! people who try to get a seat they should not have, take one from a
//! colleague, or trick the waiting room. Each test names the attack; the
//! assertions are on the seats (pool and the simulator's access group), the
//! session bindings and what the client got back.

use crate::gate_support::*;
use iumgate::clock::Clock;
use iumgate::identity::Kind;
use iumgate::sim::SimUser;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `name=value` of the cookies a jar holds for the proxy.
fn jar_cookies(w: &World, jar: &reqwest::cookie::Jar) -> Vec<(String, String)> {
    let url: reqwest::Url = w.base.parse().unwrap();
    reqwest::cookie::CookieStore::cookies(jar, &url)
        .map(|h| h.to_str().unwrap().to_string())
        .unwrap_or_default()
        .split("; ")
        .filter_map(|c| c.split_once('='))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_x_ausername_from_the_client_names_nobody() {
    let w = World::jira().await;
    let c = reqwest::Client::new();
    for path in ["/browse/DEMO-1", "/rest/api/2/issue/DEMO-1", "/"] {
        let r = c
            .get(w.url(path))
            .header("X-AUSERNAME", "casual01")
            .header("X-Seraph-LoginReason", "OK")
            .header("X-AUSERID", "casual01")
            .send()
            .await
            .unwrap();
        assert_ne!(
            r.headers().get("x-ausername").map(|v| v.as_bytes()),
            Some(&b"casual01"[..]),
            "{path}: the app took the spoofed name"
        );
    }
    // A wrong-password login that also claims the app's verdict.
    let r = c
        .post(w.url("/login.jsp"))
        .header("X-AUSERNAME", "casual01")
        .header("X-Seraph-LoginReason", "OK")
        .form(&[("os_username", "casual01"), ("os_password", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-seraph-loginreason"], "AUTHENTICATED_FAILED");
    assert_eq!(w.in_use(), 0, "no seat for a spoofed name");
    assert!(w.access_members().is_empty());
    // The wrong-password login may borrow a free seat while the password is
    // checked; it must have been given back.
    let writes = w.sim.group_writes();
    let adds = writes.iter().filter(|(op, _, _)| op == "add").count();
    let removes = writes.iter().filter(|(op, _, _)| op == "remove").count();
    assert_eq!(adds, removes, "{writes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_with_a_colleagues_name_costs_the_colleague_nothing() {
    let w = World::jira().await;
    let (alice, _) = browser();
    let (status, path, _) = text(jira_login(&w, &alice, "casual01", "demo", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
    let since = w.last_active("casual01").expect("casual01 holds a seat");
    let writes = w.sim.group_writes().len();
    w.advance_min(40);

    // Mallory tries casual01's name with a wrong password: form, gadget
    // form and JSON login.
    let (mallory, mjar) = browser();
    let (status, path, _) = text(jira_login(&w, &mallory, "casual01", "guess", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/login.jsp"));
    let r = mallory
        .post(w.url("/rest/gadget/1.0/login"))
        .form(&[("os_username", "casual01"), ("os_password", "guess2")])
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers().get("x-ausername").unwrap(), "casual01");
    let r = mallory
        .post(w.url("/rest/auth/1/session"))
        .json(&serde_json::json!({"username": "CASUAL01", "password": "guess3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Then browses with whatever cookies she got.
    let r = mallory.get(w.url("/browse/DEMO-2")).send().await.unwrap();
    assert_ne!(r.headers().get("x-ausername").unwrap(), "casual01");

    assert!(w.holds("casual01"), "casual01 lost the seat");
    assert_eq!(w.access_members(), vec!["casual01"]);
    assert_eq!(w.sim.group_writes().len(), writes, "no group change");
    assert_eq!(
        w.last_active("casual01"),
        Some(since),
        "Mallory's tries must not keep casual01's seat alive either"
    );
    // None of Mallory's cookies is bound to casual01.
    let now = w.clock.now_ms();
    for (name, value) in jar_cookies(&w, &mjar) {
        for kind in [Kind::Session, Kind::RememberMe, Kind::Wait] {
            assert_eq!(
                w.gate.sessions.lookup(kind, &value, now),
                None,
                "cookie {name} is bound"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_replayed_from_another_client_after_logout_gets_no_seat() {
    let w = World::jira().await;
    let (alice, jar) = browser();
    let (status, _, _) = text(jira_login(&w, &alice, "casual01", "demo", true).await).await;
    assert_eq!(status, 200);
    let stolen = jar_cookies(&w, &jar);
    let cookie_header: String = stolen
        .iter()
        .filter(|(n, _)| n == "JSESSIONID" || n == "seraph.rememberme.cookie")
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    assert!(cookie_header.contains("JSESSIONID="), "{stolen:?}");
    assert!(
        cookie_header.contains("seraph.rememberme.cookie="),
        "{stolen:?}"
    );

    let r = alice
        .get(w.url("/secure/Logout!default.jspa"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!w.holds("casual01"));
    let writes = w.sim.group_writes().len();

    // Another client replays both cookies, on pages and on the API.
    let eve = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        "/browse/DEMO-1",
        "/rest/api/2/issue/DEMO-1",
        "/iumgate/api/queue",
    ] {
        let r = eve
            .get(w.url(path))
            .header("cookie", &cookie_header)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_ne!(
            r.headers().get("x-ausername").map(|v| v.as_bytes()),
            Some(&b"casual01"[..]),
            "{path}"
        );
        if path == "/iumgate/api/queue" {
            let q: serde_json::Value = r.json().await.unwrap();
            assert_eq!(
                q["state"], "unknown",
                "the waiting room knows the replayed cookie"
            );
        }
    }
    assert!(!w.holds("casual01"), "the replay re-granted the seat");
    assert!(w.access_members().is_empty());
    assert_eq!(w.sim.group_writes().len(), writes);
    let now = w.clock.now_ms();
    for (_, value) in &stolen {
        assert_eq!(w.gate.sessions.lookup(Kind::Session, value, now), None);
        assert_eq!(w.gate.sessions.lookup(Kind::RememberMe, value, now), None);
    }
}

/// Usernames with control characters, invalid UTF-8 (as percent escapes),
/// markup, and absurd lengths: none may take a seat under a mangled name,
/// crash a task, or reach the directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_usernames_in_login_forms_and_json_take_no_seat() {
    let w = World::jira().await;
    let long = "a".repeat(10_000);
    let forms: Vec<String> = vec![
        "os_username=casual01%00&os_password=demo".into(),
        "os_username=casual01%0d%0aX-AUSERNAME:%20admin&os_password=demo".into(),
        "os_username=%FF%FE%FD&os_password=demo".into(),
        "os_username=%C3%28&os_password=demo".into(),
        "os_username=%3Cscript%3Ealert(1)%3C%2Fscript%3E&os_password=demo".into(),
        "os_username=%1Bcasual02&os_password=demo".into(),
        "os_username=&os_password=demo".into(),
        "os_username=%20%20&os_password=demo".into(),
        format!("os_username={long}&os_password=demo"),
        "os_username=casual03&os_username=casual04&os_password=wrong".into(),
        "os_username=casual05&os_password=demo&os_destination=%0d%0aLocation:%20//evil".into(),
        "%%%%&&&===&os_username".into(),
    ];
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for body in &forms {
        let r = c
            .post(w.url("/login.jsp"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(r.status().as_u16() < 500, "{body}: {}", r.status());
    }
    let jsons: Vec<Vec<u8>> = vec![
        br#"{"username":"casual06\u0000","password":"demo"}"#.to_vec(),
        br#"{"username":"\ud800casual06","password":"demo"}"#.to_vec(),
        b"{\"username\":\"\xff\xfe\",\"password\":\"demo\"}".to_vec(),
        br#"{"username":["casual06"],"password":"demo"}"#.to_vec(),
        br#"{"username":"casual06","username":"casual07","password":"x"}"#.to_vec(),
        b"{\"username\":".to_vec(),
        "[".repeat(100_000).into_bytes(),
    ];
    for body in &jsons {
        let r = c
            .post(w.url("/rest/auth/1/session"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(
            r.status().as_u16() < 500,
            "{}: {}",
            String::from_utf8_lossy(&body[..body.len().min(60)]),
            r.status()
        );
    }
    // casual05 logged in with the right password (the destination with a
    // CRLF must not split the answer's headers).
    let writes = w.sim.group_writes();
    assert!(
        writes
            .iter()
            .all(|(_, u, _)| u == "casual05" || u == "casual06"),
        "a mangled name reached the directory: {writes:?}"
    );
    for m in w.access_members() {
        assert!(m == "casual05" || m == "casual06", "{m} holds a seat");
    }
    assert_eq!(w.in_use(), w.access_members().len());
    // The proxy is still well.
    let (b, _) = browser();
    let (status, path, _) = text(jira_login(&w, &b, "casual09", "demo", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
}

/// Raw bytes that are not UTF-8 in cookie and authorization headers, on a
/// request that the gate must identify (or not) without panicking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_and_control_bytes_in_cookies_and_basic_auth_are_survived() {
    let w = World::jira().await;
    let heads: [&[u8]; 5] = [
        b"Cookie: JSESSIONID=\xff\xfe; seraph.rememberme.cookie=\xc3\x28\r\n",
        b"Cookie: JSESSIONID=\"\r\nCookie: ;;;==;=\r\n",
        b"Authorization: Basic \xff\xff\xff\r\n",
        b"Authorization: Basic Y2FzdWFsMDEAOmRlbW8=\r\n", // "casual01\0:demo"
        b"Authorization: Bearer \x80\x81\r\n",
    ];
    for head in heads {
        let mut s = tokio::net::TcpStream::connect(w.run.proxy_addr)
            .await
            .unwrap();
        let mut req =
            b"GET /rest/api/2/issue/DEMO-1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n".to_vec();
        req.extend_from_slice(head);
        req.extend_from_slice(b"\r\n");
        s.write_all(&req).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
            .await
            .expect("an answer")
            .unwrap();
        let status_line = String::from_utf8_lossy(&out[..out.len().min(12)]).to_string();
        assert!(
            status_line.starts_with("HTTP/1.1 2") || status_line.starts_with("HTTP/1.1 4"),
            "{}: {status_line}",
            String::from_utf8_lossy(head)
        );
    }
    assert_eq!(w.in_use(), 0);
    assert!(w.sim.group_writes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_room_cannot_be_turned_into_an_open_redirect_or_a_script() {
    let w = World::jira().await;
    let (c, jar) = browser();
    text(jira_login(&w, &c, "casual01", "demo", false).await).await;
    let raw = browser_no_redirect(jar);
    // Admitted: the page redirects at once; every off-site form becomes "/".
    for evil in [
        "%2F%09%2Fevil.example.com",
        "%2F%0A%2Fevil.example.com",
        "%20%2F%2Fevil.example.com",
        "%5C%5Cevil.example.com",
        "%2F%5C%2Fevil.example.com",
        "javascript:alert(1)",
        "https:evil.example.com",
        "%2F%2F%2Fevil.example.com",
        "%2F%0D%0ASet-Cookie:%20x=1",
    ] {
        let r = raw
            .get(w.url(&format!("/iumgate/wait?to={evil}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{evil}");
        assert_eq!(r.headers()["location"], "/", "{evil}");
        assert!(r.headers().get("set-cookie").is_none(), "{evil}");
    }
    // A waiter: the page renders `to` into its polling script.
    fill(
        &w,
        &[
            "casual02", "casual03", "casual04", "casual05", "casual06", "casual07",
        ],
    )
    .await;
    let (c8, jar8) = browser();
    let (_, path, _) = text(jira_login(&w, &c8, "casual08", "demo", false).await).await;
    assert_eq!(path, "/iumgate/wait");
    let waiter = browser_no_redirect(jar8);
    let xss = "%2Fx%3C%2Fscript%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%27%3E%3Cimg%20src%3Dx%3E";
    let r = waiter
        .get(w.url(&format!("/iumgate/wait?to={xss}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("/iumgate/api/queue"),
        "the polling script is there: {page}"
    );
    assert!(!page.contains("<script>alert(1)"), "{page}");
    assert!(!page.contains("<img src=x>"), "{page}");
    assert_eq!(
        page.matches("</script>").count(),
        page.matches("<script>").count(),
        "{page}"
    );
    let anon = reqwest::Client::new();
    let q: serde_json::Value = anon
        .get(w.url(&format!("/iumgate/api/queue?to={xss}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(q["state"], "unknown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_destination_off_site_never_becomes_a_redirect_off_site() {
    let w = World::jira().await;
    fill(
        &w,
        &[
            "casual01", "casual02", "casual03", "casual04", "casual05", "casual06", "casual07",
        ],
    )
    .await;
    let (_, jar) = browser();
    let c = browser_no_redirect(jar);
    for dest in [
        "//evil.example.com/",
        "https://evil.example.com/",
        "/\\evil.example.com",
    ] {
        let r = c
            .post(w.url("/login.jsp"))
            .form(&[
                ("os_username", "casual08"),
                ("os_password", "demo"),
                ("os_destination", dest),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{dest}");
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        assert!(loc.starts_with("/iumgate/wait?to="), "{loc}");
        // Once admitted the waiting room goes on to a destination that stays
        // on this site (the kept login is repeated, then this path is next).
        let to: String = url_param(&loc, "to");
        assert!(
            to.starts_with('/') && !to.starts_with("//") && !to.contains('\\'),
            "{dest} → {to}"
        );
    }
}

fn url_param(url: &str, name: &str) -> String {
    let q = url.split_once('?').map(|x| x.1).unwrap_or("");
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Servlets read the first of repeated form fields; a gate that read the last
/// would grant a free seat to a colleague while the app logs someone else in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_form_naming_two_users_grants_no_seat_to_the_one_not_logged_in() {
    let w = World::start(
        iumgate::product::Product::Jira,
        |sc| {
            sc.users.push(SimUser {
                password: "m4llory".into(),
                ..SimUser::new("mallory", &["jira-software-users"])
            });
        },
        |_| {},
    )
    .await;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for body in [
        "os_username=mallory&os_username=casual03&os_password=m4llory",
        "os_username=mallory&os_password=m4llory&os_username=casual03",
        "os_username=casual03&os_password=m4llory&os_username=mallory",
    ] {
        let r = c
            .post(w.url("/login.jsp"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().as_u16() < 500, "{body}");
    }
    assert!(
        !w.holds("casual03"),
        "casual03 got a seat without logging in"
    );
    assert!(w.access_members().is_empty(), "{:?}", w.access_members());
    assert_eq!(w.in_use(), 0);
}
