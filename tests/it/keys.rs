//! Remote and hardware keys end to end, through the real binary: `awskms://` against local-kms
//! (run in a private network namespace, since it listens on every interface), `pkcs11:` against
//! SoftHSM2, and `hashivault://`, `gcpkms://`, `azurekms://` against loopback stand-ins that
//! follow each service's documented request and response shapes. cosign cross-checks the
//! AWS key both ways.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use custody::evidence::sign::SigningKey;
use custody::evidence::sign::kms::gcp::crc32c;

use crate::support::{self, HostileServer, Request, Response};

const SECRET: &str = "wJalrXUtnFEMI-custody-test-secret";
const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what} failed: {}", text(o));
}

/// Runs `body` (bash) in a new network namespace with only loopback up, with local-kms on
/// 127.0.0.1:4599 seeded with a fresh P-256 key (`ec.pub` is its public key) under
/// `alias/release`, and AWS variables pointing at it. Each step writes its own files.
fn in_kms_namespace(dir: &Path, body: &str) -> Output {
    let script = format!(
        r#"set -u
ip link set lo up
cd "{dir}"
openssl ecparam -name prime256v1 -genkey -noout -out ec.pem 2>/dev/null
openssl ec -in ec.pem -pubout -out ec.pub 2>/dev/null
{{
  printf 'Keys:\n  Asymmetric:\n    Ecc:\n      - Metadata:\n          KeyId: 800d5768-3fd7-4edd-a4b8-4c81c3e4c147\n          KeyUsage: SIGN_VERIFY\n          Description: custody test\n        PrivateKeyPem: |\n'
  sed 's/^/          /' ec.pem
  printf 'Aliases:\n  - AliasName: alias/release\n    TargetKeyId: 800d5768-3fd7-4edd-a4b8-4c81c3e4c147\n'
}} > seed.yaml
KMS_DATA_PATH="{dir}/kms-data" KMS_SEED_PATH="{dir}/seed.yaml" PORT=4599 "{kms}" > kms.log 2>&1 &
kms=$!
trap 'kill $kms' EXIT
for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/4599) 2>/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=AKIDCUSTODYTEST AWS_SECRET_ACCESS_KEY={SECRET} AWS_REGION=eu-west-2
export AWS_ENDPOINT_URL_KMS=http://127.0.0.1:4599
export HOME="{dir}" TUF_ROOT="{dir}/tuf"
step() {{ name=$1; shift; "$@" > "$name.out" 2>&1; echo $? > "$name.rc"; }}
{body}
"#,
        dir = dir.display(),
        kms = support::tool("local-kms").display(),
    );
    std::fs::write(dir.join("netns.sh"), script).unwrap();
    // root may create a network namespace directly; anyone else needs a user namespace too.
    let flags = if is_root() { "-n" } else { "-rn" };
    std::process::Command::new("unshare")
        .args([flags, "bash", "netns.sh"])
        .current_dir(dir)
        .output()
        .expect("unshare runs")
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn step(dir: &Path, name: &str) -> (i32, String) {
    let rc = std::fs::read_to_string(dir.join(format!("{name}.rc")))
        .unwrap_or_else(|_| panic!("step {name} did not run"));
    let out = std::fs::read_to_string(dir.join(format!("{name}.out"))).unwrap();
    (rc.trim().parse().unwrap(), out)
}

fn step_ok(dir: &Path, name: &str) -> String {
    let (rc, out) = step(dir, name);
    assert_eq!(rc, 0, "step {name}: {out}");
    out
}

#[test]
fn awskms_local_kms_signs_and_cosign_agrees_both_ways() {
    let dir = support::tempdir();
    let d = dir.path();
    std::fs::write(d.join("artifact.txt"), b"release artifact\n").unwrap();
    std::fs::write(d.join("other.txt"), b"other\n").unwrap();
    let custody = env!("CARGO_BIN_EXE_custody");
    let cosign = support::tool("cosign");
    let body = format!(
        r#"
step sign "{custody}" sign-blob --key awskms:///alias/release --bundle custody.bundle artifact.txt
step verify-pem "{custody}" verify-bundle --key ec.pub --bundle custody.bundle artifact.txt
step verify-kms "{custody}" verify-bundle --key awskms:///alias/release --bundle custody.bundle artifact.txt
step verify-other "{custody}" verify-bundle --key awskms:///alias/release --bundle custody.bundle other.txt
step verify-by-id "{custody}" verify-bundle --key awskms:///800d5768-3fd7-4edd-a4b8-4c81c3e4c147 --bundle custody.bundle artifact.txt
step cosign-verify "{cosign}" verify-blob --key awskms:///alias/release --bundle custody.bundle --insecure-ignore-tlog artifact.txt
step cosign-sign "{cosign}" sign-blob --key awskms:///alias/release --bundle cosign.bundle --new-bundle-format --use-signing-config=false --tlog-upload=false --yes artifact.txt
step custody-verifies-cosign "{custody}" verify-bundle --key awskms:///alias/release --bundle cosign.bundle artifact.txt
step unknown "{custody}" sign-blob --key awskms:///alias/missing --bundle missing.bundle artifact.txt
"#,
        cosign = cosign.display()
    );
    let out = in_kms_namespace(d, &body);
    assert_ok(&out, "the namespace script");
    step_ok(d, "sign");
    // The signature is the seeded key's: openssl's public key of it verifies the bundle.
    let pem = step_ok(d, "verify-pem");
    assert!(pem.contains("verified: signed by key ecdsa-p256"), "{pem}");
    step_ok(d, "verify-kms");
    step_ok(d, "verify-by-id");
    assert_eq!(step(d, "verify-other").0, 1, "another file must be refused");
    let cosign_out = step_ok(d, "cosign-verify");
    assert!(cosign_out.contains("Verified OK"), "{cosign_out}");
    step_ok(d, "cosign-sign");
    step_ok(d, "custody-verifies-cosign");
    let (rc, unknown) = step(d, "unknown");
    assert_eq!(rc, 2, "{unknown}");
    assert!(unknown.contains("awskms:///alias/missing"), "{unknown}");
    assert!(unknown.contains("GetPublicKey"), "{unknown}");
    // Credentials never reach output, in success or failure.
    for name in ["sign", "verify-kms", "unknown"] {
        assert!(!step(d, name).1.contains(SECRET), "{name} shows the secret");
    }
}

/// A SoftHSM2 token in a private config with one P-256 key pair (`signer`, id 01); returns the
/// config path and the key's public PEM as the token reports it.
fn softhsm_token(dir: &Path) -> (PathBuf, PathBuf) {
    let tokens = dir.join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let run = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(program)
            .args(args)
            .env("SOFTHSM2_CONF", &conf)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("{program} runs (scripts/install-key-services): {e}"));
        assert_ok(&out, program);
    };
    run(
        "softhsm2-util",
        &[
            "--init-token",
            "--free",
            "--label",
            "custody",
            "--so-pin",
            "5678",
            "--pin",
            "1234",
        ],
    );
    run(
        "pkcs11-tool",
        &[
            "--module",
            MODULE,
            "--token-label",
            "custody",
            "--login",
            "--pin",
            "1234",
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "01",
            "--label",
            "signer",
        ],
    );
    run(
        "pkcs11-tool",
        &[
            "--module",
            MODULE,
            "--token-label",
            "custody",
            "--read-object",
            "--type",
            "pubkey",
            "--id",
            "01",
            "-o",
            "pub.der",
        ],
    );
    run(
        "openssl",
        &[
            "pkey", "-pubin", "-inform", "DER", "-in", "pub.der", "-out", "pub.pem",
        ],
    );
    (conf, dir.join("pub.pem"))
}

fn custody_with(env: &[(&str, &str)], args: &[&str], dir: &Path) -> Output {
    let mut c = support::custody();
    c.args(args).current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn pkcs11_softhsm_signs_and_verifies() {
    let dir = support::tempdir();
    let d = dir.path();
    let (conf, public_pem) = softhsm_token(d);
    let conf = conf.to_str().unwrap();
    std::fs::write(d.join("artifact.txt"), b"hsm artifact\n").unwrap();
    let env = [("SOFTHSM2_CONF", conf)];
    let signing = format!("pkcs11:token=custody;object=signer?module-path={MODULE}&pin-value=1234");
    let out = custody_with(
        &env,
        &[
            "sign-blob",
            "--key",
            &signing,
            "--bundle",
            "hsm.bundle",
            "artifact.txt",
        ],
        d,
    );
    assert_ok(&out, "sign-blob with a pkcs11 key");
    // The token's own public key (read by pkcs11-tool) verifies it ...
    let out = custody_with(
        &env,
        &[
            "verify-bundle",
            "--key",
            public_pem.to_str().unwrap(),
            "--bundle",
            "hsm.bundle",
            "artifact.txt",
        ],
        d,
    );
    assert_ok(&out, "verify-bundle with the token's public key");
    // ... and so does the public key read through the URI, by id and without a PIN.
    let by_id = format!("pkcs11:token=custody;id=%01?module-path={MODULE}");
    let out = custody_with(
        &env,
        &[
            "verify-bundle",
            "--key",
            &by_id,
            "--bundle",
            "hsm.bundle",
            "artifact.txt",
        ],
        d,
    );
    assert_ok(&out, "verify-bundle with the pkcs11 uri");
    // A PIN from COSIGN_PKCS11_PIN works like pin-value.
    let no_pin = format!("pkcs11:token=custody;object=signer?module-path={MODULE}");
    let out = custody_with(
        &[("SOFTHSM2_CONF", conf), ("COSIGN_PKCS11_PIN", "1234")],
        &[
            "sign-blob",
            "--key",
            &no_pin,
            "--bundle",
            "env-pin.bundle",
            "artifact.txt",
        ],
        d,
    );
    assert_ok(&out, "sign-blob with the pin from COSIGN_PKCS11_PIN");
}

#[test]
fn pkcs11_wrong_pin_and_missing_key_are_refused_without_showing_the_pin() {
    let dir = support::tempdir();
    let d = dir.path();
    let (conf, _) = softhsm_token(d);
    let env = [("SOFTHSM2_CONF", conf.to_str().unwrap())];
    std::fs::write(d.join("artifact.txt"), b"x").unwrap();
    let wrong = format!("pkcs11:token=custody;object=signer?module-path={MODULE}&pin-value=97531");
    let out = custody_with(
        &env,
        &[
            "sign-blob",
            "--key",
            &wrong,
            "--bundle",
            "b",
            "artifact.txt",
        ],
        d,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("logging in failed"), "{}", text(&out));
    assert!(!text(&out).contains("97531"), "the pin reached output");
    let missing = format!("pkcs11:token=custody;object=nope?module-path={MODULE}&pin-value=1234");
    let out = custody_with(
        &env,
        &[
            "sign-blob",
            "--key",
            &missing,
            "--bundle",
            "b",
            "artifact.txt",
        ],
        d,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("no public key on the token matches"),
        "{}",
        text(&out)
    );
    let no_pin = format!("pkcs11:token=custody;object=signer?module-path={MODULE}");
    let out = custody_with(
        &env,
        &[
            "sign-blob",
            "--key",
            &no_pin,
            "--bundle",
            "b",
            "artifact.txt",
        ],
        d,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no PIN"), "{}", text(&out));
}

/// What a stand-in signs: the digest it was sent, or (for the lie test) another one.
#[derive(Clone, Copy, PartialEq)]
enum Honesty {
    Honest,
    SignsOtherBytes,
}

fn digest_to_sign(honesty: Honesty, digest: &[u8]) -> [u8; 32] {
    let mut d: [u8; 32] = digest.try_into().expect("a sha-256 digest");
    if honesty == Honesty::SignsOtherBytes {
        d[0] ^= 1;
    }
    d
}

/// Vault's transit engine: read key, sign (prehashed, asn1), per its documented API.
fn vault_standin(key: Arc<SigningKey>, honesty: Honesty) -> HostileServer {
    let pem = key.public_key().to_pem();
    HostileServer::start(move |r: &Request| {
        if r.header("X-Vault-Token") != Some("s.vault-token") {
            return Response::new(403).body(r#"{"errors":["permission denied"]}"#);
        }
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/v1/transit/keys/release") => Response::new(200).body(
                serde_json::json!({"data": {"type": "ecdsa-p256", "latest_version": 2,
                    "keys": {"1": {"public_key": "old"}, "2": {"public_key": pem}}}})
                .to_string(),
            ),
            ("POST", "/v1/transit/sign/release/sha2-256") => {
                let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                assert_eq!(body["prehashed"], true);
                assert_eq!(body["marshaling_algorithm"], "asn1");
                assert_eq!(body["key_version"], 2);
                let digest = STANDARD.decode(body["input"].as_str().unwrap()).unwrap();
                let sig = key.sign_prehash(&digest_to_sign(honesty, &digest)).unwrap();
                Response::new(200).body(
                    serde_json::json!({"data": {"signature": format!("vault:v2:{}", STANDARD.encode(sig)), "key_version": 2}})
                        .to_string(),
                )
            }
            _ => Response::new(404).body(r#"{"errors":[]}"#),
        }
    })
}

fn sign_and_verify(env: &[(&str, &str)], reference: &str, public_pem: &str) -> Output {
    let dir = support::tempdir();
    let d = dir.path();
    std::fs::write(d.join("artifact.txt"), b"stand-in artifact\n").unwrap();
    std::fs::write(d.join("key.pub"), public_pem).unwrap();
    let out = custody_with(
        env,
        &[
            "sign-blob",
            "--key",
            reference,
            "--bundle",
            "b.json",
            "artifact.txt",
        ],
        d,
    );
    if !out.status.success() {
        return out;
    }
    let out = custody_with(
        env,
        &[
            "verify-bundle",
            "--key",
            "key.pub",
            "--bundle",
            "b.json",
            "artifact.txt",
        ],
        d,
    );
    assert_ok(&out, "verify-bundle with the stand-in key's public pem");
    custody_with(
        env,
        &[
            "verify-bundle",
            "--key",
            reference,
            "--bundle",
            "b.json",
            "artifact.txt",
        ],
        d,
    )
}

#[test]
fn hashivault_standin_signs_at_the_latest_version() {
    let key = Arc::new(SigningKey::generate_p256().unwrap());
    let server = vault_standin(key.clone(), Honesty::Honest);
    let addr = format!("http://{}", server.host);
    let env = [
        ("VAULT_ADDR", addr.as_str()),
        ("VAULT_TOKEN", "s.vault-token"),
    ];
    let out = sign_and_verify(&env, "hashivault://release", &key.public_key().to_pem());
    assert_ok(&out, "hashivault sign and verify");
    assert_eq!(server.count("POST", "/v1/transit/sign/release/sha2-256"), 1);
    // A wrong token is the server's refusal, reported with the server's message and no token.
    let env = [
        ("VAULT_ADDR", addr.as_str()),
        ("VAULT_TOKEN", "s.wrong-token"),
    ];
    let out = sign_and_verify(&env, "hashivault://release", "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("403") && text(&out).contains("permission denied"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("s.wrong-token"));
}

#[test]
fn a_service_signing_other_bytes_is_caught_before_the_bundle_is_written() {
    let key = Arc::new(SigningKey::generate_p256().unwrap());
    let server = vault_standin(key.clone(), Honesty::SignsOtherBytes);
    let addr = format!("http://{}", server.host);
    let env = [
        ("VAULT_ADDR", addr.as_str()),
        ("VAULT_TOKEN", "s.vault-token"),
    ];
    let out = sign_and_verify(&env, "hashivault://release", "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("does not verify with the key's public key"),
        "{}",
        text(&out)
    );
}

#[test]
fn gcpkms_standin_signs_with_crc32c_checks() {
    let key = Arc::new(SigningKey::generate_p256().unwrap());
    let pem = key.public_key().to_pem();
    let signer = key.clone();
    let name = "projects/p/locations/global/keyRings/r/cryptoKeys/release";
    let server = HostileServer::start(move |r: &Request| {
        if r.header("Authorization") != Some("Bearer ya29.gcp-token") {
            return Response::new(401).body(r#"{"error":{"message":"bad token"}}"#);
        }
        let path = r.path.as_str();
        if r.method == "GET" && path.starts_with(&format!("/v1/{name}/cryptoKeyVersions?")) {
            assert!(path.contains("filter=state%3DENABLED"), "{path}");
            return Response::new(200).body(
                serde_json::json!({"cryptoKeyVersions": [{"name": format!("{name}/cryptoKeyVersions/3"), "state": "ENABLED"}]})
                    .to_string(),
            );
        }
        if r.method == "GET" && path == format!("/v1/{name}/cryptoKeyVersions/3/publicKey") {
            return Response::new(200).body(
                serde_json::json!({"pem": pem, "algorithm": "EC_SIGN_P256_SHA256",
                    "pemCrc32c": crc32c(pem.as_bytes()).to_string()})
                .to_string(),
            );
        }
        if r.method == "POST" && path == format!("/v1/{name}/cryptoKeyVersions/3:asymmetricSign") {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            let digest = STANDARD
                .decode(body["digest"]["sha256"].as_str().unwrap())
                .unwrap();
            let verified =
                body["digestCrc32c"].as_str() == Some(crc32c(&digest).to_string().as_str());
            let sig = signer
                .sign_prehash(&digest_to_sign(Honesty::Honest, &digest))
                .unwrap();
            return Response::new(200).body(
                serde_json::json!({"signature": STANDARD.encode(&sig),
                    "signatureCrc32c": crc32c(&sig).to_string(),
                    "verifiedDigestCrc32c": verified,
                    "name": format!("{name}/cryptoKeyVersions/3")})
                .to_string(),
            );
        }
        Response::new(404).body(r#"{"error":{"message":"not found"}}"#)
    });
    let endpoint = format!("http://{}/", server.host);
    let env = [
        (
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS",
            endpoint.as_str(),
        ),
        ("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.gcp-token"),
    ];
    let out = sign_and_verify(
        &env,
        &format!("gcpkms://{name}"),
        &key.public_key().to_pem(),
    );
    assert_ok(&out, "gcpkms sign and verify");
    assert_eq!(server.count("POST", "/v1/"), 1);
}

#[test]
fn azurekms_standin_signs_with_client_credentials() {
    let key = Arc::new(SigningKey::generate_p256().unwrap());
    // A P-256 SPKI ends with the uncompressed point 04||X||Y.
    let spki = key.public_key().to_spki_der();
    let point = &spki[spki.len() - 64..];
    let (x, y) = (
        URL_SAFE_NO_PAD.encode(&point[..32]),
        URL_SAFE_NO_PAD.encode(&point[32..]),
    );
    let signer = key.clone();
    let server = HostileServer::start(move |r: &Request| {
        let path = r.path.as_str();
        if r.method == "POST" && path == "/tenant-1/oauth2/v2.0/token" {
            let form = String::from_utf8_lossy(&r.body).into_owned();
            assert!(form.contains("grant_type=client_credentials"), "{form}");
            assert!(form.contains("client_secret=az%2Fsecret%3D"), "{form}");
            assert!(
                form.contains("scope=https%3A%2F%2Fvault.azure.net%2F.default"),
                "{form}"
            );
            return Response::new(200)
                .body(r#"{"access_token":"az-token","token_type":"Bearer","expires_in":3600}"#);
        }
        if r.header("Authorization") != Some("Bearer az-token") {
            return Response::new(401).body(r#"{"error":{"message":"unauthorised"}}"#);
        }
        let host = r.header("Host").unwrap_or_default().to_owned();
        if r.method == "GET" && path == "/keys/release?api-version=7.4" {
            return Response::new(200).body(
                serde_json::json!({"key": {"kid": format!("https://{host}/keys/release/abc123"),
                    "kty": "EC", "crv": "P-256", "x": x, "y": y}})
                .to_string(),
            );
        }
        if r.method == "POST" && path == "/keys/release/abc123/sign?api-version=7.4" {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body["alg"], "ES256");
            let digest = URL_SAFE_NO_PAD
                .decode(body["value"].as_str().unwrap())
                .unwrap();
            let der = signer
                .sign_prehash(&digest_to_sign(Honesty::Honest, &digest))
                .unwrap();
            let raw = p256::ecdsa::Signature::from_der(&der).unwrap().to_bytes();
            return Response::new(200).body(
                serde_json::json!({"kid": format!("https://{host}/keys/release/abc123"),
                    "value": URL_SAFE_NO_PAD.encode(raw)})
                .to_string(),
            );
        }
        Response::new(404).body(r#"{"error":{"message":"not found"}}"#)
    });
    let authority = format!("http://{}", server.host);
    let env = [
        ("AZURE_AUTHORITY_HOST", authority.as_str()),
        ("AZURE_TENANT_ID", "tenant-1"),
        ("AZURE_CLIENT_ID", "client-1"),
        ("AZURE_CLIENT_SECRET", "az/secret="),
    ];
    // The stand-in listens on loopback, so the vault url is http (https everywhere else).
    let reference = format!("azurekms://{}/release", server.host);
    let out = sign_and_verify(&env, &reference, &key.public_key().to_pem());
    assert_ok(&out, "azurekms sign and verify");
    assert!(!text(&out).contains("az/secret="));
    assert_eq!(server.count("POST", "/keys/release/abc123/sign"), 1);
}

#[test]
fn policy_signers_take_kms_keys() {
    use custody::decisions::policy::{Format, Policy, SignerKind};
    use custody::evidence::sign::KeyEnv;
    let key = Arc::new(SigningKey::generate_p256().unwrap());
    let server = vault_standin(key.clone(), Honesty::Honest);
    let env = KeyEnv::new([
        ("VAULT_ADDR".to_owned(), format!("http://{}", server.host)),
        ("VAULT_TOKEN".to_owned(), "s.vault-token".to_owned()),
    ]);
    let text = "version: 1\nscopes:\n  - name: all\n    repositories: [\"**\"]\n    signers:\n      - name: vault\n        key: hashivault://release\n";
    let dir = support::tempdir();
    let policy =
        Policy::parse_with_keys(text.as_bytes(), Format::Yaml, dir.path(), "inline", &env).unwrap();
    let signer = &policy.scopes[0].signers[0];
    assert!(
        matches!(&signer.kind, SignerKind::Key(k) if *k == key.public_key()),
        "{signer:?}"
    );
    // Without the service's environment the signer is refused, naming the key.
    let err = Policy::parse(text.as_bytes(), Format::Yaml, dir.path(), "inline").unwrap_err();
    assert!(err.to_string().contains("hashivault://release"), "{err}");
}

/// A root, an intermediate and leaves made with openssl (P-256, the leaf with the codeSigning
/// EKU and an email SAN), current CRLs from both CAs (`root.crl`, `int-empty.crl`,
/// `int-revoked.crl` revoking `leaf`), and another root that signed nothing here.
/// `CRL_URL`, when set, becomes the leaf's CRL distribution point.
fn openssl_pki(dir: &Path, crl_url: Option<&str>) {
    let dp = crl_url
        .map(|u| format!("crlDistributionPoints=URI:{u}\\n"))
        .unwrap_or_default();
    let script = format!(
        r#"set -eu
ec() {{ openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out "$1"; }}
ec root.key; ec int.key; ec leaf.key; ec other.key
printf '[req]\ndistinguished_name=dn\n[dn]\n[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' > root.cnf
openssl req -x509 -new -key root.key -subj "/O=Acme/CN=Acme Root" -days 30 -sha256 -extensions v3 -config root.cnf -out root.pem
openssl req -x509 -new -key other.key -subj "/O=Other/CN=Other Root" -days 30 -sha256 -extensions v3 -config root.cnf -out other-root.pem
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' > int.ext
openssl req -new -key int.key -subj "/O=Acme/CN=Acme Intermediate" -out int.csr
openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -CAcreateserial -days 20 -sha256 -extfile int.ext -out int.pem
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\nsubjectAltName=email:release@acme.example\n{dp}' > leaf.ext
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' > tls.ext
openssl req -new -key leaf.key -subj "/O=Acme/CN=release" -out leaf.csr
openssl x509 -req -in leaf.csr -CA int.pem -CAkey int.key -CAcreateserial -days 10 -sha256 -extfile leaf.ext -out leaf.pem
openssl x509 -req -in leaf.csr -CA int.pem -CAkey int.key -CAcreateserial -days 10 -sha256 -extfile tls.ext -out tls-leaf.pem
cat int.pem root.pem > chain.pem
crl() {{ # NAME KEY CERT [REVOKE]
  mkdir -p "$1.db"; : > "$1.db/index.txt"; echo 01 > "$1.db/crlnumber"
  printf '[ca]\ndefault_ca=c\n[c]\ndatabase=%s.db/index.txt\ncrlnumber=%s.db/crlnumber\ndefault_md=sha256\ndefault_crl_days=5\n' "$1" "$1" > "$1.cnf"
  if [ $# -gt 3 ]; then openssl ca -config "$1.cnf" -revoke "$4" -keyfile "$2" -cert "$3" 2>/dev/null; fi
  openssl ca -config "$1.cnf" -gencrl -keyfile "$2" -cert "$3" -out "$1.crl" 2>/dev/null
}}
crl root root.key root.pem
crl int-empty int.key int.pem
crl int-revoked int.key int.pem leaf.pem
"#
    );
    std::fs::write(dir.join("pki.sh"), script).unwrap();
    let out = std::process::Command::new("bash")
        .arg("pki.sh")
        .current_dir(dir)
        .output()
        .unwrap();
    assert_ok(&out, "making the test pki with openssl");
}

fn openssl_verify(dir: &Path, extra: &[&str]) -> bool {
    std::process::Command::new("openssl")
        .arg("verify")
        .args(extra)
        .args(["-CAfile", "root.pem", "-untrusted", "int.pem", "leaf.pem"])
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn x509_chain_signs_into_the_bundle_and_verifies_against_the_roots() {
    let dir = support::tempdir();
    let d = dir.path();
    openssl_pki(d, None);
    std::fs::write(d.join("artifact.txt"), b"pki artifact\n").unwrap();
    let run = |args: &[&str]| custody_with(&[], args, d);
    let out = run(&[
        "sign-blob",
        "--key",
        "leaf.key",
        "--certificate",
        "leaf.pem",
        "--certificate-chain",
        "chain.pem",
        "--bundle",
        "b.json",
        "artifact.txt",
    ]);
    assert_ok(&out, "sign-blob with a certificate chain");
    // The chain is in the bundle as cosign writes it: leaf and intermediate, never the root.
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("b.json")).unwrap()).unwrap();
    let certs = bundle["verificationMaterial"]["x509CertificateChain"]["certificates"]
        .as_array()
        .unwrap();
    let der = |f: &str| {
        let pem = std::fs::read_to_string(d.join(f)).unwrap();
        STANDARD.encode(pem_rfc7468::decode_vec(pem.as_bytes()).unwrap().1)
    };
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0]["rawBytes"], der("leaf.pem"));
    assert_eq!(certs[1]["rawBytes"], der("int.pem"));
    // openssl agrees about the chain and the revocation states used below.
    assert!(openssl_verify(d, &[]));
    assert!(openssl_verify(
        d,
        &[
            "-crl_check_all",
            "-CRLfile",
            "root.crl",
            "-CRLfile",
            "int-empty.crl"
        ]
    ));
    assert!(!openssl_verify(
        d,
        &["-crl_check", "-CRLfile", "int-revoked.crl"]
    ));

    let verify = |extra: &[&str]| {
        let mut args = vec![
            "verify-bundle",
            "artifact.txt",
            "--bundle",
            "b.json",
            "--ca-roots",
        ];
        args.extend(extra);
        run(&args)
    };
    let good_crls = ["--crl", "root.crl", "--crl", "int-empty.crl"];
    let out = verify(
        &[
            &[
                "root.pem",
                "--certificate-identity",
                "release@acme.example",
                "--certificate-subject",
                "CN=release,O=Acme",
            ][..],
            &good_crls,
        ]
        .concat(),
    );
    assert_ok(&out, "verify against the root with current crls");
    assert!(
        text(&out).contains("signed by release@acme.example (issuer CN=Acme Root,O=Acme)"),
        "{}",
        text(&out)
    );

    let refusals: &[(&[&str], &str)] = &[
        (
            &["other-root.pem", "--crl", "root.crl"],
            "no chain from \"CN=release,O=Acme\" to a trusted root",
        ),
        (
            &["root.pem", "--crl", "root.crl", "--crl", "int-revoked.crl"],
            "is revoked by its issuer's crl",
        ),
        (
            &["root.pem", "--crl", "root.crl"],
            "revocation status of \"CN=release,O=Acme\" is unknown",
        ),
        (
            &[
                "root.pem",
                "--certificate-identity",
                "other@acme.example",
                "--revocation-unknown",
                "allow",
            ],
            "no subject alternative name \"other@acme.example\"",
        ),
        (
            &[
                "root.pem",
                "--certificate-subject",
                "CN=other,O=Acme",
                "--revocation-unknown",
                "allow",
            ],
            "the leaf subject is \"CN=release,O=Acme\"",
        ),
        (
            &[
                "root.pem",
                "--certificate-eku",
                "1.3.6.1.5.5.7.3.1",
                "--revocation-unknown",
                "allow",
            ],
            "lacks extended key usage 1.3.6.1.5.5.7.3.1",
        ),
    ];
    for (extra, why) in refusals {
        let out = verify(extra);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {}", text(&out));
        assert!(text(&out).contains(why), "{extra:?}: {}", text(&out));
    }
    // Unknown revocation is the policy's choice.
    let out = verify(&["root.pem", "--revocation-unknown", "allow"]);
    assert_ok(&out, "verify with unknown revocation allowed");

    // A leaf without the code-signing EKU is refused, though openssl would chain it.
    let out = run(&[
        "sign-blob",
        "--key",
        "leaf.key",
        "--certificate",
        "tls-leaf.pem",
        "--certificate-chain",
        "chain.pem",
        "--bundle",
        "tls.json",
        "artifact.txt",
    ]);
    assert_ok(&out, "sign-blob with a tls certificate");
    let out = run(&[
        "verify-bundle",
        "artifact.txt",
        "--bundle",
        "tls.json",
        "--ca-roots",
        "root.pem",
        "--revocation-unknown",
        "allow",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("lacks extended key usage 1.3.6.1.5.5.7.3.3"),
        "{}",
        text(&out)
    );

    // A certificate for another key is refused at signing.
    let out = run(&[
        "sign-blob",
        "--key",
        "root.key",
        "--certificate",
        "leaf.pem",
        "--bundle",
        "x.json",
        "artifact.txt",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("not the signing key's"),
        "{}",
        text(&out)
    );
}

/// cosign v3.1.2 (the pinned one) predates chains in v0.3 bundles (sigstore/cosign#4614): it
/// writes and reads the leaf-only `certificate` form, with the CA chain in a trusted root.
#[test]
fn x509_leaf_bundles_cross_check_with_cosign_both_ways() {
    let dir = support::tempdir();
    let d = dir.path();
    openssl_pki(d, None);
    std::fs::write(d.join("artifact.txt"), b"pki artifact\n").unwrap();
    std::fs::write(
        d.join("ca-chain.pem"),
        [
            std::fs::read(d.join("int.pem")).unwrap(),
            std::fs::read(d.join("root.pem")).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let cosign = |args: &[&str]| {
        std::process::Command::new(support::tool("cosign"))
            .args(args)
            .current_dir(d)
            .env("HOME", d)
            .env("TUF_ROOT", d.join("tuf"))
            .env("COSIGN_PASSWORD", "pki")
            .output()
            .unwrap()
    };
    assert_ok(
        &cosign(&["import-key-pair", "--key", "leaf.key", "-y"]),
        "cosign import-key-pair",
    );
    assert_ok(
        &cosign(&[
            "trusted-root",
            "create",
            "--fulcio",
            "url=https://ca.acme.example,certificate-chain=ca-chain.pem",
            "--no-default-ctfe",
            "--no-default-fulcio",
            "--no-default-rekor",
            "--no-default-tsa",
            "--out",
            "tr.json",
        ]),
        "cosign trusted-root create",
    );
    // custody signs (leaf only), cosign verifies against the same CA.
    assert_ok(
        &custody_with(
            &[],
            &[
                "sign-blob",
                "--key",
                "leaf.key",
                "--certificate",
                "leaf.pem",
                "--bundle",
                "custody.json",
                "artifact.txt",
            ],
            d,
        ),
        "custody sign-blob with the leaf",
    );
    let out = cosign(&[
        "verify-blob",
        "--bundle",
        "custody.json",
        "--trusted-root",
        "tr.json",
        "--certificate-identity",
        "release@acme.example",
        "--certificate-oidc-issuer-regexp",
        ".*",
        "--insecure-ignore-sct",
        "--insecure-ignore-tlog",
        "artifact.txt",
    ]);
    assert_ok(&out, "cosign verify-blob of custody's certificate bundle");
    // cosign signs with the same key and certificate, custody verifies through the intermediate.
    assert_ok(
        &cosign(&[
            "sign-blob",
            "--key",
            "import-cosign.key",
            "--certificate",
            "leaf.pem",
            "--certificate-chain",
            "chain.pem",
            "--bundle",
            "cosign.json",
            "--new-bundle-format",
            "--use-signing-config=false",
            "--tlog-upload=false",
            "--yes",
            "artifact.txt",
        ]),
        "cosign sign-blob with the certificate",
    );
    let out = custody_with(
        &[],
        &[
            "verify-bundle",
            "artifact.txt",
            "--bundle",
            "cosign.json",
            "--ca-roots",
            "root.pem",
            "--ca-intermediates",
            "int.pem",
            "--certificate-identity",
            "release@acme.example",
            "--crl",
            "root.crl",
            "--crl",
            "int-empty.crl",
        ],
        d,
    );
    assert_ok(&out, "custody verify-bundle of cosign's certificate bundle");
}

#[test]
fn x509_crl_from_the_distribution_point_is_cached_for_offline_use() {
    let dir = support::tempdir();
    let d = dir.path();
    let crl: Arc<std::sync::Mutex<Vec<u8>>> = Arc::default();
    let served = crl.clone();
    let server = HostileServer::start(move |_r: &Request| {
        Response::new(200).body(served.lock().unwrap().clone())
    });
    let url = format!("http://{}/int.crl", server.host);
    openssl_pki(d, Some(&url));
    *crl.lock().unwrap() = std::fs::read(d.join("int-empty.crl")).unwrap();
    std::fs::write(d.join("artifact.txt"), b"pki artifact\n").unwrap();
    let cache = d.join("cache");
    let cache_env = [("XDG_CACHE_HOME", cache.to_str().unwrap())];
    let run = |args: &[&str]| custody_with(&cache_env, args, d);
    assert_ok(
        &run(&[
            "sign-blob",
            "--key",
            "leaf.key",
            "--certificate",
            "leaf.pem",
            "--certificate-chain",
            "chain.pem",
            "--bundle",
            "b.json",
            "artifact.txt",
        ]),
        "sign-blob",
    );
    let verify = |offline: bool| {
        let mut args = vec![
            "verify-bundle",
            "artifact.txt",
            "--bundle",
            "b.json",
            "--ca-roots",
            "root.pem",
            "--crl",
            "root.crl",
        ];
        if offline {
            args.push("--offline");
        }
        run(&args)
    };
    // Offline before anything was fetched: unknown, refused.
    let out = verify(true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("revocation status of \"CN=release,O=Acme\" is unknown"));
    assert_eq!(
        server.count("GET", "/int.crl"),
        0,
        "--offline fetched a crl"
    );
    // Online: fetched from the distribution point and cached.
    assert_ok(&verify(false), "verify fetching the crl");
    assert_eq!(server.count("GET", "/int.crl"), 1);
    // Offline again: the cached CRL answers, and nothing is fetched.
    assert_ok(&verify(true), "verify offline from the cache");
    assert_eq!(server.count("GET", "/int.crl"), 1);
    // The CA revokes the leaf; online verification sees it at once.
    *crl.lock().unwrap() = std::fs::read(d.join("int-revoked.crl")).unwrap();
    let out = verify(false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("is revoked by its issuer's crl"),
        "{}",
        text(&out)
    );
}

/// A policy signer that names CA roots, SAN and CRLs: `custody verify` of an image signed with
/// a certificate chain, on a real registry; the revoked CRL turns the verdict.
#[test]
fn policy_signers_name_ca_roots_and_crls() {
    let dir = support::tempdir();
    let d = dir.path();
    openssl_pki(d, None);
    let registry = support::Registry::start();
    std::fs::write(d.join("app.txt"), b"app\n").unwrap();
    let reference = format!("{}/team/app:v1", registry.host);
    let run = |args: &[&str]| custody_with(&[], args, d);
    assert_ok(&run(&["push", "app.txt", "--to", &reference]), "push");
    assert_ok(
        &run(&[
            "sign",
            &reference,
            "--key",
            "leaf.key",
            "--certificate",
            "leaf.pem",
            "--certificate-chain",
            "chain.pem",
        ]),
        "sign with a certificate chain",
    );
    let policy = |int_crl: &str| {
        format!(
            "version: 1\nscopes:\n  - name: all\n    repositories: [\"**\"]\n    signers:\n      - name: acme-pki\n        ca_roots: root.pem\n        san: release@acme.example\n        certificate_subject: CN=release,O=Acme\n        crls: [root.crl, {int_crl}]\n"
        )
    };
    std::fs::write(d.join("good.yaml"), policy("int-empty.crl")).unwrap();
    std::fs::write(d.join("revoked.yaml"), policy("int-revoked.crl")).unwrap();
    let out = run(&["verify", &reference, "--policy", "good.yaml"]);
    assert_ok(&out, "verify with a pki policy signer");
    let out = run(&["verify", &reference, "--policy", "revoked.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("revoked"), "{}", text(&out));
}
