//! The formats Artifortress Operator writes and later reads back from places
//! that others can write too (a bucket, a file): backup manifests, drill
//! verdicts and restore records, the table of contents of a pg_dump
//! custom-format archive, and the admin tokens file.
//!
//! They live in their own crate so that nothing here can depend on Kubernetes
//! types: a backup written today must parse in years, whatever happens to the
//! CRDs. Each JSON format carries a version; a reader accepts its own version and
//! older ones, tolerates fields it does not know (they are only ever added, with
//! defaults), and refuses a newer version naming the tool that wrote it. Golden
//! files in `tests/golden/` pin every format. The parsers take untrusted bytes
//! and are fuzzed (`fuzz/`): no input makes them panic, allocate without bound or
//! loop without end.

pub mod archive;
pub mod invariants;
pub mod manifest;
pub mod physical;
pub mod record;
pub mod tokens;
pub mod verdict;

mod versioned;

pub use versioned::FormatError;
