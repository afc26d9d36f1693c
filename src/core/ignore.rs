//! `spec.ignoreDifferences`: paths, written as `ecsync diff` prints them, where
//! the live value wins (DESIGN §3 "Ownership", like Argo CD's
//! `ignoreDifferences` with `RespectIgnoreDifferences`): never drift, and kept
//! as live when ecsync registers or updates for another reason.

use serde_json::Value;

use crate::core::model::SPEC_PATHS;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    /// `[web]`: the element named so (or at that index, in unnamed lists).
    Elem(String),
    /// `[*]`: every element.
    Any,
}

/// One parsed `ignoreDifferences` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnorePath {
    text: String,
    segs: Vec<Seg>,
}

fn parse_segs(s: &str) -> Result<Vec<Seg>, String> {
    let mut segs = Vec::new();
    let mut key = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !key.is_empty() {
                    segs.push(Seg::Key(std::mem::take(&mut key)));
                } else if !matches!(segs.last(), Some(Seg::Elem(_) | Seg::Any)) {
                    return Err("an empty member name".into());
                }
            }
            '[' => {
                if !key.is_empty() {
                    segs.push(Seg::Key(std::mem::take(&mut key)));
                }
                let inner: String = chars.by_ref().take_while(|c| *c != ']').collect();
                match inner.as_str() {
                    "" => return Err("an empty [] (write [*] for every element)".into()),
                    "*" => segs.push(Seg::Any),
                    name => segs.push(Seg::Elem(name.to_string())),
                }
            }
            c => key.push(c),
        }
    }
    if !key.is_empty() {
        segs.push(Seg::Key(key));
    }
    if segs.is_empty() {
        return Err("an empty path".into());
    }
    Ok(segs)
}

impl IgnorePath {
    /// Parses and checks `s` against the model's paths; the error says why,
    /// with the nearest valid paths.
    pub fn parse(s: &str) -> Result<IgnorePath, String> {
        let segs = parse_segs(s.trim())?;
        let path = IgnorePath {
            text: s.trim().to_string(),
            segs,
        };
        if SPEC_PATHS.iter().any(|t| path.fits(t)) {
            return Ok(path);
        }
        let shape = path.template();
        let mut nearest: Vec<(usize, &str)> = SPEC_PATHS
            .iter()
            .map(|t| (strsim::levenshtein(&shape, t), *t))
            .collect();
        nearest.sort();
        let near: Vec<&str> = nearest.iter().take(3).map(|(_, t)| *t).collect();
        Err(format!(
            "{:?} is no path of a service spec; nearest: {}",
            path.text,
            near.join(", ")
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The pattern with elements as `[]`, as the templates spell it.
    fn template(&self) -> String {
        let mut out = String::new();
        for seg in &self.segs {
            match seg {
                Seg::Key(k) if out.is_empty() => out.push_str(k),
                Seg::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Seg::Elem(_) | Seg::Any => out.push_str("[]"),
            }
        }
        out
    }

    /// Whether the model template `t` (with `[]` and `{}`) names this path.
    fn fits(&self, t: &str) -> bool {
        let Ok(tsegs) = parse_template(t) else {
            return false;
        };
        tsegs.len() == self.segs.len()
            && tsegs.iter().zip(&self.segs).all(|(t, s)| match (t, s) {
                (TSeg::Key(a), Seg::Key(b)) => a == b,
                (TSeg::AnyKey, Seg::Key(_)) => true,
                (TSeg::AnyElem, Seg::Elem(_) | Seg::Any) => true,
                _ => false,
            })
    }

    /// Whether a drifted field (a path `ecsync diff` printed) lies at or
    /// under this one.
    pub fn covers(&self, diff_path: &str) -> bool {
        let Ok(segs) = parse_segs(diff_path) else {
            return false;
        };
        segs.len() >= self.segs.len()
            && self.segs.iter().zip(&segs).all(|(p, d)| match (p, d) {
                (Seg::Any, Seg::Elem(_)) => true,
                (a, b) => a == b,
            })
    }

    /// Sets `desired` to what `live` has at this path (leaves it out where
    /// live has nothing), so a register or update keeps the live value.
    pub fn keep_live(&self, desired: &mut Value, live: &Value) {
        keep(&self.segs, desired, live);
    }
}

enum TSeg {
    Key(String),
    AnyKey,
    AnyElem,
}

fn parse_template(t: &str) -> Result<Vec<TSeg>, String> {
    Ok(parse_segs(&t.replace("[]", "[*]"))?
        .into_iter()
        .map(|s| match s {
            Seg::Key(k) if k == "{}" => TSeg::AnyKey,
            Seg::Key(k) => TSeg::Key(k),
            Seg::Elem(_) | Seg::Any => TSeg::AnyElem,
        })
        .collect())
}

/// The element of `items` that `[key]` names: by `name` (as the diff keys
/// containers, environment, secrets), by tag `key`, else by index.
fn element(items: &[Value], key: &str) -> Option<usize> {
    items
        .iter()
        .position(|v| {
            v.get("name").and_then(Value::as_str) == Some(key)
                || v.get("key").and_then(Value::as_str) == Some(key)
        })
        .or_else(|| key.parse::<usize>().ok().filter(|i| *i < items.len()))
}

fn name_of(v: &Value) -> Option<&str> {
    v.get("name")
        .or_else(|| v.get("key"))
        .and_then(Value::as_str)
}

fn keep(segs: &[Seg], desired: &mut Value, live: &Value) {
    let Some((first, rest)) = segs.split_first() else {
        *desired = live.clone();
        return;
    };
    match first {
        Seg::Key(k) => {
            // Tags are a list of {key, value} in the API's shape: `tags.team`.
            if let (Some(d), Some(l)) = (desired.as_array_mut(), live.as_array()) {
                keep_tag(k, d, l);
                return;
            }
            let Some(d) = desired.as_object_mut() else {
                return;
            };
            match (rest.is_empty(), live.get(k)) {
                (true, Some(l)) => {
                    d.insert(k.clone(), l.clone());
                }
                (true, None) => {
                    d.remove(k);
                }
                (false, Some(l)) => {
                    if let Some(child) = d.get_mut(k) {
                        keep(rest, child, l);
                    }
                }
                (false, None) => {}
            }
        }
        Seg::Elem(key) => {
            if let (Some(d), Some(l)) = (desired.as_array_mut(), live.as_array())
                && let (Some(di), Some(li)) = (element(d, key), element(l, key))
            {
                keep(rest, &mut d[di], &l[li]);
            }
        }
        Seg::Any => {
            if let (Some(d), Some(l)) = (desired.as_array_mut(), live.as_array()) {
                for (i, item) in d.iter_mut().enumerate() {
                    let counterpart = match name_of(item) {
                        Some(name) => element(l, name),
                        None => (i < l.len()).then_some(i),
                    };
                    if let Some(li) = counterpart {
                        keep(rest, item, &l[li]);
                    }
                }
            }
        }
    }
}

fn keep_tag(key: &str, desired: &mut Vec<Value>, live: &[Value]) {
    let live_tag = live
        .iter()
        .find(|t| t.get("key").and_then(Value::as_str) == Some(key));
    desired.retain(|t| t.get("key").and_then(Value::as_str) != Some(key));
    if let Some(t) = live_tag {
        desired.push(t.clone());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_parse_against_the_model_and_a_typo_names_the_nearest() {
        for ok in [
            "taskDefinition.containerDefinitions[web].image",
            "taskDefinition.containerDefinitions[*].environment",
            "desiredCount",
            "deploymentConfiguration.maximumPercent",
            "tags.cost-center",
            "taskDefinition.containerDefinitions[web].dockerLabels.team",
        ] {
            assert!(
                IgnorePath::parse(ok).is_ok(),
                "{ok}: {:?}",
                IgnorePath::parse(ok)
            );
        }
        let err = IgnorePath::parse("taskDefinition.containerDefinitions[web].imgae").unwrap_err();
        assert!(
            err.contains("nearest: taskDefinition.containerDefinitions[].image"),
            "{err}"
        );
        assert!(IgnorePath::parse("migration.steps").is_err());
        assert!(IgnorePath::parse("loadBalancers[]").is_err());
    }

    #[test]
    fn a_path_covers_what_lies_under_it_and_star_any_element() {
        let p = IgnorePath::parse("taskDefinition.containerDefinitions[*].image").unwrap();
        assert!(p.covers("taskDefinition.containerDefinitions[web].image"));
        assert!(p.covers("taskDefinition.containerDefinitions[0].image"));
        assert!(!p.covers("taskDefinition.containerDefinitions[web].cpu"));
        let env =
            IgnorePath::parse("taskDefinition.containerDefinitions[web].environment").unwrap();
        assert!(env.covers("taskDefinition.containerDefinitions[web].environment[PORT].value"));
        assert!(!env.covers("taskDefinition.containerDefinitions[api].environment"));
    }

    #[test]
    fn keep_live_copies_the_live_value_into_the_desired_one() {
        let p = IgnorePath::parse("taskDefinition.containerDefinitions[*].image").unwrap();
        let mut desired = json!({"taskDefinition": {"containerDefinitions": [
            {"name": "web", "image": "web:1", "cpu": 1},
            {"name": "side", "image": "side:1"}
        ]}});
        let live = json!({"taskDefinition": {"containerDefinitions": [
            {"name": "side", "image": "side:9"},
            {"name": "web", "image": "web:7"}
        ]}});
        p.keep_live(&mut desired, &live);
        assert_eq!(
            desired,
            json!({"taskDefinition": {"containerDefinitions": [
                {"name": "web", "image": "web:7", "cpu": 1},
                {"name": "side", "image": "side:9"}
            ]}})
        );

        let count = IgnorePath::parse("desiredCount").unwrap();
        let mut d = json!({"desiredCount": 2});
        count.keep_live(&mut d, &json!({"desiredCount": 5}));
        assert_eq!(d, json!({"desiredCount": 5}));
        count.keep_live(&mut d, &json!({}));
        assert_eq!(d, json!({}));

        let tag = IgnorePath::parse("tags.owner").unwrap();
        let mut d =
            json!({"tags": [{"key": "team", "value": "a"}, {"key": "owner", "value": "x"}]});
        tag.keep_live(&mut d, &json!({"tags": [{"key": "owner", "value": "y"}]}));
        assert_eq!(
            d,
            json!({"tags": [{"key": "team", "value": "a"}, {"key": "owner", "value": "y"}]})
        );
    }
}
