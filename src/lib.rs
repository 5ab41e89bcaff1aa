//! Artifortress Operator: backups, recovery drills and health reporting for
//! Artifortress installations. See `docs/architecture.md` for the module map.

pub mod alerts;
pub mod api;
pub mod artifortress;
pub mod controller;
pub mod crdgen;
pub mod dashboard;
pub mod db;
pub mod engine;
pub mod installations;
pub mod metrics;
pub mod redact;
pub mod server;
pub mod store;
pub mod telemetry;

/// Chooses the TLS crypto provider for the whole process. kube-rs (ring) and
/// aws-sdk-s3 (aws-lc-rs) each enable one, and rustls refuses to guess between
/// two; call this before creating any client. Calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
