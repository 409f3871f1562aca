//! End to end on real registries: release to staging, verify with a policy file, promote to
//! production, verify there with the same policy, read the tree; and the ways a promotion is
//! refused or cut short, each with its exact reason.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use custody::foundation::digest::Digest;
use custody::foundation::reference::Reference;
use custody::storage::store::{self, Store};

use crate::release::{keypair, release_in, work_tree};
use crate::support::{self, CutProxy, Registry, stderr, stdout};

/// The consumer's policy: the release key, provenance from the local builder with the
/// commit, an SBOM signed by the release key.
pub fn policy_file(dir: &Path, public_key: &str) -> PathBuf {
    let path = dir.join("policy.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\nscopes:\n  - name: acme\n    repositories: [\"**/acme/app\"]\n    signers:\n      - name: release-key\n        key: {public_key}\n    threshold: 1\n    provenance:\n      required: true\n      builders:\n        - id: https://custody.dev/builders/local@v1\n      require_commit: true\n    sbom:\n      required: true\n      signers: [release-key]\n"
        ),
    )
    .unwrap();
    path
}

/// Runs custody with the release key's password, an audit log and a fixed local actor.
fn custody(dir: &Path, args: &[&str]) -> Output {
    support::custody()
        .args(args)
        .env("COSIGN_PASSWORD", "release-pw")
        .env("CUSTODY_AUDIT_LOG", dir.join("audit.log"))
        .env("USER", "tester")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .output()
        .unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

fn ok_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let all = [&["--output", "json"][..], args].concat();
    let o = custody(dir, &all);
    assert!(
        o.status.success(),
        "custody {args:?} failed ({:?}):\n{}\n{}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    json(&o)
}

fn open(reference: &str) -> Box<dyn Store> {
    store::open(
        &reference.parse::<Reference>().unwrap(),
        &store::Options::default(),
    )
    .unwrap()
}

/// Releases `dist/app.bin` of a fresh work tree to `to`; returns the digest.
fn release(dir: &Path, repo: &Path, key: &str, to: &str, extra: &[&str]) -> Digest {
    let o = release_in(
        repo,
        &[&["dist/app.bin", "--to", to, "--key", key][..], extra].concat(),
    );
    assert!(o.status.success(), "release: {}", stderr(&o));
    let _ = dir;
    json(&o)["digest"].as_str().unwrap().parse().unwrap()
}

/// The audit log's records as JSON (`custody audit show`), after `custody audit verify`
/// accepted the log.
fn audit_records(dir: &Path) -> Vec<serde_json::Value> {
    let log = dir.join("audit.log");
    let log = log.to_str().unwrap();
    let verified = support::ok_json(&["audit", "verify", log]);
    assert!(
        verified["problem"].is_null(),
        "audit log intact: {verified}"
    );
    support::ok_json(&["audit", "show", log])
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn release_verify_promote_verify_tree() {
    // Two registries of their own: promotion crosses hosts (staging to production), so blobs are
    // copied, never mounted within one registry.
    let staging = Registry::start();
    let production = Registry::start();
    let dir = support::tempdir();
    let d = dir.path();
    let repo = work_tree(d);
    let (key, public) = keypair(d);
    let policy = policy_file(d, &public);
    let policy = policy.to_str().unwrap();
    let src = format!("{}/acme/app:1.0.0", staging.host);
    let dst = format!("{}/acme/app:1.0.0", production.host);
    let digest = release(d, &repo, &key, &src, &["--legacy-cosign-tags"]);

    let v = ok_json(d, &["verify", &src, "--policy", policy]);
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["digest"], digest.to_string());

    // A dry run verifies and says what it would copy, and copies nothing.
    let dry = ok_json(d, &["promote", &src, &dst, "--policy", policy, "--dry-run"]);
    assert_eq!(dry["verified"], true);
    assert_eq!(dry["dryRun"], true);
    assert_eq!(
        dry["copy"]["referrers"], 3,
        "signature, provenance, sbom: {dry}"
    );
    assert!(
        open(&dst)
            .get_tagged(&"1.0.0".parse().unwrap())
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        open(&dst).get_manifest(&digest),
        Err(store::Error::NotFound { .. })
    ));

    let p = ok_json(
        d,
        &[
            "promote",
            &src,
            &dst,
            "--policy",
            policy,
            "--key",
            &key,
            "--attest-promotion",
        ],
    );
    assert_eq!(p["verified"], true, "{p}");
    assert_eq!(p["digest"], digest.to_string());
    assert_eq!(p["source"], format!("{}/acme/app@{digest}", staging.host));
    assert_eq!(p["destination"], dst);
    assert_eq!(
        p["pinned"],
        format!("{}/acme/app@{digest}", production.host)
    );
    assert_eq!(p["copy"]["tag"], "1.0.0");
    assert_eq!(p["copy"]["tagOutcome"]["result"], "created");
    assert_eq!(p["copy"]["referrers"], 3);
    assert_eq!(p["copy"]["legacyTags"].as_array().unwrap().len(), 2);
    assert_eq!(p["verification"]["scope"], "acme");
    let vsa: Digest = p["promotionAttestation"].as_str().unwrap().parse().unwrap();
    let prod = open(&dst);
    assert_eq!(
        prod.get_tagged(&"1.0.0".parse().unwrap())
            .unwrap()
            .unwrap()
            .descriptor
            .digest,
        digest
    );

    // The same policy verifies at the destination: signatures travelled intact.
    let v = ok_json(d, &["verify", &dst, "--policy", policy]);
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["digest"], digest.to_string());

    // cosign agrees at the destination.
    let o = std::process::Command::new(support::tool("cosign"))
        .args([
            "verify",
            "--key",
            &public,
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            p["pinned"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "cosign verify: {}", stderr(&o));

    // The tree: four bundles (the release's signature, provenance and SBOM, and the promotion
    // record) and the three legacy layers, every one trusted and signed by the release key.
    let t = ok_json(d, &["tree", &dst, "--policy", policy]);
    assert_eq!(t["digest"], digest.to_string());
    assert_eq!(t["verification"]["verified"], true, "{t}");
    let nodes = t["nodes"].as_array().unwrap();
    let mut kinds: Vec<(String, String)> = nodes
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap().to_owned(),
                n["predicateType"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("bundle", "https://cyclonedx.org/bom"),
            ("bundle", "https://sigstore.dev/cosign/sign/v1"),
            ("bundle", "https://slsa.dev/provenance/v1"),
            ("bundle", "https://slsa.dev/verification_summary/v1"),
            ("legacy-attestation", "https://cyclonedx.org/bom"),
            ("legacy-attestation", "https://slsa.dev/provenance/v1"),
            ("legacy-signature", "-"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    for n in nodes {
        assert_eq!(n["verdict"]["trusted"], true, "{n}");
        assert_eq!(n["verdict"]["signer"], "release-key", "{n}");
        assert_eq!(n["claimedSigner"]["kind"], "key", "{n}");
    }
    let vsa_node = nodes
        .iter()
        .find(|n| n["manifest"] == vsa.to_string())
        .expect("the promotion attestation is in the tree");
    assert_eq!(
        vsa_node["predicateType"],
        "https://slsa.dev/verification_summary/v1"
    );
    let human = support::ok(&["tree", &dst, "--policy", policy]);
    assert!(human.contains("✓ trusted: release-key"), "{human}");
    assert!(
        human.ends_with(&format!("verified {}\n", p["pinned"].as_str().unwrap())),
        "{human}"
    );

    // Without a policy the tree lists claims only.
    let t = support::ok_json(&["tree", &dst]);
    assert!(t["verification"].is_null());
    assert!(
        t["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["verdict"].is_null())
    );

    // The audit log has the verdicts and the promotion, and is intact.
    let records = audit_records(d);
    let promote: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["action"] == "promote")
        .collect();
    assert_eq!(promote.len(), 2, "dry run and promotion: {records:?}");
    let last = promote[1];
    assert_eq!(last["outcome"], "ok");
    assert_eq!(last["artifact"], digest.to_string());
    assert_eq!(last["actor"], "local:tester");
    assert_eq!(last["details"]["from"], src);
    assert_eq!(last["details"]["destination"], dst);
    assert_eq!(last["details"]["to"], p["pinned"]);
    assert_eq!(last["details"]["promotionAttestation"], vsa.to_string());
    assert_eq!(promote[0]["details"]["dryRun"], true);
    let verifies: Vec<&str> = records
        .iter()
        .filter(|r| r["action"] == "verify")
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(verifies, ["ok", "ok"]);
}

#[test]
fn promote_refuses_an_untrusted_source_and_copies_nothing() {
    // Two registries of their own: promotion crosses hosts, and the test checks nothing reached
    // production.
    let staging = Registry::start();
    let production = Registry::start();
    let dir = support::tempdir();
    let d = dir.path();
    let repo = work_tree(d);
    let (key, _) = keypair(d);
    let other = support::tempdir();
    let (_, other_public) = keypair(other.path());
    let policy = policy_file(d, &other_public);
    let src = format!("{}/acme/app:1.0.0", staging.host);
    let dst = format!("{}/acme/app:1.0.0", production.host);
    let digest = release(d, &repo, &key, &src, &[]);

    let o = custody(
        d,
        &[
            "--output",
            "json",
            "promote",
            &src,
            &dst,
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = json(&o);
    assert_eq!(out["verified"], false);
    assert_eq!(out["digest"], digest.to_string());
    assert!(out["pinned"].is_null());
    assert!(out["copy"].is_null());
    let failed: Vec<&str> = out["verification"]["artifact"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        ["threshold", "provenance-present", "sbom-present"],
        "nothing is trusted: {out}"
    );
    assert!(
        stderr(&o).contains(&format!(
            "{}/acme/app@{digest} does not satisfy the policy; not promoted",
            staging.host
        )),
        "{}",
        stderr(&o)
    );
    // Nothing reached the destination.
    let prod = open(&dst);
    assert!(
        prod.get_tagged(&"1.0.0".parse().unwrap())
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        prod.get_manifest(&digest),
        Err(store::Error::NotFound { .. })
    ));
    // The human report is verify's tree, then the refusal.
    let o = custody(
        d,
        &["promote", &src, &dst, "--policy", policy.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains(&format!(
            "not promoted: {}/acme/app@{digest} did not verify; nothing was copied to {dst}",
            staging.host
        )),
        "{}",
        stdout(&o)
    );
    let records = audit_records(d);
    let outcomes: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(outcomes, [("promote", "refused"), ("promote", "refused")]);
    assert_eq!(records[0]["artifact"], digest.to_string());
    assert_eq!(
        records[0]["details"]["policyDigest"],
        Digest::of(&std::fs::read(&policy).unwrap()).to_string()
    );
}

#[test]
fn promote_refuses_to_move_an_existing_destination_tag() {
    // Two registries of their own: promotion crosses hosts (staging to production).
    let staging = Registry::start();
    let production = Registry::start();
    let dir = support::tempdir();
    let d = dir.path();
    let repo = work_tree(d);
    let (key, public) = keypair(d);
    let policy = policy_file(d, &public);
    let src = format!("{}/acme/app:1.0.0", staging.host);
    let dst = format!("{}/acme/app:1.0.0", production.host);
    let digest = release(d, &repo, &key, &src, &[]);
    // Someone already put something else under 1.0.0 at the destination.
    let squatter = d.join("other.bin");
    std::fs::write(&squatter, b"something else").unwrap();
    let pushed = support::ok_json(&["push", squatter.to_str().unwrap(), "--to", &dst]);
    let existing = pushed["digest"].as_str().unwrap().to_owned();

    let o = custody(
        d,
        &["promote", &src, &dst, "--policy", policy.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "tag 1.0.0 in {}/acme/app already names {existing}; refusing to move it to {digest}",
            production.host
        )),
        "{err}"
    );
    assert!(err.contains("hint: tags are immutable"), "{err}");
    // Refused before anything was copied; the tag is untouched.
    let prod = open(&dst);
    assert!(matches!(
        prod.get_manifest(&digest),
        Err(store::Error::NotFound { .. })
    ));
    assert_eq!(
        prod.get_tagged(&"1.0.0".parse().unwrap())
            .unwrap()
            .unwrap()
            .descriptor
            .digest
            .to_string(),
        existing
    );
    let records = audit_records(d);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["action"], "promote");
    assert_eq!(records[0]["outcome"], "refused");
}

#[test]
fn a_promote_cut_by_a_dying_registry_completes_when_run_again() {
    // Registries of their own: production is killed and restarted in the middle of the promote.
    let staging = Registry::start();
    let mut production = Registry::start();
    let dir = support::tempdir();
    let d = dir.path();
    let repo = work_tree(d);
    // A 64 MiB artifact, so the destination dies in the middle of a blob upload.
    support::write_data(&repo.join("dist/app.bin"), 64 << 20, 6);
    let (key, public) = keypair(d);
    let policy = policy_file(d, &public);
    let policy = policy.to_str().unwrap();
    let src = format!("{}/acme/app:1.0.0", staging.host);
    let digest = release(d, &repo, &key, &src, &[]);

    let proxy = CutProxy::start(&production.host, 16 << 20);
    let dst = format!("{}/acme/app:1.0.0", proxy.host);
    let child = support::custody()
        .args(["promote", &src, &dst, "--policy", policy])
        .env("CUSTODY_AUDIT_LOG", d.join("audit.log"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        proxy.wait_tripped(Duration::from_secs(120)),
        "the promotion never sent 16 MiB to the destination"
    );
    production.kill();
    proxy.release();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("then run the same promote again"),
        "{}",
        stderr(&o)
    );
    assert!(proxy.forwarded() >= 16 << 20);

    // The registry comes back with its storage; the cut promotion left no tag.
    production.restart();
    let prod = open(&dst);
    assert!(
        prod.get_tagged(&"1.0.0".parse().unwrap())
            .unwrap()
            .is_none()
    );

    let p = ok_json(d, &["promote", &src, &dst, "--policy", policy]);
    assert_eq!(p["digest"], digest.to_string());
    assert_eq!(p["copy"]["tagOutcome"]["result"], "created");
    assert_eq!(
        prod.get_tagged(&"1.0.0".parse().unwrap())
            .unwrap()
            .unwrap()
            .descriptor
            .digest,
        digest
    );
    let v = ok_json(d, &["verify", &dst, "--policy", policy]);
    assert_eq!(v["verified"], true, "{v}");
    let outcomes: Vec<(String, String)> = audit_records(d)
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [("promote", "failed"), ("promote", "ok"), ("verify", "ok")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
}

#[test]
fn audit_records_sign_attest_release_and_verify_verdicts() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let d = dir.path();
    let repo = work_tree(d);
    let (key, public) = keypair(d);
    let other = support::tempdir();
    let (_, other_public) = keypair(other.path());
    let to = format!("{}/acme/app:1.0.0", registry.base);
    let o = support::custody()
        .args(["release", "dist/app.bin", "--to", &to, "--key", &key])
        .current_dir(&repo)
        .env("COSIGN_PASSWORD", "release-pw")
        .env("CUSTODY_AUDIT_LOG", d.join("audit.log"))
        .env("USER", "tester")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let s = ok_json(d, &["sign", &to, "--key", &key]);
    let digest = s["subject"]["digest"].as_str().unwrap().to_owned();
    let predicate = d.join("predicate.json");
    std::fs::write(&predicate, br#"{"reviewed": true}"#).unwrap();
    ok_json(
        d,
        &[
            "attest",
            &to,
            "--key",
            &key,
            "--predicate",
            predicate.to_str().unwrap(),
            "--type",
            "https://example.com/review/v1",
        ],
    );
    ok_json(d, &["verify", &to, "--key", &public]);
    let o = custody(d, &["verify", &to, "--key", &other_public]);
    assert_eq!(o.status.code(), Some(1));
    let o = custody(
        d,
        &[
            "verify",
            &format!("{}/acme/missing:1", registry.base),
            "--key",
            &public,
        ],
    );
    assert_eq!(o.status.code(), Some(2));

    let records = audit_records(d);
    let seen: Vec<(&str, &str, Option<&str>)> = records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
                r["artifact"].as_str(),
            )
        })
        .collect();
    let digest = digest.as_str();
    assert_eq!(
        seen,
        [
            ("release", "ok", Some(digest)),
            ("sign", "ok", Some(digest)),
            ("attest", "ok", Some(digest)),
            ("verify", "ok", Some(digest)),
            ("verify", "refused", Some(digest)),
            ("verify", "failed", None),
        ]
    );
    assert_eq!(
        records[2]["details"]["predicateType"],
        "https://example.com/review/v1"
    );
    assert_eq!(records[3]["details"]["policy"], "flags");
    let failed = records[4]["details"]["failed"].as_array().unwrap();
    assert!(
        failed.contains(&"threshold".into()) && failed.contains(&"signature".into()),
        "{failed:?}"
    );
    assert!(records.iter().all(|r| r["actor"] == "local:tester"));
}
