//! Trust through TUF: a real TUF repository made with python-tuf (`tuf_repo.py`), served on
//! loopback by Python's http.server, and custody's `trust` commands and verify against it; and
//! the public-good Sigstore conformance cases verified with no `--trusted-root` at all.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use crate::support::{self, custody, stderr, stdout, tempdir, venv_python};

const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn conformance() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/sigstore-conformance")
}

/// custody with its own cache folder: nothing from the machine's cache is used.
fn custody_in(cache: &Path, args: &[&str]) -> Output {
    custody()
        .env("XDG_CACHE_HOME", cache)
        .env_remove("CUSTODY_TRUST_MAX_AGE")
        .args(args)
        .output()
        .expect("custody runs")
}

fn json_of(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "custody failed ({:?}):\n{}\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not json ({e}): {}", stdout(o)))
}

/// A python-tuf repository and a loopback HTTP server in front of it.
struct TufRepo {
    dir: tempfile::TempDir,
    server: Child,
    url: String,
}

/// Serves a folder over HTTPS on loopback with the certificate and key given, and says where
/// as http.server does.
const HTTPS_SERVER: &str = r#"
import http.server, functools, ssl, sys
folder, cert, key = sys.argv[1:4]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=folder)
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(f"Serving HTTPS (http://127.0.0.1:{server.server_address[1]}/)", flush=True)
server.serve_forever()
"#;

impl TufRepo {
    fn new(target: &Path) -> TufRepo {
        TufRepo::serve(target, None)
    }

    /// With `tls` (certificate, key), served over HTTPS.
    fn serve(target: &Path, tls: Option<(&Path, &Path)>) -> TufRepo {
        let dir = tempdir();
        let repo = TufRepo::script(dir.path(), &["init", target.to_str().expect("utf-8")]);
        assert!(repo.status.success(), "init: {}", stderr(&repo));
        // Port 0: the server picks a free one and prints it ("Serving HTTP on 127.0.0.1 port
        // N (http://127.0.0.1:N/)"; -u so the line is not buffered).
        let mut server = Command::new(venv_python());
        match tls {
            None => server
                .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
                .arg("--directory")
                .arg(dir.path().join("repo")),
            Some((cert, key)) => server
                .args(["-u", "-c", HTTPS_SERVER])
                .arg(dir.path().join("repo"))
                .args([cert, key]),
        };
        let mut server = server
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("http.server starts");
        let stdout = server.stdout.take().expect("piped");
        if let Some(host) = support::announced_address(stdout, "(http://")
            && TcpStream::connect(&host).is_ok()
        {
            let scheme = if tls.is_some() { "https" } else { "http" };
            let url = format!("{scheme}://{host}");
            return TufRepo { dir, server, url };
        }
        let _ = server.kill();
        let _ = server.wait();
        panic!("http.server did not say where it listens");
    }

    fn script(dir: &Path, args: &[&str]) -> Output {
        Command::new(venv_python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/tuf_repo.py"))
            .arg(dir)
            .args(args)
            .output()
            .expect("python runs")
    }

    fn run(&self, args: &[&str]) {
        let o = TufRepo::script(self.dir.path(), args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }

    fn initial_root(&self) -> PathBuf {
        self.dir.path().join("initial-root.json")
    }
}

impl Drop for TufRepo {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn public_good_root() -> PathBuf {
    conformance().join("public-good-trusted_root.json")
}

/// `trust update --mirror URL --root FILE` on a fresh cache: the chain starts at the given root.
fn first_update(cache: &Path, repo: &TufRepo) -> serde_json::Value {
    let root = repo.initial_root();
    json_of(&custody_in(
        cache,
        &[
            "--output",
            "json",
            "trust",
            "update",
            "--mirror",
            &repo.url,
            "--root",
            root.to_str().expect("utf-8"),
        ],
    ))
}

#[test]
fn first_use_starts_from_the_initial_root_and_follows_rotations_to_v3() {
    let repo = TufRepo::new(&public_good_root());
    let cache = tempdir();
    let first = first_update(cache.path(), &repo);
    assert_eq!(first["trustedRoot"]["source"], "tuf");
    assert_eq!(first["trustedRoot"]["mirror"], repo.url.as_str());
    assert_eq!(first["trustedRoot"]["tuf"]["root"], 1);
    assert_eq!(first["trustedRoot"]["tuf"]["targets"], 1);
    let expected = fs::read(public_good_root()).expect("root");
    assert_eq!(
        first["trustedRoot"]["sha256"],
        custody::foundation::digest::Digest::of(&expected).hex()
    );

    repo.run(&["rotate-root"]);
    repo.run(&["rotate-root"]);
    // The mirror given once is the default from now on.
    let rotated = json_of(&custody_in(
        cache.path(),
        &["--output", "json", "trust", "update"],
    ));
    assert_eq!(rotated["trustedRoot"]["tuf"]["root"], 3);
    assert_eq!(rotated["trustedRoot"]["tuf"]["targets"], 3);

    // Offline, the cache is verified again from the initial root and used.
    let shown = json_of(&custody_in(
        cache.path(),
        &["--output", "json", "trust", "show", "--offline"],
    ));
    assert_eq!(shown["trustedRoot"]["source"], "tuf-cache");
    assert_eq!(shown["trustedRoot"]["tuf"]["root"], 3);
    let kinds: Vec<&str> = shown["authorities"]
        .as_array()
        .expect("authorities")
        .iter()
        .map(|a| a["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "certificate-authority")
            .count(),
        2
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "timestamp-authority")
            .count(),
        1
    );

    let out = cache.path().join("exported.json");
    let o = custody_in(
        cache.path(),
        &["trust", "export", out.to_str().expect("utf-8"), "--offline"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read(&out).expect("exported"), expected);
}

fn refused_update(cache: &Path) -> String {
    let o = custody_in(cache, &["trust", "update"]);
    assert_eq!(o.status.code(), Some(2), "{}\n{}", stdout(&o), stderr(&o));
    stderr(&o)
}

/// A certificate authority and a server certificate for 127.0.0.1 it signed, made by openssl.
fn tls_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let script = format!(
        "set -e
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj '/CN={name} CA' \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
  -keyout {name}-ca.key -out {name}-ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=127.0.0.1' \
  -keyout {name}.key -out {name}.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > {name}.ext
openssl x509 -req -in {name}.csr -CA {name}-ca.pem -CAkey {name}-ca.key -CAcreateserial \
  -days 2 -sha256 -extfile {name}.ext -out {name}.pem 2>/dev/null"
    );
    let o = Command::new("sh")
        .args(["-c", &script])
        .current_dir(dir)
        .output()
        .expect("sh runs");
    assert!(o.status.success(), "openssl: {}", stderr(&o));
    let at = |f: String| dir.join(f);
    (
        at(format!("{name}-ca.pem")),
        at(format!("{name}.pem")),
        at(format!("{name}.key")),
    )
}

/// Over HTTPS the server's certificate is checked against the platform's roots, read when the
/// first server shows one (SSL_CERT_FILE here): a mirror whose CA is among them updates; one
/// whose CA is not is refused for its certificate.
#[test]
fn an_https_mirror_is_trusted_only_through_the_platforms_roots() {
    let certs = tempdir();
    let (ca, cert, key) = tls_pair(certs.path(), "mirror");
    let (other_ca, _, _) = tls_pair(certs.path(), "other");
    let repo = TufRepo::serve(&public_good_root(), Some((&cert, &key)));
    assert!(repo.url.starts_with("https://127.0.0.1:"), "{}", repo.url);
    let root = repo.initial_root();
    let update = |roots: &Path| {
        let cache = tempdir();
        custody()
            .env("XDG_CACHE_HOME", cache.path())
            .env("SSL_CERT_FILE", roots)
            .env_remove("SSL_CERT_DIR")
            .env_remove("CUSTODY_TRUST_MAX_AGE")
            .args([
                "--output", "json", "trust", "update", "--mirror", &repo.url, "--root",
            ])
            .arg(&root)
            .output()
            .expect("custody runs")
    };
    let trusted = json_of(&update(&ca));
    assert_eq!(trusted["trustedRoot"]["mirror"], repo.url.as_str());
    assert_eq!(trusted["trustedRoot"]["tuf"]["root"], 1);
    let refused = update(&other_ca);
    assert!(!refused.status.success(), "{}", stdout(&refused));
    let err = stderr(&refused).to_lowercase();
    assert!(err.contains("certificate"), "{err}");
}

#[test]
fn an_expired_timestamp_is_refused() {
    let repo = TufRepo::new(&public_good_root());
    let cache = tempdir();
    first_update(cache.path(), &repo);
    repo.run(&["expire-timestamp"]);
    let err = refused_update(cache.path());
    assert!(err.contains("timestamp metadata expired"), "{err}");
}

#[test]
fn a_snapshot_rollback_is_refused() {
    let repo = TufRepo::new(&public_good_root());
    let cache = tempdir();
    repo.run(&["publish", public_good_root().to_str().expect("utf-8")]);
    first_update(cache.path(), &repo);
    repo.run(&["rollback-snapshot"]);
    let err = refused_update(cache.path());
    assert!(err.contains("rollback detected for snapshot"), "{err}");
}

#[test]
fn a_target_with_a_wrong_hash_is_refused() {
    let repo = TufRepo::new(&public_good_root());
    repo.run(&["tamper-target"]);
    let cache = tempdir();
    let root = repo.initial_root();
    let o = custody_in(
        cache.path(),
        &[
            "trust",
            "update",
            "--mirror",
            &repo.url,
            "--root",
            root.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("integrity check failed"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn offline_without_a_cache_uses_the_embedded_public_good_root() {
    let cache = tempdir();
    let shown = json_of(&custody_in(
        cache.path(),
        &["--output", "json", "trust", "show", "--offline"],
    ));
    assert_eq!(shown["trustedRoot"]["source"], "embedded");
    assert_eq!(
        shown["trustedRoot"]["sha256"],
        custody::foundation::digest::Digest::of(&fs::read(public_good_root()).expect("root")).hex()
    );
}

/// The predicate type of a bundle's DSSE statement, when the bundle has a readable one.
fn dsse_predicate_type(bundle: &Path) -> Option<String> {
    use base64::Engine as _;
    let json: serde_json::Value = serde_json::from_slice(&fs::read(bundle).ok()?).ok()?;
    let payload = json["dsseEnvelope"]["payload"].as_str()?;
    let statement = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    let statement: serde_json::Value = serde_json::from_slice(&statement).ok()?;
    statement["predicateType"].as_str().map(str::to_owned)
}

/// Every conformance case whose trusted root is public-good's verifies (or, for `_fail`
/// cases, is refused) with no `--trusted-root`: a first run's cache, offline.
#[test]
fn public_good_conformance_cases_verify_without_a_trusted_root_flag() {
    let suite = conformance();
    let mut cases: Vec<PathBuf> = fs::read_dir(suite.join("cases"))
        .expect("cases")
        .map(|e| e.expect("entry").path())
        .filter(|p| !p.join("trusted_root.json").exists() && !p.join("key.pub").exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 19, "{} public-good cases", cases.len());
    let cache = tempdir();
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir.file_name().expect("name").to_string_lossy().to_string();
        let artifact = Some(dir.join("artifact"))
            .filter(|p| p.exists())
            .unwrap_or_else(|| suite.join("a.txt"));
        let read = |f: &str, default: &str| {
            fs::read_to_string(dir.join(f))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| default.to_string())
        };
        let bundle = dir.join("bundle.sigstore.json");
        let identity = read("identity", IDENTITY);
        let issuer = read("issuer", ISSUER);
        let mut args = vec![
            "verify-bundle",
            artifact.to_str().expect("utf-8"),
            "--bundle",
            bundle.to_str().expect("utf-8"),
            "--certificate-identity",
            &identity,
            "--certificate-oidc-issuer",
            &issuer,
            "--offline",
        ];
        // A DSSE case carries an attestation, not a signature: verify-bundle accepts it only
        // when told which predicate type to expect.
        let predicate_type = dsse_predicate_type(&bundle);
        if let Some(t) = &predicate_type {
            args.extend(["--predicate-type", t]);
        }
        let o = custody_in(cache.path(), &args);
        // A refusal is exit 1; a bundle that is not even a bundle cannot be verified (2). A
        // missing trusted root would be 2 as well, and says so.
        let code = o.status.code();
        let pass = if name.ends_with("_fail") {
            (code == Some(1) || code == Some(2)) && !stderr(&o).contains("no trusted root")
        } else {
            code == Some(0)
        };
        if !pass {
            failures.push(format!("{name}: exit {code:?}: {}", stderr(&o)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// In GitHub Actions with no key and no OIDC token, release refuses (exit 2) with the fix and
/// pushes nothing, instead of signing with a development key made on the runner.
#[test]
fn release_in_ci_without_a_key_or_token_says_how_to_get_one() {
    let dir = tempdir();
    let repo = crate::release::work_tree(dir.path());
    let layout = dir.path().join("out");
    let to = format!("oci:{}:v1", layout.display());
    let github: &[(&str, &str)] = &[
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REPOSITORY", "acme/app"),
        ("GITHUB_REPOSITORY_ID", "123"),
        ("GITHUB_REPOSITORY_OWNER_ID", "45"),
        ("GITHUB_REF", "refs/heads/main"),
        ("GITHUB_SHA", "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d"),
        (
            "GITHUB_WORKFLOW_REF",
            "acme/app/.github/workflows/release.yml@refs/heads/main",
        ),
        ("GITHUB_RUN_ID", "999"),
        ("GITHUB_RUN_ATTEMPT", "1"),
        ("GITHUB_EVENT_NAME", "push"),
        ("RUNNER_ENVIRONMENT", "github-hosted"),
    ];
    let gitlab: &[(&str, &str)] = &[
        ("GITLAB_CI", "true"),
        ("CI_SERVER_URL", "https://gitlab.example.com"),
        ("CI_PROJECT_URL", "https://gitlab.example.com/acme/app"),
        ("CI_PROJECT_ID", "77"),
        ("CI_COMMIT_SHA", "bdd2ecda9ef57b129c88617a0215afc9fb223521"),
        ("CI_COMMIT_REF_NAME", "main"),
        ("CI_COMMIT_BRANCH", "main"),
        ("CI_CONFIG_PATH", ".gitlab-ci.yml"),
        ("CI_JOB_NAME", "release"),
        ("CI_JOB_ID", "1034"),
        (
            "CI_JOB_URL",
            "https://gitlab.example.com/acme/app/-/jobs/1034",
        ),
        ("CI_PIPELINE_ID", "500"),
        ("CI_RUNNER_ID", "12"),
    ];
    for (name, env, fix) in [
        ("github", github, "permissions: id-token: write"),
        ("gitlab", gitlab, "id_tokens: SIGSTORE_ID_TOKEN"),
    ] {
        let o = custody()
            .args(["release", "dist/app.bin", "--to", &to])
            .current_dir(&repo)
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join(".config"))
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITLAB_CI")
            .env("CI", "true")
            .envs(env.iter().copied())
            .output()
            .expect("custody runs");
        let var = name;
        assert_eq!(o.status.code(), Some(2), "{var}: {}", stderr(&o));
        assert!(stderr(&o).contains(fix), "{var}: {}", stderr(&o));
        assert!(
            !layout.exists(),
            "{var}: something was written to {}",
            layout.display()
        );
    }
    // No development key was made either.
    assert!(!dir.path().join(".config/custody").exists());
}

/// A policy scope that names a private TUF mirror uses it, and only it: another scope of the
/// same policy keeps public-good's root.
#[test]
fn a_private_mirror_in_a_policy_scope_is_used_only_for_that_scope() {
    let repo = TufRepo::new(&public_good_root());
    let dir = tempdir();
    let file = dir.path().join("app.txt");
    fs::write(&file, b"an artifact\n").expect("write");
    let layout = dir.path().join("layout");
    let o = custody_in(
        dir.path(),
        &[
            "push",
            file.to_str().expect("utf-8"),
            "--to",
            &format!("oci:{}:v1", layout.display()),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    fs::copy(repo.initial_root(), dir.path().join("internal-root.json")).expect("copy");
    let policy = dir.path().join("policy.yaml");
    fs::write(
        &policy,
        format!(
            "version: 1
scopes:
  - name: internal
    repositories: [\"internal.example/**\"]
    trust:
      tuf:
        mirror: {}
        root: internal-root.json
    signers:
      - name: ci
        issuer: https://issuer.internal.example
        subject: https://ci.internal.example/app
  - name: public
    repositories: [\"**\"]
    signers:
      - name: gha
        issuer: {ISSUER}
        subject: {IDENTITY}
",
            repo.url
        ),
    )
    .expect("policy");
    let cache = tempdir();
    let verify = |scope_as: &str, offline: bool| {
        let reference = format!("oci:{}:v1", layout.display());
        let mut args = vec![
            "--output",
            "json",
            "verify",
            &reference,
            "--policy",
            policy.to_str().expect("utf-8"),
            "--scope-as",
            scope_as,
        ];
        if offline {
            args.push("--offline");
        }
        let o = custody_in(cache.path(), &args);
        // Nothing is signed: refused, and the report says which root was in force.
        assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("report")
    };
    let internal = verify("internal.example/team/app", false);
    assert_eq!(internal["scope"], "internal");
    assert_eq!(internal["trustedRoot"]["source"], "tuf");
    assert_eq!(internal["trustedRoot"]["mirror"], repo.url.as_str());
    assert_eq!(internal["trustedRoot"]["tuf"]["root"], 1);
    crate::support::validate_against_schema("verify-report.schema.json", &internal);

    let public = verify("docker.io/library/app", true);
    assert_eq!(public["scope"], "public");
    assert_eq!(public["trustedRoot"]["source"], "embedded");
    assert_eq!(
        public["trustedRoot"]["mirror"],
        custody::evidence::trust::PUBLIC_GOOD_MIRROR
    );
}

/// A Fulcio CA rotation: a bundle from a CA the cached root does not know is refused while the
/// cache is fresh, and verifies once `trust update` fetched the new trusted root.
#[test]
fn a_new_ca_is_trusted_after_trust_update() {
    let dir = tempdir();
    let mut before: serde_json::Value =
        serde_json::from_slice(&fs::read(public_good_root()).expect("root")).expect("json");
    before["certificateAuthorities"] = serde_json::json!([]);
    let stale = dir.path().join("before-rotation.json");
    fs::write(&stale, serde_json::to_vec(&before).expect("json")).expect("write");
    let repo = TufRepo::new(&stale);
    let cache = tempdir();
    first_update(cache.path(), &repo);

    let case = conformance().join("cases/happy-path-v0.3-new-mediaType");
    let verify = || {
        custody_in(
            cache.path(),
            &[
                "verify-bundle",
                conformance().join("a.txt").to_str().expect("utf-8"),
                "--bundle",
                case.join("bundle.sigstore.json").to_str().expect("utf-8"),
                "--certificate-identity",
                IDENTITY,
                "--certificate-oidc-issuer",
                ISSUER,
            ],
        )
    };
    let o = verify();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    repo.run(&["publish", public_good_root().to_str().expect("utf-8")]);
    // The cache is a day fresh: the new CA is not seen yet.
    let o = verify();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    let updated = json_of(&custody_in(
        cache.path(),
        &["--output", "json", "trust", "update"],
    ));
    assert_eq!(updated["trustedRoot"]["tuf"]["targets"], 2);
    let o = verify();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!(
            "trusted root: tuf-cache {}, tuf root v1 timestamp v2",
            repo.url
        )),
        "{}",
        stdout(&o)
    );
}

/// A keyless check with no usable trusted root cannot run (exit 2), and the hint says how to
/// get one.
#[test]
fn no_usable_root_says_how_to_get_one() {
    let cache = tempdir();
    fs::create_dir_all(cache.path().join("custody/tuf")).expect("mkdir");
    fs::write(
        cache.path().join("custody/tuf/default-mirror"),
        "http://127.0.0.1:9",
    )
    .expect("write");
    let case = conformance().join("cases/happy-path-v0.3-new-mediaType");
    let o = custody_in(
        cache.path(),
        &[
            "verify-bundle",
            conformance().join("a.txt").to_str().expect("utf-8"),
            "--bundle",
            case.join("bundle.sigstore.json").to_str().expect("utf-8"),
            "--certificate-identity",
            IDENTITY,
            "--certificate-oidc-issuer",
            ISSUER,
            "--offline",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("no initial root for mirror http://127.0.0.1:9"),
        "{err}"
    );
    assert!(
        err.contains("hint: keyless signatures need a trusted root"),
        "{err}"
    );
}

/// Offline, a cache whose timestamp expired is refused, naming the role; an allowed age
/// accepts it, verified as of when it was fetched, and marked stale.
#[test]
fn an_expired_cache_is_refused_offline_unless_its_age_is_allowed() {
    use custody::evidence::trust::{
        self, Mirror, Network, Options, Refresh, RootSource, TrustError,
    };
    let repo = TufRepo::new(&public_good_root());
    let cache = tempdir();
    let initial = fs::read(repo.initial_root()).expect("root");
    let mirror = Mirror::new(&repo.url, initial);
    let now = jiff::Timestamp::now();
    let options = |network, now, max_cache_age| Options {
        cache: cache.path().to_path_buf(),
        network,
        refresh: Refresh::WhenStale,
        now,
        max_cache_age,
    };
    let fetched = trust::obtain(&mirror, &options(Network::Online, now, None)).expect("update");
    assert_eq!(fetched.origin.source, RootSource::Tuf);

    // Ten days on, the seven-day timestamp has expired.
    let later = now + jiff::SignedDuration::from_hours(240);
    let err = trust::obtain(&mirror, &options(Network::Offline, later, None)).unwrap_err();
    assert!(
        matches!(
            &err,
            TrustError::Cache {
                source: sigstore_tuf::Error::Expired { role, .. },
                ..
            } if role == "timestamp"
        ),
        "{err:?}"
    );

    let thirty_days = Some(jiff::SignedDuration::from_hours(720));
    let stale = trust::obtain(&mirror, &options(Network::Offline, later, thirty_days))
        .expect("an allowed age");
    assert_eq!(stale.origin.source, RootSource::TufCache);
    assert!(stale.origin.stale);
    assert_eq!(stale.origin.age_seconds, Some(240 * 3600));

    let one_day = Some(jiff::SignedDuration::from_hours(24));
    let err = trust::obtain(&mirror, &options(Network::Offline, later, one_day)).unwrap_err();
    assert!(
        matches!(err, TrustError::TooOld { age_hours: 240, .. }),
        "{err:?}"
    );
}

/// A cached timestamp edited by someone who can write the cache folder is not trusted: the
/// offline run re-verifies it and refuses.
#[test]
fn a_tampered_cache_is_refused() {
    let repo = TufRepo::new(&public_good_root());
    let cache = tempdir();
    first_update(cache.path(), &repo);
    let dir = custody::evidence::trust::mirror_dir(&cache.path().join("custody/tuf"), &repo.url);
    let path = dir.join("timestamp.json");
    let text = fs::read_to_string(&path).expect("cached timestamp");
    fs::write(&path, text.replace("\"version\": 1", "\"version\": 9")).expect("tamper");
    let o = custody_in(cache.path(), &["trust", "show", "--offline"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("cannot be used offline"),
        "{}",
        stderr(&o)
    );
}

/// The hidden `__tuf-conformance-client` speaks the conformance suite's client protocol
/// against a python-tuf repository: the metadata folder holds the trusted set under unversioned
/// names, rotations are followed, targets land under their names, failures exit 1.
#[test]
fn the_conformance_client_protocol_works_against_python_tuf() {
    let repo = TufRepo::new(&public_good_root());
    let dir = tempdir();
    let meta = dir.path().join("metadata");
    let targets = dir.path().join("targets");
    let client = |args: &[&str]| {
        let mut all = vec![
            "__tuf-conformance-client",
            "--metadata-dir",
            meta.to_str().expect("utf-8"),
        ];
        all.extend_from_slice(args);
        custody_in(dir.path(), &all)
    };
    let o = client(&["init", repo.initial_root().to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    repo.run(&["rotate-root"]);
    repo.run(&["rotate-root"]);
    let o = client(&["--metadata-url", &repo.url, "refresh"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut names: Vec<String> = fs::read_dir(&meta)
        .expect("metadata")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "root.json",
            "snapshot.json",
            "targets.json",
            "timestamp.json"
        ]
    );
    let root: serde_json::Value =
        serde_json::from_slice(&fs::read(meta.join("root.json")).expect("root")).expect("json");
    assert_eq!(root["signed"]["version"], 3);

    let o = client(&[
        "--metadata-url",
        &repo.url,
        "--target-name",
        "trusted_root.json",
        "--target-base-url",
        &format!("{}/targets", repo.url),
        "--target-dir",
        targets.to_str().expect("utf-8"),
        "download",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        fs::read(targets.join("trusted_root.json")).expect("target"),
        fs::read(public_good_root()).expect("root")
    );

    repo.run(&["expire-timestamp"]);
    let o = client(&["--metadata-url", &repo.url, "refresh"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("timestamp metadata expired"),
        "{}",
        stderr(&o)
    );
}

/// Endless data: a timestamp larger than the TUF client allows is not read past its cap.
#[test]
fn an_oversized_timestamp_is_refused() {
    let repo = TufRepo::new(&public_good_root());
    let cache = tempdir();
    first_update(cache.path(), &repo);
    fs::write(
        repo.dir.path().join("repo/timestamp.json"),
        vec![b' '; 1_000_000],
    )
    .expect("write");
    let err = refused_update(cache.path());
    assert!(err.contains("longer than the 16384 bytes allowed"), "{err}");
}

/// Keyless on the local Sigstore stack, its trusted root published through a local TUF
/// repository: after `trust update --mirror`, verify-bundle needs no `--trusted-root`.
#[test]
fn a_local_stack_published_through_tuf_verifies_without_a_flag() {
    use crate::sigstore_stack::{EMAIL, SigstoreStack};
    let stack = SigstoreStack::shared();
    let repo = TufRepo::new(&stack.trusted_root);
    let dir = tempdir();
    let file = dir.path().join("release.tar");
    fs::write(&file, b"a release\n").expect("write");
    let bundle = dir.path().join("release.tar.sigstore.json");
    let token = dir.path().join("token");
    fs::write(&token, stack.oidc.token()).expect("token");
    let mut sign = custody();
    for var in custody::evidence::sign::oidc::TOKEN_ENV_VARS {
        sign.env_remove(var);
    }
    let o = sign
        .env("XDG_CACHE_HOME", dir.path())
        .arg("sign-blob")
        .arg(&file)
        .arg("--bundle")
        .arg(&bundle)
        .arg("--signing-config")
        .arg(&stack.signing_config)
        .arg("--trusted-root")
        .arg(&stack.trusted_root)
        .arg("--identity-token")
        .arg(&token)
        .output()
        .expect("custody runs");
    assert!(o.status.success(), "{}", stderr(&o));

    let cache = tempdir();
    let verify = || {
        custody_in(
            cache.path(),
            &[
                "verify-bundle",
                file.to_str().expect("utf-8"),
                "--bundle",
                bundle.to_str().expect("utf-8"),
                "--certificate-identity",
                EMAIL,
                "--certificate-oidc-issuer",
                &stack.oidc.url,
                "--offline",
            ],
        )
    };
    // Public-good's root (the default) does not know this stack's CA.
    let o = verify();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    first_update(cache.path(), &repo);
    let o = verify();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("trusted root: tuf-cache {}", repo.url)),
        "{}",
        stdout(&o)
    );
}

/// `--signing-config tuf`: keyless signing takes its services (Fulcio, Rekor, TSA) from the
/// `signing_config.v0.2.json` the TUF mirror publishes, and checks the new bundle against the
/// same repository's trusted root; a mirror that publishes none is named, with the way out.
#[test]
fn keyless_signing_reads_the_signing_config_from_the_tuf_mirror() {
    use crate::sigstore_stack::{EMAIL, SigstoreStack};
    let stack = SigstoreStack::shared();
    let repo = TufRepo::new(&stack.trusted_root);
    let cache = tempdir();
    first_update(cache.path(), &repo);
    let dir = tempdir();
    let file = dir.path().join("release.tar");
    fs::write(&file, b"a release signed with services from tuf\n").expect("write");
    let bundle = dir.path().join("release.tar.sigstore.json");
    let token = dir.path().join("token");
    fs::write(&token, stack.oidc.token()).expect("token");
    let sign = || {
        let mut c = custody();
        for var in custody::evidence::sign::oidc::TOKEN_ENV_VARS {
            c.env_remove(var);
        }
        c.env("XDG_CACHE_HOME", cache.path())
            .arg("sign-blob")
            .arg(&file)
            .arg("--bundle")
            .arg(&bundle)
            .args(["--signing-config", "tuf", "--identity-token"])
            .arg(&token)
            .output()
            .expect("custody runs")
    };

    // Not published yet: exit 2, the target and the mirror named, and the flags to use instead.
    let o = sign();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "cannot read signing_config.v0.2.json from the tuf mirror {}",
            repo.url
        )),
        "{err}"
    );
    assert!(
        err.contains("hint: ")
            && err.contains("publishes no signing_config.v0.2.json; give --signing-config FILE"),
        "{err}"
    );
    assert!(!bundle.exists());

    repo.run(&[
        "publish-signing-config",
        stack.signing_config.to_str().expect("utf-8"),
    ]);
    let o = sign();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = custody_in(
        cache.path(),
        &[
            "verify-bundle",
            file.to_str().expect("utf-8"),
            "--bundle",
            bundle.to_str().expect("utf-8"),
            "--certificate-identity",
            EMAIL,
            "--certificate-oidc-issuer",
            &stack.oidc.url,
            "--offline",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
