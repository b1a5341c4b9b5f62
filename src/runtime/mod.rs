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
use crate::deliver::{self, SetupError};
use crate::pipeline::{Delivery, Pipeline};
use crate::{dedupe, links};

/// The pipeline the cloud runtimes (`worker`, `serve`, Lambda) run: the configured sender,
/// the configured dedupe store (memory without `[dedupe]`) and, for rules that want download
/// links, the AWS link signer. Built once at start-up.
pub async fn configured_pipeline(config: Arc<Config>) -> Result<Pipeline, SetupError> {
    let sender = deliver::build(&config.sender).await?;
    let store = dedupe::build(&config).await?;
    let links = links::for_config(&config).await;
    let pipeline = Pipeline::new(config, Delivery::Send(sender));
    Ok(pipeline.with_dedupe(store).with_links(links))
}
