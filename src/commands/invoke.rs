//! `herald invoke`: runs the pipeline on one event payload, as a function runtime would.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use herald::deadletter::DeadLetters;
use herald::pipeline::{Delivery, Pipeline};
use herald::record::{Entry, Outcome, Report};
use herald::render::format::visible;
use herald::{dedupe, deliver, links};

use super::EXIT_FAILURE;

/// Arguments of `herald invoke`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Event payload: an S3 notification or test event, a MinIO webhook, an SNS notification
    /// or Lambda SNS event around one, a Lambda SQS batch, an EventBridge "Object Created"
    /// event, a structured-mode CloudEvent (Cloud Storage, Azure), a Pub/Sub push of a Cloud
    /// Storage notification, or Event Grid events; `-` or nothing reads standard input.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// Print the emails instead of sending them.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON on standard output.
    #[arg(long)]
    json: bool,
}

/// Exits 0 when every record was handled, 1 when any failed or the payload is unreadable.
pub fn run(flag: Option<PathBuf>, args: Args) -> anyhow::Result<ExitCode> {
    let payload = read_payload(args.file.as_ref())?;
    let config = super::load(super::origin(flag))?;
    let runtime = super::tokio_runtime()?;
    let report = runtime.block_on(async {
        let delivery = match args.dry_run {
            true => Delivery::DryRun,
            false => Delivery::Send(deliver::build(&config.sender).await?),
        };
        if let Delivery::Send(_) = delivery {
            herald::digest::warn_without_store(&config, "invoke");
        }
        // One payload per process: only a shared store ([dedupe]) can spot a redelivery.
        let dedupe = match (&config.dedupe, &delivery) {
            (Some(_), Delivery::Send(_)) => Some(dedupe::build(&config).await?),
            _ => None,
        };
        let dead_letters = match (&config.dead_letter, &delivery) {
            (Some(settings), Delivery::Send(_)) => Some(DeadLetters::open(settings)?),
            _ => None,
        };
        let links = links::for_config(&config).await;
        let trace = match delivery {
            Delivery::Send(_) => super::trace_log(&config),
            Delivery::DryRun => None,
        };
        let mut pipeline = Pipeline::new(config, delivery)
            .with_links(links)
            .with_trace(trace.clone());
        if let Some(store) = dedupe {
            pipeline = pipeline.with_dedupe(store);
        }
        if let Some(store) = dead_letters {
            pipeline = pipeline.with_dead_letters(store);
        }
        let report = pipeline.handle_payload(&payload).await?;
        if let Some(trace) = trace {
            trace.flush();
        }
        anyhow::Ok(report)
    })?;

    if args.json {
        println!("{:#}", report.to_json());
    } else {
        print_report(&report);
    }
    Ok(match report.all_ok() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(EXIT_FAILURE),
    })
}

fn read_payload(file: Option<&PathBuf>) -> anyhow::Result<Vec<u8>> {
    match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        }
        None => {
            let mut payload = Vec::new();
            std::io::stdin()
                .read_to_end(&mut payload)
                .context("cannot read standard input")?;
            Ok(payload)
        }
    }
}

fn print_report(report: &Report) {
    for entry in &report.entries {
        print_entry(entry);
    }
    let c = report.counts();
    println!(
        "summary: {} sent, {} duplicate, {} rendered, {} ignored, {} test, {} skipped, \
         {} unmatched, {} failed",
        c.sent, c.duplicate, c.rendered, c.ignored, c.test, c.skipped, c.unmatched, c.failed
    );
}

fn print_entry(entry: &Entry) {
    let object = entry.object.as_ref().map_or(String::new(), |o| {
        format!(" {}/{} ({} bytes)", o.bucket, visible(&o.key), o.size)
    });
    let what = super::describe(&entry.outcome);
    println!("record {}:{object} {what}", entry.record);
    match &entry.outcome {
        Outcome::Rendered { email } => println!("{}", indent(&deliver::preview(email))),
        Outcome::RenderedChat { text, .. } => println!("{}", indent(text)),
        _ => {}
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}\n")).collect()
}
