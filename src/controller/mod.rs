//! Controllers: one module per kind, deciding the next step with pure
//! functions and applying it through the Kubernetes API.
//!
//! So far this holds the pure building blocks the reconcilers are built from
//! (conditions, schedules, retention, Job builders); the reconcilers and `run` come next.

pub mod backup;
pub mod conditions;
pub mod jobs;
pub mod retention;
pub mod schedule;
