//! An OCI distribution registry over HTTP(S): blobs (existence check, monolithic or chunked
//! upload with resume, cross-repository mount, streamed and checked downloads), manifests (by
//! tag or digest, 4 MiB limit, `Docker-Content-Digest` always recomputed), referrers (the API
//! when the registry has it, else the `sha256-<hex>` tag schema), auth and retries.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::{Read, Write};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::blocking::{Body, Client, Response};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use crate::foundation::digest::{Digest, Hasher};
use crate::foundation::oci::{
    self, Descriptor, ImageIndex, MAX_MANIFEST_SIZE, MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST, Manifest,
    referrer_descriptor,
};
use crate::foundation::reference::{DOCKER_HUB, DOCKER_HUB_API, Tag};

use super::auth::{Challenge, Credential, Secret, parse_challenge};
use super::{
    BlobSource, Error, FetchedManifest, Options, ProgressHandle, ProgressReader, ProgressWriter,
    Referrers, ReferrersPath, Stall, Store, Timeout,
};

/// Blobs up to this size go up in one PUT; larger ones in chunks.
pub const MONOLITHIC_LIMIT: u64 = 8 * 1024 * 1024;
/// Largest PATCH of a chunked upload. Each PATCH streams from the file (memory stays flat); an
/// interrupted one resumes at the offset the registry reports.
pub const CHUNK_SIZE: u64 = 1024 * 1024 * 1024;
const MAX_LIST_PAGES: usize = 1000;
/// A referrers listing is not followed past this many descriptors: what is listed beyond it
/// could never be fetched anyway (discovery fetches far fewer), and the listing itself stays
/// within a few dozen MiB.
pub const MAX_LISTED_REFERRERS: usize = 100_000;
const MAX_LIST_PAGE_SIZE: u64 = 16 * 1024 * 1024;
const MAX_ERROR_BODY: u64 = 4096;
/// How many referrers (over every subject) a store remembers seeing in fallback indexes before
/// it forgets them all.
const MAX_FALLBACK_REFERRERS_SEEN: usize = 100_000;
/// `sha256-<hex>` tags a store asks about one by one before it lists the repository's tags once
/// and answers the rest from that list ([`Options::short_lived`]).
const DIGEST_TAGS_ASKED_BEFORE_LISTING: usize = 8;
/// Most `sha256-` tags kept from that list; a repository with more is asked tag by tag.
const MAX_DIGEST_TAGS_LISTED: usize = 10_000;
/// Manifests a short-lived store keeps after fetching them by digest, and the largest it keeps:
/// verify, copy and promote each read the artifact's own manifest, and would otherwise ask for
/// it three or four times in one command.
const RECENT_MANIFESTS: usize = 8;
const MAX_RECENT_MANIFEST_SIZE: usize = 64 * 1024;
/// An upload may take this long per byte on top of the timeout (64 KiB/s), so a stalled upload
/// ends while a large one on a slow link still finishes.
const MIN_UPLOAD_RATE: u64 = 64 * 1024;
/// A blob download that brings less than this many bytes per second, measured over windows of
/// the timeout, is a drip, not a transfer.
const MIN_DOWNLOAD_RATE: u64 = 1024;

/// How idempotent requests are retried on 429, 5xx and dropped connections.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max_delay);
        }
        let exp = self.base_delay.saturating_mul(1u32 << attempt.min(16));
        let capped = exp.min(self.max_delay);
        // Full jitter between half and all of the capped delay.
        let half = capped / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// What a request needs permission for; decides the token scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Access {
    Pull,
    Push,
    Mount(String),
}

enum RequestBody<'a> {
    Empty,
    Bytes(&'a [u8]),
    Source {
        source: BlobSource<'a>,
        offset: u64,
        len: u64,
        progress: Option<ProgressHandle>,
    },
}

impl RequestBody<'_> {
    fn build(&self) -> Result<Option<Body>, std::io::Error> {
        Ok(match self {
            RequestBody::Empty => None,
            RequestBody::Bytes(b) => Some(Body::from(b.to_vec())),
            RequestBody::Source {
                source: BlobSource::Bytes(b),
                offset,
                len,
                ..
            } => {
                let start = *offset as usize;
                Some(Body::from(b[start..start + *len as usize].to_vec()))
            }
            RequestBody::Source {
                source: BlobSource::File(path),
                offset,
                len,
                progress,
            } => {
                let mut f = std::fs::File::open(path)?;
                std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(*offset))?;
                let reader = ProgressReader {
                    inner: std::io::BufReader::with_capacity(1 << 20, f).take(*len),
                    progress: progress.clone(),
                };
                Some(Body::sized(reader, *len))
            }
        })
    }
}

/// How a store learns whether a `sha256-<hex>` tag exists: a referrers fallback index, or
/// cosign's legacy `.sig`, `.att` and `.sbom` tags. A copy or tree of 500 referrers on a registry
/// without the referrers API asks about 500 such tags, nearly all absent; one tag list answers
/// them all.
#[derive(Debug)]
enum DigestTags {
    /// Asked one by one so far, this many times.
    Asked(usize),
    /// The `sha256-` tags the repository listed, and those this store wrote since.
    Listed(BTreeSet<String>),
    /// Asked one by one for good: listing is off for this store, or the list failed or was too
    /// long to keep.
    OneByOne,
}

pub struct RegistryStore {
    client: Client,
    registry: String,
    base: String,
    repository: String,
    credential: Option<Credential>,
    retry: RetryPolicy,
    tokens: Mutex<HashMap<Access, Secret>>,
    basic_auth: Mutex<bool>,
    referrers_api: Mutex<Option<bool>>,
    /// No request is sent before this instant: a 429's `Retry-After` holds every worker of the
    /// pool, not only the one that was told, so a busy registry is not hit by the others.
    paused_until: Mutex<Option<Instant>>,
    /// Held while a `sha256-<hex>` fallback index is read, changed and written back; holds
    /// what this store has seen listed in each subject's index, so that a copy re-run over
    /// referrers that are all there reads the index once, not once per referrer.
    fallback_writes: Mutex<BTreeMap<Digest, BTreeSet<Digest>>>,
    digest_tags: Mutex<DigestTags>,
    /// Manifests fetched by digest lately, newest last; `None` unless [`Options::short_lived`].
    recent: Mutex<Option<VecDeque<FetchedManifest>>>,
    progress: Option<ProgressHandle>,
    timeout: Timeout,
}

fn is_loopback(host: &str) -> bool {
    let name = host
        .rsplit_once(':')
        .filter(|(n, p)| !n.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(n, _)| n);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host name of `host[:port]`, lower-cased, without brackets.
fn host_name(host: &str) -> String {
    let name = host
        .rsplit_once(':')
        .filter(|(n, p)| !n.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(n, _)| n);
    name.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// Whether custody may send the user's credential to the token realm a registry names. Over
/// HTTPS, any host (Docker Hub's realm is auth.docker.io). Over plain HTTP only when the registry
/// itself is plain HTTP (loopback or `--insecure-registry`) and the realm is on the same host, or
/// both are on loopback: a challenge must not downgrade the transport or send the credential in
/// clear text to a host the user did not name.
fn check_realm(registry: &str, registry_plain_http: bool, realm: &Url) -> Result<(), String> {
    let realm_host = realm.host_str().unwrap_or_default();
    match realm.scheme() {
        "https" => Ok(()),
        "http"
            if registry_plain_http
                && (host_name(realm_host) == host_name(registry)
                    || is_loopback(realm_host) && is_loopback(registry)) =>
        {
            Ok(())
        }
        "http" => Err(format!(
            "token realm http://{realm_host}{} is plain HTTP on another host than the registry; refusing to send credentials",
            realm.path()
        )),
        other => Err(format!(
            "token realm scheme {other:?} is not HTTPS; refusing to send credentials"
        )),
    }
}

impl RegistryStore {
    pub fn new(registry: &str, repository: &str, options: &Options) -> Result<Self, Error> {
        let plain_http =
            is_loopback(registry) || options.insecure_registries.iter().any(|h| h == registry);
        let api_host = if registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            registry
        };
        let scheme = if plain_http { "http" } else { "https" };
        let client = Client::builder()
            .tls_backend_preconfigured(crate::foundation::http::tls())
            .connect_timeout(options.timeout.0)
            // For a blocking client this bounds the wait for the response headers and each
            // read of a body, not the whole body: blobs may take longer, as long as they flow.
            .timeout(options.timeout.0)
            .user_agent(concat!("custody/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| Error::Transport {
                method: "build".into(),
                url: format!("{scheme}://{api_host}"),
                source,
            })?;
        let credential = options
            .credentials
            .lookup(registry)
            .map_err(|reason| Error::Auth {
                registry: registry.to_owned(),
                reason,
            })?;
        Ok(RegistryStore {
            client,
            registry: registry.to_owned(),
            base: format!("{scheme}://{api_host}/v2/{repository}"),
            repository: repository.to_owned(),
            credential,
            retry: options.retry.clone(),
            tokens: Mutex::new(HashMap::new()),
            basic_auth: Mutex::new(false),
            referrers_api: Mutex::new(None),
            paused_until: Mutex::new(None),
            fallback_writes: Mutex::new(BTreeMap::new()),
            digest_tags: Mutex::new(if options.short_lived {
                DigestTags::Asked(0)
            } else {
                DigestTags::OneByOne
            }),
            recent: Mutex::new(options.short_lived.then(VecDeque::new)),
            progress: options.progress.clone(),
            timeout: options.timeout,
        })
    }

    fn timed_out(&self, method: &str, url: &str, stall: Stall) -> Error {
        Error::TimedOut {
            registry: self.registry.clone(),
            request: format!("{method} {}", strip_query(url)),
            stall,
            after: self.timeout,
        }
    }

    /// The error for a request that failed before its response headers came.
    fn send_failed(&self, method: &str, url: &str, e: &reqwest::Error) -> Option<Error> {
        e.is_timeout().then(|| {
            let stall = if e.is_connect() {
                Stall::Connect
            } else {
                Stall::Response
            };
            self.timed_out(method, url, stall)
        })
    }

    /// Reads a small response body (manifest, list, token, error): at most `limit` bytes, each
    /// read within the timeout and the whole body within the timeout of its first byte being
    /// asked for, so a registry that drips a byte at a time cannot hold custody.
    fn read_small(
        &self,
        mut response: Response,
        limit: u64,
        method: &str,
        url: &str,
        what: &str,
    ) -> Result<Vec<u8>, Error> {
        let deadline = Instant::now() + self.timeout.0;
        let mut bytes = Vec::new();
        // Most bodies are a manifest of a few KiB: one read of a small buffer.
        let mut buf = [0u8; 16 * 1024];
        while (bytes.len() as u64) < limit {
            let room = usize::try_from(limit - bytes.len() as u64).unwrap_or(usize::MAX);
            let want = buf.len().min(room);
            match response.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return Err(self.timed_out(method, url, Stall::Body)),
                Err(source) => {
                    return Err(Error::Io {
                        context: format!("{what}: the body was cut off"),
                        source,
                    });
                }
            }
            if Instant::now() > deadline {
                return Err(self.timed_out(method, url, Stall::TooSlow));
            }
        }
        Ok(bytes)
    }

    /// The registry's error message, if it sends one in time.
    fn error_detail(&self, response: Response, url: &str) -> String {
        match self.read_small(response, MAX_ERROR_BODY, "GET", url, "error body") {
            Ok(body) => error_detail(&body),
            Err(_) => String::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    fn scope(&self, access: &Access) -> Vec<String> {
        match access {
            Access::Pull => vec![format!("repository:{}:pull", self.repository)],
            Access::Push => vec![format!("repository:{}:pull,push", self.repository)],
            Access::Mount(from) => vec![
                format!("repository:{}:pull,push", self.repository),
                format!("repository:{from}:pull"),
            ],
        }
    }

    fn auth_header(&self, access: &Access) -> Option<HeaderValue> {
        if let Some(token) = self.tokens.lock().expect("lock").get(access) {
            return HeaderValue::from_str(&format!("Bearer {}", token.expose())).ok();
        }
        if *self.basic_auth.lock().expect("lock")
            && let Some(Credential::Basic { username, password }) = &self.credential
        {
            use base64::Engine as _;
            let raw = format!("{username}:{}", password.expose());
            let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
            let mut v = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
            v.set_sensitive(true);
            return Some(v);
        }
        None
    }

    /// Answers a 401 challenge. Returns false when there is nothing more to try.
    fn authenticate(&self, challenge: &str, access: &Access) -> Result<bool, Error> {
        let auth_error = |reason: String| Error::Auth {
            registry: self.registry.clone(),
            reason,
        };
        match parse_challenge(challenge) {
            Some(Challenge::Basic) => {
                let mut basic = self.basic_auth.lock().expect("lock");
                if *basic || !matches!(self.credential, Some(Credential::Basic { .. })) {
                    return Ok(false);
                }
                *basic = true;
                Ok(true)
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let mut url = Url::parse(&realm)
                    .map_err(|_| auth_error(format!("token realm {realm:?} is not a URL")))?;
                let realm_host = url.host_str().unwrap_or_default().to_owned();
                check_realm(&self.registry, self.base.starts_with("http://"), &url)
                    .map_err(auth_error)?;
                // Only what custody needs, whatever the challenge asks for: a registry may not
                // borrow the user's credential for other repositories.
                let _ = scope;
                let scopes = self.scope(access);
                let request = match &self.credential {
                    Some(Credential::IdentityToken(token)) => {
                        let mut form = vec![
                            ("grant_type".to_owned(), "refresh_token".to_owned()),
                            ("refresh_token".to_owned(), token.expose().to_owned()),
                            ("client_id".to_owned(), "custody".to_owned()),
                            ("scope".to_owned(), scopes.join(" ")),
                        ];
                        if let Some(s) = &service {
                            form.push(("service".to_owned(), s.clone()));
                        }
                        let body = form
                            .iter()
                            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
                            .collect::<Vec<_>>()
                            .join("&");
                        self.client
                            .post(url.clone())
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(body)
                    }
                    other => {
                        {
                            let mut q = url.query_pairs_mut();
                            if let Some(s) = &service {
                                q.append_pair("service", s);
                            }
                            for s in &scopes {
                                q.append_pair("scope", s);
                            }
                        }
                        let mut r = self.client.get(url.clone());
                        match other {
                            Some(Credential::Basic { username, password }) => {
                                r = r.basic_auth(username, Some(password.expose()));
                            }
                            Some(Credential::Bearer(t)) => r = r.bearer_auth(t.expose()),
                            _ => {}
                        }
                        r
                    }
                };
                let shown = format!("{}://{}{}", url.scheme(), realm_host, url.path());
                let response = request.send().map_err(|e| {
                    self.send_failed("GET", &shown, &e).unwrap_or_else(|| {
                        auth_error(format!(
                            "token request to {shown} failed: {}",
                            e.without_url()
                        ))
                    })
                })?;
                if !response.status().is_success() {
                    return Err(auth_error(format!(
                        "token endpoint {shown} answered {}; check the registry credentials",
                        response.status()
                    )));
                }
                #[derive(serde::Deserialize)]
                struct TokenResponse {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let bytes = self.read_small(
                    response,
                    1 << 20,
                    "GET",
                    &shown,
                    &format!("token response from {shown}"),
                )?;
                let parsed: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| {
                    auth_error(format!("token endpoint {shown} did not answer with JSON"))
                })?;
                let token = parsed.token.or(parsed.access_token).ok_or_else(|| {
                    auth_error(format!("token endpoint {shown} answered without a token"))
                })?;
                let mut tokens = self.tokens.lock().expect("lock");
                let fresh = tokens.get(access).is_none_or(|t| t.expose() != token);
                tokens.insert(access.clone(), Secret::new(token));
                Ok(fresh)
            }
            None => Ok(false),
        }
    }

    /// Sends a request with auth, retrying 429, 5xx and dropped connections.
    fn send(
        &self,
        method: Method,
        url: &str,
        headers: &HeaderMap,
        body: &RequestBody<'_>,
        access: &Access,
    ) -> Result<Response, Error> {
        self.send_attempts(method, url, headers, body, access, self.retry.attempts)
    }

    /// [`Self::send`] with a given number of attempts; 1 for steps that are not idempotent.
    fn send_attempts(
        &self,
        method: Method,
        url: &str,
        headers: &HeaderMap,
        body: &RequestBody<'_>,
        access: &Access,
        attempts: u32,
    ) -> Result<Response, Error> {
        let shown_url = strip_query(url);
        let mut last = String::new();
        let mut auth_rounds = 0;
        let mut attempt = 0;
        while attempt < attempts {
            self.wait_out_pause();
            let mut request = self
                .client
                .request(method.clone(), url)
                .headers(headers.clone());
            if let RequestBody::Source { len, .. } = body {
                // The upload is sent within the wait for the answer: give it time to flow.
                request =
                    request.timeout(self.timeout.0 + Duration::from_secs(len / MIN_UPLOAD_RATE));
            }
            if let Some(v) = self.auth_header(access) {
                request = request.header(reqwest::header::AUTHORIZATION, v);
            }
            let built = body.build().map_err(Error::io(format!(
                "cannot read the upload source for {shown_url}"
            )))?;
            if let Some(b) = built {
                request = request.body(b);
            }
            let response = match request.send() {
                Ok(r) => r,
                // A registry that does not answer within the timeout is not asked again: the
                // timeout bounds the wait, retries would multiply it.
                Err(e) if e.is_timeout() => {
                    return Err(self
                        .send_failed(method.as_str(), url, &e)
                        .expect("a timeout maps to a timeout error"));
                }
                // A name that does not resolve will not resolve on the next attempt either.
                Err(e) if dns_failure(&e).is_some() => {
                    return Err(Error::UnknownHost {
                        host: self.registry.clone(),
                        url: shown_url,
                        reason: dns_failure(&e).unwrap_or_default(),
                    });
                }
                Err(e) => {
                    last = format!("connection error: {}", e.without_url());
                    attempt += 1;
                    std::thread::sleep(self.retry.delay(attempt, None));
                    continue;
                }
            };
            let status = response.status();
            if let Some(p) = &self.progress {
                p.0.request(method.as_str(), &shown_url, status.as_u16());
            }
            if status == StatusCode::UNAUTHORIZED && auth_rounds < 2 {
                auth_rounds += 1;
                let challenge = response
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                if self.authenticate(&challenge, access)? {
                    continue;
                }
                return Err(Error::Auth {
                    registry: self.registry.clone(),
                    reason: format!(
                        "{method} {shown_url} was refused (401){}",
                        if self.credential.is_none() {
                            "; no credentials were found for this registry (docker config.json, REGISTRY_AUTH_FILE, CUSTODY_REGISTRY with CUSTODY_REGISTRY_USERNAME/PASSWORD, CI_REGISTRY_USER/PASSWORD, GITHUB_TOKEN for ghcr.io)"
                        } else {
                            "; the credentials were not accepted"
                        }
                    ),
                });
            }
            let retryable = status == StatusCode::TOO_MANY_REQUESTS
                || matches!(status.as_u16(), 500 | 502 | 503 | 504);
            if retryable {
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                last = format!("{status}{}", self.error_detail(response, url));
                attempt += 1;
                if attempt < self.retry.attempts {
                    let delay = self.retry.delay(attempt, retry_after);
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        self.pause_for(delay);
                    }
                    std::thread::sleep(delay);
                }
                continue;
            }
            return Ok(response);
        }
        Err(Error::RetriesExhausted {
            method: method.to_string(),
            url: shown_url,
            attempts,
            last,
        })
    }

    /// Holds every later request of this store for `delay`: the registry said it is busy.
    fn pause_for(&self, delay: Duration) {
        let until = Instant::now() + delay;
        let mut paused = self.paused_until.lock().expect("lock");
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    /// Sleeps until a pause another request was told to keep is over.
    fn wait_out_pause(&self) {
        let until = *self.paused_until.lock().expect("lock");
        if let Some(wait) = until.and_then(|u| u.checked_duration_since(Instant::now())) {
            std::thread::sleep(wait);
        }
    }

    fn get(&self, url: &str, headers: &HeaderMap, access: &Access) -> Result<Response, Error> {
        self.send(Method::GET, url, headers, &RequestBody::Empty, access)
    }

    fn unexpected(&self, method: &str, url: &str, response: Response) -> Error {
        let status = response.status().as_u16();
        Error::Http {
            method: method.to_owned(),
            url: strip_query(url),
            status,
            detail: self.error_detail(response, url),
        }
    }

    fn manifest_accept() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_str(&ACCEPTED_MANIFEST_TYPES.join(", "))
                .expect("media types are valid header values"),
        );
        h
    }

    /// GETs a manifest by tag or digest, checking the digest of what came.
    fn fetch_manifest(
        &self,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<Option<(FetchedManifest, Option<String>)>, Error> {
        let url = self.url(&format!("manifests/{reference}"));
        let what = format!("manifest {}:{reference}", self.name());
        let response = self.get(&url, &Self::manifest_accept(), &Access::Pull)?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(self.unexpected("GET", &url, response));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_MANIFEST_SIZE as u64)
        {
            return Err(Error::ManifestTooLarge {
                what,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let served = header("content-type");
        let claimed = header("docker-content-digest");
        let etag = header("etag");
        let bytes = self.read_small(response, MAX_MANIFEST_SIZE as u64 + 1, "GET", &url, &what)?;
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(Error::ManifestTooLarge {
                what,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let fetched = FetchedManifest::check(&what, bytes, served.as_deref(), expected)?;
        if let Some(claimed) = claimed
            && claimed.trim() != fetched.descriptor.digest.to_string()
        {
            return Err(Error::LyingDigestHeader {
                what,
                claimed,
                found: fetched.descriptor.digest,
            });
        }
        Ok(Some((fetched, etag)))
    }

    fn check_put_digest(
        &self,
        response: &Response,
        what: &str,
        sent: &Digest,
    ) -> Result<(), Error> {
        if let Some(claimed) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            && claimed.trim() != sent.to_string()
        {
            return Err(Error::LyingDigestHeader {
                what: what.to_owned(),
                claimed: claimed.to_owned(),
                found: sent.clone(),
            });
        }
        Ok(())
    }

    fn put_manifest_at(
        &self,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
        if_match: Option<&str>,
    ) -> Result<Response, Error> {
        let url = self.url(&format!("manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| Error::Refused {
                what: format!("manifest for {}", self.name()),
                reason: format!("media type {media_type:?} is not a valid header value"),
            })?,
        );
        if let Some(etag) = if_match.and_then(|e| HeaderValue::from_str(e).ok()) {
            headers.insert(reqwest::header::IF_MATCH, etag);
        }
        self.send(
            Method::PUT,
            &url,
            &headers,
            &RequestBody::Bytes(bytes),
            &Access::Push,
        )
    }

    /// Whether the `sha256-` tag `tag` is known not to exist, without asking for it. After
    /// [`DIGEST_TAGS_ASKED_BEFORE_LISTING`] such tags asked one by one, the repository's tags are
    /// listed once (the workers asking meanwhile wait for that list) and every later question is
    /// answered from it: a tag it lacks is absent, one it has is still fetched, since what it
    /// holds may have changed.
    fn digest_tag_absent(&self, tag: &str) -> Result<bool, Error> {
        let mut known = self
            .digest_tags
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &mut *known {
            DigestTags::OneByOne => return Ok(false),
            DigestTags::Listed(tags) => return Ok(!tags.contains(tag)),
            DigestTags::Asked(n) if *n + 1 < DIGEST_TAGS_ASKED_BEFORE_LISTING => {
                *n += 1;
                return Ok(false);
            }
            DigestTags::Asked(_) => {}
        }
        *known = self
            .list_digest_tags()?
            .map_or(DigestTags::OneByOne, DigestTags::Listed);
        Ok(matches!(&*known, DigestTags::Listed(tags) if !tags.contains(tag)))
    }

    /// The repository's `sha256-` tags, or `None` when the registry will not list them (a 404 or
    /// 403, a list it cannot send whole) or they are too many to keep: then they are asked one
    /// by one, as before. A registry that stalls or cannot be reached is an error, as it would
    /// be for the next tag asked.
    fn list_digest_tags(&self) -> Result<Option<BTreeSet<String>>, Error> {
        let mut tags = BTreeSet::new();
        let mut too_many = false;
        let mut keep = |t: Tag| {
            if t.as_str().starts_with("sha256-") {
                if tags.len() < MAX_DIGEST_TAGS_LISTED {
                    tags.insert(t.as_str().to_owned());
                } else {
                    too_many = true;
                }
            }
        };
        match self.list_tags(&mut keep, false) {
            Ok(whole) => Ok((whole && !too_many).then_some(tags)),
            Err(Error::Http { .. } | Error::Refused { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Hands over every tag as the list streams in; returns whether the list ended within
    /// [`MAX_LIST_PAGES`] pages. `missing_is_empty`: a 404 means the repository has no tags (a
    /// repository nothing was pushed to); otherwise it is an error, for a caller that will take
    /// the list's silence as an answer.
    fn list_tags(&self, visit: &mut dyn FnMut(Tag), missing_is_empty: bool) -> Result<bool, Error> {
        let first = self.url("tags/list?n=1000");
        let mut url = first.clone();
        for _ in 0..MAX_LIST_PAGES {
            let r = self.get(&url, &HeaderMap::new(), &Access::Pull)?;
            if r.status() == StatusCode::NOT_FOUND && missing_is_empty {
                return Ok(true);
            }
            if !r.status().is_success() {
                return Err(self.unexpected("GET", &url, r));
            }
            let link = next_link(&r, &first);
            // distribution ignores `n` and sends every tag in one page: the page is parsed as it
            // streams in and each tag handed over as it is parsed, so 100,000 tags cost neither
            // the page's bytes nor 100,000 strings. `visit` must be quick: the page is read
            // within the timeout.
            let mut body = BoundedBody {
                response: r,
                left: MAX_LIST_PAGE_SIZE,
                deadline: Instant::now() + self.timeout.0,
                stopped: None,
            };
            let parsed = each_listed_tag(
                std::io::BufReader::with_capacity(16 * 1024, &mut body),
                visit,
            );
            if let Err(e) = parsed {
                let what = format!("tag list of {}", self.name());
                return Err(match body.stopped {
                    Some(Stopped::Slow) => self.timed_out("GET", &url, Stall::TooSlow),
                    Some(Stopped::Stalled) => self.timed_out("GET", &url, Stall::Body),
                    Some(Stopped::Large) => Error::Refused {
                        what,
                        reason: format!("it is larger than {MAX_LIST_PAGE_SIZE} bytes"),
                    },
                    None => Error::Refused {
                        what,
                        reason: format!("not valid JSON: {e}"),
                    },
                });
            }
            match link {
                Some(l) => url = l,
                None => return Ok(true),
            }
        }
        Ok(false)
    }

    /// Notes a `sha256-` tag this store wrote, so its own list does not hide it.
    fn digest_tag_written(&self, tag: &str) {
        if let DigestTags::Listed(tags) = &mut *self
            .digest_tags
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            tags.insert(tag.to_owned());
        }
    }

    /// The referrers of `subject` in its `sha256-<hex>` fallback index.
    fn fallback_referrers(&self, subject: &Digest) -> Result<Referrers, Error> {
        let tag = subject.fallback_tag();
        if self.digest_tag_absent(&tag)? {
            return Ok(Referrers {
                path: ReferrersPath::TagSchema,
                descriptors: Vec::new(),
            });
        }
        let descriptors = match self.fetch_manifest(&tag, None)? {
            None => Vec::new(),
            Some((fetched, _)) => self.check_fallback(subject, &tag, fetched)?.manifests,
        };
        Ok(Referrers {
            path: ReferrersPath::TagSchema,
            descriptors,
        })
    }

    /// Whether `GET /referrers` works here: 200 with the exact OCI index content type.
    pub fn referrers_api_supported(&self) -> Result<bool, Error> {
        if let Some(known) = *self.referrers_api.lock().expect("lock") {
            return Ok(known);
        }
        let zero = Digest::from_raw([0; 32]);
        let response = self.get(
            &self.url(&format!("referrers/{zero}")),
            &HeaderMap::new(),
            &Access::Pull,
        )?;
        let supported = response.status() == StatusCode::OK && is_index_content_type(&response);
        *self.referrers_api.lock().expect("lock") = Some(supported);
        Ok(supported)
    }

    /// A manifest about to be pushed, parsed and with its digest computed.
    fn to_push(&self, bytes: &[u8], media_type: &str) -> Result<FetchedManifest, Error> {
        FetchedManifest::check(
            &format!("manifest for {}", self.name()),
            bytes.to_vec(),
            Some(media_type),
            None,
        )
    }

    /// Makes a stored manifest with a subject discoverable as its referrer. The referrers API,
    /// when the registry serves it, is what every client reads; the fallback tag is written
    /// only where the API is missing. `OCI-Subject` alone is not trusted (ECR sent it without
    /// serving the API), and some API registries (ggcr's) never send it, so the probe decides.
    fn list_as_referrer(&self, stored: &FetchedManifest, media_type: &str) -> Result<(), Error> {
        if let Some(subject) = stored.manifest.subject()
            && !self.referrers_api_supported()?
        {
            let descriptor = referrer_descriptor(&stored.manifest, media_type, &stored.bytes);
            self.add_fallback_referrer(&subject.digest, &descriptor)?;
        }
        Ok(())
    }

    /// Adds `descriptor` to the `sha256-<hex>` fallback index of `subject`, read-modify-write
    /// with `If-Match` where the registry gives ETags.
    fn add_fallback_referrer(
        &self,
        subject: &Digest,
        descriptor: &Descriptor,
    ) -> Result<(), Error> {
        let tag = subject.fallback_tag();
        // The pool may push several referrers of one subject at once, and a registry that
        // ignores If-Match (distribution does) would keep only the last write: within this
        // process the read-modify-write of a fallback index is done one at a time.
        let mut listed = self
            .fallback_writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if listed
            .get(subject)
            .is_some_and(|seen| seen.contains(&descriptor.digest))
        {
            return Ok(());
        }
        if listed.values().map(BTreeSet::len).sum::<usize>() >= MAX_FALLBACK_REFERRERS_SEEN {
            listed.clear();
        }
        let mut remember = |index: &ImageIndex| {
            listed
                .entry(subject.clone())
                .or_default()
                .extend(index.manifests.iter().map(|d| d.digest.clone()));
        };
        for attempt in 0..5 {
            let (mut index, etag) = match self.fetch_manifest(&tag, None)? {
                None => (ImageIndex::empty(), None),
                Some((fetched, etag)) => (self.check_fallback(subject, &tag, fetched)?, etag),
            };
            if index
                .manifests
                .iter()
                .any(|d| d.digest == descriptor.digest)
            {
                remember(&index);
                return Ok(());
            }
            index.manifests.push(descriptor.clone());
            let bytes = oci::to_bytes(&index);
            let response =
                self.put_manifest_at(&tag, &bytes, MEDIA_TYPE_IMAGE_INDEX, etag.as_deref())?;
            if response.status() == StatusCode::PRECONDITION_FAILED {
                continue;
            }
            if !response.status().is_success() {
                let error =
                    self.unexpected("PUT", &self.url(&format!("manifests/{tag}")), response);
                // distribution rewrites a manifest's link file in place when the manifest is
                // pushed again, and checks an index's children by reading those files: an index
                // written while another worker re-pushes a listed referrer is refused as naming
                // an unknown manifest, though every one of them is there. It is asked again.
                if let Error::Http {
                    status: 400,
                    detail,
                    ..
                } = &error
                    && detail.contains("MANIFEST_BLOB_UNKNOWN")
                    && attempt < 4
                {
                    std::thread::sleep(self.retry.delay(attempt, None));
                    continue;
                }
                return Err(error);
            }
            self.check_put_digest(
                &response,
                &format!("referrers index {}:{tag}", self.name()),
                &Digest::of(&bytes),
            )?;
            self.digest_tag_written(&tag);
            remember(&index);
            return Ok(());
        }
        Err(Error::Refused {
            what: format!("referrers index {}:{tag}", self.name()),
            reason: "it kept changing under concurrent writers; try again".into(),
        })
    }

    /// Refuses a fallback tag that is not an image index, or that is the subject itself (some
    /// registries resolve `sha256-<hex>` as a digest).
    fn check_fallback(
        &self,
        subject: &Digest,
        tag: &str,
        fetched: FetchedManifest,
    ) -> Result<ImageIndex, Error> {
        let what = format!("referrers fallback tag {}:{tag}", self.name());
        if fetched.descriptor.digest == *subject {
            return Err(Error::InvalidFallbackIndex {
                what,
                reason: format!(
                    "the registry returned the subject {subject} itself instead of an index; it resolves the tag as a digest"
                ),
            });
        }
        match fetched.manifest {
            Manifest::Index(index) => Ok(index),
            Manifest::Image(_) => Err(Error::InvalidFallbackIndex {
                what,
                reason: format!(
                    "it holds a {} ({}), not an image index; refusing to read or overwrite it",
                    fetched.descriptor.media_type, fetched.descriptor.digest
                ),
            }),
        }
    }

    fn start_upload(&self, access: &Access, query: &str) -> Result<Response, Error> {
        let url = self.url(&format!("blobs/uploads/{query}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_LENGTH,
            HeaderValue::from_static("0"),
        );
        self.send(Method::POST, &url, &headers, &RequestBody::Empty, access)
    }

    fn location(&self, response: &Response, what: &str) -> Result<Url, Error> {
        let base = Url::parse(&self.base).expect("base URL is valid");
        let loc = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Refused {
                what: what.to_owned(),
                reason: "the registry started an upload without a Location header".into(),
            })?;
        base.join(loc).map_err(|_| Error::Refused {
            what: what.to_owned(),
            reason: format!("the upload Location {loc:?} is not a URL"),
        })
    }

    /// One upload session: POST, then one PUT or several PATCHes and a PUT.
    fn upload_once(&self, descriptor: &Descriptor, source: BlobSource<'_>) -> Result<(), Error> {
        let progress = ProgressHandle::track(
            &self.progress,
            || format!("upload {}", descriptor.digest.short()),
            descriptor.size,
        );
        let result = self.upload_session(descriptor, source, &progress);
        if let Some(p) = progress {
            p.0.end();
        }
        result
    }

    fn upload_session(
        &self,
        descriptor: &Descriptor,
        source: BlobSource<'_>,
        progress: &Option<ProgressHandle>,
    ) -> Result<(), Error> {
        let what = format!("blob {} to {}", descriptor.digest, self.name());
        let response = self.start_upload(&Access::Push, "")?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.unexpected("POST", &self.url("blobs/uploads/"), response));
        }
        let mut location = self.location(&response, &what)?;
        let octets = HeaderValue::from_static("application/octet-stream");
        if descriptor.size > MONOLITHIC_LIMIT {
            let mut offset = 0;
            let mut failures = 0;
            while offset < descriptor.size {
                let len = CHUNK_SIZE.min(descriptor.size - offset);
                let mut headers = HeaderMap::new();
                headers.insert(reqwest::header::CONTENT_TYPE, octets.clone());
                headers.insert(
                    reqwest::header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("{offset}-{}", offset + len - 1))
                        .expect("digits"),
                );
                let body = RequestBody::Source {
                    source,
                    offset,
                    len,
                    progress: progress.clone(),
                };
                // A PATCH is not idempotent: it is sent once, and after a failure the upload
                // resumes at the offset the registry reports.
                match self.send_attempts(
                    Method::PATCH,
                    location.as_str(),
                    &headers,
                    &body,
                    &Access::Push,
                    1,
                ) {
                    Ok(r) if r.status() == StatusCode::ACCEPTED => {
                        location = self.location(&r, &what)?;
                        offset += len;
                    }
                    Ok(_) | Err(Error::RetriesExhausted { .. }) => {
                        failures += 1;
                        if failures >= self.retry.attempts {
                            return Err(Error::Refused {
                                what,
                                reason: format!(
                                    "the upload broke off {failures} times; the last resume point was byte {offset}"
                                ),
                            });
                        }
                        std::thread::sleep(self.retry.delay(failures, None));
                        offset = self.upload_offset(&location, &what)?;
                    }
                    Err(e) => return Err(e),
                }
            }
            location
                .query_pairs_mut()
                .append_pair("digest", &descriptor.digest.to_string());
            let mut headers = HeaderMap::new();
            headers.insert(reqwest::header::CONTENT_TYPE, octets);
            let r = self.send(
                Method::PUT,
                location.as_str(),
                &headers,
                &RequestBody::Empty,
                &Access::Push,
            )?;
            if r.status() != StatusCode::CREATED {
                return Err(self.unexpected("PUT", location.as_str(), r));
            }
        } else {
            location
                .query_pairs_mut()
                .append_pair("digest", &descriptor.digest.to_string());
            let mut headers = HeaderMap::new();
            headers.insert(reqwest::header::CONTENT_TYPE, octets);
            let body = RequestBody::Source {
                source,
                offset: 0,
                len: descriptor.size,
                progress: progress.clone(),
            };
            let r = self.send(
                Method::PUT,
                location.as_str(),
                &headers,
                &body,
                &Access::Push,
            )?;
            if r.status() != StatusCode::CREATED {
                return Err(self.unexpected("PUT", location.as_str(), r));
            }
        }
        Ok(())
    }

    /// Where an interrupted upload stands (`Range: 0-<last>`), so it resumes there.
    fn upload_offset(&self, location: &Url, what: &str) -> Result<u64, Error> {
        let r = self.get(location.as_str(), &HeaderMap::new(), &Access::Push)?;
        if r.status() != StatusCode::NO_CONTENT {
            return Err(Error::Refused {
                what: what.to_owned(),
                reason: format!(
                    "the upload was interrupted and its status is {}",
                    r.status()
                ),
            });
        }
        let range = r
            .headers()
            .get(reqwest::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit_once('-'))
            .and_then(|(_, end)| end.parse::<u64>().ok());
        Ok(range.map_or(0, |end| end + 1))
    }

    /// Streams a blob into `sink`, resuming with `Range` after a break, checking as it goes.
    fn download(&self, descriptor: &Descriptor, sink: &mut dyn Write) -> Result<(), Error> {
        let url = self.url(&format!("blobs/{}", descriptor.digest));
        let what = format!("blob {} from {}", descriptor.digest, self.name());
        let mut hasher = Hasher::new();
        // Sized to the blob (one byte more shows a registry sending too much in the same read),
        // so that fetching a bundle of a few hundred bytes does not zero 256 KiB.
        let size = usize::try_from(descriptor.size).unwrap_or(usize::MAX);
        let mut buf = vec![0u8; size.saturating_add(1).clamp(8 * 1024, 256 * 1024)];
        let mut attempts = 0;
        loop {
            let mut headers = HeaderMap::new();
            let offset = hasher.len();
            if offset > 0 {
                headers.insert(
                    reqwest::header::RANGE,
                    HeaderValue::from_str(&format!("bytes={offset}-")).expect("digits"),
                );
            }
            let mut response = self.get(&url, &headers, &Access::Pull)?;
            match response.status() {
                StatusCode::OK if offset == 0 => {}
                StatusCode::PARTIAL_CONTENT if offset > 0 => {}
                StatusCode::NOT_FOUND => return Err(Error::NotFound { what }),
                StatusCode::OK => {
                    return Err(Error::Refused {
                        what,
                        reason: "the download broke off and the registry cannot resume it (no Range support)".into(),
                    });
                }
                _ => return Err(self.unexpected("GET", &url, response)),
            }
            let mut interrupted = false;
            // Each read waits at most the timeout (the request's deadline bounds every read);
            // each window of the timeout must also bring MIN_DOWNLOAD_RATE bytes a second.
            let window = self.timeout.0.max(Duration::from_secs(1));
            let window_min = MIN_DOWNLOAD_RATE.saturating_mul(window.as_secs());
            let mut window_start = Instant::now();
            let mut window_bytes = 0u64;
            loop {
                let n = match response.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) if is_timeout(&e) => {
                        return Err(self.timed_out("GET", &url, Stall::Body));
                    }
                    Err(_) => {
                        interrupted = true;
                        break;
                    }
                };
                window_bytes += n as u64;
                if window_start.elapsed() >= window {
                    if window_bytes < window_min {
                        return Err(self.timed_out("GET", &url, Stall::Drip));
                    }
                    window_start = Instant::now();
                    window_bytes = 0;
                }
                if hasher.len() + n as u64 > descriptor.size {
                    return Err(Error::SizeMismatch {
                        what,
                        expected: descriptor.size,
                        found: hasher.len() + n as u64,
                    });
                }
                hasher.update(&buf[..n]);
                sink.write_all(&buf[..n])
                    .map_err(Error::io(format!("cannot write {what}")))?;
            }
            if !interrupted && hasher.len() == descriptor.size {
                break;
            }
            attempts += 1;
            if attempts >= self.retry.attempts {
                return Err(Error::SizeMismatch {
                    what,
                    expected: descriptor.size,
                    found: hasher.len(),
                });
            }
            std::thread::sleep(self.retry.delay(attempts, None));
        }
        let found = hasher.finish();
        if found != descriptor.digest {
            return Err(Error::DigestMismatch {
                what,
                expected: descriptor.digest.clone(),
                found,
            });
        }
        Ok(())
    }
}

fn is_index_content_type(response: &Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim())
        == Some(MEDIA_TYPE_IMAGE_INDEX)
}

fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_owned()
}

/// Whether a failed read of a response body was its deadline running out.
fn is_timeout(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout)
}

fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => {
            let items: Vec<String> = e
                .errors
                .iter()
                .map(|i| {
                    format!(
                        "{} {}",
                        i.code.as_deref().unwrap_or(""),
                        i.message.as_deref().unwrap_or("")
                    )
                    .trim()
                    .to_owned()
                })
                .collect();
            format!(": {}", items.join("; "))
        }
        _ => String::new(),
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What stopped a [`BoundedBody`].
enum Stopped {
    Large,
    Slow,
    Stalled,
}

/// A response body read as a parser pulls it, within `left` bytes and by `deadline`; what
/// stopped it is kept for the error.
struct BoundedBody {
    response: Response,
    left: u64,
    deadline: Instant,
    stopped: Option<Stopped>,
}

impl std::io::Read for BoundedBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if Instant::now() > self.deadline {
            self.stopped = Some(Stopped::Slow);
            return Err(std::io::Error::other("the body came too slowly"));
        }
        // One byte past the limit shows a body that is too large.
        let room = usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        let n = loop {
            match self.response.read(&mut buf[..want]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if is_timeout(&e) {
                        self.stopped = Some(Stopped::Stalled);
                    }
                    return Err(e);
                }
                Ok(n) => break n,
            }
        };
        if n as u64 > self.left {
            self.stopped = Some(Stopped::Large);
            return Err(std::io::Error::other("the body is too large"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Hands each valid tag of a tag list (`{"name": …, "tags": [...] | null}`) to `visit` as it is
/// parsed, holding none of them; names that are not tags are skipped.
fn each_listed_tag(
    list: impl std::io::Read,
    visit: &mut dyn FnMut(Tag),
) -> Result<(), serde_json::Error> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    struct List<'v>(&'v mut dyn FnMut(Tag));
    struct Tags<'v>(&'v mut dyn FnMut(Tag));

    impl<'de> Visitor<'de> for List<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a tag list object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                if key == "tags" {
                    map.next_value_seed(Tags(&mut *self.0))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }

    impl<'de> DeserializeSeed<'de> for Tags<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_option(self)
        }
    }

    impl<'de> Visitor<'de> for Tags<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of tags or null")
        }
        fn visit_none<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(name) = seq.next_element::<String>()? {
                if let Ok(tag) = name.parse() {
                    (self.0)(tag);
                }
            }
            Ok(())
        }
    }

    let mut de = serde_json::Deserializer::from_reader(list);
    (&mut de).deserialize_map(List(visit))?;
    de.end()
}

fn next_link(response: &Response, base: &str) -> Option<String> {
    let link = response
        .headers()
        .get(reqwest::header::LINK)?
        .to_str()
        .ok()?;
    let (target, rel) = link.split_once(';')?;
    if !rel.contains("rel=\"next\"") && !rel.contains("rel=next") {
        return None;
    }
    let target = target.trim().trim_start_matches('<').trim_end_matches('>');
    Url::parse(base).ok()?.join(target).ok().map(String::from)
}

impl Store for RegistryStore {
    fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    fn registry_host(&self) -> Option<String> {
        Some(self.registry.clone())
    }

    fn blob_exists(&self, digest: &Digest) -> Result<Option<u64>, Error> {
        let url = self.url(&format!("blobs/{digest}"));
        let r = self.send(
            Method::HEAD,
            &url,
            &HeaderMap::new(),
            &RequestBody::Empty,
            &Access::Pull,
        )?;
        match r.status() {
            StatusCode::OK => Ok(Some(r.content_length().unwrap_or(0))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.unexpected("HEAD", &url, r)),
        }
    }

    fn put_blob(&self, descriptor: &Descriptor, source: BlobSource<'_>) -> Result<(), Error> {
        if self.blob_exists(&descriptor.digest)?.is_some() {
            return Ok(());
        }
        let mut last_error = None;
        for _ in 0..self.retry.attempts.max(1) {
            match self.upload_once(descriptor, source) {
                Ok(()) => {
                    last_error = None;
                    break;
                }
                // A broken session is restarted from scratch; anything else is final.
                Err(e @ (Error::Refused { .. } | Error::RetriesExhausted { .. })) => {
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = last_error {
            return Err(e);
        }
        match self.blob_exists(&descriptor.digest)? {
            Some(size) if size == descriptor.size || size == 0 => Ok(()),
            Some(size) => Err(Error::SizeMismatch {
                what: format!("uploaded blob {} in {}", descriptor.digest, self.name()),
                expected: descriptor.size,
                found: size,
            }),
            None => Err(Error::NotFound {
                what: format!(
                    "blob {} in {} right after its upload was accepted",
                    descriptor.digest,
                    self.name()
                ),
            }),
        }
    }

    fn get_blob(&self, descriptor: &Descriptor, sink: &mut dyn Write) -> Result<(), Error> {
        let progress = ProgressHandle::track(
            &self.progress,
            || format!("download {}", descriptor.digest.short()),
            descriptor.size,
        );
        let mut counted = ProgressWriter {
            inner: sink,
            progress: progress.clone(),
        };
        let result = self.download(descriptor, &mut counted);
        if let Some(p) = progress {
            p.0.end();
        }
        result
    }

    fn put_manifest(&self, bytes: &[u8], media_type: &str) -> Result<Descriptor, Error> {
        let checked = self.to_push(bytes, media_type)?;
        let digest = checked.descriptor.digest.clone();
        let what = format!("manifest {}@{digest}", self.name());
        let response = self.put_manifest_at(&digest.to_string(), bytes, media_type, None)?;
        if !response.status().is_success() {
            return Err(self.unexpected(
                "PUT",
                &self.url(&format!("manifests/{digest}")),
                response,
            ));
        }
        self.check_put_digest(&response, &what, &digest)?;
        self.list_as_referrer(&checked, media_type)?;
        Ok(referrer_descriptor(&checked.manifest, media_type, bytes))
    }

    fn adopt_manifest(&self, bytes: &[u8], media_type: &str) -> Result<bool, Error> {
        let checked = self.to_push(bytes, media_type)?;
        let digest = &checked.descriptor.digest;
        let url = self.url(&format!("manifests/{digest}"));
        let r = self.send(
            Method::HEAD,
            &url,
            &Self::manifest_accept(),
            &RequestBody::Empty,
            &Access::Pull,
        )?;
        // Anything but a plain yes (a 404, an error, another digest named) is left to the PUT.
        let named = r
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok());
        if r.status() != StatusCode::OK || named.is_some_and(|n| n != digest.to_string()) {
            return Ok(false);
        }
        self.list_as_referrer(&checked, media_type)?;
        Ok(true)
    }

    fn present_referrers(&self, subject: &Digest) -> Result<Option<BTreeSet<Digest>>, Error> {
        if !self.referrers_api_supported()? {
            return Ok(None);
        }
        let listed = self.referrers(subject)?;
        Ok((listed.path == ReferrersPath::Api)
            .then(|| listed.descriptors.into_iter().map(|d| d.digest).collect()))
    }

    fn tag(&self, tag: &Tag, manifest: &FetchedManifest) -> Result<(), Error> {
        let response = self.put_manifest_at(
            tag.as_str(),
            &manifest.bytes,
            &manifest.descriptor.media_type,
            None,
        )?;
        if !response.status().is_success() {
            return Err(self.unexpected("PUT", &self.url(&format!("manifests/{tag}")), response));
        }
        self.check_put_digest(
            &response,
            &format!("manifest {}:{tag}", self.name()),
            &manifest.descriptor.digest,
        )?;
        if tag.as_str().starts_with("sha256-") {
            self.digest_tag_written(tag.as_str());
        }
        Ok(())
    }

    fn get_manifest(&self, digest: &Digest) -> Result<FetchedManifest, Error> {
        let recent = || self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(kept) = recent()
            .iter()
            .flatten()
            .find(|m| m.descriptor.digest == *digest)
        {
            return Ok(kept.clone());
        }
        match self.fetch_manifest(&digest.to_string(), Some(digest))? {
            Some((m, _)) => {
                if let Some(kept) = recent().as_mut()
                    && m.bytes.len() <= MAX_RECENT_MANIFEST_SIZE
                {
                    if kept.len() >= RECENT_MANIFESTS {
                        kept.pop_front();
                    }
                    kept.push_back(m.clone());
                }
                Ok(m)
            }
            None => Err(Error::NotFound {
                what: format!("manifest {}@{digest}", self.name()),
            }),
        }
    }

    fn get_tagged(&self, tag: &Tag) -> Result<Option<FetchedManifest>, Error> {
        if tag.as_str().starts_with("sha256-") && self.digest_tag_absent(tag.as_str())? {
            return Ok(None);
        }
        Ok(self.fetch_manifest(tag.as_str(), None)?.map(|(m, _)| m))
    }

    fn referrers(&self, subject: &Digest) -> Result<Referrers, Error> {
        // Once the registry has shown it has no API, every listing goes to the tag schema
        // straight away: one round trip per subject instead of two (copy, tree and rescan list
        // the referrers of every artifact and referrer they meet).
        if *self.referrers_api.lock().expect("lock") == Some(false) {
            return self.fallback_referrers(subject);
        }
        let first = self.url(&format!("referrers/{subject}"));
        let response = self.get(&first, &HeaderMap::new(), &Access::Pull)?;
        if response.status() == StatusCode::OK && is_index_content_type(&response) {
            *self.referrers_api.lock().expect("lock") = Some(true);
            let mut descriptors = Vec::new();
            let mut next = Some(response);
            let mut pages = 0;
            while let Some(page) = next.take() {
                pages += 1;
                let link = next_link(&page, &first);
                let what = format!("referrers of {subject} in {}", self.name());
                let bytes =
                    self.read_small(page, MAX_MANIFEST_SIZE as u64 + 1, "GET", &first, &what)?;
                if bytes.len() > MAX_MANIFEST_SIZE {
                    return Err(Error::ManifestTooLarge {
                        what,
                        limit: MAX_MANIFEST_SIZE,
                    });
                }
                match Manifest::parse(&bytes, Some(MEDIA_TYPE_IMAGE_INDEX)) {
                    Ok((Manifest::Index(index), _)) => descriptors.extend(index.manifests),
                    Ok(_) => unreachable!("parsed as an index media type"),
                    Err(source) => return Err(Error::BadManifest { what, source }),
                }
                let room = pages < MAX_LIST_PAGES && descriptors.len() < MAX_LISTED_REFERRERS;
                if let (Some(link), true) = (link, room) {
                    let r = self.get(&link, &HeaderMap::new(), &Access::Pull)?;
                    if !r.status().is_success() {
                        return Err(self.unexpected("GET", &link, r));
                    }
                    next = Some(r);
                }
            }
            return Ok(Referrers {
                path: ReferrersPath::Api,
                descriptors,
            });
        }
        // 404, 400, 406 or a wrong content type: the registry has no API (an API answers 200
        // with an empty index for a subject nobody refers to); use the tag schema.
        *self.referrers_api.lock().expect("lock") = Some(false);
        self.fallback_referrers(subject)
    }

    fn tags(&self) -> Result<Vec<Tag>, Error> {
        let mut tags = Vec::new();
        self.each_tag(&mut |t| tags.push(t))?;
        Ok(tags)
    }

    fn each_tag(&self, visit: &mut dyn FnMut(Tag)) -> Result<(), Error> {
        self.list_tags(visit, true).map(drop)
    }

    fn delete_manifest(&self, digest: &Digest) -> Result<(), Error> {
        if let Some(kept) = self
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            kept.retain(|m| m.descriptor.digest != *digest);
        }
        let url = self.url(&format!("manifests/{digest}"));
        let r = self.send(
            Method::DELETE,
            &url,
            &HeaderMap::new(),
            &RequestBody::Empty,
            &Access::Push,
        )?;
        match r.status() {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            StatusCode::NOT_FOUND => Err(Error::NotFound {
                what: format!("manifest {}@{digest}", self.name()),
            }),
            StatusCode::METHOD_NOT_ALLOWED => Err(Error::Unsupported {
                what: self.name(),
                reason: "the registry does not allow deleting manifests (distribution: storage.delete.enabled)".into(),
            }),
            _ => Err(self.unexpected("DELETE", &url, r)),
        }
    }

    fn delete_tag(&self, tag: &Tag) -> Result<(), Error> {
        let url = self.url(&format!("manifests/{tag}"));
        let r = self.send(
            Method::DELETE,
            &url,
            &HeaderMap::new(),
            &RequestBody::Empty,
            &Access::Push,
        )?;
        match r.status() {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            StatusCode::NOT_FOUND => Err(Error::NotFound {
                what: format!("tag {}:{tag}", self.name()),
            }),
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::BAD_REQUEST => Err(Error::Unsupported {
                what: format!("{}:{tag}", self.name()),
                reason: "the registry does not delete tags on their own".into(),
            }),
            _ => Err(self.unexpected("DELETE", &url, r)),
        }
    }

    fn mount_source(&self, other: &dyn Store) -> Option<String> {
        let host = other.registry_host()?;
        if host != self.registry {
            return None;
        }
        let name = other.name();
        let repo = name.strip_prefix(&format!("{host}/"))?.to_owned();
        (repo != self.repository).then_some(repo)
    }

    fn mount_blob(&self, descriptor: &Descriptor, from: &str) -> Result<bool, Error> {
        let query = format!("?mount={}&from={}", descriptor.digest, percent_encode(from));
        let r = self.start_upload(&Access::Mount(from.to_owned()), &query)?;
        match r.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // The registry opened an ordinary upload instead; close it.
                if let Ok(location) = self.location(&r, "mount") {
                    let _ = self.send(
                        Method::DELETE,
                        location.as_str(),
                        &HeaderMap::new(),
                        &RequestBody::Empty,
                        &Access::Push,
                    );
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }
}

/// Media types custody accepts when asking for a manifest.
pub const ACCEPTED_MANIFEST_TYPES: [&str; 4] = [
    MEDIA_TYPE_IMAGE_MANIFEST,
    MEDIA_TYPE_IMAGE_INDEX,
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_DOCKER_MANIFEST_LIST,
];

/// The resolver's own words when `e` failed on name resolution (hyper's connector reports it
/// as "dns error: ..."), else `None`.
fn dns_failure(e: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.to_string().starts_with("dns error") {
            let mut inner = c;
            while let Some(next) = inner.source() {
                inner = next;
            }
            return Some(inner.to_string());
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:1",
            "[::1]:5000",
            "127.8.9.1",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["ghcr.io", "10.0.0.1:5000", "localhost.example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        assert!(p.delay(1, None) <= Duration::from_millis(500));
        assert!(p.delay(10, None) <= p.max_delay);
        assert!(p.delay(10, None) >= p.max_delay / 2);
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(100))),
            p.max_delay,
            "Retry-After is honoured but capped"
        );
    }

    #[test]
    fn a_429_pause_holds_the_whole_store_until_its_latest_end() {
        let store = RegistryStore::new("127.0.0.1:1", "x/y", &Options::default()).unwrap();
        assert!(store.paused_until.lock().unwrap().is_none());
        store.pause_for(Duration::from_secs(60));
        let long = store.paused_until.lock().unwrap().unwrap();
        // A shorter pause another worker was told does not cut the longer one short.
        store.pause_for(Duration::from_millis(1));
        assert_eq!(*store.paused_until.lock().unwrap(), Some(long));
        store.pause_for(Duration::from_secs(120));
        assert!(store.paused_until.lock().unwrap().unwrap() > long);
    }

    #[test]
    fn tag_lists_are_read_tag_by_tag_and_malformed_ones_refused() {
        let read = |json: &str| {
            let mut tags = Vec::new();
            each_listed_tag(json.as_bytes(), &mut |t| tags.push(t.to_string())).map(|()| tags)
        };
        let ok: &[(&str, &[&str])] = &[
            (
                r#"{"name":"a/b","tags":["v1","latest"]}"#,
                &["v1", "latest"],
            ),
            (
                r#"{"tags":["v1"],"name":"a/b","extra":{"x":[1,{"y":null}]}}"#,
                &["v1"],
            ),
            (r#"{"name":"a/b","tags":null}"#, &[]),
            (r#"{"name":"a/b"}"#, &[]),
            (r#"{"tags":[]}"#, &[]),
            // Names that are not tags are skipped, not fatal.
            (r#"{"tags":["-bad","ok","","a\u0041"]}"#, &["ok", "aA"]),
        ];
        for (json, want) in ok {
            assert_eq!(read(json).unwrap(), *want, "{json}");
        }
        for bad in [
            "",
            "[]",
            r#"{"tags":"v1"}"#,
            r#"{"tags":[1]}"#,
            r#"{"tags":["v1"]"#,
            r#"{"tags":["v1"]} trailing"#,
            r#"{"tags":["v1"],"tags2":}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_realms_get_credentials_only_over_https_or_on_the_registrys_own_plain_host() {
        // (registry, registry over plain HTTP, realm, allowed)
        let rows = [
            ("ghcr.io", false, "https://ghcr.io/token", true),
            ("docker.io", false, "https://auth.docker.io/token", true),
            ("reg.example", false, "http://reg.example/token", false),
            ("reg.example", false, "http://127.0.0.1:5001/token", false),
            ("reg.example", false, "ftp://reg.example/token", false),
            ("127.0.0.1:5000", true, "http://127.0.0.1:5001/token", true),
            ("127.0.0.1:5000", true, "http://localhost:5001/token", true),
            ("127.0.0.1:5000", true, "http://evil.example/token", false),
            ("10.0.0.5:5000", true, "http://10.0.0.5:5001/token", true),
            ("10.0.0.5:5000", true, "http://127.0.0.1:5001/token", false),
            ("10.0.0.5:5000", true, "http://10.0.0.6/token", false),
            ("10.0.0.5:5000", true, "https://auth.example/token", true),
        ];
        for (registry, plain, realm, allowed) in rows {
            let url = Url::parse(realm).unwrap();
            let got = check_realm(registry, plain, &url);
            assert_eq!(got.is_ok(), allowed, "{registry} {realm}: {got:?}");
            if let Err(e) = got {
                assert!(e.contains("refusing to send credentials"), "{e}");
            }
        }
    }

    #[test]
    fn timeouts_parse_bounded() {
        for (text, ms) in [
            ("30", 30_000),
            ("2s", 2000),
            ("500ms", 500),
            ("2m", 120_000),
        ] {
            assert_eq!(
                text.parse::<Timeout>(),
                Ok(Timeout(Duration::from_millis(ms))),
                "{text}"
            );
        }
        for bad in [
            "",
            "s",
            "0",
            "0ms",
            "-1s",
            "1h",
            "2 s",
            "1.5s",
            "9999999999",
            "25m0",
            "1441m",
        ] {
            assert!(bad.parse::<Timeout>().is_err(), "{bad:?}");
        }
        assert_eq!(Timeout(Duration::from_secs(2)).to_string(), "2s");
        assert_eq!(Timeout(Duration::from_millis(1500)).to_string(), "1500ms");
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encode("a/b c:d"), "a%2Fb%20c%3Ad");
    }
}
