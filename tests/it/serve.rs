//! `custody serve` as the API server meets it: the real binary over TLS on loopback (the
//! certificate names the Service, `custody.custody-system.svc`, and the client dials that name),
//! AdmissionReviews built as the API server sends them, and a real registry with signed and
//! unsigned artifacts: admitted, denied with reasons, pinned to digests, a registry outage
//! (denied, fail closed), a policy reload, a certificate rotation and concurrent reviews.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{self, Registry};

/// The name the API server dials for a Service-backed webhook.
const SERVICE_NAME: &str = "custody.custody-system.svc";

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (Debian's openssl package)");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A throwaway CA (`<name>-ca.crt`) and a serving pair for the Service name signed by it.
fn make_certs(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.crt");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            "/CN=custody test ca",
        ],
    );
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let crt = format!("{name}.crt");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=custody",
        ],
    );
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!("subjectAltName=DNS:{SERVICE_NAME}\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    (dir.join(ca), dir.join(crt), dir.join(key))
}

/// A `custody serve` process, stopped on drop, with its standard error collected.
struct Served {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    fn start(dir: &Path, policy: &Path, extra: &[&str]) -> Served {
        Served::start_with(dir, policy, extra, &[], "2s")
    }

    /// [`Served::start`] with environment variables and a registry timeout.
    fn start_with(
        dir: &Path,
        policy: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        timeout: &str,
    ) -> Served {
        let mut child = support::custody()
            .envs(env.iter().copied())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                dir.join("tls.crt").to_str().unwrap(),
                "--tls-key",
                dir.join("tls.key").to_str().unwrap(),
                "--policy",
                policy.to_str().unwrap(),
                "--reload-interval",
                "100ms",
                "--timeout",
                timeout,
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("custody serve starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("custody serve: listening on https://") {
                    let _ = tx.send(addr.to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("custody serve did not listen: {:?}", log.lock().unwrap()));
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        Served { child, port, log }
    }

    /// Waits (bounded) until a log line contains `text`.
    fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.log.lock().unwrap().iter().any(|l| l.contains(text)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no log line with {text:?}: {:?}", self.log.lock().unwrap());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TLS client that trusts only `ca` and dials the Service name on loopback, as the API
/// server would dial `<svc>.<ns>.svc`.
struct Client {
    config: Arc<rustls::ClientConfig>,
    port: u16,
}

struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
    certificate: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Client {
    fn new(ca: &Path, port: u16) -> Client {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Client {
            config: Arc::new(config),
            port,
        }
    }

    /// One request on a new connection.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> Answer {
        let name = SERVICE_NAME.try_into().unwrap();
        let conn = rustls::ClientConnection::new(self.config.clone(), name).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {SERVICE_NAME}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        tls.write_all(head.as_bytes()).unwrap();
        tls.write_all(body).unwrap();
        tls.flush().unwrap();
        let mut raw = Vec::new();
        match tls.read_to_end(&mut raw) {
            Ok(_) => {}
            // The server may close without a TLS close_notify once it has answered.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => panic!("reading the answer: {e}"),
        }
        let certificate = tls.conn.peer_certificates().unwrap()[0].to_vec();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP answer");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut body = raw[split + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = unchunk(&body);
        }
        Answer {
            status,
            head,
            body,
            certificate,
        }
    }

    fn review(&self, webhook: &str, review: &Value) -> Value {
        let a = self.request(
            "POST",
            &format!("/admission/{webhook}?timeout=10s"),
            review.to_string().as_bytes(),
        );
        assert_eq!(a.status, 200, "{}", a.text());
        let answer = a.json();
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(answer["response"]["uid"], review["request"]["uid"]);
        if webhook == "validate" {
            assert!(answer["response"].get("patch").is_none());
            assert!(answer["response"].get("patchType").is_none());
        }
        answer["response"].clone()
    }
}

fn unchunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 4 + size..];
    }
}

/// An AdmissionReview for `object` of `kind` as the API server sends it.
fn review(
    uid: &str,
    group: &str,
    kind: &str,
    resource: &str,
    operation: &str,
    mut object: Value,
) -> Value {
    if object.is_object() {
        object["apiVersion"] = json!(if group.is_empty() {
            "v1".to_owned()
        } else {
            format!("{group}/v1")
        });
    }
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "requestKind": {"group": group, "version": "v1", "kind": kind},
            "requestResource": {"group": group, "version": "v1", "resource": resource},
            "name": "app",
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": "alice", "uid": "1", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        }
    })
}

fn pod(containers: &[&str], init: &[&str]) -> Value {
    let list = |images: &[&str], prefix: &str| -> Vec<Value> {
        images
            .iter()
            .enumerate()
            .map(|(i, image)| json!({"name": format!("{prefix}{i}"), "image": image}))
            .collect()
    };
    json!({
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": "shop"},
        "spec": {"containers": list(containers, "c"), "initContainers": list(init, "i")},
    })
}

fn deployment(image: &str) -> Value {
    json!({
        "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "shop"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "app"}},
            "template": {
                "metadata": {"labels": {"app": "app"}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    })
}

fn cronjob(image: &str) -> Value {
    json!({
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "shop"},
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "job", "image": image}],
            }}}},
        },
    })
}

/// A folder with a registry, a key pair, TLS files and a policy trusting the key.
struct Setup {
    dir: tempfile::TempDir,
    registry: Registry,
    ca: PathBuf,
    policy: PathBuf,
}

fn keygen(dir: &Path, prefix: &str) -> String {
    let prefix = dir.join(prefix);
    let prefix = prefix.to_str().unwrap();
    let o = support::custody()
        .args(["keygen", "--output-key-prefix", prefix])
        .env("COSIGN_PASSWORD", "pw")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", support::stderr(&o));
    prefix.to_owned()
}

/// Pushes a small artifact to `reference`; signs it with `key` (a keygen prefix) if given.
fn publish(dir: &Path, reference: &str, content: &str, key: Option<&str>) -> String {
    let file = dir.join("artifact.txt");
    std::fs::write(&file, content).unwrap();
    support::ok(&["push", file.to_str().unwrap(), "--to", reference]);
    if let Some(key) = key {
        let o = support::custody()
            .args(["sign", reference, "--key", &format!("{key}.key")])
            .env("COSIGN_PASSWORD", "pw")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", support::stderr(&o));
    }
    support::ok(&["resolve", reference]).trim().to_owned()
}

fn policy_trusting(path: &Path, registry: &str, key: &str) {
    std::fs::write(
        path,
        format!(
            "version: 1\nscopes:\n  - name: shop\n    repositories: [\"{registry}/**\"]\n    signers:\n      - name: release\n        key: {key}.pub\n"
        ),
    )
    .unwrap();
}

fn setup() -> Setup {
    let dir = support::tempdir();
    let registry = Registry::start();
    let (ca, crt, key) = make_certs(dir.path(), "first");
    std::fs::copy(crt, dir.path().join("tls.crt")).unwrap();
    std::fs::copy(key, dir.path().join("tls.key")).unwrap();
    let signer = keygen(dir.path(), "release");
    let policy = dir.path().join("policy.yaml");
    policy_trusting(&policy, &registry.host, &signer);
    Setup {
        dir,
        registry,
        ca,
        policy,
    }
}

fn metric(client: &Client, line_prefix: &str) -> u64 {
    let text = client.request("GET", "/metrics", b"").text();
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .unwrap_or_else(|| panic!("no {line_prefix} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

fn apply_patch(object: &mut Value, response: &Value) {
    let patch = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().unwrap())
        .unwrap();
    let ops: Vec<Value> = serde_json::from_slice(&patch).unwrap();
    for op in ops {
        let target = object.pointer_mut(op["path"].as_str().unwrap()).unwrap();
        match op["op"].as_str().unwrap() {
            "test" => assert_eq!(
                *target, op["value"],
                "the patch was computed from this value"
            ),
            "replace" => *target = op["value"].clone(),
            other => panic!("unexpected op {other}"),
        }
    }
}

#[test]
fn signed_images_are_admitted_unsigned_denied_with_reasons_and_tags_pinned() {
    let s = setup();
    let host = &s.registry.host;
    let signer = s.dir.path().join("release").display().to_string();
    let signed = format!("{host}/shop/app:v1");
    let unsigned = format!("{host}/shop/tool:v1");
    let digest = publish(s.dir.path(), &signed, "app", Some(&signer));
    publish(s.dir.path(), &unsigned, "tool", None);
    let served = Served::start(s.dir.path(), &s.policy, &[]);
    let client = Client::new(&s.ca, served.port);

    assert_eq!(client.request("GET", "/healthz", b"").status, 200);
    assert_eq!(client.request("GET", "/readyz", b"").status, 200);

    // A pod with an unsigned init container: denied, naming the image and the failed check.
    let r = client.review(
        "validate",
        &review(
            "u-1",
            "",
            "Pod",
            "pods",
            "CREATE",
            pod(&[&signed], &[&unsigned]),
        ),
    );
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    let message = r["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("image {unsigned} was refused by policy")),
        "{message}"
    );
    assert!(
        message.contains("trusted signers (expected at least 1"),
        "{message}"
    );
    assert!(!message.contains(&format!("image {signed} ")), "{message}");

    // Every workload kind: the signed image is admitted, and the mutating webhook pins it.
    for (kind, group, resource, object, pointer) in [
        (
            "Deployment",
            "apps",
            "deployments",
            deployment(&signed),
            "/spec/template/spec/containers/0/image",
        ),
        (
            "CronJob",
            "batch",
            "cronjobs",
            cronjob(&signed),
            "/spec/jobTemplate/spec/template/spec/containers/0/image",
        ),
        (
            "Pod",
            "",
            "pods",
            pod(&[&signed], &[]),
            "/spec/containers/0/image",
        ),
    ] {
        let request = review("u-2", group, kind, resource, "CREATE", object.clone());
        let r = client.review("validate", &request);
        assert_eq!(r["allowed"], true, "{kind}: {r}");
        let r = client.review("mutate", &request);
        assert_eq!(r["allowed"], true, "{kind}: {r}");
        assert_eq!(r["patchType"], "JSONPatch", "{kind}");
        let mut pinned = request["request"]["object"].clone();
        apply_patch(&mut pinned, &r);
        assert_eq!(
            pinned.pointer(pointer).unwrap(),
            &json!(format!("{signed}@{digest}")),
            "{kind}"
        );
        // The pinned object passes both webhooks, and pinning again changes nothing.
        let again = review("u-3", group, kind, resource, "UPDATE", pinned);
        assert_eq!(client.review("validate", &again)["allowed"], true);
        let r = client.review("mutate", &again);
        assert_eq!(r["allowed"], true);
        assert!(r.get("patch").is_none(), "{kind}: {r}");
    }

    // An unsigned ephemeral container added to a running pod (the subresource) is denied too.
    let mut debug = pod(&[&signed], &[]);
    debug["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": unsigned}]);
    let mut request = review("u-4", "", "Pod", "pods", "UPDATE", debug);
    request["request"]["subResource"] = json!("ephemeralcontainers");
    let r = client.review("validate", &request);
    assert_eq!(r["allowed"], false);
    assert!(r["status"]["message"].as_str().unwrap().contains(&unsigned));

    // DELETE carries no new image.
    let r = client.review(
        "validate",
        &review("u-5", "", "Pod", "pods", "DELETE", Value::Null),
    );
    assert_eq!(r["allowed"], true);

    // The signed image was verified once; every later answer came from the cache.
    assert_eq!(
        metric(
            &client,
            "custody_serve_verdicts_total{verdict=\"verified\"} "
        ),
        1
    );
    assert!(metric(&client, "custody_serve_cache_hits_total ") >= 10);
}

#[test]
fn v1_verify_answers_with_the_verify_report_and_bad_requests_are_refused() {
    let s = setup();
    let host = &s.registry.host;
    let signer = s.dir.path().join("release").display().to_string();
    let signed = format!("{host}/shop/app:v1");
    let digest = publish(s.dir.path(), &signed, "app", Some(&signer));
    let served = Served::start(s.dir.path(), &s.policy, &[]);
    let client = Client::new(&s.ca, served.port);

    let body = json!({"reference": signed}).to_string();
    let a = client.request("POST", "/v1/verify", body.as_bytes());
    assert_eq!(a.status, 200, "{}", a.text());
    let report = a.json();
    support::validate_against_schema("verify-report.schema.json", &report);
    assert_eq!(report["verified"], true);
    assert_eq!(report["reference"], signed);
    assert_eq!(report["digest"], digest);
    assert_eq!(report["scope"], "shop");
    // The same verdict as `custody verify --output json` with the same policy.
    let cli = support::ok_json(&["verify", &signed, "--policy", s.policy.to_str().unwrap()]);
    assert_eq!(report["verified"], cli["verified"]);
    assert_eq!(report["pinned"], cli["pinned"]);
    assert_eq!(report["policy"], cli["policy"]);
    assert_eq!(report["artifact"]["checks"], cli["artifact"]["checks"]);
    // Asked again, the answer comes from the cache and is the same report.
    let again = client
        .request(
            "POST",
            "/v1/verify",
            json!({"reference": signed}).to_string().as_bytes(),
        )
        .json();
    assert_eq!(again, report);

    // A scope given as a repository elsewhere: no scope of the policy matches it.
    let body = json!({"reference": signed, "scope": "elsewhere.example/x"}).to_string();
    let report = client.request("POST", "/v1/verify", body.as_bytes()).json();
    assert_eq!(report["verified"], false);

    for (body, status, says) in [
        ("{", 400, "expected {\"reference\""),
        (r#"{"reference": "a", "extra": 1}"#, 400, "unknown field"),
        (r#"{"reference": "Bad Ref"}"#, 400, "bad reference"),
        (r#"{"reference": "oci:/tmp/x"}"#, 400, "not OCI layouts"),
        (
            r#"{"reference": "r.example/a", "scope": "r.example/a:v1"}"#,
            400,
            "names a tag",
        ),
    ] {
        let a = client.request("POST", "/v1/verify", body.as_bytes());
        assert_eq!(a.status, status, "{body}: {}", a.text());
        assert!(
            a.json()["error"].as_str().unwrap().contains(says),
            "{body}: {}",
            a.text()
        );
    }
    let big = vec![b' '; 65 * 1024];
    assert_eq!(client.request("POST", "/v1/verify", &big).status, 413);
    assert_eq!(client.request("GET", "/v1/verify", b"").status, 405);
    assert_eq!(client.request("GET", "/nope", b"").status, 404);
    let a = client.request(
        "POST",
        "/admission/validate",
        b"{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\"}",
    );
    assert_eq!(a.status, 400);
    assert!(
        a.text().contains("is not admission.k8s.io/v1"),
        "{}",
        a.text()
    );
    let text = client.request("GET", "/metrics", b"").text();
    assert!(
        text.contains("custody_serve_requests_total{endpoint=\"verify\",code=\"413\"} 1"),
        "{text}"
    );
}

#[test]
fn a_registry_outage_denies_what_is_not_verified_yet() {
    let mut s = setup();
    let host = s.registry.host.clone();
    let signer = s.dir.path().join("release").display().to_string();
    let first = format!("{host}/shop/app:v1");
    let second = format!("{host}/shop/app:v2");
    let first_digest = publish(s.dir.path(), &first, "one", Some(&signer));
    publish(s.dir.path(), &second, "two", Some(&signer));
    let served = Served::start(s.dir.path(), &s.policy, &[]);
    let client = Client::new(&s.ca, served.port);
    let pinned_first = format!("{first}@{first_digest}");
    let r = client.review(
        "validate",
        &review(
            "u-1",
            "",
            "Pod",
            "pods",
            "CREATE",
            pod(&[&pinned_first], &[]),
        ),
    );
    assert_eq!(r["allowed"], true);

    s.registry.kill();
    // Not verified before: denied (fail closed), saying it could not be verified.
    let r = client.review(
        "validate",
        &review("u-2", "", "Pod", "pods", "CREATE", pod(&[&second], &[])),
    );
    assert_eq!(r["allowed"], false, "{r}");
    let message = r["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("image {second} could not be verified")),
        "{message}"
    );
    let body = json!({"reference": second}).to_string();
    assert_eq!(
        client.request("POST", "/v1/verify", body.as_bytes()).status,
        502
    );
    // A digest verified before the outage is still answered from the cache.
    let r = client.review(
        "validate",
        &review(
            "u-3",
            "",
            "Pod",
            "pods",
            "CREATE",
            pod(&[&pinned_first], &[]),
        ),
    );
    assert_eq!(r["allowed"], true);
    assert!(metric(&client, "custody_serve_verdicts_total{verdict=\"error\"} ") >= 1);

    // The failure was not cached: once the registry is back, the image is admitted.
    s.registry.restart();
    let r = client.review(
        "validate",
        &review("u-4", "", "Pod", "pods", "CREATE", pod(&[&second], &[])),
    );
    assert_eq!(r["allowed"], true, "{r}");
}

#[test]
fn a_changed_policy_and_a_rotated_certificate_are_picked_up_without_restart() {
    let s = setup();
    let host = &s.registry.host;
    let other = keygen(s.dir.path(), "other");
    let image = format!("{host}/shop/app:v1");
    publish(s.dir.path(), &image, "app", Some(&other));
    let served = Served::start(s.dir.path(), &s.policy, &[]);
    let client = Client::new(&s.ca, served.port);
    let request = review(
        "u-1",
        "apps",
        "Deployment",
        "deployments",
        "CREATE",
        deployment(&image),
    );
    let r = client.review("validate", &request);
    assert_eq!(
        r["allowed"], false,
        "signed by a key the policy does not trust"
    );

    // A policy that does not parse is reported and the previous one stays in force.
    std::fs::write(&s.policy, "version: 1\nscopes: [{name: broken}]\n").unwrap();
    served.wait_for_log("kept the previous policy");
    assert_eq!(client.review("validate", &request)["allowed"], false);

    policy_trusting(&s.policy, host, &other);
    served.wait_for_log("reloaded policy");
    // The refusal cached under the old policy's digest does not answer for the new one.
    let r = client.review("validate", &request);
    assert_eq!(r["allowed"], true, "{r}");
    assert!(metric(&client, "custody_serve_reloads_total{result=\"ok\"} ") >= 1);
    assert!(metric(&client, "custody_serve_reloads_total{result=\"failed\"} ") >= 1);

    // cert-manager renews the certificate (from another CA here): new connections get it.
    let before = client.request("GET", "/healthz", b"").certificate;
    let (second_ca, crt, key) = make_certs(s.dir.path(), "second");
    // Written as the kubelet does, by renaming complete files into place.
    for (from, to) in [(&key, "tls.key"), (&crt, "tls.crt")] {
        let tmp = s.dir.path().join(format!("{to}.tmp"));
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, s.dir.path().join(to)).unwrap();
    }
    served.wait_for_log("reloaded tls certificate");
    let renewed = Client::new(&second_ca, served.port);
    let after = renewed.request("GET", "/healthz", b"");
    assert_eq!(after.status, 200);
    assert_ne!(after.certificate, before);
    assert_eq!(after.certificate, {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        CertificateDer::from_pem_file(&crt).unwrap().to_vec()
    });
}

#[test]
fn concurrent_reviews_get_the_right_answers_and_one_verification_per_image() {
    let s = setup();
    let host = &s.registry.host;
    let signer = s.dir.path().join("release").display().to_string();
    let signed = format!("{host}/shop/app:v1");
    let unsigned = format!("{host}/shop/tool:v1");
    publish(s.dir.path(), &signed, "app", Some(&signer));
    publish(s.dir.path(), &unsigned, "tool", None);
    let served = Served::start(s.dir.path(), &s.policy, &["--workers", "4"]);
    let client = Arc::new(Client::new(&s.ca, served.port));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let (client, signed, unsigned) = (client.clone(), signed.clone(), unsigned.clone());
            std::thread::spawn(move || {
                for i in 0..8 {
                    let good = (t + i) % 2 == 0;
                    let image = if good { &signed } else { &unsigned };
                    let uid = format!("u-{t}-{i}");
                    let r = client.review(
                        "validate",
                        &review(
                            &uid,
                            "apps",
                            "Deployment",
                            "deployments",
                            "CREATE",
                            deployment(image),
                        ),
                    );
                    assert_eq!(r["uid"], uid);
                    assert_eq!(r["allowed"], good, "{uid}: {r}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Concurrent misses for one digest waited for one verification.
    assert_eq!(
        metric(
            &client,
            "custody_serve_verdicts_total{verdict=\"verified\"} "
        ),
        1
    );
    assert_eq!(
        metric(
            &client,
            "custody_serve_verdicts_total{verdict=\"refused\"} "
        ),
        1
    );
    assert_eq!(
        metric(
            &client,
            "custody_serve_admissions_total{decision=\"allowed\"} "
        ),
        64
    );
    assert_eq!(
        metric(
            &client,
            "custody_serve_admissions_total{decision=\"denied\"} "
        ),
        64
    );
}

/// Reads `deploy/<file>` (one or more YAML documents) as JSON values.
fn manifests(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_multiple::<Value>(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Deserialises `value` into the Kubernetes API type `T`, with every field the type does not
/// have (k8s-openapi itself ignores unknown fields, so a typo would pass unnoticed).
fn typed<T: serde::de::DeserializeOwned>(value: &Value) -> (Result<T, String>, Vec<String>) {
    let mut unknown = Vec::new();
    let typed = serde_ignored::deserialize(value.clone(), |path| unknown.push(path.to_string()))
        .map_err(|e: serde_json::Error| e.to_string());
    (typed, unknown)
}

/// [`typed`], insisting on the right kind and no unknown field.
fn strict<T: serde::de::DeserializeOwned + k8s_openapi::Resource>(file: &str, value: &Value) -> T {
    assert_eq!(value["apiVersion"], T::API_VERSION, "{file}");
    assert_eq!(value["kind"], T::KIND, "{file}");
    let (result, unknown) = typed::<T>(value);
    assert!(
        unknown.is_empty(),
        "{file}: fields {} does not have: {unknown:?}",
        T::KIND
    );
    result.unwrap_or_else(|e| panic!("{file} is not a valid {}: {e}", T::KIND))
}

fn one<T: serde::de::DeserializeOwned + k8s_openapi::Resource>(file: &str) -> T {
    let docs = manifests(file);
    assert_eq!(docs.len(), 1, "{file} holds one object");
    strict(file, &docs[0])
}

/// The deploy/ manifests are valid Kubernetes objects (strictly, field by field) that fit
/// together: the webhooks fail closed, reach the Service on the paths custody serves, spare
/// custody's own namespace, get their CA from the Certificate whose Secret the Deployment
/// mounts, and the disruption budget keeps replicas through a drain.
#[test]
fn deploy_manifests_are_strict_kubernetes_objects_that_fit_together() {
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhookConfiguration,
        WebhookClientConfig,
    };
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    let mut files: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "certificate.yaml",
            "deployment.yaml",
            "mutating-webhook.yaml",
            "namespace.yaml",
            "pdb.yaml",
            "policy.yaml",
            "service.yaml",
            "validating-webhook.yaml",
        ],
        "every manifest is checked here"
    );

    let namespace: Namespace = one("namespace.yaml");
    let ns = namespace.metadata.name.unwrap();
    let deployment: Deployment = one("deployment.yaml");
    let service: Service = one("service.yaml");
    let pdb: PodDisruptionBudget = one("pdb.yaml");
    let policy: ConfigMap = one("policy.yaml");
    let validating: ValidatingWebhookConfiguration = one("validating-webhook.yaml");
    let mutating: MutatingWebhookConfiguration = one("mutating-webhook.yaml");

    // The Deployment: several replicas, the pod labels its selectors use, the TLS Secret and
    // the policy ConfigMap mounted as folders where its arguments point.
    let spec = deployment.spec.unwrap();
    assert!(spec.replicas.unwrap() >= 2);
    assert_eq!(deployment.metadata.namespace.as_deref(), Some(ns.as_str()));
    let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
    let matches = |selector: &LabelSelector| {
        selector
            .match_labels
            .as_ref()
            .unwrap()
            .iter()
            .all(|(k, v)| pod_labels.get(k) == Some(v))
    };
    assert!(matches(&spec.selector));
    let pod = spec.template.spec.unwrap();
    let container = &pod.containers[0];
    let args = container.args.clone().unwrap();
    assert_eq!(args[0], "serve");
    let arg = |flag: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{flag}=")))
            .unwrap_or_else(|| panic!("no --{flag}"))
            .to_owned()
    };
    let mounts = container.volume_mounts.clone().unwrap();
    let volumes = pod.volumes.unwrap();
    let volume_of = |path: &str| {
        let mount = mounts
            .iter()
            .find(|m| Path::new(path).parent() == Some(Path::new(&m.mount_path)))
            .unwrap_or_else(|| panic!("{path} is in no mounted folder"));
        assert!(mount.sub_path.is_none(), "subPath mounts never see updates");
        volumes
            .iter()
            .find(|v| v.name == mount.name)
            .unwrap()
            .clone()
    };
    let tls_secret = volume_of(&arg("tls-cert"))
        .secret
        .unwrap()
        .secret_name
        .unwrap();
    assert_eq!(
        volume_of(&arg("tls-key"))
            .secret
            .unwrap()
            .secret_name
            .unwrap(),
        tls_secret
    );
    let policy_map = volume_of(&arg("policy")).config_map.unwrap().name;
    assert_eq!(Some(policy_map), policy.metadata.name);
    let policy_file = Path::new(&arg("policy"))
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(policy.data.unwrap().contains_key(&policy_file));
    // Pull secrets: an optional Secret mounted as the folder --pull-secrets names.
    let pull = mounts
        .iter()
        .find(|m| m.mount_path == arg("pull-secrets"))
        .expect("the pull-secrets folder is mounted");
    assert!(pull.sub_path.is_none());
    let pull = volumes
        .iter()
        .find(|v| v.name == pull.name)
        .and_then(|v| v.secret.clone())
        .expect("pull secrets come from a Secret");
    assert_eq!(pull.optional, Some(true), "serve runs without pull secrets");
    // The drain fits in the grace period the kubelet gives before SIGKILL.
    let drain = arg("drain-timeout");
    let drain: i64 = drain.strip_suffix('s').unwrap().parse().unwrap();
    assert!(drain < pod.termination_grace_period_seconds.unwrap());
    let port: std::net::SocketAddr = arg("listen").parse().unwrap();
    let container_port = &container.ports.as_ref().unwrap()[0];
    assert_eq!(container_port.container_port, i32::from(port.port()));
    for probe in [&container.readiness_probe, &container.liveness_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
        assert!(["/readyz", "/healthz"].contains(&get.path.as_deref().unwrap()));
    }

    // The Service selects the pods and forwards its port to the container's.
    let service_spec = service.spec.unwrap();
    assert!(
        service_spec
            .selector
            .unwrap()
            .iter()
            .all(|(k, v)| pod_labels.get(k) == Some(v))
    );
    let service_port = &service_spec.ports.unwrap()[0];
    assert_eq!(
        service_port.target_port,
        Some(
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                container_port.name.clone().unwrap()
            )
        )
    );

    // The disruption budget covers the pods and leaves at least one replica free to move.
    let pdb = pdb.spec.unwrap();
    assert!(matches(pdb.selector.as_ref().unwrap()));
    let k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(min) =
        pdb.min_available.unwrap()
    else {
        panic!("minAvailable is a count");
    };
    assert!(min >= 1 && min < spec.replicas.unwrap());

    // cert-manager: the Certificate names the Service's DNS name and writes the mounted Secret.
    let certs = manifests("certificate.yaml");
    let certificate = certs.iter().find(|d| d["kind"] == "Certificate").unwrap();
    let service_dns = format!("{}.{ns}.svc", service.metadata.name.clone().unwrap());
    assert!(
        certificate["spec"]["dnsNames"]
            .as_array()
            .unwrap()
            .contains(&json!(service_dns))
    );
    assert_eq!(certificate["spec"]["secretName"], json!(tls_secret));
    let issuer = &certificate["spec"]["issuerRef"]["name"];
    assert!(
        certs
            .iter()
            .any(|d| d["kind"] == "Issuer" && d["metadata"]["name"] == *issuer)
    );
    let inject = format!("{ns}/{}", certificate["metadata"]["name"].as_str().unwrap());

    // Both webhooks: fail closed, v1 reviews, no side effects, within the API server's limits,
    // on the Service's port and custody's paths, sparing custody's own namespace, covering
    // pods, ephemeral containers and every workload kind with a pod template.
    let check = |file: &str,
                 annotations: &std::collections::BTreeMap<String, String>,
                 name: &str,
                 failure: &Option<String>,
                 side_effects: &str,
                 versions: &[String],
                 timeout: Option<i32>,
                 client: &WebhookClientConfig,
                 selector: &Option<LabelSelector>,
                 rules: &[RuleWithOperations],
                 path: &str| {
        assert_eq!(
            annotations.get("cert-manager.io/inject-ca-from"),
            Some(&inject),
            "{file}"
        );
        assert!(name.contains('.'), "{file}: webhook names are qualified");
        assert_eq!(failure.as_deref(), Some("Fail"), "{file}");
        assert!(["None", "NoneOnDryRun"].contains(&side_effects), "{file}");
        assert!(versions.contains(&"v1".to_owned()), "{file}");
        assert!((1..=30).contains(&timeout.unwrap()), "{file}");
        let svc = client.service.as_ref().unwrap();
        assert_eq!(Some(&svc.name), service.metadata.name.as_ref(), "{file}");
        assert_eq!(svc.namespace, ns, "{file}");
        assert_eq!(svc.port, Some(service_port.port), "{file}");
        assert_eq!(svc.path.as_deref(), Some(path), "{file}");
        assert!(client.url.is_none(), "{file}");
        let spared = selector
            .as_ref()
            .unwrap()
            .match_expressions
            .as_ref()
            .unwrap()
            .iter()
            .any(|e| {
                e.key == "kubernetes.io/metadata.name"
                    && e.operator == "NotIn"
                    && e.values.as_ref().unwrap().contains(&ns)
            });
        assert!(
            spared,
            "{file}: custody's own namespace is not judged by custody"
        );
        let covered: Vec<(String, String)> = rules
            .iter()
            .flat_map(|r| {
                let groups = r.api_groups.clone().unwrap();
                let resources = r.resources.clone().unwrap();
                groups.into_iter().flat_map(move |g| {
                    resources
                        .clone()
                        .into_iter()
                        .map(move |res| (g.clone(), res))
                })
            })
            .collect();
        for (group, resource) in [
            ("", "pods"),
            ("", "pods/ephemeralcontainers"),
            ("apps", "deployments"),
            ("apps", "statefulsets"),
            ("apps", "daemonsets"),
            ("apps", "replicasets"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
        ] {
            assert!(
                covered.contains(&(group.to_owned(), resource.to_owned())),
                "{file}: {group}/{resource}"
            );
        }
        for r in rules {
            assert_eq!(
                r.operations.clone().unwrap(),
                ["CREATE", "UPDATE"],
                "{file}"
            );
        }
    };
    let annotations = validating.metadata.annotations.clone().unwrap();
    for w in validating.webhooks.unwrap() {
        check(
            "validating-webhook.yaml",
            &annotations,
            &w.name,
            &w.failure_policy,
            &w.side_effects,
            &w.admission_review_versions,
            w.timeout_seconds,
            &w.client_config,
            &w.namespace_selector,
            &w.rules.unwrap(),
            "/admission/validate",
        );
    }
    let annotations = mutating.metadata.annotations.clone().unwrap();
    for w in mutating.webhooks.unwrap() {
        check(
            "mutating-webhook.yaml",
            &annotations,
            &w.name,
            &w.failure_policy,
            &w.side_effects,
            &w.admission_review_versions,
            w.timeout_seconds,
            &w.client_config,
            &w.namespace_selector,
            &w.rules.unwrap(),
            "/admission/mutate",
        );
        assert_eq!(w.reinvocation_policy.as_deref(), Some("IfNeeded"));
    }
}

/// The strict check catches what k8s-openapi alone lets through: a misspelt field.
#[test]
fn the_strict_manifest_check_refuses_a_misspelt_field() {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    let mut doc = manifests("validating-webhook.yaml").remove(0);
    doc["webhooks"][0]["failurPolicy"] = json!("Fail");
    let loose: ValidatingWebhookConfiguration = serde_json::from_value(doc.clone()).unwrap();
    assert!(loose.webhooks.is_some(), "k8s-openapi alone accepts it");
    let (result, unknown) = typed::<ValidatingWebhookConfiguration>(&doc);
    assert!(result.is_ok());
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(unknown[0].ends_with("failurPolicy"), "{unknown:?}");
    // And a wrong type is an error naming what was expected.
    doc["webhooks"][0]["timeoutSeconds"] = json!("ten");
    let (result, _) = typed::<ValidatingWebhookConfiguration>(&doc);
    assert!(result.unwrap_err().contains("invalid type: string"));
}

/// A registry that never answers: the review is denied within the API server's `timeout`
/// (less a margin), saying so, rather than left to the API server's own deadline.
#[test]
fn a_verification_slower_than_the_webhook_timeout_is_denied_in_time() {
    let s = setup();
    let silent = support::HostileServer::start(|_| support::Response {
        pace: support::Pace::Silent,
        ..support::Response::new(200)
    });
    let served = Served::start(s.dir.path(), &s.policy, &[]);
    let client = Client::new(&s.ca, served.port);
    let image = format!("{}/shop/app:v1", silent.host);
    let body = review("u-1", "", "Pod", "pods", "CREATE", pod(&[&image], &[])).to_string();
    let a = client.request("POST", "/admission/validate?timeout=1s", body.as_bytes());
    assert_eq!(a.status, 200, "{}", a.text());
    let r = a.json()["response"].clone();
    assert_eq!(r["uid"], "u-1");
    assert_eq!(r["allowed"], false);
    assert_eq!(
        r["status"]["message"],
        format!(
            "image {image} could not be verified: verification of {image} did not finish within the webhook's 500 ms"
        )
    );
}

fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer.head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A signed SLSA VSA attached to `reference` with `custody attest`, signed by `key` (a keygen
/// prefix).
fn attest_vsa(dir: &Path, reference: &str, predicate: &Value, key: &str) {
    let file = dir.join("vsa-predicate.json");
    std::fs::write(&file, predicate.to_string()).unwrap();
    let o = support::custody()
        .args(["attest", reference, "--type", "vsa", "--predicate"])
        .arg(&file)
        .args(["--key", &format!("{key}.key")])
        .env("COSIGN_PASSWORD", "pw")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", support::stderr(&o));
}

fn vsa_predicate(resource: &str, policy_hex: &str, result: &str, time: &str) -> Value {
    json!({
        "verifier": {"id": "https://verifier.example/custody"},
        "timeVerified": time,
        "resourceUri": resource,
        "policy": {"uri": "policy.yaml", "digest": {"sha256": policy_hex}},
        "verificationResult": result,
        "verifiedLevels": [if result == "PASSED" { "SLSA_BUILD_LEVEL_UNEVALUATED" } else { "FAILED" }],
    })
}

/// A summary signed by a verifier serve trusts, PASSED for this digest under this policy's
/// digest and recent, is accepted without a full verification (an unsigned image is admitted
/// on it); one naming another policy, from another key, FAILED, too old or about another digest
/// is ignored and the full verification refuses. The answer and the metrics say which path.
#[test]
fn a_trusted_verifiers_summary_stands_for_the_full_verification_and_no_other_does() {
    let s = setup();
    let dir = s.dir.path();
    let host = &s.registry.host;
    let release = dir.join("release").display().to_string();
    let verifier = keygen(dir, "verifier");
    let stranger = keygen(dir, "stranger");
    let policy_hex = custody::foundation::digest::Digest::of(&std::fs::read(&s.policy).unwrap())
        .hex()
        .to_owned();
    let now = jiff::Timestamp::now().to_string();

    // The real flow: `custody verify --attach-vsa` signs and attaches the summary of a pass.
    let released = format!("{host}/shop/released:v1");
    publish(dir, &released, "released", Some(&release));
    let o = support::custody()
        .args(["verify", &released, "--policy", s.policy.to_str().unwrap()])
        .arg("--vsa")
        .arg(dir.join("released.vsa.json"))
        .args(["--vsa-key", &format!("{verifier}.key"), "--attach-vsa"])
        .env("COSIGN_PASSWORD", "pw")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", support::stderr(&o));

    // Unsigned images, each with one summary: only the first may stand for a verification.
    let other_policy = custody::foundation::digest::Digest::of(b"another policy");
    let cases: [(&str, &str, &str, &str, &str, bool); 6] = [
        ("vouched", &verifier, "PASSED", &policy_hex, &now, true),
        (
            "other-policy",
            &verifier,
            "PASSED",
            other_policy.hex(),
            &now,
            false,
        ),
        ("stranger", &stranger, "PASSED", &policy_hex, &now, false),
        ("failed", &verifier, "FAILED", &policy_hex, &now, false),
        (
            "expired",
            &verifier,
            "PASSED",
            &policy_hex,
            "2020-01-01T00:00:00Z",
            false,
        ),
        (
            "other-digest",
            &verifier,
            "PASSED",
            &policy_hex,
            &now,
            false,
        ),
    ];
    for (name, key, result, policy, time, _) in cases {
        let reference = format!("{host}/shop/{name}:v1");
        let digest = publish(dir, &reference, name, None);
        let named = if name == "other-digest" {
            custody::foundation::digest::Digest::of(b"another image").to_string()
        } else {
            digest
        };
        let resource = format!("{host}/shop/{name}@{named}");
        attest_vsa(
            dir,
            &reference,
            &vsa_predicate(&resource, policy, result, time),
            key,
        );
    }

    let verifier_pub = format!("{verifier}.pub");
    let served = Served::start(dir, &s.policy, &["--vsa-verifier-key", &verifier_pub]);
    let client = Client::new(&s.ca, served.port);
    let ask = |reference: &str| {
        let body = json!({ "reference": reference }).to_string();
        let a = client.request("POST", "/v1/verify", body.as_bytes());
        assert_eq!(a.status, 200, "{reference}: {}", a.text());
        a
    };
    let a = ask(&released);
    assert_eq!(
        header(&a, "custody-verdict-basis"),
        Some("vsa"),
        "{}",
        a.head
    );
    let report = a.json();
    support::validate_against_schema("verify-report.schema.json", &report);
    assert_eq!(report["verified"], true);
    assert_eq!(report["scope"], "shop");
    let checks = report["artifact"]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0]["kind"], "verdict");
    assert!(
        checks[0]["found"].as_str().unwrap().contains("verifier"),
        "{checks:?}"
    );
    for (name, _, _, _, _, accepted) in cases {
        let reference = format!("{host}/shop/{name}:v1");
        let a = ask(&reference);
        let report = a.json();
        let basis = if accepted { "vsa" } else { "full" };
        assert_eq!(
            header(&a, "custody-verdict-basis"),
            Some(basis),
            "{name}: {report}"
        );
        assert_eq!(report["verified"], accepted, "{name}: {report}");
    }

    // Admission on the summary: allowed, and the audit annotation says how.
    let vouched = format!("{host}/shop/vouched:v1");
    let r = client.review(
        "validate",
        &review("v1", "", "Pod", "pods", "CREATE", pod(&[&vouched], &[])),
    );
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(
        r["auditAnnotations"]["verdicts"],
        format!("{vouched}=vsa"),
        "{r}"
    );
    assert_eq!(
        metric(&client, "custody_serve_verdict_paths_total{path=\"vsa\"}"),
        2
    );
    assert_eq!(
        metric(&client, "custody_serve_verdict_paths_total{path=\"full\"}"),
        5
    );
}

/// Each policy scope verifies with its own `trust:` root, as `custody verify` does: one image
/// (one digest, keyless-signed on the local Sigstore stack) is admitted in the scope whose root
/// is that stack's and denied in the scope whose root is another; when that scope's root file
/// changes, the cached refusal is not reused (the key holds the scope's root digest).
#[test]
fn each_scope_verifies_with_its_own_trusted_root_and_the_cache_keeps_them_apart() {
    use super::sigstore_stack::{EMAIL, SigstoreStack};
    let stack = SigstoreStack::shared();
    let s = setup();
    let dir = s.dir.path();
    let host = &s.registry.host;
    let a = format!("{host}/a/app:v1");
    let b = format!("{host}/b/app:v1");
    let digest = publish(dir, &a, "one image", None);
    support::ok(&["copy", &a, &b]);
    assert_eq!(support::ok(&["resolve", &b]).trim(), digest);
    for reference in [&a, &b] {
        let o = support::custody()
            .env("HOME", stack.dir())
            .args(["sign", reference, "--signing-config"])
            .arg(&stack.signing_config)
            .arg("--trusted-root")
            .arg(&stack.trusted_root)
            .args(["--identity-token", &stack.oidc.token()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", support::stderr(&o));
    }
    let other_root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/sigstore-conformance/public-good-trusted_root.json");
    let b_root = dir.join("b-root.json");
    std::fs::copy(&other_root, &b_root).unwrap();
    let policy = dir.join("scoped.yaml");
    let signer = format!(
        "    signers:\n      - name: ci\n        issuer: {}\n        subject: {EMAIL}\n",
        stack.oidc.url
    );
    std::fs::write(
        &policy,
        format!(
            "version: 1\nscopes:\n  - name: a\n    repositories: [\"{host}/a/**\"]\n    trust:\n      trusted_root: {}\n{signer}  - name: b\n    repositories: [\"{host}/b/**\"]\n    trust:\n      trusted_root: b-root.json\n{signer}",
            stack.trusted_root.display()
        ),
    )
    .unwrap();
    // What `custody verify` says, scope by scope.
    let cli = |reference: &str| {
        let o = support::custody()
            .args(["--output", "json", "verify", reference, "--policy"])
            .arg(&policy)
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    assert_eq!(cli(&a)["verified"], true);
    assert_eq!(cli(&b)["verified"], false);

    let served = Served::start(dir, &policy, &["--refusal-ttl", "60m"]);
    let client = Client::new(&s.ca, served.port);
    let admit = |uid: &str, image: &str| {
        client.review(
            "validate",
            &review(uid, "", "Pod", "pods", "CREATE", pod(&[image], &[])),
        )
    };
    assert_eq!(admit("a", &a)["allowed"], true);
    let denied = admit("b", &b);
    assert_eq!(denied["allowed"], false, "{denied}");
    let body = json!({ "reference": b }).to_string();
    let report = client.request("POST", "/v1/verify", body.as_bytes()).json();
    assert_eq!(report["verified"], false);
    assert_eq!(report["scope"], "b");
    assert_eq!(
        report["trustedRoot"]["path"],
        b_root.display().to_string(),
        "{report}"
    );
    // The same digest pinned, in each scope: the verdicts stay apart.
    let pinned_a = format!("{host}/a/app@{digest}");
    let pinned_b = format!("{host}/b/app@{digest}");
    assert_eq!(admit("pa", &pinned_a)["allowed"], true);
    assert_eq!(admit("pb", &pinned_b)["allowed"], false);

    // Scope b now trusts the stack too; the policy file is unchanged.
    std::fs::copy(&stack.trusted_root, &b_root).unwrap();
    served.wait_for_log("reloaded trusted roots of the scopes");
    assert_eq!(admit("pb2", &pinned_b)["allowed"], true);
}

/// A registry that holds every request until released, then answers 404.
struct HeldRegistry {
    port: u16,
    arrived: std::sync::mpsc::Receiver<()>,
    release: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

impl HeldRegistry {
    fn start() -> HeldRegistry {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, arrived) = std::sync::mpsc::channel();
        let release = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let gate = release.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let (tx, gate) = (tx.clone(), gate.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                        line.clear();
                    }
                    let _ = tx.send(());
                    let (lock, cvar) = &*gate;
                    let mut released = lock.lock().unwrap();
                    while !*released {
                        released = cvar.wait(released).unwrap();
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                });
            }
        });
        HeldRegistry {
            port,
            arrived,
            release,
        }
    }

    fn release(&self) {
        let (lock, cvar) = &*self.release;
        *lock.lock().unwrap() = true;
        cvar.notify_all();
    }
}

/// One request on an open keep-alive connection: the status and body.
fn keep_alive_get(
    tls: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    path: &str,
) -> (u16, String, String) {
    let head = format!("GET {path} HTTP/1.1\r\nHost: {SERVICE_NAME}\r\n\r\n");
    tls.write_all(head.as_bytes()).unwrap();
    tls.flush().unwrap();
    let mut reader = BufReader::new(tls);
    let mut head = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
        head.push_str(&line);
        line.clear();
    }
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, head, String::from_utf8(body).unwrap())
}

/// SIGTERM to the process while a verification is in flight: the listener closes, `/readyz`
/// answers 503 on a connection already open, the request in flight gets its whole answer, and
/// the process exits 0.
#[test]
fn sigterm_drains_the_requests_in_flight_then_exits_zero() {
    let s = setup();
    let registry = HeldRegistry::start();
    let served = Served::start_with(
        s.dir.path(),
        &s.policy,
        &["--drain-timeout", "60s"],
        &[],
        "60s",
    );
    let client = Client::new(&s.ca, served.port);
    // A connection opened before the signal, kept alive.
    let name = SERVICE_NAME.try_into().unwrap();
    let conn = rustls::ClientConnection::new(client.config.clone(), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", served.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut open = rustls::StreamOwned::new(conn, tcp);
    assert_eq!(keep_alive_get(&mut open, "/readyz").0, 200);

    // A verification held by the registry.
    let in_flight = {
        let client = Client::new(&s.ca, served.port);
        let body = json!({ "reference": format!("127.0.0.1:{}/held/app:v1", registry.port) });
        std::thread::spawn(move || {
            client.request("POST", "/v1/verify", body.to_string().as_bytes())
        })
    };
    registry
        .arrived
        .recv_timeout(Duration::from_secs(60))
        .expect("the verification reached the registry");

    let pid = served.child.id().to_string();
    let o = Command::new("kill").args(["-TERM", &pid]).output().unwrap();
    assert!(o.status.success(), "{}", support::stderr(&o));
    served.wait_for_log("stopping: draining the requests in flight");

    let (status, head, body) = keep_alive_get(&mut open, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let refused = TcpStream::connect(("127.0.0.1", served.port));
    assert!(
        refused.is_err(),
        "a new connection was accepted while draining"
    );

    registry.release();
    let answer = in_flight
        .join()
        .expect("the request in flight was answered");
    // Whatever the verification concluded, the whole answer arrived.
    assert!(
        answer.status == 502 || answer.status == 200,
        "{}",
        answer.text()
    );
    assert!(answer.text().contains("held/app"), "{}", answer.text());
    let mut served = served;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "custody serve did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{:?}", served.log.lock().unwrap());
    served.wait_for_log("custody serve: stopped");
}

/// A Pod's `imagePullSecrets`, read from the mounted folder (`<namespace>.<name>` files), reach
/// a registry that requires auth; without them, with a wrong one, or from another namespace the
/// image cannot be verified (denied), and serve's own credentials are the fallback. Neither
/// password appears in any answer, log line or metric.
#[test]
fn pull_secrets_from_the_mounted_folder_reach_an_authenticated_registry_and_never_leak() {
    use super::login::{AuthRegistry, PASSWORD, USER};
    let s = setup();
    let dir = s.dir.path();
    let registry = AuthRegistry::start();
    let host = &registry.host;
    let creds = [
        ("CUSTODY_REGISTRY", host.as_str()),
        ("CUSTODY_REGISTRY_USERNAME", USER),
        ("CUSTODY_REGISTRY_PASSWORD", PASSWORD),
    ];
    let image = format!("{host}/shop/private:v1");
    let file = dir.join("private.txt");
    std::fs::write(&file, "private").unwrap();
    let signer = dir.join("release").display().to_string();
    for args in [
        vec!["push", file.to_str().unwrap(), "--to", &image],
        vec!["sign", &image, "--key", &format!("{signer}.key")],
    ] {
        let o = support::custody()
            .envs(creds)
            .args(&args)
            .env("COSIGN_PASSWORD", "pw")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", support::stderr(&o));
    }
    let policy = dir.join("private.yaml");
    policy_trusting(&policy, host, &signer);

    let secrets = dir.join("pull-secrets");
    std::fs::create_dir(&secrets).unwrap();
    let config = |user: &str, password: &str| {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        json!({ "auths": { host.as_str(): { "auth": auth } } }).to_string()
    };
    const WRONG: &str = "not-the-pa55word";
    std::fs::write(secrets.join("shop.regcred"), config(USER, PASSWORD)).unwrap();
    std::fs::write(secrets.join("shop.wrongcred"), config(USER, WRONG)).unwrap();
    std::fs::write(secrets.join("shop.garbage"), "{ not json").unwrap();
    let empty_docker = dir.join("no-docker-config");
    std::fs::create_dir(&empty_docker).unwrap();
    let no_own = [("DOCKER_CONFIG", empty_docker.to_str().unwrap())];
    let served = Served::start_with(
        dir,
        &policy,
        &["--pull-secrets", secrets.to_str().unwrap()],
        &no_own,
        "10s",
    );
    let client = Client::new(&s.ca, served.port);
    let with_secrets = |uid: &str, namespace: &str, names: &[&str]| {
        let mut object = pod(&[&image], &[]);
        object["spec"]["imagePullSecrets"] = json!(
            names
                .iter()
                .map(|n| json!({ "name": n }))
                .collect::<Vec<_>>()
        );
        object["metadata"]["namespace"] = json!(namespace);
        let mut r = review(uid, "", "Pod", "pods", "CREATE", object);
        r["request"]["namespace"] = json!(namespace);
        client.review("validate", &r)
    };
    let mut said = Vec::new();
    for (uid, namespace, names) in [
        ("none", "shop", &[][..]),
        ("wrong", "shop", &["wrongcred"][..]),
        ("garbage", "shop", &["garbage", "missing"][..]),
        ("elsewhere", "other", &["regcred"][..]),
        ("traversal", "shop", &["../shop.regcred"][..]),
    ] {
        let r = with_secrets(uid, namespace, names);
        assert_eq!(r["allowed"], false, "{uid}: {r}");
        let message = r["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("could not be verified"),
            "{uid}: {message}"
        );
        said.push(r.to_string());
    }
    // The pod's secret: admitted; a later secret is not needed once one has a credential.
    let r = with_secrets("right", "shop", &["garbage", "regcred", "wrongcred"]);
    assert_eq!(r["allowed"], true, "{r}");
    said.push(r.to_string());
    said.push(client.request("GET", "/metrics", b"").text());
    said.extend(served.log.lock().unwrap().iter().cloned());
    let basic = |p: &str| base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{p}"));
    for text in &said {
        for secret in [
            PASSWORD.to_owned(),
            WRONG.to_owned(),
            basic(PASSWORD),
            basic(WRONG),
        ] {
            assert!(!text.contains(&secret), "a secret leaked: {text}");
        }
    }
    drop(served);

    // No pull secret: serve's own credentials are used.
    let served = Served::start_with(
        dir,
        &policy,
        &["--pull-secrets", secrets.to_str().unwrap()],
        &[no_own[0], creds[0], creds[1], creds[2]],
        "10s",
    );
    let client = Client::new(&s.ca, served.port);
    let r = client.review(
        "validate",
        &review("own", "", "Pod", "pods", "CREATE", pod(&[&image], &[])),
    );
    assert_eq!(r["allowed"], true, "{r}");
}

/// The server's stores live on, so they never answer "no signature" from a tag list taken
/// earlier: after many reviews of one repository (each asking about `sha256-` tags that are not
/// there), an image signed afterwards is admitted.
#[test]
fn an_image_signed_after_many_reviews_of_its_repository_is_admitted() {
    let s = setup();
    let host = &s.registry.host;
    let signer = s.dir.path().join("release").display().to_string();
    for i in 0..4 {
        publish(
            s.dir.path(),
            &format!("{host}/shop/many:u{i}"),
            &format!("unsigned {i}"),
            None,
        );
    }
    let served = Served::start(s.dir.path(), &s.policy, &[]);
    let client = Client::new(&s.ca, served.port);
    let admit = |uid: &str, image: &str| {
        let request = review(uid, "", "Pod", "pods", "CREATE", pod(&[image], &[]));
        client.review("validate", &request)["allowed"].clone()
    };
    for i in 0..4 {
        let image = format!("{host}/shop/many:u{i}");
        assert_eq!(admit(&format!("u-{i}"), &image), false, "{image}");
    }
    let signed = format!("{host}/shop/many:s");
    publish(s.dir.path(), &signed, "signed later", Some(&signer));
    assert_eq!(admit("s", &signed), true, "signed after the reviews");
}
