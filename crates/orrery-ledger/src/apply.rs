//! Applying blocks: the state transition function.
//!
//! `apply_block(state, block)` is a pure function of the state and the block: no clock, no I/O,
//! no randomness except the block's seed. Two nodes that apply the same blocks from the same
//! genesis reach the same state and the same root.
//!
//! # Order of work in a block
//! 1. The header is checked (height, time, parent). A bad header refuses the whole block and
//!    changes nothing.
//! 2. Each transaction in order: signature, chain id, nonce, then its action. A transaction
//!    refused for its signature, chain id or nonce changes nothing. One that passes those
//!    three but is refused by its action (a lease in another state, too little balance, …)
//!    consumes its nonce and changes nothing else, so the sender's later transactions, already
//!    signed with the following nonces, still apply: a refusal never leaves a gap that would
//!    strand them (honest parties are refused in normal play: both sides of a dispute may send
//!    `Adjudicate`, and the second is refused; before this rule, that gap made an honest
//!    provider miss a reveal deadline and be slashed). The exception is a sender the state does not hold
//!    (never funded, never sent): its refusal changes nothing, so refused transactions cannot
//!    create accounts for free. Every receipt says why. Every handler checks everything first
//!    and only then writes, so an action applies completely or not at all.
//! 3. End of block: matured unbonding returns to balances; lease timers fire (unstarted or
//!    unfinished leases time out, committed leases whose challenge window closed settle);
//!    inference checks whose deadlines passed are closed and revoked keys whose grace ended
//!    return their deposit (see [`crate::inference`]); at an epoch boundary the emission
//!    (tapered by the epoch's burned fees when `emission_taper_bps > 0`) is minted to providers
//!    pro rata to settled work (work nobody re-executed weighted by
//!    `emission_unchecked_weight_bps`).
//! 4. The supply invariant is checked (and, in debug builds, a full audit); a violation is a
//!    ledger bug and the block is reported as refused — the caller must then discard this
//!    in-memory state and reload the last stored one.

use crate::challenge;
use crate::cluster;
use crate::entries::{Lease, LeaseState, ProvenRecord, Provider, Reputation};
use crate::inference;
use crate::receipt::{BlockError, BlockOutcome, Event, Receipt, TxError};
use crate::referee::{Referee, WasmReferee};
use crate::state::{State, StateKey};
use crate::verify;
use orrery_types::Hash;
use orrery_types::amount::Amount;
use orrery_types::block::Block;
use orrery_types::crypto::{AccountId, NAMESPACE_TX};
use orrery_types::tx::{
    LeaseId, LeaseTerms, MAX_REDUNDANCY, ProviderOffer, SignedTx, TxBody, Verification,
};

/// Whether `apply_block` verifies transaction signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signatures {
    /// Verify each signature (the safe default).
    Verify,
    /// The caller has already verified every signature in the block (for example with
    /// [`verify_block_signatures`] when the block was received). Never use this for a block
    /// whose signatures were not checked: a forged transaction would apply.
    PreVerified,
}

/// Verify every transaction signature in `block` with ed25519 batch verification (faster than
/// one by one). Returns the index of the first bad signature if the batch fails.
pub fn verify_block_signatures(block: &Block) -> Result<(), usize> {
    use commonware_cryptography::{BatchEntry, BatchVerifier as _, ed25519::PublicKey};
    let txs = block.txs.as_slice();
    if txs.is_empty() {
        return Ok(());
    }
    let messages: Vec<Vec<u8>> = txs
        .iter()
        .map(|t| orrery_types::codec::encode(&t.tx))
        .collect();
    // Batch verification randomizes the combination so that crafted invalid signatures cannot
    // cancel out. The randomness comes from the block's own contents: it is fixed only after
    // all signatures are, so no signer can adapt to it.
    let mut seed = [0u8; 32];
    seed.copy_from_slice(block.tx_root().as_bytes());
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed(seed);
    let ok = PublicKey::verify_batch(
        &mut rng,
        txs,
        |i, t| BatchEntry {
            namespace: NAMESPACE_TX,
            message: &messages[i],
            public_key: &t.signer,
            signature: &t.signature,
        },
        &commonware_parallel::Sequential,
    );
    if ok {
        return Ok(());
    }
    Err(txs.iter().position(|t| !t.verify_signature()).unwrap_or(0))
}

/// Apply `block` to `state` and commit the result into the state root. See the module docs
/// for the rules. Equivalent to [`execute_block`] followed by [`State::commit`].
pub fn apply_block(
    state: &mut State,
    block: &Block,
    signatures: Signatures,
) -> Result<BlockOutcome, BlockError> {
    apply_block_with(state, block, signatures, &WasmReferee)
}

/// [`apply_block`] with the given referee (tests inject one whose host fails).
pub fn apply_block_with(
    state: &mut State,
    block: &Block,
    signatures: Signatures,
    referee: &dyn Referee,
) -> Result<BlockOutcome, BlockError> {
    let (receipts, events) = execute_block_with(state, block, signatures, referee)?;
    let changes = state.commit();
    Ok(BlockOutcome {
        receipts,
        events,
        state_root: state.root(),
        changes,
    })
}

/// Execute `block` (header checks, transactions, end of block, invariant check) without
/// recomputing the state root. The caller must call [`State::commit`] before reading
/// [`State::root`] or executing the next block's commitment; [`apply_block`] does both.
pub fn execute_block(
    state: &mut State,
    block: &Block,
    signatures: Signatures,
) -> Result<(Vec<Receipt>, Vec<Event>), BlockError> {
    execute_block_with(state, block, signatures, &WasmReferee)
}

/// [`execute_block`] with the given referee. A referee host failure stops the block at once
/// with [`BlockError::RefereeHost`]: the state must then be discarded (see the error).
pub fn execute_block_with(
    state: &mut State,
    block: &Block,
    signatures: Signatures,
    referee: &dyn Referee,
) -> Result<(Vec<Receipt>, Vec<Event>), BlockError> {
    let g = *state.globals();
    if block.height != g.height + 1 {
        return Err(BlockError::WrongHeight {
            current: g.height,
            got: block.height,
        });
    }
    if block.time_ms < g.time_ms {
        return Err(BlockError::TimeWentBackwards {
            previous: g.time_ms,
            got: block.time_ms,
        });
    }
    if block.parent != g.last_block {
        return Err(BlockError::WrongParent {
            expected: g.last_block,
            got: block.parent,
        });
    }
    state.globals.height = block.height;
    state.globals.time_ms = block.time_ms;
    let tx_hashes = block.tx_hashes();
    state.globals.last_block = block.hash_with(&tx_hashes);
    state.block_seed = block.seed;
    state.touch(StateKey::Globals);

    let mut events = begin_block(state, &block.seed);
    let mut receipts = Vec::with_capacity(tx_hashes.len());
    for (index, (tx, hash)) in block.txs.as_slice().iter().zip(tx_hashes).enumerate() {
        let receipt = apply_tx(state, tx, hash, signatures, referee);
        if let Err(TxError::RefereeHost(reason)) = receipt.outcome {
            return Err(BlockError::RefereeHost { index, reason });
        }
        receipts.push(receipt);
    }
    events.extend(end_block(state));

    state.check_supply()?;
    #[cfg(debug_assertions)]
    state.audit()?;
    Ok((receipts, events))
}

/// Apply one transaction. On error nothing changed.
fn apply_tx(
    state: &mut State,
    tx: &SignedTx,
    hash: Hash,
    signatures: Signatures,
    referee: &dyn Referee,
) -> Receipt {
    let sender = tx.sender();
    let outcome = check_and_apply(state, tx, sender, signatures, referee);
    Receipt {
        tx: hash,
        sender,
        kind: tx.tx.body.kind(),
        outcome,
    }
}

fn check_and_apply(
    state: &mut State,
    tx: &SignedTx,
    sender: AccountId,
    signatures: Signatures,
    referee: &dyn Referee,
) -> Result<Vec<Event>, TxError> {
    if signatures == Signatures::Verify && !tx.verify_signature() {
        return Err(TxError::BadSignature);
    }
    if tx.tx.chain_id.as_str() != state.chain_id() {
        return Err(TxError::WrongChain {
            expected: state.chain_id().to_string(),
            got: tx.tx.chain_id.to_string(),
        });
    }
    let expected = state.account(&sender).nonce;
    if tx.tx.nonce != expected {
        return Err(TxError::WrongNonce {
            expected,
            got: tx.tx.nonce,
        });
    }
    let result = apply_body(state, tx, sender, referee);
    // Past the signature, chain and nonce checks the nonce is spent whatever the action's
    // outcome (see the module docs); only a sender the state already holds, so a refusal
    // never creates an account.
    if result.is_ok() || state.accounts.contains_key(&sender) {
        state.accounts.entry(sender).or_default().nonce += 1;
        state.touch(StateKey::Account(sender));
    }
    result
}

/// Run a transaction's action (its signature, chain id and nonce already checked). On error
/// nothing changed.
fn apply_body(
    state: &mut State,
    tx: &SignedTx,
    sender: AccountId,
    referee: &dyn Referee,
) -> Result<Vec<Event>, TxError> {
    let events = match &tx.tx.body {
        TxBody::Transfer { to, amount } => transfer(state, sender, *to, *amount)?,
        TxBody::RegisterProvider(offer) => register_provider(state, sender, offer)?,
        TxBody::UpdateProvider(offer) => update_provider(state, sender, offer)?,
        TxBody::Bond { amount } => bond(state, sender, *amount)?,
        TxBody::Unbond { amount } => unbond(state, sender, *amount)?,
        TxBody::OpenLease {
            provider,
            job,
            terms,
            deadline,
            verification,
        } => open_lease(
            state,
            sender,
            *provider,
            *job,
            terms,
            *deadline,
            *verification,
        )?,
        TxBody::StartLease { lease } => start_lease(state, sender, *lease)?,
        TxBody::CommitResult { lease, seal, usage } => {
            verify::commit_result(state, sender, *lease, *seal, *usage)?
        }
        TxBody::SettleLease { lease } => settle_lease(state, sender, *lease)?,
        TxBody::CommitCheck { lease, seal } => verify::commit_check(state, sender, *lease, *seal)?,
        TxBody::RevealResult { lease, claim, note } => {
            verify::reveal(state, sender, *lease, *claim, note)?
        }
        TxBody::DisputeMove { lease, left, right } => verify::dispute_move(
            state,
            sender,
            *lease,
            crate::entries::Children {
                left: *left,
                right: *right,
            },
        )?,
        TxBody::Adjudicate {
            lease,
            bundle,
            state: agreed,
            proof,
        } => verify::adjudicate(
            state,
            sender,
            *lease,
            bundle.as_slice(),
            agreed.as_slice(),
            proof,
            referee,
        )?,
        TxBody::OfferModels { models } => inference::offer_models(state, sender, models)?,
        TxBody::CreateInferenceKey {
            key,
            limit,
            deposit,
        } => inference::create_key(state, sender, *key, *limit, *deposit)?,
        TxBody::FundInferenceKey { key, amount } => {
            inference::fund_key(state, sender, *key, *amount)?
        }
        TxBody::RevokeInferenceKey { key } => inference::revoke_key(state, sender, *key)?,
        TxBody::SettleInference {
            voucher,
            model,
            root,
            batch,
        } => inference::settle(state, sender, voucher, *model, *root, *batch)?,
        TxBody::SealInferenceCheck { batch, index, seal } => {
            inference::seal_check(state, sender, *batch, *index, *seal)?
        }
        TxBody::RevealInferenceCheck {
            batch,
            index,
            request,
            output,
        } => inference::reveal_check(state, sender, *batch, *index, *request, *output)?,
        TxBody::OpenInferenceResponse {
            batch,
            index,
            commitment,
            proof,
        } => inference::open_response(state, sender, *batch, *index, commitment, proof)?,
        TxBody::AnswerChallenge {
            drawn_at,
            rows,
            root,
        } => challenge::answer(state, sender, *drawn_at, *rows, *root)?,
        TxBody::OpenChallenge { drawn_at, rows } => {
            challenge::open(state, sender, *drawn_at, rows.as_slice())?
        }
        TxBody::RequestChallenge {} => challenge::request(state, sender)?,
        TxBody::OpenClusterLease {
            members,
            job,
            terms,
            rounds,
            inner_steps,
            round_blocks,
            check_bps,
        } => cluster::open(
            state,
            sender,
            cluster::ClusterRequest {
                members,
                job: *job,
                terms,
                rounds: *rounds,
                inner_steps: *inner_steps,
                round_blocks: *round_blocks,
                check_bps: *check_bps,
            },
        )?,
        TxBody::CommitClusterRound {
            lease,
            round,
            start,
            delta,
            loss,
        } => cluster::commit(
            state,
            sender,
            *lease,
            cluster::RoundWork {
                round: *round,
                start: *start,
                delta: *delta,
                loss: *loss,
            },
        )?,
        TxBody::SealClusterCheck {
            lease,
            round,
            worker,
            seal,
        } => cluster::seal_check(state, sender, (*lease, *round, *worker), *seal)?,
        TxBody::RevealClusterCheck {
            lease,
            round,
            worker,
            delta,
        } => cluster::reveal_check(state, sender, (*lease, *round, *worker), *delta)?,
    };
    Ok(events)
}

pub(crate) fn need_balance(state: &State, who: AccountId, need: Amount) -> Result<(), TxError> {
    let have = state.account(&who).balance;
    if have < need {
        return Err(TxError::InsufficientFunds { need, have });
    }
    Ok(())
}

pub(crate) fn nonzero(amount: Amount) -> Result<(), TxError> {
    if amount.is_zero() {
        Err(TxError::ZeroAmount)
    } else {
        Ok(())
    }
}

pub(crate) fn provider_of(state: &State, who: AccountId) -> Result<&Provider, TxError> {
    state.provider(&who).ok_or(TxError::NotAProvider(who))
}

pub(crate) fn overflow<T>(x: Option<T>) -> Result<T, TxError> {
    x.ok_or(TxError::Overflow)
}

fn transfer(
    state: &mut State,
    from: AccountId,
    to: AccountId,
    amount: Amount,
) -> Result<Vec<Event>, TxError> {
    nonzero(amount)?;
    need_balance(state, from, amount)?;
    overflow(state.debit(from, amount))?;
    overflow(state.credit(to, amount))?;
    Ok(vec![Event::Transferred { from, to, amount }])
}

fn check_offer(offer: &ProviderOffer) -> Result<(), TxError> {
    if offer.hardware.cpu_cores == 0 || offer.hardware.ram_gib == 0 {
        return Err(TxError::InvalidOffer(
            "hardware must list at least one CPU core and 1 GiB of memory",
        ));
    }
    if offer
        .hardware
        .gpu
        .as_ref()
        .is_some_and(|g| g.count == 0 || g.model.as_str().is_empty())
    {
        return Err(TxError::InvalidOffer(
            "a GPU entry needs a model name and a count of at least 1",
        ));
    }
    if offer.region.as_str().is_empty() {
        return Err(TxError::InvalidOffer("region must not be empty"));
    }
    Ok(())
}

fn register_provider(
    state: &mut State,
    who: AccountId,
    offer: &ProviderOffer,
) -> Result<Vec<Event>, TxError> {
    if state.provider(&who).is_some() {
        return Err(TxError::AlreadyRegistered(who));
    }
    check_offer(offer)?;
    let provider = Provider {
        offer: offer.clone(),
        stake: Amount::ZERO,
        active_leases: 0,
        registered_at: state.height(),
        reputation: Reputation::default(),
        earned: Amount::ZERO,
        proof: ProvenRecord::default(),
        draw_slot: None,
    };
    state.providers.insert(who, provider);
    state.touch(StateKey::Provider(who));
    Ok(vec![Event::ProviderRegistered { provider: who }])
}

fn update_provider(
    state: &mut State,
    who: AccountId,
    offer: &ProviderOffer,
) -> Result<Vec<Event>, TxError> {
    provider_of(state, who)?;
    check_offer(offer)?;
    if let Some(p) = state.providers.get_mut(&who) {
        p.offer = offer.clone();
    }
    state.touch(StateKey::Provider(who));
    Ok(vec![Event::ProviderUpdated { provider: who }])
}

fn bond(state: &mut State, who: AccountId, amount: Amount) -> Result<Vec<Event>, TxError> {
    nonzero(amount)?;
    provider_of(state, who)?;
    need_balance(state, who, amount)?;
    overflow(state.debit(who, amount))?;
    overflow(state.add_stake(who, amount))?;
    Ok(vec![Event::Bonded {
        provider: who,
        amount,
    }])
}

fn unbond(state: &mut State, who: AccountId, amount: Amount) -> Result<Vec<Event>, TxError> {
    nonzero(amount)?;
    let p = provider_of(state, who)?;
    let remaining = p
        .stake
        .checked_sub(amount)
        .ok_or(TxError::InsufficientStake {
            need: amount,
            have: p.stake,
        })?;
    if p.active_leases > 0 {
        let need = overflow(state.params().min_stake(&p.offer.hardware))?;
        if remaining < need {
            return Err(TxError::StakeLocked { remaining, need });
        }
    }
    let release_at = overflow(
        state
            .height()
            .checked_add(state.params().unbonding_delay_blocks),
    )?;
    overflow(state.sub_stake(who, amount))?;
    overflow(state.add_unbonding(release_at, who, amount))?;
    Ok(vec![Event::UnbondStarted {
        provider: who,
        amount,
        release_at,
    }])
}

fn open_lease(
    state: &mut State,
    requester: AccountId,
    provider_id: AccountId,
    job: Hash,
    terms: &LeaseTerms,
    deadline: u64,
    verification: Verification,
) -> Result<Vec<Event>, TxError> {
    let provider = state
        .provider(&provider_id)
        .ok_or(TxError::UnknownProvider(provider_id))?;
    if provider_id == requester {
        return Err(TxError::SelfLease);
    }
    if let Verification::Redundant { k } = verification
        && !(2..=MAX_REDUNDANCY).contains(&k)
    {
        return Err(TxError::BadRedundancy {
            k,
            max: MAX_REDUNDANCY,
        });
    }
    if !terms.prices.within(&provider.offer.prices) {
        return Err(TxError::PriceAboveOffer);
    }
    if !provider.offer.hardware.fits(&terms.resources) {
        return Err(TxError::ResourcesUnavailable);
    }
    let max_cost = overflow(terms.max_cost())?;
    if max_cost.is_zero() {
        return Err(TxError::ZeroCostLease);
    }
    // Verifiers are paid like the provider, so the escrow covers them too; what a draw does
    // not use is refunded at the draw.
    let escrow =
        overflow(max_cost.checked_mul(1 + u128::from(verify::reserved_verifiers(verification))))?;
    let height = state.height();
    let max = state.params().max_lease_blocks;
    if deadline <= height || deadline - height > max {
        return Err(TxError::BadDeadline {
            deadline,
            height,
            max,
        });
    }
    let min_stake = overflow(state.params().min_stake(&provider.offer.hardware))?;
    if provider.stake < min_stake {
        return Err(TxError::InsufficientStake {
            need: min_stake,
            have: provider.stake,
        });
    }
    need_balance(state, requester, escrow)?;

    let id = state.globals.next_lease_id;
    let start_by = height
        .saturating_add(state.params().start_timeout_blocks)
        .min(deadline);
    overflow(state.debit(requester, escrow))?;
    state.leases.insert(
        id,
        Lease {
            id,
            requester,
            provider: provider_id,
            job,
            terms: *terms,
            verification,
            escrow: Amount::ZERO,
            opened_at: height,
            start_by,
            deadline,
            state: LeaseState::AwaitingStart,
        },
    );
    overflow(state.set_escrow(id, escrow))?;
    state.timers.insert((start_by, id));
    state.globals.next_lease_id += 1;
    if let Some(p) = state.providers.get_mut(&provider_id) {
        p.active_leases += 1;
    }
    state.touch(StateKey::Provider(provider_id));
    Ok(vec![Event::LeaseOpened {
        lease: id,
        requester,
        provider: provider_id,
        escrow,
    }])
}

pub(crate) fn lease_for(state: &State, id: LeaseId) -> Result<&Lease, TxError> {
    state.lease(id).ok_or(TxError::UnknownLease(id))
}

fn start_lease(state: &mut State, who: AccountId, id: LeaseId) -> Result<Vec<Event>, TxError> {
    let lease = lease_for(state, id)?;
    if lease.provider != who {
        return Err(TxError::NotAuthorized { role: "provider" });
    }
    if lease.state != LeaseState::AwaitingStart {
        return Err(TxError::WrongLeaseState {
            lease: id,
            state: lease.state.name(),
            needed: "awaiting_start",
        });
    }
    if state.height() > lease.start_by {
        return Err(TxError::PastDeadline {
            limit: lease.start_by,
        });
    }
    let new = LeaseState::Running {
        started_at: state.height(),
        started_ms: state.globals.time_ms,
    };
    overflow(state.set_lease_state(id, new))?;
    Ok(vec![Event::LeaseStarted { lease: id }])
}

fn settle_lease(state: &mut State, who: AccountId, id: LeaseId) -> Result<Vec<Event>, TxError> {
    let lease = lease_for(state, id)?;
    if lease.requester != who {
        return Err(TxError::NotAuthorized { role: "requester" });
    }
    if !matches!(lease.state, LeaseState::Committed { .. }) {
        return Err(TxError::WrongLeaseState {
            lease: id,
            state: lease.state.name(),
            needed: "committed",
        });
    }
    settle(state, id).map(|e| vec![e])
}

/// Pay out a committed, unchecked lease.
pub(crate) fn settle(state: &mut State, id: LeaseId) -> Result<Event, TxError> {
    settle_with(state, id, &[])
}

/// Pay out a committed lease: the provider, and each verifier in `verifiers` (who re-ran the job
/// and agreed), is paid for the metered usage less the protocol fee; the fees are split into
/// burn and validators; unused escrow is refunded.
pub(crate) fn settle_with(
    state: &mut State,
    id: LeaseId,
    verifiers: &[AccountId],
) -> Result<Event, TxError> {
    let lease = lease_for(state, id)?.clone();
    let LeaseState::Committed {
        output,
        checkpoint_root,
        usage,
        failure,
        ..
    } = lease.state
    else {
        return Err(TxError::WrongLeaseState {
            lease: id,
            state: lease.state.name(),
            needed: "committed",
        });
    };
    let params = state.params().clone();
    let payees = 1 + verifiers.len() as u128;
    let cost = overflow(lease.terms.prices.cost(&lease.terms.resources, &usage))?
        .min(Amount(lease.escrow.units() / payees));
    let fee_each = overflow(cost.bps(params.fee_bps))?;
    let fee = overflow(fee_each.checked_mul(payees))?;
    let provider_paid = overflow(cost.checked_sub(fee_each))?;
    let verifiers_paid = overflow(provider_paid.checked_mul(verifiers.len() as u128))?;
    let charged = overflow(cost.checked_mul(payees))?;
    let refunded = overflow(lease.escrow.checked_sub(charged))?;

    overflow(state.set_escrow(id, Amount::ZERO))?;
    overflow(state.credit(lease.provider, provider_paid))?;
    for v in verifiers {
        overflow(state.credit(*v, provider_paid))?;
        if let Some(p) = state.providers.get_mut(v) {
            p.earned = p.earned.checked_add(provider_paid).unwrap_or(p.earned);
        }
        state.touch(StateKey::Provider(*v));
        // Re-execution is verified work too: it earns emission like the provider's.
        let work = state.epoch_work.entry(*v).or_default();
        *work = work.checked_add(cost).unwrap_or(*work);
        state.touch(StateKey::EpochWork(*v));
    }
    let burned = collect_fee(state, fee)?;
    overflow(state.credit(lease.requester, refunded))?;
    if let Some(p) = state.providers.get_mut(&lease.provider) {
        p.active_leases = p.active_leases.saturating_sub(1);
        p.reputation.settled += 1;
        p.earned = p.earned.checked_add(provider_paid).unwrap_or(p.earned);
    }
    state.touch(StateKey::Provider(lease.provider));
    // Work nobody re-executed counts `emission_unchecked_weight_bps` of its value.
    let counted = if verifiers.is_empty() {
        Amount(share(
            cost.units(),
            u128::from(params.emission_unchecked_weight_bps),
            10_000,
        ))
    } else {
        cost
    };
    let work = state.epoch_work.entry(lease.provider).or_default();
    *work = work.checked_add(counted).unwrap_or(*work);
    state.touch(StateKey::EpochWork(lease.provider));
    let settled = LeaseState::Settled {
        output,
        checkpoint_root,
        usage,
        paid: charged,
        fee,
        refunded,
        settled_at: state.height(),
        failure,
    };
    overflow(state.set_lease_state(id, settled))?;
    Ok(Event::LeaseSettled {
        lease: id,
        provider_paid,
        verifiers_paid,
        fee,
        burned,
        refunded,
    })
}

/// Collect a protocol fee: `fee_burn_bps` of it is burned, the rest is split equally among
/// the validators (an indivisible remainder is burned too). Returns what was burned.
pub(crate) fn collect_fee(state: &mut State, fee: Amount) -> Result<Amount, TxError> {
    let mut burned = overflow(fee.bps(state.params().fee_burn_bps))?;
    let to_validators = overflow(fee.checked_sub(burned))?;
    let validators = state.validators().to_vec();
    let per_validator = if validators.is_empty() {
        Amount::ZERO
    } else {
        Amount(to_validators.units() / validators.len() as u128)
    };
    let paid_validators = overflow(per_validator.checked_mul(validators.len() as u128))?;
    burned = overflow(burned.checked_add(overflow(to_validators.checked_sub(paid_validators))?))?;
    if !per_validator.is_zero() {
        for v in validators {
            overflow(state.credit(v, per_validator))?;
        }
    }
    overflow(state.burn(burned))?;
    Ok(burned)
}

/// Refund the requester and dock the provider for a lease not started or finished in time.
fn time_out(state: &mut State, id: LeaseId) -> Result<Event, TxError> {
    let lease = lease_for(state, id)?.clone();
    let penalty =
        overflow(overflow(lease.terms.max_cost())?.bps(state.params().timeout_penalty_bps))?;
    let stake = state
        .provider(&lease.provider)
        .map_or(Amount::ZERO, |p| p.stake);
    let docked = penalty.min(stake);
    let refunded = lease.escrow;
    overflow(state.set_escrow(id, Amount::ZERO))?;
    overflow(state.credit(lease.requester, refunded))?;
    if !docked.is_zero() {
        overflow(state.sub_stake(lease.provider, docked))?;
        overflow(state.burn(docked))?;
    }
    if let Some(p) = state.providers.get_mut(&lease.provider) {
        p.active_leases = p.active_leases.saturating_sub(1);
        p.reputation.timed_out += 1;
    }
    state.touch(StateKey::Provider(lease.provider));
    overflow(state.set_lease_state(
        id,
        LeaseState::TimedOut {
            refunded,
            docked,
            at: state.height(),
        },
    ))?;
    Ok(Event::LeaseTimedOut {
        lease: id,
        refunded,
        docked,
    })
}

/// `a * b / c` rounded down without overflow: when the product does not fit, both `a` and `c`
/// are scaled down by the same power of two (a deterministic, slightly coarser share).
pub(crate) fn share(a: u128, b: u128, c: u128) -> u128 {
    let (mut a, mut c) = (a, c);
    loop {
        if c == 0 {
            return 0;
        }
        if let Some(p) = a.checked_mul(b) {
            return p / c;
        }
        a >>= 1;
        c >>= 1;
    }
}

/// Start of a block, before its transactions: results sealed in the previous block are drawn
/// for checks with this block's seed. Eligibility is the state the previous block left, which
/// was fixed before anyone could know the seed: a proposer cannot bond, register or unbond in
/// this block to steer its own draw.
fn begin_block(state: &mut State, seed: &Hash) -> Vec<Event> {
    let height = state.height();
    let due: Vec<LeaseId> = state
        .timers
        .range(..=(height, LeaseId::MAX))
        .map(|(_, id)| *id)
        .filter(|id| {
            state
                .lease(*id)
                .is_some_and(|l| matches!(l.state, LeaseState::Sealed { .. }))
        })
        .collect();
    let mut events = Vec::new();
    for id in due {
        if let Ok(e) = verify::draw(state, id, seed) {
            events.extend(e);
        }
    }
    // Inference batches settled in the previous block, and tie-breakers for checks whose
    // first round disagreed there, are drawn the same way.
    events.extend(inference::begin_block(state, seed));
    // Provider challenges: requests and the seed's sample are drawn, answers get their rows.
    events.extend(challenge::begin_block(state, seed));
    // Cluster rounds closed in the previous block, and tie-breakers of their checks.
    events.extend(cluster::begin_block(state, seed));
    events
}

/// End-of-block processing. Infallible by construction: every step moves tokens it has just
/// read from the state, so no amount can overflow; a step that somehow fails is skipped and the
/// invariant check after it reports the bug.
fn end_block(state: &mut State) -> Vec<Event> {
    let height = state.height();
    let mut events = Vec::new();

    // 1. Matured unbonding returns to balances.
    let matured: Vec<(u64, AccountId)> = state
        .unbonding
        .range(..=(height, AccountId([0xff; 20])))
        .map(|(k, _)| *k)
        .collect();
    for (at, who) in matured {
        if let Some(amount) = state.take_unbonding(at, who)
            && state.credit(who, amount).is_some()
        {
            events.push(Event::UnbondReleased {
                provider: who,
                amount,
            });
        }
    }

    // 2. Lease timers.
    let due: Vec<(u64, LeaseId)> = state
        .timers
        .range(..=(height, LeaseId::MAX))
        .copied()
        .collect();
    for (_, id) in due {
        let Some(lease) = state.lease(id) else {
            continue;
        };
        let result = match lease.state {
            LeaseState::AwaitingStart | LeaseState::Running { .. } => {
                time_out(state, id).map(|e| vec![e])
            }
            LeaseState::Committed { .. } => settle(state, id).map(|e| vec![e]),
            // Drawn at the start of the block (`begin_block`).
            LeaseState::Sealed { .. } => continue,
            LeaseState::Checking(_) => verify::check_deadline(state, id),
            LeaseState::Disputed(_) => verify::dispute_deadline(state, id),
            LeaseState::Settled { .. }
            | LeaseState::TimedOut { .. }
            | LeaseState::Failed { .. } => continue,
        };
        if let Ok(e) = result {
            events.extend(e);
        }
    }

    // 3. Inference checks whose deadlines passed; deposits of keys whose grace ended.
    events.extend(inference::end_block(state));

    // 3b. Challenges whose answer or opening window closed are missed.
    events.extend(challenge::end_block(state));

    // 3c. Cluster rounds whose deadline is this block close; cluster checks past a deadline.
    events.extend(cluster::end_block(state));

    // 4. Epoch emission, pro rata to settled work.
    let epoch_blocks = state.params().epoch_blocks;
    if height.is_multiple_of(epoch_blocks) {
        let epoch = height / epoch_blocks - 1;
        let work: Vec<(AccountId, Amount)> =
            std::mem::take(&mut state.epoch_work).into_iter().collect();
        for (p, _) in &work {
            state.touch(StateKey::EpochWork(*p));
        }
        let total: u128 = work
            .iter()
            .fold(0u128, |acc, (_, w)| acc.saturating_add(w.units()));
        let emission = state.params().epoch_emission(epoch, Amount(total));
        if total > 0 && !emission.is_zero() {
            for (provider, w) in work {
                let amount = Amount(share(emission.units(), w.units(), total));
                if amount.is_zero() {
                    continue;
                }
                if state.credit(provider, amount).is_some() && state.mint(amount).is_some() {
                    events.push(Event::Minted {
                        provider,
                        amount,
                        epoch,
                    });
                }
            }
        }
    }
    events
}
