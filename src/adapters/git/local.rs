//! `load_dir`: manifests from the local filesystem (for `ecsync validate`),
//! chosen by the same rules as the Git source.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::tree::{is_hidden, is_manifest_name};
use super::{
    MAX_MANIFEST_BYTES, MAX_MANIFEST_FILES, MAX_MANIFEST_TOTAL_BYTES, ManifestFile, SourceError,
};

pub fn load_dir(path: &Path) -> Result<Vec<ManifestFile>, SourceError> {
    let meta = fs::metadata(path).map_err(|e| io_err(path, e))?;
    if !meta.is_dir() {
        // Named explicitly, so followed even if it is a symlink.
        let name = path
            .file_name()
            .map(|n| n.as_encoded_bytes())
            .unwrap_or_default();
        if !is_manifest_name(name) {
            return Err(SourceError::NotManifest {
                path: path.display().to_string(),
            });
        }
        let display = path_string(path)?;
        let contents = read_limited(path, &display)?;
        return Ok(vec![ManifestFile {
            path: display,
            contents,
        }]);
    }

    let mut found = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| io_err(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&dir, e))?;
            let name = entry.file_name();
            if is_hidden(name.as_encoded_bytes()) {
                continue;
            }
            let child = entry.path();
            let kind = entry.file_type().map_err(|e| io_err(&child, e))?;
            if kind.is_dir() {
                dirs.push(child);
            } else if kind.is_file() && is_manifest_name(name.as_encoded_bytes()) {
                found.push(child);
            } else if kind.is_symlink() && is_manifest_name(name.as_encoded_bytes()) {
                // The Git source cannot follow links, so validating through
                // one would pass files the controller then ignores.
                tracing::warn!(path = %child.display(), "skipping symlinked manifest");
            }
        }
    }
    if found.len() > MAX_MANIFEST_FILES {
        return Err(SourceError::TooManyFiles {
            repo: None,
            count: found.len(),
            limit: MAX_MANIFEST_FILES,
        });
    }
    let mut named = Vec::with_capacity(found.len());
    for file in found {
        named.push((path_string(&file)?, file));
    }
    // By the string, as the Git source sorts: `Path` ordering is per
    // component and puts "a/x" before "a-b/x".
    named.sort();

    let mut total: u64 = 0;
    let mut files = Vec::with_capacity(named.len());
    for (display, file) in named {
        let contents = read_limited(&file, &display)?;
        total += contents.len() as u64;
        if total > MAX_MANIFEST_TOTAL_BYTES {
            return Err(SourceError::TotalTooLarge {
                repo: None,
                limit: MAX_MANIFEST_TOTAL_BYTES,
            });
        }
        files.push(ManifestFile {
            path: display,
            contents,
        });
    }
    Ok(files)
}

/// Reads at most one byte past the limit, so a huge (or growing) file costs
/// no more than that.
fn read_limited(path: &Path, display: &str) -> Result<String, SourceError> {
    let file = fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut buf = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_err(path, e))?;
    if buf.len() as u64 > MAX_MANIFEST_BYTES {
        let size = fs::metadata(path).map_or(buf.len() as u64, |m| m.len());
        return Err(SourceError::FileTooLarge {
            repo: None,
            path: display.to_owned(),
            size,
            limit: MAX_MANIFEST_BYTES,
        });
    }
    String::from_utf8(buf).map_err(|_| SourceError::NotUtf8 {
        repo: None,
        path: display.to_owned(),
    })
}

fn path_string(path: &Path) -> Result<String, SourceError> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| SourceError::NotUtf8 {
            repo: None,
            path: path.display().to_string(),
        })
}

fn io_err(path: &Path, error: std::io::Error) -> SourceError {
    SourceError::Io {
        path: PathBuf::from(path),
        error,
    }
}
