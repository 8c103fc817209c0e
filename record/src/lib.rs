//! tapflow's flow record model and its native, framed, checksummed, zstd-compressed codec.
//!
//! Shared by the probe (writer), the merge daemon and the client (readers). See
//! `docs/record-format.md` for the byte layout.
#![deny(unsafe_code)]

pub mod codec;
pub mod model;
pub mod time;

pub use codec::*;
pub use model::*;
