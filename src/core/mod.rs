//! The pure core: plain data in, plain data out. Nothing here performs I/O,
//! imports tokio or an AWS SDK crate, or reads a clock; callers pass `now`.

pub mod api;
pub mod changes;
pub mod decommission;
pub mod dependencies;
pub mod diff;
pub mod ecspresso;
pub mod events;
pub mod hooks;
pub mod ignore;
pub mod manifest;
pub mod migration;
pub mod model;
pub mod normalize;
pub mod plan;
pub mod rollout;
pub mod schedule;
pub mod scheduled;
pub mod state;
pub mod tags;
