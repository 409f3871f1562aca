//! Alpine version order (apk-tools 3 `apk version -t`): a version is read as tokens,
//! `digit{.digit}…{letter}{_suffix{n}}…{~hash}{-rN}`, compared pairwise while both sides have
//! the same kind of token. Dotted numbers compare as strings when either starts with `0` (the
//! Gentoo rule); suffixes order `alpha < beta < pre < rc < (none) < cvs < svn < git < hg < p`.
//! When the token kinds differ, a pre-release suffix is older than anything, and otherwise the
//! side whose token comes later in the grammar (the end of the string comes late) is older.

use std::cmp::Ordering;

/// The token kinds in grammar order: a side that ran on to a later kind is the older one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNumber,
    CommitHash,
    Revision,
    End,
    Invalid,
}

/// Suffix ranks; `NONE` is where a version without a suffix sits.
const SUFFIXES: [&str; 10] = [
    "alpha", "beta", "pre", "rc", "", "cvs", "svn", "git", "hg", "p",
];
const SUFFIX_NONE: usize = 4;

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    /// The token's text: digits, the letter, the suffix word or the hash.
    text: &'a [u8],
    /// Digits read as a number (saturating: apk wraps, which no real version reaches).
    number: u64,
    suffix: usize,
}

struct Tokens<'a> {
    rest: &'a [u8],
    current: Token<'a>,
}

fn digits(rest: &[u8]) -> (usize, u64) {
    let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let number = rest[..n].iter().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    });
    (n, number)
}

impl<'a> Tokens<'a> {
    fn new(input: &'a [u8]) -> Tokens<'a> {
        let (n, number) = digits(input);
        let kind = if n == 0 {
            Kind::Invalid
        } else {
            Kind::InitialDigit
        };
        Tokens {
            rest: &input[n..],
            current: Token {
                kind,
                text: &input[..n],
                number,
                suffix: 0,
            },
        }
    }

    fn invalid(&mut self) {
        self.current.kind = Kind::Invalid;
    }

    fn take_digits(&mut self, kind: Kind) {
        let (n, number) = digits(self.rest);
        self.current.text = &self.rest[..n];
        self.current.number = number;
        self.rest = &self.rest[n..];
        self.current.kind = if n == 0 { Kind::Invalid } else { kind };
    }

    /// Moves to the next token, checking that it may follow the current one.
    fn advance(&mut self) {
        let prev = self.current.kind;
        let Some(&first) = self.rest.first() else {
            self.current.kind = Kind::End;
            return;
        };
        match first {
            b'a'..=b'z' => {
                if prev > Kind::Digit {
                    return self.invalid();
                }
                self.current.text = &self.rest[..1];
                self.current.kind = Kind::Letter;
                self.rest = &self.rest[1..];
            }
            b'.' | b'0'..=b'9' => {
                if first == b'.' {
                    if prev > Kind::Digit {
                        return self.invalid();
                    }
                    self.rest = &self.rest[1..];
                }
                let kind = match prev {
                    Kind::InitialDigit | Kind::Digit => Kind::Digit,
                    Kind::Suffix => Kind::SuffixNumber,
                    _ => return self.invalid(),
                };
                self.take_digits(kind);
            }
            b'_' => {
                if prev > Kind::SuffixNumber {
                    return self.invalid();
                }
                let word_len = self.rest[1..]
                    .iter()
                    .take_while(|b| b.is_ascii_lowercase())
                    .count();
                let word = &self.rest[1..1 + word_len];
                self.rest = &self.rest[1 + word_len..];
                match SUFFIXES
                    .iter()
                    .position(|s| !s.is_empty() && s.as_bytes() == word)
                {
                    Some(rank) => {
                        self.current.text = word;
                        self.current.suffix = rank;
                        self.current.kind = Kind::Suffix;
                    }
                    None => self.invalid(),
                }
            }
            b'~' => {
                if prev >= Kind::CommitHash {
                    return self.invalid();
                }
                let n = self.rest[1..]
                    .iter()
                    .take_while(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                    .count();
                if n == 0 {
                    return self.invalid();
                }
                self.current.text = &self.rest[1..1 + n];
                self.current.kind = Kind::CommitHash;
                self.rest = &self.rest[1 + n..];
            }
            b'-' => {
                if prev >= Kind::Revision || !self.rest.starts_with(b"-r") {
                    return self.invalid();
                }
                self.rest = &self.rest[2..];
                self.take_digits(Kind::Revision);
            }
            _ => self.invalid(),
        }
    }
}

fn token_cmp(a: &Token, b: &Token) -> Ordering {
    match a.kind {
        Kind::Digit if a.text.first() == Some(&b'0') || b.text.first() == Some(&b'0') => {
            a.text.cmp(b.text)
        }
        Kind::Digit | Kind::InitialDigit | Kind::SuffixNumber | Kind::Revision => {
            a.number.cmp(&b.number)
        }
        Kind::Letter => a.text.first().cmp(&b.text.first()),
        Kind::Suffix => a.suffix.cmp(&b.suffix),
        Kind::CommitHash | Kind::End | Kind::Invalid => a.text.cmp(b.text),
    }
}

/// Whether `input` follows the grammar (`apk version -c`).
pub fn is_valid(input: &str) -> bool {
    let mut t = Tokens::new(input.as_bytes());
    while t.current.kind < Kind::End {
        t.advance();
    }
    t.current.kind == Kind::End
}

/// Compares two versions as `apk version -t` does; invalid versions compare too, by the same
/// token rules up to the first invalid token.
pub fn compare(a: &str, b: &str) -> Ordering {
    let mut ta = Tokens::new(a.as_bytes());
    let mut tb = Tokens::new(b.as_bytes());
    while ta.current.kind == tb.current.kind && ta.current.kind < Kind::End {
        let r = token_cmp(&ta.current, &tb.current);
        if r != Ordering::Equal {
            return r;
        }
        ta.advance();
        tb.advance();
    }
    let (ka, kb) = (ta.current.kind, tb.current.kind);
    if ka == kb {
        return Ordering::Equal;
    }
    if ka == Kind::Suffix && ta.current.suffix < SUFFIX_NONE {
        return Ordering::Less;
    }
    if kb == Kind::Suffix && tb.current.suffix < SUFFIX_NONE {
        return Ordering::Greater;
    }
    // The side that went on to a later kind of token is the older one.
    kb.cmp(&ka)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::{Equal, Greater, Less};

    #[test]
    fn reference_rows() {
        for (a, b, want) in [
            ("1.1", "1.1_alpha1", Greater),
            ("0.1.0_alpha2", "0.1.0_alpha", Greater),
            ("1.0", "1.0bc", Less),
            ("1.01", "1.1", Less),
            ("1.0_rc1", "1.0", Less),
            ("1.0_p1", "1.0", Greater),
            ("1.0-r1", "1.0", Greater),
            ("1.0_git20240101", "1.0_hg1", Less),
            ("2.34", "0.1.0_alpha", Greater),
            ("1.2.3-r4", "1.2.3-r4", Equal),
        ] {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn validity() {
        for v in ["1.2", "0.1_pre2~1234abcd", "0.1_p1_pre2", "1.0-r0"] {
            assert!(is_valid(v), "{v}");
        }
        for v in [
            "",
            "a",
            "0.1bc",
            "0.1_foobar",
            "0.1-r",
            "0.1-r2-r3",
            "0.1_",
            ".1",
        ] {
            assert!(!is_valid(v), "{v}");
        }
    }

    #[test]
    fn odd_bytes_never_panic() {
        for (a, b) in [
            ("", ""),
            ("~", "-"),
            ("1_", "1__"),
            ("1~", "1-r"),
            ("99999999999999999999999", "1"),
            ("1.\u{ff}", "1.\u{0}"),
        ] {
            let _ = compare(a, b);
            let _ = is_valid(a);
        }
    }
}
