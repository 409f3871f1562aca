//! Walking the referrers of an artifact: the one place that lists them, caps how many are
//! fetched and how deep the walk goes, fetches their manifests on a small pool of threads, and
//! keeps only those that point back at their subject. Verify, tree, copy and promote, prune and
//! vuln all walk the graph through here, so one set of [`Limits`] bounds them all.
//!
//! Results always come back in the order the store listed them, whatever order the fetches
//! finish in, so reports are stable.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::{Condvar, Mutex, PoisonError, mpsc};

use super::{Error, FetchedManifest, ReferrersPath, Store};
use crate::foundation::digest::Digest;
use crate::foundation::oci::{self, Descriptor};

/// Fetches one walk runs at once unless told otherwise.
pub const DEFAULT_JOBS: usize = 4;
/// More fetches at once than this are not started, whatever is asked.
pub const MAX_JOBS: usize = 32;

/// How much of what others attach one walk reads. Whoever can push to a repository can attach
/// anything to an artifact in it, so these bound the requests, bytes, memory and threads a walk
/// spends on them. Nothing a limit leaves out is trusted: skipping only loses evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Listed referrers of one subject whose manifests are fetched; the rest are counted, not
    /// fetched.
    pub referrers: usize,
    /// Levels of referrers of referrers followed below the artifact.
    pub depth: usize,
    /// Largest bundle or legacy layer read; its descriptor says the size before a byte is read,
    /// and a larger one refuses the discovery.
    pub blob_bytes: u64,
    /// Bundle and legacy layer bytes one discovery reads in all; layers that no longer fit are
    /// counted, not read.
    pub total_bytes: u64,
    /// Fetches run at once, which is also how many bundles are held at once (the CLI's
    /// `--jobs`); 0 means [`DEFAULT_JOBS`], and more than [`MAX_JOBS`] means that many.
    pub jobs: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        referrers: 1000,
        depth: 8,
        blob_bytes: 16 * 1024 * 1024,
        total_bytes: 256 * 1024 * 1024,
        jobs: DEFAULT_JOBS,
    };

    /// The number of fetches to run at once.
    pub fn jobs(&self) -> usize {
        match self.jobs {
            0 => DEFAULT_JOBS,
            n => n.min(MAX_JOBS),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// The referrers of one subject, deduplicated, in the store's order.
#[derive(Clone, Debug)]
pub struct Listing {
    pub path: ReferrersPath,
    pub descriptors: Vec<Descriptor>,
}

/// Lists the manifests that claim `subject`, once each.
pub fn list(store: &dyn Store, subject: &Digest) -> Result<Listing, Error> {
    let listed = store.referrers(subject)?;
    let mut seen = BTreeSet::new();
    let descriptors = listed
        .descriptors
        .into_iter()
        .filter(|d| d.is_manifest_like() && seen.insert(d.digest.clone()))
        .collect();
    Ok(Listing {
        path: listed.path,
        descriptors,
    })
}

/// Fetches the manifest `listed` names and checks it points back at `subject`: `None` when it is
/// gone (deleted, garbage collected) or names another subject, as a fallback index can list
/// anything.
pub fn fetch_checked(
    store: &dyn Store,
    subject: &Digest,
    listed: &Descriptor,
) -> Result<Option<FetchedManifest>, Error> {
    match store.get_manifest(&listed.digest) {
        Ok(f) if f.manifest.subject().map(|s| &s.digest) == Some(subject) => Ok(Some(f)),
        Ok(_) | Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The checked referrers of one subject.
#[derive(Clone, Debug)]
pub struct Checked {
    pub path: ReferrersPath,
    pub manifests: Vec<FetchedManifest>,
    /// Listed beyond [`Limits::referrers`], not fetched.
    pub skipped: usize,
}

/// The referrers of `subject` that really name it, fetched on the pool, in listing order. At
/// most [`Limits::referrers`] are fetched.
pub fn checked(store: &dyn Store, subject: &Digest, limits: &Limits) -> Result<Checked, Error> {
    let listing = list(store, subject)?;
    let skipped = listing.descriptors.len().saturating_sub(limits.referrers);
    let wanted = &listing.descriptors[..listing.descriptors.len() - skipped];
    let mut manifests = Vec::new();
    let mut failed = None;
    ordered(
        limits.jobs(),
        wanted,
        |d| fetch_checked(store, subject, d),
        |_, fetched| match fetched {
            Ok(f) => {
                manifests.extend(f);
                ControlFlow::Continue(())
            }
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        },
    );
    match failed {
        Some(e) => Err(e),
        None => Ok(Checked {
            path: listing.path,
            manifests,
            skipped,
        }),
    }
}

/// One referrer and, below it, its own referrers.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReferrerNode {
    pub descriptor: Descriptor,
    pub referrers: Vec<ReferrerNode>,
}

/// The referrers below `subject` as a tree, each manifest once, children sorted by digest,
/// [`Limits::depth`] levels deep. Returns the tree and how many listed referrers the cap left
/// out.
pub fn tree(
    store: &dyn Store,
    subject: &Digest,
    limits: &Limits,
) -> Result<(Vec<ReferrerNode>, usize), Error> {
    let mut seen = BTreeSet::new();
    let mut skipped = 0;
    if limits.depth == 0 {
        return Ok((Vec::new(), 0));
    }
    let listing = list(store, subject)?;
    let nodes = tree_below(store, subject, listing, limits, 0, &mut seen, &mut skipped)?;
    Ok((nodes, skipped))
}

/// One level of [`tree`]: each worker fetches a referrer and lists its own referrers, so a
/// level costs its width divided by the pool size in round trips, not twice its width.
fn tree_below(
    store: &dyn Store,
    subject: &Digest,
    listing: Listing,
    limits: &Limits,
    depth: usize,
    seen: &mut BTreeSet<Digest>,
    skipped: &mut usize,
) -> Result<Vec<ReferrerNode>, Error> {
    let extra = listing.descriptors.len().saturating_sub(limits.referrers);
    *skipped += extra;
    let wanted = &listing.descriptors[..listing.descriptors.len() - extra];
    let deeper = depth + 1 < limits.depth;
    let mut found = Vec::new();
    let mut failed = None;
    ordered(
        limits.jobs(),
        wanted,
        |d| {
            let Some(fetched) = fetch_checked(store, subject, d)? else {
                return Ok(None);
            };
            let below = if deeper {
                Some(list(store, &fetched.descriptor.digest)?)
            } else {
                None
            };
            Ok(Some((fetched, below)))
        },
        |_, result: Result<_, Error>| match result {
            Ok(f) => {
                found.extend(f);
                ControlFlow::Continue(())
            }
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        },
    );
    if let Some(e) = failed {
        return Err(e);
    }
    let mut nodes = Vec::new();
    for (fetched, below) in found {
        if !seen.insert(fetched.descriptor.digest.clone()) {
            continue;
        }
        let descriptor = oci::referrer_descriptor(
            &fetched.manifest,
            &fetched.descriptor.media_type,
            &fetched.bytes,
        );
        let referrers = match below {
            Some(listing) => tree_below(
                store,
                &descriptor.digest,
                listing,
                limits,
                depth + 1,
                seen,
                skipped,
            )?,
            None => Vec::new(),
        };
        nodes.push(ReferrerNode {
            descriptor,
            referrers,
        });
    }
    nodes.sort_by(|a, b| a.descriptor.digest.cmp(&b.descriptor.digest));
    Ok(nodes)
}

/// Runs `work` on every item on up to `jobs` threads and hands each result to `visit` in the
/// items' order, as soon as it and all before it are done. No item is started more than `jobs`
/// places ahead of the last one visited, so at most `jobs` results are held at once. When
/// `visit` breaks, no further item is started and no further result is visited.
pub fn ordered<T, R>(
    jobs: usize,
    items: &[T],
    work: impl Fn(&T) -> R + Sync,
    visit: impl FnMut(usize, R) -> ControlFlow<()>,
) where
    T: Sync,
    R: Send,
{
    ordered_indices(jobs, items.len(), |i| work(&items[i]), visit);
}

/// [`ordered`] over the indices `0..count`, for a caller whose items are not a slice.
pub fn ordered_indices<R>(
    jobs: usize,
    count: usize,
    work: impl Fn(usize) -> R + Sync,
    mut visit: impl FnMut(usize, R) -> ControlFlow<()>,
) where
    R: Send,
{
    let jobs = jobs.clamp(1, MAX_JOBS).min(count);
    if jobs <= 1 {
        for i in 0..count {
            if visit(i, work(i)).is_break() {
                return;
            }
        }
        return;
    }
    struct Window {
        next: usize,
        visited: usize,
        stop: bool,
    }
    let window = Mutex::new(Window {
        next: 0,
        visited: 0,
        stop: false,
    });
    let moved = Condvar::new();
    let lock = || window.lock().unwrap_or_else(PoisonError::into_inner);
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..jobs {
            let tx = tx.clone();
            let (work, moved, lock) = (&work, &moved, &lock);
            scope.spawn(move || {
                loop {
                    let i = {
                        let mut w = lock();
                        while !w.stop && w.next < count && w.next >= w.visited + jobs {
                            w = moved.wait(w).unwrap_or_else(PoisonError::into_inner);
                        }
                        if w.stop || w.next >= count {
                            return;
                        }
                        w.next += 1;
                        w.next - 1
                    };
                    if tx.send((i, work(i))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut next = 0;
        'results: for (i, result) in rx.iter() {
            pending.insert(i, result);
            while let Some(result) = pending.remove(&next) {
                let flow = visit(next, result);
                next += 1;
                let mut w = lock();
                w.visited = next;
                if flow.is_break() {
                    w.stop = true;
                }
                drop(w);
                moved.notify_all();
                if flow.is_break() {
                    break 'results;
                }
            }
        }
        // Dropping the receiver makes any worker still sending give up.
        drop(rx);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::oci::{ImageManifest, MEDIA_TYPE_IMAGE_MANIFEST};
    use crate::foundation::reference::Tag;
    use crate::storage::store::layout::LayoutStore;
    use crate::storage::store::{BlobSource, Referrers};
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A layout whose manifests in `broken` fail to fetch, and whose listing can name extra
    /// digests that are not there.
    struct Faulty {
        inner: LayoutStore,
        broken: BTreeSet<Digest>,
        extra: Vec<Descriptor>,
        gate: Gate,
    }

    /// Holds each manifest fetch until `want` run at once (or two seconds pass, so that a
    /// pool smaller than `want` cannot hang the test), then lets every fetch straight through;
    /// records the most that ran at once.
    #[derive(Default)]
    struct Gate {
        want: usize,
        running: Mutex<usize>,
        arrived: Condvar,
        open: std::sync::atomic::AtomicBool,
        most: AtomicUsize,
    }

    impl Gate {
        fn pass(&self) {
            let mut running = self.running.lock().unwrap();
            *running += 1;
            self.most.fetch_max(*running, Ordering::SeqCst);
            self.arrived.notify_all();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while *running < self.want && !self.open.load(Ordering::SeqCst) {
                let now = std::time::Instant::now();
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
            *running -= 1;
        }
    }

    impl Store for Faulty {
        fn name(&self) -> String {
            self.inner.name()
        }
        fn blob_exists(&self, d: &Digest) -> Result<Option<u64>, Error> {
            self.inner.blob_exists(d)
        }
        fn put_blob(&self, d: &Descriptor, s: BlobSource<'_>) -> Result<(), Error> {
            self.inner.put_blob(d, s)
        }
        fn get_blob(&self, d: &Descriptor, sink: &mut dyn std::io::Write) -> Result<(), Error> {
            self.inner.get_blob(d, sink)
        }
        fn put_manifest(&self, b: &[u8], m: &str) -> Result<Descriptor, Error> {
            self.inner.put_manifest(b, m)
        }
        fn tag(&self, t: &Tag, m: &FetchedManifest) -> Result<(), Error> {
            self.inner.tag(t, m)
        }
        fn get_manifest(&self, d: &Digest) -> Result<FetchedManifest, Error> {
            if self.gate.want > 0 {
                self.gate.pass();
            }
            if self.broken.contains(d) {
                return Err(Error::Refused {
                    what: format!("manifest {d}"),
                    reason: "broken on purpose".into(),
                });
            }
            self.inner.get_manifest(d)
        }
        fn get_tagged(&self, t: &Tag) -> Result<Option<FetchedManifest>, Error> {
            self.inner.get_tagged(t)
        }
        fn referrers(&self, d: &Digest) -> Result<Referrers, Error> {
            let mut listed = self.inner.referrers(d)?;
            listed.descriptors.extend(self.extra.iter().cloned());
            Ok(listed)
        }
        fn tags(&self) -> Result<Vec<Tag>, Error> {
            self.inner.tags()
        }
        fn delete_manifest(&self, d: &Digest) -> Result<(), Error> {
            self.inner.delete_manifest(d)
        }
    }

    fn manifest(store: &dyn Store, subject: Option<&Descriptor>, n: usize) -> Descriptor {
        let m = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
            artifact_type: Some("application/x".into()),
            config: Descriptor::empty_config(),
            layers: vec![],
            subject: subject.cloned(),
            annotations: BTreeMap::from([("n".to_owned(), n.to_string())]),
        };
        store
            .put_blob(&Descriptor::empty_config(), BlobSource::Bytes(b"{}"))
            .unwrap();
        store
            .put_manifest(&oci::to_bytes(&m), MEDIA_TYPE_IMAGE_MANIFEST)
            .unwrap()
    }

    /// A subject with `n` referrers; returns the store, the subject and the referrers in the
    /// store's listing order.
    fn with_referrers(n: usize) -> (tempfile::TempDir, Faulty, Descriptor, Vec<Digest>) {
        let dir = tempfile::tempdir().unwrap();
        let inner = LayoutStore::open_or_create(dir.path()).unwrap();
        let subject = manifest(&inner, None, 0);
        for i in 0..n {
            manifest(&inner, Some(&subject), i + 1);
        }
        let listed = list(&inner, &subject.digest).unwrap().descriptors;
        let order = listed.into_iter().map(|d| d.digest).collect();
        let store = Faulty {
            inner,
            broken: BTreeSet::new(),
            extra: Vec::new(),
            gate: Gate::default(),
        };
        (dir, store, subject, order)
    }

    #[test]
    fn checked_keeps_listing_order_skips_the_gone_and_caps_the_fetched() {
        let (_dir, mut store, subject, order) = with_referrers(12);
        assert_eq!(order.len(), 12);
        // Listed but gone: not an error, not returned.
        store.extra.push(Descriptor::new(
            MEDIA_TYPE_IMAGE_MANIFEST,
            Digest::of(b"gone"),
            4,
        ));
        for jobs in [1, 3, 8] {
            let limits = Limits {
                jobs,
                ..Limits::DEFAULT
            };
            let found = checked(&store, &subject.digest, &limits).unwrap();
            let got: Vec<Digest> = found
                .manifests
                .iter()
                .map(|m| m.descriptor.digest.clone())
                .collect();
            assert_eq!(got, order, "{jobs} job(s)");
            assert_eq!(found.skipped, 0);

            let capped = Limits {
                referrers: 5,
                jobs,
                ..Limits::DEFAULT
            };
            let found = checked(&store, &subject.digest, &capped).unwrap();
            let got: Vec<Digest> = found
                .manifests
                .iter()
                .map(|m| m.descriptor.digest.clone())
                .collect();
            assert_eq!(got, order[..5], "{jobs} job(s)");
            assert_eq!(
                found.skipped, 8,
                "seven listed beyond the cap and the gone one"
            );
        }
    }

    #[test]
    fn the_first_failing_referrer_in_listing_order_is_the_one_reported() {
        let (_dir, mut store, subject, order) = with_referrers(10);
        store.broken.insert(order[3].clone());
        store.broken.insert(order[7].clone());
        for jobs in [1, 4, 8] {
            let limits = Limits {
                jobs,
                ..Limits::DEFAULT
            };
            let err = checked(&store, &subject.digest, &limits).unwrap_err();
            assert!(
                matches!(&err, Error::Refused { what, .. } if *what == format!("manifest {}", order[3])),
                "{jobs} job(s): {err}"
            );
        }
    }

    #[test]
    fn tree_stops_at_the_depth_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let root = manifest(&store, None, 0);
        let mut below = root.clone();
        for level in 1..=5 {
            below = manifest(&store, Some(&below), level);
        }
        let depth_of = |nodes: &[ReferrerNode]| {
            let mut depth = 0;
            let mut level = nodes;
            while let Some(n) = level.first() {
                depth += 1;
                level = &n.referrers;
            }
            depth
        };
        let (nodes, skipped) = tree(&store, &root.digest, &Limits::DEFAULT).unwrap();
        assert_eq!((depth_of(&nodes), skipped), (5, 0));
        let shallow = Limits {
            depth: 3,
            ..Limits::DEFAULT
        };
        let (nodes, _) = tree(&store, &root.digest, &shallow).unwrap();
        assert_eq!(depth_of(&nodes), 3);
    }

    #[test]
    fn results_come_in_item_order_whatever_finishes_first() {
        let items: Vec<u64> = (0..40).collect();
        let mut seen = Vec::new();
        ordered(
            4,
            &items,
            |&n| {
                // Later items finish first.
                std::thread::sleep(std::time::Duration::from_millis((40 - n) % 7));
                n * 10
            },
            |i, r| {
                seen.push((i, r));
                ControlFlow::Continue(())
            },
        );
        let expected: Vec<(usize, u64)> = (0..40).map(|n| (n as usize, n * 10)).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn no_more_than_jobs_items_are_in_flight_or_held() {
        let items: Vec<usize> = (0..60).collect();
        let started = AtomicUsize::new(0);
        let visited = AtomicUsize::new(0);
        let most_ahead = AtomicUsize::new(0);
        let running = AtomicUsize::new(0);
        let most_running = AtomicUsize::new(0);
        ordered(
            3,
            &items,
            |_| {
                let s = started.fetch_add(1, Ordering::SeqCst) + 1;
                let ahead = s - visited.load(Ordering::SeqCst);
                most_ahead.fetch_max(ahead, Ordering::SeqCst);
                let r = running.fetch_add(1, Ordering::SeqCst) + 1;
                most_running.fetch_max(r, Ordering::SeqCst);
                std::thread::yield_now();
                running.fetch_sub(1, Ordering::SeqCst);
            },
            |_, ()| {
                visited.fetch_add(1, Ordering::SeqCst);
                ControlFlow::Continue(())
            },
        );
        assert_eq!(visited.load(Ordering::SeqCst), 60);
        assert!(most_running.load(Ordering::SeqCst) <= 3);
        assert!(most_ahead.load(Ordering::SeqCst) <= 3);
    }

    #[test]
    fn a_break_stops_new_work_and_later_results() {
        let items: Vec<usize> = (0..100).collect();
        let started = AtomicUsize::new(0);
        let mut seen = Vec::new();
        ordered(
            4,
            &items,
            |&n| {
                started.fetch_add(1, Ordering::SeqCst);
                if n == 5 { Err(n) } else { Ok(n) }
            },
            |i, r| {
                seen.push(i);
                if r.is_err() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert_eq!(seen, vec![0, 1, 2, 3, 4, 5]);
        assert!(started.load(Ordering::SeqCst) <= 6 + 4);
    }

    #[test]
    fn one_job_and_no_items_run_in_place() {
        let mut seen = Vec::new();
        ordered(
            0,
            &[1, 2, 3],
            |&n| n,
            |_, r| {
                seen.push(r);
                ControlFlow::Continue(())
            },
        );
        assert_eq!(seen, vec![1, 2, 3]);
        ordered(4, &[] as &[u8], |_| (), |_, ()| ControlFlow::Continue(()));
    }

    #[test]
    fn jobs_zero_means_the_default_and_is_capped() {
        let limits = |jobs| Limits {
            jobs,
            ..Limits::DEFAULT
        };
        assert_eq!(limits(500).jobs(), MAX_JOBS);
        assert_eq!(limits(0).jobs(), DEFAULT_JOBS);
        assert_eq!(Limits::DEFAULT.jobs(), DEFAULT_JOBS);
        assert_eq!(limits(3).jobs(), 3);
    }

    /// The pool size is what the caller hands in `Limits`, nothing process-wide: one job
    /// fetches one manifest at a time, three fetch three at once.
    #[test]
    fn the_jobs_handed_in_bound_the_fetches_at_once() {
        for jobs in [1, 3] {
            let (_dir, mut store, subject, order) = with_referrers(9);
            store.gate.want = 3;
            let limits = Limits {
                jobs,
                ..Limits::DEFAULT
            };
            let found = checked(&store, &subject.digest, &limits).unwrap();
            assert_eq!(found.manifests.len(), order.len());
            assert_eq!(store.gate.most.load(Ordering::SeqCst), jobs, "jobs {jobs}");
        }
    }
}
