//! What custody leaves on disk: file modes that honour the umask (keys stay private), read
//! commands that create nothing, and temporary files of a killed writer cleaned by the next.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;

use crate::support::{stderr, stdout};

/// custody under `umask`, through a shell, as a user's session would run it.
fn custody_with_umask(umask: &str, args: &[&str]) -> Output {
    let binary = env!("CARGO_BIN_EXE_custody");
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(binary)
        .args(args)
        .env("COSIGN_PASSWORD", "modes-pw")
        .env("CUSTODY_RETRY_BASE_MS", "20")
        .output()
        .expect("sh runs custody")
}

fn custody(args: &[&str]) -> Output {
    crate::support::custody()
        .args(args)
        .env("COSIGN_PASSWORD", "modes-pw")
        .output()
        .expect("custody runs")
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// Every file and folder below `root` with its mode, for messages and checks.
fn modes_below(root: &Path) -> Vec<(String, bool, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let is_dir = path.is_dir();
            out.push((path.display().to_string(), is_dir, mode(&path)));
            if is_dir {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Issue 12, item 2: pushed layouts and pulled files were written 0600 whatever the umask, so
/// a mirror or a pulled binary could not be served or run by another user. Now files are 0666
/// and folders 0777 less the umask, under 022 and 027 alike; the private key stays 0600.
#[test]
fn layout_and_pulled_files_honour_the_umask() {
    for (umask, file_mode, dir_mode) in [("022", 0o644, 0o755), ("027", 0o640, 0o750)] {
        let d = crate::support::tempdir();
        std::fs::write(d.path().join("app.bin"), b"the artifact\n").unwrap();
        let layout = d.path().join("layout");
        let to = format!("oci:{}:v1", layout.display());
        let o = custody_with_umask(
            umask,
            &[
                "push",
                d.path().join("app.bin").to_str().unwrap(),
                "--to",
                &to,
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let pulled = d.path().join("pulled");
        let o = custody_with_umask(umask, &["pull", &to, "-o", pulled.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));

        let mut seen = 0;
        for root in [&layout, &pulled] {
            for (path, is_dir, found) in modes_below(root) {
                let want = if is_dir { dir_mode } else { file_mode };
                assert_eq!(found, want, "umask {umask}: {path} is {found:o}");
                seen += 1;
            }
        }
        assert_eq!(mode(&pulled.join("app.bin")), file_mode, "umask {umask}");
        assert_eq!(mode(&layout.join("index.json")), file_mode, "umask {umask}");
        assert!(seen >= 8, "umask {umask}: only {seen} paths checked");

        let prefix = d.path().join("release");
        let o = custody_with_umask(
            umask,
            &["keygen", "--output-key-prefix", prefix.to_str().unwrap()],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(mode(&d.path().join("release.key")), 0o600, "umask {umask}");
    }
}

/// Issue 12, item 4: `verify oci:./nosuchdir:1` created a layout (`oci-layout`, `index.json`,
/// `blobs/`, a lock file) and said "tag not found". Every read command now says there is no
/// layout there, exits 2 and creates nothing, for a missing folder and for an empty one.
#[test]
fn read_commands_create_no_layout() {
    let d = crate::support::tempdir();
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = custody(&[
        "keygen",
        "--output-key-prefix",
        d.path().join("key").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for dir in ["nosuchdir", "empty"] {
        let reference = format!("oci:./{dir}:1");
        let copy_to = format!("oci:./copied-{dir}:1");
        let out = format!("./out-{dir}");
        let commands: Vec<Vec<&str>> = vec![
            vec!["verify", &reference, "--key", "key.pub"],
            vec!["verify", &reference, "--key", "key.pub", "--offline"],
            vec!["tree", &reference],
            vec!["pull", &reference, "-o", &out],
            vec!["copy", &reference, &copy_to],
            vec!["discover", &reference],
            vec!["resolve", &reference],
            vec!["scan", &reference, "--db", "nodb"],
        ];
        for args in commands {
            let o = crate::support::custody()
                .current_dir(d.path())
                .args(&args)
                .output()
                .unwrap();
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {err}{}", stdout(&o));
            assert!(
                err.contains(&format!("no OCI layout at ./{dir}")),
                "{args:?}: {err}"
            );
        }
        assert!(!d.path().join(format!("copied-{dir}")).exists());
        assert!(!d.path().join(format!("out-{dir}")).exists());
    }
    assert!(!d.path().join("nosuchdir").exists());
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

/// No empty `.index.json.lock` is left behind: writers remove it with their lock, and reads of
/// an existing layout never take one.
#[test]
fn reads_of_a_layout_take_no_lock() {
    let d = crate::support::tempdir();
    std::fs::write(d.path().join("app.bin"), b"the artifact\n").unwrap();
    let layout = d.path().join("layout");
    let to = format!("oci:{}:v1", layout.display());
    let o = custody(&[
        "push",
        d.path().join("app.bin").to_str().unwrap(),
        "--to",
        &to,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Writers remove the lock file with their lock; a read never takes one.
    assert!(!layout.join(".index.json.lock").exists());
    for args in [
        vec!["resolve", to.as_str()],
        vec!["discover", to.as_str()],
        vec!["tree", to.as_str()],
    ] {
        let o = custody(&args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    let pulled = d.path().join("pulled");
    let o = custody(&["pull", &to, "-o", pulled.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!layout.join(".index.json.lock").exists());
}

/// A killed pull or push leaves `.custody-tmp-*` files; the next writing run removes those
/// older than an hour, and leaves a fresh one (a writer may still own it) and other files.
#[test]
fn stale_temporary_files_are_removed_by_the_next_writer() {
    let d = crate::support::tempdir();
    std::fs::write(d.path().join("app.bin"), b"the artifact\n").unwrap();
    let layout = d.path().join("layout");
    let to = format!("oci:{}:v1", layout.display());
    let o = custody(&[
        "push",
        d.path().join("app.bin").to_str().unwrap(),
        "--to",
        &to,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pulled = d.path().join("pulled");
    std::fs::create_dir(&pulled).unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
    let blobs = layout.join("blobs/sha256");
    let mut stale = Vec::new();
    let mut kept = Vec::new();
    for dir in [&layout, &blobs, &pulled] {
        let old = dir.join(".custody-tmp-killed");
        std::fs::write(&old, b"half a blob").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
        stale.push(old);
        let fresh = dir.join(".custody-tmp-running");
        std::fs::write(&fresh, b"being written").unwrap();
        kept.push(fresh);
        let other = dir.join("notes-custody-tmp");
        std::fs::write(&other, b"someone else's").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&other)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
        kept.push(other);
    }
    // A read changes nothing.
    let o = custody(&["resolve", &to]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stale.iter().all(|p| p.exists()));

    let o = custody(&[
        "push",
        d.path().join("app.bin").to_str().unwrap(),
        "--to",
        &format!("oci:{}:v2", layout.display()),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = custody(&["pull", &to, "-o", pulled.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for p in &stale {
        assert!(!p.exists(), "{} was left", p.display());
    }
    for p in &kept {
        assert!(p.exists(), "{} was removed", p.display());
    }
}

/// custody in `dir` with `stdin` on its standard input.
fn custody_piped(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write as _;
    let mut child = crate::support::custody()
        .current_dir(dir)
        .args(args)
        .env("COSIGN_PASSWORD", "modes-pw")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("custody runs");
    let mut input = child.stdin.take().expect("piped");
    // custody may stop reading early (a refusal); a broken pipe here is its answer, not ours.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().expect("custody ends")
}

/// A work tree with one commit at a fixed date, for `sbom` and `provenance`.
fn committed_repo(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("README"), b"hello\n").unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "README"],
        &["commit", "-q", "-m", "first"],
    ] {
        let o = std::process::Command::new("git")
            .current_dir(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
    }
}

/// No command wrote a file named `-` anywhere below `dir`.
fn assert_no_dash_file(dir: &Path) {
    for (path, _, _) in modes_below(dir) {
        assert!(!path.ends_with("/-"), "a file named - was written: {path}");
    }
}

/// Issue 12, item 3: `-` is standard output for `sbom -o`, `provenance -o` and
/// `sign-blob --bundle` (the document alone on stdout, the summary on stderr), and standard
/// input for `digest`, `scan`, `policy check` and `verify-bundle --bundle`. Before, each wrote
/// or read a file named `-`.
#[test]
fn dash_means_standard_input_or_output() {
    let d = crate::support::tempdir();
    let repo = d.path().join("repo");
    committed_repo(&repo);
    let app = d.path().join("app.bin");
    std::fs::write(&app, b"the artifact\n").unwrap();
    let app = app.to_str().unwrap();

    let o = custody_piped(&repo, &["sbom", app, "-o", "-"], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let sbom: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is the SBOM");
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert!(
        stderr(&o).contains("sbom written to standard output"),
        "{}",
        stderr(&o)
    );
    let o = custody_piped(&repo, &["--output", "json", "sbom", app, "-o", "-"], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let again: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(again["bomFormat"], "CycloneDX");
    let report: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(report["path"], "-");

    let o = custody_piped(&repo, &["provenance", app, "-o", "-"], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let statement: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");

    let db = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/osv/crates.io");
    let o = custody_piped(
        d.path(),
        &["scan", "-", "--db", db.to_str().unwrap()],
        &serde_json::to_vec(&sbom).unwrap(),
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let o = custody_piped(
        d.path(),
        &["scan", "-", "--db", db.to_str().unwrap()],
        b"{\"not\": \"an sbom\"",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let o = custody_piped(d.path(), &["digest", "-"], b"hello");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  5  -\n"
    );

    // The starter policy names keys/release.pub and keys/dev.pub, relative to the current folder on stdin.
    std::fs::create_dir(d.path().join("keys")).unwrap();
    for prefix in ["keys/release", "keys/dev"] {
        let o = custody_piped(d.path(), &["keygen", "--output-key-prefix", prefix], b"");
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let starter = custody_piped(d.path(), &["policy", "init", "-"], b"");
    assert!(starter.status.success(), "{}", stderr(&starter));
    let o = custody_piped(d.path(), &["policy", "check", "-"], &starter.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("standard input is a valid policy"),
        "{}",
        stdout(&o)
    );
    let o = custody_piped(d.path(), &["policy", "check", "-"], b"scopes: [");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("standard input is not a valid policy"),
        "{}",
        stderr(&o)
    );

    let o = custody_piped(d.path(), &["keygen", "--output-key-prefix", "k"], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = custody_piped(
        d.path(),
        &["sign-blob", app, "--key", "k.key", "--bundle", "-"],
        b"",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let bundle = o.stdout.clone();
    let parsed: serde_json::Value = serde_json::from_slice(&bundle).expect("stdout is the bundle");
    assert!(
        parsed["mediaType"]
            .as_str()
            .unwrap()
            .contains("sigstore.bundle")
    );
    assert!(stderr(&o).contains("bundle written to standard output"));
    let o = custody_piped(
        d.path(),
        &["verify-bundle", app, "--key", "k.pub", "--bundle", "-"],
        &bundle,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let other = d.path().join("other.bin");
    std::fs::write(&other, b"another artifact\n").unwrap();
    let o = custody_piped(
        d.path(),
        &[
            "verify-bundle",
            other.to_str().unwrap(),
            "--key",
            "k.pub",
            "--bundle",
            "-",
        ],
        &bundle,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    assert_no_dash_file(d.path());
}

/// Where `-` cannot be a stream (a key pair is two files, a pull writes a folder) it is a
/// usage error, exit 2, and nothing named `-` is created.
#[test]
fn dash_is_refused_where_it_cannot_be_a_stream() {
    let d = crate::support::tempdir();
    let o = custody_piped(d.path(), &["keygen", "--output-key-prefix", "-"], b"");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--output-key-prefix cannot be `-` (standard input or output)"),
        "{}",
        stderr(&o)
    );
    std::fs::write(d.path().join("app.bin"), b"the artifact\n").unwrap();
    let o = custody_piped(
        d.path(),
        &["push", "app.bin", "--to", "oci:./layout:v1"],
        b"",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = custody_piped(d.path(), &["pull", "oci:./layout:v1", "-o", "-"], b"");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--output-dir cannot be `-`"),
        "{}",
        stderr(&o)
    );
    // Report files beside a report on standard output: refused before anything is signed.
    let blobs = std::fs::read_dir(d.path().join("layout/blobs/sha256"))
        .unwrap()
        .count();
    let o = custody_piped(d.path(), &["keygen", "--output-key-prefix", "k"], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    for args in [
        &["sign", "oci:./layout:v1", "--key", "k.key", "--bundle", "-"][..],
        &["verify", "oci:./layout:v1", "--key", "k.pub", "--vsa", "-"],
        &[
            "verify",
            "oci:./layout:v1",
            "--key",
            "k.pub",
            "--junit",
            "-",
        ],
        &["scan", "app.bin", "--db", "nodb", "--sarif", "-"],
    ] {
        let o = custody_piped(d.path(), args, b"");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("cannot be `-`"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    assert_eq!(
        std::fs::read_dir(d.path().join("layout/blobs/sha256"))
            .unwrap()
            .count(),
        blobs,
        "something was signed"
    );
    let o = custody_piped(d.path(), &["digest", "-", "-"], b"x");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_no_dash_file(d.path());
    assert!(!d.path().join("-.key").exists());
}

/// Writers in several processes at once still lose no tag now that each removes the lock file
/// with its lock, and none is left afterwards.
#[test]
fn concurrent_pushes_keep_every_tag_and_leave_no_lock() {
    let d = crate::support::tempdir();
    let layout = d.path().join("layout");
    let children: Vec<_> = (0..6)
        .map(|i| {
            let file = d.path().join(format!("app-{i}.bin"));
            std::fs::write(&file, format!("artifact {i}\n")).unwrap();
            crate::support::custody()
                .args(["push", file.to_str().unwrap(), "--to"])
                .arg(format!("oci:{}:v{i}", layout.display()))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    for i in 0..6 {
        let o = custody(&["resolve", &format!("oci:{}:v{i}", layout.display())]);
        assert!(o.status.success(), "v{i}: {}", stderr(&o));
    }
    assert!(!layout.join(".index.json.lock").exists());
}
