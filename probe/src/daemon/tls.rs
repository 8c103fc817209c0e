//! Mutually authenticated TLS 1.3 for the probe → merge-daemon record stream.
//!
//! Both sides present a certificate signed by one private CA (PEM files); plain TCP is only
//! for loopback. Everything is blocking `std::net::TcpStream`, and the crypto provider (ring) is
//! passed explicitly so nothing depends on a process-wide default.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use rustls::{ConnectionCommon, StreamOwned};

/// PEM paths for one side.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The CA that signed the peer's certificate.
    pub ca: String,
    /// This side's certificate (chain).
    pub cert: String,
    /// This side's private key.
    pub key: String,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem(path: &str, what: &str) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("TLS {what} {path}: {e}"))
}

fn load_certs(path: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("TLS {what} {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("TLS {what} {path}: no PEM certificate in it"));
    }
    Ok(certs)
}

fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read_pem(path, "key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| format!("TLS key {path}: {e}"))
}

fn load_roots(path: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path, "CA")? {
        roots
            .add(c)
            .map_err(|e| format!("TLS CA {path}: unusable as a trust anchor: {e}"))?;
    }
    Ok(roots)
}

/// Server side (merge daemon): requires a client certificate signed by `ca`.
pub fn server_config(f: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let p = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(load_roots(&f.ca)?), p.clone())
            .build()
            .map_err(|e| format!("TLS CA {}: {e}", f.ca))?;
    let mut cfg = ServerConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(&f.cert, "certificate")?, load_key(&f.key)?)
        .map_err(|e| format!("TLS certificate {} / key {}: {e}", f.cert, f.key))?;
    // No resumption: every connection verifies the client certificate in full.
    cfg.send_tls13_tickets = 0;
    Ok(Arc::new(cfg))
}

/// Client side (probe): trusts `ca` for the server; presents cert/key.
pub fn client_config(f: &TlsFiles) -> Result<Arc<ClientConfig>, String> {
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(load_roots(&f.ca)?)
        .with_client_auth_cert(load_certs(&f.cert, "certificate")?, load_key(&f.key)?)
        .map_err(|e| format!("TLS certificate {} / key {}: {e}", f.cert, f.key))?;
    cfg.resumption = Resumption::disabled();
    Ok(Arc::new(cfg))
}

/// A connection that is either plain TCP or TLS.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
    TlsClient(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
            Conn::TlsClient(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
            Conn::TlsClient(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
            Conn::TlsClient(s) => s.flush(),
        }
    }
}

impl Conn {
    /// The underlying socket (for set_read_timeout, shutdown, peer_addr).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
            Conn::TlsClient(s) => &s.sock,
        }
    }

    /// The CN (or else the first DNS SAN) of the peer's certificate: on the server, who
    /// connected. None for plain TCP.
    pub fn peer_name(&self) -> Option<String> {
        let certs = match self {
            Conn::Plain(_) => return None,
            Conn::Tls(s) => s.conn.peer_certificates(),
            Conn::TlsClient(s) => s.conn.peer_certificates(),
        }?;
        cert_name(certs.first()?)
    }

    /// Ends the sending direction cleanly: TLS close_notify (so the peer can tell a complete
    /// stream from a cut one), then a TCP write shutdown.
    pub fn finish(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(_) => {}
            Conn::Tls(s) => {
                s.conn.send_close_notify();
                s.flush()?;
            }
            Conn::TlsClient(s) => {
                s.conn.send_close_notify();
                s.flush()?;
            }
        }
        self.tcp().shutdown(std::net::Shutdown::Write)
    }
}

fn peer_label(sock: &TcpStream) -> String {
    sock.peer_addr()
        .map_or_else(|_| "an unknown peer".to_string(), |a| a.to_string())
}

/// Drives the handshake to the end so a bad certificate fails here, not at the first read.
fn handshake<D>(conn: &mut ConnectionCommon<D>, sock: &mut TcpStream) -> Result<(), String> {
    while conn.is_handshaking() {
        match conn.complete_io(sock) {
            Ok((0, 0)) if conn.is_handshaking() => {
                return Err("handshake made no progress".into());
            }
            Ok(_) => {}
            Err(e) => {
                return Err(match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".into(),
                    io::ErrorKind::UnexpectedEof => "peer closed the connection".into(),
                    _ => e.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Server: wrap an accepted socket; completes the handshake (with the socket's current
/// timeouts) and fails if the client has no valid certificate.
pub fn accept(cfg: &Arc<ServerConfig>, mut sock: TcpStream) -> Result<Conn, String> {
    let peer = peer_label(&sock);
    let mut conn =
        ServerConnection::new(cfg.clone()).map_err(|e| format!("TLS with {peer}: {e}"))?;
    handshake(&mut conn, &mut sock).map_err(|e| format!("TLS handshake with {peer}: {e}"))?;
    Ok(Conn::Tls(Box::new(StreamOwned::new(conn, sock))))
}

/// Client: wrap a connected socket; `server_name` is the DNS name or IP literal the server
/// certificate must carry. Completes the handshake.
///
/// In TLS 1.3 the server checks the client certificate after the client's side of the
/// handshake is done, so a server refusing this client shows up at the first read.
pub fn connect(
    cfg: &Arc<ClientConfig>,
    server_name: &str,
    mut sock: TcpStream,
) -> Result<Conn, String> {
    let peer = peer_label(&sock);
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| format!("TLS server name {server_name:?}: {e}"))?;
    let mut conn =
        ClientConnection::new(cfg.clone(), name).map_err(|e| format!("TLS with {peer}: {e}"))?;
    handshake(&mut conn, &mut sock)
        .map_err(|e| format!("TLS handshake with {peer} ({server_name}): {e}"))?;
    Ok(Conn::TlsClient(Box::new(StreamOwned::new(conn, sock))))
}

/// Is this socket address loopback (127.0.0.0/8, ::1)? The daemon/probe refuse plain TCP to
/// anything else.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(a) => a.is_loopback(),
        // A dual-stack socket sees IPv4 loopback peers as ::ffff:127.x.y.z.
        std::net::IpAddr::V6(a) => {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

// --- certificate names (a minimal DER walk: only what peer_name needs) ---

/// One DER element: (tag, contents, rest).
fn der_tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&l0, b) = b.split_first()?;
    let (len, b) = if l0 < 0x80 {
        (usize::from(l0), b)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let len = b[..n]
            .iter()
            .fold(0usize, |a, &x| (a << 8) | usize::from(x));
        (len, &b[n..])
    };
    (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
}

/// The elements inside a constructed value, stopping at the first malformed one.
fn der_items(mut b: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (t, v, rest) = der_tlv(b)?;
        b = rest;
        Some((t, v))
    })
}

const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

fn cert_name(der: &[u8]) -> Option<String> {
    let (0x30, cert, _) = der_tlv(der)? else {
        return None;
    };
    let (0x30, tbs, _) = der_tlv(cert)? else {
        return None;
    };
    let fields: Vec<(u8, &[u8])> = der_items(tbs).collect();
    // [0] version is optional; then serial, signature, issuer, validity, subject.
    let skip = usize::from(fields.first()?.0 == 0xa0);
    let subject = fields.get(skip + 4).filter(|f| f.0 == 0x30)?.1;
    common_name(subject).or_else(|| {
        let exts = fields.iter().find(|f| f.0 == 0xa3)?.1;
        first_dns_san(exts)
    })
}

fn common_name(name: &[u8]) -> Option<String> {
    for (_, rdn) in der_items(name).filter(|i| i.0 == 0x31) {
        for (_, atv) in der_items(rdn).filter(|i| i.0 == 0x30) {
            let mut it = der_items(atv);
            if let (Some((0x06, OID_CN)), Some((tag, v))) = (it.next(), it.next()) {
                return match tag {
                    // UTF8String, PrintableString, IA5String
                    0x0c | 0x13 | 0x16 => Some(String::from_utf8_lossy(v).into_owned()),
                    // BMPString (UTF-16BE)
                    0x1e => {
                        let u: Vec<u16> = v
                            .chunks_exact(2)
                            .map(|c| u16::from_be_bytes([c[0], c[1]]))
                            .collect();
                        Some(String::from_utf16_lossy(&u))
                    }
                    _ => None,
                };
            }
        }
    }
    None
}

fn first_dns_san(exts: &[u8]) -> Option<String> {
    let (0x30, list, _) = der_tlv(exts)? else {
        return None;
    };
    for (_, ext) in der_items(list).filter(|i| i.0 == 0x30) {
        let mut it = der_items(ext);
        if it.next() != Some((0x06, OID_SAN)) {
            continue;
        }
        // Skip the optional `critical` BOOLEAN, then the OCTET STRING holding GeneralNames.
        let (_, value) = it.find(|i| i.0 == 0x04)?;
        let (0x30, names, _) = der_tlv(value)? else {
            return None;
        };
        // dNSName is [2] IMPLICIT IA5String.
        let (_, dns) = der_items(names).find(|i| i.0 == 0x82)?;
        return Some(String::from_utf8_lossy(dns).into_owned());
    }
    None
}

// --- certificate generation ---

/// Approximate current UTC year; only used for validity bounds with a year's slack.
fn current_year() -> i32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    1970 + (secs / 31_556_952) as i32
}

fn base_params(cn: &str, sans: Vec<String>) -> Result<rcgen::CertificateParams, String> {
    let mut p = rcgen::CertificateParams::new(sans).map_err(|e| format!("{cn}: {e}"))?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    // A year back absorbs clock skew between hosts and the approximate year above.
    let y = current_year();
    p.not_before = rcgen::date_time_ymd(y - 1, 1, 1);
    p.not_after = rcgen::date_time_ymd(y + 20, 1, 1);
    Ok(p)
}

fn write_new(path: &Path, data: &str, secret: bool) -> Result<(), String> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    if secret {
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if secret {
        // The umask could only narrow 0600, but make the mode explicit anyway.
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    f.write_all(data.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes into `dir`: ca.pem, ca.key (CA), server.pem/server.key (SANs: each of
/// `server_names`, DNS names or IP literals), and one client cert per name in `clients`
/// (`<name>.pem`, `<name>.key`, CN = name). Keys are written 0600. Returns the files written.
///
/// Refuses to overwrite anything: replacing a CA key silently would orphan every certificate
/// it signed.
pub fn generate(
    dir: &Path,
    server_names: &[String],
    clients: &[String],
) -> Result<Vec<PathBuf>, String> {
    if server_names.is_empty() {
        return Err("TLS generate: at least one server name is needed".into());
    }
    for c in clients {
        let bad = c.is_empty()
            || c.starts_with('.')
            || c.contains(['/', '\0'])
            || c == "ca"
            || c == "server";
        if bad {
            return Err(format!("TLS generate: unusable client name {c:?}"));
        }
    }
    let mut stems = vec!["ca".to_string(), "server".to_string()];
    stems.extend(clients.iter().cloned());
    for (i, s) in stems.iter().enumerate() {
        if stems[..i].contains(s) {
            return Err(format!("TLS generate: client name {s:?} given twice"));
        }
    }
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for s in &stems {
        for ext in ["pem", "key"] {
            let p = dir.join(format!("{s}.{ext}"));
            if p.exists() {
                return Err(format!("{}: already exists; not overwriting", p.display()));
            }
        }
    }

    let err = |what: &str, e: rcgen::Error| format!("TLS generate {what}: {e}");
    let ca_key = rcgen::KeyPair::generate().map_err(|e| err("CA key", e))?;
    // A unique CA name: with two CAs of one name, a foreign client cert fails as
    // "BadSignature" instead of the clearer "UnknownIssuer".
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut ca_params = base_params(&format!("tapflow CA {stamp:x}"), Vec::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).map_err(|e| err("CA", e))?;

    let mut out = Vec::new();
    let mut emit = |stem: &str, cert: &rcgen::Certificate, key: &rcgen::KeyPair| {
        let (c, k) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        );
        write_new(&c, &cert.pem(), false)?;
        write_new(&k, &key.serialize_pem(), true)?;
        out.push(c);
        out.push(k);
        Ok::<_, String>(())
    };
    emit("ca", &ca, &ca_key)?;

    let leaf = |cn: &str, sans: Vec<String>, eku: rcgen::ExtendedKeyUsagePurpose| {
        let key = rcgen::KeyPair::generate().map_err(|e| err(cn, e))?;
        let mut p = base_params(cn, sans)?;
        p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![eku];
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &ca, &ca_key).map_err(|e| err(cn, e))?;
        Ok::<_, String>((cert, key))
    };
    let (cert, key) = leaf(
        &server_names[0],
        server_names.to_vec(),
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    emit("server", &cert, &key)?;
    for c in clients {
        let (cert, key) = leaf(c, Vec::new(), rcgen::ExtendedKeyUsagePurpose::ClientAuth)?;
        emit(c, &cert, &key)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread::JoinHandle;
    use std::time::Duration;

    /// A temp directory removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let p = std::env::temp_dir()
                .join(format!("tapflow-tls-{tag}-{}-{nanos}", std::process::id()));
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }

        fn path(&self, name: &str) -> String {
            self.0.join(name).to_str().unwrap().to_string()
        }

        fn files(&self, stem: &str) -> TlsFiles {
            TlsFiles {
                ca: self.path("ca.pem"),
                cert: self.path(&format!("{stem}.pem")),
                key: self.path(&format!("{stem}.key")),
            }
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn certs(tag: &str) -> TempDir {
        let d = TempDir::new(tag);
        let names = ["localhost".to_string(), "127.0.0.1".to_string()];
        generate(&d.0, &names, &["probe-1".to_string()]).unwrap();
        d
    }

    const TIMEOUT: Option<Duration> = Some(Duration::from_secs(10));

    /// (peer name, bytes after the ping) or accept's error.
    type Served = Result<(Option<String>, Vec<u8>), String>;

    /// Accepts one connection; on success echoes "pong" after reading "ping", then reads to
    /// the end. Returns (peer name, bytes after ping) or accept's error.
    fn serve(cfg: Arc<ServerConfig>) -> (SocketAddr, JoinHandle<Served>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let (sock, _) = l.accept().unwrap();
            sock.set_read_timeout(TIMEOUT).unwrap();
            sock.set_write_timeout(TIMEOUT).unwrap();
            let mut c = accept(&cfg, sock)?;
            let mut ping = [0u8; 4];
            c.read_exact(&mut ping).map_err(|e| e.to_string())?;
            assert_eq!(&ping, b"ping");
            c.write_all(b"pong").map_err(|e| e.to_string())?;
            c.flush().map_err(|e| e.to_string())?;
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).map_err(|e| e.to_string())?;
            Ok((c.peer_name(), rest))
        });
        (addr, h)
    }

    fn dial(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(TIMEOUT).unwrap();
        s.set_write_timeout(TIMEOUT).unwrap();
        s
    }

    /// After a refused handshake the client must not get data: an error or EOF.
    fn assert_refused_at_client(mut c: Conn) {
        let _ = c.write_all(b"ping").and_then(|()| c.flush());
        let mut b = [0u8; 4];
        let r = c.read(&mut b);
        assert!(matches!(r, Err(_) | Ok(0)), "client read {r:?}");
    }

    #[test]
    fn round_trip_and_peer_name() {
        let d = certs("ok");
        let g = TempDir::new("gen");
        let written = generate(&g.0, &["a.example".into()], &["x".into(), "y".into()]).unwrap();
        assert_eq!(written.len(), 8);
        for p in &written {
            let mode = fs::metadata(p).unwrap().permissions().mode() & 0o777;
            if p.extension().unwrap() == "key" {
                assert_eq!(mode, 0o600, "{}", p.display());
            }
        }
        // Never clobbers an existing CA.
        let again = generate(&d.0, &["localhost".into()], &[]).unwrap_err();
        assert!(again.contains("already exists"), "{again}");

        let (addr, h) = serve(server_config(&d.files("server")).unwrap());
        let cc = client_config(&d.files("probe-1")).unwrap();
        let mut c = connect(&cc, "127.0.0.1", dial(addr)).unwrap();
        assert!(matches!(c, Conn::TlsClient(_)));
        assert_eq!(c.tcp().peer_addr().unwrap(), addr);
        assert_eq!(c.peer_name().as_deref(), Some("localhost"));
        c.write_all(b"ping").unwrap();
        c.flush().unwrap();
        let mut pong = [0u8; 4];
        c.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"pong");
        c.write_all(b"records").unwrap();
        c.finish().unwrap();
        let (name, rest) = h.join().unwrap().unwrap();
        assert_eq!(name.as_deref(), Some("probe-1"));
        assert_eq!(rest, b"records");

        // The DNS name works too.
        let (addr, h) = serve(server_config(&d.files("server")).unwrap());
        let mut c = connect(&cc, "localhost", dial(addr)).unwrap();
        c.write_all(b"ping").unwrap();
        c.read_exact(&mut pong).unwrap();
        c.finish().unwrap();
        assert_eq!(h.join().unwrap().unwrap().1, b"");
    }

    #[test]
    fn client_cert_from_another_ca_is_refused() {
        let d = certs("ca1");
        let other = certs("ca2");
        let (addr, h) = serve(server_config(&d.files("server")).unwrap());
        // Trusts the right CA for the server, but its own certificate is from the other one.
        let f = TlsFiles {
            ca: d.path("ca.pem"),
            ..other.files("probe-1")
        };
        let c = connect(&client_config(&f).unwrap(), "localhost", dial(addr));
        let e = h.join().unwrap().unwrap_err();
        assert!(e.contains("TLS handshake with 127.0.0.1:"), "{e}");
        assert!(e.contains("certificate"), "{e}");
        if let Ok(c) = c {
            assert_refused_at_client(c);
        }
    }

    #[test]
    fn client_without_cert_is_refused() {
        let d = certs("nocert");
        let (addr, h) = serve(server_config(&d.files("server")).unwrap());
        let cc = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(load_roots(&d.path("ca.pem")).unwrap())
            .with_no_client_auth();
        let c = connect(&Arc::new(cc), "localhost", dial(addr));
        let e = h.join().unwrap().unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
        if let Ok(c) = c {
            assert_refused_at_client(c);
        }
    }

    #[test]
    fn wrong_server_name_is_refused() {
        let d = certs("name");
        let (addr, h) = serve(server_config(&d.files("server")).unwrap());
        let cc = client_config(&d.files("probe-1")).unwrap();
        let e = connect(&cc, "merge.example", dial(addr)).err().unwrap();
        assert!(
            e.contains("merge.example") && e.contains("certificate"),
            "{e}"
        );
        assert!(h.join().unwrap().is_err());
    }

    #[test]
    fn config_errors_name_the_file() {
        let d = certs("cfg");
        let f = TlsFiles {
            key: d.path("missing.key"),
            ..d.files("server")
        };
        let e = server_config(&f).err().unwrap();
        assert!(e.contains("missing.key"), "{e}");
        // A certificate with someone else's key.
        let f = TlsFiles {
            key: d.path("probe-1.key"),
            ..d.files("server")
        };
        assert!(server_config(&f).is_err());
        let f = TlsFiles {
            ca: d.path("probe-1.key"),
            ..d.files("probe-1")
        };
        let e = client_config(&f).err().unwrap();
        assert!(e.contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn loopback() {
        let yes = [
            "127.0.0.1:1",
            "127.255.0.9:5610",
            "[::1]:5610",
            "[::ffff:127.0.0.1]:1",
        ];
        let no = [
            "10.0.0.2:5610",
            "0.0.0.0:1",
            "[::]:1",
            "[::ffff:10.0.0.1]:1",
            "[fe80::1]:1",
            "128.0.0.1:1",
        ];
        for a in yes {
            assert!(is_loopback(&a.parse().unwrap()), "{a}");
        }
        for a in no {
            assert!(!is_loopback(&a.parse().unwrap()), "{a}");
        }
    }
}
