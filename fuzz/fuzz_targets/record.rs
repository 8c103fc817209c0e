//! Native record files and single records of any bytes: the record decoder and the file
//! reader (frames, checksums, resynchronisation) must not panic, and whatever decodes must
//! encode and decode again to the same record (the same bytes).
//!
//! `cargo +nightly fuzz run record`

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapflow_record::{decode_record, encode_record, RecordReader};

fuzz_target!(|data: &[u8]| {
    if let Ok((rec, n)) = decode_record(data) {
        assert!(n <= data.len());
        let mut buf = Vec::new();
        encode_record(&rec, &mut buf);
        let (again, m) = decode_record(&buf).expect("our own encoding decodes");
        assert_eq!(m, buf.len());
        assert_eq!(again.is_meta(), rec.is_meta());
        // Compared as bytes: a record from a damaged file may hold a NaN jitter, and NaN is
        // not equal to itself.
        let mut buf2 = Vec::new();
        encode_record(&again, &mut buf2);
        assert_eq!(buf, buf2);
    }
    if let Ok(mut rd) = RecordReader::new(data, "fuzz") {
        for _ in 0..100_000 {
            match rd.next_record() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => break,
            }
        }
        let _ = rd.take_warnings();
    }
});
