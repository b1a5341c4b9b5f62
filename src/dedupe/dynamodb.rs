//! A [`DedupeStore`] in an Amazon DynamoDB table, shared by every process that uses it.
//!
//! One item per key: `pk` (the key), `state` (`claimed` or `done`), `owner` (who holds a
//! claim), `lease_until` (epoch milliseconds) and `expires_at` (epoch seconds, for the table's
//! time to live). Every transition is a single conditional write, so two workers racing on the
//! same upload cannot both send.
//!
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html>

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::{Claim, DedupeError, DedupeFuture, DedupeStore};
use crate::aws::{self, AwsSetupError};

/// The name in errors and logs.
const NAME: &str = "dynamodb";

const CLAIMED: &str = "claimed";
const DONE: &str = "done";

/// Claim when nobody has the key, when a claim's lease ran out (its holder died), or when the
/// item outlived its retention: DynamoDB deletes expired items only eventually, often days
/// later, so an expired `done` must not keep answering [`Claim::Done`].
const CLAIM_CONDITION: &str = "attribute_not_exists(pk) \
    OR (#state = :claimed AND lease_until < :now_ms) \
    OR expires_at < :now_secs";

/// Release only a claim this store still holds; a claim taken over by another process after
/// our lease ran out is theirs.
const RELEASE_CONDITION: &str = "#state = :claimed AND #owner = :owner";

/// Remembers sent emails in a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
    retention: Duration,
    /// Identifies this store's claims, so it never releases someone else's.
    owner: String,
}

impl DynamoDbStore {
    /// A store over `table` through `client`, keeping done keys for `retention`.
    pub fn new(client: Client, table: impl Into<String>, retention: Duration) -> Self {
        DynamoDbStore {
            client,
            table: table.into(),
            retention,
            owner: owner_id(),
        }
    }

    /// A store whose client comes from the standard AWS chain (region, credentials,
    /// `AWS_ENDPOINT_URL`).
    pub async fn from_env(table: &str, retention: Duration) -> Result<Self, AwsSetupError> {
        let config = aws::sdk_config(NAME, None, "").await?;
        Ok(DynamoDbStore::new(Client::new(&config), table, retention))
    }

    async fn claim_item(&self, key: &str, lease: Duration) -> Result<Claim, DedupeError> {
        let now = epoch();
        let lease_until = now.saturating_add(lease);
        let expires_at = lease_until.saturating_add(self.retention);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("state", s(CLAIMED))
            .item("owner", s(&self.owner))
            .item("lease_until", n(lease_until.as_millis()))
            .item("expires_at", n(expires_at.as_secs().into()))
            .condition_expression(CLAIM_CONDITION)
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":claimed", s(CLAIMED))
            .expression_attribute_values(":now_ms", n(now.as_millis()))
            .expression_attribute_values(":now_secs", n(now.as_secs().into()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::Acquired),
            Err(SdkError::ServiceError(failure)) => match failure.err() {
                PutItemError::ConditionalCheckFailedException(held) => Ok(held_as(held.item())),
                _ => Err(store_error(&self.table, &SdkError::ServiceError(failure))),
            },
            Err(err) => Err(store_error(&self.table, &err)),
        }
    }

    async fn complete_item(&self, key: &str) -> Result<(), DedupeError> {
        let expires_at = epoch().saturating_add(self.retention);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("state", s(DONE))
            .item("expires_at", n(expires_at.as_secs().into()))
            .send()
            .await;
        put.map(drop).map_err(|err| store_error(&self.table, &err))
    }

    async fn release_item(&self, key: &str) -> Result<(), DedupeError> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .condition_expression(RELEASE_CONDITION)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":claimed", s(CLAIMED))
            .expression_attribute_values(":owner", s(&self.owner))
            .send()
            .await;
        match delete {
            Ok(_) => Ok(()),
            // Already done, taken over or gone: there is nothing of ours to give back.
            Err(err) if err.code() == Some("ConditionalCheckFailedException") => Ok(()),
            Err(err) => Err(store_error(&self.table, &err)),
        }
    }
}

impl DedupeStore for DynamoDbStore {
    fn name(&self) -> &'static str {
        NAME
    }

    fn claim<'a>(&'a self, key: &'a str, lease: Duration) -> DedupeFuture<'a, Claim> {
        Box::pin(self.claim_item(key, lease))
    }

    fn complete<'a>(&'a self, key: &'a str) -> DedupeFuture<'a, ()> {
        Box::pin(self.complete_item(key))
    }

    fn release<'a>(&'a self, key: &'a str) -> DedupeFuture<'a, ()> {
        Box::pin(self.release_item(key))
    }
}

/// What a failed claim ran into, from the item DynamoDB returned with the failure.
fn held_as(item: Option<&HashMap<String, AttributeValue>>) -> Claim {
    let state = item.and_then(|item| item.get("state"));
    match state.and_then(|value| value.as_s().ok()) {
        Some(state) if state == DONE => Claim::Done,
        // A live claim, or an item we cannot read: either way, not ours to send now.
        _ => Claim::Busy,
    }
}

/// Time since the Unix epoch; a clock before 1970 counts as the epoch itself.
fn epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// A random id for this store's claims, so releases never touch another process's claim.
pub(super) fn owner_id() -> String {
    let mut bytes = [0u8; 12];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // Only uniqueness matters, not secrecy: the process id and clock are enough.
        return format!("{}-{}", std::process::id(), epoch().as_nanos());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: u128) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Turns an SDK error into a [`DedupeError`] that says whether asking again may help.
fn store_error<E, R>(table: &str, err: &SdkError<E, R>) -> DedupeError
where
    E: ProvideErrorMetadata,
    R: std::fmt::Debug,
{
    let no_answer = matches!(
        err,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    );
    if no_answer {
        return classify(table, None, "no usable answer from dynamodb", true);
    }
    let message = err.message().unwrap_or("no message");
    classify(table, err.code(), message, false)
}

/// Throttling, server errors and missing answers are transient; a missing table, denied
/// access or a malformed request need an operator.
fn classify(table: &str, code: Option<&str>, message: &str, no_answer: bool) -> DedupeError {
    let (reason, transient) = match code {
        _ if no_answer => (message.to_owned(), true),
        Some(
            "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "ThrottlingException"
            | "InternalServerError"
            | "ServiceUnavailable",
        ) => (
            format!("table {table} is throttled or busy: {message}"),
            true,
        ),
        Some("ResourceNotFoundException") => (
            format!("table {table} not found (create it in this account and region)"),
            false,
        ),
        Some(code) => (format!("table {table}: {code}: {message}"), false),
        None => (format!("table {table}: {message}"), false),
    };
    DedupeError {
        store: NAME,
        reason,
        transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_missing_answers_are_transient() {
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
        ] {
            assert!(
                classify("t", Some(code), "slow down", false).transient,
                "{code}"
            );
        }
        assert!(classify("t", None, "timeout", true).transient);
    }

    #[test]
    fn missing_table_is_permanent_and_named() {
        let err = classify(
            "herald-dedupe",
            Some("ResourceNotFoundException"),
            "",
            false,
        );
        assert!(!err.transient);
        assert_eq!(
            err.to_string(),
            "dynamodb dedupe store failed: table herald-dedupe not found (create it in this \
             account and region)"
        );
        assert!(!classify("t", Some("AccessDeniedException"), "no", false).transient);
    }

    #[test]
    fn a_failed_claim_reads_the_held_state() {
        let item = |state: &str| HashMap::from([("state".to_owned(), s(state))]);
        assert_eq!(held_as(Some(&item(DONE))), Claim::Done);
        assert_eq!(held_as(Some(&item(CLAIMED))), Claim::Busy);
        assert_eq!(held_as(None), Claim::Busy);
    }

    #[test]
    fn owner_ids_differ() {
        assert_ne!(owner_id(), owner_id());
    }
}
