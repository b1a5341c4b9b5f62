//! Thin runtimes over the pipeline: the embedded S3 endpoint, the demo, the event loop
//! that connects them, and the SQS worker.

pub mod demo;
pub mod dev;
pub mod lambda;
pub mod local;
pub mod worker;
