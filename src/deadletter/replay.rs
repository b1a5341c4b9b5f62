//! Replaying a parked notification: the one place that decides what a replay means, shared by
//! `herald dlq replay` and the dashboard's Replay button.
//!
//! A replay runs the entry's rule again on every channel. When each channel is delivered
//! (now, or before: a duplicate) the entry is removed; otherwise it stays, with the new error
//! and one more attempt counted.

use crate::pipeline::Pipeline;
use crate::record::Outcome;
use crate::store::StoreError;

use super::{DeadLetter, DeadLetters, Failure};

/// What a replay came to.
#[derive(Debug, Clone)]
pub enum Replayed {
    /// Every channel was delivered, now or before; the entry is gone from the store.
    Delivered {
        /// One outcome per channel of the rule.
        outcomes: Vec<Outcome>,
    },
    /// Some channel failed again (or the rule is gone); the entry stays, its attempts counted.
    FailedAgain {
        /// Every channel's error, joined with `; `.
        error: String,
    },
}

/// Replays `entry` through `pipeline` and updates `store` to match.
///
/// The pipeline's own dead-letter store and digest windows are left out for the replay: a
/// failure is recorded here, once, on the entry being replayed, and a digest rule's parked
/// notification is sent as the upload's own email rather than gathered again.
pub async fn replay(
    pipeline: &Pipeline,
    store: &DeadLetters,
    entry: &DeadLetter,
) -> Result<Replayed, StoreError> {
    let pipeline = pipeline.for_replay();
    let outcomes = pipeline.replay(&entry.rule, &entry.event).await;
    let errors: Vec<(String, bool)> = match &outcomes {
        None => vec![(
            format!("rule {:?} is no longer in the config", entry.rule),
            false,
        )],
        Some(outcomes) => outcomes.iter().filter_map(failure).collect(),
    };
    if errors.is_empty() {
        store.remove(&entry.id).await?;
        let outcomes = outcomes.unwrap_or_default();
        return Ok(Replayed::Delivered { outcomes });
    }

    let error = errors
        .iter()
        .map(|(e, _)| e.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let failure = Failure {
        rule: &entry.rule,
        event: &entry.event,
        error: &error,
        transient: errors.iter().all(|(_, transient)| *transient),
    };
    store.park(failure).await?;
    Ok(Replayed::FailedAgain { error })
}

/// The error of an outcome that is not a delivery, and whether it is transient.
fn failure(outcome: &Outcome) -> Option<(String, bool)> {
    // A replay pipeline sends, so only deliveries and failures come back from it; should
    // anything else, the entry is kept rather than removed undelivered.
    let what = match outcome {
        Outcome::Sent { .. } | Outcome::Duplicate { .. } | Outcome::Gathered { .. } => {
            return None;
        }
        Outcome::Failed {
            error, transient, ..
        } => return Some((error.clone(), *transient)),
        Outcome::Rendered { .. } | Outcome::RenderedChat { .. } => "only rendered",
        Outcome::Test { .. } => "a test event",
        Outcome::Ignored { .. } => "not an upload",
        Outcome::Skipped { .. } => "skipped",
        Outcome::Queued { .. } => "queued",
        Outcome::Unmatched { .. } => "no rule matched",
    };
    Some((format!("not delivered: {what}"), false))
}
