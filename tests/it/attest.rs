//! Attestation content end to end: source records from real git repositories made here, SBOMs
//! from lockfile fixtures, provenance statements, each checked by independent validators.

use std::path::{Path, PathBuf};
use std::process::Command;

use custody::evidence::source::{self, DirtyPolicy, SourceError, SourceHints, SourceOptions};

/// A git repository in a temporary folder, driven by the `git` binary with fixed dates and no
/// user or system configuration.
struct Repo {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

const DATE: &str = "2024-01-02T03:04:05Z";

fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .env("GIT_AUTHOR_DATE", DATE)
        .env("GIT_COMMITTER_DATE", DATE)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("work");
        std::fs::create_dir(&path).unwrap();
        git_in(&path, &["init", "-q", "-b", "main"]);
        let repo = Repo { _dir: dir, path };
        repo.write("README.md", "hello\n");
        repo.write(".gitignore", "target/\n");
        repo.git(&["add", "."]);
        repo.git(&["commit", "-q", "-m", "first"]);
        repo
    }

    fn git(&self, args: &[&str]) -> String {
        git_in(&self.path, args)
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.path.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn commit(&self, rel: &str, text: &str) -> String {
        self.write(rel, text);
        self.git(&["add", rel]);
        self.git(&["commit", "-q", "-m", rel]);
        self.git(&["rev-parse", "HEAD"])
    }
}

fn strict() -> SourceOptions {
    SourceOptions::default()
}

fn allow_dirty() -> SourceOptions {
    SourceOptions {
        dirty: DirtyPolicy::Allow,
        ..SourceOptions::default()
    }
}

#[test]
fn clean_repo_records_commit_tree_branch_and_stripped_remote() {
    let repo = Repo::new();
    repo.git(&[
        "remote",
        "add",
        "origin",
        "https://x-access-token:ghs_SECRET@GitHub.com/octo/hello.git",
    ]);
    let record = source::record(&repo.path, &strict()).unwrap();
    assert_eq!(record.commit.as_str(), repo.git(&["rev-parse", "HEAD"]));
    assert_eq!(
        record.tree.as_str(),
        repo.git(&["rev-parse", "HEAD^{tree}"])
    );
    assert_eq!(record.git_ref.as_deref(), Some("refs/heads/main"));
    assert_eq!(
        record.repository.as_ref().unwrap().as_str(),
        "git+https://github.com/octo/hello"
    );
    assert!(!record.dirty && !record.signed && !record.shallow && !record.detached);
    assert!(record.tags.is_empty());
    let json = serde_json::to_string(&record).unwrap();
    assert!(!json.contains("SECRET"), "{json}");
}

#[test]
fn scp_like_remote_and_subfolder() {
    let repo = Repo::new();
    repo.git(&[
        "remote",
        "add",
        "origin",
        "git@gitlab.com:group/sub/proj.git",
    ]);
    repo.commit("src/lib.rs", "fn x() {}\n");
    let record = source::record(&repo.path.join("src"), &strict()).unwrap();
    assert_eq!(
        record.repository.unwrap().as_str(),
        "git+https://gitlab.com/group/sub/proj"
    );
}

#[test]
fn no_remote_records_no_repository() {
    let repo = Repo::new();
    let record = source::record(&repo.path, &strict()).unwrap();
    assert_eq!(record.repository, None);
    assert_eq!(record.dependency_uri(), None);
}

#[test]
fn modified_tracked_file_is_refused_then_recorded() {
    let repo = Repo::new();
    repo.write("README.md", "changed\n");
    let err = source::record(&repo.path, &strict()).unwrap_err();
    assert!(
        matches!(&err, SourceError::Dirty { count: 1, paths, .. } if paths == &["README.md"]),
        "{err}"
    );
    assert!(err.to_string().contains("README.md"));
    let record = source::record(&repo.path, &allow_dirty()).unwrap();
    assert!(record.dirty);
    assert_eq!(record.dirty_paths, ["README.md"]);
}

#[test]
fn untracked_file_is_dirty_but_ignored_file_is_not() {
    let repo = Repo::new();
    repo.write("target/debug/app", "binary");
    let record = source::record(&repo.path, &strict()).unwrap();
    assert!(!record.dirty);

    repo.write("notes/todo.txt", "x");
    let err = source::record(&repo.path, &strict()).unwrap_err();
    assert!(
        matches!(&err, SourceError::Dirty { paths, .. } if paths == &["notes/todo.txt"]),
        "{err}"
    );
}

#[test]
fn staged_and_deleted_files_are_dirty() {
    let repo = Repo::new();
    repo.write("new.txt", "x");
    repo.git(&["add", "new.txt"]);
    std::fs::remove_file(repo.path.join("README.md")).unwrap();
    let record = source::record(&repo.path, &allow_dirty()).unwrap();
    assert_eq!(record.dirty_paths, ["README.md", "new.txt"]);
}

#[test]
fn shallow_clone_is_recorded() {
    let repo = Repo::new();
    repo.commit("a.txt", "a");
    let head = repo.commit("b.txt", "b");
    let clone = repo._dir.path().join("clone");
    let url = format!("file://{}", repo.path.display());
    git_in(
        repo._dir.path(),
        &["clone", "-q", "--depth", "1", &url, clone.to_str().unwrap()],
    );
    let record = source::record(&clone, &strict()).unwrap();
    assert!(record.shallow);
    assert_eq!(record.commit.as_str(), head);
    assert_eq!(
        record.repository.unwrap().as_str(),
        format!("git+file://{}", repo.path.display())
    );
}

#[test]
fn detached_head_takes_ref_and_repository_from_ci() {
    let repo = Repo::new();
    let head = repo.commit("a.txt", "a");
    repo.git(&["checkout", "-q", "--detach", "HEAD"]);
    let hints = SourceHints {
        repository_url: Some("https://github.com/octo/hello".into()),
        git_ref: Some("refs/tags/v1.0.0".into()),
        commit: Some(head.clone()),
    };
    let options = SourceOptions {
        hints,
        ..SourceOptions::default()
    };
    let record = source::record(&repo.path, &options).unwrap();
    assert!(record.detached);
    assert_eq!(record.git_ref.as_deref(), Some("refs/tags/v1.0.0"));
    assert_eq!(
        record.dependency_uri().as_deref(),
        Some("git+https://github.com/octo/hello@refs/tags/v1.0.0")
    );

    let wrong = SourceOptions {
        hints: SourceHints {
            commit: Some("0".repeat(40)),
            ..SourceHints::default()
        },
        ..SourceOptions::default()
    };
    let err = source::record(&repo.path, &wrong).unwrap_err();
    assert!(
        matches!(&err, SourceError::CommitMismatch { head: h, .. } if *h == head),
        "{err}"
    );
}

#[test]
fn annotated_and_lightweight_tags_at_head_only() {
    let repo = Repo::new();
    repo.git(&["tag", "old"]);
    repo.commit("a.txt", "a");
    repo.git(&["tag", "v1.0.0-light"]);
    repo.git(&["tag", "-a", "v1.0.0", "-m", "release"]);
    let record = source::record(&repo.path, &strict()).unwrap();
    assert_eq!(record.tags, ["v1.0.0", "v1.0.0-light"]);
}

#[test]
fn commit_with_gpgsig_header_is_signed() {
    let repo = Repo::new();
    let tree = repo.git(&["rev-parse", "HEAD^{tree}"]);
    let parent = repo.git(&["rev-parse", "HEAD"]);
    let object = format!(
        "tree {tree}\nparent {parent}\nauthor Ada <ada@example.com> 1704164645 +0000\n\
         committer Ada <ada@example.com> 1704164645 +0000\n\
         gpgsig -----BEGIN PGP SIGNATURE-----\n \n ZmFrZSBzaWduYXR1cmU=\n -----END PGP SIGNATURE-----\n\nsigned\n"
    );
    let file = repo._dir.path().join("commit.txt");
    std::fs::write(&file, object).unwrap();
    let id = repo.git(&["hash-object", "-t", "commit", "-w", file.to_str().unwrap()]);
    repo.git(&["update-ref", "refs/heads/main", &id]);
    let record = source::record(&repo.path, &strict()).unwrap();
    assert_eq!(record.commit.as_str(), id);
    assert!(record.signed);
}

#[test]
fn unborn_repository_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    git_in(dir.path(), &["init", "-q"]);
    let err = source::record(dir.path(), &strict()).unwrap_err();
    assert!(matches!(err, SourceError::Unborn { .. }), "{err}");
}

// ------------------------------------------------------------------- independent validators

/// The venv `scripts/install-python-tools` makes.
fn tools_dir() -> PathBuf {
    match std::env::var_os("CUSTODY_TOOLS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
            .join(".cache/custody/tools"),
    }
}

fn validate_sbom(path: &Path, version: &str) {
    if let Some(why) = crate::support::sbom_violations(path, version) {
        panic!("validator rejected {}:\n{why}", path.display());
    }
}

fn validate_statement(path: &Path) {
    if let Some(why) = crate::support::statement_violations(path) {
        panic!("validator rejected {}:\n{why}", path.display());
    }
}

// ------------------------------------------------------------------------ lockfile fixtures

use custody::evidence::attest::{self, ProvenanceInput, ResourceDescriptor, Timestamp};
use custody::evidence::ci;
use custody::evidence::sbom::{self, Artifact, SbomOptions, SerialNumber, SpecVersion};
use custody::foundation::digest::Digest;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lockfiles")
        .join(rel)
}

const FIXTURES: [(&str, &str); 7] = [
    ("cargo", "Cargo.lock"),
    ("npm-v2", "package-lock.json"),
    ("npm-v3", "package-lock.json"),
    ("go", "go.mod"),
    ("uv", "uv.lock"),
    ("poetry", "poetry.lock"),
    ("requirements", "requirements.txt"),
];

fn expected_purls(dir: &str) -> Vec<String> {
    std::fs::read_to_string(fixture(dir).join("expected-purls.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_lockfile_fixture_gives_its_expected_purls() {
    for (dir, file) in FIXTURES {
        let lock = sbom::read_lockfile(&fixture(dir).join(file)).unwrap();
        let mut purls: Vec<String> = lock.packages.iter().map(|p| p.purl.to_string()).collect();
        purls.sort();
        purls.dedup();
        assert_eq!(purls, expected_purls(dir), "{dir}/{file}");
    }
}

fn all_locks() -> Vec<sbom::Lock> {
    FIXTURES
        .iter()
        .map(|(dir, file)| sbom::read_lockfile(&fixture(dir).join(file)).unwrap())
        .collect()
}

fn artifacts() -> Vec<Artifact> {
    vec![
        Artifact {
            name: "app-linux-amd64".into(),
            digest: Digest::of(b"amd64"),
        },
        Artifact {
            name: "app-linux-arm64".into(),
            digest: Digest::of(b"arm64"),
        },
    ]
}

fn bom_json(locks: &[sbom::Lock], spec: SpecVersion, seed: u8) -> serde_json::Value {
    let mut options = SbomOptions::new(Timestamp::from_unix(1_700_000_000 + u64::from(seed)));
    options.spec_version = spec;
    options.serial_number = Some(SerialNumber::from_bytes([seed; 16]));
    let bom = sbom::generate(&artifacts(), locks, &options).unwrap();
    serde_json::from_slice(&bom.to_json_bytes().unwrap()).unwrap()
}

#[test]
fn sbom_of_every_fixture_validates_against_cyclonedx_1_6_and_1_5() {
    let dir = tempfile::tempdir().unwrap();
    let locks = all_locks();
    for (spec, name) in [(SpecVersion::V1_6, "1.6"), (SpecVersion::V1_5, "1.5")] {
        let path = dir.path().join(format!("all-{name}.cdx.json"));
        let bytes = serde_json::to_vec_pretty(&bom_json(&locks, spec, 1)).unwrap();
        std::fs::write(&path, bytes).unwrap();
        validate_sbom(&path, name);
    }
    for lock in locks {
        let path = dir.path().join("one.cdx.json");
        let json = bom_json(std::slice::from_ref(&lock), SpecVersion::V1_6, 2);
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        validate_sbom(&path, "1.6");
    }
}

#[test]
fn sbom_is_deterministic_except_serial_and_timestamp() {
    let locks = all_locks();
    let mut a = bom_json(&locks, SpecVersion::V1_6, 3);
    let mut b = bom_json(&all_locks(), SpecVersion::V1_6, 4);
    assert_ne!(a["serialNumber"], b["serialNumber"]);
    for v in [&mut a, &mut b] {
        v["serialNumber"] = serde_json::Value::Null;
        v["metadata"]["timestamp"] = serde_json::Value::Null;
    }
    assert_eq!(a, b);
}

#[test]
fn sbom_components_refs_graph_and_origins() {
    let json = bom_json(&all_locks(), SpecVersion::V1_6, 5);
    let components = json["components"].as_array().unwrap();
    let refs: Vec<&str> = components
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    let mut unique = refs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), refs.len(), "bom-refs are unique");
    assert_eq!(refs, unique, "components are sorted by bom-ref");
    // Both semver versions stay distinct, and @scope/ui depends on the nested one.
    let deps = json["dependencies"].as_array().unwrap();
    let ui = deps
        .iter()
        .find(|d| d["ref"] == "pkg:npm/%40scope/ui@3.2.1")
        .unwrap();
    assert_eq!(ui["dependsOn"], serde_json::json!(["pkg:npm/semver@6.3.1"]));
    let find = |r: &str| components.iter().find(|c| c["bom-ref"] == r).unwrap();
    assert_eq!(find("pkg:npm/typescript@5.3.3")["scope"], "excluded");
    assert_eq!(find("pkg:npm/fsevents@2.3.3")["scope"], "optional");
    assert_eq!(find("pkg:pypi/pytest@8.1.1")["scope"], "excluded");
    assert_eq!(find("pkg:pypi/pysocks@1.7.1")["scope"], "optional");
    assert_eq!(find("pkg:pypi/ruff@0.3.0")["scope"], "excluded");
    let ms = find("pkg:npm/ms@2.1.2");
    assert_eq!(ms["hashes"][0]["alg"], "SHA-512");
    assert_eq!(
        ms["externalReferences"][0],
        serde_json::json!({"type": "distribution",
            "url": "https://registry.npmjs.org/ms/-/ms-2.1.2.tgz"})
    );
    let itoa = find("pkg:cargo/itoa@1.0.11");
    assert_eq!(
        itoa["hashes"][0]["content"],
        "49f1f14873335454500d59611f1cf4a4b0f786f9ac11f4312a78e4cf2566695b"
    );
    let has_property = |c: &serde_json::Value, name: &str, value: &str| {
        c["properties"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == name && p["value"] == value)
    };
    assert!(has_property(
        itoa,
        "custody:resolved-from",
        "registry+https://github.com/rust-lang/crates.io-index"
    ));
    assert!(has_property(
        find("pkg:cargo/helper@0.1.0"),
        "custody:source-kind",
        "path"
    ));
    assert!(has_property(
        find("pkg:pypi/urllib3@2.2.1"),
        "custody:source-kind",
        "git"
    ));
    // The artifact: the first lockfile root names it; both files carry their SHA-256.
    let meta = &json["metadata"]["component"];
    assert_eq!(meta["name"], "cli");
    assert_eq!(meta["components"].as_array().unwrap().len(), 2);
    assert_eq!(
        meta["components"][1]["hashes"][0]["content"],
        Digest::of(b"arm64").hex()
    );
}

// ---------------------------------------------------------------------- provenance statements

fn github_env(sha: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GITHUB_ACTIONS", "true".into()),
        ("GITHUB_SERVER_URL", "https://github.com".into()),
        ("GITHUB_REPOSITORY", "octo/hello".into()),
        ("GITHUB_REPOSITORY_ID", "1".into()),
        ("GITHUB_REPOSITORY_OWNER_ID", "2".into()),
        ("GITHUB_REF", "refs/tags/v1.0.0".into()),
        ("GITHUB_SHA", sha.into()),
        (
            "GITHUB_WORKFLOW_REF",
            "octo/hello/.github/workflows/release.yml@refs/tags/v1.0.0".into(),
        ),
        ("GITHUB_RUN_ID", "42".into()),
        ("GITHUB_RUN_ATTEMPT", "1".into()),
        ("GITHUB_EVENT_NAME", "push".into()),
        ("RUNNER_ENVIRONMENT", "github-hosted".into()),
    ]
}

fn gitlab_env(sha: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GITLAB_CI", "true".into()),
        ("CI_PROJECT_URL", "https://gitlab.com/group/proj".into()),
        ("CI_COMMIT_SHA", sha.into()),
        ("CI_COMMIT_BRANCH", "main".into()),
        ("CI_JOB_NAME", "build".into()),
        (
            "CI_JOB_URL",
            "https://gitlab.com/group/proj/-/jobs/7".into(),
        ),
        ("CI_RUNNER_ID", "9".into()),
    ]
}

fn env_map(pairs: Vec<(&'static str, String)>) -> std::collections::BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[test]
fn provenance_for_github_gitlab_and_local_validates() {
    let repo = Repo::new();
    let head = repo.commit("a.txt", "a");
    repo.git(&["checkout", "-q", "--detach", "HEAD"]);
    let dir = tempfile::tempdir().unwrap();
    let contexts = [
        ci::detect(&env_map(github_env(&head))).unwrap(),
        ci::detect(&env_map(gitlab_env(&head))).unwrap(),
        ci::local(),
    ];
    for (n, ctx) in contexts.iter().enumerate() {
        let options = SourceOptions {
            hints: ctx.source_hints.clone(),
            ..SourceOptions::default()
        };
        let record = source::record(&repo.path, &options).unwrap();
        let mut input = ProvenanceInput::new(
            vec![ResourceDescriptor::file("app", &Digest::of(b"app"))],
            ctx,
        );
        input.source = Some(&record);
        input.sbom = Some(ResourceDescriptor::file(
            "sbom.cdx.json",
            &Digest::of(b"{}"),
        ));
        input.materials = vec![ResourceDescriptor {
            uri: Some("pkg:docker/rust@1.80".into()),
            digest: attest::DigestSet::sha256(&Digest::of(b"image")),
            ..ResourceDescriptor::default()
        }];
        input.started_on = Some(Timestamp::from_unix(1_700_000_000));
        input.finished_on = Some(Timestamp::from_unix(1_700_000_100));
        let statement = attest::provenance(input).unwrap();
        let path = dir.path().join(format!("prov-{n}.json"));
        std::fs::write(&path, statement.to_bytes().unwrap()).unwrap();
        validate_statement(&path);
        let value: serde_json::Value =
            serde_json::from_slice(&statement.to_bytes().unwrap()).unwrap();
        let dep = &value["predicate"]["buildDefinition"]["resolvedDependencies"][0];
        assert_eq!(dep["digest"]["gitCommit"], head.as_str());
        match ctx.platform {
            ci::Platform::GithubActions => assert_eq!(
                dep["uri"],
                "git+https://github.com/octo/hello@refs/tags/v1.0.0"
            ),
            ci::Platform::GitlabCi => {
                assert_eq!(
                    dep["uri"],
                    "git+https://gitlab.com/group/proj@refs/heads/main"
                )
            }
            ci::Platform::Local => assert!(dep.get("uri").is_none()),
        }
    }
}

#[test]
fn vsa_statement_validates() {
    use attest::{VerificationResult, VerificationSummary, Verifier};
    let summary = VerificationSummary {
        verifier: Verifier {
            id: "https://custody.dev/verifier".into(),
            version: [("custody".to_owned(), "0.1.0".to_owned())].into(),
        },
        time_verified: Some(Timestamp::from_unix(1_700_000_000)),
        resource_uri: "oci://registry.example/app".into(),
        policy: ResourceDescriptor {
            uri: Some("https://example.com/policy.json".into()),
            digest: attest::DigestSet::sha256(&Digest::of(b"policy")),
            ..ResourceDescriptor::default()
        },
        input_attestations: Some(vec![ResourceDescriptor {
            uri: Some("oci://registry.example/app@sha256:00".into()),
            digest: attest::DigestSet::sha256(&Digest::of(b"prov")),
            ..ResourceDescriptor::default()
        }]),
        verification_result: VerificationResult::Passed,
        verified_levels: vec!["SLSA_BUILD_LEVEL_2".into()],
        dependency_levels: Some(Default::default()),
        slsa_version: Some("1.0".into()),
    };
    let statement = attest::verification_summary(
        vec![ResourceDescriptor::file("app", &Digest::of(b"app"))],
        summary,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vsa.json");
    std::fs::write(&path, statement.to_bytes().unwrap()).unwrap();
    validate_statement(&path);
}

// ------------------------------------------------------------------------------- the binary

fn custody(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custody"));
    cmd.args(args).current_dir(dir);
    for var in ["GITHUB_ACTIONS", "GITLAB_CI"] {
        cmd.env_remove(var);
    }
    cmd.output().expect("custody runs")
}

#[test]
fn cli_sbom_and_provenance_in_a_clean_checkout() {
    let repo = Repo::new();
    repo.git(&["remote", "add", "origin", "git@github.com:octo/hello.git"]);
    std::fs::copy(fixture("cargo/Cargo.lock"), repo.path.join("Cargo.lock")).unwrap();
    repo.git(&["add", "Cargo.lock"]);
    repo.git(&["commit", "-q", "-m", "lock"]);
    repo.git(&["tag", "v0.4.0"]);
    let out_dir = tempfile::tempdir().unwrap();
    let artifact = out_dir.path().join("cli");
    std::fs::write(&artifact, b"binary").unwrap();
    let sbom_path = out_dir.path().join("sbom.cdx.json");
    let prov_path = out_dir.path().join("provenance.json");

    let out = custody(
        &repo.path,
        &[
            "--output",
            "json",
            "sbom",
            artifact.to_str().unwrap(),
            "-o",
            sbom_path.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["components"], 4);
    validate_sbom(&sbom_path, "1.6");
    let bom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sbom_path).unwrap()).unwrap();
    assert_eq!(bom["metadata"]["component"]["version"], "0.4.0");

    let out = custody(
        &repo.path,
        &[
            "provenance",
            artifact.to_str().unwrap(),
            "--sbom",
            sbom_path.to_str().unwrap(),
            "-o",
            prov_path.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    validate_statement(&prov_path);
    let prov: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&prov_path).unwrap()).unwrap();
    assert_eq!(
        prov["predicate"]["runDetails"]["builder"]["id"],
        ci::LOCAL_BUILDER_ID
    );
    assert_eq!(
        prov["predicate"]["runDetails"]["byproducts"][0]["digest"]["sha256"],
        Digest::of(&std::fs::read(&sbom_path).unwrap()).hex()
    );

    // A dirty tree stops provenance with exit code 2 and names the path.
    repo.write("stray.txt", "x");
    let out = custody(
        &repo.path,
        &[
            "provenance",
            artifact.to_str().unwrap(),
            "-o",
            prov_path.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stray.txt"));
}

// ------------------------------------------------------------------------- cargo-cyclonedx

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every `pkg:cargo` purl (percent-decoded) in a CycloneDX document's components, nested ones
/// included.
fn cargo_purls(bom: &serde_json::Value) -> std::collections::BTreeSet<String> {
    fn walk(list: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
        for c in list.as_array().into_iter().flatten() {
            if let Some(p) = c["purl"].as_str().filter(|p| p.starts_with("pkg:cargo/")) {
                out.insert(percent_decode(p));
            }
            walk(&c["components"], out);
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(&bom["components"], &mut out);
    out
}

fn cargo_cyclonedx(project: &Path, extra: &[&str], name: &str) -> serde_json::Value {
    let tool = tools_dir().join("bin/cargo-cyclonedx");
    assert!(
        tool.exists(),
        "cargo-cyclonedx missing at {}: run scripts/install-python-tools first",
        tool.display()
    );
    let out = Command::new(&tool)
        .args([
            "cyclonedx",
            "--format",
            "json",
            "-q",
            "--override-filename",
            name,
        ])
        .args(extra)
        .current_dir(project)
        .output()
        .expect("cargo-cyclonedx runs");
    assert!(
        out.status.success(),
        "cargo-cyclonedx failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(project.join(format!("{name}.json"))).unwrap()).unwrap()
}

/// Oracle: custody's purls for its own Cargo.lock against `cargo cyclonedx`.
///
/// Known, explained differences:
/// - cargo-cyclonedx reads `cargo metadata`, which resolves features and targets: by default
///   it reports only the packages the host target needs with default features, while
///   `Cargo.lock` (and so custody, which never runs cargo) lists every package any target or
///   feature may need. With `--all-features --target all` both sets must be equal.
/// - cargo-cyclonedx (the `purl` crate) leaves `+` in versions unencoded (`toml@1.2.2+spec-1.1.0`);
///   the purl standard permits only alphanumerics, `.-_~`, `%` and separators, so custody writes
///   `%2B`. Purls are compared percent-decoded.
/// - the root package is `metadata.component` in both (cargo-cyclonedx adds
///   `?download_url=file://.` to it), not a component, so it is not compared.
#[test]
fn cargo_purls_match_cargo_cyclonedx() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = tempfile::tempdir().unwrap();
    for file in ["Cargo.toml", "Cargo.lock"] {
        std::fs::copy(manifest_dir.join(file), project.path().join(file)).unwrap();
    }
    for dir in ["src", "benches", "examples", "tests"] {
        if manifest_dir.join(dir).is_dir() {
            copy_tree(&manifest_dir.join(dir), &project.path().join(dir));
        }
    }

    let lock = sbom::read_lockfile(&project.path().join("Cargo.lock")).unwrap();
    let bom = sbom::generate(
        &[Artifact {
            name: "custody".into(),
            digest: Digest::of(b"custody"),
        }],
        &[lock],
        &SbomOptions::new(Timestamp::from_unix(0)),
    )
    .unwrap();
    // cargo-cyclonedx leaves dev-dependencies out; custody lists them with `scope: excluded`
    // (cargo-cyclonedx marks build-dependencies so, and keeps them), so custody's are not compared.
    let mut shipped = serde_json::to_value(&bom).unwrap();
    if let Some(list) = shipped["components"].as_array_mut() {
        list.retain(|c| c["scope"] != "excluded");
    }
    let ours = cargo_purls(&shipped);

    let everything = cargo_cyclonedx(
        project.path(),
        &["--all-features", "--target", "all"],
        "all",
    );
    let theirs = cargo_purls(&everything);
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only custody: {only_ours:?}\nonly cargo-cyclonedx: {only_theirs:?}"
    );
    assert!(
        ours.len() > 50,
        "custody's own lock has {} crates",
        ours.len()
    );

    // Default mode (host target, default features) reports a subset of the lockfile.
    let host = cargo_purls(&cargo_cyclonedx(project.path(), &[], "host"));
    let missing: Vec<_> = host.difference(&ours).collect();
    assert!(missing.is_empty(), "custody misses {missing:?}");
}

/// Truncated and corrupted lockfiles give errors (or fewer packages), never a panic.
#[test]
fn damaged_lockfiles_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    for (fixture_dir, file) in FIXTURES {
        let original = std::fs::read(fixture(fixture_dir).join(file)).unwrap();
        let sub = dir.path().join(fixture_dir);
        std::fs::create_dir_all(&sub).unwrap();
        let path = sub.join(file);
        let mut variants: Vec<Vec<u8>> = (0..original.len())
            .step_by(13)
            .map(|cut| original[..cut].to_vec())
            .collect();
        for at in (0..original.len()).step_by(29) {
            let mut flipped = original.clone();
            flipped[at] ^= 0x80;
            variants.push(flipped);
            let mut swapped = original.clone();
            swapped[at] = b'[';
            variants.push(swapped);
        }
        for bytes in variants {
            std::fs::write(&path, &bytes).unwrap();
            let _ = sbom::read_lockfile(&path);
        }
    }
}

#[test]
fn cli_source_in_a_detached_github_checkout() {
    let repo = Repo::new();
    let head = repo.commit("a.txt", "a");
    repo.git(&["checkout", "-q", "--detach", "HEAD"]);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custody"));
    cmd.args(["--output", "json", "source"])
        .current_dir(&repo.path);
    cmd.env_remove("GITLAB_CI");
    for (k, v) in github_env(&head) {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["repository"], "git+https://github.com/octo/hello");
    assert_eq!(record["ref"], "refs/tags/v1.0.0");
    assert_eq!(record["commit"], head.as_str());
    assert_eq!(record["detached"], true);

    // The CI says it built another commit: refuse, exit 2.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custody"));
    cmd.args(["source"]).current_dir(&repo.path);
    cmd.env_remove("GITLAB_CI");
    for (k, v) in github_env(&"0".repeat(40)) {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the ci says it built"));
}

#[test]
fn cli_sbom_spec_1_5_with_explicit_lockfiles_validates() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("web.tgz");
    std::fs::write(&artifact, b"tarball").unwrap();
    let out_path = dir.path().join("web.cdx.json");
    let out = custody(
        dir.path(),
        &[
            "sbom",
            artifact.to_str().unwrap(),
            "-o",
            out_path.to_str().unwrap(),
            "--spec-version",
            "1.5",
            "--lockfile",
            fixture("npm-v3/package-lock.json").to_str().unwrap(),
            "--lockfile",
            fixture("uv/uv.lock").to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    validate_sbom(&out_path, "1.5");
    let bom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    assert_eq!(bom["metadata"]["component"]["name"], "web");
    assert_eq!(bom["metadata"]["component"]["version"], "1.4.0");

    let out = custody(
        dir.path(),
        &[
            "sbom",
            artifact.to_str().unwrap(),
            "-o",
            out_path.to_str().unwrap(),
            "--spec-version",
            "1.4",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1.4"));
}
