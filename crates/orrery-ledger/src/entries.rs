//! The records the ledger keeps, and their canonical encodings (what the state root commits to
//! and what the store writes).

use crate::params::Params;
use bytes::BufMut;
use commonware_codec::{EncodeSize, Error as CodecError, Read, ReadExt as _, Write};
use orrery_types::amount::Amount;
use orrery_types::codec::BoundedVec;
use orrery_types::codec_struct;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::inference::ResponseCommitment;
use orrery_types::resources::Usage;
use orrery_types::tx::{
    BatchId, ChainId, LeaseId, LeaseTerms, ProviderOffer, ResultClaim, Verification,
};
use orrery_types::workload::JobFailure;
use serde::Serialize;

/// Most validators a chain can list at genesis.
pub const MAX_VALIDATORS: usize = 1024;

/// A balance and the nonce of the next transaction it may sign.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Account {
    /// Spendable tokens.
    pub balance: Amount,
    /// Number of transactions applied from this account.
    pub nonce: u64,
}
codec_struct!(Account {
    balance: Amount,
    nonce: u64
});

/// Track record of a provider, read by the router.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Reputation {
    /// Leases settled and paid.
    pub settled: u64,
    /// Results that were independently checked and found correct.
    pub checked: u64,
    /// Results found wrong.
    pub failed: u64,
    /// Times the provider's stake was slashed.
    pub slashed: u64,
    /// Leases that timed out on the provider's side.
    pub timed_out: u64,
}
codec_struct!(Reputation {
    settled: u64,
    checked: u64,
    failed: u64,
    slashed: u64,
    timed_out: u64,
});

/// What the chain has measured of a provider through challenges (see [`crate::challenge`]),
/// read by the API, the router and the explorer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ProvenRecord {
    /// Challenges drawn for it (by the seed or on its request).
    pub challenges_drawn: u64,
    /// Challenges answered and opened correctly in time (including answers below the claim:
    /// the machine was alive). Uptime is answered ÷ (answered + missed): a challenge still
    /// open counts for neither, so uptime does not dip while the provider is solving.
    pub challenges_answered: u64,
    /// Challenges missed: not answered in time, not opened in time, or answered wrongly.
    pub challenges_missed: u64,
    /// Of the missed, those whose opened rows failed Freivalds' test.
    pub challenges_wrong: u64,
    /// Answers whose measured throughput was below `challenge_min_claim_bps` of the claim.
    pub below_claim: u64,
    /// Whether its offers may be routed: false after a miss or an answer below the claim,
    /// true again after a passing answer. A new provider starts online.
    pub online: bool,
    /// Height of the last passing answer (0 = none).
    pub last_answered_at: u64,
    /// Throughput proven by the last correct answer, FLOP/s: its work ÷ the whole time from draw
    /// to answer, a lower bound (0 = none yet).
    pub proven_flops: u64,
    /// Measured ÷ claimed throughput in basis points, capped at 10000, averaged over correct
    /// answers (each new measurement weighs a quarter); 0 until the first.
    pub proven_score_bps: u32,
}
codec_struct!(ProvenRecord {
    challenges_drawn: u64,
    challenges_answered: u64,
    challenges_missed: u64,
    challenges_wrong: u64,
    below_claim: u64,
    online: bool,
    last_answered_at: u64,
    proven_flops: u64,
    proven_score_bps: u32,
});

impl Default for ProvenRecord {
    fn default() -> Self {
        ProvenRecord {
            challenges_drawn: 0,
            challenges_answered: 0,
            challenges_missed: 0,
            challenges_wrong: 0,
            below_claim: 0,
            online: true,
            last_answered_at: 0,
            proven_flops: 0,
            proven_score_bps: 0,
        }
    }
}

impl ProvenRecord {
    /// Challenges answered or missed: every drawn one but an open one.
    pub fn decided(&self) -> u64 {
        self.challenges_answered
            .saturating_add(self.challenges_missed)
    }

    /// Answered ÷ decided (answered + missed) in basis points; 10000 before the first decided
    /// challenge. An open challenge is not counted until it is answered or missed.
    pub fn uptime_bps(&self) -> u32 {
        let decided = u128::from(self.decided());
        if decided == 0 {
            return 10_000;
        }
        (u128::from(self.challenges_answered) * 10_000 / decided).min(10_000) as u32
    }
}

/// A registered provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Provider {
    /// What it offers.
    pub offer: ProviderOffer,
    /// Bonded stake (slashable).
    pub stake: Amount,
    /// Leases opened and not yet settled or timed out.
    pub active_leases: u32,
    /// Height of registration.
    pub registered_at: u64,
    /// Track record.
    pub reputation: Reputation,
    /// Total paid to the provider over its life, after fees.
    pub earned: Amount,
    /// Its challenge record: uptime and proven throughput.
    pub proof: ProvenRecord,
    /// Its position in the list the challenge draw indexes (bonded providers only; `None`
    /// without stake). Kept here so the list is committed and rebuilt on load.
    pub draw_slot: Option<u64>,
}
codec_struct!(Provider {
    offer: ProviderOffer,
    stake: Amount,
    active_leases: u32,
    registered_at: u64,
    reputation: Reputation,
    earned: Amount,
    proof: ProvenRecord,
    draw_slot: Option<u64>,
});

/// Where an open challenge is (see [`crate::challenge`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum ChallengePhase {
    /// The provider asked for a challenge at height `at`; the next block draws it.
    Requested {
        /// Height of `RequestChallenge`.
        at: u64,
    },
    /// Drawn; the answer is due by `drawn_at + challenge_deadline_blocks` and within the
    /// deadline in block time.
    Drawn,
    /// Answered at `answered_at`; the next block's seed draws the rows to open.
    Answered {
        /// The answer's Merkle root.
        root: Hash,
        /// Block time from the draw to the answer.
        elapsed_ms: u64,
        /// Height of the answer.
        answered_at: u64,
    },
    /// The rows to open are drawn from `open_seed`; the opening is due by
    /// `answered_at + challenge_open_blocks`.
    Opening {
        /// The answer's Merkle root.
        root: Hash,
        /// Block time from the draw to the answer.
        elapsed_ms: u64,
        /// Height of the answer.
        answered_at: u64,
        /// Seed of the block after the answer: picks the rows and Freivalds' vector.
        open_seed: Hash,
    },
}

impl Write for ChallengePhase {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            ChallengePhase::Requested { at } => {
                0u8.write(buf);
                at.write(buf);
            }
            ChallengePhase::Drawn => 1u8.write(buf),
            ChallengePhase::Answered {
                root,
                elapsed_ms,
                answered_at,
            } => {
                2u8.write(buf);
                root.write(buf);
                elapsed_ms.write(buf);
                answered_at.write(buf);
            }
            ChallengePhase::Opening {
                root,
                elapsed_ms,
                answered_at,
                open_seed,
            } => {
                3u8.write(buf);
                root.write(buf);
                elapsed_ms.write(buf);
                answered_at.write(buf);
                open_seed.write(buf);
            }
        }
    }
}
impl EncodeSize for ChallengePhase {
    fn encode_size(&self) -> usize {
        1 + match self {
            ChallengePhase::Requested { .. } => 8,
            ChallengePhase::Drawn => 0,
            ChallengePhase::Answered { .. } => 32 + 8 + 8,
            ChallengePhase::Opening { .. } => 32 + 8 + 8 + 32,
        }
    }
}
impl Read for ChallengePhase {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        Ok(match u8::read(buf)? {
            0 => ChallengePhase::Requested {
                at: u64::read(buf)?,
            },
            1 => ChallengePhase::Drawn,
            2 => ChallengePhase::Answered {
                root: Hash::read(buf)?,
                elapsed_ms: u64::read(buf)?,
                answered_at: u64::read(buf)?,
            },
            3 => ChallengePhase::Opening {
                root: Hash::read(buf)?,
                elapsed_ms: u64::read(buf)?,
                answered_at: u64::read(buf)?,
                open_seed: Hash::read(buf)?,
            },
            t => return Err(CodecError::InvalidEnum(t)),
        })
    }
}

/// A provider's open challenge (at most one). Removed when it passes or is missed; what it
/// proved stays in the provider's [`ProvenRecord`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Challenge {
    /// Height of the draw (0 while only requested).
    pub drawn_at: u64,
    /// Block time of the draw.
    pub drawn_ms: u64,
    /// `challenge_seed(block seed, provider, drawn_at)`: generates `A` and `B`.
    pub seed: Hash,
    /// Side of `B` (`challenge_dim` at the draw).
    pub dim: u64,
    /// Rows of `A`, sized from the claim at the draw.
    pub rows: u64,
    /// The claimed throughput the rows were sized from, FLOP/s.
    pub claimed_flops: u64,
    /// Where it is.
    pub phase: ChallengePhase,
}
codec_struct!(Challenge {
    drawn_at: u64,
    drawn_ms: u64,
    seed: Hash,
    dim: u64,
    rows: u64,
    claimed_flops: u64,
    phase: ChallengePhase,
});

impl Challenge {
    /// The height at which the challenge's timer fires, given the chain's windows: the
    /// start of the next block for `Requested` and `Answered` (handled in `begin_block`), the
    /// end of the deadline's block for `Drawn` and `Opening` (handled in `end_block`).
    pub fn timer(&self, params: &Params) -> u64 {
        match self.phase {
            ChallengePhase::Requested { at } => at.saturating_add(1),
            ChallengePhase::Drawn => self
                .drawn_at
                .saturating_add(params.challenge_deadline_blocks),
            ChallengePhase::Answered { answered_at, .. } => answered_at.saturating_add(1),
            ChallengePhase::Opening { answered_at, .. } => {
                answered_at.saturating_add(params.challenge_open_blocks)
            }
        }
    }
}

/// Where a lease is in its life. A lease is in exactly one of these states.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LeaseState {
    /// Opened; the provider has until `start_by` to start it.
    AwaitingStart,
    /// Started; the result is due by the lease's deadline.
    Running {
        /// Height of `StartLease`.
        started_at: u64,
        /// Block time of `StartLease`.
        started_ms: u64,
    },
    /// The provider sealed its result; the block after `committed_at` draws (from its seed)
    /// whether and by whom it is checked.
    Sealed {
        /// The provider's seal.
        seal: Hash,
        /// Metered usage claimed.
        usage: Usage,
        /// Height of the commitment.
        committed_at: u64,
        /// Height of `StartLease` (the run's length sizes the verifiers' time).
        started_at: u64,
    },
    /// Verifiers (possibly none) are sealing, then every party reveals.
    Checking(Box<Check>),
    /// Two claims differ: a bisection game narrows them to one step the referee executes.
    Disputed(Box<Dispute>),
    /// Result (or failure claim) revealed and checked, if it was drawn; settles at `settle_at`
    /// unless the requester accepts it earlier.
    Committed {
        /// Hash of the output.
        output: Hash,
        /// Merkle root over the run's checkpoints.
        checkpoint_root: Hash,
        /// Metered usage claimed.
        usage: Usage,
        /// Height of the commitment.
        committed_at: u64,
        /// Height of automatic settlement.
        settle_at: u64,
        /// Where and why the job failed, when the result is a failure claim.
        failure: Option<JobFailure>,
    },
    /// Paid out, for a result or a failure claim that stood. Final.
    Settled {
        /// Hash of the output.
        output: Hash,
        /// Merkle root over the run's checkpoints.
        checkpoint_root: Hash,
        /// Metered usage paid for.
        usage: Usage,
        /// Total charged to the requester (provider's pay plus the fee).
        paid: Amount,
        /// Protocol fee taken from `paid`.
        fee: Amount,
        /// Escrow returned to the requester.
        refunded: Amount,
        /// Height of settlement.
        settled_at: u64,
        /// Where and why the job failed, when the result paid for is a failure claim (the
        /// requester paid for the work done until the failure).
        failure: Option<JobFailure>,
    },
    /// The provider's result was shown wrong, or it failed to reveal it: the requester was
    /// refunded in full and the provider slashed. Final.
    Failed {
        /// Escrow returned to the requester.
        refunded: Amount,
        /// Stake slashed from the provider.
        slashed: Amount,
        /// Height of the verdict.
        at: u64,
    },
    /// The provider did not start or finish in time; the requester was refunded. Final.
    TimedOut {
        /// Escrow returned to the requester.
        refunded: Amount,
        /// Stake docked from the provider (burned).
        docked: Amount,
        /// Height of the timeout.
        at: u64,
    },
}

impl LeaseState {
    /// Short name for tables.
    pub fn name(&self) -> &'static str {
        match self {
            LeaseState::AwaitingStart => "awaiting_start",
            LeaseState::Running { .. } => "running",
            LeaseState::Sealed { .. } => "sealed",
            LeaseState::Checking(_) => "checking",
            LeaseState::Disputed(_) => "disputed",
            LeaseState::Committed { .. } => "committed",
            LeaseState::Settled { .. } => "settled",
            LeaseState::Failed { .. } => "failed",
            LeaseState::TimedOut { .. } => "timed_out",
        }
    }

    /// Whether the lease still holds escrow.
    pub fn is_active(&self) -> bool {
        !matches!(
            self,
            LeaseState::Settled { .. } | LeaseState::TimedOut { .. } | LeaseState::Failed { .. }
        )
    }

    /// The claims of the check in progress — the provider's first, then the drawn verifiers'
    /// and any tie-breakers' — or none when no check is under way.
    pub fn claims(&self) -> &[Claim] {
        match self {
            LeaseState::Checking(c) => c.claims.as_slice(),
            LeaseState::Disputed(d) => d.check.claims.as_slice(),
            _ => &[],
        }
    }
}

impl Write for LeaseState {
    fn write(&self, buf: &mut impl BufMut) {
        match self {
            LeaseState::AwaitingStart => 0u8.write(buf),
            LeaseState::Running {
                started_at,
                started_ms,
            } => {
                1u8.write(buf);
                started_at.write(buf);
                started_ms.write(buf);
            }
            LeaseState::Committed {
                output,
                checkpoint_root,
                usage,
                committed_at,
                settle_at,
                failure,
            } => {
                2u8.write(buf);
                output.write(buf);
                checkpoint_root.write(buf);
                usage.write(buf);
                committed_at.write(buf);
                settle_at.write(buf);
                failure.write(buf);
            }
            LeaseState::Settled {
                output,
                checkpoint_root,
                usage,
                paid,
                fee,
                refunded,
                settled_at,
                failure,
            } => {
                3u8.write(buf);
                output.write(buf);
                checkpoint_root.write(buf);
                usage.write(buf);
                paid.write(buf);
                fee.write(buf);
                refunded.write(buf);
                settled_at.write(buf);
                failure.write(buf);
            }
            LeaseState::TimedOut {
                refunded,
                docked,
                at,
            } => {
                4u8.write(buf);
                refunded.write(buf);
                docked.write(buf);
                at.write(buf);
            }
            LeaseState::Sealed {
                seal,
                usage,
                committed_at,
                started_at,
            } => {
                5u8.write(buf);
                seal.write(buf);
                usage.write(buf);
                committed_at.write(buf);
                started_at.write(buf);
            }
            LeaseState::Checking(check) => {
                6u8.write(buf);
                check.write(buf);
            }
            LeaseState::Disputed(dispute) => {
                7u8.write(buf);
                dispute.write(buf);
            }
            LeaseState::Failed {
                refunded,
                slashed,
                at,
            } => {
                8u8.write(buf);
                refunded.write(buf);
                slashed.write(buf);
                at.write(buf);
            }
        }
    }
}

impl EncodeSize for LeaseState {
    fn encode_size(&self) -> usize {
        1 + match self {
            LeaseState::AwaitingStart => 0,
            LeaseState::Running { .. } => 16,
            LeaseState::Committed { failure, .. } => 32 + 32 + 16 + 8 + 8 + failure.encode_size(),
            LeaseState::Settled { failure, .. } => {
                32 + 32 + 16 + 16 * 3 + 8 + failure.encode_size()
            }
            LeaseState::TimedOut { .. } => 16 * 2 + 8,
            LeaseState::Sealed { .. } => 32 + 16 + 8 + 8,
            LeaseState::Checking(c) => c.encode_size(),
            LeaseState::Disputed(d) => d.encode_size(),
            LeaseState::Failed { .. } => 16 * 2 + 8,
        }
    }
}

impl Read for LeaseState {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        Ok(match u8::read(buf)? {
            0 => LeaseState::AwaitingStart,
            1 => LeaseState::Running {
                started_at: u64::read(buf)?,
                started_ms: u64::read(buf)?,
            },
            2 => LeaseState::Committed {
                output: Hash::read(buf)?,
                checkpoint_root: Hash::read(buf)?,
                usage: Usage::read(buf)?,
                committed_at: u64::read(buf)?,
                settle_at: u64::read(buf)?,
                failure: Option::<JobFailure>::read(buf)?,
            },
            3 => LeaseState::Settled {
                output: Hash::read(buf)?,
                checkpoint_root: Hash::read(buf)?,
                usage: Usage::read(buf)?,
                paid: Amount::read(buf)?,
                fee: Amount::read(buf)?,
                refunded: Amount::read(buf)?,
                settled_at: u64::read(buf)?,
                failure: Option::<JobFailure>::read(buf)?,
            },
            4 => LeaseState::TimedOut {
                refunded: Amount::read(buf)?,
                docked: Amount::read(buf)?,
                at: u64::read(buf)?,
            },
            5 => LeaseState::Sealed {
                seal: Hash::read(buf)?,
                usage: Usage::read(buf)?,
                committed_at: u64::read(buf)?,
                started_at: u64::read(buf)?,
            },
            6 => LeaseState::Checking(Box::new(Check::read(buf)?)),
            7 => LeaseState::Disputed(Box::new(Dispute::read(buf)?)),
            8 => LeaseState::Failed {
                refunded: Amount::read(buf)?,
                slashed: Amount::read(buf)?,
                at: u64::read(buf)?,
            },
            t => return Err(CodecError::InvalidEnum(t)),
        })
    }
}

/// A requester's rental of a provider for one job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// Its number.
    pub id: LeaseId,
    /// Who pays.
    pub requester: AccountId,
    /// Who works.
    pub provider: AccountId,
    /// Content hash of the job bundle.
    pub job: Hash,
    /// Resources, agreed prices and limits.
    pub terms: LeaseTerms,
    /// How the result is checked.
    pub verification: Verification,
    /// Tokens locked for this lease (the maximum cost while active; zero once final).
    pub escrow: Amount,
    /// Height of `OpenLease`.
    pub opened_at: u64,
    /// Last height at which the provider may start it.
    pub start_by: u64,
    /// Last height at which the provider may commit a result.
    pub deadline: u64,
    /// Where it is.
    pub state: LeaseState,
}
codec_struct!(Lease {
    id: LeaseId,
    requester: AccountId,
    provider: AccountId,
    job: Hash,
    terms: LeaseTerms,
    verification: Verification,
    escrow: Amount,
    opened_at: u64,
    start_by: u64,
    deadline: u64,
    state: LeaseState,
});

impl Lease {
    /// Whether `who` has a part to play in this lease: its provider, or a party to its check
    /// or dispute (a drawn verifier or a tie-breaker).
    pub fn involves(&self, who: &AccountId) -> bool {
        self.provider == *who || self.state.claims().iter().any(|c| c.party == *who)
    }

    /// The height at which the ledger acts on this lease by itself (timeout or automatic
    /// settlement), if any.
    pub fn timer(&self) -> Option<u64> {
        match &self.state {
            LeaseState::AwaitingStart => Some(self.start_by),
            LeaseState::Running { .. } => Some(self.deadline),
            LeaseState::Committed { settle_at, .. } => Some(*settle_at),
            LeaseState::Sealed { committed_at, .. } => Some(committed_at + 1),
            LeaseState::Checking(c) => Some(c.due),
            LeaseState::Disputed(d) => Some(d.due),
            LeaseState::Settled { .. }
            | LeaseState::TimedOut { .. }
            | LeaseState::Failed { .. } => None,
        }
    }
}

/// Most parties in one check: the provider, up to `MAX_REDUNDANCY - 1` verifiers and the
/// tie-breakers a dispute the referee cannot execute adds.
pub const MAX_CLAIMS: usize = 16;

/// Implements the codec for a field-less enum as one tag byte.
macro_rules! codec_unit_enum {
    ($ty:ident { $($variant:ident = $tag:literal),* $(,)? }) => {
        impl Write for $ty {
            fn write(&self, buf: &mut impl BufMut) {
                let tag: u8 = match self { $( $ty::$variant => $tag, )* };
                tag.write(buf);
            }
        }
        impl EncodeSize for $ty {
            fn encode_size(&self) -> usize {
                1
            }
        }
        impl Read for $ty {
            type Cfg = ();
            fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
                match u8::read(buf)? {
                    $( $tag => Ok($ty::$variant), )*
                    t => Err(CodecError::InvalidEnum(t)),
                }
            }
        }
    };
}

/// What became of one party's claim in a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    /// Still in play.
    Active,
    /// Missed a sealing or reveal deadline (docked like a timeout); no longer in play.
    Absent,
    /// Shown wrong by the referee or outvoted; slashed.
    Slashed,
}
codec_unit_enum!(ClaimStatus {
    Active = 0,
    Absent = 1,
    Slashed = 2
});

/// One party's sealed and (later) revealed claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Claim {
    /// Who claims: the lease's provider (always first) or a drawn verifier.
    pub party: AccountId,
    /// Its seal, once committed.
    pub seal: Option<Hash>,
    /// Its claim, once revealed (must match the seal).
    pub revealed: Option<ResultClaim>,
    /// What became of it.
    pub status: ClaimStatus,
}
codec_struct!(Claim {
    party: AccountId,
    seal: Option<Hash>,
    revealed: Option<ResultClaim>,
    status: ClaimStatus,
});

/// Which deadline a check is waiting on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckPhase {
    /// Verifiers are re-running the job and sealing their claims.
    Sealing,
    /// Every party with a seal reveals its claim.
    Revealing,
}
codec_unit_enum!(CheckPhase {
    Sealing = 0,
    Revealing = 1
});

/// A committed result on its way to settlement: who checks it and what each party claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Check {
    /// The provider's metered usage.
    pub usage: Usage,
    /// Height of the provider's commitment.
    pub committed_at: u64,
    /// Probability the draw used, in basis points (10000 for redundant leases).
    pub p_bps: u16,
    /// Where the check is.
    pub phase: CheckPhase,
    /// Deadline of the current phase.
    pub due: u64,
    /// A dispute the referee could not execute is settled by majority among all claims.
    pub by_majority: bool,
    /// Verifiers paid from the requester's escrow (`claims[1..=funded]`); tie-breakers after
    /// them are paid from the loser's slash.
    pub funded: u8,
    /// `claims[0]` is the provider's; the rest are verifiers' in the order drawn.
    pub claims: BoundedVec<Claim, MAX_CLAIMS>,
}
codec_struct!(Check {
    usage: Usage,
    committed_at: u64,
    p_bps: u16,
    phase: CheckPhase,
    due: u64,
    by_majority: bool,
    funded: u8,
    claims: BoundedVec<Claim, MAX_CLAIMS>,
});

/// What a dispute is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeKind {
    /// The claims disagree on the number of steps: the bundle's manifest decides.
    Steps,
    /// Same checkpoints, different outputs: the referee runs `output(state_n)`.
    Output,
    /// Different checkpoint lists: bisection to the first differing checkpoint, then the
    /// referee runs that one step.
    Checkpoints,
}
codec_unit_enum!(DisputeKind {
    Steps = 0,
    Output = 1,
    Checkpoints = 2
});

/// One bisection move: the two children of a party's current node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Children {
    /// Left child hash.
    pub left: Hash,
    /// Right child hash.
    pub right: Hash,
}
codec_struct!(Children {
    left: Hash,
    right: Hash
});

/// A bisection game between the provider's claim and one challenger's, over the RFC 6962
/// checkpoint trees (see `crate::verify`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Dispute {
    /// The check this dispute came from (claims, usage).
    pub check: Check,
    /// Index of the challenging claim in `check.claims`.
    pub challenger: u8,
    /// What is disputed.
    pub kind: DisputeKind,
    /// Leaves in both trees (`steps + 1`).
    pub leaf_count: u64,
    /// First leaf under the current node.
    pub start: u64,
    /// Leaves under the current node.
    pub size: u64,
    /// The provider's hash of the current node.
    pub provider_node: Hash,
    /// The challenger's hash of the current node.
    pub challenger_node: Hash,
    /// The provider's move this round, once made.
    pub provider_move: Option<Children>,
    /// The challenger's move this round, once made.
    pub challenger_move: Option<Children>,
    /// Rounds completed.
    pub round: u32,
    /// Deadline of the current round or of the referee's input.
    pub due: u64,
    /// Narrowed to one leaf (or an output or step count): waiting for `Adjudicate`.
    pub awaiting_referee: bool,
}
codec_struct!(Dispute {
    check: Check,
    challenger: u8,
    kind: DisputeKind,
    leaf_count: u64,
    start: u64,
    size: u64,
    provider_node: Hash,
    challenger_node: Hash,
    provider_move: Option<Children>,
    challenger_move: Option<Children>,
    round: u32,
    due: u64,
    awaiting_referee: bool,
});

/// Most checks one inference batch can hold (the ceiling of
/// `Params::max_inference_checks_per_batch`): bounds a batch record and its decoding.
pub const MAX_INFERENCE_CHECKS: usize = 256;
/// Most checkers of one response: the round-1 checker and the tie-breakers
/// (`Params::tiebreak_verifiers` is bounded well below this by `MAX_CLAIMS`).
pub const MAX_RESPONSE_CHECKERS: usize = MAX_CLAIMS;

/// An API key on chain: who owns it, what it may spend, and the tokens locked to pay with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct InferenceKey {
    /// The account that created it; only it may fund or revoke it, and it gets the rest back.
    pub owner: AccountId,
    /// Most the key may ever pay providers (net of refunds).
    pub limit: Amount,
    /// What it has paid so far (settlements less refunds); never above `limit`.
    pub spent: Amount,
    /// Tokens locked to pay vouchers.
    pub deposit: Amount,
    /// Height of `RevokeInferenceKey`, once revoked: vouchers settle until
    /// `revoked_at + voucher_grace_blocks`, then the deposit returns to the owner.
    pub revoked_at: Option<u64>,
}
codec_struct!(InferenceKey {
    owner: AccountId,
    limit: Amount,
    spent: Amount,
    deposit: Amount,
    revoked_at: Option<u64>,
});

impl InferenceKey {
    /// The height at which the ledger returns the deposit, while there is one to return.
    pub fn timer(&self, grace: u64) -> Option<u64> {
        match self.revoked_at {
            Some(at) if !self.deposit.is_zero() => Some(at.saturating_add(grace)),
            _ => None,
        }
    }
}

/// What one channel (key, provider, gateway channel number) has settled so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct InferenceChannel {
    /// The cumulative voucher total last settled.
    pub paid_total: Amount,
    /// The cumulative response count last settled.
    pub paid_responses: u64,
}
codec_struct!(InferenceChannel {
    paid_total: Amount,
    paid_responses: u64,
});

/// Where a settled batch is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchPhase {
    /// Settled in this block; the next block's seed draws which responses are checked.
    Drawing,
    /// Some drawn responses are being checked.
    Checking,
    /// Every check ended; the hold was paid out. Final.
    Released,
}
codec_unit_enum!(BatchPhase {
    Drawing = 0,
    Checking = 1,
    Released = 2
});

/// How the check of one response ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Every checker that revealed agreed with the provider's opened commitment.
    Agreed,
    /// The provider lost (outvoted, never opened, or opened a commitment for another model or
    /// key): slashed, and the response (or the whole batch) refunded to the key.
    ProviderCaught,
    /// The provider's claim held against a majority; the dissenting checkers were slashed.
    CheckerWrong,
    /// No claim held a strict majority: the response is refunded, nobody is slashed.
    NoMajority,
    /// Nobody could check it: no eligible checker, every checker missed its deadlines, or the
    /// batch ended before this check did (the provider lost another of its checks).
    Unchecked,
}
codec_unit_enum!(CheckOutcome {
    Agreed = 0,
    ProviderCaught = 1,
    CheckerWrong = 2,
    NoMajority = 3,
    Unchecked = 4
});

/// One checker of one response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckerEntry {
    /// The drawn provider.
    pub checker: AccountId,
    /// The round it was drawn for (1, or 2 for a tie-breaker).
    pub round: u8,
    /// `check_seal(batch, index, checker, request, output)`, once sealed.
    pub seal: Option<Hash>,
    /// `(request, output)` once revealed; `(0, 0)` says the batch file was unavailable.
    pub revealed: Option<(Hash, Hash)>,
    /// Missed its seal or reveal deadline (docked); out of the check.
    pub missed: bool,
}

impl Write for CheckerEntry {
    fn write(&self, buf: &mut impl BufMut) {
        self.checker.write(buf);
        self.round.write(buf);
        self.seal.write(buf);
        self.revealed.write(buf);
        self.missed.write(buf);
    }
}
impl EncodeSize for CheckerEntry {
    fn encode_size(&self) -> usize {
        self.checker.encode_size() + 1 + self.seal.encode_size() + self.revealed.encode_size() + 1
    }
}
impl Read for CheckerEntry {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        Ok(CheckerEntry {
            checker: AccountId::read(buf)?,
            round: u8::read(buf)?,
            seal: Option::<Hash>::read(buf)?,
            revealed: Option::<(Hash, Hash)>::read_cfg(buf, &((), ()))?,
            missed: bool::read(buf)?,
        })
    }
}

/// The check of one drawn response of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResponseCheck {
    /// The response's leaf index in the batch.
    pub index: u64,
    /// 1, or 2 once round 1 disagreed and tie-breakers are (to be) drawn.
    pub round: u8,
    /// Checkers of every round, in the order drawn.
    pub checkers: Vec<CheckerEntry>,
    /// Last height at which the current round's checkers may seal.
    pub seal_deadline: u64,
    /// Last height at which the current round's checkers may reveal (and the provider open);
    /// at its end the check resolves.
    pub reveal_deadline: u64,
    /// The provider's commitment for this response, once opened.
    pub opened: Option<ResponseCommitment>,
    /// How it ended, once it did.
    pub outcome: Option<CheckOutcome>,
    /// Height at whose start round 2's tie-breakers are drawn, while that draw is pending.
    pub draw_at: Option<u64>,
}

impl ResponseCheck {
    /// The current round's checkers.
    pub fn round_checkers(&self) -> impl Iterator<Item = &CheckerEntry> {
        self.checkers.iter().filter(move |c| c.round == self.round)
    }

    /// Whether the current round's sealing has closed: every checker of the round sealed or
    /// missed (a missed seal is marked at the end of `seal_deadline`). Only then may anyone
    /// reveal or open, so no checker sees another claim before sealing its own.
    pub fn sealing_closed(&self) -> bool {
        self.draw_at.is_none() && self.round_checkers().all(|c| c.seal.is_some() || c.missed)
    }

    /// The height at which the ledger acts on this check by itself, if it is still open.
    pub fn timer(&self) -> Option<u64> {
        if self.outcome.is_some() {
            return None;
        }
        Some(match self.draw_at {
            Some(at) => at,
            None if !self.sealing_closed() => self.seal_deadline,
            None => self.reveal_deadline,
        })
    }
}

/// One settlement of a channel: the responses a voucher paid for, the tokens held for them
/// and the checks of the drawn ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InferenceBatch {
    /// The provider paid.
    pub provider: AccountId,
    /// The paying key.
    pub key: AccountId,
    /// The gateway's channel number.
    pub channel: u64,
    /// Weights hash of the model that answered every response.
    pub model: Hash,
    /// Merkle root over the responses' commitment leaves.
    pub root: Hash,
    /// Content hash of the published batch file.
    pub file: Hash,
    /// Responses in the batch (leaves under `root`).
    pub responses: u64,
    /// Tokens still held for the batch (zero once released).
    pub held: Amount,
    /// Height of the settlement.
    pub settled_at: u64,
    /// Sampling rate from the provider's offer at settlement, in basis points.
    pub sample_bps: u16,
    /// Where it is.
    pub phase: BatchPhase,
    /// The drawn responses' checks, in index order.
    pub checks: Vec<ResponseCheck>,
    /// Returned to the key so far.
    pub refunded: Amount,
    /// Paid to the provider at release (after the fee).
    pub paid: Amount,
    /// What the settlement moved from the key's deposit into the hold.
    pub amount: Amount,
    /// Paid to checkers that agreed with the provider.
    pub checker_fees: Amount,
    /// Protocol fee taken at release.
    pub fee: Amount,
}

impl InferenceBatch {
    /// The height at which the ledger acts on this batch by itself, if any.
    pub fn timer(&self) -> Option<u64> {
        match self.phase {
            BatchPhase::Drawing => Some(self.settled_at.saturating_add(1)),
            BatchPhase::Checking => self.checks.iter().filter_map(ResponseCheck::timer).min(),
            BatchPhase::Released => None,
        }
    }
}

/// Write a list as a `u32` count and its items.
fn write_list<T: Write>(items: &[T], buf: &mut impl BufMut) {
    (items.len() as u32).write(buf);
    for item in items {
        item.write(buf);
    }
}

fn list_size<T: EncodeSize>(items: &[T]) -> usize {
    4 + items.iter().map(EncodeSize::encode_size).sum::<usize>()
}

/// Read a list written by [`write_list`], refusing more than `max` items before allocating.
fn read_list<T: Read<Cfg = ()>>(
    buf: &mut impl commonware_codec::Buf,
    max: usize,
) -> Result<Vec<T>, CodecError> {
    let len = u32::read(buf)? as usize;
    if len > max || len > buf.remaining() {
        return Err(CodecError::InvalidLength(len));
    }
    let mut items = Vec::with_capacity(len);
    for _ in 0..len {
        items.push(T::read(buf)?);
    }
    Ok(items)
}

impl Write for ResponseCheck {
    fn write(&self, buf: &mut impl BufMut) {
        self.index.write(buf);
        self.round.write(buf);
        write_list(&self.checkers, buf);
        self.seal_deadline.write(buf);
        self.reveal_deadline.write(buf);
        self.opened.write(buf);
        self.outcome.write(buf);
        self.draw_at.write(buf);
    }
}
impl EncodeSize for ResponseCheck {
    fn encode_size(&self) -> usize {
        8 + 1
            + list_size(&self.checkers)
            + 16
            + self.opened.encode_size()
            + self.outcome.encode_size()
            + self.draw_at.encode_size()
    }
}
impl Read for ResponseCheck {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        Ok(ResponseCheck {
            index: u64::read(buf)?,
            round: u8::read(buf)?,
            checkers: read_list(buf, MAX_RESPONSE_CHECKERS)?,
            seal_deadline: u64::read(buf)?,
            reveal_deadline: u64::read(buf)?,
            opened: Option::<ResponseCommitment>::read(buf)?,
            outcome: Option::<CheckOutcome>::read(buf)?,
            draw_at: Option::<u64>::read(buf)?,
        })
    }
}

impl Write for InferenceBatch {
    fn write(&self, buf: &mut impl BufMut) {
        self.provider.write(buf);
        self.key.write(buf);
        self.channel.write(buf);
        self.model.write(buf);
        self.root.write(buf);
        self.file.write(buf);
        self.responses.write(buf);
        self.held.write(buf);
        self.settled_at.write(buf);
        self.sample_bps.write(buf);
        self.phase.write(buf);
        write_list(&self.checks, buf);
        self.refunded.write(buf);
        self.paid.write(buf);
        self.amount.write(buf);
        self.checker_fees.write(buf);
        self.fee.write(buf);
    }
}
impl EncodeSize for InferenceBatch {
    fn encode_size(&self) -> usize {
        20 + 20 + 8 + 32 * 3 + 8 + 16 + 8 + 2 + 1 + list_size(&self.checks) + 16 * 5
    }
}
impl Read for InferenceBatch {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        Ok(InferenceBatch {
            provider: AccountId::read(buf)?,
            key: AccountId::read(buf)?,
            channel: u64::read(buf)?,
            model: Hash::read(buf)?,
            root: Hash::read(buf)?,
            file: Hash::read(buf)?,
            responses: u64::read(buf)?,
            held: Amount::read(buf)?,
            settled_at: u64::read(buf)?,
            sample_bps: u16::read(buf)?,
            phase: BatchPhase::read(buf)?,
            checks: read_list(buf, MAX_INFERENCE_CHECKS)?,
            refunded: Amount::read(buf)?,
            paid: Amount::read(buf)?,
            amount: Amount::read(buf)?,
            checker_fees: Amount::read(buf)?,
            fee: Amount::read(buf)?,
        })
    }
}

/// Chain-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Globals {
    /// Height of the last applied block (0 = genesis).
    pub height: u64,
    /// Time of the last applied block.
    pub time_ms: u64,
    /// Hash of the last applied block.
    pub last_block: Hash,
    /// Id the next lease gets.
    pub next_lease_id: LeaseId,
    /// Tokens created at genesis.
    pub genesis_supply: Amount,
    /// Tokens minted by emissions since genesis.
    pub minted: Amount,
    /// Tokens burned since genesis.
    pub burned: Amount,
    /// Id the next inference batch gets.
    pub next_batch_id: BatchId,
}
codec_struct!(Globals {
    height: u64,
    time_ms: u64,
    last_block: Hash,
    next_lease_id: LeaseId,
    genesis_supply: Amount,
    minted: Amount,
    burned: Amount,
    next_batch_id: BatchId,
});

impl Globals {
    /// genesis + minted − burned.
    pub fn supply(&self) -> Option<Amount> {
        self.genesis_supply
            .checked_add(self.minted)?
            .checked_sub(self.burned)
    }
}

codec_struct!(Params {
    unbonding_delay_blocks: u64,
    stake_base: Amount,
    stake_per_gpu: Amount,
    stake_per_cpu_core: Amount,
    start_timeout_blocks: u64,
    challenge_blocks: u64,
    max_lease_blocks: u64,
    fee_bps: u16,
    fee_burn_bps: u16,
    timeout_penalty_bps: u16,
    epoch_blocks: u64,
    emission_initial: Amount,
    emission_halving_epochs: u64,
    sample_base_bps: u16,
    sample_new_provider_bps: u16,
    sample_trusted_after: u64,
    verify_blocks: u64,
    reveal_blocks: u64,
    dispute_round_blocks: u64,
    slash_bps: u16,
    slash_reward_bps: u16,
    referee_fuel: u64,
    tiebreak_verifiers: u8,
    min_inference_sample_bps: u16,
    max_inference_checks_per_batch: u16,
    inference_seal_blocks: u64,
    inference_reveal_blocks: u64,
    voucher_grace_blocks: u64,
    challenges_per_block: u16,
    challenge_every_blocks: u64,
    challenge_dim: u64,
    challenge_open_rows: u16,
    challenge_target_ms: u64,
    challenge_latency_ms: u64,
    challenge_deadline_blocks: u64,
    challenge_open_blocks: u64,
    challenge_miss_penalty_bps: u16,
    challenge_min_claim_bps: u16,
    emission_taper_bps: u16,
    emission_unchecked_weight_bps: u16,
});

/// What never changes after genesis; committed to by the state root all the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainConfig {
    /// The chain's name.
    pub chain_id: ChainId,
    /// Protocol parameters.
    pub params: Params,
    /// Validators sharing fees, sorted.
    pub validators: BoundedVec<AccountId, MAX_VALIDATORS>,
}
codec_struct!(ChainConfig {
    chain_id: ChainId,
    params: Params,
    validators: BoundedVec<AccountId, MAX_VALIDATORS>,
});

/// Where a cluster member stands in its lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Expected to commit every round.
    Live,
    /// Missed a round's deadline: docked once and out of the lease for good.
    Dropped,
}
codec_unit_enum!(MemberStatus {
    Live = 0,
    Dropped = 1
});

/// One member of a cluster lease and what it has earned there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ClusterMember {
    /// The provider.
    pub provider: AccountId,
    /// Whether it is still expected.
    pub status: MemberStatus,
    /// Rounds it was paid for.
    pub rounds_paid: u32,
    /// What it was paid, after the protocol fee.
    pub paid: Amount,
    /// Burned from its stake for a missed round (the round that dropped it).
    pub docked: Amount,
}
codec_struct!(ClusterMember {
    provider: AccountId,
    status: MemberStatus,
    rounds_paid: u32,
    paid: Amount,
    docked: Amount,
});

/// Where a cluster lease is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterPhase {
    /// Rounds are running, or checks of closed rounds are still open.
    Running,
    /// Every round closed and every check resolved; the rest of the escrow went back.
    Finished,
}
codec_unit_enum!(ClusterPhase {
    Running = 0,
    Finished = 1
});

/// A cluster training lease: one escrow, N members, `rounds` rounds. The rules are
/// [`crate::cluster`]'s module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterLease {
    /// Its number (from the same counter as single-provider leases).
    pub id: LeaseId,
    /// Who pays.
    pub requester: AccountId,
    /// Content hash of the cluster job bundle.
    pub job: Hash,
    /// One worker-round's resources, prices and limits; `terms.max_cost()` pays one.
    pub terms: LeaseTerms,
    /// Rounds the lease runs.
    pub rounds: u32,
    /// Inner steps per round (H).
    pub inner_steps: u32,
    /// Blocks each round has.
    pub round_blocks: u64,
    /// Probability that a committed (worker, round) is checked, in basis points.
    pub check_bps: u16,
    /// The members, in worker order.
    pub members: BoundedVec<ClusterMember, { orrery_types::cluster::MAX_CLUSTER_MEMBERS }>,
    /// Tokens still locked: unpaid worker-rounds plus what is left of the check budget.
    pub escrow: Amount,
    /// Part of `escrow` that may still pay verifiers.
    pub check_budget: Amount,
    /// Height of `OpenClusterLease`.
    pub opened_at: u64,
    /// The round members are committing now (`rounds` once every round closed).
    pub round: u32,
    /// First height at which commits for `round` are accepted (the block after the previous
    /// round closed, so at most one round closes per block).
    pub round_opens_at: u64,
    /// Last height at which `round` may be committed; at the end of this block it closes.
    pub round_deadline: u64,
    /// When the round that closed last (`round - 1`) has its checks drawn: the start of the
    /// block after it closed, by that block's seed.
    pub draw_at: Option<u64>,
    /// Checks drawn and not yet resolved, over all rounds.
    pub open_checks: u32,
    /// Where the lease is.
    pub phase: ClusterPhase,
    /// Returned to the requester when it finished.
    pub refunded: Amount,
}
codec_struct!(ClusterLease {
    id: LeaseId,
    requester: AccountId,
    job: Hash,
    terms: LeaseTerms,
    rounds: u32,
    inner_steps: u32,
    round_blocks: u64,
    check_bps: u16,
    members: BoundedVec<ClusterMember, { orrery_types::cluster::MAX_CLUSTER_MEMBERS }>,
    escrow: Amount,
    check_budget: Amount,
    opened_at: u64,
    round: u32,
    round_opens_at: u64,
    round_deadline: u64,
    draw_at: Option<u64>,
    open_checks: u32,
    phase: ClusterPhase,
    refunded: Amount,
});

impl ClusterLease {
    /// Whether every round has closed or no member is left to run one.
    pub fn rounds_over(&self) -> bool {
        self.round >= self.rounds
            || self
                .members
                .as_slice()
                .iter()
                .all(|m| m.status == MemberStatus::Dropped)
    }

    /// The member entry of `who`, if it is one.
    pub fn member(&self, who: &AccountId) -> Option<&ClusterMember> {
        self.members.as_slice().iter().find(|m| m.provider == *who)
    }

    /// The height at which the ledger acts on the lease itself: the next block's draw
    /// (`begin_block`) or the open round's deadline (`end_block`).
    pub fn timer(&self) -> Option<u64> {
        if self.phase == ClusterPhase::Finished {
            return None;
        }
        if let Some(at) = self.draw_at {
            return Some(at);
        }
        if self.rounds_over() {
            return None;
        }
        Some(self.round_deadline)
    }
}

/// What became of one worker's commit for a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitStatus {
    /// Committed; the round has not been drawn yet.
    Committed,
    /// Drawn for a check that has not resolved.
    Checking,
    /// Paid (unchecked, or checked and upheld).
    Paid,
    /// Shown wrong (or unconfirmable): its delta is excluded from the round, unpaid.
    Excluded,
}
codec_unit_enum!(CommitStatus {
    Committed = 0,
    Checking = 1,
    Paid = 2,
    Excluded = 3
});

/// One worker's commit for one round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RoundCommit {
    /// The worker.
    pub worker: AccountId,
    /// Hash of the weights it started from.
    pub start: Hash,
    /// `cluster_delta_commitment` of its delta's hash.
    pub delta: Hash,
    /// Its mean inner loss.
    pub loss: orrery_types::cluster::LossBits,
    /// What became of it.
    pub status: CommitStatus,
}
codec_struct!(RoundCommit {
    worker: AccountId,
    start: Hash,
    delta: Hash,
    loss: orrery_types::cluster::LossBits,
    status: CommitStatus,
});

/// One verifier's part in a cluster check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CheckSlot {
    /// The verifier.
    pub verifier: AccountId,
    /// Its seal, once sent.
    pub seal: Option<Hash>,
    /// The delta hash it revealed.
    pub revealed: Option<Hash>,
    /// Still in play, absent (missed a deadline, docked) or slashed.
    pub status: ClaimStatus,
}
codec_struct!(CheckSlot {
    verifier: AccountId,
    seal: Option<Hash>,
    revealed: Option<Hash>,
    status: ClaimStatus,
});

/// Most verifiers one cluster check seats: the first, then the tie-breakers.
pub const MAX_CLUSTER_CHECKERS: usize = 8;

/// Where a cluster check is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterCheckPhase {
    /// Verifiers re-execute the round and seal.
    Sealing,
    /// Verifiers reveal.
    Revealing,
    /// The first verifier dissented: tie-breakers are drawn at the start of block `due`.
    AwaitingTiebreak,
}
codec_unit_enum!(ClusterCheckPhase {
    Sealing = 0,
    Revealing = 1,
    AwaitingTiebreak = 2
});

/// A drawn check of one worker's round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ClusterCheck {
    /// Whose work.
    pub worker: AccountId,
    /// Where it is.
    pub phase: ClusterCheckPhase,
    /// Deadline of the phase (for `AwaitingTiebreak`, the height of the draw).
    pub due: u64,
    /// Whether tie-breakers were seated (the check is decided by strict majority).
    pub tiebreak: bool,
    /// The verifiers, in the order drawn.
    pub slots: BoundedVec<CheckSlot, MAX_CLUSTER_CHECKERS>,
}
codec_struct!(ClusterCheck {
    worker: AccountId,
    phase: ClusterCheckPhase,
    due: u64,
    tiebreak: bool,
    slots: BoundedVec<CheckSlot, MAX_CLUSTER_CHECKERS>,
});

/// The chain's record of one round of a cluster lease.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ClusterRound {
    /// The commits, in the order they applied.
    pub commits: BoundedVec<RoundCommit, { orrery_types::cluster::MAX_CLUSTER_MEMBERS }>,
    /// Live members that missed the deadline and were dropped.
    pub missed: BoundedVec<AccountId, { orrery_types::cluster::MAX_CLUSTER_MEMBERS }>,
    /// Height at which it closed, once closed.
    pub closed_at: Option<u64>,
    /// Its checks, open and resolved.
    pub checks: BoundedVec<ClusterCheck, { orrery_types::cluster::MAX_CLUSTER_MEMBERS }>,
    /// A delta of this round was excluded after it closed: the members recompute the
    /// round's outer step without it.
    pub recompute: bool,
}
codec_struct!(ClusterRound {
    commits: BoundedVec<RoundCommit, { orrery_types::cluster::MAX_CLUSTER_MEMBERS }>,
    missed: BoundedVec<AccountId, { orrery_types::cluster::MAX_CLUSTER_MEMBERS }>,
    closed_at: Option<u64>,
    checks: BoundedVec<ClusterCheck, { orrery_types::cluster::MAX_CLUSTER_MEMBERS }>,
    recompute: bool,
});

impl ClusterRound {
    /// The earliest deadline among its open checks (handled at `end_block`; an
    /// `AwaitingTiebreak` check's draw at `begin_block` of that height).
    pub fn timer(&self) -> Option<u64> {
        self.checks
            .as_slice()
            .iter()
            .filter(|c| self.commit_of(&c.worker).map(|x| x.status) == Some(CommitStatus::Checking))
            .map(|c| c.due)
            .min()
    }

    /// The commit of `worker`, if it committed.
    pub fn commit_of(&self, worker: &AccountId) -> Option<&RoundCommit> {
        self.commits.as_slice().iter().find(|c| c.worker == *worker)
    }
}
