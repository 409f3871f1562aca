//! Glob patterns for repositories, refs and builder ids: `*` matches any run of characters
//! except `/`, `**` matches any run including `/`, everything else matches itself.

use std::fmt;

/// A checked glob pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
}

/// Longest pattern accepted; matching is quadratic in the worst case, so keep it small.
pub const MAX_PATTERN_LEN: usize = 512;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("pattern is empty")]
    Empty,
    #[error("pattern is {len} characters long; the limit is {MAX_PATTERN_LEN}")]
    TooLong { len: usize },
    #[error("pattern {pattern:?} has three or more `*` in a row")]
    TripleStar { pattern: String },
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong { len: text.len() });
        }
        if text.contains("***") {
            return Err(PatternError::TripleStar {
                pattern: text.to_owned(),
            });
        }
        Ok(Pattern {
            text: text.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has no wildcard.
    pub fn is_literal(&self) -> bool {
        !self.text.contains('*')
    }

    /// How specific the pattern is: the number of characters that are not wildcards. A longer
    /// literal part wins when several scopes match.
    pub fn specificity(&self) -> usize {
        self.text.chars().filter(|c| *c != '*').count()
    }

    pub fn matches(&self, input: &str) -> bool {
        glob(self.text.as_bytes(), input.as_bytes())
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Iterative matcher with memo table: O(len(p) * len(s)), no recursion.
fn glob(p: &[u8], s: &[u8]) -> bool {
    // reach[j] = pattern prefix consumed so far can match s[..j].
    let mut reach = vec![false; s.len() + 1];
    reach[0] = true;
    let mut i = 0;
    while i < p.len() {
        let mut next = vec![false; s.len() + 1];
        if p[i] == b'*' {
            let double = i + 1 < p.len() && p[i + 1] == b'*';
            let mut on = false;
            for j in 0..=s.len() {
                if reach[j] {
                    on = true;
                }
                if on {
                    next[j] = true;
                }
                // A single star stops at a slash: positions after it are not reachable.
                if !double && j < s.len() && s[j] == b'/' {
                    on = false;
                }
            }
            i += if double { 2 } else { 1 };
        } else {
            for j in 0..s.len() {
                if reach[j] && s[j] == p[i] {
                    next[j + 1] = true;
                }
            }
            i += 1;
        }
        reach = next;
    }
    reach[s.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let rows: &[(&str, &str, bool)] = &[
            ("ghcr.io/acme/app", "ghcr.io/acme/app", true),
            ("ghcr.io/acme/app", "ghcr.io/acme/app2", false),
            ("ghcr.io/acme/*", "ghcr.io/acme/app", true),
            ("ghcr.io/acme/*", "ghcr.io/acme/team/app", false),
            ("ghcr.io/acme/**", "ghcr.io/acme/team/app", true),
            ("ghcr.io/acme/**", "ghcr.io/acme", false),
            ("**", "anything/at/all", true),
            ("refs/tags/v*", "refs/tags/v1.2.0", true),
            ("refs/tags/v*", "refs/heads/v1", false),
            ("refs/heads/*", "refs/heads/feature/x", false),
            ("*.yml@refs/tags/*", "release.yml@refs/tags/v1", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("", "", true),
        ];
        for (p, s, want) in rows {
            assert_eq!(glob(p.as_bytes(), s.as_bytes()), *want, "{p} vs {s}");
        }
    }

    #[test]
    fn parse_refuses_bad_patterns() {
        assert_eq!(Pattern::parse(""), Err(PatternError::Empty));
        assert!(matches!(
            Pattern::parse(&"a".repeat(MAX_PATTERN_LEN + 1)),
            Err(PatternError::TooLong { .. })
        ));
        assert!(matches!(
            Pattern::parse("a/***"),
            Err(PatternError::TripleStar { .. })
        ));
        let p = Pattern::parse("ghcr.io/acme/**").unwrap();
        assert_eq!(p.specificity(), 13);
        assert!(!p.is_literal());
    }

    #[test]
    fn long_inputs_match_in_bounded_time() {
        let p = Pattern::parse(&"*a".repeat(100)).unwrap();
        assert!(!p.matches(&"a".repeat(99)));
        assert!(p.matches(&"a".repeat(100)));
    }
}
