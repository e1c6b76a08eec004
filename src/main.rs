//! The `iumgate` command line.

use clap::{Parser, Subcommand};
use iumgate::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "iumgate", version, about = "Hands Atlassian Data Center licences out to the users who are active")]
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
        /// Where the admin endpoints listen.
        #[arg(long, default_value = "127.0.0.1:9102")]
        admin_listen: std::net::SocketAddr,
        /// Minimum inactivity before a seat may be taken (short, for trying it out).
        #[arg(long, default_value = "2m", value_parser = parse_dur)]
        min_idle: std::time::Duration,
    },
    /// Check a config file and exit (0: valid, 2: errors, each naming key and line).
    CheckConfig {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Find the heavy users and the licence tier a site needs, from its access logs.
    Analyze(Box<AnalyzeArgs>),
}

#[derive(clap::Args, Debug)]
struct AnalyzeArgs {
    /// Access logs (Jira, Confluence, Bitbucket, iumgate JSON lines), plain or gzip.
    #[arg(required = true)]
    logs: Vec<PathBuf>,
    /// Take product, activity rules, min_idle, retry_every, tier and reserved from this
    /// iumgate config (flags given here win).
    #[arg(short, long)]
    config: Option<PathBuf>,
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

fn analyze(a: AnalyzeArgs) -> ExitCode {
    use iumgate::analyze;
    use std::io::IsTerminal;
    let mut opts = analyze::Options::default();
    if let Some(path) = &a.config {
        let cfg = match load(path) {
            Ok(c) => c,
            Err(code) => return code,
        };
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
        Cmd::CheckConfig { config } => match load(&config) {
            Ok(_) => {
                println!("{}: valid", config.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Cmd::Demo {
            product,
            listen,
            admin_listen,
            min_idle,
        } => runtime(|| async move {
            iumgate::telemetry::init(&iumgate::config::LogConfig::default());
            iumgate::demo::run(iumgate::demo::DemoOptions {
                product,
                listen,
                admin_listen,
                min_idle,
            })
            .await
        }),
        Cmd::Serve { config } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            runtime(|| async move {
                iumgate::telemetry::init(&cfg.log);
                match iumgate::app::start(cfg).await {
                    Ok(running) => iumgate::app::run_until_signalled(running).await,
                    Err(e) => {
                        tracing::error!("cannot start: {e}");
                        eprintln!("iumgate: cannot start: {e}");
                        1
                    }
                }
            })
        }
    }
}

fn runtime<F, Fut>(f: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = i32>,
{
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => ExitCode::from(rt.block_on(f()).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("iumgate: cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}
