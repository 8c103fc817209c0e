//! tapflow bench library.
