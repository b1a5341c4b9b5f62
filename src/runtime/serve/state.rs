//! What every handler shares: the pipeline, the MinIO token, the SNS signature checker and
//! the event queue, when there is one.

use std::sync::Arc;

use crate::pipeline::Pipeline;
use crate::queue::Inbox;
use crate::secret::Secret;
use crate::sources::sns_https::SnsHttps;

/// Shared by every request; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(super) pipeline: Pipeline,
    pub(super) minio_token: Option<Arc<Secret>>,
    pub(super) sns: Option<Arc<SnsHttps>>,
    pub(super) queue: Option<Inbox>,
}

impl AppState {
    /// State for a pipeline; `minio_token` is the `Authorization` value `POST /minio`
    /// requires, or `None` to accept any caller.
    pub fn new(pipeline: Pipeline, minio_token: Option<Secret>) -> Self {
        AppState {
            pipeline,
            minio_token: minio_token.map(Arc::new),
            sns: None,
            queue: None,
        }
    }

    /// Writes uploads to `queue` and answers once they are stored, instead of delivering
    /// while the request waits.
    pub fn with_queue(mut self, queue: Inbox) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Accepts SNS HTTPS deliveries on `POST /sns`, checked by `sns`; without it the route
    /// refuses every message.
    pub fn with_sns(mut self, sns: SnsHttps) -> Self {
        self.sns = Some(Arc::new(sns));
        self
    }
}
