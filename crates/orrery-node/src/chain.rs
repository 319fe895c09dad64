//! [`Backend`] over the real validator: a thin forwarding layer onto `orrery_chain::Handle`,
//! and [`run_node`] / [`start_node`], which start a validator and serve the API over it.
//!
//! The only work done here is translation: the chain's `SubmitError` into a [`RejectKind`]
//! (so the API picks the status code), and its stream of [`Finalized`] blocks onto the node's
//! channel (a forwarding task per subscriber, started on the current tokio runtime; it ends
//! when either side closes). Status and finalized blocks are the chain's own types.

use crate::backend::{Backend, BackendError, Finalized, RejectKind, SubmitRejection};
use crate::config::NodeConfig;
use crate::server::{NodeError, RunningNode, serve};
use commonware_runtime::{Clock, Metrics, Network, Resolver, Runner as _, Spawner, Storage};
use orrery_chain::{Handle, SubmitError, ValidatorConfig};
use orrery_client::api::ChainStatus;
use orrery_ledger::State;
use orrery_types::block::Block;
use orrery_types::hash::Hash;
use orrery_types::tx::SignedTx;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Blocks buffered between the chain's stream and the node's indexer. The indexer re-reads
/// anything it misses from storage, so this only smooths bursts.
const FORWARD_BUFFER: usize = 1024;

fn reject_kind(e: &SubmitError) -> RejectKind {
    if e.is_overload() {
        return RejectKind::Overloaded;
    }
    match e {
        SubmitError::Malformed(_) | SubmitError::TooLarge { .. } => RejectKind::Malformed,
        SubmitError::WrongChain { .. } => RejectKind::WrongChain,
        SubmitError::BadSignature => RejectKind::BadSignature,
        SubmitError::StaleNonce { .. } => RejectKind::StaleNonce,
        SubmitError::Duplicate { .. } => RejectKind::Duplicate,
        _ => RejectKind::Invalid,
    }
}

impl Backend for Handle {
    fn submit(&self, tx: SignedTx) -> Result<Hash, SubmitRejection> {
        Handle::submit(self, tx).map_err(|e| SubmitRejection {
            kind: reject_kind(&e),
            message: e.to_string(),
        })
    }

    fn status(&self) -> ChainStatus {
        Handle::status(self)
    }

    fn read_state(&self, f: &mut dyn FnMut(&State)) {
        Handle::read(self, |s| f(s))
    }

    fn block(&self, height: u64) -> Result<Option<Block>, BackendError> {
        Handle::block(self, height).map_err(|e| BackendError(e.to_string()))
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Finalized>> {
        let mut from_chain = Handle::subscribe(self);
        let (tx, rx) = broadcast::channel(FORWARD_BUFFER);
        tokio::spawn(async move {
            loop {
                match from_chain.recv().await {
                    Ok(f) => {
                        if tx.send(f).is_err() {
                            return;
                        }
                    }
                    // The indexer notices the gap at the next block and reads storage.
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "node fell behind the chain's block stream");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        rx
    }
}

/// Start a validator from `validator` on the commonware runtime `context` (real sockets), then
/// serve the node API over it. Keep the calling task alive while both should run.
pub async fn start_node<E>(
    context: E,
    node: NodeConfig,
    validator: ValidatorConfig,
) -> Result<(Handle, RunningNode), NodeError>
where
    E: Spawner + Metrics + Clock + Storage + Network + Resolver + rand_core::CryptoRng,
{
    node.validate()?;
    let handle = orrery_chain::start(context, validator)
        .await
        .map_err(|e| NodeError::Chain(e.to_string()))?;
    let running = serve(node, handle.clone()).await?;
    Ok((handle, running))
}

/// Run a validator and its API until Ctrl-C (what `orrery node run` calls). Consensus journals
/// go to `<validator data_dir>/journals`, the ledger to `<validator data_dir>/ledger.redb`, the
/// node's index and blobs to `node.data_dir`.
pub fn run_node(node: NodeConfig, validator: ValidatorConfig) -> Result<(), NodeError> {
    let journals = validator.data_dir.join("journals");
    let runner = commonware_runtime::tokio::Runner::new(
        commonware_runtime::tokio::Config::new().with_storage_directory(journals),
    );
    runner.start(|context| async move {
        let (_handle, running) = start_node(context, node, validator).await?;
        running
            .run_until(async {
                if let Err(e) = tokio::signal::ctrl_c().await {
                    tracing::error!(error = %e, "cannot listen for Ctrl-C; stopping");
                }
                tracing::info!("stopping on Ctrl-C");
            })
            .await
    })
}
