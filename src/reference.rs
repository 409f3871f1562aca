//! References to artifacts: `registry[:port]/repo[:tag][@sha256:...]` for an OCI distribution
//! registry and `oci:<dir>[:tag][@digest]` for an OCI image layout folder.
//!
//! Docker Hub short names are normalised the way docker does (`alpine` is
//! `docker.io/library/alpine`). A reference is parsed once and carried as a checked value.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::digest::{self, Digest};

/// The registry host docker uses for short names.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's API actually lives.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
const LAYOUT_PREFIX: &str = "oci:";
const MAX_REFERENCE_LEN: usize = 4096;

/// A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = Error;

    fn from_str(s: &str) -> Result<Tag, Error> {
        let valid_first = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let valid_rest = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        let mut chars = s.chars();
        let ok = s.len() <= 128 && chars.next().is_some_and(valid_first) && chars.all(valid_rest);
        if ok {
            Ok(Tag(s.to_owned()))
        } else {
            Err(Error::BadTag {
                input: s.to_owned(),
            })
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.0)
    }
}

/// Where the repository lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// A repository in an OCI distribution registry.
    Registry {
        /// Host with optional port, as written (`docker.io` for Docker Hub).
        registry: String,
        /// Repository path, e.g. `library/alpine`.
        repository: String,
    },
    /// An OCI image layout folder.
    Layout { path: PathBuf },
}

/// A parsed reference: a repository plus an optional tag and an optional digest.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub location: Location,
    pub tag: Option<Tag>,
    pub digest: Option<Digest>,
}

/// Why a string is not a reference. Each variant shows the input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("reference is empty")]
    Empty,
    #[error("reference {input:?} is longer than {MAX_REFERENCE_LEN} characters")]
    TooLong { input: String },
    #[error("reference {input:?}: {reason}")]
    Malformed { input: String, reason: String },
    #[error(
        "tag {input:?} is not valid: a tag has 1 to 128 characters of [A-Za-z0-9_.-] and does not start with '.' or '-'"
    )]
    BadTag { input: String },
    #[error("reference {input:?} has a bad digest")]
    BadDigest {
        input: String,
        #[source]
        source: digest::ParseError,
    },
}

impl Reference {
    /// A reference to an OCI image layout folder.
    pub fn layout(path: impl Into<PathBuf>) -> Reference {
        Reference {
            location: Location::Layout { path: path.into() },
            tag: None,
            digest: None,
        }
    }

    /// The same repository, pinned to `digest` (tag dropped).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            location: self.location.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: Tag) -> Reference {
        Reference {
            location: self.location.clone(),
            tag: Some(tag),
            digest: None,
        }
    }

    /// The repository without tag or digest: `host/repo` or `oci:<dir>`.
    pub fn repository(&self) -> String {
        match &self.location {
            Location::Registry {
                registry,
                repository,
            } => format!("{registry}/{repository}"),
            Location::Layout { path } => format!("{LAYOUT_PREFIX}{}", path.display()),
        }
    }

    /// `repo@sha256:...` for this repository and `digest`.
    pub fn pinned(&self, digest: &Digest) -> String {
        format!("{}@{digest}", self.repository())
    }

    pub fn layout_path(&self) -> Option<&Path> {
        match &self.location {
            Location::Layout { path } => Some(path),
            Location::Registry { .. } => None,
        }
    }

    /// The registry host (with port) when this names a registry repository.
    pub fn registry(&self) -> Option<&str> {
        match &self.location {
            Location::Registry { registry, .. } => Some(registry),
            Location::Layout { .. } => None,
        }
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(input: &str) -> Result<Reference, Error> {
        if input.is_empty() {
            return Err(Error::Empty);
        }
        if input.len() > MAX_REFERENCE_LEN {
            return Err(Error::TooLong {
                input: input.chars().take(64).collect::<String>() + "...",
            });
        }
        let malformed = |reason: &str| Error::Malformed {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        if input.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(malformed("contains whitespace or control characters"));
        }

        let (rest, digest) = match input.rsplit_once('@') {
            Some((rest, d)) => {
                let digest = d.parse::<Digest>().map_err(|source| Error::BadDigest {
                    input: input.to_owned(),
                    source,
                })?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // A tag is the part after the last ':' that comes after the last '/'.
        let split_tag = |s: &str| -> Result<(String, Option<Tag>), Error> {
            let last_slash = s.rfind('/').map_or(0, |i| i + 1);
            match s[last_slash..].rfind(':') {
                Some(i) => {
                    let at = last_slash + i;
                    Ok((s[..at].to_owned(), Some(s[at + 1..].parse::<Tag>()?)))
                }
                None => Ok((s.to_owned(), None)),
            }
        };

        if let Some(layout) = rest.strip_prefix(LAYOUT_PREFIX) {
            let (path, tag) = split_tag(layout)?;
            if path.is_empty() {
                return Err(malformed(
                    "an OCI layout reference needs a folder: oci:<dir>",
                ));
            }
            return Ok(Reference {
                location: Location::Layout {
                    path: PathBuf::from(path),
                },
                tag,
                digest,
            });
        }

        if rest.contains("://") {
            return Err(malformed(
                "a reference has no scheme: write host/repo:tag, not a URL",
            ));
        }
        let (name, tag) = split_tag(rest)?;
        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), remainder.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.clone()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_owned(),
            _ => registry,
        };
        if registry.is_empty() || !valid_host(&registry) {
            return Err(malformed("the registry host is not a valid host[:port]"));
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty() {
            return Err(malformed("the repository name is empty"));
        }
        if repository.len() > 255 {
            return Err(malformed(
                "the repository name is longer than 255 characters",
            ));
        }
        for component in repository.split('/') {
            if !valid_path_component(component) {
                let reason = if component.chars().any(|c| c.is_ascii_uppercase()) {
                    format!("repository component {component:?} must be lowercase")
                } else {
                    format!(
                        "repository component {component:?} must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
                    )
                };
                return Err(malformed(&reason));
            }
        }
        Ok(Reference {
            location: Location::Registry {
                registry,
                repository,
            },
            tag,
            digest,
        })
    }
}

fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') || host.starts_with('[') => (name, Some(port)),
        _ => (host, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    let name_ok = if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    port_ok && name_ok
}

fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or one or more '-'.
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn registry_references_normalise_like_docker() {
        let d = Digest::of(b"x");
        let table = [
            ("alpine", "docker.io/library/alpine", None),
            ("alpine:3.20", "docker.io/library/alpine", Some("3.20")),
            ("user/app", "docker.io/user/app", None),
            (
                "index.docker.io/library/alpine",
                "docker.io/library/alpine",
                None,
            ),
            ("localhost/app:v1", "localhost/app", Some("v1")),
            (
                "localhost:5000/a/b/c:v1",
                "localhost:5000/a/b/c",
                Some("v1"),
            ),
            ("127.0.0.1:5000/app", "127.0.0.1:5000/app", None),
            ("[::1]:5000/app:t", "[::1]:5000/app", Some("t")),
            ("ghcr.io/o/r__x.y-z", "ghcr.io/o/r__x.y-z", None),
        ];
        for (input, repo, tag) in table {
            let r = parse(input);
            assert_eq!(r.repository(), repo, "{input}");
            assert_eq!(r.tag.as_ref().map(Tag::as_str), tag, "{input}");
            assert_eq!(r.digest, None);
        }
        let r = parse(&format!("localhost:5000/app:v1@{d}"));
        assert_eq!(r.digest, Some(d.clone()));
        assert_eq!(r.to_string(), format!("localhost:5000/app:v1@{d}"));
        assert_eq!(r.pinned(&d), format!("localhost:5000/app@{d}"));
    }

    #[test]
    fn layout_references() {
        let d = Digest::of(b"x");
        let r = parse("oci:./store");
        assert_eq!(r.layout_path(), Some(Path::new("./store")));
        let r = parse("oci:/tmp/a:b/store:v1");
        assert_eq!(r.layout_path(), Some(Path::new("/tmp/a:b/store")));
        assert_eq!(r.tag.unwrap().as_str(), "v1");
        let r = parse(&format!("oci:store@{d}"));
        assert_eq!(r.layout_path(), Some(Path::new("store")));
        assert_eq!(r.digest, Some(d));
    }

    #[test]
    fn bad_references_name_the_input_and_the_problem() {
        let table = [
            ("", "reference is empty"),
            ("Alpine", "must be lowercase"),
            ("https://ghcr.io/o/r", "no scheme"),
            ("localhost:5000/app:bad tag", "whitespace"),
            ("localhost:5000/app:-v1", "tag \"-v1\""),
            ("localhost:5000/app@sha256:abc", "bad digest"),
            ("localhost:5000/", "repository name is empty"),
            ("localhost:99999/app", "host[:port]"),
            ("oci:", "needs a folder"),
            ("ghcr.io/o/a..b", "separated by"),
            ("ghcr.io/o//b", "separated by"),
        ];
        for (input, expected) in table {
            let err = input.parse::<Reference>().unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains(expected),
                "{input:?}: {message:?} lacks {expected:?}"
            );
            if !input.is_empty() && !matches!(err, Error::BadTag { .. }) {
                assert!(message.contains(input), "{message} does not show {input}");
            }
        }
        let long = "a".repeat(5000);
        assert!(matches!(
            long.parse::<Reference>(),
            Err(Error::TooLong { .. })
        ));
    }

    #[test]
    fn tags() {
        assert!("v1.0_rc-1".parse::<Tag>().is_ok());
        assert!(matches!(".x".parse::<Tag>(), Err(Error::BadTag { .. })));
        assert!(matches!("".parse::<Tag>(), Err(Error::BadTag { .. })));
        assert!(matches!(
            "a".repeat(129).parse::<Tag>(),
            Err(Error::BadTag { .. })
        ));
    }
}
