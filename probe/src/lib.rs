//! tapflow probe library: decoder and flow engine.
