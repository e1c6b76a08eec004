//! The directory side of the load benchmark: the Jira simulator seeded with a
//! large world, so that iumgate's reconcile classifies thousands of users and
//! adopts thousands of seat holders before the measured traffic starts.
//!
//! ```text
//! load_world --casual 3000 --power 1000 [--holders 3000] [--seats 10000]
//! ```
//!
//! Casual users are `c000000…` (IUM user group; the first `--holders` of them
//! also in the IUM access group, i.e. holding a seat), power users `p000000…`
//! (the fixed-licence group). The service account's token is
//! `demo-admin-token`. Prints `url http://127.0.0.1:PORT` once it listens and
//! runs until SIGTERM or SIGINT.

use iumgate::product::Product;
use iumgate::sim::{Sim, SimConfig, SimUser};
use std::io::Write;

struct Args {
    casual: usize,
    power: usize,
    holders: Option<usize>,
    seats: Option<u32>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        casual: 3000,
        power: 1000,
        holders: None,
        seats: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag}: a value is missing"))?;
        let n: usize = value
            .parse()
            .map_err(|e| format!("{flag} {value}: not a count: {e}"))?;
        match flag.as_str() {
            "--casual" => a.casual = n,
            "--power" => a.power = n,
            "--holders" => a.holders = Some(n),
            "--seats" => a.seats = Some(u32::try_from(n).map_err(|e| format!("--seats: {e}"))?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

fn world(a: &Args) -> SimConfig {
    let mut cfg = SimConfig::demo(Product::Jira);
    // Keep the service account (and its token); replace the demo's people.
    cfg.users.retain(|u| u.admin);
    let holders = a.holders.unwrap_or(a.casual).min(a.casual);
    for i in 0..a.casual {
        let groups: &[&str] = if i < holders {
            &["IUM_user_software", "IUM_access_software"]
        } else {
            &["IUM_user_software"]
        };
        cfg.users.push(SimUser::new(&format!("c{i:06}"), groups));
    }
    for i in 0..a.power {
        cfg.users
            .push(SimUser::new(&format!("p{i:06}"), &["jira-software-users"]));
    }
    // Enough seats for everyone by default: the benchmark measures the
    // request path, not evictions.
    cfg.seats = a
        .seats
        .unwrap_or_else(|| u32::try_from(2 * (a.casual + a.power) + 10).unwrap_or(u32::MAX));
    cfg
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("load_world: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let sim = match Sim::start(world(&args)).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("load_world: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    println!("url {}", sim.url());
    let _ = std::io::stdout().flush();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("load_world: cannot handle SIGTERM: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    sim.shutdown();
    std::process::ExitCode::SUCCESS
}
