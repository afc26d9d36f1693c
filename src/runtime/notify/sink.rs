//! Where events go, and what each sink's request looks like.

use hmac::{Hmac, KeyInit, Mac};
use hyper::Uri;
use sha2::Sha256;

use super::{NotifyConfig, NotifyError, slack};
use crate::core::events::Event;

/// Signs generic webhook bodies: `sha256=<hex HMAC-SHA256 of the body>`, the
/// scheme GitHub uses, so receivers can reuse their verification code.
pub const SIGNATURE_HEADER: &str = "x-ecsync-signature-256";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    Webhook,
    Slack,
}

impl SinkKind {
    /// The `sink` label of `ecsync_notifications_total`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Slack => "slack",
        }
    }
}

pub(super) struct Sink {
    pub kind: SinkKind,
    /// For logs: `webhook #1 (host:port)` or `slack`, never a path or query.
    pub name: String,
    pub uri: Uri,
    signer: Option<Hmac<Sha256>>,
}

/// What to send.
pub(super) struct Request {
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Sink {
    pub fn all(cfg: &NotifyConfig) -> Result<Vec<Sink>, NotifyError> {
        let signer = match &cfg.secret {
            Some(s) if s.is_empty() => return Err(NotifyError::Secret("empty")),
            Some(s) => Some(
                Hmac::<Sha256>::new_from_slice(s).map_err(|_| NotifyError::Secret("unusable"))?,
            ),
            None => None,
        };
        let mut out = Vec::new();
        for (i, url) in cfg.webhooks.iter().enumerate() {
            let which = format!("--notify-webhook-url #{}", i + 1);
            let uri = parse(url, &which)?;
            let host = uri.authority().map(|a| a.host()).unwrap_or_default();
            let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
            out.push(Sink {
                kind: SinkKind::Webhook,
                name: format!("webhook #{} ({host}{port})", i + 1),
                uri,
                signer: signer.clone(),
            });
        }
        if let Some(url) = &cfg.slack {
            out.push(Sink {
                kind: SinkKind::Slack,
                name: "slack".into(),
                uri: parse(url.expose(), "--notify-slack-url-file")?,
                // The URL is Slack's credential; it checks no signature.
                signer: None,
            });
        }
        Ok(out)
    }

    pub fn request(&self, event: &Event) -> Request {
        let body = match self.kind {
            SinkKind::Webhook => serde_json::to_vec(event),
            SinkKind::Slack => serde_json::to_vec(&slack::message(event)),
        }
        // Serialising maps of strings and numbers cannot fail; an empty body
        // would be refused by the receiver and counted as failed.
        .unwrap_or_default();
        let mut headers = vec![
            ("content-type", "application/json".to_string()),
            (
                "user-agent",
                concat!("ecsync/", env!("CARGO_PKG_VERSION")).to_string(),
            ),
        ];
        if self.kind == SinkKind::Webhook {
            headers.push(("x-ecsync-event", event.event.as_str().to_string()));
        }
        if let Some(mac) = &self.signer {
            headers.push((SIGNATURE_HEADER, signature(mac.clone(), &body)));
        }
        Request { body, headers }
    }
}

/// The `X-Ecsync-Signature-256` value of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> Option<String> {
    let mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    Some(signature(mac, body))
}

fn signature(mut mac: Hmac<Sha256>, body: &[u8]) -> String {
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn parse(url: &str, which: &str) -> Result<Uri, NotifyError> {
    let bad = |reason: &str| NotifyError::Url {
        which: which.to_string(),
        reason: reason.to_string(),
    };
    let url = url.trim();
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("http" | "https")) {
        return Err(bad("the URL must start with http:// or https://"));
    }
    let uri: Uri = url.parse().map_err(|_| bad("not a valid URL"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("the URL has no host"));
    }
    Ok(uri)
}
