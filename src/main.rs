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
                let log_filter = iumgate::telemetry::init(&cfg.log);
                match iumgate::app::start(cfg).await {
                    Ok(running) => {
                        // SIGHUP re-reads this file and swaps the log filter.
                        running.reloader.set_source(config, Some(log_filter));
                        iumgate::app::run_until_signalled(running).await
                    }
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
