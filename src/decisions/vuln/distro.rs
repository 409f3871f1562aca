//! OS packages (`pkg:deb`, `pkg:apk`, `pkg:rpm`) against OSV's Debian, Ubuntu, Alpine, Wolfi,
//! Red Hat, Rocky Linux and AlmaLinux ecosystems. Their advisories are per distribution release
//! (`Debian:12`, `Ubuntu:22.04:LTS`, `Alpine:v3.19`, `Red Hat:enterprise_linux:9::baseos`,
//! `Rocky Linux:9`, `AlmaLinux:8`), so a package matches only entries of its own release, read
//! from the purl's `distro=` qualifier; Wolfi is a rolling distribution with one ecosystem and
//! no releases. Debian, Ubuntu, Alpine and Wolfi advisories name source (origin) packages: a
//! purl's `upstream=` qualifier (as syft and custody write it) gives the source name, and for
//! Debian the source version too. The rpm families' advisories name binary packages, as
//! osv-scanner matches them.

use super::version::Ecosystem;
use super::{NotScanned, PackageRef};

/// Reads an OSV ecosystem string into the ecosystem and its release key (`None` for the
/// language ecosystems and for an OS ecosystem named without a release).
pub fn parse_osv_ecosystem(name: &str) -> Option<(Ecosystem, Option<String>)> {
    if let Some(e) = Ecosystem::from_osv(name) {
        return Some((e, None));
    }
    match name {
        "Wolfi" => return Some((Ecosystem::Wolfi, None)),
        // The schema allows the family without a release: every release.
        "Rocky Linux" => return Some((Ecosystem::RockyLinux, None)),
        "AlmaLinux" => return Some((Ecosystem::AlmaLinux, None)),
        _ => {}
    }
    let (family, release) = name.split_once(':')?;
    let ecosystem = match family {
        "Debian" => Ecosystem::Debian,
        "Ubuntu" => Ecosystem::Ubuntu,
        "Alpine" => Ecosystem::Alpine,
        "Red Hat" => Ecosystem::RedHat,
        "Rocky Linux" => Ecosystem::RockyLinux,
        "AlmaLinux" => Ecosystem::AlmaLinux,
        _ => return None,
    };
    let key = match ecosystem {
        // `22.04:LTS` and `22.04` are one release; `Pro:18.04:LTS` (ESM) is another stream
        // and keeps its `Pro:` so that it never matches an ordinary image.
        Ecosystem::Ubuntu => release.strip_suffix(":LTS").unwrap_or(release).to_owned(),
        Ecosystem::Alpine => release.strip_prefix('v').unwrap_or(release).to_owned(),
        // `enterprise_linux:9::baseos` is RHEL 9; other products (`rhel_aus:8.4::…`) are
        // extended-support streams that a plain `rhel-8.4` image does not name.
        Ecosystem::RedHat => match release.strip_prefix("enterprise_linux:") {
            Some(rest) => major(rest.split(':').next().unwrap_or(rest)).to_owned(),
            None => release.to_owned(),
        },
        // `Rocky Linux:9`, `AlmaLinux:8`; a point release, should one appear, is its major's.
        Ecosystem::RockyLinux | Ecosystem::AlmaLinux => major(release).to_owned(),
        _ => release.to_owned(),
    };
    Some((ecosystem, Some(key).filter(|k| !k.is_empty())))
}

fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

/// The release key of a purl's `distro=` value (`debian-12`, `debian-12.5`, `bookworm`,
/// `ubuntu-22.04`, `alpine-3.19.1`, `3.19.1`, `rhel-9.4`, `rocky-9.3`, `almalinux-8.9`), as
/// [`parse_osv_ecosystem`] keys
/// the advisories' releases.
pub fn release_of_distro(ecosystem: Ecosystem, distro: &str) -> Option<String> {
    let value = distro.rsplit_once('-').map_or(distro, |(_, v)| v).trim();
    let value = value.strip_prefix('v').unwrap_or(value);
    let key = match ecosystem {
        Ecosystem::Debian => match value {
            "jessie" => "8",
            "stretch" => "9",
            "buster" => "10",
            "bullseye" => "11",
            "bookworm" => "12",
            "trixie" => "13",
            "forky" => "14",
            v => major(v),
        }
        .to_owned(),
        Ecosystem::Ubuntu => match value {
            "bionic" => "18.04",
            "focal" => "20.04",
            "jammy" => "22.04",
            "noble" => "24.04",
            v => v,
        }
        .to_owned(),
        Ecosystem::Alpine => value.split('.').take(2).collect::<Vec<_>>().join("."),
        Ecosystem::RedHat | Ecosystem::RockyLinux | Ecosystem::AlmaLinux => major(value).to_owned(),
        _ => return None,
    };
    (!key.is_empty()).then_some(key)
}

/// `?k=v&…` of a purl, values percent-decoded; `None` when one cannot be decoded.
fn qualifiers(purl: &str) -> Option<Vec<(String, String)>> {
    let Some((_, q)) = purl.split_once('?') else {
        return Some(Vec::new());
    };
    let q = q.split_once('#').map_or(q, |(q, _)| q);
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some((k.to_ascii_lowercase(), super::percent_decode(v)?))
        })
        .collect()
}

/// Reads a `pkg:deb`, `pkg:apk` or `pkg:rpm` purl; `None` for any other type. The package
/// is named as its ecosystem's advisories name it (the source package for Debian, Ubuntu,
/// Alpine and Wolfi, the binary for the rpm families) and its version is the one they order:
/// the source version when `upstream=` gives one, rpm's `epoch:version-release`.
pub fn package_from_os_purl(purl: &str) -> Option<Result<PackageRef, NotScanned>> {
    let rest = purl.strip_prefix("pkg:")?;
    let (ty, after) = rest.split_once('/')?;
    let ty = ty.to_ascii_lowercase();
    if !matches!(ty.as_str(), "deb" | "apk" | "rpm") {
        return None;
    }
    Some(read(purl, &ty, after))
}

fn read(purl: &str, ty: &str, after: &str) -> Result<PackageRef, NotScanned> {
    let bad = || NotScanned::BadPurl {
        purl: purl.to_owned(),
    };
    let unsupported = || NotScanned::UnsupportedType {
        purl: purl.to_owned(),
    };
    let path = after.split(['?', '#']).next().unwrap_or("");
    let (path, version) = match path.rsplit_once('@') {
        Some((p, v)) => (p, super::percent_decode(v).ok_or_else(bad)?),
        None => (path, String::new()),
    };
    let (namespace, name) = path.split_once('/').ok_or_else(unsupported)?;
    let namespace = super::percent_decode(namespace)
        .ok_or_else(bad)?
        .to_ascii_lowercase();
    let name = super::percent_decode(name).ok_or_else(bad)?;
    if name.is_empty() || name.contains('/') {
        return Err(bad());
    }
    let ecosystem = match (ty, namespace.as_str()) {
        ("deb", "debian") => Ecosystem::Debian,
        ("deb", "ubuntu") => Ecosystem::Ubuntu,
        ("apk", "alpine") => Ecosystem::Alpine,
        ("rpm", "redhat" | "rhel") => Ecosystem::RedHat,
        ("apk", "wolfi") => Ecosystem::Wolfi,
        ("rpm", "rocky") => Ecosystem::RockyLinux,
        ("rpm", "almalinux") => Ecosystem::AlmaLinux,
        _ => return Err(unsupported()),
    };
    if version.is_empty() {
        return Err(NotScanned::NoVersion {
            purl: purl.to_owned(),
        });
    }
    let qualifiers = qualifiers(purl).ok_or_else(bad)?;
    let get = |key: &str| {
        qualifiers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    // Wolfi has no releases: its `distro=wolfi-20230201` names a base build, not a stream.
    let release = if ecosystem == Ecosystem::Wolfi {
        None
    } else {
        Some(
            get("distro")
                .and_then(|d| release_of_distro(ecosystem, d))
                .ok_or_else(|| NotScanned::NoRelease {
                    purl: purl.to_owned(),
                })?,
        )
    };
    let (name, version) = match ecosystem {
        Ecosystem::Debian | Ecosystem::Ubuntu | Ecosystem::Alpine | Ecosystem::Wolfi => {
            match get("upstream") {
                Some(up) => match up.split_once('@') {
                    Some((src, v)) if !src.is_empty() && !v.is_empty() => {
                        (src.to_owned(), v.to_owned())
                    }
                    _ => (up.trim_end_matches('@').to_owned(), version),
                },
                None => (name, version),
            }
        }
        _ => match get("epoch") {
            Some(epoch) => (name, format!("{epoch}:{version}")),
            None => (name, version),
        },
    };
    Ok(PackageRef {
        purl: purl.to_owned(),
        ecosystem,
        name,
        version,
        release,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osv_ecosystem_strings() {
        let table = [
            ("Debian:12", Some((Ecosystem::Debian, Some("12")))),
            ("Debian:sid", Some((Ecosystem::Debian, Some("sid")))),
            ("Ubuntu:22.04:LTS", Some((Ecosystem::Ubuntu, Some("22.04")))),
            ("Ubuntu:24.10", Some((Ecosystem::Ubuntu, Some("24.10")))),
            (
                "Ubuntu:Pro:18.04:LTS",
                Some((Ecosystem::Ubuntu, Some("Pro:18.04"))),
            ),
            ("Alpine:v3.19", Some((Ecosystem::Alpine, Some("3.19")))),
            (
                "Red Hat:enterprise_linux:9::baseos",
                Some((Ecosystem::RedHat, Some("9"))),
            ),
            (
                "Red Hat:rhel_aus:8.4::appstream",
                Some((Ecosystem::RedHat, Some("rhel_aus:8.4::appstream"))),
            ),
            ("crates.io", Some((Ecosystem::CratesIo, None))),
            ("Debian", None),
            ("Wolfi", Some((Ecosystem::Wolfi, None))),
            ("Rocky Linux:9", Some((Ecosystem::RockyLinux, Some("9")))),
            ("Rocky Linux", Some((Ecosystem::RockyLinux, None))),
            ("AlmaLinux:8", Some((Ecosystem::AlmaLinux, Some("8")))),
            ("AlmaLinux:9.4", Some((Ecosystem::AlmaLinux, Some("9")))),
            ("AlmaLinux", Some((Ecosystem::AlmaLinux, None))),
            ("Wolfi:2023", None),
            ("Rocky", None),
            ("Alma Linux:9", None),
        ];
        for (input, want) in table {
            let got = parse_osv_ecosystem(input);
            let got = got.as_ref().map(|(e, r)| (*e, r.as_deref()));
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn distro_qualifiers() {
        let table = [
            (Ecosystem::Debian, "debian-12", "12"),
            (Ecosystem::Debian, "debian-12.5", "12"),
            (Ecosystem::Debian, "bookworm", "12"),
            (Ecosystem::Ubuntu, "ubuntu-22.04", "22.04"),
            (Ecosystem::Ubuntu, "jammy", "22.04"),
            (Ecosystem::Alpine, "alpine-3.19.1", "3.19"),
            (Ecosystem::Alpine, "3.14.2", "3.14"),
            (Ecosystem::RedHat, "rhel-9.4", "9"),
            (Ecosystem::RockyLinux, "rocky-9.3", "9"),
            (Ecosystem::AlmaLinux, "almalinux-8.9", "8"),
        ];
        for (eco, distro, want) in table {
            assert_eq!(
                release_of_distro(eco, distro).as_deref(),
                Some(want),
                "{distro}"
            );
        }
    }

    fn read_ok(purl: &str) -> PackageRef {
        match package_from_os_purl(purl) {
            Some(Ok(p)) => p,
            other => panic!("{purl}: {other:?}"),
        }
    }

    #[test]
    fn source_names_and_versions() {
        let p = read_ok(
            "pkg:deb/debian/bash@5.2.15-2%2Bb8?arch=amd64&distro=debian-12&upstream=bash%405.2.15-2",
        );
        assert_eq!(
            (
                p.ecosystem,
                p.name.as_str(),
                p.version.as_str(),
                p.release.as_deref()
            ),
            (Ecosystem::Debian, "bash", "5.2.15-2", Some("12"))
        );
        let p =
            read_ok("pkg:deb/debian/libattr1@1:2.5.1-4?arch=amd64&distro=debian-12&upstream=attr");
        assert_eq!((p.name.as_str(), p.version.as_str()), ("attr", "1:2.5.1-4"));
        let p = read_ok(
            "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1&upstream=openssl",
        );
        assert_eq!(
            (p.ecosystem, p.name.as_str(), p.release.as_deref()),
            (Ecosystem::Alpine, "openssl", Some("3.19"))
        );
        let p = read_ok(
            "pkg:rpm/redhat/bash@5.1.8-6.el9_1?arch=x86_64&distro=rhel-9.4&epoch=1&upstream=bash-5.1.8-6.el9_1.src.rpm",
        );
        assert_eq!(
            (p.ecosystem, p.name.as_str(), p.version.as_str()),
            (Ecosystem::RedHat, "bash", "1:5.1.8-6.el9_1")
        );
        // syft's purls for Wolfi, Rocky Linux and AlmaLinux images.
        let p = read_ok(
            "pkg:apk/wolfi/libcrypto3@3.3.0-r8?arch=x86_64&distro=wolfi-20230201&upstream=openssl",
        );
        assert_eq!(
            (
                p.ecosystem,
                p.name.as_str(),
                p.version.as_str(),
                p.release.as_deref()
            ),
            (Ecosystem::Wolfi, "openssl", "3.3.0-r8", None)
        );
        let p = read_ok("pkg:apk/wolfi/busybox@1.36.1-r2?arch=x86_64");
        assert_eq!((p.ecosystem, p.release), (Ecosystem::Wolfi, None));
        let p = read_ok(
            "pkg:rpm/rocky/openssl-libs@3.0.7-25.el9_3?arch=x86_64&distro=rocky-9.3&epoch=1&upstream=openssl-3.0.7-25.el9_3.src.rpm",
        );
        assert_eq!(
            (
                p.ecosystem,
                p.name.as_str(),
                p.version.as_str(),
                p.release.as_deref()
            ),
            (
                Ecosystem::RockyLinux,
                "openssl-libs",
                "1:3.0.7-25.el9_3",
                Some("9")
            )
        );
        let p = read_ok("pkg:rpm/almalinux/bash@4.4.20-4.el8_6?arch=x86_64&distro=almalinux-8.9");
        assert_eq!(
            (p.ecosystem, p.version.as_str(), p.release.as_deref()),
            (Ecosystem::AlmaLinux, "4.4.20-4.el8_6", Some("8"))
        );
    }

    #[test]
    fn purls_that_cannot_be_scanned_say_why() {
        assert!(package_from_os_purl("pkg:cargo/x@1").is_none());
        let table = [
            ("pkg:deb/debian/x@1", "no-release"),
            ("pkg:deb/debian/x?distro=debian-12", "no-version"),
            ("pkg:deb/kali/x@1?distro=kali-2024", "unsupported"),
            ("pkg:apk/chainguard/x@1?distro=chainguard", "unsupported"),
            ("pkg:rpm/rocky/x@1-1", "no-release"),
            ("pkg:rpm/almalinux/x?distro=almalinux-9", "no-version"),
            ("pkg:deb/x@1", "unsupported"),
            ("pkg:deb/debian/x@1%zz", "bad"),
            ("pkg:deb/debian/x@1?distro=%zz", "bad"),
        ];
        for (purl, want) in table {
            let got = package_from_os_purl(purl).expect("an os purl");
            let kind = match got {
                Err(NotScanned::NoRelease { .. }) => "no-release",
                Err(NotScanned::NoVersion { .. }) => "no-version",
                Err(NotScanned::UnsupportedType { .. }) => "unsupported",
                Err(NotScanned::BadPurl { .. }) => "bad",
                other => panic!("{purl}: {other:?}"),
            };
            assert_eq!(kind, want, "{purl}");
        }
    }

    fn os_advisory(id: &str, ecosystem: &str, name: &str, fixed: &str) -> super::super::Advisory {
        let json = format!(
            r#"{{"id":"{id}","modified":"2024-01-01T00:00:00Z","affected":[{{"package":{{"ecosystem":"{ecosystem}","name":"{name}"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        std::fs::write(&path, json).expect("write");
        let db =
            super::super::Database::load(&[path], &super::super::Limits::default()).expect("loads");
        db.advisories()[0].clone()
    }

    /// Source names and versions, releases and each family's own order, through `scan`.
    #[test]
    fn os_packages_match_by_source_release_and_order() {
        let db = super::super::Database::from_advisories(vec![
            // The source version has no epoch; the binary's `1:` would put it past any fix.
            os_advisory("DEB-1", "Debian:12", "util-linux", "2.38.1-5+deb12u4"),
            os_advisory("DEB-2", "Debian:11", "util-linux", "2.36.1-8+deb11u9"),
            os_advisory("UBU-1", "Ubuntu:22.04:LTS", "openssl", "3.0.2-0ubuntu1.15"),
            // apk: `_p1` comes after the release, `_rc1` before it.
            os_advisory("ALP-1", "Alpine:v3.19", "openssl", "3.1.4_p1-r0"),
            os_advisory("ALP-2", "Alpine:v3.19", "musl", "1.2.4_rc1-r0"),
            // rpm: a missing epoch is 0, `el9_1` is newer than `el9`.
            os_advisory(
                "RHSA-1",
                "Red Hat:enterprise_linux:9::baseos",
                "bash",
                "0:5.1.8-6.el9_1",
            ),
            os_advisory(
                "RHSA-2",
                "Red Hat:enterprise_linux:8::baseos",
                "bash",
                "0:9.9-1.el8",
            ),
        ]);
        let purls = [
            "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bdeb12u3?arch=amd64&distro=debian-12&upstream=util-linux%402.38.1-5%2Bdeb12u3",
            "pkg:deb/ubuntu/libssl3@3.0.2-0ubuntu1.10?arch=amd64&distro=ubuntu-22.04&upstream=openssl",
            "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1&upstream=openssl",
            "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1",
            "pkg:rpm/redhat/bash@5.1.8-6.el9?arch=x86_64&distro=rhel-9.4",
            "pkg:deb/debian/x@1?arch=amd64",
        ];
        let result = super::super::scan(purls, &db);
        // Ordered by purl.
        let found: Vec<(&str, &str)> = result
            .findings
            .iter()
            .map(|f| (f.id.as_str(), f.package.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                ("ALP-1", "openssl"),
                ("DEB-1", "util-linux"),
                ("UBU-1", "openssl"),
                ("RHSA-1", "bash"),
            ]
        );
        assert_eq!(result.scanned, 5);
        assert_eq!(
            result.not_scanned,
            vec![NotScanned::NoRelease {
                purl: "pkg:deb/debian/x@1?arch=amd64".to_owned()
            }]
        );
    }

    /// Wolfi by origin package in apk's order (no releases); Rocky Linux and AlmaLinux by
    /// binary package and major release in rpm's order; no family matches another's entries.
    #[test]
    fn wolfi_rocky_and_alma_match_in_their_own_orders() {
        let db = super::super::Database::from_advisories(vec![
            os_advisory("CGA-1", "Wolfi", "openssl", "3.3.0-r9"),
            // apk: `_p1` comes after the release (rpm's order would put it before `-r2`).
            os_advisory("CGA-2", "Wolfi", "busybox", "1.36.1_p1-r0"),
            os_advisory("ALP-1", "Alpine:v3.19", "openssl", "9.9.9-r0"),
            // rpm: the epoch counts, `-27` is past `-25`.
            os_advisory("RLSA-1", "Rocky Linux:9", "openssl-libs", "1:3.0.7-27.el9"),
            os_advisory("RLSA-2", "Rocky Linux:8", "openssl-libs", "1:9.9-1.el8"),
            os_advisory("RLSA-3", "Rocky Linux:9", "bash", "9.9-1.el9"),
            // rpm: `el9_1.1` is past `el9_1`.
            os_advisory("ALSA-1", "AlmaLinux:9", "bash", "5.1.8-6.el9_1.1"),
            os_advisory("ALSA-2", "AlmaLinux:9", "openssl-libs", "1:9.9-1.el9"),
            os_advisory("ALSA-3", "AlmaLinux", "zlib", "1.2.11-41.el9"),
        ]);
        let purls = [
            "pkg:apk/wolfi/libcrypto3@3.3.0-r8?arch=x86_64&distro=wolfi-20230201&upstream=openssl",
            "pkg:apk/wolfi/busybox@1.36.1-r2?arch=x86_64&distro=wolfi-20230201",
            "pkg:rpm/rocky/openssl-libs@3.0.7-25.el9_3?arch=x86_64&distro=rocky-9.3&epoch=1",
            "pkg:rpm/almalinux/bash@5.1.8-6.el9_1?arch=x86_64&distro=almalinux-9.4",
            "pkg:rpm/almalinux/zlib@1.2.11-40.el9?arch=x86_64&distro=almalinux-9.4",
        ];
        let result = super::super::scan(purls, &db);
        let mut found: Vec<(&str, &str)> = result
            .findings
            .iter()
            .map(|f| (f.id.as_str(), f.package.as_str()))
            .collect();
        found.sort();
        assert_eq!(
            found,
            vec![
                ("ALSA-1", "bash"),
                ("ALSA-3", "zlib"),
                ("CGA-1", "openssl"),
                ("CGA-2", "busybox"),
                ("RLSA-1", "openssl-libs"),
            ]
        );
        assert_eq!(result.scanned, 5);
        assert!(result.not_scanned.is_empty(), "{:?}", result.not_scanned);
    }
}
