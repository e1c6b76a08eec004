//! Property: the admission script on a real redis-server decides exactly as
//! the in-memory pool does (issue 19, items 2, 3 and 9) — grant while a seat
//! is free, the longest-idle holder idle at least `min_idle` gives way (ties
//! by name, as the pool breaks them), never above capacity, nothing for
//! free-only when full, and the queue: first come first served by ticket,
//! the same positions, seats kept free for the waiters ahead, abandoned
//! waiters gone — over random sequences of admissions (a waiter's poll is an
//! admission), activity, releases and time.

use crate::cluster_support::redis_or_skip;
use iumgate::cluster::{ClusterStore, Reserve, ReserveMode};
use iumgate::pool::{Admission, Mode, Pool, PoolConfig, Waiter};
use iumgate::user::UserId;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

const CAPACITY: usize = 3;
const MIN_IDLE: u64 = 100;
const USERS: usize = 6;
const ABANDON: u64 = 300;

#[derive(Debug, Clone)]
enum Op {
    Admit { who: usize, may_evict: bool },
    Touch(usize),
    Release(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..USERS, any::<bool>()).prop_map(|(who, may_evict)| Op::Admit { who, may_evict }),
        3 => (0..USERS).prop_map(Op::Touch),
        2 => (0..USERS).prop_map(Op::Release),
        4 => (0..150u64).prop_map(Op::Advance),
    ]
}

fn user(i: usize) -> UserId {
    UserId::new(&format!("user{i}"))
}

#[test]
fn the_admission_script_decides_as_the_pool_does() {
    let Some(redis) = redis_or_skip() else { return };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 64,
        ..RunnerConfig::default()
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&proptest::collection::vec(op(), 1..60), |ops| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let prefix = format!("props{n}:");
            rt.block_on(async {
                let store = ClusterStore::new(&redis.url(), &prefix, "props").unwrap();
                store.adopt_many(&[], None).await.unwrap();
                let mut pool = Pool::new(PoolConfig {
                    capacity: CAPACITY,
                    min_idle_ms: MIN_IDLE,
                    abandon_after_ms: ABANDON,
                });
                let mut now = 1_000u64;
                for op in &ops {
                    match *op {
                        Op::Admit { who, may_evict } => {
                            let u = user(who);
                            let (mode, rmode) = if may_evict {
                                (Mode::MayEvict, ReserveMode::MayEvict)
                            } else {
                                (Mode::FreeOnly, ReserveMode::FreeOnly)
                            };
                            let local = pool.admit(&u, now, mode);
                            let expected = match local {
                                Admission::Holding => Reserve::Holding,
                                Admission::Granted => Reserve::Granted,
                                Admission::Evicted { victim } => Reserve::Evicted {
                                    victim: victim.user,
                                    last_active: victim.last_active,
                                },
                                Admission::Wait { position } => Reserve::Queued { position },
                                Admission::NoFreeSeat => Reserve::Full,
                            };
                            let got = store.reserve(&u, pool.config(), now, rmode).await.unwrap();
                            prop_assert_eq!(got, expected, "{:?} at {}", op, now);
                        }
                        Op::Touch(who) => {
                            if pool.touch(&user(who), now) {
                                store.touch_many(&[(user(who), now)]).await.unwrap();
                            }
                        }
                        Op::Release(who) => {
                            pool.release(&user(who));
                            store.release(&user(who), now).await.unwrap();
                        }
                        Op::Advance(ms) => now += ms,
                    }
                    let mut remote: Vec<(UserId, u64)> = store.holders().await.unwrap();
                    remote.sort();
                    let mut local: Vec<(UserId, u64)> = pool
                        .holders()
                        .into_iter()
                        .map(|h| (h.user, h.last_active))
                        .collect();
                    local.sort();
                    prop_assert!(remote.len() <= CAPACITY);
                    prop_assert_eq!(remote, local);
                    // The same waiters in the same order with the same
                    // times (each side drops abandoned ones at its own
                    // moment; neither counts them).
                    let stays = |w: &Waiter| now.saturating_sub(w.last_poll) < ABANDON;
                    let remote: Vec<Waiter> = store
                        .queue()
                        .await
                        .unwrap()
                        .into_iter()
                        .filter(stays)
                        .collect();
                    let local: Vec<Waiter> = pool.queue().into_iter().filter(stays).collect();
                    prop_assert_eq!(remote, local);
                }
                store.clear().await.unwrap();
                Ok(())
            })
        })
        .unwrap();
}
