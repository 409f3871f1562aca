//! A real Sigstore stack on loopback for keyless tests, built by `scripts/install-sigstore-stack`:
//! Fulcio (ephemeral CA) with a TesseraCT certificate-transparency log, Rekor v2 (rekor-tiles
//! POSIX) and the timestamp authority (in-memory signer), plus custody's own OIDC issuer served
//! in-process (discovery document, JWKS, ES256 tokens minted by the test). Every service gets
//! free ports and its own temp folder; `trusted_root.json` and `signing_config.json` are written
//! by cosign (`trusted-root create`, `signing-config create`). Everything stops on drop.
//!
//! The timestamp authority binds its metrics on `:2112`, fixed in its code (v2.1.3 has no flag
//! for it), so one stack is shared by the tests of a run ([`SigstoreStack::shared`]), started
//! again only when none is alive, and a file lock keeps a second test process on this machine
//! waiting instead of failing. The other services get free ports; a start that loses a port
//! to another process (the service exits) is retried with fresh ones.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::support::{self, HostileServer, Response};

/// The identity every default token carries.
pub const EMAIL: &str = "keyless@custody.test";
const SIGNING_KEY_ID: &str = "custody-test-1";
const START_TIME: &str = "2024-01-01T00:00:00Z";

fn stack_bin(folder: &str, name: &str) -> PathBuf {
    let path = support::tools_bin()
        .join("sigstore")
        .join(folder)
        .join(name);
    assert!(
        path.is_file(),
        "{folder}/{name} is not installed at {}: run scripts/install-sigstore-stack (scripts/test does)",
        path.display()
    );
    path
}

fn cosign() -> PathBuf {
    support::tool("cosign")
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The OIDC issuer: an ES256 key, served as a JWKS by an in-process HTTP server. It serves two
/// issuers with the same key: `url` (Fulcio type `email`) and `github_url` = `url` + `/github`
/// (Fulcio type `github-workflow`, tokens shaped like GitHub Actions' for [`OidcIssuer::github_token`]).
pub struct OidcIssuer {
    pub url: String,
    pub github_url: String,
    key: p256::ecdsa::SigningKey,
    _server: HostileServer,
}

impl OidcIssuer {
    fn start() -> OidcIssuer {
        let custody::evidence::sign::SigningKey::EcdsaP256(key) =
            custody::evidence::sign::SigningKey::generate_p256().expect("key")
        else {
            unreachable!("generate_p256 makes a P-256 key")
        };
        let spki = custody::evidence::sign::SigningKey::EcdsaP256(key.clone())
            .public_key()
            .to_spki_der();
        // Uncompressed point 04||x||y ends the SPKI.
        let point = &spki[spki.len() - 65..];
        assert_eq!(point[0], 4);
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": SIGNING_KEY_ID,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        }]});
        let issuer = Arc::new(std::sync::OnceLock::<String>::new());
        let iss = issuer.clone();
        let server = HostileServer::start(move |req| {
            let base = iss.get().cloned().unwrap_or_default();
            let (iss, path) = match req.path.strip_prefix("/github") {
                Some(rest) => (format!("{base}/github"), rest),
                None => (base, req.path.as_str()),
            };
            match path {
                "/.well-known/openid-configuration" => json(&serde_json::json!({
                    "issuer": iss,
                    "jwks_uri": format!("{iss}/keys"),
                    "id_token_signing_alg_values_supported": ["ES256"],
                    "response_types_supported": ["id_token"],
                    "subject_types_supported": ["public"],
                })),
                "/keys" => json(&jwks),
                _ => Response::new(404),
            }
        });
        let url = format!("http://{}", server.host);
        issuer.set(url.clone()).expect("set once");
        OidcIssuer {
            github_url: format!("{url}/github"),
            url,
            key,
            _server: server,
        }
    }

    /// A token for `email` with audience `aud`, valid ten minutes.
    pub fn token_for(&self, email: &str, aud: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        self.mint(&serde_json::json!({
            "iss": self.url, "sub": email, "aud": aud, "email": email, "email_verified": true,
            "iat": now, "nbf": now, "exp": now + 600,
        }))
    }

    /// The default token: [`EMAIL`], audience `sigstore`.
    pub fn token(&self) -> String {
        self.token_for(EMAIL, "sigstore")
    }

    /// A token from [`OidcIssuer::github_url`] with the claims GitHub Actions puts in its OIDC
    /// tokens (audience `sigstore`), for a push of `refs/heads/main` at `sha` in `owner/repo`
    /// running `.github/workflows/release.yml` on a GitHub-hosted runner. Fulcio's
    /// `github-workflow` type requires every one of these claims.
    pub fn github_token(&self, repository: &str, sha: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let owner = repository.split('/').next().unwrap_or(repository);
        let workflow_ref = format!("{repository}/.github/workflows/release.yml@refs/heads/main");
        self.mint(&serde_json::json!({
            "iss": self.github_url, "aud": "sigstore",
            "sub": format!("repo:{repository}:ref:refs/heads/main"),
            "iat": now, "nbf": now, "exp": now + 600,
            "repository": repository, "repository_id": "1000001",
            "repository_owner": owner, "repository_owner_id": "2000002",
            "repository_visibility": "public",
            "ref": "refs/heads/main", "ref_type": "branch", "sha": sha,
            "event_name": "push", "workflow": "Release",
            "workflow_ref": workflow_ref, "workflow_sha": sha,
            "job_workflow_ref": workflow_ref, "job_workflow_sha": sha,
            "run_id": "4242", "run_number": "7", "run_attempt": "1",
            "runner_environment": "github-hosted", "actor": owner,
        }))
    }

    pub fn mint(&self, claims: &serde_json::Value) -> String {
        use p256::ecdsa::signature::Signer as _;
        let header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"ES256","typ":"JWT","kid":"{SIGNING_KEY_ID}"}}"#
        ));
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims"));
        let signing_input = format!("{header}.{body}");
        let sig: p256::ecdsa::Signature = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }
}

fn json(value: &serde_json::Value) -> Response {
    Response::new(200)
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(value).expect("json"))
}

struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// The running stack and the files describing it.
pub struct SigstoreStack {
    pub oidc: OidcIssuer,
    pub fulcio_url: String,
    pub rekor_url: String,
    pub tsa_url: String,
    pub ct_url: String,
    pub trusted_root: PathBuf,
    pub signing_config: PathBuf,
    /// A private TUF folder for cosign so it never looks for the public one.
    pub tuf_root: PathBuf,
    services: Mutex<Vec<Service>>,
    dir: tempfile::TempDir,
    /// Held while the stack runs: the machine-wide lock on the TSA's fixed metrics port.
    _port_2112: std::fs::File,
}

/// How many times a stack start is tried before its failure is the test's.
const START_ATTEMPTS: usize = 3;

static SHARED: Mutex<Weak<SigstoreStack>> = Mutex::new(Weak::new());

impl SigstoreStack {
    /// The stack of this test run, started when no test holds one.
    pub fn shared() -> Arc<SigstoreStack> {
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(stack) = slot.upgrade() {
            return stack;
        }
        // Released when the stack is dropped; a stack of another test process holds it meanwhile.
        let lock_path = std::env::temp_dir().join("custody-test-tsa-metrics-2112.lock");
        let mut attempt = 1;
        let stack = loop {
            let lock = std::fs::File::create(&lock_path).expect("lock file");
            lock.lock().expect("lock the TSA metrics port");
            match std::panic::catch_unwind(|| SigstoreStack::start(lock)) {
                Ok(stack) => break Arc::new(stack),
                // A service lost its port to another process between the probe and its bind:
                // everything started so far was stopped on unwind; try again with fresh ports.
                Err(_) if attempt < START_ATTEMPTS => attempt += 1,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        };
        *slot = Arc::downgrade(&stack);
        stack
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn start(port_2112: std::fs::File) -> SigstoreStack {
        let fulcio_bin = stack_bin("fulcio", "fulcio");
        let tsa_bin = stack_bin("tsa", "timestamp-server");
        let rekor_bin = stack_bin("rekor-v2", "posix");
        let ct_bin = stack_bin("tesseract", "posix");
        let cosign = cosign();
        let dir = tempfile::tempdir().expect("tempdir");
        let w = dir.path().to_path_buf();
        let mut stack_services = Vec::new();

        // Keys: a P-256 CT log key (TesseraCT reads SEC1), an Ed25519 Rekor v2 key.
        openssl(
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "ct.key",
            ],
            &w,
        );
        openssl(&["ec", "-in", "ct.key", "-pubout", "-out", "ct.pub"], &w);
        openssl(
            &["genpkey", "-algorithm", "ed25519", "-out", "rekor.key"],
            &w,
        );
        openssl(
            &["pkey", "-in", "rekor.key", "-pubout", "-out", "rekor.pub"],
            &w,
        );

        let oidc = OidcIssuer::start();
        let fulcio_config = serde_json::json!({
            "OIDCIssuers": {
                oidc.url.clone(): {"IssuerURL": oidc.url, "ClientID": "sigstore", "Type": "email"},
                oidc.github_url.clone(): {
                    "IssuerURL": oidc.github_url, "ClientID": "sigstore", "Type": "github-workflow"
                }
            }
        });
        std::fs::write(w.join("fulcio-config.json"), fulcio_config.to_string()).expect("write");

        let ct_port = support::free_port();
        let ct_url = format!("http://127.0.0.1:{ct_port}");
        let fulcio_port = support::free_port();
        let fulcio_url = format!("http://127.0.0.1:{fulcio_port}");
        let socket = format!("@custody-fulcio-{}-{fulcio_port}", std::process::id());
        stack_services.push(spawn(
            "fulcio",
            &w,
            Command::new(&fulcio_bin).args([
                "serve",
                "--host=127.0.0.1",
                &format!("--port={fulcio_port}"),
                "--grpc-host=127.0.0.1",
                &format!("--grpc-port={}", support::free_port()),
                &format!("--metrics-port={}", support::free_port()),
                &format!("--legacy-unix-domain-socket={socket}"),
                "--ca=ephemeralca",
                &format!("--config-path={}", w.join("fulcio-config.json").display()),
                &format!("--ct-log-url={ct_url}"),
                &format!("--ct-log-public-key-path={}", w.join("ct.pub").display()),
            ]),
        ));
        let mut stack = SigstoreStack {
            oidc,
            fulcio_url,
            rekor_url: String::new(),
            tsa_url: String::new(),
            ct_url,
            trusted_root: w.join("trusted_root.json"),
            signing_config: w.join("signing_config.json"),
            tuf_root: w.join("tuf"),
            services: Mutex::new(stack_services),
            dir,
            _port_2112: port_2112,
        };
        let fulcio_root =
            stack.wait_get("fulcio", &format!("{}/api/v1/rootCert", stack.fulcio_url));
        std::fs::write(w.join("fulcio-root.pem"), &fulcio_root).expect("write");

        // The CT log must trust Fulcio's (ephemeral) root, known only now.
        std::fs::create_dir_all(w.join("ct")).expect("mkdir");
        stack.push(spawn(
            "tesseract",
            &w,
            Command::new(&ct_bin)
                .args([
                    &format!("--http_endpoint=127.0.0.1:{ct_port}"),
                    "--origin=custody-ct",
                    &format!("--storage_dir={}", w.join("ct").display()),
                    &format!("--private_key={}", w.join("ct.key").display()),
                    &format!("--roots_pem_file={}", w.join("fulcio-root.pem").display()),
                    "--ext_key_usages=CodeSigning",
                    "--checkpoint_interval=500ms",
                ])
                .env("GOMEMLIMIT", "256MiB"),
        ));

        let tsa_port = support::free_port();
        stack.push(spawn(
            "timestamp-authority",
            &w,
            Command::new(&tsa_bin).args([
                "serve",
                "--host=127.0.0.1",
                &format!("--port={tsa_port}"),
                "--timestamp-signer=memory",
                "--disable-ntp-monitoring",
            ]),
        ));
        stack.tsa_url = format!("http://127.0.0.1:{tsa_port}/api/v1/timestamp");

        let rekor_port = support::free_port();
        std::fs::create_dir_all(w.join("rekor")).expect("mkdir");
        stack.push(spawn(
            "rekor-v2",
            &w,
            Command::new(&rekor_bin)
                .args([
                    "serve",
                    "--http-address=127.0.0.1",
                    &format!("--http-port={rekor_port}"),
                    "--grpc-address=127.0.0.1",
                    &format!("--grpc-port={}", support::free_port()),
                    &format!("--http-metrics-port={}", support::free_port()),
                    "--hostname=127.0.0.1",
                    &format!("--storage-dir={}", w.join("rekor").display()),
                    &format!("--signer-filepath={}", w.join("rekor.key").display()),
                    "--checkpoint-interval=500ms",
                ])
                .env("GOMEMLIMIT", "256MiB"),
        ));
        stack.rekor_url = format!("http://127.0.0.1:{rekor_port}");

        let tsa_chain = stack.wait_get(
            "timestamp-authority",
            &format!("http://127.0.0.1:{tsa_port}/api/v1/timestamp/certchain"),
        );
        std::fs::write(w.join("tsa-chain.pem"), &tsa_chain).expect("write");
        stack.wait_get("rekor-v2", &format!("{}/healthz", stack.rekor_url));
        stack.wait_tcp("tesseract", ct_port);

        let run_cosign = |args: &[String]| {
            let out = Command::new(&cosign)
                .args(args)
                .env("TUF_ROOT", w.join("tuf"))
                .output()
                .expect("cosign runs");
            assert!(
                out.status.success(),
                "cosign {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run_cosign(&[
            "trusted-root".into(),
            "create".into(),
            format!(
                "--fulcio=url={},certificate-chain={}",
                stack.fulcio_url,
                w.join("fulcio-root.pem").display()
            ),
            format!(
                "--ctfe=url={},public-key={},start-time={START_TIME}",
                stack.ct_url,
                w.join("ct.pub").display()
            ),
            format!(
                "--rekor=url={},public-key={},start-time={START_TIME},origin=127.0.0.1",
                stack.rekor_url,
                w.join("rekor.pub").display()
            ),
            format!(
                "--tsa=url={},certificate-chain={}",
                stack.tsa_url,
                w.join("tsa-chain.pem").display()
            ),
            format!("--out={}", stack.trusted_root.display()),
        ]);
        run_cosign(&[
            "signing-config".into(),
            "create".into(),
            format!(
                "--fulcio=url={},api-version=1,start-time={START_TIME},operator=local",
                stack.fulcio_url
            ),
            format!(
                "--oidc-provider=url={},api-version=1,start-time={START_TIME},operator=local",
                stack.oidc.url
            ),
            format!(
                "--rekor=url={},api-version=2,start-time={START_TIME},operator=local",
                stack.rekor_url
            ),
            "--rekor-config=ANY".into(),
            format!(
                "--tsa=url={},api-version=1,start-time={START_TIME},operator=local",
                stack.tsa_url
            ),
            "--tsa-config=ANY".into(),
            format!("--out={}", stack.signing_config.display()),
        ]);
        stack
    }

    fn push(&mut self, service: Service) {
        self.services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(service);
    }

    /// Panics with the service's log when it has exited.
    fn check_alive(&self, name: &str) {
        let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        for s in services.iter_mut().filter(|s| s.name == name) {
            if let Ok(Some(status)) = s.child.try_wait() {
                let log = std::fs::read_to_string(&s.log).unwrap_or_default();
                let tail: String = log
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                panic!("{name} exited ({status}) while starting:\n{tail}");
            }
        }
    }

    /// GETs `url` until it answers 200 (60 s at most); returns the body.
    fn wait_get(&self, name: &str, url: &str) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = custody::foundation::http::client().expect("client");
        loop {
            self.check_alive(name);
            if let Ok(r) = client.get(url).timeout(Duration::from_secs(5)).send()
                && r.status().is_success()
                && let Ok(body) = r.bytes()
            {
                return body.to_vec();
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not answer {url} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_tcp(&self, name: &str, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.check_alive(name);
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not listen on {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// cosign with this stack's private TUF folder.
    pub fn cosign(&self) -> Command {
        let mut c = Command::new(cosign());
        c.env("TUF_ROOT", &self.tuf_root).env("HOME", self.dir());
        c
    }
}

fn spawn(name: &'static str, dir: &Path, cmd: &mut Command) -> Service {
    let log = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).expect("log file");
    let child = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    Service { name, child, log }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SigstoreStack {
    fn drop(&mut self) {
        let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        for s in services.iter_mut().rev() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}
