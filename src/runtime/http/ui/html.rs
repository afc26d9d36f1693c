//! Escaping and links. Everything a page shows that came from a manifest, Git
//! or AWS goes through [`Esc`]; links to objects through [`service_href`] and
//! [`instance_href`], whose path segments are percent-encoded.

use std::fmt::{self, Write};

/// Writes its text HTML-escaped, for element content and quoted attributes.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// One URL path segment: every byte but the unreserved ones percent-encoded,
/// so a name can neither leave its segment nor its attribute.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pub fn service_href(cluster: &str, service: &str) -> String {
    format!("/ui/services/{}/{}", segment(cluster), segment(service))
}

pub fn instance_href(id: &str) -> String {
    format!("/ui/instances/{}", segment(id))
}

/// The first 12 characters of a commit sha, as `git log --oneline` would
/// show it in a large repository.
pub fn short_sha(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}

/// At most `max` characters of `s`, with an ellipsis when cut (the whole
/// text is on the object's own page).
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_five_characters_that_matter() {
        assert_eq!(
            Esc(r#"<a href="x" onclick='y'>&amp;</a>"#).to_string(),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;"
        );
        assert_eq!(Esc("plain, ünïcode").to_string(), "plain, ünïcode");
    }

    #[test]
    fn links_encode_each_segment() {
        assert_eq!(service_href("prod", "web-1"), "/ui/services/prod/web-1");
        assert_eq!(
            service_href("a/b", "\"><x>"),
            "/ui/services/a%2Fb/%22%3E%3Cx%3E"
        );
        assert_eq!(instance_href("i-0abc"), "/ui/instances/i-0abc");
    }

    #[test]
    fn clip_cuts_on_characters() {
        assert_eq!(clip("ééééé", 3), "ééé…");
        assert_eq!(clip("short", 10), "short");
        assert_eq!(short_sha("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_sha("abc"), "abc");
    }
}
