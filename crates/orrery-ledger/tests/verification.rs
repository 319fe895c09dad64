//! Proof of useful work, played out: honest parties are never slashed, every kind of cheater is
//! caught at the rate its verification level promises, disputes settle in O(log n) rounds with
//! one referee step, and bad dispute input is refused.
//!
//! The job is a real wasm stepper (a counter: `state_k = k`, output `3n`), so the referee really
//! executes a step with `orrery-exec`. Parties compute their claims natively (the counter's
//! states are known), which lets a test build a 2^20-step checkpoint tree in a second.

mod common;

use common::*;
use orrery_exec::{Bundle, EntryStyle, Manifest};
use orrery_ledger::entries::{DisputeKind, LeaseState};
use orrery_ledger::{Event, Params, TxError};
use orrery_types::amount::Amount;
use orrery_types::codec::Blob;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::merkle::{MerkleProof, MerkleTree, merkle_root};
use orrery_types::resources::Usage;
use orrery_types::tx::{LeaseId, ResultClaim, TxBody, Verification, result_seal};
use orrery_types::workload::checkpoint;
use std::collections::BTreeMap;

const COUNTER_WAT: &str = include_str!("../../../workloads/wasm/counter/counter.wat");

fn counter_bundle(steps: u64) -> Bundle {
    let wasm = wat::parse_str(COUNTER_WAT).unwrap();
    Bundle::new(
        Manifest::wasm(EntryStyle::Stepper, steps, None),
        wasm,
        BTreeMap::new(),
    )
    .unwrap()
}

/// Units the counter job meters (every honest party the same).
const UNITS: u64 = 1_000_000;

/// What a party believes the run produced.
#[derive(Clone)]
struct Run {
    checkpoints: Vec<Hash>,
    output: Hash,
    steps: u64,
    root: Hash,
}

impl Run {
    /// The true run of the counter for `n` steps.
    fn honest(n: u64) -> Run {
        Run {
            checkpoints: (0..=n).map(|k| checkpoint(&k.to_le_bytes())).collect(),
            output: Hash::of(&(3 * n).to_le_bytes()),
            steps: n,
            root: Hash::ZERO,
        }
        .sealed()
    }
    /// Recompute the root after the checkpoints changed.
    fn sealed(mut self) -> Run {
        self.root = merkle_root(&self.checkpoints);
        self
    }
    /// The claim, with the units every honest party meters (and the provider commits).
    fn claim(&self) -> ResultClaim {
        ResultClaim::succeeded(self.output, self.root, self.steps).with_units(UNITS)
    }
    /// The hash of the RFC 6962 subtree over leaves `[start, start + size)`.
    fn node(&self, start: u64, size: u64) -> Hash {
        merkle_root(&self.checkpoints[start as usize..(start + size) as usize])
    }
}

/// How a cheating provider lies.
#[derive(Clone, Copy, Debug)]
enum Lie {
    /// Right checkpoints, wrong output.
    WrongOutput,
    /// Did nothing at step `j`: every state after it is one behind.
    SkipStep(u64),
    /// Checkpoints from `j` on are made up.
    Forged(u64),
    /// Claims fewer steps than the job has.
    FewerSteps,
}

fn lie(n: u64, how: Lie) -> Run {
    let mut run = Run::honest(n);
    match how {
        Lie::WrongOutput => run.output = Hash::of(b"made up"),
        Lie::SkipStep(j) => {
            for k in j + 1..=n {
                run.checkpoints[k as usize] = checkpoint(&(k - 1).to_le_bytes());
            }
            run.output = Hash::of(&(3 * (n - 1)).to_le_bytes());
        }
        Lie::Forged(j) => {
            for k in j..=n {
                run.checkpoints[k as usize] = Hash::of(&[b'f', k as u8]);
            }
        }
        Lie::FewerSteps => {
            run.checkpoints.pop();
            run.steps -= 1;
            run.output = Hash::of(&(3 * (n - 1)).to_le_bytes());
        }
    }
    run.sealed()
}

/// How a party behaves in a check or dispute.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Conduct {
    /// Does its part, at a random moment before each deadline.
    Diligent,
    /// Stops acting once a dispute starts.
    StallsDispute,
    /// A verifier that does not run the job and seals the provider's seal as its own.
    CopiesSeal,
}

struct Agent {
    account: usize,
    run: Run,
    conduct: Conduct,
}

/// A seeded run of one lease through commitment, check and dispute.
struct Game {
    net: Net,
    bundle: Bundle,
    /// The true run.
    truth: Run,
    agents: BTreeMap<AccountId, Agent>,
    rng: u64,
    events: Vec<Event>,
    /// Per party, the deadline it is planning for and the height at which it will act.
    plans: BTreeMap<AccountId, (u64, u64)>,
}

const REQUESTER: usize = 0;
const PROVIDER: usize = 1;

impl Game {
    /// A chain with `providers` bonded providers (accounts 1..=providers) and a lease opened by
    /// account 0 with provider 1.
    fn new(seed: u64, providers: usize, steps: u64, verification: Verification) -> Game {
        Self::with_params(seed, providers, steps, verification, Params::default())
    }

    fn with_params(
        seed: u64,
        providers: usize,
        steps: u64,
        verification: Verification,
        params: Params,
    ) -> Game {
        let mut net = Net::with_params(providers + 1, params);
        net.seed_salt = seed;
        // Register and bond every provider in one block.
        let stake = net
            .state
            .params()
            .min_stake(&offer(1, prices()).hardware)
            .unwrap();
        let txs = (1..=providers)
            .flat_map(|p| {
                [
                    net.tx(p, TxBody::RegisterProvider(offer(1, prices()))),
                    net.tx_at(p, 1, TxBody::Bond { amount: stake }),
                ]
            })
            .collect();
        assert!(net.apply(txs).receipts.iter().all(|r| r.is_ok()));
        let bundle = counter_bundle(steps);
        let open = net.tx(
            REQUESTER,
            TxBody::OpenLease {
                provider: net.id(PROVIDER),
                job: bundle.hash(),
                terms: terms(10_000_000),
                deadline: net.state.height() + 500,
                verification,
            },
        );
        let r = net.apply(vec![open]).receipts.remove(0);
        assert!(r.is_ok(), "{r:?}");
        let truth = Run::honest(steps);
        let agents = (1..=providers)
            .map(|i| {
                (
                    net.id(i),
                    Agent {
                        account: i,
                        run: truth.clone(),
                        conduct: Conduct::Diligent,
                    },
                )
            })
            .collect();
        Game {
            net,
            bundle,
            truth,
            agents,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            events: Vec::new(),
            plans: BTreeMap::new(),
        }
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*: the test's own timing randomness, independent of the chain's seeds.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn agent_mut(&mut self, i: usize) -> &mut Agent {
        let id = self.net.id(i);
        self.agents.get_mut(&id).unwrap()
    }

    fn lease(&self) -> &orrery_ledger::entries::Lease {
        self.net.state.lease(0).unwrap()
    }

    /// Start and commit the provider's claim; the lease is then in the draw.
    fn commit(&mut self) {
        let r = self.net.run(PROVIDER, TxBody::StartLease { lease: 0 });
        assert!(r.is_ok(), "{r:?}");
        self.net.empty_blocks(2);
        let claim = self.agents[&self.net.id(PROVIDER)].run.claim();
        let usage = Usage {
            seconds: 1,
            units: UNITS,
        };
        let body = commit_body(&self.net, PROVIDER, 0, usage, &claim);
        let out = self.net.apply(vec![self.net.tx(PROVIDER, body)]);
        assert!(out.receipts[0].is_ok(), "{:?}", out.receipts[0]);
        self.events.extend(out.events);
    }

    /// Whether `who` acts this block: each party picks a random height before the deadline.
    fn due_now(&mut self, who: AccountId, deadline: u64) -> bool {
        let h = self.net.state.height() + 1;
        let plan = match self.plans.get(&who) {
            Some((d, p)) if *d == deadline => *p,
            _ => {
                let window = deadline.saturating_sub(h);
                let p = h + self.rand() % (window + 1);
                self.plans.insert(who, (deadline, p));
                p
            }
        };
        if h >= plan {
            self.plans.remove(&who);
            true
        } else {
            false
        }
    }

    /// The moves every party wants to make now.
    fn moves(&mut self) -> Vec<(usize, TxBody)> {
        let lease = self.lease().clone();
        let id: LeaseId = 0;
        let mut out = Vec::new();
        match &lease.state {
            LeaseState::Checking(check) => {
                let provider_seal = check.claims.as_slice()[0].seal;
                for c in check.claims.as_slice().to_vec() {
                    if c.status != orrery_ledger::entries::ClaimStatus::Active {
                        continue;
                    }
                    let Some((account, claim, conduct)) = self
                        .agents
                        .get(&c.party)
                        .map(|a| (a.account, a.run.claim(), a.conduct))
                    else {
                        continue;
                    };
                    // Act before the deadline (the last block allowed is `due`).
                    if !self.due_now(c.party, check.due) {
                        continue;
                    }
                    match check.phase {
                        orrery_ledger::entries::CheckPhase::Sealing if c.seal.is_none() => {
                            let seal = if conduct == Conduct::CopiesSeal {
                                provider_seal.unwrap()
                            } else {
                                result_seal(id, &c.party, &claim)
                            };
                            out.push((account, TxBody::CommitCheck { lease: id, seal }));
                        }
                        orrery_ledger::entries::CheckPhase::Revealing
                            if c.seal.is_some() && c.revealed.is_none() =>
                        {
                            // A copier can only reveal what it saw: the provider's claim.
                            let claim = if conduct == Conduct::CopiesSeal {
                                match check.claims.as_slice()[0].revealed {
                                    Some(p) => p,
                                    None => continue,
                                }
                            } else {
                                claim
                            };
                            out.push((account, reveal_body(id, claim)));
                        }
                        _ => {}
                    }
                }
            }
            // The requester accepts an unchecked result early half the time.
            LeaseState::Committed { .. } => {
                let requester = lease.requester;
                if self.rng.is_multiple_of(2)
                    && self.due_now(requester, self.net.state.height() + 10)
                {
                    out.push((REQUESTER, TxBody::SettleLease { lease: id }));
                }
            }
            LeaseState::Disputed(d) => {
                let provider = lease.provider;
                let challenger = d.check.claims.as_slice()[usize::from(d.challenger)].party;
                for (side, who) in [(0, provider), (1, challenger)] {
                    let agent = &self.agents[&who];
                    if agent.conduct == Conduct::StallsDispute {
                        continue;
                    }
                    let (account, run) = (agent.account, agent.run.clone());
                    if !self.due_now(who, d.due) {
                        continue;
                    }
                    if !d.awaiting_referee {
                        let moved = if side == 0 {
                            d.provider_move.is_some()
                        } else {
                            d.challenger_move.is_some()
                        };
                        if moved {
                            continue;
                        }
                        let k = 1u64 << (63 - (d.size - 1).leading_zeros());
                        out.push((
                            account,
                            TxBody::DisputeMove {
                                lease: id,
                                left: run.node(d.start, k),
                                right: run.node(d.start + k, d.size - k),
                            },
                        ));
                    } else if self.honest(who) {
                        out.push((account, self.adjudication(d)));
                    }
                }
            }
            _ => {}
        }
        out
    }

    fn honest(&self, who: AccountId) -> bool {
        self.agents[&who].run.claim() == self.truth.claim()
    }

    /// The honest referee input for a narrowed dispute.
    fn adjudication(&self, d: &orrery_ledger::entries::Dispute) -> TxBody {
        let n = self.truth.steps;
        let tree = MerkleTree::new(&self.truth.checkpoints);
        let (state, proof) = match d.kind {
            DisputeKind::Steps => (Vec::new(), tree.proof(0).unwrap()),
            DisputeKind::Output => (n.to_le_bytes().to_vec(), tree.proof(n).unwrap()),
            DisputeKind::Checkpoints if d.start == 0 => (Vec::new(), tree.proof(0).unwrap()),
            DisputeKind::Checkpoints => (
                (d.start - 1).to_le_bytes().to_vec(),
                tree.proof(d.start - 1).unwrap(),
            ),
        };
        TxBody::Adjudicate {
            lease: 0,
            bundle: Blob::new(self.bundle.bytes().to_vec()).unwrap(),
            state: Blob::new(state).unwrap(),
            proof,
        }
    }

    /// Play blocks until the lease is final; returns the number of blocks.
    fn play(&mut self) -> u64 {
        for blocks in 0..2_000 {
            if !self.lease().state.is_active() {
                return blocks;
            }
            // Settled automatically after the challenge window when unchecked.
            let moves = self.moves();
            let mut offsets: BTreeMap<usize, u64> = BTreeMap::new();
            let txs = moves
                .into_iter()
                .map(|(who, body)| {
                    let off = offsets.entry(who).or_default();
                    let tx = self.net.tx_at(who, *off, body);
                    *off += 1;
                    tx
                })
                .collect();
            let out = self.net.apply(txs);
            for r in &out.receipts {
                if let Ok(events) = &r.outcome {
                    self.events.extend(events.iter().cloned());
                }
            }
            self.events.extend(out.events);
        }
        panic!("lease did not finish: {:?}", self.lease().state);
    }

    fn slashed(&self) -> Vec<AccountId> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Slashed { party, .. } => Some(*party),
                _ => None,
            })
            .collect()
    }

    fn drawn(&self) -> Option<(u16, Vec<AccountId>)> {
        self.events.iter().find_map(|e| match e {
            Event::CheckDrawn {
                p_bps, verifiers, ..
            } => Some((*p_bps, verifiers.clone())),
            _ => None,
        })
    }

    fn rounds(&self) -> u32 {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::DisputeNarrowed { round, .. } => Some(*round),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    fn referee_rulings(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::RefereeRuled { .. }))
            .count()
    }
}

#[test]
fn honest_parties_are_never_slashed() {
    let mut settled = 0;
    let mut checked = 0;
    for seed in 0..2_000u64 {
        let providers = 2 + (seed % 5) as usize;
        let verification = match seed % 4 {
            0 => Verification::None,
            1 | 2 => Verification::Sampled,
            _ => Verification::Redundant {
                k: 2 + (seed % 3) as u8,
            },
        };
        let steps = 1 + seed % 40;
        let mut g = Game::new(seed, providers, steps, verification);
        g.commit();
        g.play();
        assert_eq!(g.slashed(), Vec::<AccountId>::new(), "seed {seed}");
        assert!(
            matches!(g.lease().state, LeaseState::Settled { .. }),
            "seed {seed}: {:?}",
            g.lease().state
        );
        assert!(
            g.net.balance(REQUESTER) < START_BALANCE,
            "seed {seed}: the requester paid"
        );
        if g.drawn().is_some_and(|(_, v)| !v.is_empty()) {
            checked += 1;
        }
        settled += 1;
    }
    assert_eq!(settled, 2_000);
    // The runs exercised real checks, not only unchecked leases.
    assert!(checked > 700, "only {checked} checked runs");
}

/// Run `seeds` games with a cheating provider under `sampled`; return (drawn, caught, mean p).
fn cheat_under_sampling(how: fn(u64) -> Lie, seeds: u64) -> (u64, u64, f64) {
    let (mut drawn, mut caught, mut p_sum) = (0, 0, 0.0);
    for seed in 0..seeds {
        let n = 8 + seed % 50;
        let mut g = Game::new(seed, 3, n, Verification::Sampled);
        g.agent_mut(PROVIDER).run = lie(n, how(seed % n));
        g.commit();
        g.play();
        let (p, verifiers) = g.drawn().expect("sampled leases are drawn");
        p_sum += f64::from(p) / 10_000.0;
        let provider = g.net.id(PROVIDER);
        if verifiers.is_empty() {
            // Not drawn: the lie goes unnoticed this time and is paid (what p prices in).
            assert!(matches!(g.lease().state, LeaseState::Settled { .. }));
            continue;
        }
        drawn += 1;
        if g.slashed() == vec![provider] {
            caught += 1;
            assert!(matches!(g.lease().state, LeaseState::Failed { .. }));
            assert_eq!(g.net.balance(REQUESTER), START_BALANCE, "refunded in full");
            assert_eq!(g.referee_rulings(), 1);
        }
    }
    (drawn, caught, p_sum / seeds as f64)
}

fn assert_rate(name: &str, drawn: u64, seeds: u64, p: f64) {
    let rate = drawn as f64 / seeds as f64;
    let sigma = (p * (1.0 - p) / seeds as f64).sqrt();
    assert!(
        (rate - p).abs() < 4.0 * sigma + 0.01,
        "{name}: checked {rate:.3} of runs, the protocol promised p = {p:.3}"
    );
}

#[test]
fn a_wrong_output_is_caught_whenever_it_is_checked_and_checked_at_rate_p() {
    let seeds = 400;
    let (drawn, caught, p) = cheat_under_sampling(|_| Lie::WrongOutput, seeds);
    assert_eq!(caught, drawn, "every check of a wrong output catches it");
    assert_rate("wrong output", drawn, seeds, p);
}

#[test]
fn skipped_steps_and_forged_checkpoints_are_caught_at_rate_p() {
    let seeds = 300;
    let (drawn, caught, p) = cheat_under_sampling(Lie::SkipStep, seeds);
    assert_eq!(caught, drawn);
    assert_rate("skipped step", drawn, seeds, p);
    let (drawn, caught, p) = cheat_under_sampling(Lie::Forged, seeds);
    assert_eq!(caught, drawn);
    assert_rate("forged checkpoints", drawn, seeds, p);
    let (drawn, caught, p) = cheat_under_sampling(|_| Lie::FewerSteps, seeds);
    assert_eq!(caught, drawn);
    assert_rate("fewer steps", drawn, seeds, p);
}

#[test]
fn redundancy_catches_every_lie_and_pays_the_honest_verifier() {
    for seed in 0..60u64 {
        let n = 5 + seed % 30;
        let how = match seed % 4 {
            0 => Lie::WrongOutput,
            1 => Lie::SkipStep(seed % n),
            2 => Lie::Forged(seed % (n + 1)),
            _ => Lie::FewerSteps,
        };
        let mut g = Game::new(seed, 4, n, Verification::Redundant { k: 3 });
        g.agent_mut(PROVIDER).run = lie(n, how);
        g.commit();
        g.play();
        assert_eq!(g.slashed(), vec![g.net.id(PROVIDER)], "seed {seed} {how:?}");
        assert_eq!(g.net.balance(REQUESTER), START_BALANCE, "refunded in full");
        let p = g.net.state.provider(&g.net.id(PROVIDER)).unwrap();
        assert_eq!((p.reputation.failed, p.reputation.slashed), (1, 1));
        // The challenger won a share of the slash.
        let rewarded: Amount = g
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Slashed { rewarded, .. } => Some(*rewarded),
                _ => None,
            })
            .fold(Amount::ZERO, |a, b| a.checked_add(b).unwrap());
        assert!(!rewarded.is_zero());
    }
}

#[test]
fn p_is_raised_for_small_stakes_and_new_providers() {
    let params = Params::default();
    let reward = Amount::orr(100);
    // Big stake, long record: the base rate.
    assert_eq!(
        params.sample_bps(reward, Amount::orr(1_000_000), 100),
        1_000
    );
    // A new provider: at least the new-provider rate.
    assert_eq!(params.sample_bps(reward, Amount::orr(1_000_000), 0), 5_000);
    // Small stake relative to the job: p ≥ 2R/(R+S) > C/(R+S) for any saving C ≤ R.
    for stake in [0u64, 10, 100, 1_000, 10_000] {
        let p = params.sample_bps(reward, Amount::orr(stake), 100);
        let s = Amount::orr(stake).bps(params.slash_bps).unwrap();
        let bound = reward.units() as f64 / (reward.units() + s.units()) as f64;
        assert!(
            f64::from(p) / 10_000.0 >= bound.min(1.0),
            "stake {stake}: p {p}"
        );
        // Cheating loses in expectation: (1-p)R - pS < R - C for C = R.
        let pf = f64::from(p) / 10_000.0;
        let cheat = (1.0 - pf) * reward.units() as f64 - pf * s.units() as f64;
        assert!(cheat < 0.0 + 1e-9, "stake {stake}: cheating pays {cheat}");
    }
}

#[test]
fn a_lazy_verifier_cannot_copy_and_a_guessing_verifier_is_slashed() {
    for seed in 0..40u64 {
        // The copier: seals the provider's seal as its own, then cannot open it.
        let mut g = Game::new(seed, 2, 10, Verification::Redundant { k: 2 });
        g.agent_mut(2).conduct = Conduct::CopiesSeal;
        let before = g.net.state.provider(&g.net.id(2)).unwrap().stake;
        g.commit();
        g.play();
        assert!(g.slashed().is_empty(), "seed {seed}");
        assert!(g.events.iter().any(|e| matches!(
            e,
            Event::CheckAbsent { party, .. } if *party == g.net.id(2)
        )));
        let after = g.net.state.provider(&g.net.id(2)).unwrap().stake;
        assert!(after < before, "the copier was docked");
        assert!(matches!(g.lease().state, LeaseState::Settled { .. }));

        // The guesser: seals a claim it never computed; the dispute proves it wrong.
        let mut g = Game::new(seed, 2, 10, Verification::Redundant { k: 2 });
        g.agent_mut(2).run = lie(10, Lie::Forged(seed % 11));
        let provider_before = g.net.balance(PROVIDER);
        g.commit();
        g.play();
        assert_eq!(g.slashed(), vec![g.net.id(2)], "seed {seed}");
        assert!(matches!(g.lease().state, LeaseState::Settled { .. }));
        assert!(
            g.net.balance(PROVIDER) > provider_before,
            "paid plus the reward"
        );
    }
}

#[test]
fn a_party_that_stalls_a_dispute_loses() {
    for seed in 0..30u64 {
        // A cheating provider that stops answering once disputed.
        let mut g = Game::new(seed, 2, 16, Verification::Redundant { k: 2 });
        g.agent_mut(PROVIDER).run = lie(16, Lie::SkipStep(seed % 16));
        g.agent_mut(PROVIDER).conduct = Conduct::StallsDispute;
        g.commit();
        g.play();
        assert_eq!(g.slashed(), vec![g.net.id(PROVIDER)], "seed {seed}");
        assert!(matches!(g.lease().state, LeaseState::Failed { .. }));
        assert_eq!(g.referee_rulings(), 0, "a stall needs no referee");

        // A guessing verifier that stalls: the provider wins.
        let mut g = Game::new(seed, 2, 16, Verification::Redundant { k: 2 });
        g.agent_mut(2).run = lie(16, Lie::Forged(seed % 17));
        g.agent_mut(2).conduct = Conduct::StallsDispute;
        g.commit();
        g.play();
        assert_eq!(g.slashed(), vec![g.net.id(2)], "seed {seed}");
        assert!(matches!(g.lease().state, LeaseState::Settled { .. }));
    }
}

#[test]
fn a_dispute_over_a_million_steps_settles_in_about_twenty_rounds_with_one_referee_step() {
    let n = 1u64 << 20;
    let mut g = Game::new(7, 2, n, Verification::Redundant { k: 2 });
    g.agent_mut(PROVIDER).run = lie(n, Lie::SkipStep(777_777));
    g.commit();
    g.play();
    assert_eq!(g.slashed(), vec![g.net.id(PROVIDER)]);
    // 2^20 + 1 leaves: ⌈log2(2^20 + 1)⌉ = 21 rounds at most, and the referee ran once.
    let rounds = g.rounds();
    assert!((20..=21).contains(&rounds), "{rounds} rounds");
    assert_eq!(g.referee_rulings(), 1);
    let ruled_step = g.events.iter().find_map(|e| match e {
        Event::RefereeRuled { step, fuel, .. } => Some((*step, *fuel)),
        _ => None,
    });
    let (step, fuel) = ruled_step.unwrap();
    assert_eq!(step, Some(777_777), "the first wrong checkpoint is 777,778");
    assert!(fuel > 0 && fuel < 1_000, "one small step, {fuel} fuel");
}

#[test]
fn steps_the_referee_cannot_afford_go_to_a_majority() {
    let params = Params {
        referee_fuel: 3, // less than any step needs
        ..Params::default()
    };
    for seed in 0..10u64 {
        let mut g = Game::with_params(seed, 5, 8, Verification::Redundant { k: 2 }, params.clone());
        g.agent_mut(PROVIDER).run = lie(8, Lie::SkipStep(seed % 8));
        g.commit();
        g.play();
        assert!(
            g.events.iter().any(
                |e| matches!(e, Event::TiebreakDrawn { verifiers, .. } if verifiers.len() == 2)
            ),
            "seed {seed}"
        );
        assert_eq!(g.slashed(), vec![g.net.id(PROVIDER)], "seed {seed}");
        assert!(matches!(g.lease().state, LeaseState::Failed { .. }));
    }
}

/// Drive a disputed lease by hand for the bad-input cases.
fn disputed_game() -> Game {
    // Long deadlines: this test spends blocks on refused transactions.
    let params = Params {
        dispute_round_blocks: 1_000,
        ..Params::default()
    };
    let mut g = Game::with_params(3, 2, 16, Verification::Redundant { k: 2 }, params);
    g.agent_mut(PROVIDER).run = lie(16, Lie::SkipStep(5));
    g.commit();
    // Play until the dispute opens.
    for _ in 0..200 {
        if matches!(g.lease().state, LeaseState::Disputed(_)) {
            return g;
        }
        let moves = g.moves();
        let mut offsets: BTreeMap<usize, u64> = BTreeMap::new();
        let txs = moves
            .into_iter()
            .map(|(who, body)| {
                let off = offsets.entry(who).or_default();
                let tx = g.net.tx_at(who, *off, body);
                *off += 1;
                tx
            })
            .collect();
        let out = g.net.apply(txs);
        for r in out.receipts {
            assert!(r.is_ok(), "{r:?}");
        }
    }
    panic!("no dispute: {:?}", g.lease().state);
}

fn refused(g: &mut Game, who: usize, body: TxBody, expected: impl Fn(&TxError) -> bool) {
    let before = g.lease().clone();
    let r = g.net.run(who, body);
    let err = r.outcome.expect_err("must be refused");
    assert!(expected(&err), "unexpected error: {err}");
    assert_eq!(g.lease(), &before, "the lease changed");
}

#[test]
fn bad_dispute_input_is_refused_with_a_clear_error() {
    let mut g = disputed_game();
    let LeaseState::Disputed(d) = g.lease().state.clone() else {
        unreachable!()
    };
    // The dispute's parties (provider and verifier) are the lease's parties; its requester
    // is not (what the node's `party` filter and the agents' polls rely on).
    assert!(g.lease().involves(&g.net.id(PROVIDER)));
    assert!(g.lease().involves(&g.net.id(2)));
    assert_eq!(
        d.check.claims.as_slice()[usize::from(d.challenger)].party,
        g.net.id(2)
    );
    assert!(!g.lease().involves(&g.net.id(REQUESTER)));
    let honest = Run::honest(16);
    // A move whose children do not hash to the party's node.
    refused(
        &mut g,
        2,
        TxBody::DisputeMove {
            lease: 0,
            left: Hash::of(b"l"),
            right: Hash::of(b"r"),
        },
        |e| matches!(e, TxError::BadMove { .. }),
    );
    // Referee input before the bisection narrowed.
    let early = g.adjudication(&d);
    refused(&mut g, 2, early, |e| {
        matches!(e, TxError::DisputeStage { .. })
    });
    // A move by someone outside the dispute.
    refused(
        &mut g,
        REQUESTER,
        TxBody::DisputeMove {
            lease: 0,
            left: Hash::ZERO,
            right: Hash::ZERO,
        },
        |e| matches!(e, TxError::NotAParty { .. }),
    );
    // A second move in the same round: out of turn.
    let k = 16u64;
    let mv = TxBody::DisputeMove {
        lease: 0,
        left: honest.node(0, k),
        right: honest.node(k, 1),
    };
    assert!(g.net.run(2, mv.clone()).is_ok());
    refused(&mut g, 2, mv, |e| matches!(e, TxError::OutOfTurn { .. }));
    // A second commitment of a claim.
    refused(
        &mut g,
        2,
        TxBody::CommitCheck {
            lease: 0,
            seal: Hash::ZERO,
        },
        |e| matches!(e, TxError::WrongLeaseState { .. }),
    );

    // Narrow to the leaf, then feed the referee bad input.
    let mut g = disputed_game();
    loop {
        let LeaseState::Disputed(d) = g.lease().state.clone() else {
            unreachable!()
        };
        if d.awaiting_referee {
            break;
        }
        for who in [PROVIDER, 2] {
            let run = g.agent_mut(who).run.clone();
            let k = 1u64 << (63 - (d.size - 1).leading_zeros());
            let r = g.net.run(
                who,
                TxBody::DisputeMove {
                    lease: 0,
                    left: run.node(d.start, k),
                    right: run.node(d.start + k, d.size - k),
                },
            );
            assert!(r.is_ok(), "{r:?}");
        }
    }
    let LeaseState::Disputed(d) = g.lease().state.clone() else {
        unreachable!()
    };
    assert_eq!(d.start, 6, "the first wrong checkpoint is state 6");
    let good = g.adjudication(&d);
    let TxBody::Adjudicate {
        bundle,
        state,
        proof,
        ..
    } = good.clone()
    else {
        unreachable!()
    };
    let tree = MerkleTree::new(&honest.checkpoints);
    // A proof for the wrong step.
    refused(
        &mut g,
        2,
        TxBody::Adjudicate {
            lease: 0,
            bundle: bundle.clone(),
            state: Blob::new(3u64.to_le_bytes().to_vec()).unwrap(),
            proof: tree.proof(3).unwrap(),
        },
        |e| {
            matches!(
                e,
                TxError::ProofWrongStep {
                    expected: 5,
                    got: 3,
                    ..
                }
            )
        },
    );
    // A state that does not match its checkpoint.
    refused(
        &mut g,
        2,
        TxBody::Adjudicate {
            lease: 0,
            bundle: bundle.clone(),
            state: Blob::new(99u64.to_le_bytes().to_vec()).unwrap(),
            proof: proof.clone(),
        },
        |e| matches!(e, TxError::StateMismatch { index: 5 }),
    );
    // A proof with a forged sibling.
    let mut forged = proof.clone();
    forged.siblings[0] = Hash::of(b"forged");
    refused(
        &mut g,
        2,
        TxBody::Adjudicate {
            lease: 0,
            bundle: bundle.clone(),
            state: state.clone(),
            proof: forged,
        },
        |e| matches!(e, TxError::StateMismatch { .. }),
    );
    // Another job's bundle.
    refused(
        &mut g,
        2,
        TxBody::Adjudicate {
            lease: 0,
            bundle: Blob::new(counter_bundle(17).bytes().to_vec()).unwrap(),
            state: state.clone(),
            proof: proof.clone(),
        },
        |e| matches!(e, TxError::BundleMismatch { .. }),
    );
    // Bytes that are no bundle at all.
    refused(
        &mut g,
        2,
        TxBody::Adjudicate {
            lease: 0,
            bundle: Blob::new(vec![0xde, 0xad]).unwrap(),
            state,
            proof: MerkleProof {
                index: 5,
                leaf_count: 17,
                siblings: vec![],
            },
        },
        |e| matches!(e, TxError::BadBundle(_)),
    );
    // The real input rules for the honest verifier.
    let out = g.net.run(2, good);
    assert!(out.is_ok(), "{out:?}");
    assert!(matches!(g.lease().state, LeaseState::Failed { .. }));
    // A move after the dispute ended.
    refused(
        &mut g,
        2,
        TxBody::DisputeMove {
            lease: 0,
            left: Hash::ZERO,
            right: Hash::ZERO,
        },
        |e| matches!(e, TxError::WrongLeaseState { .. }),
    );
}

#[test]
fn seals_and_reveals_refuse_misuse() {
    let mut g = Game::new(11, 2, 8, Verification::Redundant { k: 2 });
    g.commit();
    g.net.empty_blocks(1); // the draw
    let LeaseState::Checking(check) = g.lease().state.clone() else {
        panic!("{:?}", g.lease().state)
    };
    assert_eq!(check.claims.len(), 2);
    let claim = Run::honest(8).claim();
    // The provider cannot reveal while the verifier is still sealing (it would show its claim).
    refused(&mut g, PROVIDER, reveal_body(0, claim), |e| {
        matches!(e, TxError::WrongPhase { .. })
    });
    // A second commitment from the provider.
    let again = commit_body(&g.net, PROVIDER, 0, Usage::default(), &claim);
    refused(&mut g, PROVIDER, again, |e| {
        matches!(e, TxError::WrongLeaseState { .. })
    });
    // Someone not drawn cannot seal.
    refused(
        &mut g,
        REQUESTER,
        TxBody::CommitCheck {
            lease: 0,
            seal: Hash::ZERO,
        },
        |e| matches!(e, TxError::NotAParty { .. }),
    );
    let seal = result_seal(0, &g.net.id(2), &claim);
    assert!(g.net.run(2, TxBody::CommitCheck { lease: 0, seal }).is_ok());
    refused(&mut g, 2, TxBody::CommitCheck { lease: 0, seal }, |e| {
        matches!(e, TxError::AlreadySealed { .. })
    });
    // A reveal that does not match the seal.
    refused(
        &mut g,
        2,
        TxBody::RevealResult {
            note: Default::default(),
            lease: 0,
            claim: ResultClaim { steps: 9, ..claim },
        },
        |e| matches!(e, TxError::SealMismatch { .. }),
    );
    assert!(g.net.run(2, reveal_body(0, claim)).is_ok());
    refused(&mut g, 2, reveal_body(0, claim), |e| {
        matches!(e, TxError::AlreadyRevealed { .. })
    });
    assert!(g.net.run(PROVIDER, reveal_body(0, claim)).is_ok());
    assert!(matches!(g.lease().state, LeaseState::Settled { .. }));
}

#[test]
fn a_provider_that_hides_its_result_after_the_draw_is_slashed() {
    let mut g = Game::new(5, 2, 8, Verification::Redundant { k: 2 });
    g.commit();
    g.net.empty_blocks(1);
    let claim = Run::honest(8).claim();
    let seal = result_seal(0, &g.net.id(2), &claim);
    assert!(g.net.run(2, TxBody::CommitCheck { lease: 0, seal }).is_ok());
    assert!(g.net.run(2, reveal_body(0, claim)).is_ok());
    let before = g.net.balance(REQUESTER);
    let reveal = g.net.state.params().reveal_blocks;
    let outs = g.net.empty_blocks(reveal);
    let events: Vec<_> = outs.into_iter().flat_map(|o| o.events).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Slashed { party, .. } if *party == g.net.id(PROVIDER)))
    );
    assert!(matches!(g.lease().state, LeaseState::Failed { .. }));
    assert!(g.net.balance(REQUESTER) > before, "refunded");
}

/// A referee whose machine fails (the engine cannot start, memory runs out): only in tests.
#[derive(Debug)]
struct FaultyHost;

impl orrery_ledger::referee::Referee for FaultyHost {
    fn rule(
        &self,
        _: &Bundle,
        _: orrery_ledger::referee::Piece<'_>,
        _: u64,
    ) -> Result<orrery_ledger::referee::Ruling, orrery_ledger::referee::HostFailure> {
        Err(orrery_ledger::referee::HostFailure(
            "the wasm engine cannot be created: out of memory".into(),
        ))
    }
}

#[test]
fn a_referee_host_failure_on_one_validator_leaves_every_state_root_equal() {
    use orrery_ledger::referee::WasmReferee;
    use orrery_ledger::{BlockError, Signatures, State, apply_block_with};
    // Bisect until the dispute awaits the referee.
    let mut g = disputed_game();
    let block = loop {
        let moves = g.moves();
        let adjudicates = moves
            .iter()
            .any(|(_, b)| matches!(b, TxBody::Adjudicate { .. }));
        let mut offsets: BTreeMap<usize, u64> = BTreeMap::new();
        let txs = moves
            .into_iter()
            .map(|(who, body)| {
                let off = offsets.entry(who).or_default();
                let tx = g.net.tx_at(who, *off, body);
                *off += 1;
                tx
            })
            .collect();
        if adjudicates {
            break g.net.next_block(txs);
        }
        g.net.apply(txs);
        assert!(
            g.net.state.height() < 20_000,
            "the dispute never reached the referee: {:?}",
            g.lease().state
        );
    };
    // Four validators hold the same state; one's referee host fails on this block.
    let before = g.net.state.root();
    let mut validators: Vec<State> = (0..4).map(|_| g.net.state.clone()).collect();
    let stored = g.net.state.entries().collect::<Vec<_>>();
    let mut roots = Vec::new();
    for (i, v) in validators.iter_mut().enumerate() {
        if i == 2 {
            let err = apply_block_with(v, &block, Signatures::Verify, &FaultyHost).unwrap_err();
            assert!(
                matches!(&err, BlockError::RefereeHost { reason, .. } if reason.contains("out of memory")),
                "{err}"
            );
            // Nothing was committed: the root is the previous block's. The validator reloads
            // its stored state, as the store does on this error, and retries the block.
            assert_eq!(v.root(), before);
            *v = State::from_entries(stored.clone()).unwrap();
            assert_eq!(v.root(), before);
        }
        let out = apply_block_with(v, &block, Signatures::Verify, &WasmReferee).unwrap();
        assert!(
            out.receipts
                .iter()
                .flat_map(|r| r.outcome.iter().flatten())
                .any(|e| matches!(e, Event::RefereeRuled { .. })),
            "the referee ruled"
        );
        roots.push(out.state_root);
    }
    assert!(roots.iter().all(|r| *r == roots[0]), "{roots:?}");
    assert_ne!(roots[0], before);
}
