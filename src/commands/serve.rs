//! `herald serve`: the HTTP receiver for pushed events (Eventarc, Pub/Sub push, Event Grid,
//! MinIO webhooks), for Cloud Run, Container Apps, Knative or any host.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use herald::config::Origin;
use herald::pipeline::{Delivery, Pipeline};
use herald::runtime::serve::{self, AppState, Receiver};
use herald::{dedupe, deliver, links};

/// Arguments of `herald serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free one. Default: 0.0.0.0:$PORT when PORT is set
    /// (Cloud Run), else [serve] listen, else 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

/// Serves until SIGTERM or Ctrl-C, then exits 0 once the requests in flight are answered.
pub fn run(flag: Option<PathBuf>, args: Args) -> anyhow::Result<ExitCode> {
    let origin = super::origin(flag);
    if origin == Origin::BuiltIn {
        bail!("herald serve needs a config file: --config FILE, $HERALD_CONFIG or ./herald.toml");
    }
    let config = super::load(origin)?;
    let port = std::env::var("PORT").ok();
    let listen = serve::listen_address(args.listen, port.as_deref(), config.serve.listen)?;
    super::tokio_runtime()?.block_on(async move {
        let sender = deliver::build(&config.sender).await?;
        let store = dedupe::build(&config)
            .await
            .context("cannot set up [dedupe]")?;
        println!(
            "herald serve: delivery {}",
            deliver::describe(&config.sender)
        );
        println!("herald serve: dedupe {}", dedupe::describe(&config));
        let minio = match config.serve.minio_token {
            Some(_) => "POST /minio (Authorization required)",
            None => "POST /minio (no token configured: any caller accepted)",
        };
        println!(
            "herald serve: routes POST /cloudevents, POST /pubsub, POST /eventgrid, {minio}, \
             GET /healthz"
        );

        let links = links::for_config(&config).await;
        let token = config.serve.minio_token.clone();
        let body_limit = config.serve.body_limit;
        let pipeline = Pipeline::new(config, Delivery::Send(sender))
            .with_dedupe(store)
            .with_links(links);
        let receiver = Receiver::bind(listen, AppState::new(pipeline, token), body_limit)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = receiver
            .local_addr()
            .context("cannot read the bound address")?;
        println!("ready: http://{addr}");

        receiver
            .run(async {
                super::shutdown_signal().await;
                println!("stopping: answering requests in flight");
            })
            .await
            .context("the HTTP server failed")?;
        println!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}
