//! `tapflow convert --to FORMAT -r … -w DEST`: records into another tool's format. Argus 3
//! files (read by Debian's argus-client; `tapflow_argus`) and JSON lines (one object per
//! record, every field, schema in docs/interop.md). IPFIX, NetFlow v9 and Parquet are named
//! but not implemented yet: asking for them fails clearly (exit 2).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use tapflow_argus::ArgusWriter;
use tapflow_record::{encap, AddrKind, DirStats, FlowRecord, FlowState};

use crate::cli::{ConvertArgs, ConvertTo};
use crate::read::{open_sources, parse_filter, refuse_output_over_input};
use crate::source::{io_msg, Meta};
use crate::Failure;

pub fn run(a: &ConvertArgs, dashdash: bool) -> Result<(), Failure> {
    let name = match a.to {
        ConvertTo::Argus => "argus",
        ConvertTo::Jsonl => "jsonl",
        ConvertTo::Ipfix => "ipfix",
        ConvertTo::Netflow9 => "netflow9",
        ConvertTo::Parquet => "parquet",
    };
    if matches!(
        a.to,
        ConvertTo::Ipfix | ConvertTo::Netflow9 | ConvertTo::Parquet
    ) {
        return Err(Failure::bad(format!(
            "--to {name}: not implemented yet (this tapflow converts to argus and jsonl)"
        )));
    }
    if a.write.starts_with("udp://") || a.write.starts_with("tcp://") {
        return Err(Failure::bad(format!(
            "-w {}: --to {name} writes a file or '-' (udp:// and tcp:// are for ipfix and \
             netflow9)",
            a.write
        )));
    }
    let filter = parse_filter(&a.filter, dashdash)?;
    let mut records = open_sources(&a.source, filter, Meta::Skip)?;
    let dest = Path::new(&a.write);
    refuse_output_over_input(&a.source.files, Some(dest))?;
    let out: Box<dyn Write> = if a.write == "-" {
        Box::new(BufWriter::with_capacity(1 << 16, io::stdout()))
    } else {
        match File::create(dest) {
            Ok(f) => Box::new(BufWriter::with_capacity(1 << 16, f)),
            Err(e) => {
                return Err(Failure::io(format!(
                    "cannot create {}: {}",
                    dest.display(),
                    io_msg(&e)
                )))
            }
        }
    };
    let mut rec = FlowRecord::default();
    let res = match a.to {
        ConvertTo::Argus => {
            let mut w = ArgusWriter::new(out, crate::timerange::now_ns());
            (|| {
                while records.next_into(&mut io::sink(), &mut rec)? {
                    w.write(&rec)?;
                }
                w.finish().map(drop)
            })()
        }
        _ => {
            let mut out = out;
            let mut line = String::with_capacity(2048);
            (|| {
                while records.next_into(&mut io::sink(), &mut rec)? {
                    line.clear();
                    jsonl(&rec, &mut line);
                    out.write_all(line.as_bytes())?;
                }
                out.flush()
            })()
        }
    };
    match res {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            return Err(Failure::io(format!("writing {}: {e}", a.write)))
        }
        _ => {}
    }
    match records.failed() {
        // Each error was reported where it happened; only the status is left.
        Some(code) => Err(Failure {
            code,
            msg: String::new(),
        }),
        None => Ok(()),
    }
}

/// The JSON lines schema version, written as `"v"` in every object (docs/interop.md): a new
/// key may be added without a bump; a key's meaning or type never changes without one.
pub const JSONL_VERSION: u32 = 1;

fn family(k: AddrKind) -> &'static str {
    match k {
        AddrKind::Ipv4 => "ipv4",
        AddrKind::Ipv6 => "ipv6",
        AddrKind::L2 => "l2",
    }
}

fn tcp_state(s: FlowState) -> &'static str {
    match s {
        FlowState::None => "none",
        FlowState::Req => "req",
        FlowState::Acc => "acc",
        FlowState::Con => "con",
        FlowState::Fin => "fin",
        FlowState::Clo => "clo",
        FlowState::Rst => "rst",
    }
}

fn mac(out: &mut String, m: &[u8; 6]) {
    let _ = write!(
        out,
        "\"{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\"",
        m[0], m[1], m[2], m[3], m[4], m[5]
    );
}

fn hex(out: &mut String, b: &[u8]) {
    out.push('"');
    for x in b {
        let _ = write!(out, "{x:02x}");
    }
    out.push('"');
}

/// An f64 as JSON: shortest round-trip form; NaN and infinities (JSON has none) as null.
fn float(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{v:?}");
    } else {
        out.push_str("null");
    }
}

fn dir(out: &mut String, d: &DirStats) {
    let ints: [(&str, u64); 21] = [
        ("pkts", d.pkts),
        ("bytes", d.bytes),
        ("ip_bytes", d.ip_bytes),
        ("app_bytes", d.app_bytes),
        ("first_ns", d.first_ns),
        ("last_ns", d.last_ns),
        ("ttl_min", d.ttl_min.into()),
        ("ttl_max", d.ttl_max.into()),
        ("tos", d.tos.into()),
        ("tcp_flags", d.tcp_flags.into()),
        ("retrans", d.retrans.into()),
        ("out_of_order", d.out_of_order.into()),
        ("zero_win", d.zero_win.into()),
        ("loss_pkts", d.loss_pkts.into()),
        ("loss_bytes", d.loss_bytes),
        ("window", d.window.into()),
        ("isn", d.isn.into()),
        ("first_seq", d.first_seq.into()),
        ("last_seq", d.last_seq.into()),
        ("last_ack", d.last_ack.into()),
        ("ipt_n", d.ipt_n.into()),
    ];
    out.push('{');
    for (k, v) in ints {
        let _ = write!(out, "\"{k}\":{v},");
    }
    out.push_str("\"ipt_mean_ns\":");
    float(out, d.ipt_mean_ns);
    out.push_str(",\"ipt_std_ns\":");
    float(out, d.ipt_std_ns);
    let _ = write!(out, ",\"frags\":{}}}", d.frags);
}

/// An outer address, or nothing without a tunnel.
struct Outer(bool, tapflow_record::Addr, AddrKind);

impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 {
            write!(f, "{}", self.1.display(self.2))
        } else {
            Ok(())
        }
    }
}

/// One record as one JSON object and a newline (schema: docs/interop.md, "JSON lines").
pub fn jsonl(r: &FlowRecord, out: &mut String) {
    let _ = write!(
        out,
        "{{\"v\":{JSONL_VERSION},\"probe\":{},\"seq\":{},\"cause\":\"{}\",\"observed\":{},\
         \"family\":\"{}\",\"proto\":{},\"ethertype\":{},\"saddr\":\"{}\",\"sport\":{},\
         \"daddr\":\"{}\",\"dport\":{},\"stime\":{},\"ltime\":{},\"state\":\"{}\",\
         \"tcp_state\":\"{}\",\"flags\":{},\"tcp_opts\":{},\"synack\":{},\"ackdat\":{},\"smac\":",
        r.probe_id,
        r.seq,
        r.cause.name(),
        r.observed,
        family(r.addr_kind),
        r.proto,
        r.ethertype,
        r.saddr.display(r.addr_kind),
        r.sport,
        r.daddr.display(r.addr_kind),
        r.dport,
        r.stime_ns,
        r.ltime_ns,
        r.state_name(),
        tcp_state(r.state),
        r.flags,
        r.tcp_opts,
        r.synack_ns,
        r.ackdat_ns,
    );
    mac(out, &r.smac);
    out.push_str(",\"dmac\":");
    mac(out, &r.dmac);
    let _ = write!(
        out,
        ",\"vlan\":{},\"ivlan\":{},\"mpls\":{},\"mpls2\":{},\"encap\":\"",
        r.vlan[0], r.vlan[1], r.mpls[0], r.mpls[1]
    );
    // No tunnel (outer family L2): the outer fields are empty strings.
    let tunnel = r.encap.outer_kind != AddrKind::L2;
    let mut first = true;
    for (bit, name) in encap::NAMES {
        if r.encap.kinds & bit != 0 {
            if !first {
                out.push('+');
            }
            first = false;
            out.push_str(name);
        }
    }
    let _ = write!(
        out,
        "\",\"encap_kinds\":{},\"tunid\":{},\"ofamily\":\"{}\",\"osaddr\":\"{}\",\"odaddr\":\"{}\",\
         \"src\":",
        r.encap.kinds,
        r.encap.tunnel_id,
        if tunnel { family(r.encap.outer_kind) } else { "" },
        Outer(tunnel, r.encap.outer_src, r.encap.outer_kind),
        Outer(tunnel, r.encap.outer_dst, r.encap.outer_kind),
    );
    dir(out, &r.src);
    out.push_str(",\"dst\":");
    dir(out, &r.dst);
    out.push_str(",\"src_payload\":");
    hex(out, &r.src_payload);
    out.push_str(",\"dst_payload\":");
    hex(out, &r.dst_payload);
    if !r.hs.is_empty() {
        let h = &r.hs;
        let _ = write!(
            out,
            ",\"hs\":{{\"syn_ns\":{},\"synack_ns\":{},\"ack_ns\":{},\"synack_ack\":{},\
             \"ack_ack\":{}}}",
            h.syn_ns, h.synack_ns, h.ack_ns, h.synack_ack, h.ack_ack
        );
    }
    if r.is_ib() || !r.ib.is_empty() {
        let b = &r.ib;
        let _ = write!(
            out,
            ",\"ib\":{{\"slid\":{},\"dlid\":{},\"sqp\":{},\"dqp\":{},\"pkey\":{},\"flags\":{},\
             \"opcodes\":",
            b.slid, b.dlid, b.sqp, b.dqp, b.pkey, b.flags
        );
        hex(out, &b.opcode_bytes());
        let _ = write!(out, ",\"naks\":{},\"rnr_naks\":{}}}", b.naks, b.rnr_naks);
    }
    out.push_str("}\n");
}
