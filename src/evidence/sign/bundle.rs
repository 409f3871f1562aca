//! Sigstore bundles: parse v0.1-v0.3 (protojson: int64 as string or number, bytes in std or
//! URL-safe base64) into a checked [`Bundle`], and write v0.3. Parsing is bounded and enforces
//! the structural rules sigstore-go enforces (one DSSE signature, one verification material
//! form, no certificate chain in v0.3, inclusion promise/proof per version).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer};

use super::dsse::{self, Envelope, WireEnvelope, decode_any_base64};

/// Largest bundle accepted; real bundles are a few KiB, attestations rarely above 1 MiB.
pub const MAX_BUNDLE_SIZE: usize = 16 * 1024 * 1024;
/// Media type written for new bundles (also the OCI artifactType of bundle referrers).
pub const MEDIA_TYPE_V0_3: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const LEGACY_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle+json;version=";
const MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle.v";
const MEDIA_TYPE_SUFFIX: &str = "+json";

/// Why a bundle was refused before any cryptography ran.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("bundle is {size} bytes, more than the {max} allowed")]
    TooLarge { size: usize, max: usize },
    #[error("bundle is not valid json: {reason}")]
    Json { reason: String },
    #[error("unknown bundle media type {found:?}")]
    UnknownMediaType { found: String },
    #[error("unsupported bundle version {found}, expected 0.1, 0.2 or 0.3")]
    UnsupportedVersion { found: String },
    #[error("{field} is not valid base64")]
    BadBase64 { field: &'static str },
    #[error("{field} is not a valid int64: {found}")]
    BadInteger { field: &'static str, found: String },
    #[error("{field} must not be negative, found {found}")]
    Negative { field: &'static str, found: i64 },
    #[error("bundle has neither dsseEnvelope nor messageSignature")]
    MissingContent,
    #[error("bundle has both dsseEnvelope and messageSignature")]
    ConflictingContent,
    #[error("dsse envelope must have exactly 1 signature, found {found}")]
    SignatureCount { found: usize },
    #[error("bundle has no verification material (publicKey, certificate or x509CertificateChain)")]
    MissingVerificationMaterial,
    #[error("bundle has more than one verification material form: {found:?}")]
    ConflictingVerificationMaterial { found: Vec<&'static str> },
    /// Keyless (Fulcio) bundles v0.3 carry the leaf only; a chain there is private PKI.
    #[error("bundle v0.3 must not carry x509CertificateChain for keyless signing; use certificate")]
    ChainForbidden,
    #[error("certificate chain is empty")]
    EmptyCertificateChain,
    #[error("certificate has no rawBytes")]
    EmptyCertificate,
    #[error("tlog entry {index} has no {field}, which bundle {version} requires")]
    TlogEntryIncomplete {
        index: usize,
        field: &'static str,
        version: &'static str,
    },
    #[error("message signature is empty")]
    EmptySignature,
    #[error(transparent)]
    Dsse(#[from] dsse::DsseError),
}

/// Bundle format version, from the media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BundleVersion {
    V0_1,
    V0_2,
    V0_3,
}

impl BundleVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            BundleVersion::V0_1 => "v0.1",
            BundleVersion::V0_2 => "v0.2",
            BundleVersion::V0_3 => "v0.3",
        }
    }

    /// Parses a bundle media type: `application/vnd.dev.sigstore.bundle.v0.3+json` or the older
    /// `application/vnd.dev.sigstore.bundle+json;version=0.x`.
    pub fn from_media_type(media_type: &str) -> Result<BundleVersion, BundleError> {
        let version = if let Some(v) = media_type.strip_prefix(LEGACY_MEDIA_TYPE_PREFIX) {
            v
        } else if let Some(v) = media_type
            .strip_prefix(MEDIA_TYPE_PREFIX)
            .and_then(|rest| rest.strip_suffix(MEDIA_TYPE_SUFFIX))
        {
            v
        } else {
            return Err(BundleError::UnknownMediaType {
                found: media_type.to_string(),
            });
        };
        match version {
            "0.1" => Ok(BundleVersion::V0_1),
            "0.2" => Ok(BundleVersion::V0_2),
            "0.3" => Ok(BundleVersion::V0_3),
            other => Err(BundleError::UnsupportedVersion {
                found: other.to_string(),
            }),
        }
    }
}

/// A bundle that passed the structural checks: only [`Bundle::from_json`] and [`Bundle::v0_3`]
/// make one, so every `Bundle` holds exactly one DSSE signature, one verification material form
/// and the tlog evidence its version requires. Cryptographic checks are `verify`'s job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    version: BundleVersion,
    /// The media type exactly as read (or written).
    media_type: String,
    material: Material,
    tlog_entries: Vec<TlogEntry>,
    /// DER `TimeStampResp` / `TimeStampToken` values from `rfc3161Timestamps`.
    rfc3161_timestamps: Vec<Vec<u8>>,
    content: Content,
}

/// What identifies the signer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Material {
    /// A key known out of band; the hint is opaque (cosign: base64(sha256(SPKI DER))).
    PublicKey { hint: Option<String> },
    /// A DER leaf certificate (Fulcio).
    Certificate(Vec<u8>),
    /// DER certificates, leaf first (v0.1/v0.2 only).
    CertificateChain(Vec<Vec<u8>>),
}

impl Material {
    /// The signing certificate, if any.
    pub fn leaf_certificate(&self) -> Option<&[u8]> {
        match self {
            Material::PublicKey { .. } => None,
            Material::Certificate(der) => Some(der),
            Material::CertificateChain(chain) => chain.first().map(Vec::as_slice),
        }
    }
}

/// What was signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// A DSSE envelope with exactly one signature.
    Dsse(Envelope),
    /// A signature over the artifact bytes, with the artifact's digest.
    MessageSignature {
        digest: Option<MessageDigest>,
        signature: Vec<u8>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageDigest {
    /// Protobuf enum name, e.g. `SHA2_256`.
    pub algorithm: String,
    pub digest: Vec<u8>,
}

/// A transparency log entry as carried in the bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogEntry {
    pub log_index: i64,
    pub log_id: Vec<u8>,
    pub kind: String,
    pub kind_version: String,
    pub integrated_time: i64,
    pub inclusion_promise: Option<Vec<u8>>,
    pub inclusion_proof: Option<InclusionProof>,
    pub canonicalized_body: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    pub log_index: i64,
    pub root_hash: Vec<u8>,
    pub tree_size: i64,
    pub hashes: Vec<Vec<u8>>,
    pub checkpoint: Option<String>,
}

// ---- wire format (protojson) ----

/// protojson int64: a JSON string or number.
fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Int64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(serde_json::Number),
        Str(String),
    }
    Ok(Option::<Raw>::deserialize(d)?.map(|raw| match raw {
        Raw::Num(n) => Int64(n.to_string()),
        Raw::Str(s) => Int64(s),
    }))
}

#[derive(Clone, Debug)]
struct Int64(String);

fn int64(field: &'static str, v: Option<Int64>) -> Result<i64, BundleError> {
    match v {
        None => Ok(0),
        Some(Int64(text)) => text
            .parse::<i64>()
            .map_err(|_| BundleError::BadInteger { field, found: text }),
    }
}

fn non_negative(field: &'static str, v: Option<Int64>) -> Result<i64, BundleError> {
    let n = int64(field, v)?;
    if n < 0 {
        return Err(BundleError::Negative { field, found: n });
    }
    Ok(n)
}

fn bytes(field: &'static str, text: Option<&str>) -> Result<Vec<u8>, BundleError> {
    match text {
        None => Ok(Vec::new()),
        Some(t) => decode_any_base64(t).ok_or(BundleError::BadBase64 { field }),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBundle {
    media_type: Option<String>,
    verification_material: Option<WireMaterial>,
    dsse_envelope: Option<WireEnvelope>,
    message_signature: Option<WireMessageSignature>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMaterial {
    public_key: Option<WirePublicKey>,
    certificate: Option<WireCert>,
    x509_certificate_chain: Option<WireChain>,
    #[serde(default)]
    tlog_entries: Vec<WireTlogEntry>,
    timestamp_verification_data: Option<WireTimestampData>,
}

#[derive(Deserialize)]
struct WirePublicKey {
    hint: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCert {
    raw_bytes: Option<String>,
}

#[derive(Deserialize)]
struct WireChain {
    #[serde(default)]
    certificates: Vec<WireCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireTimestampData {
    #[serde(default)]
    rfc3161_timestamps: Vec<WireTimestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireTimestamp {
    signed_timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireTlogEntry {
    #[serde(default, deserialize_with = "de_i64")]
    log_index: Option<Int64>,
    log_id: Option<WireLogId>,
    kind_version: Option<WireKindVersion>,
    #[serde(default, deserialize_with = "de_i64")]
    integrated_time: Option<Int64>,
    inclusion_promise: Option<WirePromise>,
    inclusion_proof: Option<WireProof>,
    canonicalized_body: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireLogId {
    key_id: Option<String>,
}

#[derive(Deserialize)]
struct WireKindVersion {
    kind: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePromise {
    signed_entry_timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireProof {
    #[serde(default, deserialize_with = "de_i64")]
    log_index: Option<Int64>,
    root_hash: Option<String>,
    #[serde(default, deserialize_with = "de_i64")]
    tree_size: Option<Int64>,
    #[serde(default)]
    hashes: Vec<String>,
    checkpoint: Option<WireCheckpoint>,
}

#[derive(Deserialize)]
struct WireCheckpoint {
    envelope: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessageSignature {
    message_digest: Option<WireDigest>,
    signature: Option<String>,
}

#[derive(Deserialize)]
struct WireDigest {
    algorithm: Option<String>,
    digest: Option<String>,
}

impl Bundle {
    /// A new v0.3 bundle, checked like a parsed one: exactly one DSSE signature, no certificate
    /// chain, an inclusion proof on every tlog entry.
    pub fn v0_3(
        material: Material,
        content: Content,
        tlog_entries: Vec<TlogEntry>,
        rfc3161_timestamps: Vec<Vec<u8>>,
    ) -> Result<Bundle, BundleError> {
        let version = BundleVersion::V0_3;
        check_content(&content)?;
        check_material(&material, version)?;
        check_tlog_entries(&tlog_entries, version)?;
        Ok(Bundle {
            version,
            media_type: MEDIA_TYPE_V0_3.to_string(),
            material,
            tlog_entries,
            rfc3161_timestamps,
            content,
        })
    }

    /// A v0.1 bundle, as a cosign legacy `.sig`/`.att` layer converts to: tlog entries carry
    /// an inclusion promise (the Rekor SET) and no proof; checked like a parsed one.
    pub fn v0_1(
        material: Material,
        content: Content,
        tlog_entries: Vec<TlogEntry>,
        rfc3161_timestamps: Vec<Vec<u8>>,
    ) -> Result<Bundle, BundleError> {
        let version = BundleVersion::V0_1;
        check_content(&content)?;
        check_material(&material, version)?;
        check_tlog_entries(&tlog_entries, version)?;
        Ok(Bundle {
            version,
            media_type: format!("{LEGACY_MEDIA_TYPE_PREFIX}0.1"),
            material,
            tlog_entries,
            rfc3161_timestamps,
            content,
        })
    }

    pub fn version(&self) -> BundleVersion {
        self.version
    }

    /// The media type exactly as read (or written).
    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    pub fn material(&self) -> &Material {
        &self.material
    }

    pub fn tlog_entries(&self) -> &[TlogEntry] {
        &self.tlog_entries
    }

    /// DER RFC 3161 timestamps (`rfc3161Timestamps[].signedTimestamp`).
    pub fn rfc3161_timestamps(&self) -> &[Vec<u8>] {
        &self.rfc3161_timestamps
    }

    pub fn content(&self) -> &Content {
        &self.content
    }

    /// Parses and checks a bundle. Never panics; refuses inputs above [`MAX_BUNDLE_SIZE`].
    pub fn from_json(input: &[u8]) -> Result<Bundle, BundleError> {
        if input.len() > MAX_BUNDLE_SIZE {
            return Err(BundleError::TooLarge {
                size: input.len(),
                max: MAX_BUNDLE_SIZE,
            });
        }
        let wire: WireBundle = serde_json::from_slice(input).map_err(|e| BundleError::Json {
            reason: e.to_string(),
        })?;
        let media_type = wire.media_type.unwrap_or_default();
        let version = BundleVersion::from_media_type(&media_type)?;

        let content = match (wire.dsse_envelope, wire.message_signature) {
            (Some(_), Some(_)) => return Err(BundleError::ConflictingContent),
            (None, None) => return Err(BundleError::MissingContent),
            (Some(env), None) => Content::Dsse(Envelope::from_wire(env)?),
            (None, Some(ms)) => {
                let signature = bytes("messageSignature.signature", ms.signature.as_deref())?;
                let digest = match ms.message_digest {
                    None => None,
                    Some(d) => {
                        let digest =
                            bytes("messageSignature.messageDigest.digest", d.digest.as_deref())?;
                        let algorithm = d.algorithm.unwrap_or_default();
                        // cosign writes `"messageDigest":{}` for Ed25519 keys, which sign the
                        // message itself: an empty digest is no digest.
                        if digest.is_empty() && algorithm.is_empty() {
                            None
                        } else {
                            Some(MessageDigest { algorithm, digest })
                        }
                    }
                };
                Content::MessageSignature { digest, signature }
            }
        };

        check_content(&content)?;
        let vm = wire
            .verification_material
            .ok_or(BundleError::MissingVerificationMaterial)?;
        let mut forms = Vec::new();
        if vm.public_key.is_some() {
            forms.push("publicKey");
        }
        if vm.certificate.is_some() {
            forms.push("certificate");
        }
        if vm.x509_certificate_chain.is_some() {
            forms.push("x509CertificateChain");
        }
        if forms.len() > 1 {
            return Err(BundleError::ConflictingVerificationMaterial { found: forms });
        }
        let material = if let Some(pk) = vm.public_key {
            Material::PublicKey { hint: pk.hint }
        } else if let Some(cert) = vm.certificate {
            Material::Certificate(bytes("certificate.rawBytes", cert.raw_bytes.as_deref())?)
        } else if let Some(chain) = vm.x509_certificate_chain {
            let certs = chain
                .certificates
                .iter()
                .map(|c| {
                    bytes(
                        "x509CertificateChain.certificates[].rawBytes",
                        c.raw_bytes.as_deref(),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            Material::CertificateChain(certs)
        } else {
            return Err(BundleError::MissingVerificationMaterial);
        };
        check_material(&material, version)?;

        let tlog_entries = vm
            .tlog_entries
            .into_iter()
            .map(tlog_entry)
            .collect::<Result<Vec<_>, _>>()?;
        check_tlog_entries(&tlog_entries, version)?;
        let rfc3161_timestamps = match vm.timestamp_verification_data {
            None => Vec::new(),
            Some(t) => t
                .rfc3161_timestamps
                .iter()
                .map(|ts| {
                    bytes(
                        "rfc3161Timestamps[].signedTimestamp",
                        ts.signed_timestamp.as_deref(),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?,
        };

        Ok(Bundle {
            version,
            media_type,
            material,
            tlog_entries,
            rfc3161_timestamps,
            content,
        })
    }

    /// Protojson of the bundle: int64 as strings, bytes as std padded base64, camelCase names.
    /// The media type is written as stored (v0.3 for bundles custody made).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_value()).expect("bundle json serialises")
    }

    /// Pretty-printed [`Bundle::to_json`], for files people read.
    pub fn to_json_pretty(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&self.to_value()).expect("bundle json serialises")
    }

    fn to_value(&self) -> serde_json::Value {
        use serde_json::{Map, Value, json};
        let b64 = |b: &[u8]| Value::String(STANDARD.encode(b));
        let mut vm = Map::new();
        match &self.material {
            Material::PublicKey { hint } => {
                let mut pk = Map::new();
                if let Some(h) = hint {
                    pk.insert("hint".into(), Value::String(h.clone()));
                }
                vm.insert("publicKey".into(), Value::Object(pk));
            }
            Material::Certificate(der) => {
                vm.insert("certificate".into(), json!({"rawBytes": b64(der)}));
            }
            Material::CertificateChain(chain) => {
                let certs: Vec<Value> = chain.iter().map(|c| json!({"rawBytes": b64(c)})).collect();
                vm.insert(
                    "x509CertificateChain".into(),
                    json!({"certificates": certs}),
                );
            }
        }
        let entries: Vec<Value> = self
            .tlog_entries
            .iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("logIndex".into(), Value::String(e.log_index.to_string()));
                m.insert("logId".into(), json!({"keyId": b64(&e.log_id)}));
                m.insert(
                    "kindVersion".into(),
                    json!({"kind": e.kind, "version": e.kind_version}),
                );
                m.insert(
                    "integratedTime".into(),
                    Value::String(e.integrated_time.to_string()),
                );
                if let Some(p) = &e.inclusion_promise {
                    m.insert(
                        "inclusionPromise".into(),
                        json!({"signedEntryTimestamp": b64(p)}),
                    );
                }
                if let Some(p) = &e.inclusion_proof {
                    let mut proof = Map::new();
                    proof.insert("logIndex".into(), Value::String(p.log_index.to_string()));
                    proof.insert("rootHash".into(), b64(&p.root_hash));
                    proof.insert("treeSize".into(), Value::String(p.tree_size.to_string()));
                    proof.insert(
                        "hashes".into(),
                        Value::Array(p.hashes.iter().map(|h| b64(h)).collect()),
                    );
                    if let Some(c) = &p.checkpoint {
                        proof.insert("checkpoint".into(), json!({"envelope": c}));
                    }
                    m.insert("inclusionProof".into(), Value::Object(proof));
                }
                m.insert("canonicalizedBody".into(), b64(&e.canonicalized_body));
                Value::Object(m)
            })
            .collect();
        vm.insert("tlogEntries".into(), Value::Array(entries));
        if !self.rfc3161_timestamps.is_empty() {
            let ts: Vec<Value> = self
                .rfc3161_timestamps
                .iter()
                .map(|t| json!({"signedTimestamp": b64(t)}))
                .collect();
            vm.insert(
                "timestampVerificationData".into(),
                json!({"rfc3161Timestamps": ts}),
            );
        }
        let mut top = Map::new();
        top.insert("mediaType".into(), Value::String(self.media_type.clone()));
        top.insert("verificationMaterial".into(), Value::Object(vm));
        match &self.content {
            Content::Dsse(env) => {
                let wire = serde_json::to_value(env.to_wire()).expect("envelope serialises");
                top.insert("dsseEnvelope".into(), wire);
            }
            Content::MessageSignature { digest, signature } => {
                let mut ms = Map::new();
                if let Some(d) = digest {
                    ms.insert(
                        "messageDigest".into(),
                        json!({"algorithm": d.algorithm, "digest": b64(&d.digest)}),
                    );
                }
                ms.insert("signature".into(), b64(signature));
                top.insert("messageSignature".into(), Value::Object(ms));
            }
        }
        Value::Object(top)
    }
}

fn check_content(content: &Content) -> Result<(), BundleError> {
    match content {
        Content::Dsse(env) if env.signatures.len() != 1 => Err(BundleError::SignatureCount {
            found: env.signatures.len(),
        }),
        Content::MessageSignature { signature, .. } if signature.is_empty() => {
            Err(BundleError::EmptySignature)
        }
        _ => Ok(()),
    }
}

/// A chain is allowed in every version: v0.1/v0.2 keyless bundles need one, and v0.3 bundles
/// signed with a private PKI carry one as cosign writes them (sigstore/cosign#4614); keyless
/// verification refuses a v0.3 chain itself.
fn check_material(material: &Material, _version: BundleVersion) -> Result<(), BundleError> {
    match material {
        Material::PublicKey { .. } => Ok(()),
        Material::Certificate(der) if der.is_empty() => Err(BundleError::EmptyCertificate),
        Material::Certificate(_) => Ok(()),
        Material::CertificateChain(certs) if certs.is_empty() => {
            Err(BundleError::EmptyCertificateChain)
        }
        Material::CertificateChain(certs) if certs.iter().any(Vec::is_empty) => {
            Err(BundleError::EmptyCertificate)
        }
        Material::CertificateChain(_) => Ok(()),
    }
}

fn check_tlog_entries(entries: &[TlogEntry], version: BundleVersion) -> Result<(), BundleError> {
    for (index, entry) in entries.iter().enumerate() {
        if version == BundleVersion::V0_1 && entry.inclusion_promise.is_none() {
            return Err(BundleError::TlogEntryIncomplete {
                index,
                field: "inclusionPromise",
                version: version.as_str(),
            });
        }
        if version >= BundleVersion::V0_2 && entry.inclusion_proof.is_none() {
            return Err(BundleError::TlogEntryIncomplete {
                index,
                field: "inclusionProof",
                version: version.as_str(),
            });
        }
    }
    Ok(())
}

impl TlogEntry {
    /// Parses one protojson `TransparencyLogEntry`, as Rekor v2 answers an entry request.
    pub fn from_json(input: &[u8]) -> Result<TlogEntry, BundleError> {
        if input.len() > MAX_BUNDLE_SIZE {
            return Err(BundleError::TooLarge {
                size: input.len(),
                max: MAX_BUNDLE_SIZE,
            });
        }
        let wire: WireTlogEntry = serde_json::from_slice(input).map_err(|e| BundleError::Json {
            reason: e.to_string(),
        })?;
        tlog_entry(wire)
    }
}

fn tlog_entry(e: WireTlogEntry) -> Result<TlogEntry, BundleError> {
    let inclusion_proof = match e.inclusion_proof {
        None => None,
        Some(p) => Some(InclusionProof {
            log_index: non_negative("inclusionProof.logIndex", p.log_index)?,
            root_hash: bytes("inclusionProof.rootHash", p.root_hash.as_deref())?,
            tree_size: non_negative("inclusionProof.treeSize", p.tree_size)?,
            hashes: p
                .hashes
                .iter()
                .map(|h| bytes("inclusionProof.hashes[]", Some(h)))
                .collect::<Result<Vec<_>, _>>()?,
            checkpoint: p.checkpoint.and_then(|c| c.envelope),
        }),
    };
    let kind_version = e.kind_version.unwrap_or(WireKindVersion {
        kind: None,
        version: None,
    });
    Ok(TlogEntry {
        log_index: non_negative("tlogEntries[].logIndex", e.log_index)?,
        log_id: bytes(
            "tlogEntries[].logId.keyId",
            e.log_id.as_ref().and_then(|l| l.key_id.as_deref()),
        )?,
        kind: kind_version.kind.unwrap_or_default(),
        kind_version: kind_version.version.unwrap_or_default(),
        integrated_time: non_negative("tlogEntries[].integratedTime", e.integrated_time)?,
        inclusion_promise: match e.inclusion_promise {
            None => None,
            Some(p) => Some(bytes(
                "inclusionPromise.signedEntryTimestamp",
                p.signed_entry_timestamp.as_deref(),
            )?),
        },
        inclusion_proof,
        canonicalized_body: bytes(
            "tlogEntries[].canonicalizedBody",
            e.canonicalized_body.as_deref(),
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn key_bundle() -> Value {
        json!({
            "mediaType": MEDIA_TYPE_V0_3,
            "verificationMaterial": {"publicKey": {"hint": "abc"}, "tlogEntries": []},
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": STANDARD.encode([1u8; 32])},
                "signature": STANDARD.encode([2u8; 70]),
            }
        })
    }

    fn dsse_bundle() -> Value {
        json!({
            "mediaType": MEDIA_TYPE_V0_3,
            "verificationMaterial": {"certificate": {"rawBytes": STANDARD.encode([3u8; 10])}},
            "dsseEnvelope": {
                "payload": STANDARD.encode(b"{}"),
                "payloadType": dsse::IN_TOTO_PAYLOAD_TYPE,
                "signatures": [{"sig": STANDARD.encode([4u8; 70])}],
            }
        })
    }

    fn parse(v: &Value) -> Result<Bundle, BundleError> {
        Bundle::from_json(&serde_json::to_vec(v).unwrap())
    }

    fn tlog(v: &mut Value, entry: Value) {
        v["verificationMaterial"]["tlogEntries"] = json!([entry]);
    }

    fn entry() -> Value {
        json!({
            "logIndex": "12", "logId": {"keyId": STANDARD.encode([5u8; 32])},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
            "integratedTime": 1700000000,
            "inclusionPromise": {"signedEntryTimestamp": STANDARD.encode([6u8; 8])},
            "inclusionProof": {"logIndex": 11, "rootHash": STANDARD.encode([7u8; 32]), "treeSize": "20",
                               "hashes": [STANDARD.encode([8u8; 32])], "checkpoint": {"envelope": "origin\n20\nroot\n\n— sig\n"}},
            "canonicalizedBody": STANDARD.encode(b"{\"kind\":\"hashedrekord\"}"),
        })
    }

    #[test]
    fn parses_and_round_trips_key_and_dsse_bundles() {
        for v in [key_bundle(), dsse_bundle()] {
            let b = parse(&v).unwrap();
            assert_eq!(b.version(), BundleVersion::V0_3);
            assert_eq!(Bundle::from_json(&b.to_json()).unwrap(), b);
        }
        let mut v = dsse_bundle();
        tlog(&mut v, entry());
        let b = parse(&v).unwrap();
        assert_eq!(b.tlog_entries()[0].log_index, 12);
        assert_eq!(b.tlog_entries()[0].integrated_time, 1_700_000_000);
        assert_eq!(
            b.tlog_entries()[0]
                .inclusion_proof
                .as_ref()
                .unwrap()
                .tree_size,
            20
        );
        let written: Value = serde_json::from_slice(&b.to_json()).unwrap();
        assert_eq!(
            written["verificationMaterial"]["tlogEntries"][0]["integratedTime"],
            "1700000000"
        );
        assert_eq!(Bundle::from_json(&b.to_json()).unwrap(), b);
    }

    #[test]
    fn accepts_all_media_types_up_to_v0_3() {
        for (mt, ver) in [
            (
                "application/vnd.dev.sigstore.bundle+json;version=0.1",
                BundleVersion::V0_1,
            ),
            (
                "application/vnd.dev.sigstore.bundle+json;version=0.2",
                BundleVersion::V0_2,
            ),
            (
                "application/vnd.dev.sigstore.bundle+json;version=0.3",
                BundleVersion::V0_3,
            ),
            (
                "application/vnd.dev.sigstore.bundle.v0.3+json",
                BundleVersion::V0_3,
            ),
        ] {
            assert_eq!(BundleVersion::from_media_type(mt), Ok(ver));
        }
    }

    #[test]
    fn rejects_v0_4_and_unknown_media_types() {
        let mut v = key_bundle();
        v["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.4+json".into();
        assert_eq!(
            parse(&v),
            Err(BundleError::UnsupportedVersion {
                found: "0.4".into()
            })
        );
        v["mediaType"] = "application/json".into();
        assert!(matches!(
            parse(&v),
            Err(BundleError::UnknownMediaType { .. })
        ));
        v.as_object_mut().unwrap().remove("mediaType");
        assert!(
            matches!(parse(&v), Err(BundleError::UnknownMediaType { found }) if found.is_empty())
        );
    }

    #[test]
    fn rejects_bad_base64() {
        let mut v = key_bundle();
        v["messageSignature"]["signature"] = "***".into();
        assert_eq!(
            parse(&v),
            Err(BundleError::BadBase64 {
                field: "messageSignature.signature"
            })
        );
        let mut v = dsse_bundle();
        v["dsseEnvelope"]["payload"] = "not base64!".into();
        assert_eq!(
            parse(&v),
            Err(BundleError::Dsse(dsse::DsseError::BadBase64 {
                field: "payload"
            }))
        );
    }

    #[test]
    fn rejects_empty_signature_and_certificate() {
        let mut v = key_bundle();
        v["messageSignature"]["signature"] = "".into();
        assert_eq!(parse(&v), Err(BundleError::EmptySignature));
        v["messageSignature"]
            .as_object_mut()
            .unwrap()
            .remove("signature");
        assert_eq!(parse(&v), Err(BundleError::EmptySignature));
        let mut v = dsse_bundle();
        v["verificationMaterial"]["certificate"] = json!({});
        assert_eq!(parse(&v), Err(BundleError::EmptyCertificate));
        v["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.2".into();
        v["verificationMaterial"] =
            json!({"x509CertificateChain": {"certificates": [{"rawBytes": ""}]}});
        assert_eq!(parse(&v), Err(BundleError::EmptyCertificate));
    }

    #[test]
    fn constructor_enforces_the_parse_rules() {
        let env = Envelope {
            payload: b"{}".to_vec(),
            payload_type: dsse::IN_TOTO_PAYLOAD_TYPE.into(),
            signatures: vec![],
        };
        let key = Material::PublicKey { hint: None };
        assert_eq!(
            Bundle::v0_3(key.clone(), Content::Dsse(env), vec![], vec![]),
            Err(BundleError::SignatureCount { found: 0 })
        );
        let sig = Content::MessageSignature {
            digest: None,
            signature: vec![1],
        };
        assert!(
            Bundle::v0_3(
                Material::CertificateChain(vec![vec![1]]),
                sig.clone(),
                vec![],
                vec![]
            )
            .is_ok()
        );
        let b = Bundle::v0_3(key, sig, vec![], vec![]).unwrap();
        assert_eq!(b.media_type(), MEDIA_TYPE_V0_3);
    }

    #[test]
    fn empty_message_digest_is_no_digest() {
        let mut v = key_bundle();
        v["messageSignature"]["messageDigest"] = json!({});
        let b = parse(&v).unwrap();
        assert!(matches!(
            b.content,
            Content::MessageSignature { digest: None, .. }
        ));
    }

    #[test]
    fn accepts_url_safe_base64() {
        let mut v = key_bundle();
        v["messageSignature"]["signature"] = "-_-_".into();
        let b = parse(&v).unwrap();
        assert!(
            matches!(b.content(), Content::MessageSignature { signature, .. } if signature == &[0xfb, 0xff, 0xbf])
        );
    }

    #[test]
    fn rejects_two_or_zero_dsse_signatures() {
        let mut v = dsse_bundle();
        let sig = v["dsseEnvelope"]["signatures"][0].clone();
        v["dsseEnvelope"]["signatures"] = json!([sig.clone(), sig]);
        assert_eq!(parse(&v), Err(BundleError::SignatureCount { found: 2 }));
        v["dsseEnvelope"]["signatures"] = json!([]);
        assert_eq!(parse(&v), Err(BundleError::SignatureCount { found: 0 }));
    }

    #[test]
    fn rejects_missing_or_conflicting_material_and_content() {
        let mut v = key_bundle();
        v.as_object_mut().unwrap().remove("verificationMaterial");
        assert_eq!(parse(&v), Err(BundleError::MissingVerificationMaterial));
        let mut v = key_bundle();
        v["verificationMaterial"] = json!({"tlogEntries": []});
        assert_eq!(parse(&v), Err(BundleError::MissingVerificationMaterial));
        let mut v = key_bundle();
        v["verificationMaterial"]["certificate"] = json!({"rawBytes": "AAAA"});
        assert!(matches!(
            parse(&v),
            Err(BundleError::ConflictingVerificationMaterial { .. })
        ));
        let mut v = key_bundle();
        v.as_object_mut().unwrap().remove("messageSignature");
        assert_eq!(parse(&v), Err(BundleError::MissingContent));
        let mut v = key_bundle();
        v["dsseEnvelope"] = dsse_bundle()["dsseEnvelope"].clone();
        assert_eq!(parse(&v), Err(BundleError::ConflictingContent));
    }

    #[test]
    fn chain_rules_per_version() {
        let chain = json!({"certificates": [{"rawBytes": "AAAA"}]});
        let mut v = dsse_bundle();
        v["verificationMaterial"] = json!({"x509CertificateChain": chain});
        assert!(
            matches!(parse(&v).unwrap().material(), Material::CertificateChain(c) if c.len() == 1)
        );
        v["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.2".into();
        assert!(
            matches!(parse(&v).unwrap().material(), Material::CertificateChain(c) if c.len() == 1)
        );
        v["verificationMaterial"] = json!({"x509CertificateChain": {"certificates": []}});
        assert_eq!(parse(&v), Err(BundleError::EmptyCertificateChain));
    }

    #[test]
    fn tlog_rules_per_version() {
        let mut v = dsse_bundle();
        let mut e = entry();
        e.as_object_mut().unwrap().remove("inclusionProof");
        tlog(&mut v, e.clone());
        assert_eq!(
            parse(&v),
            Err(BundleError::TlogEntryIncomplete {
                index: 0,
                field: "inclusionProof",
                version: "v0.3"
            })
        );
        v["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1".into();
        assert!(parse(&v).is_ok());
        let mut e = entry();
        e.as_object_mut().unwrap().remove("inclusionPromise");
        tlog(&mut v, e);
        assert_eq!(
            parse(&v),
            Err(BundleError::TlogEntryIncomplete {
                index: 0,
                field: "inclusionPromise",
                version: "v0.1"
            })
        );
    }

    #[test]
    fn rejects_negative_and_malformed_integers() {
        let mut v = dsse_bundle();
        let mut e = entry();
        e["logIndex"] = "-1".into();
        tlog(&mut v, e);
        assert_eq!(
            parse(&v),
            Err(BundleError::Negative {
                field: "tlogEntries[].logIndex",
                found: -1
            })
        );
        let mut e = entry();
        e["integratedTime"] = "soon".into();
        tlog(&mut v, e);
        assert!(matches!(
            parse(&v),
            Err(BundleError::BadInteger {
                field: "tlogEntries[].integratedTime",
                ..
            })
        ));
        let mut e = entry();
        e["logIndex"] = json!(1.5);
        tlog(&mut v, e);
        assert!(matches!(parse(&v), Err(BundleError::BadInteger { .. })));
    }

    #[test]
    fn rejects_huge_and_malformed_json() {
        let huge = vec![b' '; MAX_BUNDLE_SIZE + 1];
        assert_eq!(
            Bundle::from_json(&huge),
            Err(BundleError::TooLarge {
                size: MAX_BUNDLE_SIZE + 1,
                max: MAX_BUNDLE_SIZE
            })
        );
        assert!(matches!(
            Bundle::from_json(b"{\"mediaType\": \"app"),
            Err(BundleError::Json { .. })
        ));
        assert!(matches!(
            Bundle::from_json(b"[]"),
            Err(BundleError::Json { .. })
        ));
        // Deep nesting is refused by serde_json's recursion limit, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            Bundle::from_json(deep.as_bytes()),
            Err(BundleError::Json { .. })
        ));
    }
}
