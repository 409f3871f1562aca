//! The everyday conventions of issue 12: the first laptop command works in an ordinary
//! repository, releasing outside git says what to do, what custody writes carries its creation
//! time (so retention works on it), a re-run of a finished release attaches nothing new, and an
//! audit key that checked nothing is not called a pass.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use custody::foundation::digest::Digest;
use custody::foundation::reference::Reference;
use custody::storage::store::{self, Store};

use crate::release::keypair;
use crate::support::{self, stderr, stdout};

fn git(repo: &Path, args: &[&str], date: &str) {
    let o = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .output()
        .unwrap();
    assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
}

/// A repository as people have them: committed source, no `.gitignore` for `dist/`.
fn plain_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("main.c"), "int main(void) { return 0; }\n").unwrap();
    git(&repo, &["init", "-q", "-b", "main"], "2026-01-01T00:00:00Z");
    git(&repo, &["add", "-A"], "2026-01-01T00:00:00Z");
    git(
        &repo,
        &["commit", "-q", "-m", "source"],
        "2026-01-01T00:00:00Z",
    );
    repo
}

/// Runs `custody <args>` in `dir` with its own HOME (development key) and no CI.
fn custody_in(dir: &Path, home: &Path, args: &[&str]) -> Output {
    support::custody()
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("COSIGN_PASSWORD", "release-pw")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}\n{}", stdout(o), stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

fn open(reference: &str) -> Box<dyn Store> {
    store::open(
        &reference.parse::<Reference>().unwrap(),
        &store::Options::default(),
    )
    .unwrap()
}

fn manifest_annotations(store: &dyn Store, digest: &str) -> serde_json::Value {
    let digest: Digest = digest.parse().unwrap();
    let m = store.get_manifest(&digest).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
    v["annotations"].clone()
}

// ------------------------------------------------------------------- item 1: dirty tree

#[test]
fn the_first_laptop_command_works_with_dist_not_ignored() {
    let dir = support::tempdir();
    let repo = plain_repo(dir.path());
    std::fs::create_dir(repo.join("dist")).unwrap();
    std::fs::write(repo.join("dist/app.tar"), "x\n").unwrap();

    // The README's first command, verbatim: the artifact and `.custody/` are not "dirty".
    let o = custody_in(&repo, dir.path(), &["release", "dist/app.tar"]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).starts_with("released oci:.custody/store@sha256:"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("(dirty)"), "{}", stdout(&o));

    // A real change still refuses, names only that path, and says how to get past it.
    std::fs::write(repo.join("main.c"), "int main(void) { return 1; }\n").unwrap();
    std::fs::write(repo.join("dist/app.tar"), "y\n").unwrap();
    let o = custody_in(&repo, dir.path(), &["release", "dist/app.tar"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("has 1 uncommitted or untracked paths: main.c\n"),
        "{err}"
    );
    assert!(
        err.contains("hint: commit or stash the changes") && err.contains("--allow-dirty"),
        "{err}"
    );
}

#[test]
fn releasing_outside_git_says_what_to_do_and_no_source_records_it() {
    let dir = support::tempdir();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("app.tar"), "x\n").unwrap();
    let o = custody_in(&work, dir.path(), &["release", "app.tar"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("is not inside a git work tree"), "{err}");
    assert!(
        err.contains("hint: release from a git work tree; outside git, use `custody push` then `custody sign` and `custody attest`, or pass --no-source"),
        "{err}"
    );

    // --no-source needs a tag: there is no commit to name the release after.
    let o = custody_in(&work, dir.path(), &["release", "app.tar", "--no-source"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("needs a tag in --to"), "{}", stderr(&o));

    let to = format!("oci:{}:v1", dir.path().join("out").display());
    let report = json(&custody_in(
        &work,
        dir.path(),
        &[
            "--output",
            "json",
            "release",
            "app.tar",
            "--no-source",
            "--to",
            &to,
        ],
    ));
    assert!(report["source"].is_null(), "{report}");
    assert_eq!(report["tag"], "v1");
    support::validate_against_schema("release-report.schema.json", &report);
    // The provenance names no commit, and the self-check did not pretend it did.
    let commit_checks: Vec<&serde_json::Value> = report["verification"]["artifact"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "commit")
        .collect();
    assert!(!commit_checks.is_empty(), "{report}");
    for c in commit_checks {
        assert_eq!(c["found"], "none", "{c}");
        assert_eq!(c["status"], "skip", "{c}");
    }
}

// ------------------------------------------------------- item 5: created, --annotation, prune

#[test]
fn push_and_release_write_the_created_annotation() {
    let dir = support::tempdir();
    let repo = plain_repo(dir.path());
    let file = dir.path().join("f.txt");
    std::fs::write(&file, "f\n").unwrap();
    let layout = format!("oci:{}", dir.path().join("layout").display());

    // SOURCE_DATE_EPOCH wins for a push.
    let o = support::custody()
        .args(["--output", "json", "push", file.to_str().unwrap()])
        .args(["--to", &format!("{layout}:a")])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    let pushed = json(&o);
    let store = open(&layout);
    let a = manifest_annotations(store.as_ref(), pushed["digest"].as_str().unwrap());
    assert_eq!(
        a["org.opencontainers.image.created"],
        "2023-11-14T22:13:20Z"
    );

    // A release takes the commit's time, and --annotation adds to it.
    std::fs::write(repo.join("app.tar"), "x\n").unwrap();
    let to = format!("{layout}:r1");
    let report = json(&custody_in(
        &repo,
        dir.path(),
        &[
            "--output",
            "json",
            "release",
            "app.tar",
            "--to",
            &to,
            "--annotation",
            "org.example.team=web",
        ],
    ));
    let a = manifest_annotations(store.as_ref(), report["digest"].as_str().unwrap());
    assert_eq!(
        a["org.opencontainers.image.created"],
        "2026-01-01T00:00:00Z"
    );
    assert_eq!(a["org.example.team"], "web");

    // A malformed SOURCE_DATE_EPOCH is an error naming it.
    let o = support::custody()
        .args([
            "push",
            file.to_str().unwrap(),
            "--to",
            &format!("{layout}:b"),
        ])
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("SOURCE_DATE_EPOCH=\"yesterday\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn prune_keep_last_deletes_custodys_own_old_releases() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let repo = plain_repo(dir.path());
    let (key, _) = keypair(dir.path());
    let repository = format!("{}/acme/app", registry.base);
    std::fs::write(repo.join("app.tar"), "x\n").unwrap();
    let mut released = Vec::new();
    for (i, date) in [
        "2026-01-02T00:00:00Z",
        "2026-01-03T00:00:00Z",
        "2026-01-04T00:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(
            repo.join("main.c"),
            format!("int main(void) {{ return {}; }}\n", i + 1),
        )
        .unwrap();
        git(&repo, &["commit", "-q", "-am", "change"], date);
        let report = json(&custody_in(
            &repo,
            dir.path(),
            &[
                "--output",
                "json",
                "release",
                "app.tar",
                "--to",
                &repository,
                "--key",
                &key,
            ],
        ));
        released.push(report["digest"].as_str().unwrap().to_owned());
    }
    let o = custody_in(
        &repo,
        dir.path(),
        &["prune", &repository, "--keep-last", "1", "--yes"],
    );
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let store = open(&repository);
    for (i, digest) in released.iter().enumerate() {
        let d: Digest = digest.parse().unwrap();
        let found = store.get_manifest(&d);
        if i < 2 {
            assert!(
                matches!(found, Err(store::Error::NotFound { .. })),
                "release {i} was not pruned: {}",
                stdout(&o)
            );
        } else {
            assert!(found.is_ok(), "the newest release was deleted");
            assert_eq!(store.referrers(&d).unwrap().descriptors.len(), 3);
        }
    }
}

// --------------------------------------------------------------------- item 8: re-runs

#[test]
fn a_rerun_of_a_finished_release_attaches_nothing_new() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let repo = plain_repo(dir.path());
    let (key, _) = keypair(dir.path());
    std::fs::write(repo.join("app.tar"), "x\n").unwrap();
    let to = format!("{}/acme/app:v1", registry.base);
    let args = [
        "--output", "json", "release", "app.tar", "--to", &to, "--key", &key,
    ];
    let first = json(&custody_in(&repo, dir.path(), &args));
    assert_eq!(first["alreadyReleased"], false);
    let digest: Digest = first["digest"].as_str().unwrap().parse().unwrap();
    let store = open(&to);
    let count = || store.referrers(&digest).unwrap().descriptors.len();
    assert_eq!(count(), 3);

    let second = json(&custody_in(&repo, dir.path(), &args));
    assert_eq!(second["digest"], first["digest"]);
    assert_eq!(second["alreadyReleased"], true);
    assert_eq!(second["tagOutcome"]["result"], "unchanged");
    assert_eq!(second["referrers"], first["referrers"], "{second}");
    support::validate_against_schema("release-report.schema.json", &second);
    assert_eq!(count(), 3, "a re-run attached new referrers");

    let o = custody_in(&repo, dir.path(), &args[2..]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("already released "),
        "{}",
        stdout(&o)
    );
    assert_eq!(count(), 3);

    // Another signer is not "the same release": it attaches its own set.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let (other_key, _) = keypair(&other);
    let third = json(&custody_in(
        &repo,
        dir.path(),
        &[
            "--output", "json", "release", "app.tar", "--to", &to, "--key", &other_key,
        ],
    ));
    assert_eq!(third["alreadyReleased"], false);
    assert_eq!(count(), 6);
}

// ------------------------------------------------------------------------ item 9: audit

#[test]
fn audit_verify_with_a_key_but_no_checkpoint_warns_or_refuses() {
    let dir = support::tempdir();
    let (private, public) = keypair(dir.path());
    let log = dir.path().join("audit.log");
    let file = dir.path().join("f.txt");
    std::fs::write(&file, "f\n").unwrap();
    let layout = format!("oci:{}", dir.path().join("layout").display());
    let push = |tag: &str, key: Option<&str>| {
        let mut c = support::custody();
        c.args([
            "push",
            file.to_str().unwrap(),
            "--to",
            &format!("{layout}:{tag}"),
        ])
        .env("CUSTODY_AUDIT_LOG", &log)
        .env("COSIGN_PASSWORD", "release-pw")
        .env("CUSTODY_AUDIT_CHECKPOINT_EVERY", "1");
        if let Some(k) = key {
            c.env("CUSTODY_AUDIT_KEY", k);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    };
    // No CUSTODY_AUDIT_KEY where the log is written: no checkpoints.
    push("a", None);
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", log.to_str().unwrap(), "--key", &public];
        args.extend_from_slice(extra);
        support::run(&args)
    };
    let o = verify(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: the log has no signed checkpoint, so --key checked nothing"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("CUSTODY_AUDIT_KEY"), "{}", stderr(&o));
    assert!(
        stdout(&o).ends_with("intact (hash chain only)\n"),
        "{}",
        stdout(&o)
    );

    let o = verify(&["--require-checkpoint"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--key checked nothing"),
        "{}",
        stderr(&o)
    );

    let o = support::run(&[
        "--output",
        "json",
        "audit",
        "verify",
        log.to_str().unwrap(),
        "--key",
        &public,
    ]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["checkpointsVerified"], 0);
    assert_eq!(
        report["warnings"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    support::validate_against_schema("audit-reports.schema.json", &report);

    // With signed checkpoints the same flags pass cleanly.
    push("b", Some(&private));
    let o = verify(&["--require-checkpoint"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    assert!(stdout(&o).ends_with("intact\n"), "{}", stdout(&o));
}

fn sources_fixture(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sources")
        .join(path)
        .display()
        .to_string()
}

#[test]
fn sources_check_reads_the_verification_policy_and_chooses_a_scope() {
    let lock = sources_fixture("npm/package-lock.json");
    let policy = sources_fixture("policy.yaml");
    // The only scope with a `sources:` section, by name, or the one that applies to a
    // repository: the same rules, the same violation.
    for extra in [
        &[][..],
        &["--scope", "internal"][..],
        &["--repository", "registry.acme.internal/web/app"][..],
    ] {
        let mut args = vec!["sources", "check", &lock, "--policy", &policy];
        args.extend_from_slice(extra);
        let o = support::run(&args);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", stderr(&o));
        assert!(
            stdout(&o).contains("VIOLATION pkg:npm/%40acme/utils@99.0.0"),
            "{}",
            stdout(&o)
        );
        assert!(!stderr(&o).contains("note:"), "{}", stderr(&o));
    }
    // A scope without rules, or a repository only such a scope covers: exit 2, what to add.
    for extra in [["--scope", "public"], ["--repository", "ghcr.io/acme/app"]] {
        let mut args = vec!["sources", "check", &lock, "--policy", &policy];
        args.extend_from_slice(&extra);
        let o = support::run(&args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}");
        assert!(
            stderr(&o).contains("scope public of policy")
                && stderr(&o).contains("has no sources: section")
                && stderr(&o).contains("hint: add `sources: {internal:"),
            "{}",
            stderr(&o)
        );
    }
    let o = support::run(&[
        "sources", "check", &lock, "--policy", &policy, "--scope", "nope",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("has no scope named \"nope\" (scopes: internal, public)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_old_sources_only_file_is_still_read_with_a_note_pointing_to_the_policy() {
    let lock = sources_fixture("npm/package-lock.json");
    for old in ["policy.json", "policy.toml"] {
        let o = support::run(&["sources", "check", &lock, "--policy", &sources_fixture(old)]);
        assert_eq!(o.status.code(), Some(1), "{old}: {}", stderr(&o));
        assert!(
            stdout(&o).contains("VIOLATION pkg:npm/%40acme/utils@99.0.0"),
            "{}",
            stdout(&o)
        );
        assert!(
            stderr(&o).starts_with("note: ")
                && stderr(&o).contains(
                    "is the old sources-only format; put its rules under the `sources:` of a scope"
                ),
            "{}",
            stderr(&o)
        );
    }
    let o = support::run(&[
        "sources",
        "check",
        &lock,
        "--policy",
        &sources_fixture("policy.json"),
        "--scope",
        "internal",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("it has no scopes to choose from"),
        "{}",
        stderr(&o)
    );
}
