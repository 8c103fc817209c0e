//! tapflow bench library: benchmarks and the synthetic capture generator ([`gen`]).

pub mod engine_bench;
pub mod gen;
pub mod live;
pub mod merge_bench;
pub mod records_bench;
pub mod split;
