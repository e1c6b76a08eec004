//! Property tests: random operation sequences against a naive reference model (linear scans,
//! no index, no cleverness), plus invariants checked on the pool alone, so that a bug shared by
//! pool and model in how the rules were read still trips an invariant.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const MIN_IDLE: u64 = 100;
const ABANDON: u64 = 150;
const USERS: usize = 8;

fn user(i: usize) -> UserId {
    UserId::new(&format!("user{i}"))
}

#[derive(Debug, Clone)]
enum Op {
    Admit(usize, bool),
    /// Through the pool, or through the shared view as the hot path does; `back` ms in the past.
    Touch {
        who: usize,
        via_view: bool,
        back: u64,
    },
    Release(usize),
    Poll(usize),
    Prune,
    LeaveQueue(usize),
    SetCapacity(usize),
    Advance(u64),
    Adopt(usize, Option<u64>),
    /// Admit; if that evicted, the directory "failed": release the newcomer, restore the victim.
    EvictThenRollback(usize),
    SnapshotRoundTrip,
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..USERS;
    prop_oneof![
        6 => (who.clone(), any::<bool>()).prop_map(|(w, f)| Op::Admit(w, f)),
        5 => (who.clone(), any::<bool>(), prop_oneof![3 => Just(0u64), 1 => 0..50u64])
            .prop_map(|(who, via_view, back)| Op::Touch { who, via_view, back }),
        2 => who.clone().prop_map(Op::Release),
        3 => who.clone().prop_map(Op::Poll),
        1 => Just(Op::Prune),
        1 => who.clone().prop_map(Op::LeaveQueue),
        1 => (0..6usize).prop_map(Op::SetCapacity),
        5 => (0..120u64).prop_map(Op::Advance),
        1 => (who.clone(), proptest::option::of(0..200u64)).prop_map(|(w, t)| Op::Adopt(w, t)),
        1 => who.prop_map(Op::EvictThenRollback),
        1 => Just(Op::SnapshotRoundTrip),
    ]
}

/// The rules as written, executed the slow, obvious way.
#[derive(Debug, Clone, PartialEq)]
struct Model {
    capacity: usize,
    holders: BTreeMap<UserId, (u64, u64)>, // since, last_active
    queue: Vec<(UserId, u64, u64)>,        // user, since, last_poll
}

impl Model {
    fn prune(&mut self, now: u64) {
        self.queue
            .retain(|(_, _, poll)| now.saturating_sub(*poll) < ABANDON);
    }

    fn leave(&mut self, u: &UserId) -> bool {
        let before = self.queue.len();
        self.queue.retain(|(w, _, _)| w != u);
        before != self.queue.len()
    }

    fn grant(&mut self, u: &UserId, now: u64) {
        self.leave(u);
        self.holders.insert(u.clone(), (now, now));
    }

    fn longest_idle(&self) -> Option<SeatRecord> {
        self.holders
            .iter()
            .min_by_key(|(u, (_, last))| (*last, (*u).clone()))
            .map(|(u, (since, last))| SeatRecord {
                user: u.clone(),
                since: *since,
                last_active: *last,
            })
    }

    fn admit(&mut self, u: &UserId, now: u64, mode: Mode) -> Admission {
        if mode == Mode::FreeOnly {
            // FreeOnly decides as MayEvict would after pruning, but keeps the prune only if it grants.
            let mut trial = self.clone();
            trial.prune(now);
            if trial.holders.contains_key(u) {
                return Admission::Holding;
            }
            let ahead = trial
                .queue
                .iter()
                .position(|(w, _, _)| w == u)
                .unwrap_or(trial.queue.len());
            if ahead < self.capacity.saturating_sub(trial.holders.len()) {
                trial.grant(u, now);
                *self = trial;
                return Admission::Granted;
            }
            return Admission::NoFreeSeat;
        }
        self.prune(now);
        if self.holders.contains_key(u) {
            return Admission::Holding;
        }
        let ahead = self
            .queue
            .iter()
            .position(|(w, _, _)| w == u)
            .unwrap_or(self.queue.len());
        let free = self.capacity.saturating_sub(self.holders.len());
        if ahead < free {
            self.grant(u, now);
            return Admission::Granted;
        }
        if ahead == free && self.holders.len() <= self.capacity {
            if let Some(victim) = self.longest_idle() {
                if now.saturating_sub(victim.last_active) >= MIN_IDLE {
                    self.holders.remove(&victim.user);
                    self.grant(u, now);
                    return Admission::Evicted { victim };
                }
            }
        }
        match self.queue.iter_mut().find(|(w, _, _)| w == u) {
            Some((_, _, poll)) => *poll = (*poll).max(now),
            None => self.queue.push((u.clone(), now, now)),
        }
        Admission::Wait {
            position: ahead + 1,
        }
    }

    fn state(&self) -> PoolState {
        PoolState {
            holders: self
                .holders
                .iter()
                .map(|(u, (since, last))| SeatRecord {
                    user: u.clone(),
                    since: *since,
                    last_active: *last,
                })
                .collect(),
            queue: self
                .queue
                .iter()
                .map(|(u, since, poll)| Waiter {
                    user: u.clone(),
                    since: *since,
                    last_poll: *poll,
                })
                .collect(),
        }
    }
}

fn view_records(pool: &Pool) -> Vec<SeatRecord> {
    let mut v: Vec<_> = pool
        .seats()
        .iter()
        .map(|e| e.value().record(e.key()))
        .collect();
    v.sort_by(|a, b| a.user.cmp(&b.user));
    v
}

/// Checks that hold for the pool alone, whatever the model says.
fn check_admission(
    before: &PoolState,
    pool: &Pool,
    u: &UserId,
    now: u64,
    mode: &Mode,
    got: &Admission,
) {
    let cap = pool.capacity();
    let (in_before, in_after) = (before.holders.len(), pool.in_use());
    if in_before <= cap {
        assert!(
            in_after <= cap,
            "admit pushed in_use to {in_after} over capacity {cap}"
        );
    } else {
        assert!(in_after <= in_before, "admit grew an adopted overflow");
    }
    match got {
        Admission::Evicted { victim } => {
            assert_eq!(*mode, Mode::MayEvict, "FreeOnly evicted");
            assert!(
                before.holders.contains(victim),
                "victim {victim:?} was not a holder as such"
            );
            assert!(
                now - victim.last_active >= MIN_IDLE,
                "evicted {victim:?} inside min_idle at {now}"
            );
            let min = before.holders.iter().map(|h| h.last_active).min();
            assert_eq!(
                Some(victim.last_active),
                min,
                "victim is not the longest idle"
            );
            assert!(!pool.holds(&victim.user) && pool.holds(u));
        }
        Admission::NoFreeSeat => {
            assert_eq!(*mode, Mode::FreeOnly);
            assert_eq!(&pool.export(), before, "NoFreeSeat changed state");
        }
        Admission::Wait { position } => {
            assert_eq!(*mode, Mode::MayEvict, "FreeOnly queued");
            assert_eq!(pool.position(u), Some(*position));
        }
        Admission::Granted | Admission::Holding => assert!(pool.holds(u)),
    }
    if matches!(got, Admission::Granted | Admission::Evicted { .. }) {
        // FIFO: everyone who was queued before `u` and is still waiting must find a free seat
        // when they ask now; nobody jumped them.
        let ahead_before: Vec<&UserId> = before
            .queue
            .iter()
            .map(|w| &w.user)
            .take_while(|w| *w != u)
            .collect();
        let still_waiting = pool
            .queue()
            .iter()
            .filter(|w| ahead_before.contains(&&w.user))
            .count();
        let free = cap.saturating_sub(pool.in_use());
        assert!(
            free >= still_waiting,
            "{u} granted ahead of {still_waiting} earlier waiters, {free} free"
        );
    }
}

fn run(ops: Vec<Op>, capacity: usize) {
    let mut pool = Pool::new(PoolConfig {
        capacity,
        min_idle_ms: MIN_IDLE,
        abandon_after_ms: ABANDON,
    });
    let mut model = Model {
        capacity,
        holders: BTreeMap::new(),
        queue: Vec::new(),
    };
    let view = pool.seats();
    let mut now = 1_000u64;
    for op in ops {
        match op.clone() {
            Op::Admit(i, free_only) => {
                let mode = if free_only {
                    Mode::FreeOnly
                } else {
                    Mode::MayEvict
                };
                let before = pool.export();
                let got = pool.admit(&user(i), now, mode);
                check_admission(&before, &pool, &user(i), now, &mode, &got);
                assert_eq!(got, model.admit(&user(i), now, mode), "{op:?} at {now}");
            }
            Op::Touch {
                who,
                via_view,
                back,
            } => {
                let t = now.saturating_sub(back);
                let held = if via_view {
                    view.get(&user(who)).map(|s| s.touch(t)).is_some()
                } else {
                    pool.touch(&user(who), t)
                };
                let expect = model
                    .holders
                    .get_mut(&user(who))
                    .map(|(_, last)| *last = (*last).max(t));
                assert_eq!(held, expect.is_some());
            }
            Op::Release(i) => {
                let got = pool.release(&user(i));
                let expect = model.holders.remove(&user(i));
                assert_eq!(got.map(|r| (r.since, r.last_active)), expect);
            }
            Op::Poll(i) => {
                model.prune(now);
                let expect = model
                    .queue
                    .iter()
                    .position(|(w, _, _)| *w == user(i))
                    .map(|p| {
                        let poll = &mut model.queue[p].2;
                        *poll = (*poll).max(now);
                        p + 1
                    });
                assert_eq!(pool.poll(&user(i), now), expect);
            }
            Op::Prune => {
                let mut gone = pool.prune(now);
                gone.sort();
                let mut expect: Vec<_> = model
                    .queue
                    .iter()
                    .filter(|(_, _, poll)| now - poll >= ABANDON)
                    .map(|(u, _, _)| u.clone())
                    .collect();
                expect.sort();
                model.prune(now);
                assert_eq!(gone, expect);
            }
            Op::LeaveQueue(i) => assert_eq!(pool.leave_queue(&user(i)), model.leave(&user(i))),
            Op::SetCapacity(c) => {
                let released = pool.set_capacity(c);
                model.capacity = c;
                let mut expect = Vec::new();
                while model.holders.len() > c {
                    let victim = model.longest_idle().unwrap();
                    model.holders.remove(&victim.user);
                    expect.push(victim);
                }
                assert!(
                    pool.in_use() <= c,
                    "set_capacity left in_use above capacity"
                );
                assert_eq!(released, expect);
            }
            Op::Advance(dt) => now += dt,
            Op::Adopt(i, back) => {
                let last = back.map(|b| now.saturating_sub(b));
                pool.adopt(&user(i), now, last);
                model.leave(&user(i));
                match model.holders.get_mut(&user(i)) {
                    Some((_, l)) => *l = (*l).max(last.unwrap_or(0)),
                    None => {
                        model.holders.insert(user(i), (now, last.unwrap_or(now)));
                    }
                }
            }
            Op::EvictThenRollback(i) => {
                let before = pool.export();
                let got = pool.admit(&user(i), now, Mode::MayEvict);
                check_admission(&before, &pool, &user(i), now, &Mode::MayEvict, &got);
                assert_eq!(got, model.admit(&user(i), now, Mode::MayEvict));
                if let Admission::Evicted { victim } = got {
                    pool.release(&user(i));
                    pool.restore(victim.clone());
                    model.holders.remove(&user(i));
                    model
                        .holders
                        .insert(victim.user, (victim.since, victim.last_active));
                    // Only the queue may differ from before: the newcomer left it, the prune ran.
                    assert_eq!(
                        pool.export().holders,
                        before.holders,
                        "rollback did not restore"
                    );
                }
            }
            Op::SnapshotRoundTrip => {
                let json = serde_json::to_string(&pool.export()).unwrap();
                pool.import(serde_json::from_str(&json).unwrap());
            }
        }
        pool.check();
        assert_eq!(pool.export(), model.state(), "after {op:?} at {now}");
        assert_eq!(
            view_records(&pool),
            model.state().holders,
            "seats() view vs holders"
        );
        assert!(
            Arc::ptr_eq(&view, &pool.seats()),
            "seats() must stay the same Arc"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn pool_matches_the_model_and_keeps_its_invariants(
        capacity in 0..6usize,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        run(ops, capacity);
    }
}

/// Long runs on a busy pool, where the lazy index has many stale keys to settle.
#[test]
fn long_sequences_on_a_crowded_pool() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 40,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 300..600), |ops| {
            run(ops, 4);
            Ok(())
        })
        .unwrap();
}
