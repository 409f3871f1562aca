//! `custody keygen`, `custody sign-blob` and `custody verify-bundle`: argument structs and
//! handlers. This is the only place that reads passwords and key material from the environment
//! (`COSIGN_PASSWORD`, `CUSTODY_PASSWORD`, `env://VAR` keys) or prompts on the terminal.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use custody::evidence::sign::keys::{self, Password, PublicKey, SigningKey};
use custody::evidence::sign::verify::{
    Artifact, IdentityPolicy, KeyPolicy, Policy, SubjectMatcher, TlogRequirement, TrustedRoot,
    VerifiedBundle, VerifiedSigner, verify_bundle,
};
use custody::evidence::sign::{
    Bundle, ChosenSigner, KeyEnv, KeyRef, KeySigner, SecretText, SignerOptions, choose_signer, kms,
    oidc, sign_blob,
};
use custody::foundation::digest::Digest;

/// Environment variables read for a key password, in order (a set-but-empty value counts).
pub const PASSWORD_ENV_VARS: &[&str] = &["COSIGN_PASSWORD", "CUSTODY_PASSWORD"];
/// Prefix of a key reference naming an environment variable that holds the PEM text.
pub const ENV_KEY_PREFIX: &str = "env://";
/// Key files are tiny; anything larger is not a key.
const MAX_KEY_FILE: u64 = 64 * 1024;

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Write NAME.key and NAME.pub (default: cosign.key and cosign.pub).
    #[arg(long, value_name = "NAME", default_value = "cosign")]
    pub output_key_prefix: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct SignBlobArgs {
    /// The file to sign.
    pub file: PathBuf,
    /// Private key: a cosign key file, a PKCS#8 PEM file, or env://VAR. Without it, signs
    /// keyless when an identity token is available.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Where to write the Sigstore bundle (v0.3); `-` writes it to standard output.
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    #[command(flatten)]
    pub keyless: KeylessArgs,
}

/// Keyless signing flags, shared by every command that signs.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct KeylessArgs {
    /// OIDC identity token (or a file holding it) for Fulcio. Without it: SIGSTORE_ID_TOKEN,
    /// then the GitHub Actions token (audience sigstore).
    #[arg(long, value_name = "TOKEN|FILE")]
    pub identity_token: Option<String>,
    /// Sigstore signing config (signingconfig v0.2 JSON): Fulcio, Rekor and TSA urls. `tuf`:
    /// the one the TUF mirror of `custody trust update` publishes, with its trusted root.
    /// Default: public-good Sigstore.
    #[arg(long, value_name = "FILE|tuf")]
    pub signing_config: Option<PathBuf>,
    /// trusted_root.json the new bundle must verify against before it is written.
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// Fulcio url, overriding the signing config.
    #[arg(long, value_name = "URL")]
    pub fulcio_url: Option<String>,
    /// Rekor url, overriding the signing config (same API version as the log it replaces).
    #[arg(long, value_name = "URL")]
    pub rekor_url: Option<String>,
    /// RFC 3161 timestamp endpoint (…/api/v1/timestamp), overriding the signing config.
    #[arg(long, value_name = "URL")]
    pub tsa_url: Option<String>,
    /// With --key: the key's X.509 certificate (PEM), carried in the bundle instead of the key
    /// hint (bring your own PKI).
    #[arg(long, value_name = "FILE")]
    pub certificate: Option<PathBuf>,
    /// With --certificate: the chain above it (PEM), parent first; roots are left out.
    #[arg(long, value_name = "FILE", requires = "certificate")]
    pub certificate_chain: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct VerifyBundleArgs {
    /// The artifact: a file path or `sha256:<hex>`.
    pub artifact: String,
    /// The Sigstore bundle to verify; `-` reads it from standard input.
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    /// Expected certificate identity (SAN), exact.
    #[arg(long, value_name = "ID", conflicts_with_all = ["certificate_identity_regexp", "key"])]
    pub certificate_identity: Option<String>,
    /// Expected certificate identity (SAN), unanchored regular expression.
    #[arg(long, value_name = "REGEX", conflicts_with = "key")]
    pub certificate_identity_regexp: Option<String>,
    /// Expected OIDC issuer of the certificate.
    #[arg(long, value_name = "URL", conflicts_with = "key")]
    pub certificate_oidc_issuer: Option<String>,
    /// Public key (PEM file or env://VAR) for key-signed bundles.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// trusted_root.json (CAs, logs, TSAs). Without it, key mode skips log checks.
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// Key mode: do not require a transparency-log entry even with a trusted root.
    #[arg(long)]
    pub insecure_ignore_tlog: bool,
    /// Accept a DSSE statement of this predicate type (default: only cosign's signature
    /// statement, https://sigstore.dev/cosign/sign/v1; an attestation is not a signature).
    #[arg(long, value_name = "URI")]
    pub predicate_type: Option<String>,
    /// Never use the network: the default trusted root comes from the TUF cache (or the
    /// built-in public-good root); with --ca-roots, only cached CRLs are used.
    #[arg(long)]
    pub offline: bool,
    /// Bring your own PKI: the bundle's certificate must chain to one of these CA roots (PEM).
    /// --certificate-identity then names a SAN the leaf must carry.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key", "certificate_identity_regexp", "certificate_oidc_issuer"])]
    pub ca_roots: Option<PathBuf>,
    /// With --ca-roots: intermediates (PEM) to build the chain through.
    #[arg(long, value_name = "FILE", requires = "ca_roots")]
    pub ca_intermediates: Option<PathBuf>,
    /// With --ca-roots: the leaf's exact subject (RFC 4514, e.g. CN=release,O=Acme).
    #[arg(long, value_name = "DN", requires = "ca_roots")]
    pub certificate_subject: Option<String>,
    /// With --ca-roots: the extended key usage the leaf must carry (default code signing).
    #[arg(long, value_name = "OID", requires = "ca_roots")]
    pub certificate_eku: Option<String>,
    /// With --ca-roots: a CRL file (PEM or DER). Repeatable. CRLs named by the certificates'
    /// distribution points are fetched and cached as well (only the cache with --offline).
    #[arg(long, value_name = "FILE", requires = "ca_roots")]
    pub crl: Vec<PathBuf>,
    /// With --ca-roots: when no current CRL covers a certificate, fail (default) or allow.
    #[arg(long, value_name = "WHAT", value_parser = ["fail", "allow"], default_value = "fail")]
    pub revocation_unknown: String,
}

/// The outcome of `verify-bundle`: exit 0 when verified, 1 when refused.
#[derive(Debug)]
pub enum VerifyOutcome {
    Verified(VerifiedBundle),
    Refused(custody::evidence::sign::VerifyError),
}

fn password_from_env() -> Option<Password> {
    PASSWORD_ENV_VARS
        .iter()
        .find_map(std::env::var_os)
        .map(|v| Password::new(v.into_encoded_bytes()))
}

fn prompt_password(prompt: &str) -> anyhow::Result<Password> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "a key password is needed: set {} or run in a terminal",
            PASSWORD_ENV_VARS.join(" or ")
        );
    }
    let pw = rpassword::prompt_password(prompt).context("could not read the password")?;
    Ok(Password::new(pw.into_bytes()))
}

fn read_key_text(reference: &str) -> anyhow::Result<String> {
    if let Some(var) = reference.strip_prefix(ENV_KEY_PREFIX) {
        return std::env::var(var)
            .with_context(|| format!("environment variable {var} is not set or not utf-8"));
    }
    let bytes = read_bounded(Path::new(reference), MAX_KEY_FILE)?;
    String::from_utf8(bytes).with_context(|| format!("key {reference} is not utf-8 text"))
}

/// `custody keygen`: writes an encrypted ECDSA P-256 key pair in cosign's format.
pub fn run_keygen(args: &KeygenArgs) -> anyhow::Result<(PathBuf, PathBuf)> {
    super::stdio::refuse_dash(
        &args.output_key_prefix,
        "--output-key-prefix",
        "a key pair is two files, NAME.key and NAME.pub; give NAME",
    )?;
    let password = match password_from_env() {
        Some(p) => p,
        None => {
            let first = prompt_password("Enter password for private key: ")?;
            let again = prompt_password("Enter password for private key again: ")?;
            if !same_password(&first, &again) {
                bail!("passwords do not match");
            }
            first
        }
    };
    let pair = keys::keygen(&password).context("could not generate a key pair")?;
    let paths = keys::write_key_pair(&args.output_key_prefix, &pair)
        .context("could not write the key pair")?;
    Ok(paths)
}

fn same_password(a: &Password, b: &Password) -> bool {
    a.ct_eq(b)
}

/// Loads a private key for signing, asking for a password only when the key is encrypted.
pub fn load_signing_key(reference: &str) -> anyhow::Result<SigningKey> {
    let text = zeroize::Zeroizing::new(read_key_text(reference)?);
    match keys::load_private_key(&text, None) {
        Err(keys::KeyError::PasswordRequired) => {
            let password = match password_from_env() {
                Some(p) => p,
                None => prompt_password("Enter password for private key: ")?,
            };
            keys::load_private_key(&text, Some(&password))
                .with_context(|| format!("cannot load key {reference}"))
        }
        other => other.with_context(|| format!("cannot load key {reference}")),
    }
}

/// The variables the key backends read (credentials, endpoints, PINs), from this process.
pub fn key_env() -> KeyEnv {
    KeyEnv::new(
        kms::ENV_VARS
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v))),
    )
}

/// Opens the key a `--key` (or `--vsa-key`, `CUSTODY_AUDIT_KEY`) names: a key file or
/// `env://VAR` (unlocked with a password when encrypted), or a KMS/HSM reference in cosign's
/// syntax (`awskms://`, `gcpkms://`, `azurekms://`, `hashivault://`, `pkcs11:`).
pub fn open_signing_key(reference: &str) -> anyhow::Result<KeySigner> {
    let parsed = KeyRef::parse(reference).context("cannot parse the key reference")?;
    if parsed.is_remote() {
        let backend =
            kms::open(&parsed, &key_env()).with_context(|| format!("cannot open key {parsed}"))?;
        return Ok(KeySigner::from_backend(backend));
    }
    Ok(KeySigner::new(load_signing_key(reference)?))
}

/// Loads a public key for verification: a PEM file, `env://VAR`, or the public half of a
/// KMS/HSM key.
pub fn load_public_key(reference: &str) -> anyhow::Result<PublicKey> {
    let parsed = KeyRef::parse(reference).context("cannot parse the key reference")?;
    if parsed.is_remote() {
        return kms::public_key(&parsed, &key_env())
            .with_context(|| format!("cannot read the public key of {parsed}"));
    }
    let pem = read_key_text(reference)?;
    PublicKey::from_pem(&pem).with_context(|| format!("cannot load public key {reference}"))
}

/// The token variables of this process, for [`custody::evidence::sign::choose_signer`].
pub fn token_env() -> BTreeMap<String, String> {
    oidc::TOKEN_ENV_VARS
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
        .collect()
}

/// `--signing-config tuf`: the signing config the trust mirror publishes.
pub const SIGNING_CONFIG_FROM_TUF: &str = "tuf";

/// Signer options from a `--key` and the keyless flags; loads (and unlocks) the key.
pub fn signer_options(key: Option<&str>, keyless: &KeylessArgs) -> anyhow::Result<SignerOptions> {
    let mut key = key.map(open_signing_key).transpose()?;
    if let Some(path) = &keyless.certificate {
        let Some(signer) = key.take() else {
            bail!("--certificate needs --key: the certificate names the key that signs");
        };
        let read = |p: &Path| -> anyhow::Result<Vec<Vec<u8>>> {
            let bytes = read_bounded(p, custody::evidence::sign::pki::MAX_PKI_FILE as u64)?;
            custody::evidence::sign::pki::parse_certificates(&bytes, &p.display().to_string())
                .with_context(|| format!("cannot use {}", p.display()))
        };
        let leaf = read(path)?.remove(0);
        let chain = match &keyless.certificate_chain {
            Some(p) => read(p)?,
            None => Vec::new(),
        };
        key = Some(
            custody::evidence::sign::pki::attach_certificates(signer, &leaf, &chain)
                .with_context(|| format!("cannot sign with {}", path.display()))?,
        );
    }
    let from_tuf = keyless
        .signing_config
        .as_deref()
        .is_some_and(|p| p == Path::new(SIGNING_CONFIG_FROM_TUF));
    Ok(SignerOptions {
        // Read only when signing keyless: a key needs no services.
        published: if from_tuf && key.is_none() {
            Some(super::trust_cmds::published_instance()?)
        } else {
            None
        },
        key,
        identity_token: keyless.identity_token.clone().map(SecretText::new),
        signing_config: keyless.signing_config.clone().filter(|_| !from_tuf),
        trusted_root: keyless.trusted_root.clone(),
        fulcio_url: keyless.fulcio_url.clone(),
        rekor_url: keyless.rekor_url.clone(),
        tsa_url: keyless.tsa_url.clone(),
    })
}

/// What `sign-blob` did.
#[derive(Debug)]
pub struct SignedBlob {
    pub bundle: Bundle,
    /// Keyless: who the certificate names, per the token, and where the token came from.
    pub keyless: Option<(oidc::TokenClaims, oidc::TokenSource)>,
    /// The check of the new bundle against `--trusted-root`, when one was given.
    pub checked: Option<VerifiedBundle>,
}

/// `custody sign-blob`: signs a file with a key, or keyless, and writes a v0.3 bundle. A keyless
/// bundle is verified against `--trusted-root` (when given) before it is written.
pub fn run_sign_blob(args: &SignBlobArgs) -> anyhow::Result<SignedBlob> {
    let options = signer_options(args.key.as_deref(), &args.keyless)?;
    let blob = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let signer = choose_signer(&options, &token_env())?;
    let bundle = sign_blob(&blob, &signer).context("signing failed")?;
    let mut signed = SignedBlob {
        bundle,
        keyless: None,
        checked: None,
    };
    if let ChosenSigner::Keyless { claims, source, .. } = &signer {
        if let Some(root) = signer.trusted_root() {
            let policy = Policy::Identity(IdentityPolicy {
                subject: SubjectMatcher::Regex(regex::Regex::new("").expect("empty regex")),
                issuer: claims.issuer.clone(),
            });
            let verified = verify_bundle(&signed.bundle, Artifact::Bytes(&blob), &policy, root)
                .context(
                    "the new bundle does not verify against the trusted root; it was not written",
                )?;
            signed.checked = Some(verified);
        }
        signed.keyless = Some((claims.clone(), *source));
    }
    // `--bundle -`: the bundle is the command's output, written by [`describe_signed`]'s caller.
    if !super::stdio::is_dash(&args.bundle) {
        std::fs::write(&args.bundle, signed.bundle.to_json())
            .with_context(|| format!("cannot write bundle {}", args.bundle.display()))?;
    }
    Ok(signed)
}

/// Human lines and JSON for a `sign-blob` result.
pub fn describe_signed(
    signed: &SignedBlob,
    bundle_path: &Path,
    printer: &super::Printer,
) -> (String, serde_json::Value) {
    let mut human = String::new();
    let mut json = serde_json::json!({ "bundle": bundle_path });
    if let Some((claims, source)) = &signed.keyless {
        let who = claims.email.as_deref().unwrap_or(&claims.subject);
        human.push_str(&format!(
            "signed keyless as {who} (issuer {}, token from {})\n",
            claims.issuer,
            serde_json::to_value(source)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ));
        for e in signed.bundle.tlog_entries() {
            human.push_str(&format!(
                "transparency log: {} {} entry {}\n",
                e.kind, e.kind_version, e.log_index
            ));
        }
        human.push_str(&format!(
            "timestamps: {}\n",
            signed.bundle.rfc3161_timestamps().len()
        ));
        json["keyless"] = serde_json::json!({
            "issuer": claims.issuer,
            "subject": claims.subject,
            "email": claims.email,
            "tokenSource": source,
            "tlogEntries": signed.bundle.tlog_entries().iter().map(|e| e.log_index).collect::<Vec<_>>(),
            "timestamps": signed.bundle.rfc3161_timestamps().len(),
        });
    }
    if let Some(v) = &signed.checked {
        human.push_str("checked against the trusted root: verified\n");
        json["checked"] = serde_json::to_value(v).unwrap_or_default();
    }
    if super::stdio::is_dash(bundle_path) {
        // The bundle is standard output (as text, and as the JSON report); what happened goes
        // to standard error so a pipe receives only the bundle.
        human.push_str("bundle written to standard output\n");
        printer.stderr(&human);
        let bundle = signed.bundle.to_json();
        let value = serde_json::from_slice(&bundle).unwrap_or_default();
        return (String::from_utf8_lossy(&bundle).into_owned() + "\n", value);
    }
    human.push_str(&format!("bundle written to {}\n", bundle_path.display()));
    (human, json)
}

/// `custody verify-bundle`: `Ok(Verified|Refused)` for exit 0/1; `Err` (exit 2) when the
/// verification could not run (unreadable files, bad arguments, unusable trusted root).
/// With the outcome: which trusted root was used, when one was.
pub fn run_verify_bundle(
    args: &VerifyBundleArgs,
) -> anyhow::Result<(VerifyOutcome, Option<custody::evidence::trust::RootOrigin>)> {
    let bundle_bytes = if super::stdio::is_dash(&args.bundle) {
        super::stdio::read(
            &args.bundle,
            custody::evidence::sign::bundle::MAX_BUNDLE_SIZE as u64,
        )?
    } else {
        read_bounded(
            &args.bundle,
            custody::evidence::sign::bundle::MAX_BUNDLE_SIZE as u64,
        )?
    };
    if let Some(roots) = &args.ca_roots {
        return run_verify_pki(args, roots, &bundle_bytes).map(|o| (o, None));
    }
    let (root, origin) = match &args.trusted_root {
        Some(path) => {
            let bytes = read_bounded(
                path,
                custody::evidence::sign::verify::MAX_TRUSTED_ROOT_SIZE as u64,
            )?;
            let root = TrustedRoot::from_json(&bytes)
                .with_context(|| format!("cannot use trusted root {}", path.display()))?;
            (
                root,
                Some(custody::evidence::trust::file_origin(path, &bytes)),
            )
        }
        // Keyless bundles are checked against the default root (TUF, cached); key-signed
        // ones without --trusted-root skip the log and need none.
        None if args.key.is_none() => {
            let obtained = super::trust_cmds::default_root(args.offline)?;
            (obtained.root, Some(obtained.origin))
        }
        None => (TrustedRoot::empty(), None),
    };
    let policy = match (
        &args.key,
        &args.certificate_identity,
        &args.certificate_identity_regexp,
    ) {
        (Some(key), None, None) => {
            let key = load_public_key(key)?;
            let tlog = if args.trusted_root.is_none() || args.insecure_ignore_tlog {
                TlogRequirement::Skip
            } else {
                TlogRequirement::Required
            };
            Policy::Key(KeyPolicy { key, tlog })
        }
        (None, exact, regex) => {
            let subject = match (exact, regex) {
                (Some(id), None) => SubjectMatcher::Exact(id.clone()),
                (None, Some(re)) => SubjectMatcher::Regex(
                    regex::Regex::new(re)
                        .with_context(|| format!("invalid --certificate-identity-regexp {re:?}"))?,
                ),
                _ => {
                    bail!("give --key, or --certificate-identity or --certificate-identity-regexp")
                }
            };
            let Some(issuer) = args.certificate_oidc_issuer.clone() else {
                bail!("--certificate-oidc-issuer is required with a certificate identity");
            };
            Policy::Identity(IdentityPolicy { subject, issuer })
        }
        _ => bail!("--key cannot be combined with a certificate identity"),
    };
    let bundle = match Bundle::from_json(&bundle_bytes) {
        Ok(b) => b,
        Err(e) => {
            return Ok((
                VerifyOutcome::Refused(custody::evidence::sign::VerifyError::Bundle {
                    detail: e.to_string(),
                }),
                origin,
            ));
        }
    };
    let digest;
    let artifact = if args.artifact.starts_with("sha256:") {
        digest = args
            .artifact
            .parse::<Digest>()
            .with_context(|| format!("invalid digest {}", args.artifact))?;
        Artifact::Digest(&digest)
    } else {
        let path = Path::new(&args.artifact);
        if !path.is_file() {
            bail!("artifact {} is not a file", path.display());
        }
        Artifact::File(path)
    };
    match verify_bundle(&bundle, artifact, &policy, &root) {
        Ok(v) => Ok((
            match statement_refusal(&v, args.predicate_type.as_deref()) {
                Some(refusal) => VerifyOutcome::Refused(refusal),
                None => VerifyOutcome::Verified(v),
            },
            origin,
        )),
        Err(custody::evidence::sign::VerifyError::Read(e)) => {
            Err(e).context("cannot read the artifact")
        }
        Err(e) => Ok((VerifyOutcome::Refused(e), origin)),
    }
}

/// Where fetched CRLs are cached (`$XDG_CACHE_HOME/custody/crl`, else `~/.cache/custody/crl`).
fn crl_cache_dir() -> PathBuf {
    custody::foundation::cache_home(|k| std::env::var(k).ok())
        .unwrap_or_else(|| std::env::temp_dir().join("custody"))
        .join("crl")
}

/// `verify-bundle --ca-roots`: the bundle's certificate chain against the given PKI.
fn run_verify_pki(
    args: &VerifyBundleArgs,
    roots: &Path,
    bundle_bytes: &[u8],
) -> anyhow::Result<VerifyOutcome> {
    use custody::evidence::sign::pki;
    let certs = |p: &Path| -> anyhow::Result<Vec<Vec<u8>>> {
        let bytes = read_bounded(p, pki::MAX_PKI_FILE as u64)?;
        pki::parse_certificates(&bytes, &p.display().to_string())
            .with_context(|| format!("cannot use {}", p.display()))
    };
    let mut policy = pki::PkiPolicy {
        roots: certs(roots)?,
        intermediates: match &args.ca_intermediates {
            Some(p) => certs(p)?,
            None => Vec::new(),
        },
        subject: args.certificate_subject.clone(),
        san: args.certificate_identity.clone(),
        eku: args.certificate_eku.clone(),
        crls: Vec::new(),
        unknown_revocation: match args.revocation_unknown.as_str() {
            "allow" => pki::UnknownRevocation::Allow,
            _ => pki::UnknownRevocation::Fail,
        },
    };
    for path in &args.crl {
        let bytes = read_bounded(path, pki::MAX_PKI_FILE as u64)?;
        policy.crls.extend(
            pki::parse_crls(&bytes, &path.display().to_string())
                .with_context(|| format!("cannot use crl {}", path.display()))?,
        );
    }
    let bundle = match Bundle::from_json(bundle_bytes) {
        Ok(b) => b,
        Err(e) => {
            return Ok(VerifyOutcome::Refused(
                custody::evidence::sign::VerifyError::Bundle {
                    detail: e.to_string(),
                },
            ));
        }
    };
    let mut carried: Vec<Vec<u8>> = match bundle.material() {
        custody::evidence::sign::Material::CertificateChain(c) => c.clone(),
        custody::evidence::sign::Material::Certificate(c) => vec![c.clone()],
        custody::evidence::sign::Material::PublicKey { .. } => Vec::new(),
    };
    carried.extend(policy.intermediates.iter().cloned());
    let urls = pki::crl_urls(&carried);
    policy
        .crls
        .extend(pki::cached_crls(&urls, &crl_cache_dir(), args.offline));
    let digest;
    let artifact = if args.artifact.starts_with("sha256:") {
        digest = args
            .artifact
            .parse::<Digest>()
            .with_context(|| format!("invalid digest {}", args.artifact))?;
        Artifact::Digest(&digest)
    } else {
        Artifact::File(Path::new(&args.artifact))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    match pki::verify_bundle(&bundle, artifact, &policy, now) {
        Ok((verified, _)) => Ok(VerifyOutcome::Verified(verified)),
        Err(custody::evidence::sign::VerifyError::Read(e)) => {
            Err(e).context("cannot read the artifact")
        }
        Err(e) => Ok(VerifyOutcome::Refused(e)),
    }
}

/// Why a verified DSSE bundle still does not count: its statement is not a signature statement
/// (or not of the type asked for), or it carries a failing verdict (a VSA that says FAILED). A
/// message signature is a signature of the artifact by construction.
fn statement_refusal(
    v: &VerifiedBundle,
    expected: Option<&str>,
) -> Option<custody::evidence::sign::VerifyError> {
    let payload = v.statement.as_ref()?;
    let want = expected.unwrap_or(custody::evidence::attest::PREDICATE_COSIGN_SIGN_V1);
    let statement: Option<serde_json::Value> = serde_json::from_slice(payload).ok();
    let found = statement
        .as_ref()
        .and_then(|s| s.get("predicateType")?.as_str())
        .unwrap_or("none");
    if found != want {
        return Some(custody::evidence::sign::VerifyError::PredicateType {
            expected: want.to_string(),
            found: found.chars().take(200).collect(),
        });
    }
    let predicate = statement
        .as_ref()
        .and_then(|s| s.get("predicate"))
        .unwrap_or(&serde_json::Value::Null);
    custody::decisions::verify::vsa::verdict(found, predicate)
        .err()
        .map(|said| custody::evidence::sign::VerifyError::Verdict {
            predicate_type: found.to_string(),
            said,
        })
}

fn read_bounded(path: &Path, max: u64) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if len > max {
        bail!(
            "{} is {len} bytes, more than the {max} allowed",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Human-readable lines for a verification outcome.
pub fn describe(outcome: &VerifyOutcome) -> String {
    match outcome {
        VerifyOutcome::Verified(v) => {
            let who = match &v.signer {
                VerifiedSigner::Key { algorithm, hint } => format!("key {algorithm} {hint}"),
                VerifiedSigner::Certificate { identity, issuer } => {
                    format!("{identity} (issuer {issuer})")
                }
            };
            let c = &v.checks;
            let mut s = format!("verified: signed by {who}\n");
            s.push_str(&format!(
                "checks: signature {}, artifact {}, certificate chain {}, sct {}, transparency log {}, identity {}, verified times {}\n",
                c.signature, c.artifact_binding, c.certificate_chain, c.sct, c.tlog, c.identity, c.verified_times
            ));
            if let Some(t) = v.integrated_time {
                s.push_str(&format!("integrated time: {t}\n"));
            }
            s
        }
        VerifyOutcome::Refused(e) => format!("refused: {e}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody::evidence::sign::{KeySigner, sign_statement};

    /// Issue 10, finding 1: `verify-bundle FILE --key K` accepts a signature statement (or a
    /// message signature), not any statement whose subject is the file, unless told which
    /// predicate type to expect; a VSA asked for must still say PASSED.
    #[test]
    fn verify_bundle_accepts_only_signature_statements_unless_told_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("artifact.bin");
        std::fs::write(&file, b"the artifact").unwrap();
        let digest = Digest::of(b"the artifact");
        let key = custody::evidence::sign::keys::SigningKey::generate_p256().unwrap();
        let public = dir.path().join("key.pub");
        std::fs::write(&public, key.public_key().to_pem()).unwrap();
        let signer = KeySigner::new(key);
        let bundle_of = |name: &str, predicate_type: &str, predicate: serde_json::Value| {
            let statement = serde_json::to_vec(&serde_json::json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "artifact.bin", "digest": {"sha256": digest.hex()}}],
                "predicateType": predicate_type,
                "predicate": predicate,
            }))
            .unwrap();
            let path = dir.path().join(name);
            std::fs::write(
                &path,
                sign_statement(&statement, &signer).unwrap().to_json(),
            )
            .unwrap();
            path
        };
        let args = |bundle: PathBuf, predicate_type: Option<&str>| VerifyBundleArgs {
            artifact: file.to_string_lossy().into_owned(),
            bundle,
            certificate_identity: None,
            certificate_identity_regexp: None,
            certificate_oidc_issuer: None,
            key: Some(public.to_string_lossy().into_owned()),
            trusted_root: None,
            insecure_ignore_tlog: false,
            predicate_type: predicate_type.map(str::to_owned),
            offline: false,
            ca_roots: None,
            ca_intermediates: None,
            certificate_subject: None,
            certificate_eku: None,
            crl: Vec::new(),
            revocation_unknown: "fail".into(),
        };
        let signature = bundle_of(
            "sig.json",
            custody::evidence::attest::PREDICATE_COSIGN_SIGN_V1,
            serde_json::json!({}),
        );
        let vsa = custody::evidence::attest::PREDICATE_SLSA_VSA_V1;
        let failed = bundle_of(
            "failed.json",
            vsa,
            serde_json::json!({"verificationResult": "FAILED"}),
        );
        let passed = bundle_of(
            "passed.json",
            vsa,
            serde_json::json!({"verificationResult": "PASSED"}),
        );
        let run = |a| run_verify_bundle(&a).unwrap().0;
        assert!(matches!(
            run(args(signature.clone(), None)),
            VerifyOutcome::Verified(_)
        ));
        match run(args(failed.clone(), None)) {
            VerifyOutcome::Refused(custody::evidence::sign::VerifyError::PredicateType {
                expected,
                found,
            }) => {
                assert_eq!(
                    expected,
                    custody::evidence::attest::PREDICATE_COSIGN_SIGN_V1
                );
                assert_eq!(found, vsa);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            run(args(passed.clone(), None)),
            VerifyOutcome::Refused(custody::evidence::sign::VerifyError::PredicateType { .. })
        ));
        assert!(matches!(
            run(args(passed, Some(vsa))),
            VerifyOutcome::Verified(_)
        ));
        assert!(matches!(
            run(args(failed, Some(vsa))),
            VerifyOutcome::Refused(custody::evidence::sign::VerifyError::Verdict { .. })
        ));
        assert!(matches!(
            run(args(signature, Some(vsa))),
            VerifyOutcome::Refused(custody::evidence::sign::VerifyError::PredicateType { .. })
        ));
    }
}
