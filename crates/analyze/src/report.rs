//! The analysis as a terminal summary and as one self-contained HTML page with inline SVG
//! charts (no scripts, fonts or images fetched: it must survive being mailed to a manager).

use super::{PoolsReport, Report, SimResult};
use std::fmt::Write;

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn dur(s: f64) -> String {
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s / 60) % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// The terminal summary.
pub fn render_text(r: &Report) -> String {
    let mut o = String::new();
    let t = &r.totals;
    let _ = writeln!(o, "iumgate analyze — {} access logs", r.product);
    if let Some(p) = &r.period {
        let _ = writeln!(
            o,
            "period       {} → {} ({} days, {} working days)",
            p.first, p.last, p.days, p.working_days
        );
    }
    let _ = writeln!(
        o,
        "read         {} lines in {} file(s): {} requests, {} activity, {} anonymous, {} malformed, {} skipped",
        t.lines,
        r.inputs.len(),
        t.requests,
        t.activity_requests,
        t.anonymous_requests,
        t.malformed,
        t.skipped
    );
    for f in r.inputs.iter().filter(|f| f.malformed > 0) {
        let _ = writeln!(o, "  {}: {} malformed line(s)", f.name, f.malformed);
        for (n, text) in &f.malformed_examples {
            let _ = writeln!(o, "    line {n}: {text}");
        }
    }
    let _ = writeln!(
        o,
        "users        {} ({} casual, {} heavy)",
        t.users,
        t.casual_users,
        r.power_users.len()
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "Heavy users: {}", r.heavy_rule.explanation);
    let _ = writeln!(
        o,
        "  {:<24} {:>6} {:>10} {:>10} {:>8}",
        "user", "days", "busy h/wd", "busy h/day", "hours"
    );
    for u in r.users.iter().take(15) {
        let _ = writeln!(
            o,
            "  {:<24} {:>6} {:>10.1} {:>10.1} {:>8}{}",
            u.user,
            u.days_seen,
            u.busy_hours_per_working_day,
            u.busy_hours_per_day_seen,
            u.typical_hours.as_deref().unwrap_or("-"),
            if u.heavy { "  HEAVY" } else { "" }
        );
    }
    if r.users.len() > 15 {
        let _ = writeln!(o, "  … {} more (see --json or --html)", r.users.len() - 15);
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Pool simulation (the proxy's pool, min_idle {}, waiting page polls every {}s); casual users busy at once at the peak: {}",
        dur(r.min_idle_s as f64),
        r.retry_every_s,
        r.peak_demand
    );
    let _ = writeln!(
        o,
        "  {:>6} {:>8} {:>8} {:>9} {:>9} {:>9} {:>6}",
        "seats", "logins", "waited", "share", "mean", "p95", "peak"
    );
    for s in &r.simulation {
        let _ = writeln!(
            o,
            "  {:>6} {:>8} {:>8} {:>9} {:>9} {:>9} {:>6}",
            s.seats,
            s.logins,
            s.waited,
            pct(s.wait_share),
            dur(s.mean_wait_s),
            dur(s.p95_wait_s),
            s.peak_held
        );
    }
    let _ = writeln!(o, "  (mean and p95 are over the logins that waited)");
    let _ = writeln!(o);
    let rec = &r.recommendation;
    let _ = writeln!(
        o,
        "Recommendation: {} shared seats{} keep waits at or below {} of logins.",
        rec.shared_seats,
        if rec.meets_target {
            ""
        } else {
            " (the most simulated; it does NOT)"
        },
        pct(rec.target_wait_share)
    );
    let _ = writeln!(
        o,
        "  licence: {} power users + {} shared seats + {} reserved = {} users{}",
        rec.power_users,
        rec.shared_seats,
        rec.reserved,
        rec.users_needed,
        rec.tier.map(|t| format!(" → tier {t}")).unwrap_or_default()
    );
    if let Some(c) = &rec.current {
        let _ = writeln!(
            o,
            "  current tier {}: {} shared seats → {} of logins wait (mean {}, p95 {})",
            c.tier,
            c.shared_seats,
            pct(c.result.wait_share),
            dur(c.result.mean_wait_s),
            dur(c.result.p95_wait_s)
        );
    }
    if !r.power_users.is_empty() {
        let _ = writeln!(o, "  power users: {}", r.power_users.join(", "));
    }
    o
}

use crate::chart::{axes, esc, polyline, x_of, y_of, H, PAD_B, PAD_L, PAD_T, W};

fn chart_seats(r: &Report, id: &str) -> String {
    let t = &r.timeline;
    let max = t
        .demand
        .iter()
        .chain(t.held.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(r.recommendation.shared_seats as u32)
        .max(1) as f64;
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg id="{id}chart-seats" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img"><title>Seats in use over time</title>"#
    );
    axes(
        &mut o,
        max,
        "seats",
        &format!(
            "time from {} (bucket {} min)",
            esc(&t.origin),
            t.bucket_s / 60
        ),
    );
    polyline(&mut o, &t.demand, max, "#999", "demand");
    polyline(&mut o, &t.held, max, "#1f6feb", "held");
    let y = y_of(r.recommendation.shared_seats as f64, max);
    let _ = write!(
        o,
        r##"<line class="capacity" x1="{PAD_L}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#d1242f" stroke-dasharray="4 3"/>"##,
        W - 10.0
    );
    let _ = write!(
        o,
        r##"<text x="{}" y="{:.1}" font-size="10" fill="#d1242f" text-anchor="end">{} shared seats</text>"##,
        W - 12.0,
        y - 3.0,
        r.recommendation.shared_seats
    );
    o.push_str("</svg>");
    o
}

fn chart_waits(sims: &[SimResult], r: &Report, id: &str) -> String {
    let max_share = sims
        .iter()
        .map(|s| s.wait_share)
        .fold(r.recommendation.target_wait_share, f64::max)
        .max(0.01);
    let max_seats = sims.iter().map(|s| s.seats).max().unwrap_or(1).max(1) as f64;
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg id="{id}chart-waits" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img"><title>Waits against seat count</title>"#
    );
    axes(
        &mut o,
        (max_share * 1000.0).round() / 10.0,
        "% of logins that wait",
        "shared seats",
    );
    let pts: Vec<String> = sims
        .iter()
        .map(|s| {
            format!(
                "{:.1},{:.1}",
                x_of(s.seats as f64, max_seats),
                y_of(s.wait_share, max_share)
            )
        })
        .collect();
    let _ = write!(
        o,
        r##"<polyline class="wait-share" fill="none" stroke="#1f6feb" stroke-width="1.5" points="{}"/>"##,
        pts.join(" ")
    );
    for s in sims {
        let _ = write!(
            o,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#1f6feb"><title>{} seats: {} wait, mean {}, p95 {}</title></circle>"##,
            x_of(s.seats as f64, max_seats),
            y_of(s.wait_share, max_share),
            s.seats,
            pct(s.wait_share),
            dur(s.mean_wait_s),
            dur(s.p95_wait_s)
        );
    }
    let ty = y_of(r.recommendation.target_wait_share, max_share);
    let _ = write!(
        o,
        r##"<line class="target" x1="{PAD_L}" y1="{ty:.1}" x2="{}" y2="{ty:.1}" stroke="#d1242f" stroke-dasharray="4 3"/><text x="{}" y="{:.1}" font-size="10" fill="#d1242f" text-anchor="end">target {}</text>"##,
        W - 10.0,
        W - 12.0,
        ty - 3.0,
        pct(r.recommendation.target_wait_share)
    );
    let rx = x_of(r.recommendation.shared_seats as f64, max_seats);
    let _ = write!(
        o,
        r##"<line class="recommended" x1="{rx:.1}" y1="{PAD_T}" x2="{rx:.1}" y2="{}" stroke="#1a7f37" stroke-dasharray="2 2"/><text x="{:.1}" y="{}" font-size="10" fill="#1a7f37">{} seats</text>"##,
        H - PAD_B,
        rx + 3.0,
        PAD_T + 10.0,
        r.recommendation.shared_seats
    );
    let _ = write!(
        o,
        r##"<text x="{:.1}" y="{}" font-size="10" text-anchor="end">{}</text>"##,
        W - 10.0,
        H - PAD_B + 12.0,
        max_seats
    );
    o.push_str("</svg>");
    o
}

fn chart_heavy(r: &Report, id: &str) -> String {
    // Users by busy hours per working day, half-hour bins up to the working day.
    let bins = ((r.heavy_rule.workday_hours * 2.0).ceil() as usize).clamp(1, 48);
    let mut counts = vec![0u32; bins + 1];
    for u in &r.users {
        let b = ((u.busy_hours_per_working_day * 2.0).floor() as usize).min(bins);
        counts[b] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = counts.len() as f64;
    let bw = (W - PAD_L - 10.0) / n;
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg id="{id}chart-heavy" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img"><title>Heavy-user distribution</title>"#
    );
    axes(
        &mut o,
        max,
        "users",
        "busy hours per working day (last bar: a full working day or more)",
    );
    for (i, c) in counts.iter().enumerate() {
        let hours = i as f64 / 2.0;
        let heavy = hours + 0.5 > r.heavy_rule.threshold_hours;
        let y = y_of(*c as f64, max);
        let _ = write!(
            o,
            r##"<rect class="{}" x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{:.1}–{:.1} h: {c} users</title></rect>"##,
            if heavy { "bar heavy" } else { "bar" },
            x_of(i as f64, n) + 1.0,
            (bw - 2.0).max(1.0),
            (H - PAD_B - y).max(0.0),
            if heavy { "#d1242f" } else { "#1f6feb" },
            hours,
            hours + 0.5
        );
    }
    let tx = x_of(r.heavy_rule.threshold_hours * 2.0, n);
    let _ = write!(
        o,
        r##"<line class="threshold" x1="{tx:.1}" y1="{PAD_T}" x2="{tx:.1}" y2="{}" stroke="#555" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" font-size="10">heavy ≥ {:.1} h</text>"##,
        H - PAD_B,
        tx + 3.0,
        PAD_T + 10.0,
        r.heavy_rule.threshold_hours
    );
    o.push_str("</svg>");
    o
}

/// The single-file HTML report.
pub fn render_html(r: &Report) -> String {
    let mut o = html_head(&r.product);
    html_sections(&mut o, r, "");
    o.push_str(HTML_FOOT);
    o
}

const HTML_FOOT: &str = "<p class=\"note\">Made by iumgate analyze.</p></body></html>\n";

/// The page up to and including its `<h1>`.
fn html_head(product: &str) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>iumgate analysis — {product}</title><style>
body{{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:820px;color:#222;line-height:1.45}}
h1{{font-size:1.5em}}h2{{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}}
table{{border-collapse:collapse;font-size:.9em}}td,th{{padding:2px 8px;text-align:right;border-bottom:1px solid #eee}}
td:first-child,th:first-child{{text-align:left}}.big{{font-size:1.2em;background:#f4f8ff;padding:.8em;border-radius:6px}}
.heavy{{color:#d1242f}}.note{{color:#666;font-size:.85em}}svg{{max-width:100%;height:auto}}
</style></head><body><h1>Licence analysis — {product}</h1>"#,
        product = esc(product)
    );
    o
}

/// One analysis's sections; `id` prefixes the charts' element ids (unique per pool).
fn html_sections(o: &mut String, r: &Report, id: &str) {
    let rec = &r.recommendation;
    if let Some(p) = &r.period {
        let _ = write!(
            o,
            "<p>{} → {} ({} days, {} working days); {} users, {} of them heavy; {} requests read ({} malformed lines).</p>",
            esc(&p.first),
            esc(&p.last),
            p.days,
            p.working_days,
            r.totals.users,
            r.power_users.len(),
            r.totals.requests,
            r.totals.malformed
        );
    }
    let _ = write!(
        o,
        r#"<p class="big"><b>{} shared seats</b> keep waits at or below {} of logins{}. Licence: {} power users + {} shared seats + {} reserved = <b>{} users</b>{}.{}</p>"#,
        rec.shared_seats,
        pct(rec.target_wait_share),
        if rec.meets_target { "" } else { " (not reached in the simulated range)" },
        rec.power_users,
        rec.shared_seats,
        rec.reserved,
        rec.users_needed,
        rec.tier.map(|t| format!(" (tier {t})")).unwrap_or_default(),
        rec.current
            .as_ref()
            .map(|c| format!(
                " With the current tier of {} ({} shared seats), {} of logins would wait (mean {}, p95 {}).",
                c.tier,
                c.shared_seats,
                pct(c.result.wait_share),
                dur(c.result.mean_wait_s),
                dur(c.result.p95_wait_s)
            ))
            .unwrap_or_default()
    );
    let _ = write!(
        o,
        "<h2>Seats in use over time</h2><p class=\"note\">Grey: casual users busy at once (active, or idle less than {}), the seats at which nobody would wait. Blue: seats held in the simulation with {} shared seats. Red: the recommended seat count.</p>{}",
        dur(r.min_idle_s as f64),
        rec.shared_seats,
        chart_seats(r, id)
    );
    let _ = write!(
        o,
        "<h2>Waits against seat count</h2><p class=\"note\">Each point replays the logs through iumgate's pool with that many shared seats.</p>{}",
        chart_waits(&r.simulation, r, id)
    );
    o.push_str("<table><tr><th>seats</th><th>logins</th><th>waited</th><th>share</th><th>mean wait</th><th>p95 wait</th><th>peak held</th><th>evictions</th></tr>");
    for s in &r.simulation {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.seats,
            s.logins,
            s.waited,
            pct(s.wait_share),
            dur(s.mean_wait_s),
            dur(s.p95_wait_s),
            s.peak_held,
            s.evictions
        );
    }
    o.push_str("</table><p class=\"note\">Mean and p95 are over the logins that waited.</p>");
    let _ = write!(
        o,
        "<h2>Heavy users</h2><p>{}</p>{}",
        esc(&r.heavy_rule.explanation),
        chart_heavy(r, id)
    );
    o.push_str("<table><tr><th>user</th><th>days seen</th><th>busy h / working day</th><th>busy h / day seen</th><th>typical hours</th><th>activity requests</th></tr>");
    for u in r.users.iter().take(200) {
        let _ = write!(
            o,
            "<tr{}><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
            if u.heavy { " class=\"heavy\"" } else { "" },
            esc(&u.user),
            u.days_seen,
            u.busy_hours_per_working_day,
            u.busy_hours_per_day_seen,
            esc(u.typical_hours.as_deref().unwrap_or("-")),
            u.activity_requests
        );
    }
    o.push_str("</table>");
    if r.users.len() > 200 {
        let _ = write!(
            o,
            "<p class=\"note\">… and {} more users (see --json).</p>",
            r.users.len() - 200
        );
    }
    let _ = write!(
        o,
        "<h2>Recommended power users</h2><pre>{}</pre>",
        esc(&r.power_users.join("\n"))
    );
    o.push_str("<h2>Inputs</h2><table><tr><th>file</th><th>format</th><th>lines</th><th>requests</th><th>malformed</th></tr>");
    for f in &r.inputs {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.name),
            esc(&f.format),
            f.lines,
            f.requests,
            f.malformed
        );
    }
    o.push_str("</table>");
}

/// What a pool's seat covers, in words.
fn pool_scope(needs: &[String]) -> String {
    if needs.is_empty() {
        "every seat-needing request no other pool claims".to_owned()
    } else {
        format!("needs {}", needs.join("  "))
    }
}

/// The terminal summary with pools: an overview, then each pool's summary as
/// [`render_text`] gives it. Without pools, exactly [`render_text`] of the one report.
pub fn render_pools_text(r: &PoolsReport) -> String {
    if let (false, Some(only)) = (r.pooled, r.pools.first()) {
        return render_text(&only.report);
    }
    let mut o = String::new();
    let t = &r.totals;
    let _ = writeln!(
        o,
        "iumgate analyze — {} access logs, {} pools",
        r.product,
        r.pools.len()
    );
    if let Some(p) = &r.period {
        let _ = writeln!(
            o,
            "period       {} → {} ({} days, {} working days)",
            p.first, p.last, p.days, p.working_days
        );
    }
    let _ = writeln!(
        o,
        "read         {} lines in {} file(s): {} requests, {} need no seat (customer portal), {} malformed, {} skipped; {} users",
        t.lines,
        r.inputs.len(),
        t.requests,
        t.no_seat_requests,
        t.malformed,
        t.skipped,
        t.users
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "  {:<16} {:>9} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7}",
        "pool", "requests", "users", "heavy", "shared", "needed", "tier", "current"
    );
    for p in &r.pools {
        let rec = &p.report.recommendation;
        let _ = writeln!(
            o,
            "  {:<16} {:>9} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7}",
            p.name,
            p.report.totals.requests,
            p.report.totals.users,
            p.report.power_users.len(),
            rec.shared_seats,
            rec.users_needed,
            rec.tier.map_or_else(|| "-".to_owned(), |t| t.to_string()),
            rec.current
                .as_ref()
                .map_or_else(|| "-".to_owned(), |c| c.tier.to_string())
        );
    }
    let _ = writeln!(
        o,
        "  (shared: recommended shared seats; needed: power users + shared + reserved; tier: the licence tier that covers it)"
    );
    for p in &r.pools {
        let _ = writeln!(o);
        let _ = writeln!(o, "== pool {} ({}) ==", p.name, pool_scope(&p.needs));
        o.push_str(&render_text(&p.report));
    }
    o
}

/// The HTML report with pools: an overview table, then one section per pool with its own
/// charts and tables. Without pools, exactly [`render_html`] of the one report.
pub fn render_pools_html(r: &PoolsReport) -> String {
    if let (false, Some(only)) = (r.pooled, r.pools.first()) {
        return render_html(&only.report);
    }
    let mut o = html_head(&r.product);
    let t = &r.totals;
    let _ = write!(
        o,
        "<p>{} pools; {} requests read, {} of them needing no seat (the customer portal); {} users.</p>",
        r.pools.len(),
        t.requests,
        t.no_seat_requests,
        t.users
    );
    o.push_str("<table id=\"pools\"><tr><th>pool</th><th>requests</th><th>users</th><th>heavy</th><th>shared seats</th><th>users needed</th><th>tier</th><th>current tier: logins that wait</th></tr>");
    for p in &r.pools {
        let rec = &p.report.recommendation;
        let _ = write!(
            o,
            "<tr><td><a href=\"#pool-{n}\">{n}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.report.totals.requests,
            p.report.totals.users,
            p.report.power_users.len(),
            rec.shared_seats,
            rec.users_needed,
            rec.tier.map_or_else(|| "-".to_owned(), |t| t.to_string()),
            rec.current.as_ref().map_or_else(
                || "-".to_owned(),
                |c| format!("{} ({})", pct(c.result.wait_share), c.tier)
            ),
            n = esc(&p.name)
        );
    }
    o.push_str("</table>");
    for p in &r.pools {
        let _ = write!(
            o,
            "<section id=\"pool-{n}\" class=\"pool\"><h1>Pool {n}</h1><p class=\"note\">{}</p>",
            esc(&pool_scope(&p.needs)),
            n = esc(&p.name)
        );
        html_sections(&mut o, &p.report, &format!("pool-{}-", esc(&p.name)));
        o.push_str("</section>");
    }
    o.push_str(HTML_FOOT);
    o
}
