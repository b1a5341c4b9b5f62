//! `herald serve`: the HTTP receiver for pushed events (Eventarc, Pub/Sub push, Event Grid,
//! MinIO webhooks), for Cloud Run, Container Apps, Knative or any host.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use herald::config::Origin;
use herald::runtime::serve::{self, AppState, Receiver};
use herald::sources::sns_https::{SnsHttps, SnsHttpsOptions};
use herald::{dedupe, deliver, runtime};

/// Arguments of `herald serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free one. Default: 0.0.0.0:$PORT when PORT is set
    /// (Cloud Run), else [serve] listen, else 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Run the dashboard at this address (loopback only; port 0 picks a free one), as if
    /// [dashboard] enabled = true. Default: as the config says, off without it.
    #[arg(long, value_name = "ADDR")]
    dashboard: Option<SocketAddr>,
}

/// Serves until SIGTERM or Ctrl-C, then exits 0 once the requests in flight are answered.
pub fn run(flag: Option<PathBuf>, args: Args) -> anyhow::Result<ExitCode> {
    let origin = super::origin(flag);
    if origin == Origin::BuiltIn {
        bail!(
            "herald serve needs a config: --config FILE, $HERALD_CONFIG, $HERALD_CONFIG_TOML \
             or ./herald.toml"
        );
    }
    let config = super::load(origin)?;
    let port = std::env::var("PORT").ok();
    let listen = serve::listen_address(args.listen, port.as_deref(), config.serve.listen)?;
    super::block_on(async move {
        let trace = super::trace_log(&config);
        let pipeline = runtime::configured_pipeline(Arc::clone(&config))
            .await?
            .with_trace(trace.clone());
        let (pipeline, digests) = herald::digest::start(pipeline)?;
        let dashboard = match args.dashboard.is_some() || config.dashboard.enabled {
            true => super::bind_dashboard(args.dashboard, &config, false).await?,
            false => None,
        };
        if let Some(dashboard) = &dashboard {
            println!("herald serve: dashboard {}", dashboard.url());
        }
        let dashboard = super::start_dashboard(dashboard, &pipeline)?;
        println!(
            "herald serve: delivery {}",
            deliver::describe(&config.sender)
        );
        println!("herald serve: dedupe {}", dedupe::describe(&config));
        let minio = match config.serve.minio_token {
            Some(_) => "POST /minio (Authorization required)",
            None => "POST /minio (no token configured: any caller accepted)",
        };
        let sns_route = match config.serve.sns_topics.len() {
            0 => "POST /sns (no sns_topics: refuses all)".to_owned(),
            n => format!("POST /sns ({n} topic(s), signatures checked)"),
        };
        println!(
            "herald serve: routes POST /cloudevents, POST /pubsub, POST /eventgrid, {minio}, \
             {sns_route}, GET /healthz"
        );
        let sns = sns_receiver(&config.serve.sns_topics)?;

        let token = config.serve.minio_token.clone();
        let body_limit = config.serve.body_limit;
        let queued = match runtime::queue(&config)? {
            Some(inbox) => Some((
                inbox.clone(),
                runtime::drain(&config, inbox, pipeline.clone())?,
            )),
            None => None,
        };
        let mut state = AppState::new(pipeline, token);
        if let Some(sns) = sns {
            state = state.with_sns(sns);
        }
        let (stop_drain, drain_stopped) = tokio::sync::oneshot::channel::<()>();
        let mut drain_task = None;
        if let Some((inbox, drain)) = queued {
            if let Some(queue) = &config.queue {
                println!(
                    "herald serve: queue {} (uploads are stored before they are acknowledged)",
                    queue.path.display()
                );
            }
            state = state.with_queue(inbox);
            let stopped = async {
                // A dropped sender also means stop.
                let _ = drain_stopped.await;
            };
            drain_task = Some(tokio::spawn(drain.run(stopped)));
        }
        let receiver = Receiver::bind(listen, state, body_limit)
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
        if let Some(dashboard) = dashboard {
            dashboard.stop().await;
        }
        if let Some(task) = drain_task {
            println!("stopping: finishing queued deliveries in flight");
            let _ = stop_drain.send(());
            task.await.context("the queue's delivery loop panicked")?;
        }
        digests.stop().await;
        if let Some(trace) = &trace {
            trace.flush();
        }
        println!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Environment variable that lets `POST /sns` fetch certificates and confirm subscriptions
/// under one loopback URL prefix, for tests that sign with a throwaway certificate. Refused for
/// any address but loopback; never set it in production.
const SNS_TEST_PREFIX_ENV: &str = "HERALD_TEST_ONLY_SNS_URL_PREFIX";

/// The SNS signature checker, when `[serve] sns_topics` names any topic.
fn sns_receiver(topics: &[String]) -> anyhow::Result<Option<SnsHttps>> {
    if topics.is_empty() {
        return Ok(None);
    }
    let test_only_url_prefix = std::env::var(SNS_TEST_PREFIX_ENV).ok();
    let options = SnsHttpsOptions {
        allowed_topics: topics.to_vec(),
        test_only_url_prefix,
    };
    let sns = SnsHttps::new(options).context("cannot set up POST /sns")?;
    Ok(Some(sns))
}
