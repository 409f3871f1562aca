//! actions/install.sh against a local release host: the archive pinned in actions/checksums.txt
//! for the runner's platform is downloaded and checked, a wrong checksum is refused, a platform
//! or a commit without a release falls back to `cargo install` (saying so), and a second step
//! reuses the install.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use crate::support::{self, HostileServer, Response};

const VERSION: &str = "v9.9.9";
const LINUX_X64: &str = "custody-x86_64-unknown-linux-musl.tar.gz";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A checkout of the actions: install.sh, and sources for it to take the digest of.
struct Checkout {
    dir: tempfile::TempDir,
}

impl Checkout {
    fn new() -> Checkout {
        let dir = support::tempdir();
        let root = dir.path().join("custody");
        std::fs::create_dir_all(root.join("actions")).unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        for f in ["install.sh", "lib.sh"] {
            std::fs::copy(
                repo_root().join("actions").join(f),
                root.join("actions").join(f),
            )
            .unwrap();
        }
        std::fs::write(root.join("Cargo.toml"), "[package]\nname = \"custody\"\n").unwrap();
        std::fs::write(root.join("Cargo.lock"), "version = 4\n").unwrap();
        std::fs::write(root.join("src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        // A cargo that records how it was called and "builds" a recognisable custody.
        let cargo = dir.path().join("bin/cargo");
        std::fs::write(
            &cargo,
            "#!/bin/sh\nprintf '%s\\n' \"$*\" > \"$CARGO_LOG\"\necho \"CARGO_TARGET_DIR=$CARGO_TARGET_DIR\" >> \"$CARGO_LOG\"\n\
             while [ $# -gt 0 ]; do [ \"$1\" = --root ] && root=\"$2\"; shift; done\n\
             mkdir -p \"$root/bin\"\nprintf '#!/bin/sh\\necho custody built-from-source\\n' > \"$root/bin/custody\"\nchmod +x \"$root/bin/custody\"\n",
        )
        .unwrap();
        make_executable(&cargo);
        Checkout { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("custody")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Pins a release: checksums.txt as the release workflow writes it (`install.sh --pin`).
    fn pin(&self, archives: &[(&str, &[u8])]) {
        let sums: String = archives
            .iter()
            .map(|(name, bytes)| format!("{}  {name}\n", sha256_hex(bytes)))
            .collect();
        std::fs::write(self.path("SHA256SUMS"), sums).unwrap();
        let out = Command::new(self.root().join("actions/install.sh"))
            .args(["--pin", VERSION])
            .arg(self.path("SHA256SUMS"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        std::fs::write(self.root().join("actions/checksums.txt"), &out.stdout).unwrap();
    }

    /// Runs install.sh as a composite step would, on `os`/`arch`.
    fn install(&self, host: &str, os: &str, arch: &str) -> Output {
        let runner_temp = self.path("runner-temp");
        std::fs::create_dir_all(&runner_temp).unwrap();
        Command::new(self.root().join("actions/install.sh"))
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.path("bin").display()),
            )
            .env("HOME", self.dir.path())
            .env("RUNNER_OS", os)
            .env("RUNNER_ARCH", arch)
            .env("RUNNER_TEMP", &runner_temp)
            .env("GITHUB_PATH", self.path("github_path"))
            .env("GITHUB_OUTPUT", self.path("github_output"))
            .env("CUSTODY_RELEASE_URL", format!("http://{host}"))
            .env("CUSTODY_INSTALL_DIR", self.path("installs"))
            .env("CARGO_LOG", self.path("cargo.log"))
            .output()
            .expect("install.sh runs")
    }

    fn github_path(&self) -> String {
        std::fs::read_to_string(self.path("github_path")).unwrap_or_default()
    }

    fn cargo_calls(&self) -> Option<String> {
        std::fs::read_to_string(self.path("cargo.log")).ok()
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A release archive as the release workflow packs it: `custody-<target>/custody`.
fn archive(target: &str, marker: &str) -> Vec<u8> {
    let dir = support::tempdir();
    let top = dir.path().join(format!("custody-{target}"));
    std::fs::create_dir_all(&top).unwrap();
    std::fs::write(
        top.join("custody"),
        format!("#!/bin/sh\necho \"custody 9.9.9 ({marker})\"\n"),
    )
    .unwrap();
    make_executable(&top.join("custody"));
    std::fs::write(top.join("LICENSE"), "Apache-2.0\n").unwrap();
    let out = dir.path().join("a.tar.gz");
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-czf")
        .arg(&out)
        .arg(format!("custody-{target}"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// The release host: serves `/<version>/<archive>` from a table, 404 otherwise.
fn release_host(files: Vec<(String, Vec<u8>)>) -> HostileServer {
    let files = Arc::new(Mutex::new(files));
    HostileServer::start(move |req| {
        let files = files.lock().unwrap();
        match files.iter().find(|(path, _)| *path == req.path) {
            Some((_, body)) => Response::new(200).body(body.clone()),
            None => Response::new(404).body("not found"),
        }
    })
}

#[test]
fn install_downloads_the_pinned_release_and_a_second_step_reuses_it() {
    let checkout = Checkout::new();
    let tarball = archive("x86_64-unknown-linux-musl", "from the release host");
    checkout.pin(&[
        (LINUX_X64, &tarball),
        ("custody-x86_64-pc-windows-msvc.zip", b"other platform"),
    ]);
    let digest = sha256_hex(&tarball);
    let host = release_host(vec![(format!("/{VERSION}/{LINUX_X64}"), tarball)]);

    let first = checkout.install(&host.host, "Linux", "X64");
    assert!(first.status.success(), "{}", text(&first));
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        "custody 9.9.9 (from the release host)\n"
    );
    let log = String::from_utf8_lossy(&first.stderr);
    assert!(
        log.contains(&format!(
            "downloading custody {VERSION} for x86_64-unknown-linux-musl from http://{}/{VERSION}/{LINUX_X64}",
            host.host
        )),
        "{log}"
    );
    assert_eq!(host.count("GET", &format!("/{VERSION}/")), 1);
    assert_eq!(checkout.cargo_calls(), None, "nothing is compiled");
    let bin_dir = checkout.github_path();
    assert!(
        bin_dir.starts_with(&checkout.path("installs").display().to_string()),
        "{bin_dir}"
    );
    let installed = PathBuf::from(bin_dir.trim_end()).join("custody");
    let output = std::fs::read_to_string(checkout.path("github_output")).unwrap();
    assert_eq!(output, format!("path={}\n", installed.display()));

    // The next step of the job: the same install, no download.
    let second = checkout.install(&host.host, "Linux", "X64");
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(
        String::from_utf8_lossy(&second.stdout),
        "custody 9.9.9 (from the release host)\n"
    );
    assert!(
        String::from_utf8_lossy(&second.stderr).contains(&format!(
            "reusing release {VERSION} ({LINUX_X64}, sha256 {digest})"
        )),
        "{}",
        text(&second)
    );
    assert_eq!(host.count("GET", &format!("/{VERSION}/")), 1);
}

#[test]
fn an_archive_that_does_not_match_the_committed_checksum_is_refused() {
    let checkout = Checkout::new();
    let pinned = archive("x86_64-unknown-linux-musl", "pinned");
    checkout.pin(&[(LINUX_X64, &pinned)]);
    let swapped = archive("x86_64-unknown-linux-musl", "swapped on the release host");
    let host = release_host(vec![(format!("/{VERSION}/{LINUX_X64}"), swapped.clone())]);

    let out = checkout.install(&host.host, "Linux", "X64");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "refusing {LINUX_X64}: sha256 {}, actions/checksums.txt pins {}",
            sha256_hex(&swapped),
            sha256_hex(&pinned)
        )),
        "{}",
        text(&out)
    );
    assert_eq!(checkout.github_path(), "", "nothing is put on PATH");
    assert!(
        std::fs::read_dir(checkout.path("installs"))
            .map(|d| d.count() == 0)
            .unwrap_or(true),
        "nothing is installed"
    );
    assert_eq!(
        checkout.cargo_calls(),
        None,
        "a refused download is not a reason to build"
    );
}

#[test]
fn a_platform_without_a_release_build_falls_back_to_cargo_install() {
    let checkout = Checkout::new();
    let tarball = archive("x86_64-unknown-linux-musl", "release");
    checkout.pin(&[(LINUX_X64, &tarball)]);
    let host = release_host(vec![(format!("/{VERSION}/{LINUX_X64}"), tarball)]);

    let out = checkout.install(&host.host, "Linux", "ARM");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "custody built-from-source\n"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "no custody release matches: no release build for Linux/ARM; building it from this checkout with cargo install"
        ),
        "{}",
        text(&out)
    );
    let calls = checkout.cargo_calls().expect("cargo ran");
    let root = checkout.root();
    assert!(
        calls.starts_with(&format!(
            "install --locked --quiet --path {} --root ",
            root.display()
        )),
        "{calls}"
    );
    // The build cache is kept with the installs, outside the work tree.
    assert!(
        calls.contains(&format!(
            "CARGO_TARGET_DIR={}",
            checkout.path("installs/target").display()
        )),
        "{calls}"
    );
    assert_eq!(host.requests.lock().unwrap().len(), 0);
}

#[test]
fn a_commit_between_releases_is_built_from_source() {
    let checkout = Checkout::new();
    let tarball = archive("x86_64-unknown-linux-musl", "release");
    checkout.pin(&[(LINUX_X64, &tarball)]);
    // The source moved on after the release was pinned.
    std::fs::write(
        checkout.root().join("src/main.rs"),
        "fn main() { /* next */ }\n",
    )
    .unwrap();
    let host = release_host(vec![(format!("/{VERSION}/{LINUX_X64}"), tarball)]);

    let out = checkout.install(&host.host, "Linux", "X64");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "this checkout is not the source of release {VERSION} (a commit between releases)"
        )),
        "{}",
        text(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "custody built-from-source\n"
    );
    assert_eq!(host.requests.lock().unwrap().len(), 0);
}

#[test]
fn the_committed_checksums_file_pins_no_release_yet() {
    let checkout = Checkout::new();
    std::fs::copy(
        repo_root().join("actions/checksums.txt"),
        checkout.root().join("actions/checksums.txt"),
    )
    .unwrap();
    let host = release_host(Vec::new());
    let out = checkout.install(&host.host, "Linux", "X64");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no custody release matches: actions/checksums.txt pins no release yet"),
        "{}",
        text(&out)
    );
}

#[test]
fn references_get_a_lower_case_repository_and_keep_their_tag() {
    for (given, expected) in [
        (
            "ghcr.io/Acme-Corp/App:V1.2.3",
            "ghcr.io/acme-corp/app:V1.2.3",
        ),
        (
            "ghcr.io/Acme/App:v1@sha256:0123abcd",
            "ghcr.io/acme/app:v1@sha256:0123abcd",
        ),
        ("localhost:5000/Team/App", "localhost:5000/team/app"),
        ("localhost:5000/Team/App:Tag", "localhost:5000/team/app:Tag"),
        ("oci:Some/Dir:Tag", "oci:Some/Dir:Tag"),
        ("", ""),
    ] {
        let out = Command::new("bash")
            .arg("-c")
            .arg("source \"$1\"; custody_lower_reference \"$2\"")
            .arg("bash")
            .arg(repo_root().join("actions/lib.sh"))
            .arg(given)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{given}");
    }
}
