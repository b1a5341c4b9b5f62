//! A send rate per sender, as a [`Sender`] that wraps another: `[sender] rate_per_sec`.
//!
//! Services cap how fast an account may send (the SES sandbox allows one email a second) and
//! answer faster senders with throttling errors. Herald paces itself instead: an email that
//! comes too early waits for its turn, it never fails for being early.
//!
//! The bucket is our own, about forty lines, rather than `governor`: delivery is Herald's core,
//! and it must run on tokio's clock so paused-time tests hold (governor reads its own clock).
//! It is a token bucket in its "virtual scheduling" form (the GCRA of ATM networks): instead of
//! counting tokens it keeps the time the next email may start, so the state is one instant.
//! Waiting sends queue for it behind a fair async lock, so they start in arrival order.
//!
//! The bucket spaces the *starts* of sends, but a provider counts *arrivals*: start plus
//! latency, and latency varies (a new connection, a busy scheduler, the network). An email that
//! takes longer than the next five draws the six closer together, and a provider counting five a
//! second at its side sees six. Two things keep that from happening. The schedule moves on
//! from when a send really started, not from when it was due, so a task woken late by a busy
//! machine delays the ones after it instead of crowding them. And the interval is stretched by
//! [`SAFETY_MARGIN`]: at `rate` emails a second, `rate + 1` consecutive starts span 1.1 s
//! instead of 1 s, which absorbs up to 100 ms of latency difference between two emails at any
//! rate, for 10% less throughput.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{Email, SendFuture, Sender};

/// How much longer than `1 / per_sec` the bucket waits between two starts, as a share of it.
///
/// Known limit: it covers latency differences up to 100 ms. A first email that opens a new
/// TLS connection to a distant provider can lag the pooled ones after it by more. If a provider
/// is seen throttling for that, make the bucket also wait on finished sends (a provider has the
/// email before it replies) rather than widen the margin, which would slow every sender.
pub const SAFETY_MARGIN: f64 = 0.1;

/// How fast one sender may start emails.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Emails started per second, on average; finite and above zero.
    pub per_sec: f64,
    /// Emails that may start back to back after a quiet spell; at least 1.
    pub burst: u32,
}

impl RateLimit {
    /// The SES sandbox: one email a second.
    pub const SES_SANDBOX: RateLimit = RateLimit {
        per_sec: 1.0,
        burst: 1,
    };

    /// The named presets accepted by `[sender] rate`.
    pub fn preset(name: &str) -> Option<RateLimit> {
        match name {
            "ses-sandbox" => Some(RateLimit::SES_SANDBOX),
            _ => None,
        }
    }

    /// Time between two starts at the steady rate, [`SAFETY_MARGIN`] included.
    fn interval(&self) -> Duration {
        Duration::from_secs_f64((1.0 + SAFETY_MARGIN) / self.per_sec)
    }
}

/// The shared schedule: when the next email could start if the bucket were full.
struct Bucket {
    interval: Duration,
    /// How far ahead of the schedule a burst may run.
    tolerance: Duration,
    next_start: Mutex<Instant>,
}

impl Bucket {
    fn new(limit: RateLimit) -> Self {
        let interval = limit.interval();
        Bucket {
            interval,
            tolerance: interval * limit.burst.saturating_sub(1),
            next_start: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this send's turn. The lock is held through the wait, so waiters go one by
    /// one in arrival order (tokio's mutex is fair); a send dropped while waiting lets the
    /// next one in without using a slot.
    async fn wait_turn(&self, sender: &'static str) {
        let mut next_start = self.next_start.lock().await;
        let now = Instant::now();
        let start = next_start.checked_sub(self.tolerance).unwrap_or(now);
        if start > now {
            tracing::debug!(sender, "waiting for the send rate");
            tokio::time::sleep_until(start).await;
        }
        // Read the clock again: a wake-up that came late moves the schedule with it.
        let started = Instant::now();
        *next_start = (*next_start).max(started) + self.interval;
    }
}

/// A sender that starts its inner sender's emails no faster than a [`RateLimit`].
pub struct RateLimitedSender {
    inner: Arc<dyn Sender>,
    bucket: Bucket,
}

impl RateLimitedSender {
    /// Wraps `inner`; the bucket starts full.
    pub fn new(inner: Arc<dyn Sender>, limit: RateLimit) -> Self {
        RateLimitedSender {
            inner,
            bucket: Bucket::new(limit),
        }
    }
}

impl Sender for RateLimitedSender {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        Box::pin(async move {
            self.bucket.wait_turn(self.inner.name()).await;
            self.inner.send(email).await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::future::join_all;

    use super::*;
    use crate::deliver::message::tests::sample_email;
    use crate::deliver::{Receipt, SendFuture};

    /// Records when each send started; always succeeds.
    #[derive(Default)]
    struct Clocked {
        starts: Mutex<Vec<Instant>>,
    }

    impl Sender for Clocked {
        fn name(&self) -> &'static str {
            "clocked"
        }

        fn send<'a>(&'a self, _email: &'a Email) -> SendFuture<'a> {
            self.starts.lock().expect("lock").push(Instant::now());
            Box::pin(async {
                Ok(Receipt {
                    sender: "clocked",
                    detail: "ok".into(),
                })
            })
        }
    }

    /// Most starts in any window `[t, t + 1s)` that opens at a start.
    fn busiest_second(starts: &[Instant]) -> usize {
        let mut starts = starts.to_vec();
        starts.sort();
        let in_window = |first: Instant| {
            let end = first + Duration::from_secs(1);
            starts.iter().filter(|&&s| s >= first && s < end).count()
        };
        starts.iter().map(|&s| in_window(s)).max().unwrap_or(0)
    }

    async fn send_all(limit: RateLimit, count: usize) -> (Arc<Clocked>, usize) {
        let inner = Arc::new(Clocked::default());
        let limited = RateLimitedSender::new(inner.clone(), limit);
        let email = sample_email(None);
        let results = join_all((0..count).map(|_| limited.send(&email))).await;
        let delivered = results.iter().filter(|r| r.is_ok()).count();
        (inner, delivered)
    }

    #[tokio::test(start_paused = true)]
    async fn no_second_starts_more_than_the_rate_and_none_fail() {
        let limit = RateLimit {
            per_sec: 5.0,
            burst: 1,
        };
        let began = Instant::now();
        let (inner, delivered) = send_all(limit, 100).await;

        assert_eq!(delivered, 100);
        let starts = inner.starts.lock().expect("lock").clone();
        assert_eq!(busiest_second(&starts), 5);
        // 100 emails at 5 a second: the last starts 99 intervals after the first, each interval
        // 200 ms plus the safety margin.
        assert_eq!(began.elapsed(), Duration::from_millis(220) * 99);
    }

    #[tokio::test(start_paused = true)]
    async fn ses_sandbox_sends_one_a_second() {
        let (inner, delivered) = send_all(RateLimit::SES_SANDBOX, 30).await;

        assert_eq!(delivered, 30);
        let starts = inner.starts.lock().expect("lock").clone();
        assert_eq!(busiest_second(&starts), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_starts_at_once_then_the_rate_holds() {
        let limit = RateLimit {
            per_sec: 2.0,
            burst: 3,
        };
        let began = Instant::now();
        let (inner, _) = send_all(limit, 7).await;

        let starts = inner.starts.lock().expect("lock").clone();
        let at_once = starts.iter().filter(|&&s| s == began).count();
        assert_eq!(at_once, 3);
        // The four others follow at the steady rate, one every half second plus the margin.
        assert_eq!(began.elapsed(), Duration::from_millis(550) * 4);
    }

    /// A provider counts arrivals, start plus latency: one email 100 ms slower than the five
    /// after it must not make six in a second at the provider's side.
    #[tokio::test(start_paused = true)]
    async fn a_slow_email_does_not_bring_six_into_one_second_at_the_provider() {
        let limit = RateLimit {
            per_sec: 5.0,
            burst: 1,
        };
        let (inner, _) = send_all(limit, 60).await;

        let mut starts = inner.starts.lock().expect("lock").clone();
        starts.sort();
        for six in starts.windows(6) {
            assert!(six[5] - six[0] >= Duration::from_millis(1100), "{six:?}");
        }
        let slow = Duration::from_millis(100);
        let arrivals: Vec<Instant> = starts
            .iter()
            .enumerate()
            .map(|(i, &start)| if i % 6 == 0 { start + slow } else { start })
            .collect();
        assert_eq!(busiest_second(&arrivals), 5);
    }

    /// A busy machine can wake a waiting send late; the next start keeps its distance from
    /// that late start instead of following the old schedule.
    #[tokio::test(start_paused = true)]
    async fn a_late_wake_up_moves_the_next_start_with_it() {
        let limit = RateLimit {
            per_sec: 5.0,
            burst: 1,
        };
        let inner = Arc::new(Clocked::default());
        let limited = RateLimitedSender::new(inner.clone(), limit);
        let email = sample_email(None);
        let began = Instant::now();

        assert!(limited.send(&email).await.is_ok());
        let mut second = limited.send(&email);
        assert!(futures::poll!(&mut second).is_pending());
        // Due at 220 ms, but not polled until 300 ms, as if the scheduler were busy.
        tokio::time::advance(Duration::from_millis(300)).await;
        assert!(second.await.is_ok());
        assert!(limited.send(&email).await.is_ok());

        let starts = inner.starts.lock().expect("lock").clone();
        let offsets: Vec<Duration> = starts.iter().map(|&s| s - began).collect();
        let ms = Duration::from_millis;
        assert_eq!(offsets, [ms(0), ms(300), ms(520)]);
    }
}
