//! The layering of DESIGN §9, checked on the source: `src/core` is pure and
//! imports neither layer above it; `src/adapters` never imports the runtime.
//! Comments are not code: a doc line may name what a module must not do.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `(file, line number, line)` under `dir` that contains one of
/// `forbidden`, comments left out.
fn offenders(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root().join(dir), &mut files);
    assert!(!files.is_empty(), "no Rust files under {dir}");
    let mut found = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("a readable source file");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if let Some(word) = forbidden.iter().find(|w| code.contains(*w)) {
                let rel = file.strip_prefix(root()).unwrap_or(&file).display();
                found.push(format!("{rel}:{}: {word}: {}", n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn core_is_pure() {
    let found = offenders(
        "src/core",
        &[
            "tokio",
            "aws_sdk_",
            "aws_smithy",
            "aws_config",
            "SystemTime::now",
            "Instant::now",
            "std::fs",
            "std::net",
            "std::process",
            "std::env",
            "crate::adapters",
            "crate::runtime",
        ],
    );
    assert!(
        found.is_empty(),
        "src/core must do no I/O, read no clock and import no other layer (DESIGN §9):\n{}",
        found.join("\n")
    );
}

#[test]
fn adapters_never_import_the_runtime() {
    let found = offenders("src/adapters", &["crate::runtime"]);
    assert!(
        found.is_empty(),
        "src/adapters must not import the runtime, its status or its metrics (DESIGN §9):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_library_uses_no_binary_edge_errors() {
    // anyhow belongs to the binary (src/main.rs, src/cli); the library's errors are typed.
    let mut found = offenders("src/core", &["anyhow"]);
    found.extend(offenders("src/adapters", &["anyhow"]));
    found.extend(offenders("src/runtime", &["anyhow"]));
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_checker_sees_a_violation() {
    // The scan itself must be able to fail: it finds what this file forbids.
    let found = offenders("tests", &["Instant::now"]);
    assert!(
        found.iter().any(|l| l.contains("layout.rs")),
        "the scan finds nothing even in its own file: {found:?}"
    );
}
