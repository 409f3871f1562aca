//! Retention: decide which tagged artifacts of a repository to keep, then delete the rest
//! together with everything attached to them (referrers, recursively; legacy cosign
//! `.sig`/`.att`/`.sbom` images; the `sha256-<hex>` fallback index), so no orphaned signature
//! stays behind.
//!
//! Rules keep; nothing else does: a protected tag, a tag matching a release pattern, one of the
//! last N by creation time, anything younger than a duration. An artifact whose age is unknown
//! (no `org.opencontainers.image.created` annotation, no config `created`) is never treated as
//! old: age rules keep it. Deletion order is attachments first, the artifact last, so an
//! interruption leaves at worst an unsigned artifact (which fails verification) and never a
//! signature without its artifact.
//!
//! What is kept keeps what it needs: the plan closes over the platform manifests of kept
//! indexes and the subjects of kept artifacts, recursively (a platform manifest shared by an
//! old and a kept release; the untagged signature a protected countersignature is attached
//! to). The plan lists every manifest each deletion removes, and [`execute`] deletes exactly
//! those, refusing any the plan keeps.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::foundation::digest::Digest;
use crate::foundation::glob::{Wildcards, glob};
use crate::foundation::oci::{ANNOTATION_CREATED, Manifest};
use crate::foundation::reference::Tag;
use crate::foundation::time::unix_seconds;
use crate::storage::store::{self, FetchedManifest, Store};
use crate::storage::transfer::{self, LEGACY_COSIGN_SUFFIXES};

/// Largest image config read for its `created` field.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
const MAX_DEPTH: usize = crate::storage::store::referrers::Limits::DEFAULT.depth;
const MAX_ATTACHED: usize = 10_000;

/// What to keep. At least one rule must be given: an empty rule set would delete everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Keep the N most recently created artifacts.
    pub keep_last: Option<usize>,
    /// Keep artifacts with a tag matching one of these globs (`v*`, `release-*`).
    pub keep_tags: Vec<String>,
    /// Keep artifacts created less than this many seconds ago.
    pub keep_younger_than: Option<u64>,
    /// Keep artifacts these exact tags point to.
    pub protect_tags: Vec<String>,
}

impl Rules {
    fn has_age_rule(&self) -> bool {
        self.keep_last.is_some() || self.keep_younger_than.is_some()
    }

    fn is_empty(&self) -> bool {
        !self.has_age_rule() && self.keep_tags.is_empty() && self.protect_tags.is_empty()
    }
}

/// Why an artifact is kept or deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    tag = "rule",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum Reason {
    ProtectedTag {
        tag: String,
    },
    ReleaseTag {
        tag: String,
        pattern: String,
    },
    Younger {
        created: String,
        limit_seconds: u64,
    },
    AmongLast {
        rank: usize,
        keep: usize,
    },
    /// Age rules are set and the age is unknown: never assumed old.
    UnknownAge,
    /// A kept artifact needs it (it is a platform manifest of a kept index, or it is attached
    /// to a kept artifact).
    NeededBy {
        digest: Digest,
    },
    /// No rule keeps it.
    NoRuleKeeps,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::ProtectedTag { tag } => write!(f, "protected tag {tag}"),
            Reason::ReleaseTag { tag, pattern } => {
                write!(f, "tag {tag} matches release pattern {pattern}")
            }
            Reason::Younger {
                created,
                limit_seconds,
            } => write!(
                f,
                "created {created}, younger than {}",
                format_duration(*limit_seconds)
            ),
            Reason::AmongLast { rank, keep } => {
                write!(f, "number {rank} of the last {keep} created")
            }
            Reason::UnknownAge => f.write_str(
                "age unknown (no org.opencontainers.image.created annotation or config created); never treated as old",
            ),
            Reason::NeededBy { digest } => write!(f, "needed by kept {digest}"),
            Reason::NoRuleKeeps => f.write_str("no rule keeps it"),
        }
    }
}

/// One tagged artifact and the decision about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub digest: Digest,
    pub media_type: String,
    pub tags: Vec<String>,
    /// The creation time as recorded, when recorded.
    pub created: Option<String>,
    pub keep: bool,
    pub reason: Reason,
    /// When deleted: every manifest that goes, in order: attachments (deepest first), the
    /// artifact, then an index's platform manifests with their attachments. Empty when kept.
    pub deletes: Vec<Digest>,
    /// When deleted: the legacy cosign and fallback tags of those manifests that go too.
    pub drops_tags: Vec<String>,
}

/// A manifest the kept artifacts need that no rule keeps by itself: a platform manifest of a
/// kept index, the subject of a kept artifact, an attachment behind a protected tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Needed {
    pub digest: Digest,
    pub reason: Reason,
}

/// What prune would do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub repository: String,
    pub candidates: Vec<Candidate>,
    /// Everything kept beyond the kept candidates, because something kept needs it. Nothing
    /// here, and no kept candidate, is ever deleted.
    pub keep_closure: Vec<Needed>,
    /// Tags of the `sha256-<hex>[.suffix]` schemas: attachments, handled with their subject.
    pub attachment_tags: Vec<String>,
}

impl Plan {
    pub fn to_delete(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates.iter().filter(|c| !c.keep)
    }

    /// Every manifest the plan keeps: the kept candidates and the keep-closure.
    pub fn kept(&self) -> BTreeSet<&Digest> {
        self.candidates
            .iter()
            .filter(|c| c.keep)
            .map(|c| &c.digest)
            .chain(self.keep_closure.iter().map(|n| &n.digest))
            .collect()
    }
}

/// What happened to one artifact prune set out to delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deletion {
    pub digest: Digest,
    pub tags: Vec<String>,
    /// Every manifest deleted for it, attachments first, the artifact last.
    pub deleted: Vec<Digest>,
    /// Legacy cosign and fallback tags that went with it.
    pub attachment_tags: Vec<String>,
    /// Why it (or part of it) could not be deleted; `None` when all of it went.
    pub error: Option<String>,
    /// The registry does not allow deletion.
    pub unsupported: bool,
}

impl Deletion {
    fn new(c: &Candidate) -> Deletion {
        Deletion {
            digest: c.digest.clone(),
            tags: c.tags.clone(),
            deleted: Vec::new(),
            attachment_tags: Vec::new(),
            error: None,
            unsupported: false,
        }
    }
}

/// What [`execute`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Execution {
    pub deletions: Vec<Deletion>,
}

impl Execution {
    pub fn complete(&self) -> bool {
        self.deletions.iter().all(|d| d.error.is_none())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no retention rule given; prune keeps only what a rule keeps, so it would delete everything (give --keep-last, --keep-tag, --keep-younger-than or --protect-tag)"
    )]
    NoRules,
    #[error("{input:?} is not a duration like 30d, 12h, 90m, 2w or 1d12h")]
    BadDuration { input: String },
    #[error("the plan keeps {digest} ({reason}); prune does not delete it")]
    Kept { digest: Digest, reason: String },
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Transfer(#[from] transfer::Error),
}

pub use crate::foundation::oci::is_attachment_tag;

/// Looks at every tag of `store` and decides, at `now` (Unix seconds), what to keep.
pub fn plan(store: &dyn Store, rules: &Rules, now: i64) -> Result<Plan, Error> {
    if rules.is_empty() {
        return Err(Error::NoRules);
    }
    let mut by_digest: BTreeMap<Digest, (FetchedManifest, Vec<String>)> = BTreeMap::new();
    let mut attachment_tags = Vec::new();
    for tag in store.tags()? {
        if is_attachment_tag(tag.as_str()) {
            attachment_tags.push(tag.to_string());
            continue;
        }
        // A tag listed and then gone (a concurrent delete) is simply not a candidate.
        let Some(fetched) = store.get_tagged(&tag)? else {
            continue;
        };
        by_digest
            .entry(fetched.descriptor.digest.clone())
            .or_insert_with(|| (fetched, Vec::new()))
            .1
            .push(tag.to_string());
    }
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut created_at: BTreeMap<Digest, i64> = BTreeMap::new();
    for (digest, (fetched, tags)) in &mut by_digest {
        tags.sort();
        let created = created_of(store, fetched);
        if let Some(secs) = created.as_deref().and_then(unix_seconds) {
            created_at.insert(digest.clone(), secs);
        }
        candidates.push(Candidate {
            digest: digest.clone(),
            media_type: fetched.descriptor.media_type.clone(),
            tags: tags.clone(),
            created,
            keep: false,
            reason: Reason::NoRuleKeeps,
            deletes: Vec::new(),
            drops_tags: Vec::new(),
        });
    }
    // Rank by creation time, newest first; the digest breaks ties so plans are stable.
    let mut ranked: Vec<(&Digest, i64)> = created_at.iter().map(|(d, s)| (d, *s)).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let rank: BTreeMap<Digest, usize> = ranked
        .iter()
        .enumerate()
        .map(|(i, (d, _))| ((*d).clone(), i + 1))
        .collect();
    for c in &mut candidates {
        if let Some(reason) = keep_reason(c, rules, now, created_at.get(&c.digest), &rank) {
            c.keep = true;
            c.reason = reason;
        }
    }
    // What a kept artifact needs stays, at any depth.
    let mut manifests: BTreeMap<Digest, Option<FetchedManifest>> = by_digest
        .iter()
        .map(|(d, (f, _))| (d.clone(), Some(f.clone())))
        .collect();
    let mut roots: Vec<(Digest, Option<Reason>)> = candidates
        .iter()
        .filter(|c| c.keep)
        .map(|c| (c.digest.clone(), None))
        .collect();
    // A protected tag keeps what it names even when that is an attachment tag.
    for t in attachment_tags
        .iter()
        .filter(|t| rules.protect_tags.contains(t))
    {
        if let Some(found) = store.get_tagged(&tag(t))? {
            let reason = Reason::ProtectedTag { tag: t.clone() };
            roots.push((found.descriptor.digest.clone(), Some(reason)));
            manifests.insert(found.descriptor.digest.clone(), Some(found));
        }
    }
    let needed = keep_closure(store, roots, &mut manifests)?;
    for c in candidates.iter_mut().filter(|c| !c.keep) {
        if let Some(reason) = needed.get(&c.digest) {
            c.keep = true;
            c.reason = reason.clone();
        }
    }
    let candidate_digests: BTreeSet<&Digest> = candidates.iter().map(|c| &c.digest).collect();
    let keep_closure: Vec<Needed> = needed
        .iter()
        .filter(|(d, _)| !candidate_digests.contains(d))
        .map(|(d, r)| Needed {
            digest: d.clone(),
            reason: r.clone(),
        })
        .collect();
    let kept: BTreeSet<Digest> = candidates
        .iter()
        .filter(|c| c.keep)
        .map(|c| c.digest.clone())
        .chain(needed.keys().cloned())
        .collect();
    // What each deletion removes, decided now so `--yes` deletes what was shown.
    for c in candidates.iter_mut().filter(|c| !c.keep) {
        let mut deletes = Vec::new();
        let mut drops = Vec::new();
        plan_deletion(store, &c.digest, &kept, 0, &mut deletes, &mut drops)?;
        c.deletes = deletes;
        c.drops_tags = drops;
    }
    attachment_tags.sort();
    Ok(Plan {
        repository: store.name(),
        candidates,
        keep_closure,
        attachment_tags,
    })
}

/// Everything the `roots` need, recursively: the platform manifests of indexes and the
/// subjects of artifacts, each with the first kept manifest found to need it. A root comes
/// with its own reason when it is not a candidate (a protected attachment tag).
fn keep_closure(
    store: &dyn Store,
    roots: Vec<(Digest, Option<Reason>)>,
    manifests: &mut BTreeMap<Digest, Option<FetchedManifest>>,
) -> Result<BTreeMap<Digest, Reason>, Error> {
    let mut needed: BTreeMap<Digest, Reason> = BTreeMap::new();
    let mut seen: BTreeSet<Digest> = roots.iter().map(|(d, _)| d.clone()).collect();
    let mut queue: Vec<Digest> = Vec::new();
    for (digest, reason) in roots {
        if let Some(reason) = reason {
            needed.insert(digest.clone(), reason);
        }
        queue.push(digest);
    }
    while let Some(digest) = queue.pop() {
        let fetched = match manifests.get(&digest) {
            Some(f) => f.clone(),
            None => {
                let f = match store.get_manifest(&digest) {
                    Ok(f) => Some(f),
                    // Needed but already missing: nothing to keep below it.
                    Err(store::Error::NotFound { .. }) => None,
                    Err(e) => return Err(e.into()),
                };
                manifests.insert(digest.clone(), f.clone());
                f
            }
        };
        let Some(fetched) = fetched else { continue };
        let mut below: Vec<Digest> = Vec::new();
        if let Manifest::Index(index) = &fetched.manifest {
            below.extend(
                index
                    .manifests
                    .iter()
                    .filter(|d| d.is_manifest_like())
                    .map(|d| d.digest.clone()),
            );
        }
        if let Some(subject) = fetched.manifest.subject() {
            below.push(subject.digest.clone());
        }
        for d in below {
            if seen.insert(d.clone()) {
                if seen.len() > MAX_ATTACHED {
                    return Err(store::Error::Refused {
                        what: format!("manifests needed by the kept artifacts of {}", store.name()),
                        reason: format!("more than {MAX_ATTACHED}"),
                    }
                    .into());
                }
                needed.insert(
                    d.clone(),
                    Reason::NeededBy {
                        digest: digest.clone(),
                    },
                );
                queue.push(d);
            }
        }
    }
    Ok(needed)
}

/// Appends to `deletes` every manifest that goes with `root`, in deletion order (attachments
/// deepest first, the legacy and fallback tag targets, `root`, then an index's platform
/// manifests the same way), and to `drops` the attachment tags that go; nothing in `kept`.
fn plan_deletion(
    store: &dyn Store,
    root: &Digest,
    kept: &BTreeSet<Digest>,
    depth: usize,
    deletes: &mut Vec<Digest>,
    drops: &mut Vec<String>,
) -> Result<(), Error> {
    let fetched = match store.get_manifest(root) {
        Ok(f) => f,
        Err(store::Error::NotFound { .. }) if depth > 0 => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut attached: Vec<Digest> = Vec::new();
    let mut seen = BTreeSet::from([root.clone()]);
    collect_attached(store, root, 0, kept, &mut seen, &mut attached)?;
    let mut targets: Vec<Digest> = Vec::new();
    for subject in std::iter::once(root).chain(attached.iter()) {
        let fallback = subject.fallback_tag();
        let names = std::iter::once(fallback.clone()).chain(
            LEGACY_COSIGN_SUFFIXES
                .iter()
                .map(|s| format!("{fallback}.{s}")),
        );
        for name in names {
            let t = tag(&name);
            if let Some(found) = store.get_tagged(&t)?
                && found.descriptor.digest != *subject
            {
                // A kept target (a protected tag) keeps its tag too.
                let d = found.descriptor.digest;
                if kept.contains(&d) {
                    continue;
                }
                if !attached.contains(&d) && !targets.contains(&d) {
                    targets.push(d);
                }
                if !drops.contains(&name) {
                    drops.push(name);
                }
            }
        }
    }
    for d in attached.into_iter().chain(targets).chain([root.clone()]) {
        if !deletes.contains(&d) {
            deletes.push(d);
        }
    }
    if let Manifest::Index(index) = &fetched.manifest
        && depth < MAX_DEPTH
    {
        for child in index.manifests.iter().filter(|d| d.is_manifest_like()) {
            if !kept.contains(&child.digest) && !deletes.contains(&child.digest) {
                plan_deletion(store, &child.digest, kept, depth + 1, deletes, drops)?;
            }
        }
    }
    Ok(())
}

fn keep_reason(
    c: &Candidate,
    rules: &Rules,
    now: i64,
    created: Option<&i64>,
    rank: &BTreeMap<Digest, usize>,
) -> Option<Reason> {
    if let Some(tag) = c.tags.iter().find(|t| rules.protect_tags.contains(t)) {
        return Some(Reason::ProtectedTag { tag: tag.clone() });
    }
    for pattern in &rules.keep_tags {
        if let Some(tag) = c
            .tags
            .iter()
            .find(|t| glob(pattern, t, Wildcards::StarAndQuestion))
        {
            return Some(Reason::ReleaseTag {
                tag: tag.clone(),
                pattern: pattern.clone(),
            });
        }
    }
    if !rules.has_age_rule() {
        return None;
    }
    let Some(&secs) = created else {
        return Some(Reason::UnknownAge);
    };
    if let Some(limit) = rules.keep_younger_than
        && now.saturating_sub(secs) < i64::try_from(limit).unwrap_or(i64::MAX)
    {
        return Some(Reason::Younger {
            created: c.created.clone().unwrap_or_default(),
            limit_seconds: limit,
        });
    }
    if let Some(keep) = rules.keep_last
        && let Some(&r) = rank.get(&c.digest)
        && r <= keep
    {
        return Some(Reason::AmongLast { rank: r, keep });
    }
    None
}

/// The creation time an artifact records: the manifest annotation, else the image config's
/// `created` (read only when the config is small).
fn created_of(store: &dyn Store, fetched: &FetchedManifest) -> Option<String> {
    if let Some(c) = fetched.manifest.annotations().get(ANNOTATION_CREATED) {
        return Some(c.clone());
    }
    let Manifest::Image(image) = &fetched.manifest else {
        return None;
    };
    if image.config.size > MAX_CONFIG_BYTES || image.config.size < 2 {
        return None;
    }
    let mut bytes = Vec::new();
    store.get_blob(&image.config, &mut bytes).ok()?;
    #[derive(serde::Deserialize)]
    struct Config {
        created: Option<String>,
    }
    serde_json::from_slice::<Config>(&bytes).ok()?.created
}

/// Deletes what `plan` does not keep: for each artifact, exactly the manifests and tags the
/// plan lists, and never one the plan keeps (such a plan is refused, not half-run). Each
/// artifact is reported on its own; a refusal (the registry does not allow deletes) is
/// recorded, never skipped silently.
pub fn execute(store: &dyn Store, plan: &Plan) -> Execution {
    let kept = plan.kept();
    let mut out = Execution::default();
    for c in plan.to_delete() {
        let mut deletion = Deletion::new(c);
        if let Err(e) = delete_artifact(store, plan, c, &kept, &mut deletion) {
            deletion.unsupported = matches!(
                e,
                Error::Store(store::Error::Unsupported { .. })
                    | Error::Transfer(transfer::Error::Store(store::Error::Unsupported { .. }))
            );
            deletion.error = Some(error_chain(&e));
        }
        out.deletions.push(deletion);
    }
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

fn tag(s: &str) -> Tag {
    s.parse().expect("attachment tags are valid tags")
}

fn delete_artifact(
    store: &dyn Store,
    plan: &Plan,
    c: &Candidate,
    kept: &BTreeSet<&Digest>,
    deletion: &mut Deletion,
) -> Result<(), Error> {
    if let Some(d) = std::iter::once(&c.digest)
        .chain(&c.deletes)
        .find(|d| kept.contains(d))
    {
        let reason = plan
            .candidates
            .iter()
            .filter(|k| k.keep)
            .map(|k| (&k.digest, &k.reason))
            .chain(plan.keep_closure.iter().map(|n| (&n.digest, &n.reason)))
            .find(|(k, _)| *k == d)
            .map_or_else(|| "kept".to_owned(), |(_, r)| r.to_string());
        return Err(Error::Kept {
            digest: d.clone(),
            reason,
        });
    }
    // Attachments first, then the artifact and its tags, then what an index listed; last the
    // attachment tags, once the manifests they name are gone (distribution drops them itself
    // and cannot delete a tag on its own).
    let at = c
        .deletes
        .iter()
        .position(|d| *d == c.digest)
        .unwrap_or(c.deletes.len());
    for digest in &c.deletes[..at] {
        delete_one(store, digest, deletion)?;
    }
    delete_one(store, &c.digest, deletion)?;
    for t in &c.tags {
        drop_tag(store, &tag(t))?;
    }
    for digest in c.deletes.iter().skip(at + 1) {
        delete_one(store, digest, deletion)?;
    }
    for t in &c.drops_tags {
        drop_tag(store, &tag(t))?;
        deletion.attachment_tags.push(t.clone());
    }
    Ok(())
}

/// Removes a tag that outlived its manifest (registries such as go-containerregistry's keep
/// tags when the digest is deleted; distribution drops them).
fn drop_tag(store: &dyn Store, t: &Tag) -> Result<(), Error> {
    if store.get_tagged(t)?.is_some() {
        match store.delete_tag(t) {
            Ok(()) | Err(store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn delete_one(store: &dyn Store, digest: &Digest, deletion: &mut Deletion) -> Result<(), Error> {
    match store.delete_manifest(digest) {
        Ok(()) => {}
        // Already gone (a shared attachment, a concurrent prune): the goal is reached.
        Err(store::Error::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    deletion.deleted.push(digest.clone());
    Ok(())
}

/// The referrers of `subject`, recursively, deepest first; a kept referrer stays, and so does
/// everything attached to it.
fn collect_attached(
    store: &dyn Store,
    subject: &Digest,
    depth: usize,
    kept: &BTreeSet<Digest>,
    seen: &mut BTreeSet<Digest>,
    out: &mut Vec<Digest>,
) -> Result<(), Error> {
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    let limits = crate::storage::store::referrers::Limits::DEFAULT;
    for referrer in transfer::checked_referrers(store, subject, &limits)? {
        let d = referrer.descriptor.digest.clone();
        if kept.contains(&d) || !seen.insert(d.clone()) {
            continue;
        }
        if seen.len() > MAX_ATTACHED {
            return Err(store::Error::Refused {
                what: format!("referrers of {subject}"),
                reason: format!("more than {MAX_ATTACHED}"),
            }
            .into());
        }
        collect_attached(store, &d, depth + 1, kept, seen, out)?;
        out.push(d);
    }
    Ok(())
}

// ------------------------------------------------------------------------------ small parsers

/// Parses `30d`, `12h`, `90m`, `45s`, `2w` and sums like `1d12h` into seconds.
pub fn parse_duration(input: &str) -> Result<u64, Error> {
    crate::foundation::time::parse_duration(input).map_err(|_| Error::BadDuration {
        input: input.to_owned(),
    })
}

fn format_duration(secs: u64) -> String {
    match secs {
        s if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        s if s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::oci::{self, Descriptor, ImageManifest, MEDIA_TYPE_IMAGE_MANIFEST};
    use crate::storage::store::BlobSource;
    use crate::storage::store::layout::LayoutStore;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_duration("1d12h").unwrap(), 36 * 3600);
        assert_eq!(parse_duration("2w").unwrap(), 14 * 86_400);
        assert_eq!(parse_duration("90m").unwrap(), 5400);
        for bad in [
            "",
            "30",
            "d",
            "3x",
            "1.5d",
            "-1d",
            "99999999999999999999d",
            "1d 2h",
        ] {
            assert!(
                matches!(parse_duration(bad), Err(Error::BadDuration { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn attachment_tags() {
        let hex = "a".repeat(64);
        assert!(is_attachment_tag(&format!("sha256-{hex}")));
        assert!(is_attachment_tag(&format!("sha256-{hex}.sig")));
        assert!(!is_attachment_tag(&format!("sha256-{}", "a".repeat(63))));
        assert!(!is_attachment_tag(&format!("sha256-{hex}x")));
        assert!(!is_attachment_tag("v1.0.0"));
        assert!(!is_attachment_tag("sha256-"));
    }

    fn push(
        store: &LayoutStore,
        name: &str,
        created: Option<&str>,
        subject: Option<Descriptor>,
    ) -> Descriptor {
        let layer = Descriptor::of("application/vnd.test", name.as_bytes());
        store
            .put_blob(
                &Descriptor::empty_config(),
                BlobSource::Bytes(oci::EMPTY_JSON),
            )
            .unwrap();
        store
            .put_blob(&layer, BlobSource::Bytes(name.as_bytes()))
            .unwrap();
        let mut annotations = BTreeMap::new();
        if let Some(c) = created {
            annotations.insert(ANNOTATION_CREATED.to_owned(), c.to_owned());
        }
        let bytes = oci::to_bytes(&ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
            artifact_type: Some("application/vnd.test".into()),
            config: Descriptor::empty_config(),
            layers: vec![layer],
            subject,
            annotations,
        });
        store
            .put_manifest(&bytes, MEDIA_TYPE_IMAGE_MANIFEST)
            .unwrap();
        Descriptor::of(MEDIA_TYPE_IMAGE_MANIFEST, &bytes)
    }

    fn tag_it(store: &LayoutStore, t: &str, d: &Descriptor) {
        let fetched = store.get_manifest(&d.digest).unwrap();
        store.tag(&t.parse().unwrap(), &fetched).unwrap();
    }

    #[test]
    fn plans_and_prunes_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let day = 86_400;
        let now = 1_700_000_000 + 100 * day;
        let at = |days_ago: i64| {
            crate::evidence::attest::Timestamp::from_unix((now - days_ago * day) as u64).to_string()
        };
        let old_release = push(&store, "old-release", Some(&at(90)), None);
        tag_it(&store, "v1.0.0", &old_release);
        let old = push(&store, "old", Some(&at(60)), None);
        tag_it(&store, "build-1", &old);
        let sig = push(&store, "sig-of-old", None, Some(old.clone()));
        let sig_of_sig = push(&store, "sig-of-sig", None, Some(sig.clone()));
        let unknown = push(&store, "unknown", None, None);
        tag_it(&store, "build-2", &unknown);
        let recent = push(&store, "recent", Some(&at(1)), None);
        tag_it(&store, "build-3", &recent);
        let latest = push(&store, "latest", Some(&at(30)), None);
        tag_it(&store, "stable", &latest);
        let newest_sig = push(&store, "sig-of-recent", None, Some(recent.clone()));

        let rules = Rules {
            // `?` is one character in tag globs.
            keep_tags: vec!["v?.*".into()],
            keep_younger_than: Some(7 * day as u64),
            protect_tags: vec!["stable".into()],
            ..Default::default()
        };
        let plan = plan(&store, &rules, now).unwrap();
        let decision = |d: &Descriptor| {
            let c = plan
                .candidates
                .iter()
                .find(|c| c.digest == d.digest)
                .unwrap();
            (c.keep, c.reason.clone())
        };
        assert_eq!(
            decision(&old_release).1,
            Reason::ReleaseTag {
                tag: "v1.0.0".into(),
                pattern: "v?.*".into()
            }
        );
        assert_eq!(decision(&old), (false, Reason::NoRuleKeeps));
        assert_eq!(decision(&unknown), (true, Reason::UnknownAge));
        assert!(matches!(decision(&recent), (true, Reason::Younger { .. })));
        assert_eq!(
            decision(&latest).1,
            Reason::ProtectedTag {
                tag: "stable".into()
            }
        );
        assert_eq!(plan.to_delete().count(), 1);

        let done = execute(&store, &plan);
        assert!(done.complete(), "{done:?}");
        assert_eq!(
            done.deletions[0].deleted,
            vec![
                sig_of_sig.digest.clone(),
                sig.digest.clone(),
                old.digest.clone()
            ]
        );
        for gone in [&old, &sig, &sig_of_sig] {
            assert!(matches!(
                store.get_manifest(&gone.digest),
                Err(store::Error::NotFound { .. })
            ));
        }
        for kept in [&old_release, &unknown, &recent, &latest, &newest_sig] {
            store.get_manifest(&kept.digest).unwrap();
        }
        assert_eq!(
            store
                .tags()
                .unwrap()
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>(),
            vec!["build-2", "build-3", "stable", "v1.0.0"]
        );

        // keep-last ranks by creation time; unknown age is still kept.
        let rules = Rules {
            keep_last: Some(1),
            ..Default::default()
        };
        let plan2 = super::plan(&store, &rules, now).unwrap();
        let keep: Vec<(String, bool)> = plan2
            .candidates
            .iter()
            .map(|c| (c.tags.join(","), c.keep))
            .collect();
        let mut keep = keep;
        keep.sort();
        assert_eq!(
            keep,
            vec![
                ("build-2".into(), true),
                ("build-3".into(), true),
                ("stable".into(), false),
                ("v1.0.0".into(), false)
            ]
        );
        assert!(matches!(
            super::plan(&store, &Rules::default(), now),
            Err(Error::NoRules)
        ));
    }

    fn push_index(store: &LayoutStore, children: &[&Descriptor], created: &str) -> Descriptor {
        let mut index = oci::ImageIndex::empty();
        index.manifests = children.iter().map(|d| (*d).clone()).collect();
        index
            .annotations
            .insert(ANNOTATION_CREATED.to_owned(), created.to_owned());
        let bytes = oci::to_bytes(&index);
        store
            .put_manifest(&bytes, oci::MEDIA_TYPE_IMAGE_INDEX)
            .unwrap();
        Descriptor::of(oci::MEDIA_TYPE_IMAGE_INDEX, &bytes)
    }

    fn present(store: &LayoutStore, d: &Descriptor) -> bool {
        match store.get_manifest(&d.digest) {
            Ok(_) => true,
            Err(store::Error::NotFound { .. }) => false,
            Err(e) => panic!("{e}"),
        }
    }

    /// Issue 10, finding 4a: two releases of a multi-arch image share an unchanged platform
    /// manifest; pruning the old release keeps the shared one (and the kept release whole).
    #[test]
    fn a_platform_manifest_shared_with_a_kept_index_stays() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let shared = push(&store, "amd64", None, None);
        let old_arm = push(&store, "arm64-old", None, None);
        let new_arm = push(&store, "arm64-new", None, None);
        let old_arm_sig = push(&store, "sig-of-arm64-old", None, Some(old_arm.clone()));
        let shared_sig = push(&store, "sig-of-amd64", None, Some(shared.clone()));
        let old = push_index(&store, &[&shared, &old_arm], "2024-01-01T00:00:00Z");
        tag_it(&store, "r1", &old);
        let new = push_index(&store, &[&shared, &new_arm], "2024-02-01T00:00:00Z");
        tag_it(&store, "r2", &new);

        let rules = Rules {
            keep_last: Some(1),
            ..Default::default()
        };
        let plan = plan(&store, &rules, 1_800_000_000).unwrap();
        let needed: Vec<(&Digest, &Reason)> = plan
            .keep_closure
            .iter()
            .map(|n| (&n.digest, &n.reason))
            .collect();
        let by_new = Reason::NeededBy {
            digest: new.digest.clone(),
        };
        assert!(needed.contains(&(&shared.digest, &by_new)), "{needed:?}");
        assert!(needed.contains(&(&new_arm.digest, &by_new)), "{needed:?}");
        let doomed = plan.to_delete().next().unwrap();
        assert_eq!(doomed.digest, old.digest);
        // The plan shows all that goes: the old index, then its own platform manifest with
        // that manifest's signature; never the shared one or its signature.
        assert_eq!(
            doomed.deletes,
            vec![
                old.digest.clone(),
                old_arm_sig.digest.clone(),
                old_arm.digest.clone()
            ]
        );

        let done = execute(&store, &plan);
        assert!(done.complete(), "{done:?}");
        assert_eq!(done.deletions[0].deleted, doomed.deletes);
        for kept in [&new, &shared, &new_arm, &shared_sig] {
            assert!(present(&store, kept), "{} was deleted", kept.digest);
        }
        for gone in [&old, &old_arm, &old_arm_sig] {
            assert!(!present(&store, gone), "{} is still there", gone.digest);
        }
    }

    /// Issue 10, finding 4b: a protected artifact attached to an untagged signature of an
    /// artifact no rule keeps. The protected tag keeps its whole chain of subjects.
    #[test]
    fn a_protected_artifact_keeps_its_subjects_at_any_depth() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let old = push(&store, "old", Some("2024-01-01T00:00:00Z"), None);
        tag_it(&store, "build-1", &old);
        let sig = push(&store, "sig-of-old", None, Some(old.clone()));
        let countersig = push(&store, "countersig", None, Some(sig.clone()));
        tag_it(&store, "audit-evidence", &countersig);
        let other_sig = push(&store, "other-sig-of-old", None, Some(old.clone()));
        let other = push(&store, "other", Some("2024-01-02T00:00:00Z"), None);
        tag_it(&store, "build-2", &other);

        let rules = Rules {
            keep_last: Some(0),
            protect_tags: vec!["audit-evidence".into()],
            ..Default::default()
        };
        let plan = plan(&store, &rules, 1_800_000_000).unwrap();
        let decision = |d: &Descriptor| {
            plan.candidates
                .iter()
                .find(|c| c.digest == d.digest)
                .map(|c| (c.keep, c.reason.clone()))
                .unwrap()
        };
        assert_eq!(
            decision(&countersig),
            (
                true,
                Reason::ProtectedTag {
                    tag: "audit-evidence".into()
                }
            )
        );
        assert_eq!(
            decision(&old),
            (
                true,
                Reason::NeededBy {
                    digest: sig.digest.clone()
                }
            )
        );
        assert_eq!(
            plan.keep_closure,
            vec![Needed {
                digest: sig.digest.clone(),
                reason: Reason::NeededBy {
                    digest: countersig.digest.clone()
                }
            }]
        );
        assert_eq!(plan.to_delete().count(), 1);
        let done = execute(&store, &plan);
        assert!(done.complete(), "{done:?}");
        for kept in [&old, &sig, &countersig, &other_sig] {
            assert!(present(&store, kept), "{} was deleted", kept.digest);
        }
        assert!(!present(&store, &other));
    }

    /// A protected tag on an attachment (`sha256-<hex>.sig`) keeps it and what it needs.
    #[test]
    fn a_protected_attachment_tag_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let old = push(&store, "old", Some("2024-01-01T00:00:00Z"), None);
        tag_it(&store, "build-1", &old);
        let legacy = push(&store, "legacy-sig", None, None);
        let legacy_tag = format!("{}.sig", old.digest.fallback_tag());
        tag_it(&store, &legacy_tag, &legacy);
        let rules = Rules {
            keep_last: Some(0),
            protect_tags: vec![legacy_tag.clone()],
            ..Default::default()
        };
        let plan = plan(&store, &rules, 1_800_000_000).unwrap();
        assert_eq!(
            plan.keep_closure,
            vec![Needed {
                digest: legacy.digest.clone(),
                reason: Reason::ProtectedTag {
                    tag: legacy_tag.clone()
                }
            }]
        );
        let doomed = plan.to_delete().next().unwrap();
        assert_eq!(doomed.deletes, vec![old.digest.clone()]);
        assert!(doomed.drops_tags.is_empty());
        assert!(execute(&store, &plan).complete());
        assert!(present(&store, &legacy));
        assert!(
            store
                .get_tagged(&legacy_tag.parse().unwrap())
                .unwrap()
                .is_some()
        );
        assert!(!present(&store, &old));
    }

    /// A plan that would delete something it keeps is refused whole, not half-run.
    #[test]
    fn execute_refuses_to_delete_what_the_plan_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let kept = push(&store, "kept", Some("2024-02-01T00:00:00Z"), None);
        tag_it(&store, "keep-me", &kept);
        let old = push(&store, "old", Some("2024-01-01T00:00:00Z"), None);
        tag_it(&store, "build-1", &old);
        let rules = Rules {
            keep_last: Some(1),
            ..Default::default()
        };
        let mut plan = plan(&store, &rules, 1_800_000_000).unwrap();
        let doomed = plan.candidates.iter_mut().find(|c| !c.keep).unwrap();
        doomed.deletes.insert(0, kept.digest.clone());
        let done = execute(&store, &plan);
        let error = done.deletions[0].error.as_deref().unwrap();
        assert!(
            error.contains(&format!("the plan keeps {}", kept.digest)),
            "{error}"
        );
        assert!(done.deletions[0].deleted.is_empty());
        assert!(present(&store, &kept));
        assert!(present(&store, &old));
    }
}
