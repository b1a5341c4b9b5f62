//! `herald dev`: a local S3-compatible endpoint whose uploads go through the pipeline.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context as _;
use herald::config::Config;
use herald::deadletter::DeadLetters;
use herald::event::ObjectCreated;
use herald::pipeline::{Delivery, Pipeline};
use herald::queue::Inbox;
use herald::record::Outcome;
use herald::render::format::visible;
use herald::runtime::dashboard::Dashboard;
use herald::runtime::dev::{
    DEV_ACCESS_KEY, DEV_REGION, DEV_SECRET_KEY, DevEndpoint, DevOptions, Uploads,
};
use herald::runtime::local::{self, Handled};
use herald::{dedupe, deliver, runtime};
use tokio::sync::{mpsc, oneshot};

use super::local_links;

/// Uploads waiting for the pipeline before the endpoint slows down PUT responses.
const QUEUE: usize = 256;

/// Arguments of `herald dev`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address for the S3 endpoint; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Folder that holds the buckets and their objects.
    #[arg(long, default_value = ".herald/dev")]
    data_dir: PathBuf,
    /// Bucket to create at start; repeat for more.
    #[arg(long = "bucket", default_value = "uploads")]
    buckets: Vec<String>,
    /// Address for the dashboard (default [dashboard] listen, else 127.0.0.1:9001); port 0
    /// picks a free one. Loopback only: other addresses go in the config.
    #[arg(long, value_name = "ADDR")]
    dashboard: Option<SocketAddr>,
    /// Run without the dashboard.
    #[arg(long, conflicts_with = "dashboard")]
    no_dashboard: bool,
}

/// Where the pipeline takes the endpoint's uploads from.
enum Feed {
    /// The durable queue (`[queue]`), delivered by its drain loop.
    Queue(Inbox),
    /// An in-process channel, delivered by the local event loop.
    Channel(mpsc::Receiver<ObjectCreated>),
}

/// Runs until Ctrl-C or SIGTERM, printing one line per upload.
pub fn run(flag: Option<PathBuf>, args: Args) -> anyhow::Result<ExitCode> {
    let config = super::load(super::origin(flag))?;
    super::block_on(async move {
        let sender = deliver::build(&config.sender).await?;
        let (handled_tx, mut handled_rx) = mpsc::unbounded_channel();
        let (events, feed) = match runtime::queue(&config)? {
            Some(inbox) => (Uploads::Queue(inbox.clone()), Feed::Queue(inbox)),
            None => {
                let (events_tx, events_rx) = mpsc::channel(QUEUE);
                (Uploads::Channel(events_tx), Feed::Channel(events_rx))
            }
        };
        let queued = matches!(feed, Feed::Queue(_));
        let options = DevOptions {
            listen: args.listen,
            data_dir: args.data_dir.clone(),
            buckets: args.buckets.clone(),
        };
        let endpoint = DevEndpoint::start(options, events)
            .await
            .with_context(|| format!("cannot start the S3 endpoint on {}", args.listen))?;
        let dashboard = match args.no_dashboard {
            true => None,
            false => super::bind_dashboard(args.dashboard, &config, true).await?,
        };
        let dashboard_url = dashboard.as_ref().map(Dashboard::url);
        print_banner(&endpoint, &args, &config, dashboard_url.as_deref());

        // Remembers sent emails (in memory without [dedupe]), so a client retrying an
        // upload's request does not produce a second email.
        let dedupe = dedupe::build(&config).await?;
        let dead_letters = config.dead_letter.as_ref().map(DeadLetters::open);
        let trace = super::trace_log(&config);
        let mut pipeline = Pipeline::new(Arc::clone(&config), Delivery::Send(sender))
            .with_trace(trace.clone())
            .with_dedupe(dedupe)
            .with_links(local_links(&endpoint));
        if let Some(store) = dead_letters.transpose()? {
            pipeline = pipeline.with_dead_letters(store);
        }
        let (pipeline, digests) = herald::digest::start(pipeline)?;
        let dashboard = super::start_dashboard(dashboard, &pipeline)?;
        let (stop_drain, drain_stopped) = oneshot::channel::<()>();
        let worker = match feed {
            Feed::Queue(inbox) => {
                let drain = runtime::drain(&config, inbox, pipeline)?.reporting(handled_tx);
                tokio::spawn(drain.run(async {
                    // A dropped sender also means stop.
                    let _ = drain_stopped.await;
                }))
            }
            Feed::Channel(events_rx) => tokio::spawn(local::run(pipeline, events_rx, handled_tx)),
        };
        let shutdown = super::shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                Some(handled) = handled_rx.recv() => print_handled(&handled, queued),
                _ = &mut shutdown => break,
            }
        }

        println!("stopping: finishing uploads in flight");
        if let Some(dashboard) = dashboard {
            dashboard.stop().await;
        }
        endpoint.shutdown().await;
        let _ = stop_drain.send(());
        while let Some(handled) = handled_rx.recv().await {
            print_handled(&handled, queued);
        }
        worker.await.context("the event loop panicked")?;
        digests.stop().await;
        if let Some(trace) = trace {
            trace.flush();
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_banner(endpoint: &DevEndpoint, args: &Args, config: &Config, dashboard: Option<&str>) {
    let delivery = deliver::describe(&config.sender);
    let url = endpoint.endpoint_url();
    let bucket = args.buckets.first().map_or("uploads", String::as_str);
    println!("herald dev: S3 endpoint ready");
    println!("  endpoint:   {url}");
    println!("  access key: {DEV_ACCESS_KEY}");
    println!("  secret key: {DEV_SECRET_KEY}");
    println!("  region:     {DEV_REGION}");
    println!("  buckets:    {}", args.buckets.join(", "));
    println!("  data:       {}", args.data_dir.display());
    println!("  delivery:   {delivery}");
    if let Some(url) = dashboard {
        println!("  dashboard:  {url}");
    }
    if let Some(queue) = &config.queue {
        println!(
            "  queue:      {} (uploads are stored before S3 answers)",
            queue.path.display()
        );
    }
    println!("try it:");
    println!(
        "  AWS_ACCESS_KEY_ID={DEV_ACCESS_KEY} AWS_SECRET_ACCESS_KEY={DEV_SECRET_KEY} \
         AWS_DEFAULT_REGION={DEV_REGION} aws --endpoint-url {url} \
         s3 cp ./README.md 's3://{bucket}/docs/README (copy).md'"
    );
    println!("ready: {url}");
}

/// One line per rule the upload reached. With a queue, a failure a retry may fix is not the
/// end of it: the queue tries again, so the line says so.
fn print_handled(handled: &Handled, queued: bool) {
    let event = &handled.event;
    for entry in &handled.entries {
        let outcome = match &entry.outcome {
            Outcome::Failed {
                error,
                transient: true,
                ..
            } if queued => format!("not delivered yet, queued for another attempt: {error}"),
            outcome => super::describe(outcome),
        };
        println!(
            "upload: {}/{} ({} bytes): {outcome}",
            event.bucket,
            visible(&event.key),
            event.size,
        );
    }
}
