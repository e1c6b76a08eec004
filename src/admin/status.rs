//! `/status` (JSON) and `/` (HTML): the per-user view that metrics must not
//! carry — who holds a seat and how long they have been idle, who waits,
//! the licence arithmetic, alerts with their fixes, job runs, recent grants
//! and evictions. Behind the admin token.

use crate::alerts::{Alert, Alerts};
use crate::gate::{Event, Gate};
use crate::jobs::{JobRun, JobRuns};
use crate::pages::escape;
use crate::user::UserId;
use serde::Serialize;

/// How many of the gate's recent events the status shows (newest first).
const RECENT: usize = 50;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub version: &'static str,
    pub now_ms: u64,
    pub ready: bool,
    /// False: plain proxy, no `[ium]` groups configured.
    pub gate: bool,
    /// The groups have been read at least once (before that nobody is admitted).
    pub reconciled: bool,
    pub seats: Seats,
    /// Longest idle first: the next to lose their seat.
    pub holders: Vec<Holder>,
    /// Head of the queue first.
    pub queue: Vec<Waiting>,
    pub alerts: Vec<Alert>,
    pub jobs: Vec<Job>,
    /// Grants, evictions and releases, newest first.
    pub recent: Vec<Event>,
    pub sessions: Sessions,
    pub settings: Settings,
    pub config_loaded_ms: u64,
    /// `[cluster]`: this replica's node id and the other replicas' alerts
    /// and job runs (as of the last exchange, every 2 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Cluster>,
    /// `[audit]` is on: each user links to their recent seat events
    /// (`audit?user=…`).
    pub audit_trail: bool,
    /// This pool's name ("default", or its `[pools.<name>]`) and the
    /// application role whose seats it hands out.
    pub pool: String,
    pub application: String,
    /// The pools beside the default one (`[pools.*]`), each as its own
    /// status: seats, holders, queue, alerts, jobs, recent events.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<Status>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub node: String,
    pub peers: Vec<crate::cluster::PeerState>,
}

/// The licence arithmetic: capacity = tier − fixed − reserved.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Seats {
    pub tier: u32,
    pub fixed: u32,
    pub reserved: u32,
    pub capacity: usize,
    pub in_use: usize,
    pub free: usize,
    pub queue: usize,
    /// Fixed-licence users also in an IUM group (a misconfiguration).
    pub power_in_ium: Vec<UserId>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Holder {
    pub user: UserId,
    pub since_ms: u64,
    pub last_active_ms: u64,
    pub idle_s: u64,
    pub held_s: u64,
    /// Idle at least `min_idle`: a newcomer may take this seat now.
    pub evictable: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Waiting {
    pub position: usize,
    pub user: UserId,
    pub since_ms: u64,
    pub waiting_s: u64,
    pub last_poll_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub job: &'static str,
    #[serde(flatten)]
    pub run: JobRun,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Sessions {
    pub tracked: usize,
    pub users: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Settings {
    pub min_idle_s: u64,
    pub retry_every_s: u64,
    pub message: Option<String>,
    pub logo_url: Option<String>,
}

/// Collects the status now. `alerts` is passed separately: a plain proxy
/// has alerts but no gate.
pub fn collect(
    gate: Option<&Gate>,
    job_runs: &JobRuns,
    alerts: &Alerts,
    ready: bool,
    config_loaded_ms: u64,
) -> Status {
    let mut st = Status {
        version: env!("CARGO_PKG_VERSION"),
        now_ms: 0,
        ready,
        gate: gate.is_some(),
        reconciled: false,
        seats: Seats::default(),
        holders: Vec::new(),
        queue: Vec::new(),
        alerts: alerts.list(),
        jobs: job_runs
            .list()
            .into_iter()
            .map(|(job, run)| Job { job, run })
            .collect(),
        recent: Vec::new(),
        sessions: Sessions::default(),
        settings: Settings::default(),
        config_loaded_ms,
        cluster: None,
        audit_trail: false,
        pool: crate::config::DEFAULT_POOL.to_string(),
        application: String::new(),
        pools: Vec::new(),
    };
    let Some(gate) = gate else {
        st.now_ms = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
        return st;
    };
    let now = gate.now();
    let s = gate.settings.load();
    st.now_ms = now;
    st.pool = gate.pool_name().to_string();
    st.application = s.application.clone();
    st.reconciled = gate.is_reconciled();
    st.audit_trail = gate.audit_trail().is_some();
    st.cluster = gate.cluster_node().map(|node| Cluster {
        node: node.to_string(),
        peers: gate.cluster_peers(),
    });
    let (holders, queue, capacity) = gate.snapshot_view();
    let a = gate.arithmetic();
    st.seats = Seats {
        tier: a.tier,
        fixed: a.fixed,
        reserved: a.reserved,
        capacity,
        in_use: holders.len(),
        free: capacity.saturating_sub(holders.len()),
        queue: queue.len(),
        power_in_ium: a.power_in_ium,
    };
    st.holders = holders
        .into_iter()
        .map(|h| {
            let idle_ms = now.saturating_sub(h.last_active);
            Holder {
                idle_s: idle_ms / 1000,
                held_s: now.saturating_sub(h.since) / 1000,
                evictable: idle_ms >= s.min_idle_ms,
                user: h.user,
                since_ms: h.since,
                last_active_ms: h.last_active,
            }
        })
        .collect();
    st.holders.sort_by(|x, y| {
        x.last_active_ms
            .cmp(&y.last_active_ms)
            .then_with(|| x.user.cmp(&y.user))
    });
    st.queue = queue
        .into_iter()
        .enumerate()
        .map(|(i, w)| Waiting {
            position: i + 1,
            waiting_s: now.saturating_sub(w.since) / 1000,
            user: w.user,
            since_ms: w.since,
            last_poll_ms: w.last_poll,
        })
        .collect();
    let events = gate.recent_events();
    st.recent = events.into_iter().rev().take(RECENT).collect();
    st.sessions = Sessions {
        tracked: gate.sessions.len(),
        users: gate.sessions.users(),
    };
    st.settings = Settings {
        min_idle_s: s.min_idle_ms / 1000,
        retry_every_s: s.retry_every_s,
        message: s.message.clone(),
        logo_url: s.logo_url.clone(),
    };
    st.pools = gate
        .pools()
        .iter()
        .map(|p| {
            collect(
                Some(&p.gate),
                &p.runs,
                &p.gate.alerts,
                ready,
                config_loaded_ms,
            )
        })
        .collect();
    st
}

const STYLE: &str = "body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;\
background:#f4f5f7;color:#172b4d;margin:0;padding:1.5rem}main{max-width:70rem;margin:0 auto}\
section{background:#fff;border-radius:6px;padding:1rem 1.5rem;margin-bottom:1rem;\
box-shadow:0 1px 3px rgba(9,30,66,.25)}h1{font-size:1.5rem}h2{font-size:1.1rem;margin-top:0}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .6rem;\
border-bottom:1px solid #dfe1e6}th{color:#5e6c84;font-weight:600}.muted{color:#5e6c84}\
.num{font-size:1.6rem;font-weight:600}.grid{display:flex;gap:1rem;flex-wrap:wrap}\
.grid div{min-width:7rem}.alert{border-left:4px solid #de350b;padding-left:.8rem;margin:.6rem 0}\
.ok{color:#00875a}.bad{color:#de350b}";

fn ago(now: u64, t: u64) -> String {
    let s = now.saturating_sub(t) / 1000;
    duration(s) + " ago"
}

fn duration(s: u64) -> String {
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 if s % 60 == 0 => format!("{} min", s / 60),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

fn when(now: u64, t: Option<u64>) -> String {
    t.map(|t| ago(now, t)).unwrap_or_else(|| "never".into())
}

/// The admin page: the same facts as `/status`, for a person. Refreshes
/// itself every 15 seconds.
pub fn render_html(st: &Status) -> String {
    let now = st.now_ms;
    let mut b = String::with_capacity(8 * 1024);
    b.push_str("<h1>iumgate — licence pool</h1>");
    if !st.gate {
        b.push_str("<section><p>Plain proxy: no <code>[ium]</code> groups are configured, so no licences are managed.</p></section>");
    } else if !st.reconciled {
        b.push_str("<section><p class=\"bad\">The IUM groups have not been read from the directory yet: nobody is admitted until they are.</p></section>");
    }

    // With further pools, each section names its pool.
    let named = !st.pools.is_empty();
    render_pool(&mut b, st, named, true);
    for p in &st.pools {
        render_pool(&mut b, p, true, false);
    }
    b.push_str(&format!(
        "<p class=\"muted\">iumgate {} · {} sessions of {} users tracked · config loaded {} · \
         <a href=\"status\">JSON</a> · <a href=\"metrics\">metrics</a></p>",
        st.version,
        st.sessions.tracked,
        st.sessions.users,
        if st.config_loaded_ms > 0 {
            ago(now.max(st.config_loaded_ms), st.config_loaded_ms)
        } else {
            "at start".into()
        }
    ));
    page(
        "iumgate — status",
        &b,
        "<meta http-equiv=\"refresh\" content=\"15\">",
    )
}

/// One pool's sections: seats, alerts, (the replicas, for the default
/// pool), holders, queue, jobs, recent events. `named`: headings and ids
/// carry the pool's name (there are several).
fn render_pool(b: &mut String, st: &Status, named: bool, first: bool) {
    let now = st.now_ms;
    let (of, id_of) = if named {
        let app = if st.application.is_empty() {
            String::new()
        } else {
            format!(" ({})", escape(&st.application))
        };
        (
            format!(" — pool “{}”{app}", escape(&st.pool)),
            if first {
                String::new()
            } else {
                format!("-{}", escape(&st.pool))
            },
        )
    } else {
        (String::new(), String::new())
    };
    if !first && !st.reconciled {
        b.push_str(&format!("<section><p class=\"bad\">The groups of pool “{}” have not been read from the directory yet: nobody gets its seats until they are.</p></section>", escape(&st.pool)));
    }
    let s = &st.seats;
    b.push_str(&format!(
        "<section id=\"pool{id_of}\"><h2>Seats{of}</h2><div class=\"grid\">"
    ));
    for (label, v, id) in [
        ("in use", s.in_use.to_string(), "in-use"),
        ("capacity", s.capacity.to_string(), "capacity"),
        ("free", s.free.to_string(), "free"),
        ("waiting", s.queue.to_string(), "waiting"),
    ] {
        b.push_str(&format!(
            "<div><div class=\"num\" id=\"{id}{id_of}\">{v}</div><div class=\"muted\">{label}</div></div>"
        ));
    }
    b.push_str("</div>");
    b.push_str(&format!(
        "<p id=\"arithmetic{id_of}\">Capacity {} = tier {} − {} fixed-licence users − {} reserved. \
         A seat held idle for {} may go to a newcomer.</p>",
        s.capacity,
        s.tier,
        s.fixed,
        s.reserved,
        duration(st.settings.min_idle_s)
    ));
    if !s.power_in_ium.is_empty() {
        let names: Vec<String> = s.power_in_ium.iter().map(|u| escape(u.as_str())).collect();
        b.push_str(&format!(
            "<p class=\"bad\">Fixed-licence users in an IUM group: {}</p>",
            names.join(", ")
        ));
    }
    b.push_str("</section>");

    b.push_str(&format!("<section><h2>Alerts{of}</h2>"));
    if st.alerts.is_empty() {
        b.push_str("<p class=\"ok\">No alerts.</p>");
    }
    for a in &st.alerts {
        b.push_str(&format!(
            "<div class=\"alert\"><strong>{}</strong> — {}<br><span>Fix: {}</span><br>\
             <span class=\"muted\">since {}, {} time(s), last {}</span></div>",
            escape(&a.key),
            escape(&a.text),
            escape(&a.fix),
            ago(now, a.since_ms),
            a.count,
            ago(now, a.last_ms)
        ));
    }
    b.push_str("</section>");

    if let (true, Some(c)) = (first, &st.cluster) {
        b.push_str(&format!(
            "<section><h2>Replicas</h2><p>This replica: <strong>{}</strong>; the pool is shared on Redis.</p>",
            escape(&c.node)
        ));
        if c.peers.is_empty() {
            b.push_str("<p class=\"muted\">No other replica has reported in the last seconds.</p>");
        }
        for p in &c.peers {
            b.push_str(&format!("<h3>{}</h3>", escape(&p.node)));
            if p.alerts.is_empty() {
                b.push_str("<p class=\"ok\">No alerts.</p>");
            }
            for a in &p.alerts {
                b.push_str(&format!(
                    "<div class=\"alert\"><strong>{}</strong> — {}<br><span>Fix: {}</span></div>",
                    escape(&a.key),
                    escape(&a.text),
                    escape(&a.fix)
                ));
            }
            let ran: Vec<String> = p
                .jobs
                .iter()
                .map(|(j, r)| match r.last_success_ms {
                    Some(t) => format!("{} {}", escape(j), ago(now, t)),
                    None => format!("{} never", escape(j)),
                })
                .collect();
            if !ran.is_empty() {
                b.push_str(&format!(
                    "<p class=\"muted\">Jobs, last success: {}</p>",
                    ran.join(", ")
                ));
            }
        }
        b.push_str("</section>");
    }

    b.push_str(&format!("<section><h2>Seat holders{of}</h2>"));
    if st.holders.is_empty() {
        b.push_str("<p class=\"muted\">Nobody holds a shared seat.</p>");
    } else {
        b.push_str(&format!("<table id=\"holders{id_of}\"><tr><th>user</th><th>idle</th><th>holding since</th><th></th></tr>"));
        for h in &st.holders {
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"muted\">{}</td></tr>",
                user_cell(h.user.as_str(), st.audit_trail),
                duration(h.idle_s),
                ago(now, h.since_ms),
                if h.evictable { "may be taken" } else { "" }
            ));
        }
        b.push_str("</table>");
    }
    b.push_str("</section>");

    b.push_str(&format!("<section><h2>Queue{of}</h2>"));
    if st.queue.is_empty() {
        b.push_str("<p class=\"muted\">Nobody is waiting.</p>");
    } else {
        b.push_str(&format!("<table id=\"queue{id_of}\"><tr><th>#</th><th>user</th><th>waiting</th><th>last poll</th></tr>"));
        for w in &st.queue {
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                w.position,
                user_cell(w.user.as_str(), st.audit_trail),
                duration(w.waiting_s),
                ago(now, w.last_poll_ms)
            ));
        }
        b.push_str("</table>");
    }
    b.push_str("</section>");

    b.push_str(&format!("<section><h2>Jobs{of}</h2>"));
    if st.jobs.is_empty() {
        b.push_str("<p class=\"muted\">No background jobs.</p>");
    } else {
        b.push_str(&format!("<table id=\"jobs{id_of}\"><tr><th>job</th><th>every</th><th>last run</th><th>last success</th><th>last failure</th></tr>"));
        for j in &st.jobs {
            let failure = match (&j.run.last_failure_ms, &j.run.last_error) {
                (Some(t), Some(e)) => format!("{}: {}", ago(now, *t), escape(e)),
                (Some(t), None) => ago(now, *t),
                _ => "never".into(),
            };
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(j.job),
                if j.run.every_s > 0 {
                    duration(j.run.every_s)
                } else {
                    "—".into()
                },
                when(now, j.run.last_start_ms),
                when(now, j.run.last_success_ms),
                failure
            ));
        }
        b.push_str("</table>");
    }
    b.push_str("</section>");

    b.push_str(&format!(
        "<section><h2>Recent grants and evictions{of}</h2>"
    ));
    if st.recent.is_empty() {
        b.push_str("<p class=\"muted\">Nothing yet.</p>");
    } else {
        b.push_str(&format!("<table id=\"recent{id_of}\"><tr><th>when</th><th>what</th><th>user</th><th>seat taken from</th></tr>"));
        for e in &st.recent {
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                ago(now, e.at_ms),
                escape(e.kind),
                user_cell(e.user.as_str(), st.audit_trail),
                e.victim
                    .as_ref()
                    .map(|v| escape(v.as_str()))
                    .unwrap_or_default()
            ));
        }
        b.push_str("</table>");
    }
    b.push_str("</section>");
}

/// Shown with the 401 when the browser has no (or a wrong) token.
pub fn render_login() -> String {
    page(
        "iumgate — admin",
        "<h1>iumgate — admin</h1><section><p id=\"need-token\">This page needs the admin token \
         (<code>[admin] token_env</code> / <code>token_file</code>): give any user name and the \
         token as password.</p><p class=\"muted\">Scripts send \
         <code>Authorization: Bearer &lt;token&gt;</code>.</p></section>",
        "",
    )
}

/// A user's name, linked to their recent seat events when the trail is on.
fn user_cell(user: &str, audit_trail: bool) -> String {
    if !audit_trail {
        return escape(user);
    }
    let q: String = form_urlencoded::byte_serialize(user.as_bytes()).collect();
    format!(
        "<a href=\"audit?user={}\" title=\"seat events\">{}</a>",
        escape(&q),
        escape(user)
    )
}

/// How much of the trail's current file the user page reads at most (its
/// end), and how many of the user's lines it shows.
pub const AUDIT_READ_BYTES: u64 = 8 * 1024 * 1024;
/// How much of the newest rotated file it reads at most (decompressed), when
/// the current file has too few of the user's lines.
pub const AUDIT_ROTATION_BYTES: u64 = 64 * 1024 * 1024;
pub const AUDIT_LINES: usize = 200;

/// `audit?user=…`: the user's recent seat events, newest first.
pub fn render_audit(user: &str, lines: &[crate::audit::Line], note: Option<&str>) -> String {
    let mut b = format!("<h1>Seat events of {}</h1><section>", escape(user));
    if let Some(n) = note {
        b.push_str(&format!("<p class=\"bad\">{}</p>", escape(n)));
    }
    if lines.is_empty() {
        b.push_str("<p class=\"muted\">No event of this user in the trail's recent lines.</p>");
    } else {
        b.push_str("<table id=\"events\"><tr><th>when (UTC)</th><th>event</th><th>reason</th><th>user</th><th>other</th><th>pool</th><th>in use</th><th>node</th></tr>");
        for l in lines {
            let other = match (&l.victim, &l.for_user, l.waited_ms) {
                (Some(v), _, _) => format!("seat of {}", escape(v)),
                (_, Some(f), _) => format!("for {}", escape(f)),
                (_, _, Some(ms)) => format!("waited {}", duration(ms / 1000)),
                _ => String::new(),
            };
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
                escape(&l.ts),
                l.kind.label(),
                escape(&l.reason),
                escape(&l.user),
                other,
                escape(&l.pool),
                l.in_use,
                l.capacity,
                escape(&l.node)
            ));
        }
        b.push_str("</table>");
    }
    b.push_str(&format!(
        "<p class=\"muted\">The last {AUDIT_LINES} events at most, from the end of the current file \
         and the newest rotated one (older ones: <code>iumgate audit --user</code>). \
         <a href=\"./\">Back to the status</a></p></section>"
    ));
    page(&format!("iumgate — {user}"), &b, "")
}

fn page(title: &str, body: &str, head_extra: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{}</title><style>{STYLE}</style>{head_extra}</head><body><main>{body}</main></body></html>",
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_escaped_on_the_page() {
        let alerts = Alerts::default();
        alerts.raise("x", "<b>bold</b>", "fix <it>", 1);
        let mut st = collect(None, &JobRuns::default(), &alerts, true, 0);
        st.holders.push(Holder {
            user: UserId::new("<script>alert(1)</script>"),
            since_ms: 0,
            last_active_ms: 0,
            idle_s: 0,
            held_s: 0,
            evictable: false,
        });
        let html = render_html(&st);
        assert!(!html.contains("<script>alert(1)"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("&lt;b&gt;bold"));
    }

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(duration(5), "5 s");
        assert_eq!(duration(125), "2 min 5 s");
        assert_eq!(duration(120), "2 min");
        assert_eq!(duration(7260), "2 h 1 min");
    }
}
