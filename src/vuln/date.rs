//! Calendar days in UTC, for advisory dates, grace periods and exception expiry.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A UTC calendar day, stored as days since 1970-01-01. Reads `YYYY-MM-DD` and the date part of
/// an RFC 3339 timestamp; writes `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Date(i64);

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
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let s = input.get(r)?;
            s.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| s.parse().ok())?
        };
        if b[4] != b'-' || b[7] != b'-' {
            return Err(err());
        }
        let (y, m, d) = (
            num(0..4).ok_or_else(err)?,
            num(5..7).ok_or_else(err)?,
            num(8..10).ok_or_else(err)?,
        );
        if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
            return Err(err());
        }
        Ok(Date(days_from_civil(y, m, d)))
    }

    pub fn from_system_time(time: SystemTime) -> Date {
        let secs = match time.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64) - 1,
        };
        Date(secs.div_euclid(86_400))
    }

    pub fn today() -> Date {
        Date::from_system_time(SystemTime::now())
    }

    /// This day plus `days` (saturating).
    pub fn plus_days(self, days: u32) -> Date {
        Date(self.0.saturating_add(i64::from(days)))
    }

    pub fn days_since_epoch(self) -> i64 {
        self.0
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

use crate::attest::time::days_from_civil;

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let (y, m, d) = crate::attest::time::civil_from_days(z);
    (y, i64::from(m), i64::from(d))
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            Date::parse("2019-06-06T12:00:00Z").unwrap(),
            Date::parse("2019-06-06").unwrap()
        );
        assert_eq!(
            Date::parse("2024-02-28").unwrap().plus_days(1).to_string(),
            "2024-02-29"
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
        let t = UNIX_EPOCH + std::time::Duration::from_secs(86_400 * 3 + 5);
        assert_eq!(Date::from_system_time(t).to_string(), "1970-01-04");
    }
}
