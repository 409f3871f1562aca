//! Time for custody's records and rules, on jiff's calendar: RFC 3339 UTC timestamps as
//! in-toto, SLSA and CycloneDX write them, UTC calendar days for advisories and exceptions,
//! seconds since the epoch of any RFC 3339 time, and durations written like `30d` or `1d12h`.
//!
//! The grammar is custody's own and strict (an RFC 3339 subset, bounded, ASCII); the calendar
//! (leap years, days per month, days since the epoch) is jiff's.

use std::fmt;
use std::time::SystemTime;

use jiff::civil;
use jiff::tz::Offset;
use serde::{Deserialize, Serialize};

/// A checked UTC timestamp `YYYY-MM-DDThh:mm:ss[.fraction]Z`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(String);

/// Why a string is not a UTC timestamp.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{input:?} is not an rfc 3339 utc timestamp like 2026-01-02T03:04:05Z")]
pub struct TimestampError {
    pub input: String,
}

impl Timestamp {
    /// Whole seconds since the Unix epoch, in UTC (clamped to jiff's range, year 9999).
    pub fn from_unix(secs: u64) -> Timestamp {
        let instant = i64::try_from(secs)
            .ok()
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .unwrap_or(jiff::Timestamp::MAX);
        Timestamp::from_jiff(instant)
    }

    /// The given instant, truncated to whole seconds; instants before 1970 clamp to the epoch.
    pub fn from_system_time(time: SystemTime) -> Timestamp {
        let instant = jiff::Timestamp::try_from(time)
            .unwrap_or(jiff::Timestamp::MAX)
            .max(jiff::Timestamp::UNIX_EPOCH);
        Timestamp::from_jiff(instant)
    }

    fn from_jiff(instant: jiff::Timestamp) -> Timestamp {
        Timestamp(instant.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
    }

    /// Accepts `YYYY-MM-DDThh:mm:ss[.frac]Z` (also `+00:00`, which is rewritten to `Z`) of a day
    /// that exists.
    pub fn parse(input: &str) -> Result<Timestamp, TimestampError> {
        let err = || TimestampError {
            input: input.to_owned(),
        };
        let body = input
            .strip_suffix('Z')
            .or_else(|| input.strip_suffix("+00:00"))
            .ok_or_else(err)?;
        let fraction_ok = match body.get(19..) {
            Some("") => true,
            Some(f) => f
                .strip_prefix('.')
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit())),
            None => false,
        };
        let head = body.get(..19).ok_or_else(err)?;
        match (fraction_ok, date_time(head, b"T")) {
            (true, Some(_)) => Ok(Timestamp(format!("{body}Z"))),
            _ => Err(err()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Timestamp {
    type Error = TimestampError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Timestamp::parse(&value)
    }
}

impl From<Timestamp> for String {
    fn from(value: Timestamp) -> String {
        value.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A UTC calendar day. Reads `YYYY-MM-DD` and the date part of an RFC 3339 timestamp; writes
/// `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Date(civil::Date);

/// A string that is neither `YYYY-MM-DD` nor an RFC 3339 timestamp.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{input:?} is not a date (YYYY-MM-DD or an rfc 3339 timestamp)")]
pub struct DateError {
    pub input: String,
}

impl Date {
    pub fn parse(input: &str) -> Result<Date, DateError> {
        let err = || DateError {
            input: input.to_owned(),
        };
        let b = input.as_bytes();
        if b.len() < 10 || (b.len() > 10 && !matches!(b[10], b'T' | b't' | b' ')) {
            return Err(err());
        }
        calendar_day(input.get(..10).ok_or_else(err)?)
            .map(Date)
            .ok_or_else(err)
    }

    /// The UTC day of `time`.
    pub fn from_system_time(time: SystemTime) -> Date {
        let instant = jiff::Timestamp::try_from(time).unwrap_or(jiff::Timestamp::MAX);
        Date(Offset::UTC.to_datetime(instant).date())
    }

    pub fn today() -> Date {
        Date::from_system_time(SystemTime::now())
    }

    /// This day plus `days` (saturating at the last day jiff knows).
    pub fn plus_days(self, days: u32) -> Date {
        let later = jiff::Span::new()
            .try_days(i64::from(days))
            .ok()
            .and_then(|span| self.0.checked_add(span).ok());
        Date(later.unwrap_or(civil::Date::MAX))
    }

    pub fn days_since_epoch(self) -> i64 {
        self.0
            .since(civil::date(1970, 1, 1))
            .map_or(0, |span| i64::from(span.get_days()))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.strftime("%Y-%m-%d"))
    }
}

impl TryFrom<String> for Date {
    type Error = DateError;
    fn try_from(value: String) -> Result<Date, DateError> {
        Date::parse(&value)
    }
}

impl From<Date> for String {
    fn from(value: Date) -> String {
        value.to_string()
    }
}

impl std::str::FromStr for Date {
    type Err = DateError;
    fn from_str(s: &str) -> Result<Date, DateError> {
        Date::parse(s)
    }
}

/// The digits of `text[range]`, when they are all ASCII digits.
fn number(text: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = text.get(range)?;
    part.bytes()
        .all(|c| c.is_ascii_digit())
        .then(|| part.parse().ok())?
}

/// `YYYY-MM-DD` of a day that exists.
fn calendar_day(text: &str) -> Option<civil::Date> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i16::try_from(number(text, 0..4)?).ok()?;
    let month = i8::try_from(number(text, 5..7)?).ok()?;
    let day = i8::try_from(number(text, 8..10)?).ok()?;
    civil::Date::new(year, month, day).ok()
}

/// `YYYY-MM-DD?hh:mm:ss` (`?` one of `separators`) as a civil date and seconds into the day;
/// second 60 (a leap second) counts as the first second of the next minute.
fn date_time(text: &str, separators: &[u8]) -> Option<(civil::Date, i64)> {
    let b = text.as_bytes();
    if b.len() != 19 || !separators.contains(&b[10]) || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let day = calendar_day(text.get(..10)?)?;
    let (h, m, s) = (
        number(text, 11..13)?,
        number(text, 14..16)?,
        number(text, 17..19)?,
    );
    (h <= 23 && m <= 59 && s <= 60).then_some((day, h * 3600 + m * 60 + s))
}

/// Seconds since the Unix epoch of an RFC 3339 time (`Z` or `±hh:mm`, optional fraction).
pub fn unix_seconds(input: &str) -> Option<i64> {
    if input.len() < 20 || input.len() > 64 || !input.is_ascii() {
        return None;
    }
    let (day, seconds) = date_time(input.get(..19)?, b"Tt ")?;
    let mut rest = &input[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            if rest.as_bytes()[3] != b':' {
                return None;
            }
            let (oh, om) = (number(rest, 1..3)?, number(rest, 4..6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    Some(Date(day).days_since_epoch() * 86_400 + seconds - offset)
}

/// Parses `30d`, `12h`, `45m`, `90s`, `2w` and sums like `1d12h` into seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() || s.len() > 32 {
        return Err(format!("{s:?} is not a duration like 30d, 12h, 1d12h"));
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(d)))
                    .ok_or_else(|| format!("{s:?} is too long a duration"))?,
            );
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(format!("{s:?} has unit {c:?}; use s, m, h, d or w")),
        };
        let n = number
            .take()
            .ok_or_else(|| format!("{s:?} does not start with a number"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{s:?} is too long a duration"))?;
    }
    if number.is_some() {
        return Err(format!("{s:?} has no unit; use s, m, h, d or w"));
    }
    Ok(total)
}

/// `secs` the way [`parse_duration`] reads it, to the two largest units: `30d`, `1d12h`, `5m`.
pub fn show_duration(secs: u64) -> String {
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 86_400 => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_known_instants() {
        assert_eq!(Timestamp::from_unix(0).as_str(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp::from_unix(951_782_400).as_str(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            Timestamp::from_unix(1_700_000_000).as_str(),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            Timestamp::from_system_time(UNIX_EPOCH - Duration::from_secs(5)).as_str(),
            "1970-01-01T00:00:00Z"
        );
    }

    /// Found by the `audit_log` fuzz target: a character straddling a field's edge panicked.
    #[test]
    fn multi_byte_characters_are_refused_without_panic() {
        for bad in [
            "2026-01-0\u{42b}00:00:00Z",
            "2026-01-01T0\u{e9}:00:00Z",
            "\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}Z",
        ] {
            assert_eq!(
                Timestamp::parse(bad),
                Err(TimestampError { input: bad.into() }),
                "{bad}"
            );
        }
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            Timestamp::parse("2025-06-13T07:25:13+00:00")
                .unwrap()
                .as_str(),
            "2025-06-13T07:25:13Z"
        );
        assert!(Timestamp::parse("1985-04-12T23:20:50.52Z").is_ok());
        assert!(Timestamp::parse("2016-12-31T23:59:60Z").is_ok());
        for bad in [
            "2025-06-13 07:25:13Z",
            "2025-13-01T00:00:00Z",
            "2025-02-30T00:00:00Z",
            "2025-06-13T07:25:13",
            "2025-06-13T07:25:13+02:00",
            "2025-06-13T07:25:13.Z",
            "２０２５-06-13T07:25:13Z",
            "",
            // A character across the month's byte range: refused, not a panic.
            "2025-0\u{e9}-13T07:25:13Z",
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}Z",
        ] {
            assert_eq!(
                Timestamp::parse(bad),
                Err(TimestampError { input: bad.into() }),
                "{bad}"
            );
        }
    }

    #[test]
    fn times() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(unix_seconds("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(unix_seconds("2023-11-14T22:13:20.5Z"), Some(1_700_000_000));
        assert_eq!(
            unix_seconds("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000)
        );
        assert_eq!(
            unix_seconds("2023-11-15T00:13:20+02:00"),
            Some(1_700_000_000)
        );
        assert_eq!(unix_seconds("1969-12-31T23:59:59Z"), Some(-1));
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-13-14T22:13:20Z",
            "2023-02-29T22:13:20Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0200",
            "2023-11-14T22:13:20+99:00",
            "２０２３-11-14T22:13:20Z",
            "yesterday at noon, roughly",
        ] {
            assert_eq!(unix_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn dates_round_trip() {
        for s in [
            "1970-01-01",
            "2000-02-29",
            "2019-06-06",
            "2026-12-31",
            "1969-12-31",
        ] {
            assert_eq!(Date::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Date::parse("1970-01-02").unwrap().days_since_epoch(), 1);
        assert_eq!(Date::parse("1969-12-31").unwrap().days_since_epoch(), -1);
        assert_eq!(
            Date::parse("2019-06-06T12:00:00Z").unwrap(),
            Date::parse("2019-06-06").unwrap()
        );
        assert_eq!(
            Date::parse("2024-02-28").unwrap().plus_days(1).to_string(),
            "2024-02-29"
        );
        assert_eq!(
            Date::parse("9999-12-30").unwrap().plus_days(5).to_string(),
            "9999-12-31"
        );
        assert_eq!(
            Date::parse("2026-01-01")
                .unwrap()
                .plus_days(u32::MAX)
                .to_string(),
            "9999-12-31"
        );
    }

    #[test]
    fn bad_dates_are_refused() {
        for s in [
            "",
            "2019-6-6",
            "2019-02-30",
            "2019-13-01",
            "2019-06-06X",
            "yyyy-mm-dd",
            "2019-06-0é",
        ] {
            assert!(matches!(Date::parse(s), Err(DateError { .. })), "{s}");
        }
    }

    #[test]
    fn system_time_is_read_in_utc_days() {
        let t = UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 5);
        assert_eq!(Date::from_system_time(t).to_string(), "1970-01-04");
        let before = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(Date::from_system_time(before).to_string(), "1969-12-31");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(2_592_000));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("5y").unwrap_err().contains("unit"));
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
