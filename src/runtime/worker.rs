//! `herald worker`: long-polls an SQS queue and hands each message body to the pipeline, for
//! containers (ECS, Kubernetes) rather than Lambda.
//!
//! A message is deleted only when the pipeline is done with it: every email sent, or the event
//! deliberately dropped (test events, ignored event kinds, skipped or unmatched uploads,
//! duplicates). A transient failure leaves the message alone, so SQS delivers it again once its
//! visibility timeout runs out; the dedupe store makes sure emails already sent are not sent
//! twice. A permanent failure is logged at ERROR and also left alone: the queue's redrive
//! policy moves it to the dead-letter queue after `maxReceiveCount` receives. A queue without a
//! redrive policy keeps such a message until its retention period ends.
//!
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html>

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, error, info, warn};

use crate::aws::{self, AwsSetupError};
use crate::pipeline::Pipeline;
use crate::record::{Outcome, Report};
use crate::sources::SourceError;

/// Seconds a receive waits for messages: the SQS maximum, so an idle queue costs little.
const WAIT_SECONDS: i32 = 20;

/// Most messages one receive returns (the SQS maximum).
const BATCH: usize = 10;

/// Longest pause between failed receives.
const MAX_POLL_BACKOFF: Duration = Duration::from_secs(30);

/// What `herald worker` needs besides the pipeline.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The queue's URL, e.g. `https://sqs.eu-west-1.amazonaws.com/123456789012/uploads`.
    pub queue_url: String,
    /// Messages handled at the same time.
    pub concurrency: usize,
    /// After a stop signal, how long messages in flight may take to finish.
    pub drain: Duration,
}

/// The worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// No region or similar.
    #[error(transparent)]
    Aws(#[from] AwsSetupError),
    /// The queue cannot be read: wrong URL, missing permission, unreachable endpoint.
    #[error("cannot read the attributes of queue {queue_url}: {reason}")]
    Queue {
        /// The URL given.
        queue_url: String,
        /// The SDK's explanation.
        reason: String,
    },
}

/// What to do with a message once the pipeline has handled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered or deliberately dropped: delete it.
    Delete,
    /// A retry may help: leave it for SQS to deliver again.
    Retry,
    /// A retry cannot help: leave it for the redrive policy to dead-letter.
    DeadLetter,
}

/// Messages by verdict, for the summary at exit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Deleted after handling.
    pub deleted: usize,
    /// Left for redelivery after a transient failure.
    pub retried: usize,
    /// Left for the dead-letter queue after a permanent failure.
    pub dead_lettered: usize,
}

impl Stats {
    fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Delete => self.deleted += 1,
            Verdict::Retry => self.retried += 1,
            Verdict::DeadLetter => self.dead_lettered += 1,
        }
    }
}

/// Decides a message's fate from what the pipeline made of its body.
pub fn verdict(handled: &Result<Report, SourceError>) -> Verdict {
    let Ok(report) = handled else {
        return Verdict::DeadLetter;
    };
    let transient = report.entries.iter().map(|entry| match &entry.outcome {
        Outcome::Failed { transient, .. } => Some(*transient),
        _ => None,
    });
    let failures: Vec<bool> = transient.flatten().collect();
    if failures.is_empty() {
        Verdict::Delete
    } else if failures.contains(&true) {
        Verdict::Retry
    } else {
        Verdict::DeadLetter
    }
}

/// A connected worker, ready to [`run`](Worker::run).
#[derive(Clone)]
pub struct Worker {
    sqs: Client,
    pipeline: Pipeline,
    options: WorkerOptions,
    /// The queue's visibility timeout: how long a received message stays hidden.
    visibility: Duration,
}

impl Worker {
    /// Builds the SQS client from the standard AWS chain and reads the queue's visibility
    /// timeout, which also proves the URL, credentials and permissions before any message is
    /// taken.
    pub async fn connect(
        pipeline: Pipeline,
        options: WorkerOptions,
    ) -> Result<Worker, WorkerError> {
        let config = aws::sdk_config("sqs", None, "").await?;
        let sqs = Client::new(&config);
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&options.queue_url)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .send()
            .await
            .map_err(|err| WorkerError::Queue {
                queue_url: options.queue_url.clone(),
                reason: DisplayErrorContext(&err).to_string(),
            })?;
        let seconds = attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(30);
        Ok(Worker {
            sqs,
            pipeline,
            options,
            visibility: Duration::from_secs(seconds),
        })
    }

    /// The queue's visibility timeout, as read at start-up.
    pub fn visibility_timeout(&self) -> Duration {
        self.visibility
    }

    /// Polls until `shutdown` resolves, then lets messages in flight finish within
    /// [`WorkerOptions::drain`]; returns what happened to the messages.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Stats {
        let permits = Arc::new(Semaphore::new(self.options.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let mut stats = Stats::default();
        let mut backoff = Duration::ZERO;
        tokio::pin!(shutdown);
        loop {
            let polled = tokio::select! {
                _ = &mut shutdown => break,
                polled = self.poll(&permits, backoff) => polled,
            };
            backoff = match polled {
                Ok(batch) => {
                    for (message, permit) in batch {
                        tasks.spawn(self.clone().handle(message, permit));
                    }
                    Duration::ZERO
                }
                Err(err) => {
                    warn!(error = %err, "cannot receive from the queue; retrying");
                    (backoff * 2).clamp(Duration::from_secs(1), MAX_POLL_BACKOFF)
                }
            };
            while let Some(done) = tasks.try_join_next() {
                stats.add(done.unwrap_or(Verdict::Retry));
            }
        }
        self.drain(tasks, stats).await
    }

    /// Waits out `backoff`, then a free slot, then receives as many messages as there are
    /// free slots (at most [`BATCH`]), each paired with its slot.
    async fn poll(
        &self,
        permits: &Arc<Semaphore>,
        backoff: Duration,
    ) -> Result<Vec<(Message, OwnedSemaphorePermit)>, String> {
        tokio::time::sleep(backoff).await;
        // The semaphore is never closed, so acquiring only fails if that changes.
        let first = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let wanted = (permits.available_permits() + 1).min(BATCH);
        let messages = self.receive(wanted).await?;
        let mut slots = std::iter::once(first).chain(std::iter::from_fn(|| {
            permits.clone().try_acquire_owned().ok()
        }));
        // Every message gets a slot: at most `wanted` arrive and that many were free.
        Ok(messages.into_iter().zip(&mut slots).collect())
    }

    async fn receive(&self, wanted: usize) -> Result<Vec<Message>, String> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.options.queue_url)
            .max_number_of_messages(i32::try_from(wanted).unwrap_or(1))
            .wait_time_seconds(WAIT_SECONDS)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|err| DisplayErrorContext(&err).to_string())?;
        Ok(received.messages.unwrap_or_default())
    }

    /// Handles one message and settles it with SQS; the permit frees its slot at the end.
    async fn handle(self, message: Message, permit: OwnedSemaphorePermit) -> Verdict {
        let id = message.message_id().unwrap_or("(no id)").to_owned();
        let span = tracing::info_span!("message", message_id = %id);
        let verdict = self.handle_inner(&id, message).instrument(span).await;
        drop(permit);
        verdict
    }

    async fn handle_inner(&self, id: &str, message: Message) -> Verdict {
        let Some(receipt) = message.receipt_handle() else {
            // Without a receipt handle the message can be neither deleted nor extended.
            warn!(message_id = %id, "message without a receipt handle; left alone");
            return Verdict::Retry;
        };
        let body = message.body().unwrap_or_default().as_bytes();
        let handled = tokio::select! {
            handled = self.pipeline.handle_payload(body) => handled,
            never = self.keep_invisible(receipt) => match never {},
        };
        if let Err(err) = &handled {
            error!(
                message_id = %id,
                error = %err,
                "message body is not an event Herald understands"
            );
        }
        let verdict = verdict(&handled);
        self.settle(id, receive_count(&message), receipt, verdict)
            .await;
        verdict
    }

    /// Deletes a settled message; logs why any other stays in the queue. The message id and
    /// receive count are fields of the WARN and ERROR lines themselves, because the span that
    /// carries them is only shown at INFO and below.
    async fn settle(&self, id: &str, receives: u32, receipt: &str, verdict: Verdict) {
        match verdict {
            Verdict::Delete => self.delete(receipt).await,
            Verdict::Retry => warn!(
                message_id = %id,
                receives,
                "delivery failed for now; message left for redelivery after its visibility timeout"
            ),
            Verdict::DeadLetter => error!(
                message_id = %id,
                receives,
                "delivery cannot succeed as is; message left for the queue's dead-letter queue"
            ),
        }
    }

    async fn delete(&self, receipt: &str) {
        let deleted = self
            .sqs
            .delete_message()
            .queue_url(&self.options.queue_url)
            .receipt_handle(receipt)
            .send()
            .await;
        match deleted {
            Ok(_) => debug!("message handled and deleted"),
            // The message comes back after its visibility timeout and the dedupe store
            // answers "already sent", so this costs a receive, not an email.
            Err(err) => {
                let error = DisplayErrorContext(&err);
                warn!(error = %error, "handled message not deleted; it will be seen again");
            }
        }
    }

    /// Keeps a message hidden while it is being handled: shortly before its visibility
    /// timeout runs out, pushes it out by another full timeout. Never returns; dropped when
    /// handling ends.
    async fn keep_invisible(&self, receipt: &str) -> Infallible {
        let period = extension_period(self.visibility);
        let seconds = i32::try_from(self.visibility.as_secs()).unwrap_or(i32::MAX);
        loop {
            tokio::time::sleep(period).await;
            let extended = self
                .sqs
                .change_message_visibility()
                .queue_url(&self.options.queue_url)
                .receipt_handle(receipt)
                .visibility_timeout(seconds)
                .send()
                .await;
            match extended {
                Ok(_) => debug!(seconds, "message visibility extended"),
                Err(err) => {
                    warn!(error = %DisplayErrorContext(&err), "cannot extend message visibility")
                }
            }
        }
    }

    /// Gives messages in flight up to the drain bound, then abandons the rest: SQS delivers
    /// them again after their visibility timeout.
    async fn drain(&self, mut tasks: JoinSet<Verdict>, mut stats: Stats) -> Stats {
        while let Some(done) = tasks.try_join_next() {
            stats.add(done.unwrap_or(Verdict::Retry));
        }
        info!(
            in_flight = tasks.len(),
            "stopping: finishing messages in flight"
        );
        let finish = async {
            while let Some(done) = tasks.join_next().await {
                stats.add(done.unwrap_or(Verdict::Retry));
            }
        };
        if tokio::time::timeout(self.options.drain, finish)
            .await
            .is_err()
        {
            warn!("messages still in flight at the drain deadline; SQS will redeliver them");
        }
        stats
    }
}

/// When to extend a message's visibility: two thirds into the timeout, leaving a third for the
/// call itself, and never more often than once a second. A zero timeout is not extended
/// (the message is visible again at once anyway).
fn extension_period(visibility: Duration) -> Duration {
    if visibility.is_zero() {
        return Duration::MAX;
    }
    (visibility * 2 / 3).max(Duration::from_secs(1))
}

/// How often SQS has handed this message out, as it reports; 0 when it does not say.
fn receive_count(message: &Message) -> u32 {
    message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Entry, SkipReason};

    fn report(outcomes: Vec<Outcome>) -> Result<Report, SourceError> {
        let entries = outcomes.into_iter().map(|outcome| Entry {
            record: 0,
            object: None,
            outcome,
        });
        Ok(Report {
            entries: entries.collect(),
        })
    }

    fn failed(transient: bool) -> Outcome {
        Outcome::Failed {
            rule: Some("r".into()),
            error: "e".into(),
            transient,
            parked: None,
        }
    }

    #[test]
    fn delivered_and_dropped_messages_are_deleted() {
        let dropped = vec![
            Outcome::Test {
                kind: "s3:TestEvent".into(),
            },
            Outcome::Ignored {
                event_name: "ObjectRemoved:Delete".into(),
            },
            Outcome::Skipped {
                reason: SkipReason::EmptyObject,
            },
            Outcome::Unmatched { misses: Vec::new() },
            Outcome::Duplicate {
                rule: "r".into(),
                message_id: "m".into(),
            },
        ];
        assert_eq!(verdict(&report(dropped)), Verdict::Delete);
        assert_eq!(verdict(&report(Vec::new())), Verdict::Delete);
    }

    #[test]
    fn any_transient_failure_means_retry() {
        let outcomes = vec![
            failed(false),
            failed(true),
            Outcome::Unmatched { misses: Vec::new() },
        ];
        assert_eq!(verdict(&report(outcomes)), Verdict::Retry);
    }

    #[test]
    fn permanent_failures_and_unknown_bodies_go_to_the_dead_letter_queue() {
        assert_eq!(verdict(&report(vec![failed(false)])), Verdict::DeadLetter);
        let unknown = crate::sources::parse(b"{\"hello\": 1}").map(|_| Report::default());
        assert!(unknown.is_err(), "not a known payload");
        assert_eq!(verdict(&unknown), Verdict::DeadLetter);
    }

    #[test]
    fn visibility_is_extended_before_it_runs_out() {
        assert_eq!(
            extension_period(Duration::from_secs(30)),
            Duration::from_secs(20)
        );
        assert_eq!(
            extension_period(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(extension_period(Duration::ZERO), Duration::MAX);
    }
}
