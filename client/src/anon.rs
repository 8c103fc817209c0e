//! `tapflow anon` (argus `ranonymize`): keyed, prefix-preserving anonymisation of flow records.
//!
//! The output records stay valid [`FlowRecord`]s: the caller writes them with the record
//! writer (or prints them), exactly as it would the originals.
//!
//! # What is transformed
//!
//! * **IP addresses** (`saddr`, `daddr`, and the tunnel's outer addresses): Crypto-PAn
//!   (Xu, Fan, Ammar, Moon, 2002) over AES-128, IPv4 on 32 bits and IPv6 on 128 bits. Two
//!   addresses sharing a `k`-bit prefix map to two addresses sharing exactly a `k`-bit prefix,
//!   so subnets stay subnets. With the same 32-byte key the IPv4 mapping equals the reference
//!   Crypto-PAn implementation's (checked against its published sample trace below).
//! * **MAC addresses** (`smac`, `dmac`, and the addresses of non-IP records): a keyed PRF
//!   (AES-128 under a key derived from the master key). `--mac hash` replaces all six bytes,
//!   keeping the group (multicast) bit of the original and setting the locally-administered
//!   bit, so a pseudonym can never be mistaken for a vendor address; `--mac keep-oui` keeps the
//!   3-byte vendor prefix and replaces the other three. `00:…:00` (none) and `ff:…:ff`
//!   (broadcast) are kept.
//! * **Ports** (TCP, UDP, DCCP, SCTP, UDP-Lite only; ICMP type/code/identifier are kept):
//!   ports below 1024 are kept, so services stay recognisable; ports 1024–65535 go through a
//!   keyed permutation of that range (an 8-round Feistel network on 16 bits with AES-derived
//!   round tables, cycle-walked into the range), so distinct ports stay distinct and a
//!   connection's ephemeral port maps to the same value in every record.
//! * **Times**: `--time-shift SECS` adds a fixed (possibly negative) offset; `--time-relative
//!   [BASE]` shifts so that the first record starts at BASE (epoch seconds, default
//!   2000-01-01T00:00:00Z rather than 0, because a zero time means "not seen" in several
//!   fields). Every absolute time moves (`stime`, `ltime`, per-direction first/last packet,
//!   handshake times); durations (synack, ackdat, jitter) do not. A zero time stays zero.
//! * **Payload**: the captured payload bytes of both directions are cleared and the `PAYLOAD`
//!   flag with them (on by default; `--keep-payload` turns it off).
//!
//! Probe- and merge-status records carry no addresses: they pass through with their times
//! transformed. Probe ids, sequence numbers, VLAN/MPLS labels and tunnel ids are kept.
//!
//! # Keys
//!
//! A 32-byte master key, as in Crypto-PAn: bytes 0..16 are the AES key, bytes 16..32 seed the
//! pad. `--key-file FILE` holds 64 hex digits (whitespace ignored) or exactly 32 raw bytes;
//! `--passphrase TEXT` derives the key with PBKDF2-HMAC-SHA256 (100 000 iterations, a fixed
//! tapflow salt, so the same passphrase always gives the same mapping). The MAC and port keys
//! are HMAC-SHA256 derivations of the master key, so one key drives everything.
//!
//! # Implementation note
//!
//! The `aes` crate is not available offline here, and `ring` (already in the workspace) exposes
//! no raw AES block function. AES-128 encryption is therefore implemented below from FIPS-197
//! (T-table form, tables computed at compile time from the field arithmetic) and is checked
//! against the FIPS-197 vectors and, in the tests, against ring's AES (QUIC header-protection
//! masks are the first bytes of an AES block encryption). This is a pseudonymisation tool: the
//! table lookups are not constant time, which does not matter for its threat model (the key
//! never meets attacker-timed input on a shared machine). `ring` supplies HMAC and PBKDF2.
//!
//! # CLI mapping (`tapflow anon -r IN -w OUT [options]`)
//!
//! | flag | [`AnonOptions`] field |
//! |---|---|
//! | `--key-file FILE` / `--passphrase TEXT` | `key` ([`AnonKey::from_file`] / [`AnonKey::from_passphrase`]) |
//! | `--keep-addrs` | `addrs = false` |
//! | `--mac hash\|keep-oui\|keep` | `mac` ([`MacMode`], default `Hash`) |
//! | `--ports permute\|keep` | `ports` ([`PortMode`], default `Permute`) |
//! | `--time-shift SECS` | `time = TimeMode::Shift(SECS * 1e9)` |
//! | `--time-relative [BASE]` | `time = TimeMode::Relative { base_ns }` |
//! | `--keep-payload` | `strip_payload = false` |
//!
//! Entry points: [`run`] (records in, records out through a callback), [`Anonymizer`] for
//! record-at-a-time use, [`anonymize`] as an iterator adapter.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::num::NonZeroU32;
use std::path::Path;

use tapflow_record::{flags, Addr, AddrKind, FlowRecord};

/// AES-128 encryption (FIPS-197), T-table form.
mod aes {
    const fn xtime(x: u8) -> u8 {
        (x << 1) ^ if x & 0x80 != 0 { 0x1b } else { 0 }
    }

    /// The S-box from its definition: multiplicative inverse in GF(2^8) (through exp/log tables
    /// of the generator 3), then the affine map. Computing it avoids a hand-typed table.
    const fn make_sbox() -> [u8; 256] {
        let mut exp = [0u8; 256];
        let mut log = [0u8; 256];
        let mut x: u8 = 1;
        let mut i = 0;
        while i < 255 {
            exp[i] = x;
            log[x as usize] = i as u8;
            x ^= xtime(x);
            i += 1;
        }
        let mut s = [0u8; 256];
        let mut v = 0;
        while v < 256 {
            let b = if v == 0 {
                0
            } else {
                exp[(255 - log[v] as usize) % 255]
            };
            s[v] = b
                ^ b.rotate_left(1)
                ^ b.rotate_left(2)
                ^ b.rotate_left(3)
                ^ b.rotate_left(4)
                ^ 0x63;
            v += 1;
        }
        s
    }

    const SBOX: [u8; 256] = make_sbox();

    /// SubBytes + MixColumns for a byte in row 0: the column (2s, s, s, 3s), big-endian.
    const fn make_t0() -> [u32; 256] {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let s = SBOX[i];
            let s2 = xtime(s);
            let s3 = s2 ^ s;
            t[i] = (s2 as u32) << 24 | (s as u32) << 16 | (s as u32) << 8 | s3 as u32;
            i += 1;
        }
        t
    }

    const fn rotr_table(t: [u32; 256], n: u32) -> [u32; 256] {
        let mut o = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            o[i] = t[i].rotate_right(n);
            i += 1;
        }
        o
    }

    const T0: [u32; 256] = make_t0();
    // Rows 1..3 contribute the same column rotated: (3s, 2s, s, s), (s, 3s, 2s, s), (s, s, 3s, 2s).
    const T1: [u32; 256] = rotr_table(T0, 8);
    const T2: [u32; 256] = rotr_table(T0, 16);
    const T3: [u32; 256] = rotr_table(T0, 24);

    fn sub_word(w: u32) -> u32 {
        let b = w.to_be_bytes();
        u32::from_be_bytes([
            SBOX[b[0] as usize],
            SBOX[b[1] as usize],
            SBOX[b[2] as usize],
            SBOX[b[3] as usize],
        ])
    }

    #[derive(Clone)]
    pub struct Aes128 {
        rk: [u32; 44],
    }

    impl Aes128 {
        pub fn new(key: &[u8; 16]) -> Aes128 {
            let mut rk = [0u32; 44];
            for (i, w) in key.chunks_exact(4).enumerate() {
                rk[i] = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
            }
            let mut rcon: u8 = 1;
            for i in 4..44 {
                let mut t = rk[i - 1];
                if i % 4 == 0 {
                    t = sub_word(t.rotate_left(8)) ^ (rcon as u32) << 24;
                    rcon = xtime(rcon);
                }
                rk[i] = rk[i - 4] ^ t;
            }
            Aes128 { rk }
        }

        pub fn encrypt(&self, block: [u8; 16]) -> [u8; 16] {
            let rk = &self.rk;
            let word = |c: usize| {
                u32::from_be_bytes([
                    block[4 * c],
                    block[4 * c + 1],
                    block[4 * c + 2],
                    block[4 * c + 3],
                ])
            };
            let mut s = [
                word(0) ^ rk[0],
                word(1) ^ rk[1],
                word(2) ^ rk[2],
                word(3) ^ rk[3],
            ];
            // ShiftRows is folded into which column each row's byte is taken from.
            let b = |w: u32, n: u32| ((w >> n) & 0xff) as usize;
            for round in 1..10 {
                let k = &rk[4 * round..4 * round + 4];
                s = [
                    T0[b(s[0], 24)] ^ T1[b(s[1], 16)] ^ T2[b(s[2], 8)] ^ T3[b(s[3], 0)] ^ k[0],
                    T0[b(s[1], 24)] ^ T1[b(s[2], 16)] ^ T2[b(s[3], 8)] ^ T3[b(s[0], 0)] ^ k[1],
                    T0[b(s[2], 24)] ^ T1[b(s[3], 16)] ^ T2[b(s[0], 8)] ^ T3[b(s[1], 0)] ^ k[2],
                    T0[b(s[3], 24)] ^ T1[b(s[0], 16)] ^ T2[b(s[1], 8)] ^ T3[b(s[2], 0)] ^ k[3],
                ];
            }
            let mut out = [0u8; 16];
            for c in 0..4 {
                let w = u32::from_be_bytes([
                    SBOX[b(s[c], 24)],
                    SBOX[b(s[(c + 1) % 4], 16)],
                    SBOX[b(s[(c + 2) % 4], 8)],
                    SBOX[b(s[(c + 3) % 4], 0)],
                ]) ^ rk[40 + c];
                out[4 * c..4 * c + 4].copy_from_slice(&w.to_be_bytes());
            }
            out
        }
    }
}

use aes::Aes128;

/// A 32-byte anonymisation key. Its `Debug` output never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct AnonKey([u8; 32]);

impl fmt::Debug for AnonKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnonKey(..)")
    }
}

/// PBKDF2 parameters for `--passphrase`; fixed, so a passphrase always gives the same key.
const PASSPHRASE_ITERATIONS: u32 = 100_000;
const PASSPHRASE_SALT: &[u8] = b"tapflow-anon/passphrase/v1";

impl AnonKey {
    pub fn from_bytes(b: [u8; 32]) -> AnonKey {
        AnonKey(b)
    }

    /// PBKDF2-HMAC-SHA256 of the passphrase (see the module doc).
    pub fn from_passphrase(pass: &str) -> AnonKey {
        let mut k = [0u8; 32];
        let iters = NonZeroU32::new(PASSPHRASE_ITERATIONS).unwrap_or(NonZeroU32::MIN);
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iters,
            PASSPHRASE_SALT,
            pass.as_bytes(),
            &mut k,
        );
        AnonKey(k)
    }

    /// 64 hex digits; whitespace anywhere is ignored. Errors never echo the text (it is a key).
    pub fn from_hex(text: &str) -> Result<AnonKey, String> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if digits.len() != 64 {
            return Err(format!(
                "an anonymisation key is 64 hex digits (32 bytes), not {} characters",
                digits.len()
            ));
        }
        let mut k = [0u8; 32];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            let hi = hex_val(pair[0]);
            let lo = hex_val(pair[1]);
            match (hi, lo) {
                (Some(h), Some(l)) => k[i] = h << 4 | l,
                _ => return Err("the anonymisation key has a character that is not hex".into()),
            }
        }
        Ok(AnonKey(k))
    }

    /// A key file: 64 hex digits (whitespace ignored), or exactly 32 raw bytes.
    pub fn from_file(path: &Path) -> Result<AnonKey, String> {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_file_bytes(&data).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn from_file_bytes(data: &[u8]) -> Result<AnonKey, String> {
        if let Ok(text) = std::str::from_utf8(data) {
            let hex_like = text
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace());
            if hex_like {
                return Self::from_hex(text);
            }
        }
        match <[u8; 32]>::try_from(data) {
            Ok(k) => Ok(AnonKey(k)),
            Err(_) => Err(format!(
                "a key file holds 64 hex digits or 32 raw bytes, this one has {} bytes",
                data.len()
            )),
        }
    }

    /// HMAC-SHA256(master, label), truncated to an AES-128 key: one master key, separate keys
    /// for each use.
    fn derive(&self, label: &[u8]) -> [u8; 16] {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let tag = ring::hmac::sign(&k, label);
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.as_ref()[..16]);
        out
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Prefix-preserving address anonymisation (Crypto-PAn over AES-128).
#[derive(Clone)]
pub struct CryptoPan {
    aes: Aes128,
    pad: u128,
}

impl CryptoPan {
    pub fn new(key: &AnonKey) -> CryptoPan {
        let mut k = [0u8; 16];
        k.copy_from_slice(&key.0[..16]);
        let aes = Aes128::new(&k);
        let mut p = [0u8; 16];
        p.copy_from_slice(&key.0[16..]);
        let pad = u128::from_be_bytes(aes.encrypt(p));
        CryptoPan { aes, pad }
    }

    /// The first `n` bits of `a` (aligned to the most significant bit) anonymised: bit `i` is
    /// flipped by the top bit of AES(first `i` bits of `a` followed by the pad's bits), so the
    /// flip depends only on the prefix before it — which is what preserves prefixes.
    fn anon_bits(&self, a: u128, n: u32) -> u128 {
        let mut flips = 0u128;
        for pos in 0..n.min(128) {
            let mask = if pos == 0 { 0 } else { !0u128 << (128 - pos) };
            let input = (a & mask) | (self.pad & !mask);
            let out = self.aes.encrypt(input.to_be_bytes());
            flips |= u128::from(out[0] >> 7) << (127 - pos);
        }
        a ^ flips
    }

    pub fn ipv4(&self, a: [u8; 4]) -> [u8; 4] {
        let x = u128::from(u32::from_be_bytes(a)) << 96;
        ((self.anon_bits(x, 32) >> 96) as u32).to_be_bytes()
    }

    pub fn ipv6(&self, a: [u8; 16]) -> [u8; 16] {
        self.anon_bits(u128::from_be_bytes(a), 128).to_be_bytes()
    }
}

/// How MAC addresses are transformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MacMode {
    /// Left as they are.
    Keep,
    /// All six bytes replaced by a keyed hash (group bit kept, locally-administered bit set).
    #[default]
    Hash,
    /// The vendor prefix (OUI, 3 bytes) kept, the other 3 replaced by a keyed hash.
    KeepOui,
}

/// How transport ports are transformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PortMode {
    Keep,
    /// Ports < 1024 kept, 1024..=65535 permuted (keyed).
    #[default]
    Permute,
}

/// How absolute times are transformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimeMode {
    #[default]
    Keep,
    /// Add this many nanoseconds (negative moves back in time).
    Shift(i64),
    /// Shift so that the first record's start time becomes `base_ns`.
    Relative { base_ns: u64 },
}

/// `--time-relative` without a value: 2000-01-01T00:00:00Z (not 0, which means "not seen").
pub const DEFAULT_RELATIVE_BASE_NS: u64 = 946_684_800 * 1_000_000_000;

/// What `tapflow anon` does; see the module doc for the flags.
#[derive(Clone, Debug)]
pub struct AnonOptions {
    pub key: AnonKey,
    /// Anonymise IP addresses (default true).
    pub addrs: bool,
    pub mac: MacMode,
    pub ports: PortMode,
    pub time: TimeMode,
    /// Clear captured payload bytes and the PAYLOAD flag (default true).
    pub strip_payload: bool,
}

impl AnonOptions {
    /// The defaults: addresses, MACs and ports anonymised, times kept, payload stripped.
    pub fn new(key: AnonKey) -> AnonOptions {
        AnonOptions {
            key,
            addrs: true,
            mac: MacMode::default(),
            ports: PortMode::default(),
            time: TimeMode::default(),
            strip_payload: true,
        }
    }
}

/// Feistel rounds of the port permutation; round tables map 8 bits to 8 bits.
const PORT_ROUNDS: usize = 8;
/// Ports below this are kept.
const FIRST_PERMUTED_PORT: u16 = 1024;
/// Each address cache is cleared when it reaches this many entries (bounded memory; a miss
/// only costs recomputation).
const ADDR_CACHE_CAP: usize = 1 << 18;

/// Applies [`AnonOptions`] to records, one at a time. Caches recent address mappings.
pub struct Anonymizer {
    opts: AnonOptions,
    pan: CryptoPan,
    mac_prf: Aes128,
    port_rounds: [[u8; 256]; PORT_ROUNDS],
    /// Resolved time offset (ns); `None` until the first record fixes it in relative mode.
    offset: Option<i128>,
    v4_cache: HashMap<u32, u32>,
    v6_cache: HashMap<u128, u128>,
}

impl Anonymizer {
    pub fn new(opts: &AnonOptions) -> Anonymizer {
        let pan = CryptoPan::new(&opts.key);
        let mac_prf = Aes128::new(&opts.key.derive(b"tapflow-anon/mac/v1"));
        let port_prf = Aes128::new(&opts.key.derive(b"tapflow-anon/port/v1"));
        let mut port_rounds = [[0u8; 256]; PORT_ROUNDS];
        for (r, table) in port_rounds.iter_mut().enumerate() {
            for (x, slot) in table.iter_mut().enumerate() {
                let mut block = [0u8; 16];
                block[0] = r as u8;
                block[1] = x as u8;
                *slot = port_prf.encrypt(block)[0];
            }
        }
        let offset = match opts.time {
            TimeMode::Keep => Some(0),
            TimeMode::Shift(d) => Some(i128::from(d)),
            TimeMode::Relative { .. } => None,
        };
        Anonymizer {
            opts: opts.clone(),
            pan,
            mac_prf,
            port_rounds,
            offset,
            v4_cache: HashMap::new(),
            v6_cache: HashMap::new(),
        }
    }

    pub fn ipv4(&mut self, a: [u8; 4]) -> [u8; 4] {
        let k = u32::from_be_bytes(a);
        if let Some(v) = self.v4_cache.get(&k) {
            return v.to_be_bytes();
        }
        let v = self.pan.ipv4(a);
        if self.v4_cache.len() >= ADDR_CACHE_CAP {
            self.v4_cache.clear();
        }
        self.v4_cache.insert(k, u32::from_be_bytes(v));
        v
    }

    pub fn ipv6(&mut self, a: [u8; 16]) -> [u8; 16] {
        let k = u128::from_be_bytes(a);
        if let Some(v) = self.v6_cache.get(&k) {
            return v.to_be_bytes();
        }
        let v = self.pan.ipv6(a);
        if self.v6_cache.len() >= ADDR_CACHE_CAP {
            self.v6_cache.clear();
        }
        self.v6_cache.insert(k, u128::from_be_bytes(v));
        v
    }

    /// The keyed MAC transform of the configured mode (`Keep` returns `m`).
    pub fn mac(&self, m: [u8; 6]) -> [u8; 6] {
        if self.opts.mac == MacMode::Keep || m == [0; 6] || m == [0xff; 6] {
            return m;
        }
        let mut block = [0u8; 16];
        block[..6].copy_from_slice(&m);
        let h = self.mac_prf.encrypt(block);
        match self.opts.mac {
            MacMode::KeepOui => [m[0], m[1], m[2], h[0], h[1], h[2]],
            _ => [
                // Keep the group bit (multicast stays multicast), mark locally administered.
                (h[0] & 0xfc) | 0x02 | (m[0] & 0x01),
                h[1],
                h[2],
                h[3],
                h[4],
                h[5],
            ],
        }
    }

    fn feistel(&self, x: u16) -> u16 {
        let (mut l, mut r) = ((x >> 8) as u8, x as u8);
        for table in &self.port_rounds {
            let nl = r;
            r = l ^ table[r as usize];
            l = nl;
        }
        u16::from(l) << 8 | u16::from(r)
    }

    /// The keyed port permutation (ignores the mode): < 1024 fixed, 1024..=65535 permuted.
    pub fn port(&self, p: u16) -> u16 {
        if p < FIRST_PERMUTED_PORT {
            return p;
        }
        // Permute 0..=65535 and walk the cycle until it lands back in 0..64512: a permutation
        // restricted this way is a permutation of the smaller range.
        const N: u16 = u16::MAX - FIRST_PERMUTED_PORT + 1; // 64512
        let mut y = self.feistel(p - FIRST_PERMUTED_PORT);
        // A cycle is at most 65536 long; the bound only guards against a logic error.
        for _ in 0..=u16::MAX as u32 {
            if y < N {
                return y + FIRST_PERMUTED_PORT;
            }
            y = self.feistel(y);
        }
        p
    }

    fn addr(&mut self, kind: AddrKind, a: Addr) -> Addr {
        match kind {
            AddrKind::Ipv4 if self.opts.addrs => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&a.0[..4]);
                let mut out = a;
                out.0[..4].copy_from_slice(&self.ipv4(b));
                out
            }
            AddrKind::Ipv6 if self.opts.addrs => Addr(self.ipv6(a.0)),
            AddrKind::L2 => {
                let mut out = a;
                out.0[..6].copy_from_slice(&self.mac(a.mac()));
                out
            }
            _ => a,
        }
    }

    fn time(&self, t: u64) -> u64 {
        let off = self.offset.unwrap_or(0);
        if t == 0 || off == 0 {
            return t;
        }
        // A shifted time never becomes 0 ("not seen") and never wraps.
        (i128::from(t) + off).clamp(1, i128::from(u64::MAX)) as u64
    }

    /// Anonymises `r` in place.
    pub fn apply(&mut self, r: &mut FlowRecord) {
        if self.offset.is_none() && r.stime_ns != 0 {
            if let TimeMode::Relative { base_ns } = self.opts.time {
                self.offset = Some(i128::from(base_ns) - i128::from(r.stime_ns));
            }
        }
        r.stime_ns = self.time(r.stime_ns);
        r.ltime_ns = self.time(r.ltime_ns);
        if r.is_meta() {
            return;
        }
        for d in [&mut r.src, &mut r.dst] {
            d.first_ns = self.time(d.first_ns);
            d.last_ns = self.time(d.last_ns);
        }
        r.hs.syn_ns = self.time(r.hs.syn_ns);
        r.hs.synack_ns = self.time(r.hs.synack_ns);
        r.hs.ack_ns = self.time(r.hs.ack_ns);

        r.saddr = self.addr(r.addr_kind, r.saddr);
        r.daddr = self.addr(r.addr_kind, r.daddr);
        // An L2 outer kind with zero addresses means "no tunnel": leave it alone.
        if r.encap.outer_kind != AddrKind::L2 {
            r.encap.outer_src = self.addr(r.encap.outer_kind, r.encap.outer_src);
            r.encap.outer_dst = self.addr(r.encap.outer_kind, r.encap.outer_dst);
        }
        r.smac = self.mac(r.smac);
        r.dmac = self.mac(r.dmac);

        let has_ports = r.addr_kind != AddrKind::L2 && matches!(r.proto, 6 | 17 | 33 | 132 | 136);
        if has_ports && self.opts.ports == PortMode::Permute {
            r.sport = self.port(r.sport);
            r.dport = self.port(r.dport);
        }
        if self.opts.strip_payload {
            r.src_payload = Vec::new();
            r.dst_payload = Vec::new();
            r.flags &= !flags::PAYLOAD;
        }
    }

    /// Returns `r` anonymised.
    pub fn record(&mut self, mut r: FlowRecord) -> FlowRecord {
        self.apply(&mut r);
        r
    }
}

/// Iterator adapter: the records of `records`, anonymised.
pub fn anonymize<I>(records: I, mut anon: Anonymizer) -> impl Iterator<Item = FlowRecord>
where
    I: Iterator<Item = FlowRecord>,
{
    records.map(move |r| anon.record(r))
}

/// `tapflow anon`: anonymises every record and hands it to `emit` (which writes it), in input
/// order. Stops at the first error `emit` returns.
pub fn run(
    records: &mut dyn Iterator<Item = FlowRecord>,
    opts: &AnonOptions,
    emit: &mut dyn FnMut(FlowRecord) -> io::Result<()>,
) -> io::Result<()> {
    let mut anon = Anonymizer::new(opts);
    for r in records {
        emit(anon.record(r))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapflow_record::{FileHeader, ProbeStatus, RecordReader, RecordWriter, WriterOptions};

    /// splitmix64: a small deterministic generator for the property tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn bytes<const N: usize>(&mut self) -> [u8; N] {
            let mut b = [0u8; N];
            for x in b.iter_mut() {
                *x = self.next() as u8;
            }
            b
        }
    }

    fn hex16(s: &str) -> [u8; 16] {
        let mut b = [0u8; 16];
        for (i, x) in b.iter_mut().enumerate() {
            *x = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        b
    }

    /// The sample key of the Crypto-PAn reference distribution.
    const REF_KEY: [u8; 32] = [
        21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131,
        121, 121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2,
    ];

    #[test]
    fn aes_fips197_vectors() {
        // FIPS-197 appendix C.1 and appendix B.
        let a = Aes128::new(&hex16("000102030405060708090a0b0c0d0e0f"));
        assert_eq!(
            a.encrypt(hex16("00112233445566778899aabbccddeeff")),
            hex16("69c4e0d86a7b0430d8cdb78070b4c55a")
        );
        let b = Aes128::new(&hex16("2b7e151628aed2a6abf7158809cf4f3c"));
        assert_eq!(
            b.encrypt(hex16("3243f6a8885a308d313198a2e0370734")),
            hex16("3925841d02dc09fbdc118597196a0b32")
        );
    }

    #[test]
    fn aes_agrees_with_ring() {
        // ring's QUIC header-protection mask is the first 5 bytes of AES-128(key, sample).
        use ring::aead::quic::{HeaderProtectionKey, AES_128};
        let mut rng = Rng(7);
        for _ in 0..500 {
            let key: [u8; 16] = rng.bytes();
            let block: [u8; 16] = rng.bytes();
            let ours = Aes128::new(&key).encrypt(block);
            let hp = HeaderProtectionKey::new(&AES_128, &key).unwrap();
            assert_eq!(hp.new_mask(&block).unwrap(), ours[..5]);
        }
    }

    #[test]
    fn cryptopan_reference_vectors() {
        let pan = CryptoPan::new(&AnonKey::from_bytes(REF_KEY));
        // From the Crypto-PAn reference sample trace (sample_trace_raw/sanitized).
        let v4 = [
            ("128.11.68.132", "135.242.180.132"),
            ("129.118.74.4", "134.136.186.123"),
            ("130.132.252.244", "133.68.164.234"),
            ("141.223.7.43", "141.167.8.160"),
            ("141.233.145.108", "141.129.237.235"),
            ("152.163.225.39", "151.140.114.167"),
            ("156.29.3.236", "147.225.12.42"),
            ("165.247.96.84", "162.9.99.234"),
            ("166.107.77.190", "160.132.178.185"),
            ("192.102.249.13", "252.138.62.131"),
            ("24.0.250.221", "100.15.198.226"),
            ("64.14.118.196", "0.255.183.58"),
            ("10.185.25.118", "117.161.29.118"),
        ];
        for (i, o) in v4 {
            let a: std::net::Ipv4Addr = i.parse().unwrap();
            let want: std::net::Ipv4Addr = o.parse().unwrap();
            assert_eq!(pan.ipv4(a.octets()), want.octets(), "{i}");
        }
        // The 128-bit extension as other Crypto-PAn implementations compute it.
        let v6 = [
            ("::1", "78ff:f001:9fc0:20df:8380:b1f1:704:ed"),
            ("::2", "78ff:f001:9fc0:20df:8380:b1f1:704:ef"),
            ("::ffff", "78ff:f001:9fc0:20df:8380:b1f1:704:f838"),
            ("2001:db8::1", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e"),
            ("2001:db8::2", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1c"),
        ];
        for (i, o) in v6 {
            let a: std::net::Ipv6Addr = i.parse().unwrap();
            let want: std::net::Ipv6Addr = o.parse().unwrap();
            assert_eq!(pan.ipv6(a.octets()), want.octets(), "{i}");
        }
    }

    fn cpl(a: u128, b: u128) -> u32 {
        (a ^ b).leading_zeros()
    }

    #[test]
    fn prefix_preservation_ipv4() {
        let mut rng = Rng(1);
        let mut anon = Anonymizer::new(&AnonOptions::new(AnonKey::from_bytes(rng.bytes())));
        for i in 0..4000 {
            let a = rng.next() as u32;
            // A pair with every common-prefix length 0..=32 (32 = the same address).
            let k = i % 33;
            let b = if k == 32 {
                a
            } else {
                let keep = if k == 0 { 0 } else { !0u32 << (32 - k) };
                let flip = 1u32 << (31 - k);
                (a & keep) | ((a ^ flip) & flip) | (rng.next() as u32 & (flip - 1))
            };
            let want = (a ^ b).leading_zeros();
            assert_eq!(want, k as u32);
            let x = u32::from_be_bytes(anon.ipv4(a.to_be_bytes()));
            let y = u32::from_be_bytes(anon.ipv4(b.to_be_bytes()));
            assert_eq!((x ^ y).leading_zeros(), want, "{a:08x} {b:08x}");
        }
    }

    #[test]
    fn prefix_preservation_ipv6() {
        let mut rng = Rng(2);
        let mut anon = Anonymizer::new(&AnonOptions::new(AnonKey::from_bytes(rng.bytes())));
        for i in 0..1290 {
            let a = u128::from_be_bytes(rng.bytes());
            let k = (i % 129) as u32;
            let b = if k == 128 {
                a
            } else {
                let keep = if k == 0 { 0 } else { !0u128 << (128 - k) };
                let flip = 1u128 << (127 - k);
                (a & keep) | ((a ^ flip) & flip) | (u128::from_be_bytes(rng.bytes()) & (flip - 1))
            };
            assert_eq!(cpl(a, b), k);
            let x = u128::from_be_bytes(anon.ipv6(a.to_be_bytes()));
            let y = u128::from_be_bytes(anon.ipv6(b.to_be_bytes()));
            assert_eq!(cpl(x, y), k);
        }
    }

    #[test]
    fn subnet_maps_onto_subnet_bijectively() {
        let mut anon = Anonymizer::new(&AnonOptions::new(AnonKey::from_bytes([9; 32])));
        let outs: std::collections::HashSet<[u8; 4]> =
            (0..=255u8).map(|h| anon.ipv4([192, 168, 7, h])).collect();
        assert_eq!(outs.len(), 256, "a /24 maps onto 256 distinct addresses");
        let first = anon.ipv4([192, 168, 7, 0]);
        assert!(outs.iter().all(|o| o[..3] == first[..3]), "… of one /24");
    }

    #[test]
    fn deterministic_and_key_dependent() {
        let mut rng = Rng(3);
        let k1: [u8; 32] = rng.bytes();
        let mut k2 = k1;
        k2[31] ^= 1; // a one-bit change of the pad seed
        let mut a1 = Anonymizer::new(&AnonOptions::new(AnonKey::from_bytes(k1)));
        let mut a1b = Anonymizer::new(&AnonOptions::new(AnonKey::from_bytes(k1)));
        let mut a2 = Anonymizer::new(&AnonOptions::new(AnonKey::from_bytes(k2)));
        let mut same_key_differs = 0;
        let mut other_key_same = 0;
        for _ in 0..1000 {
            let v4: [u8; 4] = rng.bytes();
            let v6: [u8; 16] = rng.bytes();
            if a1.ipv4(v4) != a1b.ipv4(v4) || a1.ipv6(v6) != a1b.ipv6(v6) {
                same_key_differs += 1;
            }
            if a1.ipv4(v4) == a2.ipv4(v4) {
                other_key_same += 1;
            }
            assert_ne!(a1.ipv6(v6), a2.ipv6(v6));
            assert_eq!(a1.mac([2, 0, 0, 0, 0, 1]), a1b.mac([2, 0, 0, 0, 0, 1]));
        }
        assert_eq!(same_key_differs, 0);
        // A 32-bit collision under an unrelated mapping has probability 2^-32 per address.
        assert!(other_key_same <= 1, "{other_key_same}");
        assert_ne!(a1.port(40000), a2.port(40000));
    }

    #[test]
    fn port_permutation() {
        let anon = Anonymizer::new(&AnonOptions::new(AnonKey::from_bytes([5; 32])));
        let mut seen = vec![false; 65536];
        let mut fixed = 0;
        for p in 0..=u16::MAX {
            let q = anon.port(p);
            if p < 1024 {
                assert_eq!(q, p, "well-known ports are kept");
            } else {
                assert!(q >= 1024, "{p} -> {q}");
                fixed += usize::from(q == p);
            }
            assert!(!seen[q as usize], "{q} hit twice");
            seen[q as usize] = true;
        }
        // A random permutation of 64512 values has about one fixed point.
        assert!(fixed < 10, "{fixed} fixed points: not permuting");
    }

    #[test]
    fn mac_modes() {
        let mut o = AnonOptions::new(AnonKey::from_bytes([1; 32]));
        let hash = Anonymizer::new(&o);
        o.mac = MacMode::KeepOui;
        let oui = Anonymizer::new(&o);
        let m = [0x00, 0x1b, 0x21, 0x3a, 0x4b, 0x5c];
        let h = hash.mac(m);
        assert_ne!(h, m);
        assert_eq!(h[0] & 0x03, 0x02, "unicast, locally administered");
        let mc = hash.mac([0x01, 0x00, 0x5e, 0, 0, 1]);
        assert_eq!(mc[0] & 0x01, 1, "multicast stays multicast");
        let k = oui.mac(m);
        assert_eq!(k[..3], m[..3]);
        assert_ne!(k[3..], m[3..]);
        assert_eq!(hash.mac([0; 6]), [0; 6]);
        assert_eq!(hash.mac([0xff; 6]), [0xff; 6]);
        assert_ne!(hash.mac(m), hash.mac([0x00, 0x1b, 0x21, 0x3a, 0x4b, 0x5d]));
    }

    fn sample() -> FlowRecord {
        let mut r = FlowRecord {
            addr_kind: AddrKind::Ipv4,
            proto: 6,
            saddr: Addr::from_v4([10, 1, 2, 3]),
            daddr: Addr::from_v4([192, 0, 2, 80]),
            sport: 51000,
            dport: 443,
            stime_ns: 1_700_000_000_000_000_000,
            ltime_ns: 1_700_000_005_000_000_000,
            flags: flags::PAYLOAD | flags::ECN_CE,
            smac: [0x00, 0x1b, 0x21, 1, 2, 3],
            dmac: [0x00, 0x1b, 0x21, 4, 5, 6],
            src_payload: b"GET / HTTP/1.1".to_vec(),
            dst_payload: b"HTTP/1.1 200".to_vec(),
            synack_ns: 1_000_000,
            ..FlowRecord::default()
        };
        r.src.pkts = 5;
        r.src.bytes = 500;
        r.src.first_ns = r.stime_ns;
        r.src.last_ns = r.ltime_ns;
        r.dst.pkts = 4;
        r.dst.first_ns = r.stime_ns + 1_000_000;
        r.dst.last_ns = r.ltime_ns;
        r
    }

    #[test]
    fn record_transform_and_round_trip() {
        let mut o = AnonOptions::new(AnonKey::from_bytes([3; 32]));
        o.time = TimeMode::Shift(-3_600_000_000_000);
        let mut anon = Anonymizer::new(&o);
        let orig = sample();
        let a = anon.record(orig.clone());
        assert!(a.src_payload.is_empty() && a.dst_payload.is_empty());
        assert_eq!(a.flags, flags::ECN_CE, "PAYLOAD cleared, other flags kept");
        assert_eq!(a.saddr, Addr::from_v4(anon.ipv4([10, 1, 2, 3])));
        assert_ne!(a.saddr, orig.saddr);
        assert_ne!(a.daddr, orig.daddr);
        assert_eq!(a.dport, 443);
        assert_eq!(a.sport, anon.port(51000));
        assert_ne!(a.sport, 51000);
        assert_eq!(a.stime_ns, orig.stime_ns - 3_600_000_000_000);
        assert_eq!(a.dst.first_ns, orig.dst.first_ns - 3_600_000_000_000);
        assert_eq!(a.dur_ns(), orig.dur_ns());
        assert_eq!(a.synack_ns, orig.synack_ns, "durations are not times");
        assert_eq!(a.hs.syn_ns, 0, "a zero time stays zero");
        assert_eq!((a.src.pkts, a.src.bytes), (5, 500));

        // The output is a valid record: it survives the codec unchanged.
        let mut w = RecordWriter::new(Vec::new(), &FileHeader::default(), WriterOptions::default())
            .unwrap();
        w.write(&a).unwrap();
        let bytes = w.finish().unwrap();
        let mut rd = RecordReader::new(&bytes[..], "test").unwrap();
        assert_eq!(rd.next_record().unwrap(), Some(a));
    }

    #[test]
    fn relative_time_and_meta_records() {
        let mut o = AnonOptions::new(AnonKey::from_bytes([4; 32]));
        o.time = TimeMode::Relative {
            base_ns: DEFAULT_RELATIVE_BASE_NS,
        };
        let status = FlowRecord {
            stime_ns: 1_700_000_000_000_000_000,
            ltime_ns: 1_700_000_005_000_000_000,
            status: Some(Box::new(ProbeStatus {
                seen: 10,
                ..ProbeStatus::default()
            })),
            ..FlowRecord::default()
        };
        let mut second = sample();
        second.stime_ns += 7_000_000_000;
        let mut out = Vec::new();
        run(
            &mut vec![status.clone(), second.clone()].into_iter(),
            &o,
            &mut |r| {
                out.push(r);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(out[0].stime_ns, DEFAULT_RELATIVE_BASE_NS);
        assert_eq!(out[0].ltime_ns, DEFAULT_RELATIVE_BASE_NS + 5_000_000_000);
        assert_eq!(out[0].status, status.status, "meta content untouched");
        assert_eq!(out[1].stime_ns, DEFAULT_RELATIVE_BASE_NS + 7_000_000_000);
        assert_ne!(out[1].saddr, second.saddr);
    }

    #[test]
    fn icmp_and_l2_records() {
        let mut anon = Anonymizer::new(&AnonOptions::new(AnonKey::from_bytes([6; 32])));
        let icmp = FlowRecord {
            addr_kind: AddrKind::Ipv4,
            proto: 1,
            sport: 0x0800,
            dport: 4321,
            ..FlowRecord::default()
        };
        let a = anon.record(icmp.clone());
        assert_eq!((a.sport, a.dport), (0x0800, 4321), "ICMP type/code/id kept");
        let arp = FlowRecord {
            addr_kind: AddrKind::L2,
            ethertype: 0x0806,
            saddr: Addr::from_mac([0x00, 0x1b, 0x21, 9, 9, 9]),
            daddr: Addr::from_mac([0xff; 6]),
            ..FlowRecord::default()
        };
        let a = anon.record(arp.clone());
        assert_ne!(a.saddr, arp.saddr);
        assert_eq!(a.saddr.0[6..], [0; 10], "a MAC stays in the first 6 bytes");
        assert_eq!(a.daddr, arp.daddr, "broadcast kept");
    }

    #[test]
    fn keys() {
        let hex = "00112233445566778899aabbccddeeff 00112233445566778899AABBCCDDEEFF\n";
        let k = AnonKey::from_hex(hex).unwrap();
        assert_eq!(k.0[1], 0x11);
        assert_eq!(k.0[31], 0xff);
        assert!(AnonKey::from_hex("0011").is_err());
        assert!(AnonKey::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(AnonKey::from_file_bytes(hex.as_bytes()).unwrap(), k);
        assert_eq!(AnonKey::from_file_bytes(&[0xfe; 32]).unwrap().0, [0xfe; 32]);
        assert!(AnonKey::from_file_bytes(&[0xfe; 31]).is_err());
        assert!(!format!("{k:?}").contains("11"), "Debug hides the key");
        let p1 = AnonKey::from_passphrase("correct horse");
        assert_eq!(p1, AnonKey::from_passphrase("correct horse"));
        assert_ne!(p1, AnonKey::from_passphrase("correct horsf"));
        assert_ne!(p1.0, [0; 32]);
    }

    #[test]
    fn never_panics_on_odd_records() {
        let mut rng = Rng(11);
        let mut o = AnonOptions::new(AnonKey::from_bytes([8; 32]));
        o.time = TimeMode::Shift(i64::MIN);
        let mut anon = Anonymizer::new(&o);
        for _ in 0..2000 {
            let mut r = FlowRecord {
                addr_kind: [AddrKind::L2, AddrKind::Ipv4, AddrKind::Ipv6][rng.next() as usize % 3],
                proto: rng.next() as u8,
                saddr: Addr(rng.bytes()),
                daddr: Addr(rng.bytes()),
                sport: rng.next() as u16,
                dport: rng.next() as u16,
                stime_ns: rng.next(),
                ltime_ns: rng.next(),
                ..FlowRecord::default()
            };
            r.encap.outer_kind = r.addr_kind;
            r.src.first_ns = u64::MAX;
            let a = anon.record(r);
            assert!(a.stime_ns == 0 || a.stime_ns >= 1);
        }
    }
}
