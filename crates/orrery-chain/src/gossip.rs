//! Transaction gossip between validators.
//!
//! A transaction accepted by one validator's mempool is sent, in batches, to every other
//! committee member, which admits it to its own mempool with the same checks (a refusal there
//! is dropped silently: usually a duplicate or a nonce that has since been used). So whichever
//! validator leads next can include it, rather than only the one it was submitted to.
//! Transactions received by gossip are not forwarded again: the committee is fully connected.
//!
//! # Encoding of a batch
//! `u16 count || count × (u32 length || signed transaction bytes)`, at most
//! [`MAX_BATCH_TXS`] transactions of at most `MAX_TX_BYTES` each; anything else is dropped
//! before allocation.

use crate::mempool::Mempool;
use commonware_p2p::{Receiver, Recipients, Sender};
use futures::StreamExt as _;
use futures::channel::mpsc;
use orrery_store::Ledger;
use orrery_types::tx::{MAX_ADJUDICATE_TX_BYTES, SignedTx};
use std::sync::{Arc, Mutex, RwLock};

/// Most transactions per gossip message: 512 transfers are ~80 KiB, well under a p2p message,
/// and batching amortizes per-message cost at thousands of transactions per second.
pub const MAX_BATCH_TXS: usize = 512;
/// Transactions waiting to be gossiped; beyond this new ones are not gossiped (they still
/// reach a block when this validator leads). Four batches' worth.
pub const OUTBOX_CAPACITY: usize = 4 * MAX_BATCH_TXS;

/// Encode a batch.
pub fn encode_batch(txs: &[SignedTx]) -> Vec<u8> {
    let mut out = Vec::with_capacity(txs.len() * 200 + 2);
    out.extend_from_slice(&(txs.len() as u16).to_be_bytes());
    for tx in txs {
        let bytes = orrery_types::codec::encode(tx);
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// Split a batch into transaction encodings, refusing anything over the limits.
pub fn decode_batch(bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let (count, mut rest) = bytes.split_first_chunk::<2>()?;
    let count = u16::from_be_bytes(*count) as usize;
    if count > MAX_BATCH_TXS {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if len > MAX_ADJUDICATE_TX_BYTES || tail.len() < len {
            return None;
        }
        let (tx, tail) = tail.split_at(len);
        out.push(tx);
        rest = tail;
    }
    rest.is_empty().then_some(out)
}

/// Send what the local mempool accepted to every peer, in batches.
pub(crate) async fn outbound<S: Sender>(mut sender: S, mut outbox: mpsc::Receiver<SignedTx>) {
    while let Some(first) = outbox.next().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_TXS {
            match outbox.try_recv() {
                Ok(tx) => batch.push(tx),
                Err(_) => break,
            }
        }
        sender.send(Recipients::All, encode_batch(&batch), false);
    }
}

/// Admit what peers gossip.
pub(crate) async fn inbound<R: Receiver>(
    mut receiver: R,
    ledger: Arc<RwLock<Ledger>>,
    mempool: Arc<Mutex<Mempool>>,
) {
    while let Ok((peer, message)) = receiver.recv().await {
        let Some(txs) = decode_batch(message.as_ref()) else {
            tracing::debug!(%peer, "dropping a malformed transaction batch");
            continue;
        };
        let mut decoded = Vec::with_capacity(txs.len());
        for bytes in txs {
            match SignedTx::decode(bytes) {
                Ok(tx) => decoded.push(tx),
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "dropping an undecodable gossiped transaction")
                }
            }
        }
        // One ed25519 batch verification for the whole batch (several times cheaper than one
        // by one); if it fails, each transaction is checked on its own at admission.
        let batch = orrery_types::block::Block {
            height: 0,
            time_ms: 0,
            seed: orrery_types::hash::Hash::ZERO,
            parent: orrery_types::hash::Hash::ZERO,
            txs: orrery_types::block::BlockTxs::new(decoded).unwrap_or_default(),
        };
        let verified = orrery_ledger::verify_block_signatures(&batch).is_ok();
        let ledger = crate::lock::read(&ledger);
        let mut pool = crate::lock::lock(&mempool);
        for tx in batch.txs.as_slice() {
            if let Err(e) = pool.insert_checked(ledger.state(), tx.clone(), verified) {
                tracing::trace!(%peer, error = %e, "gossiped transaction not admitted");
            }
        }
    }
}

#[cfg(test)]
mod tests;
