//! The ECS API's own input shapes, generated from the AWS model (botocore) by
//! `scripts/gen-ecs-model.py`: every member of `RegisterTaskDefinition` and
//! `CreateService` under its API name, and the model's value checks.
//!
//! What is hand-written here is only how the generated types read YAML (the
//! spellings people paste) and what a check says when it fails.

pub mod ecs;

use crate::core::manifest::FieldPath;

/// Problems found in a value, each with the field it concerns.
pub type Problems = Vec<(FieldPath, String)>;

/// The model's constraints on a value: enums, ranges, lengths, patterns.
pub trait Validate {
    fn validate(&self, at: &FieldPath, out: &mut Problems);
}

/// The checks the generated `Validate` impls call.
pub mod check {
    use std::collections::BTreeMap;
    use std::sync::{Mutex, OnceLock};

    use super::Problems;
    use crate::core::manifest::FieldPath;

    pub fn one_of(v: &str, allowed: &[&str], at: &FieldPath, out: &mut Problems) {
        if !allowed.contains(&v) {
            out.push((
                at.clone(),
                format!("{v:?} is not one of {}", allowed.join(", ")),
            ));
        }
    }

    pub fn length(v: &str, min: usize, max: usize, at: &FieldPath, out: &mut Problems) {
        let n = v.chars().count();
        if n < min || n > max {
            out.push((
                at.clone(),
                format!("must be {min} to {max} characters long, not {n}"),
            ));
        }
    }

    pub fn count(n: usize, min: usize, max: usize, at: &FieldPath, out: &mut Problems) {
        if n < min || n > max {
            out.push((
                at.clone(),
                format!("must have {min} to {max} items, not {n}"),
            ));
        }
    }

    pub fn range(v: i64, min: i64, max: i64, at: &FieldPath, out: &mut Problems) {
        if v < min || v > max {
            out.push((
                at.clone(),
                format!("must be between {min} and {max}, not {v}"),
            ));
        }
    }

    /// The model's patterns are few and fixed, so each is compiled once.
    pub fn pattern(v: &str, pattern: &'static str, at: &FieldPath, out: &mut Problems) {
        static COMPILED: OnceLock<Mutex<BTreeMap<&'static str, Option<regex::Regex>>>> =
            OnceLock::new();
        let cache = COMPILED.get_or_init(Default::default);
        let matches = {
            let mut cache = cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let re = cache
                .entry(pattern)
                .or_insert_with(|| regex::Regex::new(pattern).ok());
            // A pattern this engine cannot read checks nothing rather than
            // refusing every value.
            re.as_ref().is_none_or(|re| re.is_match(v))
        };
        if !matches {
            out.push((at.clone(), format!("{v:?} does not match {pattern}")));
        }
    }
}

/// How the generated types read the spellings found in the wild: numbers where
/// the API wants strings (`cpu: 256`), `""` for an unset enum, and tags as a
/// map as well as the API's `[{key, value}]`.
pub mod de {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer};

    use super::ecs::Tag;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }

    impl Scalar {
        fn into_string(self) -> String {
            match self {
                Scalar::S(s) => s,
                Scalar::I(i) => i.to_string(),
                Scalar::F(f) => f.to_string(),
                Scalar::B(b) => b.to_string(),
            }
        }
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Scalar::deserialize(d).map(Scalar::into_string)
    }

    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Option::<Scalar>::deserialize(d)?.map(Scalar::into_string))
    }

    /// `""` in an optional enum means absent, as the API treats it.
    pub fn enum_or_absent<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
    }

    pub fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Tag>>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Tags {
            List(Vec<Tag>),
            Map(BTreeMap<String, Option<Scalar>>),
        }
        Ok(Option::<Tags>::deserialize(d)?.map(|t| match t {
            Tags::List(l) => l,
            Tags::Map(m) => m
                .into_iter()
                .map(|(k, v)| Tag {
                    key: Some(k),
                    value: Some(v.map(Scalar::into_string).unwrap_or_default()),
                })
                .collect(),
        }))
    }
}
