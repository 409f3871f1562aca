//! Attestation content end to end: source records from real git repositories made here, SBOMs
//! from lockfile fixtures, provenance statements, each checked by independent validators.

use std::path::{Path, PathBuf};
use std::process::Command;

use custody::source::{self, DirtyPolicy, SourceError, SourceHints, SourceOptions};

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
