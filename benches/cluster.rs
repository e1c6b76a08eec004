//! Admission latency through Redis (`[cluster]`): the atomic reserve script
//! and the release, each one round trip to a real redis-server on loopback.
//! Prints p50, p99 and max over many admissions.
//!
//!     cargo bench --bench cluster            # starts its own redis-server
//!     REDIS_URL=redis://host:6379/ cargo bench --bench cluster
//!
//! A holder's request never goes to Redis (see `benches/load` for that
//! path); this is what a login or a waiter's admission adds.

use iumgate::cluster::{ClusterStore, ReserveMode};
use iumgate::pool::PoolConfig;
use iumgate::user::UserId;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 5_000;
const CAPACITY: usize = 100;

struct Server(Option<Child>);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_redis() -> Option<(Server, String)> {
    if let Ok(url) = std::env::var("REDIS_URL") {
        return Some((Server(None), url));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = Server(Some(child));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((server, format!("redis://127.0.0.1:{port}/")))
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // `cargo test --benches` runs benches with `--bench` absent: do nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some((_server, url)) = start_redis() else {
        eprintln!("cluster bench: no redis-server (install it, or set REDIS_URL)");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        const POOL: PoolConfig = PoolConfig {
            capacity: CAPACITY,
            min_idle_ms: 0,
            abandon_after_ms: 60_000,
        };
        let store = ClusterStore::new(&url, "bench:", "bench").expect("a store");
        store.clear().await.expect("redis answers");
        store.adopt_many(&[], None).await.expect("redis answers");
        let users: Vec<UserId> = (0..CAPACITY * 2)
            .map(|i| UserId::new(&format!("user{i}")))
            .collect();
        let (mut reserve, mut release) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let u = &users[round % users.len()];
            let now = 1_000 + round as u64;
            let t = Instant::now();
            store
                .reserve(u, POOL, now, ReserveMode::MayEvict)
                .await
                .expect("reserve");
            reserve.push(t.elapsed());
            if round % 3 == 0 {
                let t = Instant::now();
                store.release(u, now).await.expect("release");
                release.push(t.elapsed());
            }
        }
        store.clear().await.expect("redis answers");
        for (name, mut v) in [
            ("reserve (grant/evict script)", reserve),
            ("release", release),
        ] {
            v.sort();
            println!(
                "cluster/{name}: n={} p50={:?} p99={:?} max={:?}",
                v.len(),
                pct(&v, 0.50),
                pct(&v, 0.99),
                v[v.len() - 1]
            );
        }
    });
}
