//! What travels between workers: `round: u64 ‖ worker: u32 ‖ kind: u8 ‖ payload`
//! (big-endian header), on one p2p channel. Kinds: a delta (payload: its bytes), a greeting
//! (before the first round, empty), and a request for the receiver's own delta of `round`
//! (empty; `worker` is the requester) — a message to a peer whose connection was being
//! replaced can be lost, so a worker that lacks a delta asks its sender again.

use orrery_ml::tensor::ParamSet;

/// The p2p channel deltas travel on.
pub const CHANNEL_DELTAS: u64 = 0;

/// Header bytes before the payload.
const HEADER: usize = 13;

/// What a message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A worker's delta for a round.
    Delta = 0,
    /// A greeting before the first round.
    Hello = 1,
    /// "Send me your delta for this round again."
    Want = 2,
}

/// A delta as sent: which round, which worker, and the canonical delta bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaMessage {
    /// The round.
    pub round: u64,
    /// The sending worker's index.
    pub worker: u32,
    /// What it is.
    pub kind: Kind,
    /// `orrery_ml::cluster::Delta` bytes (empty for the other kinds).
    pub delta: Vec<u8>,
}

impl DeltaMessage {
    /// Encode.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.delta.len());
        out.extend_from_slice(&self.round.to_be_bytes());
        out.extend_from_slice(&self.worker.to_be_bytes());
        out.push(self.kind as u8);
        out.extend_from_slice(&self.delta);
        out
    }

    /// Decode the header (`None`: too short, or an unknown kind); the delta itself is checked against the model by its receiver.
    pub fn decode(bytes: &[u8]) -> Option<DeltaMessage> {
        let (round, rest) = bytes.split_first_chunk::<8>()?;
        let (worker, rest) = rest.split_first_chunk::<4>()?;
        let (kind, delta) = rest.split_first()?;
        let kind = match kind {
            0 => Kind::Delta,
            1 if delta.is_empty() => Kind::Hello,
            2 if delta.is_empty() => Kind::Want,
            _ => return None,
        };
        Some(DeltaMessage {
            round: u64::from_be_bytes(*round),
            worker: u32::from_be_bytes(*worker),
            kind,
            delta: delta.to_vec(),
        })
    }
}

/// Largest message a worker of this model may send: the header plus an uncompressed delta
/// (header, per-tensor counts and f32 values; an int8 delta is smaller).
pub fn max_message_bytes(template: &ParamSet) -> usize {
    HEADER + 25 + template.tensors.len() * 12 + template.numel() * 4
}
