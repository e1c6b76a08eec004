//! `/metrics`, `/status` and `/` on the admin listener, against iumgate in
//! front of the Jira simulator (demo world: 10 seats − 3 power users = 7).

use crate::admin_support::*;
use base64::Engine;
use iumgate::user::UserId;

fn v(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_a_full_pool_a_waiter_and_one_eviction() {
    let w = start(|_| {}).await;
    let gate = w.gate();

    // Seven casual users take the seven shared seats.
    let mut clients = Vec::new();
    for i in 1..=7 {
        let user = format!("casual{i:02}");
        let (c, r) = w.login(&user).await;
        assert!(r.status().is_redirection(), "{user}: {}", r.status());
        assert!(gate.holds(&UserId::new(&user)), "{user} holds a seat");
        clients.push(c);
    }

    // Three minutes on, everyone but casual01 works on an issue.
    w.clock.advance(180_000);
    for c in &clients[1..] {
        let r = c
            .get(format!("{}/browse/DEMO-1", w.proxy))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    // casual08 logs in: casual01 has been idle longer than min_idle and loses the seat.
    let (_c8, _) = w.login("casual08").await;
    assert!(gate.holds(&UserId::new("casual08")));
    assert!(!gate.holds(&UserId::new("casual01")));

    // casual09 logs in: nobody has been idle long enough, so casual09 waits.
    let (c9, r9) = w.login("casual09").await;
    assert_eq!(r9.status(), 303);
    let to = r9.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with("/iumgate/wait"), "{to}");

    let m = w.metrics().await;
    assert_eq!(v(&m, "iumgate_seats_capacity{pool=\"default\"}"), 7.0);
    assert_eq!(v(&m, "iumgate_seats_in_use{pool=\"default\"}"), 7.0);
    assert_eq!(v(&m, "iumgate_queue_length{pool=\"default\"}"), 1.0);
    assert_eq!(v(&m, "iumgate_seats_tier{pool=\"default\"}"), 10.0);
    assert_eq!(v(&m, "iumgate_seats_fixed{pool=\"default\"}"), 3.0);
    assert_eq!(v(&m, "iumgate_seats_reserved{pool=\"default\"}"), 0.0);
    assert_eq!(
        v(
            &m,
            "iumgate_releases_total{pool=\"default\",reason=\"eviction\"}"
        ),
        1.0
    );
    assert_eq!(
        v(
            &m,
            "iumgate_admissions_total{pool=\"default\",result=\"granted_by_eviction\"}"
        ),
        1.0
    );
    assert_eq!(
        v(
            &m,
            "iumgate_admissions_total{pool=\"default\",result=\"granted\"}"
        ),
        7.0
    );
    assert!(
        v(
            &m,
            "iumgate_admissions_total{pool=\"default\",result=\"waited\"}"
        ) >= 1.0
    );
    // 7 grants + 1 grant after the eviction (the start-up diagnostics may
    // add one idempotent probe of their own); 1 removal (the eviction).
    let grants = w
        .sim
        .group_writes()
        .iter()
        .filter(|(op, _, g)| op == "add" && g == "IUM_access_software")
        .count();
    assert_eq!(grants, 8);
    let adds = v(
        &m,
        "iumgate_directory_calls_total{op=\"add_to_group\",result=\"ok\"}",
    );
    assert!((8.0..=9.0).contains(&adds), "{adds}");
    assert_eq!(
        v(
            &m,
            "iumgate_directory_calls_total{op=\"remove_from_group\",result=\"ok\"}"
        ),
        1.0
    );
    assert!(
        v(
            &m,
            "iumgate_directory_calls_total{op=\"group_members\",result=\"ok\"}"
        ) >= 3.0
    );
    assert!(
        v(
            &m,
            "iumgate_proxy_request_duration_seconds_count{class=\"2xx\"}"
        ) >= 6.0
    );
    assert!(
        v(
            &m,
            "iumgate_proxy_request_duration_seconds_count{class=\"3xx\"}"
        ) >= 9.0
    );
    assert!(v(&m, "iumgate_sessions_tracked") >= 8.0);
    assert_eq!(v(&m, "iumgate_gate_reconciled{pool=\"default\"}"), 1.0);
    assert_eq!(v(&m, "iumgate_ready"), 1.0);
    assert_eq!(
        v(&m, "iumgate_queue_wait_seconds_count{pool=\"default\"}"),
        0.0
    );
    assert!(
        v(
            &m,
            "iumgate_job_last_success_timestamp_seconds{job_name=\"reconcile\",pool=\"default\"}"
        ) > 0.0
    );
    // No user name ever appears in the metrics.
    assert!(
        !m.lines()
            .any(|l| l.contains("casual") && !l.starts_with('#')),
        "a user name leaked into /metrics:\n{m}"
    );
    // The upstream never had more licensed casual users than shared seats.
    assert!(w.sim.peak_members("IUM_access_software") <= 7);

    // 150 s later the holders are idle enough: casual09's waiting page polls
    // and gets a seat. The wait it had is observed once.
    w.clock.advance(150_000);
    let poll: serde_json::Value = c9
        .get(format!("{}/iumgate/api/queue", w.proxy))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(poll["state"], "admitted", "{poll}");
    let m = w.metrics().await;
    assert_eq!(v(&m, "iumgate_queue_length{pool=\"default\"}"), 0.0);
    assert_eq!(
        v(&m, "iumgate_queue_wait_seconds_count{pool=\"default\"}"),
        1.0
    );
    assert_eq!(
        v(&m, "iumgate_queue_wait_seconds_sum{pool=\"default\"}"),
        150.0
    );
    assert_eq!(
        v(
            &m,
            "iumgate_queue_wait_seconds_bucket{pool=\"default\",le=\"120\"}"
        ),
        0.0
    );
    assert_eq!(
        v(
            &m,
            "iumgate_queue_wait_seconds_bucket{pool=\"default\",le=\"300\"}"
        ),
        1.0
    );
    assert_eq!(
        v(
            &m,
            "iumgate_releases_total{pool=\"default\",reason=\"eviction\"}"
        ),
        2.0
    );
    w.running.begin_drain();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_needs_the_token_and_then_lists_holders_idle_first() {
    let w = start(|_| {}).await;
    let (_c1, _) = w.login("casual01").await;
    let (c2, _) = w.login("casual02").await;
    w.clock.advance(60_000);
    let r = c2
        .get(format!("{}/browse/DEMO-1", w.proxy))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    w.clock.advance(5_000);

    let http = reqwest::Client::new();
    let url = format!("{}/status", w.admin);
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert!(!r.text().await.unwrap().contains("casual"));
    let r = http
        .get(&url)
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let st: serde_json::Value = r.json().await.unwrap();
    let holders = st["holders"].as_array().unwrap();
    assert_eq!(holders.len(), 2, "{st}");
    // Longest idle first: the next seat to go.
    assert_eq!(holders[0]["user"], "casual01");
    assert_eq!(holders[0]["idle_s"], 65);
    assert_eq!(holders[0]["since_ms"], T0);
    assert_eq!(holders[1]["user"], "casual02");
    assert_eq!(holders[1]["idle_s"], 5);
    assert_eq!(st["seats"]["capacity"], 7);
    assert_eq!(st["seats"]["tier"], 10);
    assert_eq!(st["seats"]["fixed"], 3);
    assert_eq!(st["seats"]["in_use"], 2);
    assert_eq!(st["seats"]["free"], 5);
    assert_eq!(st["reconciled"], true);
    let jobs = st["jobs"].as_array().unwrap();
    let reconcile = jobs.iter().find(|j| j["job"] == "reconcile").unwrap();
    assert!(
        reconcile["last_success_ms"].as_u64().is_some(),
        "{reconcile}"
    );
    let recent = st["recent"].as_array().unwrap();
    assert!(recent
        .iter()
        .any(|e| e["kind"] == "granted" && e["user"] == "casual02"));

    // The HTML page: a Basic challenge for browsers, then the same facts.
    let page = format!("{}/", w.admin);
    let r = http.get(&page).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("Basic "), "{challenge}");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{TOKEN}"));
    let r = http
        .get(&page)
        .header("Authorization", format!("Basic {basic}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("casual01") && html.contains("casual02"));
    assert!(html.contains("Capacity 7 = tier 10 − 3 fixed-licence users − 0 reserved"));

    // Metrics are open by default.
    let r = http
        .get(format!("{}/metrics", w.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    w.running.begin_drain();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_the_token_too() {
    let w = start(|c| c.admin.metrics_need_token = true).await;
    let http = reqwest::Client::new();
    let url = format!("{}/metrics", w.admin);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    let r = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("iumgate_seats_capacity{pool=\"default\"} 7"));
    w.running.begin_drain();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_status_pages_are_off() {
    let w = start(|c| c.admin.token_file = None).await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/status", w.admin))
        .bearer_auth("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("token_env"));
    w.running.begin_drain();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_reload_changes_min_idle_message_and_tier() {
    let w = start(|_| {}).await;
    let gate = w.gate();
    let before = w.metrics().await;
    assert_eq!(v(&before, "iumgate_config_reload_success"), 1.0);

    let mut cfg = iumgate::demo::demo_config(
        iumgate::product::Product::Jira,
        &w.sim.url(),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        std::time::Duration::from_secs(600),
    );
    cfg.queue.message = Some("Back at 9".into());
    cfg.licence.tier = iumgate::config::Tier::Fixed(8);
    cfg.identity.max_sessions_per_user = 8;
    cfg.identity.max_sessions = 5_000;
    cfg.proxy.send_timeout = iumgate::config::Dur::secs(30);
    w.clock.advance(1_000);
    let report = w.running.reloader.apply(cfg).await.unwrap();
    assert!(
        report.applied.iter().any(|a| a.starts_with("ium.min_idle")),
        "{report:?}"
    );
    assert!(
        report.applied.iter().any(|a| a == "queue.message"),
        "{report:?}"
    );

    assert!(
        report
            .applied
            .iter()
            .any(|a| a.starts_with("identity.max_sessions")),
        "{report:?}"
    );
    assert_eq!(
        gate.sessions.limits(),
        iumgate::identity::Limits {
            per_user: 8,
            total: 5_000
        }
    );
    assert!(
        report
            .need_restart
            .iter()
            .any(|a| a.contains("send_timeout")),
        "{report:?}"
    );
    let s = gate.settings.load();
    assert_eq!(s.min_idle_ms, 600_000);
    assert_eq!(s.message.as_deref(), Some("Back at 9"));
    assert_eq!(gate.with_pool(|p| p.config().min_idle_ms), 600_000);
    // The tier change took effect through a reconcile: 8 − 3 fixed = 5.
    assert_eq!(gate.with_pool(|p| p.capacity()), 5);
    let m = w.metrics().await;
    assert_eq!(v(&m, "iumgate_config_reload_success"), 1.0);
    assert_eq!(
        v(&m, "iumgate_config_reload_success_timestamp_seconds"),
        (T0 + 1_000) as f64 / 1000.0
    );
    assert_eq!(v(&m, "iumgate_seats_capacity{pool=\"default\"}"), 5.0);

    // Without a config file a reload fails, changes nothing and says so.
    assert!(w.running.reloader.reload().await.is_err());
    let m = w.metrics().await;
    assert_eq!(v(&m, "iumgate_config_reload_success"), 0.0);
    assert_eq!(
        v(&m, "iumgate_config_reload_success_timestamp_seconds"),
        (T0 + 1_000) as f64 / 1000.0
    );
    assert_eq!(gate.settings.load().min_idle_ms, 600_000);
    w.running.begin_drain();
}
