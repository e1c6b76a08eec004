//! `iumgate audit report` (issue 21) against a trail computed by hand: two
//! replicas' files and a gzipped rotation, merged in time order; per day the
//! peak of seats in use against the capacity (the level a day begins with
//! included), "over capacity" when a line ever exceeded it, seat-hours per
//! user, evictions and waits; the HTML report with its chart; and the
//! filter (`iumgate audit --user --since --csv`).

use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::Command;

/// node-a's file: a seat held since October, two grants and a wait.
const NODE_A: &str = r#"{"ts":"2026-10-31T23:00:00.000Z","kind":"grant","pool":"default","user":"u1","reason":"free","in_use":1,"capacity":3,"node":"node-a"}
{"ts":"2026-11-01T08:00:00.000Z","kind":"grant","pool":"default","user":"u2","reason":"free","in_use":2,"capacity":3,"node":"node-a"}
{"ts":"2026-11-01T09:00:00.000Z","kind":"grant","pool":"default","user":"u3","reason":"free","in_use":3,"capacity":3,"node":"node-a"}
{"ts":"2026-11-01T09:30:00.000Z","kind":"queued","pool":"default","user":"u4","reason":"no_free_seat","position":1,"in_use":3,"capacity":3,"node":"node-a"}
"#;

/// node-b's file: the eviction for the waiter, its admission, a logout.
const NODE_B: &str = r#"{"ts":"2026-11-01T10:00:00.000Z","kind":"release","pool":"default","user":"u1","reason":"eviction","for":"u4","in_use":2,"capacity":3,"node":"node-b"}
{"ts":"2026-11-01T10:00:00.000Z","kind":"grant","pool":"default","user":"u4","reason":"evicted_for","victim":"u1","in_use":3,"capacity":3,"node":"node-b"}
{"ts":"2026-11-01T10:00:00.000Z","kind":"admitted","pool":"default","user":"u4","reason":"from_queue","waited_ms":1800000,"in_use":3,"capacity":3,"node":"node-b"}
{"ts":"2026-11-01T12:00:00.000Z","kind":"release","pool":"default","user":"u2","reason":"logout","in_use":2,"capacity":3,"node":"node-b"}
not a line of the trail
{"ts":"2026-11-02T10:00:00.000Z","kind":"grant","pool":"service","user":"agent1","reason":"free","in_use":9,"capacity":9,"node":"node-b"}
"#;

/// node-a's rotation of 3 November (gzipped): one seat above the capacity
/// for an hour, then the tier shrinks it away.
const NODE_A_ROTATED: &str = r#"{"ts":"2026-11-03T08:00:00.000Z","kind":"grant","pool":"default","user":"u5","reason":"free","in_use":3,"capacity":3,"node":"node-a"}
{"ts":"2026-11-03T09:00:00.000Z","kind":"grant","pool":"default","user":"u6","reason":"free","in_use":4,"capacity":3,"node":"node-a"}
{"ts":"2026-11-03T10:00:00.000Z","kind":"release","pool":"default","user":"u6","reason":"tier_shrink","in_use":3,"capacity":3,"node":"node-a"}
{"ts":"2026-12-02T10:00:00.000Z","kind":"grant","pool":"default","user":"u7","reason":"free","in_use":4,"capacity":4,"node":"node-a"}
"#;

fn trail_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("audit.node-a.jsonl"), NODE_A).unwrap();
    std::fs::write(dir.path().join("audit.node-b.jsonl"), NODE_B).unwrap();
    let gz = std::fs::File::create(dir.path().join("audit.node-a.jsonl.2026-11-03.1.gz")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
    enc.write_all(NODE_A_ROTATED.as_bytes()).unwrap();
    enc.finish().unwrap();
    dir
}

fn iumgate(args: &[&str], dir: &Path) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_iumgate"))
        .args(args)
        .arg(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

#[test]
fn the_monthly_report_merges_replicas_and_rotations_into_the_hand_computed_peaks() {
    let dir = trail_dir();
    let html = dir.path().join("report.html");
    let html_arg = html.to_string_lossy().into_owned();
    let (out, _) = iumgate(
        &[
            "audit", "report", "--month", "2026-11", "--json", "--html", &html_arg,
        ],
        dir.path(),
    );
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["month"], "2026-11");
    let days = r["days"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    let day = |d: usize| &days[d - 1];
    // 1 November: begins with u1's seat from October (1), peaks at 3 of 3.
    assert_eq!(day(1)["date"], "2026-11-01");
    assert_eq!(day(1)["peak_in_use"], 3);
    assert_eq!(day(1)["capacity"], 3);
    assert_eq!(day(1)["over_capacity"], false);
    assert_eq!(day(1)["grants"], 3);
    assert_eq!(day(1)["evictions"], 1);
    assert_eq!(day(1)["waits"], 1);
    assert_eq!(day(1)["admitted"], 1);
    assert_eq!(day(1)["mean_wait_s"], 1800.0);
    assert_eq!(day(1)["max_wait_s"], 1800.0);
    // 2 November: no line of this pool (the service pool's is not counted);
    // the level the day before ended with (2).
    assert_eq!(r["pool"], "default");
    assert_eq!(day(2)["peak_in_use"], 2);
    assert_eq!(day(2)["capacity"], 3);
    // 3 November: 4 seats in use of 3 for an hour.
    assert_eq!(day(3)["peak_in_use"], 4);
    assert_eq!(day(3)["capacity"], 3);
    assert_eq!(day(3)["over_capacity"], true);
    // The rest of the month keeps 3 of 3 (December's line is not counted).
    for d in 4..=30 {
        assert_eq!(day(d)["peak_in_use"], 3, "{}", day(d));
        assert_eq!(day(d)["over_capacity"], false);
    }
    assert_eq!(r["peak_in_use"], 4);
    assert_eq!(r["capacity_at_peak"], 3);
    assert_eq!(r["over_capacity"], true);
    assert_eq!(r["evictions"], 1);
    assert_eq!(r["waits"], 1);
    assert_eq!(r["nodes"], serde_json::json!(["node-a", "node-b"]));
    // Seat-hours within November (seats still held count to its end).
    let hours: std::collections::BTreeMap<String, f64> = r["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["user"].as_str().unwrap().to_string(),
                u["seat_hours"].as_f64().unwrap(),
            )
        })
        .collect();
    let expected: std::collections::BTreeMap<String, f64> = [
        ("u1", 10.0),               // 1 Nov 00:00 → 10:00 (evicted)
        ("u2", 4.0),                // 08:00 → 12:00 (logout)
        ("u3", 15.0 + 29.0 * 24.0), // 1 Nov 09:00 → 1 Dec
        ("u4", 14.0 + 29.0 * 24.0), // 1 Nov 10:00 → 1 Dec
        ("u5", 16.0 + 27.0 * 24.0), // 3 Nov 08:00 → 1 Dec
        ("u6", 1.0),                // 09:00 → 10:00 (tier shrink)
    ]
    .into_iter()
    .map(|(u, h)| (u.to_string(), h))
    .collect();
    assert_eq!(hours, expected);
    assert_eq!(r["users"][0]["user"], "u3", "most seat-hours first");
    let u1 = r["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == "u1")
        .unwrap();
    assert_eq!(u1["evicted"], 1);
    // Inputs: the malformed line is counted, not fatal.
    let malformed: u64 = r["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["malformed"].as_u64().unwrap())
        .sum();
    assert_eq!(malformed, 1);
    assert!(r["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["gzip"] == true));

    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg id=\"chart-peaks\""), "an inline chart");
    assert_eq!(
        page.matches("<rect class=\"peak\"").count(),
        30,
        "a bar per day"
    );
    assert!(page.contains("<tr class=\"over\"><td>2026-11-03</td><td>4</td><td>3</td>"));
    assert!(page.contains("The capacity was exceeded"));

    // Another pool has its own seats: its report is its own.
    let (service, _) = iumgate(
        &[
            "audit", "report", "--month", "2026-11", "--pool", "service", "--json",
        ],
        dir.path(),
    );
    let service: Value = serde_json::from_str(&service).unwrap();
    assert_eq!(service["pool"], "service");
    assert_eq!(service["peak_in_use"], 9);
    assert_eq!(service["over_capacity"], false);
    assert_eq!(service["days"][0]["peak_in_use"], 0);

    // The text report says it too.
    let (text, _) = iumgate(&["audit", "report", "--month", "2026-11"], dir.path());
    assert!(text.contains("peak 4 seats in use (capacity 3)"), "{text}");
    assert!(text.contains("EXCEEDED"), "{text}");
}

#[test]
fn the_filter_prints_a_users_lines_in_time_order_as_csv() {
    let dir = trail_dir();
    let (csv, stderr) = iumgate(
        &[
            "audit",
            "--user",
            "u4",
            "--since",
            "2026-11-01",
            "--until",
            "2026-11-02",
            "--csv",
        ],
        dir.path(),
    );
    assert_eq!(
        csv,
        "ts,kind,pool,user,reason,victim,for,waited_ms,position,operation,in_use,capacity,node\n\
         2026-11-01T09:30:00.000Z,queued,default,u4,no_free_seat,,,,1,,3,3,node-a\n\
         2026-11-01T10:00:00.000Z,grant,default,u4,evicted_for,u1,,,,,3,3,node-b\n\
         2026-11-01T10:00:00.000Z,admitted,default,u4,from_queue,,,1800000,,,3,3,node-b\n"
    );
    assert!(stderr.contains("1 malformed lines skipped"), "{stderr}");
    // The gzipped rotation is read too, and --pool filters.
    let (json, _) = iumgate(&["audit", "--json", "--user", "u6"], dir.path());
    assert_eq!(json.lines().count(), 2, "{json}");
    let (none, _) = iumgate(&["audit", "--json", "--pool", "agents"], dir.path());
    assert_eq!(none, "");
}
