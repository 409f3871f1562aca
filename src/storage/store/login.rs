//! `login` and `logout`: store or remove a registry credential where docker and every OCI tool
//! look for it — the credential helper `config.json` names for that registry (`credHelpers`,
//! then `credsStore`), else a base64 `auths` entry in `config.json` itself.
//!
//! The file is rewritten atomically with mode 0600, keeping every field custody does not know.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::auth::Secret;

/// The largest `config.json` custody reads.
const MAX_CONFIG: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is larger than 1 MiB")]
    TooLarge { path: PathBuf },
    #[error("{path} is not a docker config (a JSON object)")]
    Malformed { path: PathBuf },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credential helper name {helper:?} is not valid")]
    HelperName { helper: String },
    #[error("cannot run docker-credential-{helper} {action}")]
    HelperRun {
        helper: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("docker-credential-{helper} {action} failed: {message}")]
    HelperFailed {
        helper: String,
        action: &'static str,
        message: String,
    },
    #[error("{input:?} is not a registry host")]
    Registry { input: String },
    #[error("the user name must not contain ':'")]
    Username,
}

/// Where a credential was stored or erased.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "name")]
pub enum Storage {
    /// `docker-credential-<name>`.
    Helper(String),
    /// The `auths` section of this file.
    File(PathBuf),
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, from an environment lookup.
pub fn config_path(get: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(dir) = get("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    get("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".docker").join("config.json"))
}

/// `https://ghcr.io/` → `ghcr.io`; the key docker uses for Docker Hub for its spellings.
pub fn server_key(input: &str) -> Result<String, Error> {
    let bare = input
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = bare.split('/').next().unwrap_or_default();
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !valid {
        return Err(Error::Registry {
            input: input.to_owned(),
        });
    }
    Ok(match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            "https://index.docker.io/v1/".to_owned()
        }
        _ => host.to_owned(),
    })
}

/// Stores `username`/`password` for `registry` through its credential helper, else in the
/// `auths` of `config`.
pub fn login(
    config: &Path,
    registry: &str,
    username: &str,
    password: &Secret,
) -> Result<Storage, Error> {
    if username.contains(':') {
        return Err(Error::Username);
    }
    let key = server_key(registry)?;
    let mut doc = read_config(config)?;
    match helper_for(&doc, &key) {
        Some(helper) => {
            let payload = serde_json::json!({
                "ServerURL": key,
                "Username": username,
                "Secret": password.expose(),
            });
            let input = zeroize::Zeroizing::new(payload.to_string());
            run_helper(&helper, "store", input.as_bytes())?;
            // A stale inline entry would win over the helper on lookup.
            if remove_auth(&mut doc, &key) {
                write_config(config, &doc)?;
            }
            Ok(Storage::Helper(helper))
        }
        None => {
            let auth = zeroize::Zeroizing::new(
                STANDARD.encode(format!("{username}:{}", password.expose())),
            );
            let auths = doc
                .as_object_mut()
                .expect("read_config returns an object")
                .entry("auths")
                .or_insert_with(|| serde_json::json!({}));
            if !auths.is_object() {
                *auths = serde_json::json!({});
            }
            auths
                .as_object_mut()
                .expect("auths was just made an object")
                .insert(key, serde_json::json!({ "auth": auth.as_str() }));
            write_config(config, &doc)?;
            Ok(Storage::File(config.to_owned()))
        }
    }
}

/// Removes the credential for `registry` from its helper and from `auths`. Returns where it
/// was removed from; empty when there was nothing to remove.
pub fn logout(config: &Path, registry: &str) -> Result<Vec<Storage>, Error> {
    let key = server_key(registry)?;
    let mut doc = read_config(config)?;
    let mut removed = Vec::new();
    if let Some(helper) = helper_for(&doc, &key)
        && run_helper(&helper, "erase", key.as_bytes())?
    {
        removed.push(Storage::Helper(helper));
    }
    if remove_auth(&mut doc, &key) {
        write_config(config, &doc)?;
        removed.push(Storage::File(config.to_owned()));
    }
    Ok(removed)
}

fn read_config(path: &Path) -> Result<serde_json::Value, Error> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(serde_json::json!({})),
        Err(source) => {
            return Err(Error::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_CONFIG + 1), &mut bytes)
        .map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_CONFIG {
        return Err(Error::TooLarge {
            path: path.to_owned(),
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::json!({}));
    }
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(Error::Malformed {
            path: path.to_owned(),
        }),
    }
}

/// The helper for `key`: `credHelpers[key]`, else `credsStore`.
fn helper_for(doc: &serde_json::Value, key: &str) -> Option<String> {
    doc.get("credHelpers")
        .and_then(|h| h.get(key))
        .or_else(|| doc.get("credsStore"))
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

/// Removes every `auths` spelling of `key`; whether one was there.
fn remove_auth(doc: &mut serde_json::Value, key: &str) -> bool {
    let Some(auths) = doc.get_mut("auths").and_then(|a| a.as_object_mut()) else {
        return false;
    };
    let spellings = [
        key.to_owned(),
        format!("https://{key}"),
        format!("http://{key}"),
        format!("https://{key}/v1/"),
        format!("https://{key}/v2/"),
    ];
    let mut removed = false;
    for s in spellings {
        removed |= auths.remove(&s).is_some();
    }
    removed
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin. `Ok(false)` when an erase
/// found nothing to erase.
fn run_helper(helper: &str, action: &'static str, input: &[u8]) -> Result<bool, Error> {
    if !helper
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Error::HelperName {
            helper: helper.to_owned(),
        });
    }
    let run_err = |source| Error::HelperRun {
        helper: helper.to_owned(),
        action,
        source,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(run_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(run_err)?;
    }
    let out = child.wait_with_output().map_err(run_err)?;
    if out.status.success() {
        return Ok(true);
    }
    // Helpers print "credentials not found in native keychain" when there is nothing to erase.
    let said = String::from_utf8_lossy(if out.stdout.is_empty() {
        &out.stderr
    } else {
        &out.stdout
    })
    .chars()
    .take(200)
    .collect::<String>();
    if action == "erase" && said.contains("not found") {
        return Ok(false);
    }
    Err(Error::HelperFailed {
        helper: helper.to_owned(),
        action,
        message: said.trim().to_owned(),
    })
}

/// Writes `doc` to `path` through a temporary file in the same folder, mode 0600.
fn write_config(path: &Path, doc: &serde_json::Value) -> Result<(), Error> {
    let write_err = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".config.json-")
        .tempfile_in(dir)
        .map_err(write_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o600))
            .map_err(write_err)?;
    }
    let bytes = serde_json::to_vec_pretty(doc).expect("a JSON value serialises");
    temp.write_all(&bytes).map_err(write_err)?;
    temp.write_all(b"\n").map_err(write_err)?;
    temp.as_file().sync_all().map_err(write_err)?;
    temp.persist(path).map_err(|e| write_err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_keys() {
        assert_eq!(server_key("https://ghcr.io/").unwrap(), "ghcr.io");
        assert_eq!(server_key("127.0.0.1:5000/v2/").unwrap(), "127.0.0.1:5000");
        assert_eq!(
            server_key("docker.io").unwrap(),
            "https://index.docker.io/v1/"
        );
        assert!(matches!(server_key(""), Err(Error::Registry { .. })));
        assert!(matches!(server_key("a b"), Err(Error::Registry { .. })));
    }

    #[test]
    fn login_writes_auths_and_keeps_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"other.io":{"auth":"eDp5"}},"psFormat":"x"}"#,
        )
        .unwrap();
        let stored = login(&path, "reg.example:5000", "alice", &Secret::new("pw")).unwrap();
        assert_eq!(stored, Storage::File(path.clone()));
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["auths"]["reg.example:5000"]["auth"], "YWxpY2U6cHc=");
        assert_eq!(doc["auths"]["other.io"]["auth"], "eDp5");
        assert_eq!(doc["psFormat"], "x");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let removed = logout(&path, "reg.example:5000").unwrap();
        assert_eq!(removed, vec![Storage::File(path.clone())]);
        assert!(logout(&path, "reg.example:5000").unwrap().is_empty());
    }

    #[test]
    fn malformed_configs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        for bad in ["[]", "{", "\"x\"", "null"] {
            std::fs::write(&path, bad).unwrap();
            assert!(
                matches!(
                    login(&path, "r.io", "u", &Secret::new("p")),
                    Err(Error::Malformed { .. })
                ),
                "{bad}"
            );
        }
        std::fs::write(&path, vec![b' '; (MAX_CONFIG + 1) as usize]).unwrap();
        assert!(matches!(
            login(&path, "r.io", "u", &Secret::new("p")),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            login(&path, "r.io", "a:b", &Secret::new("p")),
            Err(Error::Username)
        ));
    }
}
