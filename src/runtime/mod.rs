//! Thin runtimes over the pipeline: the embedded S3 endpoint, the demo, the event loop
//! that connects them, the SQS worker and the HTTP receiver for pushed events.

pub mod demo;
pub mod dev;
pub mod lambda;
pub mod local;
pub mod serve;
pub mod worker;

use std::sync::Arc;

use crate::config::Config;
use crate::dedupe::DedupeSetupError;
use crate::deliver::{self, SetupError};
use crate::pipeline::{Delivery, Pipeline};
use crate::{dedupe, links};

/// The sender or the dedupe store of [`configured_pipeline`] could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PipelineSetupError {
    /// The sender.
    #[error(transparent)]
    Sender(#[from] SetupError),
    /// The dedupe store.
    #[error(transparent)]
    Dedupe(#[from] DedupeSetupError),
}

/// The pipeline the cloud runtimes (`worker`, `serve`, Lambda) run: the configured sender,
/// the configured dedupe store (memory without `[dedupe]`) and, for rules that want download
/// links, the AWS link signer. Built once at start-up.
pub async fn configured_pipeline(config: Arc<Config>) -> Result<Pipeline, PipelineSetupError> {
    let sender = deliver::build(&config.sender).await?;
    let store = dedupe::build(&config).await?;
    let links = links::for_config(&config).await;
    let pipeline = Pipeline::new(config, Delivery::Send(sender));
    Ok(pipeline.with_dedupe(store).with_links(links))
}
