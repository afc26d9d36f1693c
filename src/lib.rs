//! ecsync: a GitOps reconciliation controller for Amazon ECS.
//!
//! The folders show the rule (DESIGN §9):
//! * [`core`] is pure: manifest shapes, validation, normalisation, diff, plan,
//!   migration and decommission decisions, tag codecs, outcome states and the
//!   scheduling policy. No tokio, no AWS SDK, no clock reads (`now` is passed in).
//! * [`adapters`] do I/O and return data: AWS per service, git, the lease.
//!   They never import the runtime.
//! * [`runtime`] orchestrates: the reconciler and its phases, the daemon loop,
//!   status, metrics, HTTP and webhooks.
//!
//! The binary (`src/main.rs`, `src/cli/`) parses the command line and renders.

pub mod adapters;
pub mod core;
pub mod runtime;
