//! Structured diff of two normalised values: a list of (field path, desired,
//! live), never a text blob. The CLI and `/status` render it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One drifted field, in the API input shape (`path` like `taskDefinition.cpu`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    pub path: String,
    /// `null` when the field is absent on that side.
    pub desired: Value,
    pub live: Value,
}

/// JSON of `v` with every `null` field dropped, so "absent" and "unset" agree.
pub fn to_clean_value<T: Serialize>(v: &T) -> Value {
    let mut value = serde_json::to_value(v).unwrap_or(Value::Null);
    strip_nulls(&mut value);
    value
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// The form two values are compared (and hashed) in: no nulls, and an empty
/// list or object is no value, since ECS echoes many unset members as `[]`/`{}`.
pub fn to_comparable<T: Serialize>(v: &T) -> Value {
    without_empties(&to_clean_value(v))
}

/// Paths where `live` holds something that `kept` would not write back: what
/// replacing `live` with `kept` drops or changes. A `false` or `0` that only
/// the live side has is ECS echoing its default, not a setting.
pub fn lost_members(prefix: &str, live: &Value, kept: &Value) -> Vec<String> {
    diff_values(prefix, &without_empties(kept), &without_empties(live))
        .into_iter()
        .filter(|d| !d.live.is_null())
        .filter(|d| !(d.desired.is_null() && is_default_scalar(&d.live)))
        .map(|d| d.path)
        .collect()
}

fn is_default_scalar(v: &Value) -> bool {
    v == &Value::Bool(false) || v.as_f64() == Some(0.0)
}

/// `v` without nulls, empty lists and empty objects, at any depth.
fn without_empties(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), without_empties(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_empties).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Differences between `desired` and `live`, under `prefix`.
pub fn diff_values(prefix: &str, desired: &Value, live: &Value) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    walk(prefix.to_string(), desired, live, &mut out);
    out
}

fn walk(path: String, desired: &Value, live: &Value, out: &mut Vec<FieldDiff>) {
    if desired == live {
        return;
    }
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => walk_objects(&path, d, l, out),
        (Value::Array(d), Value::Array(l)) => {
            if let (Some(dk), Some(lk)) = (keyed(d), keyed(l)) {
                walk_keyed(&path, &dk, &lk, out);
            } else if d.len() == l.len() {
                for (i, (dv, lv)) in d.iter().zip(l).enumerate() {
                    walk(format!("{path}[{i}]"), dv, lv, out);
                }
            } else {
                push(out, path, desired, live);
            }
        }
        _ => push(out, path, desired, live),
    }
}

fn walk_objects(
    path: &str,
    d: &Map<String, Value>,
    l: &Map<String, Value>,
    out: &mut Vec<FieldDiff>,
) {
    let mut keys: Vec<&String> = d.keys().chain(l.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let child = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        walk(
            child,
            d.get(k).unwrap_or(&Value::Null),
            l.get(k).unwrap_or(&Value::Null),
            out,
        );
    }
}

/// Lists of objects that each carry a unique `name` (containers, environment,
/// secrets) or `key` (tags) are compared by it, so `containerDefinitions[web].image` reads well
/// and an insertion does not shift every later element into a diff.
fn keyed(items: &[Value]) -> Option<Vec<(&str, &Value)>> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        // Tags, in the API's list shape, are named by their `key`.
        let name = item.get("name").or_else(|| item.get("key"))?;
        out.push((name.as_str()?, item));
    }
    let mut names: Vec<&str> = out.iter().map(|(n, _)| *n).collect();
    names.sort();
    names.dedup();
    (names.len() == out.len()).then_some(out)
}

fn walk_keyed(path: &str, d: &[(&str, &Value)], l: &[(&str, &Value)], out: &mut Vec<FieldDiff>) {
    let mut names: Vec<&str> = d.iter().chain(l).map(|(n, _)| *n).collect();
    names.sort();
    names.dedup();
    let find = |side: &[(&str, &Value)], name: &str| {
        side.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).clone())
            .unwrap_or(Value::Null)
    };
    for name in names {
        walk(
            format!("{path}[{name}]"),
            &find(d, name),
            &find(l, name),
            out,
        );
    }
}

fn push(out: &mut Vec<FieldDiff>, path: String, desired: &Value, live: &Value) {
    out.push(FieldDiff {
        path,
        desired: desired.clone(),
        live: live.clone(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_members_are_what_live_has_and_kept_lacks() {
        let live = serde_json::json!({
            "family": "web",
            "proxyConfiguration": {"containerName": "envoy"},
            "volumes": [],
            "containerDefinitions": [{
                "name": "web", "image": "a", "cpu": 0, "privileged": false,
                "linuxParameters": {"initProcessEnabled": true}
            }]
        });
        let kept = serde_json::json!({
            "family": "web",
            "tags": [],
            "containerDefinitions": [{"name": "web", "image": "a"}]
        });
        assert_eq!(
            lost_members("taskDefinition", &live, &kept),
            [
                "taskDefinition.containerDefinitions[web].linuxParameters",
                "taskDefinition.proxyConfiguration"
            ]
        );
        assert!(lost_members("t", &live, &live).is_empty());
        // A changed value is lost too.
        let changed = serde_json::json!({"family": "other"});
        assert_eq!(
            lost_members("t", &serde_json::json!({"family": "web"}), &changed),
            ["t.family"]
        );
    }
    use serde_json::json;

    #[test]
    fn equal_values_have_no_diff() {
        let v = json!({"a": [1, 2], "b": {"c": "d"}});
        assert!(diff_values("", &v, &v).is_empty());
    }

    #[test]
    fn reports_leaf_paths_with_both_sides() {
        let d = json!({"desiredCount": 2, "net": {"subnets": ["a", "b"]}});
        let l = json!({"desiredCount": 3, "net": {"subnets": ["a", "c"]}});
        let got = diff_values("", &d, &l);
        assert_eq!(
            got,
            vec![
                FieldDiff {
                    path: "desiredCount".into(),
                    desired: json!(2),
                    live: json!(3)
                },
                FieldDiff {
                    path: "net.subnets[1]".into(),
                    desired: json!("b"),
                    live: json!("c")
                },
            ]
        );
    }

    #[test]
    fn named_lists_are_matched_by_name() {
        let d = json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]});
        let l = json!({"env": [{"name": "B", "value": "3"}]});
        let got = diff_values("c", &d, &l);
        assert_eq!(
            got,
            vec![
                FieldDiff {
                    path: "c.env[A]".into(),
                    desired: json!({"name": "A", "value": "1"}),
                    live: Value::Null
                },
                FieldDiff {
                    path: "c.env[B].value".into(),
                    desired: json!("2"),
                    live: json!("3")
                },
            ]
        );
    }

    #[test]
    fn lists_of_other_lengths_differ_as_a_whole() {
        let got = diff_values("x", &json!([1, 2]), &json!([1]));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].path, "x");
    }

    #[test]
    fn clean_value_drops_nulls() {
        #[derive(Serialize)]
        struct S {
            a: Option<i32>,
            b: Vec<Option<i32>>,
        }
        assert_eq!(
            to_clean_value(&S {
                a: None,
                b: vec![None]
            }),
            json!({"b": [null]})
        );
    }
}
