//! Thin runtimes over the pipeline: the embedded S3 endpoint, the demo, the event loop
//! that connects them, the SQS worker, the HTTP receiver for pushed events and the local
//! dashboard beside them.

pub mod dashboard;
pub mod demo;
pub mod dev;
pub mod lambda;
pub mod local;
pub mod serve;
pub mod worker;

use std::sync::Arc;

use crate::config::Config;
use crate::deadletter::{DeadLetterSettings, DeadLetters};
use crate::dedupe::DedupeSetupError;
use crate::deliver::{self, SetupError};
use crate::pipeline::{Delivery, Pipeline};
use crate::queue::Inbox;
use crate::queue::drain::Drain;
use crate::store::StoreError;
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

/// With a `[queue]`: the queue receivers write to (see [`drain`] for the loop that delivers
/// from it). `None` without a `[queue]`, when receivers deliver while the request waits.
pub fn queue(config: &Config) -> Result<Option<Inbox>, StoreError> {
    config.queue.as_ref().map(Inbox::open).transpose()
}

/// The loop that delivers from `inbox` through `pipeline`, parking what fails for good in the
/// pipeline's dead-letter store, or else the configured one (the config check gives every
/// queue one, in the queue's own file when `[dead_letter]` names none).
pub fn drain(config: &Config, inbox: Inbox, pipeline: Pipeline) -> Result<Drain, StoreError> {
    let settings = inbox.settings().clone();
    let dead_letters = match (pipeline.dead_letters(), &config.dead_letter) {
        (Some(store), _) => store.clone(),
        (None, Some(configured)) => DeadLetters::open(configured)?,
        (None, None) => DeadLetters::open(&DeadLetterSettings::in_file(settings.path.clone()))?,
    };
    let pipeline = pipeline.with_dead_letters(dead_letters.clone());
    Ok(Drain::new(pipeline, inbox, dead_letters, settings))
}
