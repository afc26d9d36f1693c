//! `ecsync convert`: read an ecspresso project (or plain AWS CLI JSON) and
//! write the manifest it amounts to, validated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use ecsync::adapters::jsonnet;
use ecsync::core::ecspresso::{self, ConvertError};
use ecsync::core::manifest;

use super::ConvertArgs;
use super::commands::{EXIT_ERROR, EXIT_OK};

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// A definition file as JSON: JSON with its templates rendered, or Jsonnet evaluated.
fn definition(path: &Path, env: &BTreeMap<String, String>) -> Result<Value, Vec<ConvertError>> {
    let file = path.display().to_string();
    let at = |line, column, message: String| {
        vec![ConvertError {
            file: file.clone(),
            line,
            column,
            message,
        }]
    };
    if matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonnet" | "libsonnet")
    ) {
        // Jsonnet has its own must_env / env (std.native); no Go templates.
        return jsonnet::evaluate(path, env).map_err(|e| {
            let (line, column) = e.position().unwrap_or((1, 1));
            vec![ConvertError {
                file: e.file().to_string(),
                line,
                column,
                message: e.message(),
            }]
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| at(1, 1, e.to_string()))?;
    let text = ecspresso::render_template(&file, &text, env)?;
    serde_json::from_str(&text).map_err(|e| at(e.line(), e.column(), format!("not JSON: {e}")))
}

pub fn convert(args: ConvertArgs) -> Result<u8> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let (name, cluster, td_path, svc_path) = match &args.ecspresso {
        Some(config_path) => {
            let file = config_path.display().to_string();
            let text = read(config_path)?;
            let config = match ecspresso::render_template(&file, &text, &env)
                .and_then(|t| ecspresso::read_config(&file, &t).map_err(|e| vec![e]))
            {
                Ok(c) => c,
                Err(errors) => return Ok(report(&errors)),
            };
            let dir = config_path.parent().unwrap_or(Path::new("."));
            (
                config.service,
                config.cluster,
                dir.join(&config.task_definition),
                config.service_definition.map(|s| dir.join(s)),
            )
        }
        None => {
            let missing = |what: &str| anyhow::anyhow!("--{what} is needed without --ecspresso");
            (
                args.name.clone().ok_or_else(|| missing("name"))?,
                args.cluster.clone().ok_or_else(|| missing("cluster"))?,
                args.task_definition
                    .clone()
                    .ok_or_else(|| missing("task-definition"))?,
                args.service_definition.clone(),
            )
        }
    };
    let mut errors = Vec::new();
    let td = definition(&td_path, &env).unwrap_or_else(|e| {
        errors.extend(e);
        Value::Null
    });
    let svc = svc_path.as_deref().map(|p| {
        definition(p, &env).unwrap_or_else(|e| {
            errors.extend(e);
            Value::Null
        })
    });
    if !errors.is_empty() {
        return Ok(report(&errors));
    }
    let (doc, dropped) = ecspresso::manifest(&name, &cluster, svc.as_ref(), &td);
    if !dropped.is_empty() {
        eprintln!(
            "note: {name}: left out, as ecsync derives them or they are describe output: {}",
            dropped.join(", ")
        );
    }
    let yaml = serde_saphyr::to_string(&doc)?;
    let out_path: PathBuf = args.out.as_ref().map_or_else(
        || PathBuf::from(format!("{name}.yaml")),
        |d| d.join(format!("{name}.yaml")),
    );
    let shown = out_path.display().to_string();
    // What is written must load: checked as `ecsync validate` would.
    let set = manifest::load([(shown.as_str(), yaml.as_str())]);
    for w in &set.warnings {
        eprintln!("warning: {w}");
    }
    if !set.errors.is_empty() {
        for e in &set.errors {
            eprintln!("{e}");
        }
        eprintln!("{name}: the converted manifest does not validate; nothing written");
        return Ok(EXIT_ERROR);
    }
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::write(&out_path, &yaml).with_context(|| format!("writing {shown}"))?;
            eprintln!("wrote {shown}");
        }
        None => print!("---\n{yaml}"),
    }
    Ok(EXIT_OK)
}

fn report(errors: &[ConvertError]) -> u8 {
    for e in errors {
        eprintln!("{e}");
    }
    EXIT_ERROR
}
