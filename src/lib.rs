//! ecsync: a GitOps reconciliation controller for Amazon ECS.
//!
//! The pure core (`model`, `manifest`, `normalize`, `diff`, `plan`, `tags`)
//! performs no I/O and imports nothing from the shell.

pub mod aws;
pub mod diff;
pub mod manifest;
pub mod model;
pub mod normalize;
pub mod plan;
pub mod tags;
pub mod controller;
pub mod metrics;
pub mod status;
