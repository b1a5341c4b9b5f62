//! Per-event cost of Herald's own work: parse a provider payload, route it through the rules,
//! render the matching rules' emails. No network, no disk: delivery is what the SMTP and
//! end-to-end cases of `scripts/bench` measure.
//!
//! Runs on the example config (`examples/herald.toml`: three rules with prefix, suffix and
//! size matches and a fallback) and the S3 `ObjectCreated:Put` fixture, which the "reports"
//! rule matches. Each benchmark is one event; `scripts/bench` turns the medians into events
//! per second.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use herald::config::{self, Config, Origin};
use herald::event::ObjectCreated;
use herald::pipeline::{Delivery, Pipeline};
use herald::render::{Context, Rendered};
use herald::route::{Route, route};
use herald::sources::{self, Payload, Record};

const EVENT: &[u8] = include_bytes!("../examples/events/s3-put.json");

fn config() -> Config {
    config::load(Origin::BuiltIn).unwrap_or_else(|err| panic!("example config loads: {err}"))
}

/// The uploads in a payload, as the pipeline sees them after parsing.
fn uploads(payload: Payload) -> Vec<ObjectCreated> {
    let Payload::Records(records) = payload else {
        return Vec::new();
    };
    records
        .into_iter()
        .filter_map(|record| match record {
            Ok(Record::Created(event)) => Some(event),
            _ => None,
        })
        .collect()
}

/// Routes one upload and renders every matching rule's subject, text and HTML.
fn route_and_render(config: &Config, event: &ObjectCreated) -> Vec<Rendered> {
    let Route::Matched(rules) = route(&config.rules, event) else {
        return Vec::new();
    };
    rules
        .into_iter()
        .filter_map(|rule| {
            let ctx = Context {
                event,
                rule: &rule.name,
                time_zone: &rule.time_zone,
                link: None,
            };
            rule.templates.render(&ctx).ok()
        })
        .collect()
}

/// The stages one by one, then together, then through the real `Pipeline` in a dry run.
fn stages(c: &mut Criterion) {
    let config = config();
    let parsed = sources::parse(EVENT).unwrap_or_else(|err| panic!("fixture parses: {err}"));
    let event = uploads(parsed)
        .pop()
        .unwrap_or_else(|| panic!("fixture holds an upload"));
    // A benchmark of a path that renders nothing would measure nothing: check it once.
    assert_eq!(route_and_render(&config, &event).len(), 1);

    c.bench_function("parse", |b| b.iter(|| sources::parse(black_box(EVENT))));
    c.bench_function("route", |b| {
        b.iter(|| matches!(route(&config.rules, black_box(&event)), Route::Matched(_)))
    });
    c.bench_function("render", |b| {
        b.iter(|| route_and_render(&config, black_box(&event)))
    });
    c.bench_function("parse_route_render", |b| {
        b.iter(|| {
            let payload = sources::parse(black_box(EVENT)).ok()?;
            let rendered: Vec<_> = uploads(payload)
                .iter()
                .flat_map(|event| route_and_render(&config, event))
                .collect();
            Some(rendered)
        })
    });

    let pipeline = Pipeline::new(std::sync::Arc::new(config.clone()), Delivery::DryRun);
    c.bench_function("pipeline_dry_run", |b| {
        b.iter(|| futures::executor::block_on(pipeline.handle_payload(black_box(EVENT))))
    });
}

criterion_group! {
    name = benches;
    // Short by default so `cargo bench` ends in a minute; scripts/bench passes its own times.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = stages
}
criterion_main!(benches);
