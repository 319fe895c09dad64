//! Provider challenges: sampled liveness and throughput proofs, at a cost per block that does
//! not grow with the number of providers.
//!
//! The computation and its check are specified in `orrery_types::challenge`. This module is
//! the state machine around them.
//!
//! # Life of a challenge
//!
//! 1. **Draw** (`begin_block` of height `h`, before the block's transactions, so from the
//!    providers as the previous block left them). At heights that are multiples of
//!    `challenge_every_blocks`, the seed picks `challenges_per_block` slots of the draw list —
//!    the bonded providers (stake > 0), each at its `draw_slot` — uniformly and independently:
//!    O(k), never a scan. A provider that already has a challenge open is skipped (not
//!    redrawn), so a block draws at most `k`. Offline providers are drawn like the others.
//!    Requests (`RequestChallenge` in block `h − 1`) are drawn too, on top of the `k`.
//!    The challenge records `seed = challenge_seed(block seed, provider, h)`, the block time,
//!    `n = challenge_dim` and `rows = challenge_rows(claimed_flops(hardware), …)`.
//! 2. **Answer**: `AnswerChallenge { drawn_at, rows, root }` from the provider, in a block at
//!    most `challenge_deadline_blocks` after the draw and at most
//!    [`Params::challenge_deadline_ms`] of block time after it; `rows` must be the
//!    challenge's. Refused otherwise, and refused a second time ("already answered").
//! 3. **Rows to open** (`begin_block` of the next height): that block's seed becomes the
//!    challenge's `open_seed`; it picks `challenge_open_rows` indices and Freivalds' vector.
//! 4. **Open**: `OpenChallenge { drawn_at, rows }` by `answered_at + challenge_open_blocks`.
//!    Refused (state unchanged, the provider may send it again in time) when the indices are
//!    not exactly the drawn ones in ascending order, a row is malformed (not `n` values, a
//!    value ≥ 2^24) or a proof does not lead to the root. Otherwise Freivalds' test decides:
//!    - a row fails: a wrong answer, handled as a miss (below);
//!    - all pass: the throughput `rows · 2n² / (elapsed_ms − challenge_latency_ms)` is
//!      measured against the claim (the record keeps `rows · 2n² / elapsed_ms`, a proven
//!      lower bound). At or above `challenge_min_claim_bps`: passed, the
//!      provider is online. Below: docked and offline like a miss, though the answer counts as
//!      answered (the machine was alive; it is just not what it claims).
//! 5. **Expiry** (`end_block`): a challenge still `Drawn` at `drawn_at + deadline_blocks`, or
//!    still `Opening` at `answered_at + open_blocks`, is missed.
//!
//! A miss (or a wrong answer, or an answer below the claim) burns
//! `challenge_miss_penalty_bps` of the provider's stake and marks it offline; a passing answer
//! marks it online again. A provider already offline that misses again is counted but not
//! docked again (its offers are already out of routing): downtime costs one penalty per
//! outage, not one per draw, so the cost of an outage does not depend on how often a network
//! of a given size draws each provider. Wrong answers and answers below the claim are docked
//! every time. Timers are indexed by height; nothing scans the providers.
//!
//! # What the chain records
//!
//! Per provider ([`ProvenRecord`]): challenges drawn, answered, missed, wrong, below the claim;
//! online; the last measured FLOP/s; the proven score (measured ÷ claimed, capped at 10000 bps,
//! averaged with weight ¼ per new answer). Uptime is answered ÷ decided (answered + missed): a challenge still open counts for neither.

use crate::apply::overflow;
use crate::entries::{Challenge, ChallengePhase, ProvenRecord};
use crate::params::Params;
use crate::receipt::{Event, MissReason, TxError};
use crate::state::State;
use orrery_types::amount::Amount;
use orrery_types::challenge::{
    ChallengeRow, FreivaldsCheck, challenge_flops, challenge_rows, challenge_seed, claimed_flops,
    open_indices, row_leaf,
};
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;

/// Slot `j` of the draw at a block with `seed` among `bonded` providers.
fn draw_slot(seed: &Hash, j: u64, bonded: u64) -> u64 {
    let x = crate::verify::draw_u64(seed, b"orrery/challenge/draw", j, &[]);
    ((u128::from(x) * u128::from(bonded)) >> 64) as u64
}

/// Start of a block: requests from the previous block and the seed's sample are drawn, and
/// challenges answered in the previous block get the rows they must open.
pub(crate) fn begin_block(state: &mut State, seed: &Hash) -> Vec<Event> {
    let height = state.height();
    let due: Vec<AccountId> = state
        .challenge_timers
        .range(..=(height, AccountId([0xff; 20])))
        .map(|(_, id)| *id)
        .collect();
    let mut events = Vec::new();
    for provider in due {
        let Some(c) = state.challenges.get(&provider).copied() else {
            continue;
        };
        match c.phase {
            // A provider that unbonded everything since its request is no longer challenged.
            ChallengePhase::Requested { .. }
                if state.provider(&provider).is_none_or(|p| p.stake.is_zero()) =>
            {
                state.put_challenge(provider, None);
            }
            ChallengePhase::Requested { .. } => events.extend(draw(state, provider, seed, true)),
            ChallengePhase::Answered {
                root,
                elapsed_ms,
                answered_at,
            } => {
                let phase = ChallengePhase::Opening {
                    root,
                    elapsed_ms,
                    answered_at,
                    open_seed: *seed,
                };
                state.put_challenge(provider, Some(Challenge { phase, ..c }));
            }
            // Expire at the end of a block.
            ChallengePhase::Drawn | ChallengePhase::Opening { .. } => {}
        }
    }
    let params = state.params();
    let (k, every) = (params.challenges_per_block, params.challenge_every_blocks);
    let bonded = state.draw_list.len() as u64;
    if k > 0 && bonded > 0 && height.is_multiple_of(every) {
        for j in 0..u64::from(k) {
            let provider = state.draw_list[draw_slot(seed, j, bonded) as usize];
            if !state.challenges.contains_key(&provider) {
                events.extend(draw(state, provider, seed, false));
            }
        }
    }
    events
}

/// Open a challenge for `provider` at this height.
fn draw(state: &mut State, provider: AccountId, seed: &Hash, requested: bool) -> Option<Event> {
    let height = state.height();
    let params = state.params();
    let (n, target, open_rows) = (
        params.challenge_dim,
        params.challenge_target_ms,
        u64::from(params.challenge_open_rows),
    );
    let p = state.providers.get_mut(&provider)?;
    let claimed = claimed_flops(&p.offer.hardware);
    let rows = challenge_rows(claimed, n, target, open_rows);
    p.proof.challenges_drawn += 1;
    state.touch(crate::state::StateKey::Provider(provider));
    let challenge = Challenge {
        drawn_at: height,
        drawn_ms: state.globals.time_ms,
        seed: challenge_seed(seed, &provider, height),
        dim: n,
        rows,
        claimed_flops: claimed,
        phase: ChallengePhase::Drawn,
    };
    state.put_challenge(provider, Some(challenge));
    Some(Event::ChallengeDrawn {
        provider,
        drawn_at: height,
        rows,
        requested,
    })
}

/// End of a block: challenges whose answer or opening window closed are missed.
pub(crate) fn end_block(state: &mut State) -> Vec<Event> {
    let height = state.height();
    let due: Vec<AccountId> = state
        .challenge_timers
        .range(..=(height, AccountId([0xff; 20])))
        .map(|(_, id)| *id)
        .collect();
    let mut events = Vec::new();
    for provider in due {
        let Some(c) = state.challenges.get(&provider).copied() else {
            continue;
        };
        let reason = match c.phase {
            ChallengePhase::Drawn => MissReason::NotAnswered,
            ChallengePhase::Opening { .. } => MissReason::NotOpened,
            // Handled at the start of the next block.
            ChallengePhase::Requested { .. } | ChallengePhase::Answered { .. } => continue,
        };
        if let Some(e) = miss(state, provider, &c, reason) {
            events.push(e);
        }
    }
    events
}

/// Burn `challenge_miss_penalty_bps` of the provider's stake; returns what was burned.
fn dock(state: &mut State, provider: AccountId) -> Option<Amount> {
    let stake = state.provider(&provider)?.stake;
    let docked = stake.bps(state.params().challenge_miss_penalty_bps)?;
    if !docked.is_zero() {
        state.sub_stake(provider, docked)?;
        state.burn(docked)?;
    }
    Some(docked)
}

/// Close `challenge` as missed: dock, mark offline, count it. A provider already offline is
/// not docked again for not answering (downtime costs one penalty per outage, whatever the
/// draw rate of the network); a wrong answer is always docked.
fn miss(
    state: &mut State,
    provider: AccountId,
    challenge: &Challenge,
    reason: MissReason,
) -> Option<Event> {
    let online = state.provider(&provider)?.proof.online;
    let docked = if online || reason == MissReason::WrongAnswer {
        dock(state, provider)?
    } else {
        Amount::ZERO
    };
    let p = state.providers.get_mut(&provider)?;
    p.proof.challenges_missed += 1;
    if reason == MissReason::WrongAnswer {
        p.proof.challenges_wrong += 1;
    }
    p.proof.online = false;
    state.touch(crate::state::StateKey::Provider(provider));
    state.put_challenge(provider, None);
    Some(Event::ChallengeMissed {
        provider,
        drawn_at: challenge.drawn_at,
        reason,
        docked,
    })
}

/// The sender's challenge drawn at `drawn_at`, if it has one.
fn challenge_of(state: &State, who: AccountId, drawn_at: u64) -> Result<Challenge, TxError> {
    state
        .challenges
        .get(&who)
        .filter(|c| c.drawn_at == drawn_at && !matches!(c.phase, ChallengePhase::Requested { .. }))
        .copied()
        .ok_or(TxError::NoSuchChallenge {
            provider: who,
            drawn_at,
        })
}

/// `AnswerChallenge`: record the root and the elapsed block time.
pub(crate) fn answer(
    state: &mut State,
    who: AccountId,
    drawn_at: u64,
    rows: u64,
    root: Hash,
) -> Result<Vec<Event>, TxError> {
    let c = challenge_of(state, who, drawn_at)?;
    if c.phase != ChallengePhase::Drawn {
        return Err(TxError::AlreadyAnswered { drawn_at });
    }
    let params = state.params();
    let elapsed_ms = state.globals.time_ms.saturating_sub(c.drawn_ms);
    let blocks = state.height() - c.drawn_at;
    let deadline_ms = params.challenge_deadline_ms();
    if elapsed_ms > deadline_ms || blocks > params.challenge_deadline_blocks {
        return Err(TxError::ChallengeAfterDeadline {
            elapsed_ms,
            deadline_ms,
            blocks,
            deadline_blocks: params.challenge_deadline_blocks,
        });
    }
    if rows != c.rows {
        return Err(TxError::WrongChallengeRows {
            expected: c.rows,
            got: rows,
        });
    }
    let phase = ChallengePhase::Answered {
        root,
        elapsed_ms,
        answered_at: state.height(),
    };
    state.put_challenge(who, Some(Challenge { phase, ..c }));
    Ok(vec![Event::ChallengeAnswered {
        provider: who,
        drawn_at,
        elapsed_ms,
    }])
}

/// `OpenChallenge`: check the opened rows and close the challenge.
pub(crate) fn open(
    state: &mut State,
    who: AccountId,
    drawn_at: u64,
    rows: &[ChallengeRow],
) -> Result<Vec<Event>, TxError> {
    let c = challenge_of(state, who, drawn_at)?;
    let ChallengePhase::Opening {
        root,
        elapsed_ms,
        open_seed,
        ..
    } = c.phase
    else {
        let why = match c.phase {
            ChallengePhase::Drawn => "it is not answered yet",
            _ => "its rows are drawn by the block after the answer; open it from then on",
        };
        return Err(TxError::NotOpenable { drawn_at, why });
    };
    let n = c.dim as usize;
    let expected = open_indices(
        &c.seed,
        &open_seed,
        c.rows,
        u64::from(state.params().challenge_open_rows),
    );
    let got: Vec<u64> = rows.iter().map(|r| r.index).collect();
    if got != expected {
        return Err(TxError::WrongOpenedRows { got, expected });
    }
    for r in rows {
        let values = r.values.as_slice();
        orrery_types::challenge::check_row_shape(r.index, values, n)
            .map_err(|e| TxError::MalformedMatrix(e.to_string()))?;
        if r.proof.index != r.index
            || r.proof.leaf_count != c.rows
            || !r.proof.verify(&root, &row_leaf(r.index, values))
        {
            return Err(TxError::BadChallengeProof { row: r.index });
        }
    }
    // Every check above refuses without a change; from here the challenge closes.
    let check = FreivaldsCheck::new(&c.seed, &open_seed, n);
    if rows
        .iter()
        .any(|r| check.check_row(r.index, r.values.as_slice()).is_err())
    {
        return Ok(miss(state, who, &c, MissReason::WrongAnswer)
            .into_iter()
            .collect());
    }
    overflow(measure(state, who, &c, elapsed_ms)).map(|e| vec![e])
}

/// Throughput of a correct answer and its score against the claim in basis points (10000 when
/// nothing was claimed).
///
/// The two use different clocks on purpose. The score — what docks a provider — divides by
/// the compute time, `elapsed − challenge_latency_ms`, so an honest machine is not blamed for
/// block times and network delay. The recorded FLOP/s divide by the whole elapsed time: a
/// proven lower bound (the work cannot have taken longer), which stays meaningful when an
/// answer lands inside the latency allowance, where the compute time is not measurable.
fn throughput(params: &Params, c: &Challenge, elapsed_ms: u64) -> (u64, u32) {
    let flop = u128::from(challenge_flops(c.rows, c.dim)) * 1000;
    let compute_ms = elapsed_ms
        .saturating_sub(params.challenge_latency_ms)
        .max(1);
    let estimated = flop / u128::from(compute_ms);
    let proven = u64::try_from(flop / u128::from(elapsed_ms.max(1))).unwrap_or(u64::MAX);
    let score = if c.claimed_flops == 0 {
        10_000
    } else {
        (estimated * 10_000 / u128::from(c.claimed_flops)).min(10_000) as u32
    };
    (proven, score)
}

/// Record a correct answer: passed, or below the claim (docked, offline, still alive).
fn measure(state: &mut State, who: AccountId, c: &Challenge, elapsed_ms: u64) -> Option<Event> {
    let params = state.params();
    let min_claim_bps = params.challenge_min_claim_bps;
    let (proven_flops, score_bps) = throughput(params, c, elapsed_ms);
    let below = score_bps < u32::from(min_claim_bps);
    let docked = if below {
        dock(state, who)?
    } else {
        Amount::ZERO
    };
    let height = state.height();
    let p = state.providers.get_mut(&who)?;
    record_answer(&mut p.proof, proven_flops, score_bps, below, height);
    state.touch(crate::state::StateKey::Provider(who));
    state.put_challenge(who, None);
    Some(if below {
        Event::ChallengeBelowClaim {
            provider: who,
            drawn_at: c.drawn_at,
            proven_flops,
            score_bps,
            min_claim_bps,
            docked,
        }
    } else {
        Event::ChallengePassed {
            provider: who,
            drawn_at: c.drawn_at,
            proven_flops,
            score_bps,
        }
    })
}

fn record_answer(proof: &mut ProvenRecord, flops: u64, score_bps: u32, below: bool, at: u64) {
    proof.proven_score_bps = if proof.challenges_answered == 0 {
        score_bps
    } else {
        (3 * proof.proven_score_bps + score_bps) / 4
    };
    proof.challenges_answered += 1;
    proof.proven_flops = flops;
    if below {
        proof.below_claim += 1;
        proof.online = false;
    } else {
        proof.online = true;
        proof.last_answered_at = at;
    }
}

/// `RequestChallenge`: a bonded provider without an open challenge gets one next block.
pub(crate) fn request(state: &mut State, who: AccountId) -> Result<Vec<Event>, TxError> {
    let p = state.provider(&who).ok_or(TxError::NotAProvider(who))?;
    if p.stake.is_zero() {
        return Err(TxError::NotBonded(who));
    }
    if let Some(c) = state.challenges.get(&who) {
        let at = match c.phase {
            ChallengePhase::Requested { at } => at,
            _ => c.drawn_at,
        };
        return Err(TxError::ChallengeOpen { at });
    }
    let requested = Challenge {
        drawn_at: 0,
        drawn_ms: 0,
        seed: Hash::ZERO,
        dim: 0,
        rows: 0,
        claimed_flops: 0,
        phase: ChallengePhase::Requested { at: state.height() },
    };
    state.put_challenge(who, Some(requested));
    Ok(vec![Event::ChallengeRequested { provider: who }])
}

#[cfg(test)]
mod tests;
