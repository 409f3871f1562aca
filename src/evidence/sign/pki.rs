//! Bring-your-own PKI: sign with a leaf certificate (and chain) for any key kind, and verify a
//! bundle's certificate chain against CA roots and intermediates named by the verifier, with
//! the expected subject, SAN and extended key usage, and revocation by CRL (files, or CRLs
//! cached from the certificates' distribution points). Issuer signatures: ECDSA P-256 with
//! SHA-256 (what the tests' openssl chains and most code-signing CAs use); others are refused
//! by name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::der::{Decode as _, Encode as _};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    BasicConstraints, CrlDistributionPoints, ExtendedKeyUsage, SubjectAltName,
};

use super::keys::PublicKey;
use super::verify::{Artifact, KeyPolicy, TlogRequirement, VerifiedBundle, VerifyError};
use super::{Bundle, KeySigner, Material};

/// Largest certificate, chain or CRL file read.
pub const MAX_PKI_FILE: usize = 4 * 1024 * 1024;
/// Longest path from leaf to root.
const MAX_DEPTH: usize = 8;
/// id-kp-codeSigning.
pub const EKU_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_EKU: &str = "2.5.29.37";
const OID_SAN: &str = "2.5.29.17";
const OID_CRL_DP: &str = "2.5.29.31";

/// Why a certificate, chain or CRL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PkiError {
    #[error("{what} is {size} bytes, more than the {max} allowed")]
    TooLarge {
        what: String,
        size: usize,
        max: usize,
    },
    #[error("{what} is not a pem or der {kind}")]
    Malformed { what: String, kind: &'static str },
    #[error("the certificate's public key is not the signing key's")]
    KeyMismatch,
    #[error("the bundle carries no certificate")]
    NoCertificate,
    #[error("no chain from {subject:?} to a trusted root")]
    Untrusted { subject: String },
    #[error("{subject:?} is not valid at {at} (valid {not_before} to {not_after}, unix seconds)")]
    Expired {
        subject: String,
        at: u64,
        not_before: u64,
        not_after: u64,
    },
    #[error("{subject:?} issues certificates but is not a ca (basicConstraints)")]
    NotCa { subject: String },
    #[error("the leaf subject is {found:?}, expected {expected:?}")]
    Subject { expected: String, found: String },
    #[error("the leaf has no subject alternative name {expected:?}; found {found:?}")]
    San {
        expected: String,
        found: Vec<String>,
    },
    #[error("the leaf lacks extended key usage {expected}; found {found:?}")]
    Eku {
        expected: String,
        found: Vec<String>,
    },
    #[error("{subject:?} (serial {serial}) is revoked by its issuer's crl")]
    Revoked { subject: String, serial: String },
    #[error("revocation status of {subject:?} is unknown: no current crl from its issuer")]
    RevocationUnknown { subject: String },
    #[error("issuer signature algorithm {oid} is not supported")]
    Algorithm { oid: String },
}

/// What to do when no current CRL covers a certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UnknownRevocation {
    /// Refuse: revocation must be proven (the safe default).
    #[default]
    Fail,
    /// Accept, and say so in the report.
    Allow,
}

/// The verifier's trust in a private PKI.
#[derive(Clone, Debug, Default)]
pub struct PkiPolicy {
    /// DER trust anchors.
    pub roots: Vec<Vec<u8>>,
    /// DER intermediates the verifier supplies (the bundle may carry others).
    pub intermediates: Vec<Vec<u8>>,
    /// Exact RFC 4514 subject of the leaf, e.g. `CN=release,O=Acme`.
    pub subject: Option<String>,
    /// A SAN the leaf must carry (email, URI or DNS name), exactly.
    pub san: Option<String>,
    /// The EKU OID the leaf must carry; default code signing.
    pub eku: Option<String>,
    /// DER CRLs (from files and the cache).
    pub crls: Vec<Vec<u8>>,
    pub unknown_revocation: UnknownRevocation,
}

/// What chain verification established.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainReport {
    /// Subjects from leaf to root.
    pub path: Vec<String>,
    pub sans: Vec<String>,
    /// Subjects whose revocation status no current CRL established (allowed by policy).
    pub revocation_unknown: Vec<String>,
}

/// A parsed certificate with its original DER.
struct Cert {
    der: Vec<u8>,
    cert: Certificate,
}

impl Cert {
    fn parse(der: &[u8], what: &str) -> Result<Cert, PkiError> {
        let cert = Certificate::from_der(der).map_err(|_| PkiError::Malformed {
            what: what.to_owned(),
            kind: "certificate",
        })?;
        Ok(Cert {
            der: der.to_vec(),
            cert,
        })
    }

    fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    fn self_issued(&self) -> bool {
        self.cert.tbs_certificate.subject == self.cert.tbs_certificate.issuer
    }

    fn public_key(&self) -> Result<PublicKey, PkiError> {
        let spki = self
            .cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|_| self.malformed())?;
        PublicKey::from_spki_der(&spki).map_err(|_| PkiError::Algorithm {
            oid: self
                .cert
                .tbs_certificate
                .subject_public_key_info
                .algorithm
                .oid
                .to_string(),
        })
    }

    fn malformed(&self) -> PkiError {
        PkiError::Malformed {
            what: self.subject(),
            kind: "certificate",
        }
    }

    fn extension<T: for<'a> x509_cert::der::Decode<'a>>(
        &self,
        oid: &str,
    ) -> Result<Option<T>, PkiError> {
        let Some(exts) = &self.cert.tbs_certificate.extensions else {
            return Ok(None);
        };
        match exts.iter().find(|e| e.extn_id.to_string() == oid) {
            Some(e) => T::from_der(e.extn_value.as_bytes())
                .map(Some)
                .map_err(|_| self.malformed()),
            None => Ok(None),
        }
    }

    /// Whether `issuer` signed this certificate.
    fn signed_by(&self, issuer: &Cert) -> Result<bool, PkiError> {
        if self.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
            return Ok(false);
        }
        let tbs = self
            .cert
            .tbs_certificate
            .to_der()
            .map_err(|_| self.malformed())?;
        verify_issuer_signature(
            &issuer.public_key()?,
            &self.cert.signature_algorithm.oid.to_string(),
            &tbs,
            self.cert.signature.raw_bytes(),
        )
    }

    fn check_time(&self, at: u64) -> Result<(), PkiError> {
        let v = &self.cert.tbs_certificate.validity;
        let (nb, na) = (
            v.not_before.to_unix_duration().as_secs(),
            v.not_after.to_unix_duration().as_secs(),
        );
        if at < nb || at > na {
            return Err(PkiError::Expired {
                subject: self.subject(),
                at,
                not_before: nb,
                not_after: na,
            });
        }
        Ok(())
    }
}

fn verify_issuer_signature(
    issuer: &PublicKey,
    algorithm: &str,
    signed: &[u8],
    signature: &[u8],
) -> Result<bool, PkiError> {
    if algorithm != OID_ECDSA_SHA256 || !matches!(issuer, PublicKey::EcdsaP256(_)) {
        return Err(PkiError::Algorithm {
            oid: algorithm.to_owned(),
        });
    }
    Ok(issuer.verify(signed, signature).is_ok())
}

/// Every `CERTIFICATE` in PEM text (or one DER certificate), bounded.
pub fn parse_certificates(bytes: &[u8], what: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    parse_blocks(bytes, what, "CERTIFICATE", "certificate")
}

/// Every `X509 CRL` in PEM text (or one DER CRL), bounded.
pub fn parse_crls(bytes: &[u8], what: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let crls = parse_blocks(bytes, what, "X509 CRL", "crl")?;
    for der in &crls {
        CertificateList::from_der(der).map_err(|_| PkiError::Malformed {
            what: what.to_owned(),
            kind: "crl",
        })?;
    }
    Ok(crls)
}

fn parse_blocks(
    bytes: &[u8],
    what: &str,
    label: &str,
    kind: &'static str,
) -> Result<Vec<Vec<u8>>, PkiError> {
    if bytes.len() > MAX_PKI_FILE {
        return Err(PkiError::TooLarge {
            what: what.to_owned(),
            size: bytes.len(),
            max: MAX_PKI_FILE,
        });
    }
    let malformed = || PkiError::Malformed {
        what: what.to_owned(),
        kind,
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(vec![bytes.to_vec()]);
    };
    if !text.contains("-----BEGIN") {
        return Err(malformed());
    }
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let stop = rest[start..].find(&end).ok_or_else(malformed)? + start + end.len();
        let (found, der) =
            pem_rfc7468::decode_vec(&rest.as_bytes()[start..stop]).map_err(|_| malformed())?;
        if found != label {
            return Err(malformed());
        }
        out.push(der);
        rest = &rest[stop..];
    }
    if out.is_empty() {
        return Err(malformed());
    }
    Ok(out)
}

/// Attaches a leaf certificate (and the chain above it) to `signer`, as cosign's
/// `--certificate`/`--certificate-chain` do: the leaf must hold the signer's public key, and
/// self-signed certificates (roots) never go in the bundle.
pub fn attach_certificates(
    signer: KeySigner,
    leaf: &[u8],
    chain: &[Vec<u8>],
) -> Result<KeySigner, PkiError> {
    let parsed = Cert::parse(leaf, "the signing certificate")?;
    if parsed.public_key().ok().as_ref() != Some(&signer.public_key()) {
        return Err(PkiError::KeyMismatch);
    }
    let mut certs = vec![leaf.to_vec()];
    for (i, der) in chain.iter().enumerate() {
        let c = Cert::parse(der, &format!("certificate {} of the chain", i + 1))?;
        if !c.self_issued() {
            certs.push(der.clone());
        }
    }
    Ok(signer.with_certificates(certs))
}

/// Verifies a bundle signed with a certificate from a private PKI: the chain from its leaf to
/// one of `policy.roots` (through the bundle's and the policy's intermediates), every
/// certificate valid at `at` (unix seconds), CAs marked as such, the leaf's subject, SAN and
/// EKU, revocation by CRL, and then the signature with the leaf's key.
pub fn verify_bundle(
    bundle: &Bundle,
    artifact: Artifact<'_>,
    policy: &PkiPolicy,
    at: u64,
) -> Result<(VerifiedBundle, ChainReport), VerifyError> {
    let pki = |e: PkiError| VerifyError::Certificate {
        detail: e.to_string(),
    };
    let (leaf, carried): (&[u8], &[Vec<u8>]) = match bundle.material() {
        Material::Certificate(der) => (der, &[]),
        Material::CertificateChain(chain) if !chain.is_empty() => (&chain[0], &chain[1..]),
        _ => {
            return Err(VerifyError::MaterialMismatch {
                expected: "certificate",
                found: "public key",
            });
        }
    };
    let report = verify_chain(leaf, carried, policy, at).map_err(pki)?;
    let leaf_key = Cert::parse(leaf, "the leaf")
        .and_then(|c| c.public_key())
        .map_err(pki)?;
    let mut verified = super::verify::verify_key_offline(
        bundle,
        artifact,
        &KeyPolicy {
            key: leaf_key,
            tlog: TlogRequirement::Skip,
        },
    )?;
    verified.checks.certificate_chain = true;
    verified.checks.identity = policy.subject.is_some() || policy.san.is_some();
    verified.signer = super::verify::VerifiedSigner::Certificate {
        identity: report
            .sans
            .first()
            .cloned()
            .unwrap_or_else(|| report.path[0].clone()),
        issuer: report.path.last().cloned().unwrap_or_default(),
    };
    Ok((verified, report))
}

/// The chain checks of [`verify_bundle`], without the signature.
pub fn verify_chain(
    leaf: &[u8],
    carried: &[Vec<u8>],
    policy: &PkiPolicy,
    at: u64,
) -> Result<ChainReport, PkiError> {
    let leaf = Cert::parse(leaf, "the leaf certificate")?;
    let roots = policy
        .roots
        .iter()
        .map(|d| Cert::parse(d, "a trusted root"))
        .collect::<Result<Vec<_>, _>>()?;
    // Self-signed certificates from the bundle are never anchors; only the policy's roots are.
    let mut intermediates = Vec::new();
    for (i, d) in carried.iter().chain(&policy.intermediates).enumerate() {
        let c = Cert::parse(d, &format!("intermediate {}", i + 1))?;
        if !c.self_issued() {
            intermediates.push(c);
        }
    }
    // Depth-first path building: the first path that reaches a root wins.
    let mut path = vec![&leaf];
    if !build_path(&mut path, &intermediates, &roots)? {
        return Err(PkiError::Untrusted {
            subject: leaf.subject(),
        });
    }
    for (i, cert) in path.iter().enumerate() {
        cert.check_time(at)?;
        if i > 0 {
            let ca = cert
                .extension::<BasicConstraints>(OID_BASIC_CONSTRAINTS)?
                .is_some_and(|b| b.ca);
            if !ca {
                return Err(PkiError::NotCa {
                    subject: cert.subject(),
                });
            }
        }
    }
    check_leaf(&leaf, policy)?;
    let mut revocation_unknown = Vec::new();
    for pair in path.windows(2) {
        let (cert, issuer) = (pair[0], pair[1]);
        match revocation(cert, issuer, &policy.crls, at)? {
            Revocation::Good => {}
            Revocation::Revoked => {
                return Err(PkiError::Revoked {
                    subject: cert.subject(),
                    serial: hex::encode(cert.cert.tbs_certificate.serial_number.as_bytes()),
                });
            }
            Revocation::Unknown => match policy.unknown_revocation {
                UnknownRevocation::Fail => {
                    return Err(PkiError::RevocationUnknown {
                        subject: cert.subject(),
                    });
                }
                UnknownRevocation::Allow => revocation_unknown.push(cert.subject()),
            },
        }
    }
    Ok(ChainReport {
        path: path.iter().map(|c| c.subject()).collect(),
        sans: sans(&leaf)?,
        revocation_unknown,
    })
}

fn build_path<'a>(
    path: &mut Vec<&'a Cert>,
    intermediates: &'a [Cert],
    roots: &'a [Cert],
) -> Result<bool, PkiError> {
    let current = *path.last().expect("the path starts with the leaf");
    for root in roots {
        if current.der == root.der || current.signed_by(root)? {
            if current.der != root.der {
                path.push(root);
            }
            return Ok(true);
        }
    }
    if path.len() >= MAX_DEPTH {
        return Ok(false);
    }
    for next in intermediates {
        if path.iter().any(|c| c.der == next.der) || !current.signed_by(next)? {
            continue;
        }
        path.push(next);
        if build_path(path, intermediates, roots)? {
            return Ok(true);
        }
        path.pop();
    }
    Ok(false)
}

fn sans(leaf: &Cert) -> Result<Vec<String>, PkiError> {
    Ok(leaf
        .extension::<SubjectAltName>(OID_SAN)?
        .map(|s| {
            s.0.iter()
                .filter_map(|n| match n {
                    GeneralName::Rfc822Name(v) | GeneralName::DnsName(v) => Some(v.to_string()),
                    GeneralName::UniformResourceIdentifier(v) => Some(v.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

fn check_leaf(leaf: &Cert, policy: &PkiPolicy) -> Result<(), PkiError> {
    if let Some(expected) = &policy.subject
        && *expected != leaf.subject()
    {
        return Err(PkiError::Subject {
            expected: expected.clone(),
            found: leaf.subject(),
        });
    }
    if let Some(expected) = &policy.san {
        let found = sans(leaf)?;
        if !found.contains(expected) {
            return Err(PkiError::San {
                expected: expected.clone(),
                found,
            });
        }
    }
    let expected = policy.eku.as_deref().unwrap_or(EKU_CODE_SIGNING);
    let found: Vec<String> = leaf
        .extension::<ExtendedKeyUsage>(OID_EKU)?
        .map(|e| e.0.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    if !found.iter().any(|o| o == expected) {
        return Err(PkiError::Eku {
            expected: expected.to_owned(),
            found,
        });
    }
    Ok(())
}

enum Revocation {
    Good,
    Revoked,
    Unknown,
}

/// `cert`'s status by the CRLs `issuer` signed that are current at `at`.
fn revocation(
    cert: &Cert,
    issuer: &Cert,
    crls: &[Vec<u8>],
    at: u64,
) -> Result<Revocation, PkiError> {
    let issuer_key = issuer.public_key()?;
    let mut covered = false;
    for der in crls {
        let Ok(crl) = CertificateList::from_der(der) else {
            continue;
        };
        let tbs = &crl.tbs_cert_list;
        if tbs.issuer != issuer.cert.tbs_certificate.subject {
            continue;
        }
        let Ok(signed) = tbs.to_der() else { continue };
        if !verify_issuer_signature(
            &issuer_key,
            &crl.signature_algorithm.oid.to_string(),
            &signed,
            crl.signature.raw_bytes(),
        )? {
            continue;
        }
        let this = tbs.this_update.to_unix_duration().as_secs();
        let next = tbs.next_update.map(|t| t.to_unix_duration().as_secs());
        // A CRL without nextUpdate, or past it, does not prove the present status.
        if this > at || next.is_none_or(|n| n < at) {
            continue;
        }
        let serial = &cert.cert.tbs_certificate.serial_number;
        if tbs
            .revoked_certificates
            .iter()
            .flatten()
            .any(|r| r.serial_number == *serial)
        {
            return Ok(Revocation::Revoked);
        }
        covered = true;
    }
    Ok(if covered {
        Revocation::Good
    } else {
        Revocation::Unknown
    })
}

/// The CRL distribution point URLs (`http://`) of every certificate in `ders`.
pub fn crl_urls(ders: &[Vec<u8>]) -> Vec<String> {
    let mut urls = Vec::new();
    for der in ders {
        let Ok(c) = Cert::parse(der, "certificate") else {
            continue;
        };
        let Ok(Some(points)) = c.extension::<CrlDistributionPoints>(OID_CRL_DP) else {
            continue;
        };
        for p in points.0 {
            if let Some(DistributionPointName::FullName(names)) = p.distribution_point {
                for n in names {
                    if let GeneralName::UniformResourceIdentifier(u) = n {
                        let u = u.to_string();
                        if u.starts_with("http://") && !urls.contains(&u) {
                            urls.push(u);
                        }
                    }
                }
            }
        }
    }
    urls
}

/// Where a CRL fetched from `url` is cached: `DIR/<hex sha256(url)>.crl`.
pub fn crl_cache_path(dir: &Path, url: &str) -> PathBuf {
    dir.join(format!(
        "{}.crl",
        crate::foundation::digest::Digest::of(url.as_bytes()).hex()
    ))
}

/// The CRLs for `urls`: fetched and cached when `offline` is false (a failed fetch falls back
/// to the cache), only the cache when true. Unusable answers are skipped: revocation is then
/// unknown, and the policy decides.
pub fn cached_crls(urls: &[String], cache: &Path, offline: bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for url in urls {
        let path = crl_cache_path(cache, url);
        if !offline && let Some(der) = fetch_crl(url) {
            let _ = std::fs::create_dir_all(cache);
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, &der).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
            out.push(der);
            continue;
        }
        if let Ok(bytes) = std::fs::read(&path)
            && let Ok(mut crls) = parse_crls(&bytes, url)
        {
            out.append(&mut crls);
        }
    }
    out
}

fn fetch_crl(url: &str) -> Option<Vec<u8>> {
    let client = crate::foundation::http::client().ok()?;
    let response = client
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = crate::foundation::http::read_body(response, MAX_PKI_FILE).ok()?;
    let crls = parse_crls(&body, url).ok()?;
    crls.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_inputs_are_refused_by_kind() {
        assert!(matches!(
            parse_certificates(b"not pem", "x"),
            Err(PkiError::Malformed {
                kind: "certificate",
                ..
            })
        ));
        assert!(matches!(
            parse_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA", "x"),
            Err(PkiError::Malformed { .. })
        ));
        assert!(matches!(
            parse_crls(
                b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
                "x"
            ),
            Err(PkiError::Malformed { kind: "crl", .. })
        ));
        assert!(matches!(
            parse_certificates(&vec![b'a'; MAX_PKI_FILE + 1], "x"),
            Err(PkiError::TooLarge { .. })
        ));
        assert!(matches!(
            verify_chain(&[0x30, 0x03, 1, 2, 3], &[], &PkiPolicy::default(), 0),
            Err(PkiError::Malformed { .. })
        ));
        // Binary that is no certificate never panics.
        for bytes in [&[][..], &[0x30][..], &[0xff; 40][..]] {
            let _ = verify_chain(bytes, &[bytes.to_vec()], &PkiPolicy::default(), 0);
        }
    }

    #[test]
    fn cache_paths_hash_the_url() {
        let p = crl_cache_path(Path::new("/c"), "http://ca.example/root.crl");
        assert!(p.starts_with("/c"));
        assert_eq!(p.extension().and_then(|e| e.to_str()), Some("crl"));
        assert_eq!(p.file_stem().map(|s| s.len()), Some(64));
    }
}
