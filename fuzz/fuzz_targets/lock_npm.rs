#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| custody::fuzzing::lock_npm(data));
