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

/// Reads of an existing layout leave no lock file behind: only writers take the lock.
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
    // What the push left is the writer's; a read must not add one.
    let _ = std::fs::remove_file(layout.join(".index.json.lock"));
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
