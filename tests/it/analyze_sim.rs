//! The pool simulation on hand-computable logs (exact peaks and waits), the recommendation,
//! the HTML report's charts, and the `iumgate analyze` command end to end.

use crate::analyze_support::*;
use iumgate::analyze::{render_html, Analyzer, Options, Report};
use std::time::Duration;

fn run(lines: &[String], seats: Option<Vec<usize>>) -> Report {
    let mut a = Analyzer::new(Options {
        min_idle: Duration::from_secs(30 * 60),
        retry_every: Duration::from_secs(10),
        seats,
        ..Options::default()
    })
    .unwrap();
    let text = lines.join("\n");
    a.read("hand.log", std::io::Cursor::new(text.into_bytes()))
        .unwrap();
    a.finish()
}

fn browse(at: &str, user: &str) -> String {
    jira_line(at, user, "GET", "/browse/ABC-1")
}

#[test]
fn a_newcomer_waits_until_the_holder_has_been_idle_min_idle() {
    // One seat, min_idle 30 min. alice active 09:00–09:10; bob arrives 09:20 and waits until
    // alice has been idle 30 min (09:40), then takes her seat: a 20-minute wait. carol at
    // 10:30 finds bob idle for 50 min and takes his seat at once.
    let r = run(
        &[
            browse("09:00:00", "alice"),
            browse("09:10:00", "alice"),
            browse("09:20:00", "bob"),
            browse("10:30:00", "carol"),
        ],
        Some(vec![1, 2]),
    );
    let one = &r.simulation[0];
    assert_eq!(one.seats, 1);
    assert_eq!((one.logins, one.waited, one.evictions), (3, 1, 2));
    assert_eq!(
        (one.mean_wait_s, one.p95_wait_s, one.max_wait_s),
        (1200.0, 1200.0, 1200.0)
    );
    assert_eq!(one.peak_held, 1);
    assert!((one.wait_share - 1.0 / 3.0).abs() < 1e-9);
    // Two seats: nobody waits; carol evicts the longest idle (alice, since 09:10).
    let two = &r.simulation[1];
    assert_eq!(
        (two.logins, two.waited, two.evictions, two.peak_held),
        (3, 0, 1, 2)
    );
    // Demand: alice busy 09:00–09:40 and bob 09:20–09:50 overlap: two at once at the peak.
    assert_eq!(r.peak_demand, 2);
    assert_eq!(r.recommendation.shared_seats, 2);
}

#[test]
fn waiters_are_let_in_first_come_first_served() {
    // One seat. alice holds from 09:00; bob (09:05) and carol (09:06) queue. bob, first in the
    // queue, takes alice's seat at 09:30 (25 min wait); carol takes bob's when he has been
    // idle 30 min after his grant, at 10:00 (54 min wait).
    let r = run(
        &[
            browse("09:00:00", "alice"),
            browse("09:05:00", "bob"),
            browse("09:06:00", "carol"),
        ],
        Some(vec![1]),
    );
    let s = &r.simulation[0];
    assert_eq!(
        (s.logins, s.waited, s.evictions, s.still_waiting),
        (3, 2, 2, 0)
    );
    assert_eq!(s.mean_wait_s, (25.0 * 60.0 + 54.0 * 60.0) / 2.0);
    assert_eq!(s.p95_wait_s, 54.0 * 60.0);
}

#[test]
fn a_logout_gives_the_seat_back_at_once() {
    // As in the first case, but alice logs out at 09:15: bob gets her seat without waiting.
    let r = run(
        &[
            browse("09:00:00", "alice"),
            browse("09:10:00", "alice"),
            jira_line("09:15:00", "alice", "GET", "/secure/Logout!default.jspa"),
            browse("09:20:00", "bob"),
        ],
        Some(vec![1]),
    );
    let s = &r.simulation[0];
    assert_eq!((s.logins, s.waited, s.evictions), (2, 0, 0));
}

#[test]
fn non_activity_requests_never_hold_a_seat_busy() {
    // alice's tab polls every 5 minutes; only her one issue view counts. bob waits only until
    // 30 min after that view, as if the polling were not there.
    let mut timed = vec![("09:00:00".to_string(), browse("09:00:00", "alice"))];
    for m in (5..60).step_by(5) {
        let at = format!("09:{m:02}:00");
        let poll = jira_line(
            &at,
            "alice",
            "GET",
            "/rest/mywork/latest/notification/count",
        );
        timed.push((at, poll));
    }
    timed.push(("09:20:00".to_string(), browse("09:20:00", "bob")));
    timed.sort();
    let lines: Vec<String> = timed.into_iter().map(|(_, l)| l).collect();
    let r = run(&lines, Some(vec![1]));
    let s = &r.simulation[0];
    assert_eq!((s.waited, s.max_wait_s), (1, 600.0));
}

#[test]
fn the_sweep_finds_the_smallest_seat_count_under_the_target_and_the_tier() {
    let g = generate(
        &Shape {
            seed: 7,
            heavy: 4,
            casual: 80,
            days: 5,
            polling_tabs: false,
        },
        LogFormat::Jira,
    );
    let log = render_log(&g, LogFormat::Jira, 0);
    let mut a = Analyzer::new(Options {
        tier: Some(50),
        reserved: 3,
        ..Options::default()
    })
    .unwrap();
    a.read("j", std::io::Cursor::new(log.into_bytes())).unwrap();
    let r = a.finish();
    let rec = &r.recommendation;
    assert!(rec.meets_target);
    let at = |n: usize| r.simulation.iter().find(|s| s.seats == n).unwrap();
    // The recommended count meets the 1% target, one seat fewer does not (binary search).
    assert!(at(rec.shared_seats).wait_share <= 0.01);
    assert!(rec.shared_seats > 1);
    assert!(
        at(rec.shared_seats - 1).wait_share > 0.01,
        "{:?}",
        r.simulation
    );
    assert!(rec.shared_seats <= r.peak_demand);
    assert_eq!(rec.power_users, 4);
    assert_eq!(rec.users_needed, 4 + rec.shared_seats + 3);
    assert_eq!(
        rec.tier,
        iumgate::analyze::TIERS
            .iter()
            .copied()
            .find(|t| *t as usize >= rec.users_needed)
    );
    let cur = rec.current.as_ref().unwrap();
    assert_eq!((cur.tier, cur.shared_seats), (50, 50 - 4 - 3));
    // No count above the peak demand ever waits.
    let peak = at(r.peak_demand);
    assert_eq!(peak.waited, 0);
    assert!(r.simulation.windows(2).all(|w| w[0].seats < w[1].seats));
}

#[test]
fn the_html_report_holds_its_charts() {
    let g = generate(
        &Shape {
            seed: 3,
            heavy: 3,
            casual: 30,
            days: 5,
            polling_tabs: false,
        },
        LogFormat::Jira,
    );
    let mut a = Analyzer::new(Options::default()).unwrap();
    a.read(
        "j",
        std::io::Cursor::new(render_log(&g, LogFormat::Jira, 0).into_bytes()),
    )
    .unwrap();
    let r = a.finish();
    let html = render_html(&r);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg ").count(), 3);
    let chart = |id: &str| {
        let start = html
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} missing"));
        let end = start + html[start..].find("</svg>").unwrap();
        html[start..end].to_string()
    };
    let seats = chart("chart-seats");
    assert!(seats.contains("class=\"demand\"") && seats.contains("class=\"held\""));
    let points = |svg: &str, class: &str| {
        let at = svg.find(&format!("class=\"{class}\"")).unwrap();
        let p = &svg[at..];
        let p = &p[p.find("points=\"").unwrap() + 8..];
        p[..p.find('"').unwrap()].split(' ').count()
    };
    assert_eq!(points(&seats, "demand"), r.timeline.demand.len());
    assert!(r.timeline.held.iter().any(|n| *n > 0));
    let waits = chart("chart-waits");
    assert_eq!(waits.matches("<circle").count(), r.simulation.len());
    let heavy = chart("chart-heavy");
    assert!(heavy.matches("class=\"bar heavy\"").count() >= 1);
    assert!(heavy.contains("heavy ≥ 4.0 h"));
    for name in &r.power_users {
        assert!(html.contains(name.as_str()));
    }
    // Self-contained: nothing fetched.
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("<link"));
}

#[test]
fn the_command_writes_json_html_and_the_power_user_list() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(
        &Shape {
            seed: 11,
            heavy: 2,
            casual: 20,
            days: 5,
            polling_tabs: true,
        },
        LogFormat::Confluence,
    );
    let log = dir.path().join("conf_access_log.txt");
    std::fs::write(&log, render_log(&g, LogFormat::Confluence, 1)).unwrap();
    let html = dir.path().join("report.html");
    let power = dir.path().join("power.txt");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iumgate"))
        .arg("analyze")
        .arg(&log)
        .args(["--idle", "30m", "--tier", "100", "--json", "--html"])
        .arg(&html)
        .arg("--power-users")
        .arg(&power)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["product"], "confluence");
    assert_eq!(json["totals"]["malformed"], 1);
    assert_eq!(json["recommendation"]["current"]["tier"], 100);
    let listed: Vec<String> = std::fs::read_to_string(&power)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(listed, g.heavy);
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .contains("id=\"chart-waits\""));

    // The terminal summary names the recommendation.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iumgate"))
        .arg("analyze")
        .arg(&log)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("Recommendation:") && text.contains("heavy00"),
        "{text}"
    );
}
