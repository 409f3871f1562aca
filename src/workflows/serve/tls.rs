//! The serving certificate, read from PEM files and swapped in when they change (cert-manager
//! renews it; the kubelet replaces a mounted Secret's files through a symlink swap, so the paths
//! are read again rather than watched). New handshakes get the new pair; open connections keep
//! theirs. rustls runs on ring, the provider the rest of custody uses.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{Error, Event};
use crate::foundation::digest::Digest;

/// Largest certificate chain or key file read.
const MAX_PEM_SIZE: u64 = 1024 * 1024;

/// The pair of files and the certificate made from them.
pub struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// Digest of both files' bytes as last read.
    seen: Mutex<Digest>,
}

impl std::fmt::Debug for CertFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertFiles")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read as _;
    let err = |reason: String| Error::Tls {
        what,
        path: path.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > MAX_PEM_SIZE {
        return Err(err(format!("larger than {MAX_PEM_SIZE} bytes")));
    }
    Ok(bytes)
}

/// Parses a PEM chain and key into a certificate rustls can serve.
fn certified(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> Result<CertifiedKey, Error> {
    let cert_err = |reason: String| Error::Tls {
        what: "certificate",
        path: cert_path.to_owned(),
        reason,
    };
    let key_err = |reason: String| Error::Tls {
        what: "key",
        path: key_path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("not a pem certificate chain ({e})")))?;
    if chain.is_empty() {
        return Err(cert_err("holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| key_err(format!("not a pem private key ({e})")))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| key_err(format!("unsupported private key ({e})")))?;
    let certified = CertifiedKey::new(chain, signing);
    if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
        certified.keys_match()
    {
        return Err(key_err(format!(
            "does not belong to the certificate in {}",
            cert_path.display()
        )));
    }
    Ok(certified)
}

fn stamp(cert: &[u8], key: &[u8]) -> Digest {
    let mut both = Vec::with_capacity(cert.len() + key.len() + 1);
    both.extend_from_slice(cert);
    both.push(0);
    both.extend_from_slice(key);
    Digest::of(&both)
}

impl CertFiles {
    /// Reads and checks the pair.
    pub fn load(cert: &Path, key: &Path) -> Result<CertFiles, Error> {
        let cert_pem = read("certificate", cert)?;
        let key_pem = read("key", key)?;
        let certified = certified(cert, &cert_pem, key, &key_pem)?;
        Ok(CertFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(certified)),
            seen: Mutex::new(stamp(&cert_pem, &key_pem)),
        })
    }

    /// Rereads the files and swaps in a changed pair that loads. Blocking.
    pub fn poll(&self) -> Vec<Event> {
        let what = format!("tls certificate {}", self.cert.display());
        let read_both = || -> Result<(Vec<u8>, Vec<u8>), Error> {
            Ok((read("certificate", &self.cert)?, read("key", &self.key)?))
        };
        let mut seen = self.seen.lock().expect("tls lock is never poisoned");
        let (cert_pem, key_pem) = match read_both() {
            Ok(pair) => pair,
            // Mid-rotation one file may be missing for a moment; the next poll sees the pair.
            Err(_) => return Vec::new(),
        };
        let now = stamp(&cert_pem, &key_pem);
        if *seen == now {
            return Vec::new();
        }
        *seen = now;
        match certified(&self.cert, &cert_pem, &self.key, &key_pem) {
            Ok(c) => {
                *self.current.write().expect("tls lock is never poisoned") = Arc::new(c);
                vec![Event::Reloaded { what }]
            }
            Err(e) => vec![Event::ReloadFailed {
                what,
                error: e.to_string(),
            }],
        }
    }

    /// The TLS server configuration: HTTP/1.1 (the API server offers nothing else), TLS 1.2 and
    /// 1.3, the certificate from these files.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls {
            what: "configuration",
            path: self.cert.clone(),
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .expect("tls lock is never poisoned")
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_pem_is_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, "not pem at all").unwrap();
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = CertFiles::load(&cert, &key).unwrap_err();
        assert!(
            matches!(&err, Error::Tls { what: "certificate", path, .. } if *path == cert),
            "{err:?}"
        );
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = CertFiles::load(&cert, &key).unwrap_err();
        assert!(
            matches!(&err, Error::Tls { what: "key", path, .. } if *path == key),
            "{err:?}"
        );
        let missing = dir.path().join("missing.crt");
        let err = CertFiles::load(&missing, &key).unwrap_err();
        assert!(
            matches!(&err, Error::Tls { what: "certificate", path, .. } if *path == missing),
            "{err:?}"
        );
    }
}
