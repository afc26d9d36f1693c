use super::*;

/// A parsed sample line: (name, sorted labels, value).
type Sample = (String, Vec<(String, String)>, f64);

fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => {
                    let inner = rest.strip_suffix('}').unwrap();
                    let mut labels: Vec<(String, String)> = inner
                        .split("\",")
                        .filter(|kv| !kv.is_empty())
                        .map(|kv| {
                            let (k, v) = kv.split_once('=').unwrap();
                            let v = v.trim_matches('"');
                            // The two formats print bucket bounds differently ("1.0" vs "1").
                            let v = match v.parse::<f64>() {
                                Ok(f) if k == "le" => f.to_string(),
                                _ => v.to_owned(),
                            };
                            (k.to_owned(), v)
                        })
                        .collect();
                    labels.sort();
                    (n.to_owned(), labels)
                }
                None => (series.to_owned(), Vec::new()),
            };
            (name, labels, value.parse().unwrap())
        })
        .collect()
}

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    samples(text)
        .into_iter()
        .find(|(n, l, _)| n == name && *l == want)
        .map(|(_, _, v)| v)
}

/// The family names announced by `# TYPE` lines plus the sample names, as exposed.
fn exposed_names(text: &str) -> BTreeSet<String> {
    samples(text).into_iter().map(|(n, _, _)| n).collect()
}

pub(crate) fn exercise(m: &Metrics) {
    m.observe_reconcile("ok", "full", 0.42);
    m.observe_reconcile("error", "full", 3.0);
    m.observe_reconcile("ok", "targeted", 0.05);
    m.set_service_states(&[(SyncState::Synced, 3), (SyncState::OutOfSync, 1)]);
    m.set_service_drift("prod", "web", 2);
    m.set_git_revision("0123abc");
    m.git_fetch("ok");
    m.aws_call("ECS", "DescribeServices", "ok");
    m.aws_call("ECS", "UpdateService", "throttled");
    m.action("UpdateService", "ok");
    m.set_migration_percent("prod", "web", 50);
    m.migration_gate_failure("prod", "web", "healthy-targets");
    m.decommission("stop");
    m.set_ec2_orphans("pending", 1);
    m.webhook("accepted");
    m.notification("webhook", "sent");
}

#[test]
fn every_design_name_is_exposed_exactly() {
    let m = Metrics::new();
    exercise(&m);
    let text = m.encode().unwrap();
    let names = exposed_names(&text);
    for &name in DESIGN_METRIC_NAMES.iter().chain(&EXTRA_NAMES) {
        let exposed = if name.ends_with("_seconds") {
            format!("{name}_count")
        } else {
            name.to_owned()
        };
        assert!(names.contains(&exposed), "{exposed} missing from:\n{text}");
    }
    // No double suffix from registering a name that already ends in `_total`.
    assert!(!text.contains("_total_total"), "{text}");
}

#[test]
fn openmetrics_has_the_same_series_and_an_eof() {
    let m = Metrics::new();
    exercise(&m);
    let om = m.encode_openmetrics().unwrap();
    let prom = m.encode().unwrap();
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(!prom.contains("# EOF"), "{prom}");
    let mut a = samples(&om);
    let mut b = samples(&prom);
    let key = |x: &Sample| (x.0.clone(), x.1.clone());
    a.sort_by_key(key);
    b.sort_by_key(key);
    assert_eq!(a, b);
    // In OpenMetrics the counter family is announced without `_total`.
    assert!(om.contains("# TYPE ecsync_reconcile counter"), "{om}");
    assert!(
        prom.contains("# TYPE ecsync_reconcile_total counter"),
        "{prom}"
    );
}

#[test]
fn known_label_values_start_at_zero() {
    let text = Metrics::new().encode().unwrap();
    for (r, scope) in RECONCILE_RESULTS
        .iter()
        .flat_map(|r| RECONCILE_SCOPES.iter().map(move |s| (*r, *s)))
    {
        let labels = [("result", r), ("scope", scope)];
        assert_eq!(value(&text, "ecsync_reconcile_total", &labels), Some(0.0));
        assert_eq!(
            value(&text, "ecsync_reconcile_duration_seconds_count", &labels),
            Some(0.0)
        );
    }
    for s in SyncState::ALL {
        assert_eq!(
            value(&text, "ecsync_services", &[("state", s.as_str())]),
            Some(0.0)
        );
    }
    for r in GIT_FETCH_RESULTS {
        assert_eq!(
            value(&text, "ecsync_git_fetch_total", &[("result", r)]),
            Some(0.0)
        );
    }
    for r in WEBHOOK_RESULTS {
        assert_eq!(
            value(&text, "ecsync_webhook_requests_total", &[("result", r)]),
            Some(0.0)
        );
    }
    // prometheus-client omits a family with no series at all; those with no fixed label
    // values appear with their first sample (see `every_design_name_is_exposed_exactly`).
    assert!(!text.contains("ecsync_aws_api_calls"), "{text}");
}

#[test]
fn values_are_recorded() {
    let m = Metrics::new();
    exercise(&m);
    m.aws_call("ECS", "DescribeServices", "ok");
    let text = m.encode().unwrap();
    let v = |name, labels: &[(&str, &str)]| value(&text, name, labels);
    assert_eq!(
        v(
            "ecsync_reconcile_total",
            &[("result", "ok"), ("scope", "full")]
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            "ecsync_reconcile_total",
            &[("result", "ok"), ("scope", "targeted")]
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            "ecsync_reconcile_duration_seconds_sum",
            &[("result", "error"), ("scope", "full")]
        ),
        Some(3.0)
    );
    assert_eq!(
        v(
            "ecsync_reconcile_duration_seconds_bucket",
            &[("result", "ok"), ("scope", "full"), ("le", "0.5")]
        ),
        Some(1.0)
    );
    assert_eq!(v("ecsync_services", &[("state", "Synced")]), Some(3.0));
    assert_eq!(v("ecsync_services", &[("state", "Held")]), Some(0.0));
    assert_eq!(
        v(
            "ecsync_service_drift",
            &[("cluster", "prod"), ("service", "web")]
        ),
        Some(2.0)
    );
    assert_eq!(
        v("ecsync_git_revision_info", &[("revision", "0123abc")]),
        Some(1.0)
    );
    assert_eq!(
        v(
            "ecsync_aws_api_calls_total",
            &[
                ("service", "ECS"),
                ("operation", "DescribeServices"),
                ("result", "ok")
            ]
        ),
        Some(2.0)
    );
    assert_eq!(
        v(
            "ecsync_actions_total",
            &[("action", "UpdateService"), ("result", "ok")]
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            "ecsync_migration_traffic_percent",
            &[("cluster", "prod"), ("service", "web")]
        ),
        Some(50.0)
    );
    assert_eq!(
        v(
            "ecsync_migration_gate_failures_total",
            &[
                ("cluster", "prod"),
                ("service", "web"),
                ("gate", "healthy-targets")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        v("ecsync_ec2_decommission_total", &[("action", "stop")]),
        Some(1.0)
    );
    assert_eq!(v("ecsync_ec2_orphans", &[("state", "pending")]), Some(1.0));
    assert_eq!(
        v("ecsync_webhook_requests_total", &[("result", "accepted")]),
        Some(1.0)
    );
}

#[test]
fn service_states_reset_states_no_longer_listed() {
    let m = Metrics::new();
    m.set_service_states(&[(SyncState::Degraded, 2)]);
    m.set_service_states(&[(SyncState::Synced, 2)]);
    let text = m.encode().unwrap();
    assert_eq!(
        value(&text, "ecsync_services", &[("state", "Degraded")]),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "ecsync_services", &[("state", "Synced")]),
        Some(2.0)
    );
}

#[test]
fn git_revision_keeps_only_the_current_series() {
    let m = Metrics::new();
    m.set_git_revision("aaa");
    m.set_git_revision("bbb");
    m.set_git_revision("bbb");
    let text = m.encode().unwrap();
    let revs: Vec<_> = samples(&text)
        .into_iter()
        .filter(|(n, _, _)| n == "ecsync_git_revision_info")
        .collect();
    assert_eq!(
        revs,
        vec![(
            "ecsync_git_revision_info".to_owned(),
            vec![("revision".to_owned(), "bbb".to_owned())],
            1.0
        )]
    );
}

#[test]
fn removed_service_disappears() {
    let m = Metrics::new();
    m.set_service_drift("prod", "web", 1);
    m.set_service_drift("prod", "api", 1);
    m.set_migration_percent("prod", "web", 10);
    m.migration_gate_failure("prod", "web", "healthy-targets");
    m.migration_gate_failure("prod", "api", "healthy-targets");
    m.remove_service("prod", "web");
    let text = m.encode().unwrap();
    let web: Vec<_> = samples(&text)
        .into_iter()
        .filter(|(_, l, _)| l.contains(&("service".to_owned(), "web".to_owned())))
        .collect();
    assert!(web.is_empty(), "{web:?}");
    assert_eq!(
        value(
            &text,
            "ecsync_service_drift",
            &[("cluster", "prod"), ("service", "api")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "ecsync_migration_gate_failures_total",
            &[
                ("cluster", "prod"),
                ("service", "api"),
                ("gate", "healthy-targets")
            ]
        ),
        Some(1.0)
    );
}

#[test]
fn label_values_are_escaped() {
    let m = Metrics::new();
    m.set_service_drift("prod", "we\"b\\x", 1);
    let text = m.encode().unwrap();
    assert!(
        text.contains(r#"ecsync_service_drift{cluster="prod",service="we\"b\\x"} 1"#),
        "{text}"
    );
}
