//! Cluster training workers: one model trained by N machines in DiLoCo rounds, their deltas
//! exchanged directly over commonware's authenticated peer-to-peer network.
//!
//! # What this crate is for, and what it must never do
//!
//! It runs one worker of a cluster job (`orrery_ml::cluster`): each round it computes its
//! delta, sends it to every other worker, gathers theirs, and applies the outer step to the set
//! of deltas the round *accepted*. It never decides that set itself: a [`RoundOracle`] does —
//! on the network, the chain, where each worker commits its delta's hash (one transaction per
//! worker per round) — so every honest worker applies exactly the same deltas and holds
//! bitwise-identical weights afterwards. Deltas never go through the oracle, only hashes.
//!
//! # The round protocol (worker `w`, round `r`)
//!
//! 1. Compute `worker_round(r, w, θ_r, state_w)` off the async executor (a dedicated thread):
//!    the delta's canonical bytes and its hash.
//! 2. Send `r ‖ w ‖ delta` to every other member on [`CHANNEL_DELTAS`], then commit the hash
//!    (with the hash of the state it started from and its mean loss: a [`RoundCommit`]) with
//!    the oracle. (Sending first means a worker whose commit is accepted has already
//!    offered its delta to everyone.)
//! 3. Receive peers' deltas for round `r` until it holds all of them or `round_timeout`
//!    passes. Each message is checked before it is kept: the authenticated sender must be the
//!    member whose index the message names, the round must be `r` (or `r + 1`, buffered for
//!    later), and the bytes must decode against the model ([`orrery_ml::cluster::Delta`]).
//!    Anything else is refused and the peer reported (in [`WorkerReport::refused`]).
//! 4. Report to the oracle which deltas it holds, with their hashes. The oracle answers with
//!    the round's final set: the workers that committed in time *and* whose committed hash
//!    every reporting worker holds. A worker that died, missed the deadline, or sent bytes
//!    other than what it committed is left out of the round, and the round completes with the
//!    others.
//! 5. Apply the outer step to the final set's deltas, in worker order.
//!
//! A worker that joins late (a replacement) starts from the current round's weights with a
//! fresh worker state ([`orrery_ml::cluster::ClusterJob::worker_initial`]).
//!
//! # Limits
//!
//! Messages are bounded by the model's delta size (the p2p layer refuses anything larger);
//! at most two rounds of messages are buffered per peer; every wait has a timeout.

mod oracle;
mod wire;
mod worker;

pub use oracle::{LocalOracle, RoundCommit, RoundOracle};
pub use wire::{CHANNEL_DELTAS, DeltaMessage, Kind, max_message_bytes};
pub use worker::{RoundRecord, WorkerConfig, WorkerError, WorkerReport, run_worker};

/// Namespace of the cluster interconnect's handshakes (distinct from consensus').
pub const CLUSTER_NAMESPACE: &[u8] = b"orrery-cluster-v1";
