//! rpm version order (rpm's `rpmvercmp` and `rpmverCmp`, what `rpm.vercmp` in rpm's Lua
//! answers): an `[epoch:]version[-release]` string is split at the epoch's `:` and the last
//! `-`; epoch (absent = 0), version and release compare in turn by alternating digit and
//! letter runs, with separators skipped, `~` before everything (even the end) and `^` after
//! the base version but before any further segment. A missing release is older than any
//! release, an empty one included.

use std::cmp::Ordering;

/// A version rpm's parser refuses (it reads every non-empty string).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("rpm version is empty")]
pub struct EmptyVersion;

/// An `[epoch:]version[-release]` string split as rpm splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evr<'a> {
    /// The epoch's digits; `None` when there is no `digits:` prefix.
    pub epoch: Option<&'a str>,
    pub version: &'a str,
    pub release: Option<&'a str>,
}

/// Splits as rpm's `parseEVR` does: leading digits followed by `:` are the epoch (an empty
/// epoch counts as 0), and the release follows the last `-` after them. rpm reads C strings,
/// so a NUL ends the input.
pub fn parse(input: &str) -> Result<Evr<'_>, EmptyVersion> {
    let input = input.split('\0').next().unwrap_or("");
    if input.is_empty() {
        return Err(EmptyVersion);
    }
    let digits = input.bytes().take_while(u8::is_ascii_digit).count();
    let (epoch, rest) = match input[digits..].strip_prefix(':') {
        Some(rest) => (Some(&input[..digits]), rest),
        None => (None, input),
    };
    // rpm looks for the last `-` after the epoch's digits; digits hold none, so the whole
    // rest is the same search.
    let (version, release) = match rest.rfind('-') {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    Ok(Evr {
        epoch,
        version,
        release,
    })
}

/// Compares two `[epoch:]version[-release]` strings as `rpm.vercmp` does.
pub fn compare(a: &str, b: &str) -> Result<Ordering, EmptyVersion> {
    let (a, b) = (parse(a)?, parse(b)?);
    let epoch = |e: Option<&str>| match e {
        Some(e) if !e.is_empty() => e.to_owned(),
        _ => "0".to_owned(),
    };
    Ok(vercmp(&epoch(a.epoch), &epoch(b.epoch))
        .then_with(|| vercmp(a.version, b.version))
        .then_with(|| match (a.release, b.release) {
            (Some(x), Some(y)) => vercmp(x, y),
            (Some(_), None) => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
            (None, None) => Ordering::Equal,
        }))
}

fn significant(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'~' || b == b'^'
}

/// rpm's segment comparison of one version or release string.
pub fn vercmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a == b {
        return Ordering::Equal;
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while i < a.len() && !significant(a[i]) {
            i += 1;
        }
        while j < b.len() && !significant(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(first), Some(_)) = (ca, cb) else {
            break;
        };
        let numeric = first.is_ascii_digit();
        let class = |c: &u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let end_a = i + a[i..].iter().take_while(|c| class(c)).count();
        let end_b = j + b[j..].iter().take_while(|c| class(c)).count();
        if end_b == j {
            // Different kinds of segment: a number is newer than letters.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut sa, mut sb) = (&a[i..end_a], &b[j..end_b]);
        if numeric {
            while sa.first() == Some(&b'0') {
                sa = &sa[1..];
            }
            while sb.first() == Some(&b'0') {
                sb = &sb[1..];
            }
            let by_length = sa.len().cmp(&sb.len());
            if by_length != Ordering::Equal {
                return by_length;
            }
        }
        let by_bytes = sa.cmp(sb);
        if by_bytes != Ordering::Equal {
            return by_bytes;
        }
        i = end_a;
        j = end_b;
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::{Equal, Greater, Less};

    #[test]
    fn reference_rows() {
        for (a, b, want) in [
            ("1.0", "1.1", Less),
            ("1:1.0-1", "2.0-1", Greater),
            ("1.0-1", "1.0", Greater),
            ("1.0-", "1.0", Greater),
            (":1.0", "1.0", Equal),
            ("1.0^", "1.0", Greater),
            ("1.0^", "1.0.1", Less),
            ("1.0^git1", "1.0", Greater),
            ("a:1", "1", Less),
            ("1.0~rc1", "1.0", Less),
            ("1.a", "1.0", Less),
            ("1-2-3", "1-2", Greater),
            ("1.01", "1.1", Equal),
            ("1.0", "1_0", Equal),
            ("2.4.57-5.el9", "0:2.4.57-5.el9", Equal),
        ] {
            assert_eq!(compare(a, b), Ok(want), "{a} vs {b}");
            assert_eq!(compare(b, a), Ok(want.reverse()), "{b} vs {a}");
        }
    }

    #[test]
    fn splits_like_rpm() {
        assert_eq!(
            parse("3:1.2-4.el9"),
            Ok(Evr {
                epoch: Some("3"),
                version: "1.2",
                release: Some("4.el9")
            })
        );
        assert_eq!(
            parse("1.2"),
            Ok(Evr {
                epoch: None,
                version: "1.2",
                release: None
            })
        );
        assert_eq!(parse(""), Err(EmptyVersion));
        assert_eq!(parse("\0abc"), Err(EmptyVersion));
    }

    #[test]
    fn odd_bytes_never_panic() {
        for (a, b) in [
            ("~", "^"),
            ("^", ""),
            ("-", "-"),
            (":", ":-"),
            ("\u{ff}\u{1F600}", "1.\u{ff}"),
        ] {
            let _ = compare(a, b);
        }
    }
}
