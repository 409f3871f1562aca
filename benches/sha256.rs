//! SHA-256 throughput of custody's hasher on an in-memory buffer, one core: the number to put
//! beside `openssl speed -evp sha256` (scripts/bench-transfer prints both and the ratio).

#![allow(clippy::print_stdout, reason = "a benchmark prints its measurement")]

use std::time::Instant;

use custody::digest::Hasher;

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` only checks that this runs.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let size_mib: usize = std::env::args()
        .skip_while(|a| a != "--size-mib")
        .nth(1)
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
}
