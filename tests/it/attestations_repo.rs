//! Signatures and attestations kept in another repository than the artifact
//! (`--attestations-repository`, `CUSTODY_ATTESTATIONS_REPOSITORY`, cosign's
//! `COSIGN_REPOSITORY`, a policy scope's `attestations_repository`), for registries where the
//! image repository is read-only to the signer: written there, found there, copied along, never
//! trusted when the referrer's subject is another digest, and interoperable with cosign.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use custody::foundation::digest::Digest;
use custody::foundation::oci::{self, Manifest};
use custody::foundation::reference::Tag;
use custody::storage::store::{self, BlobSource, Store};

use crate::support::{self, HostileServer, Response, stderr, stdout, tool};

const PASSWORD: &str = "attestations-repo-password";

fn custody(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = support::custody();
    c.args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env_remove("COSIGN_REPOSITORY")
        .env_remove("CUSTODY_ATTESTATIONS_REPOSITORY");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("custody runs")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    ok_env(dir, args, &[])
}

fn ok_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let o = custody(dir, args, env);
    assert!(
        o.status.success(),
        "custody {args:?} failed ({:?}):\n{}\n{}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn json(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, serde_json::Value) {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let o = custody(dir, &all, env);
    let value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(&o), stderr(&o)));
    (o.status.code(), value)
}

/// Runs cosign offline with `COSIGN_REPOSITORY` set to `repository` (unset for `None`).
fn cosign(dir: &Path, args: &[&str], repository: Option<&str>) -> Output {
    let mut c = Command::new(tool("cosign"));
    c.args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("TUF_ROOT", dir.join("tuf"))
        .env("HOME", dir)
        .env_remove("COSIGN_REPOSITORY");
    if let Some(r) = repository {
        c.env("COSIGN_REPOSITORY", r);
    }
    c.output().expect("cosign runs")
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

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    ok(dir, &["keygen", "--output-key-prefix", name]);
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    )
}

/// Pushes a small artifact to `repo:v1`; returns (tag reference, digest).
fn push(dir: &Path, repo: &str, content: &str) -> (String, Digest) {
    let file = dir.join(format!("{}.txt", Digest::of(content.as_bytes()).hex()));
    std::fs::write(&file, content).unwrap();
    let r = format!("{repo}:v1");
    let (code, pushed) = json(dir, &["push", s(&file), "--to", &r], &[]);
    assert_eq!(code, Some(0), "{pushed}");
    (r, pushed["digest"].as_str().unwrap().parse().unwrap())
}

fn open(repository: &str) -> Box<dyn Store> {
    store::open(&repository.parse().unwrap(), &store::Options::default()).unwrap()
}

fn referrers(repository: &str, subject: &Digest) -> usize {
    open(repository)
        .referrers(subject)
        .map(|r| r.descriptors.len())
        .unwrap_or(0)
}

fn tagged(repository: &str, tag: &str) -> bool {
    open(repository)
        .get_tagged(&tag.parse().unwrap())
        .ok()
        .flatten()
        .is_some()
}

/// Item 1: sign and attest write into the other repository (referrer, fallback index and
/// legacy tags), nothing beside the artifact; verify and tree find them there by flag, by
/// either environment variable and by the policy scope's field, and say so; without any of
/// them nothing is found.
#[test]
fn evidence_is_written_to_and_read_from_the_attestations_repository() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let d = dir.path();
    let (key, public) = keygen(d, "signer");
    let app = format!("{}/team/app", registry.base);
    let sigs = format!("{}/team/sigs", registry.base);
    let (reference, digest) = push(d, &app, "artifact one\n");

    let (code, signed) = json(
        d,
        &[
            "sign",
            &reference,
            "--key",
            s(&key),
            "--legacy-cosign-tags",
            "--attestations-repository",
            &sigs,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{signed}");
    assert_eq!(signed["attestationsRepository"], sigs.as_str());
    support::validate_against_schema("sign-report.schema.json", &signed);
    ok(
        d,
        &[
            "attest",
            &reference,
            "--key",
            s(&key),
            "--type",
            "https://example.com/notes/v1",
            "--predicate",
            s(&write(d, "notes.json", "{\"ok\":true}")),
            "--attestations-repository",
            &sigs,
        ],
    );
    // Everything went to the other repository, under the artifact's digest.
    assert_eq!(referrers(&app, &digest), 0, "nothing beside the artifact");
    assert_eq!(referrers(&sigs, &digest), 2);
    let fallback = digest.fallback_tag();
    assert!(tagged(&sigs, &fallback), "fallback index in {sigs}");
    assert!(tagged(&sigs, &format!("{fallback}.sig")));
    assert!(!tagged(&app, &fallback) && !tagged(&app, &format!("{fallback}.sig")));
    // The artifact's blobs were not copied there.
    let sigs_store = open(&sigs);
    let root = open(&app).get_manifest(&digest).unwrap();
    let Manifest::Image(m) = &root.manifest else {
        panic!("an image manifest")
    };
    assert_eq!(sigs_store.blob_exists(&m.layers[0].digest).unwrap(), None);
    // Every referrer there names the artifact's digest as its subject.
    for listed in sigs_store.referrers(&digest).unwrap().descriptors {
        let fetched = sigs_store.get_manifest(&listed.digest).unwrap();
        assert_eq!(fetched.manifest.subject().map(|s| &s.digest), Some(&digest));
    }

    let verify = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["verify", reference.as_str(), "--key", s(&public)];
        args.extend_from_slice(extra);
        json(d, &args, env)
    };
    // Not beside the artifact: nothing to verify there.
    let (code, report) = verify(&[], &[]);
    assert_eq!((code, &report["verified"]), (Some(1), &false.into()));
    let flag = ["--attestations-repository", sigs.as_str()];
    for (extra, env, source) in [
        (&flag[..], &[][..], serde_json::json!({"kind": "flag"})),
        (
            &[][..],
            &[("CUSTODY_ATTESTATIONS_REPOSITORY", sigs.as_str())][..],
            serde_json::json!({"kind": "environment", "variable": "CUSTODY_ATTESTATIONS_REPOSITORY"}),
        ),
        (
            &[][..],
            &[("COSIGN_REPOSITORY", sigs.as_str())][..],
            serde_json::json!({"kind": "environment", "variable": "COSIGN_REPOSITORY"}),
        ),
    ] {
        let (code, report) = verify(extra, env);
        assert_eq!(code, Some(0), "{report}");
        assert_eq!(
            report["attestationsRepository"]["repository"],
            sigs.as_str()
        );
        assert_eq!(report["attestationsRepository"]["source"], source);
        support::validate_against_schema("verify-report.schema.json", &report);
    }
    // custody's variable wins over cosign's.
    let (code, report) = verify(
        &[],
        &[
            ("CUSTODY_ATTESTATIONS_REPOSITORY", sigs.as_str()),
            ("COSIGN_REPOSITORY", "127.0.0.1:9/never/used"),
        ],
    );
    assert_eq!(code, Some(0), "{report}");

    // The policy's scope names it for consumers.
    let policy = write(
        d,
        "policy.yaml",
        &format!(
            "version: 1\nscopes:\n  - name: app\n    repositories: [\"**\"]\n    attestations_repository: {sigs}\n    signers:\n      - name: ci\n        key: {}\n",
            s(&public)
        ),
    );
    let (code, report) = json(d, &["verify", &reference, "--policy", s(&policy)], &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(
        report["attestationsRepository"]["source"],
        serde_json::json!({"kind": "policy", "scope": "app"})
    );
    let human = ok(d, &["verify", &reference, "--policy", s(&policy)]);
    assert!(
        human.contains(&format!("evidence in {sigs} (from policy scope app)")),
        "{human}"
    );

    // tree says where it looked.
    let (code, tree) = json(
        d,
        &["tree", &reference, "--attestations-repository", &sigs],
        &[],
    );
    assert_eq!(code, Some(0), "{tree}");
    assert_eq!(tree["attestationsRepository"], sigs.as_str());
    assert_eq!(tree["nodes"].as_array().unwrap().len(), 3, "{tree}");
    support::validate_against_schema("tree-report.schema.json", &tree);
    let human = ok(d, &["tree", &reference, "--policy", s(&policy)]);
    assert!(human.contains(&format!("evidence in {sigs}")), "{human}");

    // A malformed name is refused before anything runs.
    let o = custody(
        d,
        &[
            "verify",
            &reference,
            "--key",
            s(&public),
            "--attestations-repository",
            "x:tag@bad",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Security: a referrer in the attestations repository whose manifest names another subject is
/// never used, even when its bundle is a valid signature of the artifact. The fallback index
/// `sha256-<artifact>` there lists a manifest that carries the artifact's own valid bundle but
/// whose `subject` is another digest: verification ignores it and refuses.
#[test]
fn a_referrer_naming_another_subject_is_never_used() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let d = dir.path();
    let (key, public) = keygen(d, "signer");
    let app = format!("{}/team/app", registry.base);
    let good = format!("{}/team/good-sigs", registry.base);
    let evil = format!("{}/team/evil-sigs", registry.base);
    let (reference, digest) = push(d, &app, "artifact two\n");
    let (_, other) = push(d, &format!("{}/team/other", registry.base), "another\n");
    ok(
        d,
        &[
            "sign",
            &reference,
            "--key",
            s(&key),
            "--attestations-repository",
            &good,
        ],
    );
    // The genuine referrer, re-pointed at another subject, stored in the other repository and
    // listed under the artifact's fallback tag.
    let good_store = open(&good);
    let listed = good_store.referrers(&digest).unwrap().descriptors;
    assert_eq!(listed.len(), 1);
    let genuine = good_store.get_manifest(&listed[0].digest).unwrap();
    let Manifest::Image(mut m) = genuine.manifest else {
        panic!("an image manifest")
    };
    let evil_store = open(&evil);
    let layer = m.layers[0].clone();
    let mut bundle = Vec::new();
    good_store.get_blob(&layer, &mut bundle).unwrap();
    evil_store
        .put_blob(&layer, BlobSource::Bytes(&bundle))
        .unwrap();
    evil_store
        .put_blob(
            &oci::Descriptor::empty_config(),
            BlobSource::Bytes(oci::EMPTY_JSON),
        )
        .unwrap();
    let mut subject = m.subject.clone().unwrap();
    subject.digest = other.clone();
    m.subject = Some(subject);
    let bytes = oci::to_bytes(&m);
    let moved = evil_store
        .put_manifest(&bytes, oci::MEDIA_TYPE_IMAGE_MANIFEST)
        .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::MEDIA_TYPE_IMAGE_INDEX,
        "manifests": [{
            "mediaType": oci::MEDIA_TYPE_IMAGE_MANIFEST,
            "digest": moved.digest,
            "size": moved.size,
            "artifactType": m.artifact_type,
        }],
    });
    let index_bytes = serde_json::to_vec(&index).unwrap();
    evil_store
        .put_manifest(&index_bytes, oci::MEDIA_TYPE_IMAGE_INDEX)
        .unwrap();
    let fetched = store::FetchedManifest::check(
        "index",
        index_bytes,
        Some(oci::MEDIA_TYPE_IMAGE_INDEX),
        None,
    )
    .unwrap();
    let tag: Tag = digest.fallback_tag().parse().unwrap();
    evil_store.tag(&tag, &fetched).unwrap();
    assert_eq!(evil_store.referrers(&digest).unwrap().descriptors.len(), 1);

    let (code, report) = json(
        d,
        &[
            "verify",
            &reference,
            "--key",
            s(&public),
            "--attestations-repository",
            &evil,
        ],
        &[],
    );
    assert_eq!(
        (code, &report["verified"]),
        (Some(1), &false.into()),
        "{report}"
    );
    assert_eq!(
        report["artifact"]["referrers"],
        serde_json::json!([]),
        "{report}"
    );
    // The same bundle under the right subject verifies.
    let (code, _) = json(
        d,
        &[
            "verify",
            &reference,
            "--key",
            s(&public),
            "--attestations-repository",
            &good,
        ],
        &[],
    );
    assert_eq!(code, Some(0));
}

/// Item 2: cosign with `COSIGN_REPOSITORY` verifies what custody writes to the attestations
/// repository (bundle referrer and legacy `.sig`), and custody finds what cosign signs there.
#[test]
fn cosign_and_custody_agree_on_cosign_repository() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let d = dir.path();
    let (key, public) = keygen(d, "signer");
    let app = format!("{}/team/app", registry.base);
    let sigs = format!("{}/team/sigs", registry.base);
    let (reference, digest) = push(d, &app, "artifact three\n");
    let pinned = format!("{app}@{digest}");
    let cosign_verify = |format: &str, repository: Option<&str>| {
        cosign(
            d,
            &[
                "verify",
                "--key",
                s(&public),
                "--insecure-ignore-tlog=true",
                "--allow-http-registry",
                format,
                &pinned,
            ],
            repository,
        )
    };
    // The bundle referrer alone (no legacy tag cosign could fall back to).
    ok(
        d,
        &[
            "sign",
            &reference,
            "--key",
            s(&key),
            "--attestations-repository",
            &sigs,
        ],
    );
    let o = cosign_verify("--new-bundle-format=true", Some(&sigs));
    assert_ok(&o, "cosign verify (bundle referrer) with COSIGN_REPOSITORY");
    let claims: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        claims[0]["critical"]["image"]["docker-manifest-digest"],
        digest.to_string()
    );
    assert!(
        !cosign_verify("--new-bundle-format=true", None)
            .status
            .success(),
        "cosign found a signature beside the artifact, where none was written"
    );
    // The legacy `.sig` there too, for cosign's legacy mode.
    ok(
        d,
        &[
            "sign",
            &reference,
            "--key",
            s(&key),
            "--legacy-cosign-tags",
            "--attestations-repository",
            &sigs,
        ],
    );
    let o = cosign_verify("--new-bundle-format=false", Some(&sigs));
    assert_ok(
        &o,
        "cosign verify --new-bundle-format=false (.sig) with COSIGN_REPOSITORY",
    );

    // cosign signs another artifact into the attestations repository; custody finds it there.
    let (reference2, digest2) = push(d, &format!("{}/team/app2", registry.base), "four\n");
    let pinned2 = format!("{}/team/app2@{digest2}", registry.base);
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
            &pinned2,
        ],
        Some(&sigs),
    );
    assert_ok(&o, "cosign sign with COSIGN_REPOSITORY");
    assert_eq!(
        referrers(&format!("{}/team/app2", registry.base), &digest2),
        0,
        "cosign wrote nothing beside the artifact"
    );
    let (code, report) = json(
        d,
        &["verify", &reference2, "--key", s(&public)],
        &[("COSIGN_REPOSITORY", sigs.as_str())],
    );
    assert_eq!(code, Some(0), "{report}");
    let (code, _) = json(d, &["verify", &reference2, "--key", s(&public)], &[]);
    assert_eq!(code, Some(1), "nothing beside the artifact");
}

/// Item 3: copying an artifact whose evidence is elsewhere copies the evidence too: into the
/// destination's attestations repository when one is given, else beside the copy; promote
/// does the same after verifying where the evidence is.
#[test]
fn copy_and_promote_carry_evidence_kept_elsewhere() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let d = dir.path();
    let (key, public) = keygen(d, "signer");
    let base = &registry.base;
    let app = format!("{base}/src/app");
    let sigs = format!("{base}/src/sigs");
    let (reference, digest) = push(d, &app, "artifact five\n");
    ok(
        d,
        &[
            "sign",
            &reference,
            "--key",
            s(&key),
            "--legacy-cosign-tags",
            "--attestations-repository",
            &sigs,
        ],
    );
    let fallback = digest.fallback_tag();

    // Beside the copy.
    let beside = format!("{base}/dst/beside");
    ok(
        d,
        &[
            "copy",
            &reference,
            &format!("{beside}:v1"),
            "--attestations-repository",
            &sigs,
        ],
    );
    assert_eq!(referrers(&beside, &digest), 1);
    assert!(tagged(&beside, &format!("{fallback}.sig")));
    let (code, report) = json(
        d,
        &["verify", &format!("{beside}:v1"), "--key", s(&public)],
        &[],
    );
    assert_eq!(code, Some(0), "{report}");

    // Into the destination's own attestations repository.
    let copied = format!("{base}/dst/app");
    let copied_sigs = format!("{base}/dst/sigs");
    ok(
        d,
        &[
            "copy",
            &reference,
            &format!("{copied}:v1"),
            "--attestations-repository",
            &sigs,
            "--to-attestations-repository",
            &copied_sigs,
        ],
    );
    assert_eq!(referrers(&copied, &digest), 0);
    assert_eq!(referrers(&copied_sigs, &digest), 1);
    assert!(tagged(&copied_sigs, &format!("{fallback}.sig")));
    let (code, report) = json(
        d,
        &[
            "verify",
            &format!("{copied}:v1"),
            "--key",
            s(&public),
            "--attestations-repository",
            &copied_sigs,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{report}");

    // promote: verified where the evidence is, copied with it.
    let promoted = format!("{base}/prod/app");
    let promoted_sigs = format!("{base}/prod/sigs");
    let (code, report) = json(
        d,
        &[
            "promote",
            &reference,
            &format!("{promoted}:v1"),
            "--trust-key",
            s(&public),
            "--attestations-repository",
            &sigs,
            "--to-attestations-repository",
            &promoted_sigs,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(referrers(&promoted, &digest), 0);
    assert_eq!(referrers(&promoted_sigs, &digest), 1);
}

/// Item 4: a registry where the image repository is read-only to the signer. A proxy in front
/// of the shared registry answers 403 DENIED to every write under the image repository (what
/// a registry's token service does for a pull-only grant) and passes everything else through.
/// Signing beside the image fails; signing into the attestations repository works and verifies.
#[test]
fn signing_works_when_the_image_repository_is_read_only() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let d = dir.path();
    let (key, public) = keygen(d, "signer");
    let (_, digest) = push(d, &format!("{}/ro/app", registry.base), "artifact six\n");
    let namespace = registry.base.split_once('/').unwrap().1.to_owned();
    let backend = registry.host.clone();
    let read_only = format!("/v2/{namespace}/ro/app/");
    let proxy = HostileServer::start(move |request| {
        let writes = !matches!(request.method.as_str(), "GET" | "HEAD");
        if writes && request.path.starts_with(&read_only) {
            return Response::new(403)
                .header("Content-Type", "application/json")
                .body(r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#);
        }
        forward(&backend, request)
    });
    let app = format!("{}/{namespace}/ro/app", proxy.host);
    let sigs = format!("{}/{namespace}/ro/sigs", proxy.host);
    let pinned = format!("{app}@{digest}");

    let o = custody(d, &["sign", &pinned, "--key", s(&key)], &[]);
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));

    ok(
        d,
        &[
            "sign",
            &pinned,
            "--key",
            s(&key),
            "--attestations-repository",
            &sigs,
        ],
    );
    let (code, report) = json(
        d,
        &[
            "verify",
            &pinned,
            "--key",
            s(&public),
            "--attestations-repository",
            &sigs,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(
        report["attestationsRepository"]["repository"],
        sigs.as_str()
    );
    let image = format!("{}/ro/app", registry.base);
    assert_eq!(
        referrers(&image, &digest),
        0,
        "nothing written beside the image"
    );
    assert!(proxy.count("POST", &format!("/v2/{namespace}/ro/app/")) >= 1);
}

/// Sends `request` to `backend` over HTTP/1.0 (no chunked answers) and hands back its answer.
fn forward(backend: &str, request: &support::Request) -> Response {
    let mut stream = TcpStream::connect(backend).expect("backend up");
    let mut head = format!(
        "{} {} HTTP/1.0\r\nHost: {backend}\r\n",
        request.method, request.path
    );
    for (k, v) in &request.headers {
        let skip = ["host", "connection", "content-length", "transfer-encoding"];
        if !skip.iter().any(|s| k.eq_ignore_ascii_case(s)) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", request.body.len()));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&request.body).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let mut response = Response::new(status).body(answer[split + 4..].to_vec());
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim();
            // A HEAD answer keeps its length (the server adds one for other answers).
            let drop = k.eq_ignore_ascii_case("connection")
                || (k.eq_ignore_ascii_case("content-length") && request.method != "HEAD");
            if !drop {
                response = response.header(k, v.trim());
            }
        }
    }
    response
}

/// `release` signs and attests into the attestations repository, and its own self-check reads
/// them there before it tags.
/// Releases a file of `content` to `app:v1` with its evidence in `sigs`; its digest.
fn release_elsewhere(d: &Path, key: &Path, app: &str, sigs: &str, content: &str) -> Digest {
    let file = write(d, "app.bin", content);
    let (code, released) = json(
        d,
        &[
            "release",
            s(&file),
            "--to",
            &format!("{app}:v1"),
            "--key",
            s(key),
            "--no-source",
            "--attestations-repository",
            sigs,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{released}");
    released["digest"].as_str().unwrap().parse().unwrap()
}

#[test]
fn release_writes_its_evidence_to_the_attestations_repository() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let d = dir.path();
    let (key, public) = keygen(d, "signer");
    let app = format!("{}/rel/app", registry.base);
    let sigs = format!("{}/rel/sigs", registry.base);
    let digest = release_elsewhere(d, &key, &app, &sigs, "the released artifact\n");
    assert_eq!(referrers(&app, &digest), 0, "nothing beside the artifact");
    assert_eq!(referrers(&sigs, &digest), 3, "signature, provenance, SBOM");
    let (code, report) = json(
        d,
        &["verify", &format!("{app}:v1"), "--key", s(&public)],
        &[("CUSTODY_ATTESTATIONS_REPOSITORY", sigs.as_str())],
    );
    assert_eq!(code, Some(0), "{report}");
}

#[test]
fn rescan_reads_the_sboms_kept_in_the_attestations_repository() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let d = dir.path();
    let (key, _) = keygen(d, "signer");
    let app = format!("{}/rescan-elsewhere/app", registry.base);
    let sigs = format!("{}/rescan-elsewhere/sigs", registry.base);
    release_elsewhere(
        d,
        &key,
        &app,
        &sigs,
        "an artifact whose SBOM lives elsewhere\n",
    );
    let db = crate::gates::shared_osv();
    let rescan = |env: &[(&str, &str)]| json(d, &["rescan", &app, "--db", s(&db)], env);

    // Beside the artifact there is nothing: the artifact is listed without an SBOM.
    let (code, report) = rescan(&[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["scanned"], 0, "{report}");
    assert_eq!(report["withoutSbomCount"], 1, "{report}");
    assert_eq!(
        report["withoutSbom"][0]["sbom"]["status"], "missing",
        "{report}"
    );
    assert!(
        report["repositories"][0]
            .get("attestationsRepository")
            .is_none()
    );

    // Told where the evidence is, rescan reads the SBOM there and says so.
    let (code, report) = rescan(&[("CUSTODY_ATTESTATIONS_REPOSITORY", sigs.as_str())]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["scanned"], 1, "{report}");
    assert_eq!(report["withoutSbomCount"], 0, "{report}");
    assert_eq!(
        report["repositories"][0]["attestationsRepository"],
        sigs.as_str()
    );
    support::validate_against_schema("rescan-report.schema.json", &report);
}
