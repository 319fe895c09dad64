//! A worker's pseudo-gradient as it travels between peers, in one canonical encoding.
//!
//! ```text
//! "ORDL" | version: u32 = 1 | round: u64 | worker: u32 | compression: u8 (0 none, 1 int8)
//! | tensors: u32 | for each tensor, in the model's order: numel: u64, then
//!     none: f32 × numel
//!     int8: scale: f32 | i8 × numel            (value = i8 as f32 × scale)
//! ```
//!
//! Little-endian, no padding. Names and shapes are not sent: both ends know the model, and the
//! decoder checks every count against it before allocating, so a delta of the wrong shape, for
//! another round or from another worker is refused, never applied.

use crate::error::{MlError, Result};
use crate::state::Reader;
use crate::tensor::ParamSet;
use orrery_types::Hash;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"ORDL";
const VERSION: u32 = 1;

/// How a delta's values travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// f32 values, exact.
    #[default]
    None,
    /// int8 per tensor with a f32 scale, and error feedback kept by the sender (4× smaller).
    Int8,
}

/// One worker's delta for one round: canonical bytes plus the decoded values.
#[derive(Clone, Debug, PartialEq)]
pub struct Delta {
    round: u64,
    worker: u32,
    values: Vec<Vec<f32>>,
    bytes: Vec<u8>,
}

impl Delta {
    /// Build worker `w`'s delta for `round` from its pseudo-gradient and residual; returns the
    /// delta and the residual to keep (unchanged zeros without compression).
    pub(crate) fn compress(
        round: u64,
        worker: u32,
        compression: Compression,
        pseudo: ParamSet,
        residual: &ParamSet,
    ) -> (Delta, ParamSet) {
        let mut bytes = header(round, worker, compression, pseudo.tensors.len());
        let mut values = Vec::with_capacity(pseudo.tensors.len());
        let mut kept = residual.clone();
        for (i, (_, t)) in pseudo.tensors.into_iter().enumerate() {
            bytes.extend_from_slice(&(t.data.len() as u64).to_le_bytes());
            match compression {
                Compression::None => {
                    for v in &t.data {
                        bytes.extend_from_slice(&v.to_le_bytes());
                    }
                    values.push(t.data);
                }
                Compression::Int8 => {
                    let e = &mut kept.get_mut(i).data;
                    let x: Vec<f32> = t.data.iter().zip(e.iter()).map(|(d, e)| d + e).collect();
                    let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let scale = max / 127.0;
                    bytes.extend_from_slice(&scale.to_le_bytes());
                    let mut out = Vec::with_capacity(x.len());
                    for (xi, ei) in x.iter().zip(e.iter_mut()) {
                        let q = if scale > 0.0 {
                            (xi / scale).round_ties_even().clamp(-127.0, 127.0)
                        } else {
                            0.0
                        };
                        bytes.push(q as i8 as u8);
                        let deq = q * scale;
                        *ei = xi - deq;
                        out.push(deq);
                    }
                    values.push(out);
                }
            }
        }
        (
            Delta {
                round,
                worker,
                values,
                bytes,
            },
            kept,
        )
    }

    /// Parse a peer's bytes as worker `worker`'s delta for `round`, against the model's
    /// `template` (names and shapes, in order).
    pub fn decode(bytes: &[u8], template: &ParamSet, round: u64, worker: u32) -> Result<Delta> {
        let mut r = Reader::new(bytes, bad);
        if r.take(4)? != MAGIC {
            return Err(bad("not a cluster delta (wrong magic)"));
        }
        let version = r.u32()?;
        if version != VERSION {
            return Err(bad(&format!("unsupported delta version {version}")));
        }
        let (got_round, got_worker) = (r.u64()?, r.u32()?);
        if (got_round, got_worker) != (round, worker) {
            return Err(bad(&format!(
                "the delta is worker {got_worker}'s for round {got_round}, expected worker {worker}'s for round {round}"
            )));
        }
        let compression = match r.take(1)?[0] {
            0 => Compression::None,
            1 => Compression::Int8,
            c => return Err(bad(&format!("unknown compression {c}"))),
        };
        let count = r.u32()? as usize;
        if count != template.tensors.len() {
            return Err(bad(&format!(
                "{count} tensors, the model has {}",
                template.tensors.len()
            )));
        }
        let mut values = Vec::with_capacity(count);
        for (name, want) in &template.tensors {
            let numel = r.u64()?;
            if numel != want.len() as u64 {
                return Err(bad(&format!(
                    "tensor `{name}` has {numel} values, the model has {}",
                    want.len()
                )));
            }
            let n = want.len();
            let v: Vec<f32> = match compression {
                Compression::None => r
                    .take(n.checked_mul(4).ok_or_else(|| bad("size overflows"))?)?
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Compression::Int8 => {
                    let scale = f32::from_le_bytes(r.array()?);
                    if !(scale >= 0.0 && scale.is_finite()) {
                        return Err(bad(&format!("tensor `{name}` has scale {scale}")));
                    }
                    r.take(n)?
                        .iter()
                        .map(|&q| {
                            let q = q as i8;
                            if q == i8::MIN {
                                f32::NAN // out of the encoder's range: refused below
                            } else {
                                q as f32 * scale
                            }
                        })
                        .collect()
                }
            };
            if v.iter().any(|x| !x.is_finite()) {
                return Err(bad(&format!("tensor `{name}` holds a value out of range")));
            }
            values.push(v);
        }
        if r.remaining() != 0 {
            return Err(bad("trailing bytes after the delta"));
        }
        Ok(Delta {
            round,
            worker,
            values,
            bytes: bytes.to_vec(),
        })
    }

    /// The round it belongs to.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// The worker that made it.
    pub fn worker(&self) -> u32 {
        self.worker
    }

    /// Values of tensor `i`, in the model's order.
    pub fn values(&self, i: usize) -> &[f32] {
        &self.values[i]
    }

    /// The canonical bytes (what travels).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// What the worker commits on chain for this round.
    pub fn hash(&self) -> Hash {
        Hash::tagged(b"orrery/cluster/delta", &self.bytes)
    }
}

fn header(round: u64, worker: u32, compression: Compression, tensors: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(25);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&round.to_le_bytes());
    out.extend_from_slice(&worker.to_le_bytes());
    out.push(match compression {
        Compression::None => 0,
        Compression::Int8 => 1,
    });
    out.extend_from_slice(&(tensors as u32).to_le_bytes());
    out
}

fn bad(why: &str) -> MlError {
    MlError::BadDelta(why.to_string())
}
