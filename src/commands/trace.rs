//! `herald events` and `herald trace`: what happened to recent uploads, read from the trace
//! folder (`[trace] dir`), in the terminal.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use herald::render::format::visible;
use herald::trace::read::{self, Filter, Found};
use herald::trace::{Closest, DeliveryStep, EventTrace, Status, Step, TraceLine};
use jiff::{SignedDuration, Timestamp};

/// Arguments of `herald events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Only uploads handled within this long, e.g. `30m`, `1h`, `2d`.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    since: Option<SignedDuration>,
    /// Only uploads with this status.
    #[arg(long, value_parser = parse_status)]
    status: Option<Status>,
    /// Most uploads listed, newest first.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Arguments of `herald trace`.
#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// The upload's trace id, as `herald events` lists it (a unique prefix is enough).
    id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Lists recent uploads, newest first.
pub fn events(flag: Option<PathBuf>, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let dir = trace_dir(flag)?;
    let since = args.since.map(|age| Timestamp::now() - age);
    let filter = Filter {
        since,
        status: args.status,
    };
    let mut traces = read::list(&dir, filter)
        .with_context(|| format!("cannot read traces in {}", dir.display()))?;
    traces.truncate(usize::try_from(args.limit).unwrap_or(usize::MAX));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&traces)?);
    } else {
        print_table(&traces);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints one upload's trace.
pub fn trace(flag: Option<PathBuf>, args: TraceArgs) -> anyhow::Result<ExitCode> {
    let dir = trace_dir(flag)?;
    let found = read::find(&dir, &args.id)
        .with_context(|| format!("cannot read traces in {}", dir.display()))?;
    let trace = match found {
        Found::One(trace) => trace,
        Found::None => bail!(
            "no upload with trace id {:?} in {} (herald events lists them)",
            visible(&args.id),
            dir.display()
        ),
        Found::Ambiguous(ids) => bail!(
            "trace id {:?} is ambiguous: {} uploads start with it ({}); give more of it",
            visible(&args.id),
            ids.len(),
            ids.join(", ")
        ),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&trace)?);
    } else {
        print_trace(&trace);
    }
    Ok(ExitCode::SUCCESS)
}

/// The trace folder of the config, which must trace.
fn trace_dir(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let config = super::load(super::origin(flag))?;
    match &config.trace {
        Some(settings) => Ok(settings.dir.clone()),
        None => bail!("the config turns traces off ([trace] enabled = false)"),
    }
}

fn print_table(traces: &[EventTrace]) {
    if traces.is_empty() {
        println!("no uploads traced yet");
        return;
    }
    println!(
        "{:<10}  {:<20}  {:<9}  {:>12}  upload",
        "id", "last seen", "status", "bytes"
    );
    for trace in traces {
        let event = &trace.event;
        println!(
            "{:<10}  {:<20}  {:<9}  {:>12}  {}/{}",
            trace.id,
            short_time(trace.last_at),
            trace.status,
            event.size,
            visible(&event.bucket),
            visible(&event.key)
        );
    }
}

fn print_trace(trace: &EventTrace) {
    let event = &trace.event;
    println!("trace {}: {}", trace.id, trace.status);
    println!(
        "  upload:   {}/{}",
        visible(&event.bucket),
        visible(&event.key)
    );
    println!("  size:     {} bytes", event.size);
    println!(
        "  parsed as {} {}",
        provider(event),
        visible(&event.event_name)
    );
    for line in &trace.lines {
        print_line(line);
    }
}

fn print_line(line: &TraceLine) {
    println!("{}  handled: {}", short_time(line.at), line.status);
    for step in &line.steps {
        match step {
            Step::Skipped { reason } => println!("  skipped: {reason}"),
            Step::Matched { rules } => println!("  matched: {}", rules.join(", ")),
            Step::Unmatched { misses, closest } => {
                println!("  no rule matched");
                for miss in misses {
                    println!("    {}: {}", miss.rule, miss.reason);
                }
                print_closest(closest.as_ref());
            }
            Step::Rendered { rule, email } => {
                println!(
                    "  rendered by {rule}: {:?} ({})",
                    email.subject, email.message_id
                );
            }
            Step::Delivery { rule, outcome } => {
                let rule = rule.as_deref().unwrap_or("-");
                println!("  {rule}: {}", delivery(outcome));
            }
        }
    }
}

fn print_closest(closest: Option<&Closest>) {
    let Some(closest) = closest else {
        println!("    (the config has no rules)");
        return;
    };
    println!("  closest rule: {}", closest.rule);
    for failed in &closest.failed {
        println!("    {}: wants {}", failed.condition, failed.wanted);
    }
}

fn delivery(outcome: &DeliveryStep) -> String {
    match outcome {
        DeliveryStep::Sent { sender, detail, .. } => format!("sent via {sender}: {detail}"),
        DeliveryStep::Duplicate { message_id } => format!("duplicate of {message_id}"),
        DeliveryStep::Gathered { closes_at } => {
            format!("gathered into a digest closing {}", short_time(*closes_at))
        }
        DeliveryStep::Rendered => "rendered only (dry run)".into(),
        DeliveryStep::Failed {
            error,
            transient,
            parked,
        } => {
            let retry = if *transient { "retrying" } else { "failed" };
            match parked {
                Some(id) => format!("{retry}: {error} (parked as {id})"),
                None => format!("{retry}: {error}"),
            }
        }
    }
}

fn provider(event: &herald::event::ObjectCreated) -> String {
    serde_json::to_value(event.provider)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// UTC to the second, e.g. `2026-12-04 02:07:32`.
fn short_time(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

fn parse_age(text: &str) -> Result<SignedDuration, String> {
    let wrong = || format!("{text:?} is not an age like 30m, 1h or 2d");
    let span: jiff::Span = text.parse().map_err(|_| wrong())?;
    // An age in days means 24-hour days here, not calendar days across a DST change.
    let age = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| wrong())?;
    match age.is_negative() {
        true => Err(format!("{text:?} is negative")),
        false => Ok(age),
    }
}

fn parse_status(text: &str) -> Result<Status, String> {
    Status::ALL
        .into_iter()
        .find(|status| status.name() == text)
        .ok_or_else(|| {
            let names: Vec<&str> = Status::ALL.iter().map(|s| s.name()).collect();
            format!("{text:?} is not a status: one of {}", names.join(", "))
        })
}
