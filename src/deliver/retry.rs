//! Retries of transient delivery failures, as a [`Sender`] that wraps another.
//!
//! Waits grow exponentially with jitter (from `backon`), so many Herald processes that failed
//! together do not retry together. A service's own hint (`retry_after`) is a floor on the wait.
//! Two caps bound the work per email: attempts, and total time spent waiting. Rejections are
//! returned at once; a retry cannot fix them.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use super::{DeliveryError, Email, SendFuture, Sender};

/// First wait after a failure; later waits double, each plus up to as much again as jitter.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// Longest single wait before jitter, unless the service asks for more.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// How hard to try one email: `[sender] max_attempts` and `retry_max_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per email, counting the first; at least 1.
    pub max_attempts: u32,
    /// Cap on the total time spent waiting between attempts of one email.
    pub max_wait: Duration,
}

/// The defaults of `[sender] max_attempts` and `retry_max_secs`.
impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            max_wait: Duration::from_secs(20),
        }
    }
}

/// A sender that retries its inner sender's transient failures under a [`RetryPolicy`].
pub struct RetryingSender {
    inner: Arc<dyn Sender>,
    policy: RetryPolicy,
}

impl RetryingSender {
    /// Wraps `inner`; with a policy of one attempt it only notes the attempt on failures.
    pub fn new(inner: Arc<dyn Sender>, policy: RetryPolicy) -> Self {
        RetryingSender { inner, policy }
    }

    async fn send_with_retries(&self, email: &Email) -> Result<super::Receipt, DeliveryError> {
        let mut delays = ExponentialBuilder::new()
            .with_min_delay(FIRST_DELAY)
            .with_max_delay(MAX_DELAY)
            .with_jitter()
            .without_max_times()
            .build();
        let mut waited = Duration::ZERO;
        let mut attempt = 1;
        let mut earlier = Vec::new();
        loop {
            let err = match self.inner.send(email).await {
                Ok(receipt) => return Ok(after_retries(receipt, &earlier)),
                Err(err) => err,
            };

            // Decide whether another attempt is allowed, and after how long.
            let delay = delays.next().unwrap_or(MAX_DELAY);
            let delay = delay.max(err.retry_after().unwrap_or_default());
            let out_of_time = waited + delay > self.policy.max_wait;
            if !err.is_transient() || attempt >= self.policy.max_attempts || out_of_time {
                return Err(err.after_attempts(attempt));
            }

            earlier.push(bounded(&err.to_string()));
            tracing::warn!(
                sender = self.inner.name(),
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %err,
                "delivery failed, retrying"
            );
            tokio::time::sleep(delay).await;
            waited += delay;
            attempt += 1;
        }
    }
}

impl Sender for RetryingSender {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        Box::pin(self.send_with_retries(email))
    }
}

/// Longest error text kept per earlier attempt in a receipt.
const MAX_EARLIER: usize = 200;

/// The receipt, noting the attempts that failed before it, so a trace shows each one.
fn after_retries(mut receipt: super::Receipt, earlier: &[String]) -> super::Receipt {
    if !earlier.is_empty() {
        let attempts = earlier.len() + 1;
        let errors = earlier.join("; ");
        receipt.detail = format!("{} (attempt {attempts}; before: {errors})", receipt.detail);
    }
    receipt
}

fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_EARLIER) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

impl DeliveryError {
    /// The same error, its reason noting how many attempts were made.
    fn after_attempts(mut self, attempts: u32) -> Self {
        let noun = if attempts == 1 { "attempt" } else { "attempts" };
        let (DeliveryError::Transient { reason, .. } | DeliveryError::Permanent { reason, .. }) =
            &mut self;
        *reason = format!("{reason} ({attempts} {noun} made)");
        self
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use tokio::time::Instant;

    use super::*;
    use crate::deliver::Receipt;
    use crate::deliver::message::tests::sample_email as email_with;

    /// What the scripted sender does on each call, in order; it succeeds once the script ends.
    enum Step {
        Transient(Option<Duration>),
        Permanent,
    }

    /// An in-memory sender that follows a script and records when each attempt started.
    struct Scripted {
        script: Mutex<VecDeque<Step>>,
        starts: Mutex<Vec<Instant>>,
    }

    impl Scripted {
        fn new(script: impl IntoIterator<Item = Step>) -> Arc<Self> {
            Arc::new(Scripted {
                script: Mutex::new(script.into_iter().collect()),
                starts: Mutex::new(Vec::new()),
            })
        }

        fn failing_transiently(times: usize) -> Arc<Self> {
            Self::new((0..times).map(|_| Step::Transient(None)))
        }

        fn starts(&self) -> Vec<Instant> {
            self.starts.lock().expect("lock").clone()
        }

        /// Waits between consecutive attempts.
        fn gaps(&self) -> Vec<Duration> {
            let starts = self.starts();
            starts.windows(2).map(|w| w[1] - w[0]).collect()
        }
    }

    impl Sender for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }

        fn send<'a>(&'a self, _email: &'a Email) -> SendFuture<'a> {
            self.starts.lock().expect("lock").push(Instant::now());
            let step = self.script.lock().expect("lock").pop_front();
            Box::pin(async move {
                match step {
                    None => Ok(Receipt {
                        sender: "scripted",
                        detail: "ok".into(),
                    }),
                    Some(Step::Transient(retry_after)) => Err(DeliveryError::Transient {
                        sender: "scripted",
                        reason: "451 try later".into(),
                        source: None,
                        retry_after,
                    }),
                    Some(Step::Permanent) => Err(DeliveryError::Permanent {
                        sender: "scripted",
                        reason: "550 no such user".into(),
                        source: None,
                    }),
                }
            })
        }
    }

    fn sample_email() -> Email {
        email_with(None)
    }

    fn retrying(inner: &Arc<Scripted>, max_attempts: u32, max_wait_secs: u64) -> RetryingSender {
        let policy = RetryPolicy {
            max_attempts,
            max_wait: Duration::from_secs(max_wait_secs),
        };
        RetryingSender::new(inner.clone(), policy)
    }

    #[tokio::test(start_paused = true)]
    async fn delivers_after_transient_failures_with_growing_waits() {
        let inner = Scripted::failing_transiently(3);
        let receipt = retrying(&inner, 4, 60).send(&sample_email()).await;

        assert!(receipt.is_ok(), "{receipt:?}");
        assert_eq!(inner.starts().len(), 4);
        let gaps = inner.gaps();
        assert!(gaps[0] >= FIRST_DELAY, "{gaps:?}");
        assert!(gaps.windows(2).all(|w| w[1] > w[0]), "{gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn waits_at_least_as_long_as_the_service_asks() {
        let hint = Duration::from_secs(20);
        let inner = Scripted::new([Step::Transient(Some(hint))]);
        let receipt = retrying(&inner, 4, 60).send(&sample_email()).await;

        assert!(receipt.is_ok(), "{receipt:?}");
        assert!(inner.gaps()[0] >= hint, "{:?}", inner.gaps());
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failure_is_attempted_once() {
        let inner = Scripted::new([Step::Permanent]);
        let err = retrying(&inner, 4, 60).send(&sample_email()).await;

        let err = err.expect_err("permanent");
        assert!(!err.is_transient());
        assert_eq!(inner.starts().len(), 1);
        assert!(err.to_string().contains("(1 attempt made)"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_the_attempt_cap_and_says_so() {
        let inner = Scripted::failing_transiently(10);
        let err = retrying(&inner, 3, 600).send(&sample_email()).await;

        let err = err.expect_err("still failing");
        assert!(err.is_transient());
        assert_eq!(inner.starts().len(), 3);
        assert!(err.to_string().contains("(3 attempts made)"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn one_attempt_means_no_retry() {
        let inner = Scripted::failing_transiently(1);
        let err = retrying(&inner, 1, 60).send(&sample_email()).await;

        assert!(err.is_err());
        assert_eq!(inner.starts().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn never_waits_past_the_time_cap() {
        let inner = Scripted::failing_transiently(100);
        let began = Instant::now();
        let err = retrying(&inner, 100, 10).send(&sample_email()).await;

        assert!(err.is_err());
        assert!(
            began.elapsed() <= Duration::from_secs(10),
            "{:?}",
            began.elapsed()
        );
        assert!(inner.starts().len() >= 2, "{}", inner.starts().len());
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_when_the_hint_exceeds_the_time_cap() {
        let hint = Duration::from_secs(120);
        let inner = Scripted::new([Step::Transient(Some(hint))]);
        let err = retrying(&inner, 4, 60).send(&sample_email()).await;

        assert!(err.expect_err("hint too long").is_transient());
        assert_eq!(inner.starts().len(), 1);
    }
}
