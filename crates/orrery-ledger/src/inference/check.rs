//! The checks of settled batches: the draw, the deadlines, resolution and release. The rules
//! are the parent module's docs ("Checks"); this file implements them.

use crate::apply::{collect_fee, overflow};
use crate::entries::{BatchPhase, CheckOutcome, CheckerEntry, InferenceBatch, ResponseCheck};
use crate::receipt::{Event, TxError};
use crate::state::{State, StateKey};
use crate::verify::{draw_u64, take_slash};
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::tx::BatchId;

/// A claim about one response: `(request hash, output digest)`.
type ResponseClaim = (Hash, Hash);

/// Batches whose timer (a draw or a deadline) is at or before this height.
fn due_batches(state: &State) -> Vec<BatchId> {
    state
        .batch_timers
        .range(..=(state.height(), BatchId::MAX))
        .map(|(_, id)| *id)
        .collect()
}

/// Start of a block, before its transactions: draw the checks of batches settled in the
/// previous block, and the tie-breakers of checks whose round 1 disagreed.
pub(crate) fn begin_block(state: &mut State, seed: &Hash) -> Vec<Event> {
    let due = due_batches(state);
    let mut events = Vec::new();
    for id in due {
        let result = match state.inference_batch(id).map(|b| b.phase) {
            Some(BatchPhase::Drawing) => draw_batch(state, id, seed),
            Some(BatchPhase::Checking) => draw_tiebreakers(state, id, seed),
            Some(BatchPhase::Released) | None => continue,
        };
        // Every step reads amounts it has just checked; an error here is a ledger bug that
        // the supply check after the block reports.
        if let Ok(e) = result {
            events.extend(e);
        }
    }
    events
}

/// End of a block, after the lease timers: close the checks whose deadlines passed, then
/// return the deposits of revoked keys whose grace ended.
pub(crate) fn end_block(state: &mut State) -> Vec<Event> {
    let due = due_batches(state);
    let mut events = Vec::new();
    for id in due {
        if let Ok(e) = deadlines(state, id) {
            events.extend(e);
        }
    }
    let closing: Vec<AccountId> = state
        .key_timers
        .range(..=(state.height(), AccountId([0xff; 20])))
        .map(|(_, key)| *key)
        .collect();
    for key in closing {
        if let Ok(e) = close_key(state, key) {
            events.push(e);
        }
    }
    events
}

fn batch_of(state: &State, id: BatchId) -> Result<InferenceBatch, TxError> {
    state
        .inference_batch(id)
        .cloned()
        .ok_or(TxError::UnknownBatch(id))
}

/// Providers that may check response `index` of `batch`, in the seed's lottery order; the
/// first `n`. Eligible: offers the batch's weights, may check at all
/// ([`crate::verify::may_check`]: bonded, online), and is not in `exclude`.
fn pick_checkers(
    state: &State,
    (id, batch): (BatchId, &InferenceBatch),
    (index, round): (u64, u8),
    n: usize,
    seed: &Hash,
    exclude: &[AccountId],
) -> Vec<AccountId> {
    let params = state.params();
    let mut eligible: Vec<(u64, AccountId)> = state
        .model_servers(&batch.model)
        .filter(|p| !exclude.contains(p))
        .filter(|p| {
            state
                .provider(p)
                .is_some_and(|x| crate::verify::may_check(params, x))
        })
        .map(|p| {
            let mut extra = index.to_be_bytes().to_vec();
            extra.push(round);
            extra.extend_from_slice(&p.0);
            (draw_u64(seed, b"orrery/inference/checker", id, &extra), *p)
        })
        .collect();
    eligible.sort_unstable();
    eligible.into_iter().take(n).map(|(_, p)| p).collect()
}

/// Who never checks a batch: its provider and its key's owner.
fn never_checkers(state: &State, batch: &InferenceBatch) -> Vec<AccountId> {
    let mut v = vec![batch.provider];
    v.extend(state.inference_key(&batch.key).map(|k| k.owner));
    v
}

/// Add `checkers` to `check` for its current round with fresh deadlines.
fn seat_checkers(
    state: &State,
    id: BatchId,
    check: &mut ResponseCheck,
    checkers: &[AccountId],
) -> Vec<Event> {
    let params = state.params();
    check.seal_deadline = state.height().saturating_add(params.inference_seal_blocks);
    check.reveal_deadline = check
        .seal_deadline
        .saturating_add(params.inference_reveal_blocks);
    checkers
        .iter()
        .map(|c| {
            check.checkers.push(CheckerEntry {
                checker: *c,
                round: check.round,
                seal: None,
                revealed: None,
                missed: false,
            });
            Event::InferenceCheckDrawn {
                batch: id,
                index: check.index,
                checker: *c,
                round: check.round,
                seal_deadline: check.seal_deadline,
                reveal_deadline: check.reveal_deadline,
            }
        })
        .collect()
}

/// The indexes of `batch` the seed picks, at most `max`, in index order.
fn picked_indexes(seed: &Hash, id: BatchId, batch: &InferenceBatch, max: usize) -> Vec<u64> {
    let p = u64::from(batch.sample_bps);
    let mut picks: Vec<(u64, u64)> = (0..batch.responses)
        .filter_map(|i| {
            let v = draw_u64(seed, b"orrery/inference/sample", id, &i.to_be_bytes());
            (v % 10_000 < p).then_some((v, i))
        })
        .collect();
    // Over the cap, keep the smallest draws: a uniform subset of the picked responses, so a
    // cheater gains nothing by cheating late in a batch.
    picks.sort_unstable();
    picks.truncate(max);
    let mut indexes: Vec<u64> = picks.into_iter().map(|(_, i)| i).collect();
    indexes.sort_unstable();
    indexes
}

/// The block after a settlement: pick the responses to check and their checkers.
fn draw_batch(state: &mut State, id: BatchId, seed: &Hash) -> Result<Vec<Event>, TxError> {
    let mut batch = batch_of(state, id)?;
    let max = usize::from(state.params().max_inference_checks_per_batch);
    let indexes = picked_indexes(seed, id, &batch, max);
    let exclude = never_checkers(state, &batch);
    let mut events = vec![Event::InferenceDrawn {
        batch: id,
        sample_bps: batch.sample_bps,
        indexes: indexes.clone(),
    }];
    for index in indexes {
        let mut check = ResponseCheck {
            index,
            round: 1,
            checkers: Vec::new(),
            seal_deadline: 0,
            reveal_deadline: 0,
            opened: None,
            outcome: None,
            draw_at: None,
        };
        let picked = pick_checkers(state, (id, &batch), (index, 1), 1, seed, &exclude);
        events.extend(seat_checkers(state, id, &mut check, &picked));
        if picked.is_empty() {
            check.outcome = Some(CheckOutcome::Unchecked);
            events.push(resolved(id, &check, Amount::ZERO, Amount::ZERO));
        }
        batch.checks.push(check);
    }
    batch.phase = BatchPhase::Checking;
    events.extend(release_if_done(state, id, &mut batch)?);
    overflow(state.put_batch(id, batch))?;
    Ok(events)
}

/// The block after a round 1 disagreed: draw its tie-breakers.
fn draw_tiebreakers(state: &mut State, id: BatchId, seed: &Hash) -> Result<Vec<Event>, TxError> {
    let mut batch = batch_of(state, id)?;
    let height = state.height();
    let due = |c: &ResponseCheck| c.outcome.is_none() && c.draw_at.is_some_and(|at| at <= height);
    // The batch may be due for a deadline only (handled at the end of the block).
    if !batch.checks.iter().any(due) {
        return Ok(Vec::new());
    }
    let n = usize::from(state.params().tiebreak_verifiers);
    let mut events = Vec::new();
    for ci in 0..batch.checks.len() {
        let check = &batch.checks[ci];
        if !due(check) {
            continue;
        }
        let mut exclude = never_checkers(state, &batch);
        exclude.extend(check.checkers.iter().map(|c| c.checker));
        let picked = pick_checkers(state, (id, &batch), (check.index, 2), n, seed, &exclude);
        let check = &mut batch.checks[ci];
        check.draw_at = None;
        events.extend(seat_checkers(state, id, check, &picked));
        // Nobody to add: the majority is decided over the claims already revealed.
        events.extend(advance(state, id, &mut batch, ci, picked.is_empty())?);
    }
    overflow(state.put_batch(id, batch))?;
    Ok(events)
}

/// End of a block: mark the checkers that missed a deadline that passed, and resolve the
/// checks whose reveal deadline passed.
fn deadlines(state: &mut State, id: BatchId) -> Result<Vec<Event>, TxError> {
    let mut batch = batch_of(state, id)?;
    if batch.phase != BatchPhase::Checking {
        return Ok(Vec::new());
    }
    let height = state.height();
    let mut events = Vec::new();
    for ci in 0..batch.checks.len() {
        let check = &batch.checks[ci];
        if check.outcome.is_some() || check.draw_at.is_some() {
            continue;
        }
        if !check.sealing_closed() && height >= check.seal_deadline {
            events.extend(miss(state, id, &mut batch.checks[ci], |c| {
                c.seal.is_none()
            })?);
        }
        let check = &batch.checks[ci];
        let reveals_over = check.sealing_closed() && height >= check.reveal_deadline;
        if reveals_over {
            events.extend(miss(state, id, &mut batch.checks[ci], |c| {
                c.revealed.is_none()
            })?);
        }
        events.extend(advance(state, id, &mut batch, ci, reveals_over)?);
        if batch.phase == BatchPhase::Released {
            break;
        }
    }
    overflow(state.put_batch(id, batch))?;
    Ok(events)
}

/// Dock and mark missed every checker of the current round still in play for which `missed`
/// holds: `timeout_penalty_bps` of its stake, burned.
fn miss(
    state: &mut State,
    id: BatchId,
    check: &mut ResponseCheck,
    missed: impl Fn(&CheckerEntry) -> bool,
) -> Result<Vec<Event>, TxError> {
    let penalty_bps = state.params().timeout_penalty_bps;
    let mut events = Vec::new();
    for entry in check.checkers.iter_mut() {
        if entry.round != check.round || entry.missed || !missed(entry) {
            continue;
        }
        entry.missed = true;
        let stake = state
            .provider(&entry.checker)
            .map_or(Amount::ZERO, |p| p.stake);
        let docked = overflow(stake.bps(penalty_bps))?.min(stake);
        if !docked.is_zero() {
            overflow(state.sub_stake(entry.checker, docked))?;
            overflow(state.burn(docked))?;
        }
        if let Some(p) = state.providers.get_mut(&entry.checker) {
            p.reputation.timed_out += 1;
        }
        state.touch(StateKey::Provider(entry.checker));
        events.push(Event::InferenceCheckMissed {
            batch: id,
            index: check.index,
            checker: entry.checker,
            docked,
        });
    }
    Ok(events)
}

/// Resolve the check at `ci` if it is complete — or, with `deadline_passed`, whatever is in —
/// then release the batch if that was its last check. Changes only `batch` and the accounts
/// and keys it pays; the caller writes `batch`.
pub(super) fn advance(
    state: &mut State,
    id: BatchId,
    batch: &mut InferenceBatch,
    ci: usize,
    deadline_passed: bool,
) -> Result<Vec<Event>, TxError> {
    let check = &batch.checks[ci];
    if check.outcome.is_some() || check.draw_at.is_some() || !check.sealing_closed() {
        return Ok(Vec::new());
    }
    let mut events = if check.round == 1 {
        round_one(state, id, batch, ci, deadline_passed)?
    } else {
        round_two(state, id, batch, ci, deadline_passed)?
    };
    events.extend(release_if_done(state, id, batch)?);
    Ok(events)
}

/// The revealed claims still in play: `(checker, claim)`.
fn revealed(check: &ResponseCheck) -> Vec<(AccountId, ResponseClaim)> {
    check
        .checkers
        .iter()
        .filter(|c| !c.missed)
        .filter_map(|c| c.revealed.map(|r| (c.checker, r)))
        .collect()
}

fn round_one(
    state: &mut State,
    id: BatchId,
    batch: &mut InferenceBatch,
    ci: usize,
    deadline_passed: bool,
) -> Result<Vec<Event>, TxError> {
    let check = &batch.checks[ci];
    let all_missed = check.round_checkers().all(|c| c.missed);
    let all_in = check
        .round_checkers()
        .all(|c| c.missed || c.revealed.is_some());
    let complete = all_in && check.opened.is_some();
    if !(all_missed || deadline_passed || complete) {
        return Ok(Vec::new());
    }
    let opened = check.opened.clone();
    // A commitment for another model or key, proven under the batch root, is the provider's
    // own evidence against the batch.
    if let Some(o) = &opened
        && (o.model != batch.model || o.key != batch.key)
    {
        return forfeit(state, id, batch, ci);
    }
    if all_missed {
        return finish(state, id, batch, ci, CheckOutcome::Unchecked, &[]);
    }
    let Some(o) = opened else {
        // A checker revealed and the provider never opened: it hid the response.
        return forfeit(state, id, batch, ci);
    };
    let claim = (o.request, o.output);
    let claims = revealed(&batch.checks[ci]);
    if claims.iter().all(|(_, c)| *c == claim) {
        let agreeing: Vec<AccountId> = claims.iter().map(|(who, _)| *who).collect();
        return finish(state, id, batch, ci, CheckOutcome::Agreed, &agreeing);
    }
    // Disagreement: tie-breakers are drawn from the next block's seed, which nobody who
    // revealed in this block could know.
    let check = &mut batch.checks[ci];
    check.round = 2;
    check.draw_at = Some(state.height().saturating_add(1));
    Ok(Vec::new())
}

fn round_two(
    state: &mut State,
    id: BatchId,
    batch: &mut InferenceBatch,
    ci: usize,
    deadline_passed: bool,
) -> Result<Vec<Event>, TxError> {
    let check = &batch.checks[ci];
    let all_in = check
        .round_checkers()
        .all(|c| c.missed || c.revealed.is_some());
    if !all_in && !deadline_passed {
        return Ok(Vec::new());
    }
    let Some(o) = check.opened.clone() else {
        // Round 2 starts only from an opened commitment.
        return Err(TxError::Overflow);
    };
    let provider_claim = (o.request, o.output);
    let checkers = revealed(check);
    let majority = strict_majority(provider_claim, &checkers);
    let holding = |w: ResponseClaim| -> Vec<AccountId> {
        checkers
            .iter()
            .filter(|(_, c)| *c == w)
            .map(|(who, _)| *who)
            .collect()
    };
    let dissenting = |w: ResponseClaim| -> Vec<AccountId> {
        checkers
            .iter()
            .filter(|(_, c)| *c != w)
            .map(|(who, _)| *who)
            .collect()
    };
    let index = check.index;
    let mut events = Vec::new();
    let outcome = match majority {
        None => CheckOutcome::NoMajority,
        Some(w) if w == provider_claim => {
            for c in dissenting(w) {
                events.push(slash(state, (id, index), c, &[batch.provider])?);
            }
            let agreeing = holding(w);
            events.extend(finish(
                state,
                id,
                batch,
                ci,
                CheckOutcome::CheckerWrong,
                &agreeing,
            )?);
            return Ok(events);
        }
        Some(w) => {
            let winners = holding(w);
            events.push(slash(state, (id, index), batch.provider, &winners)?);
            for c in dissenting(w) {
                events.push(slash(state, (id, index), c, &winners)?);
            }
            CheckOutcome::ProviderCaught
        }
    };
    events.extend(finish(state, id, batch, ci, outcome, &[])?);
    Ok(events)
}

/// The claim held by more than half of the provider's and every revealed checker's claims.
fn strict_majority(
    provider: ResponseClaim,
    checkers: &[(AccountId, ResponseClaim)],
) -> Option<ResponseClaim> {
    let mut all: Vec<ResponseClaim> = vec![provider];
    all.extend(checkers.iter().map(|(_, c)| *c));
    all.iter()
        .find(|c| all.iter().filter(|x| x == c).count() * 2 > all.len())
        .copied()
}

/// Slash `party` over response `index` of batch `id`, rewarding `winners`.
fn slash(
    state: &mut State,
    (id, index): (BatchId, u64),
    party: AccountId,
    winners: &[AccountId],
) -> Result<Event, TxError> {
    let s = take_slash(state, party, winners)?;
    Ok(Event::InferenceSlashed {
        batch: id,
        index,
        party,
        amount: s.amount,
        rewarded: s.rewarded,
        burned: s.burned,
    })
}

/// Take up to `amount` from the batch's hold (what it has left).
fn take_hold(batch: &mut InferenceBatch, amount: Amount) -> Result<Amount, TxError> {
    let take = amount.min(batch.held);
    batch.held = overflow(batch.held.checked_sub(take))?;
    Ok(take)
}

/// End the check at `ci` with `outcome`: refund the response to the key when the provider
/// lost or nobody won, and pay each of `agreeing` the response's price from the hold.
fn finish(
    state: &mut State,
    id: BatchId,
    batch: &mut InferenceBatch,
    ci: usize,
    outcome: CheckOutcome,
    agreeing: &[AccountId],
) -> Result<Vec<Event>, TxError> {
    let charged = batch.checks[ci]
        .opened
        .as_ref()
        .map_or(Amount::ZERO, |o| o.charged);
    let mut refunded = Amount::ZERO;
    if matches!(
        outcome,
        CheckOutcome::ProviderCaught | CheckOutcome::NoMajority
    ) {
        refunded = take_hold(batch, charged)?;
        batch.refunded = overflow(batch.refunded.checked_add(refunded))?;
        return_to_key(state, batch.key, refunded)?;
    }
    let mut checkers_paid = Amount::ZERO;
    for who in agreeing {
        let fee = take_hold(batch, charged)?;
        if fee.is_zero() {
            continue;
        }
        overflow(state.credit(*who, fee))?;
        add_work(state, *who, fee);
        checkers_paid = overflow(checkers_paid.checked_add(fee))?;
    }
    batch.checker_fees = overflow(batch.checker_fees.checked_add(checkers_paid))?;
    // The router reads reputation: a response checked and found right counts like a checked
    // lease result, one found wrong like a failed lease (the slash is counted by take_slash).
    if let Some(p) = state.providers.get_mut(&batch.provider) {
        match outcome {
            CheckOutcome::Agreed | CheckOutcome::CheckerWrong => p.reputation.checked += 1,
            CheckOutcome::ProviderCaught => p.reputation.failed += 1,
            CheckOutcome::NoMajority | CheckOutcome::Unchecked => {}
        }
        state.touch(StateKey::Provider(batch.provider));
    }
    let check = &mut batch.checks[ci];
    check.outcome = Some(outcome);
    Ok(vec![resolved(id, check, refunded, checkers_paid)])
}

fn resolved(id: BatchId, check: &ResponseCheck, refunded: Amount, paid: Amount) -> Event {
    Event::InferenceCheckResolved {
        batch: id,
        index: check.index,
        outcome: check.outcome.unwrap_or(CheckOutcome::Unchecked),
        refunded,
        checkers_paid: paid,
    }
}

/// The provider loses the whole batch: slashed (the reward to the checkers who revealed), the
/// whole hold back to the key, and the batch's other checks end unchecked.
fn forfeit(
    state: &mut State,
    id: BatchId,
    batch: &mut InferenceBatch,
    ci: usize,
) -> Result<Vec<Event>, TxError> {
    let index = batch.checks[ci].index;
    let winners: Vec<AccountId> = revealed(&batch.checks[ci])
        .into_iter()
        .map(|(who, _)| who)
        .collect();
    let mut events = vec![slash(state, (id, index), batch.provider, &winners)?];
    let everything = batch.held;
    let refunded = take_hold(batch, everything)?;
    batch.refunded = overflow(batch.refunded.checked_add(refunded))?;
    return_to_key(state, batch.key, refunded)?;
    for (i, check) in batch.checks.iter_mut().enumerate() {
        if check.outcome.is_some() {
            continue;
        }
        let (outcome, amount) = if i == ci {
            (CheckOutcome::ProviderCaught, refunded)
        } else {
            (CheckOutcome::Unchecked, Amount::ZERO)
        };
        check.outcome = Some(outcome);
        check.draw_at = None;
        events.push(resolved(id, check, amount, Amount::ZERO));
    }
    Ok(events)
}

/// Return `amount` the key paid: to its deposit, or to its owner once the key closed.
fn return_to_key(state: &mut State, key_id: AccountId, amount: Amount) -> Result<(), TxError> {
    if amount.is_zero() {
        return Ok(());
    }
    // Keys are never deleted, so a batch's key is always there.
    let mut key = *state
        .inference_key(&key_id)
        .ok_or(TxError::UnknownInferenceKey(key_id))?;
    key.spent = overflow(key.spent.checked_sub(amount))?;
    let grace = state.params().voucher_grace_blocks;
    let closed = key
        .revoked_at
        .is_some_and(|at| state.height() > at.saturating_add(grace));
    if closed {
        overflow(state.credit(key.owner, amount))?;
    } else {
        key.deposit = overflow(key.deposit.checked_add(amount))?;
    }
    overflow(state.put_key(key_id, key))?;
    Ok(())
}

/// Verified work earns emission, as a lease's does.
fn add_work(state: &mut State, who: AccountId, amount: Amount) {
    let work = state.epoch_work.entry(who).or_default();
    *work = work.checked_add(amount).unwrap_or(*work);
    state.touch(StateKey::EpochWork(who));
}

/// Every check has an outcome: pay the rest of the hold to the provider, less the fee.
fn release_if_done(
    state: &mut State,
    id: BatchId,
    batch: &mut InferenceBatch,
) -> Result<Vec<Event>, TxError> {
    if batch.phase != BatchPhase::Checking || batch.checks.iter().any(|c| c.outcome.is_none()) {
        return Ok(Vec::new());
    }
    let gross = batch.held;
    let fee = overflow(gross.bps(state.params().fee_bps))?;
    let provider_paid = overflow(gross.checked_sub(fee))?;
    let burned = collect_fee(state, fee)?;
    if !provider_paid.is_zero() {
        overflow(state.credit(batch.provider, provider_paid))?;
        add_work(state, batch.provider, gross);
    }
    if let Some(p) = state.providers.get_mut(&batch.provider) {
        p.earned = p.earned.checked_add(provider_paid).unwrap_or(p.earned);
    }
    state.touch(StateKey::Provider(batch.provider));
    batch.held = Amount::ZERO;
    batch.paid = provider_paid;
    batch.fee = fee;
    batch.phase = BatchPhase::Released;
    let accounted = [batch.paid, batch.fee, batch.refunded, batch.checker_fees]
        .into_iter()
        .try_fold(Amount::ZERO, Amount::checked_add);
    assert_eq!(
        accounted,
        Some(batch.amount),
        "batch {id}: paid + fee + refunded + checker fees must equal what it held"
    );
    Ok(vec![Event::InferenceReleased {
        batch: id,
        provider: batch.provider,
        provider_paid,
        fee,
        burned,
        refunded: batch.refunded,
        checker_fees: batch.checker_fees,
    }])
}

/// The grace of a revoked key ended: its deposit returns to its owner.
fn close_key(state: &mut State, key_id: AccountId) -> Result<Event, TxError> {
    let mut key = *state
        .inference_key(&key_id)
        .ok_or(TxError::UnknownInferenceKey(key_id))?;
    let returned = key.deposit;
    key.deposit = Amount::ZERO;
    overflow(state.credit(key.owner, returned))?;
    overflow(state.put_key(key_id, key))?;
    Ok(Event::InferenceKeyClosed {
        key: key_id,
        owner: key.owner,
        returned,
    })
}
