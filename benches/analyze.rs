//! Throughput of `iumgate analyze`: parsing a generated Jira access log, and parsing plus the
//! pool simulation (the whole analysis).
//!
//! `cargo bench --bench analyze` measures a ~40 MB log in memory. To time a real file once,
//! write one with the same generator and run the release binary on it:
//!
//! ```text
//! IUMGATE_WRITE_LOG=/tmp/big.log IUMGATE_WRITE_LOG_MB=1024 cargo bench --bench analyze
//! time target/release/iumgate analyze /tmp/big.log --quiet
//! ```

#[path = "../tests/it/analyze_support/mod.rs"]
mod analyze_support;

use analyze_support::*;
use criterion::{criterion_group, Criterion, Throughput};
use iumgate::analyze::{Analyzer, Options};
use std::io::Write;

/// A site of 20 heavy and 400 casual users whose browsers poll all day (the bulk of a real log).
fn shape() -> Shape {
    Shape {
        seed: 1,
        heavy: 20,
        casual: 400,
        days: 5,
        polling_tabs: true,
    }
}

fn bench(c: &mut Criterion) {
    let log = render_log(&generate(&shape(), LogFormat::Jira), LogFormat::Jira, 10);
    let mut g = c.benchmark_group("analyze");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(log.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| {
            let mut a = Analyzer::new(Options::default()).unwrap();
            a.read("bench.log", std::io::Cursor::new(log.as_bytes()))
                .unwrap()
        })
    });
    g.bench_function("parse_and_simulate", |b| {
        b.iter(|| {
            let mut a = Analyzer::new(Options::default()).unwrap();
            a.read("bench.log", std::io::Cursor::new(log.as_bytes()))
                .unwrap();
            a.finish()
        })
    });
    g.finish();
}

/// Writes a generated Jira log of about `mb` megabytes, a week at a time.
fn write_log(path: &str, mb: u64) {
    let shape = Shape {
        seed: 1,
        heavy: 50,
        casual: 1500,
        days: usize::MAX,
        polling_tabs: true,
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let (mut written, mut day) = (0u64, 0usize);
    while written < mb * 1024 * 1024 {
        let g = generate_days(&shape, LogFormat::Jira, day..day + 5);
        let text = render_log(&g, LogFormat::Jira, 0);
        out.write_all(text.as_bytes()).unwrap();
        written += text.len() as u64;
        day += 5;
    }
    out.flush().unwrap();
    eprintln!("wrote {path}: {written} bytes, {day} working days");
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(path) = std::env::var("IUMGATE_WRITE_LOG") {
        let mb = std::env::var("IUMGATE_WRITE_LOG_MB")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1024);
        write_log(&path, mb);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
