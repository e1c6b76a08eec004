//! `iumgate analyze` on generated logs of known shape: heavy users found exactly, every format
//! read (malformed lines counted, never fatal), gzip, several files out of order.

use crate::analyze_support::*;
use iumgate::analyze::{analyze_files, Analyzer, Options, Report};
use std::io::Write;

fn shape() -> Shape {
    Shape {
        seed: 42,
        heavy: 5,
        casual: 60,
        days: 10,
        polling_tabs: true,
    }
}

fn quick_opts() -> Options {
    Options {
        // A small fixed range keeps the tests fast; the sweep has its own test.
        seats: Some(vec![5, 10, 20]),
        ..Options::default()
    }
}

fn analyze_text(name: &str, text: &str, opts: Options) -> Report {
    let mut a = Analyzer::new(opts).unwrap();
    a.read(name, std::io::Cursor::new(text.as_bytes())).unwrap();
    a.finish()
}

#[test]
fn heavy_users_found_are_exactly_the_generated_ones() {
    let g = generate(&shape(), LogFormat::Jira);
    let r = analyze_text(
        "jira.log",
        &render_log(&g, LogFormat::Jira, 0),
        quick_opts(),
    );
    assert_eq!(r.power_users, g.heavy, "the recommended power users");
    assert_eq!(r.totals.users, g.heavy.len() + g.casual.len());
    assert_eq!(
        r.totals.casual_users + r.power_users.len(),
        r.totals.users - idle_only(&r)
    );
    // Heavy users are busy ~9 h a working day; casual ones far below the 4 h threshold even
    // though their polling tab hits the server all day (polling is not activity).
    for u in &r.users {
        if u.heavy {
            assert!(u.busy_hours_per_working_day > 8.0, "{u:?}");
            assert_eq!(u.days_seen, 10, "{u:?}");
            // Active 08:00–17:00 UTC, shown in the log's local time (UTC+1).
            let h = u.typical_hours.as_deref().unwrap();
            let (a, b): (u32, u32) = (h[..2].parse().unwrap(), h[h.len() - 2..].parse().unwrap());
            assert!(a >= 9 && b <= 18 && b - a >= 6, "{u:?}");
        } else {
            assert!(u.busy_hours_per_working_day < 2.0, "{u:?}");
        }
    }
    let p = r.period.as_ref().unwrap();
    assert_eq!((p.days, p.working_days, p.utc_offset_s), (12, 10, 3600));
}

/// Casual users who only ever polled hold no session and are not in the simulation.
fn idle_only(r: &Report) -> usize {
    r.users.iter().filter(|u| u.activity_requests == 0).count()
}

#[test]
fn a_lower_threshold_makes_more_heavy_users() {
    let g = generate(&shape(), LogFormat::Jira);
    let log = render_log(&g, LogFormat::Jira, 0);
    let strict = analyze_text("j", &log, quick_opts());
    let loose = analyze_text(
        "j",
        &log,
        Options {
            heavy_share: 0.01,
            ..quick_opts()
        },
    );
    assert!(loose.power_users.len() > strict.power_users.len());
    assert!(
        strict
            .heavy_rule
            .explanation
            .contains("4.0 h per working day"),
        "{}",
        strict.heavy_rule.explanation
    );
}

#[test]
fn every_format_parses_and_counts_malformed_lines() {
    let g = generate(&shape(), LogFormat::Jira);
    let mut results = Vec::new();
    for f in [LogFormat::Jira, LogFormat::Confluence, LogFormat::Bitbucket] {
        let g = generate(&shape(), f);
        let log = render_log(&g, f, 7);
        let r = analyze_text("access.log", &log, quick_opts());
        let file = &r.inputs[0];
        assert_eq!(
            file.format,
            format!("{f:?}").to_lowercase(),
            "detected format"
        );
        assert_eq!(file.malformed, 7, "{f:?}: malformed lines counted");
        assert_eq!(file.malformed_examples.len(), 3, "{f:?}: examples kept");
        assert_eq!(
            file.requests as usize,
            g.reqs.len(),
            "{f:?}: every request read"
        );
        if f == LogFormat::Bitbucket {
            assert_eq!(
                file.skipped as usize,
                g.reqs.len(),
                "{f:?}: incoming halves skipped"
            );
        }
        assert_eq!(r.power_users, g.heavy, "{f:?}");
        for u in &r.users {
            let want = g.activity.get(&u.user).copied().unwrap_or(0);
            assert_eq!(u.activity_requests, want, "{f:?}: activity of {}", u.user);
        }
        results.push(r.totals.activity_requests);
    }
    // The same shape in each format: same number of activity requests.
    assert!(results.iter().all(|n| *n == results[0]), "{results:?}");
    assert_eq!(results[0], g.activity.values().sum::<u64>());
}

#[test]
fn gzip_reads_like_plain() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(&shape(), LogFormat::Jira);
    let log = render_log(&g, LogFormat::Jira, 2);
    let plain = dir.path().join("access_log.2024-03-04");
    std::fs::write(&plain, &log).unwrap();
    let gz = dir.path().join("access_log.2024-03-04.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(log.as_bytes()).unwrap();
    enc.finish().unwrap();

    let a = analyze_files(&[plain], quick_opts()).unwrap();
    let b = analyze_files(&[gz], quick_opts()).unwrap();
    assert!(!a.inputs[0].gzip);
    assert!(b.inputs[0].gzip);
    assert_eq!(b.inputs[0].malformed, 2);
    assert_eq!(a.totals.lines, b.totals.lines);
    assert_eq!(a.power_users, b.power_users);
    assert_eq!(a.simulation, b.simulation);
}

#[test]
fn cluster_node_logs_in_any_order_give_the_same_answer() {
    let g = generate(&shape(), LogFormat::Jira);
    let whole = analyze_text("all", &render_log(&g, LogFormat::Jira, 0), quick_opts());
    // Two nodes, each with every other request; read the second node first.
    let mut nodes = [String::new(), String::new()];
    for (i, r) in g.reqs.iter().enumerate() {
        nodes[i % 2].push_str(&render(r, LogFormat::Jira, i));
        nodes[i % 2].push('\n');
    }
    let mut a = Analyzer::new(quick_opts()).unwrap();
    a.read("node2", std::io::Cursor::new(nodes[1].as_bytes()))
        .unwrap();
    a.read("node1", std::io::Cursor::new(nodes[0].as_bytes()))
        .unwrap();
    let split = a.finish();
    assert_eq!(split.power_users, whole.power_users);
    assert_eq!(split.totals.sessions, whole.totals.sessions);
    assert_eq!(split.simulation, whole.simulation);
}

#[test]
fn a_custom_pattern_reads_other_layouts() {
    let log = "2024-03-05T09:00:00Z alice GET /browse/A-1\n2024-03-05T09:05:00Z alice GET /browse/A-2\nnot matching\n";
    let r = analyze_text(
        "custom.log",
        log,
        Options {
            pattern: Some(r"^(?P<time>\S+) (?P<user>\S+) (?P<method>[A-Z]+) (?P<path>\S+)$".into()),
            ..quick_opts()
        },
    );
    assert_eq!(r.inputs[0].format, "custom");
    assert_eq!(r.inputs[0].malformed, 1);
    assert_eq!(r.users[0].activity_requests, 2);
}

#[test]
fn a_file_of_unknown_format_is_an_error_naming_it() {
    let mut a = Analyzer::new(Options::default()).unwrap();
    let e = a
        .read(
            "mystery.log",
            std::io::Cursor::new(b"foo\nbar\nbaz\n".as_slice()),
        )
        .unwrap_err();
    assert!(e.to_string().contains("mystery.log"), "{e}");
}
