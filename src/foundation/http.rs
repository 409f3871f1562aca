//! The HTTP client for Sigstore services and CI token requests, and a bounded body reader.

use std::io::Read as _;
use std::sync::Once;
use std::time::Duration;

static CRYPTO: Once = Once::new();

/// The HTTP client used for Sigstore services and CI token requests.
pub fn client() -> Result<reqwest::blocking::Client, reqwest::Error> {
    CRYPTO.call_once(|| {
        // Another part of the process may have installed one already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::blocking::Client::builder()
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
