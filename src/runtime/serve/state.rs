//! What every handler shares: the pipeline and the MinIO token.

use std::sync::Arc;

use crate::pipeline::Pipeline;
use crate::secret::Secret;

/// Shared by every request; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(super) pipeline: Pipeline,
    pub(super) minio_token: Option<Arc<Secret>>,
}

impl AppState {
    /// State for a pipeline; `minio_token` is the `Authorization` value `POST /minio`
    /// requires, or `None` to accept any caller.
    pub fn new(pipeline: Pipeline, minio_token: Option<Secret>) -> Self {
        AppState {
            pipeline,
            minio_token: minio_token.map(Arc::new),
        }
    }
}
