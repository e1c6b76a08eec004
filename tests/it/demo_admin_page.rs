//! `iumgate demo` shows the admin page: through the real binary, with only
//! `--listen 127.0.0.1:0` (the admin listener takes a free port too), the
//! printed link opens the status page in a browser (a cookie, not the
//! token), and the page lists a demo user once they logged in.

use crate::gate_support::browser;
use crate::hostile_chain_binary::demo_args;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_admin_link_opens_the_status_page_which_lists_a_user_who_logged_in() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut d = demo_args(&[
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--min-idle",
        "30m",
        "--access-log",
        log.to_str().unwrap(),
    ]);
    // Its own free port, not 9102.
    assert!(!d.admin.ends_with(":9102"), "{}", d.admin);
    assert_ne!(d.admin, d.proxy);
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.status_link.is_none() {
        let line = d
            .output
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the demo prints the admin page's link");
        if let Some(u) = line.trim().strip_prefix("Status") {
            d.status_link = u.split_whitespace().next().map(str::to_string);
        }
        d.printed.push(line);
    }
    let link = d.status_link.clone().unwrap();
    assert!(
        link.starts_with(&format!("{}/iumgate/admin/login?token=", d.admin)),
        "{link}"
    );
    let token = link.rsplit('=').next().unwrap().to_string();
    assert!(token.len() >= 32, "{token}");
    // The file that handed the token over is gone once the demo runs.
    let file = std::env::temp_dir().join(format!("iumgate-demo-admin-token-{}", d.pid()));
    assert!(!file.exists(), "{}", file.display());

    // Without the link (or with a wrong token): the page needs the token.
    let plain = reqwest::Client::new();
    let r = plain
        .get(format!("{}/iumgate/admin/", d.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = plain
        .get(format!("{}/iumgate/admin/login?token=nope", d.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The link, as a browser opens it: a cookie (not the token, scoped to
    // the admin page), then the page without the token in the address.
    let (b, _) = browser();
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_follow.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/iumgate/admin/");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(!cookie.contains(&token), "{cookie}");
    assert!(cookie.contains("Path=/iumgate/admin/"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let r = b.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().path(), "/iumgate/admin/");
    assert!(r.url().query().is_none());
    let page = r.text().await.unwrap();
    assert!(page.contains("Seat holders"), "{page}");
    assert!(!page.contains("casual01"), "nobody logged in yet");

    // casual01 logs in through the proxy; the page (the same browser, its
    // cookie) lists them among the holders.
    let (user, _) = browser();
    assert_eq!(jira_login_at(&d.proxy, &user, "casual01").await, 200);
    let page = b
        .get(format!("{}/iumgate/admin/", d.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let holders = page
        .split("id=\"holders\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no holders table: {page}"));
    assert!(holders.contains("casual01"), "{page}");
    // The JSON behind the page's link, with the same cookie.
    let st: serde_json::Value = b
        .get(format!("{}/iumgate/admin/status", d.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(st["holders"].to_string().contains("casual01"), "{st}");

    // `--access-log`: casual01's login is in the demo's access log.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.contains("\"user\":\"casual01\"") && l.contains("\"decision\":\"admitted\""))
        {
            assert!(!text.contains(&token), "the token is in no line");
            break;
        }
        assert!(Instant::now() < deadline, "no line for casual01:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The token is printed once, on the link's line, and never logged.
    std::thread::sleep(Duration::from_millis(300));
    while let Ok(line) = d.output.try_recv() {
        d.printed.push(line);
    }
    let with_token: Vec<&String> = d.printed.iter().filter(|l| l.contains(&token)).collect();
    assert_eq!(with_token.len(), 1, "{with_token:?}");
    assert!(with_token[0].trim().starts_with("Status"));
}

/// Logs `user` in through the demo's proxy at `proxy` (a base URL).
async fn jira_login_at(proxy: &str, c: &reqwest::Client, user: &str) -> u16 {
    c.post(format!("{proxy}/login.jsp"))
        .form(&[
            ("os_username", user),
            ("os_password", "demo"),
            ("os_destination", "/browse/DEMO-1"),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
