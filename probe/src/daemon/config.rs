//! The live probe's configuration: a TOML file (`--config`), every option of which is also a
//! command-line flag (flags win). See `deploy/probe.example.toml` for an annotated example.

use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;

use crate::EngineConfig;

/// Capture backend of a live probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Afpacket,
    Xdp,
    /// Endace DAG cards through libdag: `interfaces` are devices (`/dev/dag0`), worker `i`
    /// reads receive stream `2i` of each. Needs a build with the `dag` feature.
    Dag,
}

/// Which directions of the link the probe sees (`link`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Link {
    /// Decide from the traffic (a split-tap leg is recognised by itself).
    #[default]
    Auto,
    Both,
    OneWay,
}

impl Link {
    pub fn parse(s: &str) -> Result<Link, String> {
        match s {
            "auto" => Ok(Link::Auto),
            "both" => Ok(Link::Both),
            "one-way" => Ok(Link::OneWay),
            _ => Err(format!("link must be auto, both or one-way, not {s:?}")),
        }
    }
    pub fn direction(self) -> crate::LinkDirection {
        match self {
            Link::Auto => crate::LinkDirection::Auto,
            Link::Both => crate::LinkDirection::Both,
            Link::OneWay => crate::LinkDirection::OneWay,
        }
    }
}

/// AF_XDP socket mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum XdpMode {
    /// Zero-copy if the driver can, else copy mode (said loudly at start and in status records).
    #[default]
    Auto,
    Copy,
    /// Zero-copy or refuse to start.
    ZeroCopy,
}

/// Where the XDP program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum XdpAttach {
    /// In the driver (fast; the default).
    #[default]
    Native,
    /// On the generic (skb) path: any interface, slower.
    Generic,
}

/// A duration in the config file: seconds as a number, or a string with a unit (`"90s"`,
/// `"5m"`, `"1h"`, `"250ms"`).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Dur {
    Secs(f64),
    Text(#[serde(deserialize_with = "de_dur")] f64),
}

impl Dur {
    pub fn secs(self) -> f64 {
        match self {
            Dur::Secs(s) | Dur::Text(s) => s,
        }
    }
    pub fn ns(self) -> u64 {
        (self.secs() * 1e9).round().max(0.0) as u64
    }
}

fn de_dur<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

/// Parses `"1.5"`, `"90s"`, `"250ms"`, `"5m"`, `"1h"`, `"1d"` into seconds.
pub fn parse_duration(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (use e.g. 30, \"90s\", \"5m\", \"1h\")"))?;
    let mul = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        u => return Err(format!("bad duration unit {u:?} in {s:?} (ms, s, m, h, d)")),
    };
    if !v.is_finite() || v < 0.0 {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(v * mul)
}

/// An IP prefix `addr/len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl std::str::FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Prefix, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("bad prefix {s:?}: {a:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("bad prefix {s:?}: length must be 0..={max}"))?,
        };
        Ok(Prefix { addr, len })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Prefix, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Flow engine settings (`[engine]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// Flow table capacity of the whole probe, split evenly over the workers.
    pub max_flows: usize,
    pub tcp_timeout: Dur,
    pub udp_timeout: Dur,
    pub icmp_timeout: Dur,
    pub ip_timeout: Dur,
    pub linger: Dur,
    /// Flow status record interval (0 = final records only).
    pub status_interval: Dur,
    /// First payload bytes kept per direction (0 = off).
    pub payload: usize,
    /// Which directions of the link this probe sees.
    pub link: Link,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            max_flows: 1 << 20,
            tcp_timeout: Dur::Secs(60.0),
            udp_timeout: Dur::Secs(30.0),
            icmp_timeout: Dur::Secs(5.0),
            ip_timeout: Dur::Secs(30.0),
            linger: Dur::Secs(2.0),
            status_interval: Dur::Secs(5.0),
            payload: 0,
            link: Link::Auto,
        }
    }
}

impl EngineSection {
    /// The engine settings for one of `workers` workers.
    pub fn engine_config(&self, probe_id: u32, workers: usize, worker: usize) -> EngineConfig {
        EngineConfig {
            probe_id,
            capacity: (self.max_flows / workers.max(1)).max(1024),
            tcp_idle_ns: self.tcp_timeout.ns(),
            udp_idle_ns: self.udp_timeout.ns(),
            icmp_idle_ns: self.icmp_timeout.ns(),
            other_idle_ns: self.ip_timeout.ns(),
            status_interval_ns: self.status_interval.ns(),
            close_linger_ns: self.linger.ns(),
            payload_bytes: self.payload,
            first_seq: (worker as u64) << 48,
            direction: self.link.direction(),
            ..EngineConfig::default()
        }
    }
}

/// Outputs (`[output]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// One record file (`-` = stdout), no rotation.
    pub file: Option<String>,
    /// Rotated archive: a path template with strftime-style `%Y %m %d %H %M %S %s %%` (UTC,
    /// the start of the file's interval). Files are written as `.NAME.part` and renamed into
    /// place when complete.
    pub archive: Option<String>,
    /// Archive file length; boundaries are aligned to multiples of it since the epoch.
    pub rotate: Dur,
    /// `host:port` to serve the record stream on (`tapflow read -S host:port`).
    pub listen: Option<String>,
    /// Bytes a stream reader may fall behind before it is disconnected.
    pub client_buffer: usize,
    /// How often a partly filled block is pushed out (stream latency).
    pub flush_interval: Dur,
    /// zstd level of the record blocks.
    pub zstd_level: i32,
    /// Stream records to a merge daemon (split-tap leg).
    pub merge: Option<MergeSection>,
}

/// `[output.merge]`: where a split-tap leg sends its records.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MergeSection {
    /// `host:port` of `tapflow-merge`.
    pub to: String,
    /// Spool directory (chunks wait here until the daemon acknowledges them).
    pub spool: String,
    /// Spool size limit in bytes; beyond, new chunks are dropped and counted.
    pub spool_max: u64,
    /// TLS (required unless `to` is loopback): CA of the daemon's certificate, and this
    /// probe's certificate and key.
    pub tls: Option<crate::daemon::tls::TlsFiles>,
    /// Name the daemon's certificate must carry (default: the host part of `to`).
    pub server_name: Option<String>,
    /// At shutdown, how long to keep trying to deliver the spool.
    pub drain: Dur,
}

impl Default for MergeSection {
    fn default() -> Self {
        MergeSection {
            to: String::new(),
            spool: "/var/lib/tapflow/spool".into(),
            spool_max: 4 << 30,
            tls: None,
            server_name: None,
            drain: Dur::Secs(30.0),
        }
    }
}

impl MergeSection {
    pub fn validate(&self) -> Result<(), String> {
        if self.to.is_empty() {
            return Err("[output.merge] needs `to = \"host:port\"`".into());
        }
        if self.spool.is_empty() {
            return Err("[output.merge] needs a spool directory".into());
        }
        if self.spool_max < 1 << 20 {
            return Err("[output.merge] spool_max must be at least 1 MiB".into());
        }
        if self.tls.is_none() {
            let addrs: Vec<std::net::SocketAddr> =
                std::net::ToSocketAddrs::to_socket_addrs(&self.to)
                    .map_err(|e| format!("[output.merge] to = {:?}: {e}", self.to))?
                    .collect();
            if addrs.is_empty() || !addrs.iter().all(crate::daemon::tls::is_loopback) {
                return Err(format!(
                    "[output.merge] to = {:?} is not loopback: records leave this host only over TLS with a client certificate (set [output.merge.tls] ca, cert, key)",
                    self.to
                ));
            }
        }
        Ok(())
    }
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection {
            file: None,
            archive: None,
            rotate: Dur::Secs(3600.0),
            listen: None,
            client_buffer: 16 << 20,
            flush_interval: Dur::Secs(1.0),
            zstd_level: 3,
            merge: None,
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub probe_id: u32,
    /// Interfaces to capture on. Two interfaces are the two legs of a tap (TX and RX ports):
    /// both feed the same per-worker tables, so records are bidirectional.
    pub interfaces: Vec<String>,
    pub backend: Backend,
    pub xdp_mode: XdpMode,
    pub xdp_attach: XdpAttach,
    /// Workers: NIC queues for XDP (queues 0..N), fanout members for AF_PACKET. Default:
    /// the first interface's rx queue count.
    pub workers: Option<usize>,
    /// Cores to pin worker i to (`cores[i % len]`); empty = not pinned.
    pub cores: Vec<usize>,
    /// Bytes kept of each packet (AF_PACKET); headers only by default.
    pub snaplen: u32,
    /// AF_XDP ring entries per socket (0 = backend default).
    pub xdp_ring: u32,
    /// AF_PACKET ring: number of 1 MiB blocks per socket (0 = backend default).
    pub afpacket_blocks: u32,
    /// Try 2 MiB hugepages for AF_XDP UMEM (falls back to normal pages with a warning).
    pub hugepages: bool,
    /// DAG: a `dag_configure` string applied to each device before its streams start
    /// (empty: the card's configuration as it is).
    pub dag_config: String,
    /// Packets from or to these prefixes are dropped in the XDP program (e.g. the
    /// management network).
    pub drop_prefixes: Vec<Prefix>,
    /// Drop to this user (and its group) once sockets are open.
    pub user: Option<String>,
    /// Probe-status record interval (per worker), also logged.
    pub stats_interval: Dur,
    /// Records each worker may have queued for the output thread.
    pub queue_records: usize,
    /// Stop after this long (0 = run until SIGTERM/SIGINT).
    pub duration: Dur,
    pub engine: EngineSection,
    pub output: OutputSection,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            probe_id: 0,
            interfaces: Vec::new(),
            backend: Backend::Afpacket,
            xdp_mode: XdpMode::Auto,
            xdp_attach: XdpAttach::Native,
            workers: None,
            cores: Vec::new(),
            dag_config: String::new(),
            snaplen: 128,
            xdp_ring: 0,
            afpacket_blocks: 0,
            hugepages: true,
            drop_prefixes: Vec::new(),
            user: None,
            stats_interval: Dur::Secs(60.0),
            queue_records: 1 << 16,
            duration: Dur::Secs(0.0),
            engine: EngineSection::default(),
            output: OutputSection::default(),
        }
    }
}

impl Config {
    /// Parses a TOML config; errors name the file, line and key.
    pub fn from_toml(text: &str, source: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| format!("{source}: {e}"))
    }

    /// Checks what parsing cannot: something to capture, somewhere to write, sane numbers.
    pub fn validate(&self) -> Result<(), String> {
        if self.interfaces.is_empty() {
            return Err("no interface to capture on (-i IFACE or `interfaces = [...]`)".into());
        }
        if self.interfaces.len() > crate::daemon::worker::MAX_SOURCES {
            return Err(format!(
                "at most {} interfaces (tap legs) per probe",
                crate::daemon::worker::MAX_SOURCES
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for i in &self.interfaces {
            if i.is_empty() || i.len() > 15 {
                return Err(format!("bad interface name {i:?}"));
            }
            if !seen.insert(i) {
                return Err(format!("interface {i} given twice"));
            }
        }
        if self.output.file.is_none()
            && self.output.archive.is_none()
            && self.output.listen.is_none()
            && self.output.merge.is_none()
        {
            return Err(
                "no output: give -w FILE, --archive TEMPLATE, --listen HOST:PORT or --merge-to HOST:PORT"
                    .into(),
            );
        }
        if let Some(m) = &self.output.merge {
            m.validate()?;
        }
        if self.workers == Some(0) || self.workers.is_some_and(|w| w > 64) {
            return Err("workers must be 1..=64".into());
        }
        if self.snaplen < 64 {
            return Err(format!(
                "snaplen {} is too short for headers (at least 64)",
                self.snaplen
            ));
        }
        if self.output.rotate.secs() < 1.0 {
            return Err("rotate must be at least 1 s".into());
        }
        if self.stats_interval.secs() < 0.1 {
            return Err("stats_interval must be at least 0.1 s".into());
        }
        if self.queue_records < 64 {
            return Err("queue_records must be at least 64".into());
        }
        if self.backend == Backend::Dag && !cfg!(feature = "dag") {
            return Err(
                "backend dag: this tapflow-probe was built without DAG support; build \
                 it with `cargo build --release -p tapflow-probe --features dag` where the \
                 Endace DAG software (libdag) is installed"
                    .into(),
            );
        }
        if !self.drop_prefixes.is_empty() && self.backend != Backend::Xdp {
            return Err(
                "drop_prefixes needs the xdp backend (they are applied in the XDP program)".into(),
            );
        }
        if let Some(t) = &self.output.archive {
            crate::daemon::output::check_template(t)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_output_needs_tls_beyond_loopback() {
        let base = "interfaces = [\"eth1\"]\n[output.merge]\n";
        let c = Config::from_toml(&format!("{base}to = \"127.0.0.1:5610\"\n"), "t").unwrap();
        c.validate().unwrap();
        let c = Config::from_toml(&format!("{base}to = \"192.0.2.1:5610\"\n"), "t").unwrap();
        let e = c.validate().unwrap_err();
        assert!(e.contains("not loopback") && e.contains("TLS"), "{e}");
        let c = Config::from_toml(
            &format!("{base}to = \"192.0.2.1:5610\"\n[output.merge.tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n"),
            "t",
        )
        .unwrap();
        c.validate().unwrap();
        let c = Config::from_toml(&format!("{base}to = \"\"\n"), "t").unwrap();
        assert!(c.validate().unwrap_err().contains("to ="));
    }

    #[test]
    fn full_config_parses() {
        let c = Config::from_toml(
            r#"
probe_id = 7
interfaces = ["eth1", "eth2"]
backend = "xdp"
xdp_mode = "zero-copy"
xdp_attach = "generic"
workers = 4
cores = [2, 3, 4, 5]
drop_prefixes = ["192.0.2.0/24", "2001:db8::/32", "10.1.2.3"]
user = "tapflow"
stats_interval = "30s"
[engine]
max_flows = 4000000
tcp_timeout = "2m"
status_interval = 10
[output]
archive = "/var/lib/tapflow/archive/%Y/%m/%d/probe.%Y.%m.%d.%H.%M.%S.tfr"
rotate = "1h"
listen = "0.0.0.0:9561"
"#,
            "probe.toml",
        )
        .unwrap();
        assert_eq!(c.probe_id, 7);
        assert_eq!(c.interfaces, ["eth1", "eth2"]);
        assert_eq!(c.backend, Backend::Xdp);
        assert_eq!(c.xdp_mode, XdpMode::ZeroCopy);
        assert_eq!(c.xdp_attach, XdpAttach::Generic);
        assert_eq!(c.cores, [2, 3, 4, 5]);
        assert_eq!(c.drop_prefixes[1].len, 32);
        assert_eq!(c.drop_prefixes[2].len, 32);
        assert_eq!(c.stats_interval.secs(), 30.0);
        assert_eq!(c.engine.tcp_timeout.secs(), 120.0);
        assert_eq!(c.engine.status_interval.secs(), 10.0);
        assert_eq!(
            c.engine.udp_timeout.secs(),
            30.0,
            "unset keys keep defaults"
        );
        assert_eq!(c.output.rotate.secs(), 3600.0);
        c.validate().unwrap();
        let e = c.engine.engine_config(7, 4, 3);
        assert_eq!(e.capacity, 1_000_000);
        assert_eq!(e.first_seq, 3 << 48);
        assert_eq!(e.tcp_idle_ns, 120_000_000_000);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = Config::from_toml("interfacs = [\"eth0\"]", "p.toml").unwrap_err();
        assert!(e.contains("p.toml") && e.contains("interfacs"), "{e}");
        let e = Config::from_toml("backend = \"dpdk\"", "p.toml").unwrap_err();
        assert!(e.contains("dpdk"), "{e}");
        let e = Config::from_toml("drop_prefixes = [\"10.0.0.0/33\"]", "p.toml").unwrap_err();
        assert!(e.contains("0..=32"), "{e}");
        let e = Config::from_toml("stats_interval = \"5 parsecs\"", "p.toml").unwrap_err();
        assert!(e.contains("parsecs"), "{e}");
        let mut c = Config::default();
        assert!(c.validate().unwrap_err().contains("no interface"));
        c.interfaces = vec!["eth0".into()];
        assert!(c.validate().unwrap_err().contains("no output"));
        c.output.file = Some("-".into());
        c.validate().unwrap();
        c.drop_prefixes = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(c.validate().unwrap_err().contains("xdp backend"));
        c.drop_prefixes.clear();
        // The DAG backend parses everywhere but runs only in a build with the feature.
        let dag = Config::from_toml(
            "backend = \"dag\"\ninterfaces = [\"/dev/dag0\"]\ndag_config = \"varlen\"",
            "p.toml",
        )
        .unwrap();
        assert_eq!(
            (dag.backend, dag.dag_config.as_str()),
            (Backend::Dag, "varlen")
        );
        let mut d = dag.clone();
        d.output.file = Some("-".into());
        if cfg!(feature = "dag") {
            d.validate().unwrap();
        } else {
            assert!(d.validate().unwrap_err().contains("without DAG support"));
        }
        c.interfaces.push("eth0".into());
        assert!(c.validate().unwrap_err().contains("twice"));
    }

    /// The shipped example must stay a valid configuration.
    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../../../deploy/probe.example.toml");
        let c = Config::from_toml(text, "probe.example.toml").unwrap();
        c.validate().unwrap();
        assert_eq!(c.interfaces.len(), 2);
        assert_eq!(c.backend, Backend::Xdp);
        assert!(c.output.archive.is_some() && c.output.listen.is_some());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), 0.25);
        assert_eq!(parse_duration("1.5h").unwrap(), 5400.0);
        assert_eq!(parse_duration("10").unwrap(), 10.0);
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("").is_err());
    }
}
