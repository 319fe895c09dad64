//! The finalizer's run loop. See the module docs.

use crate::api::{Finalized, Live};
use crate::block::{BlockDigest, ChainBlock};
use crate::mempool::Mempool;
use commonware_consensus::marshal::Update;
use commonware_cryptography::Digestible as _;
use commonware_runtime::Spawner;
use commonware_utils::Acknowledgement as _;
use futures::StreamExt as _;
use futures::channel::mpsc;
use orrery_ledger::Signatures;
use orrery_store::Ledger;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::broadcast;

/// The finalizer actor.
pub(crate) struct Actor<E> {
    /// Spawns each block's apply-and-persist as a blocking task, off the async executor.
    pub(crate) context: E,
    pub(crate) ledger: Arc<RwLock<Ledger>>,
    pub(crate) mempool: Arc<Mutex<Mempool>>,
    pub(crate) verified: Arc<Mutex<HashMap<BlockDigest, u64>>>,
    pub(crate) finalized: broadcast::Sender<Arc<Finalized>>,
    pub(crate) live: Arc<Live>,
    pub(crate) receiver: mpsc::UnboundedReceiver<Update<ChainBlock>>,
    /// Highest finalized height marshal has reported (it may not be applied yet).
    pub(crate) tip: u64,
}

impl<E: Spawner + Send + 'static> Actor<E> {
    /// Run until marshal goes away or a finalized block cannot be applied.
    pub(crate) async fn run(mut self) {
        while let Some(update) = self.receiver.next().await {
            match update {
                Update::Tip(_, height, _) => {
                    self.tip = self.tip.max(height.get());
                    let applied = crate::lock::read(&self.ledger).state().height();
                    self.mark_syncing(applied);
                }
                Update::Block(block, ack) => {
                    let height = block.inner().block.height;
                    let digest = block.digest();
                    // Applying runs the ledger and waits for an fsync: a blocking task, so the
                    // consensus tasks sharing this executor keep running meanwhile.
                    let context = self.context.child("apply").shared(true);
                    let applied = context
                        .spawn(move |_| async move {
                            let result = self.apply(block.inner());
                            (self, result)
                        })
                        .await;
                    let Ok((actor, result)) = applied else {
                        // The apply task was aborted: this validator is shutting down.
                        return;
                    };
                    self = actor;
                    if let Err(e) = result {
                        tracing::error!(
                            error = %e,
                            height,
                            digest = %digest,
                            "a finalized block does not apply to the ledger; halting this node's chain (restore the database or resync)"
                        );
                        // Holding the acknowledgement stalls marshal: this node stops rather
                        // than diverging from the committee.
                        std::future::pending::<()>().await;
                    }
                    ack.acknowledge();
                }
            }
        }
    }

    fn apply(&mut self, chain_block: &ChainBlock) -> Result<(), orrery_store::StoreError> {
        let block = &chain_block.block;
        let digest = chain_block.digest();
        let checked = crate::lock::lock(&self.verified).remove(&digest).is_some();
        let ledger = crate::lock::write(&self.ledger);
        let height = ledger.state().height();
        if block.height <= height {
            tracing::debug!(height = block.height, "already applied");
            return Ok(());
        }
        // Signatures are checked here (batch) unless this node verified the block before
        // voting; `apply` then skips them.
        if !checked && let Err(index) = orrery_ledger::verify_block_signatures(block) {
            // A finalized block with a forged transaction: apply it with per-transaction
            // verification, so the forged transaction is refused by the ledger like any other.
            tracing::warn!(
                height = block.height,
                index,
                "finalized block carries a bad signature"
            );
            return self.finish(ledger, chain_block, Signatures::Verify);
        }
        self.finish(ledger, chain_block, Signatures::PreVerified)
    }

    /// Syncing while more than one finalized block is known but not yet applied (one is the
    /// normal in-flight block).
    fn mark_syncing(&self, applied: u64) {
        self.live
            .syncing
            .store(self.tip > applied + 1, Ordering::Relaxed);
    }

    fn finish(
        &self,
        mut ledger: std::sync::RwLockWriteGuard<'_, Ledger>,
        chain_block: &ChainBlock,
        signatures: Signatures,
    ) -> Result<(), orrery_store::StoreError> {
        let block = &chain_block.block;
        let outcome = ledger.apply(block, signatures)?;
        // The ledger checked the supply invariant before accepting the block; check it again on
        // what was persisted so a ledger bug is loud here too.
        if let Err(e) = ledger.state().check_supply() {
            tracing::error!(error = %e, height = block.height, "supply invariant broken after apply");
        }
        crate::lock::lock(&self.mempool).finalized(ledger.state(), block.txs.as_slice());
        drop(ledger);
        {
            // Forget verification marks for blocks that can no longer finalize.
            let mut verified = crate::lock::lock(&self.verified);
            verified.retain(|_, h| *h > block.height);
        }
        self.mark_syncing(block.height);
        tracing::info!(
            height = block.height,
            txs = block.txs.len(),
            root = %outcome.state_root,
            "finalized"
        );
        // No subscribers is fine.
        let _ = self.finalized.send(Arc::new(Finalized {
            block: block.clone(),
            block_hash: chain_block.hash(),
            receipts: outcome.receipts,
            events: outcome.events,
            state_root: outcome.state_root,
        }));
        Ok(())
    }
}
