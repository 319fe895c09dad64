//! What applying a block reports: per-transaction receipts, block-level events, and errors.

use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::tx::LeaseId;
use serde::Serialize;

/// Something that happened, for receipts, the event stream and the explorer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Tokens moved between accounts.
    Transferred {
        /// Sender.
        from: AccountId,
        /// Recipient.
        to: AccountId,
        /// How much.
        amount: Amount,
    },
    /// A provider registered.
    ProviderRegistered {
        /// The provider.
        provider: AccountId,
    },
    /// A provider changed its offer.
    ProviderUpdated {
        /// The provider.
        provider: AccountId,
    },
    /// Stake locked.
    Bonded {
        /// The provider.
        provider: AccountId,
        /// How much.
        amount: Amount,
    },
    /// Stake started unbonding.
    UnbondStarted {
        /// The provider.
        provider: AccountId,
        /// How much.
        amount: Amount,
        /// Height at which it returns to the balance.
        release_at: u64,
    },
    /// Unbonded stake returned to the balance.
    UnbondReleased {
        /// The provider.
        provider: AccountId,
        /// How much.
        amount: Amount,
    },
    /// A lease opened and its escrow locked.
    LeaseOpened {
        /// The lease.
        lease: LeaseId,
        /// Who pays.
        requester: AccountId,
        /// Who works.
        provider: AccountId,
        /// Locked.
        escrow: Amount,
    },
    /// The provider started the lease.
    LeaseStarted {
        /// The lease.
        lease: LeaseId,
    },
    /// The provider committed a result.
    ResultCommitted {
        /// The lease.
        lease: LeaseId,
        /// Output hash.
        output: Hash,
        /// Checkpoint root.
        checkpoint_root: Hash,
    },
    /// The lease was paid out.
    LeaseSettled {
        /// The lease.
        lease: LeaseId,
        /// Paid to the provider.
        provider_paid: Amount,
        /// Protocol fee.
        fee: Amount,
        /// Part of the fee burned (the rest went to validators).
        burned: Amount,
        /// Returned to the requester.
        refunded: Amount,
    },
    /// The lease timed out: requester refunded, provider docked.
    LeaseTimedOut {
        /// The lease.
        lease: LeaseId,
        /// Returned to the requester.
        refunded: Amount,
        /// Burned from the provider's stake.
        docked: Amount,
    },
    /// Epoch emission minted to a provider.
    Minted {
        /// The provider.
        provider: AccountId,
        /// How much.
        amount: Amount,
        /// Which epoch.
        epoch: u64,
    },
}

/// Why a transaction was refused. A refused transaction changes nothing, not even the nonce.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum TxError {
    /// The signature does not match the transaction and signer.
    #[error("bad signature: the transaction was not signed by the key it names")]
    BadSignature,
    /// Signed for another chain.
    #[error("transaction is for chain {got:?}, this chain is {expected:?}")]
    WrongChain {
        /// This chain.
        expected: String,
        /// The transaction's.
        got: String,
    },
    /// Nonce is not the account's next.
    #[error("wrong nonce: expected {expected}, got {got} (resubmit with nonce {expected})")]
    WrongNonce {
        /// The account's nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// Not enough balance.
    #[error("insufficient funds: need {need}, have {have}")]
    InsufficientFunds {
        /// Required.
        need: Amount,
        /// Available.
        have: Amount,
    },
    /// Not enough stake.
    #[error("insufficient stake: need {need}, have {have}")]
    InsufficientStake {
        /// Required.
        need: Amount,
        /// Available.
        have: Amount,
    },
    /// An amount computation overflowed.
    #[error("amount overflow")]
    Overflow,
    /// Zero amounts do nothing and are refused.
    #[error("amount must be greater than zero")]
    ZeroAmount,
    /// The named provider is not registered.
    #[error("unknown provider {0}")]
    UnknownProvider(AccountId),
    /// The signer is already a provider.
    #[error("{0} is already registered as a provider (use UpdateProvider)")]
    AlreadyRegistered(AccountId),
    /// The signer must be a registered provider.
    #[error("{0} is not a registered provider (send RegisterProvider first)")]
    NotAProvider(AccountId),
    /// A provider cannot lease itself.
    #[error("a provider cannot lease its own machine")]
    SelfLease,
    /// Agreed prices above the listing.
    #[error("agreed price is above the provider's listed price")]
    PriceAboveOffer,
    /// Request does not fit the provider's hardware.
    #[error("requested resources do not fit the provider's hardware")]
    ResourcesUnavailable,
    /// A provider offer that makes no sense.
    #[error("invalid provider offer: {0}")]
    InvalidOffer(&'static str),
    /// A lease that costs nothing.
    #[error("a lease must have a positive maximum cost (set prices and limits)")]
    ZeroCostLease,
    /// Deadline in the past or too far.
    #[error("deadline {deadline} must be after height {height} and at most {max} blocks ahead")]
    BadDeadline {
        /// Requested.
        deadline: u64,
        /// Current height.
        height: u64,
        /// Max blocks ahead.
        max: u64,
    },
    /// Verification level not enabled.
    #[error("verification level {0} is not enabled on this chain yet")]
    VerificationUnavailable(&'static str),
    /// No such lease.
    #[error("unknown lease {0}")]
    UnknownLease(LeaseId),
    /// Signer has no role in this lease action.
    #[error("only the lease's {role} may do this")]
    NotAuthorized {
        /// Who may.
        role: &'static str,
    },
    /// Action not allowed in the lease's state.
    #[error("lease {lease} is {state}; this action needs it {needed}")]
    WrongLeaseState {
        /// The lease.
        lease: LeaseId,
        /// Its state.
        state: &'static str,
        /// What the action needs.
        needed: &'static str,
    },
    /// Too late.
    #[error("too late: the lease's limit was height {limit}")]
    PastDeadline {
        /// The limit.
        limit: u64,
    },
    /// Usage above what the lease allows.
    #[error("claimed usage exceeds the lease's limits or the time elapsed since start")]
    UsageAboveLimit,
    /// Unbonding would leave active leases under-collateralized.
    #[error(
        "unbonding would leave {remaining} staked, below the {need} required while leases are active"
    )]
    StakeLocked {
        /// What would remain.
        remaining: Amount,
        /// Minimum.
        need: Amount,
    },
}

/// Why a whole block was refused. A refused block changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Height is not the next.
    #[error("block height {got} does not follow {current}")]
    WrongHeight {
        /// Current height.
        current: u64,
        /// The block's.
        got: u64,
    },
    /// Time went backwards.
    #[error("block time {got} ms is before the previous block's {previous} ms")]
    TimeWentBackwards {
        /// Previous time.
        previous: u64,
        /// The block's.
        got: u64,
    },
    /// Parent hash mismatch.
    #[error("block's parent {got} is not the last applied block {expected}")]
    WrongParent {
        /// Last applied block.
        expected: Hash,
        /// The block's parent.
        got: Hash,
    },
    /// Applying the block would break an invariant: a ledger bug, reported loudly.
    #[error("ledger invariant violated: {0}")]
    Invariant(#[from] crate::state::InvariantError),
}

/// The result of one transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// The transaction's hash.
    pub tx: Hash,
    /// The sender.
    pub sender: AccountId,
    /// Kind of transaction.
    pub kind: &'static str,
    /// Events on success, or why it was refused.
    pub outcome: Result<Vec<Event>, TxError>,
}

impl Receipt {
    /// Whether the transaction applied.
    pub fn is_ok(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// Everything applying a block produced.
#[derive(Clone, Debug)]
pub struct BlockOutcome {
    /// One receipt per transaction, in order.
    pub receipts: Vec<Receipt>,
    /// Events from end-of-block processing (timeouts, settlements, releases, emissions).
    pub events: Vec<Event>,
    /// The state root after the block.
    pub state_root: Hash,
    /// The state entries the block wrote, for the store.
    pub changes: Vec<crate::state::StateChange>,
}
