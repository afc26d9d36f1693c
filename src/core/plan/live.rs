//! What the observer saw, in the manifest's shape.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::model::{ServiceKey, ServiceSpec, TaskDefinition};
use crate::core::state::{Rollout, ServiceStatus};
use crate::core::tags;

/// What the observer knows about the task definition a live service runs.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveTaskDefinition {
    /// Registered by ecsync: its content hash is recorded in the service's tags,
    /// so it need not be described again.
    Hash(String),
    /// Described from AWS and normalised.
    Described {
        spec: Box<TaskDefinition>,
        hash: String,
        /// Paths the live definition sets that the manifest model cannot
        /// express yet: a revision registered from a manifest would drop them.
        unmanaged: Vec<String>,
        /// The tag keys ecsync recorded on it (`ecsync.io/managed-tags`);
        /// `None` on a definition without the record.
        own_tags: Option<std::collections::BTreeSet<String>>,
    },
    /// Neither: it must be described before it can be compared.
    Unknown,
}

impl LiveTaskDefinition {
    pub fn hash(&self) -> Option<&str> {
        match self {
            Self::Hash(h) | Self::Described { hash: h, .. } => Some(h),
            Self::Unknown => None,
        }
    }
}

/// A live ECS service, translated into the manifest's shape and normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveService {
    pub key: ServiceKey,
    pub arn: String,
    pub status: ServiceStatus,
    /// `task_definition` is left default: the definition is in `task_definition`.
    pub spec: ServiceSpec,
    pub task_definition_arn: String,
    pub task_definition: LiveTaskDefinition,
    pub tags: BTreeMap<String, String>,
    pub rollout: Rollout,
}

impl LiveService {
    /// ACTIVE, or still coming up; DRAINING means already being deleted.
    pub fn is_active(&self) -> bool {
        self.status == ServiceStatus::Active
    }
    pub fn protected(&self) -> bool {
        tags::is_protected(&self.tags)
    }
    pub fn managed_by(&self) -> Option<&str> {
        self.tags.get(tags::MANAGED_BY).map(String::as_str)
    }
    pub fn source(&self) -> Option<&str> {
        self.tags.get(tags::SOURCE).map(String::as_str)
    }
}

/// The result of pairing the desired set with what the observer saw.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub services: BTreeMap<ServiceKey, LiveService>,
    /// Clusters the observer could not find.
    pub missing_clusters: BTreeSet<String>,
    /// Target group name → ARN for every name the manifests use that exists.
    pub target_groups: BTreeMap<String, String>,
}
