//! One test per admission rule and per operation, with an explicit clock.

use super::*;

const MIN: u64 = 60_000;

fn u(name: &str) -> UserId {
    UserId::new(name)
}

fn pool(capacity: usize) -> Pool {
    Pool::new(PoolConfig {
        capacity,
        min_idle_ms: 10 * MIN,
        abandon_after_ms: MIN,
    })
}

fn admit(p: &mut Pool, name: &str, now: u64) -> Admission {
    let a = p.admit(&u(name), now, Mode::MayEvict);
    p.check();
    a
}

#[test]
fn free_seat_is_granted_with_both_times_now() {
    let mut p = pool(2);
    assert_eq!(admit(&mut p, "alice", 1_000), Admission::Granted);
    assert!(p.holds(&u("Alice")));
    assert_eq!(
        p.holders(),
        vec![SeatRecord {
            user: u("alice"),
            since: 1_000,
            last_active: 1_000
        }]
    );
    assert_eq!(p.in_use(), 1);
}

#[test]
fn holder_gets_holding_and_is_not_touched() {
    let mut p = pool(1);
    admit(&mut p, "alice", 1_000);
    assert_eq!(admit(&mut p, "ALICE", 5_000), Admission::Holding);
    assert_eq!(
        p.holders()[0].last_active,
        1_000,
        "admission is not activity"
    );
}

#[test]
fn full_pool_evicts_the_longest_idle_holder_once_past_min_idle() {
    let mut p = pool(3);
    admit(&mut p, "a", 0);
    admit(&mut p, "b", 1_000);
    admit(&mut p, "c", 2_000);
    // `a` is the oldest grant but was active most recently: `b` is now the longest idle.
    assert!(p.touch(&u("a"), 3_000));
    let now = 1_000 + 10 * MIN;
    assert_eq!(
        admit(&mut p, "d", now),
        Admission::Evicted {
            victim: SeatRecord {
                user: u("b"),
                since: 1_000,
                last_active: 1_000
            }
        }
    );
    assert!(!p.holds(&u("b")));
    assert!(p.holds(&u("d")));
    assert_eq!(p.in_use(), 3);
}

#[test]
fn holder_inside_min_idle_is_not_evicted_and_the_newcomer_waits() {
    let mut p = pool(1);
    admit(&mut p, "a", 0);
    let just_short = 10 * MIN - 1;
    assert_eq!(
        admit(&mut p, "b", just_short),
        Admission::Wait { position: 1 }
    );
    assert!(p.holds(&u("a")));
    assert_eq!(p.queue_len(), 1);
}

#[test]
fn touch_through_the_shared_view_protects_a_holder() {
    let mut p = pool(1);
    admit(&mut p, "a", 0);
    // The hot path touches through the map it cloned once, not through the pool.
    let view = p.seats();
    view.get(&u("a")).unwrap().touch(9 * MIN);
    assert_eq!(
        admit(&mut p, "b", 10 * MIN),
        Admission::Wait { position: 1 }
    );
    assert_eq!(
        admit(&mut p, "b", 19 * MIN),
        Admission::Evicted {
            victim: SeatRecord {
                user: u("a"),
                since: 0,
                last_active: 9 * MIN
            }
        }
    );
}

#[test]
fn touch_never_moves_activity_backwards_and_reports_non_holders() {
    let mut p = pool(1);
    admit(&mut p, "a", 0);
    assert!(p.touch(&u("a"), 5_000));
    assert!(p.touch(&u("a"), 4_000));
    assert_eq!(p.holders()[0].last_active, 5_000);
    assert!(!p.touch(&u("nobody"), 5_000));
}

#[test]
fn free_only_takes_a_free_seat() {
    let mut p = pool(1);
    assert_eq!(p.admit(&u("a"), 0, Mode::FreeOnly), Admission::Granted);
    assert!(p.holds(&u("a")));
}

#[test]
fn free_only_without_a_free_seat_changes_nothing() {
    let mut p = pool(1);
    admit(&mut p, "a", 0);
    admit(&mut p, "w", 1_000); // queued
    let before = p.export();
    // `a` is idle long enough to be evicted, but FreeOnly never evicts or queues.
    let late = 10 * MIN + 30_000; // `w` abandoned by now too, yet it is not pruned
    assert_eq!(
        p.admit(&u("b"), late, Mode::FreeOnly),
        Admission::NoFreeSeat
    );
    assert_eq!(
        p.admit(&u("w"), late, Mode::FreeOnly),
        Admission::NoFreeSeat
    );
    assert_eq!(p.export(), before);
    p.check();
}

#[test]
fn free_only_looks_past_abandoned_waiters_like_may_evict_does() {
    let mut p = pool(1);
    admit(&mut p, "a", 0);
    admit(&mut p, "w", 0); // waits, then walks away
    p.release(&u("a"));
    // `w` has not polled for abandon_after: it no longer holds the free seat for itself.
    assert_eq!(p.admit(&u("b"), MIN, Mode::FreeOnly), Admission::Granted);
    assert_eq!(p.queue_len(), 0, "granting pruned the abandoned waiter");
    p.check();
}

#[test]
fn queue_head_has_priority_over_a_newcomer_for_a_freed_seat() {
    let mut p = pool(1);
    admit(&mut p, "a", 0);
    assert_eq!(admit(&mut p, "w1", 1_000), Admission::Wait { position: 1 });
    assert_eq!(admit(&mut p, "w2", 1_000), Admission::Wait { position: 2 });
    p.release(&u("a"));
    // The newcomer and the second waiter find the one free seat reserved for the head.
    assert_eq!(admit(&mut p, "new", 2_000), Admission::Wait { position: 3 });
    assert_eq!(admit(&mut p, "w2", 2_000), Admission::Wait { position: 2 });
    assert_eq!(p.admit(&u("w1"), 2_000, Mode::FreeOnly), Admission::Granted);
    assert_eq!(p.position(&u("w2")), Some(1));
    assert_eq!(p.position(&u("new")), Some(2));
}

#[test]
fn waiter_right_behind_the_free_seats_may_evict() {
    // Rule 6 with free > 0: one free seat is kept for the head, the second waiter evicts.
    let mut p = pool(2);
    admit(&mut p, "a", 0);
    admit(&mut p, "b", 0);
    let now = 10 * MIN;
    admit(&mut p, "w1", now - 1_000);
    admit(&mut p, "w2", now - 1_000);
    p.release(&u("b"));
    assert_eq!(
        admit(&mut p, "w2", now),
        Admission::Evicted {
            victim: SeatRecord {
                user: u("a"),
                since: 0,
                last_active: 0
            }
        }
    );
    assert_eq!(
        p.queue().iter().map(|w| w.user.clone()).collect::<Vec<_>>(),
        vec![u("w1")]
    );
    assert_eq!(admit(&mut p, "w1", now), Admission::Granted);
    assert_eq!(p.in_use(), 2);
}

#[test]
fn waiting_records_the_poll_and_keeps_the_first_since() {
    let mut p = pool(0);
    admit(&mut p, "w", 1_000);
    admit(&mut p, "w", 2_000);
    assert_eq!(
        p.queue(),
        vec![Waiter {
            user: u("w"),
            since: 1_000,
            last_poll: 2_000
        }]
    );
}

#[test]
fn admission_prunes_abandoned_waiters_first() {
    let mut p = pool(0);
    admit(&mut p, "old", 0);
    admit(&mut p, "fresh", 30_000);
    assert_eq!(admit(&mut p, "new", MIN), Admission::Wait { position: 2 });
    assert_eq!(p.position(&u("old")), None);
    assert_eq!(p.position(&u("fresh")), Some(1));
}

#[test]
fn poll_keeps_a_waiter_and_a_late_poll_does_not_revive_one() {
    let mut p = pool(0);
    admit(&mut p, "w1", 0);
    admit(&mut p, "w2", 0);
    assert_eq!(p.poll(&u("w2"), 50_000), Some(2));
    assert_eq!(p.poll(&u("nobody"), 50_000), None);
    // At MIN, w1 has not polled for abandon_after; w2 polled 10 s ago.
    assert_eq!(p.poll(&u("w1"), MIN), None);
    assert_eq!(p.poll(&u("w2"), MIN), Some(1));
    p.check();
}

#[test]
fn prune_returns_the_abandoned_and_keeps_the_rest_in_order() {
    let mut p = pool(0);
    for (name, t) in [("a", 0), ("b", 20_000), ("c", 0), ("d", 40_000)] {
        admit(&mut p, name, t);
    }
    let mut gone = p.prune(MIN);
    gone.sort();
    assert_eq!(gone, vec![u("a"), u("c")]);
    assert_eq!(
        p.queue().iter().map(|w| w.user.clone()).collect::<Vec<_>>(),
        vec![u("b"), u("d")]
    );
    assert!(p.prune(MIN).is_empty());
    p.check();
}

#[test]
fn leave_queue_removes_only_waiters() {
    let mut p = pool(0);
    admit(&mut p, "w1", 0);
    admit(&mut p, "w2", 0);
    assert!(p.leave_queue(&u("w1")));
    assert!(!p.leave_queue(&u("w1")));
    assert_eq!(p.position(&u("w2")), Some(1));
    p.check();
}

#[test]
fn release_frees_the_seat_and_reports_it() {
    let mut p = pool(1);
    admit(&mut p, "a", 100);
    p.touch(&u("a"), 200);
    assert_eq!(
        p.release(&u("A")),
        Some(SeatRecord {
            user: u("a"),
            since: 100,
            last_active: 200
        })
    );
    assert_eq!(p.release(&u("a")), None);
    assert!(p.seats().is_empty());
    assert_eq!(admit(&mut p, "b", 300), Admission::Granted);
}

#[test]
fn restore_undoes_an_eviction_with_the_old_times() {
    let mut p = pool(1);
    admit(&mut p, "a", 0);
    p.touch(&u("a"), 500);
    let Admission::Evicted { victim } = admit(&mut p, "b", 20 * MIN) else {
        panic!("expected an eviction");
    };
    // The directory refused: the gate rolls the grant back and restores the victim.
    p.release(&u("b"));
    p.restore(victim);
    p.check();
    assert_eq!(
        p.holders(),
        vec![SeatRecord {
            user: u("a"),
            since: 0,
            last_active: 500
        }]
    );
    // Still the longest idle, so it is chosen again.
    assert!(
        matches!(admit(&mut p, "c", 20 * MIN), Admission::Evicted { victim } if victim.user == u("a"))
    );
}

#[test]
fn adopt_is_idempotent_and_leaves_the_queue() {
    let mut p = pool(2);
    admit(&mut p, "a", 0);
    p.adopt(&u("a"), 7_000, None);
    assert_eq!(
        p.holders(),
        vec![SeatRecord {
            user: u("a"),
            since: 0,
            last_active: 0
        }]
    );
    p.adopt(&u("a"), 7_000, Some(3_000));
    assert_eq!(p.holders()[0].last_active, 3_000);

    let mut p = pool(0);
    admit(&mut p, "w", 0);
    p.adopt(&u("w"), 7_000, None);
    assert_eq!(p.queue_len(), 0);
    assert_eq!(
        p.holders(),
        vec![SeatRecord {
            user: u("w"),
            since: 7_000,
            last_active: 7_000
        }]
    );
    p.check();
}

#[test]
fn above_capacity_after_adopt_nothing_is_granted_or_evicted() {
    let mut p = pool(1);
    p.adopt(&u("a"), 0, Some(0));
    p.adopt(&u("b"), 0, Some(0));
    assert_eq!(p.in_use(), 2);
    // Both are idle far past min_idle, yet swapping one for a newcomer would stay above tier.
    assert_eq!(
        admit(&mut p, "c", 60 * MIN),
        Admission::Wait { position: 1 }
    );
    assert_eq!(
        p.admit(&u("d"), 60 * MIN, Mode::FreeOnly),
        Admission::NoFreeSeat
    );
    p.release(&u("a"));
    // At capacity again: eviction is allowed.
    assert!(matches!(
        admit(&mut p, "c", 60 * MIN),
        Admission::Evicted { .. }
    ));
}

#[test]
fn set_capacity_releases_longest_idle_first_even_inside_min_idle() {
    let mut p = pool(4);
    for (name, t) in [("a", 4_000), ("b", 1_000), ("c", 3_000), ("d", 2_000)] {
        admit(&mut p, name, t);
    }
    p.touch(&u("b"), 5_000);
    let released: Vec<_> = p.set_capacity(2).into_iter().map(|r| r.user).collect();
    assert_eq!(released, vec![u("d"), u("c")]);
    assert_eq!(p.in_use(), 2);
    assert_eq!(p.capacity(), 2);
    assert!(p.set_capacity(10).is_empty());
    assert_eq!(admit(&mut p, "e", 6_000), Admission::Granted);
    p.check();
}

#[test]
fn config_setters_take_effect_on_the_next_admission() {
    let mut p = pool(1);
    admit(&mut p, "a", 0);
    assert_eq!(admit(&mut p, "b", 1_000), Admission::Wait { position: 1 });
    p.set_min_idle(1_000);
    assert!(matches!(admit(&mut p, "c", 1_000), Admission::Wait { .. }));
    assert!(matches!(
        admit(&mut p, "b", 1_000),
        Admission::Evicted { .. }
    ));
    p.set_abandon_after(10);
    assert_eq!(p.prune(1_010), vec![u("c")]);
}

#[test]
fn export_import_round_trips_through_json() {
    let mut p = pool(2);
    admit(&mut p, "a", 0);
    admit(&mut p, "b", 10);
    p.touch(&u("a"), 20);
    admit(&mut p, "w", 30);
    let state = p.export();
    let json = serde_json::to_string(&state).unwrap();

    let mut q = pool(2);
    admit(&mut q, "stale", 0);
    let view = q.seats();
    q.import(serde_json::from_str(&json).unwrap());
    q.check();
    assert_eq!(q.export(), state);
    assert!(
        !view.contains_key(&u("stale")),
        "import clears the view the gate holds"
    );
    assert!(view.contains_key(&u("a")));
    // The imported index works: `b` is the longest idle.
    assert!(
        matches!(admit(&mut q, "w", 20 * MIN), Admission::Evicted { victim } if victim.user == u("b"))
    );
}

#[test]
fn import_merges_duplicates_and_drops_holders_from_the_queue() {
    let mut p = pool(5);
    let rec = |n: &str, t| SeatRecord {
        user: u(n),
        since: 0,
        last_active: t,
    };
    let waiter = |n: &str| Waiter {
        user: u(n),
        since: 0,
        last_poll: 0,
    };
    p.import(PoolState {
        holders: vec![rec("a", 5), rec("A", 9), rec("b", 1)],
        queue: vec![waiter("a"), waiter("w"), waiter("W")],
    });
    p.check();
    assert_eq!(p.export().holders, vec![rec("a", 9), rec("b", 1)]);
    assert_eq!(p.queue(), vec![waiter("w")]);
}

#[test]
fn clock_going_backwards_never_evicts_or_abandons() {
    let mut p = pool(1);
    admit(&mut p, "a", 50 * MIN);
    admit(&mut p, "w", 50 * MIN);
    assert_eq!(admit(&mut p, "b", 0), Admission::Wait { position: 2 });
    assert!(p.prune(0).is_empty());
}

#[test]
fn a_late_arriving_older_poll_does_not_move_the_poll_time_back() {
    let mut p = pool(0);
    admit(&mut p, "w", 0);
    assert_eq!(p.poll(&u("w"), 50_000), Some(1));
    assert_eq!(p.poll(&u("w"), 20_000), Some(1));
    assert_eq!(p.queue()[0].last_poll, 50_000);
    // Had the poll time gone back to 20 s, `w` would be abandoned at 80 s.
    assert!(p.prune(80_000).is_empty());
    p.check();
}

#[test]
fn enqueue_queues_without_granting_even_with_a_free_seat() {
    let mut p = pool(2);
    assert_eq!(p.enqueue(&u("w"), 1_000), 1);
    assert_eq!(p.enqueue(&u("x"), 1_000), 2);
    assert_eq!(p.in_use(), 0, "nothing granted");
    // Again: a poll, same place.
    assert_eq!(p.enqueue(&u("w"), 2_000), 1);
    assert_eq!(p.queue()[0].last_poll, 2_000);
    p.check();
    // A holder is not queued.
    let mut q = pool(1);
    assert_eq!(admit(&mut q, "h", 3_000), Admission::Granted);
    assert_eq!(q.enqueue(&u("h"), 3_000), 0);
    assert_eq!(q.queue_len(), 0);
    q.check();
}

#[test]
fn set_capacity_keeping_releases_nobody_and_grants_nothing_above_it() {
    let mut p = pool(3);
    for u in ["a", "b", "c"] {
        assert_eq!(admit(&mut p, u, 1_000), Admission::Granted);
    }
    p.set_capacity_keeping(2);
    assert_eq!(p.in_use(), 3, "nobody released");
    assert_eq!(p.capacity(), 2);
    // Over capacity: no grant, and no eviction swap either.
    assert!(matches!(
        p.admit(&u("d"), 100 * MIN, Mode::MayEvict),
        Admission::Wait { .. }
    ));
    assert_eq!(p.in_use(), 3);
    p.check();
}

#[test]
fn a_mirrored_queue_takes_the_given_order_without_holders_or_repeats() {
    let mut p = pool(1);
    assert_eq!(admit(&mut p, "holder", 1_000), Admission::Granted);
    assert_eq!(
        admit(&mut p, "local", 1_000),
        Admission::Wait { position: 1 }
    );
    let w = |name: &str, since: u64| Waiter {
        user: u(name),
        since,
        last_poll: since + 5,
    };
    // The shared queue: another replica's waiter first, a holder (granted
    // meanwhile) and a repeated name skipped.
    p.mirror_queue(&[
        w("remote", 500),
        w("holder", 600),
        w("local", 900),
        w("remote", 950),
    ]);
    p.check();
    assert_eq!(p.queue(), vec![w("remote", 500), w("local", 900)]);
    assert_eq!(p.position(&u("local")), Some(2));
    // A seat freed goes to the head of the shared queue, not to the local
    // waiter who polls first.
    p.release(&u("holder"));
    assert_eq!(
        admit(&mut p, "local", 1_010),
        Admission::Wait { position: 2 }
    );
    assert_eq!(admit(&mut p, "remote", 1_020), Admission::Granted);
}
