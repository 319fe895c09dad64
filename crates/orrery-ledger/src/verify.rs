//! Proof of useful work: sealed results, random checks, bisection disputes and slashing.
//!
//! # Life of a result
//!
//! 1. **Seal.** The provider sends `CommitResult { seal, usage }` with
//!    `seal = result_seal(lease, provider, claim)`, where the claim is the output hash, the
//!    checkpoint root and the step count. The seal binds the claim to its author, so a seal
//!    shows nothing another party could copy.
//! 2. **Draw.** At the start of the *next* block, before its transactions, that block's seed
//!    (which the chain derives from consensus after the commitment was fixed, see
//!    `docs/protocol.md`) decides whether the result is checked and by whom, among the providers
//!    as the previous block left them (so nobody can bond or register into a draw whose seed it
//!    knows). `sampled`: checked with probability
//!    [`Params::sample_bps`](crate::params::Params::sample_bps) by one verifier; `redundant { k }`:
//!    always, by `k − 1` verifiers. Verifiers are bonded providers (never the lease's provider or
//!    requester) whose hardware fits the lease, chosen uniformly by the seed. `none` skips the
//!    draw. Escrow reserved for verifiers that were not drawn is refunded at once.
//! 3. **Check.** Each verifier re-runs the job and seals its own claim (`CommitCheck`) within
//!    `verify_blocks` plus the provider's running time. A verifier that misses it is docked
//!    like a timeout and dropped.
//! 4. **Reveal.** Once every verifier has sealed (or sealing closed), every party reveals
//!    (`RevealResult`) within `reveal_blocks`; a reveal must match its seal. Nobody sees another
//!    claim before committing its own, so a lazy verifier cannot copy. A provider that does not
//!    reveal is slashed and the requester refunded (it cannot duck a check by going quiet).
//! 5. **Resolve.** All equal: the lease settles at once (checked) or after the challenge window
//!    (unchecked); agreeing verifiers are paid the same as the provider. A verifier disagrees:
//!    a **dispute** between the provider and the first dissenter.
//!
//! # Disputes
//!
//! - Different step counts: the referee reads the count from the bundle's manifest.
//! - Same checkpoint root, different outputs: the referee runs `output(state_n)`.
//! - Different roots: both parties descend their checkpoint trees (RFC 6962 shape) together.
//!   Each round, each party posts the two children of its current node (`DisputeMove`); they
//!   must hash to that node. Where the left children differ the game goes left, otherwise right
//!   (the left subtrees are then equal, so every leaf before the new node agrees). After
//!   `⌈log2(n + 1)⌉` rounds it reaches the first differing checkpoint `d`. Either party then
//!   sends `Adjudicate` with the bundle and the agreed `state_(d−1)` plus its Merkle proof; the
//!   referee ([`crate::referee`]) runs `init` (d = 0) or step `d − 1` and compares the
//!   checkpoint with both claims.
//! - A party that misses a round's deadline loses; if nobody gives the referee its input in
//!   time, both lose.
//! - The referee cannot execute the step (over its fuel bound, or a runtime it does not host):
//!   `tiebreak_verifiers` more verifiers are drawn, and the claim held by a strict majority of
//!   all revealed claims wins. No majority: the requester is refunded and nobody is slashed.
//!
//! # Failure claims
//!
//! A job can fail by itself, the same way on every machine: it runs out of its fuel, traps,
//! hits a memory or size limit, or cannot even be loaded (a bundle that does not decode, a
//! module that does not compile). That is a result, not a fault of the provider's: the
//! provider commits a **failure claim** — a [`ResultClaim`] whose `failure` says where
//! ([`FailedAt`]: init, step `k` or output) and why ([`FailureReason`]), with its usage (the
//! fuel the run burned, the failed call's included). It is sealed, drawn, checked, revealed and
//! disputed exactly like a claim of success:
//!
//! - **Shape.** Its checkpoint tree still has `steps + 1` leaves: the checkpoints of the states
//!   the run reached, then the failure's marker `M = JobFailure::marker()` on every later leaf
//!   (`orrery_types::workload`, "Runs that fail"). Its output hash is zero; its *ending* (what
//!   an output dispute compares) is `M`, while a claim of success ends in
//!   `H("orrery/output/v1", output)`. The reveal is refused (`MalformedClaim`) if the output is
//!   not zero or the failing step is not below the step count; a party may attach a note (the
//!   runtime's message, at most `MAX_FAILURE_NOTE_BYTES`) that is shown but never compared.
//! - **Agreement.** A verifier that re-executes and fails the same way makes the identical
//!   claim, so the lease settles as usual.
//! - **Disputes** need no new game. Bisection reaches the first leaf `d` where the claims
//!   differ, and the referee decides it from the agreed leaf `d − 1`:
//!   - leaf `d − 1` is a state's checkpoint: the referee runs the step (or `init`, or
//!     `output`) and gets either a state — the honest leaf is its checkpoint — or the job's
//!     deterministic failure — the honest leaf is that failure's marker;
//!   - leaf `d − 1` is a marker (the disputant sends the failure's encoding instead of a state,
//!     proven as leaf `d − 1`): a failure is absorbing, so the honest leaf `d` is the same
//!     marker, with no execution at all.
//!
//!   The same holds for an output dispute (the agreed leaf is `n`). A bundle that does not
//!   decode but hashes to the lease's job is a job that fails at init (`InvalidJob`) with 0
//!   steps. So a claim of failure for a job that succeeds, a failure at another step or for
//!   another reason, and a claim of success for a job that fails all lose to the honest claim.
//! - **Payment.** When it stands, a failure claim settles like any result: the requester pays
//!   the agreed price for the claimed usage (like gas for a reverted transaction), the rest of
//!   the escrow returns to it, and the provider is neither docked nor marked down (the lease
//!   counts as settled; the final state names the failure).
//! - Only a wall-clock timeout (nondeterministic: "no result") or a provider that never shows
//!   is a penalty; neither can become a failure claim.
//!
//! # Checked billing
//!
//! The metered units (wasm fuel, ML operations) are part of the sealed [`ResultClaim`]
//! (`units`): they are as deterministic as the output, so a verifier's re-execution meters the
//! same number. The provider's revealed units, capped at the lease's `max_units`, must equal
//! those of its `CommitResult` usage (refused otherwise: `UnitsMismatch`), so what is billed is
//! what was sealed and checked. A
//! verifier whose claim differs from the provider's only in units dissents like any other:
//! the referee cannot decide a sum over the whole run by executing one step (fuel per step is
//! deterministic, but the total needs every step), so such a dispute goes straight to
//! `tiebreak_verifiers` independent re-executions, and the claim of the strict majority wins;
//! the loser is slashed like a wrong output (an overbilling provider loses its lease's pay and
//! `slash_bps` of its stake, and the requester is refunded). A dispute over outputs or
//! checkpoints is ruled by the referee as before; its ruling does not cover units, but a
//! provider can only win it with the right output, and an honest verifier's claim with the
//! same output and other units then dissents again (the next dissenter is disputed).
//! Wall-clock seconds are not reproducible and stay self-reported, capped by the chain time
//! elapsed since `StartLease`.
//!
//! # Verdicts
//!
//! A loser is slashed `slash_bps` of its stake (and unbonding stake); `slash_reward_bps` of that
//! goes to the winner, the rest is burned. Every other claim equal to the loser's is slashed
//! too (it is the same proven-wrong claim). When the provider loses, the requester gets its
//! whole escrow back and the lease ends `Failed`. When a verifier loses, the next dissenter (if
//! any) disputes with the provider, and otherwise the lease settles.

use crate::apply::{lease_for, overflow, settle_with};
use crate::entries::{
    Check, CheckPhase, Children, Claim, ClaimStatus, Dispute, DisputeKind, Lease, LeaseState,
};
use crate::receipt::{Event, TxError};
use crate::referee::{self, Piece, Referee, Ruling};
use crate::state::{State, StateKey};
use orrery_types::amount::Amount;
use orrery_types::codec::BoundedVec;
use orrery_types::crypto::AccountId;
use orrery_types::hash::{Hash, HashWriter};
use orrery_types::merkle::{MerkleProof, node_hash};
use orrery_types::resources::Usage;
use orrery_types::tx::{FailureNote, LeaseId, ResultClaim, Verification, result_seal};
use orrery_types::workload::{FailedAt, FailureReason, JobFailure, checkpoint};

/// Verifiers a verification level pays for from escrow (the lease locks `1 + this` times its
/// maximum cost).
pub fn reserved_verifiers(verification: Verification) -> u8 {
    match verification {
        Verification::None => 0,
        Verification::Sampled => 1,
        Verification::Redundant { k } => k.saturating_sub(1),
    }
}

/// A number drawn from the block seed for one purpose and record (a lease, or an inference
/// batch).
pub(crate) fn draw_u64(seed: &Hash, tag: &[u8], lease: LeaseId, extra: &[u8]) -> u64 {
    let mut h = HashWriter::new();
    h.update(tag)
        .update(seed.as_bytes())
        .update(&lease.to_be_bytes())
        .update(extra);
    let out = h.finish();
    let mut b = [0u8; 8];
    b.copy_from_slice(&out.as_bytes()[..8]);
    u64::from_be_bytes(b)
}

/// Largest power of two strictly below `size` (`size ≥ 2`): the RFC 6962 split.
fn split(size: u64) -> u64 {
    1u64 << (63 - (size - 1).leading_zeros())
}

/// `CommitResult`: the provider seals its result.
pub(crate) fn commit_result(
    state: &mut State,
    who: AccountId,
    id: LeaseId,
    seal: Hash,
    usage: Usage,
) -> Result<Vec<Event>, TxError> {
    let lease = lease_for(state, id)?;
    if lease.provider != who {
        return Err(TxError::NotAuthorized { role: "provider" });
    }
    let LeaseState::Running {
        started_ms,
        started_at,
    } = lease.state
    else {
        return Err(TxError::WrongLeaseState {
            lease: id,
            state: lease.state.name(),
            needed: "running",
        });
    };
    if state.height() > lease.deadline {
        return Err(TxError::PastDeadline {
            limit: lease.deadline,
        });
    }
    // Seconds can be claimed only up to the chain time elapsed since the start (rounded up).
    let elapsed_s = state
        .globals
        .time_ms
        .saturating_sub(started_ms)
        .div_ceil(1000);
    if usage.units > lease.terms.max_units
        || usage.seconds > lease.terms.max_seconds
        || usage.seconds > elapsed_s
    {
        return Err(TxError::UsageAboveLimit);
    }
    let height = state.height();
    let new = match lease.verification {
        // Nothing to draw: the provider reveals straight away.
        Verification::None => LeaseState::Checking(Box::new(Check {
            usage,
            committed_at: height,
            p_bps: 0,
            phase: CheckPhase::Revealing,
            due: height.saturating_add(state.params().reveal_blocks),
            by_majority: false,
            funded: 0,
            claims: claims_of(vec![sealed_claim(who, seal)])?,
        })),
        _ => LeaseState::Sealed {
            seal,
            usage,
            committed_at: height,
            started_at,
        },
    };
    overflow(state.set_lease_state(id, new))?;
    Ok(vec![Event::ResultCommitted { lease: id, seal }])
}

fn sealed_claim(party: AccountId, seal: Hash) -> Claim {
    Claim {
        party,
        seal: Some(seal),
        revealed: None,
        status: ClaimStatus::Active,
    }
}

fn claims_of(v: Vec<Claim>) -> Result<BoundedVec<Claim, { crate::entries::MAX_CLAIMS }>, TxError> {
    BoundedVec::new(v).map_err(|_| TxError::Overflow)
}

/// Draws of the draw list per wanted verifier before [`pick_verifiers`] falls back to a scan.
/// A draw costs one provider lookup; 1,024 of them find an eligible provider unless fewer than
/// about 1 in 100 bonded providers fit the lease (missed with probability `(1 − share)^1024`:
/// 3·10⁻⁵ at 1%), so the scan is left to leases almost no one can check.
pub const VERIFIER_DRAW_TRIES: u64 = 1_024;

/// May provider `p` be drawn to check anyone's work (a lease, an inference response, a cluster
/// round)? Bonded to at least its minimum stake, and online: a provider that missed its last
/// challenge (see [`crate::challenge`]) has left routing, and leaves checking with it until it
/// answers again — drawn, it would likely miss the check's deadline, leaving the work
/// unchecked and itself docked, and it would earn verifier pay while its offers earn nothing.
pub(crate) fn may_check(params: &crate::params::Params, p: &crate::entries::Provider) -> bool {
    p.proof.online
        && !p.stake.is_zero()
        && params
            .min_stake(&p.offer.hardware)
            .is_some_and(|m| p.stake >= m)
}

/// May `id` check `lease`? [`may_check`], hardware that fits, not excluded.
fn may_verify(state: &State, lease: &Lease, id: &AccountId, exclude: &[AccountId]) -> bool {
    let params = state.params();
    !exclude.contains(id)
        && state
            .provider(id)
            .is_some_and(|p| p.offer.hardware.fits(&lease.terms.resources) && may_check(params, p))
}

/// `n` distinct providers that may check `lease`, drawn uniformly by the seed.
///
/// Draw `j` takes slot `H("orrery/verifier/slot", seed, lease, j)` of the committed draw list
/// (every bonded provider, see [`crate::challenge`]) and keeps it when it is eligible and not
/// already taken: O(n) lookups, whatever the number of providers. Only when
/// [`VERIFIER_DRAW_TRIES`]` · n` draws leave places empty (almost no provider fits) are the
/// rest taken from a scan of every provider in the order of `H("orrery/verifier", seed, lease,
/// id)`, so a lease that someone can check is always checked.
fn pick_verifiers(
    state: &State,
    lease: &Lease,
    n: usize,
    seed: &Hash,
    exclude: &[AccountId],
) -> Vec<AccountId> {
    draw_checkers(
        state,
        n,
        |j| draw_u64(seed, b"orrery/verifier/slot", lease.id, &j.to_be_bytes()),
        |id| draw_u64(seed, b"orrery/verifier", lease.id, &id.0),
        |id| may_verify(state, lease, id, exclude),
    )
}

/// `n` distinct providers for which `eligible` holds, drawn uniformly from the committed draw
/// list: draw `j` takes slot `slot(j)` (a uniform 64-bit value scaled to the list) and keeps
/// it when eligible and not yet taken — O(n) lookups whatever the number of providers. Only
/// when [`VERIFIER_DRAW_TRIES`]` · n` draws leave places empty (almost no provider is eligible)
/// are the rest taken from a scan of every provider in the order of `scan(id)`, so work that
/// someone can check is always checked. The one draw of every checker of leases and cluster
/// rounds.
pub(crate) fn draw_checkers(
    state: &State,
    n: usize,
    slot: impl Fn(u64) -> u64,
    scan: impl Fn(&AccountId) -> u64,
    eligible: impl Fn(&AccountId) -> bool,
) -> Vec<AccountId> {
    if n == 0 {
        return Vec::new();
    }
    let mut picked: Vec<AccountId> = Vec::with_capacity(n);
    let bonded = state.draw_list.len() as u64;
    if bonded > 0 {
        let tries = VERIFIER_DRAW_TRIES.saturating_mul(n as u64);
        for j in 0..tries {
            if picked.len() == n {
                break;
            }
            let x = slot(j);
            let index = ((u128::from(x) * u128::from(bonded)) >> 64) as usize;
            let id = state.draw_list[index];
            if !picked.contains(&id) && eligible(&id) {
                picked.push(id);
            }
        }
    }
    if picked.len() < n {
        let mut rest: Vec<(u64, AccountId)> = state
            .providers
            .keys()
            .filter(|id| !picked.contains(id) && eligible(id))
            .map(|id| (scan(id), *id))
            .collect();
        rest.sort();
        let missing = n - picked.len();
        picked.extend(rest.into_iter().take(missing).map(|(_, id)| id));
    }
    debug_assert!(picked.len() <= n, "at most n checkers");
    picked
}

/// Start of the block after a commitment: draw whether and by whom the result is checked.
pub(crate) fn draw(state: &mut State, id: LeaseId, seed: &Hash) -> Result<Vec<Event>, TxError> {
    let lease = lease_for(state, id)?.clone();
    let LeaseState::Sealed {
        seal,
        usage,
        committed_at,
        started_at,
    } = lease.state
    else {
        return Ok(Vec::new());
    };
    let params = state.params().clone();
    let max_cost = overflow(lease.terms.max_cost())?;
    let (stake, checked) = state
        .provider(&lease.provider)
        .map_or((Amount::ZERO, 0), |p| (p.stake, p.reputation.checked));
    let (p_bps, wanted) = match lease.verification {
        Verification::None => (0, 0),
        Verification::Sampled => {
            let p = params.sample_bps(max_cost, stake, checked);
            let roll = draw_u64(seed, b"orrery/sample", id, &[]) % 10_000;
            (p, usize::from(roll < u64::from(p)))
        }
        Verification::Redundant { k } => (10_000, usize::from(k.saturating_sub(1))),
    };
    let verifiers = pick_verifiers(
        state,
        &lease,
        wanted,
        seed,
        &[lease.provider, lease.requester],
    );
    // Give back the escrow reserved for verifiers that will not run.
    let keep = overflow(max_cost.checked_mul(1 + verifiers.len() as u128))?;
    if lease.escrow > keep {
        let refund = overflow(lease.escrow.checked_sub(keep))?;
        overflow(state.set_escrow(id, keep))?;
        overflow(state.credit(lease.requester, refund))?;
    }
    let height = state.height();
    let mut claims = vec![sealed_claim(lease.provider, seal)];
    claims.extend(verifiers.iter().map(|v| Claim {
        party: *v,
        seal: None,
        revealed: None,
        status: ClaimStatus::Active,
    }));
    let (phase, due) = if verifiers.is_empty() {
        (
            CheckPhase::Revealing,
            height.saturating_add(params.reveal_blocks),
        )
    } else {
        // Verifiers get the provider's own running time on top of the fixed allowance.
        let run = committed_at.saturating_sub(started_at);
        (
            CheckPhase::Sealing,
            height
                .saturating_add(params.verify_blocks)
                .saturating_add(run),
        )
    };
    let check = Check {
        usage,
        committed_at,
        p_bps,
        phase,
        due,
        by_majority: false,
        funded: verifiers.len() as u8,
        claims: claims_of(claims)?,
    };
    overflow(state.set_lease_state(id, LeaseState::Checking(Box::new(check))))?;
    Ok(vec![Event::CheckDrawn {
        lease: id,
        p_bps,
        unfilled: (wanted - verifiers.len()) as u8,
        verifiers,
    }])
}

fn checking(lease: &Lease) -> Result<Check, TxError> {
    match &lease.state {
        LeaseState::Checking(c) => Ok((**c).clone()),
        other => Err(TxError::WrongLeaseState {
            lease: lease.id,
            state: other.name(),
            needed: "checking",
        }),
    }
}

fn all_sealed(check: &Check) -> bool {
    check
        .claims
        .as_slice()
        .iter()
        .all(|c| c.status != ClaimStatus::Active || c.seal.is_some())
}

fn all_revealed(check: &Check) -> bool {
    check
        .claims
        .as_slice()
        .iter()
        .all(|c| c.status != ClaimStatus::Active || c.revealed.is_some())
}

/// `CommitCheck`: a drawn verifier seals its claim.
pub(crate) fn commit_check(
    state: &mut State,
    who: AccountId,
    id: LeaseId,
    seal: Hash,
) -> Result<Vec<Event>, TxError> {
    let lease = lease_for(state, id)?;
    let mut check = checking(lease)?;
    let idx = check
        .claims
        .as_slice()
        .iter()
        .skip(1)
        .position(|c| c.party == who && c.status == ClaimStatus::Active)
        .map(|i| i + 1)
        .ok_or(TxError::NotAParty {
            lease: id,
            who,
            role: "drawn verifier",
        })?;
    if check.claims.as_slice()[idx].seal.is_some() {
        return Err(TxError::AlreadySealed { lease: id, who });
    }
    if check.phase != CheckPhase::Sealing {
        return Err(TxError::WrongPhase {
            lease: id,
            phase: "revealing",
            what: "sealing has closed",
        });
    }
    check.claims.as_mut_slice()[idx].seal = Some(seal);
    if all_sealed(&check) {
        check.phase = CheckPhase::Revealing;
        check.due = state.height().saturating_add(state.params().reveal_blocks);
    }
    overflow(state.set_lease_state(id, LeaseState::Checking(Box::new(check))))?;
    Ok(vec![Event::CheckSealed {
        lease: id,
        verifier: who,
    }])
}

/// `RevealResult`: a party opens its seal.
pub(crate) fn reveal(
    state: &mut State,
    who: AccountId,
    id: LeaseId,
    claim: ResultClaim,
    note: &FailureNote,
) -> Result<Vec<Event>, TxError> {
    if let Some(why) = claim.malformed() {
        return Err(TxError::MalformedClaim(why));
    }
    if claim.failure.is_none() && !note.as_str().is_empty() {
        return Err(TxError::NoteWithoutFailure);
    }
    let lease = lease_for(state, id)?;
    let mut check = checking(lease)?;
    let idx = check
        .claims
        .as_slice()
        .iter()
        .position(|c| c.party == who && c.status == ClaimStatus::Active)
        .ok_or(TxError::NotAParty {
            lease: id,
            who,
            role: "party with a sealed claim",
        })?;
    if check.phase == CheckPhase::Sealing {
        return Err(TxError::WrongPhase {
            lease: id,
            phase: "sealing",
            what: "reveal once every verifier has sealed its claim",
        });
    }
    let c = &check.claims.as_slice()[idx];
    let Some(seal) = c.seal else {
        return Err(TxError::NotAParty {
            lease: id,
            who,
            role: "party with a sealed claim",
        });
    };
    if c.revealed.is_some() {
        return Err(TxError::AlreadyRevealed { lease: id, who });
    }
    if result_seal(id, &who, &claim) != seal {
        return Err(TxError::SealMismatch { seal });
    }
    // The provider is billed exactly the units it sealed, up to the lease's maximum (see
    // "Checked billing").
    if idx == 0 && claim.units.min(lease.terms.max_units) != check.usage.units {
        return Err(TxError::UnitsMismatch {
            sealed: claim.units,
            committed: check.usage.units,
        });
    }
    check.claims.as_mut_slice()[idx].revealed = Some(claim);
    let mut events = vec![Event::ResultRevealed {
        lease: id,
        party: who,
        output: claim.output,
        checkpoint_root: claim.checkpoint_root,
        steps: claim.steps,
        failure: claim.failure,
        note: note.as_str().to_string(),
    }];
    if all_revealed(&check) {
        events.extend(resolve(state, id, check)?);
    } else {
        overflow(state.set_lease_state(id, LeaseState::Checking(Box::new(check))))?;
    }
    Ok(events)
}

/// Dock a party that missed a check deadline, like a timeout, and drop it from the check.
fn absent(state: &mut State, lease: &Lease, check: &mut Check, idx: usize) -> Option<Event> {
    let party = check.claims.as_slice()[idx].party;
    check.claims.as_mut_slice()[idx].status = ClaimStatus::Absent;
    let penalty = lease
        .terms
        .max_cost()?
        .bps(state.params().timeout_penalty_bps)?;
    let stake = state.provider(&party).map_or(Amount::ZERO, |p| p.stake);
    let docked = penalty.min(stake);
    if !docked.is_zero() {
        state.sub_stake(party, docked)?;
        state.burn(docked)?;
    }
    if let Some(p) = state.providers.get_mut(&party) {
        p.reputation.timed_out += 1;
    }
    state.touch(StateKey::Provider(party));
    Some(Event::CheckAbsent {
        lease: lease.id,
        party,
        docked,
    })
}

/// Dock and drop every active verifier for which `missing` holds (it missed the deadline).
fn drop_missing(
    state: &mut State,
    lease: &Lease,
    check: &mut Check,
    missing: impl Fn(&Claim) -> bool,
) -> Vec<Event> {
    let mut events = Vec::new();
    for idx in 1..check.claims.len() {
        let c = &check.claims.as_slice()[idx];
        if c.status == ClaimStatus::Active && missing(c) {
            events.extend(absent(state, lease, check, idx));
        }
    }
    events
}

/// A check's deadline passed.
pub(crate) fn check_deadline(state: &mut State, id: LeaseId) -> Result<Vec<Event>, TxError> {
    let lease = lease_for(state, id)?.clone();
    let mut check = checking(&lease)?;
    let mut events = Vec::new();
    match check.phase {
        CheckPhase::Sealing => {
            events.extend(drop_missing(state, &lease, &mut check, |c| {
                c.seal.is_none()
            }));
            check.phase = CheckPhase::Revealing;
            check.due = state.height().saturating_add(state.params().reveal_blocks);
            if all_revealed(&check) {
                events.extend(resolve(state, id, check)?);
            } else {
                overflow(state.set_lease_state(id, LeaseState::Checking(Box::new(check))))?;
            }
        }
        CheckPhase::Revealing => {
            if check.claims.as_slice()[0].revealed.is_none() {
                // The provider hid its result: treat it as wrong (it may have seen it was
                // drawn for a check and tried to walk away).
                let (ev, amount) = slash(state, id, lease.provider, &[])?;
                events.push(ev);
                events.push(fail_lease(state, id, Some(amount))?);
                return Ok(events);
            }
            events.extend(drop_missing(state, &lease, &mut check, |c| {
                c.revealed.is_none()
            }));
            events.extend(resolve(state, id, check)?);
        }
    }
    Ok(events)
}

/// Every active claim is revealed: settle, or dispute the first dissent.
fn resolve(state: &mut State, id: LeaseId, check: Check) -> Result<Vec<Event>, TxError> {
    if check.by_majority {
        return resolve_by_majority(state, id, check);
    }
    let Some(provider_claim) = check.claims.as_slice()[0].revealed else {
        return Err(TxError::Overflow);
    };
    let dissenter = check
        .claims
        .as_slice()
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, c)| {
            c.status == ClaimStatus::Active && c.revealed.is_some_and(|r| r != provider_claim)
        })
        .map(|(i, _)| i);
    if let Some(challenger) = dissenter {
        return open_dispute(state, id, check, challenger);
    }
    accept(state, id, &check, provider_claim)
}

/// The provider's claim stands: settle now if verifiers agreed with it, otherwise after the
/// challenge window.
fn accept(
    state: &mut State,
    id: LeaseId,
    check: &Check,
    claim: ResultClaim,
) -> Result<Vec<Event>, TxError> {
    let height = state.height();
    let agreeing: Vec<AccountId> = check
        .claims
        .as_slice()
        .iter()
        .skip(1)
        .filter(|c| c.status == ClaimStatus::Active && c.revealed == Some(claim))
        .map(|c| c.party)
        .collect();
    let funded: Vec<AccountId> = check
        .claims
        .as_slice()
        .iter()
        .skip(1)
        .take(usize::from(check.funded))
        .filter(|c| agreeing.contains(&c.party))
        .map(|c| c.party)
        .collect();
    let settle_at = if agreeing.is_empty() {
        height.saturating_add(state.params().challenge_blocks)
    } else {
        height
    };
    let committed = LeaseState::Committed {
        output: claim.output,
        checkpoint_root: claim.checkpoint_root,
        usage: check.usage,
        committed_at: check.committed_at,
        settle_at,
        failure: claim.failure,
    };
    overflow(state.set_lease_state(id, committed))?;
    if agreeing.is_empty() {
        return Ok(Vec::new());
    }
    let provider = lease_for(state, id)?.provider;
    if let Some(p) = state.providers.get_mut(&provider) {
        p.reputation.checked += 1;
    }
    state.touch(StateKey::Provider(provider));
    let settled = settle_with(state, id, &funded)?;
    Ok(vec![
        Event::ResultChecked {
            lease: id,
            verifiers: agreeing,
        },
        settled,
    ])
}

fn open_dispute(
    state: &mut State,
    id: LeaseId,
    check: Check,
    challenger: usize,
) -> Result<Vec<Event>, TxError> {
    let claims = check.claims.as_slice();
    let (Some(p), Some(c)) = (claims[0].revealed, claims[challenger].revealed) else {
        return Err(TxError::Overflow);
    };
    let provider = claims[0].party;
    let challenger_id = claims[challenger].party;
    if p.steps == c.steps && p.checkpoint_root == c.checkpoint_root && p.ending() == c.ending() {
        // Only the metered units differ: no single step decides a sum over the whole run, so
        // independent re-executions do (see "Checked billing").
        let lease = lease_for(state, id)?.clone();
        let reason = format!(
            "{provider} and {challenger_id} differ only in metered units ({} against {}); re-executions decide",
            p.units, c.units
        );
        return tiebreak_check(state, &lease, check, reason);
    }
    let leaf_count = p.steps.checked_add(1);
    let (kind, leaf_count) = match leaf_count {
        Some(n) if p.steps == c.steps && p.checkpoint_root == c.checkpoint_root => {
            (DisputeKind::Output, n)
        }
        Some(n) if p.steps == c.steps => (DisputeKind::Checkpoints, n),
        _ => (DisputeKind::Steps, 0),
    };
    let dispute = Dispute {
        check,
        challenger: challenger as u8,
        kind,
        leaf_count,
        start: 0,
        size: leaf_count,
        provider_node: p.checkpoint_root,
        challenger_node: c.checkpoint_root,
        provider_move: None,
        challenger_move: None,
        round: 0,
        due: state
            .height()
            .saturating_add(state.params().dispute_round_blocks),
        awaiting_referee: kind != DisputeKind::Checkpoints || leaf_count == 1,
    };
    overflow(state.set_lease_state(id, LeaseState::Disputed(Box::new(dispute))))?;
    Ok(vec![Event::DisputeOpened {
        lease: id,
        provider,
        challenger: challenger_id,
        kind,
        leaf_count,
    }])
}

fn disputed(lease: &Lease) -> Result<Dispute, TxError> {
    match &lease.state {
        LeaseState::Disputed(d) => Ok((**d).clone()),
        other => Err(TxError::WrongLeaseState {
            lease: lease.id,
            state: other.name(),
            needed: "disputed",
        }),
    }
}

/// Which side `who` plays: 0 for the provider, 1 for the challenger.
fn side(d: &Dispute, lease: &Lease, who: AccountId) -> Result<usize, TxError> {
    if who == lease.provider {
        Ok(0)
    } else if d.check.claims.as_slice()[usize::from(d.challenger)].party == who {
        Ok(1)
    } else {
        Err(TxError::NotAParty {
            lease: lease.id,
            who,
            role: "disputant",
        })
    }
}

/// `DisputeMove`: a party opens its current node into its two children.
pub(crate) fn dispute_move(
    state: &mut State,
    who: AccountId,
    id: LeaseId,
    children: Children,
) -> Result<Vec<Event>, TxError> {
    let lease = lease_for(state, id)?;
    let mut d = disputed(lease)?;
    let s = side(&d, lease, who)?;
    if d.awaiting_referee {
        return Err(TxError::DisputeStage {
            lease: id,
            stage: "narrowed to one step: send Adjudicate with the bundle and the agreed state",
        });
    }
    if state.height() > d.due {
        return Err(TxError::Expired { due: d.due });
    }
    let (node, slot) = if s == 0 {
        (d.provider_node, &mut d.provider_move)
    } else {
        (d.challenger_node, &mut d.challenger_move)
    };
    if slot.is_some() {
        return Err(TxError::OutOfTurn {
            lease: id,
            who,
            round: d.round,
        });
    }
    if node_hash(&children.left, &children.right) != node {
        return Err(TxError::BadMove {
            expected: node,
            round: d.round,
        });
    }
    *slot = Some(children);
    let mut events = vec![Event::DisputeMoved {
        lease: id,
        party: who,
        round: d.round,
    }];
    if let (Some(pm), Some(cm)) = (d.provider_move, d.challenger_move) {
        let k = split(d.size);
        if pm.left != cm.left {
            d.size = k;
            d.provider_node = pm.left;
            d.challenger_node = cm.left;
        } else {
            // Equal left subtrees: every leaf before the right one agrees.
            d.start += k;
            d.size -= k;
            d.provider_node = pm.right;
            d.challenger_node = cm.right;
        }
        d.round += 1;
        d.provider_move = None;
        d.challenger_move = None;
        d.due = state
            .height()
            .saturating_add(state.params().dispute_round_blocks);
        d.awaiting_referee = d.size == 1;
        events.push(Event::DisputeNarrowed {
            lease: id,
            round: d.round,
            start: d.start,
            size: d.size,
        });
    }
    overflow(state.set_lease_state(id, LeaseState::Disputed(Box::new(d))))?;
    Ok(events)
}

/// What the agreed leaf before the disputed one holds.
enum Agreed<'a> {
    /// A state, whose checkpoint is the leaf.
    State(&'a [u8]),
    /// A failure, whose marker is the leaf: every later leaf is the same marker.
    Failed(JobFailure),
}

impl<'a> Agreed<'a> {
    /// The state to run from (empty after a failure) and the failure, if the leaf is one.
    fn split(self) -> (&'a [u8], Option<JobFailure>) {
        match self {
            Agreed::State(s) => (s, None),
            Agreed::Failed(f) => (&[], Some(f)),
        }
    }
}

/// The agreed input must be leaf `index` of a tree of `count` under one of `roots`: a state
/// whose checkpoint is that leaf, or else the encoding of a failure whose marker is.
fn check_agreed<'a>(
    proof: &MerkleProof,
    index: u64,
    count: u64,
    bytes: &'a [u8],
    roots: [&Hash; 2],
) -> Result<Agreed<'a>, TxError> {
    if proof.index != index || proof.leaf_count != count {
        return Err(TxError::ProofWrongStep {
            expected: index,
            count,
            got: proof.index,
            got_count: proof.leaf_count,
        });
    }
    let under = |leaf: &Hash| roots.iter().any(|r| proof.verify(r, leaf));
    if under(&checkpoint(bytes)) {
        return Ok(Agreed::State(bytes));
    }
    // Markers and checkpoints are hashed under different tags: a leaf is never both.
    match orrery_types::codec::decode::<JobFailure>("failure", bytes) {
        Ok(f) if under(&f.marker()) => Ok(Agreed::Failed(f)),
        _ => Err(TxError::StateMismatch { index }),
    }
}

/// The job an `Adjudicate` carries: a bundle, or bytes that hash to the lease's job but do not
/// decode — a job that fails at init, with no steps.
enum Job {
    Bundle(Box<orrery_exec::Bundle>),
    Undecodable,
}

impl Job {
    fn of(bytes: &[u8], expected: Hash) -> Result<Job, TxError> {
        match orrery_exec::Bundle::decode(bytes) {
            Ok(bundle) if bundle.hash() == expected => Ok(Job::Bundle(Box::new(bundle))),
            Ok(bundle) => Err(TxError::BundleMismatch {
                expected,
                got: bundle.hash(),
            }),
            // The requester leased these bytes: that they cannot run is the job's failure.
            Err(_) if Hash::of(bytes) == expected => Ok(Job::Undecodable),
            Err(e) => Err(TxError::BadBundle(e.to_string())),
        }
    }

    fn steps(&self) -> u64 {
        match self {
            Job::Bundle(b) => b.manifest().steps,
            Job::Undecodable => 0,
        }
    }

    /// The referee's ruling on `piece` after the agreed leaf. A host failure becomes
    /// [`TxError::RefereeHost`], which fails the whole block (never a receipt).
    fn rule(
        &self,
        referee: &dyn Referee,
        piece: Piece<'_>,
        agreed: Option<JobFailure>,
        fuel: u64,
    ) -> Result<Ruling, TxError> {
        let cannot_load = JobFailure {
            at: FailedAt::Init,
            reason: FailureReason::InvalidJob,
        };
        Ok(match (agreed, self) {
            (Some(f), _) => referee::failed(&piece, f, 0),
            (None, Job::Undecodable) => referee::failed(&piece, cannot_load, 0),
            (None, Job::Bundle(b)) => referee
                .rule(b, piece, fuel)
                .map_err(|e| TxError::RefereeHost(e.0))?,
        })
    }
}

/// The referee's ruling on what `d` narrowed to, the step it executed, and the values the
/// provider's and the challenger's claims carry there.
fn disputed_piece(
    d: &Dispute,
    job: &Job,
    [p, c]: [&ResultClaim; 2],
    agreed_bytes: &[u8],
    proof: &MerkleProof,
    fuel_bound: u64,
    referee: &dyn Referee,
) -> Result<(Ruling, Option<u64>, Hash, Hash), TxError> {
    let roots = [&p.checkpoint_root, &c.checkpoint_root];
    Ok(match d.kind {
        DisputeKind::Steps => {
            let to_hash = |n: u64| Hash::of(&n.to_be_bytes());
            let ruling = Ruling::Value {
                value: to_hash(job.steps()),
                fuel: 0,
                failure: None,
            };
            (ruling, None, to_hash(p.steps), to_hash(c.steps))
        }
        DisputeKind::Output => {
            let last = d.leaf_count - 1;
            let agreed = check_agreed(proof, last, d.leaf_count, agreed_bytes, roots)?;
            let (state_n, failed) = agreed.split();
            let piece = Piece::Output { state: state_n };
            let ruling = job.rule(referee, piece, failed, fuel_bound)?;
            (ruling, None, p.ending(), c.ending())
        }
        DisputeKind::Checkpoints => {
            let leaf = d.start;
            let ruling = if leaf == 0 {
                job.rule(referee, Piece::Init, None, fuel_bound)?
            } else {
                let agreed = check_agreed(proof, leaf - 1, d.leaf_count, agreed_bytes, roots)?;
                let (state_k, failed) = agreed.split();
                let piece = Piece::Step {
                    k: leaf - 1,
                    state: state_k,
                };
                job.rule(referee, piece, failed, fuel_bound)?
            };
            let step = leaf.checked_sub(1);
            (ruling, step, d.provider_node, d.challenger_node)
        }
    })
}

/// `Adjudicate`: the referee executes the one disputed piece and rules.
pub(crate) fn adjudicate(
    state: &mut State,
    who: AccountId,
    id: LeaseId,
    bundle_bytes: &[u8],
    agreed_bytes: &[u8],
    proof: &MerkleProof,
    referee: &dyn Referee,
) -> Result<Vec<Event>, TxError> {
    let lease = lease_for(state, id)?.clone();
    let d = disputed(&lease)?;
    side(&d, &lease, who)?;
    if !d.awaiting_referee {
        return Err(TxError::DisputeStage {
            lease: id,
            stage: "still bisecting: make your DisputeMove for this round first",
        });
    }
    let job = Job::of(bundle_bytes, lease.job)?;
    let claims = d.check.claims.as_slice();
    let (Some(p), Some(c)) = (
        claims[0].revealed,
        claims[usize::from(d.challenger)].revealed,
    ) else {
        return Err(TxError::Overflow);
    };
    let fuel_bound = state.params().referee_fuel;
    let (ruling, step, provider_value, challenger_value) =
        disputed_piece(&d, &job, [&p, &c], agreed_bytes, proof, fuel_bound, referee)?;
    let (provider_right, challenger_right, fuel, failure) = match ruling {
        Ruling::Value {
            value,
            fuel,
            failure,
        } => (
            value == provider_value,
            value == challenger_value,
            fuel,
            failure,
        ),
        Ruling::Unable(reason) => return tiebreak(state, &lease, d, reason),
    };
    let mut events = vec![Event::RefereeRuled {
        lease: id,
        kind: d.kind,
        step,
        provider_right,
        challenger_right,
        fuel,
        failure,
    }];
    events.extend(verdict(state, id, d, provider_right, challenger_right)?);
    Ok(events)
}

/// A dispute's deadline passed: whoever did not move loses; if nobody gave the referee its
/// input, both lose.
pub(crate) fn dispute_deadline(state: &mut State, id: LeaseId) -> Result<Vec<Event>, TxError> {
    let lease = lease_for(state, id)?.clone();
    let d = disputed(&lease)?;
    let (provider_ok, challenger_ok) = if d.awaiting_referee {
        (false, false)
    } else {
        (d.provider_move.is_some(), d.challenger_move.is_some())
    };
    verdict(state, id, d, provider_ok, challenger_ok)
}

/// Slash the losers and settle or fail the lease.
fn verdict(
    state: &mut State,
    id: LeaseId,
    d: Dispute,
    provider_right: bool,
    challenger_right: bool,
) -> Result<Vec<Event>, TxError> {
    let mut check = d.check;
    let ch = usize::from(d.challenger);
    let claims = check.claims.as_slice();
    let provider = claims[0].party;
    let challenger = claims[ch].party;
    let provider_claim = claims[0].revealed;
    let challenger_claim = claims[ch].revealed;
    let mut events = Vec::new();
    // Slash every active verifier whose claim equals `wrong` (the loser's, proven wrong).
    let mut slash_equal = |state: &mut State,
                           check: &mut Check,
                           wrong: Option<ResultClaim>,
                           winners: &[AccountId]|
     -> Result<(), TxError> {
        for idx in 1..check.claims.len() {
            let c = &check.claims.as_slice()[idx];
            if c.status == ClaimStatus::Active && c.revealed == wrong {
                let party = c.party;
                check.claims.as_mut_slice()[idx].status = ClaimStatus::Slashed;
                events.push(slash(state, id, party, winners)?.0);
            }
        }
        Ok(())
    };
    match (provider_right, challenger_right) {
        (true, _) => {
            slash_equal(state, &mut check, challenger_claim, &[provider])?;
            // The next dissenter, if any, disputes with the provider; otherwise settle.
            events.extend(resolve(state, id, check)?);
        }
        (false, true) => {
            slash_equal(state, &mut check, provider_claim, &[challenger])?;
            let (ev, amount) = slash(state, id, provider, &[challenger])?;
            events.push(ev);
            events.push(fail_lease(state, id, Some(amount))?);
        }
        (false, false) => {
            slash_equal(state, &mut check, provider_claim, &[])?;
            slash_equal(state, &mut check, challenger_claim, &[])?;
            if check.claims.as_slice()[ch].status != ClaimStatus::Slashed {
                events.push(slash(state, id, challenger, &[])?.0);
            }
            let (ev, amount) = slash(state, id, provider, &[])?;
            events.push(ev);
            events.push(fail_lease(state, id, Some(amount))?);
        }
    }
    Ok(events)
}

/// The referee cannot execute the step: draw tie-breakers and settle by majority.
fn tiebreak(
    state: &mut State,
    lease: &Lease,
    d: Dispute,
    reason: String,
) -> Result<Vec<Event>, TxError> {
    tiebreak_check(state, lease, d.check, reason)
}

/// Draw tie-breakers for `check` and settle it by majority.
fn tiebreak_check(
    state: &mut State,
    lease: &Lease,
    check: Check,
    reason: String,
) -> Result<Vec<Event>, TxError> {
    let id = lease.id;
    let mut exclude: Vec<AccountId> = check.claims.as_slice().iter().map(|c| c.party).collect();
    exclude.push(lease.requester);
    let n = usize::from(state.params().tiebreak_verifiers);
    let seed = state.block_seed;
    let picked = pick_verifiers(state, lease, n, &seed, &exclude);
    if picked.is_empty() {
        // Nobody can break the tie: refund the requester, slash nobody.
        return Ok(vec![
            Event::TiebreakDrawn {
                lease: id,
                reason,
                verifiers: Vec::new(),
            },
            fail_lease(state, id, None)?,
        ]);
    }
    let mut check = check;
    let mut claims = check.claims.into_inner();
    claims.extend(picked.iter().map(|v| Claim {
        party: *v,
        seal: None,
        revealed: None,
        status: ClaimStatus::Active,
    }));
    check.claims = claims_of(claims)?;
    check.by_majority = true;
    check.phase = CheckPhase::Sealing;
    let run = check.committed_at.saturating_sub(lease.opened_at);
    check.due = state
        .height()
        .saturating_add(state.params().verify_blocks)
        .saturating_add(run);
    overflow(state.set_lease_state(id, LeaseState::Checking(Box::new(check))))?;
    Ok(vec![Event::TiebreakDrawn {
        lease: id,
        reason,
        verifiers: picked,
    }])
}

fn resolve_by_majority(
    state: &mut State,
    id: LeaseId,
    check: Check,
) -> Result<Vec<Event>, TxError> {
    let revealed: Vec<ResultClaim> = check
        .claims
        .as_slice()
        .iter()
        .filter(|c| c.status == ClaimStatus::Active)
        .filter_map(|c| c.revealed)
        .collect();
    let majority = revealed
        .iter()
        .find(|r| revealed.iter().filter(|x| x == r).count() * 2 > revealed.len())
        .copied();
    let Some(winner) = majority else {
        return Ok(vec![fail_lease(state, id, None)?]);
    };
    let winners: Vec<AccountId> = check
        .claims
        .as_slice()
        .iter()
        .filter(|c| c.status == ClaimStatus::Active && c.revealed == Some(winner))
        .map(|c| c.party)
        .collect();
    let mut check = check;
    let mut events = Vec::new();
    let mut provider_slashed = Amount::ZERO;
    for idx in 0..check.claims.len() {
        let c = &check.claims.as_slice()[idx];
        if c.status == ClaimStatus::Active && c.revealed.is_some_and(|r| r != winner) {
            let party = c.party;
            check.claims.as_mut_slice()[idx].status = ClaimStatus::Slashed;
            let (ev, amount) = slash(state, id, party, &winners)?;
            events.push(ev);
            if idx == 0 {
                provider_slashed = amount;
            }
        }
    }
    if check.claims.as_slice()[0].revealed == Some(winner) {
        events.extend(accept(state, id, &check, winner)?);
    } else {
        events.push(fail_lease(state, id, Some(provider_slashed))?);
    }
    Ok(events)
}

/// Take `slash_bps` of `party`'s stake (then of its unbonding stake); `slash_reward_bps` of it
/// goes to `winners` in equal parts, the rest is burned.
fn slash(
    state: &mut State,
    id: LeaseId,
    party: AccountId,
    winners: &[AccountId],
) -> Result<(Event, Amount), TxError> {
    let s = take_slash(state, party, winners)?;
    Ok((
        Event::Slashed {
            lease: id,
            party,
            amount: s.amount,
            rewarded: s.rewarded,
            burned: s.burned,
        },
        s.amount,
    ))
}

/// What one slash took and where it went.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slash {
    /// Taken from the stake and unbonding stake.
    pub amount: Amount,
    /// Paid to the winners together.
    pub rewarded: Amount,
    /// Burned.
    pub burned: Amount,
}

/// The slash itself, shared by leases and inference checks: `slash_bps` of `party`'s stake
/// plus unbonding stake, `slash_reward_bps` of it to `winners` in equal parts, the rest burned.
pub(crate) fn take_slash(
    state: &mut State,
    party: AccountId,
    winners: &[AccountId],
) -> Result<Slash, TxError> {
    let params = state.params().clone();
    let stake = state.provider(&party).map_or(Amount::ZERO, |p| p.stake);
    let unbonding: Vec<(u64, Amount)> = state
        .unbonding
        .iter()
        .filter(|((_, who), _)| *who == party)
        .map(|((at, _), a)| (*at, *a))
        .collect();
    let base = overflow(
        unbonding
            .iter()
            .try_fold(stake, |acc, (_, a)| acc.checked_add(*a)),
    )?;
    let amount = overflow(base.bps(params.slash_bps))?;
    let from_stake = amount.min(stake);
    if !from_stake.is_zero() {
        overflow(state.sub_stake(party, from_stake))?;
    }
    let mut rest = overflow(amount.checked_sub(from_stake))?;
    for (at, a) in unbonding {
        if rest.is_zero() {
            break;
        }
        let take = a.min(rest);
        overflow(state.take_unbonding(at, party))?;
        let left = overflow(a.checked_sub(take))?;
        if !left.is_zero() {
            overflow(state.add_unbonding(at, party, left))?;
        }
        rest = overflow(rest.checked_sub(take))?;
    }
    let reward = if winners.is_empty() {
        Amount::ZERO
    } else {
        overflow(amount.bps(params.slash_reward_bps))?
    };
    let each = Amount(reward.units() / winners.len().max(1) as u128);
    let rewarded = overflow(each.checked_mul(winners.len() as u128))?;
    for w in winners {
        if !each.is_zero() {
            overflow(state.credit(*w, each))?;
        }
    }
    let burned = overflow(amount.checked_sub(rewarded))?;
    overflow(state.burn(burned))?;
    if let Some(p) = state.providers.get_mut(&party) {
        p.reputation.slashed += 1;
    }
    state.touch(StateKey::Provider(party));
    Ok(Slash {
        amount,
        rewarded,
        burned,
    })
}

/// The provider's result is wrong, hidden, or cannot be confirmed: the requester gets its
/// escrow back and the lease ends. `provider_slashed` is `Some` when the provider was at fault
/// (and what it was slashed), `None` when nobody could tell.
fn fail_lease(
    state: &mut State,
    id: LeaseId,
    provider_slashed: Option<Amount>,
) -> Result<Event, TxError> {
    let lease = lease_for(state, id)?.clone();
    let refunded = lease.escrow;
    overflow(state.set_escrow(id, Amount::ZERO))?;
    overflow(state.credit(lease.requester, refunded))?;
    if let Some(p) = state.providers.get_mut(&lease.provider) {
        p.active_leases = p.active_leases.saturating_sub(1);
        if provider_slashed.is_some() {
            p.reputation.failed += 1;
        }
    }
    state.touch(StateKey::Provider(lease.provider));
    overflow(state.set_lease_state(
        id,
        LeaseState::Failed {
            refunded,
            slashed: provider_slashed.unwrap_or(Amount::ZERO),
            at: state.height(),
        },
    ))?;
    Ok(Event::LeaseFailed {
        lease: id,
        refunded,
    })
}
