//! A capture file of any bytes (pcap, pcapng, ERF, compressed or not: the reader sniffs the
//! format), through the packet decoder and the flow engine: nothing may panic, and every
//! packet read ends up in a record or in a malformed count.
//!
//! `cargo +nightly fuzz run capture`

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapflow_capture::file::open_reader;
use tapflow_probe::{Engine, EngineConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(mut cap) = open_reader("fuzz", Box::new(std::io::Cursor::new(data.to_vec()))) else {
        return;
    };
    let mut engine = Engine::new(EngineConfig {
        capacity: 64,
        ..EngineConfig::default()
    });
    let mut pkts_in_records = 0u64;
    let mut sink = |r: &tapflow_record::FlowRecord| {
        if r.status.is_none() {
            pkts_in_records += r.pkts();
        }
    };
    // A damaged file may keep yielding errors: the reader resyncs, so bound the rounds.
    for _ in 0..10_000 {
        match cap.next_batch() {
            Ok(Some(b)) => engine.process_batch(&b, &mut sink),
            Ok(None) => break,
            Err(_) => continue,
        }
        let _ = cap.take_warnings();
    }
    engine.flush(&mut sink);
    assert_eq!(
        pkts_in_records + engine.decoder.stats.malformed_total(),
        cap.stats().packets,
        "conservation: packets read = in records + malformed"
    );
});
