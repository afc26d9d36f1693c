//! `ecsync convert`: an ecspresso project (or plain AWS CLI JSON) as an
//! ecsync manifest. Pure: the caller reads the files and the environment.
//!
//! ecspresso's definitions are the ECS API's own JSON, which is what a
//! manifest's spec is, so converting is mostly rendering ecspresso's template
//! functions and moving the members into place. Functions that read AWS
//! (`tfstate`, `ssm`, `secretsmanager_arn`, ...) are not guessed at: they are
//! errors at their position, with what to do instead.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::core::model::{API_VERSION, KIND_SERVICE, SERVICE_SPEC_MEMBERS};

/// A problem in one input file, rendered as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConvertError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Template functions that would need AWS or other tools to evaluate.
const NEEDS_AWS: &[&str] = &[
    "tfstate",
    "tfstatef",
    "ssm",
    "secretsmanager_arn",
    "secretsmanager",
    "cfn_output",
    "cfn_export",
];

/// `{{ must_env `X` }}` and `{{ env `X` `default` }}` rendered from `env`;
/// every other function is an error at its position.
pub fn render_template(
    file: &str,
    text: &str,
    env: &BTreeMap<String, String>,
) -> Result<String, Vec<ConvertError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let at = offset + start;
        let Some(len) = rest[start..].find("}}") else {
            let (line, column) = position(text, at);
            errors.push(ConvertError {
                file: file.into(),
                line,
                column,
                message: "a template action that never closes with }}".into(),
            });
            return Err(errors);
        };
        let action = rest[start + 2..start + len].trim().trim_matches('-').trim();
        match evaluate(action, env) {
            Ok(v) => out.push_str(&v),
            Err(message) => {
                let (line, column) = position(text, at);
                errors.push(ConvertError {
                    file: file.into(),
                    line,
                    column,
                    message,
                });
            }
        }
        rest = &rest[start + len + 2..];
        offset = at + len + 2;
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The arguments of a template action: back-quoted or double-quoted strings.
fn arguments(s: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' || c == '"' {
            args.push(chars.by_ref().take_while(|x| *x != c).collect());
        }
    }
    args
}

fn evaluate(action: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let function = action.split_whitespace().next().unwrap_or_default();
    let args = arguments(&action[function.len()..]);
    match (function, args.as_slice()) {
        ("must_env", [name]) => env
            .get(name)
            .cloned()
            .ok_or_else(|| format!("must_env: {name} is not set in the environment")),
        ("env", [name]) => Ok(env.get(name).cloned().unwrap_or_default()),
        ("env", [name, default]) => Ok(env.get(name).cloned().unwrap_or_else(|| default.clone())),
        (f, _) if NEEDS_AWS.contains(&f) => Err(format!(
            "{f} reads AWS or Terraform state, which convert does not: run `ecspresso render` and convert its output, or put the value in the manifest"
        )),
        (f, _) => Err(format!(
            "{{{{ {f} }}}} is not a function convert knows (must_env, env)"
        )),
    }
}

/// What ecspresso's config names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EcspressoConfig {
    pub cluster: String,
    pub service: String,
    pub region: Option<String>,
    pub service_definition: Option<String>,
    pub task_definition: String,
}

/// Reads `ecspresso.yml` (YAML or JSON, after templates are rendered).
pub fn read_config(file: &str, text: &str) -> Result<EcspressoConfig, ConvertError> {
    let v: Value = serde_saphyr::from_str(text).map_err(|e| ConvertError {
        file: file.into(),
        line: 1,
        column: 1,
        message: format!("not YAML or JSON: {e}"),
    })?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let missing = |k: &str| ConvertError {
        file: file.into(),
        line: 1,
        column: 1,
        message: format!("{k} is missing: ecsync needs it to name the service"),
    };
    Ok(EcspressoConfig {
        cluster: field("cluster").unwrap_or_else(|| "default".into()),
        service: field("service").ok_or_else(|| missing("service"))?,
        region: field("region"),
        service_definition: field("service_definition"),
        task_definition: field("task_definition").ok_or_else(|| missing("task_definition"))?,
    })
}

/// Members of a service definition that are not `CreateService` input a
/// manifest declares: ecsync derives them, or they are describe output.
fn derived_or_response_only(member: &str) -> bool {
    !SERVICE_SPEC_MEMBERS.contains(&member)
}

/// The manifest (as JSON) for a service: `service_definition` is the API's
/// service JSON (`CreateService` input or a describe answer), `task_definition`
/// the task definition's (input or describe answer, wrapper and all).
/// Returns the manifest and the members that were dropped.
pub fn manifest(
    name: &str,
    cluster: &str,
    service_definition: Option<&Value>,
    task_definition: &Value,
) -> (Value, Vec<String>) {
    let mut spec = Map::new();
    spec.insert("cluster".into(), cluster.into());
    let mut dropped = Vec::new();
    if let Some(Value::Object(def)) = service_definition {
        for (k, v) in def {
            if k == "roleArn" {
                spec.insert("role".into(), v.clone());
            } else if derived_or_response_only(k) {
                dropped.push(k.clone());
            } else if !v.is_null() {
                spec.insert(k.clone(), v.clone());
            }
        }
    }
    dropped.sort();
    spec.insert("taskDefinition".into(), task_definition.clone());
    let doc = serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": KIND_SERVICE,
        "metadata": {"name": name},
        "spec": spec,
    });
    (doc, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        BTreeMap::from([("TAG".to_string(), "v7".to_string())])
    }

    #[test]
    fn must_env_and_env_render_from_the_environment() {
        let text = r#"{"image": "app:{{ must_env `TAG` }}", "x": "{{ env `NOPE` `fallback` }}", "y": "{{env "NOPE"}}"}"#;
        assert_eq!(
            render_template("td.json", text, &env()).unwrap(),
            r#"{"image": "app:v7", "x": "fallback", "y": ""}"#
        );
    }

    #[test]
    fn what_needs_aws_or_is_unset_is_an_error_at_its_position() {
        let text = "{\n  \"a\": \"{{ must_env `UNSET` }}\",\n  \"b\": \"{{ tfstate `aws_lb.main.arn` }}\"\n}";
        let errors = render_template("td.json", text, &env()).unwrap_err();
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(rendered.len(), 2, "{rendered:?}");
        assert!(
            rendered[0].starts_with("td.json:2:9: must_env: UNSET"),
            "{rendered:?}"
        );
        assert!(
            rendered[1].starts_with("td.json:3:9: tfstate reads AWS")
                && rendered[1].contains("ecspresso render"),
            "{rendered:?}"
        );
    }

    #[test]
    fn a_describe_answer_moves_into_a_spec() {
        let svc = serde_json::json!({
            "serviceName": "web", "serviceArn": "arn:x", "status": "ACTIVE",
            "desiredCount": 2, "launchType": "FARGATE", "roleArn": "arn:aws:iam::1:role/r",
            "runningCount": 2, "events": []
        });
        let (doc, dropped) = manifest(
            "web",
            "prod",
            Some(&svc),
            &serde_json::json!({"family": "web"}),
        );
        assert_eq!(doc["spec"]["desiredCount"], 2);
        assert_eq!(doc["spec"]["role"], "arn:aws:iam::1:role/r");
        assert_eq!(doc["spec"]["cluster"], "prod");
        assert_eq!(
            dropped,
            [
                "events",
                "runningCount",
                "serviceArn",
                "serviceName",
                "status"
            ]
        );
    }
}
