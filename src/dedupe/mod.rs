//! Dedupe: one email per upload and rule, however often the platform delivers the event.
//!
//! Every platform Herald listens to delivers at least once. Before sending, the pipeline
//! *claims* the email's key with a lease; after a successful send it marks the key *done*,
//! after a failed one it *releases* it so a retry can claim it again. A crash between claim and
//! send leaves a claim whose lease runs out, after which a redelivery may claim it: the
//! notification is late, never lost. A redelivery that arrives during the send finds the claim
//! held and backs off instead of sending twice.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::aws::AwsSetupError;
use crate::config::Config;
use crate::store::StoreError;

pub mod dynamodb;
pub mod local;

pub use dynamodb::DynamoDbStore;
pub use local::LocalStore;

/// How long sent emails are remembered when the config has no `[dedupe]`.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The checked `[dedupe]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupeSettings {
    /// Where keys are kept.
    pub backend: DedupeBackend,
    /// How long a sent email is remembered.
    pub retention: Duration,
}

/// The store named by `[dedupe] type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DedupeBackend {
    /// [`MemoryStore`].
    Memory,
    /// [`DynamoDbStore`] over this table.
    DynamoDb {
        /// Table name.
        table: String,
    },
    /// [`LocalStore`] in this state file.
    Local {
        /// Path of the redb file, relative to the working directory.
        path: std::path::PathBuf,
    },
}

/// The configured dedupe store could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DedupeSetupError {
    /// The AWS SDK could not be set up for DynamoDB.
    #[error(transparent)]
    Aws(#[from] AwsSetupError),
    /// The local state file could not be opened.
    #[error(transparent)]
    Local(#[from] StoreError),
}

/// Builds the store the config names, or a [`MemoryStore`] keeping keys for
/// [`DEFAULT_RETENTION`] when it names none. Called once at start-up, inside the async
/// runtime; the store is then shared.
pub async fn build(config: &Config) -> Result<Arc<dyn DedupeStore>, DedupeSetupError> {
    let Some(settings) = &config.dedupe else {
        return Ok(Arc::new(MemoryStore::new(DEFAULT_RETENTION)));
    };
    match &settings.backend {
        DedupeBackend::Memory => Ok(Arc::new(MemoryStore::new(settings.retention))),
        DedupeBackend::DynamoDb { table } => {
            let store = DynamoDbStore::from_env(table, settings.retention).await?;
            Ok(Arc::new(store))
        }
        DedupeBackend::Local { path } => Ok(Arc::new(LocalStore::open(path, settings.retention)?)),
    }
}

/// Where sent emails are remembered, in words, for start-up messages.
pub fn describe(config: &Config) -> String {
    match config.dedupe.as_ref().map(|s| &s.backend) {
        None => "memory (no [dedupe] section)".into(),
        Some(DedupeBackend::Memory) => "memory".into(),
        Some(DedupeBackend::DynamoDb { table }) => format!("dynamodb table {table}"),
        Some(DedupeBackend::Local { path }) => format!("local file {}", path.display()),
    }
}

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the key now and should send.
    Acquired,
    /// The email was already sent: do nothing.
    Done,
    /// Someone else holds an unexpired lease and may be sending right now: try again later.
    Busy,
}

/// A dedupe store could not answer.
#[derive(Debug, thiserror::Error)]
#[error("{store} dedupe store failed: {reason}")]
pub struct DedupeError {
    /// Which store (`memory`, `dynamodb`, ...).
    pub store: &'static str,
    /// What went wrong.
    pub reason: String,
    /// Whether asking again later may succeed (throttling, timeouts).
    pub transient: bool,
}

/// The future returned by [`DedupeStore`] methods.
pub type DedupeFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DedupeError>> + Send + 'a>>;

/// Remembers which emails were sent. Keys are opaque strings (the pipeline uses the email's
/// deterministic `Message-ID`); how long a done key is kept is the store's own setting.
pub trait DedupeStore: Send + Sync {
    /// Short name for logs.
    fn name(&self) -> &'static str;

    /// Takes the key for `lease`, unless it is done or someone else's lease has not run out.
    fn claim<'a>(&'a self, key: &'a str, lease: Duration) -> DedupeFuture<'a, Claim>;

    /// Marks a claimed key as sent, so later claims answer [`Claim::Done`].
    fn complete<'a>(&'a self, key: &'a str) -> DedupeFuture<'a, ()>;

    /// Gives a claimed key back after a failed send, so the next delivery can claim it.
    fn release<'a>(&'a self, key: &'a str) -> DedupeFuture<'a, ()>;
}

/// A key's state in the [`MemoryStore`].
#[derive(Debug, Clone, Copy)]
enum Held {
    Claimed { until: Instant },
    Done { until: Instant },
}

/// A dedupe store in process memory, for one long-running process (`herald dev`, tests).
/// Forgotten on restart; the durable stores share its contract.
#[derive(Debug)]
pub struct MemoryStore {
    keys: Mutex<Keys>,
    retention: Duration,
}

#[derive(Debug, Default)]
struct Keys {
    held: HashMap<String, Held>,
    /// Operations since the last sweep of expired keys.
    since_sweep: usize,
}

/// Operations between sweeps of expired keys, so memory stays bounded by what is live.
const SWEEP_EVERY: usize = 1024;

impl MemoryStore {
    /// A store that remembers sent keys for `retention`.
    pub fn new(retention: Duration) -> Self {
        MemoryStore {
            keys: Mutex::new(Keys::default()),
            retention,
        }
    }

    fn with_keys<T>(&self, f: impl FnOnce(&mut HashMap<String, Held>) -> T) -> T {
        // A poisoned lock only means another task panicked mid-update of a plain map; the
        // map itself is still consistent, so keep using it.
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.since_sweep += 1;
        if keys.since_sweep >= SWEEP_EVERY {
            let now = Instant::now();
            keys.held.retain(|_, held| match held {
                Held::Claimed { until } | Held::Done { until } => *until > now,
            });
            keys.since_sweep = 0;
        }
        f(&mut keys.held)
    }

    fn claim_now(&self, key: &str, lease: Duration) -> Claim {
        let now = Instant::now();
        self.with_keys(|keys| match keys.get(key) {
            Some(Held::Done { until }) if *until > now => Claim::Done,
            Some(Held::Claimed { until }) if *until > now => Claim::Busy,
            _ => {
                let until = now + lease;
                keys.insert(key.to_owned(), Held::Claimed { until });
                Claim::Acquired
            }
        })
    }
}

impl DedupeStore for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn claim<'a>(&'a self, key: &'a str, lease: Duration) -> DedupeFuture<'a, Claim> {
        Box::pin(async move { Ok(self.claim_now(key, lease)) })
    }

    fn complete<'a>(&'a self, key: &'a str) -> DedupeFuture<'a, ()> {
        let until = Instant::now() + self.retention;
        self.with_keys(|keys| keys.insert(key.to_owned(), Held::Done { until }));
        Box::pin(async { Ok(()) })
    }

    fn release<'a>(&'a self, key: &'a str) -> DedupeFuture<'a, ()> {
        self.with_keys(|keys| {
            if let Some(Held::Claimed { .. }) = keys.get(key) {
                keys.remove(key);
            }
        });
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn claim_complete_then_done() -> Result<(), DedupeError> {
        let store = MemoryStore::new(Duration::from_secs(3600));
        assert_eq!(store.claim("k", LEASE).await?, Claim::Acquired);
        assert_eq!(store.claim("k", LEASE).await?, Claim::Busy);
        store.complete("k").await?;
        assert_eq!(store.claim("k", LEASE).await?, Claim::Done);
        store.release("k").await?;
        assert_eq!(
            store.claim("k", LEASE).await?,
            Claim::Done,
            "release keeps done keys"
        );
        Ok(())
    }

    #[tokio::test]
    async fn release_lets_the_next_delivery_claim() -> Result<(), DedupeError> {
        let store = MemoryStore::new(Duration::from_secs(3600));
        assert_eq!(store.claim("k", LEASE).await?, Claim::Acquired);
        store.release("k").await?;
        assert_eq!(store.claim("k", LEASE).await?, Claim::Acquired);
        Ok(())
    }

    #[tokio::test]
    async fn expired_lease_can_be_claimed_again() -> Result<(), DedupeError> {
        let store = MemoryStore::new(Duration::from_secs(3600));
        assert_eq!(store.claim("k", Duration::ZERO).await?, Claim::Acquired);
        assert_eq!(store.claim("k", LEASE).await?, Claim::Acquired);
        Ok(())
    }

    #[tokio::test]
    async fn done_keys_are_forgotten_after_retention() -> Result<(), DedupeError> {
        let store = MemoryStore::new(Duration::ZERO);
        assert_eq!(store.claim("k", LEASE).await?, Claim::Acquired);
        store.complete("k").await?;
        assert_eq!(store.claim("k", LEASE).await?, Claim::Acquired);
        Ok(())
    }
}
