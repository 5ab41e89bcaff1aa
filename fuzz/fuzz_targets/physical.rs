//! Base manifests, WAL object and segment names, LSNs on any bytes. The
//! guarantees are `artifortress_formats::invariants::physical`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| artifortress_formats::invariants::physical(data));
