//! The tokens file on any text. The guarantees are `artifortress_formats::invariants::tokens`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| artifortress_formats::invariants::tokens(data));
