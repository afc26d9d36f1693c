//! CloudWatch: the states of the alarms that migrations gate on, read for
//! every migration of a pass at once.

use std::collections::BTreeSet;

use aws_sdk_cloudwatch::types::{AlarmType, StateValue};

use super::{AwsError, Clients, call_error};
use crate::core::migration::{AlarmReadings, AlarmState};

/// DescribeAlarms takes at most 100 `AlarmNames`, and answers at most 100
/// alarms a page.
const ALARMS_PER_CALL: usize = 100;

/// The state of each named alarm that exists. One DescribeAlarms per 100 names;
/// names CloudWatch does not return are simply absent (the caller decides
/// what a missing alarm means).
pub async fn alarm_states(
    clients: &Clients,
    names: &BTreeSet<String>,
) -> Result<AlarmReadings, AwsError> {
    let names: Vec<String> = names.iter().cloned().collect();
    let mut readings = AlarmReadings::default();
    for chunk in names.chunks(ALARMS_PER_CALL) {
        let mut pages = clients
            .cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            // Without AlarmTypes AWS returns metric alarms only; a composite
            // alarm (e.g. "5xx AND latency") would then read as missing.
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .max_records(i32::try_from(ALARMS_PER_CALL).unwrap_or(100))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("CloudWatch:DescribeAlarms", e))?;
            let metric = page
                .metric_alarms()
                .iter()
                .map(|a| (a.alarm_name(), a.state_value()));
            let composite = page
                .composite_alarms()
                .iter()
                .map(|a| (a.alarm_name(), a.state_value()));
            for (name, state) in metric.chain(composite) {
                let Some(name) = name else { continue };
                match state.and_then(alarm_state) {
                    Some(s) => {
                        readings.states.insert(name.to_string(), s);
                    }
                    None => readings.unreadable.push(name.to_string()),
                }
            }
        }
    }
    Ok(readings)
}

fn alarm_state(s: &StateValue) -> Option<AlarmState> {
    AlarmState::parse(s.as_str())
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudwatch::operation::describe_alarms::{
        DescribeAlarmsError, DescribeAlarmsOutput,
    };
    use aws_sdk_cloudwatch::types::{CompositeAlarm, MetricAlarm};
    use aws_smithy_mocks::mock;

    use super::*;
    use crate::adapters::aws::tests::mocked;

    #[tokio::test]
    async fn composite_alarms_are_asked_for_and_read() {
        // moto returns composite alarms whatever AlarmTypes says; AWS returns
        // them only when asked, so the request itself is what is checked here.
        let rule = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
            .match_requests(|r| {
                r.alarm_types().contains(&AlarmType::CompositeAlarm)
                    && r.alarm_types().contains(&AlarmType::MetricAlarm)
            })
            .then_output(|| {
                DescribeAlarmsOutput::builder()
                    .metric_alarms(
                        MetricAlarm::builder()
                            .alarm_name("web-5xx")
                            .state_value(StateValue::Alarm)
                            .build(),
                    )
                    .composite_alarms(
                        CompositeAlarm::builder()
                            .alarm_name("web-slo")
                            .state_value(StateValue::InsufficientData)
                            .build(),
                    )
                    .metric_alarms(
                        MetricAlarm::builder()
                            .alarm_name("web-future")
                            .state_value(StateValue::from("SOMETHING_NEW"))
                            .build(),
                    )
                    .build()
            });
        let names: BTreeSet<String> = ["web-5xx", "web-slo", "web-future", "web-gone"]
            .map(String::from)
            .into();
        let r = alarm_states(&mocked(&[&rule]), &names).await.unwrap();
        assert_eq!(r.states.get("web-5xx"), Some(&AlarmState::Alarm));
        assert_eq!(r.states.get("web-slo"), Some(&AlarmState::InsufficientData));
        assert_eq!(r.unreadable, vec!["web-future".to_string()]);
        assert_eq!(r.missing(&["web-gone".to_string()]), vec!["web-gone"]);
    }

    #[tokio::test]
    async fn names_are_batched_by_one_hundred() {
        let rule = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
            .match_requests(|r| r.alarm_names().len() <= ALARMS_PER_CALL)
            .then_output(|| DescribeAlarmsOutput::builder().build());
        let too_many = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
            .then_error(|| DescribeAlarmsError::unhandled("more than 100 names"));
        let names: BTreeSet<String> = (0..250).map(|i| format!("a{i:03}")).collect();
        let clients = mocked(&[&rule, &too_many]);
        let r = alarm_states(&clients, &names).await.unwrap();
        assert!(r.states.is_empty());
        assert_eq!(rule.num_calls(), 3);
        assert_eq!(too_many.num_calls(), 0);
    }
}
