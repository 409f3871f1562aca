//! References to artifacts: `registry[:port]/repo[:tag][@sha256:...]` for an OCI distribution
//! registry and `oci:<dir>[:tag][@digest]` for an OCI image layout folder.
//!
//! A reference is parsed once into its one canonical spelling and carried as a checked value,
//! so everything that compares references (policy scopes above all) sees one name per
//! repository: the host lower-cased, without a trailing dot or its scheme's default port, Docker
//! Hub under `docker.io` whatever alias was written, and Docker Hub short names completed the
//! way docker does (`alpine` is `docker.io/library/alpine`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::foundation::digest::{self, Digest};

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
        /// Host with optional port in its canonical spelling ([`canonical_host`]).
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
        // Like docker: the first component is a host when it has a '.' or a ':', is
        // `localhost`, or has an upper-case letter (repository components never do).
        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder)) if looks_like_host(first) => {
                (first.to_owned(), remainder.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.clone()),
        };
        let registry = canonical_host(&registry).map_err(|e| malformed(&e.to_string()))?;
        // The canonical spelling must still read as a host, or printing the reference would
        // name another registry: `MyReg/app` and `myreg:443/app` would come back as
        // `docker.io/myreg/app`.
        if registry != DOCKER_HUB && !looks_like_host(&registry) {
            return Err(malformed(
                "a registry host without a '.' or a port reads as a Docker Hub namespace once written in lower case; write its full name or its port",
            ));
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

fn looks_like_host(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first.eq_ignore_ascii_case("localhost")
        || first.chars().any(|c| c.is_ascii_uppercase())
}

/// Why a registry host has no canonical spelling.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostError {
    #[error("the registry host is not a valid host[:port]")]
    Invalid,
    #[error("the registry port is not a number from 1 to 65535")]
    BadPort,
    #[error(
        "the registry host looks numeric but is not a dotted-quad IPv4 address (write it as a.b.c.d)"
    )]
    AmbiguousNumber,
}

/// The one spelling of a registry host, so that two ways of writing the same registry never
/// pick different policy scopes: ASCII lower case; no trailing dot; no default port (`:443`,
/// or `:80` on the loopback hosts custody reaches over plain HTTP); IPv6 addresses in their
/// shortest form; `index.docker.io` and `registry-1.docker.io` as `docker.io`. A host whose
/// last label is a number must be a dotted-quad IPv4 address: resolvers read `127.1` or
/// `0x7f000001` as addresses too, so such spellings are refused instead of guessed.
pub fn canonical_host(host: &str) -> Result<String, HostError> {
    if host.is_empty() || host.len() > 260 || !host.is_ascii() {
        return Err(HostError::Invalid);
    }
    let host = host.to_ascii_lowercase();
    let (name, port) = if let Some(bracketed) = host.strip_prefix('[') {
        let (v6, after) = bracketed.split_once(']').ok_or(HostError::Invalid)?;
        let ip = v6
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| HostError::Invalid)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(HostError::Invalid)?),
        };
        (format!("[{ip}]"), port)
    } else {
        let (name, port) = match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host.as_str(), None),
        };
        (canonical_name(name)?, port)
    };
    let port = match port {
        None => None,
        Some(p) => {
            let ok = !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
            match p.parse::<u16>() {
                Ok(n) if ok && n > 0 => Some(n),
                _ => return Err(HostError::BadPort),
            }
        }
    };
    let default_port = if is_loopback_name(&name) { 80 } else { 443 };
    let port = port.filter(|p| *p != default_port);
    Ok(match port {
        None if matches!(name.as_str(), "index.docker.io" | "registry-1.docker.io") => {
            DOCKER_HUB.to_owned()
        }
        None => name,
        Some(p) => format!("{name}:{p}"),
    })
}

/// A DNS name or IPv4 address, lower-cased already: one trailing dot dropped, labels checked.
fn canonical_name(name: &str) -> Result<String, HostError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let labels_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !labels_ok {
        return Err(HostError::Invalid);
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || last
            .strip_prefix("0x")
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    if numeric {
        // Rust's parser takes exactly four decimal octets without leading zeros.
        let ip = name
            .parse::<std::net::Ipv4Addr>()
            .map_err(|_| HostError::AmbiguousNumber)?;
        return Ok(ip.to_string());
    }
    Ok(name.to_owned())
}

fn is_loopback_name(name: &str) -> bool {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `host/path` with the host in its canonical spelling and Docker Hub short names completed,
/// for repository names given as text (`--scope-as`) rather than parsed from a reference.
/// `None` when `repository` is not a registry repository (`oci:<dir>`, or malformed).
pub fn canonical_repository(repository: &str) -> Option<String> {
    if repository.starts_with(LAYOUT_PREFIX) {
        return None;
    }
    let r: Reference = repository.parse().ok()?;
    if r.tag.is_some() || r.digest.is_some() {
        return None;
    }
    Some(r.repository())
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
            ("localhost:99999/app", "port is not a number"),
            ("localhost:0/app", "port is not a number"),
            ("reg..example.com/app", "host[:port]"),
            ("-reg.example.com/app", "host[:port]"),
            ("127.1:5000/app", "dotted-quad"),
            ("0x7f000001:5000/app", "dotted-quad"),
            ("127.000.000.001:5000/app", "dotted-quad"),
            ("localhost..:5000/app", "host[:port]"),
            // Found by the reference fuzz target: upper case made the first part a host whose
            // canonical spelling read back as a Docker Hub namespace.
            ("MyReg/app", "Docker Hub namespace"),
            ("myreg:443/app", "Docker Hub namespace"),
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

    /// Every spelling of one repository parses to the same canonical reference, so a policy
    /// scope written for one spelling cannot be dodged with another.
    #[test]
    fn host_spellings_have_one_canonical_form() {
        let table: &[(&str, &str)] = &[
            ("LOCALHOST:5000/prod/app", "localhost:5000/prod/app"),
            ("LocalHost:5000/prod/app", "localhost:5000/prod/app"),
            ("localhost.:5000/prod/app", "localhost:5000/prod/app"),
            ("localhost:05000/prod/app", "localhost:5000/prod/app"),
            ("LOCALHOST/prod/app", "localhost/prod/app"),
            ("localhost:80/prod/app", "localhost/prod/app"),
            ("localhost:443/prod/app", "localhost:443/prod/app"),
            ("127.0.0.1:80/app", "127.0.0.1/app"),
            ("[::1]:80/app", "[::1]/app"),
            ("[0:0:0:0:0:0:0:1]:5000/app", "[::1]:5000/app"),
            ("[::FFFF:7f00:1]:5000/app", "[::ffff:127.0.0.1]:5000/app"),
            (
                "registry.example.com:443/prod/app",
                "registry.example.com/prod/app",
            ),
            (
                "Registry.Example.COM/prod/app",
                "registry.example.com/prod/app",
            ),
            (
                "registry.example.com./prod/app",
                "registry.example.com/prod/app",
            ),
            (
                "REGISTRY.example.com.:443/prod/app",
                "registry.example.com/prod/app",
            ),
            (
                "registry.example.com:80/prod/app",
                "registry.example.com:80/prod/app",
            ),
            (
                "registry.example.com:5000/prod/app",
                "registry.example.com:5000/prod/app",
            ),
            ("alpine", "docker.io/library/alpine"),
            ("docker.io/alpine", "docker.io/library/alpine"),
            ("DOCKER.IO/alpine", "docker.io/library/alpine"),
            ("docker.io:443/alpine", "docker.io/library/alpine"),
            ("docker.io./library/alpine", "docker.io/library/alpine"),
            ("index.docker.io/alpine", "docker.io/library/alpine"),
            (
                "Index.Docker.IO:443/library/alpine",
                "docker.io/library/alpine",
            ),
            ("registry-1.docker.io/user/app", "docker.io/user/app"),
            ("registry-1.docker.io./alpine", "docker.io/library/alpine"),
            // Another port is another registry.
            ("docker.io:5000/alpine", "docker.io:5000/alpine"),
            ("index.docker.io:5000/alpine", "index.docker.io:5000/alpine"),
        ];
        for (input, want) in table {
            let r = parse(input);
            assert_eq!(r.repository(), *want, "{input}");
            // Canonical is a fixed point: printing and parsing again changes nothing.
            assert_eq!(parse(&r.to_string()), r, "{input}");
            assert_eq!(
                canonical_repository(input).as_deref(),
                Some(*want),
                "{input}"
            );
        }
        let r = parse("LOCALHOST:5000/prod/app:v1");
        assert_eq!(r.registry(), Some("localhost:5000"));
        assert_eq!(r.to_string(), "localhost:5000/prod/app:v1");
        assert_eq!(canonical_repository("oci:./store"), None);
        assert_eq!(canonical_repository("localhost:5000/app:v1"), None);
        assert_eq!(canonical_repository("no spaces/allowed"), None);
    }

    #[test]
    fn canonical_hosts() {
        let table: &[(&str, Result<&str, HostError>)] = &[
            ("LOCALHOST:5000", Ok("localhost:5000")),
            ("example.com.", Ok("example.com")),
            ("example.com:443", Ok("example.com")),
            ("127.0.0.1:80", Ok("127.0.0.1")),
            ("127.0.0.1:443", Ok("127.0.0.1:443")),
            ("index.docker.io", Ok("docker.io")),
            ("", Err(HostError::Invalid)),
            (".", Err(HostError::Invalid)),
            ("example.com..", Err(HostError::Invalid)),
            ("ex ample.com", Err(HostError::Invalid)),
            ("ex\u{e9}mple.com", Err(HostError::Invalid)),
            ("[::1", Err(HostError::Invalid)),
            ("[::1]x", Err(HostError::Invalid)),
            ("[zz]:5000", Err(HostError::Invalid)),
            ("example.com:", Err(HostError::BadPort)),
            ("example.com:+1", Err(HostError::BadPort)),
            ("example.com:1:2", Err(HostError::BadPort)),
            ("example.com:123456", Err(HostError::BadPort)),
            ("10.1", Err(HostError::AmbiguousNumber)),
            ("example.0x10", Err(HostError::AmbiguousNumber)),
            ("1.2.3.4.5", Err(HostError::AmbiguousNumber)),
        ];
        for (input, want) in table {
            assert_eq!(
                canonical_host(input).as_deref().map_err(Clone::clone),
                *want,
                "{input}"
            );
        }
        assert_eq!(canonical_host(&"a".repeat(300)), Err(HostError::Invalid));
    }

    /// Byte 64 inside a multi-byte character: the error shows 64 characters, no panic.
    #[test]
    fn long_non_ascii_references_are_refused_without_panic() {
        for prefix in ["", "a", "ab", "abc"] {
            let input = format!("{prefix}{}", "\u{e9}\u{1f600}".repeat(1000));
            let err = input.parse::<Reference>().unwrap_err();
            let Error::TooLong { input: shown } = err else {
                panic!("{err:?}");
            };
            assert_eq!(shown.chars().count(), 64 + 3);
            assert!(input.starts_with(shown.trim_end_matches("...")));
        }
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
