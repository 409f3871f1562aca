//! Counters and latency histograms, written in the Prometheus text format (0.0.4): requests per
//! endpoint and status, verdicts, admission decisions, cache hits and misses, reloads, and the
//! latency of requests and of the verifications behind them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::Event;
use crate::decisions::verify::{self, VerifyReport};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A latency histogram.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// The endpoints requests are counted under (anything else is `other`).
pub const ENDPOINTS: [&str; 7] = [
    "verify", "validate", "mutate", "healthz", "readyz", "metrics", "other",
];

/// Everything counted since the server started.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: [Histogram; ENDPOINTS.len()],
    verification_latency: Histogram,
    verified: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
    admitted: AtomicU64,
    denied: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    summaries: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

impl Metrics {
    /// One answered request.
    pub fn request(&self, endpoint: &'static str, status: u16, elapsed: Duration) {
        let i = ENDPOINTS
            .iter()
            .position(|e| *e == endpoint)
            .unwrap_or(ENDPOINTS.len() - 1);
        *self
            .requests
            .lock()
            .expect("metrics lock is never poisoned")
            .entry((ENDPOINTS[i], status))
            .or_default() += 1;
        self.latency[i].observe(elapsed);
    }

    /// One verification run (not a cache hit).
    pub fn verification(&self, elapsed: Duration, result: Result<&VerifyReport, &verify::Error>) {
        self.verification_latency.observe(elapsed);
        let counter = match result {
            Ok(r) if r.verified => &self.verified,
            Ok(_) => &self.refused,
            Err(_) => &self.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// One admission decision.
    pub fn admission(&self, allowed: bool) {
        let counter = if allowed {
            &self.admitted
        } else {
            &self.denied
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// One verdict reached from a trusted verification summary (no full verification ran).
    pub fn summary_accepted(&self) {
        self.summaries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cache_miss(&self) {
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reload(&self, event: &Event) {
        let counter = match event {
            Event::Reloaded { .. } => &self.reloads,
            Event::ReloadFailed { .. } => &self.reload_failures,
            Event::Draining { .. } => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric, with `cache_entries` as a gauge.
    pub fn render(&self, cache_entries: usize) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (labels, v) in samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

        let requests: Vec<(String, u64)> = self
            .requests
            .lock()
            .expect("metrics lock is never poisoned")
            .iter()
            .map(|((e, s), n)| (format!("endpoint=\"{e}\",code=\"{s}\""), *n))
            .collect();
        let requests: Vec<(&str, u64)> = requests.iter().map(|(l, n)| (l.as_str(), *n)).collect();
        counter(
            &mut out,
            "custody_serve_requests_total",
            "HTTP requests answered, by endpoint and status code.",
            &requests,
        );
        counter(
            &mut out,
            "custody_serve_verdicts_total",
            "Verifications run (cache misses), by outcome.",
            &[
                ("verdict=\"verified\"", load(&self.verified)),
                ("verdict=\"refused\"", load(&self.refused)),
                ("verdict=\"error\"", load(&self.errors)),
            ],
        );
        counter(
            &mut out,
            "custody_serve_verdict_paths_total",
            "Verdicts reached on a cache miss, by path: a full verification, or a trusted verifier's summary (vsa).",
            &[
                (
                    "path=\"full\"",
                    load(&self.verified) + load(&self.refused) + load(&self.errors),
                ),
                ("path=\"vsa\"", load(&self.summaries)),
            ],
        );
        counter(
            &mut out,
            "custody_serve_admissions_total",
            "Admission reviews answered, by decision.",
            &[
                ("decision=\"allowed\"", load(&self.admitted)),
                ("decision=\"denied\"", load(&self.denied)),
            ],
        );
        counter(
            &mut out,
            "custody_serve_cache_hits_total",
            "Verdicts answered from the cache.",
            &[("", load(&self.cache_hits))],
        );
        counter(
            &mut out,
            "custody_serve_cache_misses_total",
            "Verdicts not in the cache.",
            &[("", load(&self.cache_misses))],
        );
        counter(
            &mut out,
            "custody_serve_reloads_total",
            "Policy, trust, database or TLS files reloaded, by result.",
            &[
                ("result=\"ok\"", load(&self.reloads)),
                ("result=\"failed\"", load(&self.reload_failures)),
            ],
        );
        let _ = writeln!(
            out,
            "# HELP custody_serve_cache_entries Verdicts held in the cache."
        );
        let _ = writeln!(out, "# TYPE custody_serve_cache_entries gauge");
        let _ = writeln!(out, "custody_serve_cache_entries {cache_entries}");
        let name = "custody_serve_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a request's arrival to its answer, by endpoint."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (endpoint, h) in ENDPOINTS.iter().zip(&self.latency) {
            h.render(&mut out, name, &format!("endpoint=\"{endpoint}\""));
        }
        let name = "custody_serve_verification_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time a verification (cache miss) took, registry included."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        self.verification_latency.render(&mut out, name, "");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_types_before_samples_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request("validate", 200, Duration::from_micros(300));
        m.request("validate", 200, Duration::from_millis(3));
        m.request("nonsense", 404, Duration::from_millis(1));
        m.cache_hit();
        m.summary_accepted();
        let text = m.render(2);
        assert!(text.contains("custody_serve_verdict_paths_total{path=\"vsa\"} 1\n"));
        assert!(text.contains("custody_serve_verdict_paths_total{path=\"full\"} 0\n"));
        assert!(text.ends_with('\n'));
        assert!(
            text.contains("custody_serve_requests_total{endpoint=\"validate\",code=\"200\"} 2\n")
        );
        assert!(text.contains("custody_serve_requests_total{endpoint=\"other\",code=\"404\"} 1\n"));
        assert!(text.contains(
            "custody_serve_request_duration_seconds_bucket{endpoint=\"validate\",le=\"0.0005\"} 1\n"
        ));
        assert!(text.contains(
            "custody_serve_request_duration_seconds_bucket{endpoint=\"validate\",le=\"0.005\"} 2\n"
        ));
        assert!(text.contains(
            "custody_serve_request_duration_seconds_bucket{endpoint=\"validate\",le=\"+Inf\"} 2\n"
        ));
        assert!(text.contains("custody_serve_cache_hits_total 1\n"));
        assert!(text.contains("custody_serve_cache_entries 2\n"));
        // Every sample's family was declared before it.
        let mut declared = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| declared.contains(*f)))
                    .unwrap_or(name);
                assert!(declared.contains(family), "{line}");
            }
        }
    }
}
