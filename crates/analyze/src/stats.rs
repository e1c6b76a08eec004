//! Per-user activity, kept as sessions rather than requests, so memory grows with users and
//! their sessions — never with the number of log lines.
//!
//! A session is a run of activity requests whose gaps are all shorter than `min_idle`. That is
//! exactly what the pool needs: inside a session the holder is never idle long enough to lose
//! the seat, and after it the holder's last activity is the session's end (see `sim`).

use std::collections::HashMap;
use std::sync::Arc;

/// `release` of a session that did not end with a logout.
pub const NO_LOGOUT: i64 = i64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// First activity (UTC ms).
    pub start: i64,
    /// Last activity (UTC ms).
    pub end: i64,
    /// When a logout gave the seat back, or [`NO_LOGOUT`].
    pub release: i64,
}

impl Session {
    fn closed(&self) -> bool {
        self.release != NO_LOGOUT
    }

    /// When the seat stops being busy: `min_idle` after the last activity (it cannot be taken
    /// before), or the logout if that came first.
    pub fn busy_until(&self, idle_ms: i64) -> i64 {
        self.end
            .saturating_add(idle_ms)
            .min(self.release.max(self.end))
    }
}

#[derive(Debug, Clone)]
pub struct UserActivity {
    pub name: Arc<str>,
    /// Sorted by start, never overlapping.
    pub sessions: Vec<Session>,
    /// Activity requests by local hour of day.
    pub hours: [u32; 24],
    pub requests: u64,
    pub activity: u64,
}

impl UserActivity {
    fn new(name: Arc<str>) -> UserActivity {
        UserActivity {
            name,
            sessions: Vec::new(),
            hours: [0; 24],
            requests: 0,
            activity: 0,
        }
    }

    /// Adds one activity at `t`. In-order input (the usual case) touches only the last session;
    /// out-of-order input (several cluster nodes, Tomcat logging at completion) is merged in.
    pub fn add_activity(&mut self, t: i64, idle_ms: i64) {
        if let Some(last) = self.sessions.last_mut() {
            if t >= last.start {
                let joins = if last.closed() {
                    t <= last.release
                } else {
                    t < last.end.saturating_add(idle_ms)
                };
                if joins {
                    last.end = last.end.max(t);
                    return;
                }
                if t > last.end {
                    self.sessions.push(Session {
                        start: t,
                        end: t,
                        release: NO_LOGOUT,
                    });
                    return;
                }
            }
        } else {
            self.sessions.push(Session {
                start: t,
                end: t,
                release: NO_LOGOUT,
            });
            return;
        }
        self.insert_out_of_order(t, idle_ms);
    }

    fn insert_out_of_order(&mut self, t: i64, idle_ms: i64) {
        let i = self.sessions.partition_point(|s| s.start <= t);
        // Inside an existing session already?
        if i > 0 && t <= self.sessions[i - 1].end {
            return;
        }
        self.sessions.insert(
            i,
            Session {
                start: t,
                end: t,
                release: NO_LOGOUT,
            },
        );
        // Merge with the neighbours where the gap is short enough.
        let mut j = i.saturating_sub(1);
        while j + 1 < self.sessions.len() && j <= i {
            let (a, b) = (self.sessions[j], self.sessions[j + 1]);
            let joins = if a.closed() {
                b.start <= a.release
            } else {
                b.start < a.end.saturating_add(idle_ms)
            };
            if joins {
                self.sessions[j] = Session {
                    start: a.start,
                    end: a.end.max(b.end),
                    release: if b.end >= a.end { b.release } else { a.release },
                };
                self.sessions.remove(j + 1);
            } else {
                j += 1;
            }
        }
    }

    /// A logout at `t` gives the seat back: it closes the session it follows.
    pub fn add_logout(&mut self, t: i64) {
        let i = self.sessions.partition_point(|s| s.start <= t);
        if i == 0 {
            return; // a logout before any activity held no seat
        }
        let s = &mut self.sessions[i - 1];
        if t >= s.end && (!s.closed() || t < s.release) {
            s.release = t;
        }
    }
}

/// All users, looked up by name without an allocation per line.
#[derive(Debug, Default)]
pub struct Users {
    index: HashMap<Box<str>, u32>,
    pub list: Vec<UserActivity>,
}

impl Users {
    /// The user's slot; names are folded to lower case as [`iumgate_core::user::UserId`] does.
    pub fn slot(&mut self, name: &str) -> &mut UserActivity {
        let name = name.trim();
        let i = if name.bytes().any(|b| b.is_ascii_uppercase() || b >= 0x80) {
            let folded = name.to_lowercase();
            self.find_or_add(&folded)
        } else {
            self.find_or_add(name)
        };
        &mut self.list[i]
    }

    /// The user's slot if they have one (names folded as in [`Users::slot`]).
    pub fn find_mut(&mut self, name: &str) -> Option<&mut UserActivity> {
        let name = name.trim();
        let i = if name.bytes().any(|b| b.is_ascii_uppercase() || b >= 0x80) {
            self.index.get(name.to_lowercase().as_str()).copied()
        } else {
            self.index.get(name).copied()
        }?;
        self.list.get_mut(i as usize)
    }

    fn find_or_add(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i as usize;
        }
        let i = self.list.len();
        self.index.insert(name.into(), i as u32);
        self.list.push(UserActivity::new(Arc::from(name)));
        i
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Busy time of one user per local day: the union of `[start, busy_until)` of its sessions,
/// cut at local midnights. Returns (day number, busy ms) sorted by day.
pub fn busy_by_day(sessions: &[Session], idle_ms: i64, offset_ms: i64) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    let mut add = |day: i64, ms: i64| match out.last_mut() {
        Some((d, total)) if *d == day => *total += ms,
        _ => out.push((day, ms)),
    };
    let mut covered_to = i64::MIN;
    for s in sessions {
        let from = (s.start + offset_ms).max(covered_to);
        let to = s.busy_until(idle_ms) + offset_ms;
        if to <= from {
            continue;
        }
        covered_to = to;
        let mut t = from;
        while t < to {
            let day = t.div_euclid(86_400_000);
            let day_end = (day + 1) * 86_400_000;
            let piece_end = to.min(day_end);
            add(day, piece_end - t);
            t = piece_end;
        }
    }
    out
}

/// The shortest run of hours holding at least `share` of the activity, as (first, last+1).
pub fn typical_hours(hours: &[u32; 24], share: f64) -> Option<(u8, u8)> {
    let total: u64 = hours.iter().map(|&h| h as u64).sum();
    if total == 0 {
        return None;
    }
    let need = (total as f64 * share).ceil() as u64;
    let mut best: Option<(u8, u8)> = None;
    for a in 0..24 {
        let mut sum = 0u64;
        for (k, &h) in hours[a..].iter().enumerate() {
            sum += h as u64;
            if sum >= need {
                let b = a + k;
                if best.is_none_or(|(x, y)| b + 1 - a < (y - x) as usize) {
                    best = Some((a as u8, (b + 1) as u8));
                }
                break;
            }
        }
    }
    best
}

/// Monday..Friday? (1970-01-01, day 0, was a Thursday.)
pub fn is_weekday(day: i64) -> bool {
    (day + 3).rem_euclid(7) < 5
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn gaps_shorter_than_idle_make_one_session() {
        let mut u = UserActivity::new("a".into());
        for t in [0, 10, 25, 60, 200] {
            u.add_activity(t * MIN, 30 * MIN);
        }
        let ranges: Vec<(i64, i64)> = u
            .sessions
            .iter()
            .map(|s| (s.start / MIN, s.end / MIN))
            .collect();
        assert_eq!(ranges, vec![(0, 25), (60, 60), (200, 200)]);
    }

    #[test]
    fn out_of_order_activity_merges_like_in_order() {
        let times = [0, 10, 25, 60, 70, 200, 210];
        let mut sorted = UserActivity::new("a".into());
        for t in times {
            sorted.add_activity(t * MIN, 30 * MIN);
        }
        let mut shuffled = UserActivity::new("a".into());
        for t in [200, 60, 0, 25, 210, 10, 70] {
            shuffled.add_activity(t * MIN, 30 * MIN);
        }
        assert_eq!(sorted.sessions, shuffled.sessions);
    }

    #[test]
    fn logout_closes_the_session() {
        let mut u = UserActivity::new("a".into());
        u.add_activity(0, 30 * MIN);
        u.add_activity(5 * MIN, 30 * MIN);
        u.add_logout(6 * MIN);
        u.add_activity(8 * MIN, 30 * MIN);
        assert_eq!(
            u.sessions.len(),
            2,
            "activity after a logout is a new session"
        );
        assert_eq!(u.sessions[0].release, 6 * MIN);
        assert_eq!(u.sessions[0].busy_until(30 * MIN), 6 * MIN);
    }

    #[test]
    fn busy_time_is_cut_at_midnight() {
        let day = 86_400_000;
        let s = [Session {
            start: day - 60 * MIN,
            end: day - 10 * MIN,
            release: NO_LOGOUT,
        }];
        assert_eq!(
            busy_by_day(&s, 30 * MIN, 0),
            vec![(0, 60 * MIN), (1, 20 * MIN)]
        );
    }

    #[test]
    fn typical_hours_is_the_shortest_window() {
        let mut h = [0u32; 24];
        for (i, v) in h.iter_mut().enumerate().take(17).skip(8) {
            *v = 10 + i as u32 % 2;
        }
        h[3] = 1;
        // 95 requests; 80% needs 76: 08..16 holds 84, no 7-hour run reaches 76.
        assert_eq!(typical_hours(&h, 0.8), Some((8, 16)));
        assert_eq!(typical_hours(&h, 1.0), Some((3, 17)));
    }

    #[test]
    fn weekdays() {
        assert!(is_weekday(0)); // Thursday
        assert!(!is_weekday(2)); // Saturday
        assert!(is_weekday(4)); // Monday
    }
}
