//! EC2 launch templates, for cleaning up after an Auto Scaling fleet: found
//! by the ID or name the group names, and deleted.

use std::collections::BTreeMap;

use super::{AwsError, Clients, call_error};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchTemplate {
    pub id: String,
    pub name: String,
    pub tags: BTreeMap<String, String>,
}

/// The template a group names (`lt-…` is an ID, anything else a name);
/// `Ok(None)`: it does not exist (any more).
pub async fn find(clients: &Clients, id_or_name: &str) -> Result<Option<LaunchTemplate>, AwsError> {
    let req = clients.ec2.describe_launch_templates();
    let req = if id_or_name.starts_with("lt-") {
        req.launch_template_ids(id_or_name)
    } else {
        req.launch_template_names(id_or_name)
    };
    let out = match req.send().await {
        Ok(out) => out,
        Err(e) => {
            let e = call_error("EC2:DescribeLaunchTemplates", e);
            return match e.code() {
                Some(c) if c.contains("NotFound") => Ok(None),
                _ => Err(e),
            };
        }
    };
    Ok(out.launch_templates().first().and_then(|t| {
        Some(LaunchTemplate {
            id: t.launch_template_id()?.to_string(),
            name: t.launch_template_name().unwrap_or_default().to_string(),
            tags: t
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
                .collect(),
        })
    }))
}

/// Deletes every version of the template.
pub async fn delete(clients: &Clients, id: &str) -> Result<(), AwsError> {
    clients
        .ec2
        .delete_launch_template()
        .launch_template_id(id)
        .send()
        .await
        .map_err(|e| call_error("EC2:DeleteLaunchTemplate", e))?;
    Ok(())
}
