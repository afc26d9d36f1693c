//! Pure parsing of `git ls-tree` / `git cat-file --batch` output and the rules
//! for which files are manifests (shared with `load_dir`).

/// One `git ls-tree -r -z -l` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeEntry {
    pub mode: String,
    pub kind: String,
    pub oid: String,
    pub size: Option<u64>,
    pub path: Vec<u8>,
}

/// `<mode> SP <type> SP <object> SP+ <size> TAB <path> NUL`
pub(crate) fn parse_ls_tree(out: &[u8]) -> Result<Vec<TreeEntry>, String> {
    let mut entries = Vec::new();
    for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let tab = record.iter().position(|b| *b == b'\t').ok_or_else(|| {
            format!(
                "unexpected ls-tree record {:?}",
                String::from_utf8_lossy(record)
            )
        })?;
        let (meta, path) = (&record[..tab], &record[tab + 1..]);
        let meta =
            std::str::from_utf8(meta).map_err(|_| "ls-tree metadata is not UTF-8".to_owned())?;
        let mut fields = meta.split_ascii_whitespace();
        let (Some(mode), Some(kind), Some(oid), Some(size), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(format!("unexpected ls-tree record {meta:?}"));
        };
        entries.push(TreeEntry {
            mode: mode.to_owned(),
            kind: kind.to_owned(),
            oid: oid.to_owned(),
            size: size.parse().ok(),
            path: path.to_vec(),
        });
    }
    Ok(entries)
}

/// One path `git diff-tree -r -z --no-renames` reports between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub path: Vec<u8>,
    /// What is at the path now (no size: diff-tree does not say); `None`
    /// when it was deleted.
    pub now: Option<TreeEntry>,
}

/// `:<old mode> <new mode> <old oid> <new oid> <status> NUL <path> NUL`, repeated.
pub(crate) fn parse_diff_tree(out: &[u8]) -> Result<Vec<Change>, String> {
    let mut changes = Vec::new();
    let mut fields = out.split(|b| *b == 0);
    while let Some(meta) = fields.next() {
        if meta.is_empty() {
            continue;
        }
        let bad = || {
            format!(
                "unexpected diff-tree record {:?}",
                String::from_utf8_lossy(meta)
            )
        };
        let meta = std::str::from_utf8(meta).map_err(|_| bad())?;
        let (Some(_), Some(mode), Some(_), Some(oid), Some(status), None) = ({
            let mut f = meta.strip_prefix(':').ok_or_else(bad)?.split(' ');
            (f.next(), f.next(), f.next(), f.next(), f.next(), f.next())
        }) else {
            return Err(bad());
        };
        let path = fields.next().filter(|p| !p.is_empty()).ok_or_else(bad)?;
        let now = match status {
            "D" => None,
            "A" | "M" | "T" => Some(TreeEntry {
                mode: mode.to_owned(),
                kind: kind_of_mode(mode).to_owned(),
                oid: oid.to_owned(),
                size: None,
                path: path.to_vec(),
            }),
            _ => return Err(bad()),
        };
        changes.push(Change {
            path: path.to_vec(),
            now,
        });
    }
    Ok(changes)
}

/// The object type a tree entry's mode stands for.
fn kind_of_mode(mode: &str) -> &'static str {
    match mode {
        "160000" => "commit",
        "040000" => "tree",
        _ => "blob",
    }
}

/// `*.yaml` / `*.yml`, any case, with a name before the dot.
pub(crate) fn is_manifest_name(name: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    (lower.ends_with(b".yaml") && lower.len() > 5) || (lower.ends_with(b".yml") && lower.len() > 4)
}

/// Hidden entries (`.git`, `.github/workflows/*.yml`, `.pre-commit-config.yaml`)
/// are tool configuration, never manifests.
pub(crate) fn is_hidden(name: &[u8]) -> bool {
    name.first() == Some(&b'.')
}

pub(crate) enum Selection<'a> {
    /// Nothing at all lives at the path.
    Missing,
    Files(Vec<&'a TreeEntry>),
}

/// Picks the manifests below `base` ("" = the root). A `base` naming a file
/// selects that file if it is a manifest.
pub(crate) fn select<'a>(entries: &'a [TreeEntry], base: &str) -> Selection<'a> {
    let base = base.as_bytes();
    let mut found_any = false;
    let mut files = Vec::new();
    for e in entries {
        let rel: &[u8] = if base.is_empty() {
            &e.path
        } else if e.path == base {
            found_any = true;
            let name = e.path.rsplit(|b| *b == b'/').next().unwrap_or(&e.path);
            if is_regular_blob(e) && is_manifest_name(name) {
                files.push(e);
            }
            continue;
        } else if e.path.len() > base.len()
            && e.path.starts_with(base)
            && e.path[base.len()] == b'/'
        {
            &e.path[base.len() + 1..]
        } else {
            continue;
        };
        found_any = true;
        let mut parts = rel.split(|b| *b == b'/');
        let name = parts.next_back().unwrap_or(rel);
        if parts.any(is_hidden) || is_hidden(name) {
            continue;
        }
        if is_regular_blob(e) && is_manifest_name(name) {
            files.push(e);
        }
    }
    if found_any {
        Selection::Files(files)
    } else {
        Selection::Missing
    }
}

/// The whole tree as overlays resolve resources in it.
pub(crate) fn listing(entries: &[TreeEntry]) -> crate::core::manifest::overlay::Listing {
    let mut listing = crate::core::manifest::overlay::Listing::default();
    for e in entries {
        let path = String::from_utf8_lossy(&e.path).into_owned();
        let name = e.path.rsplit(|b| *b == b'/').next().unwrap_or(&e.path);
        if e.mode == "120000" {
            listing.symlinks.insert(path);
        } else if is_regular_blob(e) && is_manifest_name(name) {
            listing.manifests.insert(path);
        }
    }
    listing
}

/// Symlinks are blobs holding the link target and submodules are commits:
/// neither has manifest contents in this tree.
fn is_regular_blob(e: &TreeEntry) -> bool {
    e.kind == "blob" && e.mode != "120000"
}

/// Splits `git cat-file --batch` output for the requested objects, in order.
pub(crate) fn parse_batch<'a>(mut out: &'a [u8], oids: &[&str]) -> Result<Vec<&'a [u8]>, String> {
    let mut contents = Vec::with_capacity(oids.len());
    for oid in oids {
        let nl = out
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| format!("cat-file output ended before {oid}"))?;
        let header = String::from_utf8_lossy(&out[..nl]).into_owned();
        let mut fields = header.split(' ');
        let (Some(got), Some(kind), Some(size), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("cat-file could not read {oid}: {header}"));
        };
        if got != *oid || kind != "blob" {
            return Err(format!("cat-file returned {header:?} for {oid}"));
        }
        let size: usize = size
            .parse()
            .map_err(|_| format!("cat-file returned a bad size in {header:?}"))?;
        let start = nl + 1;
        let end = start + size;
        if out.len() < end + 1 || out[end] != b'\n' {
            return Err(format!("cat-file output for {oid} is truncated"));
        }
        contents.push(&out[start..end]);
        out = &out[end + 1..];
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mode: &str, kind: &str, path: &str) -> TreeEntry {
        TreeEntry {
            mode: mode.to_owned(),
            kind: kind.to_owned(),
            oid: format!("oid-{path}"),
            size: Some(1),
            path: path.as_bytes().to_vec(),
        }
    }

    fn selected(entries: &[TreeEntry], base: &str) -> Option<Vec<String>> {
        match select(entries, base) {
            Selection::Missing => None,
            Selection::Files(f) => Some(
                f.iter()
                    .map(|e| String::from_utf8_lossy(&e.path).into_owned())
                    .collect(),
            ),
        }
    }

    #[test]
    fn parses_ls_tree_records() {
        let out = b"100644 blob aaaa     123\tm/web.yaml\x00160000 commit bbbb       -\tsub\x00";
        let e = parse_ls_tree(out).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].size, Some(123));
        assert_eq!(e[0].path, b"m/web.yaml");
        assert_eq!(e[1].kind, "commit");
        assert_eq!(e[1].size, None);
        assert!(parse_ls_tree(b"garbage\x00").is_err());
    }

    #[test]
    fn paths_with_tabs_and_spaces_survive() {
        let out = b"100644 blob aaaa 1\tdir/a b\tc.yaml\x00";
        let e = parse_ls_tree(out).unwrap();
        assert_eq!(e[0].path, b"dir/a b\tc.yaml");
    }

    #[test]
    fn manifest_names() {
        for n in ["a.yaml", "a.yml", "A.YAML", "x.y.Yml"] {
            assert!(is_manifest_name(n.as_bytes()), "{n}");
        }
        for n in [".yaml", "yaml", "a.json", "a.yaml.bak", "a.ya"] {
            assert!(!is_manifest_name(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn select_filters_by_base_hidden_kind_and_extension() {
        let entries = vec![
            entry("100644", "blob", ".github/workflows/ci.yml"),
            entry("100644", "blob", ".pre-commit-config.yaml"),
            entry("100644", "blob", "README.md"),
            entry("100644", "blob", "manifests/web.yaml"),
            entry("100755", "blob", "manifests/nested/deep/api.yml"),
            entry("120000", "blob", "manifests/link.yaml"),
            entry("160000", "commit", "manifests/sub.yaml"),
            entry("100644", "blob", "manifests/.hidden/x.yaml"),
            entry("100644", "blob", "manifests-old/web.yaml"),
        ];
        assert_eq!(
            selected(&entries, "").unwrap(),
            [
                "manifests/web.yaml",
                "manifests/nested/deep/api.yml",
                "manifests-old/web.yaml"
            ]
        );
        assert_eq!(
            selected(&entries, "manifests").unwrap(),
            ["manifests/web.yaml", "manifests/nested/deep/api.yml"]
        );
        // Hidden only counts below the configured path.
        assert_eq!(
            selected(&entries, ".github").unwrap(),
            [".github/workflows/ci.yml"]
        );
        assert_eq!(
            selected(&entries, "manifests/web.yaml").unwrap(),
            ["manifests/web.yaml"]
        );
        assert_eq!(
            selected(&entries, "README.md").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(selected(&entries, "manifest"), None);
        assert_eq!(selected(&entries, "nope"), None);
    }

    #[test]
    fn parses_diff_tree_records() {
        let out = b":100644 100644 aaaa bbbb M\x00m/web.yaml\x00:000000 120000 0000 cccc A\x00m/a b.yml\x00:100644 000000 dddd 0000 D\x00m/gone.yaml\x00:000000 160000 0000 eeee A\x00sub\x00";
        let c = parse_diff_tree(out).unwrap();
        assert_eq!(c.len(), 4);
        let now = c[0].now.as_ref().unwrap();
        assert_eq!((now.oid.as_str(), now.kind.as_str()), ("bbbb", "blob"));
        assert_eq!(c[1].path, b"m/a b.yml");
        assert_eq!(c[1].now.as_ref().unwrap().mode, "120000");
        assert_eq!(c[2].now, None);
        assert_eq!(c[3].now.as_ref().unwrap().kind, "commit");
        assert!(parse_diff_tree(b"").unwrap().is_empty());
        assert!(parse_diff_tree(b":100644 100644 a b R100\x00x\x00").is_err());
        assert!(parse_diff_tree(b":100644 100644 a b M\x00").is_err());
        assert!(parse_diff_tree(b"100644 blob aaaa 1\tx\x00").is_err());
    }

    #[test]
    fn batch_output_is_split_per_object() {
        let out = b"aa blob 3\nabc\nbb blob 0\n\n";
        let parts = parse_batch(out, &["aa", "bb"]).unwrap();
        assert_eq!(parts, [&b"abc"[..], &b""[..]]);
        assert!(parse_batch(b"aa missing\n", &["aa"]).is_err());
        assert!(parse_batch(b"aa blob 9\nabc\n", &["aa"]).is_err());
        assert!(parse_batch(b"zz blob 3\nabc\n", &["aa"]).is_err());
    }
}
