//! Version order per ecosystem, as OSV `ECOSYSTEM` ranges need it: SemVer 2.0 for crates.io and
//! npm (build metadata ignored), Go's semver (`v` prefix, `+incompatible`, pseudo-versions) and
//! PEP 440 for PyPI (the order of Python's `packaging`, via `pep440_rs`); dpkg's order for
//! Debian and Ubuntu, apk's for Alpine and Wolfi, rpm's for Red Hat, Rocky Linux and AlmaLinux
//! (their own modules).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The package ecosystems custody can match, named as OSV names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Ecosystem {
    #[serde(rename = "crates.io")]
    CratesIo,
    #[serde(rename = "npm")]
    Npm,
    #[serde(rename = "Go")]
    Go,
    #[serde(rename = "PyPI")]
    PyPi,
    #[serde(rename = "Debian")]
    Debian,
    #[serde(rename = "Ubuntu")]
    Ubuntu,
    #[serde(rename = "Alpine")]
    Alpine,
    #[serde(rename = "Red Hat")]
    RedHat,
    #[serde(rename = "Wolfi")]
    Wolfi,
    #[serde(rename = "Rocky Linux")]
    RockyLinux,
    #[serde(rename = "AlmaLinux")]
    AlmaLinux,
}

impl Ecosystem {
    /// The OSV name (`affected[].package.ecosystem`).
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::Npm => "npm",
            Ecosystem::Go => "Go",
            Ecosystem::PyPi => "PyPI",
            Ecosystem::Debian => "Debian",
            Ecosystem::Ubuntu => "Ubuntu",
            Ecosystem::Alpine => "Alpine",
            Ecosystem::RedHat => "Red Hat",
            Ecosystem::Wolfi => "Wolfi",
            Ecosystem::RockyLinux => "Rocky Linux",
            Ecosystem::AlmaLinux => "AlmaLinux",
        }
    }

    /// Reads an OSV language ecosystem name; OS ecosystems carry a release (`Debian:12`) and
    /// are read by [`super::distro::parse_osv_ecosystem`].
    pub fn from_osv(name: &str) -> Option<Ecosystem> {
        match name {
            "crates.io" => Some(Ecosystem::CratesIo),
            "npm" => Some(Ecosystem::Npm),
            "Go" => Some(Ecosystem::Go),
            "PyPI" => Some(Ecosystem::PyPi),
            _ => None,
        }
    }

    /// The package name as custody indexes it: Go module paths lowercased (custody's purls are
    /// lowercase), PyPI names normalised as PEP 503 says, the others unchanged.
    pub fn normalise_name(self, name: &str) -> String {
        match self {
            Ecosystem::CratesIo | Ecosystem::Npm => name.to_owned(),
            Ecosystem::Go => name.to_ascii_lowercase(),
            Ecosystem::PyPi => crate::evidence::sbom::purl::normalise_python_name(name),
            Ecosystem::Debian
            | Ecosystem::Ubuntu
            | Ecosystem::Alpine
            | Ecosystem::RedHat
            | Ecosystem::Wolfi
            | Ecosystem::RockyLinux
            | Ecosystem::AlmaLinux => name.to_owned(),
        }
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version that cannot be read in its ecosystem's scheme.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{input:?} is not a valid {scheme} version")]
pub struct VersionError {
    pub input: String,
    pub scheme: &'static str,
}

/// A parsed version; only versions of the same scheme compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// SemVer 2.0 with the build metadata cleared (it does not take part in precedence).
    Semver(semver::Version),
    Pep440(pep440_rs::Version),
    /// A Debian or Ubuntu version, checked by [`super::debversion::parse`].
    Dpkg(String),
    /// An Alpine version that follows apk's grammar.
    Apk(String),
    /// An rpm `[epoch:]version[-release]`.
    Rpm(String),
}

impl Version {
    /// Parses `input` in the order `ecosystem` uses.
    pub fn parse(ecosystem: Ecosystem, input: &str) -> Result<Version, VersionError> {
        match ecosystem {
            Ecosystem::CratesIo => parse_semver(input, "semver"),
            // npm accepts a leading `v` or `=` on published versions' lookups.
            Ecosystem::Npm => parse_semver(
                input.trim().trim_start_matches(['v', '=']).trim_start(),
                "npm semver",
            )
            .map_err(|_| VersionError {
                input: input.to_owned(),
                scheme: "npm semver",
            }),
            Ecosystem::Go => parse_go(input),
            Ecosystem::PyPi => pep440_rs::Version::from_str(input.trim())
                .map(Version::Pep440)
                .map_err(|_| VersionError {
                    input: input.to_owned(),
                    scheme: "pep 440",
                }),
            Ecosystem::Debian | Ecosystem::Ubuntu => match super::debversion::parse(input) {
                Ok(_) => Ok(Version::Dpkg(input.trim().to_owned())),
                Err(_) => Err(VersionError {
                    input: input.to_owned(),
                    scheme: "dpkg",
                }),
            },
            Ecosystem::Alpine | Ecosystem::Wolfi if super::apkversion::is_valid(input) => {
                Ok(Version::Apk(input.to_owned()))
            }
            Ecosystem::Alpine | Ecosystem::Wolfi => Err(VersionError {
                input: input.to_owned(),
                scheme: "apk",
            }),
            Ecosystem::RedHat | Ecosystem::RockyLinux | Ecosystem::AlmaLinux => {
                match super::rpmversion::parse(input) {
                    Ok(_) => Ok(Version::Rpm(input.to_owned())),
                    Err(_) => Err(VersionError {
                        input: input.to_owned(),
                        scheme: "rpm",
                    }),
                }
            }
        }
    }

    /// Parses a version of an OSV `SEMVER` range: SemVer 2.0, a leading `v` tolerated.
    pub fn parse_semver(input: &str) -> Result<Version, VersionError> {
        parse_semver(input.strip_prefix('v').unwrap_or(input), "semver")
    }

    /// The order of two versions; `None` when their schemes differ.
    pub fn compare(&self, other: &Version) -> Option<Ordering> {
        match (self, other) {
            (Version::Semver(a), Version::Semver(b)) => Some(a.cmp_precedence(b)),
            (Version::Pep440(a), Version::Pep440(b)) => Some(a.cmp(b)),
            (Version::Dpkg(a), Version::Dpkg(b)) => super::debversion::compare(a, b).ok(),
            (Version::Apk(a), Version::Apk(b)) => Some(super::apkversion::compare(a, b)),
            (Version::Rpm(a), Version::Rpm(b)) => super::rpmversion::compare(a, b).ok(),
            _ => None,
        }
    }
}

fn parse_semver(input: &str, scheme: &'static str) -> Result<Version, VersionError> {
    semver::Version::parse(input)
        .map(|mut v| {
            v.build = semver::BuildMetadata::EMPTY;
            Version::Semver(v)
        })
        .map_err(|_| VersionError {
            input: input.to_owned(),
            scheme,
        })
}

/// Go module versions: `v1.2.3`, `v2.0.0+incompatible`, pseudo-versions such as
/// `v0.0.0-20191109021931-daa7c04131f5` (SemVer pre-releases, so they order below the release
/// they precede). OSV writes Go versions without the `v`; both forms are read.
fn parse_go(input: &str) -> Result<Version, VersionError> {
    let bare = input.strip_prefix('v').unwrap_or(input);
    parse_semver(bare, "go module").map_err(|_| VersionError {
        input: input.to_owned(),
        scheme: "go module",
    })
}

/// Either the OSV `"0"` (before every version) or a parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Zero,
    At(Version),
}

impl Bound {
    /// Order of `version` against this bound; `None` when the schemes differ.
    pub fn compare_version(&self, version: &Version) -> Option<Ordering> {
        match self {
            Bound::Zero => Some(Ordering::Greater),
            Bound::At(b) => version.compare(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::{Equal, Greater, Less};

    fn cmp(eco: Ecosystem, a: &str, b: &str) -> Ordering {
        let a = Version::parse(eco, a).unwrap_or_else(|e| panic!("{e}"));
        let b = Version::parse(eco, b).unwrap_or_else(|e| panic!("{e}"));
        a.compare(&b).unwrap()
    }

    #[test]
    fn semver_order_table() {
        let table = [
            ("1.0.0", "1.0.1", Less),
            ("1.0.0-alpha", "1.0.0", Less),
            ("1.0.0-alpha", "1.0.0-alpha.1", Less),
            ("1.0.0-alpha.1", "1.0.0-alpha.beta", Less),
            ("1.0.0-beta.2", "1.0.0-beta.11", Less),
            ("1.0.0-rc.1", "1.0.0", Less),
            ("1.0.0+build.1", "1.0.0+build.2", Equal),
            ("1.0.0+zzz", "1.0.0", Equal),
            ("0.0.0-0", "0.0.0", Less),
            ("2.0.0", "10.0.0", Less),
        ];
        for eco in [Ecosystem::CratesIo, Ecosystem::Npm] {
            for (a, b, want) in table {
                assert_eq!(cmp(eco, a, b), want, "{eco}: {a} vs {b}");
                assert_eq!(cmp(eco, b, a), want.reverse(), "{eco}: {b} vs {a}");
            }
        }
    }

    #[test]
    fn npm_tolerates_a_v_prefix_crates_do_not() {
        assert_eq!(cmp(Ecosystem::Npm, "v1.2.3", "1.2.3"), Equal);
        assert!(matches!(
            Version::parse(Ecosystem::CratesIo, "v1.2.3"),
            Err(VersionError {
                scheme: "semver",
                ..
            })
        ));
    }

    #[test]
    fn go_order_table() {
        let table = [
            ("v1.2.3", "1.2.3", Equal),
            ("v2.0.0+incompatible", "2.0.0", Equal),
            ("v0.0.0-20191109021931-daa7c04131f5", "0.0.0", Less),
            (
                "v0.0.0-20191109021931-daa7c04131f5",
                "v0.0.0-20201109021931-aaaaaaaaaaaa",
                Less,
            ),
            // A pseudo-version based on v1.2.3 comes after v1.2.3 and before v1.2.4.
            ("v1.2.4-0.20191109021931-daa7c04131f5", "v1.2.3", Greater),
            ("v1.2.4-0.20191109021931-daa7c04131f5", "v1.2.4", Less),
            (
                "v1.2.4-pre.0.20191109021931-daa7c04131f5",
                "v1.2.4-pre",
                Greater,
            ),
            ("v1.10.0", "v1.9.9", Greater),
        ];
        for (a, b, want) in table {
            assert_eq!(cmp(Ecosystem::Go, a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn pep440_order_table() {
        // The order Python's `packaging.version.Version` gives.
        let ordered = [
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.1.dev1",
            "1!0.5",
        ];
        for pair in ordered.windows(2) {
            assert_eq!(
                cmp(Ecosystem::PyPi, pair[0], pair[1]),
                Less,
                "{} < {}",
                pair[0],
                pair[1]
            );
        }
        assert_eq!(cmp(Ecosystem::PyPi, "1.0", "1.0.0"), Equal);
        assert_eq!(cmp(Ecosystem::PyPi, "1.0.0", "v1.0"), Equal);
        assert_eq!(cmp(Ecosystem::PyPi, "1.0-RC1", "1.0rc1"), Equal);
    }

    #[test]
    fn invalid_versions_name_their_scheme() {
        let table = [
            (Ecosystem::CratesIo, "1.0", "semver"),
            (Ecosystem::Npm, "latest", "npm semver"),
            (Ecosystem::Go, "master", "go module"),
            (Ecosystem::PyPi, "1.0-foo-bar-baz", "pep 440"),
        ];
        for (eco, input, scheme) in table {
            let err = Version::parse(eco, input).unwrap_err();
            assert_eq!(err.scheme, scheme, "{input}");
            assert_eq!(err.input, input);
        }
    }

    #[test]
    fn schemes_do_not_compare() {
        let a = Version::parse(Ecosystem::CratesIo, "1.0.0").unwrap();
        let b = Version::parse(Ecosystem::PyPi, "1.0.0").unwrap();
        assert_eq!(a.compare(&b), None);
        assert_eq!(Bound::Zero.compare_version(&a), Some(Greater));
    }
}
