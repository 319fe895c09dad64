//! The canonical encoding of a training state.
//!
//! ```text
//! "ORML" | version: u32 = 1 | step: u64 | has_loss: u8 | last_loss: f32 | sets: u32
//! for each set (parameters first, then the optimizer's slots in order):
//!     tensors: u32
//!     for each tensor: name_len: u32 | name (UTF-8) | rank: u32 | dims: u64 × rank | f32 × Π dims
//! ```
//!
//! Everything little-endian, no padding, no optional fields, so one state has exactly one
//! encoding and its checkpoint hash is well defined. The decoder bounds every length by the
//! bytes that remain before allocating, and never panics on any input.

use crate::error::{MlError, Result};
use crate::tensor::{ParamSet, Tensor};

const MAGIC: &[u8; 4] = b"ORML";
const VERSION: u32 = 1;
/// Longest tensor name accepted.
const MAX_NAME: usize = 256;
/// Highest tensor rank accepted.
const MAX_RANK: usize = 8;
/// Most parameter sets (parameters plus optimizer slots) accepted.
const MAX_SETS: usize = 8;

/// Weights, optimizer slots and progress of a training run at one step.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    /// Optimizer steps taken so far (`k` for `state_k`).
    pub step: u64,
    /// The training loss of the batch of the last step (none for `state_0`).
    pub last_loss: Option<f32>,
    /// The model's parameters.
    pub params: ParamSet,
    /// The optimizer's slots (e.g. AdamW's two moments), each shaped like `params`.
    pub slots: Vec<ParamSet>,
}

impl TrainState {
    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let n: usize = std::iter::once(&self.params)
            .chain(&self.slots)
            .map(|s| s.numel() * 4 + s.tensors.len() * 64)
            .sum();
        let mut out = Vec::with_capacity(32 + n);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.step.to_le_bytes());
        out.push(self.last_loss.is_some() as u8);
        out.extend_from_slice(&self.last_loss.unwrap_or(0.0).to_le_bytes());
        out.extend_from_slice(&(1 + self.slots.len() as u32).to_le_bytes());
        for set in std::iter::once(&self.params).chain(&self.slots) {
            out.extend_from_slice(&(set.tensors.len() as u32).to_le_bytes());
            for (name, t) in &set.tensors {
                out.extend_from_slice(&(name.len() as u32).to_le_bytes());
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
                for &d in &t.shape {
                    out.extend_from_slice(&(d as u64).to_le_bytes());
                }
                for &v in &t.data {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        out
    }

    /// Parse canonical bytes; any deviation is an error.
    pub fn decode(bytes: &[u8]) -> Result<TrainState> {
        let mut r = Reader::new(bytes, bad);
        if r.take(4)? != MAGIC {
            return Err(bad("not an orrery-ml training state (wrong magic)"));
        }
        let version = r.u32()?;
        if version != VERSION {
            return Err(bad(&format!("unsupported state version {version}")));
        }
        let step = r.u64()?;
        let has_loss = r.take(1)?[0];
        let loss = f32::from_le_bytes(r.array()?);
        let last_loss = match has_loss {
            0 if loss.to_bits() == 0 => None,
            1 => Some(loss),
            _ => return Err(bad("malformed loss field")),
        };
        let sets = r.u32()? as usize;
        if sets == 0 || sets > MAX_SETS {
            return Err(bad(&format!("{sets} parameter sets")));
        }
        let mut all = Vec::with_capacity(sets);
        for _ in 0..sets {
            let count = r.u32()? as usize;
            // Each tensor takes at least 12 bytes: bound the allocation by what remains.
            if count > r.remaining() / 12 {
                return Err(bad("tensor count larger than the data"));
            }
            let mut tensors = Vec::with_capacity(count);
            for _ in 0..count {
                let name_len = r.u32()? as usize;
                if name_len > MAX_NAME {
                    return Err(bad("tensor name too long"));
                }
                let name = std::str::from_utf8(r.take(name_len)?)
                    .map_err(|_| bad("tensor name is not UTF-8"))?
                    .to_string();
                let rank = r.u32()? as usize;
                if rank > MAX_RANK {
                    return Err(bad("tensor rank too high"));
                }
                let mut shape = Vec::with_capacity(rank);
                let mut numel: usize = 1;
                for _ in 0..rank {
                    let d = usize::try_from(r.u64()?).map_err(|_| bad("dimension too large"))?;
                    numel = numel
                        .checked_mul(d)
                        .ok_or_else(|| bad("tensor size overflows"))?;
                    shape.push(d);
                }
                if numel > r.remaining() / 4 {
                    return Err(bad(&format!("tensor `{name}` is truncated")));
                }
                let data = r
                    .take(numel * 4)?
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                tensors.push((name, Tensor { shape, data }));
            }
            all.push(ParamSet { tensors });
        }
        if r.remaining() != 0 {
            return Err(bad("trailing bytes after the state"));
        }
        let mut all = all.into_iter();
        let params = all.next().ok_or_else(|| bad("no parameters"))?;
        Ok(TrainState {
            step,
            last_loss,
            params,
            slots: all.collect(),
        })
    }

    /// Read only the step counter and last loss from encoded state bytes (cheap, for progress
    /// displays).
    pub fn peek(bytes: &[u8]) -> Option<(u64, Option<f32>)> {
        if bytes.len() < 21 || &bytes[..4] != MAGIC {
            return None;
        }
        let step = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
        let loss = f32::from_le_bytes(bytes[17..21].try_into().ok()?);
        Some((step, (bytes[16] == 1).then_some(loss)))
    }
}

fn bad(why: &str) -> MlError {
    MlError::BadState(why.to_string())
}

/// A bounds-checked little-endian reader over untrusted bytes; running out is an error made by
/// `err` (each format names its own kind of error).
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    err: fn(&str) -> MlError,
}

impl<'a> Reader<'a> {
    /// Read `bytes` from the start.
    pub(crate) fn new(bytes: &'a [u8], err: fn(&str) -> MlError) -> Self {
        Reader { bytes, pos: 0, err }
    }
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err((self.err)("truncated"));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}
