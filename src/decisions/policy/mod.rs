//! Verification policy: which signers are trusted for which repositories, which attestations
//! must be present, and the rules provenance and SBOMs must meet.
//!
//! A policy file is YAML or JSON (`schemas/policy.schema.json`). Loading checks everything once
//! (keys parse, patterns and regular expressions compile, signer names resolve) and reports the
//! line of the problem; evaluation ([`rules`]) is pure functions over checked types.
//!
//! YAML is read with `serde-saphyr`: maintained, pure Rust, panic-free on malformed input, with
//! budgets against alias bombs and deep nesting, and errors that carry the line. (`serde_yaml`
//! is archived, `serde_yml` was archived after soundness reports.)

pub mod overrides;

/// The glob patterns moved down to [`crate::foundation::glob`]; this path stays for existing callers.
pub use crate::foundation::glob as pattern;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::evidence::sign::keys::PublicKey;
use crate::evidence::sign::kms::{KeyEnv, KeyRef};
use crate::evidence::sign::verify::{SubjectMatcher, TlogRequirement};
use crate::foundation::digest::Digest;
pub use crate::foundation::glob::Pattern;
use crate::storage::store::elsewhere::{AttestationsRepository, Source};
pub use overrides::{OverrideError, Overrides};

/// The only policy format version.
pub const POLICY_VERSION: u32 = 1;
/// Largest policy file read.
pub const MAX_POLICY_SIZE: usize = 1024 * 1024;
/// Largest key file a policy may name.
const MAX_KEY_FILE: u64 = 64 * 1024;
/// At most this many scopes, signers per scope, and patterns per list.
pub const MAX_ITEMS: usize = 256;

/// Why a policy could not be loaded. `line` is 1-based when known.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("policy is {size} bytes; the limit is {MAX_POLICY_SIZE}")]
    TooLarge { size: usize },
    #[error("{}: {message}", at(.line, .column))]
    Syntax {
        line: Option<u64>,
        column: Option<u64>,
        message: String,
    },
    #[error("{}: {message}", at(.line, &None))]
    Invalid { line: Option<u64>, message: String },
}

fn at(line: &Option<u64>, column: &Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}"),
        (Some(l), None) => format!("line {l}"),
        _ => "policy".to_string(),
    }
}

impl PolicyError {
    pub fn line(&self) -> Option<u64> {
        match self {
            PolicyError::Syntax { line, .. } | PolicyError::Invalid { line, .. } => *line,
            _ => None,
        }
    }

    /// For an unknown field, the known field nearest to it by edit distance, when it is close
    /// enough to be the one meant: `repositorys` → `repositories`.
    pub fn suggestion(&self) -> Option<String> {
        let PolicyError::Syntax { message, .. } = self else {
            return None;
        };
        did_you_mean(message)
    }
}

impl crate::foundation::hint::Hint for PolicyError {
    fn hint(&self) -> Option<String> {
        self.suggestion()
    }
}

/// Reads serde's "unknown field `x`, expected one of a, b" (YAML) or "... `a`, `b`" (JSON).
fn did_you_mean(message: &str) -> Option<String> {
    let rest = &message[message.find("unknown field `")? + "unknown field `".len()..];
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest
        .split_once("expected one of ")
        .map(|(_, e)| e)
        .or_else(|| rest.split_once("expected ").map(|(_, e)| e))?;
    let known = expected
        .split([',', ' '])
        .map(|w| w.trim_matches(|c: char| c == '`' || c == '.'))
        .filter(|w| !w.is_empty() && *w != "or" && *w != "and");
    let (distance, best) = known
        .map(|k| (edit_distance(unknown, k), k))
        .min_by_key(|(d, _)| *d)?;
    let allowed = (unknown.chars().count() / 3).max(2);
    (distance > 0 && distance <= allowed).then(|| format!("did you mean `{best}`?"))
}

/// Levenshtein distance over characters; field names are short, so O(n·m) is fine.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The policy as written (serde shape of the file).
pub mod file {
    use super::*;

    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct PolicyFile {
        pub version: u32,
        #[serde(default)]
        pub scopes: Vec<ScopeFile>,
    }

    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ScopeFile {
        #[serde(default)]
        pub name: Option<String>,
        pub repositories: Vec<String>,
        #[serde(default)]
        pub signers: Vec<SignerFile>,
        #[serde(default)]
        pub threshold: Option<u32>,
        #[serde(default)]
        pub key_transparency_log: Option<TlogFile>,
        #[serde(default)]
        pub attestations: Vec<AttestationFile>,
        #[serde(default)]
        pub signature_predicate_types: Vec<String>,
        #[serde(default)]
        pub provenance: Option<ProvenanceFile>,
        #[serde(default)]
        pub sbom: Option<SbomFile>,
        #[serde(default)]
        pub vulnerabilities: Option<VulnerabilitiesFile>,
        #[serde(default)]
        pub sources: Option<crate::decisions::sources::SourcesRules>,
        #[serde(default)]
        pub trust: Option<TrustFile>,
        #[serde(default)]
        pub attestations_repository: Option<String>,
    }

    /// `trust:`: the trusted root of this scope's keyless signers, a file or a TUF mirror.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TrustFile {
        #[serde(default)]
        pub trusted_root: Option<String>,
        #[serde(default)]
        pub tuf: Option<TufFile>,
    }

    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TufFile {
        pub mirror: String,
        pub root: String,
    }

    /// `vulnerabilities:`: [`crate::decisions::vuln::policy::VulnerabilityRules`] plus where the
    /// database is and who may sign VEX documents. Spelled out rather than flattened: serde
    /// cannot refuse unknown keys through `flatten`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct VulnerabilitiesFile {
        #[serde(default)]
        pub max_severity: Option<crate::decisions::vuln::Rating>,
        #[serde(default)]
        pub unknown_severity_as: Option<crate::decisions::vuln::Rating>,
        #[serde(default)]
        pub grace_period_days: Option<u32>,
        #[serde(default)]
        pub exceptions: Vec<crate::decisions::vuln::policy::Exception>,
        #[serde(default)]
        pub databases: Vec<String>,
        #[serde(default)]
        pub vex_signers: Option<Vec<String>>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum TlogFile {
        Required,
        Skip,
    }

    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SignerFile {
        pub name: String,
        #[serde(default)]
        pub key: Option<String>,
        #[serde(default)]
        pub issuer: Option<String>,
        #[serde(default)]
        pub subject: Option<String>,
        #[serde(default)]
        pub subject_regexp: Option<String>,
        /// Bring your own PKI: CA roots (path or inline PEM) the certificate must chain to.
        #[serde(default)]
        pub ca_roots: Option<String>,
        #[serde(default)]
        pub ca_intermediates: Option<String>,
        /// The leaf's exact RFC 4514 subject.
        #[serde(default)]
        pub certificate_subject: Option<String>,
        /// A SAN the leaf must carry.
        #[serde(default)]
        pub san: Option<String>,
        /// The EKU OID the leaf must carry (default code signing).
        #[serde(default)]
        pub eku: Option<String>,
        /// CRL files (PEM or DER), relative to the policy file.
        #[serde(default)]
        pub crls: Vec<String>,
        /// `fail` (default) or `allow` when no current CRL covers a certificate.
        #[serde(default)]
        pub revocation_unknown: Option<String>,
    }

    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AttestationFile {
        pub predicate_type: String,
        #[serde(default)]
        pub signers: Option<Vec<String>>,
        /// A VSA only: the `policy.uri` it must name.
        #[serde(default)]
        pub policy_uri: Option<String>,
        /// A VSA only: a glob its `resourceUri` must match.
        #[serde(default)]
        pub resource_uri: Option<String>,
    }

    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ProvenanceFile {
        #[serde(default)]
        pub required: Option<bool>,
        #[serde(default)]
        pub signers: Option<Vec<String>>,
        #[serde(default)]
        pub builders: Vec<BuilderFile>,
        #[serde(default)]
        pub source_repositories: Vec<String>,
        #[serde(default)]
        pub refs: Vec<String>,
        #[serde(default)]
        pub build_types: Vec<String>,
        #[serde(default)]
        pub require_commit: Option<bool>,
        #[serde(default)]
        pub allow_dirty: Option<bool>,
        #[serde(default)]
        pub min_build_level: Option<u8>,
        #[serde(default)]
        pub max_age: Option<String>,
    }

    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct BuilderFile {
        pub id: String,
        #[serde(default)]
        pub level: Option<u8>,
    }

    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SbomFile {
        #[serde(default)]
        pub required: Option<bool>,
        #[serde(default)]
        pub signers: Option<Vec<String>>,
    }
}

/// A checked policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub scopes: Vec<Scope>,
    /// Where it came from (a file path, or `flags`), and the digest of the file's bytes.
    pub source: String,
    pub digest: Option<Digest>,
}

/// Rules for the repositories that match `repositories`.
#[derive(Clone, Debug)]
pub struct Scope {
    pub name: String,
    pub repositories: Vec<Pattern>,
    pub signers: Vec<TrustedSigner>,
    /// Distinct trusted signers needed (one key counts once however often it signed).
    pub threshold: u32,
    /// Whether key-signed bundles must carry a verified transparency-log entry.
    pub key_tlog: TlogRequirement,
    pub attestations: Vec<RequiredAttestation>,
    /// Predicate types, besides cosign's signature statement, whose trusted statements count as
    /// signatures toward the threshold. Empty by default: an attestation is not a signature.
    pub signature_predicate_types: Vec<String>,
    pub provenance: Option<ProvenanceRules>,
    pub sbom: Option<SbomRules>,
    /// Known-vulnerability gate over the verified SBOM.
    pub vulnerabilities: Option<VulnerabilityGate>,
    /// Dependency-confusion rules over the verified SBOM.
    pub sources: Option<crate::decisions::sources::SourcesRules>,
    /// Where this scope's trusted root comes from; `None` = the default (public-good via TUF).
    pub trust: Option<ScopeTrust>,
    /// The repository this scope's signatures and attestations are kept in, when not beside
    /// the artifact (cosign's `COSIGN_REPOSITORY`).
    pub attestations_repository: Option<AttestationsRepository>,
}

/// A scope's own trust: a `trusted_root.json`, or a TUF mirror and its initial root (paths
/// resolved against the policy's folder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeTrust {
    TrustedRoot(PathBuf),
    Tuf { mirror: String, root: PathBuf },
}

/// The `vulnerabilities:` section, checked.
#[derive(Clone, Debug, Default)]
pub struct VulnerabilityGate {
    pub rules: crate::decisions::vuln::policy::VulnerabilityRules,
    /// OSV databases (folders, `all.zip` files), resolved against the policy's folder.
    /// `custody verify --db` replaces them.
    pub databases: Vec<PathBuf>,
    /// Names of the scope's signers whose OpenVEX attestations count; `None` = any of them.
    pub vex_signers: Option<Vec<String>>,
}

/// Someone whose signature counts.
#[derive(Clone, Debug)]
pub struct TrustedSigner {
    pub name: String,
    pub kind: SignerKind,
}

#[derive(Clone, Debug)]
pub enum SignerKind {
    Key(PublicKey),
    /// A certificate from a private PKI: chain, subject/SAN, EKU and CRLs.
    Pki(Box<crate::evidence::sign::pki::PkiPolicy>),
    /// A Fulcio certificate for this identity from this OIDC issuer.
    Identity {
        issuer: String,
        subject: SubjectMatcher,
    },
}

impl TrustedSigner {
    /// How the signer is shown in reports.
    pub fn describe(&self) -> String {
        match &self.kind {
            SignerKind::Key(k) => format!("{} (key {})", self.name, k.hint()),
            SignerKind::Pki(p) => format!(
                "{} (certificate from {} ca root(s){})",
                self.name,
                p.roots.len(),
                p.san
                    .as_deref()
                    .or(p.subject.as_deref())
                    .map(|w| format!(" for {w}"))
                    .unwrap_or_default()
            ),
            SignerKind::Identity { issuer, subject } => {
                format!("{} (identity {subject} from {issuer:?})", self.name)
            }
        }
    }
}

/// An attestation that must be present, verified and bound.
#[derive(Clone, Debug)]
pub struct RequiredAttestation {
    pub predicate_type: String,
    /// Names of the scope's signers allowed to sign it; `None` = any of them.
    pub signers: Option<Vec<String>>,
    /// For a VSA: the policy and resource it must name (it must say `PASSED` in any case).
    pub vsa: VsaExpectation,
}

/// What a required VSA must name besides `PASSED`.
#[derive(Clone, Debug, Default)]
pub struct VsaExpectation {
    /// `policy.uri` must equal this.
    pub policy_uri: Option<String>,
    /// `resourceUri` must match this glob.
    pub resource_uri: Option<Pattern>,
}

/// An allowed builder and, optionally, the build level the policy grants it.
#[derive(Clone, Debug)]
pub struct BuilderRule {
    pub id: Pattern,
    pub level: Option<u8>,
}

/// Rules for SLSA provenance.
#[derive(Clone, Debug, Default)]
pub struct ProvenanceRules {
    pub required: bool,
    pub signers: Option<Vec<String>>,
    pub builders: Vec<BuilderRule>,
    pub source_repositories: Vec<Pattern>,
    pub refs: Vec<Pattern>,
    pub build_types: Vec<Pattern>,
    pub require_commit: bool,
    pub allow_dirty: bool,
    pub min_build_level: u8,
    /// Seconds.
    pub max_age: Option<u64>,
}

/// Rules for SBOM attestations.
#[derive(Clone, Debug, Default)]
pub struct SbomRules {
    pub required: bool,
    pub signers: Option<Vec<String>>,
}

/// A starting policy with comments, written by `custody policy init`.
pub const STARTER_POLICY: &str = include_str!("starter.yaml");

impl Policy {
    /// Loads a policy file; key paths are relative to the file's folder.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        Policy::load_with_keys(path, &KeyEnv::default())
    }

    /// [`Policy::load`], opening KMS/HSM signer keys (`awskms://`, `pkcs11:`, …) with `env`.
    pub fn load_with_keys(path: &Path, env: &KeyEnv) -> Result<Policy, PolicyError> {
        let read_err = |source| PolicyError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        if meta.len() > MAX_POLICY_SIZE as u64 {
            return Err(PolicyError::TooLarge {
                size: meta.len() as usize,
            });
        }
        let bytes = std::fs::read(path).map_err(read_err)?;
        let format = if path.extension().is_some_and(|e| e == "json") {
            Format::Json
        } else {
            Format::Yaml
        };
        let base = path.parent().unwrap_or(Path::new("."));
        Policy::parse_with_keys(&bytes, format, base, &path.display().to_string(), env)
    }

    /// Parses policy text. `base` is the folder key paths are relative to.
    pub fn parse(
        bytes: &[u8],
        format: Format,
        base: &Path,
        source: &str,
    ) -> Result<Policy, PolicyError> {
        Policy::parse_with_keys(bytes, format, base, source, &KeyEnv::default())
    }

    /// [`Policy::parse`], opening KMS/HSM signer keys with `env`.
    pub fn parse_with_keys(
        bytes: &[u8],
        format: Format,
        base: &Path,
        source: &str,
        env: &KeyEnv,
    ) -> Result<Policy, PolicyError> {
        if bytes.len() > MAX_POLICY_SIZE {
            return Err(PolicyError::TooLarge { size: bytes.len() });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| PolicyError::Syntax {
            line: Some(
                1 + bytes[..e.valid_up_to()]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count() as u64,
            ),
            column: None,
            message: "policy is not utf-8".into(),
        })?;
        let raw: file::PolicyFile = match format {
            Format::Json => serde_json::from_str(text).map_err(|e| PolicyError::Syntax {
                line: Some(e.line() as u64),
                column: Some(e.column() as u64),
                message: e.to_string(),
            })?,
            Format::Yaml => serde_saphyr::from_str(text).map_err(|e| {
                let loc = e.location();
                PolicyError::Syntax {
                    line: loc.map(|l| l.line()),
                    column: loc.map(|l| l.column()),
                    message: first_line(&e.to_string()),
                }
            })?,
        };
        let mut policy = check(raw, text, &KeySource::Files(base, env))?;
        for scope in &mut policy.scopes {
            if let Some(v) = &mut scope.vulnerabilities {
                for db in &mut v.databases {
                    if db.is_relative() {
                        *db = base.join(&*db);
                    }
                }
            }
            match &mut scope.trust {
                Some(ScopeTrust::TrustedRoot(path) | ScopeTrust::Tuf { root: path, .. })
                    if path.is_relative() =>
                {
                    *path = base.join(&*path);
                }
                _ => {}
            }
        }
        policy.source = source.to_owned();
        policy.digest = Some(Digest::of(bytes));
        Ok(policy)
    }

    /// The scope for `repository` (`host/repo` or `oci:<dir>`): among scopes with a matching
    /// pattern, the one whose best pattern is most specific; the first one on a tie. A
    /// registry repository is matched in its canonical spelling whatever spelling it comes in
    /// (`LOCALHOST:5000/prod/app` is `localhost:5000/prod/app`), as the patterns are.
    pub fn scope_for(&self, repository: &str) -> Option<&Scope> {
        let canonical = crate::foundation::reference::canonical_repository(repository);
        let repository = canonical.as_deref().unwrap_or(repository);
        let mut best: Option<(&Scope, usize)> = None;
        for scope in &self.scopes {
            let Some(spec) = scope
                .repositories
                .iter()
                .filter(|p| p.matches(repository))
                .map(|p| p.specificity() + usize::from(p.is_literal()))
                .max()
            else {
                continue;
            };
            if best.is_none_or(|(_, s)| spec > s) {
                best = Some((scope, spec));
            }
        }
        best.map(|(s, _)| s)
    }
}

/// Policy text formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

/// Where a signer's `key:` value is read from.
pub enum KeySource<'a> {
    /// A path relative to this folder, inline PEM, or a KMS/HSM key opened with the env.
    Files(&'a Path, &'a KeyEnv),
    /// Inline PEM only (no file access).
    InlineOnly,
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}

/// The 1-based line of the first occurrence of `needle` in `text`, to point at a value.
fn line_of(text: &str, needle: &str) -> Option<u64> {
    if needle.is_empty() {
        return None;
    }
    let pos = text.find(needle)?;
    Some(1 + text[..pos].matches('\n').count() as u64)
}

/// Checks a policy as written into a [`Policy`]. `text` is used to point at lines.
pub fn check(
    raw: file::PolicyFile,
    text: &str,
    keys: &KeySource<'_>,
) -> Result<Policy, PolicyError> {
    let invalid = |needle: &str, message: String| PolicyError::Invalid {
        line: line_of(text, needle),
        message,
    };
    if raw.version != POLICY_VERSION {
        return Err(invalid(
            "version",
            format!(
                "policy version is {}; this custody reads version {POLICY_VERSION}",
                raw.version
            ),
        ));
    }
    if raw.scopes.is_empty() {
        return Err(invalid(
            "scopes",
            "policy has no scopes; nothing would ever verify".into(),
        ));
    }
    if raw.scopes.len() > MAX_ITEMS {
        return Err(invalid("scopes", format!("more than {MAX_ITEMS} scopes")));
    }
    let mut scopes = Vec::new();
    for (i, s) in raw.scopes.into_iter().enumerate() {
        scopes.push(check_scope(s, i, text, keys)?);
    }
    Ok(Policy {
        scopes,
        source: String::new(),
        digest: None,
    })
}

fn patterns(list: &[String], text: &str, what: &str) -> Result<Vec<Pattern>, PolicyError> {
    patterns_with(list, text, what, Pattern::parse)
}

fn patterns_with(
    list: &[String],
    text: &str,
    what: &str,
    parse: fn(&str) -> Result<Pattern, pattern::PatternError>,
) -> Result<Vec<Pattern>, PolicyError> {
    if list.len() > MAX_ITEMS {
        return Err(PolicyError::Invalid {
            line: line_of(text, what),
            message: format!("{what}: more than {MAX_ITEMS} entries"),
        });
    }
    list.iter()
        .map(|p| {
            parse(p).map_err(|e| PolicyError::Invalid {
                line: line_of(text, p),
                message: format!("{what}: {e}"),
            })
        })
        .collect()
}

fn check_scope(
    s: file::ScopeFile,
    index: usize,
    text: &str,
    keys: &KeySource<'_>,
) -> Result<Scope, PolicyError> {
    let name = s
        .name
        .clone()
        .unwrap_or_else(|| format!("scope {}", index + 1));
    let mut at = ScopeCheck {
        name: &name,
        text,
        names: BTreeSet::new(),
    };
    if s.repositories.is_empty() {
        return Err(at.invalid(
            "repositories",
            "`repositories` is empty; use [\"**\"] to match everything".into(),
        ));
    }
    let repositories = patterns_with(&s.repositories, text, "repositories", Pattern::repository)?;
    let signers = at.signers(s.signers, keys)?;
    let threshold = s.threshold.unwrap_or(1);
    if threshold == 0 {
        return Err(at.invalid(
            "threshold",
            "threshold is 0; at least one trusted signature is always required".into(),
        ));
    }
    let attestations = at.attestations(s.attestations)?;
    at.signature_predicate_types(&s.signature_predicate_types)?;
    let provenance = s.provenance.map(|p| at.provenance(p)).transpose()?;
    let sbom = match s.sbom {
        None => None,
        Some(b) => {
            at.known(&b.signers, "sbom.signers")?;
            Some(SbomRules {
                required: b.required.unwrap_or(true),
                signers: b.signers,
            })
        }
    };
    let vulnerabilities = s
        .vulnerabilities
        .map(|v| at.vulnerabilities(v))
        .transpose()?;
    let sources = match s.sources {
        None => None,
        Some(rules) => {
            rules
                .check()
                .map_err(|e| at.invalid("sources", e.to_string()))?;
            Some(rules)
        }
    };
    let trust = s.trust.map(|t| at.trust(t)).transpose()?;
    let attestations_repository = s
        .attestations_repository
        .map(|r| {
            let source = Source::Policy {
                scope: name.clone(),
            };
            AttestationsRepository::parse(&r, source)
                .map_err(|e| at.invalid("attestations_repository", e.to_string()))
        })
        .transpose()?;
    Ok(Scope {
        name,
        repositories,
        signers,
        threshold,
        key_tlog: match s.key_transparency_log {
            Some(file::TlogFile::Required) => TlogRequirement::Required,
            Some(file::TlogFile::Skip) | None => TlogRequirement::Skip,
        },
        attestations,
        signature_predicate_types: s.signature_predicate_types,
        provenance,
        sbom,
        vulnerabilities,
        sources,
        trust,
        attestations_repository,
    })
}

/// Checking one scope of a policy file: its name for messages, the file's text for lines, and
/// the signer names read so far (which the rules may refer to).
struct ScopeCheck<'a> {
    name: &'a str,
    text: &'a str,
    names: BTreeSet<String>,
}

impl ScopeCheck<'_> {
    /// An error at the line of `needle`, naming the scope.
    fn invalid(&self, needle: &str, message: String) -> PolicyError {
        PolicyError::Invalid {
            line: line_of(self.text, needle),
            message: format!("scope {:?}: {message}", self.name),
        }
    }

    /// Every signer a rule names must be one of the scope's signers.
    fn known(&self, list: &Option<Vec<String>>, what: &str) -> Result<(), PolicyError> {
        for n in list.iter().flatten() {
            if !self.names.contains(n) {
                return Err(self.invalid(
                    n,
                    format!(
                        "{what} names signer {n:?}, which is not among this scope's signers {:?}",
                        self.names
                    ),
                ));
            }
        }
        Ok(())
    }

    fn signers(
        &mut self,
        list: Vec<file::SignerFile>,
        keys: &KeySource<'_>,
    ) -> Result<Vec<TrustedSigner>, PolicyError> {
        if list.len() > MAX_ITEMS {
            return Err(self.invalid("signers", format!("more than {MAX_ITEMS} signers")));
        }
        let mut signers = Vec::new();
        for signer in list {
            if !self.names.insert(signer.name.clone()) {
                return Err(self.invalid(
                    &signer.name,
                    format!("signer name {:?} is used twice", signer.name),
                ));
            }
            signers.push(check_signer(signer, self.text, keys).map_err(|m| {
                PolicyError::Invalid {
                    line: m.0,
                    message: format!("scope {:?}: {}", self.name, m.1),
                }
            })?);
        }
        Ok(signers)
    }

    fn attestations(
        &self,
        list: Vec<file::AttestationFile>,
    ) -> Result<Vec<RequiredAttestation>, PolicyError> {
        let mut attestations = Vec::new();
        for a in list {
            self.known(&a.signers, "attestations.signers")?;
            if a.predicate_type.is_empty() {
                return Err(self.invalid("predicate_type", "predicate_type is empty".into()));
            }
            let expects = a.policy_uri.is_some() || a.resource_uri.is_some();
            if expects && !crate::evidence::attest::is_vsa(&a.predicate_type) {
                return Err(self.invalid(
                    &a.predicate_type,
                    format!(
                        "attestation {:?}: policy_uri and resource_uri apply to a verification summary ({}) only",
                        a.predicate_type,
                        crate::evidence::attest::VSA_PREDICATE_TYPES.join(" or ")
                    ),
                ));
            }
            let resource_uri = match &a.resource_uri {
                Some(p) => Some(Pattern::parse(p).map_err(|e| self.invalid(p, e.to_string()))?),
                None => None,
            };
            attestations.push(RequiredAttestation {
                predicate_type: a.predicate_type,
                signers: a.signers,
                vsa: VsaExpectation {
                    policy_uri: a.policy_uri,
                    resource_uri,
                },
            });
        }
        Ok(attestations)
    }

    fn signature_predicate_types(&self, list: &[String]) -> Result<(), PolicyError> {
        if list.len() > MAX_ITEMS {
            return Err(self.invalid(
                "signature_predicate_types",
                format!("more than {MAX_ITEMS} signature_predicate_types"),
            ));
        }
        for t in list {
            if t.is_empty() {
                return Err(self.invalid(
                    "signature_predicate_types",
                    "signature_predicate_types lists an empty predicate type".into(),
                ));
            }
            if crate::evidence::attest::is_vsa(t) {
                return Err(self.invalid(
                    t,
                    format!(
                        "signature_predicate_types lists {t:?}: a verification summary says whether something else verified, it is not a signature"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn provenance(&self, p: file::ProvenanceFile) -> Result<ProvenanceRules, PolicyError> {
        self.known(&p.signers, "provenance.signers")?;
        let mut builders = Vec::new();
        for b in &p.builders {
            if b.level.is_some_and(|l| l > 3) {
                return Err(
                    self.invalid(&b.id, format!("builder {:?}: level must be 0 to 3", b.id))
                );
            }
            builders.push(BuilderRule {
                id: Pattern::parse(&b.id).map_err(|e| self.invalid(&b.id, e.to_string()))?,
                level: b.level,
            });
        }
        let min_build_level = p.min_build_level.unwrap_or(0);
        if min_build_level > 3 {
            return Err(self.invalid(
                "min_build_level",
                format!("min_build_level is {min_build_level}; SLSA build levels are 0 to 3"),
            ));
        }
        let max_age = match &p.max_age {
            None => None,
            Some(text_age) => Some(
                crate::foundation::time::parse_duration(text_age)
                    .map_err(|e| self.invalid(text_age, format!("max_age: {e}")))?,
            ),
        };
        let text = self.text;
        Ok(ProvenanceRules {
            required: p.required.unwrap_or(true),
            signers: p.signers,
            builders,
            source_repositories: patterns(&p.source_repositories, text, "source_repositories")?,
            refs: patterns(&p.refs, text, "refs")?,
            build_types: patterns(&p.build_types, text, "build_types")?,
            require_commit: p.require_commit.unwrap_or(true),
            allow_dirty: p.allow_dirty.unwrap_or(false),
            min_build_level,
            max_age,
        })
    }

    fn vulnerabilities(
        &self,
        v: file::VulnerabilitiesFile,
    ) -> Result<VulnerabilityGate, PolicyError> {
        self.known(&v.vex_signers, "vulnerabilities.vex_signers")?;
        if v.exceptions.len() > MAX_ITEMS || v.databases.len() > MAX_ITEMS {
            return Err(self.invalid(
                "vulnerabilities",
                format!("vulnerabilities: more than {MAX_ITEMS} exceptions or databases"),
            ));
        }
        for e in &v.exceptions {
            if e.reason.trim().is_empty() {
                return Err(self.invalid(
                    e.id.as_str(),
                    format!(
                        "exception {}: the reason is empty; say why it is accepted",
                        e.id
                    ),
                ));
            }
        }
        let defaults = crate::decisions::vuln::policy::VulnerabilityRules::default();
        Ok(VulnerabilityGate {
            rules: crate::decisions::vuln::policy::VulnerabilityRules {
                max_severity: v.max_severity.unwrap_or(defaults.max_severity),
                unknown_severity_as: v
                    .unknown_severity_as
                    .unwrap_or(defaults.unknown_severity_as),
                grace_period_days: v.grace_period_days,
                exceptions: v.exceptions,
            },
            databases: v.databases.iter().map(PathBuf::from).collect(),
            vex_signers: v.vex_signers,
        })
    }

    fn trust(&self, t: file::TrustFile) -> Result<ScopeTrust, PolicyError> {
        match t {
            file::TrustFile {
                trusted_root: Some(path),
                tuf: None,
            } => Ok(ScopeTrust::TrustedRoot(PathBuf::from(path))),
            file::TrustFile {
                trusted_root: None,
                tuf: Some(t),
            } => {
                if !(t.mirror.starts_with("https://") || t.mirror.starts_with("http://")) {
                    return Err(self.invalid(
                        "mirror",
                        format!("trust.tuf.mirror {:?} is not an http(s) URL", t.mirror),
                    ));
                }
                Ok(ScopeTrust::Tuf {
                    mirror: t.mirror,
                    root: PathBuf::from(t.root),
                })
            }
            _ => Err(self.invalid(
                "trust",
                "trust: give exactly one of trusted_root or tuf".into(),
            )),
        }
    }
}

/// Checks one signer; the error carries its line.
pub fn check_signer(
    s: file::SignerFile,
    text: &str,
    keys: &KeySource<'_>,
) -> Result<TrustedSigner, (Option<u64>, String)> {
    let line = line_of(text, &format!("name: {}", s.name))
        .or_else(|| line_of(text, &format!("\"{}\"", s.name)))
        .or_else(|| line_of(text, &s.name));
    let err = |m: String| (line, format!("signer {:?}: {m}", s.name));
    if s.name.is_empty() {
        return Err((line_of(text, "name"), "a signer needs a name".into()));
    }
    if let Some(roots) = &s.ca_roots {
        return check_pki_signer(&s, roots, keys)
            .map(|p| TrustedSigner {
                name: s.name.clone(),
                kind: SignerKind::Pki(Box::new(p)),
            })
            .map_err(err);
    }
    if s.ca_intermediates.is_some()
        || s.certificate_subject.is_some()
        || s.san.is_some()
        || s.eku.is_some()
        || !s.crls.is_empty()
        || s.revocation_unknown.is_some()
    {
        return Err(err(
            "ca_intermediates, certificate_subject, san, eku, crls and revocation_unknown need ca_roots"
                .into(),
        ));
    }
    let kind = match (&s.key, &s.issuer, &s.subject, &s.subject_regexp) {
        (Some(key), None, None, None) => {
            let remote = KeyRef::parse(key).ok().filter(KeyRef::is_remote);
            let pem = if let Some(remote) = remote {
                let KeySource::Files(_, env) = keys else {
                    return Err(err(format!(
                        "key {remote} is a KMS/HSM key, but only inline PEM keys are allowed here"
                    )));
                };
                crate::evidence::sign::kms::public_key(&remote, env)
                    .map_err(|e| err(format!("key {remote} cannot be read: {e}")))?
                    .to_pem()
            } else if key.trim_start().starts_with("-----BEGIN") {
                key.clone()
            } else {
                match keys {
                    KeySource::InlineOnly => {
                        return Err(err(format!(
                            "key {key:?} is a path, but only inline PEM keys are allowed here"
                        )));
                    }
                    KeySource::Files(base, _) => read_key_file(&base.join(key)).map_err(&err)?,
                }
            };
            if pem.contains("CERTIFICATE") {
                // A certificate is not a key: trusting its key would skip every certificate
                // check (cosign GHSA-fx35-mq7g-6g98).
                return Err(err(
                    "key is a certificate; trust certificates by issuer and subject instead".into(),
                ));
            }
            SignerKind::Key(
                PublicKey::from_pem(&pem).map_err(|e| err(format!("key does not load: {e}")))?,
            )
        }
        (None, Some(issuer), subject, regexp) => {
            let subject = match (subject, regexp) {
                (Some(s), None) => SubjectMatcher::Exact(s.clone()),
                (None, Some(r)) => SubjectMatcher::Regex(
                    regex::RegexBuilder::new(r)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| err(format!("subject_regexp does not compile: {e}")))?,
                ),
                _ => {
                    return Err(err(
                        "an identity signer needs exactly one of subject or subject_regexp".into(),
                    ));
                }
            };
            if issuer.is_empty() {
                return Err(err("issuer is empty".into()));
            }
            SignerKind::Identity {
                issuer: issuer.clone(),
                subject,
            }
        }
        _ => {
            return Err(err(
                "give either key, or issuer with subject or subject_regexp".into(),
            ));
        }
    };
    Ok(TrustedSigner { name: s.name, kind })
}

/// A PKI signer: roots and intermediates (path or inline PEM), CRL files.
fn check_pki_signer(
    s: &file::SignerFile,
    roots: &str,
    keys: &KeySource<'_>,
) -> Result<crate::evidence::sign::pki::PkiPolicy, String> {
    use crate::evidence::sign::pki;
    if s.key.is_some() || s.issuer.is_some() || s.subject.is_some() || s.subject_regexp.is_some() {
        return Err("a ca_roots signer takes no key, issuer, subject or subject_regexp".into());
    }
    let read = |value: &str| -> Result<Vec<u8>, String> {
        if value.trim_start().starts_with("-----BEGIN") {
            return Ok(value.as_bytes().to_vec());
        }
        match keys {
            KeySource::InlineOnly => Err(format!(
                "{value:?} is a path, but only inline PEM is allowed here"
            )),
            KeySource::Files(base, _) => {
                let path = base.join(value);
                let meta = std::fs::metadata(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                if meta.len() > pki::MAX_PKI_FILE as u64 {
                    return Err(format!("{} is too large", path.display()));
                }
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
            }
        }
    };
    let certs =
        |value: &str| pki::parse_certificates(&read(value)?, value).map_err(|e| e.to_string());
    let mut crls = Vec::new();
    for c in &s.crls {
        crls.extend(pki::parse_crls(&read(c)?, c).map_err(|e| e.to_string())?);
    }
    Ok(pki::PkiPolicy {
        roots: certs(roots)?,
        intermediates: match &s.ca_intermediates {
            Some(i) => certs(i)?,
            None => Vec::new(),
        },
        subject: s.certificate_subject.clone(),
        san: s.san.clone(),
        eku: s.eku.clone(),
        crls,
        unknown_revocation: match s.revocation_unknown.as_deref() {
            None | Some("fail") => pki::UnknownRevocation::Fail,
            Some("allow") => pki::UnknownRevocation::Allow,
            Some(other) => {
                return Err(format!(
                    "revocation_unknown is {other:?}; expected \"fail\" or \"allow\""
                ));
            }
        },
    })
}

fn read_key_file(path: &Path) -> Result<String, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_KEY_FILE {
        return Err(format!(
            "{} is {} bytes; a key file is at most {MAX_KEY_FILE}",
            path.display(),
            meta.len()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

mod sources_scope;
pub use sources_scope::{ScopeChoice, SourcesScopeError};

#[cfg(test)]
mod tests;
