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
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
