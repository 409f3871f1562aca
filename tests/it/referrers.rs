//! One referrers walk for every command: on a real registry with many referrers, verify, tree,
//! discover and copy see the same set, and the pool's size changes no report.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use custody::evidence::attach::{self, BundleContent};
use custody::foundation::digest::Digest;
use custody::foundation::oci::{self, Descriptor, ImageManifest, MEDIA_TYPE_IMAGE_MANIFEST};
use custody::foundation::reference::Reference;
use custody::storage::store;

use crate::support::{self, stderr, stdout};

const REFERRERS: usize = 40;

/// Runs custody with `--output json` and the given pool size; parses stdout whatever the exit
/// status (an unverified artifact still reports what it saw).
fn json(jobs: &str, args: &[&str]) -> (Option<i32>, String, serde_json::Value) {
    let o = support::custody()
        .args(["--output", "json"])
        .args(args)
        .env("CUSTODY_JOBS", jobs)
        .output()
        .expect("custody runs");
    let out = stdout(&o);
    let value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("custody {args:?}: not JSON ({e}): {out}\n{}", stderr(&o)));
    (o.status.code(), out, value)
}

fn digests<'a>(values: impl Iterator<Item = &'a serde_json::Value>) -> BTreeSet<String> {
    values
        .map(|v| v.as_str().expect("a digest string").to_owned())
        .collect()
}

/// Pushes a one-file artifact holding `content` to `{base}/{repo}:v1`; returns the tagged
/// reference, the digest and the pinned reference.
fn pushed(base: &str, repo: &str, content: &str) -> (String, String, String) {
    let dir = support::tempdir();
    let file = dir.path().join("app.txt");
    std::fs::write(&file, content).unwrap();
    let tagged = format!("{base}/{repo}:v1");
    let pushed = support::ok_json(&["push", file.to_str().unwrap(), "--to", &tagged]);
    let digest = pushed["digest"].as_str().unwrap().to_owned();
    let pinned = format!("{base}/{repo}@{digest}");
    (tagged, digest, pinned)
}

#[test]
fn verify_tree_discover_and_copy_see_the_same_many_referrers_whatever_the_pool_size() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let (tagged, digest, pinned) = pushed(&registry.base, "team/app", "many referrers\n");

    // Many bundle referrers, each different; they are not valid signatures, which is fine: every
    // reader lists what is attached, and verify reports each as untrusted.
    let reference: Reference = tagged.parse().unwrap();
    let st = store::open(&reference, &store::Options::default()).unwrap();
    let subject = st
        .get_manifest(&digest.parse().unwrap())
        .unwrap()
        .descriptor;
    let mut attached = BTreeSet::new();
    for i in 0..REFERRERS {
        let bundle = format!("{{\"not-a-bundle\":{i}}}");
        let d = attach::attach_bundle(
            st.as_ref(),
            &subject,
            bundle.as_bytes(),
            BundleContent::DsseEnvelope,
            None,
            "2026-01-01T00:00:00Z",
        )
        .unwrap();
        attached.insert(d.digest.to_string());
    }
    assert_eq!(attached.len(), REFERRERS);

    let key = dir.path().join("signer");
    let o = support::custody()
        .args(["keygen", "--output-key-prefix", key.to_str().unwrap()])
        .env("COSIGN_PASSWORD", "referrers-test")
        .output()
        .expect("custody runs");
    assert!(o.status.success(), "keygen: {}", stderr(&o));
    let public = format!("{}.pub", key.display());

    let mut reports = Vec::new();
    for jobs in ["1", "8"] {
        let (code, verify_out, v) = json(jobs, &["verify", &pinned, "--key", &public]);
        assert_eq!(code, Some(1), "nothing here is signed by the key: {v}");
        let seen = digests(
            v["artifact"]["referrers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| &r["manifest"]),
        );
        assert_eq!(seen, attached, "verify with {jobs} job(s)");

        let (code, tree_out, t) = json(jobs, &["tree", &pinned]);
        assert_eq!(code, Some(0), "{t}");
        let seen = digests(
            t["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| &n["manifest"]),
        );
        assert_eq!(seen, attached, "tree with {jobs} job(s)");

        let (code, discover_out, d) = json(jobs, &["discover", &pinned]);
        assert_eq!(code, Some(0), "{d}");
        let seen = digests(
            d["referrers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| &n["descriptor"]["digest"]),
        );
        assert_eq!(seen, attached, "discover with {jobs} job(s)");

        let copied = format!("{}/copies/app{jobs}:v1", registry.base);
        let (code, _, c) = json(jobs, &["copy", &pinned, &copied]);
        assert_eq!(code, Some(0), "{c}");
        assert_eq!(c["referrers"], REFERRERS, "copy with {jobs} job(s)");
        let copied_pinned = format!("{}/copies/app{jobs}@{digest}", registry.base);
        let (_, _, d) = json(jobs, &["discover", &copied_pinned]);
        let seen = digests(
            d["referrers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| &n["descriptor"]["digest"]),
        );
        assert_eq!(seen, attached, "discover after copy with {jobs} job(s)");

        reports.push((verify_out, tree_out, discover_out));
    }
    // The reports do not depend on how many fetches ran at once.
    assert_eq!(reports[0], reports[1]);
}

/// On a registry without the referrers API, a walk asks whether each referrer has referrers of
/// its own by its `sha256-<hex>` fallback tag. After a few asked one by one, the repository's
/// tags are listed once and the rest answered from that list; a referrer's own referrer past
/// that point is still found by discover and kept by copy.
#[test]
fn a_walk_of_many_referrers_lists_the_tags_once_and_still_finds_nested_ones() {
    let registry = support::shared_registry();
    let (tagged, digest, pinned) = pushed(&registry.base, "nested/app", "nested referrers\n");
    let st = store::open(&tagged.parse().unwrap(), &store::Options::default()).unwrap();
    let attach = |subject: &Descriptor, i: usize| {
        attach::attach_bundle(
            st.as_ref(),
            subject,
            format!("{{\"nested\":{i}}}").as_bytes(),
            BundleContent::DsseEnvelope,
            None,
            "2026-01-01T00:00:00Z",
        )
        .unwrap()
    };
    let subject = st
        .get_manifest(&digest.parse().unwrap())
        .unwrap()
        .descriptor;
    let referrers: Vec<Descriptor> = (0..12).map(|i| attach(&subject, i)).collect();
    let last = st.get_manifest(&referrers[11].digest).unwrap().descriptor;
    let nested = attach(&last, 12);

    // (GETs of `sha256-` tags, tag lists, the referrers below the last referrer).
    let walk = |args: &[&str], discovered: &str| {
        let o = support::custody()
            .args(["-v"])
            .args(args)
            .output()
            .expect("custody runs");
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let log = stderr(&o);
        let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
        let (_, _, d) = json("4", &["discover", discovered]);
        let below: Vec<String> = d["referrers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["descriptor"]["digest"] == referrers[11].digest.to_string())
            .flat_map(|r| r["referrers"].as_array().unwrap().clone())
            .map(|r| r["descriptor"]["digest"].as_str().unwrap().to_owned())
            .collect();
        (
            count("/nested/app/manifests/sha256-"),
            count("/nested/app/tags/list"),
            below,
        )
    };
    let (asked, lists, below) = walk(&["discover", &pinned], &pinned);
    assert_eq!(lists, 1, "the tags are listed once");
    // The artifact's index and 13 referrers' tags are asked about: 7 one by one, the rest
    // from the list, where only the last referrer's index is found and fetched.
    assert_eq!(
        asked, 8,
        "7 asked one by one, then only the one the list has"
    );
    assert_eq!(below, [nested.digest.to_string()]);

    let copied = format!("{}/nested/copy:v1", registry.base);
    let copied_pinned = format!("{}/nested/copy@{digest}", registry.base);
    let (asked, lists, below) = walk(&["copy", &pinned, &copied], &copied_pinned);
    assert!(asked <= 9 && lists == 1, "{asked} asked, {lists} lists");
    assert_eq!(below, [nested.digest.to_string()], "the copy keeps it");
}

/// A registry without the referrers API that keeps `subject`'s fallback index in memory and
/// refuses the first `refusals` writes of it as naming an unknown manifest.
struct FallbackRegistry {
    server: support::HostileServer,
    index: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    /// The path of the fallback tag.
    tag: String,
}

impl FallbackRegistry {
    fn start(subject: &Descriptor, refusals: usize) -> FallbackRegistry {
        let tag = format!("/v2/x/y/manifests/{}", subject.digest.fallback_tag());
        let index: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>> = Default::default();
        let (stored, path, refused) = (index.clone(), tag.clone(), AtomicUsize::new(0));
        let server = support::HostileServer::start(move |r| {
            let digest = |body: &[u8]| Digest::of(body).to_string();
            match (r.method.as_str(), r.path.as_str()) {
                ("GET", "/v2/") => support::Response::new(200),
                ("GET", p) if p == path => match stored.lock().unwrap().clone() {
                    Some(body) => support::Response::new(200)
                        .header("Content-Type", oci::MEDIA_TYPE_IMAGE_INDEX)
                        .header("Docker-Content-Digest", &digest(&body))
                        .body(body),
                    None => support::Response::new(404),
                },
                ("PUT", p) if p == path => {
                    if refused.fetch_add(1, Ordering::SeqCst) < refusals {
                        return support::Response::new(400).body(
                            r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
                        );
                    }
                    *stored.lock().unwrap() = Some(r.body.clone());
                    support::Response::new(201).header("Docker-Content-Digest", &digest(&r.body))
                }
                ("PUT", p) if p.starts_with("/v2/x/y/manifests/sha256:") => {
                    support::Response::new(201).header("Docker-Content-Digest", &digest(&r.body))
                }
                _ => support::Response::new(404),
            }
        });
        FallbackRegistry { server, index, tag }
    }

    /// A store of the registry's repository, as one run of custody opens it.
    fn open(&self) -> Box<dyn store::Store> {
        store::open(
            &format!("{}/x/y", self.server.host)
                .parse::<Reference>()
                .unwrap(),
            &store::Options {
                retry: store::registry::RetryPolicy {
                    base_delay: std::time::Duration::from_millis(5),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap()
    }

    /// The index's GETs and PUTs so far.
    fn index_requests(&self) -> (usize, usize) {
        (
            self.server.count("GET", &self.tag),
            self.server.count("PUT", &self.tag),
        )
    }

    fn listed(&self) -> usize {
        let body = self.index.lock().unwrap().clone().unwrap();
        serde_json::from_slice::<oci::ImageIndex>(&body)
            .unwrap()
            .manifests
            .len()
    }
}

/// Referrer number `n` of `subject`.
fn referrer(subject: &Descriptor, n: u8) -> Vec<u8> {
    oci::to_bytes(&ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
        artifact_type: Some(format!("application/x{n}")),
        config: Descriptor::empty_config(),
        layers: vec![Descriptor::empty_config()],
        subject: Some(subject.clone()),
        annotations: Default::default(),
    })
}

/// distribution rewrites a manifest's link file in place when it is pushed again, so an index
/// written while another worker re-pushes one of its children can be refused as naming an
/// unknown manifest (seen once in a promote of 500 referrers). The fallback index is written
/// again; a registry that keeps refusing is reported with its own words.
#[test]
fn a_fallback_index_refused_as_naming_an_unknown_manifest_is_written_again() {
    let subject = Descriptor::of(MEDIA_TYPE_IMAGE_MANIFEST, b"{\"a\":1}");
    let registry = FallbackRegistry::start(&subject, 2);
    let pushed = registry
        .open()
        .put_manifest(&referrer(&subject, 1), MEDIA_TYPE_IMAGE_MANIFEST);
    pushed.unwrap();
    assert_eq!(
        registry.index_requests().1,
        3,
        "written again after each refusal"
    );
    assert_eq!(registry.listed(), 1);

    let registry = FallbackRegistry::start(&subject, 99);
    let pushed = registry
        .open()
        .put_manifest(&referrer(&subject, 1), MEDIA_TYPE_IMAGE_MANIFEST);
    let e = pushed.unwrap_err().to_string();
    assert!(
        e.contains("MANIFEST_BLOB_UNKNOWN") && e.contains("400"),
        "{e}"
    );
    assert_eq!(
        registry.index_requests().1,
        5,
        "five tries, then its own words"
    );
}

/// A store remembers what it has seen listed in a subject's fallback index: pushing a referrer
/// that is already listed (a promote run again) reads the index once per subject, not once per
/// referrer; a referrer not yet listed is still added to the index as it now stands.
#[test]
fn a_referrer_already_listed_in_the_fallback_index_is_not_read_again() {
    let subject = Descriptor::of(MEDIA_TYPE_IMAGE_MANIFEST, b"{\"b\":2}");
    let registry = FallbackRegistry::start(&subject, 0);
    let push = |store: &dyn store::Store, n: u8| {
        store
            .put_manifest(&referrer(&subject, n), MEDIA_TYPE_IMAGE_MANIFEST)
            .unwrap();
    };
    let first = registry.open();
    push(first.as_ref(), 1);
    push(first.as_ref(), 2);
    assert_eq!(registry.index_requests(), (2, 2));
    push(first.as_ref(), 1);
    push(first.as_ref(), 2);
    assert_eq!(registry.index_requests(), (2, 2), "both were seen listed");

    // Another run: the index is read once, then neither it nor a third referrer is lost.
    let second = registry.open();
    push(second.as_ref(), 1);
    push(second.as_ref(), 2);
    assert_eq!(registry.index_requests(), (3, 2));
    push(second.as_ref(), 3);
    assert_eq!(registry.index_requests(), (4, 3));
    assert_eq!(registry.listed(), 3);
}

/// A copy run again pushes no manifest the destination has (nor checks its blobs), and still
/// walks every referrer: one attached since is copied, and referrers the destination has but
/// no longer lists in its fallback index are listed again.
#[test]
fn a_copy_run_again_pushes_only_what_the_destination_lacks() {
    copy_again(&support::shared_registry(), true);
    // ggcr's registry takes any path with `/referrers/` in it for its API, and this module's
    // namespace starts with `referrers/`.
    let api = support::shared_referrers_registry();
    let base = format!("{}/copy-again", api.host);
    copy_again(&support::SharedRegistry { base, ..api }, false);
}

/// One registry's part of [`a_copy_run_again_pushes_only_what_the_destination_lacks`];
/// `fallback` when it keeps referrers in fallback indexes.
fn copy_again(registry: &support::SharedRegistry, fallback: bool) {
    use custody::foundation::oci::{ImageIndex, MEDIA_TYPE_IMAGE_INDEX};
    use custody::storage::store::FetchedManifest;

    let (tagged, digest, pinned) = pushed(&registry.base, "again/app", "copied again\n");
    let source = store::open(&tagged.parse().unwrap(), &store::Options::default()).unwrap();
    let subject = source
        .get_manifest(&digest.parse().unwrap())
        .unwrap()
        .descriptor;
    let attach = |i: usize| {
        attach::attach_bundle(
            source.as_ref(),
            &subject,
            format!("{{\"again\":{i}}}").as_bytes(),
            BundleContent::DsseEnvelope,
            None,
            "2026-01-01T00:00:00Z",
        )
        .unwrap()
    };
    (0..3).for_each(|i| {
        attach(i);
    });
    let copied = format!("{}/again/copy:v1", registry.base);
    let copied_pinned = format!("{}/again/copy@{digest}", registry.base);
    // The manifests pushed by digest, the manifests asked for at the destination one by one,
    // and the referrers the destination lists.
    let copy = || {
        let o = support::run(&["-v", "copy", &pinned, &copied]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let count = |method: &str| {
            stderr(&o)
                .lines()
                .filter(|l| {
                    l.starts_with(&format!("request: {method} "))
                        && l.contains("/again/copy/manifests/sha256:")
                })
                .count()
        };
        let (_, _, d) = json("4", &["discover", &copied_pinned]);
        (
            count("PUT"),
            count("HEAD"),
            d["referrers"].as_array().unwrap().len(),
        )
    };
    assert_eq!(copy(), (4, 4, 3), "the artifact and its 3 referrers");
    // A registry with the referrers API lists only what it has: one listing stands for a
    // question per referrer. A fallback index is not proof (below), so each is asked.
    let asked = |referrers: usize| if fallback { 1 + referrers } else { 1 };
    assert_eq!(copy(), (0, asked(3), 3), "nothing pushed again");
    attach(3);
    assert_eq!(
        copy(),
        (1, asked(3) + 1, 4),
        "only the new referrer, asked for as the destination does not list it"
    );
    if !fallback {
        return;
    }

    // The destination's fallback index emptied: nothing is pushed, all four are listed again.
    let destination = store::open(&copied.parse().unwrap(), &store::Options::default()).unwrap();
    let empty = oci::to_bytes(&ImageIndex::empty());
    destination
        .put_manifest(&empty, MEDIA_TYPE_IMAGE_INDEX)
        .unwrap();
    let empty = FetchedManifest::check("empty", empty, Some(MEDIA_TYPE_IMAGE_INDEX), None).unwrap();
    let fallback = digest.parse::<Digest>().unwrap().fallback_tag();
    destination.tag(&fallback.parse().unwrap(), &empty).unwrap();
    let (_, _, d) = json("4", &["discover", &copied_pinned]);
    assert_eq!(d["referrers"].as_array().unwrap().len(), 0, "{d}");
    assert_eq!(copy(), (0, 5, 4));

    // A referrer deleted at the destination (as garbage collection of untagged manifests does)
    // while its fallback index still lists it: the copy asks, finds it gone and pushes it again.
    let listed = destination
        .referrers(&digest.parse().unwrap())
        .unwrap()
        .descriptors;
    destination.delete_manifest(&listed[0].digest).unwrap();
    let still = destination.referrers(&digest.parse().unwrap()).unwrap();
    assert_eq!(still.descriptors.len(), 4, "the index still lists it");
    assert!(matches!(
        destination.get_manifest(&listed[0].digest),
        Err(store::Error::NotFound { .. })
    ));
    assert_eq!(copy(), (1, 5, 4), "the deleted referrer pushed again");
    assert!(destination.get_manifest(&listed[0].digest).is_ok());
}
