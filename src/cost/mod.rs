//! `herald cost`: what a month of Herald costs on each platform it runs on.
//!
//! [`model`] turns a month's uploads into the lines each platform bills (requests,
//! GB-seconds, queue requests, dedupe writes, emails), [`prices`] holds the price table they
//! are multiplied by (one data file, each price with its source and the date it was checked,
//! replaceable with `--prices`), and [`report`] prints the result. All arithmetic is exact
//! ([`fixed`]); each line's cost is rounded once, to four decimals, and the total is the sum
//! of the rounded lines so it can be checked by hand.

pub mod fixed;
pub mod model;
pub mod prices;
pub mod report;

pub use fixed::Fixed;
pub use model::{Arch, CostError, Estimate, Line, Platform, Usage, estimate};
pub use prices::{PriceTable, PricesError, TableOrigin};
