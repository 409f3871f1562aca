//! `custody sign` / `custody attest` against both registry kinds (distribution 2.8: tag-schema
//! fallback; ggcr's registry: referrers API), checked by the tools people run: cosign v3 in its
//! bundle and legacy modes, and oras. Key mode, offline: no transparency log.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use custody::evidence::attach;
use custody::evidence::attest::{self, ProvenanceInput};
use custody::evidence::ci;
use custody::evidence::sign::verify::{
    Artifact, KeyPolicy, Policy, TlogRequirement, TrustedRoot, verify_bundle,
};
use custody::evidence::sign::{Bundle, PublicKey};
use custody::foundation::digest::Digest;
use custody::foundation::reference::Reference;
use custody::storage::store;

use crate::support::{self, SharedRegistry, stderr, stdout, tool};

const PASSWORD: &str = "attach-test-password";

/// One registry of each kind (this test's namespace on the shared ones); both must behave the
/// same for every reader.
enum Running {
    Distribution(SharedRegistry),
    Referrers(SharedRegistry),
}

impl Running {
    /// Where this test's repositories go: `HOST:PORT/NAMESPACE`.
    fn host(&self) -> &str {
        match self {
            Running::Distribution(r) | Running::Referrers(r) => &r.base,
        }
    }

    fn has_api(&self) -> bool {
        matches!(self, Running::Referrers(_))
    }
}

fn both() -> [Running; 2] {
    [
        Running::Distribution(support::shared_registry()),
        Running::Referrers(support::shared_referrers_registry()),
    ]
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

/// Runs cosign offline (private TUF folder and HOME), password from the environment.
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

fn oras(dir: &Path, args: &[&str]) -> String {
    let o = Command::new(tool("oras"))
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .output()
        .expect("oras runs");
    assert_ok(&o, &format!("oras {args:?}"));
    stdout(&o)
}

/// `custody keygen` in `dir`: returns (private, public) key paths.
fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    custody_ok(dir, &["keygen", "--output-key-prefix", name]);
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    )
}

/// Pushes a small artifact under `repo:v1`; returns (tag reference, digest).
fn push(dir: &Path, host: &str, repo: &str) -> (String, String) {
    let file = dir.join(format!("{}.txt", repo.replace('/', "-")));
    std::fs::write(&file, format!("artifact {repo}\n")).unwrap();
    let r = format!("{host}/{repo}:v1");
    let pushed = custody_json(dir, &["push", file.to_str().unwrap(), "--to", &r]);
    (r, pushed["digest"].as_str().unwrap().to_owned())
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A real SLSA provenance v1 predicate (local builder) about `digest`, written to a file.
fn provenance_predicate(dir: &Path, name: &str, digest: &str) -> PathBuf {
    let ctx = ci::local();
    let digest: Digest = digest.parse().unwrap();
    let statement = attest::provenance(ProvenanceInput::new(
        vec![attest::oci_subject(name, &digest)],
        &ctx,
    ))
    .unwrap();
    let path = dir.join("provenance.json");
    std::fs::write(&path, serde_json::to_vec(&statement.predicate).unwrap()).unwrap();
    path
}

fn statement_of(bundle_file: &Path) -> serde_json::Value {
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle_file).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

#[test]
fn cosign_verifies_custody_signatures_and_provenance_on_both_registry_kinds() {
    let dir = support::tempdir();
    let d = dir.path();
    let (key, public) = keygen(d, "signer");
    let (_, other_public) = keygen(d, "other");
    for registry in both() {
        let host = registry.host();
        let (tagged, digest) = push(d, host, "team/app");
        custody_ok(d, &["sign", &tagged, "--key", s(&key)]);
        let verify = |public: &Path| {
            cosign(
                d,
                &[
                    "verify",
                    "--key",
                    s(public),
                    "--insecure-ignore-tlog=true",
                    "--allow-http-registry",
                    &tagged,
                ],
            )
        };
        let o = verify(&public);
        assert_ok(&o, &format!("cosign verify (api: {})", registry.has_api()));
        let claims: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            claims[0]["critical"]["image"]["docker-manifest-digest"], digest,
            "{claims}"
        );
        assert!(
            !verify(&other_public).status.success(),
            "cosign accepted custody's signature under another key"
        );

        let predicate = provenance_predicate(d, &format!("{host}/team/app"), &digest);
        custody_ok(
            d,
            &[
                "attest",
                &tagged,
                "--predicate",
                s(&predicate),
                "--type",
                "slsaprovenance1",
                "--key",
                s(&key),
            ],
        );
        let verify_attestation = |kind: &str| {
            cosign(
                d,
                &[
                    "verify-attestation",
                    "--key",
                    s(&public),
                    "--type",
                    kind,
                    "--insecure-ignore-tlog=true",
                    "--allow-http-registry",
                    &tagged,
                ],
            )
        };
        let o = verify_attestation("slsaprovenance1");
        assert_ok(&o, "cosign verify-attestation --type slsaprovenance1");
        let envelope: serde_json::Value =
            serde_json::from_slice(stdout(&o).lines().next().unwrap().as_bytes()).unwrap();
        let statement: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(envelope["payload"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            statement["predicate"]["runDetails"]["builder"]["id"],
            ci::LOCAL_BUILDER_ID
        );
        assert_eq!(
            statement["subject"][0]["digest"]["sha256"],
            digest.trim_start_matches("sha256:")
        );
        assert!(
            !verify_attestation("cyclonedx").status.success(),
            "cosign found a cyclonedx attestation that was never made"
        );
    }
}

#[test]
fn legacy_cosign_tags_are_read_by_cosign_in_legacy_mode() {
    let dir = support::tempdir();
    let d = dir.path();
    let (key, public) = keygen(d, "signer");
    for registry in both() {
        let host = registry.host();
        let legacy_verify = |tagged: &str, command: &str, extra: &[&str]| {
            let mut args = vec![
                command,
                "--key",
                s(&public),
                "--insecure-ignore-tlog=true",
                "--allow-http-registry",
                "--new-bundle-format=false",
            ];
            args.extend_from_slice(extra);
            args.push(tagged);
            cosign(d, &args)
        };

        // Without the flag there is nothing for legacy readers: the check below can fail.
        let (plain, _) = push(d, host, "team/plain");
        custody_ok(d, &["sign", &plain, "--key", s(&key)]);
        assert!(
            !legacy_verify(&plain, "verify", &[]).status.success(),
            "cosign's legacy mode found a signature although no .sig was written"
        );

        let (tagged, digest) = push(d, host, "team/legacy");
        let signed = custody_json(
            d,
            &[
                "sign",
                &tagged,
                "--key",
                s(&key),
                "--legacy-cosign-tags",
                "-a",
                "env=prod",
            ],
        );
        let sig_tag = format!("{}.sig", digest.replace(':', "-"));
        assert_eq!(signed["legacy"][0]["tag"], sig_tag);
        let o = legacy_verify(&tagged, "verify", &["-a", "env=prod"]);
        assert_ok(&o, "cosign verify --new-bundle-format=false (.sig)");
        let claims: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            claims[0]["critical"]["type"],
            "cosign container image signature"
        );
        assert_eq!(claims[0]["optional"]["env"], "prod");

        let predicate = provenance_predicate(d, &format!("{host}/team/legacy"), &digest);
        let attested = custody_json(
            d,
            &[
                "attest",
                &tagged,
                "--predicate",
                s(&predicate),
                "--type",
                "slsaprovenance1",
                "--key",
                s(&key),
                "--legacy-cosign-tags",
            ],
        );
        assert_eq!(
            attested["legacy"][0]["tag"],
            format!("{}.att", digest.replace(':', "-"))
        );
        let o = legacy_verify(
            &tagged,
            "verify-attestation",
            &["--type", "slsaprovenance1"],
        );
        assert_ok(
            &o,
            "cosign verify-attestation --new-bundle-format=false (.att)",
        );
    }
}

#[test]
fn oras_discover_lists_custody_referrers_with_their_artifact_type() {
    let dir = support::tempdir();
    let d = dir.path();
    let (key, _) = keygen(d, "signer");
    let predicate = d.join("vex.json");
    std::fs::write(
        &predicate,
        br#"{"@context":"https://openvex.dev/ns/v0.2.0"}"#,
    )
    .unwrap();
    for registry in both() {
        let (tagged, _) = push(d, registry.host(), "team/app");
        let signed = custody_json(d, &["sign", &tagged, "--key", s(&key)]);
        let attested = custody_json(
            d,
            &[
                "attest",
                &tagged,
                "--predicate",
                s(&predicate),
                "--type",
                "openvex",
                "--key",
                s(&key),
            ],
        );
        let listed = oras(
            d,
            &["discover", "--plain-http", "--format", "json", &tagged],
        );
        let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
        let mut found: Vec<(String, String)> = v["referrers"]
            .as_array()
            .unwrap_or_else(|| panic!("oras discover output: {listed}"))
            .iter()
            .map(|r| {
                (
                    r["digest"].as_str().unwrap().to_owned(),
                    r["annotations"][attach::ANNOTATION_BUNDLE_PREDICATE_TYPE]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        found.sort();
        let mut expected = vec![
            (
                signed["referrer"].as_str().unwrap().to_owned(),
                attest::PREDICATE_COSIGN_SIGN_V1.to_owned(),
            ),
            (
                attested["referrer"].as_str().unwrap().to_owned(),
                "https://openvex.dev/ns".to_owned(),
            ),
        ];
        expected.sort();
        assert_eq!(found, expected, "{listed}");
        for r in v["referrers"].as_array().unwrap() {
            let reported = r["artifactType"].as_str().unwrap();
            if registry.has_api() {
                // ggcr's registry answers the API with the config media type as artifactType
                // (for oras's own artifacts too); the manifest itself carries the bundle type.
                let pinned = format!(
                    "{}/team/app@{}",
                    registry.host(),
                    r["digest"].as_str().unwrap()
                );
                let manifest = oras(d, &["manifest", "fetch", "--plain-http", &pinned]);
                let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
                assert_eq!(m["artifactType"], attach::BUNDLE_MEDIA_TYPE_V03);
                assert_eq!(m["layers"][0]["mediaType"], attach::BUNDLE_MEDIA_TYPE_V03);
            } else {
                assert_eq!(reported, attach::BUNDLE_MEDIA_TYPE_V03, "{listed}");
            }
        }
    }
}

#[test]
fn signing_twice_stores_once_and_a_tag_signs_the_digest_it_names() {
    let dir = support::tempdir();
    let d = dir.path();
    let (key, public) = keygen(d, "signer");
    for registry in both() {
        let (tagged, digest) = push(d, registry.host(), "team/app");
        let bundle = d.join("sig.bundle.json");
        let first = custody_json(
            d,
            &["sign", &tagged, "--key", s(&key), "--bundle", s(&bundle)],
        );
        assert_eq!(first["subject"]["digest"], digest);
        assert_eq!(
            first["subject"]["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(first["referrerOutcome"], "created");
        let statement = statement_of(&bundle);
        assert_eq!(
            statement["subject"],
            serde_json::json!([{"digest": {"sha256": digest.trim_start_matches("sha256:")}}])
        );
        assert_eq!(statement["predicateType"], attest::PREDICATE_COSIGN_SIGN_V1);

        let pinned = format!("{}/team/app@{digest}", registry.host());
        let second = custody_json(d, &["sign", &pinned, "--key", s(&key)]);
        assert_eq!(second["referrerOutcome"], "already-present");
        assert_eq!(second["referrer"], first["referrer"]);

        let reference: Reference = tagged.parse().unwrap();
        let st = store::open(&reference, &store::Options::default()).unwrap();
        let found = attach::discover(st.as_ref(), &digest.parse().unwrap()).unwrap();
        assert_eq!(found.bundles.len(), 1, "one bundle after signing twice");
        assert_eq!(
            st.referrers(&digest.parse().unwrap())
                .unwrap()
                .descriptors
                .len(),
            1,
            "one referrer after signing twice"
        );

        // The bundle written next to the referrer verifies against the digest.
        let verified = custody_json(
            d,
            &[
                "verify-bundle",
                &digest,
                "--bundle",
                s(&bundle),
                "--key",
                s(&public),
            ],
        );
        assert_eq!(verified["verified"], true);
    }
}

#[test]
fn custody_finds_and_verifies_what_cosign_signs_with_a_custody_key() {
    let registry = support::shared_referrers_registry();
    let dir = support::tempdir();
    let d = dir.path();
    let (key, public) = keygen(d, "custody");
    let (_, digest) = push(d, &registry.base, "team/app");
    let pinned = format!("{}/team/app@{digest}", registry.base);
    let o = cosign(
        d,
        &[
            "sign",
            "--key",
            s(&key),
            "--tlog-upload=false",
            "--use-signing-config=false",
            "--allow-http-registry",
            "--yes",
            &pinned,
        ],
    );
    assert_ok(&o, "cosign sign --key <custody key>");
    let st = store::open(&pinned.parse().unwrap(), &store::Options::default()).unwrap();
    let subject: Digest = digest.parse().unwrap();
    let found = attach::discover(st.as_ref(), &subject).unwrap();
    assert_eq!(found.bundles.len(), 1, "cosign's bundle referrer is found");
    let bundle = Bundle::from_json(&found.bundles[0].bundle).unwrap();
    let policy = Policy::Key(KeyPolicy {
        key: PublicKey::from_pem(&std::fs::read_to_string(&public).unwrap()).unwrap(),
        tlog: TlogRequirement::Skip,
    });
    let verified = verify_bundle(
        &bundle,
        Artifact::Digest(&subject),
        &policy,
        &TrustedRoot::empty(),
    )
    .expect("custody verifies cosign's image signature");
    assert!(verified.checks.signature && verified.checks.artifact_binding);
}

#[test]
fn bad_attest_inputs_are_refused_with_exit_2() {
    let dir = support::tempdir();
    let d = dir.path();
    let (key, _) = keygen(d, "signer");
    let reference = "127.0.0.1:9/never/contacted:v1";
    let not_json = d.join("notes.txt");
    std::fs::write(&not_json, "this is not json").unwrap();
    let huge = d.join("huge.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(16 * 1024 * 1024 + 1)
        .unwrap();
    let good = d.join("good.json");
    std::fs::write(&good, "{}").unwrap();
    let cases: [(&Path, &str, Option<&Path>, &str); 4] = [
        (
            &not_json,
            "slsaprovenance1",
            Some(&key),
            &format!("predicate {} is not JSON", not_json.display()),
        ),
        (
            &huge,
            "slsaprovenance1",
            Some(&key),
            &format!("predicate {} is more than 16777216 bytes", huge.display()),
        ),
        (
            &good,
            "slsa",
            Some(&key),
            "--type \"slsa\" is neither a known shortcut",
        ),
        (
            &good,
            "slsaprovenance1",
            None,
            "no key and no identity token",
        ),
    ];
    for (predicate, kind, key, message) in cases {
        let mut args = vec![
            "attest",
            reference,
            "--predicate",
            s(predicate),
            "--type",
            kind,
        ];
        if let Some(key) = key {
            args.extend(["--key", s(key)]);
        }
        let o = custody(d, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(message),
            "{args:?}: expected {message:?} in:\n{}",
            stderr(&o)
        );
    }
    // `custom` wraps any text, as cosign does, so the same file is fine there: the failure
    // is then the unreachable registry, still exit 2, and no longer about the predicate.
    let o = custody(
        d,
        &[
            "attest",
            reference,
            "--predicate",
            s(&not_json),
            "--type",
            "custom",
            "--key",
            s(&key),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot resolve"), "{}", stderr(&o));
}

#[test]
fn a_registry_that_lies_about_a_listed_referrer_makes_sign_refuse_with_exit_1() {
    use custody::foundation::oci::{self, Descriptor, ImageIndex, ImageManifest};
    use std::collections::BTreeMap;

    use crate::support::{HostileServer, Response};

    let manifest = oci::to_bytes(&ImageManifest {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_IMAGE_MANIFEST.into()),
        artifact_type: Some("application/x".into()),
        config: Descriptor::empty_config(),
        layers: vec![],
        subject: None,
        annotations: BTreeMap::new(),
    });
    let digest = Digest::of(&manifest);
    let claimed = Digest::of(b"the referrer the index names");
    let mut listed = Descriptor::new(oci::MEDIA_TYPE_IMAGE_MANIFEST, claimed.clone(), 40);
    listed.artifact_type = Some(attach::BUNDLE_MEDIA_TYPE_V03.into());
    let mut index = ImageIndex::empty();
    index.manifests.push(listed);
    let index = oci::to_bytes(&index);
    let (m, d, c) = (manifest.clone(), digest.clone(), claimed.clone());
    let server = HostileServer::start(move |r| {
        let p = r.path.as_str();
        let manifest = |bytes: &[u8]| {
            Response::new(200)
                .header("Content-Type", oci::MEDIA_TYPE_IMAGE_MANIFEST)
                .body(bytes.to_vec())
        };
        if p == "/v2/" {
            Response::new(200)
        } else if p.starts_with("/v2/x/y/referrers/") {
            Response::new(200)
                .header("Content-Type", oci::MEDIA_TYPE_IMAGE_INDEX)
                .body(index.clone())
        } else if p == format!("/v2/x/y/manifests/{d}") || p == "/v2/x/y/manifests/v1" {
            manifest(&m)
        } else if p == format!("/v2/x/y/manifests/{c}") {
            manifest(b"{\"schemaVersion\":2,\"other\":\"bytes than listed\"}")
        } else {
            Response::new(404).body(r#"{"errors":[{"code":"NOT_FOUND","message":"none"}]}"#)
        }
    });
    let dir = support::tempdir();
    let (key, _) = keygen(dir.path(), "signer");
    let o = custody(
        dir.path(),
        &["sign", &format!("{}/x/y:v1", server.host), "--key", s(&key)],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&claimed.to_string()),
        "the lie names the digest asked for: {}",
        stderr(&o)
    );
    assert_eq!(
        server.count("PUT", "/v2/x/y/manifests/"),
        0,
        "nothing is written next to a lying registry"
    );
}

#[test]
fn an_index_is_signed_as_an_index_in_a_registry_and_in_a_layout() {
    use custody::foundation::oci::{self, Descriptor, ImageIndex, ImageManifest};
    use custody::storage::store::BlobSource;
    use std::collections::BTreeMap;

    let registry = support::shared_referrers_registry();
    let dir = support::tempdir();
    let d = dir.path();
    let (key, public) = keygen(d, "signer");
    let layout = format!("oci:{}", d.join("layout").display());
    for repo in [format!("{}/team/multi", registry.base), layout.clone()] {
        let reference: Reference = format!("{repo}:v1").parse().unwrap();
        let st = store::open(&reference, &store::Options::default()).unwrap();
        st.put_blob(
            &Descriptor::empty_config(),
            BlobSource::Bytes(oci::EMPTY_JSON),
        )
        .unwrap();
        let child = st
            .put_manifest(
                &oci::to_bytes(&ImageManifest {
                    schema_version: 2,
                    media_type: Some(oci::MEDIA_TYPE_IMAGE_MANIFEST.into()),
                    artifact_type: Some("application/x".into()),
                    config: Descriptor::empty_config(),
                    layers: vec![],
                    subject: None,
                    annotations: BTreeMap::new(),
                }),
                oci::MEDIA_TYPE_IMAGE_MANIFEST,
            )
            .unwrap();
        let mut index = ImageIndex::empty();
        index.manifests.push(child);
        let index = st
            .put_manifest(&oci::to_bytes(&index), oci::MEDIA_TYPE_IMAGE_INDEX)
            .unwrap();
        let pinned = format!("{repo}@{}", index.digest);
        let signed = custody_json(d, &["sign", &pinned, "--key", s(&key)]);
        assert_eq!(signed["subject"]["mediaType"], oci::MEDIA_TYPE_IMAGE_INDEX);
        assert_eq!(signed["subject"]["size"], index.size);
        let found = attach::discover(st.as_ref(), &index.digest).unwrap();
        assert_eq!(found.bundles.len(), 1, "{repo}");
        let referrer = st
            .get_manifest(&signed["referrer"].as_str().unwrap().parse().unwrap())
            .unwrap();
        assert_eq!(
            referrer.manifest.subject().unwrap().media_type,
            oci::MEDIA_TYPE_IMAGE_INDEX
        );
        if reference.registry().is_some() {
            let o = cosign(
                d,
                &[
                    "verify",
                    "--key",
                    s(&public),
                    "--insecure-ignore-tlog=true",
                    "--allow-http-registry",
                    &pinned,
                ],
            );
            assert_ok(&o, "cosign verify of a signed index");
        }
    }
}
