//! The blocking HTTP transport of the TUF client: metadata at the mirror's base URL, targets
//! under `/targets`, each read bounded by the size the TUF client allows.

use std::io::Read as _;

use sigstore_tuf::transport::FetchFuture;

/// A TUF mirror over custody's blocking HTTP client.
pub struct HttpRepository {
    base: String,
    targets: String,
    client: reqwest::blocking::Client,
}

impl HttpRepository {
    pub fn new(base: &str, client: reqwest::blocking::Client) -> HttpRepository {
        let base = base.trim_end_matches('/').to_string();
        HttpRepository {
            targets: format!("{base}/targets"),
            base,
            client,
        }
    }

    /// Targets served from elsewhere than `<base>/targets`.
    pub fn with_targets(mut self, url: &str) -> HttpRepository {
        self.targets = url.trim_end_matches('/').to_string();
        self
    }

    /// `Ok(None)` for 404 and 403 (object stores answer 403 for a missing object, and the
    /// root chain ends at the first missing version).
    fn get(&self, url: &str, max_length: u64) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        let response = self
            .client
            .get(url)
            .send()
            .map_err(|e| sigstore_tuf::Error::transport_with_source(format!("GET {url}"), e))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(sigstore_tuf::Error::transport(format!(
                "GET {url} answered {status}"
            )));
        }
        if response.content_length().is_some_and(|n| n > max_length) {
            return Err(sigstore_tuf::Error::transport(format!(
                "{url} is longer than the {max_length} bytes allowed"
            )));
        }
        let mut body = Vec::new();
        response
            .take(max_length + 1)
            .read_to_end(&mut body)
            .map_err(|e| sigstore_tuf::Error::io(format!("reading {url}"), e))?;
        if body.len() as u64 > max_length {
            return Err(sigstore_tuf::Error::transport(format!(
                "{url} is longer than the {max_length} bytes allowed"
            )));
        }
        Ok(Some(body))
    }
}

/// Names come from the TUF client (role names percent-encoded, target paths from signed
/// targets metadata); each path segment is still refused when it would climb out.
fn safe(path: &str) -> sigstore_tuf::Result<&str> {
    if path.split('/').any(|s| s == ".." || s.is_empty()) {
        return Err(sigstore_tuf::Error::transport(format!(
            "refusing to fetch the unsafe path {path:?}"
        )));
    }
    Ok(path)
}

impl sigstore_tuf::Repository for HttpRepository {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        let result = safe(name).and_then(|n| self.get(&format!("{}/{n}", self.base), max_length));
        Box::pin(std::future::ready(result))
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        let result =
            safe(path).and_then(|p| self.get(&format!("{}/{p}", self.targets), max_length));
        Box::pin(std::future::ready(result))
    }
}
