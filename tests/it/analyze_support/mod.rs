//! A deterministic access-log generator of known shape: heavy users active most of every
//! working day, casual users with a few short sessions, plus the noise a real log has
//! (anonymous requests, static resources, background polling that is not activity).
#![allow(dead_code)]

use iumgate::analyze::parse::{days_from_civil, format_local};

pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 60 * MIN;

/// A tiny xorshift generator: the same seed makes the same log on every machine and version.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Jira,
    Confluence,
    Bitbucket,
}

/// One request: UTC ms, user (None: anonymous), method, path.
#[derive(Debug, Clone)]
pub struct Req {
    pub t: i64,
    pub user: Option<String>,
    pub method: &'static str,
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct Shape {
    pub seed: u64,
    pub heavy: usize,
    pub casual: usize,
    /// Working days (Monday 2024-03-04 on, weekends skipped).
    pub days: usize,
    /// Casual users also keep a tab open that polls all day (must not count as activity).
    pub polling_tabs: bool,
}

/// The generated requests (time-ordered) and what they were made of.
pub struct Generated {
    pub reqs: Vec<Req>,
    pub heavy: Vec<String>,
    pub casual: Vec<String>,
    /// Every activity request per user.
    pub activity: std::collections::BTreeMap<String, u64>,
}

pub fn day_start(day: usize) -> i64 {
    // Monday 2024-03-04; skip weekends.
    let week = day / 5;
    let d = days_from_civil(2024, 3, 4) + (week * 7 + day % 5) as i64;
    d * 86_400_000
}

fn activity_path(p: LogFormat, rng: &mut Rng) -> (&'static str, String) {
    let n = rng.range(1, 999);
    match p {
        LogFormat::Jira => match n % 3 {
            0 => ("GET", format!("/browse/ABC-{n}")),
            1 => ("POST", "/secure/AjaxIssueAction!default.jspa".to_string()),
            _ => ("PUT", format!("/rest/api/2/issue/ABC-{n}")),
        },
        LogFormat::Confluence => match n % 2 {
            0 => ("GET", format!("/display/DOC/Page{n}")),
            _ => ("GET", "/pages/viewpage.action".to_string()),
        },
        LogFormat::Bitbucket => match n % 2 {
            0 => ("GET", format!("/projects/P/repos/r{n}/browse")),
            _ => ("GET", format!("/scm/p/r{n}.git/info/refs")),
        },
    }
}

fn noise_path(p: LogFormat) -> (&'static str, &'static str) {
    match p {
        LogFormat::Jira => ("GET", "/rest/mywork/latest/notification/count"),
        LogFormat::Confluence => ("GET", "/rest/mywork/latest/notification/count"),
        LogFormat::Bitbucket => ("GET", "/rest/analytics/1.0/publish/bulk"),
    }
}

/// Heavy users: 08:00–17:00 every working day, an activity every 3–20 minutes (so the seat is
/// busy ~9.5 h a day). Casual users: on about half the days, one or two sessions of 5–40
/// minutes (at most ~2.3 busy hours a day with a 30-minute idle).
pub fn generate(shape: &Shape, p: LogFormat) -> Generated {
    generate_days(shape, p, 0..shape.days)
}

/// Only the working days in `days` (a large log is written a slice of days at a time).
pub fn generate_days(shape: &Shape, p: LogFormat, days: std::ops::Range<usize>) -> Generated {
    let mut rng = Rng::new(shape.seed.wrapping_add(days.start as u64 * 7919));
    let mut reqs = Vec::new();
    let heavy: Vec<String> = (0..shape.heavy).map(|i| format!("heavy{i:02}")).collect();
    let casual: Vec<String> = (0..shape.casual).map(|i| format!("user{i:03}")).collect();
    let mut activity = std::collections::BTreeMap::new();
    let mut act = |reqs: &mut Vec<Req>, t: i64, u: &str, rng: &mut Rng| {
        let (m, path) = activity_path(p, rng);
        reqs.push(Req {
            t,
            user: Some(u.to_string()),
            method: m,
            path,
        });
        *activity.entry(u.to_string()).or_insert(0u64) += 1;
    };
    for day in days {
        let d0 = day_start(day);
        for u in &heavy {
            let mut t = d0 + 8 * HOUR + rng.range(0, 10) * MIN;
            while t < d0 + 17 * HOUR {
                act(&mut reqs, t, u, &mut rng);
                // Static resources alongside (never activity).
                reqs.push(Req {
                    t: t + 1000,
                    user: Some(u.clone()),
                    method: "GET",
                    path: "/s/en_GB/123/_/download/batch.js".into(),
                });
                t += rng.range(3, 20) * MIN + rng.range(0, 59) * 1000;
            }
        }
        for u in &casual {
            if shape.polling_tabs {
                let (m, path) = noise_path(p);
                let mut t = d0 + 7 * HOUR;
                while t < d0 + 19 * HOUR {
                    reqs.push(Req {
                        t,
                        user: Some(u.clone()),
                        method: m,
                        path: path.into(),
                    });
                    t += 5 * MIN;
                }
            }
            if rng.next() % 2 == 0 {
                continue;
            }
            let sessions = rng.range(1, 2);
            for s in 0..sessions {
                let start = d0 + (9 + 4 * s) * HOUR + rng.range(0, 180) * MIN;
                let len = rng.range(5, 40) * MIN;
                let mut t = start;
                while t <= start + len {
                    act(&mut reqs, t, u, &mut rng);
                    t += rng.range(1, 6) * MIN;
                }
            }
        }
        // Anonymous traffic: the login page, status checks.
        for k in 0..20 {
            reqs.push(Req {
                t: d0 + 6 * HOUR + k * 17 * MIN,
                user: None,
                method: "GET",
                path: "/login.jsp".into(),
            });
        }
    }
    reqs.sort_by(|a, b| a.t.cmp(&b.t).then_with(|| a.user.cmp(&b.user)));
    Generated {
        reqs,
        heavy,
        casual,
        activity,
    }
}

/// `25/Mar/2024:09:15:02 +0100` for a UTC time shown at `offset_h`.
fn clf_time(t: i64, offset_h: i64) -> String {
    const M: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let local = t + offset_h * HOUR;
    let s = format_local(local); // "YYYY-MM-DD HH:MM"
    let secs = (local / 1000).rem_euclid(60);
    let (y, mo, d) = (&s[0..4], &s[5..7], &s[8..10]);
    let mo: usize = mo.parse().unwrap();
    format!(
        "{d}/{}/{y}:{}:{secs:02} {}{:02}00",
        M[mo - 1],
        &s[11..16],
        if offset_h < 0 { '-' } else { '+' },
        offset_h.abs()
    )
}

/// Renders one request as a line of `format` (times shown in UTC+1 where the format has a zone).
pub fn render(r: &Req, f: LogFormat, n: usize) -> String {
    let user = r.user.as_deref().unwrap_or("-");
    match f {
        LogFormat::Jira => format!(
            "10.0.{}.{} {}x{}x1 {} [{}] \"{} {}?q=1 HTTP/1.1\" 200 {} {} \"https://jira.example.com/\" \"Mozilla/5.0 (X11; Linux x86_64)\" \"{:x}\"",
            n % 200,
            n % 250,
            n % 1440,
            n,
            user,
            clf_time(r.t, 1),
            r.method,
            r.path,
            100 + n % 5000,
            5 + n % 300,
            n * 7919
        ),
        LogFormat::Confluence => format!(
            "[{}] {} http-nio-8090-exec-{} 10.0.0.{} {} {} HTTP/1.1 200 {}ms {} https://wiki.example.com/ Mozilla/5.0 (X11; Linux x86_64)",
            clf_time(r.t, 1),
            user,
            n % 50,
            n % 250,
            r.method,
            r.path,
            5 + n % 300,
            100 + n % 5000
        ),
        LogFormat::Bitbucket => {
            // Bitbucket logs local time without a zone: show UTC, the offset is then 0.
            let s = format_local(r.t);
            let secs = (r.t / 1000).rem_euclid(60);
            let ms = r.t.rem_euclid(1000);
            let id = format!("x{n}x1");
            let ts = format!("{}:{secs:02},{ms:03}", s);
            let req = format!("\"{} {} HTTP/1.1\"", r.method, r.path);
            format!(
                "10.0.0.{ip} | https | i@{id} | {user} | {ts} | {req} | \"\" \"git/2.40\" | - | - | - | - | - | abc |\n10.0.0.{ip} | https | o@{id} | {user} | {ts} | {req} | \"\" \"git/2.40\" | 200 | 0 | 19 | - | 6 | abc |",
                ip = n % 250
            )
        }
    }
}

/// The whole log as text, with `malformed` garbage lines spread through it.
pub fn render_log(g: &Generated, f: LogFormat, malformed: usize) -> String {
    let mut out = String::new();
    let every = g
        .reqs
        .len()
        .checked_div(malformed)
        .map_or(usize::MAX, |n| n.max(1));
    let mut left = malformed;
    for (i, r) in g.reqs.iter().enumerate() {
        out.push_str(&render(r, f, i));
        out.push('\n');
        if left > 0 && i % every == every / 2 {
            out.push_str(match left % 3 {
                0 => "this is not a log line\n",
                1 => "10.0.0.1 1x1x1 alice [not a time] \"GET /browse/X HTTP/1.1\" 200\n",
                _ => "\u{fffd}\u{fffd} truncated [25/Mar/2024:09:1\n",
            });
            left -= 1;
        }
    }
    while left > 0 {
        out.push_str("garbage at the end\n");
        left -= 1;
    }
    out
}

/// A Jira log line for hand-written cases: `at` is "HH:MM:SS" on 2024-03-05 (a Tuesday), UTC.
pub fn jira_line(at: &str, user: &str, method: &str, path: &str) -> String {
    format!("10.0.0.1 1x1x1 {user} [05/Mar/2024:{at} +0000] \"{method} {path} HTTP/1.1\" 200 10 5 \"-\" \"curl\" \"-\"")
}
