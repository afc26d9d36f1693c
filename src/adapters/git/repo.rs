//! Parsing of the `--repo` value: what git is given, what logs show, and which
//! secrets must be kept out of both.

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Local,
    File,
    Http,
    Ssh,
    Other,
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RepoSpec {
    /// The URL or path handed to git: local paths made absolute (so the cache
    /// key and git's view do not depend on the working directory) and any
    /// password moved out, because process arguments are world-readable.
    pub fetch_url: String,
    /// For logs and error messages: no userinfo at all.
    pub display: String,
    pub transport: Transport,
    /// `user:password` found in an http(s) URL, sent as a header instead.
    pub url_credentials: Option<(String, String)>,
    /// `scheme://host[:port]/`, used to scope the auth header to this server.
    pub http_origin: Option<String>,
}

impl std::fmt::Debug for RepoSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoSpec")
            .field("fetch_url", &self.fetch_url)
            .field("transport", &self.transport)
            .field(
                "url_credentials",
                &self.url_credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl RepoSpec {
    pub fn parse(repo: &str) -> Self {
        if let Some((scheme, rest)) = repo.split_once("://") {
            return parse_url(scheme, rest);
        }
        if is_scp_like(repo) {
            return parse_scp(repo);
        }
        // `absolute` only fails when the working directory is gone; git would
        // then fail on the relative path with a clear message of its own.
        let fetch_url = std::path::absolute(repo)
            .ok()
            .and_then(|p| p.to_str().map(str::to_owned))
            .unwrap_or_else(|| repo.to_owned());
        RepoSpec {
            fetch_url,
            display: repo.to_owned(),
            transport: Transport::Local,
            url_credentials: None,
            http_origin: None,
        }
    }

    /// Directory name of the cached bare clone. Hashes the password-free URL,
    /// so rotating a credential keeps the cache and no secret is derivable
    /// from a directory name.
    pub fn cache_key(&self) -> String {
        let digest = Sha256::digest(self.fetch_url.as_bytes());
        hex::encode(&digest[..8])
    }
}

fn parse_url(scheme: &str, rest: &str) -> RepoSpec {
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let (userinfo, host) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(info) => match info.split_once(':') {
            Some((u, p)) => (Some(u), Some(p)),
            None => (Some(info), None),
        },
        None => (None, None),
    };
    let scheme_lc = scheme.to_ascii_lowercase();
    let transport = match scheme_lc.as_str() {
        "http" | "https" => Transport::Http,
        "ssh" | "git+ssh" | "ssh+git" => Transport::Ssh,
        "file" => Transport::File,
        _ => Transport::Other,
    };
    let display = format!("{scheme}://{host}{path}");
    // A bare user name is not a secret and ssh needs it; a password is moved
    // out of the URL (http) or dropped (ssh never uses one from the URL).
    let fetch_url = match (user, password) {
        (Some(u), None) if !u.is_empty() => format!("{scheme}://{u}@{host}{path}"),
        (Some(u), Some(_)) if transport == Transport::Ssh && !u.is_empty() => {
            format!("{scheme}://{u}@{host}{path}")
        }
        _ => display.clone(),
    };
    let url_credentials = match (transport, user, password) {
        (Transport::Http, Some(u), Some(p)) if !p.is_empty() => {
            Some((percent_decode(u), percent_decode(p)))
        }
        _ => None,
    };
    let http_origin = (transport == Transport::Http).then(|| format!("{scheme_lc}://{host}/"));
    RepoSpec {
        fetch_url,
        display,
        transport,
        url_credentials,
        http_origin,
    }
}

/// git's own rule (`url_is_local_not_ssh`): a colon with no slash before it
/// means `[user@]host:path`.
fn is_scp_like(repo: &str) -> bool {
    match repo.find(':') {
        Some(colon) => !repo[..colon].contains('/'),
        None => false,
    }
}

fn parse_scp(repo: &str) -> RepoSpec {
    let display = match repo.split_once(':') {
        Some((userhost, path)) => {
            let host = userhost.rsplit_once('@').map_or(userhost, |(_, h)| h);
            format!("{host}:{path}")
        }
        None => repo.to_owned(),
    };
    RepoSpec {
        fetch_url: repo.to_owned(),
        display,
        transport: Transport::Ssh,
        url_credentials: None,
        http_origin: None,
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Removes `user[:password]@` from every `scheme://` URL inside free text
/// (git's stderr), whatever the password is.
pub(crate) fn strip_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || matches!(c, '\'' | '"' | '<' | '>'))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => out.push_str(&authority[at + 1..]),
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

pub(crate) fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_password_is_moved_out_of_the_url() {
        let s = RepoSpec::parse("https://bob:p%40ss@git.example.com:8443/org/repo.git");
        assert_eq!(s.transport, Transport::Http);
        assert_eq!(s.fetch_url, "https://git.example.com:8443/org/repo.git");
        assert_eq!(s.display, "https://git.example.com:8443/org/repo.git");
        assert_eq!(
            s.url_credentials,
            Some(("bob".to_owned(), "p@ss".to_owned()))
        );
        assert_eq!(
            s.http_origin.as_deref(),
            Some("https://git.example.com:8443/")
        );
    }

    #[test]
    fn https_user_without_password_is_kept_for_git_but_not_displayed() {
        let s = RepoSpec::parse("https://bob@host/r.git");
        assert_eq!(s.fetch_url, "https://bob@host/r.git");
        assert_eq!(s.display, "https://host/r.git");
        assert_eq!(s.url_credentials, None);
    }

    #[test]
    fn ssh_forms() {
        let s = RepoSpec::parse("git@github.com:org/repo.git");
        assert_eq!(s.transport, Transport::Ssh);
        assert_eq!(s.fetch_url, "git@github.com:org/repo.git");
        assert_eq!(s.display, "github.com:org/repo.git");

        let s = RepoSpec::parse("ssh://git:pw@host:2222/org/repo.git");
        assert_eq!(s.transport, Transport::Ssh);
        assert_eq!(s.fetch_url, "ssh://git@host:2222/org/repo.git");
        assert_eq!(s.display, "ssh://host:2222/org/repo.git");
        assert_eq!(s.url_credentials, None);
    }

    #[test]
    fn local_paths_become_absolute_and_display_as_given() {
        let s = RepoSpec::parse("some/dir:with-colon");
        assert_eq!(s.transport, Transport::Local);
        assert!(s.fetch_url.starts_with('/'), "{}", s.fetch_url);
        assert!(s.fetch_url.ends_with("/some/dir:with-colon"));
        assert_eq!(s.display, "some/dir:with-colon");

        let s = RepoSpec::parse("file:///srv/repo");
        assert_eq!(s.transport, Transport::File);
        assert_eq!(s.fetch_url, "file:///srv/repo");
    }

    #[test]
    fn cache_key_ignores_the_password() {
        let a = RepoSpec::parse("https://u:one@h/r.git").cache_key();
        let b = RepoSpec::parse("https://u:two@h/r.git").cache_key();
        let c = RepoSpec::parse("https://h/other.git").cache_key();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn strip_userinfo_in_text() {
        let t = "fatal: unable to access 'https://x:tok@h/r.git/': 403\nssh://git@h2/p ok";
        assert_eq!(
            strip_userinfo(t),
            "fatal: unable to access 'https://h/r.git/': 403\nssh://h2/p ok"
        );
        assert_eq!(strip_userinfo("no urls here"), "no urls here");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
