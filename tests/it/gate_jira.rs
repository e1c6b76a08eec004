//! The licence gate in front of the Jira simulator, end to end over real
//! sockets. Time is a manual clock: "idle for 31 minutes" is a jump, not a wait.

use crate::gate_support::*;
use iumgate::pool::ReleaseReason;
use iumgate::sim::SimUser;
use iumgate::user::UserId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_10_with_3_fixed_users_gives_7_shared_seats() {
    let w = World::jira().await;
    let a = w.gate.arithmetic();
    assert_eq!((a.tier, a.fixed, a.reserved, a.capacity), (10, 3, 0, 7));
    assert_eq!(w.gate.with_pool(|p| p.capacity()), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn casual_user_with_right_password_gets_in_through_the_login_form_in_one_go() {
    let w = World::jira().await;
    let (c, _) = browser();
    let (status, path, body) = text(jira_login(&w, &c, "casual01", "demo", false).await).await;
    assert_eq!(status, 200);
    assert_eq!(path, "/browse/DEMO-1");
    assert!(body.contains("DEMO-1"), "{body}");
    assert_eq!(w.access_members(), vec!["casual01"]);
    assert!(w.holds("casual01"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_user_is_never_queued_or_touched() {
    let w = World::jira().await;
    fill(&w, &SEVEN).await;
    let (c, _) = browser();
    let (status, path, _) = text(jira_login(&w, &c, "power1", "demo", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
    let r = c.get(w.url("/browse/DEMO-2")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(w.sim.group_writes().iter().all(|(_, u, _)| u != "power1"));
    assert!(!w.access_members().contains(&"power1".to_string()));
    assert!(!w.holds("power1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eighth_casual_user_waits_then_gets_in_by_itself_once_a_holder_is_idle_past_min_idle() {
    let w = World::jira().await;
    fill(&w, &SEVEN).await;
    w.advance_min(5);
    let (c, jar) = browser();
    let r = jira_login(&w, &c, "casual08", "demo", false).await;
    let (status, path, body) = text(r).await;
    assert_eq!((status, path.as_str()), (200, "/iumgate/wait"));
    assert!(body.contains("<strong id=\"pos\">1</strong>"), "{body}");
    assert_eq!(w.access_members().len(), 7);
    assert!(!w.access_members().contains(&"casual08".to_string()));

    // The page polls; nobody is idle long enough yet.
    let q = poll_queue(&w, &c, "").await;
    assert_eq!(q["state"], "waiting");
    assert_eq!(q["position"], 1);

    // casual01 … 07 idle past min_idle: the next poll lets casual08 in.
    w.advance_min(26);
    let q = poll_queue(
        &w,
        &c,
        "?to=%2Flogin.jsp%3Fos_destination%3D%252Fbrowse%252FDEMO-1",
    )
    .await;
    assert_eq!(q["state"], "admitted", "{q}");
    assert!(w.access_members().contains(&"casual08".to_string()));
    assert_eq!(w.access_members().len(), 7);
    // Its login never went through: the waiting room repeats it now, so the
    // page leads straight to the issue — no second login.
    let to = q["to"].as_str().unwrap();
    assert_eq!(to, "/iumgate/resume");
    let r = c.get(w.url(to)).send().await.unwrap();
    let (status, path, body) = text(r).await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"), "{body}");
    assert!(body.contains("casual08"), "{body}");
    // The kept form is gone once used.
    let r = browser_no_redirect(jar.clone())
        .get(w.url("/iumgate/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/login.jsp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longest_idle_holder_is_evicted_never_a_recently_active_one() {
    let w = World::jira().await;
    let clients = fill(&w, &SEVEN).await;
    // casual02 … 07 view issues later, casual02 first: casual01 is idlest.
    for (i, c) in clients.iter().enumerate().skip(1) {
        w.advance_min(2);
        let r = c
            .get(w.url(&format!("/browse/DEMO-{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Now: casual01 idle 12 min, the others less. Nobody may lose the seat.
    let (c8, _) = browser();
    let (_, path, _) = text(jira_login(&w, &c8, "casual08", "demo", false).await).await;
    assert_eq!(path, "/iumgate/wait");
    assert_eq!(w.access_members().len(), 7);
    // 19 minutes later casual01 is idle 31 min, casual02 29 min.
    w.advance_min(19);
    let (c9, _) = browser();
    let (status, path, _) = text(jira_login(&w, &c9, "casual09", "demo", false).await).await;
    // casual08 waits ahead of casual09: casual09 must queue behind.
    assert_eq!((status, path.as_str()), (200, "/iumgate/wait"));
    let q = poll_queue(&w, &c8, "").await;
    assert_eq!(q["state"], "admitted", "{q}");
    let members = w.access_members();
    assert!(!members.contains(&"casual01".to_string()), "{members:?}");
    assert!(members.contains(&"casual02".to_string()), "{members:?}");
    assert!(members.contains(&"casual08".to_string()), "{members:?}");
    // casual09 is first in line now but casual02 was active 29 min ago.
    let q = poll_queue(&w, &c9, "").await;
    assert_eq!(q["state"], "waiting", "{q}");
    assert_eq!(q["position"], 1);
    let evicted: Vec<_> = w
        .sim
        .group_writes()
        .into_iter()
        .filter(|(op, _, g)| op == "remove" && g == "IUM_access_software")
        .map(|(_, u, _)| u)
        .collect();
    assert_eq!(evicted, vec!["casual01"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_polling_does_not_count_as_activity() {
    let w = World::jira().await;
    let clients = fill(&w, &SEVEN).await;
    // casual01 keeps a tab open that polls; the others really work later.
    for _ in 0..3 {
        w.advance_min(10);
        let r = clients[0]
            .get(w.url("/rest/mywork/1.0/notification/count"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for c in &clients[1..] {
        assert_eq!(
            c.get(w.url("/browse/DEMO-9"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    w.advance_min(1);
    let (c8, _) = browser();
    let (_, path, _) = text(jira_login(&w, &c8, "casual08", "demo", false).await).await;
    assert_eq!(path, "/browse/DEMO-1");
    assert!(!w.access_members().contains(&"casual01".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_login_grants_nothing_evicts_nobody_and_leaves_no_seat_taken() {
    let w = World::jira().await;
    // With free seats.
    let (c, _) = browser();
    let (status, path, _) = text(jira_login(&w, &c, "casual01", "wrong", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/login.jsp"));
    assert!(w.access_members().is_empty());
    assert_eq!(w.in_use(), 0);
    // With a full pool of idle holders: a wrong password with a colleague's
    // name must not cost anybody their seat.
    fill(&w, &SEVEN).await;
    w.advance_min(45);
    let writes_before = w.sim.group_writes().len();
    let (c, _) = browser();
    let (status, path, _) = text(jira_login(&w, &c, "casual08", "wrong", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/login.jsp"));
    assert_eq!(w.sim.group_writes().len(), writes_before, "no group change");
    assert_eq!(w.access_members().len(), 7);
    assert_eq!(w.in_use(), 7);
    assert_eq!(w.gate.with_pool(|p| p.queue_len()), 0, "not even queued");
    // An unknown user neither.
    let (c, _) = browser();
    text(jira_login(&w, &c, "nobody", "x", false).await).await;
    assert_eq!(w.sim.group_writes().len(), writes_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_a_full_pool_evicts_only_after_the_password_proved_right() {
    let w = World::jira().await;
    fill(&w, &SEVEN).await;
    w.advance_min(31);
    let (c, _) = browser();
    let (status, path, body) = text(jira_login(&w, &c, "casual08", "demo", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"), "{body}");
    assert!(w.access_members().contains(&"casual08".to_string()));
    assert_eq!(w.access_members().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returning_user_with_only_a_remember_me_cookie_is_admitted_before_jira_sees_the_request() {
    let w = World::jira().await;
    let (c, jar) = browser();
    let (status, _, _) = text(jira_login(&w, &c, "casual01", "demo", true).await).await;
    assert_eq!(status, 200);
    let url: reqwest::Url = w.base.parse().unwrap();
    let cookies = reqwest::cookie::CookieStore::cookies(&*jar, &url).unwrap();
    let remember = cookies
        .to_str()
        .unwrap()
        .split("; ")
        .find(|c| c.starts_with("seraph.rememberme.cookie="))
        .expect("remember-me cookie")
        .to_string();
    // Overnight the seat went away.
    assert!(
        w.gate
            .release(&UserId::new("casual01"), ReleaseReason::Cleanup)
            .await
    );
    assert!(w.access_members().is_empty());
    w.advance_min(12 * 60);
    // Next day: a fresh browser with only the remember-me cookie.
    let before = w.sim.count("/browse/");
    let r = reqwest::Client::new()
        .get(w.url("/browse/DEMO-7"))
        .header("cookie", &remember)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ausername"], "casual01");
    assert_eq!(
        w.sim.count("/browse/") - before,
        1,
        "Jira saw one request, already licensed"
    );
    assert_eq!(w.access_members(), vec!["casual01"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_casual_users_logging_in_concurrently_never_put_more_than_seven_into_the_access_group(
) {
    let w = World::start(
        iumgate::product::Product::Jira,
        |sc| {
            for i in 21..=50 {
                sc.users.push(SimUser::new(
                    &format!("casual{i:02}"),
                    &["IUM_user_software"],
                ));
            }
        },
        |_| {},
    )
    .await;
    let mut tasks = Vec::new();
    for i in 1..=50 {
        let url = w.url("/login.jsp");
        tasks.push(tokio::spawn(async move {
            let (c, _) = browser();
            let r = c
                .post(url)
                .form(&[
                    ("os_username", format!("casual{i:02}")),
                    ("os_password", "demo".to_string()),
                    ("os_destination", "/browse/DEMO-1".to_string()),
                ])
                .send()
                .await
                .unwrap();
            r.url().path().to_string()
        }));
    }
    let mut inside = 0;
    let mut waiting = 0;
    for t in tasks {
        match t.await.unwrap().as_str() {
            "/browse/DEMO-1" => inside += 1,
            "/iumgate/wait" => waiting += 1,
            other => panic!("unexpected landing page {other}"),
        }
    }
    assert_eq!((inside, waiting), (7, 43));
    assert_eq!(w.access_members().len(), 7);
    assert!(
        w.sim.peak_members("IUM_access_software") <= 7,
        "peak {}",
        w.sim.peak_members("IUM_access_software")
    );
    assert_eq!(w.in_use(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_frees_the_seat() {
    let w = World::jira().await;
    let (c, _) = browser();
    text(jira_login(&w, &c, "casual01", "demo", false).await).await;
    assert!(w.holds("casual01"));
    let r = c
        .get(w.url("/secure/Logout!default.jspa"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!w.holds("casual01"));
    assert!(w.access_members().is_empty());
    assert_eq!(w.in_use(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_failure_shows_the_waiting_page_with_its_message_and_the_proxy_stays_up() {
    let w = World::jira().await;
    w.sim.fail_admin(Some(500));
    let (c, _) = browser();
    let r = jira_login(&w, &c, "casual01", "demo", false).await;
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("licence service is unavailable"), "{body}");
    assert_eq!(w.in_use(), 0, "no seat counted that was not granted");
    assert!(w
        .run
        .alerts
        .list()
        .iter()
        .any(|a| a.key.starts_with("directory_")));
    // Holders are not affected, and the gate recovers by itself.
    w.sim.fail_admin(None);
    let (status, path, _) = text(jira_login(&w, &c, "casual01", "demo", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
    assert!(w
        .run
        .alerts
        .list()
        .iter()
        .all(|a| !a.key.starts_with("directory_")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_pages_to_cannot_redirect_off_site() {
    let w = World::jira().await;
    let (c, jar) = browser();
    text(jira_login(&w, &c, "casual01", "demo", false).await).await;
    let raw = browser_no_redirect(jar);
    for evil in [
        "//evil.example.com/",
        "https://evil.example.com/",
        "/\\evil.example.com",
        "%2F%2Fevil.example.com",
    ] {
        let r = raw
            .get(w.url(&format!("/iumgate/wait?to={evil}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{evil}");
        assert_eq!(r.headers()["location"], "/", "{evil}");
        let q: serde_json::Value = raw
            .get(w.url(&format!("/iumgate/api/queue?to={evil}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(q["to"], "/", "{evil}");
    }
    let r = raw
        .get(w.url("/iumgate/wait?to=%2Fbrowse%2FDEMO-3"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/browse/DEMO-3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_adopts_the_access_groups_members() {
    let w = World::jira().await;
    fill(&w, &["casual01", "casual02", "casual03"]).await;
    let clock = w.clock.clone();
    let sim = w.stop().await;
    let w = World::start_on(iumgate::product::Product::Jira, sim, clock, |_| {}).await;
    for u in ["casual01", "casual02", "casual03"] {
        assert!(w.holds(u), "{u}");
    }
    assert_eq!(w.in_use(), 3);
    assert_eq!(w.gate.with_pool(|p| p.capacity()), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_in_user_who_lost_the_seat_waits_and_the_page_lets_them_in_by_itself() {
    let w = World::jira().await;
    let clients = fill(&w, &SEVEN).await;
    w.advance_min(20);
    for c in &clients[1..] {
        assert_eq!(
            c.get(w.url("/browse/DEMO-5"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    w.advance_min(11);
    // casual08 takes casual01's seat (idle 31 min).
    let (c8, _) = browser();
    let (_, path, _) = text(jira_login(&w, &c8, "casual08", "demo", false).await).await;
    assert_eq!(path, "/browse/DEMO-1");
    assert!(!w.holds("casual01"));
    // casual01 comes back: no seat free, nobody idle long enough.
    let r = clients[0]
        .get(w.url("/browse/DEMO-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.url().path(), "/iumgate/wait");
    assert!(r.url().query().unwrap_or("").contains("DEMO-2"));
    // An API client of the same user gets JSON.
    let r = clients[0]
        .get(w.url("/rest/api/2/issue/DEMO-2"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (j["state"].as_str(), j["position"].as_u64()),
        (Some("waiting"), Some(1))
    );
    // 31 minutes after the others' last activity, the page's poll admits.
    w.advance_min(20);
    let q = poll_queue(&w, &clients[0], "?to=%2Fbrowse%2FDEMO-2").await;
    assert_eq!(q["state"], "admitted");
    assert_eq!(q["to"], "/browse/DEMO-2");
    let r = clients[0]
        .get(w.url("/browse/DEMO-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ausername"], "casual01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_user_inside_an_ium_group_is_treated_as_power_and_reported() {
    let w = World::start(
        iumgate::product::Product::Jira,
        |sc| {
            if let Some(u) = sc.users.iter_mut().find(|u| u.name == "power1") {
                u.groups.push("IUM_user_software".into());
            }
        },
        |_| {},
    )
    .await;
    assert_eq!(
        w.gate.arithmetic().power_in_ium,
        vec![UserId::new("power1")]
    );
    let alert = w
        .run
        .alerts
        .list()
        .into_iter()
        .find(|a| a.key == "power_user_in_ium_group")
        .expect("alert");
    assert!(alert.text.contains("power1"));
    fill(&w, &SEVEN).await;
    let (c, _) = browser();
    let (status, path, _) = text(jira_login(&w, &c, "power1", "demo", false).await).await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
    assert!(w.sim.group_writes().iter().all(|(_, u, _)| u != "power1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_of_one_user_cause_one_grant() {
    let w = World::jira().await;
    let (c, jar) = browser();
    text(jira_login(&w, &c, "casual01", "demo", false).await).await;
    assert!(
        w.gate
            .release(&UserId::new("casual01"), ReleaseReason::Cleanup)
            .await
    );
    let adds_before = w
        .sim
        .group_writes()
        .iter()
        .filter(|(op, _, _)| op == "add")
        .count();
    w.sim.set_latency(std::time::Duration::from_millis(100));
    let mut tasks = Vec::new();
    for i in 0..10 {
        let c = browser_no_redirect(jar.clone());
        let url = w.url(&format!("/browse/DEMO-{i}"));
        tasks.push(tokio::spawn(async move {
            c.get(url).send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let adds = w
        .sim
        .group_writes()
        .iter()
        .filter(|(op, _, _)| op == "add")
        .count();
    assert_eq!(adds - adds_before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_access_token_is_recognised_once_the_upstream_named_its_user() {
    let w = World::start(
        iumgate::product::Product::Jira,
        |sc| {
            sc.tokens
                .push(("pat-of-casual02".into(), "casual02".into()))
        },
        |_| {},
    )
    .await;
    let (c, _) = browser();
    text(jira_login(&w, &c, "casual02", "demo", false).await).await;
    let api = reqwest::Client::new();
    let get = || {
        api.get(w.url("/rest/api/2/issue/DEMO-1"))
            .header("authorization", "Bearer pat-of-casual02")
            .header("accept", "application/json")
            .send()
    };
    // While licensed, the upstream names the token's user: iumgate learns it.
    assert_eq!(get().await.unwrap().status(), 200);
    assert!(
        w.gate
            .release(&UserId::new("casual02"), ReleaseReason::Cleanup)
            .await
    );
    // Unlicensed, Jira would answer 401 without naming anyone; iumgate knows
    // the token and grants the seat before forwarding.
    let r = get().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ausername"], "casual02");
    assert!(w.holds("casual02"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_first_learned_from_the_response_is_admitted_and_sent_back_to_retry() {
    let w = World::jira().await;
    // A session iumgate has never seen (e.g. an SSO login), of a casual user
    // whom an admin put into the access group by hand since the last reconcile.
    w.sim.add_to_group("casual05", "IUM_access_software");
    let session = session_behind_the_gates_back(&w, "/login.jsp", "casual05").await;
    let r = no_redirect()
        .get(w.url("/browse/DEMO-4"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        307,
        "the client repeats the request, now licensed"
    );
    assert_eq!(r.headers()["location"], "/browse/DEMO-4");
    assert!(w.holds("casual05"));
    // From now on the session is known before forwarding.
    let r = reqwest::Client::new()
        .get(w.url("/browse/DEMO-4"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_drops_holders_removed_by_hand_and_adopts_holders_added_by_hand() {
    let w = World::jira().await;
    fill(&w, &["casual01", "casual02"]).await;
    w.sim.remove_from_group("casual01", "IUM_access_software");
    w.sim.add_to_group("casual09", "IUM_access_software");
    w.advance_min(1);
    let report = w.gate.reconcile().await.unwrap();
    assert_eq!(report.dropped, vec![UserId::new("casual01")]);
    assert_eq!(report.adopted, vec![UserId::new("casual09")]);
    assert!(!w.holds("casual01"));
    assert!(w.holds("casual09"));
    assert_eq!(w.in_use(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exempt_users_pass_untouched() {
    let w = World::start(
        iumgate::product::Product::Jira,
        |_| {},
        |cfg| cfg.ium.exempt_users = vec!["Casual03".into()],
    )
    .await;
    let (c, _) = browser();
    let (status, path, _) = text(jira_login(&w, &c, "casual03", "demo", false).await).await;
    // Unmanaged: no seat is granted, so Jira refuses the login by itself.
    assert_eq!((status, path.as_str()), (200, "/login.jsp"));
    assert!(w.sim.group_writes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_tier_above_the_apps_own_seat_count_is_capped_by_it() {
    let w = World::start(
        iumgate::product::Product::Jira,
        |_| {},
        |cfg| cfg.licence.tier = iumgate::config::Tier::Fixed(20),
    )
    .await;
    let a = w.gate.arithmetic();
    assert_eq!(
        (a.tier, a.capacity),
        (10, 7),
        "the app allows 10 seats, not 20"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_tabs_polling_never_takes_a_colleagues_seat() {
    let w = World::jira().await;
    let clients = fill(&w, &SEVEN).await;
    w.advance_min(31);
    // casual08 takes casual01's seat; everyone else is idle past min_idle too.
    let (c8, _) = browser();
    let (_, path, _) = text(jira_login(&w, &c8, "casual08", "demo", false).await).await;
    assert_eq!(path, "/browse/DEMO-1");
    assert!(!w.holds("casual01"));
    // casual01's forgotten tab keeps polling: no colleague loses a seat.
    for _ in 0..3 {
        let r = clients[0]
            .get(w.url("/rest/mywork/1.0/notification/count"))
            .header("accept", "application/json")
            .header("x-requested-with", "XMLHttpRequest")
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 503);
    }
    assert_eq!(w.access_members().len(), 7);
    assert!(!w.holds("casual01"));
    for u in &SEVEN[1..] {
        assert!(w.holds(u), "{u} kept the seat");
    }
    // When casual01 really opens an issue, the idlest colleague's seat goes.
    let r = clients[0]
        .get(w.url("/browse/DEMO-3"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(w.holds("casual01"));
}
