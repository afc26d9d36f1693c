//! How credentials reach git: in its environment, and what to scrub from its output.

use super::GitConfig;
use super::repo::{RepoSpec, Transport, base64};

/// Credentials travel in the environment, never in arguments: any local user
/// can read another process's command line.
pub(super) fn git_env(cfg: &GitConfig, spec: &RepoSpec) -> Vec<(String, String)> {
    let mut config: Vec<(String, String)> = Vec::new();
    if spec.transport == Transport::Http {
        let basic = match (&cfg.token, &spec.url_credentials) {
            (Some(token), _) if !token.is_empty() => Some(format!("x-access-token:{token}")),
            (_, Some((user, password))) => Some(format!("{user}:{password}")),
            _ => None,
        };
        if let (Some(basic), Some(origin)) = (basic, &spec.http_origin) {
            // Scoped to this server, so a redirect elsewhere does not carry it.
            config.push((
                format!("http.{origin}.extraHeader"),
                format!("Authorization: Basic {}", base64(basic.as_bytes())),
            ));
        }
    }

    let mut env = Vec::new();
    if !config.is_empty() {
        // Appended after any GIT_CONFIG_* the operator set, not replacing them.
        let base: usize = std::env::var("GIT_CONFIG_COUNT")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let count = base + config.len();
        for (i, (key, value)) in config.into_iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{}", base + i), key));
            env.push((format!("GIT_CONFIG_VALUE_{}", base + i), value));
        }
        env.push(("GIT_CONFIG_COUNT".to_owned(), count.to_string()));
    }
    if let Some(key) = &cfg.ssh_key_file {
        let key = shell_quote(&key.to_string_lossy());
        env.push((
            "GIT_SSH_COMMAND".to_owned(),
            format!(
                "ssh -i {key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new -o BatchMode=yes"
            ),
        ));
    }
    env
}

pub(super) fn secrets(cfg: &GitConfig, spec: &RepoSpec) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(token) = cfg.token.as_ref().filter(|t| !t.is_empty()) {
        out.push(token.clone());
        out.push(base64(format!("x-access-token:{token}").as_bytes()));
    }
    if let Some((user, password)) = &spec.url_credentials {
        out.push(password.clone());
        out.push(base64(format!("{user}:{password}").as_bytes()));
    }
    out
}

/// GIT_SSH_COMMAND goes through `sh -c`.
pub(super) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
