use super::*;
use crate::event::tests::sample;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn settings(dir: &tempfile::TempDir, max_entries: usize) -> DeadLetterSettings {
    DeadLetterSettings {
        path: dir.path().join("state.redb"),
        max_entries,
        max_age: Duration::from_secs(3600),
    }
}

fn failure<'a>(event: &'a ObjectCreated, rule: &'a str) -> Failure<'a> {
    Failure {
        rule,
        event,
        error: "smtp rejected the message: 550 no such user",
        transient: false,
    }
}

#[tokio::test]
async fn park_list_get_remove() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = DeadLetters::open(&settings(&dir, 10))?;
    assert!(store.list().await?.is_empty(), "a new file has no entries");
    let event = sample("reports/q3.pdf", 42);
    let id = store.park(failure(&event, "reports")).await?;
    assert_eq!(id.len(), 10);

    let entry = store.get(&id).await?.ok_or("parked entry")?;
    assert_eq!((entry.rule.as_str(), &entry.event), ("reports", &event));
    assert_eq!((entry.attempts, entry.transient), (1, false));
    assert!(entry.error.contains("550"));
    assert_eq!(store.list().await?, [entry]);

    assert!(store.remove(&id).await?);
    assert!(!store.remove(&id).await?);
    assert!(store.get(&id).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn the_same_failure_again_counts_an_attempt() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = DeadLetters::open(&settings(&dir, 10))?;
    let event = sample("a.txt", 1);
    let first = store.park(failure(&event, "r")).await?;
    let again = Failure {
        error: "smtp delivery failed, a retry may help: timeout",
        transient: true,
        ..failure(&event, "r")
    };
    assert_eq!(store.park(again).await?, first);
    let other_rule = store.park(failure(&event, "other")).await?;
    assert_ne!(other_rule, first);

    let entry = store.get(&first).await?.ok_or("entry")?;
    assert_eq!((entry.attempts, entry.transient), (2, true));
    assert!(entry.error.contains("timeout"));
    assert!(entry.last_failed >= entry.first_failed);
    assert_eq!(store.list().await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn the_oldest_entries_go_beyond_the_bound() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = DeadLetters::open(&settings(&dir, 2))?;
    let events: Vec<ObjectCreated> = (0..3).map(|i| sample(&format!("{i}.txt"), 1)).collect();
    let mut ids = Vec::new();
    for event in &events {
        ids.push(store.park(failure(event, "r")).await?);
        // Distinct first-failure times, so "oldest" is well defined.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let kept: Vec<String> = store.list().await?.into_iter().map(|e| e.id).collect();
    assert_eq!(kept, ids[1..]);
    Ok(())
}

#[tokio::test]
async fn entries_past_their_age_are_dropped() -> TestResult {
    let dir = tempfile::tempdir()?;
    let settings = DeadLetterSettings {
        max_age: Duration::ZERO,
        ..settings(&dir, 10)
    };
    let store = DeadLetters::open(&settings)?;
    let (old, new) = (sample("old.txt", 1), sample("new.txt", 1));
    store.park(failure(&old, "r")).await?;
    tokio::time::sleep(Duration::from_millis(2)).await;
    let id = store.park(failure(&new, "r")).await?;
    let kept: Vec<String> = store.list().await?.into_iter().map(|e| e.id).collect();
    assert_eq!(kept, [id]);
    Ok(())
}

#[tokio::test]
async fn entries_survive_a_restart() -> TestResult {
    let dir = tempfile::tempdir()?;
    let event = sample("kept.txt", 7);
    let id = DeadLetters::open(&settings(&dir, 10))?
        .park(failure(&event, "r"))
        .await?;
    let reopened = DeadLetters::open(&settings(&dir, 10))?;
    let entry = reopened.get(&id).await?.ok_or("entry after restart")?;
    assert_eq!(entry.event, event);
    Ok(())
}
