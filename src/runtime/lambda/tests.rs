//! The Lambda handler on real payload shapes, with a sender that fails on cue.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::config::validate;
use crate::dedupe::MemoryStore;
use crate::deliver::memory::MemorySender;
use crate::deliver::{DeliveryError, Email, SendFuture, Sender};
use crate::pipeline::Delivery;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Routes by key prefix to recipients the [`Flaky`] sender treats specially.
const CONFIG: &str = r#"
[sender]
type = "outbox"
from = "Herald <herald@example.com>"

[[rule]]
name = "greylisted"
prefix = "greylisted/"
to = ["greylisted@example.com"]
stop = true

[[rule]]
name = "bounced"
prefix = "bounced/"
to = ["bounced@example.com"]
stop = true

[[rule]]
name = "everything"
fallback = true
to = ["team@example.com"]
"#;

/// Keeps emails in memory, but refuses `greylisted@` transiently and `bounced@` permanently,
/// the way an SMTP server answers 451 and 550.
#[derive(Default)]
struct Flaky {
    kept: MemorySender,
}

impl Sender for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }

    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        let to: Vec<String> = email.recipients().map(|m| m.email.to_string()).collect();
        let refused = |reason: &str| DeliveryError::Transient {
            sender: "flaky",
            reason: reason.to_owned(),
            source: None,
            retry_after: None,
        };
        if to.iter().any(|a| a == "greylisted@example.com") {
            return Box::pin(async move { Err(refused("451 try again later")) });
        }
        if to.iter().any(|a| a == "bounced@example.com") {
            return Box::pin(async {
                Err(DeliveryError::Permanent {
                    sender: "flaky",
                    reason: "550 no such user".into(),
                    source: None,
                })
            });
        }
        self.kept.send(email)
    }
}

fn handler() -> Result<(Handler, Arc<Flaky>), ConfigError> {
    let config = validate::parse(CONFIG, Origin::BuiltIn, &|_| None)?;
    let sender = Arc::new(Flaky::default());
    let store = Arc::new(MemoryStore::new(Duration::from_secs(3600)));
    let pipeline =
        Pipeline::new(Arc::new(config), Delivery::Send(sender.clone())).with_dedupe(store);
    Ok((Handler::new(pipeline), sender))
}

/// `tests/fixtures/s3/put.json` with another key (form-encoded, as S3 sends it).
fn s3_event(key: &str) -> Result<Value, serde_json::Error> {
    let mut event: Value =
        serde_json::from_str(include_str!("../../../tests/fixtures/s3/put.json"))?;
    event["Records"][0]["s3"]["object"]["key"] = json!(key);
    Ok(event)
}

fn sqs_batch(bodies: &[(&str, String)]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .map(|(id, body)| {
            json!({"messageId": id, "receiptHandle": "AQEBexample", "body": body,
                                 "eventSource": "aws:sqs", "awsRegion": "eu-west-1"})
        })
        .collect();
    json!({ "Records": records })
}

fn fixture(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice(bytes)
}

#[tokio::test]
async fn batch_names_only_the_transiently_failed_message() -> TestResult {
    let (handler, sender) = handler()?;
    let batch = sqs_batch(&[
        ("m-1", s3_event("inbox/a.csv")?.to_string()),
        ("m-2", s3_event("greylisted/b.csv")?.to_string()),
        ("m-3", s3_event("inbox/c.csv")?.to_string()),
    ]);
    let reply = handler.invoke(batch).await?;
    assert_eq!(
        reply,
        json!({"batchItemFailures": [{"itemIdentifier": "m-2"}]})
    );
    let keys: Vec<String> = sender
        .kept
        .sent()
        .iter()
        .map(|e| e.subject.clone())
        .collect();
    assert_eq!(
        keys,
        [
            "New file in acme-uploads: a.csv",
            "New file in acme-uploads: c.csv"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn permanent_failures_are_named_so_they_reach_the_dead_letter_queue() -> TestResult {
    let (handler, _) = handler()?;
    let batch = sqs_batch(&[
        ("m-1", s3_event("bounced/b.csv")?.to_string()),
        ("m-2", s3_event("inbox/fine.csv")?.to_string()),
    ]);
    let reply = handler.invoke(batch).await?;
    assert_eq!(
        reply,
        json!({"batchItemFailures": [{"itemIdentifier": "m-1"}]})
    );
    Ok(())
}

#[tokio::test]
async fn test_events_and_foreign_bodies_never_fail_a_batch() -> TestResult {
    let (handler, sender) = handler()?;
    let batch = fixture(include_bytes!("../../../tests/fixtures/sqs/mixed.json"))?;
    let reply = handler.invoke(batch).await?;
    assert_eq!(reply, json!({"batchItemFailures": []}));
    assert_eq!(sender.kept.sent().len(), 1, "only the S3 body is an upload");
    Ok(())
}

#[tokio::test]
async fn every_sqs_body_shape_sends_its_email() -> TestResult {
    let (handler, sender) = handler()?;
    let fixtures: [&[u8]; 5] = [
        include_bytes!("../../../tests/fixtures/sqs/s3_body.json"),
        include_bytes!("../../../tests/fixtures/sqs/sns_body.json"),
        include_bytes!("../../../tests/fixtures/sqs/raw_delivery.json"),
        include_bytes!("../../../tests/fixtures/sqs/eventbridge_body.json"),
        include_bytes!("../../../tests/fixtures/sqs/sns_test_event.json"),
    ];
    for bytes in fixtures {
        let reply = handler.invoke(fixture(bytes)?).await?;
        assert_eq!(reply, json!({"batchItemFailures": []}));
    }
    let subjects: Vec<String> = sender
        .kept
        .sent()
        .iter()
        .map(|e| e.subject.clone())
        .collect();
    assert_eq!(
        subjects,
        [
            // The S3 body and the SNS body carry the same upload: sent once.
            "New file in acme-uploads: Q3 summary.pdf",
            "New file in acme-uploads: raw delivery (2).csv",
            "New file in acme-media: Launch day+final cut.mp4",
        ]
    );
    Ok(())
}

#[tokio::test]
async fn direct_events_reply_with_counts() -> TestResult {
    let (handler, _) = handler()?;
    let cases: [(&[u8], &str); 4] = [
        (
            include_bytes!("../../../tests/fixtures/s3/multi_record.json"),
            "sent",
        ),
        (
            include_bytes!("../../../tests/fixtures/sns/lambda_event.json"),
            "sent",
        ),
        (
            include_bytes!("../../../tests/fixtures/eventbridge/object_created.json"),
            "sent",
        ),
        (
            include_bytes!("../../../tests/fixtures/eventbridge/object_deleted.json"),
            "ignored",
        ),
    ];
    for (bytes, outcome) in cases {
        let reply = handler.invoke(fixture(bytes)?).await?;
        let counts = &reply["counts"];
        let total: u64 = ["sent", "ignored"]
            .iter()
            .filter_map(|k| counts[k].as_u64())
            .sum();
        assert!(counts[outcome].as_u64() >= Some(1), "{reply}");
        assert_eq!(counts[outcome].as_u64(), Some(total), "{reply}");
    }
    Ok(())
}

#[tokio::test]
async fn direct_transient_failure_fails_the_invocation() -> TestResult {
    let (handler, _) = handler()?;
    let got = handler.invoke(s3_event("greylisted/x.pdf")?).await;
    assert!(
        matches!(got, Err(InvocationError::Undelivered { failed: 1 })),
        "{got:?}"
    );
    let diagnostic = Diagnostic::from(InvocationError::Undelivered { failed: 1 });
    assert_eq!(diagnostic.error_type, "Herald.Undelivered");
    Ok(())
}

#[tokio::test]
async fn direct_permanent_failure_fails_the_invocation_for_the_failure_destination() -> TestResult {
    let (handler, _) = handler()?;
    let got = handler.invoke(s3_event("bounced/x.pdf")?).await;
    let undelivered = matches!(got, Err(InvocationError::Undelivered { failed: 1 }));
    assert!(undelivered, "{got:?}");
    Ok(())
}

#[tokio::test]
async fn redelivery_in_a_warm_container_is_deduplicated() -> TestResult {
    let (handler, sender) = handler()?;
    let event = s3_event("inbox/once.csv")?;
    handler.invoke(event.clone()).await?;
    let reply = handler.invoke(event).await?;
    assert_eq!(reply["counts"]["duplicate"], json!(1));
    assert_eq!(sender.kept.sent().len(), 1);
    Ok(())
}

#[tokio::test]
async fn unknown_payload_is_dropped_not_retried() -> TestResult {
    let (handler, _) = handler()?;
    let reply = handler.invoke(json!({"hello": "world"})).await?;
    assert!(reply["unrecognized"].is_string(), "{reply}");
    Ok(())
}

#[test]
fn config_path_then_inline_toml_then_task_root() -> TestResult {
    let root = tempfile::tempdir()?;
    let unset = |_: &str| None;
    assert_eq!(locate_config(&unset, root.path()), None);
    std::fs::write(root.path().join(CONFIG_FILE), "")?;
    let beside = Origin::DefaultPath(root.path().join(CONFIG_FILE));
    assert_eq!(locate_config(&unset, root.path()), Some(beside.clone()));
    let empty = |_: &str| Some(String::new());
    assert_eq!(locate_config(&empty, root.path()), Some(beside));
    let inline = |name: &str| (name == "HERALD_CONFIG_TOML").then(|| "x = 1".to_owned());
    let origin = locate_config(&inline, root.path());
    assert_eq!(origin, Some(Origin::Inline("x = 1".into())));
    let named = |name: &str| Some(format!("/opt/{name}"));
    let origin = locate_config(&named, root.path());
    assert_eq!(origin, Some(Origin::Env("/opt/HERALD_CONFIG".into())));
    Ok(())
}

#[test]
fn lambda_log_levels_map_to_filters() {
    assert_eq!(
        log_filter(Some("DEBUG"), Some("trace")),
        "debug,lettre=info"
    );
    assert_eq!(log_filter(Some("FATAL"), None), "error");
    assert_eq!(log_filter(Some("warn"), None), "warn");
    assert_eq!(log_filter(None, Some("herald=debug")), "herald=debug");
    assert_eq!(log_filter(Some("LOUD"), None), "info");
}
