//! Cluster leases: one lease, N member providers, DiLoCo-style rounds, every round checkable.
//!
//! # Opening
//!
//! `OpenClusterLease { members, job, terms, rounds, inner_steps, round_blocks, check_bps }`
//! names 1 to [`MAX_CLUSTER_MEMBERS`] distinct providers, in worker order. Each must be a
//! registered provider other than the requester, bonded at least its hardware's minimum stake,
//! whose hardware fits `terms.resources`, whose listed prices are at least `terms.prices`
//! (`terms` are one worker-round's, so a listed price is the member's consent, as for
//! `OpenLease`) and whose offer publishes a cluster contact for its own account
//! (`orrery_types::cluster::cluster_contact`: its consent to cluster work — a provider that
//! runs no cluster worker would only miss round 0 and be docked). `rounds` ≥ 1, `inner_steps` (H) ≥ 1, `round_blocks` ≥ 1 and
//! `rounds × round_blocks ≤ max_lease_blocks`; `check_bps ≤ 10000`. A refused member names
//! itself and the reason in [`TxError::BadClusterMember`].
//!
//! One escrow is locked: `C × N × rounds` for the workers (`C = terms.max_cost()`, the pay of
//! one completed worker-round) plus, when `check_bps > 0`, a check budget of the same size
//! that pays verifiers. The lease takes its id from the same counter as single-provider
//! leases. Every member counts the lease among its active leases (so it cannot unbond below
//! its minimum stake while it works).
//!
//! # Rounds
//!
//! Round `r` takes commits from the block after round `r − 1` closed (round 0: the block after
//! the opening) until its deadline, `round_blocks` after that close. Each live member sends one
//! `CommitClusterRound { round, start, delta, loss }`: the hash of the weights it started from
//! (every commit of a round must name the same as its first), its delta's hash and its mean
//! inner loss. Refused: a non-member, a dropped member, a round other than the open one, a
//! second commit, a commit past the deadline.
//!
//! The round closes when every live member has committed (in that transaction) or at the end
//! of its deadline's block. Live members without a commit are **dropped** from the lease for
//! good and **docked** `timeout_penalty_bps` of `C` from their stake (burned), as a lease
//! timeout is; they are never paid for that round or later ones. The round completes with the
//! others and the next one opens. Deltas never reach the chain: the members exchange them
//! peer to peer and check each against its committed hash.
//!
//! # Checks
//!
//! At the start of the block after a round closed, that block's seed (unknown when the commits
//! were made) draws each commit with probability `check_bps`. A drawn commit gets one verifier:
//! a bonded provider that is neither a member nor the requester, holds its minimum stake and
//! fits `terms.resources`, first in the seed's lottery. Commits not drawn (or with no eligible
//! verifier) are paid at once: `C`, less the protocol fee (`fee_bps`, split into burn and
//! validators like every lease fee).
//!
//! A round is a pure function of its starting weights, the job's spec and the worker's shard,
//! so the verifier re-executes it and, like `CommitCheck`/`RevealResult`, seals
//! (`SealClusterCheck`, seal [`cluster_check_seal`], within `verify_blocks`) and then reveals
//! (`RevealClusterCheck`, within `reveal_blocks` of the last seal) the delta hash it computed.
//! A verifier that misses a deadline is docked like a timeout and drops out.
//! - Every revealed hash equals the worker's (or nobody revealed): the commit stands, the
//!   worker is paid `C` and the verifier `C` from the check budget (which holds one
//!   verifier-round per worker-round).
//! - A verifier dissents: as with a dispute the referee cannot execute,
//!   `tiebreak_verifiers` more verifiers are drawn by the next block's seed, seal and reveal,
//!   and the hash held by a strict majority of all claims (the worker's and every revealed
//!   verifier's) wins. The first verifier is paid `C` from the check budget if its claim
//!   wins; tie-breakers earn only their share of the loser's slash, as in `verify`. Every claim against the majority is slashed (`slash_bps`,
//!   `slash_reward_bps` of it to the winners, the rest burned, as in `verify`). A worker that
//!   loses is not paid; its delta is **excluded** and the round is marked for recomputation
//!   without it (`ClusterRound::recompute`). No strict majority: the delta is excluded and
//!   unpaid, nobody is slashed.
//!
//! # End
//!
//! Once every round has closed (or every member was dropped), the last draw happened and every
//! check resolved, the rest of the escrow (unpaid worker-rounds and the unused check budget)
//! returns to the requester and the lease is `Finished`.

use crate::apply::{collect_fee, need_balance, overflow};
use crate::entries::{
    ClusterLease, ClusterMember, ClusterPhase, ClusterRound, CommitStatus, MemberStatus,
    RoundCommit,
};
use crate::receipt::{Event, TxError};
use crate::state::{LEASE_TIMER, State, StateKey};
use orrery_types::amount::Amount;
use orrery_types::cluster::{
    ClusterMembers, LossBits, MAX_CLUSTER_MEMBERS, MAX_CLUSTER_ROUNDS, MAX_INNER_STEPS,
};
use orrery_types::codec::BoundedVec;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::tx::{LeaseId, LeaseTerms};

/// What `OpenClusterLease` asks for, as one value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClusterRequest<'a> {
    /// The members, in worker order.
    pub members: &'a ClusterMembers,
    /// The job bundle's hash.
    pub job: Hash,
    /// One worker-round's terms.
    pub terms: &'a LeaseTerms,
    /// Rounds.
    pub rounds: u32,
    /// Inner steps per round.
    pub inner_steps: u32,
    /// Blocks per round.
    pub round_blocks: u64,
    /// Check probability in basis points.
    pub check_bps: u16,
}

fn lease_of(state: &State, id: LeaseId) -> Result<ClusterLease, TxError> {
    state
        .cluster_lease(id)
        .cloned()
        .ok_or(TxError::UnknownClusterLease(id))
}

/// The pay of one completed worker-round.
fn round_cost(lease: &ClusterLease) -> Result<Amount, TxError> {
    overflow(lease.terms.max_cost())
}

fn check_shape(state: &State, req: &ClusterRequest) -> Result<(), TxError> {
    let n = req.members.len();
    if n == 0 {
        return Err(TxError::BadClusterSize {
            got: n,
            max: MAX_CLUSTER_MEMBERS,
        });
    }
    let bad = |why| Err(TxError::BadClusterRounds(why));
    if req.inner_steps == 0 {
        return bad("inner steps per round (H) must be at least 1: H = 0 trains nothing");
    }
    if req.inner_steps > MAX_INNER_STEPS {
        return bad("inner steps per round (H) above the protocol's limit of 100000");
    }
    if req.rounds == 0 || req.rounds > MAX_CLUSTER_ROUNDS {
        return bad("rounds must be between 1 and 10000");
    }
    if req.round_blocks == 0 {
        return bad("each round needs at least 1 block");
    }
    let span = u64::from(req.rounds).checked_mul(req.round_blocks);
    if span.is_none_or(|s| s > state.params().max_lease_blocks) {
        return bad("rounds × round_blocks exceeds the chain's max_lease_blocks");
    }
    if req.check_bps > 10_000 {
        return bad("check_bps is a probability in basis points: at most 10000");
    }
    Ok(())
}

fn check_member(
    state: &State,
    requester: AccountId,
    seen: &[AccountId],
    member: AccountId,
    terms: &LeaseTerms,
) -> Result<(), TxError> {
    let refuse = |why| Err(TxError::BadClusterMember { member, why });
    if seen.contains(&member) {
        return refuse("named twice");
    }
    if member == requester {
        return refuse("the requester cannot be one of its own workers");
    }
    let Some(p) = state.provider(&member) else {
        return refuse("not a registered provider");
    };
    let min = overflow(state.params().min_stake(&p.offer.hardware))?;
    if p.stake.is_zero() || p.stake < min {
        return refuse("its stake is below the minimum for its hardware (it must bond first)");
    }
    if !p.offer.hardware.fits(&terms.resources) {
        return refuse("its hardware does not fit the requested resources");
    }
    if !terms.prices.within(&p.offer.prices) {
        return refuse("the agreed prices are above its listed prices");
    }
    // A published contact is the provider's consent to cluster work, as its listed prices are
    // to the price: a member that runs no worker would only be dropped and docked.
    if orrery_types::cluster::cluster_contact(p.offer.endpoint.as_str(), &member).is_err() {
        return refuse(
            "its offer publishes no cluster contact for its account (it runs no cluster workers)",
        );
    }
    Ok(())
}

/// `OpenClusterLease`.
pub(crate) fn open(
    state: &mut State,
    requester: AccountId,
    req: ClusterRequest,
) -> Result<Vec<Event>, TxError> {
    check_shape(state, &req)?;
    let members = req.members.as_slice();
    for (i, m) in members.iter().enumerate() {
        check_member(state, requester, &members[..i], *m, req.terms)?;
    }
    let cost = overflow(req.terms.max_cost())?;
    if cost.is_zero() {
        return Err(TxError::ZeroCostLease);
    }
    let worker_rounds = (members.len() as u128) * u128::from(req.rounds);
    let for_workers = overflow(cost.checked_mul(worker_rounds))?;
    let check_budget = if req.check_bps > 0 {
        for_workers
    } else {
        Amount::ZERO
    };
    let escrow = overflow(for_workers.checked_add(check_budget))?;
    need_balance(state, requester, escrow)?;

    let height = state.height();
    let id = state.globals.next_lease_id;
    let entries = members.iter().map(|m| ClusterMember {
        provider: *m,
        status: MemberStatus::Live,
        rounds_paid: 0,
        paid: Amount::ZERO,
        docked: Amount::ZERO,
    });
    let lease = ClusterLease {
        id,
        requester,
        job: req.job,
        terms: *req.terms,
        rounds: req.rounds,
        inner_steps: req.inner_steps,
        round_blocks: req.round_blocks,
        check_bps: req.check_bps,
        members: BoundedVec::new(entries.collect()).map_err(|_| TxError::Overflow)?,
        escrow,
        check_budget,
        opened_at: height,
        round: 0,
        round_opens_at: height.saturating_add(1),
        round_deadline: height.saturating_add(req.round_blocks),
        draw_at: None,
        open_checks: 0,
        phase: ClusterPhase::Running,
        refunded: Amount::ZERO,
    };
    overflow(state.debit(requester, escrow))?;
    overflow(state.put_cluster_lease(lease))?;
    state.globals.next_lease_id += 1;
    state.touch(StateKey::Globals);
    for m in members {
        if let Some(p) = state.providers.get_mut(m) {
            p.active_leases += 1;
        }
        state.touch(StateKey::Provider(*m));
    }
    Ok(vec![Event::ClusterLeaseOpened {
        lease: id,
        requester,
        members: members.to_vec(),
        escrow,
    }])
}

/// One member's round, as `CommitClusterRound` carries it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RoundWork {
    /// The round.
    pub round: u32,
    /// Hash of the starting weights.
    pub start: Hash,
    /// Hash of the delta.
    pub delta: Hash,
    /// Mean inner loss.
    pub loss: LossBits,
}

/// `CommitClusterRound`.
pub(crate) fn commit(
    state: &mut State,
    who: AccountId,
    id: LeaseId,
    work: RoundWork,
) -> Result<Vec<Event>, TxError> {
    let lease = lease_of(state, id)?;
    let member = lease
        .member(&who)
        .ok_or(TxError::NotAMember { lease: id, who })?;
    if member.status == MemberStatus::Dropped {
        return Err(TxError::MemberDropped { lease: id, who });
    }
    let height = state.height();
    if work.round != lease.round || lease.rounds_over() || height < lease.round_opens_at {
        return Err(TxError::WrongRound {
            lease: id,
            open: lease.round,
            opens_at: lease.round_opens_at,
            got: work.round,
        });
    }
    if height > lease.round_deadline {
        return Err(TxError::PastDeadline {
            limit: lease.round_deadline,
        });
    }
    let mut rec = state
        .cluster_round(id, work.round)
        .cloned()
        .unwrap_or_default();
    if rec.commit_of(&who).is_some() {
        return Err(TxError::AlreadyCommitted {
            lease: id,
            round: work.round,
            who,
        });
    }
    if let Some(first) = rec.commits.as_slice().first()
        && first.start != work.start
    {
        return Err(TxError::StartWeightsMismatch {
            expected: first.start,
            got: work.start,
        });
    }
    rec.commits
        .push(RoundCommit {
            worker: who,
            start: work.start,
            delta: work.delta,
            loss: work.loss,
            status: CommitStatus::Committed,
        })
        .map_err(|_| TxError::Overflow)?;
    let everyone = lease
        .members
        .as_slice()
        .iter()
        .filter(|m| m.status == MemberStatus::Live)
        .all(|m| rec.commit_of(&m.provider).is_some());
    state.put_cluster_round(id, work.round, rec);
    let mut events = vec![Event::ClusterRoundCommitted {
        lease: id,
        round: work.round,
        worker: who,
        delta: work.delta,
    }];
    if everyone {
        events.extend(close_round(state, id)?);
    }
    Ok(events)
}

/// Dock a party `timeout_penalty_bps` of one worker-round's pay from its stake (burned).
fn dock(state: &mut State, lease: &ClusterLease, party: AccountId) -> Result<Amount, TxError> {
    let penalty = overflow(round_cost(lease)?.bps(state.params().timeout_penalty_bps))?;
    let stake = state.provider(&party).map_or(Amount::ZERO, |p| p.stake);
    let docked = penalty.min(stake);
    if !docked.is_zero() {
        overflow(state.sub_stake(party, docked))?;
        overflow(state.burn(docked))?;
    }
    if let Some(p) = state.providers.get_mut(&party) {
        p.reputation.timed_out += 1;
    }
    state.touch(StateKey::Provider(party));
    Ok(docked)
}

/// Close the open round: drop and dock the live members that did not commit, open the next
/// round, and schedule the draw of this one's checks.
fn close_round(state: &mut State, id: LeaseId) -> Result<Vec<Event>, TxError> {
    let mut lease = lease_of(state, id)?;
    let round = lease.round;
    let height = state.height();
    let mut rec = state.cluster_round(id, round).cloned().unwrap_or_default();
    let mut events = Vec::new();
    let mut missed = Vec::new();
    for i in 0..lease.members.len() {
        let m = lease.members.as_slice()[i];
        if m.status == MemberStatus::Dropped || rec.commit_of(&m.provider).is_some() {
            continue;
        }
        let docked = dock(state, &lease, m.provider)?;
        let entry = &mut lease.members.as_mut_slice()[i];
        entry.status = MemberStatus::Dropped;
        entry.docked = docked;
        if let Some(p) = state.providers.get_mut(&m.provider) {
            p.active_leases = p.active_leases.saturating_sub(1);
        }
        missed.push(m.provider);
        events.push(Event::ClusterMemberDropped {
            lease: id,
            round,
            member: m.provider,
            docked,
        });
    }
    rec.missed = BoundedVec::new(missed.clone()).map_err(|_| TxError::Overflow)?;
    rec.closed_at = Some(height);
    let completed = rec.commits.as_slice().iter().map(|c| c.worker).collect();
    let drawn = !rec.commits.is_empty();
    state.put_cluster_round(id, round, rec);
    lease.round = round.saturating_add(1);
    lease.round_opens_at = height.saturating_add(1);
    lease.round_deadline = height.saturating_add(lease.round_blocks);
    lease.draw_at = drawn.then_some(height.saturating_add(1));
    events.push(Event::ClusterRoundClosed {
        lease: id,
        round,
        completed,
        missed,
    });
    events.extend(finish_if_done(state, &mut lease)?);
    overflow(state.put_cluster_lease(lease))?;
    Ok(events)
}

/// Pay `who` one worker-round's price out of the lease's escrow, less the protocol fee; from
/// the check budget when `from_budget`. Returns `(paid, fee, burned part of the fee)`.
fn pay(
    state: &mut State,
    lease: &mut ClusterLease,
    who: AccountId,
    from_budget: bool,
) -> Result<(Amount, Amount, Amount), TxError> {
    let cost = round_cost(lease)?;
    let free = overflow(lease.escrow.checked_sub(lease.check_budget))?;
    if from_budget {
        lease.check_budget = overflow(lease.check_budget.checked_sub(cost))?;
    } else {
        // The worker reserve holds every worker-round the lease can pay.
        assert!(
            free >= cost,
            "cluster lease {}: worker reserve short",
            lease.id
        );
    }
    lease.escrow = overflow(lease.escrow.checked_sub(cost))?;
    let fee = overflow(cost.bps(state.params().fee_bps))?;
    let paid = overflow(cost.checked_sub(fee))?;
    overflow(state.credit(who, paid))?;
    let burned = collect_fee(state, fee)?;
    if let Some(p) = state.providers.get_mut(&who) {
        p.earned = p.earned.checked_add(paid).unwrap_or(p.earned);
        p.reputation.settled += 1;
    }
    state.touch(StateKey::Provider(who));
    let work = state.epoch_work.entry(who).or_default();
    *work = work.checked_add(cost).unwrap_or(*work);
    state.touch(StateKey::EpochWork(who));
    Ok((paid, fee, burned))
}

/// Pay a worker for its round and mark its commit paid.
fn pay_worker(
    state: &mut State,
    lease: &mut ClusterLease,
    (round, rec): (u32, &mut ClusterRound),
    worker: AccountId,
) -> Result<Event, TxError> {
    let (paid, fee, burned) = pay(state, lease, worker, false)?;
    if let Some(c) = rec
        .commits
        .as_mut_slice()
        .iter_mut()
        .find(|c| c.worker == worker)
    {
        c.status = CommitStatus::Paid;
    }
    if let Some(m) = lease
        .members
        .as_mut_slice()
        .iter_mut()
        .find(|m| m.provider == worker)
    {
        m.rounds_paid += 1;
        m.paid = overflow(m.paid.checked_add(paid))?;
    }
    Ok(Event::ClusterRoundPaid {
        lease: lease.id,
        round,
        worker,
        paid,
        fee,
        burned,
    })
}

/// Pay a verifier whose claim matched the verdict, while the check budget lasts.
fn pay_verifier(
    state: &mut State,
    lease: &mut ClusterLease,
    verifier: AccountId,
) -> Result<Option<Event>, TxError> {
    if lease.check_budget < round_cost(lease)? {
        return Ok(None);
    }
    let (paid, _, burned) = pay(state, lease, verifier, true)?;
    Ok(Some(Event::ClusterVerifierPaid {
        lease: lease.id,
        verifier,
        paid,
        burned,
    }))
}

/// End the lease if nothing is left to do: refund the rest of the escrow.
fn finish_if_done(state: &mut State, lease: &mut ClusterLease) -> Result<Option<Event>, TxError> {
    if lease.phase == ClusterPhase::Finished
        || !lease.rounds_over()
        || lease.draw_at.is_some()
        || lease.open_checks > 0
    {
        return Ok(None);
    }
    let refunded = lease.escrow;
    overflow(state.credit(lease.requester, refunded))?;
    lease.escrow = Amount::ZERO;
    lease.check_budget = Amount::ZERO;
    lease.refunded = refunded;
    lease.phase = ClusterPhase::Finished;
    for m in lease.members.as_slice() {
        if m.status == MemberStatus::Live {
            if let Some(p) = state.providers.get_mut(&m.provider) {
                p.active_leases = p.active_leases.saturating_sub(1);
            }
            state.touch(StateKey::Provider(m.provider));
        }
    }
    Ok(Some(Event::ClusterLeaseFinished {
        lease: lease.id,
        refunded,
    }))
}

mod check;
pub(crate) use check::{reveal_check, seal_check};

/// Start of a block, before its transactions: draw the checks of rounds closed in the previous
/// block, and the tie-breakers of checks whose first verifier dissented.
pub(crate) fn begin_block(state: &mut State, seed: &Hash) -> Vec<Event> {
    let mut events = Vec::new();
    for (at, id, round) in due(state) {
        let result = if round == LEASE_TIMER {
            match state.cluster_lease(id).and_then(|l| l.draw_at) {
                Some(d) if d <= at => check::draw_round(state, id, seed),
                _ => continue,
            }
        } else {
            check::draw_tiebreakers(state, id, round, seed)
        };
        // Every step moves amounts it has just read; an error is a ledger bug that the
        // supply check after the block reports.
        if let Ok(e) = result {
            events.extend(e);
        }
    }
    events
}

/// End of a block: close rounds whose deadline is this block, and the phases of checks whose
/// deadline passed.
pub(crate) fn end_block(state: &mut State) -> Vec<Event> {
    let mut events = Vec::new();
    let height = state.height();
    for (_, id, round) in due(state) {
        let result = if round == LEASE_TIMER {
            match state.cluster_lease(id) {
                Some(l)
                    if l.draw_at.is_none() && !l.rounds_over() && l.round_deadline <= height =>
                {
                    close_round(state, id)
                }
                _ => continue,
            }
        } else {
            check::deadlines(state, id, round)
        };
        if let Ok(e) = result {
            events.extend(e);
        }
    }
    events
}

fn due(state: &State) -> Vec<(u64, LeaseId, u32)> {
    state
        .cluster_timers
        .range(..=(state.height(), LeaseId::MAX, u32::MAX))
        .copied()
        .collect()
}
