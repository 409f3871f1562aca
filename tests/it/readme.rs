//! The README's worked examples, extracted and run: the first set-up command in a temporary copy
//! of the repository, and every `sh` block marked `<!-- run: NAME -->` against real local
//! registries standing in for the hosts the README names.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{self, Registry};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fenced code blocks of a language, in order.
pub fn code_blocks(markdown: &str, lang: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut current, fence) {
            (None, Some(info)) if info.trim() == lang => current = Some(String::new()),
            (Some(block), Some(_)) => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), None) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

/// The `sh` block that follows `<!-- run: NAME -->`.
fn marked_block(markdown: &str, name: &str) -> String {
    let marker = format!("<!-- run: {name} -->");
    let at = markdown
        .find(&marker)
        .unwrap_or_else(|| panic!("the README has no {marker}"));
    code_blocks(&markdown[at..], "sh")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no sh block after {marker}"))
}

/// Files of the repository as git tracks them, copied to `dest`.
fn copy_checkout(dest: &Path) {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output()
        .expect("git runs");
    assert!(out.status.success());
    for path in out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let rel = Path::new(std::str::from_utf8(path).unwrap());
        let from = root().join(rel);
        if !from.is_file() {
            continue;
        }
        let to = dest.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A shell with custody on PATH, a private HOME (for the development key) and no CI variables.
fn shell(dir: &Path, home: &Path, script: &str) -> std::process::Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_custody")).parent().unwrap();
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("CUSTODY_BIN", env!("CARGO_BIN_EXE_custody"))
        .env("CUSTODY_RETRY_BASE_MS", "20")
        .env("COSIGN_PASSWORD", "readme-example");
    for (k, _) in std::env::vars() {
        if k.starts_with("GITHUB_") || k.starts_with("GITLAB_") || k.starts_with("CI_") || k == "CI"
        {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("bash runs")
}

fn assert_ok(name: &str, out: &std::process::Output) {
    assert!(
        out.status.success(),
        "README example {name} failed ({:?}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh checkout: the repository's files, committed, in a temporary folder.
fn fresh_checkout() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = support::tempdir();
    let repo = dir.path().join("custody");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    copy_checkout(&repo);
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "checkout"]);
    (dir, repo, home)
}

#[test]
fn first_command_leaves_a_verifiable_artifact_in_the_default_store() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let setup = code_blocks(&readme, "sh").remove(0);
    let first = setup
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .find(|l| !l.is_empty())
        .expect("a first command")
        .to_owned();
    assert_eq!(
        first, "scripts/quickstart",
        "the README's first set-up command"
    );
    let (_dir, repo, home) = fresh_checkout();
    let out = shell(&repo, &home, &first);
    assert_ok("quickstart", &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pinned = stdout
        .split_whitespace()
        .find(|w| {
            w.starts_with("oci:.custody/store@sha256:")
                || w.starts_with("oci:./.custody/store@sha256:")
        })
        .unwrap_or_else(|| panic!("quickstart names what it released:\n{stdout}"))
        .to_owned();
    // Verified again from the outside, with the development key it created.
    let key = home.join(".config/custody/dev-key.pub");
    assert!(key.is_file(), "the development key was created");
    let out = shell(
        &repo,
        &home,
        &format!("custody verify '{pinned}' --key '{}'", key.display()),
    );
    assert_ok("verify after quickstart", &out);
}

/// Runs the README's registry examples in order against two local registries standing in for
/// the staging and production hosts the README names, and the air-gap example offline.
#[test]
fn registry_promote_and_air_gap_examples_run_as_written() {
    // Two registries of their own: they stand in for the README's two hosts, replaced by bare
    // host:port.
    let staging = Registry::start();
    let prod = Registry::start();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let (_dir, repo, home) = fresh_checkout();
    let substitute = |script: String| {
        script
            .replace("staging.example.com", &staging.host)
            .replace("registry.example.com", &prod.host)
    };
    for name in ["keys", "release", "verify", "promote", "air-gap"] {
        let script = substitute(marked_block(&readme, name));
        let out = shell(&repo, &home, &script);
        assert_ok(name, &out);
    }
}
