//! Multi-platform images signed as a whole: `sign --recursive` / `attest --recursive` on an
//! index, `release --image` of an index (evidence of its own on every platform), BuildKit's
//! statements adopted by `release --adopt-buildkit`, and cosign reading each platform's
//! signature both ways. Key mode, offline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use custody::evidence::attach;
use custody::evidence::buildkit;
use custody::foundation::digest::Digest;
use custody::foundation::oci::{
    self, Descriptor, ImageIndex, ImageManifest, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_INDEX,
    MEDIA_TYPE_IMAGE_MANIFEST, Platform,
};
use custody::foundation::reference::Reference;
use custody::storage::store::{self, BlobSource, FetchedManifest, Store};

use crate::buildkit::{buildkit_statement, put_attestation_manifest};
use crate::support::{self, SharedRegistry, stderr, stdout, tool};
use crate::verify::put_artifact;

const PASSWORD: &str = "recursive-pw";
const SLSA_V02: &str = "https://slsa.dev/provenance/v0.2";
const SPDX: &str = "https://spdx.dev/Document";

fn open(repo: &str) -> Box<dyn Store> {
    store::open(
        &repo.parse::<Reference>().unwrap(),
        &store::Options::default(),
    )
    .unwrap()
}

fn custody(dir: &Path, args: &[&str]) -> Output {
    support::custody()
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", PASSWORD)
        .output()
        .expect("custody runs")
}

fn custody_ok(dir: &Path, args: &[&str]) -> String {
    let o = custody(dir, args);
    assert!(
        o.status.success(),
        "custody {args:?} failed ({:?}):\n{}\n{}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn custody_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = custody_ok(dir, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// cosign, offline (private TUF folder and HOME), password from the environment.
fn cosign(dir: &Path, args: &[&str]) -> Output {
    Command::new(tool("cosign"))
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("TUF_ROOT", dir.join("tuf"))
        .env("HOME", dir)
        .output()
        .expect("cosign runs")
}

fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// `custody keygen` in `dir`: (private, public) key paths as strings.
fn keygen(dir: &Path) -> (String, String) {
    custody_ok(dir, &["keygen", "--output-key-prefix", "signer"]);
    let s = |p: PathBuf| p.to_str().unwrap().to_owned();
    (s(dir.join("signer.key")), s(dir.join("signer.pub")))
}

fn linux(arch: &str) -> Platform {
    Platform {
        architecture: arch.into(),
        os: "linux".into(),
        variant: None,
        os_version: None,
    }
}

fn on(d: &Descriptor, platform: Platform) -> Descriptor {
    let mut d = d.clone();
    d.platform = Some(platform);
    d
}

/// The index entry of a BuildKit attestation manifest describing `platform`.
fn attestation_entry(att: &Descriptor, platform: &Digest) -> Descriptor {
    let mut a = on(
        att,
        Platform {
            architecture: "unknown".into(),
            os: "unknown".into(),
            variant: None,
            os_version: None,
        },
    );
    a.annotations.insert(
        buildkit::REFERENCE_TYPE.into(),
        buildkit::ATTESTATION_MANIFEST.into(),
    );
    a.annotations
        .insert(buildkit::REFERENCE_DIGEST.into(), platform.to_string());
    a
}

/// An index of `entries`, tagged `tag`.
fn put_index(store: &dyn Store, entries: Vec<Descriptor>, tag: &str) -> Descriptor {
    let index = ImageIndex {
        manifests: entries,
        ..ImageIndex::empty()
    };
    let bytes = oci::to_bytes(&index);
    let d = store.put_manifest(&bytes, MEDIA_TYPE_IMAGE_INDEX).unwrap();
    let fetched = FetchedManifest::check(
        "index",
        bytes,
        Some(MEDIA_TYPE_IMAGE_INDEX),
        Some(&d.digest),
    )
    .unwrap();
    store.tag(&tag.parse().unwrap(), &fetched).unwrap();
    d
}

/// A one-layer image for `arch` whose dpkg database lists `package` (Debian 12).
fn put_image(store: &dyn Store, arch: &str, package: &str) -> Descriptor {
    let status = format!(
        "Package: {package}\nStatus: install ok installed\nVersion: 1.0-1\nArchitecture: {arch}\n\n"
    );
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("var/lib/dpkg/status", status.as_bytes()),
        (
            "etc/os-release",
            b"ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n".as_slice(),
        ),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        tar.append_data(&mut header, path, data).unwrap();
    }
    let layer_bytes = tar.into_inner().unwrap();
    let layer = Descriptor::of("application/vnd.oci.image.layer.v1.tar", &layer_bytes);
    store
        .put_blob(&layer, BlobSource::Bytes(&layer_bytes))
        .unwrap();
    let config_bytes = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer.digest.to_string()]},
    }))
    .unwrap();
    let config = Descriptor::of(MEDIA_TYPE_IMAGE_CONFIG, &config_bytes);
    store
        .put_blob(&config, BlobSource::Bytes(&config_bytes))
        .unwrap();
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
        artifact_type: None,
        config,
        layers: vec![layer],
        subject: None,
        annotations: BTreeMap::new(),
    };
    store
        .put_manifest(&oci::to_bytes(&m), MEDIA_TYPE_IMAGE_MANIFEST)
        .unwrap()
}

fn digests(list: &serde_json::Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|m| m[field].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The statement inside the first DSSE envelope `cosign verify-attestation` printed.
fn cosign_statement(o: &Output) -> serde_json::Value {
    let envelope: serde_json::Value =
        serde_json::from_str(stdout(o).lines().next().expect("an envelope")).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap()
}

/// Whether a platform of a verify report passed only because its index covers it.
fn covered_only(platform: &serde_json::Value) -> bool {
    platform["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == custody::decisions::verify::COVERED_BY_INDEX)
}

/// `sign --recursive` signs the index and each platform (not BuildKit's attestation manifest),
/// each with its own referrer and `.sig`; cosign verifies every platform by digest, in bundle
/// and legacy mode, on both registry kinds; `attest --recursive` gives each its own statement;
/// `custody verify --platform` finds each platform signed on its own.
#[test]
fn sign_recursive_signs_every_platform_and_cosign_verifies_each() {
    let dir = support::tempdir();
    let d = dir.path();
    let (key, public) = keygen(d);
    for (registry, api) in [
        (support::shared_registry(), false),
        (support::shared_referrers_registry(), true),
    ] {
        let SharedRegistry { base, .. } = registry;
        let repo = format!("{base}/app/multi");
        let store = open(&repo);
        let amd = put_artifact(store.as_ref(), b"amd64 image", "amd64");
        let arm = put_artifact(store.as_ref(), b"arm64 image", "arm64");
        let att = put_attestation_manifest(store.as_ref(), &amd.digest);
        let idx = put_index(
            store.as_ref(),
            vec![
                on(&amd, linux("amd64")),
                on(&arm, linux("arm64")),
                attestation_entry(&att, &amd.digest),
            ],
            "multi",
        );
        let tagged = format!("{repo}:multi");

        let signed = custody_json(
            d,
            &[
                "sign",
                &tagged,
                "--recursive",
                "--key",
                &key,
                "--legacy-cosign-tags",
            ],
        );
        support::validate_against_schema("sign-report.schema.json#/$defs/attachment", &signed);
        assert_eq!(signed["subject"]["digest"], idx.digest.to_string());
        let manifests = &signed["manifests"];
        assert_eq!(
            digests(manifests, "digest"),
            [&idx.digest, &amd.digest, &arm.digest].map(|d| d.to_string())
        );
        assert_eq!(
            manifests
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["platform"].clone())
                .collect::<Vec<_>>(),
            [
                serde_json::Value::Null,
                "linux/amd64".into(),
                "linux/arm64".into()
            ]
        );
        assert_eq!(
            signed["skipped"],
            serde_json::json!([{
                "digest": att.digest,
                "parent": idx.digest,
                "reason": "buildkit-attestation",
                "describes": amd.digest,
            }])
        );
        for m in manifests.as_array().unwrap() {
            let digest = m["digest"].as_str().unwrap();
            assert_eq!(m["referrerOutcome"], "created", "{m}");
            assert_eq!(
                m["legacy"][0]["tag"],
                format!("{}.sig", digest.replace(':', "-"))
            );
        }

        // Again, in words: nothing new, and the skip is said.
        let human = custody_ok(d, &["sign", &tagged, "--recursive", "--key", &key]);
        assert!(
            human.contains(&format!(
                "{} linux/arm64: referrer {} (already present)",
                arm.digest,
                manifests[2]["referrer"].as_str().unwrap()
            )),
            "{human}"
        );
        assert!(
            human.contains(&format!(
                "skipped {}: buildkit attestation manifest for {}",
                att.digest, amd.digest
            )) && human.contains("cosign --recursive signs it, custody does not"),
            "{human}"
        );

        // cosign verifies each platform by digest: the v3 bundle, and the legacy .sig.
        for platform in [&amd, &arm] {
            let pinned = format!("{repo}@{}", platform.digest);
            for format in ["--new-bundle-format=true", "--new-bundle-format=false"] {
                let o = cosign(
                    d,
                    &[
                        "verify",
                        "--key",
                        &public,
                        "--insecure-ignore-tlog=true",
                        "--allow-http-registry",
                        format,
                        &pinned,
                    ],
                );
                assert_ok(&o, &format!("cosign verify {format} {pinned} (api: {api})"));
                let claims: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                assert_eq!(
                    claims[0]["critical"]["image"]["docker-manifest-digest"],
                    platform.digest.to_string()
                );
            }
        }
        let o = cosign(
            d,
            &[
                "verify",
                "--key",
                &public,
                "--insecure-ignore-tlog=true",
                "--allow-http-registry",
                &format!("{repo}@{}", att.digest),
            ],
        );
        assert!(
            !o.status.success(),
            "cosign found a signature on the attestation manifest custody skipped"
        );

        // attest --recursive: one statement per manifest, each naming its own.
        let predicate = d.join("predicate.json");
        std::fs::write(&predicate, br#"{"buildType":"https://example.com/build"}"#).unwrap();
        let attested = custody_json(
            d,
            &[
                "attest",
                &tagged,
                "--recursive",
                "--predicate",
                predicate.to_str().unwrap(),
                "--type",
                "slsaprovenance1",
                "--key",
                &key,
            ],
        );
        support::validate_against_schema("sign-report.schema.json#/$defs/attachment", &attested);
        assert_eq!(
            digests(&attested["manifests"], "digest"),
            digests(manifests, "digest")
        );
        let o = cosign(
            d,
            &[
                "verify-attestation",
                "--key",
                &public,
                "--type",
                "slsaprovenance1",
                "--insecure-ignore-tlog=true",
                "--allow-http-registry",
                &format!("{repo}@{}", arm.digest),
            ],
        );
        assert_ok(&o, "cosign verify-attestation of the arm64 manifest");
        let statement = cosign_statement(&o);
        assert_eq!(
            statement["subject"][0]["digest"]["sha256"],
            arm.digest.hex()
        );

        // custody: each platform verifies on its own signature and attestation.
        let verify = |extra: &[&str]| {
            let mut args = vec![
                "--output",
                "json",
                "verify",
                &tagged,
                "--key",
                &public,
                "--require-attestation",
                "https://slsa.dev/provenance/v1",
            ];
            args.extend_from_slice(extra);
            let o = custody(d, &args);
            assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
            serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()
        };
        let report = verify(&["--platform", "linux/arm64"]);
        let platforms = report["artifact"]["platforms"].as_array().unwrap();
        assert_eq!(platforms.len(), 1);
        assert_eq!(platforms[0]["digest"], arm.digest.to_string());
        assert!(!covered_only(&platforms[0]), "{report:#}");
        let report = verify(&[]);
        let platforms = report["artifact"]["platforms"].as_array().unwrap();
        assert_eq!(platforms.len(), 2);
        assert!(
            platforms
                .iter()
                .all(|p| p["verified"] == true && !covered_only(p))
        );
    }
}

/// An index too wide or too deep is refused (exit 1) before anything is signed.
#[test]
fn hostile_indexes_are_refused_by_sign_recursive() {
    // A layout: a registry refuses an index naming manifests it does not hold.
    let dir = support::tempdir();
    let d = dir.path();
    let (key, _) = keygen(d);
    let repo = format!("oci:{}", d.join("layout").display());
    let store = open(&repo);
    let image = put_artifact(store.as_ref(), b"one image", "one");

    // Thousands of entries naming manifests that do not exist: refused on the listing.
    let limit = attach::recursive::MAX_MANIFESTS;
    let phantom: Vec<Descriptor> = (0..2000)
        .map(|i| {
            Descriptor::new(
                MEDIA_TYPE_IMAGE_MANIFEST,
                Digest::of(format!("phantom {i}").as_bytes()),
                100,
            )
        })
        .collect();
    let wide = put_index(store.as_ref(), phantom, "wide");
    let o = custody(
        d,
        &[
            "sign",
            &format!("{repo}:wide"),
            "--recursive",
            "--key",
            &key,
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "index {} lists 2000 manifests; the limit is {limit}",
            wide.digest
        )),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("nothing was signed"), "{}", stderr(&o));

    // Indexes nested past the limit.
    let mut nested = put_index(store.as_ref(), vec![on(&image, linux("amd64"))], "n0");
    for i in 0..=attach::recursive::MAX_DEPTH {
        nested = put_index(store.as_ref(), vec![nested], &format!("n{}", i + 1));
    }
    let o = custody(
        d,
        &[
            "attest",
            &format!("{repo}@{}", nested.digest),
            "--recursive",
            "--predicate",
            "/dev/null",
            "--key",
            &key,
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "nests indexes {} deep below the one named; the limit is {}",
            attach::recursive::MAX_DEPTH + 1,
            attach::recursive::MAX_DEPTH
        )),
        "{}",
        stderr(&o)
    );
    for refused in [&wide.digest, &nested.digest, &image.digest] {
        let found = attach::discover(store.as_ref(), refused).unwrap();
        assert!(found.bundles.is_empty(), "{refused} was signed");
    }

    // The help says what is skipped and where the limits are.
    let help = custody_ok(d, &["sign", "--help"]);
    assert!(
        help.contains("BuildKit attestation manifests") && help.contains(&limit.to_string()),
        "{help}"
    );
}

/// What `cosign sign --recursive` writes (every child, the attestation manifest too) is
/// accepted by `custody verify` for each platform, by digest and through the index.
#[test]
fn custody_verifies_each_platform_cosign_sign_recursive_wrote() {
    let dir = support::tempdir();
    let d = dir.path();
    let (key, public) = keygen(d);
    for registry in [
        support::shared_registry(),
        support::shared_referrers_registry(),
    ] {
        let repo = format!("{}/app/by-cosign", registry.base);
        let store = open(&repo);
        let amd = put_artifact(store.as_ref(), b"amd64 by cosign", "amd64");
        let arm = put_artifact(store.as_ref(), b"arm64 by cosign", "arm64");
        let att = put_attestation_manifest(store.as_ref(), &arm.digest);
        let idx = put_index(
            store.as_ref(),
            vec![
                on(&amd, linux("amd64")),
                on(&arm, linux("arm64")),
                attestation_entry(&att, &arm.digest),
            ],
            "multi",
        );
        let o = cosign(
            d,
            &[
                "sign",
                "--recursive",
                "--key",
                &key,
                "--tlog-upload=false",
                "--use-signing-config=false",
                "--allow-http-registry",
                "--yes",
                &format!("{repo}@{}", idx.digest),
            ],
        );
        assert_ok(&o, "cosign sign --recursive");
        for platform in [&amd, &arm] {
            let o = custody(
                d,
                &[
                    "--output",
                    "json",
                    "verify",
                    &format!("{repo}@{}", platform.digest),
                    "--key",
                    &public,
                ],
            );
            assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
        }
        let o = custody(
            d,
            &[
                "--output",
                "json",
                "verify",
                &format!("{repo}:multi"),
                "--key",
                &public,
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
        let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let platforms = report["artifact"]["platforms"].as_array().unwrap();
        assert_eq!(
            digests(&report["artifact"]["platforms"], "digest"),
            [&amd.digest, &arm.digest].map(|d| d.to_string()),
            "the attestation manifest cosign signed is still no platform"
        );
        assert!(platforms.iter().all(|p| !covered_only(p)), "{report:#}");
    }
}

/// A multi-platform image: the index and two platforms, each with BuildKit's provenance and
/// SPDX statements in an attestation manifest. Returns (index, amd64, arm64).
fn buildkit_image(store: &dyn Store, tag: &str) -> (Descriptor, Descriptor, Descriptor) {
    let amd = put_image(store, "amd64", "libamd");
    let arm = put_image(store, "arm64", "libarm");
    let amd_att = put_attestation_manifest(store, &amd.digest);
    let arm_att = put_attestation_manifest(store, &arm.digest);
    let idx = put_index(
        store,
        vec![
            on(&amd, linux("amd64")),
            on(&arm, linux("arm64")),
            attestation_entry(&amd_att, &amd.digest),
            attestation_entry(&arm_att, &arm.digest),
        ],
        tag,
    );
    (idx, amd, arm)
}

fn kinds(referrers: &serde_json::Value) -> Vec<String> {
    digests(referrers, "kind")
}

/// `release --image` of an index: the index gets its signature and provenance, each platform
/// its own signature, provenance and SBOM of what it contains; `verify` (whole and
/// `--platform`) finds each platform verified on its own. BuildKit's v0.2 provenance counts
/// only once `--adopt-buildkit` signed it.
#[test]
fn release_of_an_index_gives_every_platform_its_own_evidence_and_adopts_buildkit() {
    let registry = support::shared_referrers_registry();
    let dir = support::tempdir();
    let work = crate::release::work_tree(dir.path());
    let (key, public) = crate::release::keypair(dir.path());
    let repo = format!("{}/acme/img", registry.base);
    let store = open(&repo);
    let (idx, amd, arm) = buildkit_image(store.as_ref(), "1.0");
    let image = format!("{repo}:1.0");

    let o = crate::release::release_in(&work, &["--image", &image, "--key", &key]);
    assert!(o.status.success(), "release --image: {}", stderr(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    support::validate_against_schema("release-report.schema.json", &out);
    assert_eq!(out["digest"], idx.digest.to_string());
    assert_eq!(out["verified"], true);
    assert_eq!(kinds(&out["referrers"]), ["signature", "provenance"]);
    let platforms = out["platforms"].as_array().unwrap();
    assert_eq!(
        digests(&out["platforms"], "digest"),
        [&amd.digest, &arm.digest].map(|d| d.to_string())
    );
    assert_eq!(
        digests(&out["platforms"], "platform"),
        ["linux/amd64", "linux/arm64"]
    );
    for p in platforms {
        assert_eq!(
            kinds(&p["referrers"]),
            ["signature", "provenance", "sbom"],
            "{p}"
        );
        assert_eq!(p["parent"], idx.digest.to_string());
    }
    assert!(
        out.get("adopted").is_none(),
        "nothing adopted unless asked: {out}"
    );
    let verification = &out["verification"]["artifact"]["platforms"];
    assert!(
        verification
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["verified"] == true && !covered_only(p)),
        "the self-check verified every platform on its own: {verification:#}"
    );

    // Each platform's SBOM is its own image's contents, as cosign reads it.
    for (platform, mine, theirs) in [(&amd, "libamd", "libarm"), (&arm, "libarm", "libamd")] {
        let o = cosign(
            dir.path(),
            &[
                "verify-attestation",
                "--key",
                &public,
                "--type",
                "cyclonedx",
                "--insecure-ignore-tlog=true",
                "--allow-http-registry",
                &format!("{repo}@{}", platform.digest),
            ],
        );
        assert_ok(
            &o,
            "cosign verify-attestation --type cyclonedx of a platform",
        );
        let statement = cosign_statement(&o);
        assert_eq!(
            statement["subject"][0]["digest"]["sha256"],
            platform.digest.hex()
        );
        let names: Vec<&str> = statement["predicate"]["components"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert!(
            names.contains(&mine) && !names.contains(&theirs),
            "{names:?}"
        );
    }

    // verify, whole and per platform, with SBOM and provenance required.
    let verify_at = |reference: &str, extra: &[&str]| {
        let mut args = vec![
            "--output",
            "json",
            "verify",
            reference,
            "--key",
            &public,
            "--require-provenance",
            "--require-sbom",
        ];
        args.extend_from_slice(extra);
        let o = custody(dir.path(), &args);
        let report: serde_json::Value =
            serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
        (o.status.code(), report)
    };
    let verify = |extra: &[&str]| verify_at(&image, extra);
    let (code, report) = verify(&[]);
    assert_eq!(code, Some(0), "{report:#}");
    assert!(
        report["artifact"]["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["verified"] == true && !covered_only(p)),
        "{report:#}"
    );
    for platform in ["linux/amd64", "linux/arm64"] {
        let (code, report) = verify(&["--platform", platform]);
        assert_eq!(code, Some(0), "{report:#}");
        let p = &report["artifact"]["platforms"][0];
        assert_eq!(p["platform"], platform);
        assert!(p["verified"] == true && !covered_only(p), "{report:#}");
    }

    // BuildKit's provenance (v0.2) about each platform is there, unsigned: it does not count.
    let require_v02 = ["--require-attestation", SLSA_V02];
    for platform in [&amd, &arm] {
        let (code, report) = verify_at(&format!("{repo}@{}", platform.digest), &require_v02);
        assert_eq!(
            code,
            Some(1),
            "unsigned buildkit provenance counted: {report:#}"
        );
        assert!(
            report["artifact"]["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["kind"] == "required-attestation" && c["status"] == "fail"),
            "{report:#}"
        );
    }

    // Adopted: signed by the release key and attached to each platform, it counts. The rest
    // was released already and is found, not attached again.
    let o = crate::release::release_in(
        &work,
        &["--image", &image, "--key", &key, "--adopt-buildkit"],
    );
    assert!(
        o.status.success(),
        "release --adopt-buildkit: {}",
        stderr(&o)
    );
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    support::validate_against_schema("release-report.schema.json", &out);
    assert_eq!(out["alreadyReleased"], true);
    let adopted: Vec<(String, String)> = out["adopted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["platform"].as_str().unwrap().to_owned(),
                a["predicateType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = |d: &Descriptor| {
        [
            (d.digest.to_string(), SLSA_V02.to_owned()),
            (d.digest.to_string(), SPDX.to_owned()),
        ]
    };
    assert_eq!(adopted, [expect(&amd), expect(&arm)].concat());
    for platform in [&amd, &arm] {
        let (code, report) = verify_at(&format!("{repo}@{}", platform.digest), &require_v02);
        assert_eq!(code, Some(0), "{report:#}");
    }
    // The statement signed is BuildKit's, byte for byte, about the platform.
    let o = cosign(
        dir.path(),
        &[
            "verify-attestation",
            "--key",
            &public,
            "--type",
            SLSA_V02,
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            &format!("{repo}@{}", arm.digest),
        ],
    );
    assert_ok(&o, "cosign verify-attestation of the adopted provenance");
    let statement = cosign_statement(&o);
    assert_eq!(
        statement["subject"],
        serde_json::json!([{"name": "_", "digest": {"sha256": arm.digest.hex()}}])
    );
    // The BuildKit manifests themselves are still shown as unsigned.
    let (_, report) = verify(&["--platform", "linux/arm64"]);
    assert_eq!(
        report["artifact"]["platforms"][0]["unsigned"][0]["signed"],
        false
    );
}

/// A BuildKit statement about another manifest than the one its index entry names refuses
/// `--adopt-buildkit` before anything is signed.
#[test]
fn adopting_a_statement_about_something_else_is_refused() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let work = crate::release::work_tree(dir.path());
    let (key, _) = crate::release::keypair(dir.path());
    let repo = format!("{}/acme/lying", registry.base);
    let store = open(&repo);
    let amd = put_image(store.as_ref(), "amd64", "libamd");
    let other = put_image(store.as_ref(), "arm64", "libother");
    // An attestation manifest listed for amd64 whose statement is about `other`.
    let bytes = buildkit_statement(&other.digest, SLSA_V02, serde_json::json!({}));
    let mut layer = Descriptor::of(buildkit::IN_TOTO_MEDIA_TYPE, &bytes);
    layer
        .annotations
        .insert(buildkit::PREDICATE_TYPE_ANNOTATION.into(), SLSA_V02.into());
    store.put_blob(&layer, BlobSource::Bytes(&bytes)).unwrap();
    store
        .put_blob(
            &Descriptor::empty_config(),
            BlobSource::Bytes(oci::EMPTY_JSON),
        )
        .unwrap();
    let att = store
        .put_manifest(
            &oci::to_bytes(&ImageManifest {
                schema_version: 2,
                media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
                artifact_type: Some("application/vnd.docker.attestation.manifest.v1+json".into()),
                config: Descriptor::empty_config(),
                layers: vec![layer.clone()],
                subject: None,
                annotations: BTreeMap::new(),
            }),
            MEDIA_TYPE_IMAGE_MANIFEST,
        )
        .unwrap();
    let idx = put_index(
        store.as_ref(),
        vec![
            on(&amd, linux("amd64")),
            attestation_entry(&att, &amd.digest),
        ],
        "1.0",
    );
    let o = crate::release::release_in(
        &work,
        &[
            "--image",
            &format!("{repo}:1.0"),
            "--key",
            &key,
            "--adopt-buildkit",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "buildkit statement {} of {} is about [\"sha256:{}\"], not only the platform manifest {} its index entry names; it is not adopted",
            layer.digest, att.digest, other.digest.hex(), amd.digest
        )),
        "{err}"
    );
    assert!(err.contains("nothing was signed"), "{err}");
    for digest in [&idx.digest, &amd.digest, &other.digest] {
        assert!(
            attach::discover(store.as_ref(), digest)
                .unwrap()
                .bundles
                .is_empty(),
            "{digest} was signed"
        );
    }

    // A single manifest has no BuildKit index to adopt from.
    let o = crate::release::release_in(
        &work,
        &[
            "--image",
            &format!("{repo}@{}", amd.digest),
            "--key",
            &key,
            "--adopt-buildkit",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is a single manifest"),
        "{}",
        stderr(&o)
    );
}
