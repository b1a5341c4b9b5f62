//! `herald demo`: the whole product in one command, with nothing to install or configure.
//!
//! Starts the embedded S3 endpoint on a free loopback port, uploads sample files through a
//! real S3 client (aws-sdk-s3), waits until the pipeline has handled each upload, and prints
//! where the emails went.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use herald::config::{Config, SenderKind};
use herald::deliver;
use herald::pipeline::{Delivery, Pipeline};
use herald::record::Outcome;
use herald::runtime::demo::{Sample, upload_samples};
use herald::runtime::dev::{DevEndpoint, DevOptions};
use herald::runtime::local::{self, Handled};
use tokio::sync::mpsc;

use super::EXIT_FAILURE;

/// The bucket the demo uploads into.
const BUCKET: &str = "demo-uploads";

/// How long to wait for the pipeline after the last upload.
const SETTLE: Duration = Duration::from_secs(60);

/// Arguments of `herald demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder for the emails when the config delivers to an outbox; overrides its `dir`.
    #[arg(long, value_name = "DIR")]
    outbox: Option<PathBuf>,
}

/// Exits 0 when every sample upload produced its emails.
pub fn run(flag: Option<PathBuf>, args: Args) -> anyhow::Result<ExitCode> {
    let config = with_outbox(super::load(super::origin(flag))?, args.outbox);
    let data = tempfile::tempdir().context("cannot create a folder for the demo bucket")?;
    super::block_on(async move {
        let sender = deliver::build(&config.sender).await?;
        let delivery = deliver::describe(&config.sender);
        let (events_tx, events_rx) = mpsc::channel(64);
        let options = DevOptions {
            listen: ([127, 0, 0, 1], 0).into(),
            data_dir: data.path().to_path_buf(),
            buckets: vec![BUCKET.to_owned()],
        };
        let endpoint = DevEndpoint::start(options, events_tx).await?;
        println!(
            "herald demo: S3 endpoint {} (bucket {BUCKET})",
            endpoint.endpoint_url()
        );

        let (handled_tx, mut handled_rx) = mpsc::unbounded_channel();
        // No download links: the demo's endpoint and its files are gone once it exits.
        let pipeline = Pipeline::new(config, Delivery::Send(sender));
        let worker = tokio::spawn(local::run(pipeline, events_rx, handled_tx));
        let samples = upload_samples(&endpoint.endpoint_url(), BUCKET).await?;
        let handled = collect(&mut handled_rx, samples.len()).await;
        endpoint.shutdown().await;
        worker.await.context("the event loop panicked")?;

        let handled = handled?;
        print_summary(&samples, &handled, &delivery);
        let failed = handled
            .iter()
            .flat_map(|h| &h.entries)
            .any(|e| matches!(e.outcome, Outcome::Failed { .. }));
        Ok(if failed {
            ExitCode::from(EXIT_FAILURE)
        } else {
            ExitCode::SUCCESS
        })
    })
}

/// Points an outbox sender at `dir`, leaving other senders alone.
fn with_outbox(config: Arc<Config>, dir: Option<PathBuf>) -> Arc<Config> {
    let Some(dir) = dir else { return config };
    let mut config = Arc::unwrap_or_clone(config);
    if let SenderKind::Outbox { dir: current } = &mut config.sender.kind {
        *current = dir;
    }
    Arc::new(config)
}

/// Waits for `expected` handled uploads, in the order they finished.
async fn collect(
    handled: &mut mpsc::UnboundedReceiver<Handled>,
    expected: usize,
) -> anyhow::Result<Vec<Handled>> {
    let mut done = Vec::with_capacity(expected);
    let progress = super::progress::bar(expected as u64, "uploads handled");
    while done.len() < expected {
        match tokio::time::timeout(SETTLE, handled.recv()).await {
            Ok(Some(one)) => {
                done.push(one);
                progress.inc(1);
            }
            Ok(None) => bail!(
                "the pipeline stopped after {} of {expected} uploads",
                done.len()
            ),
            Err(_) => bail!(
                "no email after {SETTLE:?}: {} of {expected} uploads done",
                done.len()
            ),
        }
    }
    progress.finish_and_clear();
    Ok(done)
}

fn print_summary(samples: &[Sample], handled: &[Handled], delivery: &str) {
    println!("uploaded {} files through aws-sdk-s3:", samples.len());
    for sample in samples {
        println!(
            "  {:<9} {:>12} bytes  {}",
            sample.how, sample.size, sample.key
        );
    }
    let mut sent = 0;
    println!("what Herald did:");
    for one in handled {
        for entry in &one.entries {
            sent += usize::from(matches!(entry.outcome, Outcome::Sent { .. }));
            println!("  {}: {}", one.event.key, super::describe(&entry.outcome));
        }
    }
    println!("{sent} email(s) delivered to {delivery}");
    println!(
        "(the demo leaves download links out: its S3 endpoint stops when it exits; \
         herald dev puts them in)"
    );
}
