//! Digest windows in Herald's local state file ([`crate::store`]), so they outlive the process.
//!
//! Three tables, all written together in one redb transaction per change:
//!
//! - `digest_windows`: (rule, opened at) to (closes at, files so far); times are epoch
//!   milliseconds. A rule has at most one open window (the newest, while it has not closed);
//!   older ones have closed and wait for the flusher.
//! - `digest_files`: (rule, opened at, upload key) to the upload as JSON with its arrival order.
//! - `digest_listed`: (rule, upload key) to the window it is listed in, so a redelivered upload
//!   is found in whichever pending window of its rule holds it and is never listed twice.
//!
//! The upload key is [`ObjectCreated::dedupe_key`].

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::event::ObjectCreated;
use crate::store::{self, StoreError};

const WINDOWS: TableDefinition<(&str, u64), (u64, u64)> = TableDefinition::new("digest_windows");
const FILES: TableDefinition<(&str, u64, &str), &[u8]> = TableDefinition::new("digest_files");
const LISTED: TableDefinition<(&str, &str), u64> = TableDefinition::new("digest_listed");

/// Names one window: its rule and when its first upload arrived (epoch milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WindowId {
    /// The rule that gathers into it.
    pub rule: String,
    /// When it opened.
    pub opened_ms: u64,
}

/// A window with its files, as the flusher reads it.
#[derive(Debug, Clone)]
pub struct Window {
    /// Which window.
    pub id: WindowId,
    /// When it closes (or closed).
    pub closes_ms: u64,
    /// Its uploads, in the order they arrived.
    pub files: Vec<ObjectCreated>,
}

/// What adding an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Added {
    /// When the window holding the upload closes.
    pub closes_ms: u64,
    /// False when the upload was already listed (a redelivery).
    pub new: bool,
}

/// One stored file: the upload and its place in the window.
#[derive(Debug, Serialize, Deserialize)]
struct Item {
    seq: u64,
    event: ObjectCreated,
}

/// The digest windows in the state file; cheap to clone.
#[derive(Debug, Clone)]
pub struct DigestStore {
    database: Arc<Database>,
    /// Woken when a window opens, so a sleeping flusher looks at its close time.
    opened: Arc<Notify>,
}

impl DigestStore {
    /// Opens (or creates) the state file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(DigestStore {
            database: store::open(path)?,
            opened: Arc::new(Notify::new()),
        })
    }

    /// Resolves after a window was opened since the last call (or now, if one was).
    pub async fn window_opened(&self) {
        self.opened.notified().await;
    }

    /// Lists `event` in the rule's open window, opening one that closes `window_ms` from now
    /// when there is none; an upload already listed in a pending window stays where it is.
    pub async fn add(
        &self,
        rule: &str,
        window_ms: u64,
        event: &ObjectCreated,
    ) -> Result<Added, StoreError> {
        let (rule, event) = (rule.to_owned(), event.clone());
        let now = store::now_millis();
        let (added, opened) = self
            .blocking(move |db| add(db, &rule, now, window_ms, event))
            .await?;
        if opened {
            self.opened.notify_one();
        }
        Ok(added)
    }

    /// When the pending window listing this upload closes, if one does.
    pub async fn listed(
        &self,
        rule: &str,
        event: &ObjectCreated,
    ) -> Result<Option<u64>, StoreError> {
        let (rule, key) = (rule.to_owned(), event.dedupe_key());
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(redb::Error::from)?;
            let Some(listed) = read_table(&txn, LISTED)? else {
                return Ok(None);
            };
            let Some(opened) = listed.get((rule.as_str(), key.as_str())).map_err(db_err)? else {
                return Ok(None);
            };
            let Some(windows) = read_table(&txn, WINDOWS)? else {
                return Ok(None);
            };
            let row = windows
                .get((rule.as_str(), opened.value()))
                .map_err(db_err)?;
            Ok(row.map(|row| row.value().0))
        })
        .await
    }

    /// Every pending window, closed or not, soonest to close first.
    pub async fn windows(&self) -> Result<Vec<(WindowId, u64)>, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(redb::Error::from)?;
            let Some(windows) = read_table(&txn, WINDOWS)? else {
                return Ok(Vec::new());
            };
            let mut found = Vec::new();
            for row in windows.iter().map_err(db_err)? {
                let (key, value) = row.map_err(db_err)?;
                let (rule, opened_ms) = key.value();
                let id = WindowId {
                    rule: rule.to_owned(),
                    opened_ms,
                };
                found.push((id, value.value().0));
            }
            found.sort_by_key(|(id, closes)| (*closes, id.opened_ms));
            Ok(found)
        })
        .await
    }

    /// The window with its files, if it is still pending.
    pub async fn load(&self, id: &WindowId) -> Result<Option<Window>, StoreError> {
        let id = id.clone();
        self.blocking(move |db| load(db, id)).await
    }

    /// Forgets a window and its files, once its digest went out (or was parked).
    pub async fn remove(&self, id: &WindowId) -> Result<(), StoreError> {
        let id = id.clone();
        self.blocking(move |db| remove(db, &id)).await
    }

    /// Runs a blocking step on the file off the async threads (commits wait for the disk).
    async fn blocking<T: Send + 'static>(
        &self,
        step: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let database = Arc::clone(&self.database);
        tokio::task::spawn_blocking(move || step(&database)).await?
    }
}

fn db_err(err: impl Into<redb::Error>) -> StoreError {
    StoreError::Database(err.into())
}

/// A table opened for reading, or `None` when nothing was ever written to it.
fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, StoreError> {
    match txn.open_table(table) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(err) => Err(db_err(err)),
    }
}

/// One transaction: find the upload or list it, opening a window when the rule has none open.
/// Returns what happened and whether a window was opened.
fn add(
    db: &Database,
    rule: &str,
    now: u64,
    window_ms: u64,
    event: ObjectCreated,
) -> Result<(Added, bool), StoreError> {
    let key = event.dedupe_key();
    let txn = db.begin_write().map_err(db_err)?;
    let result = {
        let mut windows = txn.open_table(WINDOWS).map_err(db_err)?;
        let mut files = txn.open_table(FILES).map_err(db_err)?;
        let mut listed = txn.open_table(LISTED).map_err(db_err)?;

        let held = listed.get((rule, key.as_str())).map_err(db_err)?;
        let held = held.map(|opened| opened.value());
        let pending = match held {
            Some(opened) => windows.get((rule, opened)).map_err(db_err)?,
            None => None,
        };
        if let Some((closes_ms, _)) = pending.map(|row| row.value()) {
            return Ok((
                Added {
                    closes_ms,
                    new: false,
                },
                false,
            ));
        }

        // The rule's newest window, if it is still open.
        let newest = windows
            .range((rule, 0)..=(rule, u64::MAX))
            .map_err(db_err)?
            .next_back()
            .transpose()
            .map_err(db_err)?
            .map(|(k, v)| (k.value().1, v.value()))
            .filter(|(_, (closes, _))| *closes > now);
        let (opened_ms, closes_ms, count) = match newest {
            Some((opened, (closes, count))) => (opened, closes, count),
            None => (now, now.saturating_add(window_ms), 0),
        };
        let item = serde_json::to_vec(&Item { seq: count, event })?;
        files
            .insert((rule, opened_ms, key.as_str()), item.as_slice())
            .map_err(db_err)?;
        windows
            .insert((rule, opened_ms), (closes_ms, count + 1))
            .map_err(db_err)?;
        listed
            .insert((rule, key.as_str()), opened_ms)
            .map_err(db_err)?;
        (
            Added {
                closes_ms,
                new: true,
            },
            count == 0,
        )
    };
    txn.commit().map_err(db_err)?;
    Ok(result)
}

fn load(db: &Database, id: WindowId) -> Result<Option<Window>, StoreError> {
    let txn = db.begin_read().map_err(db_err)?;
    let Some(windows) = read_table(&txn, WINDOWS)? else {
        return Ok(None);
    };
    let rule = id.rule.as_str();
    let Some(row) = windows.get((rule, id.opened_ms)).map_err(db_err)? else {
        return Ok(None);
    };
    let closes_ms = row.value().0;
    let mut items = Vec::new();
    if let Some(files) = read_table(&txn, FILES)? {
        for row in files.range((rule, id.opened_ms, "")..).map_err(db_err)? {
            let (key, value) = row.map_err(db_err)?;
            let (r, opened, _) = key.value();
            if r != rule || opened != id.opened_ms {
                break;
            }
            items.push(serde_json::from_slice::<Item>(value.value())?);
        }
    }
    items.sort_by_key(|item| item.seq);
    let files = items.into_iter().map(|item| item.event).collect();
    Ok(Some(Window {
        id,
        closes_ms,
        files,
    }))
}

fn remove(db: &Database, id: &WindowId) -> Result<(), StoreError> {
    let rule = id.rule.as_str();
    let txn = db.begin_write().map_err(db_err)?;
    {
        let mut windows = txn.open_table(WINDOWS).map_err(db_err)?;
        let mut files = txn.open_table(FILES).map_err(db_err)?;
        let mut listed = txn.open_table(LISTED).map_err(db_err)?;
        windows.remove((rule, id.opened_ms)).map_err(db_err)?;
        let mut keys = Vec::new();
        for row in files.range((rule, id.opened_ms, "")..).map_err(db_err)? {
            let (key, _) = row.map_err(db_err)?;
            let (r, opened, upload) = key.value();
            if r != rule || opened != id.opened_ms {
                break;
            }
            keys.push(upload.to_owned());
        }
        for key in &keys {
            files
                .remove((rule, id.opened_ms, key.as_str()))
                .map_err(db_err)?;
            listed.remove((rule, key.as_str())).map_err(db_err)?;
        }
    }
    txn.commit().map_err(db_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::sample;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const MINUTE: u64 = 60_000;

    fn upload(key: &str, sequencer: &str) -> ObjectCreated {
        let mut event = sample(key, 10);
        event.sequencer = Some(sequencer.into());
        event
    }

    #[tokio::test]
    async fn uploads_gather_into_one_window_listed_once() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = DigestStore::open(&dir.path().join("state.redb"))?;
        let first = store.add("r", MINUTE, &upload("a", "1")).await?;
        assert!(first.new);
        let second = store.add("r", MINUTE, &upload("b", "1")).await?;
        assert_eq!(second, Added { new: true, ..first });
        // The same event delivered again changes nothing.
        let again = store.add("r", MINUTE, &upload("a", "1")).await?;
        assert_eq!(
            again,
            Added {
                new: false,
                ..first
            }
        );
        // A new version of the same key is a new upload.
        assert!(store.add("r", MINUTE, &upload("a", "2")).await?.new);

        let windows = store.windows().await?;
        assert_eq!(windows.len(), 1);
        let window = store.load(&windows[0].0).await?.ok_or("window")?;
        let keys: Vec<&str> = window.files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "a"]);
        assert_eq!(window.closes_ms, first.closes_ms);
        Ok(())
    }

    #[tokio::test]
    async fn rules_have_their_own_windows() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = DigestStore::open(&dir.path().join("state.redb"))?;
        store.add("one", MINUTE, &upload("a", "1")).await?;
        assert!(store.add("two", MINUTE, &upload("a", "1")).await?.new);
        assert_eq!(store.windows().await?.len(), 2);
        Ok(())
    }

    #[tokio::test]
    async fn a_closed_window_waits_and_the_next_upload_opens_another() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = DigestStore::open(&dir.path().join("state.redb"))?;
        store.add("r", 1, &upload("early", "1")).await?;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        // Still pending in the closed window: found there, not listed again.
        assert!(!store.add("r", MINUTE, &upload("early", "1")).await?.new);
        let late = store.add("r", MINUTE, &upload("late", "1")).await?;
        assert!(late.new);

        let windows = store.windows().await?;
        assert_eq!(windows.len(), 2, "{windows:?}");
        let closed = store.load(&windows[0].0).await?.ok_or("closed")?;
        assert_eq!(closed.files.len(), 1);
        assert_eq!(closed.files[0].key, "early");
        Ok(())
    }

    #[tokio::test]
    async fn windows_survive_a_restart_until_removed() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("state.redb");
        let before = DigestStore::open(&path)?;
        let added = before.add("r", MINUTE, &upload("a", "1")).await?;
        drop(before);

        let after = DigestStore::open(&path)?;
        assert_eq!(
            after.listed("r", &upload("a", "1")).await?,
            Some(added.closes_ms)
        );
        let (id, closes) = after.windows().await?.pop().ok_or("window")?;
        assert_eq!(closes, added.closes_ms);
        assert_eq!(after.load(&id).await?.ok_or("files")?.files.len(), 1);

        after.remove(&id).await?;
        assert!(after.windows().await?.is_empty());
        assert!(after.load(&id).await?.is_none());
        assert_eq!(after.listed("r", &upload("a", "1")).await?, None);
        // Once its window is gone the upload could be listed again: the dedupe store, not
        // the window, remembers what was sent.
        assert!(after.add("r", MINUTE, &upload("a", "1")).await?.new);
        Ok(())
    }
}
