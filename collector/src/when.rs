//! Times on the command line: `--since 2h`, `--since yesterday`,
//! `--until 2026-11-25`, or RFC 3339 (`2026-11-25T14:00:00Z`).

use jiff::{Span, Timestamp, ZonedDateTime as Zoned};

/// Parses `text` relative to `now` (in the local time zone).
pub fn parse(text: &str, now: &Zoned) -> Result<Timestamp, String> {
    let t = text.trim();
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts);
    }
    let start_of_today = || now.start_of_day().map_err(|e| e.to_string());
    match t {
        "now" => return Ok(now.timestamp()),
        "today" => return Ok(start_of_today()?.timestamp()),
        "yesterday" => {
            return start_of_today()?
                .checked_sub(Span::new().days(1))
                .map(|z| z.timestamp())
                .map_err(|e| e.to_string());
        }
        _ => {}
    }
    if let Ok(date) = t.parse::<jiff::civil::Date>() {
        return date.to_zoned_datetime(now.time_zone().clone()).map(|z| z.timestamp()).map_err(|e| e.to_string());
    }
    if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
        return dt.to_zoned_datetime(now.time_zone().clone()).map(|z| z.timestamp()).map_err(|e| e.to_string());
    }
    // A span back from now: "2h", "30m", "3d", "1w", "2 hours", "2h ago".
    let span_text = t.strip_suffix("ago").unwrap_or(t).trim();
    if let Ok(span) = span_text.parse::<Span>() {
        return now.checked_sub(span).map(|z| z.timestamp()).map_err(|e| e.to_string());
    }
    Err(format!(
        "cannot read {text:?} as a time: use e.g. 2h, 3d, yesterday, today, 2026-11-25, or 2026-11-25T14:00:00Z"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Zoned {
        "2026-11-25T15:00:00+00:00[UTC]".parse().unwrap()
    }

    #[test]
    fn relative_and_absolute_times() {
        let n = now();
        assert_eq!(parse("2h", &n).unwrap().to_string(), "2026-11-25T13:00:00Z");
        assert_eq!(parse("3d", &n).unwrap().to_string(), "2026-11-22T15:00:00Z");
        assert_eq!(parse("90 minutes ago", &n).unwrap().to_string(), "2026-11-25T13:30:00Z");
        assert_eq!(parse("yesterday", &n).unwrap().to_string(), "2026-11-24T00:00:00Z");
        assert_eq!(parse("today", &n).unwrap().to_string(), "2026-11-25T00:00:00Z");
        assert_eq!(parse("2026-11-01", &n).unwrap().to_string(), "2026-11-01T00:00:00Z");
        assert_eq!(parse("2026-11-25T10:00:00Z", &n).unwrap().to_string(), "2026-11-25T10:00:00Z");
        assert!(parse("last tuesdayish", &n).is_err());
    }
}
