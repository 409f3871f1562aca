//! Entry points for the `cargo fuzz` targets under `fuzz/`: one function per parser of untrusted
//! input, taking raw bytes. Not part of the supported API; results are dropped, and the only
//! property checked besides "never panics" is that what parses once parses again the same way.

use std::path::Path;
use std::str::FromStr;

use crate::evidence::sbom::{self, Lock};
use crate::foundation::digest::Digest;
use crate::foundation::oci::{self, Manifest};
use crate::foundation::reference::{Reference, Tag};

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Image references, tags and digests as typed on a command line or found in a policy.
pub fn reference(data: &[u8]) {
    let input = text(data);
    if let Ok(reference) = Reference::from_str(&input) {
        let shown = reference.to_string();
        let again = Reference::from_str(&shown)
            .unwrap_or_else(|e| panic!("{shown:?} (from {input:?}) does not parse again: {e}"));
        assert_eq!(again.to_string(), shown, "display is not stable");
        let _ = reference.repository();
        let _ = reference.registry();
    }
    let _ = Tag::from_str(&input);
    if let Ok(digest) = Digest::from_str(&input) {
        let _ = digest.fallback_tag();
    }
    let _ = crate::decisions::policy::pattern::Pattern::parse(&input);
}

/// Manifests and indexes as served by a registry, with and without a served media type.
pub fn manifest(data: &[u8]) {
    let served = data.first().map(|b| match b % 5 {
        0 => oci::MEDIA_TYPE_IMAGE_MANIFEST,
        1 => oci::MEDIA_TYPE_IMAGE_INDEX,
        2 => oci::MEDIA_TYPE_DOCKER_MANIFEST,
        3 => oci::MEDIA_TYPE_DOCKER_MANIFEST_LIST,
        _ => "application/octet-stream",
    });
    for served in [None, served] {
        if let Ok((manifest, _)) = Manifest::parse(data, served) {
            walk(&manifest);
        }
    }
}

/// A referrers API response: an index listing the referrers of a subject.
pub fn referrers(data: &[u8]) {
    if let Ok((manifest, _)) = Manifest::parse(data, Some(oci::MEDIA_TYPE_IMAGE_INDEX)) {
        walk(&manifest);
    }
}

fn walk(manifest: &Manifest) {
    let _ = manifest.subject();
    let _ = manifest.artifact_type();
    let _ = manifest.annotations();
    for child in manifest.children() {
        let _ = child.title();
        let _ = child.is_manifest_like();
        let _ = crate::workflows::tree::platform_label(child);
    }
}

/// Sigstore bundles (v0.1 to v0.3), with what verification reads out of them.
pub fn bundle(data: &[u8]) {
    if let Ok(bundle) = crate::evidence::sign::bundle::Bundle::from_json(data) {
        if let Some(der) = bundle.material().leaf_certificate() {
            let _ = crate::workflows::tree::certificate_claims(der);
        }
        let _ = bundle.rfc3161_timestamps();
        let _ = bundle.tlog_entries();
        let again = crate::evidence::sign::bundle::Bundle::from_json(&bundle.to_json());
        assert!(again.is_ok(), "a parsed bundle does not parse again");
    }
    let _ = crate::evidence::sign::bundle::TlogEntry::from_json(data);
}

/// DSSE envelopes.
pub fn dsse(data: &[u8]) {
    let _ = crate::evidence::sign::dsse::Envelope::from_json(data);
}

/// in-toto statements, through every reader custody has for them.
pub fn statement(data: &[u8]) {
    let _ = crate::decisions::verify::parse_statement(data);
    let _ = crate::evidence::sign::verify::statement_sha256_subjects(data);
    let _ = crate::workflows::tree::predicate_type_of(data);
    let digest = Digest::of(b"");
    let _ = crate::evidence::attach::signing::check_statement(data, &digest);
}

/// X.509 certificates, DER and PEM.
pub fn certificate(data: &[u8]) {
    let _ = crate::workflows::tree::certificate_claims(data);
    let _ = crate::evidence::attach::legacy::certificate_der(&text(data));
}

/// RFC 3161 timestamp responses, checked against a fixed imprint and nonce.
pub fn timestamp_response(data: &[u8]) {
    let _ = crate::evidence::sign::keyless::check_timestamp_response(data, &[7; 32], &[9; 8]);
}

/// Rekor v1 log entry responses.
pub fn rekor_response(data: &[u8]) {
    let _ = crate::evidence::sign::keyless::parse_rekor_v1_response(data, "hashedrekord");
}

/// Sigstore trusted roots.
pub fn trusted_root(data: &[u8]) {
    let _ = crate::evidence::sign::verify::TrustedRoot::from_json(data);
}

/// Public and private key files. Encrypted keys are tried without a password: the scrypt cost
/// would otherwise dominate every run.
pub fn keys(data: &[u8]) {
    let input = text(data);
    let _ = crate::evidence::sign::keys::PublicKey::from_pem(&input);
    let _ = crate::evidence::sign::keys::PublicKey::from_spki_der(data);
    let _ = crate::evidence::sign::keys::SigningKey::from_pkcs8_der(data);
    let _ = crate::evidence::sign::keys::load_private_key(&input, None);
}

/// OIDC identity tokens (compact JWTs).
pub fn identity_token(data: &[u8]) {
    let _ = crate::evidence::sign::oidc::IdentityToken::parse(&text(data));
}

/// Policy documents; the first byte picks YAML or JSON.
pub fn policy(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let format = if first % 2 == 0 {
        crate::decisions::policy::Format::Yaml
    } else {
        crate::decisions::policy::Format::Json
    };
    let _ = crate::decisions::policy::Policy::parse(rest, format, Path::new("."), "fuzz");
    let _ = crate::decisions::sources::parse_rules(&text(rest), first % 2 == 0);
}

fn use_lock(lock: Result<Lock, sbom::LockError>) {
    let Ok(lock) = lock else { return };
    for package in &lock.packages {
        let shown = package.purl.to_string();
        assert!(
            sbom::Purl::try_from(shown.clone()).is_ok(),
            "purl {shown:?} does not parse again"
        );
    }
    let artifact = sbom::Artifact {
        name: "fuzz".into(),
        digest: Digest::of(b""),
    };
    let options = sbom::SbomOptions::new(crate::foundation::time::Timestamp::from_unix(0));
    if let Ok(bom) = sbom::generate(&[artifact], &[lock], &options) {
        let _ = bom.to_json_bytes();
    }
}

/// `Cargo.lock`.
pub fn lock_cargo(data: &[u8]) {
    use_lock(sbom::cargo::parse_str(Path::new("Cargo.lock"), &text(data)));
}

/// `package-lock.json` and `npm-shrinkwrap.json`.
pub fn lock_npm(data: &[u8]) {
    use_lock(sbom::npm::parse_str(
        Path::new("package-lock.json"),
        &text(data),
    ));
}

/// `go.mod` and its `go.sum`, separated by the first NUL byte.
pub fn lock_go(data: &[u8]) {
    let input = text(data);
    let (gomod, gosum) = match input.split_once('\0') {
        Some((m, s)) => (m, Some(s)),
        None => (&*input, None),
    };
    use_lock(sbom::golang::parse_str(Path::new("go.mod"), gomod, gosum));
}

/// `uv.lock`.
pub fn lock_uv(data: &[u8]) {
    use_lock(sbom::python::parse_uv_str(
        Path::new("uv.lock"),
        &text(data),
    ));
}

/// `poetry.lock`.
pub fn lock_poetry(data: &[u8]) {
    use_lock(sbom::python::parse_poetry_str(
        Path::new("poetry.lock"),
        &text(data),
    ));
}

/// `requirements.txt`.
pub fn lock_requirements(data: &[u8]) {
    use_lock(sbom::python::parse_requirements_str(
        Path::new("requirements.txt"),
        &text(data),
    ));
}

/// OSV records (JSON files and zip archives of them, as `osv-scanner` databases ship), read
/// through a temporary file as the loader does; the first byte picks the file kind.
pub fn osv(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let name = if first % 2 == 0 {
        "record.json"
    } else {
        "all.zip"
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join(name);
    if std::fs::write(&path, rest).is_err() {
        return;
    }
    let _ = crate::decisions::vuln::db::Database::load(
        &[path],
        &crate::decisions::vuln::db::Limits::default(),
    );
    for ecosystem in [
        crate::decisions::vuln::version::Ecosystem::CratesIo,
        crate::decisions::vuln::version::Ecosystem::Npm,
        crate::decisions::vuln::version::Ecosystem::Go,
        crate::decisions::vuln::version::Ecosystem::PyPi,
        crate::decisions::vuln::version::Ecosystem::Debian,
        crate::decisions::vuln::version::Ecosystem::Alpine,
        crate::decisions::vuln::version::Ecosystem::RedHat,
    ] {
        let _ = crate::decisions::vuln::version::Version::parse(ecosystem, &text(rest));
    }
}

/// VEX documents: OpenVEX, CSAF 2.0 and CycloneDX, told apart by their marker fields.
pub fn openvex(data: &[u8]) {
    let _ = crate::decisions::vuln::policy::VexDocument::parse(data, "fuzz");
}

/// CycloneDX input: bare, in an in-toto statement or in a bundle, for `scan` and `sources`.
pub fn cyclonedx(data: &[u8]) {
    if let Ok((_, bom)) = crate::decisions::vuln::input::unwrap_sbom(data, "fuzz") {
        let _ = crate::decisions::vuln::input::purls_of(&bom, "fuzz");
    }
    let _ = crate::decisions::sources::parse_sbom(Path::new("sbom.json"), data);
}

/// Audit log lines, and whole logs.
pub fn audit_log(data: &[u8]) {
    let _ = crate::workflows::audit::parse_line(data);
    let _ =
        crate::workflows::audit::verify(data, &crate::workflows::audit::VerifyOptions::default());
}

/// `WWW-Authenticate` challenges from registries.
pub fn auth_challenge(data: &[u8]) {
    let _ = crate::storage::store::auth::parse_challenge(&text(data));
}

/// `rescan` state files.
pub fn rescan_state(data: &[u8]) {
    let _ = crate::workflows::rescan::State::parse(data, Path::new("state.json"));
}

/// The package databases read from image layers: dpkg's status (and distroless status.d
/// entries), apk's installed database, and rpm's SQLite database with its header blobs.
pub fn image_db(data: &[u8]) {
    let input = text(data);
    let _ = crate::evidence::sbom::image::dpkg::parse(&input, true);
    let _ = crate::evidence::sbom::image::dpkg::parse(&input, false);
    let _ = crate::evidence::sbom::image::apk::parse(&input);
    let _ = crate::evidence::sbom::image::rpmdb::read(data);
    let _ = crate::evidence::sbom::image::rpmdb::header(0, data);
}

/// The language catalogers of image layers: Python metadata, npm `package.json`, Java
/// archives (zip, nested one level) and the `.dep-v0` section of cargo-auditable binaries, both
/// as an ELF file and as its compressed JSON.
pub fn image_lang(data: &[u8]) {
    use crate::evidence::sbom::image::{auditable, java, npm, python};
    let _ = python::parse(&text(data));
    let _ = npm::parse(data);
    let _ = auditable::parse(data);
    let mut spool = auditable::Spool::new(data.len() as u64);
    spool.feed(data);
    let _ = spool.finish();
    if let Ok(archive) = java::catalog(&mut &data[..], data.len() as u64) {
        let _ = java::components(&archive);
    }
}

/// OS package version orders (dpkg, apk, rpm): never panic, and comparing both ways agrees.
pub fn os_versions(data: &[u8]) {
    use crate::decisions::vuln::{apkversion, debversion, rpmversion};
    let input = text(data);
    let (a, b) = input.split_once('\n').unwrap_or((&input, ""));
    if let (Ok(x), Ok(y)) = (debversion::compare(a, b), debversion::compare(b, a)) {
        assert_eq!(
            x,
            y.reverse(),
            "dpkg order of {a:?} and {b:?} is not antisymmetric"
        );
    }
    assert_eq!(
        apkversion::compare(a, b),
        apkversion::compare(b, a).reverse(),
        "apk order of {a:?} and {b:?} is not antisymmetric"
    );
    let _ = apkversion::is_valid(a);
    if let (Ok(x), Ok(y)) = (rpmversion::compare(a, b), rpmversion::compare(b, a)) {
        assert_eq!(
            x,
            y.reverse(),
            "rpm order of {a:?} and {b:?} is not antisymmetric"
        );
    }
    let _ = rpmversion::vercmp(a, b);
}

/// Kubernetes AdmissionReview bodies as the API server sends them to `custody serve`, and the
/// images read from the object they carry.
pub fn admission_review(data: &[u8]) {
    use crate::workflows::serve::admission;
    if let Ok(request) = admission::parse(data) {
        let _ = admission::needs_check(&request);
        if let Some(object) = &request.object {
            let _ = admission::images(&request.kind, object);
        }
    }
}

/// Key references as given to `--key` and in policy signers (cosign's URI syntax, pkcs11:).
pub fn key_ref(data: &[u8]) {
    let input = text(data);
    if let Ok(key) = crate::evidence::sign::kms::keyref::KeyRef::parse(&input) {
        // Display hides secrets but must not panic.
        let _ = key.to_string();
        let _ = format!("{key:?}");
    }
}

/// Certificates and CRLs given for a private PKI (PEM or DER), and SPDX documents.
pub fn pki_and_spdx(data: &[u8]) {
    let _ = crate::evidence::sign::pki::parse_certificates(data, "fuzz");
    let _ = crate::evidence::sign::pki::parse_crls(data, "fuzz");
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = crate::evidence::sbom::spdx::read(&value, "fuzz");
    }
}
