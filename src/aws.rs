//! Shared set-up for the AWS SDK clients (SES, DynamoDB, SQS).
//!
//! Credentials, region and endpoint come from the standard AWS chain: environment variables,
//! the shared config files, then the container or instance role. `AWS_ENDPOINT_URL` (or a
//! service-specific `AWS_ENDPOINT_URL_<SERVICE>`) points a client elsewhere, which is how the
//! tests reach moto. Nothing here reads or logs a secret.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Longest single HTTP attempt. Above the 20 s SQS long poll, so a quiet queue is not a
/// timeout, yet short enough that a stalled connection is retried well within a visibility
/// timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest call including the SDK's own retries, so no call can hang a worker.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(90);

/// The AWS set-up could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum AwsSetupError {
    /// Neither the config nor the AWS chain names a region.
    #[error("no aws region for {service}: set AWS_REGION (or a profile region){hint}")]
    NoRegion {
        /// The service that needs one (`ses`, `dynamodb`, `sqs`).
        service: &'static str,
        /// Where else a region may be given, if anywhere.
        hint: &'static str,
    },
}

/// Loads the shared SDK config for `service`, with `region` overriding the chain's.
///
/// `hint` names the config field that can also set the region, e.g. `" or [sender] region"`.
pub async fn sdk_config(
    service: &'static str,
    region: Option<&str>,
    hint: &'static str,
) -> Result<SdkConfig, AwsSetupError> {
    let timeouts = TimeoutConfig::builder()
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    let config = loader.load().await;
    // Without a region the SDK fails every call; say so once, at start-up.
    if config.region().is_none() {
        return Err(AwsSetupError::NoRegion { service, hint });
    }
    Ok(config)
}
