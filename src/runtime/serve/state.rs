//! What every handler shares: the pipeline, the MinIO token and the SNS signature checker.

use std::sync::Arc;

use crate::pipeline::Pipeline;
use crate::secret::Secret;
use crate::sources::sns_https::SnsHttps;

/// Shared by every request; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(super) pipeline: Pipeline,
    pub(super) minio_token: Option<Arc<Secret>>,
    pub(super) sns: Option<Arc<SnsHttps>>,
}

impl AppState {
    /// State for a pipeline; `minio_token` is the `Authorization` value `POST /minio`
    /// requires, or `None` to accept any caller.
    pub fn new(pipeline: Pipeline, minio_token: Option<Secret>) -> Self {
        AppState {
            pipeline,
            minio_token: minio_token.map(Arc::new),
            sns: None,
        }
    }

    /// Accepts SNS HTTPS deliveries on `POST /sns`, checked by `sns`; without it the route
    /// refuses every message.
    pub fn with_sns(mut self, sns: SnsHttps) -> Self {
        self.sns = Some(Arc::new(sns));
        self
    }
}
