//! Debian version order (deb-version(7), dpkg `lib/dpkg/version.c`): epoch numerically, then
//! the upstream version, then the revision after the last `-`, each compared by alternating
//! non-digit runs (`~` before everything, even the end; letters before other characters) and
//! numeric runs (leading zeros ignored). For matching Debian advisories against installed
//! package versions.

use std::cmp::Ordering;

/// A version that is not `[epoch:]upstream[-revision]`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VersionError {
    #[error("debian version {input:?} is empty")]
    Empty { input: String },
    #[error("debian version {input:?} has an epoch that is not a number")]
    BadEpoch { input: String },
}

/// A parsed Debian version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebVersion<'a> {
    pub epoch: u64,
    pub upstream: &'a str,
    pub revision: &'a str,
}

pub fn parse(input: &str) -> Result<DebVersion<'_>, VersionError> {
    let v = input.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) => (
            e.parse::<u64>().map_err(|_| VersionError::BadEpoch {
                input: input.to_owned(),
            })?,
            rest,
        ),
        None => (0, v),
    };
    let (upstream, revision) = rest.rsplit_once('-').unwrap_or((rest, ""));
    if upstream.is_empty() {
        return Err(VersionError::Empty {
            input: input.to_owned(),
        });
    }
    Ok(DebVersion {
        epoch,
        upstream,
        revision,
    })
}

/// Compares two versions as `dpkg --compare-versions` does.
pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    let (a, b) = (parse(a)?, parse(b)?);
    Ok(a.epoch
        .cmp(&b.epoch)
        .then_with(|| verrevcmp(a.upstream.as_bytes(), b.upstream.as_bytes()))
        .then_with(|| verrevcmp(a.revision.as_bytes(), b.revision.as_bytes())))
}

fn order(c: Option<&u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(*c),
        Some(b'~') => -1,
        Some(c) => i32::from(*c) + 256,
    }
}

fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i)), order(b.get(j)));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn reference_vectors() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.0~rc1", "1.0", Less),
            ("1~", "1", Less),
            ("1.0a", "1.0+", Less),
            ("1.0+", "1.0.", Less),
            ("1:0", "2.0", Greater),
            ("1.0", "1.0-0", Equal),
            ("1.0", "1.0-1", Less),
            ("1.0000", "1.0", Equal),
            ("2.2~rc-4", "2.2-1", Less),
            ("0foo-0", "0foo", Equal),
            ("5.2.15-2+b8", "5.2.15-2", Greater),
            ("1:2.4.47-2", "2.5", Greater),
        ] {
            assert_eq!(compare(a, b), Ok(want), "{a} vs {b}");
            assert_eq!(compare(b, a), Ok(want.reverse()), "{b} vs {a}");
        }
    }

    #[test]
    fn malformed_versions() {
        assert!(matches!(
            compare("x:1", "1"),
            Err(VersionError::BadEpoch { .. })
        ));
        assert!(matches!(compare("", "1"), Err(VersionError::Empty { .. })));
        assert!(matches!(
            compare("1:-1", "1"),
            Err(VersionError::Empty { .. })
        ));
        // Odd bytes compare, never panic.
        let _ = compare("1.\u{ff}\u{0}~~", "1..--~");
    }

    fn random_part(first_digit: bool) -> String {
        const CHARS: &[u8] = b"0123456789abz.+~";
        let len = fastrand::usize(1..7);
        let mut s = String::new();
        if first_digit {
            s.push(char::from(b'0' + fastrand::u8(0..10)));
        }
        for _ in 0..len {
            s.push(char::from(CHARS[fastrand::usize(..CHARS.len())]));
        }
        s
    }

    fn random_version() -> String {
        let mut v = String::new();
        if fastrand::u8(0..5) == 0 {
            v.push_str(&format!("{}:", fastrand::u8(0..3)));
        }
        v.push_str(&random_part(true));
        if fastrand::bool() {
            v.push('-');
            v.push_str(&random_part(true));
        }
        v
    }

    /// Against dpkg itself, on generated pairs (mutations of one another, so many are close).
    #[test]
    fn agrees_with_dpkg_compare_versions() {
        fastrand::seed(13);
        let mut pairs = Vec::new();
        for _ in 0..3000 {
            let a = random_version();
            let b = if fastrand::bool() {
                random_version()
            } else {
                let mut b = a.clone().into_bytes();
                let i = fastrand::usize(1..b.len().max(2)).min(b.len() - 1);
                b[i] = b"0123456789a.~+"[fastrand::usize(..14)];
                String::from_utf8(b).unwrap_or_default()
            };
            pairs.push((a, b));
        }
        let script = "while read a b; do if dpkg --compare-versions \"$a\" lt \"$b\" 2>/dev/null; \
then echo lt; elif dpkg --compare-versions \"$a\" eq \"$b\" 2>/dev/null; then echo eq; \
else echo gt; fi; done";
        let input: String = pairs.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh runs");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write pairs");
        let out = child.wait_with_output().expect("dpkg oracle");
        let answers: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(answers.len(), pairs.len());
        let mut checked = 0;
        for ((a, b), want) in pairs.iter().zip(&answers) {
            // dpkg rejects some generated strings (e.g. a revision starting with `~`): those
            // come back "gt" from both failing calls, so only clean parses are compared.
            let Ok(got) = compare(a, b) else { continue };
            let got = match got {
                Ordering::Less => "lt",
                Ordering::Equal => "eq",
                Ordering::Greater => "gt",
            };
            if want == "gt" && got != "gt" {
                // Confirm dpkg really said greater and did not refuse the input.
                let st = Command::new("dpkg")
                    .args(["--compare-versions", a, "gt", b])
                    .status()
                    .expect("dpkg");
                assert!(!st.success(), "{a} vs {b}: dpkg gt, custody {got}");
                continue;
            }
            assert_eq!(got, want, "{a} vs {b}");
            checked += 1;
        }
        assert!(checked > 2000, "only {checked} pairs compared");
    }
}
