//! The mempool: transactions waiting for a block.
//!
//! # Rules
//! - **Admission** ([`Mempool::insert`]) checks a transaction against the last finalized state
//!   before it takes any memory: size, chain id, signature, nonce window, duplicates, then the
//!   limits. A refused transaction is never stored and the caller learns why
//!   ([`SubmitError`]).
//! - **Limits.** At most [`MempoolLimits::max_txs`] transactions and
//!   [`MempoolLimits::max_bytes`] encoded bytes in all, and at most
//!   [`MempoolLimits::max_per_sender`] per sender, so one busy or hostile sender cannot fill the
//!   pool for everyone. A nonce more than `max_per_sender` ahead of the account's is refused
//!   (it could not be included before the queue in front of it drains anyway).
//! - **Fair ordering.** Each sender has a queue ordered by nonce. A block takes one transaction
//!   from each sender in turn (round robin), starting after the sender that went first last
//!   time, so a sender with many queued transactions cannot starve the others. Within a sender
//!   only a gap-free run of nonces starting at the sender's next expected nonce is taken: a
//!   transaction whose predecessor is missing would only be refused by the ledger.
//! - **Removal.** When a block is finalized, its transactions leave the pool (whatever their
//!   outcome, so a transaction the ledger refused is not proposed forever), as does every
//!   transaction whose nonce the finalized state has passed.

use orrery_ledger::State;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::tx::{MAX_ADJUDICATE_TX_BYTES, SignedTx};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// Why a transaction was not accepted into the mempool.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The bytes are not a transaction.
    #[error("transaction does not decode: {0}; encode it with orrery-types' canonical encoding")]
    Malformed(String),
    /// Larger than any transaction may be.
    #[error("transaction is {size} bytes; the limit is {max} bytes")]
    TooLarge {
        /// Its encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Signed for another chain.
    #[error(
        "transaction is for chain {got:?} but this is chain {expected:?}; sign it again with the right chain id"
    )]
    WrongChain {
        /// This chain's id.
        expected: String,
        /// The transaction's.
        got: String,
    },
    /// The signature does not match the transaction and signer.
    #[error("bad signature: the transaction was altered after signing or signed with another key")]
    BadSignature,
    /// The account has already used this nonce.
    #[error("nonce {got} was already used; the account's next nonce is {expected}")]
    StaleNonce {
        /// The account's next nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// The nonce is too far ahead of the account's.
    #[error(
        "nonce {got} is too far ahead: the account's next nonce is {expected} and at most {window} may wait; submit the missing nonces first"
    )]
    FutureNonce {
        /// The account's next nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
        /// How many nonces ahead may wait.
        window: u64,
    },
    /// Already in the mempool (the same transaction, or another one with the same sender and
    /// nonce).
    #[error("a transaction from this sender with nonce {nonce} is already waiting ({existing})")]
    Duplicate {
        /// The nonce.
        nonce: u64,
        /// The waiting transaction's hash.
        existing: Hash,
    },
    /// The mempool is full.
    #[error("the mempool is full ({limit} transactions or bytes); retry after the next blocks")]
    MempoolFull {
        /// The limit that was hit.
        limit: usize,
    },
    /// This sender already has as many transactions waiting as allowed.
    #[error("this sender already has {limit} transactions waiting; wait for some to be finalized")]
    SenderQueueFull {
        /// Per-sender limit.
        limit: usize,
    },
}

impl SubmitError {
    /// Whether the refusal is because of load (a full queue) rather than the transaction
    /// itself: the same transaction may succeed later (HTTP 503/429 rather than 400).
    pub fn is_overload(&self) -> bool {
        matches!(
            self,
            SubmitError::MempoolFull { .. } | SubmitError::SenderQueueFull { .. }
        )
    }
}

/// Mempool limits. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolLimits {
    /// Most transactions waiting in all.
    pub max_txs: usize,
    /// Most encoded bytes waiting in all.
    pub max_bytes: usize,
    /// Most transactions waiting per sender (also the nonce window).
    pub max_per_sender: usize,
}

/// Default [`MempoolLimits::max_txs`]: about 20 full blocks at the default block size, enough
/// to ride out a burst for several seconds at the target rate of 5,000 transfers per second.
pub const DEFAULT_MAX_MEMPOOL_TXS: usize = 100_000;
/// Default [`MempoolLimits::max_bytes`]: 64 MiB caps memory even if every waiting transaction
/// is as large as [`MAX_TX_BYTES`] allows (100,000 × 4 KiB would be 400 MiB).
pub const DEFAULT_MAX_MEMPOOL_BYTES: usize = 64 * 1024 * 1024;
/// Default [`MempoolLimits::max_per_sender`]: a client pipelining transactions rarely needs more
/// than a few blocks' worth in flight; 256 lets a batch submitter keep blocks full without one
/// sender holding more than a fraction of the pool.
pub const DEFAULT_MAX_PER_SENDER: usize = 256;

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits {
            max_txs: DEFAULT_MAX_MEMPOOL_TXS,
            max_bytes: DEFAULT_MAX_MEMPOOL_BYTES,
            max_per_sender: DEFAULT_MAX_PER_SENDER,
        }
    }
}

/// One waiting transaction.
#[derive(Clone, Debug)]
struct Entry {
    hash: Hash,
    size: usize,
    tx: SignedTx,
}

/// Transactions waiting for a block. Not thread-safe by itself; the validator wraps it in a
/// mutex shared by the API and the block builder.
#[derive(Debug)]
pub struct Mempool {
    chain_id: String,
    limits: MempoolLimits,
    queues: HashMap<AccountId, BTreeMap<u64, Entry>>,
    /// Senders with waiting transactions, in round-robin order.
    order: VecDeque<AccountId>,
    hashes: HashSet<Hash>,
    bytes: usize,
    len: usize,
}

impl Mempool {
    /// An empty mempool for `chain_id`.
    pub fn new(chain_id: impl Into<String>, limits: MempoolLimits) -> Mempool {
        Mempool {
            chain_id: chain_id.into(),
            limits,
            queues: HashMap::new(),
            order: VecDeque::new(),
            hashes: HashSet::new(),
            bytes: 0,
            len: 0,
        }
    }

    /// Number of waiting transactions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Encoded bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether `hash` is waiting.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.hashes.contains(hash)
    }

    /// Decode `bytes` and [`Mempool::insert`] the transaction.
    pub fn insert_bytes(&mut self, state: &State, bytes: &[u8]) -> Result<Hash, SubmitError> {
        // The largest kind first; `SignedTx::decode` then holds each kind to its own limit.
        if bytes.len() > MAX_ADJUDICATE_TX_BYTES {
            return Err(SubmitError::TooLarge {
                size: bytes.len(),
                max: MAX_ADJUDICATE_TX_BYTES,
            });
        }
        let tx = SignedTx::decode(bytes).map_err(|e| SubmitError::Malformed(e.to_string()))?;
        self.insert(state, tx)
    }

    /// Check `tx` against `state` (the last finalized state) and queue it. See the module docs.
    pub fn insert(&mut self, state: &State, tx: SignedTx) -> Result<Hash, SubmitError> {
        self.insert_checked(state, tx, false)
    }

    /// [`Mempool::insert`] for a transaction whose signature the caller has already verified
    /// (`signature_verified`), for example as part of a batch verification of a gossiped batch.
    /// Never pass `true` for a signature that was not checked: the leader would propose a block
    /// every honest validator refuses.
    pub fn insert_checked(
        &mut self,
        state: &State,
        tx: SignedTx,
        signature_verified: bool,
    ) -> Result<Hash, SubmitError> {
        let size = orrery_types::codec::encode(&tx).len();
        if size > tx.max_bytes() {
            return Err(SubmitError::TooLarge {
                size,
                max: tx.max_bytes(),
            });
        }
        if tx.tx.chain_id.as_str() != self.chain_id {
            return Err(SubmitError::WrongChain {
                expected: self.chain_id.clone(),
                got: tx.tx.chain_id.as_str().to_string(),
            });
        }
        let sender = tx.sender();
        let nonce = tx.tx.nonce;
        let expected = state.account(&sender).nonce;
        if nonce < expected {
            return Err(SubmitError::StaleNonce {
                expected,
                got: nonce,
            });
        }
        let window = self.limits.max_per_sender as u64;
        if nonce - expected >= window {
            return Err(SubmitError::FutureNonce {
                expected,
                got: nonce,
                window,
            });
        }
        if let Some(existing) = self.queues.get(&sender).and_then(|q| q.get(&nonce)) {
            return Err(SubmitError::Duplicate {
                nonce,
                existing: existing.hash,
            });
        }
        // The signature is the expensive check: do it only for a transaction that would
        // otherwise be accepted, and before it takes any room.
        if !signature_verified && !tx.verify_signature() {
            return Err(SubmitError::BadSignature);
        }
        let queued = self.queues.get(&sender).map_or(0, BTreeMap::len);
        if queued >= self.limits.max_per_sender {
            return Err(SubmitError::SenderQueueFull {
                limit: self.limits.max_per_sender,
            });
        }
        if self.len >= self.limits.max_txs {
            return Err(SubmitError::MempoolFull {
                limit: self.limits.max_txs,
            });
        }
        if self.bytes + size > self.limits.max_bytes {
            return Err(SubmitError::MempoolFull {
                limit: self.limits.max_bytes,
            });
        }
        let hash = tx.hash();
        let queue = self.queues.entry(sender).or_default();
        if queue.is_empty() {
            self.order.push_back(sender);
        }
        queue.insert(nonce, Entry { hash, size, tx });
        self.hashes.insert(hash);
        self.bytes += size;
        self.len += 1;
        Ok(hash)
    }

    /// Choose transactions for a block, round robin across senders (see the module docs).
    ///
    /// `next_nonce(sender)` is the nonce the block's parent state expects from `sender`
    /// (the finalized state's nonce, advanced past transactions in not-yet-finalized ancestors);
    /// `skip` holds hashes already included in those ancestors. The result holds at most
    /// `max_txs` transactions of at most `max_bytes` encoded bytes in all.
    pub fn select(
        &mut self,
        mut next_nonce: impl FnMut(&AccountId) -> u64,
        skip: &HashSet<Hash>,
        max_txs: usize,
        max_bytes: usize,
    ) -> Vec<SignedTx> {
        let queues = &self.queues;
        let mut seen = HashSet::new();
        self.order
            .retain(|s| queues.contains_key(s) && seen.insert(*s));
        // Per sender: the next nonce to take.
        let mut cursors: Vec<(AccountId, u64)> =
            self.order.iter().map(|s| (*s, next_nonce(s))).collect();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut active = cursors.len();
        while active > 0 && out.len() < max_txs {
            active = 0;
            for (sender, nonce) in cursors.iter_mut() {
                if out.len() >= max_txs {
                    break;
                }
                let Some(queue) = self.queues.get(sender) else {
                    continue;
                };
                // Skip what an ancestor already carries.
                let mut entry = queue.get(nonce);
                while let Some(e) = entry {
                    if !skip.contains(&e.hash) {
                        break;
                    }
                    *nonce += 1;
                    entry = queue.get(nonce);
                }
                let Some(e) = entry else {
                    continue;
                };
                if bytes + e.size > max_bytes {
                    continue;
                }
                bytes += e.size;
                out.push(e.tx.clone());
                *nonce += 1;
                active += 1;
            }
        }
        // The sender that went first goes last next time.
        if let Some(first) = self.order.pop_front() {
            self.order.push_back(first);
        }
        out
    }

    /// Forget transactions a finalized block carried and those whose nonce `state` (the state
    /// after that block) has passed, for the senders in `included`.
    pub fn finalized(&mut self, state: &State, included: &[SignedTx]) {
        let mut senders = HashSet::new();
        for tx in included {
            let sender = tx.sender();
            if let Some(queue) = self.queues.get_mut(&sender)
                && queue.get(&tx.tx.nonce).is_some_and(|e| e.tx == *tx)
                && let Some(e) = queue.remove(&tx.tx.nonce)
            {
                self.hashes.remove(&e.hash);
                self.bytes -= e.size;
                self.len -= 1;
            }
            senders.insert(sender);
        }
        for sender in senders {
            let next = state.account(&sender).nonce;
            let Some(queue) = self.queues.get_mut(&sender) else {
                continue;
            };
            let keep = queue.split_off(&next);
            for e in std::mem::replace(queue, keep).into_values() {
                self.hashes.remove(&e.hash);
                self.bytes -= e.size;
                self.len -= 1;
            }
            if queue.is_empty() {
                // `order` is cleaned lazily in `select` (one pass per block, not one per sender).
                self.queues.remove(&sender);
            }
        }
    }
}

#[cfg(test)]
mod tests;
