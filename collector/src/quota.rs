//! Per-uid quotas: versions per minute and bytes of content per day, so one
//! user's runaway script cannot fill the store. Beyond either, a version is
//! still recorded (who, when, path, action, hashes) but its content is not
//! stored (`content: "quota"`), with one clear log line per window: a quota
//! never hides a change.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::Quota;

#[derive(Debug, Default)]
struct Usage {
    minute: i64,
    versions: u64,
    day: i64,
    bytes: u64,
    warned_minute: Option<i64>,
    warned_day: Option<i64>,
}

/// Why a version was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    VersionsPerMinute,
    BytesPerDay,
}

pub struct Quotas {
    limits: Quota,
    usage: Mutex<HashMap<u32, Usage>>,
}

impl Quotas {
    pub fn new(limits: Quota) -> Self {
        Quotas { limits, usage: Mutex::new(HashMap::new()) }
    }

    /// Counts one version of `bytes` for `uid` at `now_s` (seconds since the
    /// epoch). `Err` when it exceeds a quota; `Err((kind, true))` the first
    /// time in the current window (log it then).
    pub fn charge(&self, uid: u32, bytes: u64, now_s: i64) -> Result<(), (Exceeded, bool)> {
        let mut all = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let u = all.entry(uid).or_default();
        let (minute, day) = (now_s.div_euclid(60), now_s.div_euclid(86_400));
        if u.minute != minute {
            u.minute = minute;
            u.versions = 0;
        }
        if u.day != day {
            u.day = day;
            u.bytes = 0;
        }
        if u.versions + 1 > self.limits.versions_per_minute {
            let first = u.warned_minute.replace(minute) != Some(minute);
            return Err((Exceeded::VersionsPerMinute, first));
        }
        if u.bytes + bytes > self.limits.bytes_per_day {
            let first = u.warned_day.replace(day) != Some(day);
            return Err((Exceeded::BytesPerDay, first));
        }
        u.versions += 1;
        u.bytes += bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_per_minute_reset_each_minute() {
        let q = Quotas::new(Quota { versions_per_minute: 2, bytes_per_day: 1000 });
        assert!(q.charge(7, 1, 60).is_ok());
        assert!(q.charge(7, 1, 61).is_ok());
        assert_eq!(q.charge(7, 1, 62), Err((Exceeded::VersionsPerMinute, true)));
        assert_eq!(q.charge(7, 1, 63), Err((Exceeded::VersionsPerMinute, false)));
        assert!(q.charge(8, 1, 63).is_ok(), "other users are not affected");
        assert!(q.charge(7, 1, 120).is_ok());
    }

    #[test]
    fn bytes_per_day() {
        let q = Quotas::new(Quota { versions_per_minute: 100, bytes_per_day: 10 });
        assert!(q.charge(1, 6, 0).is_ok());
        assert_eq!(q.charge(1, 6, 1), Err((Exceeded::BytesPerDay, true)));
        assert!(q.charge(1, 4, 2).is_ok());
        assert!(q.charge(1, 6, 86_400).is_ok());
    }
}
