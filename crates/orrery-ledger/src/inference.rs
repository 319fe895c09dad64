//! Inference on the ledger: model offers, API keys, voucher settlement, and the sampled checks
//! that keep providers honest.
//!
//! The wire types (offers, vouchers, commitments, seals) live in `orrery_types::inference`;
//! this module is what the chain does with them. `docs/protocol.md` ("Inference") summarizes
//! it and `docs/economics.md` explains the parameters.
//!
//! # Records
//!
//! - **Model offers** (`ModelOffers(provider)`): the models a registered provider serves, each
//!   by its weights hash, with prices and a sampling rate. An index weights → providers
//!   (derived, not committed) feeds the checker draw.
//! - **Keys** (`InferenceKey(id)`): owner, `limit`, `spent` (settlements less refunds, never
//!   above `limit`), `deposit` (tokens locked to pay with) and `revoked_at`.
//! - **Channels** (`InferenceChannel(key, provider, channel)`): the cumulative voucher total
//!   and response count last settled. Vouchers are cumulative, so a channel only moves forward.
//! - **Batches** (`InferenceBatch(id)`, ids in settlement order): one settlement's responses,
//!   the tokens held for them, and the checks of the drawn ones.
//!
//! Tokens sit in a key's deposit or a batch's hold as they sit in a lease's escrow: both are
//! counted by the supply invariant, and only `State::put_key` / `State::put_batch` change them.
//!
//! # Transactions
//!
//! | transaction | who | refused unless | effect |
//! |---|---|---|---|
//! | `OfferModels` | a registered provider | each offer: a name, unique names and weights in the list, `context > 0`, `min_inference_sample_bps ≤ sample_bps ≤ 10000` | the list replaces the old one (empty: stop serving) |
//! | `CreateInferenceKey` | anyone | the id is unused; `limit > 0`; `deposit ≤ balance` | balance → deposit; owner = sender |
//! | `FundInferenceKey` | the owner | not revoked; `amount > 0`; balance | balance → deposit |
//! | `RevokeInferenceKey` | the owner | not yet revoked | `revoked_at = height`; at the end of block `revoked_at + voucher_grace_blocks` the deposit left returns to the owner |
//! | `SettleInference` | the voucher's provider | signature; chain id; key exists and, if revoked, `height ≤ revoked_at + grace`; the voucher is ahead of its channel (`responses > paid_responses`, `total ≥ paid_total`); `responses − paid_responses ≤ MAX_BATCH_RESPONSES`; the model is among the sender's offers | see "Payment" |
//! | `SealInferenceCheck` | a checker drawn for the response's current round | the round's tie-breakers are drawn; not sealed yet; `height ≤ seal_deadline` | seal recorded |
//! | `RevealInferenceCheck` | a checker with a seal in the current round | sealing closed; not revealed; `height ≤ reveal_deadline`; `check_seal(batch, index, sender, request, output) = seal` | claim recorded; the check resolves when complete |
//! | `OpenInferenceResponse` | the batch's provider | round-1 sealing closed; not opened; `height ≤ reveal_deadline`; the proof shows `commitment.leaf()` at `index` of `responses` leaves under the batch root | commitment recorded; the check resolves when complete |
//!
//! # Payment
//!
//! `SettleInference` pays `delta = voucher.total − paid_total`, or what the key can: `pay =
//! min(delta, deposit, limit − spent)`. `deposit −= pay`, `spent += pay`, and the channel
//! advances to the voucher whatever was paid: a shortfall (`pay < delta`) means the provider
//! served on a voucher the key could not fund, and the `InferenceSettled` event says so. A new
//! batch holds `pay` with the sampling rate of the sender's offer for that model.
//!
//! # Checks
//!
//! 1. **Draw.** At the start of the block after the settlement, before its transactions, that
//!    block's seed picks each response `i` with probability `sample_bps / 10⁴`
//!    (`H("orrery/inference/sample", seed, batch, i) mod 10⁴ < sample_bps`); if more than
//!    `max_inference_checks_per_batch` are picked, those with the smallest draws are kept (a
//!    uniform subset, so late responses are as exposed as early ones). Each picked response gets
//!    one checker, uniformly (`H("orrery/inference/checker", seed, batch, i, round, id)` order)
//!    among the providers that offer the batch's weights and hold at least their minimum stake,
//!    never the batch's provider or the key's owner; eligibility is the state the previous
//!    block left, fixed before the seed was known (as for lease checks, see `crate::verify`).
//!    No eligible checker: the check is `Unchecked`. Nothing picked: the batch is released at
//!    once. Deadlines: `seal_deadline = height + inference_seal_blocks`, `reveal_deadline =
//!    seal_deadline + inference_reveal_blocks`.
//! 2. **Seal.** The checker fetches the batch file, re-runs the request at the index and seals
//!    `check_seal(batch, index, checker, request_hash, output_digest)` (or of zeros when the
//!    file is unavailable). Sealing closes once every checker of the round sealed or missed.
//! 3. **Reveal and open.** After sealing closed, checkers reveal; the provider opens its
//!    commitment with a Merkle proof. Nobody sees the provider's digest before sealing.
//! 4. **Resolve** (as soon as every reveal and the open are in, else at the end of
//!    `reveal_deadline`). A checker that misses its seal or reveal is docked
//!    `timeout_penalty_bps` of its stake (burned) and marked missed.
//!    - the provider opened a commitment for another model or key, or (with a checker
//!      revealed) never opened: it **forfeits the batch** — slashed, the whole hold returns to
//!      the key, the batch's other checks end `Unchecked`, the batch is released;
//!    - every round-1 checker missed: `Unchecked`;
//!    - every revealed claim `(request, output)` equals the provider's `(commitment.request,
//!      commitment.output)`: `Agreed`; each agreeing checker is paid the response's `charged`
//!      from the hold (the provider pays for its own audits);
//!    - otherwise round 2: at the start of the next block (a fresh seed the revealer could not
//!      know) `tiebreak_verifiers` more checkers are drawn the same way, excluding earlier ones,
//!      with new deadlines. They seal and reveal as above (the round-1 claims are public by
//!      then: a lazy tie-breaker can copy one, and is slashed if it copied the losing side).
//!      Then a strict majority over the provider's claim and every revealed checker claim
//!      decides: the provider's claim wins → `CheckerWrong` (each dissenter slashed, the reward
//!      to the provider; agreeing checkers are paid as for `Agreed`); another claim wins →
//!      `ProviderCaught` (the provider and every other dissenter slashed, the reward shared by
//!      the winners; `charged` returns to the key); no strict majority → `NoMajority`
//!      (`charged` returns to the key, nobody slashed).
//!
//!    Refunds are capped by what the hold has left, and reduce the key's `spent`. After the
//!    key closed they go to its owner's balance instead.
//! 5. **Release.** Once every check has an outcome the rest of the hold pays the provider less
//!    the protocol fee (`fee_bps`, split burn/validators as for leases); the provider's epoch
//!    work grows by that rest. `amount = paid + fee + refunded + checker_fees` is asserted.
//!
//! # What it does not protect against
//!
//! Whoever holds a key's secret (a gateway) can sign vouchers up to its limit; and vouchers of
//! several channels can together exceed the deposit — the first settled is paid. The check is
//! statistical: a provider cheating on a fraction `f` of a batch of `n` responses escapes with
//! probability `(1 − p·f)^n`.

use crate::apply::{need_balance, nonzero, overflow, provider_of};
use crate::entries::{BatchPhase, InferenceBatch, InferenceChannel, InferenceKey, ResponseCheck};
use crate::receipt::{Event, TxError};
use crate::state::{State, StateKey};
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::inference::{
    MAX_BATCH_RESPONSES, ModelOffer, ResponseCommitment, SignedVoucher, check_seal,
};
use orrery_types::merkle::MerkleProof;
use orrery_types::tx::{BatchId, ModelOffers};
use std::collections::BTreeSet;

mod check;

pub(crate) use check::{begin_block, end_block};

/// `OfferModels`: replace the sender's list of served models.
pub(crate) fn offer_models(
    state: &mut State,
    who: AccountId,
    models: &ModelOffers,
) -> Result<Vec<Event>, TxError> {
    provider_of(state, who)?;
    let floor = state.params().min_inference_sample_bps;
    let mut names = BTreeSet::new();
    let mut weights = BTreeSet::new();
    for offer in models.as_slice() {
        check_model_offer(offer, floor)?;
        let bad = |why| TxError::InvalidModelOffer {
            name: offer.name.as_str().to_string(),
            why,
        };
        if !names.insert(offer.name.as_str()) {
            return Err(bad("two offers share this name"));
        }
        // The settlement finds the offer (and its sampling rate) by the weights hash.
        if !weights.insert(offer.weights) {
            return Err(bad("two offers share these weights; list each model once"));
        }
    }
    state.set_model_offers(who, models.clone());
    Ok(vec![Event::ModelsOffered {
        provider: who,
        models: models.as_slice().iter().map(|o| o.weights).collect(),
    }])
}

fn check_model_offer(offer: &ModelOffer, floor: u16) -> Result<(), TxError> {
    let bad = |why| {
        Err(TxError::InvalidModelOffer {
            name: offer.name.as_str().to_string(),
            why,
        })
    };
    if offer.name.as_str().is_empty() {
        return bad("the name must not be empty");
    }
    if offer.context == 0 {
        return bad("the context length must be at least 1 token");
    }
    if offer.sample_bps < floor {
        return bad("sample_bps is below the chain's min_inference_sample_bps");
    }
    if offer.sample_bps > 10_000 {
        return bad("sample_bps must be at most 10000");
    }
    Ok(())
}

/// `CreateInferenceKey`: lock `deposit` from the sender's balance for a new key.
pub(crate) fn create_key(
    state: &mut State,
    owner: AccountId,
    key: AccountId,
    limit: Amount,
    deposit: Amount,
) -> Result<Vec<Event>, TxError> {
    if state.inference_key(&key).is_some() {
        return Err(TxError::InferenceKeyExists(key));
    }
    if limit.is_zero() {
        return Err(TxError::ZeroLimit);
    }
    need_balance(state, owner, deposit)?;
    if !deposit.is_zero() {
        overflow(state.debit(owner, deposit))?;
    }
    let record = InferenceKey {
        owner,
        limit,
        spent: Amount::ZERO,
        deposit,
        revoked_at: None,
    };
    overflow(state.put_key(key, record))?;
    Ok(vec![Event::InferenceKeyCreated {
        key,
        owner,
        limit,
        deposit,
    }])
}

/// The key `key`, which `who` must own.
fn owned_key(state: &State, who: AccountId, key: AccountId) -> Result<InferenceKey, TxError> {
    let k = *state
        .inference_key(&key)
        .ok_or(TxError::UnknownInferenceKey(key))?;
    if k.owner != who {
        return Err(TxError::NotKeyOwner {
            key,
            owner: k.owner,
        });
    }
    Ok(k)
}

/// `FundInferenceKey`: add to a live key's deposit.
pub(crate) fn fund_key(
    state: &mut State,
    who: AccountId,
    key: AccountId,
    amount: Amount,
) -> Result<Vec<Event>, TxError> {
    let mut k = owned_key(state, who, key)?;
    if let Some(at) = k.revoked_at {
        return Err(TxError::KeyRevoked { key, at });
    }
    nonzero(amount)?;
    need_balance(state, who, amount)?;
    k.deposit = overflow(k.deposit.checked_add(amount))?;
    overflow(state.debit(who, amount))?;
    overflow(state.put_key(key, k))?;
    Ok(vec![Event::InferenceKeyFunded {
        key,
        amount,
        deposit: k.deposit,
    }])
}

/// `RevokeInferenceKey`: stop the key; its deposit returns after the grace.
pub(crate) fn revoke_key(
    state: &mut State,
    who: AccountId,
    key: AccountId,
) -> Result<Vec<Event>, TxError> {
    let mut k = owned_key(state, who, key)?;
    if let Some(at) = k.revoked_at {
        return Err(TxError::KeyRevoked { key, at });
    }
    let height = state.height();
    k.revoked_at = Some(height);
    overflow(state.put_key(key, k))?;
    Ok(vec![Event::InferenceKeyRevoked {
        key,
        closes_at: height.saturating_add(state.params().voucher_grace_blocks),
    }])
}

/// The last height at which a voucher of `key` may settle, if it was revoked.
fn settles_until(state: &State, key: &InferenceKey) -> Option<u64> {
    key.revoked_at
        .map(|at| at.saturating_add(state.params().voucher_grace_blocks))
}

/// What a settlement will do, worked out before anything is written.
struct Settlement {
    key_id: AccountId,
    key: InferenceKey,
    channel: InferenceChannel,
    responses: u64,
    pay: Amount,
    shortfall: Amount,
    sample_bps: u16,
}

/// The voucher's own checks: it pays the sender, its key signed it for this chain, and the
/// key exists and may still settle. Returns the key's id and record.
fn check_voucher(
    state: &State,
    who: AccountId,
    signed: &SignedVoucher,
) -> Result<(AccountId, InferenceKey), TxError> {
    let v = &signed.voucher;
    provider_of(state, who)?;
    if v.provider != who {
        return Err(TxError::VoucherNotYours {
            provider: v.provider,
        });
    }
    if !signed.verify() {
        return Err(TxError::BadVoucherSignature);
    }
    if v.chain_id.as_str() != state.chain_id() {
        return Err(TxError::VoucherWrongChain {
            expected: state.chain_id().to_string(),
            got: v.chain_id.to_string(),
        });
    }
    let key_id = v.key_id();
    let key = *state
        .inference_key(&key_id)
        .ok_or(TxError::UnknownInferenceKey(key_id))?;
    if let Some(until) = settles_until(state, &key)
        && state.height() > until
    {
        return Err(TxError::VoucherExpired { key: key_id, until });
    }
    Ok((key_id, key))
}

/// Every check of `SettleInference`; nothing is written.
fn plan_settlement(
    state: &State,
    who: AccountId,
    signed: &SignedVoucher,
    model: Hash,
) -> Result<Settlement, TxError> {
    let (key_id, key) = check_voucher(state, who, signed)?;
    let v = &signed.voucher;
    let pos = state
        .inference_channel(&key_id, &who, v.channel)
        .copied()
        .unwrap_or_default();
    if v.responses <= pos.paid_responses || v.total < pos.paid_total {
        return Err(TxError::StaleVoucher {
            channel: v.channel,
            paid_responses: pos.paid_responses,
            paid_total: pos.paid_total,
            responses: v.responses,
            total: v.total,
        });
    }
    let responses = v.responses - pos.paid_responses;
    if responses > MAX_BATCH_RESPONSES {
        return Err(TxError::BatchTooLarge {
            responses,
            max: MAX_BATCH_RESPONSES,
        });
    }
    let offer = state
        .model_offers(&who)
        .iter()
        .find(|o| o.weights == model)
        .ok_or(TxError::ModelNotOffered { model })?;
    let delta = overflow(v.total.checked_sub(pos.paid_total))?;
    let room = overflow(key.limit.checked_sub(key.spent))?;
    let pay = delta.min(key.deposit).min(room);
    Ok(Settlement {
        key_id,
        key,
        channel: InferenceChannel {
            paid_total: v.total,
            paid_responses: v.responses,
        },
        responses,
        pay,
        shortfall: overflow(delta.checked_sub(pay))?,
        sample_bps: offer.sample_bps,
    })
}

/// `SettleInference`: pay a channel's new voucher into a new batch.
pub(crate) fn settle(
    state: &mut State,
    who: AccountId,
    signed: &SignedVoucher,
    model: Hash,
    root: Hash,
    file: Hash,
) -> Result<Vec<Event>, TxError> {
    let plan = plan_settlement(state, who, signed, model)?;
    let mut key = plan.key;
    key.deposit = overflow(key.deposit.checked_sub(plan.pay))?;
    key.spent = overflow(key.spent.checked_add(plan.pay))?;
    assert!(key.spent <= key.limit, "settlement past the key's limit");
    let id = state.globals.next_batch_id;
    let batch = InferenceBatch {
        provider: who,
        key: plan.key_id,
        channel: signed.voucher.channel,
        model,
        root,
        file,
        responses: plan.responses,
        held: plan.pay,
        settled_at: state.height(),
        sample_bps: plan.sample_bps,
        phase: BatchPhase::Drawing,
        checks: Vec::new(),
        refunded: Amount::ZERO,
        paid: Amount::ZERO,
        amount: plan.pay,
        checker_fees: Amount::ZERO,
        fee: Amount::ZERO,
    };
    overflow(state.put_key(plan.key_id, key))?;
    state.put_channel(plan.key_id, who, signed.voucher.channel, plan.channel);
    overflow(state.put_batch(id, batch))?;
    state.globals.next_batch_id = overflow(id.checked_add(1))?;
    state.touch(StateKey::Globals);
    Ok(vec![Event::InferenceSettled {
        batch: id,
        provider: who,
        key: plan.key_id,
        channel: signed.voucher.channel,
        model,
        responses: plan.responses,
        held: plan.pay,
        shortfall: plan.shortfall,
    }])
}

/// The batch `id` and the position of the open check of response `index` in it.
fn open_check(state: &State, id: BatchId, index: u64) -> Result<(InferenceBatch, usize), TxError> {
    let batch = state
        .inference_batch(id)
        .ok_or(TxError::UnknownBatch(id))?
        .clone();
    let pos = batch
        .checks
        .iter()
        .position(|c| c.index == index && c.outcome.is_none())
        .ok_or(TxError::NoOpenCheck { batch: id, index })?;
    Ok((batch, pos))
}

/// The position of `who` among the current round's checkers still in play.
fn checker_pos(
    check: &ResponseCheck,
    id: BatchId,
    who: AccountId,
    role: &'static str,
) -> Result<usize, TxError> {
    check
        .checkers
        .iter()
        .position(|c| c.checker == who && c.round == check.round && !c.missed)
        .ok_or(TxError::NotInCheck {
            batch: id,
            index: check.index,
            who,
            role,
        })
}

/// `SealInferenceCheck`: a drawn checker seals its re-execution.
pub(crate) fn seal_check(
    state: &mut State,
    who: AccountId,
    id: BatchId,
    index: u64,
    seal: Hash,
) -> Result<Vec<Event>, TxError> {
    let (mut batch, ci) = open_check(state, id, index)?;
    let check = &mut batch.checks[ci];
    let step = |what| TxError::CheckStep {
        batch: id,
        index,
        what,
    };
    if check.draw_at.is_some() {
        return Err(step(
            "the tie-breakers are drawn at the start of the next block",
        ));
    }
    let pos = checker_pos(check, id, who, "drawn checker in the current round")?;
    if check.checkers[pos].seal.is_some() {
        return Err(step("you already sealed; a seal is posted once"));
    }
    if state.height() > check.seal_deadline {
        return Err(TxError::PastDeadline {
            limit: check.seal_deadline,
        });
    }
    check.checkers[pos].seal = Some(seal);
    overflow(state.put_batch(id, batch))?;
    Ok(vec![Event::InferenceCheckSealed {
        batch: id,
        index,
        checker: who,
    }])
}

/// `RevealInferenceCheck`: a checker opens its seal.
pub(crate) fn reveal_check(
    state: &mut State,
    who: AccountId,
    id: BatchId,
    index: u64,
    request: Hash,
    output: Hash,
) -> Result<Vec<Event>, TxError> {
    let (mut batch, ci) = open_check(state, id, index)?;
    let check = &mut batch.checks[ci];
    let step = |what| TxError::CheckStep {
        batch: id,
        index,
        what,
    };
    let pos = checker_pos(check, id, who, "checker in the current round")?;
    let Some(seal) = check.checkers[pos].seal else {
        return Err(step(
            "you have no seal to reveal (sealing closed without it)",
        ));
    };
    if !check.sealing_closed() {
        return Err(step(
            "sealing is still open: reveal once every checker has sealed or the sealing deadline passed",
        ));
    }
    if check.checkers[pos].revealed.is_some() {
        return Err(step("you already revealed"));
    }
    if state.height() > check.reveal_deadline {
        return Err(TxError::PastDeadline {
            limit: check.reveal_deadline,
        });
    }
    if check_seal(id, index, &who, &request, &output) != seal {
        return Err(TxError::CheckSealMismatch { seal });
    }
    check.checkers[pos].revealed = Some((request, output));
    let mut events = vec![Event::InferenceCheckRevealed {
        batch: id,
        index,
        checker: who,
        request,
        output,
    }];
    events.extend(check::advance(state, id, &mut batch, ci, false)?);
    overflow(state.put_batch(id, batch))?;
    Ok(events)
}

/// `OpenInferenceResponse`: the provider opens its commitment to a drawn response.
pub(crate) fn open_response(
    state: &mut State,
    who: AccountId,
    id: BatchId,
    index: u64,
    commitment: &ResponseCommitment,
    proof: &MerkleProof,
) -> Result<Vec<Event>, TxError> {
    let (mut batch, ci) = open_check(state, id, index)?;
    if batch.provider != who {
        return Err(TxError::NotInCheck {
            batch: id,
            index,
            who,
            role: "provider",
        });
    }
    let (root, responses) = (batch.root, batch.responses);
    let check = &mut batch.checks[ci];
    let step = |what| TxError::CheckStep {
        batch: id,
        index,
        what,
    };
    if check.opened.is_some() {
        return Err(step("the commitment is already open"));
    }
    // Round 2 only starts from an opened commitment, so this is round 1.
    if !check.sealing_closed() {
        return Err(step(
            "the checkers are still sealing: open once sealing closed, so no checker sees your answer first",
        ));
    }
    if state.height() > check.reveal_deadline {
        return Err(TxError::PastDeadline {
            limit: check.reveal_deadline,
        });
    }
    if proof.index != index
        || proof.leaf_count != responses
        || !proof.verify(&root, &commitment.leaf())
    {
        return Err(TxError::BadResponseProof { index, responses });
    }
    check.opened = Some(commitment.clone());
    let mut events = vec![Event::InferenceResponseOpened {
        batch: id,
        index,
        request: commitment.request,
        output: commitment.output,
        charged: commitment.charged,
    }];
    events.extend(check::advance(state, id, &mut batch, ci, false)?);
    overflow(state.put_batch(id, batch))?;
    Ok(events)
}

#[cfg(test)]
mod tests;
