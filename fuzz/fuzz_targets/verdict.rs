//! Drill verdicts and restore records on any bytes. The guarantees are `artifortress_formats::invariants::verdict`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| artifortress_formats::invariants::verdict(data));
