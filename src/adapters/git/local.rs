//! `load_dir`: manifests from the local filesystem (for `ecsync validate`),
//! chosen by the same rules as the Git source.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::tree::{is_hidden, is_manifest_name};
use super::{
    MAX_MANIFEST_BYTES, MAX_MANIFEST_FILES, MAX_MANIFEST_TOTAL_BYTES, ManifestFile, SourceError,
};
use crate::core::manifest::overlay;

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
            contents: contents.into(),
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
            contents: contents.into(),
        });
    }
    Ok(files)
}

/// `load_dir`, and what overlays among those files reach, resolved on disk
/// as the Git source resolves them in a tree: inside the repository (the
/// enclosing Git work tree, else the current directory), never through a
/// symbolic link.
pub fn load_dir_tree(path: &Path) -> Result<(Vec<ManifestFile>, overlay::Tree), SourceError> {
    let files = load_dir(path)?;
    let mut tree = overlay::Tree::default();
    if !files
        .iter()
        .any(|f| f.contents.contains(overlay::KIND_OVERLAY))
    {
        return Ok((files, tree));
    }
    let root = repository_root(path)?;
    tree.files = files
        .iter()
        .map(|f| (f.path.clone(), f.contents.to_string()))
        .collect();
    let mut pending: Vec<String> = tree.files.keys().cloned().collect();
    while let Some(file) = pending.pop() {
        for r in overlay::references(&tree.files[&file]) {
            let key = (file.clone(), r);
            if tree.resolved.contains_key(&key) {
                continue;
            }
            let (found, read) = resolve(&root, &key.0, &key.1)?;
            for f in read {
                if let std::collections::btree_map::Entry::Vacant(slot) =
                    tree.files.entry(f.path.clone())
                {
                    pending.push(f.path);
                    slot.insert(f.contents.to_string());
                }
            }
            if tree.files.len() > MAX_MANIFEST_FILES {
                return Err(SourceError::TooManyFiles {
                    repo: None,
                    count: tree.files.len(),
                    limit: MAX_MANIFEST_FILES,
                });
            }
            tree.resolved.insert(key, found);
        }
    }
    Ok((files, tree))
}

fn repository_root(path: &Path) -> Result<PathBuf, SourceError> {
    let start = fs::canonicalize(path).map_err(|e| io_err(path, e))?;
    if let Some(top) = start.ancestors().find(|a| a.join(".git").exists()) {
        return Ok(top.to_path_buf());
    }
    let cwd = std::env::current_dir()
        .and_then(fs::canonicalize)
        .map_err(|e| io_err(Path::new("."), e))?;
    Ok(if start.starts_with(&cwd) {
        cwd
    } else if start.is_dir() {
        start
    } else {
        start.parent().map_or(start.clone(), Path::to_path_buf)
    })
}

/// `a/b/../c` → `a/c`, keeping the `..` a relative path starts with.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn resolve(
    root: &Path,
    from: &str,
    relative: &str,
) -> Result<(overlay::Resolved, Vec<ManifestFile>), SourceError> {
    use overlay::Resolved;
    if Path::new(relative).is_absolute() {
        return Ok((Resolved::Outside, Vec::new()));
    }
    let joined = lexical(
        &Path::new(from)
            .parent()
            .unwrap_or(Path::new(""))
            .join(relative),
    );
    let joined = if joined.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        joined
    };
    // Where the path would lead, from its deepest part that exists: a path
    // out of the repository is refused whether or not it is there.
    let inside = joined
        .ancestors()
        .find_map(|a| {
            fs::canonicalize(if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            })
            .ok()
        })
        .is_some_and(|real| real.starts_with(root));
    if !inside {
        return Ok((Resolved::Outside, Vec::new()));
    }
    let Ok(real) = fs::canonicalize(&joined) else {
        return Ok((Resolved::Missing, Vec::new()));
    };
    if !real.starts_with(root) {
        return Ok((Resolved::Outside, Vec::new()));
    }
    // A link anywhere below the root, on the way or at the end: the Git
    // source cannot follow one, so neither does validation.
    for prefix in joined.ancestors() {
        let inside = fs::canonicalize(prefix.parent().unwrap_or(Path::new(".")))
            .is_ok_and(|p| p.starts_with(root));
        let linked = fs::symlink_metadata(prefix).is_ok_and(|m| m.file_type().is_symlink());
        if inside && linked && !prefix.as_os_str().is_empty() {
            return Ok((Resolved::Symlink(prefix.display().to_string()), Vec::new()));
        }
    }
    if real.is_file()
        && !is_manifest_name(
            joined
                .file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        )
    {
        return Ok((Resolved::Missing, Vec::new()));
    }
    let files = load_dir(&joined)?;
    if files.is_empty() {
        return Ok((Resolved::Missing, Vec::new()));
    }
    let paths = files.iter().map(|f| f.path.clone()).collect();
    Ok((Resolved::Files(paths), files))
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
