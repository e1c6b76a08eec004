//! Pool costs against the targets: seat check + touch ≤ 100 ns, an admission that evicts the
//! longest-idle of 100,000 holders ≤ 5 µs.
//!
//! `cargo bench --bench pool -- --warm-up-time 1 --measurement-time 3`

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use iumgate::pool::{Admission, Mode, Pool, PoolConfig};
use iumgate::user::UserId;

const HOLDERS: usize = 100_000;
const MIN_IDLE: u64 = 60_000;

fn names(prefix: &str, n: usize) -> Vec<UserId> {
    (0..n)
        .map(|i| UserId::new(&format!("{prefix}{i:06}")))
        .collect()
}

/// Last activity spread over [0, 10 · HOLDERS) ms in an order unrelated to the names
/// (multiplying by a prime coprime to HOLDERS permutes the indices).
fn spread(i: usize) -> u64 {
    ((i * 7_919) % HOLDERS) as u64 * 10
}

/// A pool of `capacity` seats holding HOLDERS users, all idle past MIN_IDLE at the returned time.
fn pool_with_holders(capacity: usize) -> (Pool, Vec<UserId>, u64) {
    let mut pool = Pool::new(PoolConfig {
        capacity,
        min_idle_ms: MIN_IDLE,
        abandon_after_ms: 60_000,
    });
    let users = names("holder", HOLDERS);
    for (i, u) in users.iter().enumerate() {
        pool.adopt(u, 0, Some(spread(i)));
    }
    (pool, users, 10 * HOLDERS as u64 + MIN_IDLE)
}

fn seat_check_and_touch(c: &mut Criterion) {
    let (pool, users, now) = pool_with_holders(HOLDERS);
    // What the gate does per request: look the user up in the shared view, touch if holding.
    let seats = pool.seats();
    let mut k = 0usize;
    c.bench_function("seat_check_and_touch", |b| {
        b.iter(|| {
            // Stride through the holders so that lookups do not all hit one warm cache line.
            k = (k + 7_919) % HOLDERS;
            let held = seats.get(&users[k]).map(|seat| seat.touch(now)).is_some();
            black_box(held)
        })
    });
}

fn admit_evict_100k(c: &mut Criterion) {
    let (mut pool, users, start) = pool_with_holders(HOLDERS);
    let mut now = start;
    // Each newcomer evicts the longest-idle holder, who queues up to come back as a later
    // newcomer: the pool stays full and no name is allocated inside the loop.
    let mut outside: VecDeque<UserId> = VecDeque::from([UserId::new("newcomer")]);
    let mut k = 0usize;
    c.bench_function("admit_evict_100k", |b| {
        b.iter(|| {
            now += 1;
            // Keep activity moving, so the lazy index meets touched holders to re-file.
            k = (k + 7_919) % HOLDERS;
            pool.touch(&users[k], now);
            let Some(newcomer) = outside.pop_front() else {
                panic!("no newcomer left");
            };
            match pool.admit(&newcomer, now, Mode::MayEvict) {
                Admission::Evicted { victim } => outside.push_back(victim.user),
                other => panic!("expected an eviction, got {other:?}"),
            }
        })
    });
    assert_eq!(pool.in_use(), HOLDERS);
}

fn admit_free(c: &mut Criterion) {
    let (mut pool, _, now) = pool_with_holders(2 * HOLDERS);
    const CHUNK: usize = 10_000;
    let newcomers = names("newcomer", CHUNK);
    c.bench_function("admit_free", |b| {
        // Time only the admissions; the releases that make room again are not measured.
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let batch = &newcomers[..left.min(CHUNK)];
                let start = Instant::now();
                for u in batch {
                    black_box(pool.admit(u, now, Mode::MayEvict));
                }
                spent += start.elapsed();
                for u in batch {
                    pool.release(u);
                }
                left -= batch.len();
            }
            spent
        })
    });
}

criterion_group!(benches, seat_check_and_touch, admit_evict_100k, admit_free);
criterion_main!(benches);
