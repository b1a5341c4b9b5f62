//! The digest path end to end in process: pipeline, state file, flusher and a memory sender.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::config::{self, Origin};
use crate::deadletter::{DeadLetterSettings, DeadLetters};
use crate::dedupe::MemoryStore;
use crate::deliver::Sender;
use crate::deliver::memory::{MemorySender, Refusing};
use crate::event::ObjectCreated;
use crate::event::tests::sample;
use crate::pipeline::Delivery;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A pipeline over one digest rule with a one-second window, its windows and dead letters in
/// `dir`, deduplicating in `dedupe`.
fn pipeline(
    dir: &Path,
    sender: Arc<dyn Sender>,
    dedupe: Arc<MemoryStore>,
) -> Result<Pipeline, Box<dyn std::error::Error>> {
    let path = dir.join("state.redb");
    let text = format!(
        "[sender]\ntype = \"outbox\"\nfrom = \"h@example.com\"\n\
         [digest]\npath = {path:?}\n\
         [[rule]]\nname = \"batch\"\nto = [\"team@example.com\"]\ndigest_secs = 1\n"
    );
    let config = config::validate::parse(&text, Origin::BuiltIn, &|_| None)?;
    let dead_letters = DeadLetters::open(&DeadLetterSettings {
        path,
        max_entries: 100,
        max_age: Duration::from_secs(3600),
    })?;
    Ok(Pipeline::new(Arc::new(config), Delivery::Send(sender))
        .with_dedupe(dedupe)
        .with_dead_letters(dead_letters))
}

fn memory_dedupe() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new(Duration::from_secs(3600)))
}

fn upload(key: &str, size: u64) -> ObjectCreated {
    sample(key, size)
}

/// Waits until `sender` holds `count` emails, for at most five seconds.
async fn wait_for(sender: &MemorySender, count: usize) -> usize {
    for _ in 0..100 {
        if sender.sent().len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sender.sent().len()
}

#[tokio::test]
async fn one_email_lists_every_upload_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let sender = Arc::new(MemorySender::new());
    let (pipeline, flusher) = start(pipeline(dir.path(), sender.clone(), memory_dedupe())?)?;

    for (key, size) in [
        ("a.csv", 100),
        ("b.csv", 200),
        ("a.csv", 100),
        ("c.csv", 300),
    ] {
        let entries = pipeline.handle_event(0, &upload(key, size)).await;
        assert!(
            matches!(entries[..], [ref e] if matches!(e.outcome, Outcome::Gathered { .. })),
            "{entries:?}"
        );
    }
    assert!(sender.sent().is_empty(), "nothing before the window closes");
    assert_eq!(wait_for(&sender, 1).await, 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    flusher.stop().await;

    let sent = sender.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let email = &sent[0];
    assert_eq!(email.subject, "3 new files for batch (600 B)");
    assert_eq!(
        email.text.matches("a.csv").count(),
        2,
        "name and path: {}",
        email.text
    );
    assert!(email.text.contains("b.csv") && email.text.contains("c.csv"));
    assert!(email.message_id.starts_with("herald.digest."));

    // A listed upload delivered again after its digest went out is not listed again.
    let again = pipeline.handle_event(0, &upload("b.csv", 200)).await;
    assert!(
        matches!(again[0].outcome, Outcome::Duplicate { .. }),
        "{again:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_window_open_at_shutdown_is_sent_after_the_restart() -> TestResult {
    let dir = tempfile::tempdir()?;
    let sender = Arc::new(MemorySender::new());
    let (before, flusher) = start(pipeline(dir.path(), sender.clone(), memory_dedupe())?)?;
    before.handle_event(0, &upload("kept.txt", 5)).await;
    flusher.stop().await;
    drop(before);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(sender.sent().is_empty());

    // A new process with a fresh memory dedupe store, as after a restart.
    let (_after, flusher) = start(pipeline(dir.path(), sender.clone(), memory_dedupe())?)?;
    assert_eq!(wait_for(&sender, 1).await, 1);
    flusher.stop().await;
    assert!(sender.sent()[0].text.contains("kept.txt"));
    let store = DigestStore::open(&dir.path().join("state.redb"))?;
    assert!(store.windows().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_resent_window_is_a_duplicate_for_the_dedupe_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    let sender = Arc::new(MemorySender::new());
    let dedupe = memory_dedupe();
    let pipeline = pipeline(dir.path(), sender.clone(), dedupe)?;
    let store = DigestStore::open(&dir.path().join("state.redb"))?;
    let pipeline = pipeline.with_digests(store.clone());
    pipeline.handle_event(0, &upload("x", 1)).await;
    let (id, _) = store.windows().await?.pop().ok_or("window")?;
    let window = store.load(&id).await?.ok_or("loaded")?;
    let rule = &pipeline.config().rules[0];

    let email = email(&pipeline, rule, &window)?;
    assert!(matches!(
        pipeline.send_digest(&email).await,
        Outcome::Sent { .. }
    ));
    // As if the process died before forgetting the window and sent it again on start.
    let again = pipeline.send_digest(&email).await;
    assert!(matches!(again, Outcome::Duplicate { .. }), "{again:?}");
    assert_eq!(sender.sent().len(), 1);
    Ok(())
}

/// Gathers two uploads, lets the window close and flushes it once by hand.
async fn flush_once(sender: Arc<dyn Sender>, dir: &Path) -> Result<Pipeline, StoreError> {
    let pipeline =
        pipeline(dir, sender, memory_dedupe()).unwrap_or_else(|e| panic!("test pipeline: {e}"));
    let store = DigestStore::open(&dir.join("state.redb"))?;
    let pipeline = pipeline.with_digests(store.clone());
    pipeline.handle_event(0, &upload("one", 1)).await;
    pipeline.handle_event(0, &upload("two", 2)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    flush_due(&pipeline, &store, &mut HashMap::new()).await?;
    Ok(pipeline)
}

#[tokio::test]
async fn a_transient_failure_keeps_the_window() -> TestResult {
    let dir = tempfile::tempdir()?;
    flush_once(Arc::new(Refusing { transient: true }), dir.path()).await?;
    let store = DigestStore::open(&dir.path().join("state.redb"))?;
    let windows = store.windows().await?;
    assert_eq!(windows.len(), 1);
    assert_eq!(
        store.load(&windows[0].0).await?.ok_or("kept")?.files.len(),
        2
    );
    Ok(())
}

#[tokio::test]
async fn a_permanent_failure_parks_each_upload_and_drops_the_window() -> TestResult {
    let dir = tempfile::tempdir()?;
    let pipeline = flush_once(Arc::new(Refusing { transient: false }), dir.path()).await?;
    let store = DigestStore::open(&dir.path().join("state.redb"))?;
    assert!(store.windows().await?.is_empty());
    let parked = pipeline
        .dead_letters()
        .ok_or("dead letters")?
        .list()
        .await?;
    let mut keys: Vec<&str> = parked.iter().map(|e| e.event.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["one", "two"]);
    assert!(
        parked
            .iter()
            .all(|e| e.rule == "batch" && e.error.contains("mailbox"))
    );
    Ok(())
}

#[test]
fn retries_back_off_up_to_five_minutes() {
    let first = retry_after(None, 0);
    assert_eq!((first.attempts, first.at_ms), (1, 5_000));
    let second = retry_after(Some(&first), 0);
    assert_eq!(second.at_ms, 10_000);
    let mut late = second;
    for _ in 0..40 {
        late = retry_after(Some(&late), 0);
    }
    assert_eq!(late.at_ms, 300_000);
}

#[test]
fn the_message_id_names_the_rule_and_the_window() {
    let id = |rule: &str, opened_ms| WindowId {
        rule: rule.into(),
        opened_ms,
    };
    let a = message_id(&id("r", 1), "example.com");
    assert_eq!(a, message_id(&id("r", 1), "example.com"));
    assert_ne!(a, message_id(&id("r", 2), "example.com"));
    assert_ne!(a, message_id(&id("s", 1), "example.com"));
    assert!(a.ends_with("@example.com"));
}
