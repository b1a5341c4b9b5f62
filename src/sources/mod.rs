//! Event sources: turn a provider's payload into normalized [`ObjectCreated`] events.
//!
//! Each provider module owns its serde types, tolerates unknown fields and keeps open-ended
//! values (event names) as strings. [`parse`] recognizes which format a payload is in.

use crate::event::ObjectCreated;

pub mod key;
pub mod minio;
pub mod s3;

/// One record of a payload, after normalization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An object was created: this is what Herald notifies about.
    Created(ObjectCreated),
    /// A well-formed record of a kind Herald does not notify about (a delete, a restore).
    /// Counted, never an error.
    Ignored {
        /// The provider's event name, e.g. `ObjectRemoved:Delete`.
        event_name: String,
    },
}

/// What a whole payload turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A control message the provider sends when wiring is set up (S3 `s3:TestEvent`).
    /// Acknowledged, never an error.
    Test {
        /// The provider's name for it, e.g. `s3:TestEvent`.
        kind: String,
    },
    /// Event records, each normalized on its own: one bad record never sinks the others.
    Records(Vec<Result<Record, SourceError>>),
}

/// A payload or record that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The payload is not JSON, or not a JSON shape any source knows.
    #[error("payload is not a known storage event format: {reason}")]
    UnknownFormat { reason: String },
    /// A record of a known format is missing a field or has one of the wrong type.
    #[error("record {index} is malformed: {reason}")]
    BadRecord { index: usize, reason: String },
    /// An object key could not be decoded.
    #[error("record {index} has an undecodable key {raw:?}: {reason}")]
    BadKey {
        index: usize,
        raw: String,
        reason: String,
    },
}

/// stub until the sources branch lands
pub fn parse(_payload: &[u8]) -> Result<Payload, SourceError> {
    Err(SourceError::UnknownFormat { reason: "stub".into() })
}
