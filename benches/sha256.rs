//! SHA-256 throughput of custody's hasher on an in-memory buffer, one core: the number to put
//! beside `openssl speed -evp sha256` (scripts/bench-transfer prints both and the ratio).
//!
//! With `--file PATH` it also hashes that file both ways `custody digest` could: read and hash
//! taking turns on one thread (`of_reader`), and reading ahead on a second thread (`of_file`),
//! alternating runs so both see the same machine load.

#![allow(clippy::print_stdout, reason = "a benchmark prints its measurement")]

use std::path::Path;
use std::time::Instant;

use custody::foundation::digest::{self, Hasher};

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` only checks that this runs.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let size_mib: usize = flag("--size-mib")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    // Warm up, then measure the best of three passes. Like `openssl speed`, which divides by
    // user CPU time, count the CPU time this thread spent: on a busy machine wall time mostly
    // measures the other processes.
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = thread_cpu_seconds();
        let mut hasher = Hasher::new();
        for _ in 0..size_mib {
            hasher.update(&chunk);
        }
        let digest = hasher.finish();
        let seconds = thread_cpu_seconds() - start;
        std::hint::black_box(digest);
        best = best.min(seconds);
    }
    let mbs = (size_mib * 1024 * 1024) as f64 / best / 1e6;
    println!("custody sha256 {mbs:.0} MB/s ({size_mib} MiB in memory, CPU time, best of 3)");

    if let Some(path) = flag("--file") {
        file(Path::new(&path));
    }
}

fn flag(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

/// One way of hashing a file: its digest and size.
type Way = fn(&Path) -> std::io::Result<(digest::Digest, u64)>;

/// Wall and CPU seconds of each way of hashing `path`, median of five alternating runs.
fn file(path: &Path) {
    const RUNS: usize = 5;
    let ways: [(&str, Way); 2] = [
        ("of_reader (one thread)", |p| {
            digest::of_reader(std::fs::File::open(p)?)
        }),
        ("of_file (read ahead)", digest::of_file),
    ];
    let mut times = vec![Vec::new(); ways.len()];
    let mut size = 0;
    for _ in 0..RUNS {
        for ((_, hash), times) in ways.iter().zip(&mut times) {
            let (start, cpu_start) = (Instant::now(), cpu_seconds());
            let (digest, len) = hash(path).expect("the benchmark file is readable");
            times.push((start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start));
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

/// CPU time of the calling thread from /proc/thread-self/schedstat (nanoseconds), in seconds.
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let nanos: f64 = stat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    nanos / 1e9
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
