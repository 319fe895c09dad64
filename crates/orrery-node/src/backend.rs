//! What the node needs from the chain, as a small trait, so the API can be served over the
//! real validator (`orrery_chain::Handle`, see [`crate::chain`]) or over anything else that
//! keeps a finalized ledger (a test harness).
//!
//! Contract for implementors:
//! - [`Backend::read_state`] calls its closure exactly once with the last finalized state;
//! - [`Backend::subscribe`] delivers every finalized block in height order (a receiver that
//!   lags is told so by the channel, and the node then reads the missed blocks through
//!   [`Backend::block`] / [`Backend::outcome`]);
//! - [`Backend::block`] returns every finalized block from height 1 to the status height.

use orrery_client::api::ChainStatus;
use orrery_ledger::State;
use orrery_types::block::Block;
use orrery_types::hash::Hash;
use orrery_types::tx::SignedTx;
use std::sync::Arc;
use tokio::sync::broadcast;

/// A finalized block and what applying it produced (the chain's own type).
pub use orrery_chain::Finalized;

/// Why the chain refused a submitted transaction, sorted into what the API reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectKind {
    /// Cannot be decoded or is structurally invalid.
    Malformed,
    /// Nonce already used.
    StaleNonce,
    /// Already in the mempool or on chain.
    Duplicate,
    /// Signed for another chain.
    WrongChain,
    /// Signature does not verify.
    BadSignature,
    /// Otherwise invalid against the current state.
    Invalid,
    /// Mempool full or the validator is shedding load: retry later.
    Overloaded,
    /// The validator cannot take transactions now (starting, syncing, shutting down).
    Unavailable,
}

/// A refused submission.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SubmitRejection {
    /// Which kind of refusal.
    pub kind: RejectKind,
    /// The chain's explanation.
    pub message: String,
}

/// The chain could not answer a read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("chain storage error: {0}")]
pub struct BackendError(pub String);

/// The chain as the node sees it. Object safe: the node holds it as `Arc<dyn Backend>`.
pub trait Backend: Send + Sync + 'static {
    /// Hand a transaction to the mempool; its hash on acceptance.
    fn submit(&self, tx: SignedTx) -> Result<Hash, SubmitRejection>;
    /// The chain's status now.
    fn status(&self) -> ChainStatus;
    /// Call `f` once with the last finalized state.
    fn read_state(&self, f: &mut dyn FnMut(&State));
    /// A finalized block by height (`None` above the finalized height).
    fn block(&self, height: u64) -> Result<Option<Block>, BackendError>;
    /// A finalized block with its receipts and events, if the backend still has them. The
    /// default says it does not; the node then indexes the block without its outcome.
    fn outcome(&self, height: u64) -> Result<Option<Arc<Finalized>>, BackendError> {
        let _ = height;
        Ok(None)
    }
    /// Every block finalized from now on.
    fn subscribe(&self) -> broadcast::Receiver<Arc<Finalized>>;
}

/// Run `f` over the last finalized state; `None` if the backend broke its contract and never
/// called the closure (reported as 503 by the API, never a panic).
pub fn read<R>(backend: &dyn Backend, f: impl FnOnce(&State) -> R) -> Option<R> {
    let mut f = Some(f);
    let mut out = None;
    backend.read_state(&mut |state| {
        if let Some(f) = f.take() {
            out = Some(f(state));
        }
    });
    out
}
