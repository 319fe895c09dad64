//! The agent's decisions, as a pure function: given a lease as the chain shows it, this
//! agent's account, the chain's head and what the agent has computed, which one thing to do.
//!
//! # Rules (see `docs/protocol.md`, "Verification and disputes")
//!
//! | lease state | role | condition | action |
//! |---|---|---|---|
//! | `AwaitingStart` | provider | `height + 1 ≤ start_by` | [`Action::Start`] (fetch the bundle, `StartLease`) |
//! | `Running` | provider | no finished run | [`Action::Run`] |
//! | `Running` | provider | run finished, `height + 1 ≤ deadline` | `CommitResult { seal, usage }` |
//! | `Checking`, sealing | drawn verifier without a seal | no finished run | [`Action::Run`] |
//! | `Checking`, sealing | drawn verifier without a seal | run finished | `CommitCheck { seal }` |
//! | `Checking`, revealing | party with a seal, unrevealed | run finished | `RevealResult { claim }` |
//! | `Disputed`, bisecting | provider or challenger, no move this round | run finished | `DisputeMove` = the children of its node |
//! | `Disputed`, narrowed | provider or challenger | run finished | [`Action::Adjudicate`] |
//! | final states | — | — | [`Action::Forget`] |
//! | anything else | — | — | [`Action::Wait`] |
//!
//! - **Seals** are `result_seal(lease, me, claim)`: bound to this agent, so nobody can copy them.
//! - **Failure claims** are handled like any outcome: a run that failed deterministically
//!   finished with a failure claim ([`crate::runner`]), which is committed, checked, revealed
//!   (with the runtime's message as its note) and argued the same way; its usage is the units
//!   the run burned up to the failure.
//! - **Usage** is `units = min(cost, max_units)` and `seconds = min(wall seconds, chain seconds
//!   since the start (rounded up), max_seconds)`: never more than the chain can confirm.
//! - **Dispute moves** split the current node `[start, start + size)` at the largest power of
//!   two below `size` (RFC 6962), and send the Merkle roots of the two halves of *this agent's*
//!   checkpoints; they hash to the node the chain holds for this agent.
//! - **Referee input** ([`RefereeInput`]): for a step-count dispute, nothing (the manifest
//!   decides); for an output dispute, `state_n` with the proof of leaf `n`; for a checkpoint
//!   dispute narrowed to leaf `d`, nothing when `d = 0` (the referee runs `init`), else
//!   `state_(d−1)` with the proof of leaf `d − 1`. Where this agent's run failed at or before
//!   that leaf, the leaf is the failure's marker and the "state" sent is the failure's encoding
//!   ([`crate::runner::replay_state`] returns it).
//!
//! Whether a transaction was already sent (and not yet applied) is the actor's concern, not
//! this module's: the same inputs always give the same decision.

use crate::store::Outcome;
use orrery_ledger::entries::{CheckPhase, ClaimStatus, DisputeKind, LeaseState};
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::merkle::merkle_root;
use orrery_types::resources::Usage;
use orrery_types::tx::{
    FailureNote, LeaseId, LeaseTerms, TxBody, Verification, failure_note, result_seal,
};

/// A lease as the agent sees it (from the node's API or straight from a ledger state).
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseInfo {
    /// Its number.
    pub id: LeaseId,
    /// Who pays.
    pub requester: AccountId,
    /// Who works.
    pub provider: AccountId,
    /// The job bundle's hash.
    pub job: Hash,
    /// Resources, prices, limits.
    pub terms: LeaseTerms,
    /// How it is checked.
    pub verification: Verification,
    /// Last height to start.
    pub start_by: u64,
    /// Last height to commit.
    pub deadline: u64,
    /// Where it is.
    pub state: LeaseState,
}

impl From<&orrery_ledger::entries::Lease> for LeaseInfo {
    fn from(l: &orrery_ledger::entries::Lease) -> Self {
        LeaseInfo {
            id: l.id,
            requester: l.requester,
            provider: l.provider,
            job: l.job,
            terms: l.terms,
            verification: l.verification,
            start_by: l.start_by,
            deadline: l.deadline,
            state: l.state.clone(),
        }
    }
}

/// The chain's latest block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Its height.
    pub height: u64,
    /// Its time (ms since the Unix epoch).
    pub time_ms: u64,
}

/// What this agent is in a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The lease's provider.
    Provider,
    /// A drawn verifier (its index in the check's claims).
    Verifier(usize),
}

/// What the referee needs, for [`Action::Adjudicate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefereeInput {
    /// The state to send: `Some(k)` for `state_k`, `None` for an empty state.
    pub state: Option<u64>,
    /// The leaf whose proof to send (from this agent's checkpoint tree).
    pub proof_leaf: u64,
}

/// The one thing to do about a lease now.
// `Send` carries a whole `TxBody`, which the inference transactions made large; an `Action` is
// decided and consumed at once, never stored in bulk, so boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the chain moves.
    Wait,
    /// Fetch the bundle and send `StartLease`.
    Start,
    /// Run (or resume) the job.
    Run,
    /// Send this transaction.
    Send(TxBody),
    /// Send `Adjudicate` with the bundle and this input.
    Adjudicate(RefereeInput),
    /// The lease is final: drop what is kept about it.
    Forget,
}

/// This agent's role in `lease`, if any.
pub fn role(me: &AccountId, lease: &LeaseInfo) -> Option<Role> {
    if lease.provider == *me {
        return Some(Role::Provider);
    }
    lease
        .state
        .claims()
        .iter()
        .position(|c| c.party == *me)
        .filter(|&i| i > 0)
        .map(Role::Verifier)
}

/// The largest power of two strictly below `size` (`size ≥ 2`): the RFC 6962 split.
pub fn split(size: u64) -> u64 {
    debug_assert!(size >= 2);
    1u64 << (63 - (size.max(2) - 1).leading_zeros())
}

/// The usage to claim for a finished run.
pub fn usage(outcome: &Outcome, terms: &LeaseTerms, started_ms: u64, now_ms: u64) -> Usage {
    let chain_s = now_ms.saturating_sub(started_ms).div_ceil(1000);
    let wall_s = outcome.wall_ms.div_ceil(1000);
    Usage {
        seconds: wall_s.min(chain_s).min(terms.max_seconds),
        units: outcome.units.min(terms.max_units),
    }
}

/// The note revealed with a claim: the runtime's message for a failure claim, none otherwise
/// (the ledger refuses a note on a claim of success).
pub fn note(outcome: &Outcome) -> FailureNote {
    match outcome.claim.failure {
        Some(_) => failure_note(&outcome.note),
        None => FailureNote::default(),
    }
}

/// Decide what to do about `lease`. `outcome` is this agent's finished run of the job, if any.
pub fn decide(me: &AccountId, lease: &LeaseInfo, head: Head, outcome: Option<&Outcome>) -> Action {
    if !lease.state.is_active() {
        return Action::Forget;
    }
    let Some(role) = role(me, lease) else {
        return Action::Wait;
    };
    let next = head.height.saturating_add(1);
    match (&lease.state, role) {
        (LeaseState::AwaitingStart, Role::Provider) if next <= lease.start_by => Action::Start,
        (LeaseState::Running { started_ms, .. }, Role::Provider) => match outcome {
            None => Action::Run,
            Some(_) if next > lease.deadline => Action::Wait,
            Some(o) => Action::Send(TxBody::CommitResult {
                lease: lease.id,
                seal: result_seal(lease.id, me, &o.claim),
                usage: usage(o, &lease.terms, *started_ms, head.time_ms),
            }),
        },
        (LeaseState::Checking(check), role) => {
            let index = match role {
                Role::Provider => 0,
                Role::Verifier(i) => i,
            };
            let Some(mine) = check.claims.as_slice().get(index) else {
                return Action::Wait;
            };
            if mine.status != ClaimStatus::Active {
                return Action::Wait;
            }
            match (check.phase, mine.seal, mine.revealed, outcome) {
                (CheckPhase::Sealing, None, _, None) if index > 0 => Action::Run,
                (CheckPhase::Sealing, None, _, Some(o)) if index > 0 => {
                    Action::Send(TxBody::CommitCheck {
                        lease: lease.id,
                        seal: result_seal(lease.id, me, &o.claim),
                    })
                }
                (CheckPhase::Revealing, Some(_), None, None) => Action::Run,
                (CheckPhase::Revealing, Some(_), None, Some(o)) => {
                    Action::Send(TxBody::RevealResult {
                        lease: lease.id,
                        claim: o.claim,
                        note: note(o),
                    })
                }
                _ => Action::Wait,
            }
        }
        (LeaseState::Disputed(d), role) => {
            let moved = match role {
                Role::Provider => d.provider_move.is_some(),
                Role::Verifier(i) if i == usize::from(d.challenger) => d.challenger_move.is_some(),
                Role::Verifier(_) => return Action::Wait,
            };
            let Some(o) = outcome else {
                return Action::Run;
            };
            if d.awaiting_referee {
                let n = d.leaf_count.saturating_sub(1);
                let input = match d.kind {
                    DisputeKind::Steps => RefereeInput {
                        state: None,
                        proof_leaf: 0,
                    },
                    DisputeKind::Output => RefereeInput {
                        state: Some(n),
                        proof_leaf: n,
                    },
                    DisputeKind::Checkpoints if d.start == 0 => RefereeInput {
                        state: None,
                        proof_leaf: 0,
                    },
                    DisputeKind::Checkpoints => RefereeInput {
                        state: Some(d.start - 1),
                        proof_leaf: d.start - 1,
                    },
                };
                // A proof can only come from a tree with the disputed shape.
                if o.checkpoints.len() as u64 != d.leaf_count && d.kind != DisputeKind::Steps {
                    return Action::Wait;
                }
                return Action::Adjudicate(input);
            }
            if moved || d.size < 2 {
                return Action::Wait;
            }
            let Some(end) = d.start.checked_add(d.size) else {
                return Action::Wait;
            };
            if end > o.checkpoints.len() as u64 {
                return Action::Wait;
            }
            let k = split(d.size);
            let (a, m, e) = (d.start as usize, (d.start + k) as usize, end as usize);
            Action::Send(TxBody::DisputeMove {
                lease: lease.id,
                left: merkle_root(&o.checkpoints[a..m]),
                right: merkle_root(&o.checkpoints[m..e]),
            })
        }
        _ => Action::Wait,
    }
}
