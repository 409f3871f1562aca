//! Registry security controls: dependency-confusion rules on npm and Cargo fixtures, prune on
//! real registries (deletion on and off, tag-schema fallback and referrers API), and the
//! tamper-evident audit log written by real commands.

use std::path::{Path, PathBuf};
use std::process::Output;

use custody::foundation::digest::Digest;
use custody::foundation::oci::{Descriptor, MEDIA_TYPE_IMAGE_MANIFEST};
use custody::foundation::reference::Reference;
use custody::storage::store::{self, Store};

use crate::registry::attach_referrer;
use crate::support::{self, Registry, ok, ok_json, run, stderr, stdout};

fn fixture(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sources")
        .join(path)
        .display()
        .to_string()
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

// ------------------------------------------------------------------------------ sources

#[test]
fn npm_dependency_confusion_is_reported_with_both_locations() {
    let o = run(&[
        "sources",
        "check",
        &fixture("npm/package-lock.json"),
        "--policy",
        &fixture("policy.yaml"),
    ]);
    assert_eq!(code(&o), Some(1), "{}", stderr(&o));
    // The report on stdout, as when nothing is wrong; the refusal after it on stderr.
    let out = stdout(&o);
    assert!(
        out.contains("VIOLATION pkg:npm/%40acme/utils@99.0.0"),
        "{out}"
    );
    assert!(
        out.contains("resolved from:      https://registry.npmjs.org/"),
        "{out}"
    );
    assert!(
        out.contains("must come from:     https://npm.acme.internal/"),
        "{out}"
    );
    // The internal package from the internal registry is not reported.
    assert!(!out.contains("logger"), "{out}");
    assert!(
        out.ends_with("3 component(s) checked, 2 internal, 1 violation(s)\n"),
        "{out}"
    );
    let err = stderr(&o);
    assert!(
        err.starts_with(
            "error: 1 component(s) with an internal name came from outside the allowed registries\n  hint: pin the internal registry"
        ),
        "{err}"
    );
    assert!(!err.contains("VIOLATION"), "{err}");
}

#[test]
fn cargo_dependency_confusion_through_the_sbom() {
    let dir = support::tempdir();
    let sbom = dir.path().join("sbom.json");
    let artifact = dir.path().join("service");
    std::fs::write(&artifact, b"binary").unwrap();
    ok(&[
        "sbom",
        artifact.to_str().unwrap(),
        "--lockfile",
        &fixture("cargo/Cargo.lock"),
        "--out",
        sbom.to_str().unwrap(),
    ]);
    let o = run(&[
        "--output",
        "json",
        "sources",
        "check",
        sbom.to_str().unwrap(),
        "--policy",
        &fixture("policy.yaml"),
    ]);
    assert_eq!(code(&o), Some(1), "{}", stderr(&o));
    // `--output json`: the report itself, exit 1; the error on stderr.
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["checked"], 3, "{report}");
    assert_eq!(report["internal"], 2, "{report}");
    // `acme_core` is `acme-core` to crates.io: the underscore does not escape the rule;
    // `acme-auth` from the internal registry is not a violation.
    assert_eq!(
        report["violations"],
        serde_json::json!([{
            "purl": "pkg:cargo/acme_core@9.9.9",
            "resolved": {
                "kind": "url",
                "location": "registry+https://github.com/rust-lang/crates.io-index"
            },
            "pattern": "pkg:cargo/acme-*",
            "allowed": ["sparse+https://cargo.acme.internal/index/"]
        }]),
        "{report}"
    );
    assert!(
        stderr(&o).starts_with("error: 1 component(s) with an internal name"),
        "{}",
        stderr(&o)
    );

    // The same lockfile passes once the public registry's copy is gone.
    let clean = dir.path().join("Cargo.lock");
    let text = std::fs::read_to_string(fixture("cargo/Cargo.lock")).unwrap();
    std::fs::write(
        &clean,
        text.replace(
            "name = \"acme_core\"\nversion = \"9.9.9\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"",
            "name = \"acme_core\"\nversion = \"9.9.9\"\nsource = \"sparse+https://cargo.acme.internal/index/\"",
        ),
    )
    .unwrap();
    let report = ok_json(&[
        "sources",
        "check",
        clean.to_str().unwrap(),
        "--policy",
        &fixture("policy.json"),
    ]);
    assert_eq!(report["internal"], 2);
    assert_eq!(report["violations"], serde_json::json!([]));
}

#[test]
fn a_malformed_policy_cannot_run() {
    let dir = support::tempdir();
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"sources":{"internal":[{"packages":["npm/@acme/*"],"registries":["https://x/"]}]}}"#,
    )
    .unwrap();
    let o = run(&[
        "sources",
        "check",
        &fixture("npm/package-lock.json"),
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), Some(2));
    assert!(
        stderr(&o).contains("does not start with pkg:"),
        "{}",
        stderr(&o)
    );
}

// ------------------------------------------------------------------------------ prune

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn created(days_ago: u64) -> String {
    format!(
        "org.opencontainers.image.created={}",
        custody::evidence::attest::Timestamp::from_unix(now() - days_ago * 86_400)
    )
}

/// Pushes a one-file artifact with a creation time; returns its digest.
fn push(dir: &Path, to: &str, name: &str, days_ago: Option<u64>) -> Digest {
    let file = dir.join(name);
    std::fs::write(&file, name.as_bytes()).unwrap();
    let mut args = vec![
        "push".to_owned(),
        file.display().to_string(),
        "--to".into(),
        to.into(),
    ];
    if let Some(d) = days_ago {
        args.push("--annotation".into());
        args.push(created(d));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok_json(&args)["digest"].as_str().unwrap().parse().unwrap()
}

fn open(reference: &str) -> Box<dyn Store> {
    store::open(
        &reference.parse::<Reference>().unwrap(),
        &store::Options::default(),
    )
    .unwrap()
}

fn descriptor(store: &dyn Store, digest: &Digest) -> Descriptor {
    let m = store.get_manifest(digest).unwrap();
    Descriptor::new(
        MEDIA_TYPE_IMAGE_MANIFEST,
        digest.clone(),
        m.bytes.len() as u64,
    )
}

fn gone(store: &dyn Store, digest: &Digest) -> bool {
    matches!(
        store.get_manifest(digest),
        Err(store::Error::NotFound { .. })
    )
}

struct Scene {
    repo: String,
    old_release: Digest,
    old: Digest,
    old_sig: Digest,
    old_sig_sig: Digest,
    old_legacy: Digest,
    protected: Digest,
    recent: Digest,
    recent_sig: Digest,
    release_sig: Digest,
}

/// A repository with old and new artifacts, signatures attached as referrers (one of them
/// signed in turn) and a legacy cosign `.sig` tag.
fn scene(dir: &Path, repo: String) -> Scene {
    let store = open(&repo);
    let old_release = push(dir, &format!("{repo}:v1.0.0"), "release", Some(120));
    let old = push(dir, &format!("{repo}:build-1"), "old", Some(60));
    let protected = push(dir, &format!("{repo}:build-2"), "protected", Some(50));
    ok(&["copy", &format!("{repo}:build-2"), &format!("{repo}:prod")]);
    let recent = push(dir, &format!("{repo}:build-3"), "recent", Some(1));
    let old_sig = attach_referrer(
        store.as_ref(),
        &descriptor(store.as_ref(), &old),
        b"sig",
        "application/vnd.test.sig",
    );
    let old_sig_sig = attach_referrer(
        store.as_ref(),
        &descriptor(store.as_ref(), &old_sig),
        b"countersig",
        "application/vnd.test.sig",
    );
    let recent_sig = attach_referrer(
        store.as_ref(),
        &descriptor(store.as_ref(), &recent),
        b"sig2",
        "application/vnd.test.sig",
    );
    let release_sig = attach_referrer(
        store.as_ref(),
        &descriptor(store.as_ref(), &old_release),
        b"sig3",
        "application/vnd.test.sig",
    );
    let old_legacy = push(
        dir,
        &format!("{repo}:{}.sig", old.fallback_tag()),
        "legacy-sig",
        None,
    );
    Scene {
        repo,
        old_release,
        old,
        old_sig,
        old_sig_sig,
        old_legacy,
        protected,
        recent,
        recent_sig,
        release_sig,
    }
}

fn prune_args(repo: &str, yes: bool) -> Vec<String> {
    let mut a: Vec<String> = [
        "prune",
        repo,
        "--keep-tag",
        "v*",
        "--keep-younger-than",
        "7d",
        "--protect-tag",
        "prod",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if yes {
        a.push("--yes".into());
    }
    a
}

fn tags(store: &dyn Store) -> Vec<String> {
    let mut t: Vec<String> = store
        .tags()
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect();
    t.sort();
    t
}

fn check_pruned(s: &Scene) {
    let store = open(&s.repo);
    for d in [&s.old, &s.old_sig, &s.old_sig_sig, &s.old_legacy] {
        assert!(gone(store.as_ref(), d), "{d} is still there");
    }
    for d in [
        &s.old_release,
        &s.protected,
        &s.recent,
        &s.recent_sig,
        &s.release_sig,
    ] {
        store.get_manifest(d).unwrap();
    }
    let remaining = tags(store.as_ref());
    // No tag of the deleted artifact or its attachments is left behind.
    for t in &remaining {
        assert!(
            !t.contains(s.old.hex()) && !t.contains(s.old_sig.hex()),
            "orphaned tag {t} in {remaining:?}"
        );
    }
    for t in ["build-2", "build-3", "prod", "v1.0.0"] {
        assert!(
            remaining.iter().any(|r| r == t),
            "{t} missing from {remaining:?}"
        );
    }
    assert!(!remaining.iter().any(|r| r == "build-1"), "{remaining:?}");
    // Kept artifacts keep their signatures.
    let found: Vec<Digest> = custody::storage::transfer::checked_referrers(
        store.as_ref(),
        &s.recent,
        &Default::default(),
    )
    .unwrap()
    .into_iter()
    .map(|f| f.descriptor.digest)
    .collect();
    assert_eq!(found, vec![s.recent_sig.clone()]);
    let found: Vec<Digest> = custody::storage::transfer::checked_referrers(
        store.as_ref(),
        &s.old_release,
        &Default::default(),
    )
    .unwrap()
    .into_iter()
    .map(|f| f.descriptor.digest)
    .collect();
    assert_eq!(found, vec![s.release_sig.clone()]);
}

#[test]
fn prune_on_a_real_registry_deletes_artifacts_with_their_referrers() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let s = scene(dir.path(), format!("{}/team/app", registry.base));

    // Without --yes: a plan, nothing deleted.
    let args = prune_args(&s.repo, false);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let plan = ok(&args);
    assert!(plan.contains("keep 3, delete 1"), "{plan}");
    assert!(plan.contains("no rule keeps it"), "{plan}");
    assert!(plan.contains("protected tag prod"), "{plan}");
    assert!(
        plan.contains("tag v1.0.0 matches release pattern v*"),
        "{plan}"
    );
    assert!(plan.contains("dry run: nothing deleted"), "{plan}");
    open(&s.repo).get_manifest(&s.old).unwrap();

    let args = prune_args(&s.repo, true);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let done = ok_json(&args);
    let deletions = done["deletions"].as_array().unwrap();
    assert_eq!(deletions.len(), 1);
    assert_eq!(deletions[0]["digest"], s.old.to_string());
    // Attachments first (deepest first), the artifact last.
    let deleted: Vec<&str> = deletions[0]["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(
        deleted.first().copied(),
        Some(s.old_sig_sig.to_string().as_str())
    );
    assert_eq!(deleted.last().copied(), Some(s.old.to_string().as_str()));
    check_pruned(&s);
}

#[test]
fn prune_on_a_referrers_api_registry() {
    let registry = support::shared_referrers_registry();
    let dir = support::tempdir();
    let s = scene(dir.path(), format!("{}/team/app", registry.base));
    let args = prune_args(&s.repo, true);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&args);
    check_pruned(&s);
}

#[test]
fn prune_on_an_oci_layout() {
    let dir = support::tempdir();
    let s = scene(
        dir.path(),
        format!("oci:{}", dir.path().join("layout").display()),
    );
    let args = prune_args(&s.repo, true);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&args);
    check_pruned(&s);
}

#[test]
fn a_registry_that_refuses_deletes_is_reported() {
    // Its own registry: manifest deletion is off, which the shared one allows.
    let registry = Registry::start_with_delete(false);
    let dir = support::tempdir();
    let s = scene(dir.path(), format!("{}/team/app", registry.host));
    let args = prune_args(&s.repo, true);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&args);
    assert_eq!(code(&o), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("1 of 1 artifact(s) could not be deleted"),
        "{err}"
    );
    assert!(err.contains(&format!("NOT deleted {}", s.old)), "{err}");
    assert!(err.contains("storage.delete.enabled"), "{err}");
    let store = open(&s.repo);
    for d in [&s.old, &s.old_sig, &s.old_sig_sig, &s.old_legacy] {
        store.get_manifest(d).unwrap();
    }
}

#[test]
fn prune_without_rules_refuses_to_run() {
    let dir = support::tempdir();
    let o = run(&["prune", &format!("oci:{}", dir.path().display()), "--yes"]);
    assert_eq!(code(&o), Some(2));
    assert!(
        stderr(&o).contains("no retention rule given"),
        "{}",
        stderr(&o)
    );
}

// ------------------------------------------------------------------------------ audit

struct Audit {
    _dir: tempfile::TempDir,
    log: PathBuf,
    key: PathBuf,
    public: PathBuf,
    work: PathBuf,
}

fn audit_setup() -> Audit {
    let dir = support::tempdir();
    let prefix = dir.path().join("audit");
    let o = support::custody()
        .args(["keygen", "--output-key-prefix", prefix.to_str().unwrap()])
        .env("COSIGN_PASSWORD", "pw")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    Audit {
        log: dir.path().join("audit.log"),
        key: prefix.with_extension("key"),
        public: prefix.with_extension("pub"),
        work,
        _dir: dir,
    }
}

fn audited(a: &Audit, args: &[&str]) -> Output {
    support::custody()
        .args(args)
        .env("CUSTODY_AUDIT_LOG", &a.log)
        .env("CUSTODY_AUDIT_KEY", &a.key)
        .env("CUSTODY_AUDIT_CHECKPOINT_EVERY", "3")
        .env("COSIGN_PASSWORD", "pw")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .env("USER", "tester")
        .output()
        .unwrap()
}

fn verify(a: &Audit) -> Output {
    run(&[
        "audit",
        "verify",
        a.log.to_str().unwrap(),
        "--key",
        a.public.to_str().unwrap(),
    ])
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn rewrite(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// Writes a log through real commands: 4 pushes, a copy, a prune (+ checkpoints).
fn audited_history(a: &Audit) -> Vec<String> {
    let layout = format!("oci:{}", a.work.join("layout").display());
    for i in 0..4 {
        let f = a.work.join(format!("f{i}"));
        std::fs::write(&f, format!("file {i}")).unwrap();
        let o = audited(
            a,
            &[
                "push",
                f.to_str().unwrap(),
                "--to",
                &format!("{layout}:b{i}"),
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let copy_to = format!("oci:{}:b0", a.work.join("other").display());
    let o = audited(a, &["copy", &format!("{layout}:b0"), &copy_to]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = audited(a, &["prune", &layout, "--protect-tag", "b3", "--yes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    lines(&a.log)
}

#[test]
fn commands_write_a_verifiable_audit_log() {
    let a = audit_setup();
    let l = audited_history(&a);
    // 6 records and a checkpoint after every 2 (seq 3, 6, 9).
    assert_eq!(l.len(), 9, "{l:#?}");
    let actions: Vec<String> = l
        .iter()
        .map(|x| {
            serde_json::from_str::<serde_json::Value>(x).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            "push",
            "push",
            "checkpoint",
            "push",
            "push",
            "checkpoint",
            "copy",
            "prune",
            "checkpoint"
        ]
    );
    let first: serde_json::Value = serde_json::from_str(&l[0]).unwrap();
    assert_eq!(first["actor"], "local:tester");
    assert_eq!(first["outcome"], "ok");
    assert!(first["artifact"].as_str().unwrap().starts_with("sha256:"));
    let prune: serde_json::Value = serde_json::from_str(&l[7]).unwrap();
    assert_eq!(prune["details"]["deletions"].as_array().unwrap().len(), 3);

    let o = verify(&a);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("9 record(s), last seq 9, 3 checkpoint(s), 3 signature(s) verified"),
        "{out}"
    );
    assert!(out.contains("known checkpoint: seq 9"), "{out}");
    assert!(out.ends_with("intact\n"), "{out}");

    let shown = ok_json(&["audit", "show", a.log.to_str().unwrap(), "--action", "push"]);
    assert_eq!(shown.as_array().unwrap().len(), 4);
    let digest = first["artifact"].as_str().unwrap();
    let shown = ok_json(&[
        "audit",
        "show",
        a.log.to_str().unwrap(),
        "--artifact",
        digest,
    ]);
    let seqs: Vec<u64> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 7]);
    let shown = ok_json(&[
        "audit",
        "show",
        a.log.to_str().unwrap(),
        "--actor",
        "someone",
        "--since",
        "2000-01-01",
    ]);
    assert_eq!(shown, serde_json::json!([]));
}

fn tampered(a: &Audit, original: &[String], edit: impl FnOnce(&mut Vec<String>)) -> String {
    let mut l = original.to_vec();
    edit(&mut l);
    rewrite(&a.log, &l);
    let o = verify(a);
    assert_eq!(code(&o), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    // The report comes first, naming the same problem as the error after it.
    let err = stderr(&o);
    let problem = err
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("error: audit log tampered: "))
        .unwrap_or_else(|| panic!("{err}"));
    let out = stdout(&o);
    assert!(out.ends_with(&format!("TAMPERED: {problem}\n")), "{out}");
    assert!(out.contains(" record(s), last seq "), "{out}");
    err
}

#[test]
fn every_kind_of_audit_tampering_is_detected() {
    let a = audit_setup();
    let original = audited_history(&a);

    let err = tampered(&a, &original, |l| {
        l[1] = l[1].replace("\"outcome\":\"ok\"", "\"outcome\":\"refused\"")
    });
    assert!(
        err.contains("audit log tampered: edited at line 2 (seq 2)"),
        "{err}"
    );

    let err = tampered(&a, &original, |l| {
        l.remove(3);
    });
    assert!(
        err.contains("audit log tampered: deleted at line 4 (seq 5)"),
        "{err}"
    );

    let err = tampered(&a, &original, |l| l.swap(3, 4));
    assert!(
        err.contains("audit log tampered: reordered at line 4 (seq 5)"),
        "{err}"
    );

    let err = tampered(&a, &original, |l| {
        let mut forged: serde_json::Value = serde_json::from_str(&l[8]).unwrap();
        forged["seq"] = 10.into();
        forged["action"] = "push".into();
        forged.as_object_mut().unwrap().remove("checkpoint");
        forged["prev"] = Digest::of(b"not the chain").to_string().into();
        l.push(forged.to_string());
    });
    assert!(
        err.contains("audit log tampered: out-of-chain at line 10 (seq 10)"),
        "{err}"
    );

    // Cut back behind the last checkpoint (seq 9): the checkpoint file remembers it.
    let err = tampered(&a, &original, |l| l.truncate(4));
    assert!(
        err.contains("audit log tampered: truncated at line 5 (seq 4)"),
        "{err}"
    );
    assert!(err.contains("a checkpoint at seq 9 was signed"), "{err}");

    // A checkpoint whose signature is not the key's.
    let err = tampered(&a, &original, |l| {
        let mut cp: serde_json::Value = serde_json::from_str(&l[2]).unwrap();
        let sig = cp["checkpoint"]["signature"].as_str().unwrap().to_owned();
        let other = if sig.starts_with('M') { "N" } else { "M" };
        cp["checkpoint"]["signature"] = format!("{other}{}", &sig[1..]).into();
        l[2] = cp.to_string();
    });
    assert!(
        err.contains("audit log tampered: bad-checkpoint-signature at line 3 (seq 3)"),
        "{err}"
    );

    rewrite(&a.log, &original);
    assert_eq!(code(&verify(&a)), Some(0));
}

#[test]
fn a_crash_mid_write_is_survived() {
    let a = audit_setup();
    let original = audited_history(&a);
    // The process died while writing a ninth record.
    let mut bytes = std::fs::read(&a.log).unwrap();
    bytes.extend_from_slice(br#"{"type":"custody.audit/v1","seq":9,"time":"2026"#);
    std::fs::write(&a.log, &bytes).unwrap();
    let o = verify(&a);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("line 10: torn last record (47 bytes)"),
        "{}",
        stdout(&o)
    );

    // A torn tail does not hide an earlier edit.
    let text = String::from_utf8(bytes.clone()).unwrap();
    std::fs::write(
        &a.log,
        text.replacen("\"outcome\":\"ok\"", "\"outcome\":\"failed\"", 1),
    )
    .unwrap();
    let o = verify(&a);
    assert_eq!(code(&o), Some(1));
    assert!(stderr(&o).contains("edited at line 1"), "{}", stderr(&o));

    // The next command ends the torn line, records the recovery and goes on.
    std::fs::write(&a.log, &bytes).unwrap();
    let f = a.work.join("after");
    std::fs::write(&f, b"after the crash").unwrap();
    let layout = format!("oci:{}:after", a.work.join("layout").display());
    let o = audited(&a, &["push", f.to_str().unwrap(), "--to", &layout]);
    assert!(o.status.success(), "{}", stderr(&o));
    let l = lines(&a.log);
    assert_eq!(&l[..9], &original[..]);
    let recover: serde_json::Value = serde_json::from_str(&l[10]).unwrap();
    assert_eq!(recover["action"], "recover");
    assert_eq!(recover["details"]["tornBytes"], 47);
    let o = verify(&a);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("line 10: a record torn by a crash"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn the_audit_log_can_go_to_standard_output() {
    let dir = support::tempdir();
    let f = dir.path().join("f");
    std::fs::write(&f, b"x").unwrap();
    let o = support::custody()
        .args([
            "push",
            f.to_str().unwrap(),
            "--to",
            &format!("oci:{}:v1", dir.path().join("l").display()),
        ])
        .env("CUSTODY_AUDIT_LOG", "-")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let record: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(record["type"], "custody.audit/v1");
    assert_eq!(record["action"], "push");
    assert_eq!(record["seq"], 1);
}
