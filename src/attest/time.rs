//! RFC 3339 UTC timestamps (`2026-01-02T03:04:05Z`) as in-toto, SLSA and CycloneDX write them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// Whole seconds since the Unix epoch, in UTC.
    pub fn from_unix(secs: u64) -> Timestamp {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        Timestamp(format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        ))
    }

    /// The given instant, truncated to whole seconds; instants before 1970 clamp to the epoch.
    pub fn from_system_time(time: SystemTime) -> Timestamp {
        let secs = time
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        Timestamp::from_unix(secs)
    }

    /// Accepts `YYYY-MM-DDThh:mm:ss[.frac]Z` (also `+00:00`, which is rewritten to `Z`).
    pub fn parse(input: &str) -> Result<Timestamp, TimestampError> {
        let err = || TimestampError {
            input: input.to_owned(),
        };
        let body = input
            .strip_suffix('Z')
            .or_else(|| input.strip_suffix("+00:00"))
            .ok_or_else(err)?;
        let b = body.as_bytes();
        if b.len() < 19 {
            return Err(err());
        }
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        let shape = digits(0..4)
            && b[4] == b'-'
            && digits(5..7)
            && b[7] == b'-'
            && digits(8..10)
            && b[10] == b'T'
            && digits(11..13)
            && b[13] == b':'
            && digits(14..16)
            && b[16] == b':'
            && digits(17..19);
        let fraction_ok = match &b[19..] {
            [] => true,
            [b'.', rest @ ..] => !rest.is_empty() && rest.iter().all(u8::is_ascii_digit),
            _ => false,
        };
        // `get`, not indexing: a multi-byte character may straddle a field's edge.
        let num = |r: std::ops::Range<usize>| {
            body.get(r)
                .and_then(|f| f.parse::<u32>().ok())
                .unwrap_or(99)
        };
        let ranges = (1..=12).contains(&num(5..7))
            && (1..=31).contains(&num(8..10))
            && num(11..13) < 24
            && num(14..16) < 60
            && num(17..19) < 61;
        if shape && fraction_ok && ranges {
            Ok(Timestamp(format!("{body}Z")))
        } else {
            Err(err())
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

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Seconds since the Unix epoch of an RFC 3339 time (`Z` or `±hh:mm`, optional fraction).
pub fn unix_seconds(input: &str) -> Option<i64> {
    let b = input.as_bytes();
    if b.len() < 20 || b.len() > 64 || !input.is_ascii() {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = input.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
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
            let (oh, om) = (num_in(rest, 1..3)?, num_in(rest, 4..6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset)
}

fn num_in(s: &str, r: std::ops::Range<usize>) -> Option<i64> {
    let part = s.get(r)?;
    part.bytes()
        .all(|c| c.is_ascii_digit())
        .then(|| part.parse().ok())?
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for bad in [
            "2025-06-13 07:25:13Z",
            "2025-13-01T00:00:00Z",
            "2025-06-13T07:25:13",
            "2025-06-13T07:25:13+02:00",
            "2025-06-13T07:25:13.Z",
            "",
        ] {
            assert_eq!(
                Timestamp::parse(bad),
                Err(TimestampError { input: bad.into() }),
                "{bad}"
            );
        }
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
    fn times() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            unix_seconds("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000)
        );
        assert_eq!(
            unix_seconds("2023-11-15T00:13:20+02:00"),
            Some(1_700_000_000)
        );
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-13-14T22:13:20Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0200",
            "2023-11-14T22:13:20+99:00",
            "２０２３-11-14T22:13:20Z",
            "yesterday at noon, roughly",
        ] {
            assert_eq!(unix_seconds(bad), None, "{bad}");
        }
    }
}
