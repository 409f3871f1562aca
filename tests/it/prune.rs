//! `prune` keeps what the kept artifacts need, on a real registry with deletes enabled: the
//! platform manifests a kept multi-arch release shares with an old one, and the subjects of a
//! protected artifact however deep; and `--yes` deletes exactly the plan it printed.

use std::collections::BTreeMap;

use custody::foundation::digest::Digest;
use custody::foundation::oci::{
    self, ANNOTATION_CREATED, Descriptor, ImageIndex, ImageManifest, MEDIA_TYPE_IMAGE_INDEX,
    MEDIA_TYPE_IMAGE_MANIFEST,
};
use custody::foundation::reference::Reference;
use custody::storage::store::{self, BlobSource, Store};

use crate::registry::attach_referrer;
use crate::support::{self, ok, ok_json, validate_against_schema};

fn open(reference: &str) -> Box<dyn Store> {
    store::open(
        &reference.parse::<Reference>().unwrap(),
        &store::Options::default(),
    )
    .unwrap()
}

/// An image manifest with one layer `name`; untagged.
fn image(store: &dyn Store, name: &str, created: Option<&str>) -> Descriptor {
    let layer = Descriptor::of("application/vnd.test.layer", name.as_bytes());
    store
        .put_blob(
            &Descriptor::empty_config(),
            BlobSource::Bytes(oci::EMPTY_JSON),
        )
        .unwrap();
    store
        .put_blob(&layer, BlobSource::Bytes(name.as_bytes()))
        .unwrap();
    let annotations = created
        .map(|c| BTreeMap::from([(ANNOTATION_CREATED.to_owned(), c.to_owned())]))
        .unwrap_or_default();
    let bytes = oci::to_bytes(&ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
        artifact_type: Some("application/vnd.test".into()),
        config: Descriptor::empty_config(),
        layers: vec![layer],
        subject: None,
        annotations,
    });
    store
        .put_manifest(&bytes, MEDIA_TYPE_IMAGE_MANIFEST)
        .unwrap()
}

/// A multi-platform index over `platforms`, created at `created`; untagged.
fn index(store: &dyn Store, platforms: &[&Descriptor], created: &str) -> Descriptor {
    let mut index = ImageIndex::empty();
    index.manifests = platforms.iter().map(|d| (*d).clone()).collect();
    index
        .annotations
        .insert(ANNOTATION_CREATED.to_owned(), created.to_owned());
    store
        .put_manifest(&oci::to_bytes(&index), MEDIA_TYPE_IMAGE_INDEX)
        .unwrap()
}

fn tag(store: &dyn Store, t: &str, d: &Descriptor) {
    let fetched = store.get_manifest(&d.digest).unwrap();
    store.tag(&t.parse().unwrap(), &fetched).unwrap();
}

fn present(store: &dyn Store, d: &Digest) -> bool {
    match store.get_manifest(d) {
        Ok(_) => true,
        Err(store::Error::NotFound { .. }) => false,
        Err(e) => panic!("{d}: {e}"),
    }
}

fn manifest_descriptor(store: &dyn Store, d: &Digest) -> Descriptor {
    let m = store.get_manifest(d).unwrap();
    Descriptor::new(m.descriptor.media_type, d.clone(), m.bytes.len() as u64)
}

fn digests(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect()
}

/// Issue 10, finding 4a: two releases of a multi-arch image share the unchanged amd64
/// manifest. `prune --keep-last 1 --yes` deletes the old index and its own arm64 manifest
/// (with that manifest's signature), and leaves the kept release whole.
#[test]
fn prune_keeps_a_platform_manifest_a_kept_release_shares() {
    let registry = support::shared_registry();
    let repo = format!("{}/team/multi", registry.base);
    let store = open(&repo);
    let s = store.as_ref();
    let amd64 = image(s, "amd64", None);
    let arm64_old = image(s, "arm64-1", None);
    let arm64_new = image(s, "arm64-2", None);
    let amd64_sig = attach_referrer(s, &amd64, b"sig-amd64", "application/vnd.test.sig");
    let arm64_old_sig = attach_referrer(s, &arm64_old, b"sig-arm64-1", "application/vnd.test.sig");
    let old = index(s, &[&amd64, &arm64_old], "2024-01-01T00:00:00Z");
    let new = index(s, &[&amd64, &arm64_new], "2024-02-01T00:00:00Z");
    tag(s, "1.0", &old);
    tag(s, "1.1", &new);

    let plan = ok_json(&["prune", &repo, "--keep-last", "1"]);
    validate_against_schema("prune-plan.schema.json", &plan);
    let closure: Vec<(String, String)> = plan["plan"]["keepClosure"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["digest"].as_str().unwrap().to_owned(),
                n["reason"]["digest"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    for needed in [&amd64.digest, &arm64_new.digest] {
        assert!(
            closure.contains(&(needed.to_string(), new.digest.to_string())),
            "{needed} missing from the keep-closure {closure:?}"
        );
    }
    let human = ok(&["prune", &repo, "--keep-last", "1"]);
    assert!(
        human.contains("kept because kept artifacts need them (2)"),
        "{human}"
    );
    assert!(
        human.contains(&format!(
            "{}  needed by kept {}",
            amd64.digest.short(),
            new.digest
        )),
        "{human}"
    );

    // Without a referrers API the signature is listed in a `sha256-<hex>` fallback index,
    // which goes with its subject.
    let fallback = arm64_old.digest.fallback_tag();
    let fallback_index = s
        .get_tagged(&fallback.parse().unwrap())
        .unwrap()
        .map(|f| f.descriptor.digest.to_string());
    let expected: Vec<String> = [old.digest.to_string(), arm64_old_sig.to_string()]
        .into_iter()
        .chain(fallback_index.clone())
        .chain([arm64_old.digest.to_string()])
        .collect();
    let done = ok_json(&["prune", &repo, "--keep-last", "1", "--yes"]);
    validate_against_schema("prune-plan.schema.json", &done);
    let planned: Vec<&serde_json::Value> = done["plan"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["keep"] == false)
        .collect();
    assert_eq!(planned.len(), 1);
    assert_eq!(digests(&planned[0]["deletes"]), expected);
    if fallback_index.is_some() {
        assert_eq!(
            planned[0]["dropsTags"],
            serde_json::json!([fallback]),
            "{}",
            planned[0]
        );
    }
    // --yes deleted exactly what the plan listed.
    assert_eq!(digests(&done["deletions"][0]["deleted"]), expected);

    for kept in [&new.digest, &amd64.digest, &arm64_new.digest, &amd64_sig] {
        assert!(present(s, kept), "{kept} was deleted");
    }
    for gone in [&old.digest, &arm64_old.digest, &arm64_old_sig] {
        assert!(!present(s, gone), "{gone} is still there");
    }
    // The kept release still pulls whole: every platform manifest and its blobs.
    let kept = s.get_tagged(&"1.1".parse().unwrap()).unwrap().unwrap();
    let oci::Manifest::Index(kept) = kept.manifest else {
        panic!("1.1 is not an index");
    };
    for platform in &kept.manifests {
        let m = s.get_manifest(&platform.digest).unwrap();
        let oci::Manifest::Image(m) = m.manifest else {
            panic!("not an image");
        };
        for layer in &m.layers {
            let mut sink = Vec::new();
            s.get_blob(layer, &mut sink).unwrap();
        }
    }
}

/// Issue 10, finding 4b: `old` (no rule keeps it) has an untagged signature `sig`, and a
/// countersignature of `sig` is kept under `--protect-tag evidence`. The protected tag keeps
/// its subjects at any depth: nothing of that chain is deleted.
#[test]
fn prune_keeps_the_subjects_of_a_protected_artifact_at_any_depth() {
    let registry = support::shared_registry();
    let repo = format!("{}/team/app", registry.base);
    let store = open(&repo);
    let s = store.as_ref();
    let old = image(s, "old", Some("2024-01-01T00:00:00Z"));
    tag(s, "build-1", &old);
    let sig = attach_referrer(s, &old, b"sig", "application/vnd.test.sig");
    let countersig = attach_referrer(
        s,
        &manifest_descriptor(s, &sig),
        b"countersig",
        "application/vnd.test.sig",
    );
    tag(s, "evidence", &manifest_descriptor(s, &countersig));
    let newer = image(s, "newer", Some("2024-03-01T00:00:00Z"));
    tag(s, "build-3", &newer);
    let middle = image(s, "middle", Some("2024-02-01T00:00:00Z"));
    tag(s, "build-2", &middle);

    let args = [
        "prune",
        repo.as_str(),
        "--keep-last",
        "1",
        "--protect-tag",
        "evidence",
        "--yes",
    ];
    let done = ok_json(&args);
    validate_against_schema("prune-plan.schema.json", &done);
    let closure = &done["plan"]["keepClosure"];
    assert_eq!(closure[0]["digest"], sig.to_string(), "{closure}");
    assert_eq!(closure[0]["reason"]["rule"], "needed-by", "{closure}");
    assert_eq!(closure[0]["reason"]["digest"], countersig.to_string());
    let old_decision = done["plan"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["digest"] == old.digest.to_string())
        .unwrap();
    assert_eq!(old_decision["keep"], true);
    assert_eq!(old_decision["reason"]["digest"], sig.to_string());
    // Only `middle` goes.
    let deletions = done["deletions"].as_array().unwrap();
    assert_eq!(deletions.len(), 1);
    assert_eq!(
        digests(&deletions[0]["deleted"]),
        vec![middle.digest.to_string()]
    );
    for kept in [&old.digest, &sig, &countersig, &newer.digest] {
        assert!(present(s, kept), "{kept} was deleted");
    }
    assert!(!present(s, &middle.digest));
}
