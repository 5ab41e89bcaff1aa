//! Manifests on any bytes. The guarantees are `artifortress_formats::invariants::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| artifortress_formats::invariants::manifest(data));
