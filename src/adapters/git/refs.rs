//! Refs and paths as the user writes them, validated before they reach a git argument.

/// What `git_ref` asks for, validated before it reaches a git argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum WantedRef {
    RemoteHead,
    /// A full name such as `refs/heads/main`.
    Full(String),
    /// A branch, else a tag, else an (abbreviated) sha.
    Short(String),
}

impl WantedRef {
    pub(super) fn parse(git_ref: Option<&str>) -> Result<Self, &'static str> {
        let Some(r) = git_ref
            .map(str::trim)
            .filter(|r| !r.is_empty() && *r != "HEAD")
        else {
            return Ok(WantedRef::RemoteHead);
        };
        // Keeps option injection (`-x`) and rev-parse syntax (`main~1`,
        // `a..b`, `x@{1}`) out: a ref names exactly one thing.
        if r.starts_with('-') || r.starts_with('/') || r.ends_with('/') || r.ends_with('.') {
            return Err("not a valid ref name");
        }
        if r.contains("..") || r.contains("@{") || r.contains("//") || r.ends_with(".lock") {
            return Err("not a valid ref name");
        }
        if r.chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
        {
            return Err("not a valid ref name");
        }
        if r.starts_with("refs/") {
            Ok(WantedRef::Full(r.to_owned()))
        } else {
            Ok(WantedRef::Short(r.to_owned()))
        }
    }

    pub(super) fn display(&self) -> &str {
        match self {
            WantedRef::RemoteHead => "HEAD",
            WantedRef::Full(r) | WantedRef::Short(r) => r,
        }
    }
}

pub(super) fn is_hex_sha(s: &str, min: usize) -> bool {
    (min..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// "", ".", "./a/b/", "/a//b" → "", "", "a/b", "a/b".
pub(super) fn normalize_path(path: Option<&str>) -> Result<String, &'static str> {
    let mut parts = Vec::new();
    for part in path.unwrap_or("").trim().split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("must not contain '..'"),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}
