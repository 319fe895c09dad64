//! The agent's outbox: every transaction it signed, from the moment it is sent until the
//! chain has ruled on it.
//!
//! # Why it exists
//!
//! An agent sends several transactions per block (one per lease and stage), so it numbers
//! them itself instead of waiting for each nonce to be applied. Two things must then never
//! happen, and both did before this module:
//!
//! - **A second transaction for the same step while the first still waits.** Under load a
//!   transaction can take more than a few blocks to be included; signing the step again with
//!   the next nonce made the chain refuse the duplicate once the first applied.
//! - **Silence about what went wrong.** A refusal was never read: the agent learned of it only
//!   when its deadlines had passed.
//!
//! # Rules
//!
//! - A transaction is **pending** from the moment the node accepts it until the account's
//!   nonce on chain passes it. Nothing new is signed for a key `(lease, kind, stage)` that has
//!   a pending transaction, nor within [`RESEND_AFTER_BLOCKS`] of the last send for it.
//! - A pending transaction that is still waiting [`RESEND_AFTER_BLOCKS`] after it was last
//!   submitted is **submitted again, byte for byte** (same nonce, same signature): a node that
//!   still holds it answers "duplicate", one that lost it (a validator restarted and its
//!   mempool with it) takes it back. Re-signing is never needed because every transaction
//!   that reaches a block spends its nonce, applied or refused (see the ledger's `apply`).
//! - Once the chain's nonce passes a pending transaction it is **included**: the agent reads
//!   its receipt and, if the ledger refused it, says so at once with the ledger's reason.
//!   A receipt the node cannot show yet is asked for again for up to [`RECEIPT_WAIT_BLOCKS`].
//! - A pending transaction that stays out of every block for [`STUCK_AFTER_BLOCKS`] is
//!   reported once (it keeps being resubmitted): something between the agent and the
//!   proposers is dropping it, and every transaction behind it waits too.
//!
//! The outbox is plain data — no I/O, no clock; heights come from the chain — so the rules
//! are unit-tested on their own.

use orrery_types::hash::Hash;
use orrery_types::tx::{BatchId, LeaseId, SignedTx};
use std::collections::BTreeMap;

/// Blocks after which a pending transaction is submitted again, and after which a step whose
/// transaction was included (or refused) may be sent anew if the chain still waits for it.
pub const RESEND_AFTER_BLOCKS: u64 = 3;
/// Blocks a pending transaction may stay out of every block before the agent reports it stuck
/// (25 blocks is one dispute round at the devnet's 200 ms blocks: reported well before a
/// deadline that waits on it is missed).
pub const STUCK_AFTER_BLOCKS: u64 = 15;
/// Blocks the agent keeps asking for an included transaction's receipt before it gives up (a
/// node that indexed the block from storage keeps no receipt).
pub const RECEIPT_WAIT_BLOCKS: u64 = 10;
/// Most transactions pending at once: well within a node's per-sender mempool queue (256 by
/// default), and more than an agent with a few dozen leases has in flight; one that wants more
/// is waiting on something else (a node that drops everything), and sending more would not
/// help.
pub const MAX_PENDING: usize = 64;

/// What a transaction is for: its [`Subject`], its kind and a stage (a dispute round, a
/// response's index; 0 elsewhere).
pub type SendKey = (Subject, &'static str, u64);

/// The thing a transaction acts on. Lease duties, account duties and inference duties have
/// their own subjects, so a batch number never collides with a lease number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// Account-level transactions (register, update, bond, model offers).
    Account,
    /// A lease's duties.
    Lease(LeaseId),
    /// An inference settlement, by the content hash of its batch file.
    Settlement(Hash),
    /// A settled inference batch's checks and openings (the stage is the response's index).
    InferenceBatch(BatchId),
    /// The challenge drawn at this height (stage 0 the answer, 1 the opening).
    Challenge(u64),
}

impl Subject {
    /// The lease, for lease duties.
    pub fn lease(self) -> Option<LeaseId> {
        match self {
            Subject::Lease(id) => Some(id),
            _ => None,
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Account => write!(f, "account"),
            Subject::Lease(id) => write!(f, "lease {id}"),
            Subject::Settlement(h) => write!(f, "settlement {}", h.short()),
            Subject::InferenceBatch(b) => write!(f, "inference batch {b}"),
            Subject::Challenge(h) => write!(f, "challenge drawn at {h}"),
        }
    }
}

/// A transaction the node accepted and the chain has not yet included.
#[derive(Clone, Debug)]
pub struct Pending {
    /// What it is for.
    pub key: SendKey,
    /// The signed bytes, submitted again as they are.
    pub tx: SignedTx,
    /// Its hash.
    pub hash: Hash,
    /// Height when it was first sent.
    pub first_sent: u64,
    /// Height when it was last submitted.
    pub last_submitted: u64,
    /// Whether it was already reported stuck.
    pub reported_stuck: bool,
}

/// A transaction the chain included, whose receipt is still to be read.
#[derive(Clone, Debug)]
pub struct Included {
    /// What it is for.
    pub key: SendKey,
    /// Its nonce.
    pub nonce: u64,
    /// Its hash.
    pub hash: Hash,
    /// Height at which the agent saw it included.
    pub seen_at: u64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Outbox {
    /// By nonce.
    pending: BTreeMap<u64, Pending>,
    included: Vec<Included>,
    /// Height of the last send per key.
    last_sent: BTreeMap<SendKey, u64>,
    /// The account's nonce on chain, as last read.
    chain_nonce: u64,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Take in the account's nonce on chain at `height`: pending transactions below it were
    /// included (applied or refused) and move to the receipts to read.
    pub fn observe(&mut self, chain_nonce: u64, height: u64) {
        // Never backwards: a node that is behind (the agent failed over to it) must not make
        // the agent reuse a nonce the chain has spent.
        let chain_nonce = chain_nonce.max(self.chain_nonce);
        self.chain_nonce = chain_nonce;
        let still = self.pending.split_off(&chain_nonce);
        for (nonce, p) in std::mem::replace(&mut self.pending, still) {
            self.included.push(Included {
                key: p.key,
                nonce,
                hash: p.hash,
                seen_at: height,
            });
        }
    }

    /// The nonce for the next new transaction.
    pub fn next_nonce(&self) -> u64 {
        self.pending
            .last_key_value()
            .map_or(self.chain_nonce, |(n, _)| n + 1)
            .max(self.chain_nonce)
    }

    /// Whether a new transaction for `key` may be sent at `height`.
    pub fn may_send(&self, key: SendKey, height: u64) -> bool {
        if self.pending.len() >= MAX_PENDING || self.pending.values().any(|p| p.key == key) {
            return false;
        }
        self.last_sent
            .get(&key)
            .is_none_or(|&h| height >= h + RESEND_AFTER_BLOCKS)
    }

    /// Whether a transaction for `key` is pending.
    pub fn is_pending(&self, key: SendKey) -> bool {
        self.pending.values().any(|p| p.key == key)
    }

    /// Record a transaction the node accepted at `height`.
    pub fn sent(&mut self, key: SendKey, tx: SignedTx, height: u64) {
        debug_assert!(
            tx.tx.nonce >= self.chain_nonce,
            "sent below the chain's nonce"
        );
        self.last_sent.insert(key, height);
        let hash = tx.hash();
        self.pending.insert(
            tx.tx.nonce,
            Pending {
                key,
                tx,
                hash,
                first_sent: height,
                last_submitted: height,
                reported_stuck: false,
            },
        );
    }

    /// Pending transactions due to be submitted again at `height`, marked as submitted now.
    pub fn due_for_resubmission(&mut self, height: u64) -> Vec<SignedTx> {
        let mut due = Vec::new();
        for p in self.pending.values_mut() {
            if height >= p.last_submitted + RESEND_AFTER_BLOCKS {
                p.last_submitted = height;
                due.push(p.tx.clone());
            }
        }
        due
    }

    /// Pending transactions out of every block for [`STUCK_AFTER_BLOCKS`] and not reported
    /// yet, marked as reported.
    pub fn newly_stuck(&mut self, height: u64) -> Vec<Pending> {
        let mut out = Vec::new();
        for p in self.pending.values_mut() {
            if !p.reported_stuck && height >= p.first_sent + STUCK_AFTER_BLOCKS {
                p.reported_stuck = true;
                out.push(p.clone());
            }
        }
        out
    }

    /// Included transactions whose receipt is still to be read.
    pub fn awaiting_receipts(&self) -> &[Included] {
        &self.included
    }

    /// The receipt of `hash` was read (or given up on): forget it.
    pub fn receipt_read(&mut self, hash: &Hash) {
        self.included.retain(|i| i.hash != *hash);
    }

    /// Give up on receipts that did not show up within [`RECEIPT_WAIT_BLOCKS`]; returns them.
    pub fn expire_receipts(&mut self, height: u64) -> Vec<Included> {
        let (old, keep) = std::mem::take(&mut self.included)
            .into_iter()
            .partition(|i| height >= i.seen_at + RECEIPT_WAIT_BLOCKS);
        self.included = keep;
        old
    }

    /// Forget every key of `lease` (it is final). Pending transactions stay: their nonces
    /// must still be spent.
    pub fn forget_lease(&mut self, lease: LeaseId) {
        self.forget(Subject::Lease(lease));
    }

    /// Forget every key of `subject` (it is final). Pending transactions stay.
    pub fn forget(&mut self, subject: Subject) {
        self.last_sent.retain(|(s, _, _), _| *s != subject);
    }

    /// Transactions pending.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests;
