//! `iumgate analyze` per pool (issue 20), on hand-computable logs: each line counts for the
//! pool its path needs (the customer portal for none), Service Management's queue and SLA
//! refreshes are not activity, each pool is replayed against its own seats, a logout ends a
//! user's sessions in every pool, and without pools every output is byte-identical to the
//! single-pool analysis.

use crate::analyze_support::*;
use iumgate::analyze::pools::{PoolDef, DEFAULT_POOL};
use iumgate::analyze::{
    render_html, render_pools_html, render_pools_text, render_text, Analyzer, Options, PoolsReport,
    Report,
};
use std::collections::BTreeSet;
use std::time::Duration;

const REQUEST: &str = "/rest/servicedeskapi/request/HELP-1";
const QUEUE_PAGE: &str = "/jira/servicedesk/projects/HELP/queues/custom/1";
const QUEUE_REFRESH: &str = "/rest/servicedesk/1/servicedesk/HELP/queues/1/issues";
const SLA_REFRESH: &str = "/rest/servicedeskapi/request/HELP-1/sla";
const PORTAL: &str = "/servicedesk/customer/portal/1";

fn opts(pools: Vec<PoolDef>) -> Options {
    Options {
        min_idle: Duration::from_secs(30 * 60),
        retry_every: Duration::from_secs(10),
        seats: Some(vec![1, 2, 3]),
        pools,
        ..Options::default()
    }
}

fn service() -> PoolDef {
    PoolDef {
        seats: Some(vec![1, 2, 3]),
        ..PoolDef::service_management()
    }
}

fn read(lines: &[String], opts: Options) -> Analyzer {
    let mut a = Analyzer::new(opts).unwrap();
    let text = lines.join("\n");
    a.read("pools.log", std::io::Cursor::new(text.into_bytes()))
        .unwrap();
    a
}

fn pools(lines: &[String], opts: Options) -> PoolsReport {
    read(lines, opts).finish_pools()
}

fn users_of(r: &Report) -> BTreeSet<&str> {
    r.users.iter().map(|u| u.user.as_str()).collect()
}

fn pool<'a>(r: &'a PoolsReport, name: &str) -> &'a Report {
    &r.pool(name).unwrap().report
}

fn at(hh: u32, mm: u32) -> String {
    format!("{hh:02}:{mm:02}:00")
}

/// Software users, agents, a user of both and portal customers in one log.
fn mixed() -> Vec<String> {
    vec![
        jira_line(&at(9, 0), "ann", "GET", "/browse/ABC-1"),
        jira_line(&at(9, 5), "ann", "GET", QUEUE_PAGE),
        jira_line(&at(9, 6), "ann", "GET", QUEUE_REFRESH),
        jira_line(&at(9, 0), "cid", "GET", PORTAL),
        jira_line(
            &at(9, 1),
            "cid",
            "POST",
            "/servicedesk/customer/portal/1/create/10",
        ),
        jira_line(&at(9, 2), "-", "GET", PORTAL),
        jira_line(&at(10, 0), "bob", "GET", REQUEST),
        jira_line(&at(10, 1), "bob", "POST", &format!("{REQUEST}/comment")),
        jira_line(&at(10, 2), "bob", "GET", "/servicedesk/agent/HELP"),
        jira_line(&at(11, 0), "dan", "PUT", "/rest/api/2/issue/ABC-2"),
        jira_line(&at(11, 1), "-", "GET", "/s/batch.js"),
    ]
}

#[test]
fn each_line_counts_for_the_pool_its_path_needs_and_the_portal_for_none() {
    let r = pools(&mixed(), opts(vec![service()]));
    assert!(r.pooled);
    let names: Vec<&str> = r.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, [DEFAULT_POOL, "service"]);
    assert!(r.pools[0].needs.is_empty());
    let (default, svc) = (pool(&r, DEFAULT_POOL), pool(&r, "service"));
    assert_eq!(users_of(default), BTreeSet::from(["ann", "dan"]));
    assert_eq!(users_of(svc), BTreeSet::from(["ann", "bob"]));
    assert_eq!(
        r.totals.no_seat_requests, 3,
        "two portal lines of cid, one anonymous"
    );
    assert_eq!(r.totals.users, 3, "cid, a portal customer, is in no pool");
    assert_eq!(r.totals.requests, 11);
    assert_eq!(
        (default.totals.requests, default.totals.anonymous_requests),
        (3, 1)
    );
    assert_eq!(svc.totals.requests, 5);
    // The whole input's line counts and period, in every pool.
    assert_eq!(default.totals.lines, 11);
    assert_eq!(svc.totals.lines, 11);
    assert_eq!(default.period.as_ref().unwrap().first, "2024-03-05 09:00");
    // ann's queue page load is activity, her queue refresh is not; bob's request view and
    // comment are, and so is an agent page outside the portal.
    let ann = svc.users.iter().find(|u| u.user == "ann").unwrap();
    assert_eq!((ann.requests, ann.activity_requests), (2, 1));
    let bob = svc.users.iter().find(|u| u.user == "bob").unwrap();
    assert_eq!((bob.requests, bob.activity_requests), (3, 2));
}

#[test]
fn queue_and_sla_refreshes_never_keep_an_agent_seat_but_working_requests_does() {
    // dave opens one request at 09:00 and leaves his queue tab open all day; erin works
    // requests every 10 minutes from 09:00 to 17:00.
    let mut lines = vec![jira_line(&at(9, 0), "dave", "GET", REQUEST)];
    for m in 1..=8 * 60 {
        let (hh, mm) = (9 + m / 60, m % 60);
        lines.push(jira_line(&at(hh, mm), "dave", "GET", QUEUE_REFRESH));
        if m % 5 == 0 {
            lines.push(jira_line(&at(hh, mm), "dave", "GET", SLA_REFRESH));
        }
        if m % 10 == 0 {
            lines.push(jira_line(&at(hh, mm), "erin", "GET", REQUEST));
        }
    }
    let r = pools(&lines, opts(vec![service()]));
    let svc = pool(&r, "service");
    let dave = svc.users.iter().find(|u| u.user == "dave").unwrap();
    assert_eq!(dave.activity_requests, 1);
    assert!(
        (dave.busy_hours_per_day_seen - 0.5).abs() < 1e-9,
        "busy only until min_idle after his one request: {dave:?}"
    );
    assert!(!dave.heavy);
    let erin = svc.users.iter().find(|u| u.user == "erin").unwrap();
    assert!(erin.heavy, "{erin:?}");
    assert_eq!(svc.power_users, ["erin"]);
    assert!(
        pool(&r, DEFAULT_POOL).users.is_empty(),
        "agent traffic needs no software seat"
    );
}

#[test]
fn the_service_pool_can_be_full_while_the_software_pool_has_room() {
    // One seat each. ann and bob work requests at the same time, so bob waits for an agent
    // seat until ann has been idle 30 minutes (09:10 → 09:40); on the software side they
    // come hours apart and nobody waits.
    let lines = [
        jira_line(&at(9, 0), "ann", "GET", REQUEST),
        jira_line(&at(9, 5), "bob", "GET", REQUEST),
        jira_line(&at(9, 10), "ann", "GET", REQUEST),
        jira_line(&at(9, 0), "ann", "GET", "/browse/ABC-1"),
        jira_line(&at(13, 0), "bob", "GET", "/browse/ABC-1"),
    ];
    let one = PoolDef {
        seats: Some(vec![1]),
        ..PoolDef::service_management()
    };
    let r = pools(
        &lines,
        Options {
            seats: Some(vec![1]),
            ..opts(vec![one])
        },
    );
    let svc = &pool(&r, "service").simulation[0];
    assert_eq!((svc.seats, svc.logins, svc.waited), (1, 2, 1));
    assert!(
        (svc.mean_wait_s - 35.0 * 60.0).abs() <= 10.0,
        "bob waits from 09:05 to 09:40: {svc:?}"
    );
    let default = &pool(&r, DEFAULT_POOL).simulation[0];
    assert_eq!((default.seats, default.logins, default.waited), (1, 2, 0));
    // One agent seat is all that was simulated, and it misses the 1% target.
    assert!(!pool(&r, "service").recommendation.meets_target);
    assert!(pool(&r, DEFAULT_POOL).recommendation.meets_target);
}

#[test]
fn each_pool_has_its_own_idle_time_tier_and_reserved_seats() {
    let lines = [
        jira_line(&at(9, 0), "ann", "GET", REQUEST),
        jira_line(&at(9, 0), "ann", "GET", "/browse/ABC-1"),
    ];
    let svc = PoolDef {
        min_idle: Some(Duration::from_secs(10 * 60)),
        tier: Some(4),
        reserved: 1,
        ..service()
    };
    let r = pools(
        &lines,
        Options {
            tier: Some(20),
            ..opts(vec![svc])
        },
    );
    let (default, service) = (pool(&r, DEFAULT_POOL), pool(&r, "service"));
    assert_eq!((default.min_idle_s, service.min_idle_s), (1800, 600));
    let busy = |rep: &Report| rep.users[0].busy_hours_per_day_seen;
    assert!((busy(default) - 0.5).abs() < 1e-9 && (busy(service) - 1.0 / 6.0).abs() < 1e-9);
    let (dc, sc) = (
        default.recommendation.current.as_ref().unwrap(),
        service.recommendation.current.as_ref().unwrap(),
    );
    assert_eq!((dc.tier, dc.shared_seats), (20, 20));
    assert_eq!((sc.tier, sc.shared_seats), (4, 3), "tier 4 − 1 reserved");
    assert_eq!(service.recommendation.reserved, 1);
    assert_eq!(default.recommendation.reserved, 0);
}

#[test]
fn a_logout_gives_back_the_users_seats_in_every_pool() {
    // ann works a request, opens an issue and logs out at 09:02; bob's request at 09:10
    // finds the one agent seat free. Without the logout he would wait until 09:30.
    let base = vec![
        jira_line(&at(9, 0), "ann", "GET", REQUEST),
        jira_line(&at(9, 1), "ann", "GET", "/browse/ABC-1"),
        jira_line(&at(9, 10), "bob", "GET", REQUEST),
    ];
    let one = || PoolDef {
        seats: Some(vec![1]),
        ..PoolDef::service_management()
    };
    let mut with_logout = base.clone();
    with_logout.insert(
        2,
        jira_line(&at(9, 2), "ann", "GET", "/secure/Logout!default.jspa"),
    );
    let r = pools(&with_logout, opts(vec![one()]));
    assert_eq!(pool(&r, "service").simulation[0].waited, 0);
    let r = pools(&base, opts(vec![one()]));
    let s = &pool(&r, "service").simulation[0];
    assert_eq!(s.waited, 1);
    assert!((s.mean_wait_s - 20.0 * 60.0).abs() <= 10.0, "{s:?}");
}

#[test]
fn the_first_pool_whose_needs_match_takes_the_line() {
    let api = PoolDef::new("api", &[r"^[A-Z]+ /rest/servicedeskapi/"]);
    let r = pools(&mixed(), opts(vec![api, service()]));
    let names: Vec<&str> = r.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, [DEFAULT_POOL, "api", "service"]);
    assert_eq!(users_of(pool(&r, "api")), BTreeSet::from(["bob"]));
    assert_eq!(pool(&r, "api").totals.requests, 2);
    assert_eq!(
        users_of(pool(&r, "service")),
        BTreeSet::from(["ann", "bob"])
    );
    assert_eq!(pool(&r, "service").totals.requests, 3);
}

#[test]
fn without_pools_every_output_is_the_single_pool_analysis_byte_for_byte() {
    let lines = mixed();
    let single = read(&lines, opts(vec![])).finish();
    let pooled = read(&lines, opts(vec![])).finish_pools();
    assert!(!pooled.pooled);
    assert_eq!(pooled.pools.len(), 1);
    // Portal lines count as today: every request is the default pool's.
    assert_eq!(single.totals.requests, 11);
    assert_eq!(pooled.totals.no_seat_requests, 0);
    assert_eq!(render_pools_text(&pooled), render_text(&single));
    assert_eq!(render_pools_html(&pooled), render_html(&single));
    assert_eq!(
        pooled.to_json().unwrap(),
        serde_json::to_value(&single).unwrap()
    );
    // And finish() with pools is the default pool's report.
    let with = read(&lines, opts(vec![service()])).finish();
    assert_eq!(users_of(&with), BTreeSet::from(["ann", "dan"]));
}

#[test]
fn text_html_and_json_show_every_pool() {
    let r = pools(&mixed(), opts(vec![service()]));
    let text = render_pools_text(&r);
    assert!(text.starts_with("iumgate analyze — jira access logs, 2 pools\n"));
    assert!(text.contains("3 need no seat (customer portal)"));
    assert!(text.contains("== pool default (every seat-needing request no other pool claims) =="));
    assert!(text.contains("== pool service (needs ^[A-Z]+ /jira/servicedesk/"));
    assert_eq!(text.matches("Recommendation: ").count(), 2);

    let html = render_pools_html(&r);
    assert!(html.contains("<table id=\"pools\">"));
    for name in ["default", "service"] {
        assert!(
            html.contains(&format!("<section id=\"pool-{name}\"")),
            "{name}"
        );
        for chart in ["seats", "waits", "heavy"] {
            assert!(
                html.contains(&format!("id=\"pool-{name}-chart-{chart}\"")),
                "{name} {chart}"
            );
        }
    }
    // Element ids stay unique on the page.
    let ids: Vec<&str> = html
        .match_indices(" id=\"")
        .map(|(i, _)| {
            let rest = &html[i + 5..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "{ids:?}");
    assert!(html.ends_with("</body></html>\n"));

    let json = r.to_json().unwrap();
    assert_eq!(json["pooled"], true);
    assert_eq!(json["totals"]["no_seat_requests"], 3);
    assert_eq!(json["pools"][1]["name"], "service");
    assert_eq!(
        json["pools"][1]["needs"][3],
        "^[A-Z]+ /servicedesk/(?!customer/)"
    );
    assert!(json["pools"][1]["report"]["recommendation"]["shared_seats"].is_u64());
}

#[test]
fn bad_pool_definitions_are_refused_with_the_reason() {
    let err = |pools: Vec<PoolDef>| match Analyzer::new(opts(pools)) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    let e = err(vec![PoolDef::new("default", &["^GET /x"])]);
    assert!(e.contains("name is taken"), "{e}");
    let e = err(vec![service(), service()]);
    assert!(e.contains("pool `service`") && e.contains("taken"), "{e}");
    let e = err(vec![PoolDef::new("empty", &[])]);
    assert!(e.contains("`needs` is empty"), "{e}");
    let e = err(vec![PoolDef::new("ahead", &["^GET /(?=x)"])]);
    assert!(e.contains("look-around"), "{e}");
    let e = err(vec![PoolDef::new("bad", &["^GET /(x"])]);
    assert!(e.contains("pool `bad`") && e.contains("^GET /(x"), "{e}");
    let e = err(vec![PoolDef {
        min_idle: Some(Duration::ZERO),
        ..service()
    }]);
    assert!(e.contains("min_idle"), "{e}");
    let e = err(vec![PoolDef::new(" ", &["^GET /x"])]);
    assert!(e.contains("needs a name"), "{e}");
}

#[test]
fn activity_rules_are_each_pools_own() {
    // The same agent traffic, in a Service Management pool (its activity rules) and in a
    // plain pool with the same needs (the product's rules only, like the proxy's pool of
    // another application): only the first counts a request view as activity.
    let lines = [
        jira_line(&at(9, 0), "ann", "GET", REQUEST),
        jira_line(&at(9, 1), "ann", "GET", QUEUE_REFRESH),
        jira_line(&at(9, 2), "ann", "GET", "/browse/ABC-1"),
    ];
    let r = pools(&lines, opts(vec![service()]));
    assert_eq!(pool(&r, "service").totals.activity_requests, 1);
    let plain = PoolDef::new("plain", iumgate::analyze::pools::SERVICE_MANAGEMENT_NEEDS);
    let r = pools(&lines, opts(vec![plain]));
    assert_eq!(pool(&r, "plain").totals.activity_requests, 0);
    assert_eq!(pool(&r, DEFAULT_POOL).totals.activity_requests, 1);
    // A pool's own rule that does not compile names the pool.
    let bad = PoolDef {
        activity_include: vec!["^GET /(".into()],
        ..service()
    };
    match Analyzer::new(Options {
        product: Some(iumgate::product::Product::Jira),
        ..opts(vec![bad])
    }) {
        Ok(_) => panic!("accepted"),
        Err(e) => assert!(
            e.to_string().contains("pool `service`: activity rule"),
            "{e}"
        ),
    }
}
