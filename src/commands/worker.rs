//! `herald worker`: long-polls an SQS queue in a container (ECS, Kubernetes) until stopped.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use herald::config::Origin;
use herald::runtime::worker::{Worker, WorkerOptions};
use herald::{dedupe, deliver, runtime};

/// Arguments of `herald worker`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// URL of the SQS queue that receives the bucket's event notifications.
    #[arg(long, env = "HERALD_QUEUE_URL", value_name = "URL")]
    queue_url: String,
    /// Messages handled at the same time.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Seconds messages in flight may take to finish after SIGTERM or Ctrl-C; keep it below
    /// the platform's stop timeout (30 s on ECS and Kubernetes by default).
    #[arg(long, default_value_t = 25, value_name = "SECS")]
    drain_secs: u64,
}

/// Runs until SIGTERM or Ctrl-C, then exits 0 once messages in flight are settled.
pub fn run(flag: Option<PathBuf>, args: Args) -> anyhow::Result<ExitCode> {
    let origin = super::origin(flag);
    if origin == Origin::BuiltIn {
        bail!(
            "herald worker needs a config: --config FILE, $HERALD_CONFIG, $HERALD_CONFIG_TOML \
             or ./herald.toml"
        );
    }
    let config = super::load(origin)?;
    super::block_on(async move {
        let trace = super::trace_log(&config);
        let pipeline = runtime::configured_pipeline(Arc::clone(&config))
            .await?
            .with_trace(trace.clone());
        let (pipeline, digests) = herald::digest::start(pipeline)?;
        println!(
            "herald worker: delivery {}",
            deliver::describe(&config.sender)
        );
        println!("herald worker: dedupe {}", dedupe::describe(&config));

        let options = WorkerOptions {
            queue_url: args.queue_url.clone(),
            concurrency: usize::from(args.concurrency),
            drain: Duration::from_secs(args.drain_secs),
        };
        let worker = Worker::connect(pipeline, options).await?;
        let visibility = worker.visibility_timeout().as_secs();
        println!(
            "ready: polling {} (visibility timeout {visibility} s)",
            args.queue_url
        );

        let stats = worker.run(super::shutdown_signal()).await;
        digests.stop().await;
        if let Some(trace) = &trace {
            trace.flush();
        }
        println!(
            "stopped: {} message(s) deleted, {} left for retry, {} left for the dead-letter queue",
            stats.deleted, stats.retried, stats.dead_lettered
        );
        Ok(ExitCode::SUCCESS)
    })
}
