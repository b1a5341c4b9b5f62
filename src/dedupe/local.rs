//! A [`DedupeStore`] in Herald's local state file ([`crate::store`]): survives restarts of one
//! machine's process (`herald invoke` run after run, `herald dev`), not shared between
//! machines.
//!
//! One row per key: its state (`claimed` or `done`), until when that state holds (epoch
//! milliseconds: the lease end, or the end of retention) and the owner of a claim. Every
//! transition is one redb write transaction, and redb runs one at a time, so two tasks racing
//! on the same upload cannot both acquire it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableTable as _, TableDefinition};
use tracing::warn;

use super::dynamodb::owner_id;
use super::{Claim, DedupeError, DedupeFuture, DedupeStore};
use crate::store::{self, StoreError, now_millis};

/// The name in errors and logs.
const NAME: &str = "local";

/// Key to (state, until in epoch milliseconds, owner of a claim).
const KEYS: TableDefinition<&str, (u8, u64, &str)> = TableDefinition::new("dedupe_keys");

const CLAIMED: u8 = 1;
const DONE: u8 = 2;

/// Remembers sent emails in the local state file.
#[derive(Debug, Clone)]
pub struct LocalStore {
    database: Arc<Database>,
    retention: Duration,
    /// Identifies this process's claims, so a release never drops a claim taken over by a
    /// later process, and a claim left by an earlier one is known as such.
    owner: Arc<str>,
}

impl LocalStore {
    /// Opens (or creates) the state file at `path`, keeping done keys for `retention`, and
    /// forgets keys whose lease or retention has run out.
    pub fn open(path: &Path, retention: Duration) -> Result<Self, StoreError> {
        let store = LocalStore {
            database: store::open(path)?,
            retention,
            owner: process_owner(),
        };
        store.sweep()?;
        Ok(store)
    }

    /// The same file as another process would see it, for tests of what a restart finds.
    #[cfg(test)]
    fn as_another_process(&self) -> Self {
        LocalStore {
            owner: owner_id().into(),
            ..self.clone()
        }
    }

    /// Drops expired rows, so the file stays as large as what is live. Once per open: a
    /// process lives for one payload (`invoke`) or restarts now and then (`dev`).
    fn sweep(&self) -> Result<(), StoreError> {
        let now = now_millis();
        let txn = self.database.begin_write().map_err(redb::Error::from)?;
        txn.open_table(KEYS)
            .map_err(redb::Error::from)?
            .retain(|_, (_, until, _)| until > now)
            .map_err(redb::Error::from)?;
        txn.commit().map_err(redb::Error::from)?;
        Ok(())
    }

    /// Runs a blocking step on the file off the async threads (commits wait for the disk).
    async fn blocking<T: Send + 'static>(
        &self,
        step: impl FnOnce(&Database, &str) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, DedupeError> {
        let (database, owner) = (Arc::clone(&self.database), Arc::clone(&self.owner));
        let joined = tokio::task::spawn_blocking(move || step(&database, &owner)).await;
        match joined {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(store_error(StoreError::Database(err))),
            Err(err) => Err(store_error(StoreError::Task(err))),
        }
    }
}

impl DedupeStore for LocalStore {
    fn name(&self) -> &'static str {
        NAME
    }

    fn claim<'a>(&'a self, key: &'a str, lease: Duration) -> DedupeFuture<'a, Claim> {
        let key = key.to_owned();
        let lease = millis(lease);
        Box::pin(self.blocking(move |db, owner| claim(db, &key, lease, owner)))
    }

    fn complete<'a>(&'a self, key: &'a str) -> DedupeFuture<'a, ()> {
        let key = key.to_owned();
        let until = now_millis().saturating_add(millis(self.retention));
        Box::pin(self.blocking(move |db, _| complete(db, &key, until)))
    }

    fn release<'a>(&'a self, key: &'a str) -> DedupeFuture<'a, ()> {
        let key = key.to_owned();
        Box::pin(self.blocking(move |db, owner| release(db, &key, owner)))
    }
}

/// Takes `key` unless it is done or under this process's unexpired lease.
///
/// A live claim by another owner was left by a process that stopped mid-send: redb lets one
/// process at a time open the file, so that owner cannot be running. Its send may or may not
/// have reached the server; taking the claim over delivers the notification late rather than
/// never (at the risk of one duplicate), instead of waiting out the lease.
fn claim(db: &Database, key: &str, lease: u64, owner: &str) -> Result<Claim, redb::Error> {
    let now = now_millis();
    let txn = db.begin_write()?;
    let claim = {
        let mut keys = txn.open_table(KEYS)?;
        let held = keys.get(key)?.map(|row| {
            let (state, until, held_by) = row.value();
            (state, until, held_by == owner)
        });
        match held {
            Some((DONE, until, _)) if until > now => Claim::Done,
            Some((CLAIMED, until, true)) if until > now => Claim::Busy,
            held => {
                if let Some((CLAIMED, until, false)) = held
                    && until > now
                {
                    warn!(message_id = %key,
                        "claim left by a stopped process taken over; its send may have gone out");
                }
                keys.insert(key, (CLAIMED, now.saturating_add(lease), owner))?;
                Claim::Acquired
            }
        }
    };
    txn.commit()?;
    Ok(claim)
}

fn complete(db: &Database, key: &str, until: u64) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(KEYS)?.insert(key, (DONE, until, ""))?;
    txn.commit()?;
    Ok(())
}

/// Removes `key` only while it is still this owner's claim.
fn release(db: &Database, key: &str, owner: &str) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut keys = txn.open_table(KEYS)?;
        let ours = keys.get(key)?.is_some_and(|row| {
            let (state, _, held_by) = row.value();
            state == CLAIMED && held_by == owner
        });
        if ours {
            keys.remove(key)?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// One owner id for every store this process opens: two handles on the file in one process
/// (dedupe and replay, say) must see each other's claims as live.
fn process_owner() -> Arc<str> {
    static OWNER: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    Arc::clone(OWNER.get_or_init(|| owner_id().into()))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A failing state file needs an operator (disk full, file damaged): not transient.
fn store_error(err: StoreError) -> DedupeError {
    let mut reason = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(err) = cause {
        reason = format!("{reason}: {err}");
        cause = err.source();
    }
    DedupeError {
        store: NAME,
        reason,
        transient: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(60);
    const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[tokio::test]
    async fn claim_complete_then_done() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = LocalStore::open(&dir.path().join("state.redb"), WEEK)?;
        assert_eq!(store.claim("k", LEASE).await?, Claim::Acquired);
        assert_eq!(store.claim("k", LEASE).await?, Claim::Busy);
        store.complete("k").await?;
        assert_eq!(store.claim("k", LEASE).await?, Claim::Done);
        store.release("k").await?;
        assert_eq!(
            store.claim("k", LEASE).await?,
            Claim::Done,
            "done survives release"
        );
        Ok(())
    }

    #[tokio::test]
    async fn release_and_expired_leases_free_the_key() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = LocalStore::open(&dir.path().join("state.redb"), WEEK)?;
        assert_eq!(store.claim("k", LEASE).await?, Claim::Acquired);
        store.release("k").await?;
        assert_eq!(store.claim("k", Duration::ZERO).await?, Claim::Acquired);
        assert_eq!(
            store.claim("k", LEASE).await?,
            Claim::Acquired,
            "lease ran out"
        );
        Ok(())
    }

    #[tokio::test]
    async fn done_keys_are_forgotten_after_retention() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = LocalStore::open(&dir.path().join("state.redb"), Duration::ZERO)?;
        assert_eq!(store.claim("k", LEASE).await?, Claim::Acquired);
        store.complete("k").await?;
        assert_eq!(store.claim("k", LEASE).await?, Claim::Acquired);
        Ok(())
    }

    #[tokio::test]
    async fn done_keys_survive_a_restart_and_a_stopped_process_claim_is_taken_over() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("state.redb");
        let before = LocalStore::open(&path, WEEK)?;
        assert_eq!(before.claim("sent", LEASE).await?, Claim::Acquired);
        before.complete("sent").await?;
        assert_eq!(before.claim("sending", LEASE).await?, Claim::Acquired);

        let after = before.as_another_process();
        drop(before);
        assert_eq!(after.claim("sent", LEASE).await?, Claim::Done);
        assert_eq!(after.claim("sending", LEASE).await?, Claim::Acquired);
        assert_eq!(
            after.claim("sending", LEASE).await?,
            Claim::Busy,
            "now ours"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_second_handle_in_the_same_process_sees_the_claim_as_live() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("state.redb");
        let first = LocalStore::open(&path, WEEK)?;
        let second = LocalStore::open(&path, WEEK)?;
        assert_eq!(first.claim("k", LEASE).await?, Claim::Acquired);
        assert_eq!(second.claim("k", LEASE).await?, Claim::Busy);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_claims_acquire_once() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = LocalStore::open(&dir.path().join("state.redb"), WEEK)?;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..2 {
            let store = store.clone();
            tasks.spawn(async move { store.claim("k", LEASE).await });
        }
        let mut claims = Vec::new();
        while let Some(claim) = tasks.join_next().await {
            claims.push(claim??);
        }
        claims.sort_by_key(|c| *c == Claim::Busy);
        assert_eq!(claims, [Claim::Acquired, Claim::Busy]);
        Ok(())
    }
}
