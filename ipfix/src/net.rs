//! Transports for export messages: `udp://host:port` (paced datagrams, one message each) and
//! `tcp://host:port` (RFC 7011 §10.4: messages back to back on one connection).

use std::io::{self, BufWriter, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// A network destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    Udp(String),
    Tcp(String),
}

impl Dest {
    /// `udp://HOST:PORT` or `tcp://HOST:PORT` (`[v6addr]:port` for IPv6 literals); `None`
    /// when `s` is neither (a file name).
    pub fn parse(s: &str) -> Option<Dest> {
        if let Some(a) = s.strip_prefix("udp://") {
            Some(Dest::Udp(a.trim_end_matches('/').to_string()))
        } else {
            s.strip_prefix("tcp://")
                .map(|a| Dest::Tcp(a.trim_end_matches('/').to_string()))
        }
    }
}

/// The addresses `host:port` names, or an error that says what was wrong.
pub fn resolve(hostport: &str) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = hostport
        .to_socket_addrs()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{hostport}: not HOST:PORT or not resolvable ({e})"),
            )
        })?
        .collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{hostport}: no address"),
        ));
    }
    Ok(addrs)
}

/// Sends each message as one datagram to a collector, at most `rate` messages per second.
///
/// A collector that is not listening makes the kernel report ICMP port unreachable on a
/// later send; such sends are counted in [`UdpSender::refused`] (the export goes on: the
/// collector may come up) and the caller decides what to say.
pub struct UdpSender {
    sock: UdpSocket,
    rate: u32,
    started: Instant,
    sent: u64,
    refused: u64,
}

impl UdpSender {
    /// `rate` messages per second, 0 = unpaced.
    pub fn connect(hostport: &str, rate: u32) -> io::Result<UdpSender> {
        let addr = resolve(hostport)?[0];
        let local: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let sock = UdpSocket::bind(local)?;
        sock.connect(addr)?;
        Ok(UdpSender {
            sock,
            rate,
            started: Instant::now(),
            sent: 0,
            refused: 0,
        })
    }

    pub fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        if self.rate > 0 {
            // Message n leaves no earlier than n / rate seconds after the first: a local
            // collector's socket buffer is not overrun by a burst.
            let due = Duration::from_secs_f64(self.sent as f64 / f64::from(self.rate));
            let elapsed = self.started.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
        self.sent += 1;
        match self.sock.send(msg) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                self.refused += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Collects an ICMP port unreachable drawn by the last datagram (reported by the kernel
    /// only on a later socket call), so that a single-message export to a closed port is
    /// noticed too.
    pub fn finish(&mut self) {
        if let Ok(Some(e)) = self.sock.take_error() {
            if e.kind() == io::ErrorKind::ConnectionRefused {
                self.refused += 1;
            }
        }
    }

    /// Datagrams handed to the kernel (refused ones included).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Sends the kernel refused because an earlier datagram drew ICMP port unreachable.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

/// Writes messages back to back on one TCP connection.
pub struct TcpSender {
    stream: BufWriter<TcpStream>,
}

impl TcpSender {
    /// Connects (each address in turn, `timeout` each).
    pub fn connect(hostport: &str, timeout: Duration) -> io::Result<TcpSender> {
        let mut last = None;
        for a in resolve(hostport)? {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(TcpSender {
                        stream: BufWriter::with_capacity(1 << 16, s),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
    }

    pub fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.stream.write_all(msg)
    }

    /// Flushes and closes the sending side (the collector sees the end of the stream).
    pub fn finish(mut self) -> io::Result<()> {
        self.stream.flush()?;
        self.stream
            .get_ref()
            .shutdown(std::net::Shutdown::Write)
            .or_else(|e| {
                if e.kind() == io::ErrorKind::NotConnected {
                    Ok(())
                } else {
                    Err(e)
                }
            })
    }
}
