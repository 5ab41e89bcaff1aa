//! Everything this operator knows about Artifortress itself, the application it
//! protects (the public `sremani/Artifortress`, renamed Kublai upstream): its
//! schema (our model of upstream's migrations and the detection of the level an
//! installation is at), the seven ops-summary figures and their SLO thresholds
//! as upstream defines them, the rows it writes into upstream's `audit_log`, how
//! its blobs are laid out in the bucket and how each is classified, what going
//! back to a restore point would undo (token revocations, legal holds, GC runs),
//! the configuration keys the Kublai Helm chart ships, and the demo data `seed`
//! writes. The recovery engine (`engine/`) and the stores (`store/`) stay generic
//! PostgreSQL and S3 and never import this module; the command line, the server
//! and the controllers bring the two together.

pub mod audit;
pub mod blobs;
pub mod config;
pub mod drill;
pub mod ops;
pub mod recoverability;
pub mod schema;
pub mod seed;
pub mod slo;
pub mod takeback;
