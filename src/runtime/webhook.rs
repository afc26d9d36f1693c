//! Verification of `POST /hooks/git` requests (DESIGN §6). Pure: no I/O, no logging.
//!
//! Three schemes are accepted, decided by which header is present (in this order, so a request
//! carrying a bad GitHub signature cannot fall through to a weaker scheme):
//! GitHub `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`, GitLab
//! `X-Gitlab-Token: <secret>`, generic `Authorization: Bearer <secret>`.

use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
const GITHUB_EVENT: &str = "x-github-event";
const GITLAB_TOKEN: &str = "x-gitlab-token";
const GITLAB_EVENT: &str = "x-gitlab-event";

/// The scheme a request authenticated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookAuth {
    GitHub,
    GitLab,
    Bearer,
}

/// Why a request was refused. Carries no secret and no request data, so it is safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error(
        "no webhook credentials (X-Hub-Signature-256, X-Gitlab-Token or Authorization: Bearer)"
    )]
    Missing,
    #[error("malformed {0} header")]
    Malformed(&'static str),
    #[error("{0} credentials do not match")]
    Mismatch(&'static str),
    /// An empty secret would accept `Authorization: Bearer ` from anyone.
    #[error("webhook secret is empty")]
    EmptySecret,
}

/// What a verified request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// GitHub's hook-creation ping.
    Ping,
    /// A push; `git_ref` is the body's `ref` (e.g. `refs/heads/main`) when it could be read.
    Push { git_ref: Option<String> },
    /// Any other event the sender names (e.g. GitHub `issues`), which starts nothing.
    Other(String),
}

/// Checks the request's credentials against `secret`, in constant time.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secret: &[u8],
) -> Result<WebhookAuth, WebhookError> {
    if secret.is_empty() {
        return Err(WebhookError::EmptySecret);
    }
    if let Some(sig) = headers.get(GITHUB_SIGNATURE) {
        const NAME: &str = "X-Hub-Signature-256";
        let sig = sig.to_str().map_err(|_| WebhookError::Malformed(NAME))?;
        let hex_mac = sig
            .trim()
            .strip_prefix("sha256=")
            .ok_or(WebhookError::Malformed(NAME))?;
        let given = hex::decode(hex_mac).map_err(|_| WebhookError::Malformed(NAME))?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).map_err(|_| WebhookError::EmptySecret)?;
        mac.update(body);
        // `verify_slice` compares in constant time and rejects a tag of the wrong length.
        return mac
            .verify_slice(&given)
            .map(|()| WebhookAuth::GitHub)
            .map_err(|_| WebhookError::Mismatch("GitHub signature"));
    }
    if let Some(token) = headers.get(GITLAB_TOKEN) {
        return if bool::from(token.as_bytes().ct_eq(secret)) {
            Ok(WebhookAuth::GitLab)
        } else {
            Err(WebhookError::Mismatch("GitLab token"))
        };
    }
    if let Some(auth) = headers.get(axum::http::header::AUTHORIZATION) {
        const NAME: &str = "Authorization";
        let auth = auth.as_bytes();
        // The auth scheme is case-insensitive (RFC 9110 §11.1).
        let token = match auth.split_at_checked(7) {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case(b"bearer ") => token,
            _ => return Err(WebhookError::Malformed(NAME)),
        };
        return if bool::from(token.trim_ascii().ct_eq(secret)) {
            Ok(WebhookAuth::Bearer)
        } else {
            Err(WebhookError::Mismatch("bearer token"))
        };
    }
    Err(WebhookError::Missing)
}

/// Classifies a (verified) request. Never fails: a body that is not JSON, or has no `ref`, is a
/// push with an unknown ref, because a generic sender need not send a body at all.
pub fn push_ref(headers: &HeaderMap, body: &[u8]) -> PushEvent {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(event) = header(GITHUB_EVENT) {
        return match event {
            "ping" => PushEvent::Ping,
            "push" => PushEvent::Push {
                git_ref: ref_of(body),
            },
            other => PushEvent::Other(other.to_owned()),
        };
    }
    if let Some(event) = header(GITLAB_EVENT) {
        return match event {
            "Push Hook" | "Tag Push Hook" => PushEvent::Push {
                git_ref: ref_of(body),
            },
            other => PushEvent::Other(other.to_owned()),
        };
    }
    PushEvent::Push {
        git_ref: ref_of(body),
    }
}

fn ref_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(rename = "ref")]
        git_ref: Option<String>,
    }
    serde_json::from_slice::<Body>(body)
        .ok()
        .and_then(|b| b.git_ref)
        .filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};

    const SECRET: &[u8] = b"s3cret-value";

    /// (name, headers, body, expected)
    type Case<'a, T> = (&'a str, Vec<(&'a str, &'a str)>, &'a [u8], T);
    const BODY: &[u8] = br#"{"ref":"refs/heads/main","after":"abc"}"#;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn github_sig(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn github_signature_matches_a_published_vector() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let sig = github_sig(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(
            sig,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn verify_table() {
        let good = github_sig(SECRET, BODY);
        let wrong_secret = github_sig(b"other", BODY);
        let truncated = good[..good.len() - 2].to_owned();
        let no_prefix = good.trim_start_matches("sha256=").to_owned();
        let sha1_prefix = good.replacen("sha256=", "sha1=", 1);
        let not_hex = format!("sha256={}", "zz".repeat(32));
        let tampered: &[u8] = br#"{"ref":"refs/heads/evil","after":"abc"}"#;
        let secret = std::str::from_utf8(SECRET).unwrap();
        let bearer = format!("Bearer {secret}");
        let bearer_lower = format!("bearer {secret}");

        use WebhookError::*;
        let cases: Vec<Case<Result<WebhookAuth, WebhookError>>> = vec![
            (
                "github ok",
                vec![("X-Hub-Signature-256", &good)],
                BODY,
                Ok(WebhookAuth::GitHub),
            ),
            (
                "github wrong secret",
                vec![("X-Hub-Signature-256", &wrong_secret)],
                BODY,
                Err(Mismatch("GitHub signature")),
            ),
            (
                "github tampered body",
                vec![("X-Hub-Signature-256", &good)],
                tampered,
                Err(Mismatch("GitHub signature")),
            ),
            (
                "github wrong-length signature",
                vec![("X-Hub-Signature-256", &truncated)],
                BODY,
                Err(Mismatch("GitHub signature")),
            ),
            (
                "github missing prefix",
                vec![("X-Hub-Signature-256", &no_prefix)],
                BODY,
                Err(Malformed("X-Hub-Signature-256")),
            ),
            (
                "github sha1 prefix",
                vec![("X-Hub-Signature-256", &sha1_prefix)],
                BODY,
                Err(Malformed("X-Hub-Signature-256")),
            ),
            (
                "github not hex",
                vec![("X-Hub-Signature-256", &not_hex)],
                BODY,
                Err(Malformed("X-Hub-Signature-256")),
            ),
            (
                "bad github signature does not fall through to a good bearer",
                vec![
                    ("X-Hub-Signature-256", &wrong_secret),
                    ("Authorization", &bearer),
                ],
                BODY,
                Err(Mismatch("GitHub signature")),
            ),
            (
                "gitlab ok",
                vec![("X-Gitlab-Token", secret)],
                BODY,
                Ok(WebhookAuth::GitLab),
            ),
            (
                "gitlab wrong",
                vec![("X-Gitlab-Token", "s3cret-valuE")],
                BODY,
                Err(Mismatch("GitLab token")),
            ),
            (
                "gitlab prefix of secret",
                vec![("X-Gitlab-Token", "s3cret")],
                BODY,
                Err(Mismatch("GitLab token")),
            ),
            (
                "gitlab empty",
                vec![("X-Gitlab-Token", "")],
                BODY,
                Err(Mismatch("GitLab token")),
            ),
            (
                "bearer ok",
                vec![("Authorization", &bearer)],
                b"",
                Ok(WebhookAuth::Bearer),
            ),
            (
                "bearer scheme is case-insensitive",
                vec![("Authorization", &bearer_lower)],
                b"",
                Ok(WebhookAuth::Bearer),
            ),
            (
                "bearer wrong",
                vec![("Authorization", "Bearer nope")],
                b"",
                Err(Mismatch("bearer token")),
            ),
            (
                "bearer empty token",
                vec![("Authorization", "Bearer ")],
                b"",
                Err(Mismatch("bearer token")),
            ),
            (
                "basic auth is not bearer",
                vec![("Authorization", "Basic czNjcmV0LXZhbHVl")],
                b"",
                Err(Malformed("Authorization")),
            ),
            (
                "secret without scheme",
                vec![("Authorization", secret)],
                b"",
                Err(Malformed("Authorization")),
            ),
            ("nothing", vec![], BODY, Err(Missing)),
            (
                "unrelated header",
                vec![("X-Other", secret)],
                BODY,
                Err(Missing),
            ),
        ];
        for (name, hs, body, want) in cases {
            assert_eq!(verify(&headers(&hs), body, SECRET), want, "{name}");
        }
    }

    #[test]
    fn empty_secret_accepts_nothing() {
        let h = headers(&[("Authorization", "Bearer ")]);
        assert_eq!(verify(&h, b"", b""), Err(WebhookError::EmptySecret));
        let h = headers(&[("X-Gitlab-Token", "")]);
        assert_eq!(verify(&h, b"", b""), Err(WebhookError::EmptySecret));
    }

    #[test]
    fn push_ref_table() {
        let push = |r: Option<&str>| PushEvent::Push {
            git_ref: r.map(str::to_owned),
        };
        let cases: Vec<Case<PushEvent>> = vec![
            (
                "github ping",
                vec![("X-GitHub-Event", "ping")],
                br#"{"zen":"x"}"#,
                PushEvent::Ping,
            ),
            (
                "github push",
                vec![("X-GitHub-Event", "push")],
                BODY,
                push(Some("refs/heads/main")),
            ),
            (
                "github push of a tag",
                vec![("X-GitHub-Event", "push")],
                br#"{"ref":"refs/tags/v1.2.0"}"#,
                push(Some("refs/tags/v1.2.0")),
            ),
            (
                "github push, form-encoded body",
                vec![("X-GitHub-Event", "push")],
                b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D",
                push(None),
            ),
            (
                "github other event",
                vec![("X-GitHub-Event", "issues")],
                BODY,
                PushEvent::Other("issues".into()),
            ),
            (
                "gitlab push",
                vec![("X-Gitlab-Event", "Push Hook")],
                BODY,
                push(Some("refs/heads/main")),
            ),
            (
                "gitlab tag push",
                vec![("X-Gitlab-Event", "Tag Push Hook")],
                br#"{"ref":"refs/tags/v1"}"#,
                push(Some("refs/tags/v1")),
            ),
            (
                "gitlab merge request",
                vec![("X-Gitlab-Event", "Merge Request Hook")],
                BODY,
                PushEvent::Other("Merge Request Hook".into()),
            ),
            (
                "bearer with ref",
                vec![],
                BODY,
                push(Some("refs/heads/main")),
            ),
            ("bearer empty body", vec![], b"", push(None)),
            ("bearer non-JSON body", vec![], b"deploy please", push(None)),
            ("bearer JSON without ref", vec![], br#"{"x":1}"#, push(None)),
            (
                "bearer ref not a string",
                vec![],
                br#"{"ref":7}"#,
                push(None),
            ),
            ("bearer empty ref", vec![], br#"{"ref":""}"#, push(None)),
        ];
        for (name, hs, body, want) in cases {
            assert_eq!(push_ref(&headers(&hs), body), want, "{name}");
        }
    }
}
