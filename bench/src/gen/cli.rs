//! The `tapflow-bench gen` subcommand.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use super::truth::Truth;
use super::write::{Interface, PcapOpts, PcapWriter, PcapngWriter};
use super::{fixtures, linktype, scenario, Frame};

/// Generate synthetic captures (deterministic: the same seed gives the same bytes).
#[derive(Args, Debug)]
pub struct GenArgs {
    #[command(subcommand)]
    pub what: GenCmd,
}

#[derive(Subcommand, Debug)]
pub enum GenCmd {
    /// The README demo: a small realistic mix (~300 packets, two minutes).
    Demo(DemoArgs),
    /// Flow-table worst case: 60-byte SYNs and UDP probes at 14.88 Mpps, all flows live.
    Worst(WorstArgs),
    /// A bigger realistic mix of about N packets over M flows.
    Mix(MixArgs),
    /// Regenerate the project's test fixtures (demo capture, link types, format edge cases).
    Fixtures(FixturesArgs),
    /// InfiniBand and RoCEv2 captures with known flows, losses and retransmissions, as pcap
    /// (LINKTYPE_INFINIBAND / Ethernet), ERF and pcap of ERF records (LINKTYPE_ERF), plus
    /// damaged ERF files and the truth (JSON lines).
    Ib(IbArgs),
}

#[derive(Args, Debug)]
pub struct IbArgs {
    /// Directory to write into (created).
    #[arg(long)]
    pub dir: PathBuf,
    /// Scenario seed (moves the timestamps).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Pcap,
    Pcapng,
}

/// Output options shared by the generators.
#[derive(Args, Debug)]
pub struct OutArgs {
    /// Output file ('-' for stdout). A '.gz' or '.zst' suffix compresses it.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also write the ground truth (one CSV line per flow) to this file.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// File format (default: from the output name, pcap unless it ends in .pcapng[.gz|.zst]).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Microsecond timestamps instead of nanoseconds.
    #[arg(long)]
    pub usec: bool,
    /// PRNG seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub out: OutArgs,
    /// pcapng only: add a second interface (LINKTYPE_RAW) with a couple of bare IPv4 packets.
    #[arg(long)]
    pub raw_iface: bool,
}

#[derive(Args, Debug)]
pub struct WorstArgs {
    #[command(flatten)]
    pub out: OutArgs,
    /// Number of packets.
    #[arg(long, default_value_t = 1_000_000)]
    pub packets: u64,
    /// Number of distinct flows.
    #[arg(long, default_value_t = 100_000)]
    pub flows: u64,
    /// Share of the flows that are UDP probes (the rest are TCP SYNs).
    #[arg(long, default_value_t = 0.25)]
    pub udp_frac: f64,
}

#[derive(Args, Debug)]
pub struct MixArgs {
    #[command(flatten)]
    pub out: OutArgs,
    /// About this many packets.
    #[arg(long, default_value_t = 100_000)]
    pub packets: u64,
    /// Number of flows.
    #[arg(long, default_value_t = 5_000)]
    pub flows: u64,
}

#[derive(Args, Debug)]
pub struct FixturesArgs {
    /// Directory to write into.
    #[arg(long, default_value = "tests/fixtures")]
    pub dir: PathBuf,
}

/// Runs `tapflow-bench gen …`.
pub fn run(args: GenArgs) -> Result<()> {
    match args.what {
        GenCmd::Demo(a) => gen_demo(a),
        GenCmd::Worst(a) => gen_worst(a),
        GenCmd::Mix(a) => gen_mix(a),
        GenCmd::Fixtures(a) => gen_fixtures(a),
        GenCmd::Ib(a) => gen_ib(a),
    }
}

/// Writes `ib.pcap` (LINKTYPE_INFINIBAND 247), `ib.erf` (ERF types 21, 25, pad records,
/// extension headers, loss counters), `ib-erf.pcap` (the ERF records in LINKTYPE_ERF 197),
/// `roce.pcap` and `roce.erf` (Ethernet, ERF type 2 with FCS), the truth `ib.truth.jsonl` /
/// `roce.truth.jsonl`, and damaged copies of `ib.erf`: `bad-rlen.erf` (record 30's rlen is 9),
/// `bad-ext.erf` (record 20's extension chain runs past its end), `bad-type.erf` (record 10
/// has type 99), `truncated.erf` (cut inside the last record). `damage.tsv` lists, per damaged
/// file, the byte offset of the damage and the packets before it.
fn gen_ib(a: IbArgs) -> Result<()> {
    use super::ib::{self, ErfKind, Transport};
    std::fs::create_dir_all(&a.dir).with_context(|| format!("create {}", a.dir.display()))?;
    let put = |name: &str, bytes: &[u8]| -> Result<()> {
        let p = a.dir.join(name);
        std::fs::write(&p, bytes).with_context(|| format!("write {}", p.display()))
    };
    let truth = |flows: &[ib::IbFlowTruth]| -> Vec<u8> {
        flows
            .iter()
            .map(|f| f.to_json() + "\n")
            .collect::<String>()
            .into_bytes()
    };
    let (nf, nt) = ib::scenario(Transport::Native, a.seed);
    put("ib.pcap", &ib::write_pcap(&nf, 247))?;
    let erf = ib::write_erf(&nf);
    put("ib.erf", &erf)?;
    put("ib.truth.jsonl", &truth(&nt))?;
    // Pad records stay out: a pcap frame is a packet (tapflow skips them, tshark lists them).
    let in_pcap: Vec<super::Frame> = nf
        .iter()
        .filter(|f| f.kind != ErfKind::Pad)
        .map(|f| super::Frame::new(f.ts_ns, ib::erf_record(f)))
        .collect();
    put(
        "ib-erf.pcap",
        &super::write::write_pcap(Vec::new(), &in_pcap, 197, true)?,
    )?;
    let (rf, rt) = ib::scenario(Transport::Roce, a.seed);
    put("roce.pcap", &ib::write_pcap(&rf, 1))?;
    put("roce.erf", &ib::write_erf(&rf))?;
    put("roce.truth.jsonl", &truth(&rt))?;

    // Damaged copies: (name, record index, how).
    let starts: Vec<usize> = nf
        .iter()
        .scan(0usize, |off, f| {
            let at = *off;
            *off += ib::erf_record(f).len();
            Some(at)
        })
        .collect();
    let packets_before = |k: usize| nf[..k].iter().filter(|f| f.kind != ErfKind::Pad).count();
    let mut damage = String::from("file\toffset\tpackets_before\tgood_after\n");
    let after = |k: usize| {
        nf[k + 1..]
            .iter()
            .filter(|f| f.kind != ErfKind::Pad)
            .count()
    };
    let mut bad = erf.clone();
    bad[starts[30] + 10..starts[30] + 12].copy_from_slice(&9u16.to_be_bytes());
    put("bad-rlen.erf", &bad)?;
    damage += &format!("bad-rlen.erf\t{}\t{}\t0\n", starts[30], packets_before(30));
    // Record 20 gets an extension chain where every 8-byte step says "another follows".
    let k = 20;
    let end = starts.get(k + 1).copied().unwrap_or(erf.len());
    let mut bad = erf.clone();
    bad[starts[k] + 8] |= 0x80;
    for p in (starts[k] + 16..end).step_by(8) {
        bad[p] |= 0x80;
    }
    put("bad-ext.erf", &bad)?;
    damage += &format!(
        "bad-ext.erf\t{}\t{}\t{}\n",
        starts[k],
        packets_before(k),
        after(k)
    );
    let mut bad = erf.clone();
    bad[starts[10] + 8] = 99 | (bad[starts[10] + 8] & 0x80);
    put("bad-type.erf", &bad)?;
    damage += &format!(
        "bad-type.erf\t{}\t{}\t{}\n",
        starts[10],
        packets_before(10),
        after(10)
    );
    let last = nf.len() - 1;
    put("truncated.erf", &erf[..erf.len() - 3])?;
    damage += &format!(
        "truncated.erf\t{}\t{}\t0\n",
        starts[last],
        packets_before(last)
    );
    put("damage.tsv", damage.as_bytes())?;
    eprintln!(
        "wrote {} native IB and {} RoCEv2 packets to {}",
        nf.iter().filter(|f| f.kind != ErfKind::Pad).count(),
        rf.len(),
        a.dir.display()
    );
    Ok(())
}

fn gen_demo(a: DemoArgs) -> Result<()> {
    let fmt = a.out.format();
    if a.raw_iface && fmt != Format::Pcapng {
        bail!("--raw-iface needs pcapng output");
    }
    let (frames, truth) = if a.raw_iface {
        scenario::demo_two_ifaces(a.out.seed)
    } else {
        scenario::demo(a.out.seed)
    };
    let n = frames.len();
    a.out.write_all(&frames, a.raw_iface)?;
    a.out.write_truth(&truth)?;
    eprintln!(
        "wrote {n} packets, {} flows",
        truth.without_empty().flows.len()
    );
    Ok(())
}

fn gen_worst(a: WorstArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&a.udp_frac) {
        bail!("--udp-frac must be within 0..1");
    }
    if a.flows == 0 || a.flows > u32::MAX as u64 {
        bail!("--flows must be within 1..2^32");
    }
    let it = scenario::worst(a.packets, a.flows, a.out.seed, a.udp_frac);
    let mut truth = a.out.truth.as_ref().map(|_| it.truth());
    let mut w = a.out.frame_sink(false)?;
    for f in it {
        if let Some(t) = truth.as_mut() {
            t.tally(&f, 0);
        }
        w.write(&f)?;
    }
    w.finish()?;
    if let Some(t) = truth {
        a.out.write_truth(&t)?;
    }
    eprintln!(
        "wrote {} packets over {} flows",
        a.packets,
        a.flows.min(a.packets)
    );
    Ok(())
}

fn gen_mix(a: MixArgs) -> Result<()> {
    let (frames, truth) = scenario::mix(a.packets, a.flows, a.out.seed);
    a.out.write_all(&frames, false)?;
    a.out.write_truth(&truth)?;
    eprintln!(
        "wrote {} packets, {} flows",
        frames.len(),
        truth.without_empty().flows.len()
    );
    Ok(())
}

fn gen_fixtures(a: FixturesArgs) -> Result<()> {
    let files =
        fixtures::write_all(&a.dir).with_context(|| format!("writing {}", a.dir.display()))?;
    for f in &files {
        let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        eprintln!("{:>8}  {}", len, f.display());
    }
    Ok(())
}

impl OutArgs {
    fn format(&self) -> Format {
        self.format.unwrap_or_else(|| {
            let name = self.output.to_string_lossy();
            let base = name.trim_end_matches(".gz").trim_end_matches(".zst");
            if base.ends_with(".pcapng") {
                Format::Pcapng
            } else {
                Format::Pcap
            }
        })
    }

    fn frame_sink(&self, raw_iface: bool) -> Result<FrameSink> {
        let out = open_output(&self.output)?;
        let nsec = !self.usec;
        Ok(match self.format() {
            Format::Pcap => FrameSink::Pcap(PcapWriter::new(
                out,
                PcapOpts::new(linktype::ETHERNET, nsec),
            )?),
            Format::Pcapng => {
                let mut ifaces = vec![Interface::new(linktype::ETHERNET, "eth0")];
                if raw_iface {
                    ifaces.push(Interface::new(linktype::RAW, "tun0"));
                }
                for i in &mut ifaces {
                    i.nsec = nsec;
                }
                FrameSink::Pcapng(PcapngWriter::new(out, &ifaces, Default::default())?)
            }
        })
    }

    fn write_all(&self, frames: &[Frame], raw_iface: bool) -> Result<()> {
        let mut w = self.frame_sink(raw_iface)?;
        for f in frames {
            w.write(f)?;
        }
        w.finish()
    }

    fn write_truth(&self, t: &Truth) -> Result<()> {
        if let Some(p) = &self.truth {
            let mut w = BufWriter::new(
                File::create(p).with_context(|| format!("creating {}", p.display()))?,
            );
            t.write_csv(&mut w)?;
            w.flush()?;
        }
        Ok(())
    }
}

enum FrameSink {
    Pcap(PcapWriter<Output>),
    Pcapng(PcapngWriter<Output>),
}

impl FrameSink {
    fn write(&mut self, f: &Frame) -> io::Result<()> {
        match self {
            FrameSink::Pcap(w) => w.write(f),
            FrameSink::Pcapng(w) => w.write(f),
        }
    }
    fn finish(self) -> Result<()> {
        let out = match self {
            FrameSink::Pcap(w) => w.finish()?,
            FrameSink::Pcapng(w) => w.finish()?,
        };
        out.finish()
    }
}

/// The output stream, optionally compressed.
enum Output {
    Plain(BufWriter<Box<dyn Write>>),
    Gz(flate2::write::GzEncoder<BufWriter<Box<dyn Write>>>),
    Zst(zstd::stream::write::Encoder<'static, BufWriter<Box<dyn Write>>>),
}

fn open_output(p: &Path) -> Result<Output> {
    let raw: Box<dyn Write> = if p.as_os_str() == "-" {
        Box::new(io::stdout().lock())
    } else {
        Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?)
    };
    let w = BufWriter::with_capacity(1 << 20, raw);
    let name = p.to_string_lossy();
    Ok(if name.ends_with(".gz") {
        Output::Gz(
            flate2::GzBuilder::new()
                .mtime(0)
                .write(w, flate2::Compression::default()),
        )
    } else if name.ends_with(".zst") {
        Output::Zst(zstd::stream::write::Encoder::new(w, 3)?)
    } else {
        Output::Plain(w)
    })
}

impl Output {
    fn finish(self) -> Result<()> {
        let mut w = match self {
            Output::Plain(w) => w,
            Output::Gz(e) => e.finish()?,
            Output::Zst(e) => e.finish()?,
        };
        w.flush()?;
        Ok(())
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Plain(w) => w.write(buf),
            Output::Gz(w) => w.write(buf),
            Output::Zst(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Plain(w) => w.flush(),
            Output::Gz(w) => w.flush(),
            Output::Zst(w) => w.flush(),
        }
    }
}
