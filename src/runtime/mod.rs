//! Thin runtimes over the pipeline: the embedded S3 endpoint, the demo, the event loop
//! that connects them, the SQS worker and the HTTP receiver for pushed events.

pub mod demo;
pub mod dev;
pub mod lambda;
pub mod local;
pub mod serve;
pub mod worker;
