//! One referrers walk for every command: on a real registry with many referrers, verify, tree,
//! discover and copy see the same set, and the pool's size changes no report.

use std::collections::BTreeSet;

use custody::evidence::attach::{self, BundleContent};
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

#[test]
fn verify_tree_discover_and_copy_see_the_same_many_referrers_whatever_the_pool_size() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let file = dir.path().join("app.txt");
    std::fs::write(&file, "many referrers\n").unwrap();
    let tagged = format!("{}/team/app:v1", registry.base);
    let pushed = support::ok_json(&["push", file.to_str().unwrap(), "--to", &tagged]);
    let digest = pushed["digest"].as_str().unwrap().to_owned();
    let pinned = format!("{}/team/app@{digest}", registry.base);

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
