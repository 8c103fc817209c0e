//! Argus 3 files of any bytes through tapflow's Argus reader: no panic, and every record it
//! yields can be written as Argus again.
//!
//! `cargo +nightly fuzz run argus`

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapflow_argus::{encode_far, ArgusReader};

fuzz_target!(|data: &[u8]| {
    let Ok(mut rd) = ArgusReader::new(data, "fuzz") else {
        return;
    };
    let mut out = Vec::new();
    for _ in 0..100_000 {
        match rd.next_record() {
            Ok(Some(r)) => {
                out.clear();
                encode_far(&r, &mut out);
            }
            Ok(None) => break,
            Err(_) => break,
        }
    }
});
