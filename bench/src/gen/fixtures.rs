//! The project's test fixtures and demo capture, all made here (`tapflow-bench gen fixtures`).
//!
//! [`write_all`] writes every file under a directory (normally `tests/fixtures/`); the list of
//! files, their contents and their truth files are described in `tests/fixtures/README.md`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::link::{self, RelinkOpts};
use super::scenario::{demo, demo_two_ifaces};
use super::truth::Truth;
use super::write::{
    write_pcap, write_pcap_opts, write_pcapng, write_pcapng_endian, Endian, Interface, PcapOpts,
};
use super::{linktype, Frame};

/// Seed of every fixture.
pub const SEED: u64 = 1;

/// Note of the demo's IPv4 HTTP session (used for the small fixtures).
const V4_SESSION: &str = "HTTP GET, 3 kB response, FIN";
/// Note of the demo's IPv6 session with an out-of-order pair.
const V6_SESSION: &str = "TCP over IPv6 with an out-of-order pair, FIN";

/// The frames of the demo flow whose note is `note`, with its truth alone (flow index 0).
pub fn demo_flow(note: &str) -> (Vec<Frame>, Truth) {
    demo_flows(&[note])
}

/// The frames of the demo flows with these notes, in time order, and their truth (flows
/// renumbered in the order given).
pub fn demo_flows(notes: &[&str]) -> (Vec<Frame>, Truth) {
    let (frames, truth) = demo(SEED);
    let ids: Vec<usize> = notes
        .iter()
        .map(|n| {
            truth
                .flows
                .iter()
                .position(|f| f.note == *n)
                .unwrap_or_else(|| panic!("no demo flow {n:?}"))
        })
        .collect();
    let mut out = Truth::default();
    for &i in &ids {
        out.flows.push(truth.flows[i].clone());
    }
    let frames: Vec<Frame> = frames
        .into_iter()
        .filter_map(|mut f| {
            let k = ids.iter().position(|&i| i == f.tag.flow as usize)?;
            f.tag.flow = k as u32;
            Some(f)
        })
        .collect();
    out.recount(&frames, 0);
    (frames, out)
}

fn write_file(dir: &Path, name: &str, bytes: &[u8], written: &mut Vec<PathBuf>) -> io::Result<()> {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&p, bytes)?;
    written.push(p);
    Ok(())
}

fn csv(t: &Truth) -> Vec<u8> {
    let mut v = Vec::new();
    t.write_csv(&mut v).expect("write to Vec");
    v
}

fn pcap(frames: &[Frame], lt: u16) -> Vec<u8> {
    write_pcap(Vec::new(), frames, lt, true).expect("write to Vec")
}

/// Writes all fixtures under `dir`; returns the paths written.
pub fn write_all(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut w = Vec::new();

    // The demo capture, pcap (ns) and pcapng with a second, raw-IP interface.
    let (frames, truth) = demo(SEED);
    write_file(dir, "demo.pcap", &pcap(&frames, linktype::ETHERNET), &mut w)?;
    write_file(dir, "demo.truth.csv", &csv(&truth), &mut w)?;
    let (frames2, truth2) = demo_two_ifaces(SEED);
    let ifaces = [
        Interface::new(linktype::ETHERNET, "eth0"),
        Interface::new(linktype::RAW, "tun0"),
    ];
    let png = write_pcapng(Vec::new(), &ifaces, &frames2)?;
    write_file(dir, "demo.pcapng", &png, &mut w)?;
    write_file(dir, "demo.pcapng.truth.csv", &csv(&truth2), &mut w)?;

    // Link types: the IPv4 HTTP session and the IPv6 TLS session without Ethernet.
    let (both, both_truth) = demo_flows(&[V4_SESSION, V6_SESSION]);
    let client_mac = super::conv::mac_for("192.168.10.22".parse().unwrap());
    let client6_mac = super::conv::mac_for("2001:db8:10::22".parse().unwrap());
    write_file(
        dir,
        "linktypes/ethernet.pcap",
        &pcap(&both, linktype::ETHERNET),
        &mut w,
    )?;
    write_file(
        dir,
        "linktypes/ethernet.truth.csv",
        &csv(&both_truth),
        &mut w,
    )?;
    let variants: [(&str, u16, bool, u32); 7] = [
        ("sll", linktype::LINUX_SLL, false, link::af::INET6_DARWIN),
        ("sll2", linktype::LINUX_SLL2, false, link::af::INET6_DARWIN),
        ("raw", linktype::RAW, false, link::af::INET6_DARWIN),
        ("null_le", linktype::NULL, false, link::af::INET6_DARWIN),
        ("null_be", linktype::NULL, true, link::af::INET6_BSD),
        ("loop", linktype::LOOP, false, link::af::INET6_BSD),
        (
            "null_freebsd",
            linktype::NULL,
            false,
            link::af::INET6_FREEBSD,
        ),
    ];
    for (name, lt, be, af6) in variants {
        let mut frames = Vec::new();
        for f in &both {
            let o = RelinkOpts {
                local_mac: if f.data[12..14] == [0x86, 0xdd] {
                    client6_mac
                } else {
                    client_mac
                },
                null_big_endian: be,
                af_inet6: af6,
                ifindex: 2,
            };
            frames.push(link::relink_frame(f, lt, &o).expect("plain IP frame"));
        }
        write_file(
            dir,
            &format!("linktypes/{name}.pcap"),
            &pcap(&frames, lt),
            &mut w,
        )?;
    }
    // IPV4 / IPV6 link types carry one family each.
    for (name, lt, note) in [
        ("ipv4", linktype::IPV4, V4_SESSION),
        ("ipv6", linktype::IPV6, V6_SESSION),
    ] {
        let (fr, mut t) = demo_flow(note);
        let fr: Vec<Frame> = fr
            .iter()
            .map(|f| link::relink_frame(f, lt, &RelinkOpts::default()).expect("IP frame"))
            .collect();
        t.recount(&fr, 0);
        write_file(
            dir,
            &format!("linktypes/{name}.pcap"),
            &pcap(&fr, lt),
            &mut w,
        )?;
        write_file(
            dir,
            &format!("linktypes/{name}.truth.csv"),
            &csv(&t),
            &mut w,
        )?;
    }
    // For the pseudo-header link types the truth counts IP bytes (the record model leaves
    // SLL/NULL headers out), which is the same for all of them.
    let mut t = both_truth.clone();
    let raw: Vec<Frame> = both
        .iter()
        .map(|f| link::relink_frame(f, linktype::RAW, &RelinkOpts::default()).unwrap())
        .collect();
    t.recount(&raw, 0);
    write_file(dir, "linktypes/truth.csv", &csv(&t), &mut w)?;

    // Edge cases of the file formats, on the IPv4 HTTP session.
    let (sess, sess_truth) = demo_flow(V4_SESSION);
    write_file(dir, "edge/session.truth.csv", &csv(&sess_truth), &mut w)?;
    let usec = write_pcap(Vec::new(), &sess, linktype::ETHERNET, false)?;
    write_file(dir, "edge/usec.pcap", &usec, &mut w)?;
    let mut o = PcapOpts::new(linktype::ETHERNET, true);
    o.endian = Endian::Big;
    write_file(
        dir,
        "edge/big_endian.pcap",
        &write_pcap_opts(Vec::new(), &sess, o)?,
        &mut w,
    )?;
    let be = write_pcapng_endian(
        Vec::new(),
        &[Interface::new(linktype::ETHERNET, "eth0")],
        &sess,
        Endian::Big,
    )?;
    write_file(dir, "edge/big_endian.pcapng", &be, &mut w)?;
    let mut usec_if = Interface::new(linktype::ETHERNET, "eth0");
    usec_if.nsec = false;
    let png_usec = write_pcapng(Vec::new(), &[usec_if], &sess)?;
    write_file(dir, "edge/usec.pcapng", &png_usec, &mut w)?;
    let mut o = PcapOpts::new(linktype::ETHERNET, true);
    o.snaplen = 96;
    write_file(
        dir,
        "edge/snaplen96.pcap",
        &write_pcap_opts(Vec::new(), &sess, o)?,
        &mut w,
    )?;
    let mut snap_if = Interface::new(linktype::ETHERNET, "eth0");
    snap_if.snaplen = 96;
    write_file(
        dir,
        "edge/snaplen96.pcapng",
        &write_pcapng(Vec::new(), &[snap_if], &sess)?,
        &mut w,
    )?;
    // A file cut in the middle of its last record's data, and one cut inside a record header.
    let full = pcap(&sess, linktype::ETHERNET);
    let last = sess.last().unwrap().data.len();
    write_file(
        dir,
        "edge/truncated_data.pcap",
        &full[..full.len() - last / 2],
        &mut w,
    )?;
    write_file(
        dir,
        "edge/truncated_header.pcap",
        &full[..full.len() - last - 8],
        &mut w,
    )?;
    let mut cut_truth = sess_truth.clone();
    cut_truth.recount(&sess[..sess.len() - 1], 0);
    write_file(dir, "edge/truncated.truth.csv", &csv(&cut_truth), &mut w)?;
    write_file(
        dir,
        "edge/empty.pcap",
        &pcap(&[], linktype::ETHERNET),
        &mut w,
    )?;
    let empty_ng = write_pcapng(
        Vec::new(),
        &[Interface::new(linktype::ETHERNET, "eth0")],
        std::iter::empty::<&Frame>(),
    )?;
    write_file(dir, "edge/empty.pcapng", &empty_ng, &mut w)?;
    // Compressed copies of the session (the readers accept gzip and zstd streams).
    write_file(dir, "edge/session.pcap.gz", &gzip(&full)?, &mut w)?;
    write_file(dir, "edge/session.pcap.zst", &zstd_compress(&full)?, &mut w)?;
    Ok(w)
}

/// gzip with a fixed header (mtime 0) so the output is reproducible.
pub fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    e.write_all(data)?;
    e.finish()
}

/// zstd at level 19.
pub fn zstd_compress(data: &[u8]) -> io::Result<Vec<u8>> {
    zstd::stream::encode_all(data, 19)
}
