//! The fetch pool against a registry that counts: verify and copy never have more than
//! `--jobs` requests in flight while walking referrers, and a 429 with `Retry-After` in the
//! middle of a pooled walk is waited out and retried, not reported as missing evidence.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use custody::evidence::attach::BUNDLE_MEDIA_TYPE_V03;
use custody::foundation::digest::Digest;
use custody::foundation::oci::{
    self, Descriptor, ImageIndex, ImageManifest, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST,
};

use crate::support::{self, HostileServer, Request, Response, run, stderr, stdout};

/// Holds the requests it gates until `want` of them are in flight at once (or ten seconds
/// pass, so that a pool smaller than `want` cannot hang the test), then lets every request
/// straight through; records the most that were ever in flight.
struct Gate {
    want: usize,
    running: Mutex<usize>,
    arrived: Condvar,
    open: AtomicBool,
    most: AtomicUsize,
}

impl Gate {
    fn new(want: usize) -> Gate {
        Gate {
            want,
            running: Mutex::new(0),
            arrived: Condvar::new(),
            open: AtomicBool::new(false),
            most: AtomicUsize::new(0),
        }
    }

    fn enter(&self) {
        let mut running = self.running.lock().unwrap();
        *running += 1;
        self.most.fetch_max(*running, Ordering::SeqCst);
        self.arrived.notify_all();
        let deadline = Instant::now() + Duration::from_secs(10);
        while *running < self.want && !self.open.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            running = self
                .arrived
                .wait_timeout(running, deadline - now)
                .unwrap()
                .0;
        }
        self.open.store(true, Ordering::SeqCst);
        self.arrived.notify_all();
    }

    fn leave(&self) {
        *self.running.lock().unwrap() -= 1;
    }
}

/// An artifact with `n` bundle referrers, each with its own bundle layer, served with the
/// referrers API (each referrer has no referrers of its own).
struct Graph {
    artifact: Vec<u8>,
    digest: Digest,
    layer: (Descriptor, Vec<u8>),
    referrers: Vec<Descriptor>,
    /// Path → (content type, body) of every referrer manifest and bundle.
    served: HashMap<String, (&'static str, Vec<u8>)>,
}

fn graph(n: usize) -> Graph {
    let content = b"pooled".to_vec();
    let layer = Descriptor::of("text/plain", &content);
    let artifact = oci::to_bytes(&ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
        artifact_type: Some("application/x".into()),
        config: Descriptor::empty_config(),
        layers: vec![layer.clone()],
        subject: None,
        annotations: BTreeMap::new(),
    });
    let digest = Digest::of(&artifact);
    let subject = Descriptor::new(
        MEDIA_TYPE_IMAGE_MANIFEST.to_owned(),
        digest.clone(),
        artifact.len() as u64,
    );
    let mut served = HashMap::new();
    let mut referrers = Vec::new();
    for i in 0..n {
        let bundle = format!(r#"{{"mediaType":"{BUNDLE_MEDIA_TYPE_V03}","n":{i}}}"#).into_bytes();
        let bundle_layer = Descriptor::of(BUNDLE_MEDIA_TYPE_V03, &bundle);
        let bytes = oci::to_bytes(&ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
            artifact_type: Some(BUNDLE_MEDIA_TYPE_V03.into()),
            config: Descriptor::empty_config(),
            layers: vec![bundle_layer.clone()],
            subject: Some(subject.clone()),
            annotations: BTreeMap::new(),
        });
        let mut d = Descriptor::of(MEDIA_TYPE_IMAGE_MANIFEST, &bytes);
        d.artifact_type = Some(BUNDLE_MEDIA_TYPE_V03.into());
        served.insert(
            format!("/v2/x/y/manifests/{}", d.digest),
            (MEDIA_TYPE_IMAGE_MANIFEST, bytes),
        );
        served.insert(
            format!("/v2/x/y/blobs/{}", bundle_layer.digest),
            ("application/octet-stream", bundle),
        );
        referrers.push(d);
    }
    Graph {
        artifact,
        digest,
        layer: (layer, content),
        referrers,
        served,
    }
}

/// The two pooled kinds of request: fetching a referrer's manifest, and listing a referrer's
/// own referrers (copy does that inside each referrer's walk).
struct Gates {
    manifests: Arc<Gate>,
    listings: Arc<Gate>,
}

impl Gates {
    fn new(want: usize) -> Gates {
        Gates {
            manifests: Arc::new(Gate::new(want)),
            listings: Arc::new(Gate::new(want)),
        }
    }
}

/// Serves `g` honestly; `twist` may answer first. The pooled requests pass through `gates`.
fn serve(
    g: Graph,
    gates: &Gates,
    twist: impl Fn(&Request) -> Option<Response> + Send + Sync + 'static,
) -> HostileServer {
    let mut gated: HashMap<String, Arc<Gate>> = HashMap::new();
    for d in &g.referrers {
        gated.insert(
            format!("/v2/x/y/manifests/{}", d.digest),
            gates.manifests.clone(),
        );
        gated.insert(
            format!("/v2/x/y/referrers/{}", d.digest),
            gates.listings.clone(),
        );
    }
    HostileServer::start(move |r| {
        let gate = gated.get(&r.path).filter(|_| r.method == "GET");
        if let Some(gate) = gate {
            gate.enter();
        }
        let response = twist(r).unwrap_or_else(|| answer(&g, r));
        if let Some(gate) = gate {
            gate.leave();
        }
        response
    })
}

fn answer(g: &Graph, r: &Request) -> Response {
    let p = r.path.as_str();
    let index = |manifests: Vec<Descriptor>| {
        Response::new(200)
            .header("Content-Type", MEDIA_TYPE_IMAGE_INDEX)
            .body(oci::to_bytes(&ImageIndex {
                manifests,
                ..ImageIndex::empty()
            }))
    };
    if p == "/v2/" {
        return Response::new(200);
    }
    if p == "/v2/x/y/manifests/v1" || p == format!("/v2/x/y/manifests/{}", g.digest) {
        return Response::new(200)
            .header("Content-Type", MEDIA_TYPE_IMAGE_MANIFEST)
            .header("Docker-Content-Digest", &g.digest.to_string())
            .body(g.artifact.clone());
    }
    if p == format!("/v2/x/y/referrers/{}", g.digest) {
        return index(g.referrers.clone());
    }
    if p.starts_with("/v2/x/y/referrers/") {
        return index(Vec::new());
    }
    if p == format!("/v2/x/y/blobs/{}", g.layer.0.digest) {
        return Response::new(200).body(g.layer.1.clone());
    }
    if p == format!("/v2/x/y/blobs/{}", Descriptor::empty_config().digest) {
        return Response::new(200).body(oci::EMPTY_JSON.to_vec());
    }
    if let Some((content_type, body)) = g.served.get(p) {
        let digest = p.rsplit('/').next().unwrap_or_default();
        return Response::new(200)
            .header("Content-Type", content_type)
            .header("Docker-Content-Digest", digest)
            .body(body.clone());
    }
    Response::new(404).body(r#"{"errors":[{"code":"NOT_FOUND","message":"no such thing"}]}"#)
}

/// `custody --jobs <jobs> --output json verify` of the artifact with a key that signed none
/// of the (unusable) bundles: what matters is what discovery read.
fn verify(s: &HostileServer, jobs: usize) -> (std::process::Output, String) {
    verify_with_cache(s, jobs, &support::fresh_cache())
}

/// [`verify`], keeping what it fetches in `cache`.
fn verify_with_cache(
    s: &HostileServer,
    jobs: usize,
    cache: &std::path::Path,
) -> (std::process::Output, String) {
    let dir = support::tempdir();
    let (_, public) = crate::release::keypair(dir.path());
    let o = support::custody()
        .env("CUSTODY_CACHE", cache)
        .args([
            "--jobs",
            &jobs.to_string(),
            "--output",
            "json",
            "verify",
            &format!("{}/x/y:v1", s.host),
            "--key",
            &public,
        ])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(&o), stderr(&o)));
    let found = report["artifact"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "discover")
        .map(|c| c["found"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|| panic!("no discover check: {report:#}"));
    (o, found)
}

#[test]
fn verify_fetches_referrers_on_a_pool_no_wider_than_jobs() {
    let gates = Gates::new(3);
    let s = serve(graph(24), &gates, |_| None);
    let (o, found) = verify(&s, 3);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(found.starts_with("24 bundle(s)"), "{found}");
    assert_eq!(
        gates.manifests.most.load(Ordering::SeqCst),
        3,
        "three referrer fetches at once, never more"
    );
}

#[test]
fn copy_walks_each_referrer_on_a_pool_no_wider_than_jobs() {
    let gates = Gates::new(4);
    let g = graph(16);
    let referrers: Vec<Digest> = g.referrers.iter().map(|d| d.digest.clone()).collect();
    let s = serve(g, &gates, |_| None);
    let dir = support::tempdir();
    let o = run(&[
        "--jobs",
        "4",
        "--output",
        "json",
        "copy",
        &format!("{}/x/y:v1", s.host),
        &format!("oci:{}:v1", dir.path().join("copy").display()),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let outcome: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(outcome["referrers"], 16, "{outcome:#}");
    // The artifact, its layer, 16 bundles and the empty config every manifest shares, which
    // is copied once and then found present, not checked once per referrer.
    assert_eq!(outcome["blobsCopied"], 18, "{outcome:#}");
    assert_eq!(outcome["blobsPresent"], 16, "{outcome:#}");
    // Each referrer's own referrers were listed inside the pool.
    for d in &referrers {
        assert_eq!(s.count("GET", &format!("/v2/x/y/referrers/{d}")), 1);
    }
    assert_eq!(
        gates.manifests.most.load(Ordering::SeqCst),
        4,
        "four referrer manifests fetched at once, never more"
    );
    assert_eq!(
        gates.listings.most.load(Ordering::SeqCst),
        4,
        "four referrer walks at once, never more"
    );
}

#[test]
fn a_429_in_the_middle_of_a_pooled_walk_is_waited_out_and_retried() {
    let g = graph(12);
    let referrers: Vec<Digest> = g.referrers.iter().map(|d| d.digest.clone()).collect();
    let told = Arc::new(Mutex::new(BTreeSet::new()));
    let told_in = told.clone();
    // Every referrer manifest and bundle is refused once with 429 before it is served.
    let s = serve(g, &Gates::new(1), move |r| {
        let busy = r.path.starts_with("/v2/x/y/manifests/sha256:")
            || r.path.starts_with("/v2/x/y/blobs/sha256:");
        if busy && told_in.lock().unwrap().insert(r.path.clone()) {
            return Some(
                Response::new(429)
                    .header("Retry-After", "0")
                    .body(r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#),
            );
        }
        None
    });
    let (o, found) = verify(&s, 4);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        found.starts_with("12 bundle(s)"),
        "every referrer was read despite the 429s: {found}"
    );
    for d in &referrers {
        assert_eq!(
            s.count("GET", &format!("/v2/x/y/manifests/{d}")),
            2,
            "refused once, then fetched"
        );
    }
}

/// Issue 16: what a registry serves by digest is kept on disk. A second verify with the same
/// cache asks the registry for the tag and the referrer list only; a kept bundle that was
/// tampered with is fetched again, not believed; `--cache off` keeps nothing.
#[test]
fn a_second_verify_reads_referrers_from_the_cache_and_only_lists_them() {
    let gates = Gates::new(1);
    let g = graph(12);
    let (referrer_paths, bundle_paths): (Vec<String>, Vec<String>) = g
        .served
        .keys()
        .cloned()
        .partition(|p| p.contains("/manifests/"));
    let s = serve(g, &gates, |_| None);
    let fetched = |paths: &[String]| {
        s.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == "GET" && paths.contains(&r.path))
            .count()
    };
    let listed = || s.count("GET", "/v2/x/y/referrers/");
    let cache = support::fresh_cache();

    let (o, found) = verify_with_cache(&s, 2, &cache);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(found.starts_with("12 bundle(s)"), "{found}");
    assert_eq!((fetched(&referrer_paths), fetched(&bundle_paths)), (12, 12));
    let lists = listed();

    let (o, again) = verify_with_cache(&s, 2, &cache);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(again, found);
    assert_eq!(
        (fetched(&referrer_paths), fetched(&bundle_paths)),
        (12, 12),
        "nothing fetched by digest twice"
    );
    assert!(listed() > lists, "the referrer list is asked for again");

    // Every kept bundle altered: each is refetched and the verdict is the same.
    let mut altered = 0;
    for scope in std::fs::read_dir(&cache).unwrap().flatten() {
        for kept in std::fs::read_dir(scope.path().join("b"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let mut bytes = std::fs::read(kept.path()).unwrap();
            bytes[0] ^= 0x20;
            std::fs::write(kept.path(), bytes).unwrap();
            altered += 1;
        }
    }
    assert!(altered >= 12, "{altered} bundles kept");
    let (o, third) = verify_with_cache(&s, 2, &cache);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(third, found);
    assert_eq!((fetched(&referrer_paths), fetched(&bundle_paths)), (12, 24));

    let off = std::path::Path::new("off");
    verify_with_cache(&s, 2, off);
    assert_eq!((fetched(&referrer_paths), fetched(&bundle_paths)), (24, 36));
    assert!(!off.exists());
}
