//! The checks of cluster rounds: the draw, sealing and revealing, deadlines and the verdict.
//! The rules are the parent module's docs ("Checks"); this file implements them.

use super::{finish_if_done, lease_of, pay_verifier, pay_worker};
use crate::apply::overflow;
use crate::entries::{
    CheckSlot, ClaimStatus, ClusterCheck, ClusterCheckPhase, ClusterLease, ClusterRound,
    CommitStatus, MAX_CLUSTER_CHECKERS,
};
use crate::receipt::{Event, TxError};
use crate::state::State;
use crate::verify::{draw_u64, take_slash};
use orrery_types::cluster::{cluster_check_seal, cluster_delta_commitment};
use orrery_types::codec::BoundedVec;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::tx::LeaseId;

/// Who never checks a lease's rounds: its members and its requester.
fn never_checkers(lease: &ClusterLease) -> Vec<AccountId> {
    let mut v: Vec<AccountId> = lease
        .members
        .as_slice()
        .iter()
        .map(|m| m.provider)
        .collect();
    v.push(lease.requester);
    v
}

/// `n` distinct providers that may check `worker`'s `round`, drawn uniformly by the seed from
/// the committed draw list ([`crate::verify::draw_checkers`]: O(n) lookups, a scan only when
/// almost no provider is eligible). Eligible: may check at all ([`crate::verify::may_check`]:
/// bonded, online), fits the lease's resources, not in `exclude`.
fn pick_verifiers(
    state: &State,
    lease: &ClusterLease,
    (round, worker): (u32, AccountId),
    n: usize,
    seed: &Hash,
    exclude: &[AccountId],
) -> Vec<AccountId> {
    let params = state.params();
    let key = |tail: &[u8]| {
        let mut extra = round.to_be_bytes().to_vec();
        extra.extend_from_slice(&worker.0);
        extra.extend_from_slice(tail);
        extra
    };
    crate::verify::draw_checkers(
        state,
        n,
        |j| {
            draw_u64(
                seed,
                b"orrery/cluster/verifier/slot",
                lease.id,
                &key(&j.to_be_bytes()),
            )
        },
        |id| draw_u64(seed, b"orrery/cluster/verifier", lease.id, &key(&id.0)),
        |id| {
            !exclude.contains(id)
                && state.provider(id).is_some_and(|p| {
                    p.offer.hardware.fits(&lease.terms.resources)
                        && crate::verify::may_check(params, p)
                })
        },
    )
}

fn slots(verifiers: &[AccountId]) -> impl Iterator<Item = CheckSlot> + '_ {
    verifiers.iter().map(|v| CheckSlot {
        verifier: *v,
        seal: None,
        revealed: None,
        status: ClaimStatus::Active,
    })
}

/// The blocks a verifier has to re-execute a round and seal: the fixed allowance plus the
/// round's own time budget.
fn sealing_due(state: &State, lease: &ClusterLease) -> u64 {
    state
        .height()
        .saturating_add(state.params().verify_blocks)
        .saturating_add(lease.round_blocks)
}

/// Start of the block after a round closed: draw which commits are checked; pay the others.
pub(super) fn draw_round(
    state: &mut State,
    id: LeaseId,
    seed: &Hash,
) -> Result<Vec<Event>, TxError> {
    let mut lease = lease_of(state, id)?;
    let round = overflow(lease.round.checked_sub(1))?;
    let mut rec = state.cluster_round(id, round).cloned().unwrap_or_default();
    let never = never_checkers(&lease);
    let mut events = Vec::new();
    for i in 0..rec.commits.len() {
        let c = rec.commits.as_slice()[i];
        if c.status != CommitStatus::Committed {
            continue;
        }
        let mut extra = round.to_be_bytes().to_vec();
        extra.extend_from_slice(&c.worker.0);
        let roll = draw_u64(seed, b"orrery/cluster/sample", id, &extra) % 10_000;
        let verifiers = if roll < u64::from(lease.check_bps) {
            pick_verifiers(state, &lease, (round, c.worker), 1, seed, &never)
        } else {
            Vec::new()
        };
        if verifiers.is_empty() {
            events.push(pay_worker(state, &mut lease, (round, &mut rec), c.worker)?);
            continue;
        }
        rec.commits.as_mut_slice()[i].status = CommitStatus::Checking;
        let check = ClusterCheck {
            worker: c.worker,
            phase: ClusterCheckPhase::Sealing,
            due: sealing_due(state, &lease),
            tiebreak: false,
            slots: BoundedVec::new(slots(&verifiers).collect()).map_err(|_| TxError::Overflow)?,
        };
        rec.checks.push(check).map_err(|_| TxError::Overflow)?;
        lease.open_checks += 1;
        events.push(Event::ClusterCheckDrawn {
            lease: id,
            round,
            worker: c.worker,
            verifiers,
        });
    }
    lease.draw_at = None;
    state.put_cluster_round(id, round, rec);
    events.extend(finish_if_done(state, &mut lease)?);
    overflow(state.put_cluster_lease(lease))?;
    Ok(events)
}

/// The index of the open check of `worker` in `rec`.
fn open_check(rec: &ClusterRound, worker: &AccountId) -> Option<usize> {
    if rec.commit_of(worker)?.status != CommitStatus::Checking {
        return None;
    }
    rec.checks
        .as_slice()
        .iter()
        .position(|c| c.worker == *worker)
}

/// The open check and the sender's active slot in it, in `phase`.
fn seat(
    state: &State,
    (id, round, worker): (LeaseId, u32, AccountId),
    who: AccountId,
    phase: ClusterCheckPhase,
) -> Result<(ClusterRound, usize, usize), TxError> {
    let no = || TxError::NoClusterCheck {
        lease: id,
        round,
        worker,
        who,
        needed: match phase {
            ClusterCheckPhase::Sealing => "sealing",
            _ => "revealing",
        },
    };
    lease_of(state, id)?;
    let rec = state.cluster_round(id, round).cloned().ok_or_else(no)?;
    let ci = open_check(&rec, &worker).ok_or_else(no)?;
    let check = &rec.checks.as_slice()[ci];
    if check.phase != phase {
        return Err(no());
    }
    let si = check
        .slots
        .as_slice()
        .iter()
        .position(|s| s.verifier == who && s.status == ClaimStatus::Active)
        .ok_or_else(no)?;
    if state.height() > check.due {
        return Err(TxError::PastDeadline { limit: check.due });
    }
    Ok((rec, ci, si))
}

/// `SealClusterCheck`.
pub(crate) fn seal_check(
    state: &mut State,
    who: AccountId,
    (id, round, worker): (LeaseId, u32, AccountId),
    seal: Hash,
) -> Result<Vec<Event>, TxError> {
    let (mut rec, ci, si) = seat(state, (id, round, worker), who, ClusterCheckPhase::Sealing)?;
    let reveal_due = state.height().saturating_add(state.params().reveal_blocks);
    let check = &mut rec.checks.as_mut_slice()[ci];
    let slot = &mut check.slots.as_mut_slice()[si];
    if slot.seal.is_some() {
        return Err(TxError::AlreadySealed { lease: id, who });
    }
    slot.seal = Some(seal);
    let all_sealed = check
        .slots
        .as_slice()
        .iter()
        .all(|s| s.status != ClaimStatus::Active || s.seal.is_some());
    if all_sealed {
        check.phase = ClusterCheckPhase::Revealing;
        check.due = reveal_due;
    }
    state.put_cluster_round(id, round, rec);
    Ok(vec![Event::CheckSealed {
        lease: id,
        verifier: who,
    }])
}

/// `RevealClusterCheck`.
pub(crate) fn reveal_check(
    state: &mut State,
    who: AccountId,
    (id, round, worker): (LeaseId, u32, AccountId),
    delta: Hash,
) -> Result<Vec<Event>, TxError> {
    let (mut rec, ci, si) = seat(
        state,
        (id, round, worker),
        who,
        ClusterCheckPhase::Revealing,
    )?;
    let check = &mut rec.checks.as_mut_slice()[ci];
    let slot = &mut check.slots.as_mut_slice()[si];
    if slot.revealed.is_some() {
        return Err(TxError::AlreadyRevealed { lease: id, who });
    }
    let Some(seal) = slot.seal else {
        return Err(TxError::NoClusterCheck {
            lease: id,
            round,
            worker,
            who,
            needed: "revealing (it never sealed)",
        });
    };
    if cluster_check_seal(id, round, &worker, &who, &delta) != seal {
        return Err(TxError::SealMismatch { seal });
    }
    slot.revealed = Some(delta);
    let all_revealed = check
        .slots
        .as_slice()
        .iter()
        .all(|s| s.status != ClaimStatus::Active || s.revealed.is_some());
    let mut events = vec![Event::ClusterCheckRevealed {
        lease: id,
        round,
        worker,
        verifier: who,
        delta,
    }];
    let mut lease = lease_of(state, id)?;
    if all_revealed {
        events.extend(resolve(state, &mut lease, (round, &mut rec), ci)?);
    }
    state.put_cluster_round(id, round, rec);
    events.extend(finish_if_done(state, &mut lease)?);
    overflow(state.put_cluster_lease(lease))?;
    Ok(events)
}

/// Dock and drop every active verifier of check `ci` for which `missing` holds.
fn drop_missing(
    state: &mut State,
    lease: &ClusterLease,
    check: &mut ClusterCheck,
    missing: impl Fn(&CheckSlot) -> bool,
) -> Result<Vec<Event>, TxError> {
    let mut events = Vec::new();
    for slot in check.slots.as_mut_slice() {
        if slot.status != ClaimStatus::Active || !missing(slot) {
            continue;
        }
        slot.status = ClaimStatus::Absent;
        let docked = super::dock(state, lease, slot.verifier)?;
        events.push(Event::CheckAbsent {
            lease: lease.id,
            party: slot.verifier,
            docked,
        });
    }
    Ok(events)
}

/// End of a block: the checks of `round` whose phase deadline passed.
pub(super) fn deadlines(state: &mut State, id: LeaseId, round: u32) -> Result<Vec<Event>, TxError> {
    let mut lease = lease_of(state, id)?;
    let Some(mut rec) = state.cluster_round(id, round).cloned() else {
        return Ok(Vec::new());
    };
    let height = state.height();
    let mut events = Vec::new();
    for ci in 0..rec.checks.len() {
        let worker = rec.checks.as_slice()[ci].worker;
        if open_check(&rec, &worker) != Some(ci) {
            continue;
        }
        let check = &mut rec.checks.as_mut_slice()[ci];
        let resolve_now = match check.phase {
            ClusterCheckPhase::Sealing if check.due <= height => {
                events.extend(drop_missing(state, &lease, check, |s| s.seal.is_none())?);
                let any = check
                    .slots
                    .as_slice()
                    .iter()
                    .any(|s| s.status == ClaimStatus::Active);
                check.phase = ClusterCheckPhase::Revealing;
                check.due = height.saturating_add(state.params().reveal_blocks);
                !any
            }
            ClusterCheckPhase::Revealing if check.due <= height => {
                events.extend(drop_missing(state, &lease, check, |s| {
                    s.revealed.is_none()
                })?);
                true
            }
            _ => false,
        };
        if resolve_now {
            events.extend(resolve(state, &mut lease, (round, &mut rec), ci)?);
        }
    }
    state.put_cluster_round(id, round, rec);
    events.extend(finish_if_done(state, &mut lease)?);
    overflow(state.put_cluster_lease(lease))?;
    Ok(events)
}

/// Start of a block: seat the tie-breakers of checks of `round` whose first verifier dissented.
pub(super) fn draw_tiebreakers(
    state: &mut State,
    id: LeaseId,
    round: u32,
    seed: &Hash,
) -> Result<Vec<Event>, TxError> {
    let mut lease = lease_of(state, id)?;
    let Some(mut rec) = state.cluster_round(id, round).cloned() else {
        return Ok(Vec::new());
    };
    let height = state.height();
    let wanted = usize::from(state.params().tiebreak_verifiers);
    let mut events = Vec::new();
    for ci in 0..rec.checks.len() {
        let check = rec.checks.as_slice()[ci].clone();
        if check.phase != ClusterCheckPhase::AwaitingTiebreak || check.due > height {
            continue;
        }
        let mut exclude = never_checkers(&lease);
        exclude.extend(check.slots.as_slice().iter().map(|s| s.verifier));
        let room = MAX_CLUSTER_CHECKERS - check.slots.len();
        let picked = pick_verifiers(
            state,
            &lease,
            (round, check.worker),
            wanted.min(room),
            seed,
            &exclude,
        );
        let entry = &mut rec.checks.as_mut_slice()[ci];
        entry.tiebreak = true;
        for s in slots(&picked) {
            entry.slots.push(s).map_err(|_| TxError::Overflow)?;
        }
        if picked.is_empty() {
            events.extend(resolve(state, &mut lease, (round, &mut rec), ci)?);
            continue;
        }
        entry.phase = ClusterCheckPhase::Sealing;
        entry.due = sealing_due(state, &lease);
        events.push(Event::ClusterCheckDrawn {
            lease: id,
            round,
            worker: check.worker,
            verifiers: picked,
        });
    }
    state.put_cluster_round(id, round, rec);
    events.extend(finish_if_done(state, &mut lease)?);
    overflow(state.put_cluster_lease(lease))?;
    Ok(events)
}

/// The hash held by a strict majority of `claims`, if any.
fn strict_majority(claims: &[Hash]) -> Option<Hash> {
    claims
        .iter()
        .find(|h| 2 * claims.iter().filter(|x| x == h).count() > claims.len())
        .copied()
}

/// Every revealed claim of check `ci` is in: decide it. Without tie-breakers, agreement
/// upholds the worker and a dissent calls tie-breakers; with them, the strict majority of the
/// worker's claim and every revealed verifier's decides.
fn resolve(
    state: &mut State,
    lease: &mut ClusterLease,
    (round, rec): (u32, &mut ClusterRound),
    ci: usize,
) -> Result<Vec<Event>, TxError> {
    let check = rec.checks.as_slice()[ci].clone();
    let worker_delta = rec
        .commit_of(&check.worker)
        .map(|c| c.delta)
        .ok_or(TxError::Overflow)?;
    // Claims compare as the worker committed them: each verifier's delta hash bound to the
    // worker and round.
    let revealed: Vec<(AccountId, Hash)> = check
        .slots
        .as_slice()
        .iter()
        .filter(|s| s.status == ClaimStatus::Active)
        .filter_map(|s| {
            let h = s.revealed?;
            Some((
                s.verifier,
                cluster_delta_commitment(lease.id, round, &check.worker, &h),
            ))
        })
        .collect();
    let verdict = if !check.tiebreak {
        if revealed.iter().any(|(_, h)| *h != worker_delta) {
            let entry = &mut rec.checks.as_mut_slice()[ci];
            entry.phase = ClusterCheckPhase::AwaitingTiebreak;
            entry.due = state.height().saturating_add(1);
            return Ok(Vec::new());
        }
        Some(worker_delta)
    } else {
        let mut claims = vec![worker_delta];
        claims.extend(revealed.iter().map(|(_, h)| *h));
        strict_majority(&claims)
    };
    rule(
        state,
        lease,
        (round, rec),
        ci,
        (verdict, worker_delta, &revealed),
    )
}

/// Carry out a verdict: pay or exclude the worker, pay the verifiers that match it, slash every
/// claim against it.
fn rule(
    state: &mut State,
    lease: &mut ClusterLease,
    (round, rec): (u32, &mut ClusterRound),
    ci: usize,
    (verdict, worker_delta, revealed): (Option<Hash>, Hash, &[(AccountId, Hash)]),
) -> Result<Vec<Event>, TxError> {
    let worker = rec.checks.as_slice()[ci].worker;
    let upheld = verdict == Some(worker_delta);
    let mut events = Vec::new();
    let mut winners: Vec<AccountId> = Vec::new();
    let mut losers: Vec<AccountId> = Vec::new();
    if let Some(v) = verdict {
        for (who, h) in revealed {
            if *h == v {
                winners.push(*who);
            } else {
                losers.push(*who);
            }
        }
        if upheld {
            winners.push(worker);
        } else {
            losers.push(worker);
        }
    }
    for who in &losers {
        let s = take_slash(state, *who, &winners)?;
        events.push(Event::Slashed {
            lease: lease.id,
            party: *who,
            amount: s.amount,
            rewarded: s.rewarded,
            burned: s.burned,
        });
        if let Some(slot) = rec.checks.as_mut_slice()[ci]
            .slots
            .as_mut_slice()
            .iter_mut()
            .find(|s| s.verifier == *who)
        {
            slot.status = ClaimStatus::Slashed;
        }
    }
    // The first verifier is paid from the check budget, which holds one per commit;
    // tie-breakers are paid from the loser's slash, as in single-provider checks.
    let first = rec.checks.as_slice()[ci]
        .slots
        .as_slice()
        .first()
        .map(|s| s.verifier);
    if let Some(v) = first.filter(|v| winners.contains(v)) {
        events.extend(pay_verifier(state, lease, v)?);
    }
    if upheld {
        events.push(pay_worker(state, lease, (round, rec), worker)?);
    } else {
        if let Some(c) = rec
            .commits
            .as_mut_slice()
            .iter_mut()
            .find(|c| c.worker == worker)
        {
            c.status = CommitStatus::Excluded;
        }
        rec.recompute = true;
    }
    lease.open_checks = lease.open_checks.saturating_sub(1);
    events.push(Event::ClusterCheckResolved {
        lease: lease.id,
        round,
        worker,
        upheld,
    });
    Ok(events)
}
