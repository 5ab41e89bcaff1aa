//! Physical protection: base backups taken over the replication protocol
//! (`pg_basebackup`), WAL streamed continuously through a replication slot
//! (`pg_receivewal`) into the store, and point-in-time restores into a scratch
//! PostgreSQL instance the engine starts itself, measured against a heartbeat
//! the archiver writes into the source.
//!
//! The engine never touches the source's files: a connection with the
//! REPLICATION attribute is all it needs. What it creates on the source — the
//! replication slot, the heartbeat table — it records, and it removes or
//! changes only what it recorded.

pub mod base;
pub mod capability;
pub mod heartbeat;
pub mod instance;
pub mod liveness;
pub mod pitr;
pub mod retention;
pub mod spool;
pub mod tools;
pub mod wal;

pub use artifortress_formats::physical::{BaseManifest, Lsn, Segment, SegmentHeader, WalObject};
