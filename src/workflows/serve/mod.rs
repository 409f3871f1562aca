//! `custody serve`: verification as an HTTPS service for clusters. `POST /v1/verify` answers
//! with the verify report; `/admission/validate` and `/admission/mutate` are Kubernetes
//! admission webhooks (`admission.k8s.io/v1`) that verify every image of a Pod or pod template
//! and pin tags to the verified digests; `/healthz`, `/readyz` and `/metrics` serve operators.
//!
//! Verification is the library's blocking [`verify::artifact`], run on a bounded blocking pool;
//! verdicts are cached by (repository, digest, policy digest, trusted root digest, vulnerability
//! database digest). The policy, trusted root, database and TLS files are polled and reloaded
//! when their content changes; a file that no longer loads leaves the last good one in place.
//!
//! A signed verification summary from a trusted verifier can stand for the full verification
//! ([`summary`]); pods' `imagePullSecrets` are read from a mounted folder ([`pull_secrets`]).
//! Asked to stop ([`StopHandle`]), the server stops accepting, reports not ready, lets the
//! requests in flight finish within the drain timeout, and returns.

pub mod admission;
pub mod cache;
mod http;
pub mod metrics;
pub mod pull_secrets;
mod sources;
pub mod summary;
mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::decisions::verify::{self, VerifyOptions, VerifyReport};
use crate::foundation::reference::Reference;
use crate::storage::store::{self, Store};
use crate::storage::transfer;

pub use self::cache::{Basis, CacheSettings};
use self::cache::{Key, Verdict, VerdictCache};
use self::metrics::Metrics;
use self::pull_secrets::SecretRef;
use self::sources::Watched;
pub use self::summary::SummarySettings;

/// Largest `POST /v1/verify` body.
pub const MAX_VERIFY_BODY: usize = 64 * 1024;
/// Largest AdmissionReview body: the API server accepts objects up to 3 MiB, and an UPDATE
/// carries the old object too.
pub const MAX_REVIEW_BODY: usize = 7 * 1024 * 1024;
/// Repositories whose registry connection (and tokens) are kept between requests.
const MAX_STORES: usize = 1024;

/// How to serve.
#[derive(Clone)]
pub struct Config {
    /// Address to listen on (port 0: any free port, see [`Server::local_addr`]).
    pub listen: SocketAddr,
    /// PEM certificate chain and private key of the serving certificate; reloaded on change.
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// The policy file; reloaded on change.
    pub policy: PathBuf,
    /// `trusted_root.json` for keyless signers and log checks; reloaded on change.
    pub trusted_root: Option<PathBuf>,
    /// OSV databases for the policy's `vulnerabilities:` gate; reloaded on change.
    pub vulnerability_dbs: Vec<PathBuf>,
    /// How registries are reached.
    pub store: store::Options,
    pub cache: CacheSettings,
    /// Verifications that run at once (the blocking pool's size).
    pub workers: usize,
    /// How often the policy, trust, database and TLS files are checked for changes.
    pub reload_interval: Duration,
    /// Receives reloads and reload failures (the library does not print).
    pub on_event: Option<EventSink>,
    /// Whose signed verification summaries stand for a full verification.
    pub summaries: SummarySettings,
    /// How long requests in flight may take to finish once a stop is asked for.
    pub drain_timeout: Duration,
    /// The folder of pods' pull secrets (`<namespace>.<name>` files holding a
    /// `.dockerconfigjson`); `None`: serve's own credentials only.
    pub pull_secrets: Option<PathBuf>,
    /// How policy scopes that name a TUF mirror obtain their root.
    pub tuf: Option<crate::evidence::trust::Options>,
}

/// Where [`Event`]s go.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("policy", &self.policy)
            .field("trusted_root", &self.trusted_root)
            .field("vulnerability_dbs", &self.vulnerability_dbs)
            .field("cache", &self.cache)
            .field("workers", &self.workers)
            .field("reload_interval", &self.reload_interval)
            .field("summaries", &self.summaries)
            .field("drain_timeout", &self.drain_timeout)
            .field("pull_secrets", &self.pull_secrets)
            .finish_non_exhaustive()
    }
}

/// Something an operator wants to see in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A file changed and its new content is in use.
    Reloaded { what: String },
    /// A file changed but could not be used; the previous content stays in use.
    ReloadFailed { what: String, error: String },
    /// A stop was asked for: no new connections, the requests in flight get `timeout`.
    Draining { timeout: Duration },
}

/// Why the server could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the server runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot use tls {what} {path}: {reason}")]
    Tls {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot load policy {path}")]
    Policy {
        path: PathBuf,
        #[source]
        source: crate::decisions::policy::PolicyError,
    },
    #[error("cannot load trusted root {path}")]
    TrustedRoot {
        path: PathBuf,
        #[source]
        source: crate::evidence::trust::TrustError,
    },
    #[error("cannot load the vulnerability database")]
    Database(#[source] crate::decisions::vuln::DbError),
    #[error("cannot load the trusted root of policy scope {scope}")]
    ScopeTrust {
        scope: String,
        #[source]
        source: Box<crate::evidence::trust::TrustError>,
    },
    #[error("cannot use vsa verifier key {path}: {reason}")]
    VerifierKey { path: PathBuf, reason: String },
    #[error("the listener failed")]
    Accept(#[source] std::io::Error),
}

impl crate::foundation::hint::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Tls { .. } => Some(
                "give --tls-cert a PEM certificate chain and --tls-key its PEM private key (PKCS#8, SEC1 or PKCS#1)".into(),
            ),
            Error::Policy { path, .. } => Some(format!(
                "check the policy with `custody policy check {}`",
                path.display()
            )),
            _ => None,
        }
    }
}

/// A verification that could not run (as opposed to a refusal, which is a report).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CheckError {
    #[error("{reference} is not a valid image reference: {reason}")]
    Reference { reference: String, reason: String },
    #[error("cannot reach the registry of {reference}: {reason}")]
    Store { reference: String, reason: String },
    #[error("could not verify {reference}: {reason}")]
    Verify { reference: String, reason: String },
    #[error("verification of {reference} did not finish within the webhook's {budget_ms} ms")]
    Deadline { reference: String, budget_ms: u128 },
    #[error("verification of {reference} stopped unexpectedly")]
    Crashed { reference: String },
}

/// One verification's answer: the report (shared with the cache), whether the cache gave it,
/// and how it was reached.
#[derive(Debug, Clone)]
pub struct Checked {
    pub report: Arc<VerifyReport>,
    pub cached: bool,
    pub basis: Basis,
}

impl Checked {
    fn from_cache(verdict: Verdict) -> Checked {
        Checked {
            report: verdict.report,
            cached: true,
            basis: verdict.basis,
        }
    }
}

/// The pull secrets a request may use: the pod's, by namespace and name.
#[derive(Debug, Clone, Default)]
pub struct PullSecrets(Vec<SecretRef>);

impl PullSecrets {
    /// The secrets of `names` in `namespace` (names that are not valid secret names are
    /// skipped).
    pub fn new(namespace: &str, names: &[String]) -> PullSecrets {
        PullSecrets(
            names
                .iter()
                .filter_map(|n| SecretRef::new(namespace, n))
                .collect(),
        )
    }
}

/// Asks a running server to stop: it drains, then [`Server::run`] returns.
#[derive(Clone, Debug)]
pub struct StopHandle(Arc<tokio::sync::watch::Sender<bool>>);

/// What [`Server::run`] waits on to stop.
#[derive(Debug)]
pub struct Stop(StopOn);

#[derive(Debug)]
enum StopOn {
    Handle(tokio::sync::watch::Receiver<bool>),
    /// SIGTERM (what the kubelet sends) or SIGINT.
    Signals,
}

/// A stop handle and what the server waits on.
pub fn stop_channel() -> (StopHandle, Stop) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    (StopHandle(Arc::new(tx)), Stop(StopOn::Handle(rx)))
}

impl StopHandle {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

type Waiting = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl Stop {
    /// Stops on the process's SIGTERM or SIGINT (the caller chooses to hand them over).
    pub fn on_signals() -> Stop {
        Stop(StopOn::Signals)
    }

    /// What to wait on; signals are registered here, inside the runtime.
    fn arm(self) -> std::io::Result<Waiting> {
        match self.0 {
            StopOn::Handle(mut rx) => Ok(Box::pin(async move {
                if rx.wait_for(|stop| *stop).await.is_err() {
                    // Every handle dropped without a stop: never stop.
                    std::future::pending::<()>().await;
                }
            })),
            #[cfg(unix)]
            StopOn::Signals => {
                use tokio::signal::unix::{SignalKind, signal};
                let mut term = signal(SignalKind::terminate())?;
                let mut int = signal(SignalKind::interrupt())?;
                Ok(Box::pin(async move {
                    let term = std::pin::pin!(term.recv());
                    let int = std::pin::pin!(int.recv());
                    http::race(term, int).await;
                }))
            }
            #[cfg(not(unix))]
            StopOn::Signals => Ok(Box::pin(async {
                let _ = tokio::signal::ctrl_c().await;
            })),
        }
    }
}

/// Everything the handlers share.
pub(crate) struct State {
    sources: Watched,
    cache: VerdictCache,
    /// Misses being verified now, so concurrent requests for one key wait for one verification.
    in_flight: Mutex<HashMap<Key, Arc<Flight>>>,
    stores: Mutex<HashMap<String, Arc<dyn Store>>>,
    store_options: store::Options,
    pub(crate) metrics: Metrics,
    verifiers: summary::Verifiers,
    pull_secrets: Option<PathBuf>,
    /// Set once a stop was asked for: `/readyz` answers 503.
    pub(crate) draining: AtomicBool,
    /// Requests being answered now.
    pub(crate) busy: AtomicUsize,
}

/// A verification in progress and, once done, its result.
#[derive(Default)]
struct Flight {
    result: Mutex<Option<Result<Verdict, CheckError>>>,
    done: Condvar,
}

/// Joined error messages of a chain, for answers that cross the wire.
fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

impl State {
    /// The store for `reference`: with the first of the pod's pull secrets that has a
    /// credential for its registry, else with serve's own credentials.
    fn store_for(
        &self,
        reference: &Reference,
        secrets: &PullSecrets,
    ) -> Result<Arc<dyn Store>, CheckError> {
        let found = match (&self.pull_secrets, reference.registry()) {
            (Some(dir), Some(registry)) if !secrets.0.is_empty() => {
                pull_secrets::lookup(dir, &secrets.0, registry)
            }
            _ => None,
        };
        let key = match &found {
            // Another secret is another store, so one pod's credential never serves another's.
            Some(f) => format!("{}\n{}", reference.repository(), f.identity),
            None => reference.repository(),
        };
        let mut stores = self
            .stores
            .lock()
            .expect("store map lock is never poisoned");
        if let Some(s) = stores.get(&key) {
            return Ok(s.clone());
        }
        let options = match found {
            // Nor does it read what the server's own credential put in the cache.
            Some(f) => store::Options {
                credentials: f.sources,
                cache: None,
                ..self.store_options.clone()
            },
            None => self.store_options.clone(),
        };
        let opened: Arc<dyn Store> =
            Arc::from(store::open_existing(reference, &options).map_err(|e| {
                CheckError::Store {
                    reference: reference.to_string(),
                    reason: chain(&e),
                }
            })?);
        if stores.len() >= MAX_STORES {
            stores.clear();
        }
        stores.insert(key, opened.clone());
        Ok(opened)
    }

    /// The cached verdict for a reference that already names its digest, without blocking.
    pub(crate) fn cached(&self, reference: &Reference, scope: Option<&str>) -> Option<Checked> {
        let digest = reference.digest.clone()?;
        let key = self.sources.current().key(reference, scope, digest);
        let verdict = self.cache.get(&key)?;
        self.metrics.cache_hit();
        Some(Checked::from_cache(verdict))
    }

    /// Verifies `reference` (blocking): resolves a tag once, then answers from the cache or
    /// runs the verification, one per key however many requests ask at once.
    pub(crate) fn check(
        &self,
        reference: &Reference,
        scope: Option<&str>,
        secrets: &PullSecrets,
    ) -> Result<Checked, CheckError> {
        let snapshot = self.sources.current();
        let store = self.store_for(reference, secrets)?;
        let digest = match &reference.digest {
            Some(d) => d.clone(),
            None => match transfer::resolve(store.as_ref(), reference) {
                Ok(m) => m.descriptor.digest,
                // The verification says what went wrong, as `custody verify` would.
                Err(_) => {
                    self.metrics.cache_miss();
                    let report = self.verify_now(&snapshot, store.as_ref(), reference, scope)?;
                    return Ok(Checked {
                        report: Arc::new(report),
                        cached: false,
                        basis: Basis::Full,
                    });
                }
            },
        };
        let key = snapshot.key(reference, scope, digest);
        if let Some(verdict) = self.cache.get(&key) {
            self.metrics.cache_hit();
            return Ok(Checked::from_cache(verdict));
        }
        self.metrics.cache_miss();
        let (flight, leader) = {
            let mut in_flight = self
                .in_flight
                .lock()
                .expect("in-flight lock is never poisoned");
            match in_flight.get(&key) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = Arc::new(Flight::default());
                    in_flight.insert(key.clone(), f.clone());
                    (f, true)
                }
            }
        };
        if !leader {
            let mut result = flight.result.lock().expect("flight lock is never poisoned");
            while result.is_none() {
                result = flight
                    .done
                    .wait(result)
                    .expect("flight lock is never poisoned");
            }
            let verdict = result
                .clone()
                .expect("the loop ends once a result is set")?;
            return Ok(Checked::from_cache(verdict));
        }
        // The reference as given, so the report reads as `custody verify`'s would; it is
        // cached only if the tag still named the digest the key was made for.
        let summarised = self.summarised(&snapshot, store.as_ref(), reference, scope, &key);
        let result = match summarised {
            Some(report) => Ok(Verdict {
                report: Arc::new(report),
                basis: Basis::Vsa,
            }),
            None => self
                .verify_now(&snapshot, store.as_ref(), reference, scope)
                .map(|report| Verdict {
                    report: Arc::new(report),
                    basis: Basis::Full,
                }),
        };
        if let Ok(verdict) = &result
            && verdict.report.digest.as_ref() == Some(&key.digest)
        {
            self.cache.insert(key.clone(), verdict.clone());
        }
        *flight.result.lock().expect("flight lock is never poisoned") = Some(result.clone());
        flight.done.notify_all();
        self.in_flight
            .lock()
            .expect("in-flight lock is never poisoned")
            .remove(&key);
        let verdict = result?;
        Ok(Checked {
            report: verdict.report,
            cached: false,
            basis: verdict.basis,
        })
    }

    /// The report of a trusted verifier's summary for the key's digest, if one is attached
    /// and acceptable (see [`summary`]).
    fn summarised(
        &self,
        snapshot: &sources::Snapshot,
        store: &dyn Store,
        reference: &Reference,
        scope: Option<&str>,
        key: &Key,
    ) -> Option<VerifyReport> {
        if self.verifiers.is_empty() {
            return None;
        }
        // The summary must name the repository the scope was chosen for.
        let named = match scope {
            Some(s) => s.parse::<Reference>().ok()?,
            None => reference.clone(),
        };
        let trust = snapshot.trust_for(&key.repository);
        let mut report = self.verifiers.accept(
            store,
            &named,
            &key.digest,
            &snapshot.policy,
            trust.root,
            jiff::Timestamp::now(),
        )?;
        report.reference = reference.to_string();
        report.trusted_root = trust.origin.cloned();
        self.metrics.summary_accepted();
        Some(report)
    }

    fn verify_now(
        &self,
        snapshot: &sources::Snapshot,
        store: &dyn Store,
        reference: &Reference,
        scope: Option<&str>,
    ) -> Result<VerifyReport, CheckError> {
        let repository = scope.map_or_else(|| reference.repository(), str::to_owned);
        let trust = snapshot.trust_for(&repository);
        let options = VerifyOptions {
            trusted_root: trust.root.clone(),
            platform: None,
            now: None,
            scope_repository: scope.map(str::to_owned),
            vulnerability_db: snapshot.db.clone(),
            jobs: 0,
            attestations: store::elsewhere::Lookup {
                repository: None,
                store_options: self.store_options.clone(),
            },
        };
        let started = std::time::Instant::now();
        let result = verify::artifact(store, reference, &snapshot.policy, &options);
        self.metrics
            .verification(started.elapsed(), result.as_ref());
        let mut report = result.map_err(|e| CheckError::Verify {
            reference: reference.to_string(),
            reason: chain(&e),
        })?;
        report.trusted_root = trust.origin.cloned();
        Ok(report)
    }
}

/// A bound server, ready to run.
pub struct Server {
    listener: std::net::TcpListener,
    state: Arc<State>,
    tls: Arc<tls::CertFiles>,
    config: Config,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Loads the TLS pair, policy, trust and databases (any failure stops here) and binds.
    pub fn bind(config: Config) -> Result<Server, Error> {
        let tls = Arc::new(tls::CertFiles::load(&config.tls_cert, &config.tls_key)?);
        let sources = Watched::load(sources::Paths {
            policy: config.policy.clone(),
            trusted_root: config.trusted_root.clone(),
            vulnerability_dbs: config.vulnerability_dbs.clone(),
            tuf: config.tuf.clone(),
        })?;
        let verifiers = summary::Verifiers::load(&config.summaries)?;
        let listener =
            std::net::TcpListener::bind(config.listen).map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let state = Arc::new(State {
            sources,
            cache: VerdictCache::new(config.cache.clone()),
            in_flight: Mutex::new(HashMap::new()),
            stores: Mutex::new(HashMap::new()),
            // A server's stores live on and must see the registry as it is now (a signature's
            // tag pushed a second ago, an artifact deleted since), not as they read it earlier.
            store_options: store::Options {
                short_lived: false,
                ..config.store.clone()
            },
            metrics: Metrics::default(),
            verifiers,
            pull_secrets: config.pull_secrets.clone(),
            draining: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
        });
        Ok(Server {
            listener,
            state,
            tls,
            config,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener.local_addr().map_err(|source| Error::Bind {
            addr: self.config.listen,
            source,
        })
    }

    /// Serves until `stop` asks it to (then drains: see [`Config::drain_timeout`]) or the
    /// listener fails.
    pub fn run(self, stop: Stop) -> Result<(), Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_io()
            .enable_time()
            .max_blocking_threads(self.config.workers.max(1))
            .thread_name("custody-serve")
            .build()
            .map_err(Error::Runtime)?;
        let Server {
            listener,
            state,
            tls,
            config,
        } = self;
        let drain = config.drain_timeout;
        let result = runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).map_err(Error::Accept)?;
            let stop = stop.arm().map_err(Error::Runtime)?;
            let sink = config.on_event.clone();
            let draining = move || {
                if let Some(sink) = &sink {
                    sink(&Event::Draining { timeout: drain });
                }
            };
            tokio::spawn(reload_loop(state.clone(), tls.clone(), config.clone()));
            http::serve(listener, state, tls, stop, (drain, draining)).await
        });
        // Verifications the answers no longer wait for are not waited for either.
        runtime.shutdown_timeout(Duration::from_millis(100));
        result
    }
}

/// Polls the watched files and swaps in what changed.
async fn reload_loop(state: Arc<State>, tls: Arc<tls::CertFiles>, config: Config) {
    let mut interval =
        tokio::time::interval(config.reload_interval.max(Duration::from_millis(100)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let (state, tls) = (state.clone(), tls.clone());
        // Reading and parsing files blocks.
        let events = tokio::task::spawn_blocking(move || {
            let mut events = state.sources.poll();
            events.extend(tls.poll());
            for e in &events {
                state.metrics.reload(e);
            }
            events
        })
        .await
        .unwrap_or_default();
        if let Some(sink) = &config.on_event {
            events.iter().for_each(|e| sink(e));
        }
    }
}
