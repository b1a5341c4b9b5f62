use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::event::Provider;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn settings(path: &Path, max_entries: usize) -> QueueSettings {
    QueueSettings {
        path: path.join("state.redb"),
        max_entries,
        concurrency: 4,
        retry_max: Duration::from_secs(60),
        max_age: Duration::from_secs(3600),
        drain_grace: Duration::from_secs(1),
    }
}

fn upload(key: &str) -> ObjectCreated {
    ObjectCreated {
        provider: Provider::Dev,
        event_name: "ObjectCreated:Put".into(),
        bucket: "uploads".into(),
        key: key.into(),
        size: 5,
        content_type: None,
        etag: Some("e".into()),
        version_id: None,
        sequencer: Some(key.into()),
        event_time: None,
        uploader: None,
        source_ip: None,
        region: None,
    }
}

fn keys(due: &Due) -> Vec<&str> {
    due.ready.iter().map(|q| q.event.key.as_str()).collect()
}

#[tokio::test]
async fn pushed_uploads_come_back_in_order_and_survive_a_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let inbox = Inbox::open(&settings(dir.path(), 10))?;
    let ids = inbox
        .push(vec![upload("a"), upload("b"), upload("c")])
        .await?;
    assert_eq!(ids, [0, 1, 2]);
    drop(inbox);

    let inbox = Inbox::open(&settings(dir.path(), 10))?;
    let due = inbox.due(HashSet::new(), 10).await?;
    assert_eq!(keys(&due), ["a", "b", "c"]);
    assert_eq!(due.ready[1].id, 1);
    assert_eq!(due.ready[0].attempts, 0);
    assert_eq!(due.next_ms, None);
    Ok(())
}

#[tokio::test]
async fn due_skips_busy_entries_and_honours_the_limit() -> TestResult {
    let dir = tempfile::tempdir()?;
    let inbox = Inbox::open(&settings(dir.path(), 10))?;
    inbox
        .push(vec![upload("a"), upload("b"), upload("c")])
        .await?;
    let due = inbox.due(HashSet::from([0]), 1).await?;
    assert_eq!(keys(&due), ["b"]);
    assert!(
        due.next_ms.is_some(),
        "c is ready too, so come back at once"
    );
    Ok(())
}

#[tokio::test]
async fn a_deferred_entry_waits_and_a_removed_one_is_gone() -> TestResult {
    let dir = tempfile::tempdir()?;
    let inbox = Inbox::open(&settings(dir.path(), 10))?;
    inbox.push(vec![upload("a"), upload("b")]).await?;
    let mut due = inbox.due(HashSet::new(), 10).await?.ready;
    let mut later = due.remove(0);
    later.attempts = 1;
    later.not_before_ms = now_millis() + 60_000;
    later.last_error = Some("451 try later".into());
    inbox.defer(later.clone()).await?;
    inbox.remove(due[0].id).await?;

    let found = inbox.due(HashSet::new(), 10).await?;
    assert!(found.ready.is_empty());
    assert_eq!(found.next_ms, Some(later.not_before_ms));
    assert_eq!(inbox.waiting().await?, 1);
    Ok(())
}

#[tokio::test]
async fn a_full_queue_takes_nothing_and_says_so() -> TestResult {
    let dir = tempfile::tempdir()?;
    let inbox = Inbox::open(&settings(dir.path(), 2))?;
    inbox.push(vec![upload("a")]).await?;
    let refused = inbox.push(vec![upload("b"), upload("c")]).await;
    assert!(
        matches!(refused, Err(QueueError::Full { max_entries: 2 })),
        "{refused:?}"
    );
    assert_eq!(inbox.waiting().await?, 1);
    assert_eq!(
        refused.map_err(|e| e.to_string()).err().as_deref(),
        Some("the event queue is full (2 uploads waiting)")
    );
    Ok(())
}

#[tokio::test]
async fn numbers_continue_after_the_highest_in_use() -> TestResult {
    let dir = tempfile::tempdir()?;
    let inbox = Inbox::open(&settings(dir.path(), 10))?;
    inbox.push(vec![upload("a"), upload("b")]).await?;
    inbox.remove(0).await?;
    assert_eq!(inbox.push(vec![upload("c")]).await?, [2]);
    Ok(())
}

#[tokio::test]
async fn a_push_wakes_a_waiter_even_if_it_came_first() -> TestResult {
    let dir = tempfile::tempdir()?;
    let inbox = Inbox::open(&settings(dir.path(), 10))?;
    inbox.push(vec![upload("a")]).await?;
    tokio::time::timeout(Duration::from_secs(5), inbox.pushed()).await?;
    Ok(())
}
