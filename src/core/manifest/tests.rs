use super::*;

pub(crate) const WEB: &str = r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata:
  name: web
  annotations:
    ecsync.io/sync: report
spec:
  cluster: prod
  desiredCount: 2
  launchType: FARGATE
  taskDefinition:
    family: web
    cpu: "256"
    memory: "512"
    networkMode: awsvpc
    requiresCompatibilities: [FARGATE]
    containerDefinitions:
      - name: web
        image: public.ecr.aws/nginx/nginx:1.27
        portMappings: [{containerPort: 80}]
        environment: [{name: RAILS_ENV, value: production}]
  networkConfiguration:
    awsvpcConfiguration: {subnets: [subnet-a, subnet-b], securityGroups: [sg-1]}
  loadBalancers:
    - targetGroup: web-ecs
      containerName: web
      containerPort: 80
  deploymentConfiguration:
    deploymentCircuitBreaker: {enable: true, rollback: true}
  tags: {team: platform}
"#;

fn one(path: &str, text: &str) -> ManifestSet {
    load([(path, text)])
}

fn rendered(set: &ManifestSet) -> Vec<String> {
    set.errors.iter().map(ToString::to_string).collect()
}

#[test]
fn parses_the_design_example() {
    let set = one("web.yaml", WEB);
    assert_eq!(rendered(&set), Vec::<String>::new());
    let svc = &set.services[0];
    assert_eq!(svc.key.to_string(), "prod/web");
    assert_eq!(svc.policy.sync, crate::core::state::Mode::Report);
    assert!(!svc.policy.prune_disabled);
    assert_eq!(svc.spec.platform_version.as_deref(), Some("LATEST"));
    let c = &svc.spec.task_definition.container_definitions[0];
    assert_eq!(c.essential, Some(true));
    let pm = &c.port_mappings.as_ref().unwrap()[0];
    assert_eq!(
        (pm.host_port, pm.protocol.as_deref()),
        (Some(80), Some("tcp"))
    );
    assert_eq!(svc.task_definition_hash.len(), 16);
}

#[test]
fn unknown_field_names_field_line_and_column() {
    let text = WEB.replace(
        "        image: public",
        "        imag: x\n        image: public",
    );
    let set = one("web.yaml", &text);
    assert_eq!(set.errors.len(), 1, "{:?}", rendered(&set));
    let e = &set.errors[0];
    assert_eq!((e.file.as_str(), e.line, e.column), ("web.yaml", 19, 9));
    assert!(e.message.contains("imag"), "{}", e.message);
    assert!(set.services.is_empty());
    assert!(set.held.contains(&ServiceKey {
        cluster: "prod".into(),
        name: "web".into()
    }));
}

#[test]
fn type_error_points_at_the_value() {
    let text = WEB.replace("desiredCount: 2", "desiredCount: two");
    let set = one("web.yaml", &text);
    let e = &set.errors[0];
    assert_eq!((e.line, e.column), (9, 17), "{e}");
}

#[test]
fn validation_errors_point_at_the_field() {
    let text = WEB.replace("cpu: \"256\"", "cpu: \"3 cores\"");
    let set = one("web.yaml", &text);
    assert_eq!(
        rendered(&set),
        vec![
            "web.yaml:13:10: spec.taskDefinition.cpu: \"3 cores\" is not CPU units (e.g. \"256\" or \"0.25 vCPU\")"
        ]
    );
}

#[test]
fn errors_in_later_documents_keep_file_line_numbers() {
    let second = WEB
        .replace("name: web\n  annotations", "name: api\n  annotations")
        .replace(
            "containerPort: 80\n  deploymentConfiguration",
            "containerPort: 8080\n  deploymentConfiguration",
        );
    let text = format!("{WEB}---\n{second}");
    let set = one("all.yaml", &text);
    assert_eq!(set.services.len(), 1, "the valid document still loads");
    assert_eq!(set.errors.len(), 1);
    let e = &set.errors[0];
    // The first document has 30 lines, then the marker; containerPort is line 27 of the second.
    assert_eq!((e.line, e.column), (31 + 27, 22), "{e}");
    assert!(e.message.contains("maps no port 8080"), "{e}");
}

#[test]
fn syntax_error_holds_only_its_file() {
    let set = load([("a.yaml", WEB), ("b.yaml", "apiVersion: [unclosed\n")]);
    assert_eq!(set.services.len(), 1);
    assert_eq!(set.errors.len(), 1);
    assert_eq!(set.errors[0].file, "b.yaml");
    assert!(set.broken_files.contains("b.yaml"));
    assert!(set.is_held(
        &ServiceKey {
            cluster: "x".into(),
            name: "y".into()
        },
        Some("b.yaml")
    ));
}

#[test]
fn duplicate_services_are_rejected_naming_both_files() {
    let set = load([("a.yaml", WEB), ("b.yaml", WEB)]);
    assert!(set.services.is_empty());
    assert_eq!(
        rendered(&set),
        vec!["b.yaml:1:1: service prod/web is declared twice: here and in a.yaml"]
    );
}

#[test]
fn migration_values_are_checked() {
    let text = format!(
        "{WEB}  migration:\n    listener: arn:aws:elasticloadbalancing:us-east-1:1:listener/app/web/1/2\n    from:\n      targetGroup: web-ec2\n      instances: {{tags: {{}}}}\n    steps: [10, 5, 90]\n    stepInterval: soon\n"
    );
    let msgs = rendered(&one("web.yaml", &text));
    let joined = msgs.join("\n");
    assert!(
        joined
            .contains("web.yaml:36:17: spec.migration.steps[1]: steps must be strictly ascending"),
        "{joined}"
    );
    assert!(joined.contains("the last step must be 100"), "{joined}");
    assert!(joined.contains("spec.migration.stepInterval"), "{joined}");
    assert!(
        joined.contains("empty selector would match every instance"),
        "{joined}"
    );
}

#[test]
fn differently_written_definitions_normalise_to_the_same_value() {
    let a = WEB.to_string();
    let b = WEB
        .replace("cpu: \"256\"", "cpu: 0.25 vCPU")
        .replace("memory: \"512\"", "memory: 0.5 GB")
        .replace("portMappings: [{containerPort: 80}]", "portMappings: [{containerPort: 80, hostPort: 80, protocol: tcp}]\n        essential: true\n        mountPoints: []")
        .replace("subnets: [subnet-a, subnet-b], securityGroups: [sg-1]", "subnets: [subnet-b, subnet-a], securityGroups: [sg-1], assignPublicIp: DISABLED")
        .replace("  deploymentConfiguration:\n", "  platformVersion: LATEST\n  schedulingStrategy: REPLICA\n  deploymentConfiguration:\n    maximumPercent: 200\n    minimumHealthyPercent: 100\n");
    let (sa, sb) = (one("a.yaml", &a), one("b.yaml", &b));
    assert_eq!(rendered(&sb), Vec::<String>::new());
    assert_eq!(sa.services[0].spec, sb.services[0].spec);
    assert_eq!(
        sa.services[0].task_definition_hash,
        sb.services[0].task_definition_hash
    );
}

#[test]
fn daemon_defaults_normalise_as_ecs_fills_them_and_a_count_is_refused() {
    let daemon = WEB.replace("  desiredCount: 2\n", "").replace(
        "  launchType: FARGATE\n",
        "  launchType: EC2\n  schedulingStrategy: DAEMON\n",
    );
    let explicit = daemon.replace(
        "  deploymentConfiguration:\n",
        "  deploymentConfiguration:\n    maximumPercent: 100\n    minimumHealthyPercent: 0\n",
    );
    let (a, b) = (one("a.yaml", &daemon), one("b.yaml", &explicit));
    assert_eq!(rendered(&a), Vec::<String>::new());
    assert_eq!(a.services[0].spec, b.services[0].spec);
    let dc = a.services[0]
        .spec
        .deployment_configuration
        .clone()
        .unwrap_or_default();
    assert_eq!(
        (dc.maximum_percent, dc.minimum_healthy_percent),
        (Some(100), Some(0))
    );

    let counted = daemon.replace(
        "  launchType: EC2\n",
        "  launchType: EC2\n  desiredCount: 3\n",
    );
    let set = one("c.yaml", &counted);
    let errors = rendered(&set);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("c.yaml:")
            && errors[0].contains("desiredCount")
            && errors[0].contains("DAEMON"),
        "{errors:?}"
    );
}

#[test]
fn the_apis_own_spellings_load_as_ecsyncs() {
    let api = WEB
        .replace(
            "  tags: {team: platform}\n",
            "  tags: [{key: team, value: platform}]\n",
        )
        .replace(
            "    - targetGroup: web-ecs\n",
            "    - targetGroupArn: web-ecs\n",
        )
        .replace(
            "  launchType: FARGATE\n",
            "  launchType: FARGATE\n  propagateTags: \"\"\n  healthCheckGracePeriodSeconds: null\n",
        )
        .replace(
            "    networkMode: awsvpc\n",
            "    networkMode: awsvpc\n    pidMode: \"\"\n",
        );
    let (a, b) = (one("a.yaml", WEB), one("b.yaml", &api));
    assert_eq!(rendered(&b), Vec::<String>::new());
    assert!(b.warnings.is_empty());
    assert_eq!(a.services[0].spec, b.services[0].spec);
    assert_eq!(
        a.services[0].task_definition_hash,
        b.services[0].task_definition_hash
    );
}

#[test]
fn a_pasted_describe_answer_loads_with_warnings() {
    let td = r#"    taskDefinitionArn: arn:aws:ecs:us-east-1:1:task-definition/web:7
    revision: 7
    status: ACTIVE
    compatibilities: [EC2, FARGATE]
    requiresAttributes: [{name: com.amazonaws.ecs.capability.docker-remote-api.1.18}]
    registeredAt: "2025-01-02T03:04:05Z"
    registeredBy: arn:aws:iam::1:user/someone
"#;
    let pasted = WEB.replace("    family: web\n", &format!("    family: web\n{td}"));
    let set = one("p.yaml", &pasted);
    assert_eq!(rendered(&set), Vec::<String>::new());
    let plain = one("a.yaml", WEB);
    assert_eq!(set.services[0].spec, plain.services[0].spec);
    let warned: Vec<String> = set.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warned.len(), 7, "{warned:?}");
    assert!(
        warned[0]
            .starts_with("p.yaml:13:24: spec.taskDefinition.taskDefinitionArn: describe output"),
        "{warned:?}"
    );

    // The whole answer, wrapper and all, as `aws ecs describe-task-definition` prints it.
    let body = WEB
        .split("  taskDefinition:\n")
        .nth(1)
        .and_then(|rest| rest.split("  networkConfiguration:").next())
        .expect("the example's task definition");
    let indented: String = body.lines().map(|l| format!("  {l}\n")).collect();
    let wrapped = WEB.replace(
        &format!("  taskDefinition:\n{body}"),
        &format!("  taskDefinition:\n    taskDefinition:\n{indented}      revision: 3\n"),
    );
    let set = one("w.yaml", &wrapped);
    assert_eq!(rendered(&set), Vec::<String>::new(), "{wrapped}");
    assert_eq!(set.services[0].spec, plain.services[0].spec);
    assert_eq!(set.warnings.len(), 1);
}

#[test]
fn the_migration_shifts_to_the_first_load_balancer_as_declared() {
    let two = WEB.replace(
        "  loadBalancers:\n",
        "  loadBalancers:\n    - targetGroup: zz-ecs\n      containerName: web\n      containerPort: 80\n",
    );
    let set = one("w.yaml", &two);
    assert_eq!(rendered(&set), Vec::<String>::new());
    let d = &set.services[0];
    assert_eq!(d.migration_target_group.as_deref(), Some("zz-ecs"));
    let sorted: Vec<&str> = d
        .spec
        .load_balancers
        .iter()
        .flatten()
        .filter_map(|l| l.target_group_arn.as_deref())
        .collect();
    assert_eq!(
        sorted,
        ["web-ecs", "zz-ecs"],
        "normalised order differs from the declared one"
    );
}

#[test]
fn a_path_too_long_for_the_source_tag_is_an_error() {
    let path = format!("{}/web.yaml", "d".repeat(250));
    let set = one(&path, WEB);
    let errors = rendered(&set);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("ecsync.io/source"), "{errors:?}");
    assert!(set.services.is_empty());
}

#[test]
fn wrong_api_version_and_kind() {
    let text = WEB
        .replace("ecsync.io/v1alpha1", "v1")
        .replace("kind: Service", "kind: Deployment");
    let msgs = rendered(&one("x.yaml", &text));
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(msgs[0].starts_with("x.yaml:1:13: apiVersion"), "{msgs:?}");
    assert!(msgs[1].starts_with("x.yaml:2:7: kind"), "{msgs:?}");
}

#[test]
fn hostile_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let set = one("deep.yaml", &deep);
    assert_eq!(set.errors.len(), 1);
    assert!(set.services.is_empty());
}

#[test]
fn empty_and_comment_only_documents_are_skipped() {
    let set = one("e.yaml", "# nothing here\n---\n---\n");
    assert!(set.errors.is_empty() && set.services.is_empty());
}

/// A FARGATE service with `{spec}` and `{container}` spliced in.
fn spelled(spec: &str, container: &str, td: &str) -> DesiredService {
    let text = format!(
        r#"apiVersion: ecsync.io/v1alpha1
kind: Service
metadata: {{name: web}}
spec:
  cluster: prod
  launchType: FARGATE
  networkConfiguration: {{awsvpcConfiguration: {{subnets: [subnet-a]}}}}
{spec}
  taskDefinition:
    family: web
    cpu: "256"
    memory: "512"
    networkMode: awsvpc
{td}
    containerDefinitions:
      - name: web
        image: nginx:1.27
        portMappings: [{{containerPort: 80}}, {{containerPort: 443}}]
{container}
"#
    );
    let set = one("web.yaml", &text);
    assert_eq!(rendered(&set), Vec::<String>::new(), "{text}");
    (*set.services[0]).clone()
}

#[test]
fn two_spellings_of_each_ecs_default_normalise_identically() {
    // (what, spelling a, spelling b); each spelling is (spec, container, definition) lines.
    type Spelling<'a> = (&'a str, &'a str, &'a str);
    let cases: &[(&str, Spelling, Spelling)] = &[
        (
            "deploymentController ECS",
            ("  deploymentController: {type: ECS}", "", ""),
            ("", "", ""),
        ),
        (
            "strategy ROLLING, no bake time",
            (
                "  deploymentConfiguration: {strategy: ROLLING, bakeTimeInMinutes: 0}",
                "",
                "",
            ),
            ("", "", ""),
        ),
        (
            "alarms that are off",
            (
                "  deploymentConfiguration: {alarms: {alarmNames: [], enable: false, rollback: false}}",
                "",
                "",
            ),
            ("", "", ""),
        ),
        (
            "Service Connect off",
            ("  serviceConnectConfiguration: {enabled: false}", "", ""),
            ("", "", ""),
        ),
        (
            "tags as a list and as a map",
            ("  tags: [{key: team, value: web}]", "", ""),
            ("  tags: {team: web}", "", ""),
        ),
        (
            "an empty enum and null",
            ("  propagateTags: \"\"\n  platformVersion: null", "", ""),
            ("", "", ""),
        ),
        (
            "linuxParameters without init",
            (
                "",
                "        linuxParameters: {initProcessEnabled: false, capabilities: {}}",
                "",
            ),
            ("", "", ""),
        ),
        (
            "FireLens' metadata default",
            (
                "",
                "        firelensConfiguration: {type: fluentbit, options: {enable-ecs-log-metadata: \"true\"}}",
                "",
            ),
            ("", "        firelensConfiguration: {type: fluentbit}", ""),
        ),
        (
            "versionConsistency enabled",
            ("", "        versionConsistency: enabled", ""),
            ("", "", ""),
        ),
        (
            "restartPolicy off",
            ("", "        restartPolicy: {enabled: false}", ""),
            ("", "", ""),
        ),
        (
            "switches that are off",
            (
                "",
                "        interactive: false\n        pseudoTerminal: false\n        disableNetworking: false",
                "",
            ),
            ("", "", ""),
        ),
        (
            "fault injection off",
            ("", "", "    enableFaultInjection: false"),
            ("", "", ""),
        ),
        (
            "a number where the API wants a string",
            ("", "        environment: [{name: PORT, value: 8080}]", ""),
            (
                "",
                "        environment: [{name: PORT, value: \"8080\"}]",
                "",
            ),
        ),
        (
            "sets in another order",
            (
                "",
                "        dnsSearchDomains: [a.example]\n        dockerSecurityOptions: [b, a]",
                "    requiresCompatibilities: [FARGATE, EC2]",
            ),
            (
                "",
                "        dnsSearchDomains: [a.example]\n        dockerSecurityOptions: [a, b]",
                "    requiresCompatibilities: [EC2, FARGATE]",
            ),
        ),
    ];
    for (what, a, b) in cases {
        let (a, b) = (spelled(a.0, a.1, a.2), spelled(b.0, b.1, b.2));
        assert_eq!(
            crate::core::diff::to_comparable(&a.spec),
            crate::core::diff::to_comparable(&b.spec),
            "{what}"
        );
        assert_eq!(a.task_definition_hash, b.task_definition_hash, "{what}");
    }
}

#[test]
fn an_unknown_ignored_path_is_an_error_at_its_line_naming_the_nearest() {
    let text = WEB.replace(
        "  tags: {team: platform}\n",
        "  tags: {team: platform}\n  ignoreDifferences:\n    - desiredCount\n    - taskDefinition.containerDefinitions[web].imag\n",
    );
    let set = one("web.yaml", &text);
    assert_eq!(
        rendered(&set),
        [
            "web.yaml:33:7: spec.ignoreDifferences[1]: \"taskDefinition.containerDefinitions[web].imag\" is no path of a service spec; nearest: taskDefinition.containerDefinitions[].image, taskDefinition.containerDefinitions[].cpu, taskDefinition.containerDefinitions[].links"
        ]
    );
}

#[test]
fn the_source_path_is_measured_in_characters_as_aws_counts_tag_values() {
    // 200 characters, 400 bytes: fits the ecsync.io/source tag.
    let path = format!("{}.yaml", "é".repeat(195));
    let set = one(&path, WEB);
    assert_eq!(rendered(&set), Vec::<String>::new());
    let long = format!("{}.yaml", "é".repeat(252));
    let e = rendered(&one(&long, WEB));
    assert!(
        e.len() == 1 && e[0].contains("257 characters long"),
        "{e:?}"
    );
}

#[test]
fn migration_alarm_gates_are_checked_where_they_are_written() {
    let text = format!(
        "{WEB}  migration:\n    listener: arn:aws:elasticloadbalancing:us-east-1:1:listener/app/web/1/2\n    from:\n      targetGroup: web-ec2\n      instances: {{tags: {{app: web}}}}\n    steps: [10, 100]\n    stepInterval: 1m\n    gates:\n      alarms: [web-5xx, \"\"]\n"
    );
    let msgs = rendered(&one("web.yaml", &text));
    assert_eq!(
        msgs,
        vec![
            "web.yaml:39:25: spec.migration.gates.alarms[1]: must be a CloudWatch alarm name (1 to 255 characters)"
        ]
    );
    let typo = text.replace("alarms: [web-5xx, \"\"]", "alarm: [web-5xx]");
    let joined = rendered(&one("web.yaml", &typo)).join("\n");
    assert!(joined.contains("alarm"), "{joined}");
    assert!(joined.contains("web.yaml:39:"), "{joined}");
    let ok = text.replace(", \"\"]", "]");
    let set = one("web.yaml", &ok);
    assert!(set.errors.is_empty(), "{:?}", rendered(&set));
    let m = set.services[0].spec.migration.as_ref().unwrap();
    assert_eq!(m.alarms(), ["web-5xx".to_string()]);
}

#[test]
fn a_migration_needs_instances_or_an_auto_scaling_group() {
    let head = format!(
        "{WEB}  migration:\n    listener: arn:aws:elasticloadbalancing:us-east-1:1:listener/app/web/1/2\n    from:\n      targetGroup: web-ec2\n"
    );
    let tail = "    steps: [100]\n    stepInterval: 1m\n";
    let neither = rendered(&one("web.yaml", &format!("{head}{tail}")));
    assert_eq!(
        neither,
        vec![
            "web.yaml:34:7: spec.migration.from: needs instances or autoScalingGroup: which EC2 fleet is the legacy one"
        ]
    );
    let group = one(
        "web.yaml",
        &format!("{head}      autoScalingGroup: web-asg\n{tail}"),
    );
    assert!(group.errors.is_empty(), "{:?}", rendered(&group));
    let from = &group.services[0].spec.migration.as_ref().unwrap().from;
    assert_eq!(from.auto_scaling_group.as_deref(), Some("web-asg"));
    assert!(from.selector().is_empty());
    let both = one(
        "web.yaml",
        &format!(
            "{head}      autoScalingGroup: web-asg\n      instances: {{tags: {{app: web}}}}\n{tail}"
        ),
    );
    assert!(both.errors.is_empty(), "{:?}", rendered(&both));
    let empty = rendered(&one(
        "web.yaml",
        &format!("{head}      autoScalingGroup: \"\"\n{tail}"),
    ));
    assert_eq!(empty.len(), 1, "{empty:?}");
    assert!(
        empty[0]
            .contains("spec.migration.from.autoScalingGroup: must be an Auto Scaling group name"),
        "{empty:?}"
    );
}

#[test]
fn decommission_cleanup_is_checked_where_it_is_written() {
    let text = format!(
        "{WEB}  migration:\n    listener: arn:aws:elasticloadbalancing:us-east-1:1:listener/app/web/1/2\n    from:\n      targetGroup: web-ec2\n      instances: {{tags: {{app: web}}}}\n    steps: [100]\n    stepInterval: 1m\n    decommission:\n      after: 1h\n      cleanup: [targetGroup, securityGroup, targetGroup, launchTemplate]\n"
    );
    let msgs = rendered(&one("web.yaml", &text));
    assert_eq!(
        msgs,
        vec![
            "web.yaml:40:30: spec.migration.decommission.cleanup[1]: must be autoScalingGroup, targetGroup or launchTemplate",
            "web.yaml:40:45: spec.migration.decommission.cleanup[2]: targetGroup is listed twice",
            "web.yaml:40:58: spec.migration.decommission.cleanup[3]: launchTemplate needs migration.from.autoScalingGroup: there is no group to clean up after",
        ]
    );
    let ok = text
        .replace("securityGroup, targetGroup, ", "autoScalingGroup, ")
        .replace(
            "      instances:",
            "      autoScalingGroup: web-asg\n      instances:",
        );
    let set = one("web.yaml", &ok);
    assert!(set.errors.is_empty(), "{:?}", rendered(&set));
    let dc = set.services[0].spec.migration.as_ref().unwrap();
    let cleanup = dc.decommission.as_ref().unwrap().cleanup.as_ref().unwrap();
    assert_eq!(cleanup.len(), 3);
    // An empty list is a declared cleanup: the legacy group leaves the listener.
    let empty = one(
        "web.yaml",
        &text.replace(
            "[targetGroup, securityGroup, targetGroup, launchTemplate]",
            "[]",
        ),
    );
    assert!(empty.errors.is_empty(), "{:?}", rendered(&empty));
}
