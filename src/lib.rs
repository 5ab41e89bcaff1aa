//! Artifortress Operator: backups, recovery drills and health reporting for
//! Artifortress installations. See `docs/architecture.md` for the module map.

pub mod api;
pub mod crdgen;
pub mod db;
pub mod telemetry;
