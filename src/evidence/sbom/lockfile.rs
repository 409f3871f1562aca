//! What every lockfile parser produces ([`Lock`], [`Package`]), the bounds every parser obeys
//! (input size, nesting depth, entry count) and the shared error type.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::purl::{Purl, PurlError};

/// Largest lockfile custody reads.
pub const MAX_LOCKFILE_BYTES: u64 = 64 * 1024 * 1024;
/// Deepest nesting of arrays/tables/objects accepted before parsing.
pub const MAX_NESTING: usize = 64;
/// Most packages (or dependency edges per package) one lockfile may list.
pub const MAX_ENTRIES: usize = 200_000;

/// How a component is used by the artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Required,
    Optional,
    /// Development-only: not part of the shipped artifact.
    Excluded,
}

/// Where a package was resolved from, as the lockfile records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// A package registry or index (`url` is the registry, `artifact` the exact download when
    /// the lockfile has it).
    Registry {
        url: String,
        artifact: Option<String>,
    },
    /// A git repository at a revision.
    Git { url: String, rev: Option<String> },
    /// A local path (workspace member, `file:` dependency, npm link target).
    Path { path: String },
    /// A direct URL download.
    Url { url: String },
    /// The lockfile does not say (Go: whatever `GOPROXY` served, checked against `go.sum`).
    Unrecorded,
}

impl Origin {
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Registry { .. } => "registry",
            Origin::Git { .. } => "git",
            Origin::Path { .. } => "path",
            Origin::Url { .. } => "url",
            Origin::Unrecorded => "unrecorded",
        }
    }
}

/// A hash the lockfile records for the package's artifact, as CycloneDX names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hash {
    /// `SHA-256`, `SHA-512`, `SHA-1`.
    pub alg: &'static str,
    pub hex: String,
}

/// One resolved package.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    pub purl: Purl,
    pub name: String,
    pub group: Option<String>,
    pub version: String,
    pub hashes: Vec<Hash>,
    pub scope: Option<Scope>,
    pub origin: Origin,
    /// Indices into [`Lock::packages`]; `None` when the lockfile records no graph.
    pub dependencies: Option<Vec<usize>>,
    /// Extra facts as `custody:*` properties (name, value).
    pub properties: Vec<(String, String)>,
}

/// The project the lockfile belongs to, when the lockfile names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootPackage {
    pub name: String,
    pub version: Option<String>,
    pub purl: Option<Purl>,
}

/// A parsed lockfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Lock {
    pub path: PathBuf,
    pub format: &'static str,
    pub root: Option<RootPackage>,
    pub packages: Vec<Package>,
    /// The root's direct dependencies, when known.
    pub direct: Option<Vec<usize>>,
}

/// Why a lockfile could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("could not read lockfile {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("lockfile {path} is larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("lockfile {path} is not valid utf-8")]
    InvalidUtf8 { path: PathBuf },
    #[error("lockfile {path} nests deeper than {limit} levels")]
    TooDeep { path: PathBuf, limit: usize },
    #[error("lockfile {path} has more than {limit} entries")]
    TooManyEntries { path: PathBuf, limit: usize },
    #[error("lockfile {path} is not valid {format}")]
    Syntax {
        path: PathBuf,
        format: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("lockfile {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("lockfile {path} has format version {version}, which custody does not read")]
    UnsupportedVersion { path: PathBuf, version: String },
    #[error("{path}:{line}: {requirement:?} is not pinned to one version (name==version)")]
    Unpinned {
        path: PathBuf,
        line: usize,
        requirement: String,
    },
    #[error("{path}:{line}: {directive:?} is not supported in a requirements file custody reads")]
    UnsupportedLine {
        path: PathBuf,
        line: usize,
        directive: String,
    },
    #[error("lockfile {path}: package {name:?} gives an invalid package url")]
    Purl {
        path: PathBuf,
        name: String,
        #[source]
        source: PurlError,
    },
    #[error(
        "{path} is not a lockfile custody knows (Cargo.lock, package-lock.json, npm-shrinkwrap.json, go.mod, uv.lock, poetry.lock, requirements*.txt)"
    )]
    UnknownFormat { path: PathBuf },
}

impl LockError {
    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> LockError {
        LockError::Invalid {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// Reads at most [`MAX_LOCKFILE_BYTES`] of UTF-8 text.
pub(crate) fn read_bounded(path: &Path) -> Result<String, LockError> {
    let io = |source| LockError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_LOCKFILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_LOCKFILE_BYTES {
        return Err(LockError::TooLarge {
            path: path.to_owned(),
            limit: MAX_LOCKFILE_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|_| LockError::InvalidUtf8 {
        path: path.to_owned(),
    })
}

/// Refuses input whose bracket nesting exceeds [`MAX_NESTING`] before a recursive parser sees
/// it. Strings (JSON `"..."`, TOML basic, literal and multi-line strings) and `#` comments (TOML)
/// are skipped so brackets inside them do not count.
pub(crate) fn check_nesting(path: &Path, text: &str, toml: bool) -> Result<(), LockError> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(LockError::TooDeep {
                        path: path.to_owned(),
                        limit: MAX_NESTING,
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'#' if toml => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            quote @ (b'"' | b'\'') if toml || quote == b'"' => {
                let triple = toml && b[i..].starts_with(&[quote, quote, quote]);
                let escapes = quote == b'"';
                i += if triple { 3 } else { 1 };
                while i < b.len() {
                    if escapes && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == quote && (!triple || b[i..].starts_with(&[quote, quote, quote])) {
                        i += if triple { 2 } else { 0 };
                        break;
                    }
                    if !triple && b[i] == b'\n' {
                        break;
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

pub(crate) fn check_count(path: &Path, count: usize) -> Result<(), LockError> {
    if count > MAX_ENTRIES {
        Err(LockError::TooManyEntries {
            path: path.to_owned(),
            limit: MAX_ENTRIES,
        })
    } else {
        Ok(())
    }
}

/// `sha512-<base64>` (Subresource Integrity, possibly several separated by spaces) to hashes.
pub(crate) fn sri_hashes(integrity: &str) -> Vec<Hash> {
    use base64::Engine as _;
    integrity
        .split_whitespace()
        .filter_map(|item| {
            let (alg, b64) = item.split_once('-')?;
            let alg = match alg {
                "sha512" => "SHA-512",
                "sha384" => "SHA-384",
                "sha256" => "SHA-256",
                "sha1" => "SHA-1",
                _ => return None,
            };
            // SRI allows `?options` after the digest.
            let b64 = b64.split('?').next().unwrap_or_default();
            let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            Some(Hash {
                alg,
                hex: hex::encode(raw),
            })
        })
        .collect()
}

/// `sha256:<hex>` (Python lockfiles) to a hash, when well formed.
pub(crate) fn prefixed_hex_hash(text: &str) -> Option<Hash> {
    let (alg, hex) = text.split_once(':')?;
    let (alg, len) = match alg {
        "sha256" => ("SHA-256", 64),
        "sha384" => ("SHA-384", 96),
        "sha512" => ("SHA-512", 128),
        _ => return None,
    };
    (hex.len() == len && hex.bytes().all(|c| c.is_ascii_hexdigit())).then(|| Hash {
        alg,
        hex: hex.to_ascii_lowercase(),
    })
}

pub(crate) fn syntax(
    path: &Path,
    format: &'static str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> LockError {
    LockError::Syntax {
        path: path.to_owned(),
        format,
        source: Box::new(source),
    }
}

/// A predicate over an error, for table tests.
#[cfg(test)]
pub(crate) type ErrorCheck = fn(&LockError) -> bool;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_counts_brackets_outside_strings_only() {
        let p = Path::new("x");
        let deep = "[".repeat(MAX_NESTING + 1);
        assert!(matches!(
            check_nesting(p, &deep, true),
            Err(LockError::TooDeep { .. })
        ));
        let in_string = format!("a = \"{deep}\"\nb = '''{deep}'''\n# {deep}\n");
        check_nesting(p, &in_string, true).unwrap();
        let json = format!("{{\"k\": \"{deep}\\\"\"}}");
        check_nesting(p, &json, false).unwrap();
    }

    #[test]
    fn sri_and_prefixed_hashes() {
        // sha1 of "" = da39a3ee...; base64 2jmj7l5rSw0yVb/vlWAYkK/YBwk=
        let hashes = sri_hashes("sha1-2jmj7l5rSw0yVb/vlWAYkK/YBwk= md5-xxx");
        assert_eq!(
            hashes,
            [Hash {
                alg: "SHA-1",
                hex: "da39a3ee5e6b4b0d3255bfef95601890afd80709".into()
            }]
        );
        assert!(sri_hashes("sha512-!!notbase64").is_empty());
        assert_eq!(
            prefixed_hex_hash(&format!("sha256:{}", "AB".repeat(32)))
                .unwrap()
                .hex,
            "ab".repeat(32)
        );
        assert_eq!(prefixed_hex_hash("sha256:abc"), None);
    }

    #[test]
    fn read_bounded_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.lock");
        std::fs::write(&path, [0xff, 0xfe, b'a']).unwrap();
        assert!(
            matches!(read_bounded(&path), Err(LockError::InvalidUtf8 { path: p }) if p == path)
        );
        let missing = dir.path().join("missing");
        assert!(matches!(read_bounded(&missing), Err(LockError::Io { .. })));
    }
}
