//! Jsonnet definitions (ecspresso v2's `*.jsonnet`) evaluated to JSON with
//! jrsonnet: the Jsonnet standard library, `import` relative to the importing
//! file, and ecspresso's two native functions, `std.native('must_env')(name)`
//! and `std.native('env')(name, default)`. They read the map the caller
//! passes, never the process environment. An error carries the file, line and
//! column the evaluator gives for it (a syntax error's position, or the
//! innermost located frame of a runtime error, such as the `must_env` call).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use jrsonnet_evaluator::{
    Error, FileImportResolver, IStr, Span, State, bail, error::ErrorKind, function::builtin,
    manifest::JsonFormat, trace::PathResolver,
};
use serde_json::Value;

/// Why a Jsonnet file did not evaluate to JSON. `file` is the definition as
/// the caller named it, or a file it imports (named relative to it).
#[derive(Debug, thiserror::Error)]
pub enum JsonnetError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    /// Not Jsonnet (a parse error), or a name nothing defines.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// An evaluation error at the innermost position the evaluator names.
    #[error("{file}:{line}:{column}: {message}")]
    Evaluation {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// An evaluation error the evaluator gives no position for.
    #[error("{file}: {message}")]
    Unlocated { file: String, message: String },
}

impl JsonnetError {
    pub fn file(&self) -> &str {
        match self {
            Self::Read { file, .. }
            | Self::Syntax { file, .. }
            | Self::Evaluation { file, .. }
            | Self::Unlocated { file, .. } => file,
        }
    }

    /// 1-based line and column (in characters), when there is one.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            Self::Syntax { line, column, .. } | Self::Evaluation { line, column, .. } => {
                Some((*line, *column))
            }
            Self::Read { .. } | Self::Unlocated { .. } => None,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Read { source, .. } => source.to_string(),
            Self::Syntax { message, .. }
            | Self::Evaluation { message, .. }
            | Self::Unlocated { message, .. } => message.clone(),
        }
    }
}

type Env = Rc<BTreeMap<String, String>>;

#[builtin(fields(env: Env))]
fn must_env(this: &must_env, name: IStr) -> jrsonnet_evaluator::Result<String> {
    match this.env.get(name.as_str()) {
        Some(value) => Ok(value.clone()),
        None => bail!("must_env: environment variable {} is not set", name),
    }
}

#[builtin(fields(env: Env))]
fn env(this: &env, name: IStr, default: IStr) -> String {
    this.env
        .get(name.as_str())
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

/// Evaluates the Jsonnet file at `path` to JSON, `must_env` and `env` reading `env`.
pub fn evaluate(path: &Path, env: &BTreeMap<String, String>) -> Result<Value, JsonnetError> {
    let given = path.display().to_string();
    let canonical = std::fs::canonicalize(path).map_err(|source| JsonnetError::Read {
        file: given.clone(),
        source,
    })?;
    let names = Names {
        given: path.to_path_buf(),
        dir: canonical
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        canonical: canonical.clone(),
    };

    let env: Env = Rc::new(env.clone());
    let std = jrsonnet_stdlib::ContextInitializer::new(PathResolver::Absolute);
    std.add_native("must_env", must_env { env: env.clone() });
    std.add_native("env", self::env { env });
    let mut builder = State::builder();
    builder
        .import_resolver(FileImportResolver::default())
        .context_initializer(std);
    let state = builder.build();
    let _entered = state.enter();

    let json = state
        .import(canonical.as_path())
        .and_then(|value| value.manifest(JsonFormat::minify()))
        .map_err(|e| names.error(&e))?;
    serde_json::from_str(&json).map_err(|e| JsonnetError::Unlocated {
        file: given,
        message: format!("the evaluated Jsonnet is not JSON: {e}"),
    })
}

/// How files are named in errors: the definition as the caller named it, a
/// file beside or below it by its path from there, any other by its own path.
struct Names {
    given: PathBuf,
    canonical: PathBuf,
    dir: PathBuf,
}

impl Names {
    fn name(&self, path: Option<&Path>) -> String {
        let Some(path) = path else {
            return self.given.display().to_string();
        };
        if path == self.canonical {
            return self.given.display().to_string();
        }
        match path.strip_prefix(&self.dir) {
            Ok(rest) => self
                .given
                .parent()
                .unwrap_or(Path::new(""))
                .join(rest)
                .display()
                .to_string(),
            Err(_) => path.display().to_string(),
        }
    }

    fn at(&self, span: &Span) -> (String, usize, usize) {
        let (line, column) = line_column(span.0.code(), span.1 as usize);
        (self.name(span.0.source_path().path()), line, column)
    }

    fn error(&self, e: &Error) -> JsonnetError {
        let kind = e.error();
        match kind {
            ErrorKind::ImportSyntaxError { error, .. } => {
                let (file, line, column) = self.at(&error.location);
                return JsonnetError::Syntax {
                    file,
                    line,
                    column,
                    message: format!("not Jsonnet: {}", error.message),
                };
            }
            ErrorKind::StaticAnalysisError(diagnostics) => {
                if let Some(span) = diagnostics.iter().find_map(|d| d.span.as_ref()) {
                    let (file, line, column) = self.at(span);
                    let messages: Vec<&str> =
                        diagnostics.iter().map(|d| d.message.as_str()).collect();
                    return JsonnetError::Syntax {
                        file,
                        line,
                        column,
                        message: messages.join("; "),
                    };
                }
            }
            _ => {}
        }
        let message = match kind {
            ErrorKind::RuntimeError(m) => m.to_string(),
            ErrorKind::OnlyFunctionsCanBeCalledGot(t) if t.to_string() == "null" => format!(
                "{kind} (std.native gives null for a function convert does not have: it has must_env and env)"
            ),
            _ => kind.to_string(),
        };
        if let Some(span) = e.trace().0.iter().find_map(|f| f.location.as_ref()) {
            let (file, line, column) = self.at(span);
            return JsonnetError::Evaluation {
                file,
                line,
                column,
                message,
            };
        }
        let file = match kind {
            ErrorKind::ImportFileNotFound(from, _) => self.name(from.path()),
            _ => self.given.display().to_string(),
        };
        let context: Vec<&str> = e.trace().0.iter().map(|f| f.desc.as_str()).collect();
        JsonnetError::Unlocated {
            file,
            message: if context.is_empty() {
                message
            } else {
                format!("{message} ({})", context.join(", "))
            },
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(code: &str, offset: usize) -> (usize, usize) {
    let (mut line, mut column) = (1, 1);
    for (i, c) in code.char_indices() {
        if i >= offset {
            break;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("writing a test file");
        }
        dir
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const NATIVES: &str = "local must_env = std.native('must_env');\n\
                           local env = std.native('env');\n";

    #[test]
    fn must_env_and_env_read_the_map_passed() {
        let dir = project(&[(
            "td.jsonnet",
            &format!(
                "{NATIVES}{{\n  image: 'shop:' + must_env('IMAGE_TAG'),\n  \
                 stage: env('STAGE', 'staging'),\n  region: env('REGION', 'x'),\n  \
                 cpu: 256 * 2,\n  tags: [k for k in std.objectFields({{ b: 1, a: 2 }})],\n}}\n"
            ),
        )]);
        let value = evaluate(
            &dir.path().join("td.jsonnet"),
            &vars(&[("IMAGE_TAG", "v7"), ("REGION", "ap-northeast-1")]),
        )
        .expect("evaluates");
        assert_eq!(
            value,
            serde_json::json!({
                "image": "shop:v7",
                "stage": "staging",
                "region": "ap-northeast-1",
                "cpu": 512,
                "tags": ["a", "b"],
            })
        );
    }

    #[test]
    fn a_missing_must_env_variable_is_an_error_at_the_call() {
        let dir = project(&[(
            "td.jsonnet",
            &format!("{NATIVES}{{\n  family: 'shop',\n  image: must_env('IMAGE_TAG'),\n}}\n"),
        )]);
        let path = dir.path().join("td.jsonnet");
        let e = evaluate(&path, &vars(&[("OTHER", "1")])).expect_err("must_env fails");
        assert!(matches!(e, JsonnetError::Evaluation { .. }), "{e:?}");
        assert_eq!(e.file(), path.display().to_string());
        // Line 5 (after the two `local`s, `{` and `family`): `  image: must_env(`,
        // the column the call's opening parenthesis.
        assert_eq!(e.position(), Some((5, 18)), "{e}");
        assert_eq!(
            e.message(),
            "must_env: environment variable IMAGE_TAG is not set"
        );
    }

    #[test]
    fn env_with_no_variable_gives_its_default_and_needs_one() {
        let dir = project(&[
            ("ok.jsonnet", "std.native('env')('UNSET', 'fallback')"),
            ("bad.jsonnet", "std.native('env')('UNSET')"),
        ]);
        let ok = evaluate(&dir.path().join("ok.jsonnet"), &BTreeMap::new()).expect("evaluates");
        assert_eq!(ok, Value::String("fallback".into()));
        // As in ecspresso, env takes both a name and a default.
        let e =
            evaluate(&dir.path().join("bad.jsonnet"), &BTreeMap::new()).expect_err("no default");
        assert!(e.message().contains("default"), "{e}");
    }

    #[test]
    fn an_import_is_resolved_beside_the_importing_file() {
        let dir = project(&[
            (
                "base.libsonnet",
                "{ family: 'shop', cpu: '256', image(tag):: 'shop:' + tag }",
            ),
            (
                "td.jsonnet",
                "local base = import 'base.libsonnet';\n\
                 base { cpu: '512', container: base.image(std.native('must_env')('TAG')) }",
            ),
        ]);
        let value =
            evaluate(&dir.path().join("td.jsonnet"), &vars(&[("TAG", "v1")])).expect("evaluates");
        assert_eq!(
            value,
            serde_json::json!({ "family": "shop", "cpu": "512", "container": "shop:v1" })
        );
    }

    #[test]
    fn a_syntax_error_is_at_its_line_and_column() {
        let dir = project(&[("td.jsonnet", "local x = 1;\n{\n  a: x +,\n}\n")]);
        let path = dir.path().join("td.jsonnet");
        let e = evaluate(&path, &BTreeMap::new()).expect_err("not Jsonnet");
        assert!(matches!(e, JsonnetError::Syntax { .. }), "{e:?}");
        assert_eq!(e.file(), path.display().to_string());
        assert_eq!(e.position(), Some((3, 9)), "{e}");
        assert!(e.message().starts_with("not Jsonnet: "), "{e}");
    }

    #[test]
    fn an_error_in_an_imported_file_names_that_file() {
        let dir = project(&[
            (
                "base.libsonnet",
                "{\n  cpu: '256',\n  memory: error 'no memory',\n}\n",
            ),
            (
                "td.jsonnet",
                "(import 'base.libsonnet') + { family: 'shop' }\n",
            ),
        ]);
        let e = evaluate(&dir.path().join("td.jsonnet"), &BTreeMap::new()).expect_err("error");
        assert_eq!(
            e.file(),
            dir.path().join("base.libsonnet").display().to_string()
        );
        assert_eq!(e.position(), Some((3, 11)), "{e}");
        assert_eq!(e.message(), "no memory");
    }

    #[test]
    fn an_undefined_name_and_a_missing_import_are_errors_in_their_file() {
        let dir = project(&[
            ("undefined.jsonnet", "{\n  a: nothing,\n}\n"),
            ("gone.jsonnet", "import 'gone.libsonnet'\n"),
        ]);
        let e = evaluate(&dir.path().join("undefined.jsonnet"), &BTreeMap::new())
            .expect_err("undefined");
        assert_eq!(e.position(), Some((2, 6)), "{e}");
        assert!(e.message().contains("nothing"), "{e}");
        let path = dir.path().join("gone.jsonnet");
        let e = evaluate(&path, &BTreeMap::new()).expect_err("missing import");
        assert_eq!(e.file(), path.display().to_string());
        assert!(e.message().contains("gone.libsonnet"), "{e}");
    }

    #[test]
    fn a_native_convert_does_not_have_says_so() {
        let dir = project(&[("td.jsonnet", "{ a: std.native('tfstate')('x') }")]);
        let e = evaluate(&dir.path().join("td.jsonnet"), &BTreeMap::new()).expect_err("null call");
        assert!(e.message().contains("must_env and env"), "{e}");
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let e =
            evaluate(Path::new("/nonexistent/td.jsonnet"), &BTreeMap::new()).expect_err("no file");
        assert!(matches!(e, JsonnetError::Read { .. }), "{e:?}");
        assert_eq!(e.file(), "/nonexistent/td.jsonnet");
    }

    #[test]
    fn line_column_counts_characters_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é\nx", 3), (2, 1));
        assert_eq!(line_column("ab", 99), (1, 3));
    }
}
