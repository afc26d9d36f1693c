//! I/O only: AWS per service, git, the leader lease. Adapters return data and
//! decide nothing; they never import the runtime, its status or its metrics.

pub mod aws;
pub mod git;
pub mod jsonnet;
pub mod lease;
