//! The human output of verify, tree, release, promote, scan and of errors, compared with the
//! snapshots in `tests/it/snapshots/`. What varies between runs and machines (temp paths,
//! digests, key ids, commit ids, times, sizes that follow signature lengths, ports) is redacted
//! first. Review a change with `cargo insta review`; `scripts/test` never writes snapshots.

use std::path::Path;
use std::process::Output;

use crate::release::{keypair, work_tree};
use crate::support::{self, stderr, stdout};

/// The filters that make output stable: the test's temp folder first (digests and key ids can
/// not occur inside it), then what a run or a machine changes.
fn filters(tmp: &Path) -> Vec<(String, String)> {
    let tmp = tmp.to_str().expect("utf-8 temp path");
    let mut filters = vec![(regex_escape(tmp), "[TMP]".to_owned())];
    for (pattern, replacement) in [
        (r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]"),
        (r"sha256:[0-9a-f]{12}\b", "sha256:[SHORT]"),
        (r"\b[0-9a-f]{40}\b", "[COMMIT]"),
        (r"key [A-Za-z0-9+/]{43}=", "key [KEYID]"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[TIME]"),
        (r"\b\d+ bytes\b", "[N] bytes"),
        (r"\b\d+(\.\d+)? (B|KiB|MiB|GiB)\b", "[SIZE]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
        (r"\b\d+(\.\d+)?m?s\b", "[DURATION]"),
    ] {
        filters.push((pattern.to_owned(), replacement.to_owned()));
    }
    filters
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special.then_some('\\').into_iter().chain(Some(c))
        })
        .collect()
}

/// The exit code, stdout and stderr of one run, as one snapshot.
fn shown(o: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

/// Compares `output` with the snapshot `name`, redacted with [`filters`] for `tmp`.
fn assert_output(name: &str, tmp: &Path, output: &Output) {
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in filters(tmp) {
        settings.add_filter(&pattern, replacement);
    }
    settings.bind(|| insta::assert_snapshot!(name, shown(output)));
}

/// `custody ARGS` in `dir`, as the release tests run it (their key password, no CI).
fn custody_in(dir: &Path, args: &[&str]) -> Output {
    support::custody()
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", "release-pw")
        .env("HOME", dir.parent().expect("a parent"))
        .env(
            "XDG_CONFIG_HOME",
            dir.parent().expect("a parent").join(".config"),
        )
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .output()
        .expect("custody runs")
}

#[test]
fn release_verify_tree_and_promote_read_the_same_on_every_run() {
    let dir = support::tempdir();
    let tmp = dir.path();
    let repo = work_tree(tmp);
    let (key, public) = keypair(tmp);
    let stranger_dir = tmp.join("stranger");
    std::fs::create_dir(&stranger_dir).unwrap();
    let (_, stranger) = keypair(&stranger_dir);
    let to = format!("oci:{}:v1", tmp.join("layout").display());

    let release = custody_in(
        &repo,
        &["release", "dist/app.bin", "--to", &to, "--key", &key],
    );
    assert_eq!(release.status.code(), Some(0), "{}", stderr(&release));
    assert_output("release", tmp, &release);

    let pass = custody_in(&repo, &["verify", &to, "--key", &public]);
    assert_eq!(pass.status.code(), Some(0), "{}", stderr(&pass));
    assert_output("verify_pass", tmp, &pass);

    let tree = custody_in(&repo, &["verify", &to, "--key", &public, "--tree"]);
    assert_eq!(tree.status.code(), Some(0), "{}", stderr(&tree));
    assert_output("verify_tree", tmp, &tree);

    let refused = custody_in(&repo, &["verify", &to, "--key", &stranger]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert_output("verify_refused_wrong_key", tmp, &refused);

    let listing = custody_in(&repo, &["tree", &to]);
    assert_eq!(listing.status.code(), Some(0), "{}", stderr(&listing));
    assert_output("tree", tmp, &listing);

    let dst = format!("oci:{}:v1", tmp.join("production").display());
    let promoted = custody_in(&repo, &["promote", &to, &dst, "--trust-key", &public]);
    assert_eq!(promoted.status.code(), Some(0), "{}", stderr(&promoted));
    assert_output("promote", tmp, &promoted);

    let never = format!("oci:{}:never", tmp.join("production").display());
    let not_promoted = custody_in(&repo, &["promote", &to, &never, "--trust-key", &stranger]);
    assert_eq!(
        not_promoted.status.code(),
        Some(1),
        "{}",
        stderr(&not_promoted)
    );
    assert_output("promote_refused", tmp, &not_promoted);

    let missing = format!("oci:{}:nope", tmp.join("layout").display());
    let missing_tag = custody_in(&repo, &["verify", &missing, "--key", &public]);
    assert_eq!(
        missing_tag.status.code(),
        Some(2),
        "{}",
        stderr(&missing_tag)
    );
    assert_output("error_missing_tag", tmp, &missing_tag);
}

#[test]
fn scan_findings_and_the_failing_threshold_read_the_same_on_every_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let db = root.join("../shared/testdata/osv/crates.io");
    let o = support::custody()
        .current_dir(root)
        .args(["scan", "tests/fixtures/vuln/Cargo.lock", "--db"])
        .arg(&db)
        .args(["--fail-on", "critical"])
        .output()
        .expect("custody runs");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_output("scan_refused", root, &o);
}

#[test]
fn usage_errors_read_the_same_on_every_run() {
    let dir = support::tempdir();
    let missing = custody_in(dir.path(), &["verify"]);
    assert_eq!(missing.status.code(), Some(2));
    assert_output("error_usage_missing_argument", dir.path(), &missing);

    let unknown = custody_in(dir.path(), &["verify", "--bogus", "x"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert_output("error_usage_unknown_flag", dir.path(), &unknown);
}
