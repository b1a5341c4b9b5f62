pub mod demo;
pub mod dev;
pub mod invoke;
