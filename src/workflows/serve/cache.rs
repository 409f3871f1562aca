//! The verdict cache: a verify report kept for a while under everything that decided it (the
//! repository whose scope applied, the digest, and the digests of the policy, trusted root and
//! vulnerability database), so a changed input never meets an old verdict. Refusals expire
//! sooner than passes; errors (a registry that could not be read) are never cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::decisions::verify::VerifyReport;
use crate::foundation::digest::Digest;

/// How long verdicts are kept, and how many.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// How long a verified artifact's report is reused.
    pub ttl: Duration,
    /// How long a refusal is reused (shorter: a missing signature may be attached soon).
    pub refusal_ttl: Duration,
    /// Most reports kept; the ones closest to expiry go first.
    pub max_entries: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            ttl: Duration::from_secs(10 * 60),
            refusal_ttl: Duration::from_secs(30),
            max_entries: 10_000,
        }
    }
}

/// Everything a verdict depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The repository the policy scope was chosen for.
    pub repository: String,
    pub digest: Digest,
    pub policy: Digest,
    pub trusted_root: Option<Digest>,
    pub vulnerability_db: Option<Digest>,
}

/// How a verdict was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// The whole chain was verified.
    Full,
    /// A signed verification summary from a trusted verifier stood for it.
    Vsa,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Full => "full",
            Basis::Vsa => "vsa",
        }
    }
}

/// A cached verdict: the report and how it was reached.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub report: Arc<VerifyReport>,
    pub basis: Basis,
}

struct Entry {
    verdict: Verdict,
    expires: Instant,
}

/// The cache; safe to share between threads.
pub struct VerdictCache {
    settings: CacheSettings,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl VerdictCache {
    pub fn new(settings: CacheSettings) -> VerdictCache {
        VerdictCache {
            settings,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The verdict stored under `key`, unless it has expired.
    pub fn get(&self, key: &Key) -> Option<Verdict> {
        let mut entries = self.entries.lock().expect("cache lock is never poisoned");
        match entries.get(key) {
            Some(e) if e.expires > Instant::now() => Some(e.verdict.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores a report for its time to live (shorter for a refusal).
    pub fn insert(&self, key: Key, verdict: Verdict) {
        let ttl = if verdict.report.verified {
            self.settings.ttl
        } else {
            self.settings.refusal_ttl
        };
        if ttl.is_zero() || self.settings.max_entries == 0 {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("cache lock is never poisoned");
        if entries.len() >= self.settings.max_entries && !entries.contains_key(&key) {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= self.settings.max_entries {
                // Full of live entries: drop the one that would expire first.
                if let Some(first) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| k.clone())
                {
                    entries.remove(&first);
                }
            }
        }
        entries.insert(
            key,
            Entry {
                verdict,
                expires: now + ttl,
            },
        );
    }

    /// Reports held now (expired ones included until they are met or evicted).
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .expect("cache lock is never poisoned")
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::verify::{ManifestReport, PolicyRef};

    fn report(verified: bool) -> Verdict {
        Verdict {
            basis: Basis::Full,
            report: report_of(verified),
        }
    }

    fn report_of(verified: bool) -> Arc<VerifyReport> {
        Arc::new(VerifyReport {
            reference: "127.0.0.1:5000/app:v1".into(),
            digest: None,
            pinned: String::new(),
            scope: None,
            policy: PolicyRef {
                source: "policy.yaml".into(),
                digest: None,
            },
            verified,
            artifact: ManifestReport {
                digest: None,
                media_type: String::new(),
                platform: None,
                verified,
                checks: Vec::new(),
                referrers: Vec::new(),
                ignored: Vec::new(),
                build_level: None,
                platforms: Vec::new(),
                unsigned: Vec::new(),
            },
            trusted_root: None,
            attestations_repository: None,
        })
    }

    fn key(n: u8, policy: &[u8]) -> Key {
        Key {
            repository: "127.0.0.1:5000/app".into(),
            digest: Digest::of(&[n]),
            policy: Digest::of(policy),
            trusted_root: None,
            vulnerability_db: None,
        }
    }

    #[test]
    fn a_verdict_is_found_only_under_the_same_inputs() {
        let cache = VerdictCache::new(CacheSettings::default());
        cache.insert(key(1, b"policy a"), report(true));
        assert!(
            cache
                .get(&key(1, b"policy a"))
                .is_some_and(|r| r.report.verified)
        );
        assert!(cache.get(&key(1, b"policy b")).is_none());
        assert!(cache.get(&key(2, b"policy a")).is_none());
        let mut other_root = key(1, b"policy a");
        other_root.trusted_root = Some(Digest::of(b"root"));
        assert!(cache.get(&other_root).is_none());
    }

    #[test]
    fn refusals_use_their_own_ttl_and_zero_keeps_nothing() {
        let cache = VerdictCache::new(CacheSettings {
            refusal_ttl: Duration::ZERO,
            ..CacheSettings::default()
        });
        cache.insert(key(1, b"p"), report(false));
        assert!(cache.get(&key(1, b"p")).is_none());
        cache.insert(key(2, b"p"), report(true));
        assert!(cache.get(&key(2, b"p")).is_some());
    }

    #[test]
    fn a_full_cache_evicts_and_stays_bounded() {
        let cache = VerdictCache::new(CacheSettings {
            max_entries: 3,
            ..CacheSettings::default()
        });
        for n in 0..10 {
            cache.insert(key(n, b"p"), report(true));
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&key(9, b"p")).is_some(), "the newest entry stays");
    }
}
