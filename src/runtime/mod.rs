//! Thin runtimes over the pipeline: the embedded S3 endpoint, the demo and the event loop
//! that connects them.

pub mod demo;
pub mod dev;
pub mod lambda;
pub mod local;
