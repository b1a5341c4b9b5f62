//! Feeds events from the embedded S3 endpoint into the pipeline, several at a time.
//!
//! `herald dev` and `herald demo` both run this loop; they differ only in what they do with
//! each [`Handled`] result.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::event::ObjectCreated;
use crate::pipeline::Pipeline;

/// Uploads handled at the same time; enough to keep a pooled SMTP connection set busy.
const CONCURRENCY: usize = 16;

pub use crate::record::Handled;

/// Handles every event from `events` until the channel closes, reporting each to `handled`,
/// then waits for the uploads still in flight.
pub async fn run(
    pipeline: Pipeline,
    mut events: mpsc::Receiver<ObjectCreated>,
    handled: mpsc::UnboundedSender<Handled>,
) {
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    let mut index = 0;
    while let Some(event) = events.recv().await {
        // A closed semaphore is impossible here: it is never closed.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (pipeline, handled) = (pipeline.clone(), handled.clone());
        tasks.spawn(async move {
            let entries = pipeline.handle_event(index, &event).await;
            // The receiver only goes away when the command is shutting down.
            let _ = handled.send(Handled { event, entries });
            drop(permit);
        });
        index += 1;
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}
