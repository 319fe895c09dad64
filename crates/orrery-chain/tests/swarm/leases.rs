//! Leases in the swarm: bonded providers, requesters who open leases, and the whole proof of
//! useful work played through the ledger's real transactions — start, sealed commitment, the
//! seed's draw of checkers, their seals, every reveal, and a bisection dispute when a
//! provider lied — on the validators under test, so the state roots and invariants cover it.
//!
//! The job is the counter stepper (`state_k = k`), computed natively: parties need its
//! checkpoints, never its bytes, because a lying provider here stalls once it is disputed and
//! loses at the round's deadline (the referee is exercised by the ledger's own tests).
//!
//! Each party keeps at most one transaction in flight, signed with its finalized nonce, and
//! signs its next move again when that one has not landed after [`RESEND`] (a validator that
//! crashed may have lost it). So lost transactions never wedge a lease, and every move is
//! derived from the finalized state alone.

use super::plan::LeasePlan;
use orrery_ledger::State;
use orrery_ledger::entries::{CheckPhase, ClaimStatus, LeaseState};
use orrery_types::amount::Amount;
use orrery_types::codec::Text;
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::hash::Hash;
use orrery_types::merkle::merkle_root;
use orrery_types::resources::{GpuSpec, Hardware, PriceList, ResourceRequest, Usage};
use orrery_types::tx::{LeaseId, LeaseTerms, ProviderOffer, ResultClaim, TxBody, result_seal};
use orrery_types::workload::checkpoint;
use std::collections::BTreeSet;
use std::time::Duration;

/// Steps of the counter job: a checkpoint tree of 17 leaves, disputes of 5 rounds at most.
pub const STEPS: u64 = 16;
/// Units every honest party meters.
const UNITS: u64 = 1_000_000;
/// A move that has not landed after this long is signed again.
const RESEND: Duration = Duration::from_secs(2);
/// Blocks from opening to the result deadline.
const DEADLINE_BLOCKS: u64 = 200;

pub fn offer() -> ProviderOffer {
    ProviderOffer {
        hardware: Hardware {
            gpu: Some(GpuSpec {
                model: Text::new("NVIDIA RTX 4090").unwrap(),
                vram_mib: 24_576,
                count: 1,
            }),
            cpu_cores: 16,
            ram_gib: 64,
        },
        region: Text::new("eu-west").unwrap(),
        endpoint: Text::new("http://127.0.0.1:7100").unwrap(),
        prices: prices(),
    }
}

fn prices() -> PriceList {
    PriceList {
        gpu_hour: Amount::orr(2),
        cpu_core_hour: Amount::orr(0),
        ram_gib_hour: Amount::ZERO,
        mega_unit: Amount::orr(1),
    }
}

fn terms() -> LeaseTerms {
    LeaseTerms {
        resources: ResourceRequest {
            gpus: 1,
            cpu_cores: 2,
            ram_gib: 8,
        },
        prices: prices(),
        max_seconds: 3_600,
        max_units: 10_000_000,
    }
}

/// The job's hash. A lease whose provider must lie (checkpoints forged from step `j` on)
/// names a job of its own, so the provider learns its part from the chain alone.
fn job(lie: Option<u64>) -> Hash {
    match lie {
        None => Hash::of(b"the swarm's counter job"),
        Some(j) => Hash::of(
            &[
                b"the swarm's counter job, lied about from step ".as_slice(),
                &j.to_le_bytes(),
            ]
            .concat(),
        ),
    }
}

/// What a party believes the counter run produced: the true run, or one whose checkpoints
/// from `forged_from` on are made up.
#[derive(Clone, Debug)]
pub struct Run {
    checkpoints: Vec<Hash>,
}

impl Run {
    pub fn new(forged_from: Option<u64>) -> Run {
        let checkpoints = (0..=STEPS)
            .map(|k| match forged_from {
                Some(j) if k >= j => Hash::of(&[b'f', k as u8]),
                _ => checkpoint(&k.to_le_bytes()),
            })
            .collect();
        Run { checkpoints }
    }

    fn claim(&self) -> ResultClaim {
        ResultClaim::succeeded(
            Hash::of(&(3 * STEPS).to_le_bytes()),
            merkle_root(&self.checkpoints),
            STEPS,
        )
        .with_units(UNITS)
    }

    /// The RFC 6962 subtree over leaves `[start, start + size)`.
    fn node(&self, start: u64, size: u64) -> Hash {
        merkle_root(&self.checkpoints[start as usize..(start + size) as usize])
    }
}

/// A provider or requester the harness plays.
pub struct Party {
    pub key: Keypair,
    pub account: AccountId,
    /// A provider (else a requester).
    pub provider: bool,
    /// The move in flight: its nonce and when it was sent.
    sent: Option<(u64, Duration)>,
}

impl Party {
    pub fn new(key: Keypair, provider: bool) -> Party {
        Party {
            account: key.account(),
            key,
            provider,
            sent: None,
        }
    }
}

/// What the lease load did, counted by the harness.
#[derive(Clone, Copy, Debug, Default)]
pub struct LeaseStats {
    /// Leases opened on chain.
    pub opened: u64,
    /// Leases whose check drew at least one verifier.
    pub checked: u64,
    /// Leases that went to a dispute.
    pub disputed: u64,
    /// Leases settled (paid) / failed (provider lost) / timed out by the end.
    pub settled: u64,
    pub failed: u64,
    pub timed_out: u64,
}

/// The lease load of one seed.
pub struct Leases {
    pub parties: Vec<Party>,
    /// Per requester (index into `parties`), its leases in the order it opens them.
    plans: Vec<(usize, Vec<LeasePlan>)>,
    providers: Vec<usize>,
    checked: BTreeSet<LeaseId>,
    disputed: BTreeSet<LeaseId>,
}

impl Leases {
    /// `providers` and `requesters` are funded keys; `plans` the drawn leases.
    pub fn new(providers: Vec<Keypair>, requesters: Vec<Keypair>, plans: &[LeasePlan]) -> Leases {
        let n_providers = providers.len();
        let mut parties: Vec<Party> = providers.into_iter().map(|k| Party::new(k, true)).collect();
        parties.extend(requesters.into_iter().map(|k| Party::new(k, false)));
        let by_requester = (n_providers..parties.len())
            .map(|r| {
                let mine = plans
                    .iter()
                    .filter(|p| p.requester + n_providers == r)
                    .cloned()
                    .collect();
                (r, mine)
            })
            .collect();
        Leases {
            parties,
            plans: by_requester,
            providers: (0..n_providers).collect(),
            checked: BTreeSet::new(),
            disputed: BTreeSet::new(),
        }
    }

    /// The next move of each party that has none in flight, from the finalized `state` at
    /// virtual time `now`: (party, nonce, body).
    pub fn moves(&mut self, state: &State, now: Duration) -> Vec<(usize, u64, TxBody)> {
        for lease in state.leases().values() {
            match &lease.state {
                LeaseState::Checking(c) if c.claims.len() > 1 => {
                    self.checked.insert(lease.id);
                }
                LeaseState::Disputed(_) => {
                    self.checked.insert(lease.id);
                    self.disputed.insert(lease.id);
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for i in 0..self.parties.len() {
            let nonce = state.account(&self.parties[i].account).nonce;
            if let Some((sent, at)) = self.parties[i].sent
                && sent >= nonce
                && now < at + RESEND
            {
                continue;
            }
            if let Some(body) = self.next_move(state, i, now) {
                self.parties[i].sent = Some((nonce, now));
                out.push((i, nonce, body));
            }
        }
        out
    }

    fn next_move(&self, state: &State, i: usize, now: Duration) -> Option<TxBody> {
        let me = &self.parties[i];
        if !me.provider {
            let (_, plans) = self.plans.iter().find(|(r, _)| *r == i)?;
            // A requester signs only OpenLease, so its nonce counts the leases it opened.
            let nonce = state.account(&me.account).nonce as usize;
            let plan = plans.get(nonce).filter(|p| p.at <= now)?;
            return Some(TxBody::OpenLease {
                provider: self.parties[self.providers[plan.provider]].account,
                job: job(plan.lie),
                terms: terms(),
                deadline: state.height() + DEADLINE_BLOCKS,
                verification: plan.verification,
            });
        }
        let Some(provider) = state.provider(&me.account) else {
            return Some(TxBody::RegisterProvider(offer()));
        };
        let need = state.params().min_stake(&offer().hardware)?;
        if provider.stake < need {
            return Some(TxBody::Bond {
                amount: need.checked_sub(provider.stake)?,
            });
        }
        state
            .leases()
            .values()
            .filter(|l| l.state.is_active() && l.involves(&me.account))
            .find_map(|l| self.lease_move(l, &me.account))
    }

    /// What `me` does next in `lease`, if anything.
    fn lease_move(&self, lease: &orrery_ledger::entries::Lease, me: &AccountId) -> Option<TxBody> {
        let id = lease.id;
        let i_provide = lease.provider == *me;
        let run = if i_provide {
            Run::new(self.lie(lease))
        } else {
            Run::new(None)
        };
        match &lease.state {
            LeaseState::AwaitingStart if i_provide => Some(TxBody::StartLease { lease: id }),
            LeaseState::Running { .. } if i_provide => Some(TxBody::CommitResult {
                lease: id,
                seal: result_seal(id, me, &run.claim()),
                usage: Usage {
                    seconds: 1,
                    units: UNITS,
                },
            }),
            LeaseState::Checking(check) => {
                let mine = check.claims.as_slice().iter().find(|c| c.party == *me)?;
                if mine.status != ClaimStatus::Active {
                    return None;
                }
                match check.phase {
                    CheckPhase::Sealing if mine.seal.is_none() => Some(TxBody::CommitCheck {
                        lease: id,
                        seal: result_seal(id, me, &run.claim()),
                    }),
                    CheckPhase::Revealing if mine.seal.is_some() && mine.revealed.is_none() => {
                        Some(TxBody::RevealResult {
                            lease: id,
                            claim: run.claim(),
                            note: Default::default(),
                        })
                    }
                    _ => None,
                }
            }
            LeaseState::Disputed(d) => {
                // A liar stalls once disputed, and loses at the round's deadline.
                if i_provide && self.lie(lease).is_some() {
                    return None;
                }
                let challenger = d.check.claims.as_slice()[usize::from(d.challenger)].party;
                let moved = if i_provide {
                    d.provider_move.is_some()
                } else if challenger == *me {
                    d.challenger_move.is_some()
                } else {
                    return None;
                };
                if moved || d.awaiting_referee || d.size < 2 {
                    return None;
                }
                let k = 1u64 << (63 - (d.size - 1).leading_zeros());
                Some(TxBody::DisputeMove {
                    lease: id,
                    left: run.node(d.start, k),
                    right: run.node(d.start + k, d.size - k),
                })
            }
            _ => None,
        }
    }

    /// The lie a lying provider tells about `lease`: the plan marks it in the job's hash.
    fn lie(&self, lease: &orrery_ledger::entries::Lease) -> Option<u64> {
        (1..=STEPS).find(|j| lease.job == job(Some(*j)))
    }

    /// Counts at the end, from the final `state`.
    pub fn stats(&self, state: &State) -> LeaseStats {
        let mut s = LeaseStats {
            opened: state.leases().len() as u64,
            checked: self.checked.len() as u64,
            disputed: self.disputed.len() as u64,
            ..LeaseStats::default()
        };
        for lease in state.leases().values() {
            match lease.state {
                LeaseState::Settled { .. } => s.settled += 1,
                LeaseState::Failed { .. } => s.failed += 1,
                LeaseState::TimedOut { .. } => s.timed_out += 1,
                _ => {}
            }
        }
        s
    }
}
