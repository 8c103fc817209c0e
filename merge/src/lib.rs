//! tapflow-merge: joins the one-way half-records of the probes on the two legs of a split tap
//! into the bidirectional records one probe seeing both directions would have written.
//!
//! [`merger::Merger`] is the core (no I/O); [`clock`] estimates the probes' clock offset.
//! See `docs/merge.md`.
#![deny(unsafe_code)]

pub mod clock;
pub mod daemon;
pub mod merger;

pub use merger::{MergeConfig, MergeSink, MergeStats, Merger};
