//! What of a drifted value may be shown to people. Environment values and the
//! sources of secrets are replaced by [`SECRET`] wherever they appear: as the
//! drifted field itself, or inside a whole container or list that drifted.
//!
//! Only the value is hidden, never the path: an operator still sees that
//! `environment[DATABASE_URL]` differs, just not what it holds.

use serde_json::Value;

use crate::core::diff::FieldDiff;
use crate::core::plan::Ignored;

/// Shown in place of a secret value.
pub const SECRET: &str = "(secret, not shown)";

/// A step of a field path: a member name, or an element of a list
/// (`[web]`, `[0]`: which one does not matter here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step<'a> {
    Member(&'a str),
    Element,
}

/// `a.b[c.d].e` as steps. Brackets may hold dots (`tags[ecsync.io/x]`).
fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    for (i, c) in path.char_indices() {
        match c {
            '[' => {
                if depth == 0 && start < i {
                    out.push(Step::Member(&path[start..i]));
                }
                depth += 1;
            }
            ']' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(Step::Element);
                    start = i + 1;
                }
            }
            '.' if depth == 0 => {
                if start < i {
                    out.push(Step::Member(&path[start..i]));
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth == 0 && start < path.len() {
        out.push(Step::Member(&path[start..]));
    }
    out
}

/// Whether the value at `at` is secret: `environment[].value`,
/// `secrets[].valueFrom` and `secretOptions[].valueFrom`.
fn is_secret(at: &[Step]) -> bool {
    match at {
        [.., Step::Member(list), Step::Element, Step::Member(member)] => matches!(
            (*list, *member),
            ("environment", "value") | ("secrets" | "secretOptions", "valueFrom")
        ),
        _ => false,
    }
}

fn walk<'a>(at: &mut Vec<Step<'a>>, v: &'a Value) -> Value {
    if v.is_null() {
        // Absent stays absent: that a value appeared or went is not the secret.
        return Value::Null;
    }
    if is_secret(at) {
        return Value::String(SECRET.to_string());
    }
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    at.push(Step::Member(k));
                    let out = walk(at, v);
                    at.pop();
                    (k.clone(), out)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| {
                    at.push(Step::Element);
                    let out = walk(at, v);
                    at.pop();
                    out
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `v`, found at `path`, with every secret inside it replaced.
pub fn redact_value(path: &str, v: &Value) -> Value {
    let mut at = steps(path);
    walk(&mut at, v)
}

/// A drifted field as it may be shown.
pub fn redact_diff(d: &FieldDiff) -> FieldDiff {
    FieldDiff {
        path: d.path.clone(),
        desired: redact_value(&d.path, &d.desired),
        live: redact_value(&d.path, &d.live),
    }
}

/// An ignored difference as it may be shown.
pub fn redact_ignored(i: &Ignored) -> Ignored {
    Ignored {
        path: i.path.clone(),
        reason: i.reason,
        desired: redact_value(&i.path, &i.desired),
        live: redact_value(&i.path, &i.live),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TD: &str = "taskDefinition.containerDefinitions[web]";

    #[test]
    fn a_drifted_environment_value_is_hidden_on_both_sides() {
        let d = redact_diff(&FieldDiff {
            path: format!("{TD}.environment[DATABASE_URL].value"),
            desired: json!("postgres://u:hunter2@db"),
            live: json!("postgres://u:old@db"),
        });
        assert_eq!(d.desired, json!(SECRET));
        assert_eq!(d.live, json!(SECRET));
        assert_eq!(d.path, format!("{TD}.environment[DATABASE_URL].value"));
    }

    #[test]
    fn secrets_inside_a_whole_container_or_list_are_hidden_and_the_rest_kept() {
        let container = json!({
            "name": "web",
            "image": "nginx:1.27",
            "environment": [{"name": "TOKEN", "value": "hunter2"}],
            "secrets": [{"name": "DB", "valueFrom": "arn:aws:ssm:x:1:parameter/db"}],
            "logConfiguration": {"logDriver": "awsfirelens",
                "secretOptions": [{"name": "apikey", "valueFrom": "arn:aws:ssm:x:1:parameter/k"}]}
        });
        let shown = redact_value(TD, &container).to_string();
        for hidden in ["hunter2", "parameter/db", "parameter/k"] {
            assert!(!shown.contains(hidden), "{hidden} shown: {shown}");
        }
        for kept in ["nginx:1.27", "TOKEN", "\"DB\"", "apikey", "awsfirelens"] {
            assert!(shown.contains(kept), "{kept} lost: {shown}");
        }
        let list = redact_value(
            &format!("{TD}.environment"),
            &json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
        );
        assert_eq!(
            list,
            json!([{"name": "A", "value": SECRET}, {"name": "B", "value": SECRET}])
        );
        let one = redact_value(
            &format!("{TD}.environment[A]"),
            &json!({"name": "A", "value": "1"}),
        );
        assert_eq!(one, json!({"name": "A", "value": SECRET}));
    }

    #[test]
    fn absent_stays_absent_and_other_fields_are_untouched() {
        let d = redact_diff(&FieldDiff {
            path: format!("{TD}.environment[NEW].value"),
            desired: json!("x"),
            live: Value::Null,
        });
        assert_eq!((d.desired, d.live), (json!(SECRET), Value::Null));
        // A member named `value` elsewhere, and a dotted key inside brackets.
        for (path, v) in [
            ("desiredCount", json!(3)),
            ("tags[ecsync.io/x].value", json!("kept")),
            (
                "taskDefinition.containerDefinitions[a.b].image",
                json!("img"),
            ),
        ] {
            assert_eq!(redact_value(path, &v), v, "{path}");
        }
    }

    #[test]
    fn paths_split_on_dots_outside_brackets() {
        assert_eq!(
            steps("a.b[c.d].e"),
            [
                Step::Member("a"),
                Step::Member("b"),
                Step::Element,
                Step::Member("e")
            ]
        );
        assert_eq!(steps(""), []);
    }
}
