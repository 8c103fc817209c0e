//! ERF files and streams: records back to back, no file header, no magic. The record walk is
//! [`crate::erf::parse`], shared with ERF-in-pcap and the DAG stream. `rlen` is the only
//! framing, so a record whose `rlen` cannot be trusted (below the header, or beyond the end of
//! the input) ends the file; a record that is framed but unusable (unknown type, extension
//! chain past its end) is reported, counted and skipped.

use super::{Ctx, Step};
use crate::erf::{self, ErfError, Walk};
use crate::PacketDesc;

#[derive(Debug, Default)]
pub(crate) struct Erf {
    /// Records consumed so far (the next one is number `records + 1`).
    records: u64,
}

impl Erf {
    /// Parses the record at the start of `d` (stream offset `off`); `eof` says no bytes will
    /// follow `d`.
    pub(crate) fn step(&mut self, d: &[u8], eof: bool, off: u64, cx: &mut Ctx) -> Step {
        let n = self.records + 1;
        match erf::parse(d, false) {
            Walk::Packet { rlen, desc, loss } => {
                self.records += 1;
                // The loss counter counts records the card could not deliver before this one.
                cx.stats.drops += u64::from(loss);
                Step::Packet {
                    consumed: rlen,
                    desc,
                }
            }
            Walk::Skip(rlen) => {
                self.records += 1;
                Step::Skip(rlen)
            }
            Walk::Need(need) if !eof => Step::Need(need),
            Walk::Need(_) if d.is_empty() => Step::End,
            Walk::Need(need) => {
                let err = if d.len() < erf::HEADER_LEN {
                    format!(
                        "only {} of the {} header bytes remain (truncated record)",
                        d.len(),
                        erf::HEADER_LEN
                    )
                } else {
                    ErfError::Truncated {
                        rlen: need,
                        have: d.len(),
                    }
                    .to_string()
                };
                cx.bad(
                    off,
                    format!("ERF record {n} at offset {off}: {err}; stopping"),
                );
                Step::End
            }
            Walk::Bad { err, skip: None } => {
                cx.bad(
                    off,
                    format!("ERF record {n} at offset {off}: {err}; stopping"),
                );
                Step::End
            }
            Walk::Bad {
                err,
                skip: Some(rlen),
            } => {
                self.records += 1;
                cx.bad(
                    off,
                    format!("ERF record {n} at offset {off}: {err}; skipping its {rlen} bytes"),
                );
                Step::Skip(rlen)
            }
        }
    }
}

/// A pcap/pcapng packet of LINKTYPE_ERF (`desc` as the container parsed it, `data` from the
/// container record's start at stream offset `off`): the packet inside the ERF record, with the
/// container's timestamp. The ERF record may be cut short by the snap length.
pub(crate) fn unwrap(
    data: &[u8],
    consumed: usize,
    desc: PacketDesc,
    off: u64,
    cx: &mut Ctx,
) -> Step {
    let start = desc.offset;
    let rec = data.get(start..start + desc.caplen as usize).unwrap_or(&[]);
    let err = match erf::parse(rec, true) {
        Walk::Packet { desc: d, loss, .. } => {
            cx.stats.drops += u64::from(loss);
            return Step::Packet {
                consumed,
                desc: PacketDesc {
                    offset: start + d.offset,
                    ts_ns: desc.ts_ns,
                    ..d
                },
            };
        }
        Walk::Skip(_) => return Step::Skip(consumed),
        Walk::Need(_) => format!(
            "holds {} bytes, less than the {}-byte ERF header",
            rec.len(),
            erf::HEADER_LEN
        ),
        Walk::Bad { err, .. } => err.to_string(),
    };
    cx.bad(
        off,
        format!("LINKTYPE_ERF packet at offset {off}: {err}; skipping it"),
    );
    Step::Skip(consumed)
}
