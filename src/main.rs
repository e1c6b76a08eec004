//! The `iumgate` command line.

use clap::{Parser, Subcommand};
use iumgate::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Check a config file and exit (0: valid, 2: errors, each naming key and line).
    CheckConfig {
        #[arg(short, long)]
        config: PathBuf,
    },
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
        Cmd::Serve { config } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            runtime(|| async move {
                iumgate::telemetry::init(&cfg.log);
                let signals = match iumgate::app::Signals::install() {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("iumgate: cannot start: {e}");
                        return 1;
                    }
                };
                match iumgate::app::start(cfg).await {
                    Ok(running) => iumgate::app::run_until_signalled(running, signals).await,
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
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => ExitCode::from(rt.block_on(f()).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("iumgate: cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}
