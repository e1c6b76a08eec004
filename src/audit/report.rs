//! `iumgate audit report --month 2026-11 [--pool NAME]`: from the trail
//! alone, for one pool (its lines only: each pool has its own seats), per UTC day
//! the peak of seats in use against the capacity, seat-hours per user,
//! evictions, waits and their length — "did we ever use more seats than we
//! bought?" answered by `over_capacity`.
//!
//! Several files (replicas, rotations) are merged in time order; the seats
//! in use at a moment are the larger of what the latest line says and the
//! seats the merged trail shows held (granted, not released): with several
//! replicas, a line's `in_use` is its replica's view, which may not have
//! seen another replica's grant of the last moment yet. Lines from 31 days
//! before the month are read too, for the seats held and the level at its
//! start.

use super::{Kind, Line};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

const DAY_MS: i64 = 86_400_000;
/// How far before the month lines are read (seats held at its start).
pub const LOOKBACK_MS: i64 = 31 * DAY_MS;

/// A calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    pub start_ms: i64,
    pub end_ms: i64,
    year: i16,
    month: i8,
}

impl Month {
    /// `2026-11`.
    pub fn parse(s: &str) -> Result<Month, String> {
        let bad = || format!("`{s}`: expected a month such as 2026-11");
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        let year: i16 = y.parse().map_err(|_| bad())?;
        let month: i8 = m.parse().map_err(|_| bad())?;
        let start = jiff::civil::Date::new(year, month, 1).map_err(|_| bad())?;
        let end = start.last_of_month().tomorrow().map_err(|_| bad())?;
        let ms = |d: jiff::civil::Date| {
            d.to_zoned_datetime(jiff::tz::TimeZone::UTC)
                .map(|z| z.timestamp().as_millisecond())
                .map_err(|_| bad())
        };
        Ok(Month {
            start_ms: ms(start)?,
            end_ms: ms(end)?,
            year,
            month,
        })
    }

    pub fn name(&self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

/// One UTC day of the month.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Day {
    pub date: String,
    /// The most seats in use at once that day (the level it began with
    /// included).
    pub peak_in_use: u32,
    /// The capacity when the peak was reached.
    pub capacity: u32,
    /// Some line that day had more seats in use than the capacity.
    pub over_capacity: bool,
    pub grants: u32,
    pub evictions: u32,
    /// Users who entered the queue.
    pub waits: u32,
    /// Waiters who got a seat, and how long they had waited.
    pub admitted: u32,
    pub mean_wait_s: f64,
    pub max_wait_s: f64,
    pub abandoned: u32,
    pub refused: u32,
}

/// One user's month.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct UserMonth {
    pub user: String,
    /// Hours holding a shared seat within the month.
    pub seat_hours: f64,
    pub grants: u32,
    /// Times the user's seat was taken for someone else.
    pub evicted: u32,
    pub waits: u32,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub month: String,
    /// The pool reported on (each pool has its own seats and capacity).
    pub pool: String,
    /// The month's peak, its capacity, and whether any line exceeded it.
    pub peak_in_use: u32,
    pub capacity_at_peak: u32,
    pub over_capacity: bool,
    pub days: Vec<Day>,
    /// Most seat-hours first.
    pub users: Vec<UserMonth>,
    pub evictions: u32,
    pub waits: u32,
    pub mean_wait_s: f64,
    pub max_wait_s: f64,
    /// The nodes whose lines were read (one per replica).
    pub nodes: Vec<String>,
    pub inputs: Vec<super::read::Input>,
}

#[derive(Default)]
struct DayAcc {
    day: Day,
    wait_sum_s: f64,
}

/// The report for `month` from lines already in time order; seats still
/// held at the end are counted up to `min(month end, now_ms)`.
pub fn build(month: Month, lines: &[(i64, Line)], now_ms: i64) -> Report {
    let mut days: BTreeMap<i64, DayAcc> = BTreeMap::new();
    let mut day = month.start_ms;
    while day < month.end_ms {
        let d = days.entry(day).or_default();
        d.day.date = super::day_name(u64::try_from(day / DAY_MS).unwrap_or(0));
        day += DAY_MS;
    }
    let mut users: HashMap<String, UserMonth> = HashMap::new();
    let mut held: HashMap<String, i64> = HashMap::new();
    let mut nodes = BTreeSet::new();
    // The level (in use, capacity) as of the latest line.
    let mut level: Option<(u32, u32)> = None;
    let end = month.end_ms.min(now_ms.max(month.start_ms));
    let overlap = |from: i64, to: i64| (to.min(end) - from.max(month.start_ms)).max(0);
    let mut seen_day: Option<i64> = None;
    let mut wait_total = (0u32, 0.0f64, 0.0f64);
    for (at, l) in lines {
        let at = *at;
        if at >= month.end_ms {
            break;
        }
        // A day's peak starts from the level the day began with.
        let this_day = at - at.rem_euclid(DAY_MS);
        if at >= month.start_ms {
            let first_of_day = seen_day != Some(this_day);
            if first_of_day {
                // Days without lines between carry the level too.
                let from = seen_day.map_or(month.start_ms, |d| d + DAY_MS);
                if let Some((in_use, cap)) = level {
                    let mut d = from;
                    while d <= this_day {
                        if let Some(acc) = days.get_mut(&d) {
                            raise_peak(&mut acc.day, in_use, cap);
                        }
                        d += DAY_MS;
                    }
                }
                seen_day = Some(this_day);
            }
            nodes.insert(l.node.clone());
        }
        let user = || l.user.clone();
        match l.kind {
            Kind::Grant => {
                held.entry(user()).or_insert(at);
            }
            Kind::Release => {
                if let Some(since) = held.remove(&l.user) {
                    let ms = overlap(since, at);
                    if ms > 0 {
                        users.entry(user()).or_default().seat_hours += ms as f64 / 3_600_000.0;
                    }
                }
            }
            _ => {}
        }
        // A replica's `in_use` is its own view, which may lag the others'
        // grants by a sync interval; the merged trail's seats held count too.
        let in_use = l.in_use.max(u32::try_from(held.len()).unwrap_or(u32::MAX));
        level = Some((in_use, l.capacity));
        if at < month.start_ms {
            continue;
        }
        let Some(acc) = days.get_mut(&this_day) else {
            continue;
        };
        let d = &mut acc.day;
        raise_peak(d, in_use, l.capacity);
        match l.kind {
            Kind::Grant => {
                d.grants += 1;
                users.entry(user()).or_default().grants += 1;
            }
            Kind::Release if l.reason == "eviction" => {
                d.evictions += 1;
                users.entry(user()).or_default().evicted += 1;
            }
            Kind::Queued => {
                d.waits += 1;
                users.entry(user()).or_default().waits += 1;
            }
            Kind::Admitted => {
                let s = l.waited_ms.unwrap_or(0) as f64 / 1000.0;
                d.admitted += 1;
                acc.wait_sum_s += s;
                d.max_wait_s = d.max_wait_s.max(s);
                wait_total.0 += 1;
                wait_total.1 += s;
                wait_total.2 = wait_total.2.max(s);
            }
            Kind::Abandoned => d.abandoned += 1,
            Kind::Refused => d.refused += 1,
            Kind::Release => {}
        }
    }
    // Days after the last line (up to now) keep the last level.
    if let Some((in_use, cap)) = level {
        let from = seen_day.map_or(month.start_ms, |d| d + DAY_MS);
        let mut d = from;
        while d < end {
            if let Some(acc) = days.get_mut(&d) {
                raise_peak(&mut acc.day, in_use, cap);
            }
            d += DAY_MS;
        }
    }
    for (u, since) in held {
        let ms = overlap(since, end);
        if ms > 0 {
            users.entry(u).or_default().seat_hours += ms as f64 / 3_600_000.0;
        }
    }
    let days: Vec<Day> = days
        .into_values()
        .map(|mut a| {
            if a.day.admitted > 0 {
                a.day.mean_wait_s = a.wait_sum_s / f64::from(a.day.admitted);
            }
            a.day
        })
        .collect();
    let mut users: Vec<UserMonth> = users
        .into_iter()
        .map(|(name, mut u)| {
            u.user = name;
            u.seat_hours = (u.seat_hours * 100.0).round() / 100.0;
            u
        })
        .collect();
    users.sort_by(|a, b| {
        b.seat_hours
            .total_cmp(&a.seat_hours)
            .then_with(|| a.user.cmp(&b.user))
    });
    let peak = days.iter().max_by_key(|d| d.peak_in_use);
    Report {
        month: month.name(),
        pool: lines
            .first()
            .map_or_else(|| "default".to_string(), |(_, l)| l.pool.clone()),
        peak_in_use: peak.map_or(0, |d| d.peak_in_use),
        capacity_at_peak: peak.map_or(0, |d| d.capacity),
        over_capacity: days.iter().any(|d| d.over_capacity),
        evictions: days.iter().map(|d| d.evictions).sum(),
        waits: days.iter().map(|d| d.waits).sum(),
        mean_wait_s: if wait_total.0 > 0 {
            wait_total.1 / f64::from(wait_total.0)
        } else {
            0.0
        },
        max_wait_s: wait_total.2,
        days,
        users,
        nodes: nodes.into_iter().collect(),
        inputs: Vec::new(),
    }
}

fn raise_peak(d: &mut Day, in_use: u32, capacity: u32) {
    if in_use > d.peak_in_use || (d.peak_in_use == 0 && d.capacity == 0) {
        d.peak_in_use = in_use;
        d.capacity = capacity;
    }
    if in_use > capacity {
        d.over_capacity = true;
    }
}

fn secs(s: f64) -> String {
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

pub fn render_text(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Seat audit {}, pool {}: peak {} seats in use (capacity {}) — {}",
        r.month,
        r.pool,
        r.peak_in_use,
        r.capacity_at_peak,
        if r.over_capacity {
            "EXCEEDED the capacity on a day marked !"
        } else {
            "never above the capacity"
        }
    );
    let _ = writeln!(
        o,
        "{} evictions, {} waits (mean {}, longest {}); nodes: {}\n",
        r.evictions,
        r.waits,
        secs(r.mean_wait_s),
        secs(r.max_wait_s),
        if r.nodes.is_empty() {
            "-".to_string()
        } else {
            r.nodes.join(", ")
        }
    );
    let _ = writeln!(
        o,
        "{:<10}  {:>4} / {:<4}  {:>6}  {:>9}  {:>5}  {:>9}  {:>9}  {:>9}  {:>7}",
        "day",
        "peak",
        "cap",
        "grants",
        "evictions",
        "waits",
        "mean wait",
        "max wait",
        "abandoned",
        "refused"
    );
    for d in &r.days {
        let _ = writeln!(
            o,
            "{:<10}  {:>4} / {:<4}{} {:>6}  {:>9}  {:>5}  {:>9}  {:>9}  {:>9}  {:>7}",
            d.date,
            d.peak_in_use,
            d.capacity,
            if d.over_capacity { "!" } else { " " },
            d.grants,
            d.evictions,
            d.waits,
            secs(d.mean_wait_s),
            secs(d.max_wait_s),
            d.abandoned,
            d.refused
        );
    }
    let _ = writeln!(
        o,
        "\n{:<24}  {:>10}  {:>6}  {:>7}  {:>5}",
        "user", "seat-hours", "grants", "evicted", "waits"
    );
    for u in &r.users {
        let _ = writeln!(
            o,
            "{:<24}  {:>10.2}  {:>6}  {:>7}  {:>5}",
            u.user, u.seat_hours, u.grants, u.evicted, u.waits
        );
    }
    o
}

fn esc(s: &str) -> String {
    crate::pages::escape(s)
}

/// The per-day chart: a bar per day (its peak), the capacity as a line —
/// drawn with `iumgate analyze`'s chart parts (frame, axes, scale).
fn chart(r: &Report) -> String {
    use iumgate_analyze::chart::{axes, y_of, H, PAD_B, PAD_L, W};
    let max = r
        .days
        .iter()
        .map(|d| d.peak_in_use.max(d.capacity))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let n = r.days.len().max(1) as f64;
    let bw = (W - PAD_L - 10.0) / n;
    let mut o = format!(
        r#"<svg id="chart-peaks" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img"><title>Peak seats in use per day against capacity</title>"#
    );
    axes(&mut o, max, "seats", "day (UTC)");
    let mut cap_pts = Vec::new();
    for (i, d) in r.days.iter().enumerate() {
        let x = PAD_L + bw * i as f64;
        let top = y_of(f64::from(d.peak_in_use), max);
        let fill = if d.over_capacity {
            "#d1242f"
        } else {
            "#1f6feb"
        };
        let _ = write!(
            o,
            r#"<rect class="peak" x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{fill}"><title>{}: {} of {}</title></rect>"#,
            x + 1.0,
            (bw - 2.0).max(1.0),
            (H - PAD_B - top).max(0.0),
            esc(&d.date),
            d.peak_in_use,
            d.capacity
        );
        let cy = y_of(f64::from(d.capacity), max);
        cap_pts.push(format!("{:.1},{cy:.1} {:.1},{cy:.1}", x, x + bw));
        if i % 7 == 0 {
            let _ = write!(
                o,
                r#"<text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
                x,
                H - PAD_B + 12.0,
                esc(d.date.get(5..).unwrap_or(&d.date))
            );
        }
    }
    let _ = write!(
        o,
        r##"<polyline class="capacity" fill="none" stroke="#555" stroke-dasharray="4 3" points="{}"/></svg>"##,
        cap_pts.join(" ")
    );
    o
}

/// The single-file HTML report (no script; the chart is inline SVG).
pub fn render_html(r: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>iumgate seat audit — {m}</title><style>
body{{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:820px;color:#222;line-height:1.45}}
h1{{font-size:1.5em}}h2{{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}}
table{{border-collapse:collapse;font-size:.9em}}td,th{{padding:2px 8px;text-align:right;border-bottom:1px solid #eee}}
td:first-child,th:first-child{{text-align:left}}.big{{font-size:1.2em;background:#f4f8ff;padding:.8em;border-radius:6px}}
.over{{color:#d1242f;font-weight:bold}}.note{{color:#666;font-size:.85em}}svg{{max-width:100%;height:auto}}
</style></head><body><h1>Seat audit — {m}, pool {p}</h1>"#,
        m = esc(&r.month),
        p = esc(&r.pool)
    );
    let _ = write!(
        o,
        r#"<p class="big" id="verdict">Peak: <b>{} seats in use</b> of {}. {}</p><p>{} evictions; {} waits (mean {}, longest {}). Nodes: {}.</p>"#,
        r.peak_in_use,
        r.capacity_at_peak,
        if r.over_capacity {
            "<span class=\"over\">The capacity was exceeded</span> (days in red)."
        } else {
            "Never above the capacity."
        },
        r.evictions,
        r.waits,
        secs(r.mean_wait_s),
        secs(r.max_wait_s),
        esc(&r.nodes.join(", "))
    );
    let _ = write!(
        o,
        "<h2>Peak seats in use per day</h2><p class=\"note\">Bars: the most seats in use at once that day; dashed: the capacity.</p>{}",
        chart(r)
    );
    o.push_str("<table id=\"days\"><tr><th>day</th><th>peak</th><th>capacity</th><th>grants</th><th>evictions</th><th>waits</th><th>mean wait</th><th>max wait</th><th>abandoned</th><th>refused</th></tr>");
    for d in &r.days {
        let _ = write!(
            o,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if d.over_capacity { " class=\"over\"" } else { "" },
            esc(&d.date),
            d.peak_in_use,
            d.capacity,
            d.grants,
            d.evictions,
            d.waits,
            secs(d.mean_wait_s),
            secs(d.max_wait_s),
            d.abandoned,
            d.refused
        );
    }
    o.push_str("</table><h2>Seat-hours per user</h2><table id=\"users\"><tr><th>user</th><th>seat-hours</th><th>grants</th><th>evicted</th><th>waits</th></tr>");
    for u in &r.users {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&u.user),
            u.seat_hours,
            u.grants,
            u.evicted,
            u.waits
        );
    }
    o.push_str(
        "</table><h2>Inputs</h2><table><tr><th>file</th><th>lines</th><th>malformed</th></tr>",
    );
    for i in &r.inputs {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&i.file),
            i.lines,
            i.malformed
        );
    }
    o.push_str("</table><p class=\"note\">Made by iumgate audit report (times in UTC).</p></body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_is_its_utc_days() {
        let m = Month::parse("2026-11").unwrap();
        assert_eq!(m.start_ms, 1_793_491_200_000);
        assert_eq!((m.end_ms - m.start_ms) / DAY_MS, 30);
        assert_eq!(m.name(), "2026-11");
        assert!(Month::parse("2026-13").is_err());
        assert!(Month::parse("november").is_err());
    }

    fn line(ts: &str, kind: Kind, user: &str, in_use: u32, node: &str) -> (i64, Line) {
        let l = Line {
            ts: ts.into(),
            kind,
            pool: "default".into(),
            user: user.into(),
            reason: "free".into(),
            victim: None,
            for_user: None,
            waited_ms: None,
            position: None,
            operation: None,
            in_use,
            capacity: 1,
            node: node.into(),
        };
        (l.at_ms().unwrap(), l)
    }

    /// Replica b granted before it saw replica a's grant: its line says 1 in
    /// use, the merged trail shows 2 held — above the capacity of 1.
    #[test]
    fn a_replica_that_had_not_seen_the_others_grant_yet_does_not_hide_the_peak() {
        let m = Month::parse("2026-11").unwrap();
        let lines = vec![
            line("2026-11-02T08:00:00.000Z", Kind::Grant, "u1", 1, "a"),
            line("2026-11-02T08:00:00.200Z", Kind::Grant, "u2", 1, "b"),
            line("2026-11-02T09:00:00.000Z", Kind::Release, "u2", 1, "b"),
        ];
        let r = build(m, &lines, m.end_ms);
        assert_eq!(r.days[1].peak_in_use, 2);
        assert!(r.days[1].over_capacity);
        assert_eq!(r.days[2].peak_in_use, 1, "the level after: u1 alone");
        assert_eq!(r.nodes, ["a", "b"]);
    }
}
