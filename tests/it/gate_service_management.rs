//! Two seat pools through one iumgate (issue 20): Jira Software's (the
//! default, `[licence]` + `[ium]`) and Jira Service Management's agents
//! (`[pools.service]`), each within its own tier, in front of the simulated
//! Jira with both application roles, on real sockets.

use crate::gate_support::{browser, poll_queue, text, World};
use iumgate::config::{Config, Dur, PoolSection, Tier};
use iumgate::product::Product;
use iumgate::sim::{
    SimConfig, IUM_ACCESS_SERVICE, IUM_USER_SERVICE, SERVICE_DESK_ROLE, SERVICE_DESK_USERS,
};
use iumgate::user::UserId;
use std::sync::Arc;

const QUEUE: &str = "/jira/servicedesk/projects/HELP/queues/custom/1";
const QUEUE_REFRESH: &str = "/rest/servicedesk/1/servicedesk/HELP/queues/1/issues";
const REQUEST: &str = "/rest/servicedeskapi/request/HELP-1";
const PORTAL: &str = "/servicedesk/customer/portal/1";

fn service_pool(c: &mut Config) {
    c.pools.insert(
        "service".into(),
        PoolSection {
            application: SERVICE_DESK_ROLE.into(),
            tier: Tier::Auto,
            fixed_groups: vec![SERVICE_DESK_USERS.into()],
            reserved: 0,
            user_group: IUM_USER_SERVICE.into(),
            access_group: IUM_ACCESS_SERVICE.into(),
            min_idle: Dur::secs(30 * 60),
            needs: iumgate_analyze::pools::SERVICE_MANAGEMENT_NEEDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ..PoolSection::default()
        },
    );
}

/// The demo Jira with Service Management: software tier 10 (3 power users:
/// 7 seats), service tier 5 (`agent1` fixed: 4 seats).
async fn two_pools() -> World {
    let w = World::start(
        Product::Jira,
        |sc| *sc = SimConfig::demo_service_management(),
        service_pool,
    )
    .await;
    service_reconciled(&w).await;
    w
}

async fn service_reconciled(w: &World) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !service(w).is_reconciled() {
        assert!(
            std::time::Instant::now() < deadline,
            "the service pool reconciles"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn service_last_active(w: &World, user: &str) -> Option<u64> {
    service(w)
        .with_pool(|p| p.holders())
        .into_iter()
        .find(|h| h.user.as_str() == user)
        .map(|h| h.last_active)
}

fn service(w: &World) -> Arc<iumgate::gate::Gate> {
    w.gate.pools()[0].gate.clone()
}

fn holds_service(w: &World, user: &str) -> bool {
    service(w).holds(&UserId::new(user))
}

/// A form login through iumgate; the final answer (redirects followed).
async fn login_to(w: &World, c: &reqwest::Client, user: &str, dest: &str) -> (u16, String, String) {
    let r = c
        .post(w.url("/login.jsp"))
        .form(&[
            ("os_username", user),
            ("os_password", "demo"),
            ("os_destination", dest),
        ])
        .send()
        .await
        .unwrap();
    text(r).await
}

async fn get(w: &World, c: &reqwest::Client, path: &str) -> (u16, String, String) {
    text(c.get(w.url(path)).send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_pages_need_a_service_seat_and_software_pages_a_software_seat() {
    let w = two_pools().await;
    assert_eq!(
        service(&w).with_pool(|p| p.capacity()),
        4,
        "tier 5 − agent1"
    );
    assert_eq!(
        w.gate.with_pool(|p| p.capacity()),
        7,
        "tier 10 − 3 power users"
    );
    // An agent who is casual only in the service pool logs in to a queue:
    // the login takes a service seat (without one, Jira refuses the login).
    let (c, _) = browser();
    let (status, path, body) = login_to(&w, &c, "agent01", QUEUE).await;
    assert_eq!((status, path.as_str()), (200, QUEUE), "{body}");
    assert!(holds_service(&w, "agent01"));
    assert!(!w.holds("agent01"), "no software seat");
    assert_eq!(w.sim.members(IUM_ACCESS_SERVICE), ["agent01"]);
    assert!(w.access_members().is_empty());
    // Agent requests pass on the service seat.
    assert_eq!(get(&w, &c, REQUEST).await.0, 200);
    assert_eq!(get(&w, &c, QUEUE_REFRESH).await.0, 200);
    assert_eq!(w.sim.role_refusals(SERVICE_DESK_ROLE), 0);
    // A software user's login and pages take a software seat, never a
    // service one.
    let (s, _) = browser();
    let (status, path, _) = login_to(&w, &s, "casual01", "/browse/DEMO-1").await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
    assert!(w.holds("casual01") && !holds_service(&w, "casual01"));
    assert_eq!(w.sim.members(IUM_ACCESS_SERVICE), ["agent01"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_holds_both_seats_each_idle_on_its_own() {
    let w = two_pools().await;
    let (c, _) = browser();
    let (status, path, _) = login_to(&w, &c, "both1", "/browse/DEMO-1").await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
    assert!(w.holds("both1"));
    assert!(
        !holds_service(&w, "both1"),
        "no agent page yet: no service seat"
    );
    // The first agent page takes the service seat; the software one stays.
    assert_eq!(get(&w, &c, QUEUE).await.0, 200);
    assert!(holds_service(&w, "both1") && w.holds("both1"));
    let software_at = w.last_active("both1").unwrap();
    let service_at = |w: &World| {
        service(w)
            .with_pool(|p| p.holders())
            .into_iter()
            .find(|h| h.user.as_str() == "both1")
            .map(|h| h.last_active)
            .unwrap()
    };
    // Viewing a request is agent activity: it moves the service seat's
    // clock only.
    w.advance_min(10);
    assert_eq!(get(&w, &c, REQUEST).await.0, 200);
    assert_eq!(service_at(&w), w.gate.now());
    assert_eq!(w.last_active("both1"), Some(software_at));
    // A queue refresh (an open agent tab) is no activity at all.
    w.advance_min(10);
    let before = service_at(&w);
    assert_eq!(get(&w, &c, QUEUE_REFRESH).await.0, 200);
    assert_eq!(service_at(&w), before);
    // An issue view moves the software seat's clock only.
    assert_eq!(get(&w, &c, "/browse/DEMO-1").await.0, 200);
    assert_eq!(w.last_active("both1"), Some(w.gate.now()));
    assert_eq!(service_at(&w), before);
    // A logout frees both.
    let r = c
        .get(w.url("/secure/Logout!default.jspa"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert!(!w.holds("both1") && !holds_service(&w, "both1"));
    assert!(w.sim.members(IUM_ACCESS_SERVICE).is_empty());
    assert!(w.access_members().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_service_pool_makes_the_agent_wait_only_for_agent_pages() {
    let w = two_pools().await;
    let mut agents = Vec::new();
    for i in 1..=4 {
        let (c, _) = browser();
        let (status, path, _) = login_to(&w, &c, &format!("agent{i:02}"), QUEUE).await;
        assert_eq!((status, path.as_str()), (200, QUEUE), "agent{i:02}");
        agents.push(c);
    }
    assert_eq!(service(&w).with_pool(|p| p.in_use()), 4);
    // both2 logs in for software work: the software pool has room.
    let (c, _) = browser();
    let (status, path, _) = login_to(&w, &c, "both2", "/browse/DEMO-1").await;
    assert_eq!((status, path.as_str()), (200, "/browse/DEMO-1"));
    // An agent page: every agent is active, so both2 waits for a service seat…
    let (status, path, body) = get(&w, &c, QUEUE).await;
    assert_eq!((status, path.as_str()), (200, "/iumgate/wait"), "{body}");
    assert!(body.contains("<strong id=\"pos\">1</strong>"), "{body}");
    assert!(!holds_service(&w, "both2"));
    assert_eq!(service(&w).with_pool(|p| p.queue_len()), 1);
    assert_eq!(
        w.gate.with_pool(|p| p.queue_len()),
        0,
        "nobody waits for software"
    );
    // …while software pages go on.
    assert_eq!(get(&w, &c, "/browse/DEMO-1").await.0, 200);
    let v = poll_queue(&w, &c, "").await;
    assert_eq!(v["state"], "waiting", "{v}");
    assert_eq!(v["position"], 1, "{v}");
    // An agent logs out: the waiting page's poll lets both2 in, to the
    // service seat (not another software seat).
    let r = agents[0]
        .get(w.url("/secure/Logout!default.jspa"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let v = poll_queue(&w, &c, "").await;
    assert_eq!(v["state"], "admitted", "{v}");
    assert!(holds_service(&w, "both2"));
    assert_eq!(
        w.gate.with_pool(|p| p.in_use()),
        1,
        "still one software seat"
    );
    assert_eq!(get(&w, &c, QUEUE).await.0, 200);
    assert!(w.sim.peak_role_count(SERVICE_DESK_ROLE).unwrap() <= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_customers_never_take_a_seat() {
    let w = two_pools().await;
    // Customers (in no group at all) log in through the portal's own page.
    for i in 1..=3 {
        let (c, _) = browser();
        let user = format!("customer{i}");
        let r = c
            .post(w.url("/servicedesk/customer/user/login"))
            .form(&[
                ("os_username", user.as_str()),
                ("os_password", "demo"),
                ("destination", "portal/1"),
            ])
            .send()
            .await
            .unwrap();
        let (status, path, _) = text(r).await;
        assert_eq!((status, path.as_str()), (200, PORTAL), "{user}");
        let (status, _, body) = get(&w, &c, PORTAL).await;
        assert_eq!(status, 200);
        assert!(body.contains("IT Help"), "{body}");
        let (status, _, _) = get(&w, &c, "/servicedesk/customer/portals").await;
        assert_eq!(status, 200);
    }
    // A casual software user on the portal needs no seat either.
    let (c, _) = browser();
    let (status, path, _) = login_to(&w, &c, "casual05", PORTAL).await;
    assert_eq!((status, path.as_str()), (200, PORTAL));
    assert_eq!(w.in_use(), 1, "casual05's login took its software seat");
    assert_eq!(service(&w).with_pool(|p| p.in_use()), 0);
    assert!(w.sim.members(IUM_ACCESS_SERVICE).is_empty());
    let customers_seated = w
        .access_members()
        .iter()
        .filter(|u| u.starts_with("customer"))
        .count();
    assert_eq!(customers_seated, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pool_has_its_own_tier_check() {
    let w = two_pools().await;
    for i in 1..=4 {
        let (c, _) = browser();
        assert_eq!(
            login_to(&w, &c, &format!("agent{i:02}"), QUEUE).await.0,
            200
        );
        w.advance_min(1);
    }
    let (c, _) = browser();
    assert_eq!(login_to(&w, &c, "casual01", "/browse/DEMO-1").await.0, 200);
    // The service licence shrinks to 3 agent seats: 2 shared.
    w.sim.set_service_tier(3);
    w.advance_min(61);
    let jobs = w.gate.pools()[0]
        .jobs
        .get()
        .expect("the pool's jobs run")
        .clone();
    jobs.tick(w.gate.now()).await;
    let svc = service(&w);
    assert_eq!(svc.with_pool(|p| p.capacity()), 2);
    assert_eq!(
        w.sim.members(IUM_ACCESS_SERVICE),
        ["agent03", "agent04"],
        "the two longest idle agents lost their seats"
    );
    assert!(svc.alerts.is_active("pool_shrunk"));
    // The software pool is untouched.
    assert_eq!(w.gate.with_pool(|p| p.capacity()), 7);
    assert!(w.holds("casual01"));
    assert!(!w.gate.alerts.is_active("pool_shrunk"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_never_exceed_either_tier() {
    let w = Arc::new(two_pools().await);
    let mut tasks = Vec::new();
    let users: Vec<(String, &str)> = (1..=10)
        .map(|i| (format!("agent{i:02}"), QUEUE))
        .chain((1..=3).map(|i| (format!("both{i}"), QUEUE)))
        .chain((1..=12).map(|i| (format!("casual{i:02}"), "/browse/DEMO-1")))
        .collect();
    for (user, dest) in users {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let (c, _) = browser();
            let (status, path, _) = login_to(&w, &c, &user, dest).await;
            (status == 200 && path == dest, dest)
        }));
    }
    let (mut agents_in, mut software_in) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (true, QUEUE) => agents_in += 1,
            (true, _) => software_in += 1,
            _ => {}
        }
    }
    assert_eq!(agents_in, 4, "exactly the service seats");
    assert_eq!(software_in, 7, "exactly the software seats");
    assert!(w.sim.peak_role_count(SERVICE_DESK_ROLE).unwrap() <= 5);
    assert!(w.sim.peak_members("IUM_access_software") <= 7);
    assert!(w.sim.peak_members(IUM_ACCESS_SERVICE) <= 4);
    assert_eq!(w.sim.members(IUM_ACCESS_SERVICE).len(), 4);
}

/// Metrics carry a `pool` label (and no user label), the status page and
/// its JSON show each pool, alerts say which pool they are about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_status_show_each_pool() {
    let w = two_pools().await;
    let (c, _) = browser();
    assert_eq!(login_to(&w, &c, "agent01", QUEUE).await.0, 200);
    let (s, _) = browser();
    assert_eq!(login_to(&w, &s, "casual01", "/browse/DEMO-1").await.0, 200);
    w.sim.set_service_tier(2);
    w.advance_min(61);
    let jobs = w.gate.pools()[0].jobs.get().unwrap().clone();
    jobs.tick(w.gate.now()).await;
    let m = w
        .run
        .metrics
        .render(Some(&w.gate), &w.run.job_runs, &w.run.health);
    let value = |series: &str| {
        m.lines()
            .find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {series} in\n{m}"))
    };
    assert_eq!(value("iumgate_seats_capacity{pool=\"default\"}"), 7.0);
    assert_eq!(value("iumgate_seats_in_use{pool=\"default\"}"), 1.0);
    assert_eq!(value("iumgate_seats_capacity{pool=\"service\"}"), 1.0);
    assert_eq!(value("iumgate_seats_tier{pool=\"service\"}"), 2.0);
    assert_eq!(value("iumgate_seats_in_use{pool=\"service\"}"), 1.0);
    assert_eq!(
        value("iumgate_admissions_total{pool=\"service\",result=\"granted\"}"),
        1.0
    );
    assert_eq!(
        value("iumgate_alert_active{alert=\"pool_shrunk\",pool=\"service\"}"),
        1.0
    );
    assert_eq!(
        value("iumgate_alert_active{alert=\"pool_shrunk\",pool=\"default\"}"),
        0.0
    );
    assert!(m.contains(
        "iumgate_job_last_success_timestamp_seconds{job_name=\"reconcile\",pool=\"service\"}"
    ));
    assert!(m.contains("iumgate_queue_wait_seconds_count{pool=\"service\"}"));
    assert!(
        !m.contains("agent01") && !m.contains("casual01"),
        "no user labels"
    );
    // The status JSON and page.
    let st =
        iumgate::admin::status::collect(Some(&w.gate), &w.run.job_runs, &w.gate.alerts, true, 0);
    assert_eq!(st.pool, "default");
    assert_eq!(st.pools.len(), 1);
    let svc = &st.pools[0];
    assert_eq!(
        (svc.pool.as_str(), svc.application.as_str()),
        ("service", SERVICE_DESK_ROLE)
    );
    assert_eq!(svc.seats.capacity, 1);
    assert_eq!(svc.holders.len(), 1);
    assert_eq!(svc.holders[0].user.as_str(), "agent01");
    let shrunk = svc.alerts.iter().find(|a| a.key == "pool_shrunk").unwrap();
    assert!(
        shrunk.text.starts_with("Pool “service”: "),
        "{}",
        shrunk.text
    );
    assert!(!st.alerts.iter().any(|a| a.key == "pool_shrunk"));
    let html = iumgate::admin::status::render_html(&st);
    assert!(
        html.contains("Seats — pool “service” (jira-servicedesk)"),
        "{html}"
    );
    assert!(html.contains("id=\"holders-service\""));
    assert!(html.contains("id=\"capacity-service\">1<"));
}

/// The state snapshot keeps every pool: each in its own file
/// (`<state.path>.<name>`), restored before the pool's first reconcile, so
/// an agent's idle clock survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_every_pools_activity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let tweak = |path: std::path::PathBuf| {
        move |c: &mut Config| {
            service_pool(c);
            c.state.path = Some(path);
            c.state.snapshot_every = Dur::secs(3600);
        }
    };
    let w = World::start(
        Product::Jira,
        |sc| *sc = SimConfig::demo_service_management(),
        tweak(path.clone()),
    )
    .await;
    service_reconciled(&w).await;
    let (c, _) = browser();
    assert_eq!(login_to(&w, &c, "agent01", QUEUE).await.0, 200);
    w.advance_min(5);
    assert_eq!(get(&w, &c, REQUEST).await.0, 200);
    let active = service_last_active(&w, "agent01").unwrap();
    w.advance_min(20);
    let clock = w.clock.clone();
    let sim = w.stop().await;
    assert!(
        dir.path().join("state.json.service").exists(),
        "the pool's own snapshot"
    );
    let w = World::start_on(Product::Jira, sim, clock, tweak(path)).await;
    service_reconciled(&w).await;
    assert!(holds_service(&w, "agent01"));
    assert_eq!(
        service_last_active(&w, "agent01"),
        Some(active),
        "idle for 20 minutes, not since the restart"
    );
}

/// SIGHUP's reload reaches every pool: a pool's tier and `min_idle` change
/// live (its capacity follows at once), and the default pool is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_a_pools_tier_and_min_idle() {
    let w = two_pools().await;
    let any = "127.0.0.1:0".parse().unwrap();
    let mut cfg = iumgate::demo::demo_config(
        Product::Jira,
        &w.sim.url(),
        any,
        any,
        std::time::Duration::from_secs(30 * 60),
    );
    cfg.queue.abandon_after = Dur::secs(24 * 3600);
    service_pool(&mut cfg);
    let pool = cfg.pools.get_mut("service").unwrap();
    pool.tier = Tier::Fixed(3);
    pool.min_idle = Dur::secs(10 * 60);
    let report = w.run.reloader.apply(cfg).await.unwrap();
    assert!(
        report
            .applied
            .iter()
            .any(|a| a.starts_with("pools.service.licence.tier")),
        "{report:?}"
    );
    assert!(
        report
            .applied
            .iter()
            .any(|a| a.starts_with("pools.service.ium.min_idle")),
        "{report:?}"
    );
    assert!(report.need_restart.is_empty(), "{report:?}");
    let svc = service(&w);
    assert_eq!(svc.with_pool(|p| p.capacity()), 2, "tier 3 − agent1");
    assert_eq!(svc.with_pool(|p| p.config().min_idle_ms), 10 * 60 * 1000);
    assert_eq!(w.gate.with_pool(|p| p.capacity()), 7);
    assert_eq!(w.gate.with_pool(|p| p.config().min_idle_ms), 30 * 60 * 1000);
}

/// The nightly cleanup runs per pool: an agent deactivated in the app
/// leaves the service pool's groups and seat at 02:00; the software pool's
/// users are not the service pool's business.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pool_has_its_own_nightly_cleanup() {
    let w = two_pools().await;
    for i in 1..=3 {
        let (c, _) = browser();
        assert_eq!(
            login_to(&w, &c, &format!("agent{i:02}"), QUEUE).await.0,
            200
        );
    }
    let (c, _) = browser();
    assert_eq!(login_to(&w, &c, "casual01", "/browse/DEMO-1").await.0, 200);
    w.sim.set_active("agent03", false);
    w.sim.set_active("casual02", false);
    // The world's clock starts at 2027-01-15 08:00 UTC; the cleanup runs at
    // 02:00 (UTC, the default time zone) the next night.
    const NEXT_2AM_MS: u64 = (1_800_000_000 + 18 * 3600) * 1000;
    let jobs = w.gate.pools()[0].jobs.get().unwrap().clone();
    w.clock.set(NEXT_2AM_MS - 60_000);
    assert!(
        jobs.tick(w.gate.now()).await.cleanup.is_none(),
        "not before 02:00"
    );
    w.clock.set(NEXT_2AM_MS);
    jobs.tick(w.gate.now()).await;
    let report = jobs
        .last_runs()
        .cleanup
        .expect("the pool's cleanup ran at 02:00");
    assert_eq!(report.deactivated, vec![UserId::new("agent03")]);
    // (The seat itself may have gone a moment earlier, with the tier check
    // of the same tick: a deactivated user counts for no licence.)
    assert!(!holds_service(&w, "agent03"));
    assert_eq!(w.sim.members(IUM_ACCESS_SERVICE), ["agent01", "agent02"]);
    assert!(!w
        .sim
        .members(IUM_USER_SERVICE)
        .contains(&"agent03".to_string()));
    // casual02 is the default pool's: still in its user group.
    assert!(w
        .sim
        .members("IUM_user_software")
        .contains(&"casual02".to_string()));
    assert!(w.holds("casual01"));
}

/// Hostile: a Basic name is a claim. On an agent path it gets no seat of
/// the service pool — not with a wrong password, not with a colleague's
/// name, not even for one exchange — and moves nobody: the pool stays
/// exactly as it was, the directory untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_name_on_an_agent_path_costs_no_service_seat() {
    let w = two_pools().await;
    let mut agents = Vec::new();
    for i in 1..=4 {
        let (c, _) = browser();
        assert_eq!(
            login_to(&w, &c, &format!("agent{i:02}"), QUEUE).await.0,
            200
        );
        agents.push(c);
    }
    w.advance_min(60);
    let before = w.sim.members(IUM_ACCESS_SERVICE);
    for (user, password) in [("agent05", "wrong"), ("agent06", "demo"), ("both1", "x")] {
        for _ in 0..3 {
            let r = w.get_as(REQUEST, user, password).await;
            assert!(
                r.status() == 503 || r.status() == 429,
                "{user}: {}",
                r.status()
            );
        }
        assert!(!holds_service(&w, user));
    }
    assert_eq!(
        w.sim.members(IUM_ACCESS_SERVICE),
        before,
        "nobody was evicted"
    );
    assert_eq!(service(&w).with_pool(|p| p.queue_len()), 0, "nobody queued");
    let (admitted, evicted) = {
        let c = &service(&w).counters;
        (
            c.admit_granted.load(std::sync::atomic::Ordering::Relaxed),
            c.admit_evicted.load(std::sync::atomic::Ordering::Relaxed),
        )
    };
    assert_eq!((admitted, evicted), (4, 0));
}

/// A verified SAML login of an agent who is casual only in the service
/// pool takes a service seat before the app sees it (Jira refuses a login
/// with no role at all), and no software seat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_sso_login_of_an_agent_takes_a_service_seat() {
    let (_dir, cert) = crate::gate_saml::cert_file();
    let w = World::start(
        Product::Jira,
        |sc| *sc = SimConfig::demo_service_management(),
        |c: &mut Config| {
            service_pool(c);
            crate::gate_saml::verified(cert)(c);
        },
    )
    .await;
    service_reconciled(&w).await;
    crate::gate_saml::sync_clock(&w);
    w.sim.set_idp_user(Some("agent02"));
    let (c, _) = browser();
    let page = c
        .get(w.url("/plugins/servlet/external-login"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.url().path(), "/sim-idp/sso");
    let page = page.text().await.unwrap();
    let marker = "name=\"SAMLResponse\" value=\"";
    let start = page.find(marker).unwrap() + marker.len();
    let response = &page[start..start + page[start..].find('"').unwrap()];
    let r = c
        .post(w.url("/plugins/servlet/samlconsumer"))
        .form(&[("SAMLResponse", response), ("RelayState", QUEUE)])
        .send()
        .await
        .unwrap();
    assert_eq!((r.status().as_u16(), r.url().path()), (200, QUEUE));
    assert!(holds_service(&w, "agent02"));
    assert!(!w.holds("agent02"));
    assert_eq!(w.sim.members(IUM_ACCESS_SERVICE), ["agent02"]);
    assert!(w.access_members().is_empty());
}
