//! What applying a block reports: per-transaction receipts, block-level events, and errors.

use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::tx::{BatchId, LeaseId};
use orrery_types::workload::JobFailure;
use serde::Serialize;

/// Something that happened, for receipts, the event stream and the explorer. Deserializable
/// so that clients read events from the node's JSON as this type, not by string keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
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
    /// The provider sealed its result.
    ResultCommitted {
        /// The lease.
        lease: LeaseId,
        /// The provider's seal.
        seal: Hash,
    },
    /// The draw decided how a result is checked (no verifiers: not checked).
    CheckDrawn {
        /// The lease.
        lease: LeaseId,
        /// Probability used, in basis points.
        p_bps: u16,
        /// The verifiers drawn, in order.
        verifiers: Vec<AccountId>,
        /// Verifiers the lease asked for but no eligible provider could fill.
        unfilled: u8,
    },
    /// A verifier sealed its claim.
    CheckSealed {
        /// The lease.
        lease: LeaseId,
        /// The verifier.
        verifier: AccountId,
    },
    /// A party opened its sealed claim.
    ResultRevealed {
        /// The lease.
        lease: LeaseId,
        /// Who.
        party: AccountId,
        /// Output hash (zero for a failure claim).
        output: Hash,
        /// Checkpoint root.
        checkpoint_root: Hash,
        /// Steps.
        steps: u64,
        /// Where and why the job failed, for a failure claim.
        failure: Option<JobFailure>,
        /// The party's note on the failure (its runtime's message; not checked).
        note: String,
    },
    /// A party missed its sealing or reveal deadline and was docked.
    CheckAbsent {
        /// The lease.
        lease: LeaseId,
        /// Who.
        party: AccountId,
        /// Stake docked (burned).
        docked: Amount,
    },
    /// Every verifier agreed with the provider.
    ResultChecked {
        /// The lease.
        lease: LeaseId,
        /// The verifiers who agreed.
        verifiers: Vec<AccountId>,
    },
    /// Two claims differ: a dispute started.
    DisputeOpened {
        /// The lease.
        lease: LeaseId,
        /// The provider.
        provider: AccountId,
        /// The challenging verifier.
        challenger: AccountId,
        /// What is disputed.
        kind: crate::entries::DisputeKind,
        /// Leaves in the checkpoint trees.
        leaf_count: u64,
    },
    /// A disputant made its move for a round.
    DisputeMoved {
        /// The lease.
        lease: LeaseId,
        /// Who.
        party: AccountId,
        /// The round.
        round: u32,
    },
    /// Both moved: the dispute narrowed to a subtree.
    DisputeNarrowed {
        /// The lease.
        lease: LeaseId,
        /// Rounds completed.
        round: u32,
        /// First leaf of the subtree.
        start: u64,
        /// Leaves in it (1: the first differing checkpoint is found).
        size: u64,
    },
    /// The referee executed the disputed step and ruled.
    RefereeRuled {
        /// The lease.
        lease: LeaseId,
        /// What was disputed.
        kind: crate::entries::DisputeKind,
        /// The step executed (`None` for init, the output, or the step count).
        step: Option<u64>,
        /// Whether the provider's claim matched the referee's result.
        provider_right: bool,
        /// Whether the challenger's claim matched.
        challenger_right: bool,
        /// Fuel the referee spent.
        fuel: u64,
        /// The job's deterministic failure, when the referee found the piece fails.
        failure: Option<JobFailure>,
    },
    /// The referee could not execute the step; tie-breaking verifiers were drawn and the
    /// dispute will be settled by majority.
    TiebreakDrawn {
        /// The lease.
        lease: LeaseId,
        /// Why the referee could not rule.
        reason: String,
        /// The tie-breakers.
        verifiers: Vec<AccountId>,
    },
    /// A party lost a dispute (or a majority, or its reveal) and was slashed.
    Slashed {
        /// The lease.
        lease: LeaseId,
        /// Who.
        party: AccountId,
        /// Taken from its stake (and unbonding stake).
        amount: Amount,
        /// Paid to the winners.
        rewarded: Amount,
        /// Burned.
        burned: Amount,
    },
    /// The provider's result was shown wrong or never revealed: the requester got everything
    /// back.
    LeaseFailed {
        /// The lease.
        lease: LeaseId,
        /// Escrow returned to the requester.
        refunded: Amount,
    },
    /// The lease was paid out.
    LeaseSettled {
        /// The lease.
        lease: LeaseId,
        /// Paid to the provider.
        provider_paid: Amount,
        /// Paid to the verifiers who re-executed the job and agreed, together.
        verifiers_paid: Amount,
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
    /// A cluster lease was opened.
    ClusterLeaseOpened {
        /// The lease.
        lease: LeaseId,
        /// Who pays.
        requester: AccountId,
        /// The members, in worker order.
        members: Vec<AccountId>,
        /// Tokens locked.
        escrow: Amount,
    },
    /// A member committed a round.
    ClusterRoundCommitted {
        /// The lease.
        lease: LeaseId,
        /// The round.
        round: u32,
        /// The member.
        worker: AccountId,
        /// Its delta hash.
        delta: Hash,
    },
    /// A round closed: everyone live committed, or its deadline passed.
    ClusterRoundClosed {
        /// The lease.
        lease: LeaseId,
        /// The round.
        round: u32,
        /// Members whose commits it holds.
        completed: Vec<AccountId>,
        /// Members dropped for missing it.
        missed: Vec<AccountId>,
    },
    /// A member missed a round: dropped from the lease and docked.
    ClusterMemberDropped {
        /// The lease.
        lease: LeaseId,
        /// The round it missed.
        round: u32,
        /// The member.
        member: AccountId,
        /// Burned from its stake.
        docked: Amount,
    },
    /// A worker was paid for a round.
    ClusterRoundPaid {
        /// The lease.
        lease: LeaseId,
        /// The round.
        round: u32,
        /// The worker.
        worker: AccountId,
        /// Paid, after the fee.
        paid: Amount,
        /// Protocol fee.
        fee: Amount,
        /// Part of the fee burned (the rest went to validators).
        burned: Amount,
    },
    /// A worker's round was drawn for a check.
    ClusterCheckDrawn {
        /// The lease.
        lease: LeaseId,
        /// The round.
        round: u32,
        /// The worker.
        worker: AccountId,
        /// The verifiers seated.
        verifiers: Vec<AccountId>,
    },
    /// A cluster verifier revealed the delta hash it computed.
    ClusterCheckRevealed {
        /// The lease.
        lease: LeaseId,
        /// The round.
        round: u32,
        /// The worker.
        worker: AccountId,
        /// The verifier.
        verifier: AccountId,
        /// The delta hash it computed.
        delta: Hash,
    },
    /// A check ended.
    ClusterCheckResolved {
        /// The lease.
        lease: LeaseId,
        /// The round.
        round: u32,
        /// The worker.
        worker: AccountId,
        /// Whether the worker's delta stands; `false` excludes it and marks the round for
        /// recomputation.
        upheld: bool,
    },
    /// A cluster verifier was paid for a check whose verdict its claim matched.
    ClusterVerifierPaid {
        /// The lease.
        lease: LeaseId,
        /// The verifier.
        verifier: AccountId,
        /// Paid, after the fee.
        paid: Amount,
        /// Part of the fee burned (the rest went to validators).
        burned: Amount,
    },
    /// A cluster lease ended: every round closed and every check resolved.
    ClusterLeaseFinished {
        /// The lease.
        lease: LeaseId,
        /// Escrow returned to the requester.
        refunded: Amount,
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

    /// A provider replaced the list of models it serves (empty: it stopped serving).
    ModelsOffered {
        /// The provider.
        provider: AccountId,
        /// Weights hashes of the models now offered, in the order listed.
        models: Vec<Hash>,
    },
    /// An API key was created and funded.
    InferenceKeyCreated {
        /// The key's id.
        key: AccountId,
        /// Its owner.
        owner: AccountId,
        /// Most it may pay.
        limit: Amount,
        /// Locked from the owner's balance.
        deposit: Amount,
    },
    /// An API key's deposit grew.
    InferenceKeyFunded {
        /// The key.
        key: AccountId,
        /// Added.
        amount: Amount,
        /// The deposit now.
        deposit: Amount,
    },
    /// An API key was revoked: its vouchers settle until `closes_at`.
    InferenceKeyRevoked {
        /// The key.
        key: AccountId,
        /// Height at whose end the rest of the deposit returns to the owner.
        closes_at: u64,
    },
    /// A revoked key's grace ended: the rest of its deposit returned to its owner.
    InferenceKeyClosed {
        /// The key.
        key: AccountId,
        /// The owner.
        owner: AccountId,
        /// Returned.
        returned: Amount,
    },
    /// A provider settled a channel's voucher: a new batch holds what the key paid.
    InferenceSettled {
        /// The new batch.
        batch: BatchId,
        /// The provider.
        provider: AccountId,
        /// The key.
        key: AccountId,
        /// The channel.
        channel: u64,
        /// Weights hash of the model.
        model: Hash,
        /// Responses the batch covers.
        responses: u64,
        /// Moved from the key's deposit into the batch's hold.
        held: Amount,
        /// Owed by the voucher but not paid: the deposit or the limit ran out (the provider
        /// accepted an unfunded voucher; the channel still advanced past it).
        shortfall: Amount,
    },
    /// The draw picked responses of a batch for checks (none: the batch is released).
    InferenceDrawn {
        /// The batch.
        batch: BatchId,
        /// The sampling rate used, in basis points.
        sample_bps: u16,
        /// The picked responses' indexes, in order.
        indexes: Vec<u64>,
    },
    /// A checker was drawn for a response.
    InferenceCheckDrawn {
        /// The batch.
        batch: BatchId,
        /// The response.
        index: u64,
        /// The checker.
        checker: AccountId,
        /// 1, or 2 for a tie-breaker.
        round: u8,
        /// Last height to seal.
        seal_deadline: u64,
        /// Last height to reveal.
        reveal_deadline: u64,
    },
    /// A checker sealed its re-execution.
    InferenceCheckSealed {
        /// The batch.
        batch: BatchId,
        /// The response.
        index: u64,
        /// The checker.
        checker: AccountId,
    },
    /// A checker revealed what it sealed.
    InferenceCheckRevealed {
        /// The batch.
        batch: BatchId,
        /// The response.
        index: u64,
        /// The checker.
        checker: AccountId,
        /// Request hash it ran (zero: batch file unavailable).
        request: Hash,
        /// Output digest it got (zero: batch file unavailable).
        output: Hash,
    },
    /// The provider opened its commitment for a drawn response.
    InferenceResponseOpened {
        /// The batch.
        batch: BatchId,
        /// The response.
        index: u64,
        /// The commitment's request hash.
        request: Hash,
        /// The commitment's output digest.
        output: Hash,
        /// What the response cost the key.
        charged: Amount,
    },
    /// A checker missed its seal or reveal deadline and was docked (burned).
    InferenceCheckMissed {
        /// The batch.
        batch: BatchId,
        /// The response.
        index: u64,
        /// The checker.
        checker: AccountId,
        /// Docked from its stake.
        docked: Amount,
    },
    /// The check of a response ended.
    InferenceCheckResolved {
        /// The batch.
        batch: BatchId,
        /// The response.
        index: u64,
        /// How.
        outcome: crate::entries::CheckOutcome,
        /// Returned to the key's deposit (or its owner once closed).
        refunded: Amount,
        /// Paid from the hold to the checkers who agreed with the provider, together.
        checkers_paid: Amount,
    },
    /// A party to an inference check was slashed.
    InferenceSlashed {
        /// The batch.
        batch: BatchId,
        /// The response.
        index: u64,
        /// Who.
        party: AccountId,
        /// Taken from its stake (and unbonding stake).
        amount: Amount,
        /// Paid to the winners.
        rewarded: Amount,
        /// Burned.
        burned: Amount,
    },
    /// Every check of a batch ended: the rest of the hold was paid out.
    InferenceReleased {
        /// The batch.
        batch: BatchId,
        /// The provider.
        provider: AccountId,
        /// Paid to the provider (after the fee).
        provider_paid: Amount,
        /// Protocol fee.
        fee: Amount,
        /// Part of the fee burned (the rest went to validators).
        burned: Amount,
        /// Returned to the key over the batch's life.
        refunded: Amount,
        /// Paid to agreeing checkers over the batch's life.
        checker_fees: Amount,
    },

    /// A provider was drawn for a challenge (by the block seed, or on its request).
    ChallengeDrawn {
        /// The provider.
        provider: AccountId,
        /// Height of the draw (names the challenge in its transactions).
        drawn_at: u64,
        /// Rows of `A`, sized from its claimed hardware.
        rows: u64,
        /// Whether the provider asked for it (`RequestChallenge`).
        requested: bool,
    },
    /// A provider asked for a challenge; the next block draws it.
    ChallengeRequested {
        /// The provider.
        provider: AccountId,
    },
    /// A provider answered its challenge in time; the next block draws the rows to open.
    ChallengeAnswered {
        /// The provider.
        provider: AccountId,
        /// The challenge.
        drawn_at: u64,
        /// Block time from the draw to the answer.
        elapsed_ms: u64,
    },
    /// The opened rows passed Freivalds' test at or above the claim: the provider is online.
    ChallengePassed {
        /// The provider.
        provider: AccountId,
        /// The challenge.
        drawn_at: u64,
        /// Throughput measured by this answer, FLOP/s.
        proven_flops: u64,
        /// This answer's measured ÷ claimed throughput, basis points (capped at 10000).
        score_bps: u32,
    },
    /// The opened rows were right but the throughput was far below the claim: docked and
    /// marked offline, though the answer counts as alive.
    ChallengeBelowClaim {
        /// The provider.
        provider: AccountId,
        /// The challenge.
        drawn_at: u64,
        /// Throughput measured, FLOP/s.
        proven_flops: u64,
        /// Measured ÷ claimed, basis points.
        score_bps: u32,
        /// The least the chain accepts, basis points.
        min_claim_bps: u16,
        /// Stake burned.
        docked: Amount,
    },
    /// A challenge was missed: docked and marked offline.
    ChallengeMissed {
        /// The provider.
        provider: AccountId,
        /// The challenge.
        drawn_at: u64,
        /// Why.
        reason: MissReason,
        /// Stake burned.
        docked: Amount,
    },
}

/// Why a challenge counts as missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissReason {
    /// No answer by the deadline.
    NotAnswered,
    /// Answered, but the drawn rows were not opened in time.
    NotOpened,
    /// An opened row failed Freivalds' test: the answer was wrong.
    WrongAnswer,
}

/// Why a transaction was refused. A transaction refused for its signature, chain id or nonce
/// changes nothing; one refused by its action consumes its nonce (if its sender is an account
/// the state holds) and changes nothing else. See [`TxError::consumes_nonce`].
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
    /// `Redundant { k }` outside `2..=MAX_REDUNDANCY`.
    #[error("redundant verification needs k between 2 and {max} providers, got {k}")]
    BadRedundancy {
        /// Asked for.
        k: u8,
        /// Most allowed.
        max: u8,
    },
    /// The signer is not a party of this check or dispute.
    #[error("{who} is not a {role} of lease {lease}")]
    NotAParty {
        /// The lease.
        lease: LeaseId,
        /// The signer.
        who: AccountId,
        /// The role needed.
        role: &'static str,
    },
    /// A second commitment from the same party.
    #[error("{who} has already sealed a claim for lease {lease}; a claim is sealed once")]
    AlreadySealed {
        /// The lease.
        lease: LeaseId,
        /// The signer.
        who: AccountId,
    },
    /// A claim revealed twice.
    #[error("{who} has already revealed its claim for lease {lease}")]
    AlreadyRevealed {
        /// The lease.
        lease: LeaseId,
        /// The signer.
        who: AccountId,
    },
    /// A reveal before every verifier sealed, or a seal after sealing closed.
    #[error("lease {lease} is {phase}: {what}")]
    WrongPhase {
        /// The lease.
        lease: LeaseId,
        /// The current phase.
        phase: &'static str,
        /// What the signer should do instead.
        what: &'static str,
    },
    /// The revealed claim does not hash to the signer's seal.
    #[error(
        "the revealed claim does not match the seal {seal} (seals bind the lease, the party and the claim)"
    )]
    SealMismatch {
        /// The seal on record.
        seal: Hash,
    },
    /// A revealed claim the ledger cannot accept, whatever its seal.
    #[error("malformed claim: {0}")]
    MalformedClaim(String),
    /// A note attached to a claim of success.
    #[error(
        "a note explains a failure claim; this claim reports an output, so send it with an empty note"
    )]
    NoteWithoutFailure,
    /// A dispute move by a party that already moved this round.
    #[error(
        "out of turn: {who} already moved in round {round} of the dispute over lease {lease}; wait for the other party"
    )]
    OutOfTurn {
        /// The lease.
        lease: LeaseId,
        /// The signer.
        who: AccountId,
        /// The round.
        round: u32,
    },
    /// A move whose children do not hash to the party's current node.
    #[error("the children do not hash to your node {expected} at round {round}")]
    BadMove {
        /// The party's node hash.
        expected: Hash,
        /// The round.
        round: u32,
    },
    /// Referee input given before the dispute narrowed, or a move after it did.
    #[error("the dispute over lease {lease} is {stage}")]
    DisputeStage {
        /// The lease.
        lease: LeaseId,
        /// Where it is.
        stage: &'static str,
    },
    /// The bundle is not the lease's job.
    #[error("bundle hashes to {got}, the lease's job is {expected}")]
    BundleMismatch {
        /// The lease's job.
        expected: Hash,
        /// The bundle's hash.
        got: Hash,
    },
    /// The bundle does not decode.
    #[error("bundle is not valid: {0}")]
    BadBundle(String),
    /// A proof for a different leaf than the dispute needs.
    #[error(
        "the proof is for checkpoint {got} of {got_count}; the referee needs checkpoint {expected} of {count}"
    )]
    ProofWrongStep {
        /// The leaf needed.
        expected: u64,
        /// Leaves in the trees.
        count: u64,
        /// The proof's leaf.
        got: u64,
        /// The proof's leaf count.
        got_count: u64,
    },
    /// The state's checkpoint is not the agreed one.
    #[error(
        "the state does not match the agreed checkpoint {index} (its hash is not under either party's root)"
    )]
    StateMismatch {
        /// The leaf.
        index: u64,
    },
    /// A dispute move while the lease is past its deadline.
    #[error("too late: the deadline was height {due}")]
    Expired {
        /// The deadline.
        due: u64,
    },
    /// A model offer the ledger cannot list.
    #[error("invalid model offer {name:?}: {why}")]
    InvalidModelOffer {
        /// The offer's name.
        name: String,
        /// What to fix.
        why: &'static str,
    },
    /// The API key id is taken.
    #[error("inference key {0} already exists (generate a new key)")]
    InferenceKeyExists(AccountId),
    /// No such API key.
    #[error("unknown inference key {0} (create it with CreateInferenceKey)")]
    UnknownInferenceKey(AccountId),
    /// A key limit of zero could never pay.
    #[error("an inference key's limit must be greater than zero")]
    ZeroLimit,
    /// Only the key's owner may do this.
    #[error("only the owner {owner} of inference key {key} may do this")]
    NotKeyOwner {
        /// The key.
        key: AccountId,
        /// Its owner.
        owner: AccountId,
    },
    /// The key was revoked.
    #[error("inference key {key} was revoked at height {at}")]
    KeyRevoked {
        /// The key.
        key: AccountId,
        /// Height of the revocation.
        at: u64,
    },
    /// The key's grace after revocation is over.
    #[error("inference key {key} was revoked and its vouchers could settle until height {until}")]
    VoucherExpired {
        /// The key.
        key: AccountId,
        /// Last height a voucher could settle.
        until: u64,
    },
    /// The voucher's signature is not its key's.
    #[error("the voucher's signature does not verify under the key it names")]
    BadVoucherSignature,
    /// The voucher was signed for another chain.
    #[error("the voucher is for chain {got:?}, this chain is {expected:?}")]
    VoucherWrongChain {
        /// This chain.
        expected: String,
        /// The voucher's.
        got: String,
    },
    /// The voucher pays someone else.
    #[error("the voucher pays provider {provider}; only it may settle the voucher")]
    VoucherNotYours {
        /// The provider the voucher pays.
        provider: AccountId,
    },
    /// A voucher at or behind what its channel already settled.
    #[error(
        "stale voucher: channel {channel} already settled {paid_responses} responses for {paid_total}; this voucher says {responses} for {total} (settle a later voucher)"
    )]
    StaleVoucher {
        /// The channel.
        channel: u64,
        /// Responses already settled.
        paid_responses: u64,
        /// Total already settled.
        paid_total: Amount,
        /// The voucher's responses.
        responses: u64,
        /// The voucher's total.
        total: Amount,
    },
    /// More responses in one settlement than a batch may hold.
    #[error(
        "a batch may cover at most {max} responses, this settlement covers {responses} (settle more often)"
    )]
    BatchTooLarge {
        /// Responses in the settlement.
        responses: u64,
        /// The limit.
        max: u64,
    },
    /// The model is not among the sender's offers.
    #[error("model {model} is not among your offered models (send OfferModels first)")]
    ModelNotOffered {
        /// The weights hash.
        model: Hash,
    },
    /// No such batch.
    #[error("unknown inference batch {0}")]
    UnknownBatch(BatchId),
    /// The response is not being checked.
    #[error("response {index} of batch {batch} has no open check")]
    NoOpenCheck {
        /// The batch.
        batch: BatchId,
        /// The response.
        index: u64,
    },
    /// The signer has no part in this check.
    #[error("{who} is not a {role} of response {index} of batch {batch}")]
    NotInCheck {
        /// The batch.
        batch: BatchId,
        /// The response.
        index: u64,
        /// The signer.
        who: AccountId,
        /// The role needed.
        role: &'static str,
    },
    /// A step of a check out of order or repeated.
    #[error("response {index} of batch {batch}: {what}")]
    CheckStep {
        /// The batch.
        batch: BatchId,
        /// The response.
        index: u64,
        /// What is wrong and what to do instead.
        what: &'static str,
    },
    /// The reveal does not hash to the checker's seal.
    #[error(
        "the revealed request and output do not match your seal {seal} (check_seal binds batch, index, checker, request and output)"
    )]
    CheckSealMismatch {
        /// The seal on record.
        seal: Hash,
    },
    /// The Merkle proof does not put the commitment at the index under the batch root.
    #[error(
        "the proof does not show this commitment as response {index} of the batch's {responses} under its root"
    )]
    BadResponseProof {
        /// The response.
        index: u64,
        /// Responses in the batch.
        responses: u64,
    },
    /// The referee's host failed (see `crate::referee::HostFailure`). Never a receipt: the
    /// block fails to apply on this validator with [`BlockError::RefereeHost`].
    #[error("the referee's host failed: {0}")]
    RefereeHost(String),
    /// A provider's revealed claim names other units than its committed usage.
    #[error(
        "the claim's metered units ({sealed}, capped at the lease's maximum) differ from the committed usage's ({committed}); the units billed are the units sealed"
    )]
    UnitsMismatch {
        /// Units in the revealed claim.
        sealed: u64,
        /// Units in `CommitResult`.
        committed: u64,
    },
    /// A challenge transaction names no challenge of the sender's in the state it needs:
    /// another provider's challenge, an unknown height, or one already closed.
    #[error("{provider} has no open challenge drawn at height {drawn_at}")]
    NoSuchChallenge {
        /// The sender.
        provider: AccountId,
        /// The height it named.
        drawn_at: u64,
    },
    /// The answer came after the deadline (in block time or in blocks).
    #[error(
        "the answer is after the deadline: {elapsed_ms} ms and {blocks} blocks since the draw, the limits are {deadline_ms} ms and {deadline_blocks} blocks"
    )]
    ChallengeAfterDeadline {
        /// Block time since the draw.
        elapsed_ms: u64,
        /// The limit in block time.
        deadline_ms: u64,
        /// Blocks since the draw.
        blocks: u64,
        /// The limit in blocks.
        deadline_blocks: u64,
    },
    /// A second answer to the same challenge.
    #[error("challenge drawn at height {drawn_at} is already answered; it is answered once")]
    AlreadyAnswered {
        /// The challenge.
        drawn_at: u64,
    },
    /// An answer for another number of rows.
    #[error("the challenge has {expected} rows, the answer claims {got}")]
    WrongChallengeRows {
        /// The challenge's rows.
        expected: u64,
        /// The answer's.
        got: u64,
    },
    /// An opening for a challenge not in its opening phase.
    #[error("challenge drawn at height {drawn_at} cannot be opened now: {why}")]
    NotOpenable {
        /// The challenge.
        drawn_at: u64,
        /// Why.
        why: &'static str,
    },
    /// The opened rows are not the ones the seed drew.
    #[error("opened rows {got:?}; the seed drew rows {expected:?}, in that order")]
    WrongOpenedRows {
        /// The indices sent.
        got: Vec<u64>,
        /// The indices drawn.
        expected: Vec<u64>,
    },
    /// An opened row is not a row of a product of the challenge's shape.
    #[error("{0}")]
    MalformedMatrix(String),
    /// An opened row's proof does not lead to the answer's root.
    #[error("the proof of row {row} does not show it under the answer's root")]
    BadChallengeProof {
        /// The row.
        row: u64,
    },
    /// The provider already has a challenge open or requested.
    #[error("a challenge is already open (drawn or requested at height {at}); answer it first")]
    ChallengeOpen {
        /// Height of its draw or request.
        at: u64,
    },
    /// Only a bonded provider is challenged.
    #[error("{0} has no stake; only bonded providers are challenged (send Bond first)")]
    NotBonded(AccountId),
    /// A cluster lease named no member, or more than the protocol allows.
    #[error("a cluster lease names 1 to {max} members; this one names {got}")]
    BadClusterSize {
        /// Members named.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// A named member cannot serve this cluster lease.
    #[error("member {member} cannot join this cluster lease: {why}")]
    BadClusterMember {
        /// The member.
        member: AccountId,
        /// Why not, in words the requester can act on.
        why: &'static str,
    },
    /// A cluster lease's round shape is out of bounds.
    #[error("bad cluster rounds: {0}")]
    BadClusterRounds(&'static str),
    /// The id names no cluster lease.
    #[error("no cluster lease {0}")]
    UnknownClusterLease(LeaseId),
    /// The sender is not a member of the cluster lease.
    #[error("{who} is not a member of cluster lease {lease}")]
    NotAMember {
        /// The lease.
        lease: LeaseId,
        /// The sender.
        who: AccountId,
    },
    /// The member was dropped after missing a round.
    #[error("{who} was dropped from cluster lease {lease} after missing a round")]
    MemberDropped {
        /// The lease.
        lease: LeaseId,
        /// The member.
        who: AccountId,
    },
    /// The round is not the one open for commits.
    #[error(
        "cluster lease {lease} takes commits for round {open} (from height {opens_at}), not round {got}"
    )]
    WrongRound {
        /// The lease.
        lease: LeaseId,
        /// The open round (the lease's round count once all closed).
        open: u32,
        /// First height it takes commits.
        opens_at: u64,
        /// The round the transaction named.
        got: u32,
    },
    /// The member already committed this round.
    #[error("{who} already committed round {round} of cluster lease {lease}")]
    AlreadyCommitted {
        /// The lease.
        lease: LeaseId,
        /// The round.
        round: u32,
        /// The member.
        who: AccountId,
    },
    /// The commit names other starting weights than the round's first commit.
    #[error("round starts from weights {expected}, the commit names {got}")]
    StartWeightsMismatch {
        /// The round's starting weights (its first commit's).
        expected: Hash,
        /// The commit's.
        got: Hash,
    },
    /// No open check of this worker's round seats the sender, or it is in another phase.
    #[error("no {needed} cluster check of {worker}'s round {round} in lease {lease} seats {who}")]
    NoClusterCheck {
        /// The lease.
        lease: LeaseId,
        /// The round.
        round: u32,
        /// The worker.
        worker: AccountId,
        /// The sender.
        who: AccountId,
        /// The phase the transaction needs.
        needed: &'static str,
    },
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

impl TxError {
    /// Whether a transaction refused with this error spent its nonce: everything but a bad
    /// signature, a wrong chain or a wrong nonce, provided the sender is an account the state
    /// holds (see `apply`'s module docs).
    pub fn consumes_nonce(&self) -> bool {
        !matches!(
            self,
            TxError::BadSignature | TxError::WrongChain { .. } | TxError::WrongNonce { .. }
        )
    }
}

/// Why a whole block was refused. A block refused for its header changes nothing; after
/// `Invariant` or `RefereeHost` the caller must discard the in-memory state and reload.
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
    /// The referee's host failed while executing a disputed step: not an outcome of the job,
    /// so the block must not apply here. Like `Invariant`, the in-memory state has been
    /// partly changed and must be discarded (reload the last stored state); its root is
    /// still the previous block's. Retry the block, or stop this validator.
    #[error(
        "the referee's host failed in transaction {index}: {reason}; reload the last stored state and retry this block"
    )]
    RefereeHost {
        /// The transaction's index in the block.
        index: usize,
        /// What failed.
        reason: String,
    },
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
