//! Registry credentials and the token dance: docker's `config.json` (`auths`, `credsStore`,
//! `credHelpers` through `docker-credential-*`), `REGISTRY_AUTH_FILE`, environment variables,
//! and the bearer-token challenge of `WWW-Authenticate`.
//!
//! Secrets live in [`Secret`], whose `Debug` and `Display` never show the value.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A password or token. Printing it prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Credentials for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    Basic {
        username: String,
        password: Secret,
    },
    /// An identity (refresh) token, exchanged at the token endpoint.
    IdentityToken(Secret),
    /// A ready bearer token.
    Bearer(Secret),
}

/// A credential the environment gives for exactly one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvCredential {
    /// The registry host (`host[:port]`) it is for; never sent anywhere else.
    pub registry: String,
    pub username: String,
    pub password: Secret,
    /// The variables it came from, for messages.
    pub source: &'static str,
}

/// Where credentials are looked up, in order: the environment's credentials for the registry
/// they name, then the auth files. The CLI fills this from the process environment; the
/// library reads nothing itself.
#[derive(Clone, Debug, Default)]
pub struct CredentialSources {
    /// `CUSTODY_REGISTRY` + `CUSTODY_REGISTRY_USERNAME` / `CUSTODY_REGISTRY_PASSWORD`, then
    /// `CI_REGISTRY` + `CI_REGISTRY_USER` / `CI_REGISTRY_PASSWORD` (GitLab CI), then
    /// `GITHUB_TOKEN` (with `GITHUB_ACTOR`) for `ghcr.io`.
    pub env: Vec<EnvCredential>,
    /// Why the environment's credentials cannot be used (a username and password without the
    /// registry they are for). Every registry store refuses to open while this is set, so a
    /// misconfigured job fails loudly instead of running anonymously or leaking them.
    pub env_error: Option<String>,
    /// `REGISTRY_AUTH_FILE`, then `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
    pub auth_files: Vec<PathBuf>,
}

/// The registry GitHub's `GITHUB_TOKEN` is for.
pub const GHCR: &str = "ghcr.io";

/// Two spellings of one registry host. References carry canonical hosts
/// ([`crate::foundation::reference::canonical_host`]), so a host written by a person (`LOCALHOST:5000`,
/// `registry.example.com:443`) is compared in that spelling; one that has none is compared
/// case-insensitively, as DNS is.
fn same_registry(a: &str, b: &str) -> bool {
    let canonical = |h: &str| crate::foundation::reference::canonical_host(h.trim()).ok();
    match (canonical(a), canonical(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

/// The registry host an `auths` or `credHelpers` key names: docker writes plain hosts, and
/// older clients URLs such as `https://index.docker.io/v1/`.
fn key_host(key: &str) -> &str {
    let key = key.trim();
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

impl CredentialSources {
    /// The sources a process environment describes.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> CredentialSources {
        let get = |name: &str| get(name).filter(|v| !v.is_empty());
        let mut auth_files = Vec::new();
        if let Some(f) = get("REGISTRY_AUTH_FILE") {
            auth_files.push(PathBuf::from(f));
        }
        if let Some(dir) = get("DOCKER_CONFIG") {
            auth_files.push(PathBuf::from(dir).join("config.json"));
        } else if let Some(home) = get("HOME") {
            auth_files.push(PathBuf::from(home).join(".docker").join("config.json"));
        }
        let mut env = Vec::new();
        let mut env_error = None;
        let custody = (
            get("CUSTODY_REGISTRY"),
            get("CUSTODY_REGISTRY_USERNAME"),
            get("CUSTODY_REGISTRY_PASSWORD"),
        );
        match custody {
            (Some(registry), Some(username), Some(password)) => env.push(EnvCredential {
                registry,
                username,
                password: Secret::new(password),
                source: "CUSTODY_REGISTRY_USERNAME/PASSWORD",
            }),
            (None, None, None) | (Some(_), None, None) => {}
            (None, _, _) => {
                env_error = Some(
                    "CUSTODY_REGISTRY_USERNAME/CUSTODY_REGISTRY_PASSWORD are set but CUSTODY_REGISTRY is not; set it to the one registry host they are for (they are never sent to every registry)".into(),
                );
            }
            (Some(registry), _, _) => {
                env_error = Some(format!(
                    "CUSTODY_REGISTRY names {registry} but only one of CUSTODY_REGISTRY_USERNAME and CUSTODY_REGISTRY_PASSWORD is set"
                ));
            }
        }
        if let (Some(registry), Some(username), Some(password)) = (
            get("CI_REGISTRY"),
            get("CI_REGISTRY_USER"),
            get("CI_REGISTRY_PASSWORD"),
        ) {
            env.push(EnvCredential {
                registry,
                username,
                password: Secret::new(password),
                source: "CI_REGISTRY_USER/CI_REGISTRY_PASSWORD",
            });
        }
        if let Some(token) = get("GITHUB_TOKEN") {
            env.push(EnvCredential {
                registry: GHCR.to_owned(),
                // ghcr.io checks the token, not the name; the actor is the honest one to give.
                username: get("GITHUB_ACTOR").unwrap_or_else(|| "unset".to_owned()),
                password: Secret::new(token),
                source: "GITHUB_TOKEN",
            });
        }
        CredentialSources {
            env,
            env_error,
            auth_files,
        }
    }

    /// The credential for `registry` (host[:port]), if any source has one.
    pub fn lookup(&self, registry: &str) -> Result<Option<Credential>, String> {
        if let Some(error) = &self.env_error {
            return Err(error.clone());
        }
        if let Some(c) = self
            .env
            .iter()
            .find(|c| same_registry(&c.registry, registry))
        {
            return Ok(Some(Credential::Basic {
                username: c.username.clone(),
                password: c.password.clone(),
            }));
        }
        for file in &self.auth_files {
            let bytes = match std::fs::read(file) {
                Ok(b) => b,
                Err(_) => continue,
            };
            if bytes.len() > 1 << 20 {
                return Err(format!("{} is larger than 1 MiB", file.display()));
            }
            let config: AuthFile = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not a valid auth file: {e}", file.display()))?;
            if let Some(c) = config.lookup(registry)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(serde::Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The keys docker may have used for a registry in `auths`.
fn auth_keys(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_owned(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ];
    if registry == crate::foundation::reference::DOCKER_HUB {
        keys.push("https://index.docker.io/v1/".to_owned());
        keys.push("index.docker.io".to_owned());
        keys.push(crate::foundation::reference::DOCKER_HUB_API.to_owned());
    }
    keys
}

impl AuthFile {
    fn lookup(&self, registry: &str) -> Result<Option<Credential>, String> {
        // An exact key first, then any key that names the same host in another spelling.
        let helper = self
            .cred_helpers
            .get(registry)
            .or_else(|| {
                self.cred_helpers
                    .iter()
                    .find(|(key, _)| same_registry(key_host(key), registry))
                    .map(|(_, helper)| helper)
            })
            .or(self.creds_store.as_ref());
        for key in auth_keys(registry) {
            if let Some(entry) = self.auths.get(&key)
                && let Some(c) = entry.credential(registry)?
            {
                return Ok(Some(c));
            }
        }
        for (key, entry) in &self.auths {
            if same_registry(key_host(key), registry)
                && let Some(c) = entry.credential(registry)?
            {
                return Ok(Some(c));
            }
        }
        match helper {
            Some(helper) => run_helper(helper, registry),
            None => Ok(None),
        }
    }
}

impl AuthEntry {
    fn credential(&self, registry: &str) -> Result<Option<Credential>, String> {
        if let Some(token) = &self.identitytoken {
            return Ok(Some(Credential::IdentityToken(Secret::new(token.clone()))));
        }
        if let Some(auth) = &self.auth {
            let decoded = STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    format!("the stored credential for {registry} is not base64 of user:password")
                })?;
            let (user, password) = decoded.split_once(':').ok_or_else(|| {
                format!("the stored credential for {registry} is not user:password")
            })?;
            return Ok(Some(Credential::Basic {
                username: user.to_owned(),
                password: Secret::new(password),
            }));
        }
        match (&self.username, &self.password) {
            (Some(u), Some(p)) => Ok(Some(Credential::Basic {
                username: u.clone(),
                password: Secret::new(p.clone()),
            })),
            _ => Ok(None),
        }
    }
}

/// Asks `docker-credential-<helper> get` for the registry's credential.
fn run_helper(helper: &str, registry: &str) -> Result<Option<Credential>, String> {
    if !helper
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!("credential helper name {helper:?} is not valid"));
    }
    query_helper(
        std::ffi::OsStr::new(&format!("docker-credential-{helper}")),
        registry,
    )
}

fn query_helper(path: &std::ffi::OsStr, registry: &str) -> Result<Option<Credential>, String> {
    let program = path.to_string_lossy();
    let server = if registry == crate::foundation::reference::DOCKER_HUB {
        "https://index.docker.io/v1/".to_owned()
    } else {
        registry.to_owned()
    };
    let mut child = Command::new(path)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| format!("cannot talk to {program}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program} failed: {e}"))?;
    if !out.status.success() {
        let stdout = String::from_utf8_lossy(&out.stdout);
        // Helpers say "credentials not found in native keychain" when they have nothing.
        if stdout.contains("not found") || out.stderr.is_empty() && out.stdout.is_empty() {
            return Ok(None);
        }
        return Err(format!("{program} get exited with {}", out.status));
    }
    #[derive(serde::Deserialize)]
    struct HelperOut {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let parsed: HelperOut = serde_json::from_slice(&out.stdout)
        .map_err(|_| format!("{program} get did not print the expected JSON"))?;
    if parsed.username == "<token>" {
        Ok(Some(Credential::IdentityToken(Secret::new(parsed.secret))))
    } else {
        Ok(Some(Credential::Basic {
            username: parsed.username,
            password: Secret::new(parsed.secret),
        }))
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.insert(key, value.to_owned());
        rest = remainder.trim_start_matches([',', ' ']);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn secrets_never_print() {
        let c = Credential::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(Secret::new("hunter2").to_string(), "<redacted>");
    }

    /// References carry canonical hosts; credentials written in another spelling still match,
    /// and a different port or host still does not.
    #[test]
    fn credentials_match_the_canonical_host() {
        let env = |registry: &'static str| {
            CredentialSources::from_env(move |k| {
                let v = match k {
                    "CUSTODY_REGISTRY" => registry,
                    "CUSTODY_REGISTRY_USERNAME" => "ci",
                    "CUSTODY_REGISTRY_PASSWORD" => "tok",
                    _ => return None,
                };
                Some(v.to_owned())
            })
        };
        let ci = |c: Option<Credential>| matches!(c, Some(Credential::Basic { username, .. }) if username == "ci");
        assert!(ci(env("LOCALHOST:5000").lookup("localhost:5000").unwrap()));
        assert!(ci(env("localhost:5000 ").lookup("localhost:5000").unwrap()));
        assert!(ci(env("Registry.Example.com:443")
            .lookup("registry.example.com")
            .unwrap()));
        assert!(ci(env("registry.example.com.")
            .lookup("registry.example.com")
            .unwrap()));
        assert_eq!(
            env("LOCALHOST:5001").lookup("localhost:5000").unwrap(),
            None
        );
        assert_eq!(
            env("registry.example.com:8443")
                .lookup("registry.example.com")
                .unwrap(),
            None
        );
        assert_eq!(
            env("other.example.com")
                .lookup("registry.example.com")
                .unwrap(),
            None
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(
            &file,
            format!(
                r#"{{"auths":{{"https://Registry.Example.com:443":{{"auth":"{}"}},"http://LOCALHOST:5000/v2/":{{"auth":"{}"}},"evil.example.com:443":{{"auth":"{}"}}}}}}"#,
                STANDARD.encode("reg:pw"),
                STANDARD.encode("local:pw"),
                STANDARD.encode("evil:pw")
            ),
        )
        .unwrap();
        let files = CredentialSources {
            auth_files: vec![file],
            ..Default::default()
        };
        let user = |registry: &str| match files.lookup(registry).unwrap() {
            Some(Credential::Basic { username, .. }) => Some(username),
            _ => None,
        };
        assert_eq!(user("registry.example.com").as_deref(), Some("reg"));
        assert_eq!(user("localhost:5000").as_deref(), Some("local"));
        assert_eq!(user("evil.example.com").as_deref(), Some("evil"));
        assert_eq!(user("registry.example.com:8443"), None);
        assert_eq!(user("localhost:5001"), None);
        assert_eq!(user("example.com"), None);
    }

    #[test]
    fn auth_file_keys_name_their_host() {
        for (key, host) in [
            ("https://index.docker.io/v1/", "index.docker.io"),
            ("http://LOCALHOST:5000/v2/", "LOCALHOST:5000"),
            ("reg.example:5000", "reg.example:5000"),
            (" https://reg.example ", "reg.example"),
            ("", ""),
            ("https://", ""),
        ] {
            assert_eq!(key_host(key), host, "{key}");
        }
    }

    #[test]
    fn docker_config_auths_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(
            &file,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"reg.example:5000":{{"auth":"{}"}}}}}}"#,
                STANDARD.encode("hub:pw"),
                STANDARD.encode("me:secret:with:colons")
            ),
        )
        .unwrap();
        let sources = CredentialSources {
            auth_files: vec![file.clone()],
            ..Default::default()
        };
        assert_eq!(
            sources.lookup("reg.example:5000").unwrap(),
            Some(Credential::Basic {
                username: "me".into(),
                password: Secret::new("secret:with:colons")
            })
        );
        assert!(matches!(
            sources.lookup("docker.io").unwrap(),
            Some(Credential::Basic { username, .. }) if username == "hub"
        ));
        assert_eq!(sources.lookup("other.example").unwrap(), None);

        let env = CredentialSources {
            auth_files: vec![file.clone()],
            ..CredentialSources::from_env(|k| {
                let v = match k {
                    "CUSTODY_REGISTRY" => "other.example",
                    "CUSTODY_REGISTRY_USERNAME" => "ci",
                    "CUSTODY_REGISTRY_PASSWORD" => "tok",
                    _ => return None,
                };
                Some(v.to_owned())
            })
        };
        assert!(matches!(
            env.lookup("Other.Example").unwrap(),
            Some(Credential::Basic { username, .. }) if username == "ci"
        ));
        assert!(matches!(
            env.lookup("reg.example:5000").unwrap(),
            Some(Credential::Basic { username, .. }) if username == "me"
        ));

        std::fs::write(&file, r#"{"auths":{"x":{"auth":"%%%"}}}"#).unwrap();
        let err = sources.lookup("x").unwrap_err();
        assert!(err.contains("not base64"), "{err}");
        assert!(!err.contains("%%%"));
    }

    #[test]
    fn environment_credentials_go_only_to_the_registry_they_name() {
        fn sources(vars: &[(&str, &str)]) -> CredentialSources {
            CredentialSources::from_env(|k| {
                vars.iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| (*v).to_owned())
            })
        }
        let custody = [
            ("CUSTODY_REGISTRY_USERNAME", "ci"),
            ("CUSTODY_REGISTRY_PASSWORD", "hunter2"),
        ];
        let gitlab = [
            ("CI_REGISTRY", "gitlab.example.com:5050"),
            ("CI_REGISTRY_USER", "gitlab-ci-token"),
            ("CI_REGISTRY_PASSWORD", "glpat"),
        ];
        let github = [("GITHUB_TOKEN", "ghs_x"), ("GITHUB_ACTOR", "octo")];
        let named = [&custody[..], &[("CUSTODY_REGISTRY", "reg.example")]].concat();
        let all = [&named[..], &gitlab[..], &github[..]].concat();
        type Vars<'a> = &'a [(&'a str, &'a str)];
        // (environment, registry asked for, the user name sent, or None)
        let rows: [(Vars, &str, Option<&str>); 11] = [
            (&named, "reg.example", Some("ci")),
            (&named, "REG.example", Some("ci")),
            (&named, "other.example", None),
            (&gitlab, "gitlab.example.com:5050", Some("gitlab-ci-token")),
            (&gitlab, "gitlab.example.com", None),
            (&gitlab, "ghcr.io", None),
            (&github, "ghcr.io", Some("octo")),
            (&github, "docker.io", None),
            (&[("GITHUB_TOKEN", "ghs_x")], "ghcr.io", Some("unset")),
            (&all, "ghcr.io", Some("octo")),
            (&all, "gitlab.example.com:5050", Some("gitlab-ci-token")),
        ];
        for (vars, registry, user) in rows {
            let got = sources(vars).lookup(registry).unwrap();
            let got_user = got.as_ref().map(|c| match c {
                Credential::Basic { username, .. } => username.as_str(),
                _ => "not basic",
            });
            assert_eq!(got_user, user, "{vars:?} for {registry}");
        }
        // Without the registry they are for, they go nowhere and every lookup says why.
        for vars in [&custody[..], &custody[..1], &[custody[1]][..]] {
            let err = sources(vars).lookup("reg.example").unwrap_err();
            assert!(err.contains("CUSTODY_REGISTRY is not"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        let err = sources(&[named[0], named[2]])
            .lookup("reg.example")
            .unwrap_err();
        assert!(err.contains("only one of"), "{err}");
        assert_eq!(
            sources(&[("CUSTODY_REGISTRY", "reg.example")])
                .lookup("reg.example")
                .unwrap(),
            None
        );
    }

    #[test]
    fn credential_helper_is_run() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-fake");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\nprintf '{\"Username\":\"helper-user\",\"Secret\":\"s3\"}'\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, r#"{"credHelpers":{"reg.example":"fake"}}"#).unwrap();
        let config: AuthFile = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(config.cred_helpers.get("reg.example").unwrap(), "fake");
        assert!(matches!(
            query_helper(helper.as_os_str(), "reg.example"),
            Ok(Some(Credential::Basic { username, password }))
                if username == "helper-user" && password.expose() == "s3"
        ));
        assert!(run_helper("bad/name", "reg.example").is_err());
    }
}
