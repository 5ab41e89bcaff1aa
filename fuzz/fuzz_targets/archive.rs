//! The archive scanner on any bytes. The guarantees are `artifortress_formats::invariants::archive`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| artifortress_formats::invariants::archive(data));
