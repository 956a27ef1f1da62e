//! Times for humans: read on the command line, shown in review output, in
//! one zone (the local one, or UTC with `--utc`).
//!
//! A time is read exactly or refused: `2026-11-25 14:30[:SS[.frac]]` (a
//! space or a `T`), a date alone (its midnight), `14:30[:SS]` (today),
//! `today|yesterday [HH:MM[:SS]]`, `now`, `@EPOCH` (Unix seconds), RFC 3339
//! with an offset, and spans back from now: `2h`, `-2h`, `90 minutes ago`,
//! `3d` (a leading `+` means ahead of now). Every human output shows a time
//! as `YYYY-MM-DD HH:MM:SS` in the same zone (truncated to the second, so a
//! time copied from the output into `--since` includes that version). JSON
//! stays RFC 3339 UTC ([`json`]).

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ZonedDateTime as Zoned};

/// The zone times are read and shown in, and "now" in it.
#[derive(Debug, Clone)]
pub struct Clock {
    now: Zoned,
    label: String,
}

const SHOWN: &str = "%Y-%m-%d %H:%M:%S";
const FORMS: &str = "2026-11-25 14:30, 2026-11-25, 14:30, yesterday 10:00, 2h (ago), -2h, @1764000000, \
                     or 2026-11-25T14:30:00Z";

impl Clock {
    /// The local zone (`TZ`, else the system's), or UTC.
    pub fn new(utc: bool) -> Clock {
        let zone = if utc { TimeZone::UTC } else { TimeZone::system() };
        Clock::at(Timestamp::now().to_zoned_datetime(zone))
    }

    /// A clock whose "now" is `now`, in `now`'s zone.
    pub fn at(now: Zoned) -> Clock {
        let label = match now.time_zone().iana_name() {
            // The system's UTC is often spelled so (a `/etc/localtime` link).
            Some("Etc/UTC" | "Etc/UCT" | "Etc/Universal" | "Etc/Zulu" | "UCT" | "Universal" | "Zulu") => "UTC",
            Some(name) => name,
            None => "local",
        };
        Clock { label: label.to_owned(), now }
    }

    /// The zone's name, for headers: `UTC` (also for its aliases, such as
    /// `Etc/UTC`), `Europe/Paris`, or `local`.
    pub fn zone(&self) -> &str {
        &self.label
    }

    fn tz(&self) -> TimeZone {
        self.now.time_zone().clone()
    }

    /// `t` as review output shows times: `2026-11-25 14:30:00`.
    pub fn show(&self, t: Timestamp) -> String {
        t.to_zoned_datetime(self.tz()).strftime(SHOWN).to_string()
    }

    /// An RFC 3339 time from the store's JSON spelling, shown as [`show`];
    /// anything else as it is.
    pub fn show_text(&self, rfc3339: &str) -> String {
        rfc3339.parse::<Timestamp>().map(|t| self.show(t)).unwrap_or_else(|_| rfc3339.to_owned())
    }

    /// The zone's offset from UTC at `t`, in seconds (git dates carry it).
    pub fn offset_seconds(&self, t: Timestamp) -> i32 {
        self.tz().to_offset(t).seconds()
    }

    /// Reads `text` as a time (see the module's forms).
    pub fn parse(&self, text: &str) -> Result<Timestamp, String> {
        let t = text.trim();
        self.read(t).ok_or_else(|| format!("cannot read {text:?} as a time: use e.g. {FORMS}"))?
    }

    /// As [`Clock::parse`], but the last instant the text names: a time to
    /// the second without a fraction (as review output shows times) covers
    /// that whole second, so a version shown with that time is at or before
    /// it.
    pub fn parse_through(&self, text: &str) -> Result<Timestamp, String> {
        let t = self.parse(text)?;
        let b = text.trim().as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        let n = b.len();
        let to_the_second = n >= 8
            && digits(n - 8..n - 6)
            && b[n - 6] == b':'
            && digits(n - 5..n - 3)
            && b[n - 3] == b':'
            && digits(n - 2..n)
            && (n == 8 || matches!(b[n - 9], b' ' | b'T'));
        Ok(if to_the_second { t.checked_add(jiff::SignedDuration::from_micros(999_999)).unwrap_or(t) } else { t })
    }

    /// `None`: not a form we know; `Some(Err)`: a form, but no such time.
    fn read(&self, t: &str) -> Option<Result<Timestamp, String>> {
        let err = |e: jiff::Error| e.to_string();
        let in_zone = |dt: DateTime| Some(dt.to_zoned_datetime(self.tz()).map(|z| z.timestamp()).map_err(err));
        if t == "now" {
            return Some(Ok(self.now.timestamp()));
        }
        if let Some(epoch) = t.strip_prefix('@') {
            return Some(epoch_seconds(epoch).ok_or_else(|| format!("@{epoch}: not a number of seconds")));
        }
        // Exact instants (with an offset or Z).
        if let Ok(ts) = t.parse::<Timestamp>() {
            return Some(Ok(ts));
        }
        // A date and a time of day, or a date alone.
        for form in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
            if let Ok(dt) = DateTime::strptime(form, t) {
                return in_zone(dt);
            }
        }
        if let Ok(d) = Date::strptime("%Y-%m-%d", t) {
            return in_zone(d.to_datetime(Time::midnight()));
        }
        // A day by name, with an optional time of day; a time of day alone is today.
        let today = self.now.date();
        let (day, rest) = match t.split_once(' ') {
            Some(("today", rest)) => (Some(today), rest),
            Some(("yesterday", rest)) => (today.yesterday().ok(), rest),
            None if t == "today" => (Some(today), ""),
            None if t == "yesterday" => (today.yesterday().ok(), ""),
            _ => (None, t),
        };
        let time = match rest.trim() {
            "" => Some(Time::midnight()),
            r => ["%H:%M:%S", "%H:%M"].iter().find_map(|f| Time::strptime(f, r).ok()),
        };
        match (day, time) {
            (Some(d), Some(time)) => return in_zone(d.to_datetime(time)),
            (None, Some(time)) if !rest.trim().is_empty() => return in_zone(today.to_datetime(time)),
            (Some(_), None) => return None,
            _ => {}
        }
        // A span: back from now ("2h", "-2h", "2h ago"), or ahead ("+2h").
        let (ahead, span) = match t.strip_suffix("ago") {
            Some(s) => (false, s.trim()),
            None => match t.as_bytes().first() {
                Some(b'+') => (true, &t[1..]),
                Some(b'-') => (false, &t[1..]),
                _ => (false, t),
            },
        };
        if span.starts_with(['+', '-']) {
            return None;
        }
        let span = span.parse::<Span>().ok()?;
        let moved = if ahead { self.now.checked_add(span) } else { self.now.checked_sub(span) };
        Some(moved.map(|z| z.timestamp()).map_err(err))
    }
}

/// `1764000000` or `1764000000.25`: seconds since the Unix epoch.
fn epoch_seconds(text: &str) -> Option<Timestamp> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    let nanos: i32 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().ok()? };
    let nanos = if secs < 0 || whole.starts_with('-') { -nanos } else { nanos };
    Timestamp::new(secs, nanos).ok()
}

/// The JSON spelling of a time: RFC 3339 in UTC, to the microsecond (as
/// `query --json`'s `time`), from the store's microseconds.
pub fn json(us: i64) -> String {
    Timestamp::from_microsecond(us).map(|t| t.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> Clock {
        Clock::at("2026-11-25T15:00:00+00:00[UTC]".parse().unwrap())
    }

    fn at(text: &str) -> String {
        clock().parse(text).map(|t| t.to_string()).unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn spans_count_back_from_now_whatever_their_sign_says_unless_plus() {
        assert_eq!(at("2h"), "2026-11-25T13:00:00Z");
        assert_eq!(at("-1h"), "2026-11-25T14:00:00Z");
        assert_eq!(at("+1h"), "2026-11-25T16:00:00Z");
        assert_eq!(at("3d"), "2026-11-22T15:00:00Z");
        assert_eq!(at("90 minutes ago"), "2026-11-25T13:30:00Z");
        assert_eq!(at("2 hours"), "2026-11-25T13:00:00Z");
        assert!(at("--1h").starts_with("error"));
        assert!(at("+-1h").starts_with("error"));
    }

    #[test]
    fn a_date_and_time_is_read_exactly() {
        assert_eq!(at("2026-11-30 03:45:00"), "2026-11-30T03:45:00Z");
        assert_eq!(at("2026-11-30 03:45"), "2026-11-30T03:45:00Z");
        assert_eq!(at("2026-11-30T03:45:07.5"), "2026-11-30T03:45:07.5Z");
        assert_eq!(at("2026-11-01"), "2026-11-01T00:00:00Z");
        assert_eq!(at("2026-11-25T10:00:00Z"), "2026-11-25T10:00:00Z");
        assert_eq!(at("2026-11-25T10:00:00+01:00"), "2026-11-25T09:00:00Z");
        for bad in ["2026-11-30 03:45:00 junk", "2026-11-30 3h", "2026-11-30 25:00", "2026-13-01", "last tuesdayish"] {
            assert!(at(bad).starts_with("error"), "{bad}: {}", at(bad));
        }
    }

    #[test]
    fn a_time_to_the_second_runs_through_that_second() {
        let through = |t: &str| clock().parse_through(t).unwrap().to_string();
        assert_eq!(through("2026-11-30 03:45:07"), "2026-11-30T03:45:07.999999Z");
        assert_eq!(through("2026-11-30T03:45:07"), "2026-11-30T03:45:07.999999Z");
        assert_eq!(through("yesterday 10:00:05"), "2026-11-24T10:00:05.999999Z");
        assert_eq!(through("10:00:05"), "2026-11-25T10:00:05.999999Z");
        // Exact already: fractions, offsets, minutes, spans, epochs.
        assert_eq!(through("2026-11-30T03:45:07.5"), "2026-11-30T03:45:07.5Z");
        assert_eq!(through("2026-11-25T10:00:00Z"), "2026-11-25T10:00:00Z");
        assert_eq!(through("2026-11-25T10:00:00+01:00"), "2026-11-25T09:00:00Z");
        assert_eq!(through("2026-11-30 03:45"), "2026-11-30T03:45:00Z");
        assert_eq!(through("2h"), "2026-11-25T13:00:00Z");
        assert_eq!(through("@1764000000"), "2025-11-24T16:00:00Z");
    }

    #[test]
    fn named_days_times_of_day_and_epochs() {
        assert_eq!(at("now"), "2026-11-25T15:00:00Z");
        assert_eq!(at("today"), "2026-11-25T00:00:00Z");
        assert_eq!(at("yesterday"), "2026-11-24T00:00:00Z");
        assert_eq!(at("yesterday 10:00"), "2026-11-24T10:00:00Z");
        assert_eq!(at("today 09:30:15"), "2026-11-25T09:30:15Z");
        assert_eq!(at("10:00"), "2026-11-25T10:00:00Z");
        assert_eq!(at("@1764000000"), "2025-11-24T16:00:00Z");
        assert_eq!(at("@1764000000.25"), "2025-11-24T16:00:00.25Z");
        assert!(at("@12x").starts_with("error"));
        assert!(at("yesterday noon").starts_with("error"));
    }

    #[test]
    fn input_and_output_share_the_zone() {
        let paris = Clock::at("2026-11-25T15:00:00+01:00[Europe/Paris]".parse().unwrap());
        let t = paris.parse("2026-11-25 10:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-25T09:00:00Z");
        assert_eq!(paris.show(t), "2026-11-25 10:00:00");
        assert_eq!(paris.zone(), "Europe/Paris");
        assert_eq!(paris.show_text("2026-11-25T09:00:00.999Z"), "2026-11-25 10:00:00");
        // What is shown reads back as the second it was truncated to.
        assert_eq!(paris.parse(&paris.show(t)).unwrap(), t);
        assert_eq!(clock().zone(), "UTC");
        let etc_utc = Clock::at("2026-11-25T15:00:00+00:00[Etc/UTC]".parse().unwrap());
        assert_eq!(etc_utc.zone(), "UTC", "an alias of UTC is called UTC");
    }
}
