//! Command-line interface (clap derive). New subcommands (`agg`, `sort` …) go in [`Command`].

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

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
}

const READ_AFTER_HELP: &str = "\
FILTER (after a lone '-', as with ra; '--' works too):
  tcp udp icmp icmp6 sctp esp gre ip ip6 arp     protocol / family
  proto NUM|NAME                                  IP protocol
  [src|dst] host ADDR                             IPv4, IPv6 or MAC address
  [src|dst] net CIDR                              10.0.0.0/8, 2001:db8::/32
  [src|dst] port NUM|NAME                         TCP/UDP/SCTP port
  and &&  or ||  not !  ( )                       'not' binds tightest, then 'and'
  src is the flow's initiator (saddr), dst its responder (daddr).

EXAMPLES:
  tapflow read -r flows.tfr - tcp and host 10.0.0.1
  tapflow read -r a.tfr -r b.tfr -s stime,saddr,daddr,dur,tcprtt --csv
  tapflow read -S probe1:9561 - udp and port 53
  tapflow read -r archive.tfr --status
  tapflow-probe ... | tapflow read -r - -s +dur -n - not port 22";

#[derive(Args, Debug)]
#[command(after_help = READ_AFTER_HELP)]
pub struct ReadArgs {
    /// Record file to read, '-' for standard input; repeat for several files
    #[arg(short = 'r', value_name = "FILE", action = ArgAction::Append, required_unless_present = "stream")]
    pub files: Vec<PathBuf>,

    /// Read the live record stream a probe serves on HOST:PORT (`tapflow-probe --listen`),
    /// until the probe stops or the output is closed
    #[arg(short = 'S', value_name = "HOST:PORT", conflicts_with = "files")]
    pub stream: Option<String>,

    /// Print the probes' status records (per worker and interval: packets seen, delivered,
    /// dropped, decoded; flows; records) and tapflow-merge's (per input and interval: records
    /// in, duplicates, gaps, late, clock offset, joined, one-sided) instead of flow records
    #[arg(long)]
    pub status: bool,

    /// Fields to print, comma separated; '+f' adds to and '-f' removes from the defaults
    /// (stime,flgs,proto,saddr,sport,dir,daddr,dport,pkts,bytes,state). `-s help` lists them
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
