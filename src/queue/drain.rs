//! The loop that delivers from the event queue: several uploads at a time, each settled on
//! its own.
//!
//! An upload is settled when none of its notifications failed in a way a retry may help: it
//! was sent, was a duplicate, was skipped or matched nothing, or failed for good (the pipeline
//! has parked that failure as a dead letter). Otherwise it stays queued and is tried again
//! after a backoff that doubles per attempt, up to `[queue] retry_max_secs`; once it is older
//! than `[queue] max_age_hours` its failing notifications are parked as dead letters too, so
//! nothing is dropped and `herald dlq replay` can send them later.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::{BuildHasher as _, RandomState};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use super::{Inbox, QueueSettings, Queued};
use crate::deadletter::{DeadLetters, Failure};
use crate::pipeline::Pipeline;
use crate::record::{Entry, Handled, Outcome};
use crate::store::now_millis;

/// The first retry waits about this long; each later one twice as long as the one before.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// How long to wait before looking again after the state file failed to answer.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Longest sleep with nothing due, so the loop notices a clock jump.
const IDLE: Duration = Duration::from_secs(60);

/// Delivers queued uploads until `shutdown` resolves; reports each attempt to `handled`.
pub struct Drain {
    pipeline: Pipeline,
    inbox: Inbox,
    dead_letters: DeadLetters,
    settings: QueueSettings,
    handled: Option<mpsc::UnboundedSender<Handled>>,
}

impl Drain {
    /// A loop over `inbox`, parking what cannot be delivered in `dead_letters`.
    pub fn new(
        pipeline: Pipeline,
        inbox: Inbox,
        dead_letters: DeadLetters,
        settings: QueueSettings,
    ) -> Self {
        Drain {
            pipeline,
            inbox,
            dead_letters,
            settings,
            handled: None,
        }
    }

    /// Sends what each attempt did to `handled` (`herald dev` prints one line per upload).
    pub fn reporting(mut self, handled: mpsc::UnboundedSender<Handled>) -> Self {
        self.handled = Some(handled);
        self
    }

    /// Runs until `shutdown` resolves, then waits up to `[queue] drain_secs` for the
    /// deliveries in flight. What is still queued then is delivered after the next start.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        match self.inbox.waiting().await {
            Ok(0) => {}
            Ok(waiting) => info!(waiting, "event queue resumed"),
            Err(err) => warn!(error = %err, "event queue length unknown"),
        }
        let mut tasks = JoinSet::new();
        let mut busy = HashSet::new();
        tokio::pin!(shutdown);
        loop {
            let wait = self.start_due(&mut tasks, &mut busy).await;
            tokio::select! {
                Some(done) = tasks.join_next() => forget(done, &mut busy),
                () = self.inbox.pushed() => {}
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => break,
            }
        }
        self.finish(tasks, busy).await;
    }

    /// Starts what is due while there is room; returns how long to sleep at most before
    /// looking again.
    async fn start_due(&self, tasks: &mut JoinSet<u64>, busy: &mut HashSet<u64>) -> Duration {
        let room = self.settings.concurrency.saturating_sub(busy.len());
        if room == 0 {
            return IDLE;
        }
        let due = match self.inbox.due(busy.clone(), room).await {
            Ok(due) => due,
            Err(err) => {
                error!(error = %err, "event queue unreadable; retrying");
                return STORE_RETRY;
            }
        };
        for entry in due.ready {
            busy.insert(entry.id);
            let attempt = Attempt {
                pipeline: self.pipeline.clone(),
                inbox: self.inbox.clone(),
                dead_letters: self.dead_letters.clone(),
                settings: self.settings.clone(),
                handled: self.handled.clone(),
            };
            tasks.spawn(attempt.run(entry));
        }
        let now = now_millis();
        due.next_ms.map_or(IDLE, |next| {
            Duration::from_millis(next.saturating_sub(now)).min(IDLE)
        })
    }

    /// Waits a bounded time for the deliveries in flight, then leaves the rest queued.
    async fn finish(&self, mut tasks: JoinSet<u64>, mut busy: HashSet<u64>) {
        let grace = self.settings.drain_grace;
        let drained = tokio::time::timeout(grace, async {
            while let Some(done) = tasks.join_next().await {
                forget(done, &mut busy);
            }
        })
        .await;
        if drained.is_err() {
            tasks.abort_all();
            warn!(
                in_flight = busy.len(),
                grace_secs = grace.as_secs(),
                "deliveries cut off at shutdown; they stay queued for the next start"
            );
        }
        match self.inbox.waiting().await {
            Ok(0) => info!("event queue empty at shutdown"),
            Ok(waiting) => info!(waiting, "event queue kept for the next start"),
            Err(err) => warn!(error = %err, "event queue length unknown"),
        }
    }
}

fn forget(done: Result<u64, tokio::task::JoinError>, busy: &mut HashSet<u64>) {
    match done {
        Ok(id) => {
            busy.remove(&id);
        }
        // A delivery task panicked: its entry stays in the file and is retried after a
        // restart; keeping its number busy here stops a hot loop over it.
        Err(err) => error!(error = %err, "queued delivery task failed"),
    }
}

/// One delivery attempt of one queued upload, with what settling it needs.
struct Attempt {
    pipeline: Pipeline,
    inbox: Inbox,
    dead_letters: DeadLetters,
    settings: QueueSettings,
    handled: Option<mpsc::UnboundedSender<Handled>>,
}

impl Attempt {
    /// Delivers the upload and settles, defers or parks its entry; returns its number.
    async fn run(self, mut entry: Queued) -> u64 {
        let id = entry.id;
        entry.attempts = entry.attempts.saturating_add(1);
        let index = usize::try_from(id).unwrap_or(usize::MAX);
        let entries = self.pipeline.handle_event(index, &entry.event).await;
        let retry = retryable(&entries);

        let settled = if retry.is_empty() {
            self.inbox.remove(id).await
        } else if now_millis().saturating_sub(entry.enqueued_ms) >= millis(self.settings.max_age) {
            self.park(&entry, &retry).await;
            self.inbox.remove(id).await
        } else {
            self.defer(&mut entry, &retry);
            self.inbox.defer(entry.clone()).await
        };
        if let Err(err) = settled {
            // The entry stays as it was: delivered again later, and deduplicated then.
            error!(queued = id, error = %err, "event queue entry not updated");
        }

        if let Some(handled) = &self.handled {
            // The receiver only goes away when the command is shutting down.
            let _ = handled.send(Handled {
                event: entry.event,
                entries,
            });
        }
        id
    }

    /// Schedules the next attempt.
    fn defer(&self, entry: &mut Queued, retry: &HashMap<Option<String>, String>) {
        let wait = backoff(entry.attempts, self.settings.retry_max);
        entry.not_before_ms = now_millis().saturating_add(millis(wait));
        entry.last_error = Some(retry.values().cloned().collect::<Vec<_>>().join("; "));
        warn!(
            queued = entry.id,
            attempts = entry.attempts,
            retry_in_ms = wait.as_millis(),
            "queued upload not delivered yet; retrying later"
        );
    }

    /// Parks each notification that kept failing, so an operator can replay it.
    async fn park(&self, entry: &Queued, retry: &HashMap<Option<String>, String>) {
        for (rule, error) in retry {
            let Some(rule) = rule else {
                error!(queued = entry.id, error = %error,
                    "queued upload given up without a rule to park it under");
                continue;
            };
            let failure = Failure {
                rule,
                event: &entry.event,
                error,
                transient: true,
            };
            match self.dead_letters.park(failure).await {
                Ok(parked) => error!(queued = entry.id, rule = %rule, id = %parked,
                    attempts = entry.attempts, "queued upload given up; parked for herald dlq"),
                Err(err) => error!(queued = entry.id, rule = %rule, error = %err,
                    "queued upload given up and not parked"),
            }
        }
    }
}

/// The notifications a retry may still deliver: rule to its last error.
fn retryable(entries: &[Entry]) -> HashMap<Option<String>, String> {
    entries
        .iter()
        .filter_map(|entry| match &entry.outcome {
            Outcome::Failed {
                rule,
                error,
                transient: true,
                ..
            } => Some((rule.clone(), error.clone())),
            _ => None,
        })
        .collect()
}

/// The pause before attempt `attempts + 1`: doubling from [`FIRST_RETRY`], at most `max`,
/// with jitter (half to all of it) so a burst that failed together does not retry together.
fn backoff(attempts: u32, max: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).min(20);
    let full = FIRST_RETRY.saturating_mul(1 << doublings).min(max);
    let jitter = RandomState::new().hash_one(attempts) % 1000;
    full.mul_f64(0.5 + jitter as f64 / 2000.0)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::config::{self, Origin};
    use crate::deadletter::DeadLetterSettings;
    use crate::dedupe::MemoryStore;
    use crate::deliver::memory::MemorySender;
    use crate::deliver::{DeliveryError, Email, SendFuture, Sender};
    use crate::event::{ObjectCreated, Provider};
    use crate::pipeline::Delivery;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let max = Duration::from_secs(10);
        for (attempts, full) in [
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (4, 8.0),
            (5, 10.0),
            (40, 10.0),
        ] {
            let wait = backoff(attempts, max).as_secs_f64();
            assert!(
                (full / 2.0..=full).contains(&wait),
                "attempt {attempts}: {wait}s not in [{}, {full}]",
                full / 2.0
            );
        }
    }

    /// Fails every email transiently `failures` times in all, then hands them to `inner`.
    struct Flaky {
        failures: AtomicU32,
        inner: MemorySender,
    }

    impl Sender for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }

        fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
            let left = self.failures.load(Ordering::SeqCst);
            if left == 0 {
                return self.inner.send(email);
            }
            self.failures.store(left - 1, Ordering::SeqCst);
            let err = DeliveryError::Transient {
                sender: "flaky",
                reason: "421 try again later".into(),
                source: None,
                retry_after: None,
            };
            Box::pin(async move { Err(err) })
        }
    }

    fn upload(n: u32) -> ObjectCreated {
        ObjectCreated {
            provider: Provider::Dev,
            event_name: "ObjectCreated:Put".into(),
            bucket: "uploads".into(),
            key: format!("file-{n}.txt"),
            size: 5,
            content_type: None,
            etag: Some(format!("{n:032x}")),
            version_id: None,
            sequencer: Some(format!("{n:016X}")),
            event_time: None,
            uploader: None,
            source_ip: None,
            region: None,
        }
    }

    /// A queue, its dead letters and a drain over them, delivering through `sender`.
    fn drain(
        dir: &tempfile::TempDir,
        sender: Arc<dyn Sender>,
        max_age: Duration,
    ) -> Result<(Inbox, DeadLetters, Drain), Box<dyn std::error::Error>> {
        let text = "[sender]\ntype = \"outbox\"\nfrom = \"h@example.com\"\n\
                    [[rule]]\nname = \"all\"\nto = [\"a@example.com\"]\n";
        let config = config::validate::parse(text, Origin::BuiltIn, &|_| None)?;
        let path = dir.path().join("state.redb");
        let settings = QueueSettings {
            path: path.clone(),
            max_entries: 100,
            concurrency: 2,
            retry_max: Duration::from_secs(1),
            max_age,
            drain_grace: Duration::from_secs(1),
        };
        let inbox = Inbox::open(&settings)?;
        let dead_letters = DeadLetters::open(&DeadLetterSettings::in_file(path))?;
        let dedupe = Arc::new(MemoryStore::new(Duration::from_secs(60)));
        let pipeline = Pipeline::new(Arc::new(config), Delivery::Send(sender)).with_dedupe(dedupe);
        let pipeline = pipeline.with_dead_letters(dead_letters.clone());
        let drain = Drain::new(pipeline, inbox.clone(), dead_letters.clone(), settings);
        Ok((inbox, dead_letters, drain))
    }

    /// Runs `drain` until `inbox` is empty, or fails after 30 s.
    async fn run_until_empty(inbox: &Inbox, drain: Drain) -> TestResult {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(drain.run(async {
            let _ = stopped.await;
        }));
        let emptied = tokio::time::timeout(Duration::from_secs(30), async {
            while inbox.waiting().await? > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, crate::store::StoreError>(())
        })
        .await;
        let _ = stop.send(());
        task.await?;
        Ok(emptied??)
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_from_the_queue_until_delivered() -> TestResult {
        let dir = tempfile::tempdir()?;
        let flaky = Arc::new(Flaky {
            failures: AtomicU32::new(2),
            inner: MemorySender::new(),
        });
        let (inbox, dead_letters, drain) = drain(&dir, flaky.clone(), Duration::from_secs(3600))?;
        inbox.push((0..3).map(upload).collect()).await?;

        run_until_empty(&inbox, drain).await?;
        let mut keys: Vec<String> = flaky
            .inner
            .sent()
            .iter()
            .map(|e| e.subject.clone())
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!((flaky.inner.sent().len(), keys.len()), (3, 3));
        assert!(dead_letters.list().await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn an_upload_failing_past_its_max_age_is_parked_not_dropped() -> TestResult {
        let dir = tempfile::tempdir()?;
        let flaky = Arc::new(Flaky {
            failures: AtomicU32::new(u32::MAX),
            inner: MemorySender::new(),
        });
        let (inbox, dead_letters, drain) = drain(&dir, flaky.clone(), Duration::ZERO)?;
        inbox.push(vec![upload(7)]).await?;

        run_until_empty(&inbox, drain).await?;
        let parked = dead_letters.list().await?;
        assert_eq!(parked.len(), 1);
        assert_eq!(
            (parked[0].rule.as_str(), parked[0].transient),
            ("all", true)
        );
        assert_eq!(parked[0].event.key, "file-7.txt");
        assert!(parked[0].error.contains("421"), "{parked:?}");
        assert!(flaky.inner.sent().is_empty());
        Ok(())
    }
}
