//! The HTTP client for Sigstore services and CI token requests, and a bounded body reader.

use std::io::Read as _;
use std::sync::{Arc, Once, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::time::Duration;

static CRYPTO: Once = Once::new();

/// The TLS setup of every client: the platform's root certificates, read at the first TLS
/// handshake rather than when a client is built. Reading them is a third of a short `verify`
/// against a registry on loopback, which never speaks TLS.
pub fn tls() -> rustls::ClientConfig {
    CRYPTO.call_once(|| {
        // Another part of the process may have installed one already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PlatformRoots {
            provider,
            verifier: OnceLock::new(),
        }))
        .with_no_client_auth()
}

/// The platform's verifier (the system's roots, `SSL_CERT_FILE` and `SSL_CERT_DIR` on Linux),
/// made when a server first shows a certificate.
#[derive(Debug)]
struct PlatformRoots {
    provider: Arc<rustls::crypto::CryptoProvider>,
    verifier: OnceLock<Result<rustls_platform_verifier::Verifier, rustls::Error>>,
}

impl PlatformRoots {
    fn verifier(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.verifier
            .get_or_init(|| rustls_platform_verifier::Verifier::new(self.provider.clone()))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for PlatformRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The HTTP client used for Sigstore services and CI token requests.
pub fn client() -> Result<reqwest::blocking::Client, reqwest::Error> {
    reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(tls())
        .connect_timeout(Duration::from_secs(30))
        // Rekor v2 answers only once a checkpoint covers the entry.
        .timeout(Duration::from_secs(90))
        .user_agent(concat!("custody/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Reads at most `max` bytes of a response body; more is an error.
pub fn read_body(
    response: reqwest::blocking::Response,
    max: usize,
) -> Result<Vec<u8>, std::io::Error> {
    let mut body = Vec::new();
    response.take(max as u64 + 1).read_to_end(&mut body)?;
    if body.len() > max {
        return Err(std::io::Error::other(format!(
            "response is larger than {max} bytes"
        )));
    }
    Ok(body)
}
