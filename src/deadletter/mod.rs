//! The dead-letter store: notifications that failed for good, kept in Herald's local state
//! file ([`crate::store`]) until an operator replays or drops them (`herald dlq`).
//!
//! An entry is one upload and one rule: the normalized event (so a replay needs no provider
//! payload), the rule's name, the last error and how often it failed. Its id is derived from
//! the upload and the rule, so the same notification failing again updates its entry instead of
//! adding a second one. The store is bounded: entries older than the configured age go first,
//! then the oldest beyond the configured count, each with a WARN.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use jiff::Timestamp;
use redb::{
    Database, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    TableDefinition,
};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::event::ObjectCreated;
use crate::store::{self, StoreError};

mod replay;

pub use replay::{Replayed, replay};

/// Entry id to the entry as JSON.
const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("dead_letters");

/// Entries kept when the config does not say.
pub const DEFAULT_MAX_ENTRIES: u32 = 1000;

/// Days an entry is kept after its last failure when the config does not say.
pub const DEFAULT_MAX_AGE_DAYS: u32 = 30;

/// The checked `[dead_letter]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterSettings {
    /// The state file.
    pub path: PathBuf,
    /// Most entries kept; the oldest beyond it are dropped.
    pub max_entries: usize,
    /// Entries whose last failure is older than this are dropped.
    pub max_age: Duration,
}

impl DeadLetterSettings {
    /// The default bounds, in the state file at `path`.
    pub fn in_file(path: PathBuf) -> Self {
        DeadLetterSettings {
            path,
            max_entries: usize::try_from(DEFAULT_MAX_ENTRIES).unwrap_or(usize::MAX),
            max_age: Duration::from_secs(u64::from(DEFAULT_MAX_AGE_DAYS) * 24 * 3600),
        }
    }
}

/// One parked notification, with what a replay needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Short id, stable for the same upload and rule.
    pub id: String,
    /// The rule whose notification failed.
    pub rule: String,
    /// The upload, normalized.
    pub event: ObjectCreated,
    /// The last error, for people.
    pub error: String,
    /// Whether the last error said a retry may help.
    pub transient: bool,
    /// How many times it failed, counting replays.
    pub attempts: u32,
    /// When it first failed.
    pub first_failed: Timestamp,
    /// When it last failed.
    pub last_failed: Timestamp,
}

/// A failure to park: which upload, which rule, what went wrong.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    /// The rule whose notification failed.
    pub rule: &'a str,
    /// The upload.
    pub event: &'a ObjectCreated,
    /// What went wrong.
    pub error: &'a str,
    /// Whether a retry may help.
    pub transient: bool,
}

/// The dead-letter store in the state file; cheap to clone.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    database: Arc<Database>,
    max_entries: usize,
    max_age: Duration,
}

impl DeadLetters {
    /// Opens the store in the state file the settings name, creating it if needed.
    pub fn open(settings: &DeadLetterSettings) -> Result<Self, StoreError> {
        Ok(DeadLetters {
            database: store::open(&settings.path)?,
            max_entries: settings.max_entries,
            max_age: settings.max_age,
        })
    }

    /// Keeps a failure, or counts one more attempt on the entry it already has; returns the
    /// entry's id. Drops entries beyond the store's bounds, with a WARN for each.
    pub async fn park(&self, failure: Failure<'_>) -> Result<String, StoreError> {
        let now = Timestamp::now();
        let id = entry_id(failure.event, failure.rule);
        let fresh = DeadLetter {
            id: id.clone(),
            rule: failure.rule.to_owned(),
            event: failure.event.clone(),
            error: failure.error.to_owned(),
            transient: failure.transient,
            attempts: 1,
            first_failed: now,
            last_failed: now,
        };
        let (max_entries, max_age) = (self.max_entries, self.max_age);
        let dropped = self
            .blocking(move |db| park(db, fresh, max_entries, max_age))
            .await?;
        for entry in dropped {
            warn!(id = %entry.id, rule = %entry.rule, bucket = %entry.event.bucket,
                key = %entry.event.key, "dead letter dropped to keep the store bounded");
        }
        Ok(id)
    }

    /// Every entry, oldest first failure first.
    pub async fn list(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(redb::Error::from)?;
            let table = match txn.open_table(ENTRIES) {
                Ok(table) => table,
                // Nothing was ever parked in this file.
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(err) => return Err(redb::Error::from(err).into()),
            };
            let mut entries = Vec::new();
            for row in table.iter().map_err(redb::Error::from)? {
                let (_, value) = row.map_err(redb::Error::from)?;
                entries.push(serde_json::from_slice::<DeadLetter>(value.value())?);
            }
            entries.sort_by_key(|e| (e.first_failed, e.id.clone()));
            Ok(entries)
        })
        .await
    }

    /// The entry with this id, if there is one.
    pub async fn get(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let id = id.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(redb::Error::from)?;
            let table = match txn.open_table(ENTRIES) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(err) => return Err(redb::Error::from(err).into()),
            };
            match table.get(id.as_str()).map_err(redb::Error::from)? {
                Some(row) => Ok(Some(serde_json::from_slice(row.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Removes the entry with this id; false when there was none.
    pub async fn remove(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(redb::Error::from)?;
            let removed = txn
                .open_table(ENTRIES)
                .map_err(redb::Error::from)?
                .remove(id.as_str())
                .map_err(redb::Error::from)?
                .is_some();
            txn.commit().map_err(redb::Error::from)?;
            Ok(removed)
        })
        .await
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

/// Inserts or updates `fresh`, then enforces the bounds; returns the entries it dropped.
fn park(
    db: &Database,
    fresh: DeadLetter,
    max_entries: usize,
    max_age: Duration,
) -> Result<Vec<DeadLetter>, StoreError> {
    let txn = db.begin_write().map_err(redb::Error::from)?;
    let dropped = {
        let mut table = txn.open_table(ENTRIES).map_err(redb::Error::from)?;
        let previous: Option<DeadLetter> = match table.get(fresh.id.as_str()) {
            Ok(Some(row)) => Some(serde_json::from_slice(row.value())?),
            Ok(None) => None,
            Err(err) => return Err(redb::Error::from(err).into()),
        };
        let entry = match previous {
            Some(previous) => DeadLetter {
                attempts: previous.attempts.saturating_add(1),
                first_failed: previous.first_failed,
                ..fresh
            },
            None => fresh,
        };
        let json = serde_json::to_vec(&entry)?;
        table
            .insert(entry.id.as_str(), json.as_slice())
            .map_err(redb::Error::from)?;
        let dropped = over_bounds(&table, &entry.id, max_entries, max_age)?;
        for entry in &dropped {
            table.remove(entry.id.as_str()).map_err(redb::Error::from)?;
        }
        dropped
    };
    txn.commit().map_err(redb::Error::from)?;
    Ok(dropped)
}

/// The entries to drop: too old, then the oldest beyond `max_entries`. Never `keep`, the
/// entry just parked.
fn over_bounds(
    table: &redb::Table<&str, &[u8]>,
    keep: &str,
    max_entries: usize,
    max_age: Duration,
) -> Result<Vec<DeadLetter>, StoreError> {
    let cutoff = Timestamp::now()
        .checked_sub(jiff::SignedDuration::try_from(max_age).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MIN);
    let count = usize::try_from(table.len().map_err(redb::Error::from)?).unwrap_or(usize::MAX);
    let mut entries = Vec::with_capacity(count);
    for row in table.iter().map_err(redb::Error::from)? {
        let (_, value) = row.map_err(redb::Error::from)?;
        entries.push(serde_json::from_slice::<DeadLetter>(value.value())?);
    }
    entries.retain(|entry| entry.id != keep);
    entries.sort_by_key(|e| (e.first_failed, e.id.clone()));

    let (old, mut young): (Vec<_>, Vec<_>) = entries
        .into_iter()
        .partition(|entry| entry.last_failed < cutoff);
    // `young` plus the kept entry must fit in max_entries.
    let excess = (young.len() + 1).saturating_sub(max_entries.max(1));
    let mut dropped = old;
    dropped.extend(young.drain(..excess));
    Ok(dropped)
}

/// Ten hex digits of a hash over the upload's dedupe key and the rule name.
fn entry_id(event: &ObjectCreated, rule: &str) -> String {
    let input = format!("{}\u{0}{rule}", event.dedupe_key());
    let hash = digest::digest(&digest::SHA256, input.as_bytes());
    hash.as_ref()[..5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests;
