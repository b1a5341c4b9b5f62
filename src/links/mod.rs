//! Download links: a time-limited URL to the uploaded object, for rules that want one in their
//! emails (`download_link_secs`).
//!
//! Signing is a side effect behind [`LinkSigner`], so the pipeline does not care whether the
//! object lives in AWS S3 or in the embedded dev endpoint.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use tracing::warn;

use crate::aws::{self, AwsSetupError};
use crate::config::Config;
use crate::event::ObjectCreated;
use crate::render::Link;

/// The longest validity S3's signature version 4 allows for a presigned URL: seven days.
pub const MAX_LINK_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);

/// A link could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign a download link for {bucket}/{key}: {reason}")]
pub struct LinkError {
    /// The object's bucket.
    pub bucket: String,
    /// The object's key.
    pub key: String,
    /// What went wrong.
    pub reason: String,
}

/// The AWS signer, when any rule of `config` wants download links. Links are a convenience:
/// without a usable AWS set-up they are left out, with a warning, rather than stopping Herald.
///
/// Only tried when the environment names a region (Lambda, ECS and the aws cli's users all
/// have one): without it the SDK would go looking for one on the instance metadata address,
/// which on a laptop or in CI only means a slow failure.
pub async fn for_config(config: &Config) -> Option<Arc<dyn LinkSigner>> {
    if config.rules.iter().all(|rule| rule.download_link.is_none()) {
        return None;
    }
    let region_set = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    if !region_set {
        warn!("no AWS region in the environment; download links will be left out of emails");
        return None;
    }
    match S3LinkSigner::from_env().await {
        Ok(signer) => Some(Arc::new(signer)),
        Err(err) => {
            warn!(error = %err, "download links will be left out of emails");
            None
        }
    }
}

/// The future returned by [`LinkSigner::sign`].
pub type LinkFuture<'a> = Pin<Box<dyn Future<Output = Result<Link, LinkError>> + Send + 'a>>;

/// Makes download links for uploaded objects.
pub trait LinkSigner: Send + Sync {
    /// A link to `event`'s object (its exact version, where known) valid for `valid_for`.
    fn sign<'a>(&'a self, event: &'a ObjectCreated, valid_for: Duration) -> LinkFuture<'a>;
}

/// Signs S3 GET requests locally with the client's credentials: no request is sent, so
/// signing works offline and costs nothing. Whoever opens the link needs nothing else, but the
/// credentials must be allowed `s3:GetObject` on the object for the link to work.
#[derive(Debug, Clone)]
pub struct S3LinkSigner {
    client: aws_sdk_s3::Client,
}

impl S3LinkSigner {
    /// Signs with this client's credentials, region and endpoint.
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3LinkSigner { client }
    }

    /// Signs with the credentials and region of the standard AWS chain (the function's or
    /// container's role, environment variables, profiles).
    pub async fn from_env() -> Result<Self, AwsSetupError> {
        let config = aws::sdk_config("s3", None, "").await?;
        Ok(S3LinkSigner::new(aws_sdk_s3::Client::new(&config)))
    }

    async fn presign(&self, event: &ObjectCreated, valid_for: Duration) -> Result<Link, String> {
        let config = PresigningConfig::expires_in(valid_for).map_err(|e| e.to_string())?;
        let signed_at = jiff::Timestamp::now();
        let request = self
            .client
            .get_object()
            .bucket(&event.bucket)
            .key(&event.key)
            .set_version_id(event.version_id.clone())
            .presigned(config)
            .await
            .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(e).to_string())?;
        let expires_at = signed_at
            .checked_add(valid_for)
            .map_err(|e| e.to_string())?;
        Ok(Link {
            url: request.uri().to_owned(),
            expires_at,
        })
    }
}

impl LinkSigner for S3LinkSigner {
    fn sign<'a>(&'a self, event: &'a ObjectCreated, valid_for: Duration) -> LinkFuture<'a> {
        Box::pin(async move {
            self.presign(event, valid_for)
                .await
                .map_err(|reason| LinkError {
                    bucket: event.bucket.clone(),
                    key: event.key.clone(),
                    reason,
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::sample;
    use crate::runtime::demo::s3_client;

    #[tokio::test]
    async fn link_names_the_decoded_key_and_expiry() -> Result<(), LinkError> {
        let signer = S3LinkSigner::new(s3_client("http://127.0.0.1:9000"));
        let event = sample("reports/Q3 report (final)+v2 東京.pdf", 10);
        let link = signer.sign(&event, Duration::from_secs(3600)).await?;
        let url = link.url;
        assert!(
            url.starts_with(
                "http://127.0.0.1:9000/uploads/reports/Q3%20report%20%28final%29%2Bv2%20\
                 %E6%9D%B1%E4%BA%AC.pdf?"
            ),
            "{url}"
        );
        assert!(url.contains("X-Amz-Expires=3600"), "{url}");
        assert!(url.contains("X-Amz-Signature="), "{url}");
        let lead = link.expires_at.as_second() - jiff::Timestamp::now().as_second();
        assert!((3590..=3600).contains(&lead), "{lead}");
        Ok(())
    }
}
