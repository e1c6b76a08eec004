//! The `iumgate` command line.

use clap::{Parser, Subcommand};
use iumgate::config::Config;
use iumgate::proxy::error_chain;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: the request path allocates and frees many small, short-lived
/// objects (header maps, buffers, futures); glibc's malloc/free were ≈ 5 % of
/// the proxy's profile (docs/PERFORMANCE.md). Its v2 line, built with its
/// arena committed on demand (`.cargo/config.toml`), because then it returns
/// freed memory to the OS: idle RSS after a reconcile 14 MB, where v3 kept
/// 25 MB resident and v2 with eager commit 19 MB (glibc: 15 MB).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "iumgate",
    version,
    about = "Hands Atlassian Data Center licences out to the users who are active"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the proxy (the main job).
    Serve {
        /// The TOML config file (see config/iumgate.example.toml).
        #[arg(short, long, env = "IUMGATE_CONFIG")]
        config: PathBuf,
    },
    /// Run the proxy in front of the built-in Atlassian simulator (no Jira needed).
    Demo {
        /// jira, confluence or bitbucket.
        #[arg(long, default_value = "jira")]
        product: iumgate::product::Product,
        /// Where the proxy listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Where the admin endpoints listen [default: 127.0.0.1:9102, or a
        /// free port on the proxy's address when --listen has port 0].
        #[arg(long)]
        admin_listen: Option<std::net::SocketAddr>,
        /// Minimum inactivity before a seat may be taken (short, for trying it out).
        #[arg(long, default_value = "2m", value_parser = parse_dur)]
        min_idle: std::time::Duration,
        /// The app's login: `form` (older versions), `json` (today's login
        /// page, with two-step verification for casual20, code 424242),
        /// `saml` (single sign-on through the simulator's IdP, verified) or
        /// `oidc` (OpenID Connect through the simulator's OIDC IdP, with
        /// iumgate as a relying party).
        #[arg(long, value_enum, default_value = "form")]
        login: iumgate::demo::DemoLogin,
        /// Write an access log ([access_log], iumgate's JSON lines) to this
        /// file, or `-` for standard output: `iumgate analyze FILE` reads it.
        #[arg(long, value_name = "FILE")]
        access_log: Option<PathBuf>,
        /// Jira only: the simulated Jira also runs Service Management, and
        /// iumgate hands its agent seats out as a second pool
        /// ([pools.service]: agents agent01…, both-pool users both1…,
        /// portal customers customer1… who need no seat).
        #[arg(long)]
        service_management: bool,
    },
    /// Check a config file and exit (0: valid, 2: errors, each naming key and line).
    CheckConfig {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Diagnose the setup against the running app (0: all is well, 1: something
    /// needs the admin, 2: the check itself could not run).
    Check {
        #[arg(short, long, env = "IUMGATE_CONFIG")]
        config: PathBuf,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Bring casual users in: add `[sync] source_groups` members who are neither
    /// deactivated nor holding a fixed licence to the IUM user group.
    /// Without --apply it only prints the plan.
    Sync {
        #[arg(short, long, env = "IUMGATE_CONFIG")]
        config: PathBuf,
        /// Make the changes (journaled first; an interrupted run resumes).
        #[arg(long, conflicts_with = "undo")]
        apply: bool,
        /// Revert the last run recorded in this journal.
        #[arg(long, value_name = "JOURNAL")]
        undo: Option<PathBuf>,
        /// Where --apply journals its changes.
        #[arg(
            long,
            value_name = "FILE",
            default_value = "iumgate-sync-journal.jsonl"
        )]
        journal: PathBuf,
        /// List the users of each category.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Probe a health endpoint: exit 0 on 200, 1 otherwise (the container
    /// image's HEALTHCHECK; the image has no curl).
    Healthcheck {
        #[arg(
            long,
            env = "IUMGATE_HEALTHCHECK_URL",
            default_value = "http://127.0.0.1:9102/healthz"
        )]
        url: String,
    },
    /// Find the heavy users and the licence tier a site needs, from its access logs.
    Analyze(Box<AnalyzeArgs>),
    /// The seat audit trail ([audit]): print its events, filtered
    /// (`iumgate audit -c iumgate.toml --user jdoe --since 2026-11-01`), or
    /// `iumgate audit report --month 2026-11` for a licence review.
    Audit(Box<AuditArgs>),
    /// Print a shell completion script on stdout, e.g.
    /// `iumgate completions bash > /etc/bash_completion.d/iumgate`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout (`iumgate man > iumgate.1`), or
    /// write one page per command into a directory.
    Man {
        /// Write iumgate.1 and iumgate-<command>.1 for each command here.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// The completion script for `shell`, from the command line definition.
fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "iumgate", &mut out);
    out
}

/// The man page of `iumgate` (roff), or with `out_dir` one page per command
/// written there.
fn man(out_dir: Option<&std::path::Path>) -> ExitCode {
    let cmd = <Cli as clap::CommandFactory>::command();
    if let Some(dir) = out_dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("iumgate man: {}: {e}", dir.display());
            return ExitCode::from(1);
        }
        return match clap_mangen::generate_to(cmd, dir) {
            Ok(()) => {
                println!("man pages written to {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("iumgate man: {}: {e}", dir.display());
                ExitCode::from(1)
            }
        };
    }
    let mut out = Vec::new();
    if let Err(e) = clap_mangen::Man::new(cmd).render(&mut out) {
        eprintln!("iumgate man: cannot render the man page: {e}");
        return ExitCode::from(1);
    }
    print_all(&out, "man")
}

/// Writes `bytes` to stdout; a closed pipe (`| head`) or a full disk is an
/// error message and exit 1, not a panic.
fn print_all(bytes: &[u8], what: &str) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iumgate {what}: cannot write to stdout: {e}");
            ExitCode::from(1)
        }
    }
}

#[derive(clap::Args, Debug)]
struct AnalyzeArgs {
    /// Access logs (Jira, Confluence, Bitbucket, iumgate JSON lines), plain or gzip.
    #[arg(required = true)]
    logs: Vec<PathBuf>,
    /// Take product, activity rules, min_idle, retry_every, tier and reserved from this
    /// iumgate config (flags given here win), and its [pools.*]: each pool is reported on
    /// its own (a line counts for the pool its path needs).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Report Jira Service Management's agents as a pool of their own, `service` (agent
    /// pages need its seat, the customer portal none; queue and SLA refreshes are not
    /// activity), unless the config has a jira-servicedesk pool already.
    #[arg(long)]
    service_management: bool,
    /// Minimum inactivity before a seat may be taken ([ium] min_idle).
    #[arg(long, value_parser = parse_dur)]
    idle: Option<std::time::Duration>,
    /// The current licence tier (users).
    #[arg(long)]
    tier: Option<u32>,
    /// Seats kept back for service accounts ([licence] reserved).
    #[arg(long)]
    reserved: Option<u32>,
    /// jira, confluence or bitbucket (default: told by the log format).
    #[arg(long)]
    product: Option<iumgate::product::Product>,
    /// Force the log format: jira, confluence, bitbucket or iumgate (default: detected per file).
    #[arg(long)]
    format: Option<String>,
    /// A custom line regex with named groups time, user and request (or method and path).
    #[arg(long)]
    pattern: Option<String>,
    /// Extra activity rule (regex over "METHOD /path"); repeatable.
    #[arg(long)]
    include: Vec<String>,
    /// Never-activity rule (wins over includes); repeatable.
    #[arg(long)]
    exclude: Vec<String>,
    /// Heavy: busy at least this share of the working day, e.g. 50% or 0.5.
    #[arg(long, default_value = "50%", value_parser = parse_share)]
    heavy: f64,
    /// The working day heavy users are measured against.
    #[arg(long, default_value = "8h", value_parser = parse_dur)]
    workday: std::time::Duration,
    /// Largest share of logins that may wait with the recommended seats.
    #[arg(long, default_value = "1%", value_parser = parse_share)]
    target: f64,
    /// Seat counts to simulate, e.g. "10-40" or "20,25,30" (default: from the logs' demand).
    #[arg(long, value_parser = parse_seats)]
    seats: Option<Vec<usize>>,
    /// Print the report as JSON instead of the summary.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML report with charts.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Also write the recommended power users, one per line (input for the group set-up).
    #[arg(long)]
    power_users: Option<PathBuf>,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

fn parse_share(s: &str) -> Result<f64, String> {
    let (num, scale) = match s.trim().strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (s.trim(), 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v >= 0.0 && v / scale <= 1.0 => Ok(v / scale),
        _ => Err(format!("`{s}`: expected a share such as 50% or 0.5")),
    }
}

fn parse_seats(s: &str) -> Result<Vec<usize>, String> {
    let bad = || format!("`{s}`: expected seat counts such as 10-40 or 20,25,30");
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.trim().parse().map_err(|_| bad())?;
                let b: usize = b.trim().parse().map_err(|_| bad())?;
                if a > b || b - a > 10_000 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().map_err(|_| bad())?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Where the trail is: the config's `[audit] path` (with its rotations and
/// replicas' files), and/or files and directories given.
#[derive(clap::Args, Debug)]
struct AuditInputs {
    /// Read `[audit] path` of this config file (with its rotated files).
    #[arg(short, long, env = "IUMGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Trail files (plain or gzip) or directories of them (names with
    /// `.jsonl`); several replicas' files are merged in time order.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct AuditArgs {
    #[command(subcommand)]
    cmd: Option<AuditCmd>,
    #[command(flatten)]
    inputs: AuditInputs,
    /// From this time on: 2026-11-03 (UTC), 2026-11-03T09:00 (UTC) or RFC 3339.
    #[arg(long)]
    since: Option<String>,
    /// Before this time (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Only this user's events.
    #[arg(long)]
    user: Option<String>,
    /// Only this pool's events (`default` for [ium]).
    #[arg(long)]
    pool: Option<String>,
    /// The lines as JSON lines (the trail's own form).
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// The lines as CSV, with a header.
    #[arg(long)]
    csv: bool,
}

#[derive(Subcommand, Debug)]
enum AuditCmd {
    /// A month from the trail: per day the peak of seats in use against the
    /// capacity, seat-hours per user, evictions, waits and their length.
    Report {
        #[command(flatten)]
        inputs: AuditInputs,
        /// The month, e.g. 2026-11 (UTC days).
        #[arg(long)]
        month: String,
        /// The pool to report on: `default` ([ium]) or a `[pools.NAME]`
        /// (each pool has its own seats and capacity).
        #[arg(long, default_value = "default")]
        pool: String,
        /// Also write the report as one HTML file with a chart.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Print the report as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn audit_files(i: &AuditInputs) -> Result<Vec<PathBuf>, ExitCode> {
    use iumgate::audit::read;
    let mut files = Vec::new();
    if let Some(c) = &i.config {
        let cfg = load(c)?;
        match &cfg.audit.path {
            Some(p) => files.extend(read::files_of_config_path(p)),
            None => {
                eprintln!(
                    "iumgate audit: {} has no [audit] path: the trail is off",
                    c.display()
                );
                return Err(ExitCode::from(2));
            }
        }
    }
    match read::expand(&i.paths) {
        Ok(f) => files.extend(f),
        Err(e) => {
            eprintln!("iumgate audit: {}", error_chain(&e));
            return Err(ExitCode::from(1));
        }
    }
    if files.is_empty() {
        eprintln!("iumgate audit: no trail to read: give -c CONFIG or trail files");
        return Err(ExitCode::from(2));
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn audit(a: AuditArgs) -> ExitCode {
    use iumgate::audit::{read, report};
    use std::io::Write;
    let time = |s: &Option<String>| s.as_deref().map(read::parse_time).transpose();
    match a.cmd {
        Some(AuditCmd::Report {
            inputs,
            month,
            pool,
            html,
            json,
        }) => {
            let month = match report::Month::parse(&month) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("iumgate audit report: --month {e}");
                    return ExitCode::from(2);
                }
            };
            let files = match audit_files(&inputs) {
                Ok(f) => f,
                Err(code) => return code,
            };
            let filter = read::Filter {
                since_ms: Some(month.start_ms - report::LOOKBACK_MS),
                until_ms: Some(month.end_ms),
                pool: Some(pool.clone()),
                ..read::Filter::default()
            };
            let (lines, inputs) = match read::collect(&files, &filter) {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("iumgate audit report: {}", error_chain(&e));
                    return ExitCode::from(1);
                }
            };
            let now = iumgate::clock::Clock::now_ms(&iumgate::clock::SystemClock);
            let mut r = report::build(month, &lines, i64::try_from(now).unwrap_or(i64::MAX));
            r.inputs = inputs;
            r.pool = pool;
            if json {
                match serde_json::to_string_pretty(&r) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("iumgate audit report: cannot write JSON: {e}");
                        return ExitCode::from(1);
                    }
                }
            } else {
                print!("{}", report::render_text(&r));
            }
            if let Some(path) = &html {
                if let Err(e) = std::fs::write(path, report::render_html(&r)) {
                    eprintln!("iumgate audit report: {}: {e}", path.display());
                    return ExitCode::from(1);
                }
            }
            ExitCode::SUCCESS
        }
        None => {
            let (since_ms, until_ms) = match (time(&a.since), time(&a.until)) {
                (Ok(s), Ok(u)) => (s, u),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("iumgate audit: {e}");
                    return ExitCode::from(2);
                }
            };
            let files = match audit_files(&a.inputs) {
                Ok(f) => f,
                Err(code) => return code,
            };
            let filter = read::Filter {
                since_ms,
                until_ms,
                user: a.user,
                pool: a.pool,
            };
            let (lines, inputs) = match read::collect(&files, &filter) {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("iumgate audit: {}", error_chain(&e));
                    return ExitCode::from(1);
                }
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut w = || -> std::io::Result<()> {
                if a.csv {
                    writeln!(out, "{}", read::CSV_HEADER)?;
                }
                for (_, l) in &lines {
                    if a.csv {
                        writeln!(out, "{}", read::csv_row(l))?;
                    } else if a.json {
                        writeln!(out, "{}", serde_json::to_string(l)?)?;
                    } else {
                        writeln!(
                            out,
                            "{}  {:<9} {:<18} {:<20} {:>3}/{:<3} {}{}{}",
                            l.ts,
                            l.kind.label(),
                            l.reason,
                            l.user,
                            l.in_use,
                            l.capacity,
                            l.node,
                            l.victim
                                .as_deref()
                                .map(|v| format!("  (seat of {v})"))
                                .unwrap_or_default(),
                            l.for_user
                                .as_deref()
                                .map(|v| format!("  (for {v})"))
                                .unwrap_or_default(),
                        )?;
                    }
                }
                out.flush()
            };
            if let Err(e) = w() {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    eprintln!("iumgate audit: {e}");
                    return ExitCode::from(1);
                }
            }
            let malformed: u64 = inputs.iter().map(|i| i.malformed).sum();
            if malformed > 0 {
                eprintln!("iumgate audit: {malformed} malformed lines skipped");
            }
            ExitCode::SUCCESS
        }
    }
}

/// The pools `iumgate analyze` reports beside the default one: the config's
/// `[pools.*]` (names, needs, min_idle, reserved, a fixed tier; a
/// jira-servicedesk pool with Service Management's activity rules, as the
/// proxy has them), then with `--service-management` the built-in one unless
/// the config has a jira-servicedesk pool already.
fn analyze_pools(
    cfg: Option<&Config>,
    service_management: bool,
) -> Result<Vec<iumgate::analyze::pools::PoolDef>, String> {
    use iumgate::analyze::pools::PoolDef;
    use iumgate::config::{Tier, SERVICE_MANAGEMENT};
    let mut pools = Vec::new();
    let mut has_service_management = false;
    for (name, p) in cfg.map(|c| &c.pools).into_iter().flatten() {
        let sm = p.application.eq_ignore_ascii_case(SERVICE_MANAGEMENT);
        has_service_management |= sm;
        let base = if sm {
            PoolDef::service_management()
        } else {
            PoolDef::default()
        };
        pools.push(PoolDef {
            name: name.clone(),
            needs: p.needs.clone(),
            min_idle: Some(p.min_idle.get()),
            tier: match p.tier {
                Tier::Fixed(t) => Some(t),
                Tier::Auto => None,
            },
            reserved: p.reserved,
            seats: None,
            ..base
        });
    }
    if service_management && !has_service_management {
        let def = PoolDef::service_management();
        if pools.iter().any(|p| p.name == def.name) {
            return Err(format!(
                "--service-management: the config has a pool named `{}` already, for another application; remove the flag or rename that pool",
                def.name
            ));
        }
        pools.push(def);
    }
    Ok(pools)
}

/// Where `iumgate analyze` writes its report.
struct AnalyzeOutputs {
    json: bool,
    html: Option<PathBuf>,
    power_users: Option<PathBuf>,
}

/// `iumgate analyze` with pools: one report per pool.
fn analyze_pooled(
    logs: &[PathBuf],
    opts: iumgate::analyze::Options,
    a: &AnalyzeOutputs,
) -> ExitCode {
    use iumgate::analyze;
    let report = match analyze::analyze_files_pools(logs, opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("iumgate analyze: {e}");
            return ExitCode::from(1);
        }
    };
    if a.json {
        match report
            .to_json()
            .and_then(|v| serde_json::to_string_pretty(&v))
        {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("iumgate analyze: cannot write JSON: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{}", analyze::render_pools_text(&report));
    }
    if let Some(path) = &a.html {
        if let Err(e) = std::fs::write(path, analyze::render_pools_html(&report)) {
            eprintln!("iumgate analyze: {}: {e}", path.display());
            return ExitCode::from(1);
        }
        if !a.json {
            println!("HTML report: {}", path.display());
        }
    }
    // The default pool's power users go to the file; each other pool's to
    // `<file>.<pool>` (their fixed groups differ).
    if let Some(path) = &a.power_users {
        for p in &report.pools {
            let file = if p.name == analyze::pools::DEFAULT_POOL {
                path.clone()
            } else {
                let mut s = path.clone().into_os_string();
                s.push(format!(".{}", p.name));
                PathBuf::from(s)
            };
            let mut text = p.report.power_users.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            if let Err(e) = std::fs::write(&file, text) {
                eprintln!("iumgate analyze: {}: {e}", file.display());
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

fn analyze(a: AnalyzeArgs) -> ExitCode {
    use iumgate::analyze;
    use std::io::IsTerminal;
    let mut opts = analyze::Options::default();
    let mut cfg = None;
    if let Some(path) = &a.config {
        cfg = match load(path) {
            Ok(c) => Some(c),
            Err(code) => return code,
        };
    }
    let pools = match analyze_pools(cfg.as_ref(), a.service_management) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("iumgate analyze: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(cfg) = &cfg {
        opts.product = Some(cfg.proxy.product);
        opts.include = cfg.activity.include.clone();
        opts.exclude = cfg.activity.exclude.clone();
        opts.min_idle = cfg.ium.min_idle.get();
        opts.retry_every = cfg.queue.retry_every.get();
        opts.reserved = cfg.licence.reserved;
        if let iumgate::config::Tier::Fixed(t) = cfg.licence.tier {
            opts.tier = Some(t);
        }
    }
    opts.product = a.product.or(opts.product);
    opts.format = a.format;
    opts.pattern = a.pattern;
    opts.include.extend(a.include);
    opts.exclude.extend(a.exclude);
    opts.min_idle = a.idle.unwrap_or(opts.min_idle);
    opts.tier = a.tier.or(opts.tier);
    opts.reserved = a.reserved.unwrap_or(opts.reserved);
    opts.heavy_share = a.heavy;
    opts.workday = a.workday;
    opts.target_wait_share = a.target;
    opts.seats = a.seats;
    opts.progress = !a.quiet && std::io::stderr().is_terminal();
    if opts.min_idle.is_zero() || a.workday.is_zero() || a.heavy == 0.0 {
        eprintln!("iumgate analyze: --idle, --workday and --heavy must be above zero");
        return ExitCode::from(2);
    }
    if !pools.is_empty() {
        opts.pools = pools;
        let outputs = AnalyzeOutputs {
            json: a.json,
            html: a.html,
            power_users: a.power_users,
        };
        return analyze_pooled(&a.logs, opts, &outputs);
    }
    let report = match analyze::analyze_files(&a.logs, opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("iumgate analyze: {e}");
            return ExitCode::from(1);
        }
    };
    if a.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("iumgate analyze: cannot write JSON: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{}", analyze::render_text(&report));
    }
    if let Some(path) = &a.html {
        if let Err(e) = std::fs::write(path, analyze::render_html(&report)) {
            eprintln!("iumgate analyze: {}: {e}", path.display());
            return ExitCode::from(1);
        }
        if !a.json {
            println!("HTML report: {}", path.display());
        }
    }
    if let Some(path) = &a.power_users {
        let mut text = report.power_users.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("iumgate analyze: {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

fn parse_dur(s: &str) -> Result<std::time::Duration, String> {
    s.parse::<iumgate::config::Dur>().map(|d| d.get())
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("iumgate: {e}");
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Analyze(args) => analyze(*args),
        Cmd::Audit(args) => audit(*args),
        Cmd::Completions { shell } => print_all(&completions(shell), "completions"),
        Cmd::Man { out_dir } => man(out_dir.as_deref()),
        Cmd::CheckConfig { config } => match load(&config) {
            Ok(_) => {
                println!("{}: valid", config.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Cmd::Healthcheck { url } => match healthcheck(&url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("iumgate healthcheck {url}: {}", error_chain(&e));
                ExitCode::from(1)
            }
        },
        Cmd::Demo {
            product,
            listen,
            admin_listen,
            min_idle,
            login,
            access_log,
            service_management,
        } => runtime(|| async move {
            iumgate::telemetry::init(&iumgate::config::LogConfig::default());
            iumgate::demo::run(iumgate::demo::DemoOptions {
                product,
                listen,
                admin_listen,
                min_idle,
                login,
                access_log,
                service_management,
            })
            .await
        }),
        Cmd::Check { config, json } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            runtime(|| async move { check(cfg, json).await })
        }
        Cmd::Sync {
            config,
            apply,
            undo,
            journal,
            verbose,
        } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            runtime(|| async move { sync(cfg, apply, undo, journal, verbose).await })
        }
        Cmd::Serve { config } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            runtime(|| async move {
                let log_filter = iumgate::telemetry::init(&cfg.log);
                let signals = match iumgate::app::Signals::install() {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("iumgate: cannot start: {}", error_chain(&e));
                        return 1;
                    }
                };
                match iumgate::app::start(cfg).await {
                    Ok(running) => {
                        // SIGHUP re-reads this file and swaps the log filter.
                        running.reloader.set_source(config, Some(log_filter));
                        iumgate::app::run_until_signalled(running, signals).await
                    }
                    Err(e) => {
                        let e = error_chain(&e);
                        tracing::error!("cannot start: {e}");
                        eprintln!("iumgate: cannot start: {e}");
                        1
                    }
                }
            })
        }
    }
}

async fn check(cfg: Config, json: bool) -> i32 {
    iumgate::app::install_crypto();
    let directory = match iumgate::directory::from_config(&cfg) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("iumgate check: {}", error_chain(&e));
            return 2;
        }
    };
    let report = iumgate::check::run(&cfg, directory.as_ref()).await;
    if json {
        match serde_json::to_string_pretty(&serde_json::json!({
            "exit_code": report.exit_code(),
            "findings": report.findings,
        })) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("iumgate check: cannot write JSON: {e}");
                return 2;
            }
        }
    } else {
        print!("{}", report.human());
    }
    report.exit_code()
}

async fn sync(
    cfg: Config,
    apply: bool,
    undo: Option<PathBuf>,
    journal: PathBuf,
    verbose: bool,
) -> i32 {
    use iumgate::sync;
    use std::io::IsTerminal;
    iumgate::app::install_crypto();
    // Warnings only, and on stderr: stdout carries the plan and the counts.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .try_init();
    let settings = match sync::SyncSettings::from_config(&cfg) {
        Ok(s) => s,
        Err(e) if undo.is_none() => {
            eprintln!("iumgate sync: {e}");
            return 2;
        }
        Err(_) => sync::SyncSettings {
            source_groups: Vec::new(),
            user_group: cfg.ium.user_group.clone(),
            fixed_groups: Vec::new(),
            pace: cfg.sync.pace.map_or(sync::DEFAULT_PACE, |d| d.get()),
        },
    };
    let directory = match iumgate::directory::from_config(&cfg) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("iumgate sync: {}", error_chain(&e));
            return 2;
        }
    };
    let progress = std::io::stderr().is_terminal();
    if let Some(path) = undo {
        return match sync::undo(directory.as_ref(), &path, settings.pace, progress).await {
            Ok(r) => {
                println!(
                    "undid run {}: removed {} user(s) from the group, {} failed",
                    r.run,
                    r.removed.len(),
                    r.failed.len()
                );
                if verbose {
                    let names: Vec<&str> = r.removed.iter().map(|u| u.as_str()).collect();
                    println!("  removed: {}", names.join(" "));
                }
                for (u, e) in &r.failed {
                    eprintln!("  failed: {u}: {e}");
                }
                i32::from(!r.failed.is_empty())
            }
            Err(e) => {
                eprintln!("iumgate {e}");
                2
            }
        };
    }
    let plan = match sync::plan(directory.as_ref(), &settings).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("iumgate sync: cannot read the groups: {}", error_chain(&e));
            return 2;
        }
    };
    println!(
        "plan for {} from {}: {}",
        settings.user_group,
        settings.source_groups.join(", "),
        plan.summary(false)
    );
    if verbose {
        print!("{}", plan.details());
    }
    if !apply {
        println!("(nothing changed: run with --apply to make these changes)");
        return 0;
    }
    let opts = sync::RunOptions {
        journal: Some(journal.clone()),
        progress,
    };
    match sync::apply(directory.as_ref(), &settings, &plan, &opts).await {
        Ok(r) => {
            if r.resumed {
                println!(
                    "resumed interrupted run {} ({} added before the interruption)",
                    r.run,
                    r.added_before.len()
                );
            }
            println!(
                "run {}: added {}, failed {}; journal {} (undo: iumgate sync --config FILE --undo {})",
                r.run,
                r.added.len(),
                r.failed.len(),
                journal.display(),
                journal.display()
            );
            for (u, e) in &r.failed {
                eprintln!("  failed: {u}: {e}");
            }
            i32::from(!r.failed.is_empty())
        }
        Err(e) => {
            eprintln!("iumgate {e}");
            2
        }
    }
}

fn runtime<F, Fut>(f: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = i32>,
{
    let built = match worker_threads() {
        Ok(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Ok(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        Err(e) => {
            eprintln!("iumgate: {}", error_chain(&e));
            return ExitCode::from(2);
        }
    };
    match built {
        Ok(rt) => ExitCode::from(rt.block_on(f()).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("iumgate: cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}

/// `IUMGATE_WORKERS` holds neither a thread count nor `auto`.
#[derive(Debug, thiserror::Error)]
#[error("IUMGATE_WORKERS={value:?}: expected a number of threads from 1 to 1024, or \"auto\"")]
struct WorkersError {
    value: String,
    /// Why it is not a number (none: a number out of range).
    #[source]
    source: Option<std::num::ParseIntError>,
}

/// Worker threads: `IUMGATE_WORKERS` (a number, or `auto`), by default the
/// CPUs this process may use (affinity and cgroup quota, as
/// `available_parallelism` reads them). With one CPU the runtime is
/// single-threaded: every connection, timer and upstream call is served by one
/// thread without the work-stealing scheduler's cross-thread queues, which costs
/// less per request than a one-worker multi-threaded runtime.
fn worker_threads() -> Result<usize, WorkersError> {
    let auto = || std::thread::available_parallelism().map_or(1, |n| n.get());
    match std::env::var("IUMGATE_WORKERS") {
        Err(_) => Ok(auto()),
        Ok(v) if v.trim().eq_ignore_ascii_case("auto") || v.trim().is_empty() => Ok(auto()),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => Ok(n),
            Ok(_) => Err(WorkersError {
                value: v,
                source: None,
            }),
            Err(e) => Err(WorkersError {
                value: v,
                source: Some(e),
            }),
        },
    }
}

/// Why `iumgate healthcheck` failed: the step, and the I/O error as source.
#[derive(Debug, thiserror::Error)]
enum HealthcheckError {
    #[error("only http:// URLs are supported")]
    NotHttp,
    /// `step`: "resolve", "connect to", "send to", "read from".
    #[error("cannot {step} {authority}")]
    Io {
        step: &'static str,
        authority: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{authority} resolves to no address")]
    NoAddress { authority: String },
    #[error("status {0}")]
    Status(String),
}

/// One plain HTTP/1.0 GET with short time-outs; only `http://host:port/path`.
fn healthcheck(url: &str) -> Result<(), HealthcheckError> {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;
    let rest = url
        .strip_prefix("http://")
        .ok_or(HealthcheckError::NotHttp)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let io = |step: &'static str| {
        move |source| HealthcheckError::Io {
            step,
            authority: authority.to_string(),
            source,
        }
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(io("resolve"))?
        .next()
        .ok_or_else(|| HealthcheckError::NoAddress {
            authority: authority.to_string(),
        })?;
    let timeout = Duration::from_secs(3);
    let mut conn = TcpStream::connect_timeout(&addr, timeout).map_err(io("connect to"))?;
    conn.set_read_timeout(Some(timeout))
        .map_err(io("connect to"))?;
    conn.set_write_timeout(Some(timeout))
        .map_err(io("connect to"))?;
    write!(
        conn,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(io("send to"))?;
    // The status line only; a short read may split it.
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < head.len() && !head[..n].contains(&b'\n') {
        match conn.read(&mut head[n..]).map_err(io("read from"))? {
            0 => break,
            m => n += m,
        }
    }
    let status_line = String::from_utf8_lossy(&head[..n]);
    let status = status_line.split_whitespace().nth(1).unwrap_or("none");
    if status == "200" {
        Ok(())
    } else {
        Err(HealthcheckError::Status(status.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_bad_worker_count_names_the_variable_and_keeps_the_parse_error() {
        let e = WorkersError {
            value: "lots".into(),
            source: "lots".parse::<usize>().err(),
        };
        assert!(
            e.to_string().starts_with("IUMGATE_WORKERS=\"lots\": "),
            "{e}"
        );
        assert!(e
            .source()
            .is_some_and(|s| s.is::<std::num::ParseIntError>()));
    }

    #[test]
    fn a_healthcheck_of_a_closed_port_says_connect_and_keeps_the_io_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let e = healthcheck(&format!("http://{addr}/healthz")).unwrap_err();
        assert_eq!(e.to_string(), format!("cannot connect to {addr}"));
        let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(|e| e.kind()),
            Some(std::io::ErrorKind::ConnectionRefused)
        );
        assert!(matches!(
            healthcheck("https://x/"),
            Err(HealthcheckError::NotHttp)
        ));
    }
}
