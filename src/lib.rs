//! Herald tells the right people when a file lands in object storage.
//!
//! The crate is the pipeline every runtime shares:
//!
//! ```text
//! sources ──> event ──> route ──> render ──> deliver ──> record
//! (S3, MinIO)  (normalized) (rules)  (templates) (SMTP, SES,   (outcomes)
//!                                                 outbox)
//! ```
//!
//! [`pipeline::Pipeline`] ties the stages together; the modules under [`runtime`] are thin entry
//! points (`herald dev`, `herald demo`, `herald invoke`, `herald worker`) over it. Dedupe
//! stores ([`dedupe`]) keep redelivered events from sending twice; [`digest`] gathers a rule's
//! uploads into one email per window.

pub mod aws;
pub mod config;
pub mod cost;
pub mod deadletter;
pub mod dedupe;
pub mod deliver;
pub mod digest;
pub mod event;
pub mod links;
pub mod pipeline;
pub mod queue;
pub mod record;
pub mod render;
pub mod route;
pub mod runtime;
pub mod secret;
pub mod sources;
pub mod store;
pub mod trace;
