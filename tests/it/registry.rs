//! The store commands against a real CNCF distribution registry (no referrers API, so the
//! tag-schema fallback is exercised) and against OCI layouts.

use std::collections::BTreeMap;

use custody::foundation::digest::Digest;
use custody::foundation::oci::{self, Descriptor, ImageManifest, MEDIA_TYPE_IMAGE_MANIFEST};
use custody::foundation::reference::Reference;
use custody::storage::store::{self, BlobSource, ReferrersPath, Store};

use crate::support::{self, ReferrersRegistry, Registry, ok, ok_json, run, stderr, stdout};

/// Attaches a small referrer (like a signature bundle) to `subject` through the library.
pub fn attach_referrer(
    store: &dyn Store,
    subject: &Descriptor,
    payload: &[u8],
    kind: &str,
) -> Digest {
    let layer = Descriptor::of("application/vnd.test.payload", payload);
    store
        .put_blob(
            &Descriptor::empty_config(),
            BlobSource::Bytes(oci::EMPTY_JSON),
        )
        .unwrap();
    store.put_blob(&layer, BlobSource::Bytes(payload)).unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
        artifact_type: Some(kind.into()),
        config: Descriptor::empty_config(),
        layers: vec![layer],
        subject: Some(subject.clone()),
        annotations: BTreeMap::from([("test.kind".to_owned(), kind.to_owned())]),
    };
    store
        .put_manifest(&oci::to_bytes(&manifest), MEDIA_TYPE_IMAGE_MANIFEST)
        .unwrap()
        .digest
}

fn open(reference: &str) -> Box<dyn Store> {
    store::open(
        &reference.parse::<Reference>().unwrap(),
        &store::Options::default(),
    )
    .unwrap()
}

#[test]
fn push_pull_resolve_on_a_real_registry() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let small = dir.path().join("small.txt");
    let big = dir.path().join("big.bin");
    std::fs::write(&small, b"small file\n").unwrap();
    // Larger than the monolithic limit and one chunk: exercises the chunked upload.
    support::write_data(&big, 40 * 1024 * 1024 + 123, 7);
    let to = format!("{}/team/app:v1", registry.base);

    let pushed = ok_json(&[
        "push",
        small.to_str().unwrap(),
        big.to_str().unwrap(),
        "--to",
        &to,
    ]);
    let digest = pushed["digest"].as_str().unwrap().to_owned();
    assert_eq!(
        pushed["pinned"],
        format!("{}/team/app@{digest}", registry.base)
    );
    assert_eq!(pushed["tagOutcome"]["result"], "created");

    assert_eq!(ok(&["resolve", &to]).trim(), digest);

    let out = dir.path().join("out");
    ok(&[
        "pull",
        &format!("{}/team/app@{digest}", registry.base),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(out.join("small.txt")).unwrap(),
        b"small file\n"
    );
    assert_eq!(
        custody::foundation::digest::of_file(&out.join("big.bin")).unwrap(),
        custody::foundation::digest::of_file(&big).unwrap()
    );

    // The same content again is a no-op success; other content under the tag is refused.
    let again = ok_json(&[
        "push",
        small.to_str().unwrap(),
        big.to_str().unwrap(),
        "--to",
        &to,
    ]);
    assert_eq!(again["digest"], digest.as_str());
    assert_eq!(again["tagOutcome"]["result"], "unchanged");
    let o = run(&["push", small.to_str().unwrap(), "--to", &to]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let message = stderr(&o);
    assert!(
        message.contains(&digest),
        "names the existing digest: {message}"
    );
    assert!(message.contains("refusing to move"), "{message}");
    let forced = ok_json(&["push", small.to_str().unwrap(), "--to", &to, "--force-tag"]);
    assert_eq!(forced["tagOutcome"]["result"], "moved");
    assert_eq!(forced["tagOutcome"]["previous"], digest.as_str());
}

#[test]
fn referrers_use_the_tag_schema_fallback_and_copy_keeps_them() {
    // Its own registry: the air-gap path restores into a second, separate registry.
    let registry = Registry::start();
    let dir = support::tempdir();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, b"artifact").unwrap();
    let src = format!("{}/src/app:v1", registry.host);
    let digest = ok_json(&["push", file.to_str().unwrap(), "--to", &src])["digest"]
        .as_str()
        .unwrap()
        .to_owned();

    let store = open(&src);
    let subject = store
        .get_manifest(&digest.parse().unwrap())
        .unwrap()
        .descriptor;
    let sig = attach_referrer(
        store.as_ref(),
        &subject,
        b"signature",
        "application/vnd.test.sig",
    );
    let att = attach_referrer(
        store.as_ref(),
        &subject,
        b"provenance",
        "application/vnd.test.att",
    );
    // A referrer of a referrer (a signature on the attestation).
    let att_desc = store.get_manifest(&att).unwrap().descriptor;
    let nested = attach_referrer(
        store.as_ref(),
        &att_desc,
        b"sig of att",
        "application/vnd.test.sig",
    );

    let referrers = store.referrers(&subject.digest).unwrap();
    assert_eq!(
        referrers.path,
        ReferrersPath::TagSchema,
        "distribution 2.8 has no API"
    );
    let mut listed: Vec<_> = referrers
        .descriptors
        .iter()
        .map(|d| d.digest.clone())
        .collect();
    listed.sort();
    let mut expected = vec![sig.clone(), att.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    // The fallback index carries artifactType and annotations.
    assert!(
        referrers
            .descriptors
            .iter()
            .all(|d| d.artifact_type.is_some() && d.annotations.contains_key("test.kind"))
    );

    let tree = ok_json(&["discover", &src]);
    assert_eq!(tree["path"], "tag-schema");
    assert_eq!(tree["referrers"].as_array().unwrap().len(), 2);

    // Registry to registry (another repository of the same registry: blobs are mounted).
    let dst = format!("{}/dst/app:v1", registry.host);
    let copied = ok_json(&["copy", &src, &dst]);
    assert_eq!(copied["digest"], digest.as_str());
    assert_eq!(copied["referrers"], 3);
    assert!(copied["blobsMounted"].as_u64().unwrap() > 0, "{copied}");
    let dst_store = open(&dst);
    assert_eq!(
        dst_store.get_manifest(&nested).unwrap().descriptor.digest,
        nested
    );
    assert_eq!(ok(&["resolve", &dst]).trim(), digest);

    // The air-gap path: registry to layout and back to a second registry.
    // A second registry: the air-gap copy must cross hosts.
    let other = Registry::start();
    let layout = format!("oci:{}:v1", dir.path().join("airgap").display());
    ok(&["copy", &src, &layout]);
    let back = format!("{}/restored/app:v1", other.host);
    let restored = ok_json(&["copy", &layout, &back]);
    assert_eq!(restored["digest"], digest.as_str());
    assert_eq!(restored["referrers"], 3);
    let tree = ok_json(&["discover", &back]);
    let nested_listed = tree["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["referrers"].as_array().unwrap().clone())
        .any(|n| n["descriptor"]["digest"] == nested.to_string());
    assert!(nested_listed, "{tree}");

    // Copying again is a no-op; a destination tag naming another digest is refused.
    let again = ok_json(&["copy", &src, &dst]);
    assert_eq!(again["blobsCopied"], 0);
    assert_eq!(again["tagOutcome"]["result"], "unchanged");
    std::fs::write(&file, b"other artifact").unwrap();
    let other_src = format!("{}/src/app:v2", registry.host);
    ok(&["push", file.to_str().unwrap(), "--to", &other_src]);
    let o = run(&["copy", &other_src, &dst]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&digest), "{}", stderr(&o));

    let dry = ok(&[
        "copy",
        "--dry-run",
        &src,
        &format!("{}/fresh/app:v1", registry.host),
    ]);
    assert!(dry.contains("would copy 4 manifest(s)"), "{dry}");
    assert!(
        open(&format!("{}/fresh/app:v1", registry.host))
            .tags()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn concurrent_pushes_into_one_layout_keep_every_tag() {
    let dir = support::tempdir();
    let layout = dir.path().join("store");
    let children: Vec<_> = (0..6)
        .map(|i| {
            let f = dir.path().join(format!("f{i}.txt"));
            std::fs::write(&f, format!("file {i}")).unwrap();
            support::custody()
                .args(["push", f.to_str().unwrap(), "--to"])
                .arg(format!("oci:{}:t{i}", layout.display()))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let store = open(&format!("oci:{}", layout.display()));
    assert_eq!(store.tags().unwrap().len(), 6);
}

#[test]
fn pull_refuses_titles_that_escape_and_leaves_nothing() {
    let dir = support::tempdir();
    let layout = dir.path().join("store");
    let store = open(&format!("oci:{}", layout.display()));
    for (i, title) in ["../escaped.txt", "/tmp/abs.txt", "a/../../b"]
        .iter()
        .enumerate()
    {
        let payload = format!("evil {i}");
        let mut layer = Descriptor::of("text/plain", payload.as_bytes());
        layer
            .annotations
            .insert(oci::ANNOTATION_TITLE.into(), (*title).into());
        store
            .put_blob(&layer, BlobSource::Bytes(payload.as_bytes()))
            .unwrap();
        store
            .put_blob(&Descriptor::empty_config(), BlobSource::Bytes(b"{}"))
            .unwrap();
        let m = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
            artifact_type: Some("application/x".into()),
            config: Descriptor::empty_config(),
            layers: vec![layer],
            subject: None,
            annotations: BTreeMap::new(),
        };
        let d = store
            .put_manifest(&oci::to_bytes(&m), MEDIA_TYPE_IMAGE_MANIFEST)
            .unwrap();
        let out = dir.path().join("out").join(i.to_string());
        let o = run(&[
            "pull",
            &format!("oci:{}@{}", layout.display(), d.digest),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{title}: {}", stderr(&o));
        assert!(stderr(&o).contains("escape"), "{}", stderr(&o));
        assert!(!out.exists(), "nothing written for {title}");
    }
    assert!(!dir.path().join("escaped.txt").exists());

    // A symbolic link in the way is refused too.
    let f = dir.path().join("x.txt");
    std::fs::write(&f, b"x").unwrap();
    let r = format!("oci:{}:x", layout.display());
    ok(&["push", f.to_str().unwrap(), "--to", &r]);
    let out = dir.path().join("linked");
    std::fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink("/tmp", out.join("x.txt")).unwrap();
    let o = run(&["pull", &r, "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
}

#[test]
fn bad_input_gives_clear_errors_and_exit_2() {
    let dir = support::tempdir();
    let o = run(&["resolve", "Not/A:valid ref"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("Not/A:valid ref"), "{}", stderr(&o));

    let missing = dir.path().join("missing.txt");
    let o = run(&[
        "push",
        missing.to_str().unwrap(),
        "--to",
        &format!("oci:{}:t", dir.path().join("s").display()),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.txt"), "{}", stderr(&o));

    // A write error on pull: the final name is taken by a folder. Nothing half-written remains.
    let f = dir.path().join("data.txt");
    std::fs::write(&f, b"data").unwrap();
    let r = format!("oci:{}:t", dir.path().join("s").display());
    ok(&["push", f.to_str().unwrap(), "--to", &r]);
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("data.txt")).unwrap();
    let o = run(&["pull", &r, "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("data.txt"), "{}", stderr(&o));
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("data.txt")]);

    // A registry that is not there: exit 2 after retries, naming the URL. Port 1 (tcpmux) is
    // privileged and served by nothing, so unlike a probed free port no other process can
    // start answering on it meanwhile.
    let o = run(&["resolve", "127.0.0.1:1/x/y:z"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("127.0.0.1:1/"), "{}", stderr(&o));

    // Plain HTTP to a non-loopback host is not attempted silently: it is HTTPS by default.
    let o = run(&["resolve", "registry.invalid/x/y:z"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("https://registry.invalid"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn referrers_api_is_used_when_the_registry_has_it_and_copies_cross_both_paths() {
    // Registries of their own: the copy crosses from the referrers API to the tag-schema fallback,
    // host to host.
    let api = ReferrersRegistry::start();
    let fallback = Registry::start();
    let dir = support::tempdir();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, b"artifact for the API").unwrap();
    let src = format!("{}/api/app:v1", api.host);
    let digest = ok_json(&["push", file.to_str().unwrap(), "--to", &src])["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = open(&src);
    let subject = store
        .get_manifest(&digest.parse().unwrap())
        .unwrap()
        .descriptor;
    let sig = attach_referrer(store.as_ref(), &subject, b"sig", "application/vnd.test.sig");
    let referrers = store.referrers(&subject.digest).unwrap();
    assert_eq!(referrers.path, ReferrersPath::Api);
    assert_eq!(referrers.descriptors.len(), 1);
    assert_eq!(referrers.descriptors[0].digest, sig);
    // The API registry got no fallback tag: it said OCI-Subject and serves the API.
    assert!(
        store
            .get_tagged(&subject.digest.fallback_tag().parse().unwrap())
            .unwrap()
            .is_none()
    );

    // API registry -> fallback registry -> API registry: the referrer survives both ways.
    let mid = format!("{}/mid/app:v1", fallback.host);
    assert_eq!(ok_json(&["copy", &src, &mid])["referrers"], 1);
    assert_eq!(ok_json(&["discover", &mid])["path"], "tag-schema");
    let back = format!("{}/back/app:v1", api.host);
    assert_eq!(ok_json(&["copy", &mid, &back])["referrers"], 1);
    let tree = ok_json(&["discover", &back]);
    assert_eq!(tree["path"], "api");
    assert_eq!(
        tree["referrers"][0]["descriptor"]["digest"],
        sig.to_string()
    );
}

/// Peak RSS of `custody verify` on an artifact that an attacker gave 60 referrers of 16 MiB
/// each (signed DSSE bundles of their own key), on a real registry. Discovery reads and
/// verifies one bundle at a time and stops at its byte budget, so the peak stays far below
/// what is attached. Run by `scripts/bench-hostile-referrers`; prints the numbers.
#[test]
#[ignore = "a benchmark: writes about 1 GiB to a local registry"]
fn bench_verify_peak_rss_with_60_referrers_of_16_mib() {
    use custody::evidence::sign::keys::SigningKey;
    use custody::evidence::sign::{KeySigner, sign_statement};
    // Its own registry: a benchmark of about 1 GiB, measured alone.
    let registry = Registry::start();
    let repo = format!("{}/bench/rss", registry.host);
    let store = open(&repo);
    let subject = crate::verify::put_artifact(store.as_ref(), b"rss", "v1");
    let attacker = KeySigner::new(SigningKey::generate_p256().unwrap());
    let mut largest = 0;
    for i in 0..60 {
        let statement = serde_json::to_vec(&serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "artifact", "digest": {"sha256": subject.digest.hex()}}],
            "predicateType": "https://example.com/padding",
            "predicate": {"i": i, "padding": "x".repeat(12_000_000)},
        }))
        .unwrap();
        let bundle = sign_statement(&statement, &attacker).unwrap().to_json();
        assert!(bundle.len() as u64 <= custody::evidence::attach::MAX_BUNDLE_SIZE);
        largest = largest.max(bundle.len());
        custody::evidence::attach::attach_bundle(
            store.as_ref(),
            &subject,
            &bundle,
            custody::evidence::attach::BundleContent::DsseEnvelope,
            Some("https://example.com/padding"),
            "2026-01-01T00:00:00Z",
        )
        .unwrap();
    }
    let dir = support::tempdir();
    let (_, public) = crate::release::keypair(dir.path());
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let started = std::time::Instant::now();
    let o = std::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_custody"))
        .args(["verify", &format!("{repo}:v1"), "--key", &public])
        .env_remove("CUSTODY_REGISTRY_USERNAME")
        .output()
        .expect("/usr/bin/time runs");
    let elapsed = started.elapsed();
    let e = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "refused: no trusted signature\n{e}"
    );
    let kib: u64 = e
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS in /usr/bin/time output:\n{e}"));
    println!(
        "bench-hostile-referrers: verify ({profile} build) with 60 referrers of {largest} bytes: peak RSS {} MiB, {:.1} s",
        kib / 1024,
        elapsed.as_secs_f64()
    );
    println!(
        "{}",
        stdout(&o)
            .lines()
            .filter(|l| l.contains("bundle(s)"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
