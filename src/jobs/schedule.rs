//! When the jobs are due, as pure functions of "now" and the last run, so a
//! test can say "it is 02:00 now" with a manual clock instead of waiting.

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// A job that runs once a day at a local time of day.
#[derive(Debug, Clone)]
pub struct Daily {
    pub hour: i8,
    pub minute: i8,
    pub tz: TimeZone,
}

impl Daily {
    pub fn new(hour: u32, minute: u32, tz: TimeZone) -> Result<Daily, String> {
        let (Ok(hour), Ok(minute)) = (i8::try_from(hour), i8::try_from(minute)) else {
            return Err(format!("{hour}:{minute} is not a time of day"));
        };
        if hour > 23 || minute > 59 {
            return Err(format!("{hour}:{minute:02} is not a time of day"));
        }
        Ok(Daily { hour, minute, tz })
    }

    /// The latest instant at or before `now_ms` whose local time is the
    /// job's time of day (in ms since the epoch). On a day when that local
    /// time does not exist (a daylight-saving gap) it is the instant just
    /// after the gap.
    pub fn last_at_or_before(&self, now_ms: u64) -> Option<u64> {
        let now = Timestamp::from_millisecond(i64::try_from(now_ms).ok()?).ok()?;
        let today = now.to_zoned_datetime(self.tz.clone()).date();
        let mut day = today;
        // Today's slot may still be ahead; then yesterday's is the one.
        for _ in 0..2 {
            let at = day
                .at(self.hour, self.minute, 0, 0)
                .to_zoned_datetime(self.tz.clone())
                .ok()?
                .timestamp();
            if at <= now {
                return u64::try_from(at.as_millisecond()).ok();
            }
            day = day.yesterday().ok()?;
        }
        None
    }

    /// Whether the time of day was reached in `(prev_ms, now_ms]`: one run
    /// per day, however long the gap between two ticks (no catching up on
    /// every day missed while iumgate was down).
    pub fn due(&self, prev_ms: u64, now_ms: u64) -> bool {
        self.last_at_or_before(now_ms)
            .is_some_and(|at| at > prev_ms)
    }
}

/// Whether a job that runs every `every_ms` and last ran at `last_ms` is due.
pub fn every_due(last_ms: u64, every_ms: u64, now_ms: u64) -> bool {
    now_ms >= last_ms.saturating_add(every_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_timezone;

    // 2025-01-15T00:00:00Z
    const DAY0: u64 = 1_736_899_200_000;
    const H: u64 = 3_600_000;
    const M: u64 = 60_000;

    #[test]
    fn two_in_the_morning_is_local_time() {
        let d = Daily::new(2, 0, parse_timezone(Some("+01:00")).unwrap()).unwrap();
        // 02:00 at +01:00 is 01:00 UTC.
        assert_eq!(d.last_at_or_before(DAY0 + H), Some(DAY0 + H));
        assert_eq!(d.last_at_or_before(DAY0 + H - 1), Some(DAY0 + H - 24 * H));
        assert!(
            !d.due(DAY0 + H - 2 * M, DAY0 + H - M),
            "01:58 → 01:59 local is not yet due"
        );
        assert!(d.due(DAY0 + H - M, DAY0 + H), "01:59 → 02:00 local is due");
        assert!(!d.due(DAY0 + H, DAY0 + 2 * H), "already ran at 02:00");
    }

    #[test]
    fn a_long_gap_runs_once() {
        let d = Daily::new(2, 30, TimeZone::UTC).unwrap();
        let prev = DAY0;
        let now = DAY0 + 3 * 24 * H;
        assert!(d.due(prev, now));
        // After running at `now`, nothing is due until the next 02:30.
        assert!(!d.due(now, now + H));
        assert!(d.due(now, now + 3 * H));
    }

    #[test]
    fn daylight_saving_zones_follow_the_wall_clock() {
        // Berlin: +01:00 in January, +02:00 in July.
        let d = Daily::new(2, 0, parse_timezone(Some("Europe/Berlin")).unwrap()).unwrap();
        assert_eq!(d.last_at_or_before(DAY0 + 2 * H), Some(DAY0 + H));
        // 2025-07-15T00:00:00Z
        let july = 1_752_537_600_000;
        assert_eq!(d.last_at_or_before(july + 2 * H), Some(july));
    }

    #[test]
    fn every_is_due_after_its_interval() {
        assert!(!every_due(1_000, H, 1_000 + H - 1));
        assert!(every_due(1_000, H, 1_000 + H));
    }
}
