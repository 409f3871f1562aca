//! `custody sbom --image` on real images built here: a Debian root file system from
//! mmdebstrap (Debian's own packages) and a Go binary built in the test, assembled with
//! `crane append` and pushed to a real registry. Oracles: `dpkg-query --admindir` and
//! `go version -m`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::{self, custody, stderr, tempdir, tool};

struct Fixtures {
    /// The root file system tar (mmdebstrap, or this machine's dpkg database as the fallback).
    rootfs: PathBuf,
    /// The dpkg admin dir the oracle reads (extracted from `rootfs`).
    admindir: PathBuf,
    go_bin: PathBuf,
    /// The Go binary at `usr/local/bin/hello`, zstd-compressed tar.
    go_layer: PathBuf,
    /// Whiteouts for `usr/local/bin/hello` and `var/lib/dpkg/status`.
    whiteout_layer: PathBuf,
}

pub(crate) fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?} runs: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn tar_create(out: &Path, root: &Path, paths: &[&str]) {
    sh(Command::new("tar")
        .arg("--numeric-owner")
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(root)
        .args(paths));
}

#[allow(
    clippy::print_stderr,
    reason = "the fallback is worth a line in the test log"
)]
fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-fixtures");
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let rootfs = dir.join("rootfs.tar");
        if !rootfs.is_file() {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-image-tools");
            sh(&mut Command::new(script));
            let partial = dir.join("rootfs.partial.tar");
            let built = Command::new("mmdebstrap")
                .args(["--variant=essential", "--mode=root", "--quiet", "bookworm"])
                .arg(&partial)
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .status()
                .is_ok_and(|s| s.success());
            if built {
                std::fs::rename(&partial, &rootfs).expect("rename rootfs");
            } else {
                // No mirror or no mmdebstrap: this machine's own dpkg database and os-release.
                eprintln!("mmdebstrap failed; using this machine's /var/lib/dpkg instead");
                tar_create(&rootfs, Path::new("/"), &["var/lib/dpkg", "etc/os-release"]);
            }
        }
        let admin_root = dir.join("admin");
        if !admin_root.join("var/lib/dpkg/status").is_file() {
            std::fs::create_dir_all(&admin_root).expect("admin dir");
            let listing = sh(Command::new("tar").arg("-tf").arg(&rootfs));
            let prefix = if listing.lines().any(|l| l.starts_with("./")) {
                "./"
            } else {
                ""
            };
            sh(Command::new("tar")
                .arg("-xf")
                .arg(&rootfs)
                .arg("-C")
                .arg(&admin_root)
                .arg(format!("{prefix}var/lib/dpkg")));
        }

        // A Go program with one dependency, from the module cache (the Go module proxy when
        // the cache lacks it).
        let src = dir.join("hello-src");
        std::fs::create_dir_all(&src).expect("go src");
        std::fs::write(
            src.join("go.mod"),
            "module example.com/hello\n\ngo 1.22\n\nrequire github.com/google/uuid v1.6.0\n",
        )
        .expect("go.mod");
        std::fs::write(
            src.join("main.go"),
            "package main\n\nimport (\n\t\"fmt\"\n\n\t\"github.com/google/uuid\"\n)\n\nfunc main() { fmt.Println(uuid.NewString()) }\n",
        )
        .expect("main.go");
        let go_tree = dir.join("go-tree");
        let go_bin = go_tree.join("usr/local/bin/hello");
        if !go_bin.is_file() {
            std::fs::create_dir_all(go_bin.parent().expect("parent")).expect("bin dir");
            sh(Command::new("go")
                .args(["mod", "tidy"])
                .current_dir(&src)
                .env("GOFLAGS", "-mod=mod"));
            sh(Command::new("go")
                .args(["build", "-trimpath", "-o"])
                .arg(&go_bin)
                .arg(".")
                .current_dir(&src));
        }
        let go_tar = dir.join("go-layer.tar");
        tar_create(&go_tar, &go_tree, &["usr"]);
        let go_layer = dir.join("go-layer.tar.zst");
        sh(Command::new("zstd")
            .args(["-q", "-f"])
            .arg(&go_tar)
            .arg("-o")
            .arg(&go_layer));

        let wh_tree = dir.join("wh-tree");
        std::fs::create_dir_all(wh_tree.join("usr/local/bin")).expect("wh dir");
        std::fs::create_dir_all(wh_tree.join("var/lib/dpkg")).expect("wh dir");
        std::fs::write(wh_tree.join("usr/local/bin/.wh.hello"), b"").expect("whiteout");
        std::fs::write(wh_tree.join("var/lib/dpkg/.wh.status"), b"").expect("whiteout");
        let whiteout_layer = dir.join("whiteout.tar");
        tar_create(
            &whiteout_layer,
            &wh_tree,
            &["usr/local/bin/.wh.hello", "var/lib/dpkg/.wh.status"],
        );
        Fixtures {
            admindir: admin_root.join("var/lib/dpkg"),
            rootfs,
            go_bin,
            go_layer,
            whiteout_layer,
        }
    })
}

pub(crate) fn crane(args: &[&str]) -> String {
    sh(Command::new(tool("crane")).args(args))
}

pub(crate) fn sbom_of(image: &str, extra: &[&str]) -> serde_json::Value {
    let dir = tempdir();
    let out = dir.path().join("sbom.json");
    let o = custody()
        .args(["sbom", "--image", image, "-o"])
        .arg(&out)
        .args(extra)
        .output()
        .expect("custody runs");
    assert!(o.status.success(), "sbom --image failed: {}", stderr(&o));
    // CycloneDX's own strict schema (cyclonedx-python-lib) accepts it.
    if let Some(why) = crate::support::sbom_violations(&out, "1.6") {
        panic!("{why}");
    }
    serde_json::from_slice(&std::fs::read(&out).expect("sbom written")).expect("sbom json")
}

/// The components (none: the key is left out).
pub(crate) fn components(bom: &serde_json::Value) -> &[serde_json::Value] {
    bom["components"].as_array().map_or(&[], Vec::as_slice)
}

pub(crate) fn prop<'a>(c: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    c["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == name)
        .filter_map(|p| p["value"].as_str())
        .collect()
}

fn is_deb(c: &serde_json::Value) -> bool {
    c["purl"]
        .as_str()
        .is_some_and(|p| p.starts_with("pkg:deb/"))
}

pub(crate) fn layer_digests(image: &str) -> Vec<String> {
    let manifest: serde_json::Value =
        serde_json::from_str(&crane(&["manifest", "--insecure", image])).expect("manifest json");
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_owned())
        .collect()
}

/// Pushes rootfs + Go layer, and the same with a whiteout layer on top.
fn push_images(host: &str) -> (String, String) {
    let f = fixtures();
    let base = format!("{host}/debian:1");
    let rootfs = f.rootfs.to_string_lossy().into_owned();
    let go_layer = f.go_layer.to_string_lossy().into_owned();
    crane(&[
        "append",
        "--insecure",
        "--oci-empty-base",
        "-f",
        &rootfs,
        "-f",
        &go_layer,
        "-t",
        &base,
    ]);
    let upper = format!("{host}/debian:wh");
    let wh = f.whiteout_layer.to_string_lossy().into_owned();
    crane(&["append", "--insecure", "-b", &base, "-f", &wh, "-t", &upper]);
    (base, upper)
}

#[test]
fn debian_packages_match_dpkg_query_and_go_modules_match_go_version() {
    let registry = support::shared_registry();
    let (base, _) = push_images(&registry.base);
    let f = fixtures();
    let bom = sbom_of(&base, &[]);
    let layers = layer_digests(&base);
    assert_eq!(layers.len(), 2);

    // dpkg: the installed packages, as dpkg itself lists them.
    let oracle: BTreeSet<String> = sh(Command::new("dpkg-query")
        .arg(format!("--admindir={}", f.admindir.display()))
        .args(["-W", "-f", "${db:Status-Status} ${Package} ${Version}\\n"]))
    .lines()
    .filter_map(|l| l.strip_prefix("installed "))
    .map(str::to_owned)
    .collect();
    assert!(
        oracle.len() > 20,
        "the oracle lists {} packages",
        oracle.len()
    );
    let debs: Vec<&serde_json::Value> = components(&bom).iter().filter(|c| is_deb(c)).collect();
    let ours: BTreeSet<String> = debs
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["name"].as_str().unwrap_or(""),
                c["version"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(ours, oracle);
    for c in &debs {
        let purl = c["purl"].as_str().expect("purl");
        assert!(purl.starts_with("pkg:deb/debian/"), "{purl}");
        assert!(purl.contains("distro=debian-12"), "{purl}");
        assert!(purl.contains("arch="), "{purl}");
        assert_eq!(prop(c, "custody:layer:digest"), vec![layers[0].as_str()]);
        assert_eq!(
            prop(c, "custody:location:path"),
            vec!["/var/lib/dpkg/status"]
        );
    }

    // Go: main module, dependencies with sums, toolchain, as `go version -m` prints them.
    let gov = sh(Command::new("go").arg("version").arg("-m").arg(&f.go_bin));
    let toolchain = gov
        .lines()
        .next()
        .and_then(|l| l.rsplit(": ").next())
        .expect("go version line")
        .trim()
        .to_owned();
    let deps: BTreeSet<(String, String, String)> = gov
        .lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.trim().split('\t').collect();
            (parts.first() == Some(&"dep")).then(|| {
                (
                    parts[1].to_owned(),
                    parts[2].to_owned(),
                    parts.get(3).copied().unwrap_or("").to_owned(),
                )
            })
        })
        .collect();
    assert!(!deps.is_empty(), "{gov}");
    let go_found: BTreeSet<(String, String, String)> = components(&bom)
        .iter()
        .filter(|c| !prop(c, "custody:go:module").is_empty() && c["type"] == "library")
        .map(|c| {
            (
                prop(c, "custody:go:module")[0].to_owned(),
                c["version"].as_str().unwrap_or("").to_owned(),
                prop(c, "custody:go:sum")
                    .first()
                    .copied()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(go_found, deps);
    let main = components(&bom)
        .iter()
        .find(|c| prop(c, "custody:go:module") == vec!["example.com/hello"])
        .expect("main module");
    assert_eq!(prop(main, "custody:go:toolchain"), vec![toolchain.as_str()]);
    assert_eq!(prop(main, "custody:layer:digest"), vec![layers[1].as_str()]);
    assert_eq!(
        prop(main, "custody:location:path"),
        vec!["/usr/local/bin/hello"]
    );
    let stdlib = components(&bom)
        .iter()
        .find(|c| c["name"] == "stdlib")
        .expect("stdlib");
    assert_eq!(stdlib["version"].as_str(), toolchain.strip_prefix("go"));
}

#[test]
fn whiteouts_in_an_upper_layer_remove_packages_and_binaries() {
    let registry = support::shared_registry();
    let (_, upper) = push_images(&registry.base);
    let bom = sbom_of(&upper, &[]);
    let names: Vec<&str> = components(&bom)
        .iter()
        .filter_map(|c| c["purl"].as_str())
        .collect();
    assert!(
        names.is_empty(),
        "the whiteouts hid the status file and the binary, yet: {names:?}"
    );
    // The OS is still known: os-release was not whited out.
    let meta = prop(&bom["metadata"], "custody:os:distro");
    assert_eq!(meta, vec!["debian-12"]);
}

#[test]
fn oci_layout_image_with_a_tampered_layer_names_expected_and_found() {
    let registry = support::shared_registry();
    let (base, _) = push_images(&registry.base);
    let dir = tempdir();
    let layout = dir.path().join("layout");
    crane(&[
        "pull",
        "--insecure",
        "--format=oci",
        &base,
        &layout.to_string_lossy(),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("index json");
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    let reference = format!("oci:{}@{digest}", layout.display());
    // Read as is first: the layout gives the same packages as the registry.
    let from_layout = sbom_of(&reference, &[]);
    let from_registry = sbom_of(&base, &[]);
    let purls = |b: &serde_json::Value| -> BTreeSet<String> {
        components(b)
            .iter()
            .filter_map(|c| c["purl"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(purls(&from_layout), purls(&from_registry));

    // The Go layer's blob, one byte changed: custody refuses it, naming both digests.
    let go_digest = layer_digests(&base)[1].clone();
    let blob = layout
        .join("blobs/sha256")
        .join(go_digest.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).expect("blob");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, &bytes).expect("tamper");
    let out = custody()
        .args(["sbom", "--image", &reference, "-o"])
        .arg(dir.path().join("x.json"))
        .output()
        .expect("custody runs");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&go_digest), "{err}");
    eprintln!("tampered layer: {err}");
    assert!(!dir.path().join("x.json").exists());
}

#[test]
fn index_is_read_per_platform_and_platform_selects_one() {
    let registry = support::shared_registry();
    let (base, _) = push_images(&registry.base);
    let f = fixtures();
    let host = &registry.base;
    let amd64 = format!("{host}/multi:amd64");
    let arm64 = format!("{host}/multi:arm64");
    let index = format!("{host}/multi:index");
    crane(&[
        "mutate",
        "--insecure",
        &base,
        "--set-platform",
        "linux/amd64",
        "-t",
        &amd64,
    ]);
    // The second platform holds only the Go binary (same bytes; the labels are what differ).
    let go_only = format!("{host}/multi:go-only");
    let go_layer = f.go_layer.to_string_lossy().into_owned();
    crane(&[
        "append",
        "--insecure",
        "--oci-empty-base",
        "-f",
        &go_layer,
        "-t",
        &go_only,
    ]);
    crane(&[
        "mutate",
        "--insecure",
        &go_only,
        "--set-platform",
        "linux/arm64",
        "-t",
        &arm64,
    ]);
    crane(&[
        "index",
        "append",
        "--insecure",
        "-m",
        &amd64,
        "-m",
        &arm64,
        "-t",
        &index,
    ]);

    let all = sbom_of(&index, &[]);
    let main = components(&all)
        .iter()
        .find(|c| prop(c, "custody:go:module") == vec!["example.com/hello"])
        .expect("main module");
    assert_eq!(
        prop(main, "custody:platform"),
        vec!["linux/amd64", "linux/arm64"]
    );
    let debs = components(&all).iter().filter(|c| is_deb(c)).count();
    assert!(debs > 20);
    assert!(
        components(&all)
            .iter()
            .filter(|c| is_deb(c))
            .all(|c| prop(c, "custody:platform") == vec!["linux/amd64"])
    );

    let arm = sbom_of(&index, &["--platform", "linux/arm64"]);
    assert_eq!(components(&arm).iter().filter(|c| is_deb(c)).count(), 0);
    assert!(components(&arm).iter().any(|c| c["name"] == "stdlib"));

    let o = custody()
        .args(["sbom", "--image", &index, "--platform", "linux/s390x", "-o"])
        .arg(tempdir().path().join("x.json"))
        .output()
        .expect("custody runs");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no manifest for platform linux/s390x"),
        "{}",
        stderr(&o)
    );
}

/// Distroless keeps one file per package in `status.d/` (no `Status:` line); an opaque marker
/// in an upper layer hides the lower ones, whatever its place in the tar.
#[test]
fn distroless_status_d_and_an_opaque_directory() {
    let registry = support::shared_registry();
    let dir = tempdir();
    let lower = dir.path().join("lower");
    let upper = dir.path().join("upper");
    std::fs::create_dir_all(lower.join("var/lib/dpkg/status.d")).expect("dir");
    std::fs::create_dir_all(lower.join("etc")).expect("dir");
    std::fs::create_dir_all(upper.join("var/lib/dpkg/status.d")).expect("dir");
    std::fs::write(
        lower.join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\n",
    )
    .expect("os-release");
    for (name, version) in [("libc6", "2.36-9+deb12u9"), ("libssl3", "3.0.15-1~deb12u1")] {
        std::fs::write(
            lower.join("var/lib/dpkg/status.d").join(name),
            format!("Package: {name}\nVersion: {version}\nArchitecture: amd64\n"),
        )
        .expect("status.d");
    }
    std::fs::write(
        lower.join("var/lib/dpkg/status.d/libssl3.md5sums"),
        "abc  usr/lib/x\n",
    )
    .expect("md5sums");
    std::fs::write(
        upper.join("var/lib/dpkg/status.d/tzdata"),
        "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n",
    )
    .expect("status.d");
    std::fs::write(upper.join("var/lib/dpkg/status.d/.wh..wh..opq"), "").expect("opaque");
    let lower_tar = dir.path().join("lower.tar");
    let upper_tar = dir.path().join("upper.tar");
    tar_create(&lower_tar, &lower, &["etc", "var"]);
    // The marker after the new file, as the spec's own example has it.
    tar_create(
        &upper_tar,
        &upper,
        &[
            "var/lib/dpkg/status.d/tzdata",
            "var/lib/dpkg/status.d/.wh..wh..opq",
        ],
    );
    let one = format!("{}/distroless:one", registry.base);
    let two = format!("{}/distroless:two", registry.base);
    let lower_s = lower_tar.to_string_lossy().into_owned();
    let upper_s = upper_tar.to_string_lossy().into_owned();
    crane(&[
        "append",
        "--insecure",
        "--oci-empty-base",
        "-f",
        &lower_s,
        "-t",
        &one,
    ]);
    crane(&[
        "append",
        "--insecure",
        "-b",
        &one,
        "-f",
        &upper_s,
        "-t",
        &two,
    ]);

    let purls = |bom: &serde_json::Value| -> Vec<String> {
        components(bom)
            .iter()
            .filter_map(|c| c["purl"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(
        purls(&sbom_of(&one, &[])),
        vec![
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u9?arch=amd64&distro=debian-12",
            "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12",
        ]
    );
    let upper_bom = sbom_of(&two, &[]);
    assert_eq!(
        purls(&upper_bom),
        vec!["pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-12"]
    );
    assert_eq!(
        prop(&components(&upper_bom)[0], "custody:location:path"),
        vec!["/var/lib/dpkg/status.d/tzdata"]
    );
}

/// Alpine: `lib/apk/db/installed` (no Alpine mirror here, so the database is written by hand in
/// apk's own format), `etc/os-release` a symlink to `../usr/lib/os-release` as on Alpine.
#[test]
fn alpine_packages_with_origin_and_distro() {
    let registry = support::shared_registry();
    let dir = tempdir();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("lib/apk/db")).expect("dir");
    std::fs::create_dir_all(root.join("usr/lib")).expect("dir");
    std::fs::create_dir_all(root.join("etc")).expect("dir");
    std::fs::write(
        root.join("usr/lib/os-release"),
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n",
    )
    .expect("os-release");
    std::os::unix::fs::symlink("../usr/lib/os-release", root.join("etc/os-release"))
        .expect("symlink");
    std::fs::write(
        root.join("lib/apk/db/installed"),
        "C:Q1aaa=\nP:musl\nV:1.2.4_git20230717-r4\nA:x86_64\no:musl\nF:lib\nR:ld-musl-x86_64.so.1\n\n\
C:Q1bbb=\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\no:openssl\n\n",
    )
    .expect("installed");
    let layer = dir.path().join("alpine.tar");
    tar_create(&layer, &root, &["etc", "lib", "usr"]);
    let image = format!("{}/alpine:1", registry.base);
    let layer_s = layer.to_string_lossy().into_owned();
    crane(&[
        "append",
        "--insecure",
        "--oci-empty-base",
        "-f",
        &layer_s,
        "-t",
        &image,
    ]);
    let bom = sbom_of(&image, &[]);
    let got: Vec<(String, Vec<&str>)> = components(&bom)
        .iter()
        .map(|c| {
            (
                c["purl"].as_str().unwrap_or("").to_owned(),
                prop(c, "custody:package:source"),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1&upstream=openssl"
                    .to_owned(),
                vec!["openssl"]
            ),
            (
                "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1"
                    .to_owned(),
                vec!["musl"]
            ),
        ]
    );
}

/// A registry that serves other bytes for a layer than its digest names: custody stops with an
/// error naming the digest asked for and the digest of what came, and writes no SBOM.
#[test]
fn a_lying_registry_is_refused_naming_expected_and_found() {
    use crate::support::{HostileServer, Response};
    let sha = |b: &[u8]| {
        use sha2::Digest as _;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
    };
    let honest = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        let status = b"Package: a\nStatus: install ok installed\nVersion: 1\n";
        h.set_size(status.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "var/lib/dpkg/status", &status[..])
            .expect("append");
        b.into_inner().expect("tar")
    };
    let mut lie = honest.clone();
    lie[600] ^= 0x20; // same length, other bytes
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer_digest = sha(&honest);
    let config_digest = sha(&config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": honest.len()}],
    })
    .to_string();
    let (m, c, l, ld, cd) = (
        manifest.clone(),
        config.clone(),
        lie.clone(),
        layer_digest.clone(),
        config_digest.clone(),
    );
    let server = HostileServer::start(move |r| {
        let path = r.path.as_str();
        if path == "/v2/" {
            Response::new(200)
        } else if path.ends_with("/manifests/1") {
            Response::new(200)
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .header("Docker-Content-Digest", &sha(m.as_bytes()))
                .body(m.clone())
        } else if path.ends_with(&format!("/blobs/{cd}")) {
            Response::new(200).body(c.clone())
        } else if path.ends_with(&format!("/blobs/{ld}")) {
            Response::new(200).body(l.clone())
        } else {
            Response::new(404)
        }
    });
    let dir = tempdir();
    let out = dir.path().join("sbom.json");
    let o = custody()
        .args(["sbom", "--image", &format!("{}/lie:1", server.host), "-o"])
        .arg(&out)
        .output()
        .expect("custody runs");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&layer_digest), "{err}");
    assert!(err.contains(&sha(&lie)), "{err}");
    assert!(!out.exists());
}

/// Writes an advisory file into `dir`.
fn advisory(dir: &Path, id: &str, record: serde_json::Value) {
    std::fs::write(dir.join(format!("{id}.json")), record.to_string()).expect("advisory");
}

/// The mmdebstrap image's SBOM scanned against Debian advisories, as the OSV Debian data
/// writes them (source package names, one entry per release). The records carry the facts of
/// the real ones: DSA-5514-1 (glibc, CVE-2023-4911, fixed in bookworm by 2.36-9+deb12u3) and
/// DEBIAN-CVE-2005-2541 (tar, never fixed in any release: Debian rates it unimportant).
/// bookworm's glibc is past the fix, its tar is affected, and entries for other releases and
/// for binary names do not match.
#[test]
fn a_debian_image_is_scanned_by_source_package_and_release() {
    let registry = support::shared_registry();
    let (base, _) = push_images(&registry.base);
    let f = fixtures();
    let bom = sbom_of(&base, &[]);
    // The dpkg cataloger names each binary's source: util-linux for bsdutils (whose binary
    // version has an epoch its source version lacks), glibc for libc6.
    let oracle: BTreeSet<(String, String)> = sh(Command::new("dpkg-query")
        .arg(format!("--admindir={}", f.admindir.display()))
        .args([
            "-W",
            "-f",
            "${db:Status-Status} ${Package} ${source:Package}@${source:Version}\\n",
        ]))
    .lines()
    .filter_map(|l| l.strip_prefix("installed "))
    .filter_map(|l| l.split_once(' '))
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    let sources: BTreeSet<(String, String)> = components(&bom)
        .iter()
        .filter(|c| is_deb(c))
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("").to_owned(),
                prop(c, "custody:package:source")[0].to_owned(),
            )
        })
        .collect();
    assert_eq!(sources, oracle);
    let tar_purl = components(&bom)
        .iter()
        .find(|c| c["name"] == "tar")
        .and_then(|c| c["purl"].as_str())
        .expect("tar installed")
        .to_owned();
    let glibc_version = components(&bom)
        .iter()
        .find(|c| c["name"] == "libc6")
        .and_then(|c| c["version"].as_str())
        .expect("libc6 installed")
        .to_owned();

    let dir = tempdir();
    let sbom = dir.path().join("sbom.json");
    std::fs::write(&sbom, bom.to_string()).expect("sbom");
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db).expect("db dir");
    let range = |fixed: Option<&str>| {
        let mut events = vec![serde_json::json!({"introduced": "0"})];
        if let Some(f) = fixed {
            events.push(serde_json::json!({"fixed": f}));
        }
        serde_json::json!([{"type": "ECOSYSTEM", "events": events}])
    };
    advisory(
        &db,
        "DSA-5514-1",
        serde_json::json!({
            "id": "DSA-5514-1", "modified": "2023-10-03T00:00:00Z", "published": "2023-10-03T00:00:00Z",
            "upstream": ["CVE-2023-4911"], "summary": "glibc - security update",
            "affected": [
                {"package": {"ecosystem": "Debian:11", "name": "glibc"}, "ranges": range(Some("2.31-13+deb11u7"))},
                {"package": {"ecosystem": "Debian:12", "name": "glibc"}, "ranges": range(Some("2.36-9+deb12u3"))},
            ],
        }),
    );
    advisory(
        &db,
        "DEBIAN-CVE-2005-2541",
        serde_json::json!({
            "id": "DEBIAN-CVE-2005-2541", "modified": "2025-01-01T00:00:00Z",
            "upstream": ["CVE-2005-2541"],
            "details": "Tar 1.15.1 does not properly warn the user when extracting setuid or setgid files.",
            "affected": [
                {"package": {"ecosystem": "Debian:11", "name": "tar"}, "ranges": range(None)},
                {"package": {"ecosystem": "Debian:12", "name": "tar"}, "ranges": range(None)},
                {"package": {"ecosystem": "Debian:13", "name": "tar"}, "ranges": range(None)},
            ],
        }),
    );
    // A bookworm fix for a glibc newer than the image's: glibc is affected through libc6's
    // source, not its binary name. Bullseye-only and binary-named entries never match.
    advisory(
        &db,
        "TEST-GLIBC-NEXT",
        serde_json::json!({
            "id": "TEST-GLIBC-NEXT", "modified": "2025-01-01T00:00:00Z",
            "affected": [
                {"package": {"ecosystem": "Debian:12", "name": "glibc"}, "ranges": range(Some(&format!("{glibc_version}+next1")))},
                {"package": {"ecosystem": "Debian:12", "name": "libc6"}, "ranges": range(None)},
                {"package": {"ecosystem": "Debian:11", "name": "coreutils"}, "ranges": range(None)},
            ],
        }),
    );
    let out = custody()
        .args(["--output", "json", "scan"])
        .arg(&sbom)
        .arg("--db")
        .arg(&db)
        .output()
        .expect("custody scan runs");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("scan json ({e}): {}", stderr(&out)));
    let mut found: Vec<(String, String, String)> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["package"].as_str().unwrap_or("").to_owned(),
                f["id"].as_str().unwrap_or("").to_owned(),
                f["purl"].as_str().unwrap_or("").to_owned(),
            )
        })
        .filter(|(_, _, purl)| {
            purl.starts_with("pkg:deb/debian/tar@")
                || purl.starts_with("pkg:deb/debian/libc6@")
                || purl.starts_with("pkg:deb/debian/coreutils@")
        })
        .collect();
    found.sort();
    let libc6_purl = components(&bom)
        .iter()
        .find(|c| c["name"] == "libc6")
        .and_then(|c| c["purl"].as_str())
        .expect("libc6 purl")
        .to_owned();
    assert_eq!(
        found,
        vec![
            (
                "glibc".to_owned(),
                "TEST-GLIBC-NEXT".to_owned(),
                libc6_purl.clone()
            ),
            (
                "tar".to_owned(),
                "DEBIAN-CVE-2005-2541".to_owned(),
                tar_purl.clone()
            ),
        ]
    );
    assert!(
        libc6_purl.contains("upstream=glibc"),
        "the source is in the purl: {libc6_purl}"
    );
    // Every OS package was matched: none lacks a release or a readable version.
    let unscanned_debs: Vec<&serde_json::Value> = report["notScanned"]
        .as_array()
        .expect("notScanned")
        .iter()
        .filter(|n| {
            n["purl"]
                .as_str()
                .is_some_and(|p| p.starts_with("pkg:deb/"))
        })
        .collect();
    assert!(unscanned_debs.is_empty(), "{unscanned_debs:?}");
}

/// `release --image` attests the image with one SBOM: the source tree's lockfile components
/// and what the image contains, each image component with the layer digest and path it was
/// found at. cosign reads the attestation back; `scan` of the image reference reads the same
/// SBOM from its referrer and finds the OS package advisory.
#[test]
fn release_image_merges_the_image_contents_into_the_source_sbom() {
    let registry = support::shared_registry();
    let (base, _) = push_images(&registry.base);
    let layers = layer_digests(&base);
    let dir = tempdir();
    let repo = crate::release::work_tree(dir.path());
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vuln/Cargo.lock");
    std::fs::copy(&lock, repo.join("Cargo.lock")).expect("lockfile");
    for args in [&["add", "Cargo.lock"][..], &["commit", "-q", "-m", "lock"]] {
        sh(Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com"));
    }
    let (key, public) = crate::release::keypair(dir.path());
    let o = crate::release::release_in(&repo, &["--image", &base, "--key", &key]);
    assert!(o.status.success(), "release --image: {}", stderr(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).expect("release json");
    let digest = out["digest"].as_str().expect("digest").to_owned();
    let pinned = format!("{}/debian@{digest}", registry.base);

    // The SBOM as cosign reads it from the attestation.
    let o = Command::new(tool("cosign"))
        .args([
            "verify-attestation",
            "--type",
            "cyclonedx",
            "--key",
            &public,
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            &pinned,
        ])
        .output()
        .expect("cosign runs");
    assert!(
        o.status.success(),
        "cosign verify-attestation: {}",
        stderr(&o)
    );
    let envelope: serde_json::Value = serde_json::from_slice(
        o.stdout
            .split(|b| *b == b'\n')
            .find(|l| !l.is_empty())
            .expect("an envelope"),
    )
    .expect("envelope json");
    use base64::Engine as _;
    let statement: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(envelope["payload"].as_str().expect("payload"))
            .expect("base64"),
    )
    .expect("statement");
    let bom = &statement["predicate"];
    assert_eq!(
        out["sbomComponents"].as_u64(),
        Some(components(bom).len() as u64)
    );
    let cargo: Vec<&serde_json::Value> = components(bom)
        .iter()
        .filter(|c| {
            c["purl"]
                .as_str()
                .is_some_and(|p| p.starts_with("pkg:cargo/"))
        })
        .collect();
    assert!(
        cargo.iter().any(|c| c["name"] == "smallvec"),
        "the lockfile's crates are in the SBOM"
    );
    assert!(
        cargo
            .iter()
            .all(|c| prop(c, "custody:layer:digest").is_empty()),
        "lockfile components were not found in a layer"
    );
    let debs: Vec<&serde_json::Value> = components(bom).iter().filter(|c| is_deb(c)).collect();
    assert!(debs.len() > 20, "{}", debs.len());
    for c in &debs {
        assert_eq!(prop(c, "custody:layer:digest"), vec![layers[0].as_str()]);
        assert_eq!(
            prop(c, "custody:location:path"),
            vec!["/var/lib/dpkg/status"]
        );
    }
    let hello = components(bom)
        .iter()
        .find(|c| prop(c, "custody:go:module") == vec!["example.com/hello"])
        .expect("the Go binary's main module");
    assert_eq!(
        prop(hello, "custody:layer:digest"),
        vec![layers[1].as_str()]
    );
    assert_eq!(
        prop(hello, "custody:location:path"),
        vec!["/usr/local/bin/hello"]
    );
    assert_eq!(
        prop(&bom["metadata"], "custody:image:digest"),
        vec![digest.as_str()]
    );

    // scan reads that SBOM from the image's referrers: Rust and Debian findings together.
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db).expect("db");
    advisory(
        &db,
        "DEBIAN-CVE-2005-2541",
        serde_json::json!({
            "id": "DEBIAN-CVE-2005-2541", "modified": "2025-01-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "tar"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}],
        }),
    );
    let rustsec = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/osv/crates.io/RUSTSEC-2019-0009.json");
    let o = custody()
        .args(["--output", "json", "scan", &pinned, "--db"])
        .arg(&db)
        .arg("--db")
        .arg(&rustsec)
        .output()
        .expect("custody scan runs");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("scan json ({e}): {}", stderr(&o)));
    let ids: BTreeSet<(&str, &str)> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["package"].as_str().unwrap_or(""),
                f["id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([
            ("smallvec", "RUSTSEC-2019-0009"),
            ("tar", "DEBIAN-CVE-2005-2541")
        ])
    );
}

/// A real rpm database, built here by Debian's `rpm` (SQLite backend) from packages `rpmbuild`
/// made: the cataloger lists what `rpm -qa --dbpath` lists, with epoch, arch and source rpm;
/// one header is large enough to spill to SQLite overflow pages. A Berkeley DB `Packages` file
/// is reported unread. Truncated and bit-flipped databases give errors, never panics.
#[test]
fn rpm_sqlite_packages_match_rpm_query() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-image-tools");
    sh(&mut Command::new(script));
    let registry = support::shared_registry();
    let dir = tempdir();
    let top = dir.path().join("top");
    let long = "A long description line for an rpm header that spills over pages.\n".repeat(400);
    for (name, epoch, version, release, extra) in [
        ("alpha", Some(2), "1.2.3", "4.el9", ""),
        ("beta-Tools", None, "0.9~rc1", "1.el9_3", long.as_str()),
        ("gamma", Some(0), "2024.1", "7", ""),
    ] {
        let spec = dir.path().join(format!("{name}.spec"));
        std::fs::write(
            &spec,
            format!(
                "Name: {name}\nVersion: {version}\nRelease: {release}\n{}Summary: test\n\
License: MIT\nBuildArch: noarch\n%description\n{name}\n{extra}\n%files\n",
                epoch.map(|e| format!("Epoch: {e}\n")).unwrap_or_default()
            ),
        )
        .expect("spec");
        sh(Command::new("rpmbuild")
            .args(["-bb", "--quiet", "--define"])
            .arg(format!("_topdir {}", top.display()))
            .arg(&spec));
    }
    let root = dir.path().join("root");
    let dbpath = root.join("var/lib/rpm");
    std::fs::create_dir_all(&dbpath).expect("dbpath");
    std::fs::create_dir_all(root.join("etc")).expect("etc");
    std::fs::create_dir_all(root.join("usr/lib/sysimage/rpm")).expect("sysimage");
    std::fs::write(
        root.join("etc/os-release"),
        "NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nVERSION_ID=\"9.4\"\n",
    )
    .expect("os-release");
    std::fs::write(
        root.join("usr/lib/sysimage/rpm/Packages"),
        b"\0\x06\x15\x61",
    )
    .expect("bdb");
    sh(Command::new("rpm")
        .arg("--initdb")
        .arg("--dbpath")
        .arg(&dbpath));
    let rpms: Vec<PathBuf> = std::fs::read_dir(top.join("RPMS/noarch"))
        .expect("rpms")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(rpms.len(), 3);
    sh(Command::new("rpm")
        .args(["-i", "--justdb", "--nodeps", "--quiet", "--dbpath"])
        .arg(&dbpath)
        .args(&rpms));
    let db_bytes = std::fs::read(dbpath.join("rpmdb.sqlite")).expect("rpmdb.sqlite");
    let oracle: BTreeSet<String> = sh(Command::new("rpm")
        .args(["-qa", "--dbpath"])
        .arg(&dbpath)
        .args([
            "--qf",
            "%{NAME} %{EPOCH} %{VERSION}-%{RELEASE} %{ARCH} %{SOURCERPM}\\n",
        ]))
    .lines()
    .map(str::to_owned)
    .collect();
    assert_eq!(oracle.len(), 3, "{oracle:?}");

    let layer = dir.path().join("rpm.tar");
    tar_create(&layer, &root, &["etc", "var/lib/rpm/rpmdb.sqlite", "usr"]);
    let image = format!("{}/ubi:1", registry.base);
    let layer_s = layer.to_string_lossy().into_owned();
    crane(&[
        "append",
        "--insecure",
        "--oci-empty-base",
        "-f",
        &layer_s,
        "-t",
        &image,
    ]);
    let bom = sbom_of(&image, &[]);
    let rpm_components: Vec<&serde_json::Value> = components(&bom)
        .iter()
        .filter(|c| {
            c["purl"]
                .as_str()
                .is_some_and(|p| p.starts_with("pkg:rpm/"))
        })
        .collect();
    let ours: BTreeSet<String> = rpm_components
        .iter()
        .map(|c| {
            let purl = c["purl"].as_str().unwrap_or("");
            let q = |k: &str| {
                purl.split(['?', '&'])
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .map(|v| v.replace("%7E", "~"))
            };
            let version = c["version"].as_str().unwrap_or("");
            let version = version.split_once(':').map_or(version, |(_, v)| v);
            format!(
                "{} {} {} {} {}",
                c["name"].as_str().unwrap_or(""),
                q("epoch").unwrap_or_else(|| "(none)".to_owned()),
                version,
                q("arch").unwrap_or_default(),
                prop(c, "custody:package:source")
                    .first()
                    .copied()
                    .unwrap_or("(none)")
            )
        })
        .collect();
    assert_eq!(ours, oracle);
    assert!(
        rpm_components.iter().any(|c| c["purl"]
            == "pkg:rpm/redhat/alpha@1.2.3-4.el9?arch=noarch&distro=rhel-9.4&epoch=2&upstream=alpha-1.2.3-4.el9.src.rpm"),
        "{rpm_components:?}"
    );
    assert!(
        rpm_components.iter().any(|c| c["name"] == "beta-Tools"
            && c["purl"]
                .as_str()
                .is_some_and(|p| p.contains("/beta-Tools@"))),
        "rpm names keep their case"
    );
    assert!(
        prop(&bom["metadata"], "custody:unread")
            .iter()
            .any(|u| u.starts_with("/usr/lib/sysimage/rpm/Packages: rpm berkeley db")),
        "{:?}",
        prop(&bom["metadata"], "custody:unread")
    );

    // The same bytes, damaged: errors, never panics.
    use custody::evidence::sbom::image::rpmdb;
    assert_eq!(rpmdb::read(&db_bytes).map(|p| p.len()), Ok(3));
    for cut in (0..db_bytes.len()).step_by(509) {
        let _ = rpmdb::read(&db_bytes[..cut]);
    }
    let mut rng = fastrand::Rng::with_seed(13);
    for _ in 0..2000 {
        let mut b = db_bytes.clone();
        for _ in 0..rng.usize(1..4) {
            let i = rng.usize(..b.len());
            b[i] ^= 1 << rng.u8(0..8);
        }
        let _ = rpmdb::read(&b);
    }
}

/// syft (the peer tool, `scripts/get-syft`; not built in CI, where it takes too long) reads
/// the same image: the package sets agree purl for purl. The one difference, explained and
/// normalised here: syft writes `distro=debian-12.15`, completing os-release's `VERSION_ID=12`
/// from `/etc/debian_version` (syft 1.41 and later); custody writes os-release's own value, as
/// the purl spec's `distro` examples and OSV's `Debian:12` ecosystem name do.
#[test]
fn syft_finds_the_same_packages() {
    let Some(syft) = syft() else {
        return;
    };
    let registry = support::shared_registry();
    let (base, _) = push_images(&registry.base);
    let dir = tempdir();
    let syft_json = syft_scan(&syft, &base, dir.path());
    // syft encodes `:` in versions (`1%3A…`), which the purl spec leaves as it is.
    let theirs: BTreeSet<String> = syft_json["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .filter_map(|a| a["purl"].as_str())
        .map(|p| {
            let p = p.replace("%3A", ":");
            // `distro=debian-12.N` → `distro=debian-12`.
            match p.split_once("distro=debian-12.") {
                Some((head, tail)) => {
                    let rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
                    format!("{head}distro=debian-12{rest}")
                }
                None => p,
            }
        })
        .collect();
    let bom = sbom_of(&base, &[]);
    let ours: BTreeSet<String> = components(&bom)
        .iter()
        .filter_map(|c| c["purl"].as_str().map(str::to_owned))
        .collect();
    assert!(ours.len() > 60, "{}", ours.len());
    let only_ours: Vec<&String> = ours.difference(&theirs).collect();
    let only_theirs: Vec<&String> = theirs.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only custody: {only_ours:?}\nonly syft: {only_theirs:?}"
    );
}

/// syft, when installed (`scripts/get-syft`; CI does not build it): `None` after a line in the
/// test log when it is absent.
#[allow(
    clippy::print_stderr,
    reason = "a skipped oracle is worth a line in the test log"
)]
pub(crate) fn syft() -> Option<PathBuf> {
    let syft = crate::support::tools_bin().join("syft");
    if syft.is_file() {
        Some(syft)
    } else {
        eprintln!("skipped: syft is not installed (scripts/get-syft builds it)");
        None
    }
}

/// What `syft` reads in `image` (pulled into an OCI layout under `dir`): its syft-json output.
pub(crate) fn syft_scan(syft: &Path, image: &str, dir: &Path) -> serde_json::Value {
    let layout = tempfile::tempdir_in(dir).expect("layout dir");
    crane(&[
        "pull",
        "--insecure",
        "--format=oci",
        image,
        &layout.path().to_string_lossy(),
    ]);
    let out = layout.path().join("syft.json");
    sh(Command::new(syft)
        .arg("scan")
        .arg(format!("oci-dir:{}", layout.path().display()))
        .arg("-q")
        .arg("-o")
        .arg(format!("syft-json={}", out.display()))
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false"));
    serde_json::from_slice(&std::fs::read(&out).expect("syft output")).expect("json")
}
