//! What a validator reports about itself: one definition for the chain (which fills it), the
//! node's API (which serves it at `GET /api/v1/status`) and the SDK (which reads it).

use crate::hash::Hash;
use serde::{Deserialize, Serialize};

/// The chain as a validator sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainStatus {
    /// The chain's id from genesis.
    pub chain_id: String,
    /// Height of the last finalized and applied block (0: genesis only).
    pub height: u64,
    /// State root after that block.
    pub state_root: Hash,
    /// Hash of that block (`Hash::ZERO` at genesis).
    pub last_block_hash: Hash,
    /// Its time, milliseconds since the Unix epoch.
    pub last_block_time_ms: u64,
    /// Size of the validator committee.
    pub validators: u64,
    /// Other committee members among the senders of the last few hundred consensus votes this
    /// node received: the members it can hear, measured by consensus traffic (every live
    /// member votes in every view) rather than socket state.
    pub peers_connected: u64,
    /// Transactions waiting in this node's mempool.
    pub mempool_len: u64,
    /// Whether this node is still catching up with finalized blocks it has not applied.
    pub syncing: bool,
}
