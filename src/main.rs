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
        Cmd::Healthcheck { url } => match healthcheck(&url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("iumgate healthcheck {url}: {e}");
                ExitCode::from(1)
            }
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

/// One plain HTTP/1.0 GET with short time-outs; only `http://host:port/path`.
fn healthcheck(url: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("address {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("address {authority}: no address"))?;
    let timeout = Duration::from_secs(3);
    let mut conn =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    conn.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    conn.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        conn,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    // The status line only; a short read may split it.
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < head.len() && !head[..n].contains(&b'\n') {
        match conn
            .read(&mut head[n..])
            .map_err(|e| format!("read: {e}"))?
        {
            0 => break,
            m => n += m,
        }
    }
    let status_line = String::from_utf8_lossy(&head[..n]);
    let status = status_line.split_whitespace().nth(1).unwrap_or("none");
    if status == "200" {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}
