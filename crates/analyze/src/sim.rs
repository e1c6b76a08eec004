//! The pool simulation: the casual users' sessions replayed through the proxy's own
//! [`Pool`] (`Mode::MayEvict`, the same `min_idle`, eviction and queue rules), for one
//! shared-seat count at a time.
//!
//! What each replayed event does is what the gate does with the request it stands for:
//! - a session's first activity, or any activity of a user without a seat → `admit(MayEvict)`;
//! - activity of a holder → `touch`;
//! - a logout → `release` (the proxy's `release_on_logout`).
//!
//! Sessions carry only their first and last activity, so the replay adds a touch every
//! `min_idle / 2` inside a session: that keeps the holder exactly as (not) evictable as the real
//! request stream would (every real gap inside a session is shorter than `min_idle`), and the
//! last touch is the real last activity.
//!
//! A user who gets `Wait` sits on the waiting page, which polls every `retry_every`; each poll is
//! an admission attempt (as in `gate/waiting/mod.rs`). Polls are aligned to a global
//! `retry_every` grid, and rounds in which nothing can have changed are skipped: a poll that
//! waits changes nothing, so the next one that can succeed is the first grid point after a seat
//! is freed or the longest-idle holder reaches `min_idle`. Waiters poll until they are let in,
//! so they are never pruned as abandoned.

use super::stats::{Session, NO_LOGOUT};
use iumgate_core::pool::{Admission, Mode, Pool, PoolConfig};
use iumgate_core::user::UserId;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};

/// The knobs of a replay (all milliseconds).
#[derive(Debug, Clone, Copy)]
pub struct SimParams {
    pub min_idle_ms: u64,
    /// The waiting page's poll interval (`[queue] retry_every`).
    pub retry_ms: u64,
    /// Start and width of the buckets of the "seats held" series.
    pub origin_ms: i64,
    pub bucket_ms: i64,
    pub buckets: usize,
}

/// The outcome of replaying the log with `seats` shared seats.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SimResult {
    pub seats: usize,
    /// Times a user without a seat asked for one.
    pub logins: u64,
    /// Of those, how many were shown the waiting page.
    pub waited: u64,
    /// `waited / logins` (0 when nobody logged in).
    pub wait_share: f64,
    /// Mean and 95th percentile wait of the logins that waited, seconds.
    pub mean_wait_s: f64,
    pub p95_wait_s: f64,
    pub max_wait_s: f64,
    /// The most seats held at once.
    pub peak_held: usize,
    pub evictions: u64,
    /// Waiters still queued when the log ended (their wait so far is counted).
    pub still_waiting: u64,
    /// Most seats held per bucket.
    #[serde(skip)]
    pub held_series: Vec<u32>,
}

/// The casual users' sessions, ready for replay.
#[derive(Debug, Default, Clone)]
pub struct SimInput {
    pub users: Vec<UserId>,
    /// (user index, session), sorted by session start.
    pub sessions: Vec<(u32, Session)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    // At equal times: seats given back first, then holders' activity, then newcomers.
    Release,
    Touch,
    Start,
}

/// Yields the replay's events in time order, generating the in-session touches lazily so that
/// memory stays proportional to the sessions in progress.
struct Events<'a> {
    sessions: &'a [(u32, Session)],
    next: usize,
    step: i64,
    /// (time, kind, user, session index)
    heap: BinaryHeap<Reverse<(i64, Kind, u32, u32)>>,
}

impl<'a> Events<'a> {
    fn new(sessions: &'a [(u32, Session)], min_idle_ms: u64) -> Self {
        Events {
            sessions,
            next: 0,
            step: (min_idle_ms / 2).max(1) as i64,
            heap: BinaryHeap::new(),
        }
    }

    fn peek_time(&self) -> Option<i64> {
        let s = self.sessions.get(self.next).map(|(_, s)| s.start);
        let h = self.heap.peek().map(|Reverse((t, ..))| *t);
        match (s, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn pop(&mut self) -> Option<(i64, Kind, u32)> {
        let from_sessions = match (self.sessions.get(self.next), self.heap.peek()) {
            (Some((u, s)), Some(Reverse(h))) => (s.start, Kind::Start, *u) < (h.0, h.1, h.2),
            (Some(_), None) => true,
            (None, _) => false,
        };
        let (t, kind, user, idx) = if from_sessions {
            let (u, s) = self.sessions[self.next];
            self.next += 1;
            (s.start, Kind::Start, u, (self.next - 1) as u32)
        } else {
            let Reverse(e) = self.heap.pop()?;
            e
        };
        // Schedule the session's next event.
        let s = self.sessions[idx as usize].1;
        if kind != Kind::Release {
            if t < s.end {
                let next = (t + self.step).min(s.end);
                self.heap.push(Reverse((next, Kind::Touch, user, idx)));
            } else if s.release != NO_LOGOUT {
                self.heap
                    .push(Reverse((s.release.max(s.end), Kind::Release, user, idx)));
            }
        }
        Some((t, kind, user))
    }
}

struct Replay<'a> {
    pool: Pool,
    ids: &'a [UserId],
    index: HashMap<&'a UserId, u32>,
    p: SimParams,
    /// Mirror of the holders' last activity, to know when the longest-idle one becomes
    /// evictable (scheduling only; every decision is the pool's).
    last_active: Vec<Option<u64>>,
    by_idle: BTreeSet<(u64, u32)>,
    /// When each waiter started waiting.
    waiting_since: Vec<Option<u64>>,
    /// The pool's FIFO, mirrored (waiters never abandon here, so the mirror is exact).
    queue: VecDeque<u32>,
    logins: u64,
    waits_ms: Vec<u64>,
    evictions: u64,
    peak: usize,
    series: Vec<u32>,
    /// Seats held now, and the first bucket not yet given that level.
    level: u32,
    filled: usize,
}

fn t_of(ms: i64) -> u64 {
    ms.max(0) as u64
}

impl Replay<'_> {
    fn set_active(&mut self, u: u32, t: u64) {
        if let Some(old) = self.last_active[u as usize] {
            if old >= t {
                return;
            }
            self.by_idle.remove(&(old, u));
        }
        self.last_active[u as usize] = Some(t);
        self.by_idle.insert((t, u));
    }

    fn drop_holder(&mut self, u: u32) {
        if let Some(old) = self.last_active[u as usize].take() {
            self.by_idle.remove(&(old, u));
        }
    }

    /// Records the seats held after a change at `t`. Buckets since the last change hold the
    /// level that was in force then (holders keep their seats until something happens).
    fn note_held(&mut self, t: u64) {
        let n = self.pool.in_use();
        self.peak = self.peak.max(n);
        let b = (t as i64 - self.p.origin_ms).div_euclid(self.p.bucket_ms.max(1));
        let b = b.clamp(0, self.series.len() as i64) as usize;
        self.fill_to(b);
        if let Some(slot) = self.series.get_mut(b) {
            *slot = (*slot).max(n as u32);
        }
        self.level = n as u32;
    }

    /// Carries the current level through the buckets before `b`.
    fn fill_to(&mut self, b: usize) {
        let b = b.min(self.series.len());
        while self.filled < b {
            let slot = &mut self.series[self.filled];
            *slot = (*slot).max(self.level);
            self.filled += 1;
        }
    }

    /// One admission attempt by a user without a seat. True if it got one.
    fn attempt(&mut self, u: u32, t: u64) -> bool {
        let user = &self.ids[u as usize];
        let first = self.waiting_since[u as usize].is_none();
        if first {
            self.logins += 1;
        }
        match self.pool.admit(user, t, Mode::MayEvict) {
            Admission::Granted | Admission::Holding => {}
            Admission::Evicted { victim } => {
                self.evictions += 1;
                if let Some(&v) = self.index.get(&victim.user) {
                    self.drop_holder(v);
                }
            }
            Admission::Wait { .. } | Admission::NoFreeSeat => {
                if first {
                    self.waiting_since[u as usize] = Some(t);
                    self.queue.push_back(u);
                }
                return false;
            }
        }
        if let Some(since) = self.waiting_since[u as usize].take() {
            self.waits_ms.push(t - since);
            if let Some(i) = self.queue.iter().position(|&w| w == u) {
                self.queue.remove(i);
            }
        }
        self.set_active(u, t);
        self.note_held(t);
        true
    }

    fn event(&mut self, t: u64, kind: Kind, u: u32) {
        let user = &self.ids[u as usize];
        match kind {
            Kind::Release => {
                if self.pool.release(user).is_some() {
                    self.drop_holder(u);
                    self.note_held(t);
                } else if let Some(since) = self.waiting_since[u as usize].take() {
                    // Logged out while waiting: the wait ends there.
                    self.pool.leave_queue(user);
                    self.waits_ms.push(t - since);
                    if let Some(i) = self.queue.iter().position(|&w| w == u) {
                        self.queue.remove(i);
                    }
                }
            }
            Kind::Touch | Kind::Start => {
                if self.pool.touch(user, t) {
                    self.set_active(u, t);
                } else {
                    self.attempt(u, t);
                }
            }
        }
    }

    /// The waiting page's polls at `t`, head first. A waiter that still waits means everyone
    /// behind it waits too (it stands behind at least as many as there are free seats), so the
    /// round stops there.
    fn poll_round(&mut self, t: u64) {
        while let Some(&u) = self.queue.front() {
            if !self.attempt(u, t) {
                break;
            }
        }
    }

    /// When a poll could next succeed: when the longest-idle holder reaches `min_idle`.
    fn next_expiry(&self, after: u64) -> Option<u64> {
        let (la, _) = self.by_idle.first()?;
        Some((la + self.p.min_idle_ms).max(after + 1))
    }

    fn grid_at_or_after(&self, t: u64) -> u64 {
        let r = self.p.retry_ms.max(1);
        t.div_ceil(r) * r
    }
}

/// Replays `input` with `seats` shared seats.
pub fn simulate(input: &SimInput, seats: usize, p: &SimParams) -> SimResult {
    let n = input.users.len();
    let mut r = Replay {
        pool: Pool::new(PoolConfig {
            capacity: seats,
            min_idle_ms: p.min_idle_ms,
            // Waiters poll until let in (see the module doc), so none is ever abandoned.
            abandon_after_ms: u64::MAX,
        }),
        ids: &input.users,
        index: input
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u, i as u32))
            .collect(),
        p: *p,
        last_active: vec![None; n],
        by_idle: BTreeSet::new(),
        waiting_since: vec![None; n],
        queue: VecDeque::new(),
        logins: 0,
        waits_ms: Vec::new(),
        evictions: 0,
        peak: 0,
        series: vec![0; p.buckets],
        level: 0,
        filled: 0,
    };
    let mut events = Events::new(&input.sessions, p.min_idle_ms);
    let mut tick: Option<u64> = None;
    let mut now = 0u64;
    loop {
        let te = events.peek_time().map(t_of);
        let run_tick = match (tick, te) {
            (Some(a), Some(b)) => a < b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if run_tick {
            let t = tick.take().unwrap_or(now);
            now = now.max(t);
            r.poll_round(t);
            if !r.queue.is_empty() {
                tick = r.next_expiry(t).map(|x| r.grid_at_or_after(x));
            }
        } else if let Some((t, kind, u)) = events.pop() {
            let t = t_of(t);
            now = now.max(t);
            r.event(t, kind, u);
            if !r.queue.is_empty() {
                // Something changed: the waiters' next polls may succeed.
                let next = r.grid_at_or_after(t + 1);
                tick = Some(tick.map_or(next, |x| x.min(next)));
            }
        }
    }
    r.fill_to(r.series.len());
    let still_waiting = r.queue.len() as u64;
    for u in r.queue.iter() {
        if let Some(since) = r.waiting_since[*u as usize] {
            r.waits_ms.push(now.saturating_sub(since));
        }
    }
    r.waits_ms.sort_unstable();
    let waited = r.waits_ms.len() as u64;
    let mean = if waited > 0 {
        r.waits_ms.iter().sum::<u64>() as f64 / waited as f64 / 1000.0
    } else {
        0.0
    };
    SimResult {
        seats,
        logins: r.logins,
        waited,
        wait_share: if r.logins > 0 {
            waited as f64 / r.logins as f64
        } else {
            0.0
        },
        mean_wait_s: mean,
        p95_wait_s: percentile(&r.waits_ms, 0.95) as f64 / 1000.0,
        max_wait_s: r.waits_ms.last().copied().unwrap_or(0) as f64 / 1000.0,
        peak_held: r.peak,
        evictions: r.evictions,
        still_waiting,
        held_series: r.series,
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// The casual users' demand: how many of them are busy (between a session's start and
/// `min_idle` after its end, or its logout) at once — the seats that would let nobody wait.
/// Returns (peak, most busy per bucket).
pub fn demand(input: &SimInput, p: &SimParams) -> (usize, Vec<u32>) {
    let mut edges: Vec<(i64, i32)> = Vec::with_capacity(input.sessions.len() * 2);
    for (_, s) in &input.sessions {
        edges.push((s.start, 1));
        edges.push((s.busy_until(p.min_idle_ms as i64), -1));
    }
    // Ends before starts at the same instant: the seat is free for the newcomer.
    edges.sort_unstable();
    let mut series = vec![0u32; p.buckets];
    let (mut cur, mut peak) = (0i64, 0i64);
    for (t, d) in edges {
        cur += d as i64;
        peak = peak.max(cur);
        let b = (t - p.origin_ms).div_euclid(p.bucket_ms.max(1));
        if b >= 0 && (b as usize) < series.len() {
            series[b as usize] = series[b as usize].max(cur.max(0) as u32);
        }
    }
    // A bucket inside a long stretch with no edge holds the level carried into it.
    let mut level = 0u32;
    let mut cur = 0i64;
    let mut edges_by_bucket: Vec<i64> = vec![0; p.buckets];
    for (_, s) in &input.sessions {
        let b0 = (s.start - p.origin_ms).div_euclid(p.bucket_ms.max(1));
        let b1 = (s.busy_until(p.min_idle_ms as i64) - p.origin_ms).div_euclid(p.bucket_ms.max(1));
        if b0 >= 0 && (b0 as usize) < edges_by_bucket.len() {
            edges_by_bucket[b0 as usize] += 1;
        }
        if b1 >= 0 && (b1 as usize) < edges_by_bucket.len() {
            edges_by_bucket[b1 as usize] -= 1;
        }
    }
    for (i, d) in edges_by_bucket.iter().enumerate() {
        series[i] = series[i].max(level);
        cur += d;
        level = cur.max(0) as u32;
    }
    (peak.max(0) as usize, series)
}
