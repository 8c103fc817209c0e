//! Online clock-offset estimation between probes from causality.
//!
//! Both legs of a split tap sit at the same point of the link, so a reply crosses the tap after
//! the request it answers: a SYN-ACK after its SYN, the handshake's ACK after the SYN-ACK. When
//! the request is stamped by probe `i` (at `ti` on its clock) and the reply by probe `j` (at
//! `tj`), then with `θ` = probe clock − reference clock, `ti − θi < tj − θj`. With the
//! reference on one side each pair bounds the other probe's offset from one side: requests seen
//! by the reference give upper bounds, requests seen by the other probe lower bounds. Each
//! handshake split over two probes gives one of each (SYN→SYN-ACK and SYN-ACK→ACK).
//!
//! The estimate is the smallest correction the tightest interval allows (none when it holds 0,
//! else its nearer end), and the distance to its far end is the stated uncertainty. How tight
//! it gets depends on the fastest turn-around seen on each side of the tap (tens of µs on a
//! LAN). Bounds are kept per epoch (one minute of reference time) and only
//! recent epochs count, so a drifting or stepped clock is followed.

/// Reference-clock time covered by one epoch of bounds.
const EPOCH_NS: u64 = 60_000_000_000;
/// Epochs the estimate looks back over.
const EPOCHS: usize = 10;

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Bucket {
    epoch: u64,
    upper: i64,
    lower: i64,
    pairs: u64,
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        epoch: u64::MAX,
        upper: i64::MAX,
        lower: i64::MIN,
        pairs: 0,
    };
}

/// The estimate for one probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Offset {
    /// Probe clock minus reference clock, ns.
    pub offset_ns: i64,
    /// How far the true offset can be from `offset_ns` (the interval's far end); `None` when it is bounded on one side
    /// only (or not at all), in which case `offset_ns` is the smallest correction the one
    /// bound asks for (0 when it allows equal clocks).
    pub err_ns: Option<u64>,
    /// Pairs ever used.
    pub pairs: u64,
    /// The bounds crossed (lower > upper): the clock moved faster than the epochs follow, or
    /// the traffic broke causality; the middle is still given.
    pub inconsistent: bool,
}

/// Bounds and estimate for one non-reference probe (serde: part of the merger's snapshot).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct OffsetEstimator {
    buckets: [Bucket; EPOCHS],
    pairs: u64,
    cached: Offset,
}

impl Default for OffsetEstimator {
    fn default() -> Self {
        OffsetEstimator {
            buckets: [Bucket::EMPTY; EPOCHS],
            pairs: 0,
            cached: Offset::default(),
        }
    }
}

impl OffsetEstimator {
    fn bucket(&mut self, ref_ns: u64) -> &mut Bucket {
        let epoch = ref_ns / EPOCH_NS;
        let b = &mut self.buckets[(epoch % EPOCHS as u64) as usize];
        if b.epoch != epoch {
            *b = Bucket {
                epoch,
                ..Bucket::EMPTY
            };
        }
        b
    }

    /// A request seen by the reference at `t_ref`, its reply by this probe at `t_probe`:
    /// `θ < t_probe − t_ref`.
    pub fn reply_seen_here(&mut self, t_ref: u64, t_probe: u64) {
        let bound = t_probe as i64 - t_ref as i64;
        let b = self.bucket(t_ref);
        b.upper = b.upper.min(bound);
        b.pairs += 1;
        self.pairs += 1;
        self.update(t_ref);
    }

    /// A request seen by this probe at `t_probe`, its reply by the reference at `t_ref`:
    /// `θ > t_probe − t_ref`.
    pub fn request_seen_here(&mut self, t_probe: u64, t_ref: u64) {
        let bound = t_probe as i64 - t_ref as i64;
        let b = self.bucket(t_ref);
        b.lower = b.lower.max(bound);
        b.pairs += 1;
        self.pairs += 1;
        self.update(t_ref);
    }

    fn update(&mut self, now_ref: u64) {
        let now = now_ref / EPOCH_NS;
        let recent = |b: &&Bucket| b.epoch != u64::MAX && b.epoch + EPOCHS as u64 > now;
        let mut upper = i64::MAX;
        let mut lower = i64::MIN;
        for b in self.buckets.iter().filter(recent) {
            upper = upper.min(b.upper);
            lower = lower.max(b.lower);
        }
        let mut inconsistent = false;
        if upper != i64::MAX && lower != i64::MIN && lower > upper {
            // A clock step: trust the newest epoch alone.
            let newest = self.buckets.iter().filter(recent).max_by_key(|b| b.epoch);
            if let Some(b) = newest {
                upper = b.upper;
                lower = b.lower;
            }
            inconsistent = upper != i64::MAX && lower != i64::MIN && lower > upper;
        }
        self.cached = match (upper != i64::MAX, lower != i64::MIN) {
            (true, true) if !inconsistent => {
                // The smallest correction causality allows: none when the clocks may agree.
                // (The middle would assume the tap halfway between the hosts; one slow server
                // then shows as a clock offset of half its round trip.)
                let est = 0i64.clamp(lower, upper);
                let far = (est as i128 - lower as i128).max(upper as i128 - est as i128);
                Offset {
                    offset_ns: est,
                    err_ns: Some(far as u64),
                    pairs: self.pairs,
                    inconsistent,
                }
            }
            (true, true) => Offset {
                offset_ns: lower / 2 + upper / 2,
                err_ns: Some((lower as i128 - upper as i128) as u64 / 2),
                pairs: self.pairs,
                inconsistent,
            },
            // Bounded on one side only: the smallest correction causality asks for (none when
            // the clocks may well agree; the bound itself includes a round trip).
            (true, false) => Offset {
                offset_ns: upper.min(0),
                err_ns: None,
                pairs: self.pairs,
                inconsistent: false,
            },
            (false, true) => Offset {
                offset_ns: lower.max(0),
                err_ns: None,
                pairs: self.pairs,
                inconsistent: false,
            },
            (false, false) => Offset {
                pairs: self.pairs,
                ..Offset::default()
            },
        };
    }

    pub fn estimate(&self) -> Offset {
        self.cached
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000_000_000;

    /// Handshakes with the client on `client_ref` side, true offset `theta`, the SYN-ACK
    /// `server` ns after the SYN and the ACK `client` ns after the SYN-ACK (at the tap).
    fn handshake(
        e: &mut OffsetEstimator,
        t: u64,
        theta: i64,
        server: u64,
        client: u64,
        client_ref: bool,
    ) {
        let syn = t;
        let synack = t + server;
        let ack = synack + client;
        let here = |x: u64| x.saturating_add_signed(theta);
        if client_ref {
            e.reply_seen_here(syn, here(synack));
            e.request_seen_here(here(synack), ack);
        } else {
            e.request_seen_here(here(syn), synack);
            e.reply_seen_here(synack, here(ack));
        }
    }

    #[test]
    fn brackets_the_offset_from_both_sides() {
        for theta in [20_000_000i64, -20_000_000, 0, 7] {
            let mut e = OffsetEstimator::default();
            for k in 0..50u64 {
                handshake(
                    &mut e,
                    T0 + k * 1_000_000,
                    theta,
                    30_000_000 + k,
                    60_000,
                    k % 2 == 0,
                );
            }
            let o = e.estimate();
            let err = o.err_ns.unwrap();
            assert!(
                (o.offset_ns - theta).unsigned_abs() <= err,
                "{o:?} vs {theta}"
            );
            assert!(err <= 120_000, "{o:?}");
            assert_eq!(o.pairs, 100);
            assert!(!o.inconsistent);
        }
    }

    #[test]
    fn one_sided_layout_still_brackets_within_the_rtt() {
        // All clients behind the reference: each handshake bounds both ways.
        let mut e = OffsetEstimator::default();
        for k in 0..20u64 {
            handshake(
                &mut e,
                T0 + k * 1_000_000,
                -3_000_000,
                200_000,
                50_000,
                true,
            );
        }
        let o = e.estimate();
        assert!((o.offset_ns + 3_000_000).unsigned_abs() <= o.err_ns.unwrap());
        // The interval is (−3.05 ms, −2.8 ms): its end nearer to 0, 250 µs wide.
        assert_eq!((o.offset_ns, o.err_ns), (-2_800_000, Some(250_000)));
    }

    #[test]
    fn no_evidence_is_zero_and_one_bound_is_flagged() {
        let mut e = OffsetEstimator::default();
        assert_eq!(e.estimate(), Offset::default());
        // θ < 5 µs allows equal clocks: no correction.
        e.reply_seen_here(T0, T0 + 5_000);
        let o = e.estimate();
        assert_eq!((o.offset_ns, o.err_ns, o.pairs), (0, None, 1));
        // θ < −3 ms does not.
        e.reply_seen_here(T0, T0 - 3_000_000);
        assert_eq!(e.estimate().offset_ns, -3_000_000);
    }

    #[test]
    fn a_clock_step_is_followed() {
        let mut e = OffsetEstimator::default();
        for k in 0..10u64 {
            handshake(
                &mut e,
                T0 + k * 1_000_000,
                1_000_000,
                100_000,
                100_000,
                k % 2 == 0,
            );
        }
        assert!((e.estimate().offset_ns - 1_000_000).abs() <= 100_000);
        // Two epochs later the clock has stepped by 50 ms.
        let later = T0 + 2 * EPOCH_NS;
        for k in 0..10u64 {
            handshake(
                &mut e,
                later + k * 1_000_000,
                51_000_000,
                100_000,
                100_000,
                k % 2 == 0,
            );
        }
        let o = e.estimate();
        assert!((o.offset_ns - 51_000_000).abs() <= 100_000, "{o:?}");
        assert!(!o.inconsistent);
        // And the old epochs age out entirely.
        let much_later = later + (EPOCHS as u64 + 1) * EPOCH_NS;
        handshake(&mut e, much_later, 51_000_000, 10_000, 10_000, true);
        let o = e.estimate();
        assert!((o.offset_ns - 51_000_000).abs() <= 10_000, "{o:?}");
    }
}
