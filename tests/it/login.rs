//! `custody login` / `logout` against a real registry with htpasswd auth: the credential lands in
//! docker's `config.json` (or the configured credential helper), a push then works, and after
//! logout the push is refused with 401 and a hint.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, http_status, stderr, stdout};

pub(crate) const USER: &str = "alice";
pub(crate) const PASSWORD: &str = "s3cret-pa55";
/// bcrypt of PASSWORD (cost 5), made with `python3 -c 'import crypt; crypt.crypt(...)'`.
const HTPASSWD: &str = "alice:$2b$05$abcdefghijklmnopqrstuuOCF.GkRv1vFPvtkwfdxmhQ9dQc6ZI22\n";

/// A CNCF distribution registry that requires basic auth (htpasswd), stopped on drop.
pub(crate) struct AuthRegistry {
    child: Child,
    pub(crate) host: String,
    _storage: tempfile::TempDir,
}

impl AuthRegistry {
    pub(crate) fn start() -> AuthRegistry {
        let storage = support::tempdir();
        let htpasswd = storage.path().join("htpasswd");
        std::fs::write(&htpasswd, HTPASSWD).unwrap();
        {
            // Port 0: the registry picks a free one and logs it (level info), so no other
            // process can take it between a probe and the bind.
            let config = storage.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nauth:\n  htpasswd:\n    realm: custody-test\n    path: {}\nhttp:\n  addr: 127.0.0.1:0\n",
                    storage.path().join("data").display(),
                    htpasswd.display()
                ),
            )
            .unwrap();
            let mut child = Command::new(support::registry_binary())
                .arg("serve")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start docker-registry");
            let stderr = child.stderr.take().expect("piped");
            let host = support::announced_address(stderr, "listening on ").unwrap_or_default();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if http_status(&host, "/v2/") == Some(401) {
                    return AuthRegistry {
                        child,
                        host,
                        _storage: storage,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry with htpasswd auth did not come up");
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs custody with DOCKER_CONFIG=`config_dir`, `path_dir` first on PATH, and `stdin`.
fn custody_in(config_dir: &Path, path_dir: Option<&Path>, args: &[&str], stdin: &str) -> Output {
    let mut c = support::custody();
    c.args(args)
        .env("DOCKER_CONFIG", config_dir)
        .env_remove("REGISTRY_AUTH_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = path_dir {
        let path = std::env::var("PATH").unwrap_or_default();
        c.env("PATH", format!("{}:{path}", dir.display()));
    }
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn push(config_dir: &Path, path_dir: Option<&Path>, host: &str, file: &Path, tag: &str) -> Output {
    custody_in(
        config_dir,
        path_dir,
        &[
            "push",
            file.to_str().unwrap(),
            "--to",
            &format!("{host}/acme/app:{tag}"),
        ],
        "",
    )
}

fn artifact(dir: &Path) -> PathBuf {
    let file = dir.join("app.tar");
    std::fs::write(&file, b"the artifact\n").unwrap();
    file
}

#[test]
fn login_then_push_then_logout_refuses_with_a_hint() {
    let registry = AuthRegistry::start();
    let dir = support::tempdir();
    let config_dir = dir.path().join("docker");
    let file = artifact(dir.path());

    // Not logged in: 401 and the way out.
    let o = push(&config_dir, None, &registry.host, &file, "v0");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("401"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "hint: log in first: echo \"$TOKEN\" | custody login {}",
            registry.host
        )),
        "{}",
        stderr(&o)
    );

    let o = custody_in(
        &config_dir,
        None,
        &["login", &registry.host, "-u", USER, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains(PASSWORD) && !stderr(&o).contains(PASSWORD));
    let config = config_dir.join("config.json");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    assert_eq!(doc["auths"][&registry.host]["auth"], expected.as_str());

    let o = push(&config_dir, None, &registry.host, &file, "v1");
    assert!(o.status.success(), "{}", stderr(&o));

    let o = custody_in(&config_dir, None, &["logout", &registry.host], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("logged out of"), "{}", stdout(&o));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(doc["auths"].get(&registry.host).is_none(), "{doc}");

    let o = push(&config_dir, None, &registry.host, &file, "v2");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("(401)"), "{}", stderr(&o));
    assert!(stderr(&o).contains("custody login"), "{}", stderr(&o));

    // A second logout has nothing to remove.
    let o = custody_in(&config_dir, None, &["logout", &registry.host], "");
    assert!(o.status.success());
    assert!(stdout(&o).contains("not logged in"), "{}", stdout(&o));
}

#[test]
fn a_password_on_the_command_line_needs_p_and_warns() {
    let dir = support::tempdir();
    let config_dir = dir.path().join("docker");
    // Neither --password-stdin nor -p: refused, nothing written.
    let o = custody_in(&config_dir, None, &["login", "reg.example", "-u", USER], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--password-stdin"), "{}", stderr(&o));
    assert!(!config_dir.join("config.json").exists());

    // -p works, with a warning, and the password is not echoed.
    let o = custody_in(
        &config_dir,
        None,
        &["login", "reg.example", "-u", USER, "-p", PASSWORD],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: a password on the command line is insecure"));
    assert!(!stdout(&o).contains(PASSWORD) && !stderr(&o).contains(PASSWORD));

    // An empty password on stdin is refused.
    let o = custody_in(
        &config_dir,
        None,
        &["login", "reg.example", "-u", USER, "--password-stdin"],
        "\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
}

/// A `docker-credential-fake` that keeps credentials in files and logs each call.
fn fake_helper(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let state = dir.join("helper-state");
    std::fs::create_dir_all(&state).unwrap();
    let script = format!(
        r#"#!/bin/sh
state={state}
input=$(cat)
echo "$1" >> "$state/calls"
case "$1" in
  store) printf '%s' "$input" > "$state/stored" ;;
  get)
    if [ -f "$state/stored" ]; then
      python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps({{"ServerURL": d["ServerURL"], "Username": d["Username"], "Secret": d["Secret"]}}))' "$state/stored"
    else
      echo "credentials not found in native keychain"; exit 1
    fi ;;
  erase)
    if [ -f "$state/stored" ]; then printf '%s' "$input" > "$state/erased"; rm "$state/stored"
    else echo "credentials not found in native keychain"; exit 1; fi ;;
esac
"#,
        state = state.display()
    );
    let path = bin.join("docker-credential-fake");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn a_configured_credential_helper_stores_and_erases() {
    let registry = AuthRegistry::start();
    let dir = support::tempdir();
    let config_dir = dir.path().join("docker");
    std::fs::create_dir_all(&config_dir).unwrap();
    let config = config_dir.join("config.json");
    // credHelpers names the helper for this registry; a stale inline entry must not win.
    std::fs::write(
        &config,
        serde_json::json!({
            "credHelpers": { registry.host.clone(): "fake" },
            "auths": { registry.host.clone(): { "auth": "c3RhbGU6c3RhbGU=" } },
            "detachKeys": "ctrl-e"
        })
        .to_string(),
    )
    .unwrap();
    let bin = fake_helper(dir.path());
    let state = dir.path().join("helper-state");
    let file = artifact(dir.path());

    let o = custody_in(
        &config_dir,
        Some(&bin),
        &[
            "--output",
            "json",
            "login",
            &registry.host,
            "-u",
            USER,
            "--password-stdin",
        ],
        PASSWORD,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["storedIn"]["kind"], "helper");
    assert_eq!(report["storedIn"]["name"], "fake");
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("stored")).unwrap()).unwrap();
    assert_eq!(
        stored,
        serde_json::json!({ "ServerURL": registry.host, "Username": USER, "Secret": PASSWORD })
    );
    // The password went to the helper only, not into config.json; other fields kept.
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains("auth\""), "{text}");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["detachKeys"], "ctrl-e");
    assert_eq!(doc["credHelpers"][&registry.host], "fake");

    // The push finds the credential through the helper.
    let o = push(&config_dir, Some(&bin), &registry.host, &file, "v1");
    assert!(o.status.success(), "{}", stderr(&o));

    let o = custody_in(&config_dir, Some(&bin), &["logout", &registry.host], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("docker-credential-fake"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        std::fs::read_to_string(state.join("erased")).unwrap(),
        registry.host
    );
    let calls = std::fs::read_to_string(state.join("calls")).unwrap();
    assert_eq!(
        calls
            .lines()
            .filter(|l| *l == "store" || *l == "erase")
            .collect::<Vec<_>>(),
        ["store", "erase"]
    );

    let o = push(&config_dir, Some(&bin), &registry.host, &file, "v2");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("(401)"), "{}", stderr(&o));
}
