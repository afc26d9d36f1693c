//! The leader lease in DynamoDB: one item per controller id,
//! `{lease, holder, expiresAtMs, token}`. A replica takes the lease with a
//! conditional write that succeeds only when the lease is free or expired, and
//! renews it with a write conditioned on still being the holder. Each takeover
//! increments `token` (the fencing token, logged and shown in `/status`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "lease timings: renew deadline must be shorter than the lease duration, and the retry period shorter than the renew deadline"
    )]
    Timings,
    #[error("the lease call did not finish within the renew deadline")]
    Timeout,
    #[error("DynamoDB {operation}: {message}")]
    Call {
        operation: &'static str,
        message: String,
    },
}

/// One lease item and this replica's name in it.
#[derive(Debug, Clone)]
pub struct Lease {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
    /// The lease's key: one leader per controller id.
    pub name: String,
    /// This replica's identity.
    pub holder: String,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

impl Lease {
    fn key(&self) -> HashMap<String, AttributeValue> {
        HashMap::from([("lease".to_string(), s(&self.name))])
    }

    /// Renew (when holding) or take over (when free or expired), for
    /// `duration` from now. `Ok(Some(token))` when this replica holds the
    /// lease afterwards, `Ok(None)` when another does.
    pub async fn acquire(&self, duration: Duration) -> Result<Option<u64>, LeaseError> {
        let now = now_ms();
        let expires = now + duration.as_millis() as i64;
        let renewed = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key()))
            .update_expression("SET expiresAtMs = :exp")
            .condition_expression("holder = :me")
            .expression_attribute_values(":exp", n(expires))
            .expression_attribute_values(":me", s(&self.holder))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match renewed {
            Ok(out) => return Ok(Some(token_of(out.attributes()))),
            Err(e) if is_condition_failure(&e) => {}
            Err(e) => return Err(call("UpdateItem", e)),
        }
        let taken = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key()))
            .update_expression(
                "SET holder = :me, expiresAtMs = :exp, #token = if_not_exists(#token, :zero) + :one",
            )
            .condition_expression("attribute_not_exists(holder) OR expiresAtMs < :now")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":me", s(&self.holder))
            .expression_attribute_values(":exp", n(expires))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match taken {
            Ok(out) => Ok(Some(token_of(out.attributes()))),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(call("UpdateItem", e)),
        }
    }

    /// Expire the lease now, if this replica still holds it.
    pub async fn release(&self) -> Result<(), LeaseError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key()))
            .update_expression("SET expiresAtMs = :zero")
            .condition_expression("holder = :me")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":me", s(&self.holder))
            .send()
            .await
            .map_err(|e| call("UpdateItem", e))?;
        Ok(())
    }
}

fn token_of(attrs: Option<&HashMap<String, AttributeValue>>) -> u64 {
    attrs
        .and_then(|a| a.get("token"))
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn is_condition_failure<R>(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::update_item::UpdateItemError,
        R,
    >,
) -> bool {
    e.as_service_error()
        .is_some_and(|se| se.is_conditional_check_failed_exception())
}

fn call<E, R>(operation: &'static str, e: aws_sdk_dynamodb::error::SdkError<E, R>) -> LeaseError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    LeaseError::Call {
        operation,
        message: aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
    }
}

/// A holder id unique to this process: host name, pid and a random suffix.
pub fn default_holder() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ecsync".into());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}
