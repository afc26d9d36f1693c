//! The `alarms` gate (DESIGN §3 `migration.gates.alarms`): CloudWatch alarms
//! an operator trusts to say "the new side is hurting".
//!
//! ALARM is a failure (a step taken is rolled back, like a failed ECS gate);
//! INSUFFICIENT_DATA only holds, because an alarm that has not seen enough
//! data says nothing either way. A declared alarm that does not exist is a
//! configuration error: it holds, marks the migration degraded, and is never
//! read as OK — a typo must not silently disable the only gate that sees
//! HTTP 500s.

use std::collections::BTreeMap;

use super::{GATE_ALARMS, Gate, GateState};

/// An alarm's `StateValue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    /// CloudWatch's spelling; anything it adds later reads as `None`, which the
    /// gate treats like missing data (hold, never pass).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "OK" => Some(Self::Ok),
            "ALARM" => Some(Self::Alarm),
            "INSUFFICIENT_DATA" => Some(Self::InsufficientData),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// What one pass read from CloudWatch, for every migration at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlarmReadings {
    /// Alarm name → state, for every alarm that exists (an unparseable state
    /// is absent from here and listed in `unreadable`).
    pub states: BTreeMap<String, AlarmState>,
    /// Alarms that exist but whose state could not be understood.
    pub unreadable: Vec<String>,
    /// DescribeAlarms failed: nothing is known this pass.
    pub error: Option<String>,
}

impl AlarmReadings {
    /// Declared alarms CloudWatch does not know (empty when it could not be asked).
    pub fn missing<'a>(&self, declared: &'a [String]) -> Vec<&'a str> {
        if self.error.is_some() {
            return Vec::new();
        }
        declared
            .iter()
            .filter(|n| !self.states.contains_key(*n) && !self.unreadable.contains(n))
            .map(String::as_str)
            .collect()
    }
}

/// The gate for `declared` alarms, or `None` when the migration declares none.
pub(super) fn alarm_gate(declared: &[String], readings: &AlarmReadings) -> Option<Gate> {
    if declared.is_empty() {
        return None;
    }
    if let Some(e) = &readings.error {
        return Some(Gate {
            name: GATE_ALARMS,
            state: GateState::Wait,
            detail: format!("could not read the CloudWatch alarms: {e}"),
        });
    }
    let missing = readings.missing(declared);
    let mut alarm = Vec::new();
    let mut insufficient = Vec::new();
    let mut ok = Vec::new();
    for name in declared {
        match readings.states.get(name) {
            Some(AlarmState::Alarm) => alarm.push(name.as_str()),
            Some(AlarmState::InsufficientData) => insufficient.push(name.as_str()),
            Some(AlarmState::Ok) => ok.push(name.as_str()),
            None if readings.unreadable.contains(name) => insufficient.push(name.as_str()),
            None => {}
        }
    }
    let mut parts = Vec::new();
    if !alarm.is_empty() {
        parts.push(format!("in ALARM: {}", alarm.join(", ")));
    }
    if !missing.is_empty() {
        parts.push(format!(
            "configuration error: no CloudWatch alarm named {}",
            missing.join(", ")
        ));
    }
    if !insufficient.is_empty() {
        parts.push(format!("INSUFFICIENT_DATA: {}", insufficient.join(", ")));
    }
    if parts.is_empty() {
        parts.push(format!("OK: {}", ok.join(", ")));
    }
    let state = if !alarm.is_empty() {
        GateState::Fail
    } else if !missing.is_empty() || !insufficient.is_empty() {
        GateState::Wait
    } else {
        GateState::Pass
    };
    Some(Gate {
        name: GATE_ALARMS,
        state,
        detail: parts.join("; "),
    })
}
