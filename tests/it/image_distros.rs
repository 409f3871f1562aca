//! Wolfi, Rocky Linux and AlmaLinux images end to end: `custody sbom --image` writes the purls
//! syft writes for them (namespace and `distro=` from os-release), and `custody scan` matches
//! them against OSV's `Wolfi`, `Rocky Linux:N` and `AlmaLinux:N` ecosystems in apk's and rpm's
//! version orders. The rpm database is real (Debian's `rpm` installs packages `rpmbuild` made);
//! the Wolfi apk database is written by hand in apk's installed-database format.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::image::{syft, syft_scan};
use crate::support::{self, custody, stderr, tempdir, tool};

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?} runs: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pushes a one-layer image of `paths` under `root`.
fn push(root: &Path, paths: &[&str], image: &str) {
    let layer = root.with_extension("tar");
    sh(Command::new("tar")
        .arg("--numeric-owner")
        .arg("-cf")
        .arg(&layer)
        .arg("-C")
        .arg(root)
        .args(paths));
    sh(Command::new(tool("crane"))
        .args(["append", "--insecure", "--oci-empty-base", "-f"])
        .arg(&layer)
        .args(["-t", image]));
}

const WOLFI_OS: &str = "ID=wolfi\nNAME=\"Wolfi\"\nPRETTY_NAME=\"Wolfi\"\nVERSION_ID=\"20230201\"\nHOME_URL=\"https://wolfi.dev\"\n";
const ROCKY_OS: &str = "NAME=\"Rocky Linux\"\nVERSION=\"9.3 (Blue Onyx)\"\nID=\"rocky\"\n\
ID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\nPLATFORM_ID=\"platform:el9\"\n\
CPE_NAME=\"cpe:/o:rocky:rocky:9::baseos\"\n";
const ALMA_OS: &str = "NAME=\"AlmaLinux\"\nVERSION=\"9.4 (Seafoam Ocelot)\"\nID=\"almalinux\"\n\
ID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\nPLATFORM_ID=\"platform:el9\"\n\
CPE_NAME=\"cpe:/o:almalinux:almalinux:9::baseos\"\n";

/// Builds and pushes the three images; returns their references.
fn push_images(host: &str, dir: &Path) -> [String; 3] {
    let wolfi = dir.join("wolfi");
    std::fs::create_dir_all(wolfi.join("lib/apk/db")).expect("dir");
    std::fs::create_dir_all(wolfi.join("etc")).expect("dir");
    std::fs::write(wolfi.join("etc/os-release"), WOLFI_OS).expect("os-release");
    std::fs::write(
        wolfi.join("lib/apk/db/installed"),
        "C:Q1aaa=\nP:libcrypto3\nV:3.3.0-r8\nA:x86_64\no:openssl\n\n\
C:Q1bbb=\nP:busybox\nV:1.36.1-r2\nA:x86_64\no:busybox\n\n",
    )
    .expect("installed");
    let wolfi_ref = format!("{host}/wolfi:1");
    push(&wolfi, &["etc", "lib"], &wolfi_ref);

    // A real rpmdb.sqlite with an epoch-1 openssl-libs and a bash, shared by Rocky and Alma.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-image-tools");
    sh(&mut Command::new(script));
    let top = dir.join("top");
    for (name, epoch, version, release) in [
        ("openssl-libs", Some(1), "3.0.7", "25.el9_3"),
        ("bash", None, "5.1.8", "6.el9_1"),
    ] {
        let spec = dir.join(format!("{name}.spec"));
        std::fs::write(
            &spec,
            format!(
                "Name: {name}\nVersion: {version}\nRelease: {release}\n{}Summary: test\n\
License: MIT\nBuildArch: noarch\n%description\n{name}\n%files\n",
                epoch.map(|e| format!("Epoch: {e}\n")).unwrap_or_default()
            ),
        )
        .expect("spec");
        sh(Command::new("rpmbuild")
            .args(["-bb", "--quiet", "--define"])
            .arg(format!("_topdir {}", top.display()))
            .arg(&spec));
    }
    let rpms: Vec<PathBuf> = std::fs::read_dir(top.join("RPMS/noarch"))
        .expect("rpms")
        .map(|e| e.expect("entry").path())
        .collect();
    let mut refs = vec![wolfi_ref];
    for (name, os) in [("rocky", ROCKY_OS), ("alma", ALMA_OS)] {
        let root = dir.join(name);
        let dbpath = root.join("var/lib/rpm");
        std::fs::create_dir_all(&dbpath).expect("dbpath");
        std::fs::create_dir_all(root.join("etc")).expect("etc");
        std::fs::write(root.join("etc/os-release"), os).expect("os-release");
        sh(Command::new("rpm")
            .arg("--initdb")
            .arg("--dbpath")
            .arg(&dbpath));
        sh(Command::new("rpm")
            .args(["-i", "--justdb", "--nodeps", "--quiet", "--dbpath"])
            .arg(&dbpath)
            .args(&rpms));
        let image = format!("{host}/{name}:1");
        push(&root, &["etc", "var/lib/rpm/rpmdb.sqlite"], &image);
        refs.push(image);
    }
    [refs[0].clone(), refs[1].clone(), refs[2].clone()]
}

fn sbom_file(image: &str, out: &Path) -> BTreeSet<String> {
    let o = custody()
        .args(["sbom", "--image", image, "-o"])
        .arg(out)
        .output()
        .expect("custody runs");
    assert!(o.status.success(), "sbom --image failed: {}", stderr(&o));
    let bom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out).expect("sbom written")).expect("sbom json");
    bom["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["purl"].as_str().map(str::to_owned))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

const WOLFI_PURLS: [&str; 2] = [
    "pkg:apk/wolfi/busybox@1.36.1-r2?arch=x86_64&distro=wolfi-20230201",
    "pkg:apk/wolfi/libcrypto3@3.3.0-r8?arch=x86_64&distro=wolfi-20230201&upstream=openssl",
];
const ROCKY_PURLS: [&str; 2] = [
    "pkg:rpm/rocky/bash@5.1.8-6.el9_1?arch=noarch&distro=rocky-9.3&upstream=bash-5.1.8-6.el9_1.src.rpm",
    "pkg:rpm/rocky/openssl-libs@3.0.7-25.el9_3?arch=noarch&distro=rocky-9.3&epoch=1&upstream=openssl-libs-3.0.7-25.el9_3.src.rpm",
];
const ALMA_PURLS: [&str; 2] = [
    "pkg:rpm/almalinux/bash@5.1.8-6.el9_1?arch=noarch&distro=almalinux-9.4&upstream=bash-5.1.8-6.el9_1.src.rpm",
    "pkg:rpm/almalinux/openssl-libs@3.0.7-25.el9_3?arch=noarch&distro=almalinux-9.4&epoch=1&upstream=openssl-libs-3.0.7-25.el9_3.src.rpm",
];

/// The advisories (OSV format, written here): Wolfi entries name origin packages and order by
/// apk (`_p1` after the release); Rocky and Alma entries name binary rpms per major release
/// and order by rpm (epochs count, `el9_1.1` after `el9_1`). Entries for another family, another
/// release or a version past the fix do not match.
fn write_advisories(db: &Path) {
    let entry = |id: &str, affected: &[(&str, &str, &str)]| {
        let affected: Vec<serde_json::Value> = affected
            .iter()
            .map(|(ecosystem, name, fixed)| {
                serde_json::json!({
                    "package": {"ecosystem": ecosystem, "name": name},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
                })
            })
            .collect();
        let record =
            serde_json::json!({"id": id, "modified": "2025-01-01T00:00:00Z", "affected": affected});
        std::fs::write(db.join(format!("{id}.json")), record.to_string()).expect("advisory");
    };
    entry(
        "CGA-TEST-1",
        &[
            ("Wolfi", "openssl", "3.3.0-r9"),
            ("Alpine:v3.19", "busybox", "9.9.9-r0"),
        ],
    );
    entry("CGA-TEST-2", &[("Wolfi", "busybox", "1.36.1_p1-r0")]);
    entry(
        "RLSA-TEST-1",
        &[
            ("Rocky Linux:9", "openssl-libs", "1:3.0.7-27.el9"),
            ("Rocky Linux:8", "bash", "9.9-1.el8"),
        ],
    );
    entry(
        "ALSA-TEST-1",
        &[
            ("AlmaLinux:9", "bash", "5.1.8-6.el9_1.1"),
            ("AlmaLinux:9", "openssl-libs", "1:3.0.7-24.el9"),
        ],
    );
}

#[test]
fn wolfi_rocky_and_alma_images_are_cataloged_and_scanned_in_their_ecosystems() {
    let registry = support::shared_registry();
    let dir = tempdir();
    let images = push_images(&registry.base, dir.path());
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db).expect("db");
    write_advisories(&db);
    let expected = [
        (
            &images[0],
            set(&WOLFI_PURLS),
            vec![
                ("CGA-TEST-1", WOLFI_PURLS[1]),
                ("CGA-TEST-2", WOLFI_PURLS[0]),
            ],
        ),
        (
            &images[1],
            set(&ROCKY_PURLS),
            vec![("RLSA-TEST-1", ROCKY_PURLS[1])],
        ),
        (
            &images[2],
            set(&ALMA_PURLS),
            vec![("ALSA-TEST-1", ALMA_PURLS[0])],
        ),
    ];
    for (i, (image, purls, findings)) in expected.into_iter().enumerate() {
        let sbom = dir.path().join(format!("sbom{i}.json"));
        assert_eq!(sbom_file(image, &sbom), purls, "{image}");
        let out = custody()
            .args(["--output", "json", "scan"])
            .arg(&sbom)
            .arg("--db")
            .arg(&db)
            .output()
            .expect("custody scan runs");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("scan json ({e}): {}", stderr(&out)));
        let found: BTreeSet<(String, String)> = report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| {
                (
                    f["id"].as_str().unwrap_or("").to_owned(),
                    f["purl"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let want: BTreeSet<(String, String)> = findings
            .iter()
            .map(|(id, purl)| ((*id).to_owned(), (*purl).to_owned()))
            .collect();
        assert_eq!(found, want, "{image}: {report}");
        assert_eq!(report["scanned"], 2, "{image}: {report}");
        assert_eq!(
            report["notScanned"].as_array().map(Vec::len),
            Some(0),
            "{image}: {report}"
        );
    }
}

/// syft (skipped where absent) writes the same purls for the three images.
#[test]
fn syft_writes_the_same_wolfi_rocky_and_alma_purls() {
    let Some(syft) = syft() else {
        return;
    };
    let registry = support::shared_registry();
    let dir = tempdir();
    let images = push_images(&registry.base, dir.path());
    for (i, image) in images.iter().enumerate() {
        let syft_json = syft_scan(&syft, image, dir.path());
        let theirs: BTreeSet<String> = syft_json["artifacts"]
            .as_array()
            .expect("artifacts")
            .iter()
            .filter_map(|a| a["purl"].as_str().map(str::to_owned))
            .collect();
        let ours = sbom_file(image, &dir.path().join(format!("sbom{i}.json")));
        assert_eq!(ours, theirs, "{image}");
    }
}

/// `rescan` reads each artifact's signed SBOM and matches it the same way: the Wolfi, Rocky and
/// AlmaLinux SBOMs (syft's purls) are affected by their own families' advisories only.
#[test]
fn rescan_matches_wolfi_rocky_and_alma_sboms() {
    use custody::evidence::attach::{self, AttachOptions, AttestInput};
    use custody::evidence::attest::PREDICATE_CYCLONEDX;
    use custody::evidence::sign::KeySigner;
    use custody::evidence::sign::keys::SigningKey;

    let dir = tempdir();
    let repo = format!("oci:{}", dir.path().join("layout").display());
    let store = super::gates::open(&repo);
    let key = KeySigner::new(SigningKey::generate_p256().expect("key"));
    for (tag, purls) in [
        ("wolfi", WOLFI_PURLS),
        ("rocky", ROCKY_PURLS),
        ("alma", ALMA_PURLS),
    ] {
        let d = super::verify::put_artifact(store.as_ref(), tag.as_bytes(), tag);
        let components: Vec<(&str, Option<&str>)> = purls.iter().map(|p| (*p, None)).collect();
        attach::attest_artifact(
            store.as_ref(),
            &d,
            AttestInput::Predicate {
                predicate_type: PREDICATE_CYCLONEDX.into(),
                predicate: super::gates::bom(&components),
            },
            &key,
            &AttachOptions::default(),
        )
        .expect("attest");
    }
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db).expect("db");
    write_advisories(&db);
    let out = support::run(&[
        "--output",
        "json",
        "rescan",
        &repo,
        "--db",
        &db.to_string_lossy(),
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", support::stderr(&out)));
    let affected: BTreeSet<(String, String)> = report["affected"]
        .as_array()
        .expect("affected")
        .iter()
        .flat_map(|a| {
            let tag = a["tags"][0].as_str().unwrap_or("").to_owned();
            a["findings"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |f| (tag.clone(), f["id"].as_str().unwrap_or("").to_owned()))
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("alma", "ALSA-TEST-1"),
        ("rocky", "RLSA-TEST-1"),
        ("wolfi", "CGA-TEST-1"),
        ("wolfi", "CGA-TEST-2"),
    ]
    .into_iter()
    .map(|(t, i)| (t.to_owned(), i.to_owned()))
    .collect();
    assert_eq!(affected, want, "{report:#}");
    assert_eq!(report["scanned"], 3, "{report:#}");
}

/// The policy's vulnerability gate at `custody verify` matches the same way: a signed Rocky
/// Linux SBOM with an affected openssl-libs is refused naming the advisory; an AlmaLinux SBOM
/// whose openssl-libs is past Alma's fix (Rocky's entry does not apply to it) passes.
#[test]
fn the_vulnerability_gate_matches_rocky_and_alma_sboms() {
    use custody::evidence::attest::PREDICATE_CYCLONEDX;
    use custody::evidence::sign::KeySigner;
    use custody::evidence::sign::keys::SigningKey;

    let dir = tempdir();
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db).expect("db");
    write_advisories(&db);
    let file = dir.path().join("policy.yaml");
    let key = KeySigner::new(SigningKey::generate_p256().expect("key"));
    std::fs::write(
        &file,
        super::gates::policy_text(
            &key.public_key(),
            "    vulnerabilities:\n      databases: [db]\n",
        ),
    )
    .expect("policy");
    let registry = support::shared_registry();
    let repo = format!("{}/gates/distros", registry.base);
    let store = super::gates::open(&repo);
    for (tag, purls) in [("rocky", &ROCKY_PURLS[..]), ("alma", &ALMA_PURLS[1..])] {
        let d = super::verify::put_artifact(store.as_ref(), tag.as_bytes(), tag);
        super::gates::sign(store.as_ref(), &d, &key);
        let components: Vec<(&str, Option<&str>)> = purls.iter().map(|p| (*p, None)).collect();
        super::gates::attest(
            store.as_ref(),
            &d,
            &key,
            PREDICATE_CYCLONEDX,
            super::gates::bom(&components),
        );
    }
    let policy = file.to_string_lossy().into_owned();
    let out = support::run(&["verify", &format!("{repo}:rocky"), "--policy", &policy]);
    assert_eq!(out.status.code(), Some(1), "{}", support::stderr(&out));
    let text = support::stdout(&out);
    assert!(
        text.contains("RLSA-TEST-1") && text.contains("openssl-libs"),
        "{text}"
    );
    let out = support::run(&["verify", &format!("{repo}:alma"), "--policy", &policy]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        support::stdout(&out),
        support::stderr(&out)
    );
}
