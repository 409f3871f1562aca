//! SHA-256 throughput of custody's hasher on an in-memory buffer, one core: the number to put
//! beside `openssl speed -evp sha256` (scripts/bench-transfer prints both and the ratio).
//!
//! With `--file PATH` it also hashes that file both ways `custody digest` could: read and hash
//! taking turns on one thread (`of_reader`), and reading ahead on a second thread (`of_file`),
//! alternating runs so both see the same machine load.

use std::path::Path;
use std::time::Instant;

use custody::digest::{self, Hasher};

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` only checks that this runs.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let size_mib: usize = flag("--size-mib")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    // Warm up, then measure the best of three passes.
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let mut hasher = Hasher::new();
        for _ in 0..size_mib {
            hasher.update(&chunk);
        }
        let digest = hasher.finish();
        let seconds = start.elapsed().as_secs_f64();
        std::hint::black_box(digest);
        best = best.min(seconds);
    }
    let mbs = (size_mib * 1024 * 1024) as f64 / best / 1e6;
    println!("custody sha256 {mbs:.0} MB/s ({size_mib} MiB in memory, best of 3)");

    if let Some(path) = flag("--file") {
        file(Path::new(&path));
    }
}

fn flag(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

/// Wall and CPU seconds of each way of hashing `path`, median of five alternating runs.
fn file(path: &Path) {
    const RUNS: usize = 5;
    let one_thread = || digest::of_reader(std::fs::File::open(path)?);
    let read_ahead = || digest::of_file(path);
    let ways: [(&str, &dyn Fn() -> std::io::Result<(digest::Digest, u64)>); 2] = [
        ("of_reader (one thread)", &one_thread),
        ("of_file (read ahead)", &read_ahead),
    ];
    let mut times = [[(0.0, 0.0); RUNS]; 2];
    let mut size = 0;
    for run in 0..RUNS {
        for (way, (_, hash)) in ways.iter().enumerate() {
            let (start, cpu_start) = (Instant::now(), cpu_seconds());
            let (digest, len) = hash().expect("the benchmark file is readable");
            times[way][run] = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
            std::hint::black_box(digest);
            size = len;
        }
    }
    for (way, (name, _)) in ways.iter().enumerate() {
        let median = |pick: fn(&(f64, f64)) -> f64| {
            let mut v: Vec<f64> = times[way].iter().map(pick).collect();
            v.sort_by(f64::total_cmp);
            v[RUNS / 2]
        };
        let (wall, cpu) = (median(|t| t.0), median(|t| t.1));
        println!(
            "{name:24} {:5.0} MB/s wall, {:5.0} MB/s CPU ({}, median of {RUNS})",
            size as f64 / wall / 1e6,
            size as f64 / cpu / 1e6,
            path.display()
        );
    }
}

/// User plus system time of this process (all threads) from /proc/self/stat, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: f64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    // Linux reports in USER_HZ, which is 100 on every mainstream architecture.
    ticks / 100.0
}
