//! ecsync: a GitOps reconciliation controller for Amazon ECS.
//!
//! The pure core (`model`, `manifest`, `normalize`, `diff`, `plan`, `tags`,
//! `migration`, `decommission`) performs no I/O and imports nothing from the
//! shell (`source`, `aws`, `controller`, `http`, `metrics`, `interceptor`,
//! `status`, `webhook`, `leader`).

pub mod decommission;
pub mod diff;
pub mod manifest;
pub mod migration;
pub mod model;
pub mod normalize;
pub mod plan;
pub mod tags;

pub mod aws;
pub mod controller;
pub mod http;
pub mod interceptor;
pub mod leader;
pub mod metrics;
pub mod source;
pub mod status;
pub mod webhook;
