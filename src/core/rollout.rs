//! Where a rollout ecsync started has got to: what `apply --wait` follows.
//! ECS reports it as deployments; this reads them as one verdict.

use crate::core::state::RolloutState;

/// A deployment's `status` in DescribeServices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    Primary,
    Active,
    Inactive,
}

impl DeploymentStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PRIMARY" => Some(Self::Primary),
            "ACTIVE" => Some(Self::Active),
            "INACTIVE" => Some(Self::Inactive),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub status: Option<DeploymentStatus>,
    pub task_definition: String,
    pub rollout_state: Option<RolloutState>,
    pub reason: Option<String>,
    pub desired: i32,
    pub running: i32,
}

/// One followed service as last described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    pub deployments: Vec<Deployment>,
    /// The revision this apply registered, when it registered one.
    pub expected: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    InProgress,
    Completed,
    Failed(String),
    /// ECS went back to an earlier revision (circuit breaker or alarms).
    RolledBack(String),
    /// The service is gone, or no longer described.
    Missing,
}

impl Verdict {
    pub fn is_final(&self) -> bool {
        !matches!(self, Verdict::InProgress)
    }
    pub fn succeeded(&self) -> bool {
        matches!(self, Verdict::Completed)
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::InProgress => "in progress",
            Verdict::Completed => "completed",
            Verdict::Failed(_) => "failed",
            Verdict::RolledBack(_) => "rolled back",
            Verdict::Missing => "missing",
        }
    }
}

/// The deployment ECS is moving the service to.
pub fn primary(deployments: &[Deployment]) -> Option<&Deployment> {
    deployments
        .iter()
        .find(|d| d.status == Some(DeploymentStatus::Primary))
}

pub fn verdict(f: &Followed) -> Verdict {
    let ours = |d: &&Deployment| {
        f.expected
            .as_deref()
            .is_none_or(|arn| d.task_definition == arn)
    };
    let Some(primary) = primary(&f.deployments) else {
        return Verdict::Missing;
    };
    let reason = |d: &Deployment| d.reason.clone().unwrap_or_default();
    if let Some(failed) = f
        .deployments
        .iter()
        .filter(ours)
        .find(|d| d.rollout_state == Some(RolloutState::Failed))
    {
        return if ours(&primary) {
            Verdict::Failed(reason(failed))
        } else {
            Verdict::RolledBack(reason(failed))
        };
    }
    if !ours(&primary) {
        return Verdict::RolledBack(format!(
            "the primary deployment runs {}, not {}",
            primary.task_definition,
            f.expected.as_deref().unwrap_or_default()
        ));
    }
    let alone = f
        .deployments
        .iter()
        .all(|d| d.status != Some(DeploymentStatus::Active));
    let done = match primary.rollout_state {
        Some(RolloutState::Completed) => alone,
        Some(RolloutState::InProgress) => false,
        // Failed was answered above.
        Some(RolloutState::Failed) => false,
        // Deployments without a rollout state (older controllers): count tasks.
        None => alone && primary.running >= primary.desired,
    };
    if done {
        Verdict::Completed
    } else {
        Verdict::InProgress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: &str = "arn:aws:ecs:us-east-1:1:task-definition/web:8";
    const OLD: &str = "arn:aws:ecs:us-east-1:1:task-definition/web:7";

    fn d(status: DeploymentStatus, td: &str, state: Option<RolloutState>) -> Deployment {
        Deployment {
            status: Some(status),
            task_definition: td.into(),
            rollout_state: state,
            reason: Some(format!("{status:?} {state:?}")),
            desired: 2,
            running: 2,
        }
    }

    #[test]
    fn verdicts() {
        use DeploymentStatus::*;
        use RolloutState::*;
        let cases: Vec<(&str, Vec<Deployment>, Option<&str>, Verdict)> = vec![
            (
                "new primary still replacing the old",
                vec![
                    d(Primary, NEW, Some(InProgress)),
                    d(Active, OLD, Some(Completed)),
                ],
                Some(NEW),
                Verdict::InProgress,
            ),
            (
                "completed and alone",
                vec![d(Primary, NEW, Some(Completed))],
                Some(NEW),
                Verdict::Completed,
            ),
            (
                "completed but the old one still drains",
                vec![
                    d(Primary, NEW, Some(Completed)),
                    d(Active, OLD, Some(Completed)),
                ],
                Some(NEW),
                Verdict::InProgress,
            ),
            (
                "circuit breaker rolled back: ours failed, the old is primary again",
                vec![
                    d(Primary, OLD, Some(InProgress)),
                    d(Active, NEW, Some(Failed)),
                ],
                Some(NEW),
                Verdict::RolledBack("Active Some(Failed)".into()),
            ),
            (
                "failed without rollback",
                vec![d(Primary, NEW, Some(Failed))],
                Some(NEW),
                Verdict::Failed("Primary Some(Failed)".into()),
            ),
            (
                "someone else's revision took over",
                vec![d(Primary, OLD, Some(Completed))],
                Some(NEW),
                Verdict::RolledBack(format!("the primary deployment runs {OLD}, not {NEW}")),
            ),
            (
                "a count change: no revision to expect",
                vec![d(Primary, OLD, Some(Completed))],
                None,
                Verdict::Completed,
            ),
            ("gone", vec![], Some(NEW), Verdict::Missing),
        ];
        for (name, deployments, expected, want) in cases {
            let got = verdict(&Followed {
                deployments,
                expected: expected.map(str::to_string),
            });
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn without_a_rollout_state_tasks_are_counted() {
        let mut primary = d(DeploymentStatus::Primary, NEW, None);
        primary.running = 1;
        let f = |p: &Deployment| Followed {
            deployments: vec![p.clone()],
            expected: Some(NEW.into()),
        };
        assert_eq!(verdict(&f(&primary)), Verdict::InProgress);
        primary.running = 2;
        assert_eq!(verdict(&f(&primary)), Verdict::Completed);
    }
}
