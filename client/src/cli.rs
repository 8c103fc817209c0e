//! Command-line interface (clap derive). New subcommands go in [`Command`]; they take their
//! inputs with [`SourceArgs`] and, when they print records, [`OutputArgs`].

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "tapflow",
    version,
    about = "Read and analyse tapflow flow records",
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print flow records, optionally filtered (like argus `ra`)
    Read(ReadArgs),
    /// Aggregate records by a key: sums per host, subnet, port, time bin … (argus `racluster`)
    Agg(AggArgs),
    /// Sort records by fields, or keep the top N (argus `rasort`)
    Sort(SortArgs),
    /// Time series: counters per time bin and key (argus `rabins`)
    Bins(BinsArgs),
    /// Histogram of a numeric field, linear or log bins (argus `rahisto`)
    Hist(HistArgs),
    /// The operator report: top local hosts, fan-out (spam) and scan detectors
    Report(ReportArgs),
    /// Anonymise records: prefix-preserving addresses, ports, times, payload (argus
    /// `ranonymize`)
    Anon(AnonArgs),
    /// Live view of a probe's record stream: flows or any key, sorted, refreshing (argus
    /// `ratop`)
    Top(TopArgs),
    /// Time series charts of the records to SVG or PNG (argus `ragraph`)
    Plot(PlotArgs),
    /// Convert records to another format: Argus 3 files, JSON lines, IPFIX and NetFlow v9
    /// (files, UDP or TCP collectors; Parquet: not implemented yet)
    Convert(ConvertArgs),
}

/// Help shared by every subcommand: sources, time ranges and the filter.
const COMMON_HELP: &str = "\
SOURCES:
  -r FILE        a record file; '-' is standard input (native records, e.g. from -w -)
  -r DIR         an archive directory, read recursively, files in time order; hidden
                 '.NAME.part' files (being written) are skipped unless --partial
  -S HOST:PORT   a probe's live record stream (tapflow-probe --listen)
  Damaged data is reported with file and offset, every good record is still used, and the
  exit status is 1 (2 when an input cannot be opened or is not a record file).

TIME RANGE (-t, UTC; a record is selected when [stime, ltime] overlaps [start, end)):
  2024-03-01T10:50-2024-03-01T11:00   absolute ('T', '.' or ' ' before the time; '/' dates)
  10:50-11:00                          times of day on the date of the first record read
  2024-03-01   10:50   10:50:30        a whole day, minute or second
  10:50+10m    2024-03-01T10:50+1h     a start and a length (s, m, h, d, w; 1h30m)
  -1h          -2h+30m                 relative to now: the last hour; 30 min from 2 h ago
  @1709290200-@1709290800              epoch seconds
  Archive files that cannot hold a record of the range are skipped (--no-prune reads all).

FILTER (after a lone '-', as with ra; '--' works too):
  tcp udp icmp icmp6 sctp esp gre ip ip6 arp     protocol / family
  proto NUM|NAME                                  IP protocol
  [src|dst] host ADDR                             IPv4, IPv6 or MAC address
  [src|dst] net CIDR                              10.0.0.0/8, 2001:db8::/32
  [src|dst] port NUM|NAME                         TCP/UDP/SCTP port
  and &&  or ||  not !  ( )                       'not' binds tightest; and/or left to right
  src is the flow's initiator (saddr), dst its responder (daddr).";

const READ_EXAMPLES: &str = "\
EXAMPLES:
  tapflow read -r flows.tfr - tcp and host 10.0.0.1
  tapflow read -r a.tfr -r b.tfr -s stime,saddr,daddr,dur,tcprtt --csv
  tapflow read -r archive/ -t 10:50-11:00 - port 25
  tapflow read -S probe1:9561 - udp and port 53
  tapflow read -r archive.tfr --status
  tapflow read -r archive/ -t -1h -w lasthour.tfr
  tapflow-probe ... | tapflow read -r - -s +dur -n - not port 22";

const AGG_AFTER_HELP: &str = "\
KEYS (-M, comma separated; default proto,saddr,sport,daddr,dport: one line per flow):
  saddr daddr            addresses (MAC for non-IP flows)
  saddr/24  daddr/64     a prefix: /N masks IPv4 and IPv6 to N bits (IPv4 at most 32);
  saddr/24/48            /V4/V6 gives each family its own length
  proto sport dport smac dmac vlan ivlan probe
  stime/1m  (or -B 1m)   time bins (s, m, h, d) by each record's stime; stime prints the
                         bin's start
An aggregate is a flow record: counters are summed (records are deltas, so a flow's status
records add up), stime is the earliest, ltime the latest, flags are OR-ed, trans counts the
records; a field outside the key keeps its value when every record agrees, else prints as
zero. Every -s field and output format works, and -w writes native records for
`tapflow sort -r -`. Memory grows with the number of distinct keys (about 0.7 KB each).

EXAMPLES:
  tapflow agg -r archive/ -t 2024-03-01 -M saddr -s saddr,trans,pkts,bytes
  tapflow agg -r flows.tfr -M saddr/24,dport -B 1h --csv - tcp
  tapflow agg -r archive/ -t -1h -M saddr -w - | tapflow sort -r - -m -bytes -N 10";

const SORT_AFTER_HELP: &str = "\
FIELDS (-m): any field of `-s help`; '-field' sorts it descending, --desc reverses all.
Numbers compare as numbers, addresses by family then value, words as text; a blank value
comes first. Stable: equal records keep their input order. -N N keeps only the top N (a
bounded heap: memory for N records, whatever the input); without it every record is held,
in native encoding.

EXAMPLES:
  tapflow sort -r flows.tfr -m -bytes -N 10 -s saddr,daddr,dport,bytes
  tapflow sort -r flows.tfr -m saddr,-pkts
  tapflow agg -r archive/ -M saddr -w - | tapflow sort -r - -m -bytes -N 20 -s saddr,trans,bytes";

const BINS_AFTER_HELP: &str = "\
BIN AND KEYS: -B 1m gives the bin (s, m, h, d; bins start at multiples of it, UTC), -M the
keys as in `tapflow agg` (saddr daddr saddr/24 daddr/64 proto sport dport smac dmac vlan
ivlan probe); no -M: one series. `-M stime/1m,saddr` and rabins' `-M 1m saddr` work too.
A record's packets and bytes are divided among the bins its [stime, ltime) overlaps, in
proportion to the time (integer shares that add up exactly); --start-bin puts each record
whole in the bin of its stime. One row per (bin, key) in time order: count (records or
record pieces), spkts, dpkts, sbytes, dbytes. Rows are held until the end.

EXAMPLES:
  tapflow bins -r archive/ -t 2024-03-01 -B 1h
  tapflow bins -r flows.tfr -B 1m -M saddr/24,dport --csv - tcp
  tapflow bins -r flows.tfr -B 5m -M proto --start-bin --json";

const HIST_AFTER_HELP: &str = "\
FIELD: any numeric field of `tapflow read -s help` (dur, pkts, bytes, spkts, sbytes, tcprtt,
synack, sjit, sttl, dport, …) in the units read prints it (seconds; jitter and inter-packet
times in ms), or rate srate drate (packets/s), load sload dload (bits/s), smeansz dmeansz
(bytes per packet). Records without a value are counted apart.
Bins: --bins N of equal width over --range LOW:HIGH (default: the smallest to the largest
value, which holds the values in memory: 8 bytes per record), or equal width in log10 with
--log. Values outside the range are counted as under/over; the last bin includes HIGH.

EXAMPLES:
  tapflow hist -r flows.tfr dur --log --bins 8
  tapflow hist -r archive/ -t -1h bytes --log --range 40:1e9 --csv - tcp
  tapflow hist -r flows.tfr tcprtt --range 0:0.5 --bins 50 --json";

const REPORT_AFTER_HELP: &str = "\
SECTIONS: totals (out/in/internal/transit traffic as seen from the --local networks);
the top local hosts by bytes (or --by pkts) with what each sent (out) and received (in),
its top peers and service ports; fan-out: local hosts that contacted more than --fanout-k
distinct remote hosts on the --fanout-ports (25: spam) within --fanout-window (hopping
windows every --fanout-hop); scans: sources that probed at least --scan-targets (host, port)
targets with at most --scan-pkts packets each and no reply payload. Memory is bounded
whatever the input (--track-* sizes the tables; a '~' marks an estimate).

EXAMPLES:
  tapflow report -r archive/ -t 2024-03-01 --local 10.0.0.0/8,192.168.0.0/16
  tapflow report -r archive/ -t -24h --local 10.0.0.0/8 --top 20 --json > daily.json
  tapflow report -r flows.tfr --local 2001:db8::/32 --fanout-ports 25,465,587 --fanout-k 50";

const ANON_AFTER_HELP: &str = "\
KEY (one is needed; the same key always gives the same mapping):
  --key-file FILE      64 hex digits or 32 raw bytes: `head -c 32 /dev/urandom > anon.key`
  TAPFLOW_ANON_KEY     a passphrase in the environment (PBKDF2-HMAC-SHA256), used when no
                       --key-file or --passphrase is given
  --passphrase TEXT    the same, on the command line: visible to other users (ps) and kept
                       in shell history, so tapflow warns; prefer the two above
WHAT CHANGES: IP addresses by Crypto-PAn (addresses sharing a k-bit prefix still share
exactly k bits); MACs (--mac); ports 1024-65535 by a keyed permutation, ports below 1024
kept (--ports); times (--time-shift, --time-relative); captured payload is removed unless
--keep-payload. Probe ids, VLANs, counters and status records are kept. Output: native
records (-w), readable by every tapflow command.

EXAMPLES:
  tapflow anon -r archive/ -t 2024-03-01 --key-file anon.key -w day.anon.tfr
  TAPFLOW_ANON_KEY='correct horse' tapflow anon -r flows.tfr --time-relative -w - | tapflow read -r -
  tapflow anon -r flows.tfr --key-file anon.key --mac keep-oui --ports keep -w out.tfr - not port 22";

/// A subcommand's own help, then what every subcommand shares.
fn help(own: &str) -> String {
    format!("{own}\n\n{COMMON_HELP}")
}

/// Where records come from: shared by every subcommand.
#[derive(Args, Debug)]
pub struct SourceArgs {
    /// Record file, archive directory (read recursively, in time order) or '-' for standard
    /// input; repeat for several
    #[arg(short = 'r', value_name = "FILE|DIR", action = ArgAction::Append, required_unless_present = "stream")]
    pub files: Vec<PathBuf>,

    /// Read the live record stream a probe serves on HOST:PORT (`tapflow-probe --listen`),
    /// until the probe stops or the output is closed
    #[arg(short = 'S', value_name = "HOST:PORT", conflicts_with = "files")]
    pub stream: Option<String>,

    /// Time range: 10:50-11:00, 2024-03-01T10:50+10m, 2024-03-01, -1h … (UTC; see
    /// --help); records overlapping it are selected
    #[arg(short = 't', value_name = "RANGE", allow_hyphen_values = true)]
    pub time: Option<String>,

    /// Also read hidden '.NAME.part' files found in directories (archive files still being
    /// written, or left by a crash)
    #[arg(long)]
    pub partial: bool,

    /// Read every archive file even when its time span cannot overlap the -t range
    #[arg(long)]
    pub no_prune: bool,

    /// Say which files are read and which are skipped by the time range
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

/// How records are printed (or written).
#[derive(Args, Debug)]
pub struct OutputArgs {
    /// Fields to print, comma separated; '+f' adds to and '-f' removes from the defaults.
    /// `-s help` lists them
    #[arg(short = 's', value_name = "FIELDS", allow_hyphen_values = true, action = ArgAction::Append)]
    pub fields: Vec<String>,

    /// Numeric output: never print port names
    #[arg(short = 'n')]
    pub numeric: bool,

    /// Print times as epoch seconds instead of UTC date and time
    #[arg(short = 'u')]
    pub epoch: bool,

    /// CSV output: a header of field names, RFC 4180 quoting, numeric ports
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,

    /// JSON lines output: one object per record, times as epoch seconds
    #[arg(long)]
    pub json: bool,

    /// Separate columns with CHAR instead of padding them (the CSV separator with --csv)
    #[arg(short = 'c', value_name = "CHAR", conflicts_with = "json")]
    pub sep: Option<char>,

    /// Write native tapflow records to FILE ('-': standard output) instead of text, for
    /// another tapflow command (`-r FILE` or `-r -`)
    #[arg(short = 'w', value_name = "FILE", conflicts_with_all = ["csv", "json", "sep", "fields", "numeric", "epoch"])]
    pub write: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(after_help = help(READ_EXAMPLES))]
pub struct ReadArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Print the probes' status records (per worker and interval: packets seen, delivered,
    /// dropped, decoded; flows; records) and tapflow-merge's (per input and interval: records
    /// in, duplicates, gaps, late, clock offset, joined, one-sided) instead of flow records
    #[arg(long)]
    pub status: bool,

    /// Stop after printing NUM records
    #[arg(short = 'N', value_name = "NUM")]
    pub limit: Option<u64>,

    /// Filter expression, after a lone '-'
    #[arg(
        value_name = "FILTER",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub filter: Vec<String>,
}

#[derive(Args, Debug)]
#[command(after_help = help(AGG_AFTER_HELP))]
pub struct AggArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Aggregation key, comma separated: saddr daddr saddr/24 daddr/64 proto sport dport smac
    /// dmac vlan ivlan probe stime/1m [default: proto,saddr,sport,daddr,dport]
    #[arg(short = 'M', value_name = "KEYS", action = ArgAction::Append)]
    pub key: Vec<String>,

    /// Time bins of this size (30s, 1m, 1h, 1d): the same as adding stime/BIN to the key
    #[arg(short = 'B', value_name = "BIN")]
    pub bin: Option<String>,

    /// Print at most NUM aggregates
    #[arg(short = 'N', value_name = "NUM")]
    pub limit: Option<u64>,

    /// Filter expression, after a lone '-': records are filtered before they are aggregated
    #[arg(
        value_name = "FILTER",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub filter: Vec<String>,
}

#[derive(Args, Debug)]
#[command(after_help = help(SORT_AFTER_HELP))]
pub struct SortArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Sort fields, comma separated; '-field' for descending [default: stime]
    #[arg(short = 'm', value_name = "FIELDS", allow_hyphen_values = true, action = ArgAction::Append)]
    pub by: Vec<String>,

    /// Descending order (reverses every -m field)
    #[arg(long)]
    pub desc: bool,

    /// Keep only the first NUM records of the order (top N, in bounded memory)
    #[arg(short = 'N', value_name = "NUM")]
    pub top: Option<u64>,

    /// Filter expression, after a lone '-'
    #[arg(
        value_name = "FILTER",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub filter: Vec<String>,
}

/// `--csv` / `--json` for the commands that print tables, not records.
#[derive(Args, Debug)]
pub struct TableFormatArgs {
    /// CSV output: a header row, then one row per line
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,

    /// JSON output
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(after_help = help(BINS_AFTER_HELP))]
pub struct BinsArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Bin size: 30s, 1m, 1h, 1d (bins start at multiples of it since the epoch, UTC)
    #[arg(short = 'B', value_name = "BIN")]
    pub bin: Option<String>,

    /// Keys, comma separated, as in `tapflow agg`: saddr daddr saddr/24 daddr/64 proto sport
    /// dport smac dmac vlan ivlan probe [default: none, one series]
    #[arg(short = 'M', value_name = "KEYS", action = ArgAction::Append)]
    pub key: Vec<String>,

    /// Put every record whole in the bin of its start time (default: divide its counters
    /// among the bins it overlaps, by time)
    #[arg(long)]
    pub start_bin: bool,

    #[command(flatten)]
    pub format: TableFormatArgs,

    /// Print times as epoch seconds instead of UTC date and time
    #[arg(short = 'u')]
    pub epoch: bool,

    /// Filter expression, after a lone '-': records are filtered before they are binned
    #[arg(
        value_name = "FILTER",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub filter: Vec<String>,
}

#[derive(Args, Debug)]
#[command(after_help = help(HIST_AFTER_HELP))]
pub struct HistArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// The numeric field: dur, pkts, bytes, sbytes, tcprtt, rate, load … (see below)
    #[arg(value_name = "FIELD")]
    pub field: String,

    /// Bins of equal width in log10 (for values spanning decades: bytes, dur, rate)
    #[arg(long)]
    pub log: bool,

    /// Number of bins
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=crate::hist::MAX_BINS as i64))]
    pub bins: u32,

    /// Bin over LOW:HIGH (default: the smallest to the largest value seen)
    #[arg(long, value_name = "LOW:HIGH", allow_hyphen_values = true)]
    pub range: Option<String>,

    #[command(flatten)]
    pub format: TableFormatArgs,

    /// Filter expression, after a lone '-'
    #[arg(
        value_name = "FILTER",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub filter: Vec<String>,
}

/// What ranks the report's top hosts, peers and ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RankBy {
    Bytes,
    Pkts,
}

#[derive(Args, Debug)]
#[command(after_help = help(REPORT_AFTER_HELP))]
pub struct ReportArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// The local networks, comma separated (10.0.0.0/8,192.168.0.0/16,2001:db8::/32);
    /// repeatable
    #[arg(long, value_name = "NETS", required = true, action = ArgAction::Append)]
    pub local: Vec<String>,

    /// Top local hosts to show
    #[arg(short = 'N', long, value_name = "N", default_value_t = 10)]
    pub top: usize,

    /// Peers shown under each top host
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top_peers: usize,

    /// Service ports shown under each top host
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top_ports: usize,

    /// Rank hosts, peers and ports by bytes or packets
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = RankBy::Bytes)]
    pub by: RankBy,

    /// Fan-out detector: the ports (numbers or names) whose distinct remote hosts count
    #[arg(long, value_name = "PORTS", default_value = "25")]
    pub fanout_ports: String,

    /// Fan-out detector: alert when a local host contacts more than K distinct remote hosts
    /// within a window
    #[arg(long, value_name = "K", default_value_t = 100)]
    pub fanout_k: u64,

    /// Fan-out detector: the window length
    #[arg(long, value_name = "DUR", default_value = "1h")]
    pub fanout_window: String,

    /// Fan-out detector: a window starts every DUR (default: a sixth of the window; equal to
    /// the window for clock hours)
    #[arg(long, value_name = "DUR")]
    pub fanout_hop: Option<String>,

    /// Fan-out detector: how late (out of time order) records may arrive (default: one hop;
    /// 0: none)
    #[arg(long, value_name = "DUR")]
    pub fanout_lateness: Option<String>,

    /// Scan detector: a source probing at least N distinct (host, port) targets is reported
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub scan_targets: u64,

    /// Scan detector: a probe is a flow whose initiator sent at most N packets (and got no
    /// payload back)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub scan_pkts: u64,

    /// Memory bounds: local hosts tracked for the top list
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = at_least_one)]
    pub track_hosts: usize,

    /// Memory bounds: peers and ports tracked per local host
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = at_least_one)]
    pub track_peers: usize,

    /// Memory bounds: hosts tracked by the fan-out detector
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = at_least_one)]
    pub track_fanout: usize,

    /// Memory bounds: sources tracked by the scan detector
    #[arg(long, value_name = "N", default_value_t = 2048, value_parser = at_least_one)]
    pub track_scans: usize,

    /// Memory bounds: fan-out alerts kept (the largest)
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = at_least_one)]
    pub max_alerts: usize,

    /// JSON output (one document) instead of text
    #[arg(long)]
    pub json: bool,

    /// Filter expression, after a lone '-': records are filtered before the report
    #[arg(
        value_name = "FILTER",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub filter: Vec<String>,
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a number of at least 1, not '{s}'")),
    }
}

/// `--mac`: how MAC addresses are anonymised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MacArg {
    /// A keyed hash of all six bytes (locally administered)
    Hash,
    /// Keep the vendor prefix, hash the other three bytes
    KeepOui,
    /// Leave MAC addresses as they are
    Keep,
}

/// `--ports`: how transport ports are anonymised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PortsArg {
    /// Keep ports below 1024, permute 1024-65535 with a keyed permutation
    Permute,
    /// Leave ports as they are
    Keep,
}

#[derive(Args, Debug)]
#[command(after_help = help(ANON_AFTER_HELP))]
pub struct AnonArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Write the anonymised records (native) to FILE; '-' is standard output
    #[arg(short = 'w', value_name = "FILE", required = true)]
    pub write: PathBuf,

    /// The key: a file of 64 hex digits or 32 raw bytes
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// Derive the key from TEXT (visible in `ps` and shell history: prefer --key-file or
    /// the TAPFLOW_ANON_KEY environment variable)
    #[arg(long, value_name = "TEXT", conflicts_with = "key_file")]
    pub passphrase: Option<String>,

    /// Leave IP addresses as they are
    #[arg(long)]
    pub keep_addrs: bool,

    /// MAC addresses
    #[arg(long, value_enum, value_name = "HOW", default_value_t = MacArg::Hash)]
    pub mac: MacArg,

    /// Transport ports
    #[arg(long, value_enum, value_name = "HOW", default_value_t = PortsArg::Permute)]
    pub ports: PortsArg,

    /// Move every time by SECS (negative: back; a unit is allowed: -1d, 90m)
    #[arg(long, value_name = "SECS", allow_hyphen_values = true)]
    pub time_shift: Option<String>,

    /// Move times so that the first record starts at BASE (epoch seconds, given as
    /// --time-relative=BASE; default 946684800, 2000-01-01T00:00:00Z)
    #[arg(long, value_name = "BASE", num_args = 0..=1, require_equals = true,
          default_missing_value = "946684800", conflicts_with = "time_shift")]
    pub time_relative: Option<u64>,

    /// Keep the captured payload bytes (removed by default)
    #[arg(long)]
    pub keep_payload: bool,

    /// Filter expression, after a lone '-': only matching flow records are written (status
    /// records are kept)
    #[arg(
        value_name = "FILTER",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub filter: Vec<String>,
}

const TOP_AFTER_HELP: &str = "\
Rows are aggregates of the key (the flow by default), kept while active: rows idle longer than
--hold (record time) are dropped. Rate/PRate: bits/packets per second over the last --window.
Keys: q quit, s/S (or arrows) sort column, r reverse, p pause, Up/Down/PgUp/PgDn scroll.

Examples:
  tapflow top -S probe1:5610
  tapflow top -S probe1:5610 -M saddr/24 --sort bytes - not port 443
  tapflow top -r flows.tfr --batch --rows 10 -s proto,saddr,daddr,dport,bytes,rate";

#[derive(Args, Debug)]
#[command(after_help = help(TOP_AFTER_HELP))]
pub struct TopArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Aggregation key, as `tapflow agg -M` (no time bins) [default:
    /// proto,saddr,sport,daddr,dport: one row per flow]
    #[arg(short = 'M', value_name = "KEYS", action = ArgAction::Append)]
    pub key: Vec<String>,

    /// Columns: fields (`-s help`), `rate` (bit/s), `prate` (packets/s); '+f'/'-f' edit the
    /// defaults
    #[arg(short = 's', value_name = "FIELDS", allow_hyphen_values = true, action = ArgAction::Append)]
    pub fields: Vec<String>,

    /// Initial sort column (descending; '+col' for ascending) [default: rate]
    #[arg(long, value_name = "COLUMN", allow_hyphen_values = true)]
    pub sort: Option<String>,

    /// Seconds between refreshes
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub refresh: f64,

    /// Seconds of record time the rates are taken over
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub window: f64,

    /// Seconds a row stays after its last activity (record time)
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub hold: f64,

    /// Rows kept at most (the longest idle go first)
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub max_rows: usize,

    /// Numeric output: never print port names
    #[arg(short = 'n')]
    pub numeric: bool,

    /// Print times as epoch seconds
    #[arg(short = 'u')]
    pub epoch: bool,

    /// Print frames as text on stdout instead of the interactive view: one at the end of file
    /// input; from a stream one per --refresh
    #[arg(long)]
    pub batch: bool,

    /// With --batch: stop after N frames
    #[arg(long, value_name = "N", requires = "batch")]
    pub iterations: Option<u64>,

    /// With --batch: rows per frame
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub rows: u16,

    /// With --batch: frame width in characters
    #[arg(long, value_name = "N", default_value_t = 160)]
    pub width: u16,

    /// Filter expression, after a lone '-'
    #[arg(
        value_name = "FILTER",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub filter: Vec<String>,
}

const PLOT_AFTER_HELP: &str = "\
The series are `tapflow bins` rows: -B the bin, -M the keys (one line per key value; the --top
N keys by total drawn, the rest summed as 'other'); a record's counters are divided among the
bins it overlaps. Metrics: bps pps (per second) or per-bin bytes pkts sbytes dbytes spkts dpkts
count. SVG or PNG by the -o name (-o - : SVG on stdout). Text needs a TrueType font: --font,
$TAPFLOW_FONT or the system's (Debian: fonts-dejavu-core).

Examples:
  tapflow plot -r archive/ -t -6h -B 5m -o traffic.svg
  tapflow plot -r archive/ -t 2024-03-01 -B 10m -M proto --stack -o proto.png
  tapflow plot -r flows.tfr -B 1m -M saddr --top 5 --metric pps -o - - dst port 53 > dns.svg";

#[derive(Args, Debug)]
#[command(after_help = help(PLOT_AFTER_HELP))]
pub struct PlotArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Bin size: 30s, 1m, 1h, 1d (or -M stime/BIN)
    #[arg(short = 'B', value_name = "BIN")]
    pub bin: Option<String>,

    /// Keys, comma separated, as in `tapflow bins`: one line per key value [default: one line]
    #[arg(short = 'M', value_name = "KEYS", action = ArgAction::Append)]
    pub key: Vec<String>,

    /// What to plot: bps pps bytes pkts sbytes dbytes spkts dpkts count
    #[arg(long, value_name = "METRIC", default_value = "bps")]
    pub metric: String,

    /// Lines drawn: the N keys with the largest totals, the rest summed as 'other'
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub top: usize,

    /// Stack the series as areas
    #[arg(long)]
    pub stack: bool,

    /// Put every record whole in the bin of its start time
    #[arg(long)]
    pub start_bin: bool,

    /// Output file (.svg or .png), '-' for SVG on stdout [default: -]
    #[arg(short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// svg or png (default: from the -o name)
    #[arg(long, value_name = "FMT")]
    pub format: Option<String>,

    /// Chart title
    #[arg(long)]
    pub title: Option<String>,

    /// Width in pixels
    #[arg(long, default_value_t = 1200)]
    pub width: u32,

    /// Height in pixels
    #[arg(long, default_value_t = 600)]
    pub height: u32,

    /// TrueType font for the text
    #[arg(long, value_name = "FILE")]
    pub font: Option<PathBuf>,

    /// Print the series as CSV (time,series,value) instead of drawing them
    #[arg(long)]
    pub table: bool,

    /// Filter expression, after a lone '-'
    #[arg(
        value_name = "FILTER",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub filter: Vec<String>,
}

const CONVERT_AFTER_HELP: &str = "\
FORMATS (--to):
  argus      Argus 3 record file (START MAR, one flow record per record, STOP MAR) that
             Debian's argus-client 3.0.8 reads: ra -r out.argus
  jsonl      JSON lines: one object per record with every field (docs/interop.md)
  ipfix      IPFIX (RFC 7011): one RFC 5103 biflow record per record (reverse elements,
             PEN 29305), or two uniflow records with --uniflow; observation domain = probe
             id. DEST: a file or '-' (IPFIX messages back to back, as RFC 5655 files),
             udp://HOST:PORT (messages of at most 1400 bytes, templates every 20 messages
             or 600 s, paced by --rate) or tcp://HOST:PORT (templates once)
  netflow9   NetFlow v9 (RFC 3954) to udp://HOST:PORT only: two uniflow records per record
  parquet    not implemented yet (exit status 2)
Non-IP and InfiniBand records have no IPFIX/NetFlow template and are skipped (counted).
-v prints what was sent. A TCP collector that cannot be reached, or UDP messages refused
(ICMP port unreachable), make the exit status 1.
Status records (probe and merge accounting) describe no flow and are not converted. Argus 3
files are also read as input by every subcommand (recognised by their header, gzip or not).
What the Argus format cannot carry, and how states map: docs/interop.md.

EXAMPLES:
  tapflow convert --to argus -r flows.tfr -w flows.argus && ra -r flows.argus
  tapflow convert --to jsonl -r archive/ -t -1h -w - - tcp | jq .saddr
  tapflow convert --to jsonl -r old.argus -w old.jsonl
  tapflow convert --to ipfix -r flows.tfr -w udp://collector:4739
  tapflow convert --to ipfix --uniflow -r archive/ -t -1h -w tcp://collector:4739 - tcp
  tapflow convert --to netflow9 -r flows.tfr -w udp://127.0.0.1:2055 -v";

/// `--to`: the output format of `tapflow convert`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConvertTo {
    Argus,
    Jsonl,
    Ipfix,
    Netflow9,
    Parquet,
}

#[derive(Args, Debug)]
#[command(after_help = help(CONVERT_AFTER_HELP))]
pub struct ConvertArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Output format
    #[arg(long = "to", value_enum, value_name = "FORMAT", required = true)]
    pub to: ConvertTo,

    /// Where to write: a file, or '-' for standard output; ipfix and netflow9 also
    /// udp://HOST:PORT, ipfix tcp://HOST:PORT
    #[arg(short = 'w', value_name = "DEST", required = true)]
    pub write: String,

    /// ipfix: two uniflow records per record (the responder's as its own flow) instead of
    /// one RFC 5103 biflow record, for collectors that ignore reverse elements
    #[arg(long)]
    pub uniflow: bool,

    /// udp://: send at most this many messages per second (0: unpaced)
    #[arg(long, value_name = "MSGS/S", default_value_t = 2000)]
    pub rate: u32,

    /// ipfix/netflow9: largest message in bytes, 576..=65535 (default 1400 on UDP, 65535 on
    /// TCP and files)
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u16).range(576..))]
    pub max_message: Option<u16>,

    /// Filter expression, after a lone '-'
    #[arg(
        value_name = "FILTER",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub filter: Vec<String>,
}
