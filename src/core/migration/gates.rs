//! The gates a step must pass: the deployment, both sides' target health,
//! and the step interval.

use std::time::SystemTime;

use super::alarms::alarm_gate;
use super::{
    Facts, GATE_DEPLOYMENT, GATE_ECS_HEALTHY, GATE_LEGACY_HEALTHY, GATE_STEP_INTERVAL, Gate,
    GateState,
};
use crate::core::tags;

pub(super) fn gates(f: &Facts, stage: usize, since: Option<SystemTime>) -> Vec<Gate> {
    let r = f.rollout;
    let deployment = if f.deploying {
        Gate {
            name: GATE_DEPLOYMENT,
            state: GateState::Wait,
            detail: "a deployment was started this pass".into(),
        }
    } else if r.failed() {
        Gate {
            name: GATE_DEPLOYMENT,
            state: GateState::Fail,
            detail: format!(
                "rollout FAILED: {}",
                r.rollout_reason.as_deref().unwrap_or("no reason given")
            ),
        }
    } else {
        let stable = r.completed();
        Gate {
            name: GATE_DEPLOYMENT,
            state: if stable {
                GateState::Pass
            } else {
                GateState::Wait
            },
            detail: format!(
                "rollout {}, {}/{} running",
                r.rollout_state.map_or("unknown", |s| s.as_str()),
                r.running,
                r.desired
            ),
        }
    };
    let ecs_ok = r.desired >= 1 && i64::from(f.ecs_healthy) >= i64::from(r.desired);
    let ecs = Gate {
        name: GATE_ECS_HEALTHY,
        state: if ecs_ok {
            GateState::Pass
        } else {
            GateState::Fail
        },
        detail: format!(
            "{} healthy targets in the ECS target group, {} desired",
            f.ecs_healthy, r.desired
        ),
    };
    let legacy = if f.percent >= 100 {
        Gate {
            name: GATE_LEGACY_HEALTHY,
            state: GateState::Pass,
            detail: "the legacy target group carries no traffic".into(),
        }
    } else {
        Gate {
            name: GATE_LEGACY_HEALTHY,
            // The legacy side going down is no reason to send it more traffic:
            // it only stops the migration from moving on.
            state: if f.legacy_healthy >= 1 {
                GateState::Pass
            } else {
                GateState::Wait
            },
            detail: format!(
                "{}/{} legacy targets healthy",
                f.legacy_healthy, f.legacy_registered
            ),
        }
    };
    let interval = match (stage, since) {
        (0, None) => Gate {
            name: GATE_STEP_INTERVAL,
            state: GateState::Pass,
            detail: "no step taken yet".into(),
        },
        (_, None) => Gate {
            name: GATE_STEP_INTERVAL,
            state: GateState::Wait,
            detail: "the step has no recorded clock; it starts now".into(),
        },
        (_, Some(s)) => {
            let until = s + f.step_interval;
            Gate {
                name: GATE_STEP_INTERVAL,
                state: if f.now >= until {
                    GateState::Pass
                } else {
                    GateState::Wait
                },
                detail: format!(
                    "held since {}, until {}",
                    tags::format_time(s),
                    tags::format_time(until)
                ),
            }
        }
    };
    let mut all = vec![deployment, ecs, legacy, interval];
    all.extend(alarm_gate(f.migration.alarms(), f.alarms));
    all
}

pub(super) fn summary(gates: &[Gate], pick: impl Fn(&Gate) -> bool) -> String {
    gates
        .iter()
        .filter(|g| pick(g))
        .map(|g| format!("{}: {}", g.name, g.detail))
        .collect::<Vec<_>>()
        .join("; ")
}
