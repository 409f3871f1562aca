#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| custody::fuzzing::image_lang(data));
