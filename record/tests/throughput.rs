//! Rough codec throughput and size figures; not a benchmark harness and no assertions on
//! timing. Run with:
//!
//! ```text
//! cargo test -p tapflow-record --release --test throughput -- --ignored --nocapture
//! ```

mod common;

use std::time::Instant;

use common::*;
use tapflow_record::*;

fn rate(n: usize, secs: f64) -> String {
    format!(
        "{:6.2} M records/s ({:5.0} ns/record)",
        n as f64 / secs / 1e6,
        secs * 1e9 / n as f64
    )
}

#[test]
#[ignore]
fn throughput_and_size() {
    let mut rng = Rng::new(42);
    let n = 8192 * 64;
    let recs: Vec<FlowRecord> = (0..n as u64).map(|i| tcp_record(&mut rng, i)).collect();

    // Encoding and decoding, a block's worth at a time into a reused buffer (as the writer
    // and reader do), best of 5 passes to dodge noise from other processes.
    let mut buf = Vec::new();
    let chunks = n / 8192;
    let mut enc_best = vec![f64::MAX; chunks];
    let mut dec_best = vec![f64::MAX; chunks];
    let mut sum = 0u64;
    let mut total_len = 0usize;
    for _pass in 0..7 {
        total_len = 0;
        for (k, chunk) in recs.chunks(8192).enumerate() {
            buf.clear();
            let t = Instant::now();
            for r in chunk {
                encode_record(r, &mut buf);
            }
            enc_best[k] = enc_best[k].min(t.elapsed().as_secs_f64());
            total_len += buf.len();
            let t = Instant::now();
            let mut at = 0;
            while at < buf.len() {
                let (r, used) = decode_record(&buf[at..]).unwrap();
                sum = sum.wrapping_add(r.src.pkts);
                at += used;
            }
            dec_best[k] = dec_best[k].min(t.elapsed().as_secs_f64());
        }
    }
    let enc: f64 = enc_best.iter().sum();
    let dec: f64 = dec_best.iter().sum();
    let per_rec = total_len as f64 / n as f64;

    // Writer (encode + zstd + crc), default options: blocks of 8192 records.
    let t = Instant::now();
    let mut w = RecordWriter::new(Vec::new(), &header(1), WriterOptions::default()).unwrap();
    for r in &recs {
        w.write(r).unwrap();
    }
    let file = w.finish().unwrap();
    let wr = t.elapsed().as_secs_f64();

    // Reader (crc + unzstd + decode), best of 5.
    let mut rdt = f64::MAX;
    let mut blocks = 0;
    for _pass in 0..5 {
        let t = Instant::now();
        let mut rd = RecordReader::new(&file[..], "mem").unwrap();
        let mut count = 0usize;
        while let Some(r) = rd.next_record().unwrap() {
            sum = sum.wrapping_add(r.dst.pkts);
            count += 1;
        }
        rdt = rdt.min(t.elapsed().as_secs_f64());
        assert_eq!(count, n);
        blocks = rd.blocks_read();
    }

    let mut one = Vec::new();
    encode_record(&recs[0], &mut one);
    println!(
        "typical TCP record: {} bytes encoded (first record)",
        one.len()
    );
    println!("encode_record     {}", rate(n, enc));
    println!("decode_record     {}", rate(n, dec));
    println!("RecordWriter      {}", rate(n, wr));
    println!("RecordReader      {}", rate(n, rdt));
    println!("uncompressed      {per_rec:.1} bytes/record");
    println!(
        "in the file       {:.1} bytes/record (zstd 3, 8192-record blocks, {} blocks)",
        file.len() as f64 / n as f64,
        blocks
    );
    for level in [1, 3, 9] {
        let opts = WriterOptions {
            zstd_level: level,
            ..WriterOptions::default()
        };
        let t = Instant::now();
        let mut w = RecordWriter::new(Vec::new(), &header(1), opts).unwrap();
        for r in &recs {
            w.write(r).unwrap();
        }
        let f = w.finish().unwrap();
        println!(
            "zstd level {level:2}     {:.1} bytes/record, writer {}",
            f.len() as f64 / n as f64,
            rate(n, t.elapsed().as_secs_f64())
        );
    }
    println!("(checksum {sum})");
}

/// The reader alone, for profiling (`perf record … reader_only --ignored`).
#[test]
#[ignore]
fn reader_only() {
    let mut rng = Rng::new(42);
    let n = 8192 * 16;
    let mut w = RecordWriter::new(Vec::new(), &header(1), WriterOptions::default()).unwrap();
    for i in 0..n as u64 {
        w.write(&tcp_record(&mut rng, i)).unwrap();
    }
    let file = w.finish().unwrap();
    let mut best = f64::MAX;
    let mut sum = 0u64;
    for _ in 0..20 {
        let t = Instant::now();
        let mut rd = RecordReader::new(&file[..], "mem").unwrap();
        for r in rd.by_ref() {
            sum = sum.wrapping_add(r.unwrap().src.pkts);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("RecordReader      {} (checksum {sum})", rate(n, best));
}
