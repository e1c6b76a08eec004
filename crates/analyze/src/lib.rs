//! `iumgate analyze`: who must keep a fixed licence, how many shared seats a site needs and
//! how long people would wait — answered from the access logs the site already has.
//!
//! One streaming pass over the logs ([`Analyzer::read`]) turns requests into per-user sessions
//! (memory grows with users and their sessions, never with lines); [`Analyzer::finish`] then
//! picks the heavy users and replays the others' sessions through the proxy's own pool for a
//! range of seat counts (`sim`). `report` renders the result as text, JSON or HTML.

pub mod chart;
pub mod parse;
pub mod pools;
pub mod report;
pub mod sim;
pub mod stats;

use iumgate_core::product::{ActivityRules, Product};
use parse::{Format, Line};
use pools::{Needs, PoolDef, DEFAULT_POOL};
use serde::Serialize;
use sim::{SimInput, SimParams, SimResult};
use stats::Users;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use report::{render_html, render_pools_html, render_pools_text, render_text};

/// Licence tiers offered for Data Center (users), to round a need up to what can be bought.
/// *Approximate*: check the current price list.
pub const TIERS: &[u32] = &[
    50, 100, 250, 500, 750, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 7000, 8000, 9000,
    10_000, 15_000, 20_000, 25_000, 30_000, 35_000, 40_000, 45_000, 50_000,
];

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error("{0}")]
    Options(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}: cannot tell the log format from its first lines; pass --format or --pattern")]
    UnknownFormat(String),
}

/// Everything the analysis can be told (the command line's flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// Whose activity rules apply; None: the first log's format says (Jira otherwise).
    pub product: Option<Product>,
    /// Force a built-in format (`jira`, `confluence`, `bitbucket`, `iumgate`) for every file.
    pub format: Option<String>,
    /// A custom line regex (see [`parse::CustomPattern`]); wins over `format`.
    pub pattern: Option<String>,
    /// Extra activity rules, as `[activity] include`/`exclude` in the proxy's config.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// The proxy's `[ium] min_idle`.
    pub min_idle: Duration,
    /// The waiting page's poll interval (`[queue] retry_every`).
    pub retry_every: Duration,
    /// The working day a heavy user's busy time is measured against.
    pub workday: Duration,
    /// Heavy: busy at least this share of `workday` per working day, on average.
    pub heavy_share: f64,
    /// The recommendation keeps the share of logins that wait at or below this.
    pub target_wait_share: f64,
    /// The current licence tier, if known.
    pub tier: Option<u32>,
    /// Seats kept back for service accounts (`[licence] reserved`).
    pub reserved: u32,
    /// Seat counts to simulate; None: a range from the logs' own demand.
    pub seats: Option<Vec<usize>>,
    /// Show a progress bar (only drawn on a terminal).
    pub progress: bool,
    /// Pools besides the default one (issue 20), each reported on its own by
    /// [`Analyzer::finish_pools`]; see [`pools`] for which line counts where. Empty (the
    /// default): one pool, today's analysis, unchanged.
    pub pools: Vec<PoolDef>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            product: None,
            format: None,
            pattern: None,
            include: Vec::new(),
            exclude: Vec::new(),
            min_idle: Duration::from_secs(30 * 60),
            retry_every: Duration::from_secs(10),
            workday: Duration::from_secs(8 * 3600),
            heavy_share: 0.5,
            target_wait_share: 0.01,
            tier: None,
            reserved: 0,
            seats: None,
            progress: false,
            pools: Vec::new(),
        }
    }
}

/// What was read from one input.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileSummary {
    pub name: String,
    pub format: String,
    pub gzip: bool,
    pub lines: u64,
    pub requests: u64,
    pub malformed: u64,
    /// Well-formed lines that are not requests of interest (Bitbucket's "incoming" halves,
    /// SSH operations).
    pub skipped: u64,
    /// The first few malformed lines: (line number, start of the line).
    pub malformed_examples: Vec<(u64, String)>,
}

/// One user's activity, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct UserReport {
    pub user: String,
    pub requests: u64,
    pub activity_requests: u64,
    pub days_seen: u32,
    /// Mean busy hours (activity until `min_idle` after it) on the days the user was seen.
    pub busy_hours_per_day_seen: f64,
    /// Busy hours averaged over every working day of the period: the heavy-user measure.
    pub busy_hours_per_working_day: f64,
    /// The shortest run of hours holding 80% of the user's activity, e.g. "08–17".
    pub typical_hours: Option<String>,
    pub heavy: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeavyRule {
    pub threshold_hours: f64,
    pub workday_hours: f64,
    pub share: f64,
    pub explanation: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Period {
    pub first: String,
    pub last: String,
    pub days: i64,
    pub working_days: i64,
    /// The logs' UTC offset, seconds (days and hours are local to it).
    pub utc_offset_s: i32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub lines: u64,
    pub requests: u64,
    pub anonymous_requests: u64,
    pub activity_requests: u64,
    pub malformed: u64,
    pub skipped: u64,
    pub users: usize,
    pub casual_users: usize,
    pub sessions: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// Local time of the first bucket, and the bucket width.
    pub origin: String,
    pub bucket_s: i64,
    /// Casual users busy at once (most per bucket): the seats that let nobody wait.
    pub demand: Vec<u32>,
    /// Seats held per bucket with the recommended seat count.
    pub held: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CurrentTier {
    pub tier: u32,
    pub shared_seats: usize,
    pub result: SimResult,
}

#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    pub shared_seats: usize,
    /// False if even the largest simulated count missed the target.
    pub meets_target: bool,
    pub target_wait_share: f64,
    pub power_users: usize,
    pub reserved: u32,
    /// power users + shared seats + reserved.
    pub users_needed: usize,
    /// `users_needed` rounded up to a licence tier (see [`TIERS`]).
    pub tier: Option<u32>,
    pub current: Option<CurrentTier>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub product: String,
    pub min_idle_s: u64,
    pub retry_every_s: u64,
    pub inputs: Vec<FileSummary>,
    pub period: Option<Period>,
    pub totals: Totals,
    pub heavy_rule: HeavyRule,
    /// Sorted by busy hours per working day, busiest first.
    pub users: Vec<UserReport>,
    /// The recommended power-user list (heavy users), sorted by name.
    pub power_users: Vec<String>,
    /// Casual users busy at once at the peak.
    pub peak_demand: usize,
    /// One entry per simulated seat count, ascending.
    pub simulation: Vec<SimResult>,
    pub recommendation: Recommendation,
    pub timeline: Timeline,
}

/// One pool's analysis.
#[derive(Debug, Clone, Serialize)]
pub struct PoolReport {
    /// [`DEFAULT_POOL`] or a [`PoolDef::name`].
    pub name: String,
    /// The pool's `needs` (empty for the default pool: what no other pool claims).
    pub needs: Vec<String>,
    /// The pool's own analysis. Its `totals.requests` and `anonymous_requests` count the
    /// lines the pool's seat needs (with pools given); `lines`, `malformed` and `skipped`
    /// are the whole input's.
    pub report: Report,
}

/// Counts over every pool.
#[derive(Debug, Clone, Serialize)]
pub struct PoolsTotals {
    pub lines: u64,
    pub requests: u64,
    /// Requests that need no seat in any pool (the customer portal, [`pools::NO_SEAT`]).
    pub no_seat_requests: u64,
    pub malformed: u64,
    pub skipped: u64,
    /// Distinct users seen in any pool.
    pub users: usize,
}

/// [`Analyzer::finish_pools`]: one report per pool.
#[derive(Debug, Clone, Serialize)]
pub struct PoolsReport {
    pub product: String,
    /// Whether pools were given. When not, `pools` holds the default pool alone, and
    /// [`render_pools_text`], [`render_pools_html`] and [`PoolsReport::to_json`] give exactly
    /// today's single-pool output.
    pub pooled: bool,
    pub inputs: Vec<FileSummary>,
    pub period: Option<Period>,
    pub totals: PoolsTotals,
    /// The default pool first, then the given pools in order.
    pub pools: Vec<PoolReport>,
}

impl PoolsReport {
    /// The pool named `name`.
    pub fn pool(&self, name: &str) -> Option<&PoolReport> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The JSON `iumgate analyze --json` prints: without pools the single [`Report`] as
    /// today, with them this whole report.
    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self.pools.first() {
            Some(p) if !self.pooled => serde_json::to_value(&p.report),
            _ => serde_json::to_value(self),
        }
    }
}

/// The streaming pass. Feed it every input with [`Analyzer::read`], then [`Analyzer::finish`]
/// (one report, the default pool's) or [`Analyzer::finish_pools`] (one report per pool).
pub struct Analyzer {
    opts: Options,
    forced: Option<Format>,
    product: Option<Product>,
    /// The default pool first, then [`Options::pools`] in order.
    pools: Vec<PoolAcc>,
    /// Lines that need no seat ([`pools::NO_SEAT`]); None when no pools are given, so that
    /// today's single-pool analysis reads every line as before.
    no_seat: Option<Needs>,
    no_seat_requests: u64,
    /// `"METHOD /path"` of the line at hand (one buffer for every line).
    request_text: String,
    files: Vec<FileSummary>,
    first_ts: i64,
    last_ts: i64,
    offset_s: i32,
}

/// One pool's share of the log: the users and requests whose lines need its seat.
struct PoolAcc {
    name: String,
    needs: Vec<String>,
    /// None for the default pool (it takes what no other pool claims).
    matcher: Option<Needs>,
    users: Users,
    requests: u64,
    anonymous: u64,
    activity: u64,
    min_idle: Duration,
    tier: Option<u32>,
    reserved: u32,
    seats: Option<Vec<usize>>,
    /// The pool's own activity rules (see [`PoolDef::activity_include`]).
    include: Vec<String>,
    exclude: Vec<String>,
    /// Made once the product is known.
    rules: Option<ActivityRules>,
}

impl PoolAcc {
    fn new(name: &str, needs: Vec<String>, matcher: Option<Needs>) -> PoolAcc {
        PoolAcc {
            name: name.to_owned(),
            needs,
            matcher,
            users: Users::default(),
            requests: 0,
            anonymous: 0,
            activity: 0,
            min_idle: Duration::ZERO,
            tier: None,
            reserved: 0,
            seats: None,
            include: Vec::new(),
            exclude: Vec::new(),
            rules: None,
        }
    }
}

/// How many lines of a file are read to tell its format.
const SNIFF_LINES: usize = 50;
const MALFORMED_EXAMPLES: usize = 3;

impl Analyzer {
    pub fn new(opts: Options) -> Result<Analyzer, AnalyzeError> {
        let forced = match (&opts.pattern, &opts.format) {
            (Some(p), _) => Some(Format::Custom(Arc::new(
                parse::CustomPattern::new(p).map_err(AnalyzeError::Options)?,
            ))),
            (None, Some(name)) => Some(Format::builtin(name).ok_or_else(|| {
                AnalyzeError::Options(format!(
                    "--format {name}: expected jira, confluence, bitbucket or iumgate"
                ))
            })?),
            (None, None) => None,
        };
        // Written to reject NaN too.
        if opts.heavy_share.is_nan()
            || opts.heavy_share <= 0.0
            || opts.target_wait_share.is_nan()
            || opts.target_wait_share < 0.0
        {
            return Err(AnalyzeError::Options(
                "--heavy and --target must be positive shares".into(),
            ));
        }
        let mut default = PoolAcc::new(DEFAULT_POOL, Vec::new(), None);
        default.min_idle = opts.min_idle;
        default.tier = opts.tier;
        default.reserved = opts.reserved;
        default.seats = opts.seats.clone();
        let mut pool_accs = vec![default];
        for def in &opts.pools {
            let name = def.name.trim();
            let bad = |why: &str| AnalyzeError::Options(format!("pool `{name}`: {why}"));
            if name.is_empty() {
                return Err(AnalyzeError::Options("a pool needs a name".into()));
            }
            if pool_accs.iter().any(|p| p.name.eq_ignore_ascii_case(name)) {
                return Err(bad(&format!(
                    "the name is taken (`{DEFAULT_POOL}` is the default pool's)"
                )));
            }
            if def.needs.is_empty() {
                return Err(bad("`needs` is empty: no request would need its seat"));
            }
            if def.min_idle.is_some_and(|d| d.is_zero()) {
                return Err(bad("min_idle must be above zero"));
            }
            let matcher = Needs::new(&def.needs).map_err(|e| bad(&e))?;
            let mut acc = PoolAcc::new(name, def.needs.clone(), Some(matcher));
            acc.min_idle = def.min_idle.unwrap_or(opts.min_idle);
            acc.tier = def.tier;
            acc.reserved = def.reserved;
            acc.seats = def.seats.clone();
            acc.include = def.activity_include.clone();
            acc.exclude = def.activity_exclude.clone();
            pool_accs.push(acc);
        }
        let no_seat = if opts.pools.is_empty() {
            None
        } else {
            Some(Needs::new(pools::NO_SEAT).map_err(AnalyzeError::Options)?)
        };
        let mut a = Analyzer {
            product: opts.product,
            opts,
            forced,
            pools: pool_accs,
            no_seat,
            no_seat_requests: 0,
            request_text: String::new(),
            files: Vec::new(),
            first_ts: i64::MAX,
            last_ts: i64::MIN,
            offset_s: 0,
        };
        if let Some(p) = a.product {
            a.make_rules(p)?;
        }
        Ok(a)
    }

    /// Every pool's activity rules: the product's, the pool's own, then [`Options::include`]
    /// and [`Options::exclude`].
    fn make_rules(&mut self, p: Product) -> Result<(), AnalyzeError> {
        for pool in &mut self.pools {
            let include = [pool.include.as_slice(), &self.opts.include].concat();
            let exclude = [pool.exclude.as_slice(), &self.opts.exclude].concat();
            let rules = ActivityRules::new(p.profile(), &include, &exclude).map_err(|e| {
                AnalyzeError::Options(if pool.matcher.is_some() {
                    format!("pool `{}`: activity rule: {e}", pool.name)
                } else {
                    format!("activity rule: {e}")
                })
            })?;
            pool.rules = Some(rules);
        }
        Ok(())
    }

    /// Reads a file, plain or gzip (told by its first bytes), with a progress bar on a terminal.
    pub fn read_path(
        &mut self,
        path: &Path,
        bar: &indicatif::ProgressBar,
    ) -> Result<(), AnalyzeError> {
        let name = path.display().to_string();
        let io = |source| AnalyzeError::Io {
            path: name.clone(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut magic = [0u8; 2];
        let n = read_full(&mut file, &mut magic).map_err(io)?;
        let counted = Counted {
            inner: std::io::Cursor::new(magic[..n].to_vec()).chain(file),
            bar: bar.clone(),
        };
        let gzip = n == 2 && magic == [0x1f, 0x8b];
        let reader: Box<dyn BufRead> = if gzip {
            Box::new(BufReader::with_capacity(
                256 * 1024,
                flate2::read::MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, counted)),
            ))
        } else {
            Box::new(BufReader::with_capacity(256 * 1024, counted))
        };
        self.read(&name, reader)?;
        if let Some(s) = self.files.last_mut() {
            s.gzip = gzip;
        }
        Ok(())
    }

    /// Reads one log from `reader`. Malformed lines are counted, never fatal; a read error or a
    /// file whose format cannot be told is.
    pub fn read(
        &mut self,
        name: &str,
        mut reader: impl BufRead,
    ) -> Result<FileSummary, AnalyzeError> {
        let io = |source| AnalyzeError::Io {
            path: name.to_owned(),
            source,
        };
        let mut sample = Vec::new();
        let mut buf = Vec::with_capacity(1024);
        while sample.len() < SNIFF_LINES {
            buf.clear();
            if reader.read_until(b'\n', &mut buf).map_err(io)? == 0 {
                break;
            }
            sample.push(String::from_utf8_lossy(&buf).into_owned());
        }
        let format = match &self.forced {
            Some(f) => f.clone(),
            None => match parse::detect(&sample) {
                Some(f) => f,
                None if sample.iter().all(|l| l.trim().is_empty()) => Format::Jira,
                None => return Err(AnalyzeError::UnknownFormat(name.to_owned())),
            },
        };
        if self.product.is_none() {
            let p = format.product().unwrap_or_default();
            self.product = Some(p);
            self.make_rules(p)?;
        }
        let mut summary = FileSummary {
            name: name.to_owned(),
            format: format.name().to_owned(),
            ..FileSummary::default()
        };
        for line in &sample {
            self.line(&format, line, &mut summary);
        }
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf).map_err(io)? == 0 {
                break;
            }
            match std::str::from_utf8(&buf) {
                Ok(line) => self.line(&format, line, &mut summary),
                Err(_) => {
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    self.line(&format, &line, &mut summary);
                }
            }
        }
        self.files.push(summary.clone());
        Ok(summary)
    }

    fn line(&mut self, format: &Format, line: &str, summary: &mut FileSummary) {
        if line.trim().is_empty() {
            return;
        }
        summary.lines += 1;
        let owned;
        let r = match format.parse(line) {
            Line::Request(r) => r,
            Line::Escaped => match parse::iumgate_owned(line) {
                Some(o) => {
                    owned = o;
                    match owned.record() {
                        Some(r) => r,
                        None => return malformed(line, summary),
                    }
                }
                None => return malformed(line, summary),
            },
            Line::Skip => {
                summary.skipped += 1;
                return;
            }
            Line::Malformed => return malformed(line, summary),
        };
        summary.requests += 1;
        self.first_ts = self.first_ts.min(r.ts_ms);
        self.last_ts = self.last_ts.max(r.ts_ms);
        self.offset_s = r.offset_s;
        let pi = match &self.no_seat {
            None => 0,
            Some(no_seat) => {
                let text = &mut self.request_text;
                pools::write_request_line(text, r.method, r.path);
                if no_seat.is_match(text) {
                    self.no_seat_requests += 1;
                    return;
                }
                self.pools
                    .iter()
                    .position(|p| p.matcher.as_ref().is_some_and(|m| m.is_match(text)))
                    .unwrap_or(0)
            }
        };
        self.pools[pi].requests += 1;
        let Some(user) = r.user else {
            self.pools[pi].anonymous += 1;
            return;
        };
        let (Some(rules), Some(product)) = (&self.pools[pi].rules, self.product) else {
            return;
        };
        let profile = product.profile();
        let logout = profile.logout_paths.contains(&r.path)
            || (r.method == "DELETE" && profile.json_login == Some(r.path));
        let activity = !logout && rules.is_activity(r.method, r.path);
        if logout {
            // A logout ends the user's sessions in every pool (one app session holds them all).
            for (i, p) in self.pools.iter_mut().enumerate() {
                if i != pi {
                    if let Some(acc) = p.users.find_mut(user) {
                        acc.add_logout(r.ts_ms);
                    }
                }
            }
        }
        let pool = &mut self.pools[pi];
        let idle = pool.min_idle.as_millis() as i64;
        let acc = pool.users.slot(user);
        acc.requests += 1;
        if logout {
            acc.add_logout(r.ts_ms);
        } else if activity {
            acc.activity += 1;
            let local = r.ts_ms + r.offset_s as i64 * 1000;
            acc.hours[(local.rem_euclid(86_400_000) / 3_600_000) as usize] += 1;
            acc.add_activity(r.ts_ms, idle);
            pool.activity += 1;
        }
    }

    /// Heavy users, the simulation and the recommendation — of the default pool, which is
    /// every seat-needing line when [`Options::pools`] is empty (today's single-pool
    /// analysis). With pools, [`Analyzer::finish_pools`] reports them all.
    pub fn finish(self) -> Report {
        self.finish_pool(0)
    }

    /// One report per pool: the default pool's first, then [`Options::pools`] in order. Each
    /// pool is analysed on its own lines — its heavy users, its replay, its recommendation
    /// against its own tier — over the period of the whole log. Without pools this holds
    /// the default pool alone, exactly as [`Analyzer::finish`] reports it.
    pub fn finish_pools(self) -> PoolsReport {
        let pools: Vec<PoolReport> = (0..self.pools.len())
            .map(|i| PoolReport {
                name: self.pools[i].name.clone(),
                needs: self.pools[i].needs.clone(),
                report: self.finish_pool(i),
            })
            .collect();
        let mut names: Vec<&str> = self
            .pools
            .iter()
            .flat_map(|p| p.users.list.iter().map(|u| &*u.name))
            .collect();
        names.sort_unstable();
        names.dedup();
        let period = pools.first().and_then(|p| p.report.period.clone());
        let totals = PoolsTotals {
            lines: self.files.iter().map(|f| f.lines).sum(),
            requests: self.files.iter().map(|f| f.requests).sum(),
            no_seat_requests: self.no_seat_requests,
            malformed: self.files.iter().map(|f| f.malformed).sum(),
            skipped: self.files.iter().map(|f| f.skipped).sum(),
            users: names.len(),
        };
        PoolsReport {
            product: self.product.unwrap_or_default().name().to_owned(),
            pooled: self.no_seat.is_some(),
            inputs: self.files.clone(),
            period,
            totals,
            pools,
        }
    }

    /// The analysis of pool `index` (0: the default pool).
    fn finish_pool(&self, index: usize) -> Report {
        let o = &self.opts;
        let pool = &self.pools[index];
        let idle_ms = pool.min_idle.as_millis() as i64;
        let offset_ms = self.offset_s as i64 * 1000;
        let have_data = self.first_ts <= self.last_ts;
        let (first_day, last_day) = if have_data {
            (
                (self.first_ts + offset_ms).div_euclid(86_400_000),
                (self.last_ts + offset_ms).div_euclid(86_400_000),
            )
        } else {
            (0, -1)
        };
        let mut working_days = (first_day..=last_day)
            .filter(|d| stats::is_weekday(*d))
            .count() as i64;
        if working_days == 0 {
            working_days = (last_day - first_day + 1).max(1);
        }
        let workday_h = o.workday.as_secs_f64() / 3600.0;
        let threshold_h = workday_h * o.heavy_share;
        let heavy_rule = HeavyRule {
            threshold_hours: threshold_h,
            workday_hours: workday_h,
            share: o.heavy_share,
            explanation: format!(
                "A user is heavy when their activity keeps a seat busy (from an activity request \
                 until {} of inactivity after the last one, when the pool may take it) for at \
                 least {:.1} h per working day on average ({:.0}% of a {:.1} h working day) over \
                 the {} working days in the logs. Such a user would hold a shared seat most of \
                 the day anyway, so a fixed licence costs the pool nothing and saves them every \
                 wait. Tune with --heavy (share) and --workday.",
                humantime::format_duration(pool.min_idle),
                threshold_h,
                o.heavy_share * 100.0,
                workday_h,
                working_days
            ),
        };

        let mut users = Vec::with_capacity(pool.users.len());
        let mut input = SimInput::default();
        let mut sessions = 0usize;
        // Casual users enter the replay by name, so that ties between equal times break the
        // same way whatever order the logs were read in.
        let mut by_name: Vec<&stats::UserActivity> = pool.users.list.iter().collect();
        by_name.sort_by(|a, b| a.name.cmp(&b.name));
        for acc in by_name {
            let days = stats::busy_by_day(&acc.sessions, idle_ms, offset_ms);
            let busy_ms: i64 = days.iter().map(|(_, ms)| ms).sum();
            let days_seen = days.len() as u32;
            let per_working_day = busy_ms as f64 / 3_600_000.0 / working_days as f64;
            let heavy = acc.activity > 0 && per_working_day >= threshold_h;
            sessions += acc.sessions.len();
            if !heavy && !acc.sessions.is_empty() {
                let idx = input.users.len() as u32;
                input.users.push(iumgate_core::user::UserId::new(&acc.name));
                input
                    .sessions
                    .extend(acc.sessions.iter().map(|s| (idx, *s)));
            }
            users.push(UserReport {
                user: acc.name.to_string(),
                requests: acc.requests,
                activity_requests: acc.activity,
                days_seen,
                busy_hours_per_day_seen: if days_seen > 0 {
                    busy_ms as f64 / 3_600_000.0 / days_seen as f64
                } else {
                    0.0
                },
                busy_hours_per_working_day: per_working_day,
                typical_hours: stats::typical_hours(&acc.hours, 0.8)
                    .map(|(a, b)| format!("{a:02}–{b:02}")),
                heavy,
            });
        }
        users.sort_by(|a, b| {
            b.busy_hours_per_working_day
                .total_cmp(&a.busy_hours_per_working_day)
                .then_with(|| a.user.cmp(&b.user))
        });
        let mut power_users: Vec<String> = users
            .iter()
            .filter(|u| u.heavy)
            .map(|u| u.user.clone())
            .collect();
        power_users.sort();
        input.sessions.sort_by_key(|(u, s)| (s.start, *u));

        // ~400 buckets over the period (at least a minute each), plus room for the last idle.
        let span = if have_data {
            self.last_ts - self.first_ts
        } else {
            0
        };
        let bucket_ms = (span / 400).max(60_000);
        let params = SimParams {
            min_idle_ms: pool.min_idle.as_millis() as u64,
            retry_ms: o.retry_every.as_millis().max(1) as u64,
            origin_ms: if have_data { self.first_ts } else { 0 },
            bucket_ms,
            buckets: ((span + idle_ms) / bucket_ms + 1) as usize,
        };
        let (peak_demand, demand_series) = sim::demand(&input, &params);

        let target = o.target_wait_share;
        let mut results = match &pool.seats {
            Some(list) => run_all(&input, list, &params),
            None => sweep(&input, peak_demand, target, &params),
        };
        let power = power_users.len();
        let current = pool.tier.map(|tier| {
            let shared = (tier as usize).saturating_sub(power + pool.reserved as usize);
            let result = match results.iter().find(|r| r.seats == shared) {
                Some(r) => r.clone(),
                None => {
                    let r = sim::simulate(&input, shared, &params);
                    results.push(r.clone());
                    r
                }
            };
            CurrentTier {
                tier,
                shared_seats: shared,
                result,
            }
        });
        results.sort_by_key(|r| r.seats);
        results.dedup_by_key(|r| r.seats);
        let best = results.iter().find(|r| r.wait_share <= target);
        let (shared_seats, meets_target, held) = match best.or(results.last()) {
            Some(r) => (r.seats, best.is_some(), r.held_series.clone()),
            None => (0, true, vec![0; params.buckets]),
        };
        let users_needed = power + shared_seats + pool.reserved as usize;
        let recommendation = Recommendation {
            shared_seats,
            meets_target,
            target_wait_share: target,
            power_users: power,
            reserved: pool.reserved,
            users_needed,
            tier: TIERS.iter().copied().find(|t| *t as usize >= users_needed),
            current,
        };
        let totals = Totals {
            lines: self.files.iter().map(|f| f.lines).sum(),
            // With pools, a pool's requests are the lines its seat needs.
            requests: if self.no_seat.is_some() {
                pool.requests
            } else {
                self.files.iter().map(|f| f.requests).sum()
            },
            anonymous_requests: pool.anonymous,
            activity_requests: pool.activity,
            malformed: self.files.iter().map(|f| f.malformed).sum(),
            skipped: self.files.iter().map(|f| f.skipped).sum(),
            users: pool.users.len(),
            casual_users: input.users.len(),
            sessions,
        };
        Report {
            product: self.product.unwrap_or_default().name().to_owned(),
            min_idle_s: pool.min_idle.as_secs(),
            retry_every_s: o.retry_every.as_secs(),
            inputs: self.files.clone(),
            period: have_data.then(|| Period {
                first: parse::format_local(self.first_ts + offset_ms),
                last: parse::format_local(self.last_ts + offset_ms),
                days: last_day - first_day + 1,
                working_days,
                utc_offset_s: self.offset_s,
            }),
            totals,
            heavy_rule,
            users,
            power_users,
            peak_demand,
            simulation: results,
            recommendation,
            timeline: Timeline {
                origin: parse::format_local(params.origin_ms + offset_ms),
                bucket_s: bucket_ms / 1000,
                demand: demand_series,
                held,
            },
        }
    }
}
/// Simulates every count in `seats`, spread over the machine's cores.
fn run_all(input: &SimInput, seats: &[usize], p: &SimParams) -> Vec<SimResult> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
        .min(seats.len().max(1));
    let mut out: Vec<SimResult> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                s.spawn(move || {
                    seats
                        .iter()
                        .skip(k)
                        .step_by(threads)
                        .map(|&n| sim::simulate(input, n, p))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            // A panicking simulation thread loses only its own seat counts.
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    out.sort_by_key(|r| r.seats);
    out
}

/// Seat counts from the demand: every count up to 30, else 30 steps up to the peak; then a
/// binary search between the last step that misses the target and the first that meets it,
/// so the recommendation is exact (waits fall as seats grow).
fn sweep(input: &SimInput, peak: usize, target: f64, p: &SimParams) -> Vec<SimResult> {
    if peak == 0 {
        return vec![sim::simulate(input, 0, p)];
    }
    let grid: Vec<usize> = if peak <= 30 {
        (1..=peak).collect()
    } else {
        let mut g: Vec<usize> = (1..=30).map(|i| (peak * i).div_ceil(30)).collect();
        g.dedup();
        g
    };
    let mut results = run_all(input, &grid, p);
    if let Some(k) = results.iter().position(|r| r.wait_share <= target) {
        let (mut lo, mut hi) = (
            if k == 0 { 0 } else { results[k - 1].seats },
            results[k].seats,
        );
        // Invariant: lo misses the target (or is 0), hi meets it.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let r = sim::simulate(input, mid, p);
            if r.wait_share <= target {
                hi = mid;
            } else {
                lo = mid;
            }
            results.push(r);
        }
    }
    results.sort_by_key(|r| r.seats);
    results
}

/// Counts a line that does not fit, keeping the first few.
fn malformed(line: &str, summary: &mut FileSummary) {
    summary.malformed += 1;
    if summary.malformed_examples.len() < MALFORMED_EXAMPLES {
        let text: String = line.trim_end().chars().take(120).collect();
        summary.malformed_examples.push((summary.lines, text));
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Moves the progress bar by the bytes read from the file (compressed bytes for gzip).
struct Counted<R> {
    inner: R,
    bar: indicatif::ProgressBar,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// Reads every path and finishes the analysis. A file that cannot be opened or whose format
/// cannot be told stops the run with an error that names it.
pub fn analyze_files(paths: &[PathBuf], opts: Options) -> Result<Report, AnalyzeError> {
    Ok(read_files(paths, opts)?.finish())
}

/// [`analyze_files`] with one report per pool ([`Options::pools`]); see [`PoolsReport`].
pub fn analyze_files_pools(paths: &[PathBuf], opts: Options) -> Result<PoolsReport, AnalyzeError> {
    Ok(read_files(paths, opts)?.finish_pools())
}

fn read_files(paths: &[PathBuf], opts: Options) -> Result<Analyzer, AnalyzeError> {
    let bar = if opts.progress {
        let total: u64 = paths
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} reading logs {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut a = Analyzer::new(opts)?;
    for p in paths {
        a.read_path(p, &bar)?;
    }
    bar.finish_and_clear();
    Ok(a)
}
