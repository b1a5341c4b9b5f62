//! The durable event queue: uploads that `herald serve` and `herald dev` have acknowledged and
//! not yet delivered, kept in Herald's local state file ([`crate::store`]).
//!
//! Push platforms (Event Grid, Pub/Sub, MinIO, an S3 client) take a 2xx as "Herald has it".
//! With a `[queue]` configured, a receiver writes each upload here, commits, and only then
//! answers; the [`drain`] loop delivers from the queue and removes an entry once its
//! notifications are settled. A process that stops (or is killed) before that leaves the entry
//! in the file, and the next start delivers it; the dedupe store keeps notifications that were
//! already sent from going out twice.
//!
//! Entries are numbered in arrival order. Each row holds the normalized event, how many
//! delivery attempts it had, when the next may start and the last error, as JSON.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use redb::{
    Database, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    TableDefinition,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::event::ObjectCreated;
use crate::record::{Entry, ObjectRef, Outcome, Report};
use crate::sources::{Payload, Record};
use crate::store::{self, StoreError, now_millis};

pub mod drain;

/// Entry number to (when its next attempt may start, epoch milliseconds; the entry as JSON).
/// The time sits outside the JSON so finding what is due reads no JSON.
const ENTRIES: TableDefinition<u64, (u64, &[u8])> = TableDefinition::new("event_queue");

/// Entries the queue holds when the config does not say.
pub const DEFAULT_MAX_ENTRIES: u32 = 100_000;

/// The checked `[queue]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// The state file.
    pub path: PathBuf,
    /// Most entries waiting; beyond it new uploads are refused so their sender retries.
    pub max_entries: usize,
    /// Uploads delivered at the same time.
    pub concurrency: usize,
    /// Longest pause between two delivery attempts of one upload.
    pub retry_max: Duration,
    /// An upload still undeliverable this long after it arrived is parked as a dead letter.
    pub max_age: Duration,
    /// How long a stopping process waits for deliveries in flight.
    pub drain_grace: Duration,
}

/// The queue could not take or give back an entry.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue holds `max_entries` already; the upload was not accepted.
    #[error("the event queue is full ({max_entries} uploads waiting)")]
    Full {
        /// The configured bound.
        max_entries: usize,
    },
    /// The state file failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<redb::Error> for QueueError {
    fn from(err: redb::Error) -> Self {
        QueueError::Store(StoreError::Database(err))
    }
}

/// One waiting upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// Its number, in arrival order.
    #[serde(skip)]
    pub id: u64,
    /// The upload, normalized.
    pub event: ObjectCreated,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When it arrived, epoch milliseconds.
    pub enqueued_ms: u64,
    /// The next attempt starts no earlier than this, epoch milliseconds.
    pub not_before_ms: u64,
    /// Why the last attempt did not settle it, for people.
    pub last_error: Option<String>,
}

/// What [`Inbox::due`] found.
#[derive(Debug, Default)]
pub struct Due {
    /// Entries ready now, oldest first.
    pub ready: Vec<Queued>,
    /// When the earliest entry that is not ready yet becomes ready, epoch milliseconds.
    pub next_ms: Option<u64>,
}

/// The event queue in the state file; cheap to clone.
#[derive(Debug, Clone)]
pub struct Inbox {
    database: Arc<Database>,
    settings: QueueSettings,
    pushed: Arc<Notify>,
}

impl Inbox {
    /// Opens the queue in the state file the settings name, creating it if needed.
    pub fn open(settings: &QueueSettings) -> Result<Self, StoreError> {
        Ok(Inbox {
            database: store::open(&settings.path)?,
            settings: settings.clone(),
            pushed: Arc::new(Notify::new()),
        })
    }

    /// The settings it was opened with.
    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// Writes the uploads to the file and returns their numbers once the commit is durable.
    /// All or none: a full queue takes none of them.
    pub async fn push(&self, events: Vec<ObjectCreated>) -> Result<Vec<u64>, QueueError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let max_entries = self.settings.max_entries;
        let ids = self
            .blocking(move |db| push(db, events, max_entries))
            .await??;
        self.pushed.notify_one();
        Ok(ids)
    }

    /// Queues every upload in a parsed payload, in one commit, and reports each record:
    /// queued, ignored (not an upload), unreadable, or a provider test event. Nothing is queued
    /// when the commit fails; the caller answers so that the sender retries.
    pub async fn accept(&self, payload: Payload) -> Result<Report, QueueError> {
        let records = match payload {
            Payload::Test { kind } => {
                tracing::info!(kind = %kind, "provider test event acknowledged");
                return Ok(report(vec![(0, None, Outcome::Test { kind })]));
            }
            Payload::Records(records) => records,
        };
        let mut uploads = Vec::new();
        let mut entries = Vec::new();
        for (index, record) in records.into_iter().enumerate() {
            match record {
                Ok(Record::Created(event)) => uploads.push((index, event)),
                Ok(Record::Ignored { event_name }) => {
                    entries.push((index, None, Outcome::Ignored { event_name }));
                }
                Err(err) => {
                    tracing::error!(record = index, error = %err,
                        "record cannot be read and is dropped");
                    let error = err.to_string();
                    let (rule, transient, parked) = (None, false, None);
                    let failed = Outcome::Failed {
                        rule,
                        error,
                        transient,
                        parked,
                    };
                    entries.push((index, None, failed));
                }
            }
        }
        let objects: Vec<(usize, ObjectRef)> = uploads
            .iter()
            .map(|(index, event)| (*index, ObjectRef::of(event)))
            .collect();
        let ids = self
            .push(uploads.into_iter().map(|(_, e)| e).collect())
            .await?;
        for ((index, object), id) in objects.into_iter().zip(ids) {
            entries.push((index, Some(object), Outcome::Queued { id }));
        }
        entries.sort_by_key(|(index, _, _)| *index);
        Ok(report(entries))
    }

    /// Up to `limit` entries ready now, skipping the numbers in `busy` (being delivered).
    pub async fn due(&self, busy: HashSet<u64>, limit: usize) -> Result<Due, StoreError> {
        self.blocking(move |db| due(db, &busy, limit, now_millis()))
            .await?
    }

    /// Removes a settled entry.
    pub async fn remove(&self, id: u64) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let txn = lazy_write(db)?;
            txn.open_table(ENTRIES)
                .map_err(redb::Error::from)?
                .remove(id)
                .map_err(redb::Error::from)?;
            txn.commit().map_err(redb::Error::from)?;
            Ok(())
        })
        .await?
    }

    /// Keeps an entry for another attempt no earlier than `not_before_ms`.
    pub async fn defer(&self, entry: Queued) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let txn = lazy_write(db)?;
            let json = serde_json::to_vec(&entry)?;
            txn.open_table(ENTRIES)
                .map_err(redb::Error::from)?
                .insert(entry.id, (entry.not_before_ms, json.as_slice()))
                .map_err(redb::Error::from)?;
            txn.commit().map_err(redb::Error::from)?;
            Ok(())
        })
        .await?
    }

    /// How many uploads are queued, including those being delivered.
    pub async fn waiting(&self) -> Result<u64, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(redb::Error::from)?;
            match txn.open_table(ENTRIES) {
                Ok(table) => Ok(table.len().map_err(redb::Error::from)?),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
                Err(err) => Err(redb::Error::from(err).into()),
            }
        })
        .await?
    }

    /// Resolves after the next [`push`](Inbox::push), or at once if one happened since the
    /// last wait: the drain loop cannot miss an upload that arrived while it was busy.
    pub async fn pushed(&self) {
        self.pushed.notified().await;
    }

    /// Runs a blocking step on the file off the async threads (commits wait for the disk).
    async fn blocking<T: Send + 'static>(
        &self,
        step: impl FnOnce(&Database) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let database = Arc::clone(&self.database);
        Ok(tokio::task::spawn_blocking(move || step(&database)).await?)
    }
}

/// A write transaction that does not wait for the disk. Only pushes must be durable before
/// Herald answers; a removal or a new retry time lost in a crash (the file falls back to its
/// last durable commit) means the upload is delivered once more, which the dedupe store
/// answers as a duplicate, or retried a little early. The next durable commit, any push,
/// persists these too.
fn lazy_write(db: &Database) -> Result<redb::WriteTransaction, StoreError> {
    let mut txn = db.begin_write().map_err(redb::Error::from)?;
    txn.set_durability(redb::Durability::None)
        .map_err(redb::Error::from)?;
    Ok(txn)
}

fn report(entries: Vec<(usize, Option<ObjectRef>, Outcome)>) -> Report {
    let entries = entries
        .into_iter()
        .map(|(record, object, outcome)| Entry {
            record,
            object,
            outcome,
        })
        .collect();
    Report { entries }
}

/// Appends the uploads after the highest number in use, in one transaction.
fn push(
    db: &Database,
    events: Vec<ObjectCreated>,
    max_entries: usize,
) -> Result<Vec<u64>, QueueError> {
    let now = now_millis();
    let txn = db.begin_write().map_err(redb::Error::from)?;
    let ids = {
        let mut table = txn.open_table(ENTRIES).map_err(redb::Error::from)?;
        let waiting =
            usize::try_from(table.len().map_err(redb::Error::from)?).unwrap_or(usize::MAX);
        if waiting.saturating_add(events.len()) > max_entries {
            return Err(QueueError::Full { max_entries });
        }
        let last = table.last().map_err(redb::Error::from)?;
        let mut next = last.map_or(0, |(id, _)| id.value().saturating_add(1));
        let mut ids = Vec::with_capacity(events.len());
        for event in events {
            let entry = Queued {
                id: next,
                event,
                attempts: 0,
                enqueued_ms: now,
                not_before_ms: now,
                last_error: None,
            };
            let json = serde_json::to_vec(&entry).map_err(StoreError::from)?;
            table
                .insert(next, (now, json.as_slice()))
                .map_err(redb::Error::from)?;
            ids.push(next);
            next = next.saturating_add(1);
        }
        ids
    };
    txn.commit().map_err(redb::Error::from)?;
    Ok(ids)
}

/// Reads entries in arrival order: those ready at `now` (up to `limit`, not in `busy`) and the
/// earliest time one of the others becomes ready.
fn due(db: &Database, busy: &HashSet<u64>, limit: usize, now: u64) -> Result<Due, StoreError> {
    let txn = db.begin_read().map_err(redb::Error::from)?;
    let table = match txn.open_table(ENTRIES) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Due::default()),
        Err(err) => return Err(redb::Error::from(err).into()),
    };
    let mut found = Due::default();
    for row in table.iter().map_err(redb::Error::from)? {
        let (id, value) = row.map_err(redb::Error::from)?;
        let id = id.value();
        if busy.contains(&id) {
            continue;
        }
        let (not_before, json) = value.value();
        if not_before > now {
            found.next_ms = Some(
                found
                    .next_ms
                    .map_or(not_before, |next| next.min(not_before)),
            );
            continue;
        }
        if found.ready.len() == limit {
            // More are ready than asked for: the caller comes back as soon as it has room.
            found.next_ms = Some(now);
            break;
        }
        let mut entry: Queued = serde_json::from_slice(json)?;
        entry.id = id;
        found.ready.push(entry);
    }
    Ok(found)
}

#[cfg(test)]
mod tests;
