//! File backends.
