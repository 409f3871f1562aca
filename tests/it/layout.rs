//! OCI layouts handed over from elsewhere: `verify --offline` reads only regular files inside
//! the layout folder, and says which path it refused.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::release::keypair;
use crate::support::{self, stderr, stdout};

fn custody(args: &[&str]) -> Output {
    support::custody()
        .args(args)
        .env("COSIGN_PASSWORD", "release-pw")
        .output()
        .unwrap()
}

/// A signed artifact in a fresh layout: (layout dir, digest, public key).
fn signed_layout(d: &Path) -> (PathBuf, String, String) {
    let (key, public) = keypair(d);
    let layout = d.join("layout");
    std::fs::write(d.join("app.bin"), b"the artifact\n").unwrap();
    let to = format!("oci:{}:v1", layout.display());
    let o = custody(&[
        "--output",
        "json",
        "push",
        d.join("app.bin").to_str().unwrap(),
        "--to",
        &to,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pushed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let digest = pushed["digest"].as_str().unwrap().to_owned();
    let o = custody(&["sign", &to, "--key", &key]);
    assert!(o.status.success(), "{}", stderr(&o));
    (layout, digest, public)
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn verify_offline(layout: &Path, digest: &str, public: &str) -> Output {
    custody(&[
        "verify",
        &format!("oci:{}@{digest}", layout.display()),
        "--offline",
        "--key",
        public,
    ])
}

/// Issue 10, finding 10: the artifact's manifest replaced by a FIFO. custody refuses it by
/// path (exit 2) instead of opening it, which waited forever for a writer. A writer with the
/// right bytes stands by, so a custody that opened the FIFO would read them and verify.
#[test]
fn verify_offline_refuses_a_fifo_in_the_layout() {
    let dir = support::tempdir();
    let (layout, digest, public) = signed_layout(dir.path());
    let o = verify_offline(&layout, &digest, &public);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));

    let path = blob(&layout, &digest);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    // The writer serves the bytes to every reader until told to stop, so a custody that
    // opened the FIFO (however often) would read them and verify.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (fifo, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
                let _ = f.write_all(&bytes);
            }
        })
    };
    let o = verify_offline(&layout, &digest, &public);
    // Let the writer go, whatever happened: opening a FIFO for reading and writing does not
    // wait (Linux), and gives the writer its last reader.
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let release = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    writer.join().unwrap();
    drop(release);
    assert_eq!(o.status.code(), Some(2), "{}\n{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("a FIFO, not a regular file"), "{err}");
}

/// A manifest blob that is a symlink to a file outside the layout (with the right bytes) is
/// refused by path.
#[test]
fn verify_offline_refuses_a_symlink_out_of_the_layout() {
    let dir = support::tempdir();
    let (layout, digest, public) = signed_layout(dir.path());
    let path = blob(&layout, &digest);
    let outside = dir.path().join("elsewhere");
    std::fs::rename(&path, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &path).unwrap();
    let o = verify_offline(&layout, &digest, &public);
    assert_eq!(o.status.code(), Some(2), "{}\n{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("outside the layout folder"), "{err}");
}
