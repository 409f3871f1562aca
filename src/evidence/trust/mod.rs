//! Trusted roots for keyless verification, obtained through TUF: public-good Sigstore from an
//! embedded bootstrap `root.json`, or a private mirror from its initial root; metadata and
//! targets are cached per mirror and every cached byte is verified again before use.
//!
//! The TUF state machine is `sigstore-tuf`'s (the transport-free core, built without its HTTP
//! client): chosen over `tough` and over a client of our own because it is the same family as
//! `sigstore-verify` (it shares `sigstore-crypto`/`sigstore-types`, so it adds two small crates,
//! `glob` and `tracing`), it treats declared key ids as opaque (tough 0.24 recomputes them and so
//! cannot load GitHub's root nor walk Sigstore's chain through root v11), it persists and
//! re-verifies its cache and passes TUF's own conformance suite. It is async; custody is
//! blocking, so the transport here answers every fetch before returning its future, which
//! [`block_on`] then completes in one poll. Downloads go through custody's blocking HTTP client
//! with the byte caps the TUF client asks for.

pub mod conformance;
mod http;

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use sigstore_tuf::{FileStore, MetadataStore as _, StoreRepository, Updater};

use crate::evidence::sign::verify::{TrustRootError, TrustedRoot};

/// The public-good Sigstore TUF repository.
pub const PUBLIC_GOOD_MIRROR: &str = "https://tuf-repo-cdn.sigstore.dev";
/// Public-good's TUF `root.json` (v16), as shipped by `sigstore-trust-root` 0.15.1: the start
/// of the root chain. It may be expired: only the newest root reached must not be.
pub const PUBLIC_GOOD_TUF_ROOT: &[u8] = include_bytes!("public-good-root.json");
/// The public-good `trusted_root.json` shipped with the binary, used only when no verified
/// cache exists and the network may not be used.
pub const PUBLIC_GOOD_TRUSTED_ROOT: &str = sigstore_trust_root::SIGSTORE_PRODUCTION_TRUSTED_ROOT;
/// The target that carries the trust material.
pub const TRUSTED_ROOT_TARGET: &str = "trusted_root.json";
/// The target that names the signing services (Fulcio, Rekor, TSA) of the same instance.
pub const SIGNING_CONFIG_TARGET: &str = "signing_config.v0.2.json";
/// A verified cache younger than this is used without asking the mirror.
pub const REFRESH_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);
/// Largest initial `root.json` read (python-tuf's root cap).
pub const MAX_ROOT_SIZE: usize = 512_000;

const STATE_FILE: &str = "custody-state.json";
const INITIAL_ROOT_FILE: &str = "initial-root.json";

/// What to do when keyless verification has no usable trusted root.
pub const NO_ROOT_HINT: &str = "keyless signatures need a trusted root: run `custody trust update` (network), pass --trusted-root FILE (from `custody trust export` on a connected machine), or name one in the policy scope's `trust:`";

impl crate::foundation::hint::Hint for TrustError {
    fn hint(&self) -> Option<String> {
        match self {
            TrustError::Update {
                source: sigstore_tuf::Error::TargetNotFound(name),
                mirror,
            } if name == SIGNING_CONFIG_TARGET => Some(format!(
                "{mirror} publishes no {SIGNING_CONFIG_TARGET}; give --signing-config FILE (and --trusted-root FILE) instead"
            )),
            _ => Some(NO_ROOT_HINT.into()),
        }
    }
}

/// Why no trusted root could be obtained.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("tuf update from {mirror} failed")]
    Update {
        mirror: String,
        #[source]
        source: sigstore_tuf::Error,
    },
    #[error("the cached tuf metadata of {mirror} cannot be used offline")]
    Cache {
        mirror: String,
        #[source]
        source: sigstore_tuf::Error,
    },
    #[error("no cached tuf metadata for {mirror} and the network may not be used")]
    NoCache { mirror: String },
    #[error(
        "the cached tuf metadata of {mirror} was fetched {age_hours} hours ago, more than the {allowed_hours} allowed"
    )]
    TooOld {
        mirror: String,
        age_hours: i64,
        allowed_hours: i64,
    },
    #[error("the embedded public-good tuf root expired at {expires}")]
    EmbeddedExpired { expires: String },
    #[error(
        "no initial root for mirror {mirror}: give one with `custody trust update --mirror URL --root FILE`"
    )]
    NoInitialRoot { mirror: String },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is larger than {max} bytes")]
    TooLarge { path: PathBuf, max: usize },
    #[error("cannot write the tuf cache {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the trusted root from {source_name} cannot be used")]
    TrustedRoot {
        source_name: String,
        #[source]
        source: TrustRootError,
    },
    #[error("cannot build the http client")]
    Http(#[source] reqwest::Error),
}

/// A TUF repository and the root that starts its chain.
#[derive(Clone, Debug)]
pub struct Mirror {
    /// Base URL: metadata at the top, targets under `/targets`.
    pub url: String,
    /// The initial (bootstrap) `root.json`.
    pub initial_root: Vec<u8>,
}

impl Mirror {
    pub fn public_good() -> Mirror {
        Mirror {
            url: PUBLIC_GOOD_MIRROR.into(),
            initial_root: PUBLIC_GOOD_TUF_ROOT.to_vec(),
        }
    }

    /// A mirror and its initial root as given; a root for public-good is never assumed.
    pub fn new(url: &str, initial_root: Vec<u8>) -> Mirror {
        Mirror {
            url: url.trim_end_matches('/').to_string(),
            initial_root,
        }
    }

    pub fn is_public_good(&self) -> bool {
        self.url == PUBLIC_GOOD_MIRROR
    }

    /// A mirror whose initial root was recorded in the cache by `custody trust update --root`
    /// (public-good needs none: its root is embedded).
    pub fn from_cache(cache: &Path, url: &str) -> Result<Mirror, TrustError> {
        let url = url.trim_end_matches('/');
        if url == PUBLIC_GOOD_MIRROR {
            return Ok(Mirror::public_good());
        }
        let path = mirror_dir(cache, url).join(INITIAL_ROOT_FILE);
        match read_bounded(&path, MAX_ROOT_SIZE) {
            Ok(root) => Ok(Mirror::new(url, root)),
            Err(TrustError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Err(TrustError::NoInitialRoot { mirror: url.into() })
            }
            Err(e) => Err(e),
        }
    }

    /// Records the initial root so later runs can start the chain from it.
    pub fn remember(&self, cache: &Path) -> Result<(), TrustError> {
        if self.is_public_good() {
            return Ok(());
        }
        let store = FileStore::new(mirror_dir(cache, &self.url));
        store
            .store(INITIAL_ROOT_FILE, &self.initial_root)
            .map_err(|e| TrustError::Write {
                path: mirror_dir(cache, &self.url).join(INITIAL_ROOT_FILE),
                source: std::io::Error::other(e.to_string()),
            })
    }
}

/// May the network be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    Online,
    /// Cache (or, for public-good, the embedded root) only.
    Offline,
}

/// When to ask the mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Only when the verified cache is older than [`REFRESH_AFTER`], or expired.
    WhenStale,
    /// Every time (`custody trust update`).
    Always,
}

/// How to obtain the root.
#[derive(Clone, Debug)]
pub struct Options {
    /// The cache folder: `$XDG_CACHE_HOME/custody/tuf`; each mirror has a folder under it.
    pub cache: PathBuf,
    pub network: Network,
    pub refresh: Refresh,
    /// The one instant every expiry check of this run uses (TUF §5.1).
    pub now: jiff::Timestamp,
    /// Offline only: accept a cache whose metadata expired, verified as of the time it was
    /// fetched, if that was at most this long ago.
    pub max_cache_age: Option<jiff::SignedDuration>,
}

/// Where a trusted root came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootSource {
    /// TUF metadata fetched and verified during this run.
    Tuf,
    /// The TUF cache of an earlier run, verified again now.
    TufCache,
    /// The public-good trusted root shipped with custody (no cache, no network).
    Embedded,
    /// A `trusted_root.json` file given by flag or policy.
    File,
}

/// Which trusted root a verification used: the verify report's `trustedRoot`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RootOrigin {
    pub source: RootSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Versions of the TUF roles that vouched for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuf: Option<TufVersions>,
    /// When the TUF metadata was last fetched from the mirror (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetched: Option<String>,
    /// Seconds since then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<i64>,
    /// Expired metadata accepted offline because its age was allowed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    /// sha256 of the `trusted_root.json` bytes.
    pub sha256: String,
}

impl RootOrigin {
    /// One line for the human verify report: where the root came from, its versions and age.
    pub fn describe(&self) -> String {
        let o = self;
        let source = serde_json::to_value(o.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let place = o.mirror.as_deref().or(o.path.as_deref()).unwrap_or("");
        let versions = o
            .tuf
            .as_ref()
            .map(|t| format!(", tuf root v{} timestamp v{}", t.root, t.timestamp))
            .unwrap_or_default();
        let age = o
            .age_seconds
            .map(|s| format!(", {}h old", s / 3600))
            .unwrap_or_default();
        format!("trusted root: {source} {place}{versions}{age}\n")
    }
}

/// Role versions and the metadata expiry that bounds the root's freshness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TufVersions {
    pub root: u64,
    pub timestamp: u64,
    pub snapshot: u64,
    pub targets: u64,
    /// The earliest expiry of root, timestamp, snapshot and targets (RFC 3339).
    pub expires: String,
    pub root_expires: String,
}

/// A trusted root and where it came from.
#[derive(Clone, Debug)]
pub struct Obtained {
    pub root: TrustedRoot,
    /// The `trusted_root.json` bytes (for `custody trust export`).
    pub json: Vec<u8>,
    pub origin: RootOrigin,
}

/// `$XDG_CACHE_HOME/custody/tuf`, else `$HOME/.cache/custody/tuf`; `None` without either.
pub fn default_cache(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    crate::foundation::cache_home(env).map(|c| c.join("tuf"))
}

/// The cache folder of one mirror: the first 16 hex digits of sha256(URL).
pub fn mirror_dir(cache: &Path, url: &str) -> PathBuf {
    let hash = hex::encode(Sha256::digest(url.trim_end_matches('/').as_bytes()));
    cache.join(&hash[..16])
}

/// The mirror `custody trust update --mirror` made the default, else public-good.
pub fn default_mirror_url(cache: &Path) -> String {
    read_bounded(&cache.join("default-mirror"), 4096)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| s.starts_with("http://") || s.starts_with("https://"))
        .unwrap_or_else(|| PUBLIC_GOOD_MIRROR.to_string())
}

/// Makes `url` the default mirror (public-good clears the setting).
pub fn set_default_mirror(cache: &Path, url: &str) -> Result<(), TrustError> {
    let path = cache.join("default-mirror");
    let result = if url.trim_end_matches('/') == PUBLIC_GOOD_MIRROR {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    } else {
        std::fs::create_dir_all(cache).and_then(|()| std::fs::write(&path, url))
    };
    result.map_err(|source| TrustError::Write { path, source })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    mirror: String,
    fetched: jiff::Timestamp,
}

/// The trusted root of `mirror`, per `options`: the verified cache while it is fresh, else a
/// TUF update (online), else the cache or, for public-good only, the embedded root (offline).
pub fn obtain(mirror: &Mirror, options: &Options) -> Result<Obtained, TrustError> {
    let dir = mirror_dir(&options.cache, &mirror.url);
    let state = read_state(&dir);
    let fresh = state.as_ref().is_some_and(|s| {
        s.fetched <= options.now && options.now.duration_since(s.fetched) < REFRESH_AFTER
    });
    if options.network == Network::Offline || (options.refresh == Refresh::WhenStale && fresh) {
        match from_cache(mirror, &dir, options.now, state.as_ref()) {
            Ok(obtained) => return Ok(obtained),
            // An unusable cache is replaced by a fresh update below.
            Err(_) if options.network == Network::Online => {}
            Err(e) => return offline_fallback(mirror, &dir, options, state.as_ref(), e),
        }
    }
    match update(mirror, &dir, options) {
        // The mirror cannot be reached: what a run without network would use (a verified
        // cache, or public-good's embedded root), so an unreachable mirror is never worse
        // than `--offline`. A mirror that answers with bad metadata is refused outright.
        Err(TrustError::Update {
            source: sigstore_tuf::Error::Transport { .. },
            ..
        }) if options.refresh == Refresh::WhenStale => {
            from_cache(mirror, &dir, options.now, state.as_ref()).or_else(|e| {
                let offline = Options {
                    network: Network::Offline,
                    ..options.clone()
                };
                offline_fallback(mirror, &dir, &offline, state.as_ref(), e)
            })
        }
        other => other,
    }
}

fn offline_fallback(
    mirror: &Mirror,
    dir: &Path,
    options: &Options,
    state: Option<&State>,
    error: TrustError,
) -> Result<Obtained, TrustError> {
    let Some(state) = state else {
        // Never fetched: public-good falls back to the root shipped with custody, a private
        // mirror has nothing to fall back to.
        return if mirror.is_public_good() {
            embedded(options.now)
        } else {
            Err(TrustError::NoCache {
                mirror: mirror.url.clone(),
            })
        };
    };
    let expired = matches!(
        &error,
        TrustError::Cache {
            source: sigstore_tuf::Error::Expired { .. },
            ..
        }
    );
    match options.max_cache_age {
        Some(allowed) if expired => {
            let age = options.now.duration_since(state.fetched);
            if age > allowed {
                return Err(TrustError::TooOld {
                    mirror: mirror.url.clone(),
                    age_hours: age.as_hours(),
                    allowed_hours: allowed.as_hours(),
                });
            }
            let mut obtained = from_cache(mirror, dir, state.fetched, Some(state))?;
            obtained.origin.age_seconds = Some(age.as_secs().max(0));
            obtained.origin.stale = true;
            Ok(obtained)
        }
        _ => Err(error),
    }
}

/// The public-good trusted root shipped with custody, while its TUF root is unexpired.
pub fn embedded(now: jiff::Timestamp) -> Result<Obtained, TrustError> {
    let set =
        sigstore_tuf::TrustedMetadataSet::from_root(PUBLIC_GOOD_TUF_ROOT).map_err(|source| {
            TrustError::Cache {
                mirror: PUBLIC_GOOD_MIRROR.into(),
                source,
            }
        })?;
    if set.root().expires < now {
        return Err(TrustError::EmbeddedExpired {
            expires: set.root().expires.to_string(),
        });
    }
    let json = PUBLIC_GOOD_TRUSTED_ROOT.as_bytes().to_vec();
    let root = parse_root(&json, "the embedded public-good trusted root")?;
    Ok(Obtained {
        root,
        origin: RootOrigin {
            source: RootSource::Embedded,
            mirror: Some(PUBLIC_GOOD_MIRROR.into()),
            path: None,
            tuf: None,
            fetched: None,
            age_seconds: None,
            stale: false,
            sha256: hex::encode(Sha256::digest(&json)),
        },
        json,
    })
}

/// A `trusted_root.json` file given by flag or policy.
pub fn from_file(path: &Path) -> Result<Obtained, TrustError> {
    let json = read_bounded(path, crate::evidence::sign::verify::MAX_TRUSTED_ROOT_SIZE)?;
    let root = parse_root(&json, &path.display().to_string())?;
    Ok(Obtained {
        root,
        origin: file_origin(path, &json),
        json,
    })
}

/// The origin of a `trusted_root.json` read from `path`.
pub fn file_origin(path: &Path, json: &[u8]) -> RootOrigin {
    RootOrigin {
        source: RootSource::File,
        mirror: None,
        path: Some(path.display().to_string()),
        tuf: None,
        fetched: None,
        age_seconds: None,
        stale: false,
        sha256: hex::encode(Sha256::digest(json)),
    }
}

fn from_cache(
    mirror: &Mirror,
    dir: &Path,
    now: jiff::Timestamp,
    state: Option<&State>,
) -> Result<Obtained, TrustError> {
    let err = |source| TrustError::Cache {
        mirror: mirror.url.clone(),
        source,
    };
    if state.is_none() {
        return Err(TrustError::NoCache {
            mirror: mirror.url.clone(),
        });
    }
    let store = FileStore::new(dir);
    let mut updater = Updater::new(StoreRepository::new(store.clone()), &mirror.initial_root)
        .map_err(err)?
        .with_store(ReadOnly(store));
    block_on(updater.refresh(now)).map_err(err)?;
    let json = block_on(updater.get_target(TRUSTED_ROOT_TARGET, now)).map_err(err)?;
    finish(mirror, &updater, json, RootSource::TufCache, state, now)
}

/// What keyless signing needs from `mirror`, in one TUF update over the network (signing is
/// on-line anyway): its `signing_config.v0.2.json`, and its trusted root to check the new
/// bundle against. The cache is updated as by [`obtain`].
pub fn signing_material(
    mirror: &Mirror,
    options: &Options,
) -> Result<(Vec<u8>, Obtained), TrustError> {
    let dir = mirror_dir(&options.cache, &mirror.url);
    let (obtained, config) = update_with(mirror, &dir, options, Some(SIGNING_CONFIG_TARGET))?;
    Ok((config.unwrap_or_default(), obtained))
}

fn update(mirror: &Mirror, dir: &Path, options: &Options) -> Result<Obtained, TrustError> {
    update_with(mirror, dir, options, None).map(|(obtained, _)| obtained)
}

/// A TUF update, the trusted root, and `extra` (another target) when asked for.
fn update_with(
    mirror: &Mirror,
    dir: &Path,
    options: &Options,
    extra: Option<&str>,
) -> Result<(Obtained, Option<Vec<u8>>), TrustError> {
    let err = |source| TrustError::Update {
        mirror: mirror.url.clone(),
        source,
    };
    let client = crate::foundation::http::client().map_err(TrustError::Http)?;
    let repo = http::HttpRepository::new(&mirror.url, client);
    let mut updater = Updater::new(repo, &mirror.initial_root)
        .map_err(err)?
        .with_store(FileStore::new(dir));
    block_on(updater.refresh(options.now)).map_err(err)?;
    let json = block_on(updater.get_target(TRUSTED_ROOT_TARGET, options.now)).map_err(err)?;
    let extra = match extra {
        Some(name) => Some(block_on(updater.get_target(name, options.now)).map_err(err)?),
        None => None,
    };
    let state = State {
        mirror: mirror.url.clone(),
        fetched: options.now,
    };
    let bytes = serde_json::to_vec(&state).expect("state serialises");
    FileStore::new(dir)
        .store(STATE_FILE, &bytes)
        .map_err(|e| TrustError::Write {
            path: dir.join(STATE_FILE),
            source: std::io::Error::other(e.to_string()),
        })?;
    let obtained = finish(
        mirror,
        &updater,
        json,
        RootSource::Tuf,
        Some(&state),
        options.now,
    )?;
    Ok((obtained, extra))
}

fn finish(
    mirror: &Mirror,
    updater: &Updater,
    json: Vec<u8>,
    source: RootSource,
    state: Option<&State>,
    now: jiff::Timestamp,
) -> Result<Obtained, TrustError> {
    let trusted = updater.trusted();
    let root_meta = trusted.root();
    let mut expires = root_meta.expires;
    let timestamp = trusted.timestamp().map(|t| {
        expires = expires.min(t.expires);
        t.version
    });
    let snapshot = trusted.snapshot().map(|s| {
        expires = expires.min(s.expires);
        s.version
    });
    let targets = trusted.targets_role("targets").map(|t| {
        expires = expires.min(t.expires);
        t.version
    });
    let root = parse_root(&json, &format!("{} ({TRUSTED_ROOT_TARGET})", mirror.url))?;
    Ok(Obtained {
        root,
        origin: RootOrigin {
            source,
            mirror: Some(mirror.url.clone()),
            path: None,
            tuf: Some(TufVersions {
                root: root_meta.version,
                timestamp: timestamp.unwrap_or(0),
                snapshot: snapshot.unwrap_or(0),
                targets: targets.unwrap_or(0),
                expires: expires.to_string(),
                root_expires: root_meta.expires.to_string(),
            }),
            fetched: state.map(|s| s.fetched.to_string()),
            age_seconds: state.map(|s| now.duration_since(s.fetched).as_secs().max(0)),
            stale: false,
            sha256: hex::encode(Sha256::digest(&json)),
        },
        json,
    })
}

fn parse_root(json: &[u8], source_name: &str) -> Result<TrustedRoot, TrustError> {
    TrustedRoot::from_json(json).map_err(|source| TrustError::TrustedRoot {
        source_name: source_name.into(),
        source,
    })
}

fn read_state(dir: &Path) -> Option<State> {
    let bytes = read_bounded(&dir.join(STATE_FILE), 4096).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn read_bounded(path: &Path, max: usize) -> Result<Vec<u8>, TrustError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|source| TrustError::Read {
        path: path.into(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| TrustError::Read {
            path: path.into(),
            source,
        })?;
    if bytes.len() > max {
        return Err(TrustError::TooLarge {
            path: path.into(),
            max,
        });
    }
    Ok(bytes)
}

/// A store that is read but never written: offline runs re-verify the cache without
/// rewriting it.
struct ReadOnly(FileStore);

impl sigstore_tuf::MetadataStore for ReadOnly {
    fn load(&self, name: &str) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        self.0.load(name)
    }

    fn store(&self, _name: &str, _bytes: &[u8]) -> sigstore_tuf::Result<()> {
        Ok(())
    }
}

/// Completes a future whose I/O already happened: every [`sigstore_tuf::Repository`] used here
/// fetches before it returns its future, so the TUF client's futures are ready at the first
/// poll. A future that is not is reported, never waited on.
fn block_on<T>(
    future: impl std::future::Future<Output = sigstore_tuf::Result<T>>,
) -> sigstore_tuf::Result<T> {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => Err(sigstore_tuf::Error::transport(
            "the tuf client waited on a transport that is not ready",
        )),
    }
}

#[cfg(test)]
mod tests;

/// One CA, log or TSA of a trusted root, for `custody trust show`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Authority {
    /// `certificate-authority`, `transparency-log`, `ct-log` or `timestamp-authority`.
    pub kind: &'static str,
    /// Its URL (or subject when it has none).
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// Absent: still valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
}

/// The authorities of a `trusted_root.json` (already checked by [`TrustedRoot::from_json`]),
/// each with its validity window.
pub fn authorities(json: &[u8]) -> Vec<Authority> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let text =
        |v: &serde_json::Value, p: &str| v.pointer(p).and_then(|s| s.as_str()).map(str::to_owned);
    let mut out = Vec::new();
    for (field, kind, name, window) in [
        (
            "certificateAuthorities",
            "certificate-authority",
            "/uri",
            "/validFor",
        ),
        (
            "tlogs",
            "transparency-log",
            "/baseUrl",
            "/publicKey/validFor",
        ),
        ("ctlogs", "ct-log", "/baseUrl", "/publicKey/validFor"),
        (
            "timestampAuthorities",
            "timestamp-authority",
            "/uri",
            "/validFor",
        ),
    ] {
        for entry in value
            .get(field)
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten()
        {
            out.push(Authority {
                kind,
                name: text(entry, name)
                    .or_else(|| text(entry, "/subject/commonName"))
                    .unwrap_or_else(|| "unnamed".into()),
                valid_from: text(entry, &format!("{window}/start")),
                valid_until: text(entry, &format!("{window}/end")),
            });
        }
    }
    out
}
