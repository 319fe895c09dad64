//! The surface `orrery-node` uses: submit transactions, read the last finalized state, fetch
//! blocks, follow finalized blocks, and see the validator's status.
//!
//! Everything here reads the *finalized* chain: a block is visible through [`Handle`] only once
//! consensus finalized it and the ledger applied and persisted it. Nothing here blocks on
//! consensus; [`Handle::submit`] only checks a transaction against the last finalized state and
//! queues it in the mempool.

use crate::mempool::Mempool;
use orrery_ledger::State;
use orrery_ledger::receipt::{Event, Receipt};
use orrery_store::Ledger;
use orrery_types::block::Block;
use orrery_types::hash::Hash;
use orrery_types::tx::SignedTx;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::broadcast;

pub use crate::mempool::SubmitError;

/// A finalized block and what applying it produced.
#[derive(Clone, Debug)]
pub struct Finalized {
    /// The block.
    pub block: Block,
    /// Its hash (`Block::hash`).
    pub block_hash: Hash,
    /// One receipt per transaction, in order.
    pub receipts: Vec<Receipt>,
    /// End-of-block events (timeouts, settlements, emissions).
    pub events: Vec<Event>,
    /// The state root after the block.
    pub state_root: Hash,
}

/// What a validator reports about itself (one definition, shared with the node's API).
pub use orrery_types::status::ChainStatus;

/// Why the chain could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The ledger database failed.
    #[error(transparent)]
    Store(#[from] orrery_store::StoreError),
    /// The validator configuration is unusable.
    #[error("validator configuration: {0}")]
    Config(String),
    /// The genesis file is unusable.
    #[error(transparent)]
    Genesis(#[from] orrery_ledger::GenesisError),
    /// Starting a consensus component (storage, network) failed.
    #[error("could not start {component}: {reason}")]
    Start {
        /// Which component.
        component: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// Counters the consensus side updates and [`Handle::status`] reads.
#[derive(Debug, Default)]
pub struct Live {
    pub(crate) peers_connected: AtomicUsize,
    pub(crate) syncing: AtomicBool,
}

/// Cheap to clone; every clone talks to the same validator.
#[derive(Clone)]
pub struct Handle {
    pub(crate) chain_id: String,
    pub(crate) validators: usize,
    pub(crate) ledger: Arc<RwLock<Ledger>>,
    pub(crate) mempool: Arc<Mutex<Mempool>>,
    pub(crate) finalized: broadcast::Sender<Arc<Finalized>>,
    pub(crate) live: Arc<Live>,
    /// Accepted transactions on their way to the other validators.
    pub(crate) outbox: Arc<Mutex<futures::channel::mpsc::Sender<SignedTx>>>,
}

impl Handle {
    /// Check `tx` against the last finalized state, queue it for inclusion and gossip it to
    /// the other validators. Returns the transaction's hash. Acceptance means "queued", not "applied": follow
    /// [`Handle::subscribe`] or read the state to learn the outcome.
    pub fn submit(&self, tx: SignedTx) -> Result<Hash, SubmitError> {
        let hash = {
            let ledger = crate::lock::read(&self.ledger);
            let mut pool = crate::lock::lock(&self.mempool);
            pool.insert(ledger.state(), tx.clone())?
        };
        // Best effort: if the outbox is full the transaction still reaches a block when this
        // validator leads.
        let _ = crate::lock::lock(&self.outbox).try_send(tx);
        Ok(hash)
    }

    /// The validator's status.
    pub fn status(&self) -> ChainStatus {
        let (height, state_root, last_block_hash, last_block_time_ms) = {
            let ledger = crate::lock::read(&self.ledger);
            let s = ledger.state();
            let g = s.globals();
            (s.height(), s.root(), g.last_block, g.time_ms)
        };
        ChainStatus {
            chain_id: self.chain_id.clone(),
            height,
            state_root,
            last_block_hash,
            last_block_time_ms,
            validators: self.validators as u64,
            peers_connected: self.live.peers_connected.load(Ordering::Relaxed) as u64,
            mempool_len: crate::lock::lock(&self.mempool).len() as u64,
            syncing: self.live.syncing.load(Ordering::Relaxed),
        }
    }

    /// Run `f` on the last finalized state. Keep `f` short: block application waits for it.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        let ledger = crate::lock::read(&self.ledger);
        f(ledger.state())
    }

    /// The finalized block at `height` (`None` above the current height or at 0).
    pub fn block(&self, height: u64) -> Result<Option<Block>, ChainError> {
        let ledger = crate::lock::read(&self.ledger);
        Ok(ledger.block(height)?)
    }

    /// Every block finalized from now on, in order. A receiver that falls more than
    /// the finalized-block channel capacity blocks behind gets `Lagged` and should
    /// re-read the missed heights with [`Handle::block`].
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Finalized>> {
        self.finalized.subscribe()
    }
}
