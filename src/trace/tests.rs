use std::sync::Arc;
use std::time::Duration;

use super::read::{self, Filter, find, list};
use super::*;
use crate::config::{self, Origin};
use crate::dedupe::MemoryStore;
use crate::deliver::memory::MemorySender;
use crate::pipeline::{Delivery, Pipeline};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const PUT: &[u8] = include_bytes!("../../tests/fixtures/s3/put.json");

const RULES: &str = r#"
[sender]
type = "outbox"
from = "Herald <h@example.com>"

[[rule]]
name = "contracts"
bucket = "legal"
prefix = "contracts/"
to = ["legal@example.com"]

[[rule]]
name = "big-pdfs"
suffix = ".pdf"
min_size_bytes = 1000000000
to = ["data@example.com"]
"#;

fn settings(dir: &tempfile::TempDir) -> TraceSettings {
    TraceSettings {
        dir: dir.path().join("traces"),
        ..TraceSettings::default()
    }
}

fn pipeline(rules: &str, log: &TraceLog) -> Result<Pipeline, Box<dyn std::error::Error>> {
    let config = config::validate::parse(rules, Origin::BuiltIn, &|_| None)?;
    let sender = Arc::new(MemorySender::new());
    let dedupe = Arc::new(MemoryStore::new(Duration::from_secs(60)));
    let pipeline = Pipeline::new(Arc::new(config), Delivery::Send(sender)).with_dedupe(dedupe);
    Ok(pipeline.with_trace(log.clone()))
}

fn event_of(payload: &[u8]) -> Result<ObjectCreated, Box<dyn std::error::Error>> {
    let parsed = crate::sources::parse(payload)?;
    let crate::sources::Payload::Records(mut records) = parsed else {
        return Err("not records".into());
    };
    match records.remove(0)? {
        crate::sources::Record::Created(event) => Ok(event),
        other => Err(format!("not an upload: {other:?}").into()),
    }
}

#[tokio::test]
async fn an_unmatched_upload_names_the_closest_rule_and_what_it_wanted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log = TraceLog::start(settings(&dir))?;
    let pipeline = pipeline(RULES, &log)?;
    pipeline.handle_payload(PUT).await?;
    log.flush();

    let event = event_of(PUT)?;
    let read::Found::One(trace) = find(&settings(&dir).dir, &event_id(&event))? else {
        return Err("no trace".into());
    };
    assert_eq!(trace.status, Status::Unmatched);
    let [line] = trace.lines.as_slice() else {
        return Err(format!("{trace:?}").into());
    };
    let [Step::Unmatched { misses, closest }] = line.steps.as_slice() else {
        return Err(format!("{line:?}").into());
    };
    assert_eq!(misses.len(), 2);
    let closest = closest.as_ref().ok_or("no closest rule")?;
    assert_eq!(closest.rule, "big-pdfs", "{closest:?}");
    assert_eq!(
        closest.failed,
        [FailedCondition {
            condition: "smaller than min_size_bytes".into(),
            wanted: "at least 1000000000 bytes".into(),
        }]
    );
    Ok(())
}

#[tokio::test]
async fn a_sent_upload_keeps_its_email_and_a_redelivery_stays_sent() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log = TraceLog::start(settings(&dir))?;
    let rules = "[sender]\ntype = \"outbox\"\nfrom = \"h@example.com\"\n\
                 [[rule]]\nname = \"all\"\nto = [\"a@example.com\"]\n\
                 subject = \"got {{ object.name }}\"\n";
    let pipeline = pipeline(rules, &log)?;
    pipeline.handle_payload(PUT).await?;
    pipeline.handle_payload(PUT).await?;
    log.flush();

    let traces = list(&settings(&dir).dir, Filter::default())?;
    let [trace] = traces.as_slice() else {
        return Err(format!("{traces:?}").into());
    };
    assert_eq!(trace.status, Status::Sent);
    assert_eq!(trace.lines.len(), 2);
    let first = &trace.lines[0];
    assert!(matches!(&first.steps[0], Step::Matched { rules } if rules == &["all"]));
    let Step::Rendered { email, .. } = &first.steps[1] else {
        return Err(format!("{first:?}").into());
    };
    assert!(email.subject.starts_with("got "), "{email:?}");
    assert_eq!(email.to, ["a@example.com"]);
    assert!(matches!(
        &first.steps[2],
        Step::Delivery {
            outcome: DeliveryStep::Sent { .. },
            ..
        }
    ));
    assert_eq!(trace.lines[1].status, Status::Duplicate);

    let failed = Filter {
        status: Some(Status::Failed),
        ..Filter::default()
    };
    assert!(list(&settings(&dir).dir, failed)?.is_empty());
    let prefix = trace.id[..4].to_ascii_uppercase();
    let found = find(&settings(&dir).dir, &prefix)?;
    assert!(
        matches!(&found, read::Found::One(t) if t.id == trace.id),
        "a prefix in any case finds it: {found:?}"
    );
    Ok(())
}

#[test]
fn the_folder_stays_within_its_bounds() -> TestResult {
    let dir = tempfile::tempdir()?;
    let settings = TraceSettings {
        max_file_bytes: 2048,
        max_files: 3,
        ..settings(&dir)
    };
    let log = TraceLog::start(settings.clone())?;
    let event = crate::event::tests::sample("a.txt", 1);
    for _ in 0..200 {
        log.record(TraceLine::new(&event, Vec::new(), &[]));
    }
    log.flush();
    let files = log::files(&settings.dir)?;
    assert!(files.len() <= 3, "{files:?}");
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()))
        .sum::<Result<u64, _>>()?;
    assert!(total <= 3 * (2048 + 1024), "{total} bytes");
    Ok(())
}

#[test]
fn long_bodies_are_cut_on_a_character_boundary() {
    let text = "é".repeat(MAX_BODY);
    let kept = cut(&text);
    assert!(kept.len() < text.len());
    assert!(kept.ends_with(&format!("[… cut: {} bytes in all]", text.len())));
}

#[test]
fn a_prefix_shared_by_several_uploads_is_ambiguous() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log = TraceLog::start(settings(&dir))?;
    // Forty uploads over sixteen possible first digits: some digit is shared.
    let events: Vec<ObjectCreated> = (0..40)
        .map(|n| crate::event::tests::sample(&format!("file-{n}.txt"), 1))
        .collect();
    for event in &events {
        log.record(TraceLine::new(event, Vec::new(), &[]));
    }
    log.flush();
    let mut ids: Vec<String> = events.iter().map(event_id).collect();
    ids.sort();
    let shared = ids
        .windows(2)
        .find(|pair| pair[0][..1] == pair[1][..1])
        .map(|pair| pair[0][..1].to_owned())
        .ok_or("pigeonhole")?;
    let expected: Vec<String> = ids
        .iter()
        .filter(|id| id.starts_with(&shared))
        .cloned()
        .collect();
    match find(&settings(&dir).dir, &shared)? {
        read::Found::Ambiguous(found) => assert_eq!(found, expected),
        other => return Err(format!("{other:?}").into()),
    }
    assert!(matches!(find(&settings(&dir).dir, "")?, read::Found::None));
    Ok(())
}
