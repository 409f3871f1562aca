//! Glob patterns for repositories, refs and builder ids: `*` matches any run of characters
//! except `/`, `**` matches any run including `/`, everything else matches itself.
//!
//! [`glob`] is the one matcher of custody; [`Wildcards`] says what its wildcards mean for each
//! kind of name (policy scopes, prune's tag rules, the purl patterns of `sources`).

use std::fmt;

use crate::foundation::reference::{DOCKER_HUB, canonical_host};

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
    #[error("repository pattern {pattern:?}: {source}")]
    BadHost {
        pattern: String,
        #[source]
        source: crate::foundation::reference::HostError,
    },
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

    /// A repository pattern (a policy scope's `repositories`), its host written the one way
    /// references are ([`crate::foundation::reference::canonical_host`]), so `Registry.Example.com:443/**`
    /// is `registry.example.com/**` and a scope cannot be missed by spelling the host another
    /// way. A pattern without a host (`acme/*`, `alpine`) means Docker Hub, as a reference does.
    /// Hosts with wildcards are lower-cased and lose a trailing dot and a `:443`.
    pub fn repository(text: &str) -> Result<Pattern, PatternError> {
        let checked = Pattern::parse(text)?;
        if text.starts_with("oci:") {
            return Ok(checked);
        }
        let Some((first, rest)) = text.split_once('/') else {
            // `**`, `*`, or a short Docker Hub name.
            if checked.is_literal() {
                return Pattern::parse(&format!("{DOCKER_HUB}/library/{text}"));
            }
            return Ok(checked);
        };
        let host_like = first.contains(['.', ':', '*'])
            || first.eq_ignore_ascii_case("localhost")
            || first.chars().any(|c| c.is_ascii_uppercase());
        let (host, path) = if !host_like {
            (DOCKER_HUB.to_owned(), text.to_owned())
        } else if first.contains('*') {
            (wildcard_host(first), rest.to_owned())
        } else {
            let host = canonical_host(first).map_err(|source| PatternError::BadHost {
                pattern: text.to_owned(),
                source,
            })?;
            (host, rest.to_owned())
        };
        let path = if host == DOCKER_HUB && !path.contains(['/', '*']) {
            format!("library/{path}")
        } else {
            path
        };
        Pattern::parse(&format!("{host}/{path}"))
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
        glob(&self.text, input, Wildcards::Path)
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

/// A host pattern with a wildcard: lower case, no trailing dot, no `:443`.
fn wildcard_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host.as_str(), None),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    match port {
        None | Some("443") => name.to_owned(),
        Some(port) => format!("{name}:{port}"),
    }
}

/// What the wildcards of a [`glob`] pattern mean; every other character matches itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wildcards {
    /// `*` matches any run of characters except `/`, `**` any run including `/`: repositories,
    /// refs and builder ids, where `/` separates levels.
    Path,
    /// `*` matches any run of characters, `?` exactly one: OCI tags (`v1.?.*`).
    StarAndQuestion,
    /// `*` matches any run of characters and `?` is a literal: purls, where `?` starts the
    /// qualifiers (`pkg:npm/@acme/*`).
    StarOnly,
}

/// Whether `text` matches the glob `pattern`, whole. Iterative, with one row of reachable
/// positions: O(len(pattern) * len(text)) time, O(len(text)) memory, no recursion, so hostile
/// patterns and names cannot blow the stack or backtrack exponentially.
pub fn glob(pattern: &str, text: &str, wildcards: Wildcards) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = text.chars().collect();
    // reach[j]: the pattern consumed so far can match s[..j].
    let mut reach = vec![false; s.len() + 1];
    reach[0] = true;
    let mut i = 0;
    while i < p.len() {
        let mut next = vec![false; s.len() + 1];
        if p[i] == '*' {
            let double = wildcards == Wildcards::Path && p.get(i + 1) == Some(&'*');
            let crosses_slash = double || wildcards != Wildcards::Path;
            let mut on = false;
            for j in 0..=s.len() {
                on |= reach[j];
                next[j] = on;
                // A single path star stops at a slash: positions after it are not reachable.
                if !crosses_slash && s.get(j) == Some(&'/') {
                    on = false;
                }
            }
            i += if double { 2 } else { 1 };
        } else {
            let any = p[i] == '?' && wildcards == Wildcards::StarAndQuestion;
            for j in 0..s.len() {
                if reach[j] && (any || s[j] == p[i]) {
                    next[j + 1] = true;
                }
            }
            i += 1;
        }
        if !next.contains(&true) {
            return false;
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
            assert_eq!(glob(p, s, Wildcards::Path), *want, "{p} vs {s}");
        }
    }

    /// The same pattern under each option: (pattern, text, Path, StarAndQuestion, StarOnly).
    #[test]
    fn glob_options_table() {
        let rows: &[(&str, &str, bool, bool, bool)] = &[
            // `*` and `/`: only a single path star stops at a slash.
            ("a/*", "a/b/c", false, true, true),
            ("a/**", "a/b/c", true, true, true),
            ("*", "", true, true, true),
            ("*", "a/b", false, true, true),
            // `?`: one character for tags, itself for purls and paths.
            ("v1.?", "v1.2", false, true, false),
            ("v1.?", "v1.?", true, true, true),
            ("v1.?", "v1.23", false, false, false),
            ("v?", "v\u{e9}", false, true, false),
            (
                "pkg:npm/x@1?arch=*",
                "pkg:npm/x@1?arch=arm",
                true,
                true,
                true,
            ),
            (
                "pkg:npm/x@1?arch=*",
                "pkg:npm/x@1Xarch=arm",
                false,
                true,
                false,
            ),
            // Anchored at both ends.
            ("release-*", "prerelease-1", false, false, false),
            ("*-rc", "1.0-rc.1", false, false, false),
            ("a*b*c", "axxbyyc", true, true, true),
            ("a*b*c", "axxbyy", false, false, false),
            ("abc", "abcd", false, false, false),
            ("", "", true, true, true),
            ("", "a", false, false, false),
            ("**", "", true, true, true),
        ];
        for (p, s, path, tag, purl) in rows {
            assert_eq!(glob(p, s, Wildcards::Path), *path, "Path: {p} vs {s}");
            assert_eq!(
                glob(p, s, Wildcards::StarAndQuestion),
                *tag,
                "StarAndQuestion: {p} vs {s}"
            );
            assert_eq!(
                glob(p, s, Wildcards::StarOnly),
                *purl,
                "StarOnly: {p} vs {s}"
            );
        }
    }

    #[test]
    fn hostile_globs_match_in_bounded_time() {
        let text = "a".repeat(5000);
        for w in [
            Wildcards::Path,
            Wildcards::StarAndQuestion,
            Wildcards::StarOnly,
        ] {
            assert!(!glob(&"*a".repeat(200), &"a".repeat(199), w));
            assert!(!glob("*a*a*a*a*a*a*a*a*b", &text, w));
            assert!(glob("*a*a*a*a*a*a*a*a*", &text, w));
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

    /// Scope patterns are canonicalised like references: every spelling of a host matches the
    /// canonical reference, and the rewritten pattern is what the policy holds.
    #[test]
    fn repository_patterns_are_canonical() {
        let rows: &[(&str, &str)] = &[
            ("Registry.Example.com:443/**", "registry.example.com/**"),
            (
                "registry.example.com.:443/prod/*",
                "registry.example.com/prod/*",
            ),
            (
                "registry.example.com:5000/**",
                "registry.example.com:5000/**",
            ),
            ("LOCALHOST:5000/prod/**", "localhost:5000/prod/**"),
            ("localhost:80/prod/**", "localhost/prod/**"),
            ("[0:0:0:0:0:0:0:1]:5000/**", "[::1]:5000/**"),
            ("index.docker.io/library/*", "docker.io/library/*"),
            ("registry-1.docker.io:443/acme/**", "docker.io/acme/**"),
            ("docker.io/alpine", "docker.io/library/alpine"),
            ("alpine", "docker.io/library/alpine"),
            ("acme/*", "docker.io/acme/*"),
            ("*.Example.COM.:443/**", "*.example.com/**"),
            ("*.example.com:5000/**", "*.example.com:5000/**"),
            ("localhost:*/**", "localhost:*/**"),
            ("**", "**"),
            ("**/prod/**", "**/prod/**"),
            ("oci:./Store", "oci:./Store"),
        ];
        for (input, want) in rows {
            let p = Pattern::repository(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(p.as_str(), *want, "{input}");
        }
        // Each spelling of the reference meets the canonical pattern.
        let p = Pattern::repository("Registry.Example.com:443/prod/**").unwrap();
        for spelling in [
            "registry.example.com/prod/app",
            "REGISTRY.example.com/prod/app",
            "registry.example.com:443/prod/app",
            "registry.example.com./prod/app",
        ] {
            let r: crate::foundation::reference::Reference = spelling.parse().unwrap();
            assert!(p.matches(&r.repository()), "{spelling}");
        }
        assert!(matches!(
            Pattern::repository("bad..host/**"),
            Err(PatternError::BadHost { .. })
        ));
        assert!(matches!(
            Pattern::repository("localhost:99999/**"),
            Err(PatternError::BadHost { .. })
        ));
        assert!(matches!(
            Pattern::repository("a/***"),
            Err(PatternError::TripleStar { .. })
        ));
    }

    #[test]
    fn long_inputs_match_in_bounded_time() {
        let p = Pattern::parse(&"*a".repeat(100)).unwrap();
        assert!(!p.matches(&"a".repeat(99)));
        assert!(p.matches(&"a".repeat(100)));
    }
}
