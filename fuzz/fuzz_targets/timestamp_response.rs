#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| custody::fuzzing::timestamp_response(data));
