//! tapflow client library.
