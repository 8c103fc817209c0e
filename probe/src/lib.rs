//! tapflow probe library: decoder and flow engine.
#![deny(unsafe_code)]

pub mod daemon;
pub mod decode;
pub mod engine;
pub mod key;
pub mod table;

pub use engine::{Engine, EngineConfig, EngineStats, LinkDirection, RecordSink};
pub mod run;
#[cfg(test)]
pub(crate) mod testutil;
