//! `tapflow convert --to FORMAT -r … -w DEST`: records into another tool's format. Argus 3
//! files (read by Debian's argus-client; `tapflow_argus`), JSON lines (one object per
//! record, every field, schema in docs/interop.md), IPFIX and NetFlow v9 (`tapflow_ipfix`:
//! files, UDP and TCP collectors). Parquet is named but not implemented yet: asking for it
//! fails clearly (exit 2).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use tapflow_argus::ArgusWriter;
use tapflow_ipfix::{net, Config, Dialect, Encoder};
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
    if a.to == ConvertTo::Parquet {
        return Err(Failure::bad(format!(
            "--to {name}: not implemented yet (this tapflow converts to argus, jsonl, ipfix \
             and netflow9)"
        )));
    }
    if matches!(a.to, ConvertTo::Ipfix | ConvertTo::Netflow9) {
        return export(a, dashdash, name);
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

/// Where IPFIX / NetFlow v9 messages go.
enum Transport {
    Stream(Box<dyn Write>),
    Udp(net::UdpSender),
    Tcp(net::TcpSender),
}

impl Transport {
    fn send(&mut self, m: &[u8]) -> io::Result<()> {
        match self {
            Transport::Stream(w) => w.write_all(m),
            Transport::Udp(u) => u.send(m),
            Transport::Tcp(t) => t.send(m),
        }
    }
}

/// `--to ipfix|netflow9`: records through the encoder to a file, stdout, or a collector.
fn export(a: &ConvertArgs, dashdash: bool, name: &str) -> Result<(), Failure> {
    let dialect = if a.to == ConvertTo::Ipfix {
        Dialect::Ipfix
    } else {
        Dialect::Netflow9
    };
    let dest = net::Dest::parse(&a.write);
    if dialect == Dialect::Netflow9 && !matches!(dest, Some(net::Dest::Udp(_))) {
        // RFC 3954 defines no framing on a stream (its header has a record count, not a
        // length) and no file format: v9 is a UDP protocol.
        return Err(Failure::bad(format!(
            "-w {}: --to netflow9 is sent to a collector over UDP: -w udp://HOST:PORT (use \
             --to ipfix for files and TCP)",
            a.write
        )));
    }
    let mut cfg = match dest {
        Some(net::Dest::Udp(_)) => Config::udp(dialect),
        _ => Config::stream(dialect),
    };
    cfg.uniflow |= a.uniflow;
    if let Some(m) = a.max_message {
        cfg.max_message = usize::from(m);
    }
    let filter = parse_filter(&a.filter, dashdash)?;
    if dest.is_none() {
        refuse_output_over_input(&a.source.files, Some(Path::new(&a.write)))?;
    }
    let mut records = open_sources(&a.source, filter, Meta::Skip)?;
    let mut out = match &dest {
        Some(net::Dest::Udp(hp)) => Transport::Udp(
            net::UdpSender::connect(hp, a.rate)
                .map_err(|e| Failure::bad(format!("-w {}: {}", a.write, io_msg(&e))))?,
        ),
        Some(net::Dest::Tcp(hp)) => {
            // Resolve first: a bad name is a usage error, a refused connection a runtime one.
            net::resolve(hp).map_err(|e| Failure::bad(format!("-w {}: {e}", a.write)))?;
            Transport::Tcp(
                net::TcpSender::connect(hp, Duration::from_secs(10)).map_err(|e| {
                    Failure::io(format!("cannot connect to {}: {}", a.write, io_msg(&e)))
                })?,
            )
        }
        None if a.write == "-" => {
            Transport::Stream(Box::new(BufWriter::with_capacity(1 << 16, io::stdout())))
        }
        None => match File::create(&a.write) {
            Ok(f) => Transport::Stream(Box::new(BufWriter::with_capacity(1 << 16, f))),
            Err(e) => {
                return Err(Failure::io(format!(
                    "cannot create {}: {}",
                    a.write,
                    io_msg(&e)
                )))
            }
        },
    };
    let mut enc = Encoder::new(cfg);
    let mut rec = FlowRecord::default();
    let res = (|| {
        let mut sink = |m: &[u8]| out.send(m);
        while records.next_into(&mut io::sink(), &mut rec)? {
            enc.add(&rec, crate::timerange::now_ns(), &mut sink)?;
        }
        enc.flush(crate::timerange::now_ns(), &mut sink)
    })();
    let (sent, refused) = match &mut out {
        Transport::Udp(u) => {
            u.finish();
            (u.sent(), u.refused())
        }
        _ => (0, 0),
    };
    let res = res.and_then(|()| match out {
        Transport::Stream(mut w) => w.flush(),
        Transport::Tcp(t) => t.finish(),
        Transport::Udp(_) => Ok(()),
    });
    match res {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe || dest.is_some() => {
            return Err(Failure::io(format!("writing {}: {}", a.write, io_msg(&e))))
        }
        _ => {}
    }
    let st = enc.stats();
    if a.source.verbose {
        crate::report(format_args!(
            "{name}: {} records → {} data records ({}) in {} messages ({} with templates), {} \
             bytes, to {}",
            st.records,
            st.data_records,
            if enc.config().uniflow {
                "uniflow"
            } else {
                "RFC 5103 biflow"
            },
            st.messages,
            st.template_messages,
            st.bytes,
            a.write
        ));
    }
    if st.skipped_non_ip + st.skipped_ib > 0 {
        crate::report(format_args!(
            "{name}: not exported (no template for them): {} non-IP, {} InfiniBand records",
            st.skipped_non_ip, st.skipped_ib
        ));
    }
    if refused > 0 {
        return Err(Failure::io(format!(
            "{}: {refused} of {sent} messages refused (ICMP port unreachable): is a collector \
             listening?",
            a.write
        )));
    }
    match records.failed() {
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
