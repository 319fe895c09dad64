//! Provider challenges through real blocks: spoofers are docked and marked offline at the
//! documented rate, honest providers under load never are, every bad answer is refused with a
//! clear error and changes nothing, a miss burns exactly the penalty, an offline provider comes
//! back by answering, and only bonded providers are drawn.
//!
//! Time is scaled down 200× from the defaults so that thousands of challenges are solved for
//! real in seconds: 1 ms blocks (200 ms), a 10 ms target (2 s), 5 ms of latency allowance
//! (1 s). Providers are simulated by their *true* throughput, in FLOP/s: a provider answers
//! when its block time says it could have finished.

mod common;

use common::*;
use orrery_ledger::entries::{ChallengePhase, ProvenRecord};
use orrery_ledger::{BlockOutcome, Event, MissReason, Params, Signatures, TxError, apply_block};
use orrery_types::amount::Amount;
use orrery_types::block::{Block, BlockTxs};
use orrery_types::challenge::{
    ChallengeRows, challenge_flops, claimed_flops, open, open_indices, solve,
};
use orrery_types::codec::{BoundedVec, Text};
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::merkle::MerkleTree;
use orrery_types::resources::{GpuSpec, Hardware};
use orrery_types::tx::{ProviderOffer, SignedTx, TxBody};
use std::collections::BTreeMap;

/// One core of the reference kernel as measured in release (see `CORE_FLOPS`).
const REAL_CORE_FLOPS: u64 = 17_300_000_000;
const STAKE: Amount = Amount::orr(10_000);

fn params() -> Params {
    Params {
        challenges_per_block: 4,
        challenge_target_ms: 10,
        challenge_latency_ms: 5,
        challenge_deadline_blocks: 90,
        challenge_open_blocks: 10,
        ..Params::default()
    }
}

fn hardware(cores: u16, gpus: u16) -> Hardware {
    Hardware {
        gpu: (gpus > 0).then(|| GpuSpec {
            model: Text::new("NVIDIA H100").unwrap(),
            vram_mib: 81_920,
            count: gpus,
        }),
        cpu_cores: cores,
        ram_gib: 64,
    }
}

fn offer_of(hw: Hardware) -> ProviderOffer {
    ProviderOffer {
        hardware: hw,
        ..offer(0, prices())
    }
}

/// How a simulated provider behaves.
#[derive(Clone, Copy, Debug)]
struct Machine {
    /// Its true throughput, FLOP/s.
    true_flops: u64,
    /// Its own work slows the challenge by a factor drawn in `[1, max_load]`.
    max_load: f64,
    /// Whether its process runs at all.
    running: bool,
}

/// What a provider is doing about its challenge.
enum Duty {
    /// Will send its answer in the first block at or after `ready_ms`.
    Answer {
        drawn_at: u64,
        ready_ms: u64,
        tree: Option<MerkleTree>,
    },
    /// Answered; opens once the rows are drawn.
    Open { drawn_at: u64, tree: MerkleTree },
}

struct Sim {
    net: Net,
    machines: BTreeMap<usize, Machine>,
    duties: BTreeMap<usize, Duty>,
    events: Vec<Event>,
    rng: u64,
}

fn next_rand(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Sim {
    fn new(accounts: usize, params: Params, salt: u64) -> Sim {
        let mut net = Net::with_challenges(accounts, params);
        net.seed_salt = salt;
        Sim {
            net,
            machines: BTreeMap::new(),
            duties: BTreeMap::new(),
            events: Vec::new(),
            rng: salt,
        }
    }

    /// Register and bond provider `i`, claiming `claim` and running as `machine`.
    fn provider(&mut self, i: usize, claim: Hardware, machine: Machine) {
        self.machines.insert(i, machine);
        let register = self.net.tx(i, TxBody::RegisterProvider(offer_of(claim)));
        let bond = self.net.tx_at(i, 1, TxBody::Bond { amount: STAKE });
        let out = self.block(vec![register, bond], 1);
        assert!(out.receipts.iter().all(|r| r.is_ok()), "{:?}", out.receipts);
    }

    fn index_of(&self, id: &AccountId) -> Option<usize> {
        self.machines
            .keys()
            .copied()
            .find(|&i| self.net.id(i) == *id)
    }

    /// Apply a block `dt_ms` after the last, with `txs`.
    fn block(&mut self, txs: Vec<SignedTx>, dt_ms: u64) -> BlockOutcome {
        let g = *self.net.state.globals();
        let block = Block {
            height: g.height + 1,
            time_ms: g.time_ms + dt_ms,
            seed: Hash::of_parts(&[
                &self.net.seed_salt.to_be_bytes(),
                &(g.height + 1).to_be_bytes(),
            ]),
            parent: g.last_block,
            txs: BlockTxs::new(txs).unwrap(),
        };
        let out = apply_block(&mut self.net.state, &block, Signatures::Verify).expect("applies");
        if g.height.is_multiple_of(64) {
            self.net.state.audit().expect("invariants hold");
        }
        self.events.extend(out.events.iter().cloned());
        self.take_draws(&out.events);
        for r in &out.receipts {
            if let Ok(e) = &r.outcome {
                self.events.extend(e.iter().cloned());
            }
        }
        out
    }

    /// One block of the simulation: every running provider does its duty, and the block is
    /// applied one millisecond after the last.
    fn step(&mut self) -> BlockOutcome {
        let now = self.net.state.globals().time_ms + 1;
        let mut txs = Vec::new();
        let ids: Vec<usize> = self.duties.keys().copied().collect();
        for i in ids {
            if let Some(tx) = self.duty(i, now) {
                txs.push(tx);
            }
        }
        self.block(txs, 1)
    }

    /// New draws become duties of the running providers.
    fn take_draws(&mut self, events: &[Event]) {
        for e in events {
            let Event::ChallengeDrawn {
                provider, drawn_at, ..
            } = e
            else {
                continue;
            };
            let Some(i) = self.index_of(provider) else {
                continue;
            };
            let m = self.machines[&i];
            if !m.running {
                continue;
            }
            let c = *self.net.state.challenge(provider).unwrap();
            let load = 1.0 + (next_rand(&mut self.rng) % 1000) as f64 / 1000.0 * (m.max_load - 1.0);
            let compute_ms =
                (challenge_flops(c.rows, c.dim) as f64 / m.true_flops as f64 * 1000.0 * load)
                    .ceil();
            // It sees the draw's block one or two blocks later.
            let see_ms = 1 + next_rand(&mut self.rng) % 2;
            self.duties.insert(
                i,
                Duty::Answer {
                    drawn_at: *drawn_at,
                    ready_ms: c.drawn_ms + see_ms + compute_ms as u64,
                    tree: None,
                },
            );
        }
    }

    /// The transaction provider `i` sends in the block at `now`, if any.
    fn duty(&mut self, i: usize, now: u64) -> Option<SignedTx> {
        let id = self.net.id(i);
        let c = *self.net.state.challenge(&id)?;
        match self.duties.remove(&i)? {
            Duty::Answer {
                drawn_at,
                ready_ms,
                tree,
            } => {
                let deadline = c.drawn_ms + self.net.state.params().challenge_deadline_ms();
                if now < ready_ms || ready_ms > deadline {
                    // Not done yet (a machine that cannot make the deadline gives up).
                    if ready_ms <= deadline {
                        self.duties.insert(
                            i,
                            Duty::Answer {
                                drawn_at,
                                ready_ms,
                                tree,
                            },
                        );
                    }
                    return None;
                }
                let tree = tree.unwrap_or_else(|| solve(&c.seed, c.dim as usize, c.rows));
                let tx = self.net.tx(
                    i,
                    TxBody::AnswerChallenge {
                        drawn_at,
                        rows: c.rows,
                        root: tree.root(),
                    },
                );
                self.duties.insert(i, Duty::Open { drawn_at, tree });
                Some(tx)
            }
            Duty::Open { drawn_at, tree } => {
                let ChallengePhase::Opening { open_seed, .. } = c.phase else {
                    self.duties.insert(i, Duty::Open { drawn_at, tree });
                    return None;
                };
                let n = self.net.state.params().challenge_open_rows;
                let idx = open_indices(&c.seed, &open_seed, c.rows, u64::from(n));
                let rows = open(&c.seed, c.dim as usize, &tree, &idx).unwrap();
                Some(self.net.tx(i, TxBody::OpenChallenge { drawn_at, rows }))
            }
        }
    }

    fn record(&self, i: usize) -> ProvenRecord {
        self.net.state.provider(&self.net.id(i)).unwrap().proof
    }

    fn stake(&self, i: usize) -> Amount {
        self.net.state.provider(&self.net.id(i)).unwrap().stake
    }

    /// Outcome events of provider `i`.
    fn outcomes(&self, i: usize) -> Vec<&Event> {
        let id = self.net.id(i);
        self.events
            .iter()
            .filter(|e| match e {
                Event::ChallengePassed { provider, .. }
                | Event::ChallengeBelowClaim { provider, .. }
                | Event::ChallengeMissed { provider, .. } => *provider == id,
                _ => false,
            })
            .collect()
    }
}

fn honest(cores: u16) -> Machine {
    Machine {
        // Exactly its claimed rate: the worst honest case (a real core does about twice).
        true_flops: claimed_flops(&hardware(cores, 0)),
        max_load: 3.0,
        running: true,
    }
}

#[test]
fn honest_providers_under_load_are_never_docked_over_thousands_of_draws() {
    let mut sim = Sim::new(40, params(), 7);
    for i in 0..40 {
        sim.provider(i, hardware(1, 0), honest(1));
    }
    let mut draws = 0;
    while draws < 2_000 {
        let out = sim.step();
        draws += out
            .events
            .iter()
            .filter(|e| matches!(e, Event::ChallengeDrawn { .. }))
            .count();
    }
    // Let every open challenge finish.
    for _ in 0..200 {
        sim.step();
    }
    let mut passed = 0;
    for i in 0..40 {
        for e in sim.outcomes(i) {
            assert!(
                matches!(e, Event::ChallengePassed { .. }),
                "honest provider {i}: {e:?}"
            );
            passed += 1;
        }
        let r = sim.record(i);
        assert_eq!(sim.stake(i), STAKE, "provider {i} docked: {r:?}");
        assert!(r.online);
        assert_eq!(r.challenges_missed + r.below_claim, 0);
        assert_eq!(
            r.challenges_answered,
            r.challenges_drawn - u64::from(sim.net.state.challenge(&sim.net.id(i)).is_some())
        );
        assert!(r.proven_score_bps >= 3_000, "{r:?}");
    }
    assert!(passed >= 2_000, "{passed} answers");
}

#[test]
fn spoofers_are_docked_and_marked_offline_every_time_they_are_drawn() {
    let mut sim = Sim::new(12, params(), 11);
    // Honest company, so the draw rate is that of a real network.
    for i in 0..8 {
        sim.provider(i, hardware(2, 0), honest(2));
    }
    // Claims 64 cores, has 2: far too slow to make the deadline.
    let cores = |n: u64| Machine {
        true_flops: n * REAL_CORE_FLOPS,
        max_load: 1.0,
        running: true,
    };
    sim.provider(8, hardware(64, 0), cores(2));
    // Claims 8 GPUs on a 2-core box.
    sim.provider(9, hardware(2, 8), cores(2));
    // Claims 64 cores, has 6 (a fifth of the claim): answers in time, below the claim.
    sim.provider(10, hardware(64, 0), cores(6));
    // Claims 8 GPUs on a 10-core box (a fifth of the claim).
    sim.provider(11, hardware(10, 8), cores(10));
    for _ in 0..200 {
        sim.step();
    }
    for i in 8..12 {
        let r = sim.record(i);
        let outcomes = sim.outcomes(i);
        assert!(!outcomes.is_empty(), "spoofer {i} never judged: {r:?}");
        for (k, e) in outcomes.iter().enumerate() {
            match (i, e) {
                // Docked at the first miss; offline after it, later misses only count.
                (8 | 9, Event::ChallengeMissed { reason, docked, .. }) => {
                    assert_eq!(*reason, MissReason::NotAnswered);
                    assert_eq!(docked.is_zero(), k > 0, "{e:?}");
                }
                (
                    10 | 11,
                    Event::ChallengeBelowClaim {
                        docked, score_bps, ..
                    },
                ) => {
                    assert!(*score_bps < 2_500 && !docked.is_zero(), "{e:?}");
                }
                _ => panic!("spoofer {i}: {e:?}"),
            }
        }
        assert!(!r.online, "spoofer {i} still routed: {r:?}");
        // Each docking took 1% of its stake: every answer below the claim, the first miss.
        let dockings = if i >= 10 { outcomes.len() } else { 1 };
        let mut expected = STAKE;
        for _ in 0..dockings {
            expected = expected.checked_sub(expected.bps(100).unwrap()).unwrap();
        }
        assert_eq!(sim.stake(i), expected);
        assert_eq!(r.challenges_missed + r.below_claim, outcomes.len() as u64);
    }
    // Records, open challenges and the draw list survive a restart (reload from entries).
    let reloaded = orrery_ledger::State::from_entries(sim.net.state.entries()).unwrap();
    assert_eq!(reloaded.root(), sim.net.state.root());
    assert_eq!(reloaded.draw_list(), sim.net.state.draw_list());
    assert_eq!(reloaded.challenges(), sim.net.state.challenges());
    for i in 0..8 {
        assert_eq!(sim.stake(i), STAKE);
        assert!(sim.record(i).online);
    }
}

/// A chain where only requests draw challenges, with providers 0..n claiming one core each.
fn quiet(n: usize) -> Sim {
    let mut sim = Sim::new(
        n + 1,
        Params {
            challenges_per_block: 0,
            ..params()
        },
        3,
    );
    for i in 0..n {
        sim.provider(i, hardware(1, 0), honest(1));
    }
    sim
}

/// Request a challenge for `i` (a block) and have it drawn (the next block); returns it.
fn requested(sim: &mut Sim, i: usize) -> orrery_ledger::entries::Challenge {
    let r = sim.net.tx(i, TxBody::RequestChallenge {});
    let out = sim.block(vec![r], 1);
    assert!(out.receipts[0].is_ok(), "{:?}", out.receipts[0]);
    sim.duties.remove(&i);
    let out = sim.block(vec![], 1);
    assert!(out.events.iter().any(|e| matches!(
        e,
        Event::ChallengeDrawn { provider, requested: true, .. } if *provider == sim.net.id(i)
    )));
    sim.duties.remove(&i);
    *sim.net.state.challenge(&sim.net.id(i)).unwrap()
}

/// Apply `tx` alone (`dt_ms` after the last block): refused with `expected`, and nothing
/// changed but the sender's nonce and the header.
fn refused(sim: &mut Sim, tx: SignedTx, dt_ms: u64, expected: impl Fn(&TxError) -> bool) {
    let providers = sim.net.state.providers().clone();
    let challenges = sim.net.state.challenges().clone();
    let totals = *sim.net.state.totals();
    let out = sim.block(vec![tx], dt_ms);
    let err = out.receipts[0]
        .outcome
        .as_ref()
        .expect_err("must be refused");
    assert!(expected(err), "unexpected error: {err}");
    assert_eq!(sim.net.state.providers(), &providers, "providers changed");
    assert_eq!(
        sim.net.state.challenges(),
        &challenges,
        "challenges changed"
    );
    assert_eq!(sim.net.state.totals(), &totals, "totals changed");
}

fn answer_body(c: &orrery_ledger::entries::Challenge, root: Hash) -> TxBody {
    TxBody::AnswerChallenge {
        drawn_at: c.drawn_at,
        rows: c.rows,
        root,
    }
}

/// The honest opening of `i`'s challenge, once its rows are drawn.
fn opening(sim: &Sim, i: usize, tree: &MerkleTree) -> ChallengeRows {
    let c = sim.net.state.challenge(&sim.net.id(i)).unwrap();
    let ChallengePhase::Opening { open_seed, .. } = c.phase else {
        panic!("not opening: {c:?}");
    };
    let n = u64::from(sim.net.state.params().challenge_open_rows);
    let idx = open_indices(&c.seed, &open_seed, c.rows, n);
    open(&c.seed, c.dim as usize, tree, &idx).unwrap()
}

#[test]
fn bad_answers_and_openings_are_refused_with_clear_errors_and_change_nothing() {
    let mut sim = quiet(2);
    let c = requested(&mut sim, 0);
    let tree = solve(&c.seed, c.dim as usize, c.rows);
    // Another provider answering this challenge: it has none.
    let tx = sim.net.tx(1, answer_body(&c, tree.root()));
    refused(
        &mut sim,
        tx,
        1,
        |e| matches!(e, TxError::NoSuchChallenge { provider, .. } if *provider == sim_id(1)),
    );
    // A height that is not the challenge's.
    let wrong_height = TxBody::AnswerChallenge {
        drawn_at: c.drawn_at + 1,
        rows: c.rows,
        root: tree.root(),
    };
    let tx = sim.net.tx(0, wrong_height);
    refused(&mut sim, tx, 1, |e| {
        matches!(e, TxError::NoSuchChallenge { .. })
    });
    // Another number of rows.
    let tx = sim.net.tx(
        0,
        TxBody::AnswerChallenge {
            drawn_at: c.drawn_at,
            rows: c.rows - 1,
            root: tree.root(),
        },
    );
    refused(
        &mut sim,
        tx,
        1,
        |e| matches!(e, TxError::WrongChallengeRows { expected, .. } if *expected == c.rows),
    );
    // Opening before answering.
    let early = open(&c.seed, c.dim as usize, &tree, &[0]).unwrap();
    let tx = sim.net.tx(
        0,
        TxBody::OpenChallenge {
            drawn_at: c.drawn_at,
            rows: early.clone(),
        },
    );
    refused(&mut sim, tx, 1, |e| {
        matches!(e, TxError::NotOpenable { .. })
    });

    // The answer, then a replay of it in the same block: refused, already answered.
    let answer = sim.net.tx(0, answer_body(&c, tree.root()));
    let replay = sim.net.tx_at(0, 1, answer_body(&c, tree.root()));
    let out = sim.block(vec![answer, replay], 1);
    assert!(out.receipts[0].is_ok(), "{:?}", out.receipts[0]);
    let err = out.receipts[1].outcome.as_ref().unwrap_err();
    assert!(matches!(err, TxError::AlreadyAnswered { .. }), "{err}");
    assert!(err.to_string().contains("already answered"));
    // Opening in the answer's own block's successor is allowed, not before: the rows are
    // drawn by the next block's seed, so one more block.
    sim.block(vec![], 1);
    let honest_rows = opening(&sim, 0, &tree);

    // The state with an opening pending survives a reload.
    let reloaded = orrery_ledger::State::from_entries(sim.net.state.entries()).unwrap();
    assert_eq!(reloaded.root(), sim.net.state.root());
    assert_eq!(reloaded.challenges(), sim.net.state.challenges());

    // Wrong indices: the rows are not the drawn ones.
    let wrong_idx = open(&c.seed, c.dim as usize, &tree, &[0, 1]).unwrap();
    let tx = sim.net.tx(
        0,
        TxBody::OpenChallenge {
            drawn_at: c.drawn_at,
            rows: wrong_idx,
        },
    );
    refused(&mut sim, tx, 1, |e| {
        matches!(e, TxError::WrongOpenedRows { .. })
    });
    // A malformed matrix: a short row, then a value no product can hold.
    for corrupt in [
        (|v: &mut Vec<u32>| {
            v.pop();
        }) as fn(&mut Vec<u32>),
        |v: &mut Vec<u32>| v[3] = 1 << 24,
    ] {
        let mut rows = honest_rows.clone().into_inner();
        let mut values = rows[0].values.clone().into_inner();
        corrupt(&mut values);
        rows[0].values = BoundedVec::new(values).unwrap();
        let tx = sim.net.tx(
            0,
            TxBody::OpenChallenge {
                drawn_at: c.drawn_at,
                rows: BoundedVec::new(rows).unwrap(),
            },
        );
        refused(
            &mut sim,
            tx,
            1,
            |e| matches!(e, TxError::MalformedMatrix(m) if m.contains("malformed matrix")),
        );
    }
    // A bad proof: two rows' proofs swapped.
    let mut rows = honest_rows.clone().into_inner();
    let p0 = rows[0].proof.clone();
    rows[0].proof = rows[1].proof.clone();
    rows[1].proof = p0;
    let tx = sim.net.tx(
        0,
        TxBody::OpenChallenge {
            drawn_at: c.drawn_at,
            rows: BoundedVec::new(rows).unwrap(),
        },
    );
    refused(&mut sim, tx, 1, |e| {
        matches!(e, TxError::BadChallengeProof { .. })
    });

    // The honest opening passes; a replay of it then finds no challenge.
    let open_tx = sim.net.tx(
        0,
        TxBody::OpenChallenge {
            drawn_at: c.drawn_at,
            rows: honest_rows.clone(),
        },
    );
    let out = sim.block(vec![open_tx], 1);
    let events = out.receipts[0].outcome.as_ref().unwrap();
    assert!(
        matches!(events[0], Event::ChallengePassed { .. }),
        "{events:?}"
    );
    let tx = sim.net.tx(
        0,
        TxBody::OpenChallenge {
            drawn_at: c.drawn_at,
            rows: honest_rows,
        },
    );
    refused(&mut sim, tx, 1, |e| {
        matches!(e, TxError::NoSuchChallenge { .. })
    });
    let r = sim.record(0);
    assert_eq!((r.challenges_drawn, r.challenges_answered), (1, 1));
    assert!(r.online && r.proven_flops > 0 && r.proven_score_bps > 0);
    assert_eq!(sim.stake(0), STAKE);
}

fn sim_id(i: usize) -> AccountId {
    orrery_types::crypto::Keypair::from_seed(i as u64).account()
}

#[test]
fn an_answer_after_the_deadline_is_refused_and_the_challenge_is_then_missed() {
    let mut sim = quiet(1);
    let c = requested(&mut sim, 0);
    let tree = solve(&c.seed, c.dim as usize, c.rows);
    let deadline_ms = sim.net.state.params().challenge_deadline_ms();
    // One millisecond past the deadline in block time.
    let late = deadline_ms + 1 - (sim.net.state.globals().time_ms - c.drawn_ms);
    let tx = sim.net.tx(0, answer_body(&c, tree.root()));
    refused(&mut sim, tx, late, |e| {
        matches!(e, TxError::ChallengeAfterDeadline { deadline_ms: d, .. } if *d == deadline_ms)
            && e.to_string().contains("after the deadline")
    });
    // Then the window in blocks closes: missed, docked exactly the penalty, burned.
    let burned = sim.net.state.globals().burned;
    while sim.net.state.challenge(&sim.net.id(0)).is_some() {
        sim.block(vec![], 0);
    }
    let penalty = STAKE.bps(100).unwrap();
    assert_eq!(sim.stake(0), STAKE.checked_sub(penalty).unwrap());
    assert_eq!(
        sim.net.state.globals().burned,
        burned.checked_add(penalty).unwrap()
    );
    assert_eq!(
        sim.net.state.height(),
        c.drawn_at + sim.net.state.params().challenge_deadline_blocks
    );
    let r = sim.record(0);
    assert!(!r.online);
    assert_eq!((r.challenges_drawn, r.challenges_missed), (1, 1));
    sim.net.state.audit().unwrap();
}

#[test]
fn a_missed_challenge_burns_exactly_the_penalty_and_an_answer_brings_the_provider_back() {
    let mut sim = quiet(1);
    let burned0 = sim.net.state.globals().burned;
    // Stopped: drawn, never answered.
    let c = requested(&mut sim, 0);
    for _ in 0..sim.net.state.params().challenge_deadline_blocks {
        sim.block(vec![], 1);
    }
    let missed: Vec<&Event> = sim.outcomes(0);
    let penalty = STAKE.bps(100).unwrap();
    assert_eq!(
        missed,
        vec![&Event::ChallengeMissed {
            provider: sim.net.id(0),
            drawn_at: c.drawn_at,
            reason: MissReason::NotAnswered,
            docked: penalty,
        }]
    );
    let after_miss = STAKE.checked_sub(penalty).unwrap();
    assert_eq!(sim.stake(0), after_miss);
    assert!(!sim.record(0).online);

    // Answered but never opened: missed again, but already offline, so not docked again
    // (one penalty per outage).
    let c = requested(&mut sim, 0);
    let tree = solve(&c.seed, c.dim as usize, c.rows);
    let tx = sim.net.tx(0, answer_body(&c, tree.root()));
    assert!(sim.block(vec![tx], 1).receipts[0].is_ok());
    for _ in 0..sim.net.state.params().challenge_open_blocks {
        sim.block(vec![], 1);
    }
    assert!(matches!(
        sim.outcomes(0)[1],
        Event::ChallengeMissed { reason: MissReason::NotOpened, docked, .. } if docked.is_zero()
    ));
    let after_two = after_miss;
    assert_eq!(sim.stake(0), after_two);

    // A wrong answer (every row off by one, committed consistently): docked like a miss.
    let c = requested(&mut sim, 0);
    let b = orrery_types::challenge::b_matrix(&c.seed, c.dim as usize);
    let leaves: Vec<Hash> = (0..c.rows)
        .map(|i| {
            let mut row = orrery_types::challenge::solve_row(
                &b,
                &orrery_types::challenge::a_row(&c.seed, c.dim as usize, i),
            );
            row[0] += 1;
            orrery_types::challenge::row_leaf(i, &row)
        })
        .collect();
    let wrong = MerkleTree::new(&leaves);
    let tx = sim.net.tx(0, answer_body(&c, wrong.root()));
    assert!(sim.block(vec![tx], 1).receipts[0].is_ok());
    sim.block(vec![], 1);
    let mut rows = opening(&sim, 0, &tree_for(&c)).into_inner();
    for r in &mut rows {
        let mut v = r.values.clone().into_inner();
        v[0] += 1;
        r.values = BoundedVec::new(v).unwrap();
        r.proof = wrong.proof(r.index).unwrap();
    }
    let tx = sim.net.tx(
        0,
        TxBody::OpenChallenge {
            drawn_at: c.drawn_at,
            rows: BoundedVec::new(rows).unwrap(),
        },
    );
    let out = sim.block(vec![tx], 1);
    let third = after_two.bps(100).unwrap();
    assert_eq!(
        out.receipts[0].outcome.as_ref().unwrap(),
        &vec![Event::ChallengeMissed {
            provider: sim.net.id(0),
            drawn_at: c.drawn_at,
            reason: MissReason::WrongAnswer,
            docked: third,
        }]
    );
    let after_three = after_two.checked_sub(third).unwrap();
    assert_eq!(sim.stake(0), after_three);
    assert_eq!(sim.record(0).challenges_wrong, 1);

    // Restarted: it asks for a challenge and answers it; it is online again.
    let c = requested(&mut sim, 0);
    let tree = solve(&c.seed, c.dim as usize, c.rows);
    let tx = sim.net.tx(0, answer_body(&c, tree.root()));
    assert!(sim.block(vec![tx], 2).receipts[0].is_ok());
    sim.block(vec![], 1);
    let rows = opening(&sim, 0, &tree);
    let tx = sim.net.tx(
        0,
        TxBody::OpenChallenge {
            drawn_at: c.drawn_at,
            rows,
        },
    );
    let out = sim.block(vec![tx], 1);
    assert!(matches!(
        out.receipts[0].outcome.as_ref().unwrap()[0],
        Event::ChallengePassed { .. }
    ));
    let r = sim.record(0);
    assert!(r.online);
    assert_eq!(
        (
            r.challenges_drawn,
            r.challenges_answered,
            r.challenges_missed
        ),
        (4, 1, 3)
    );
    assert_eq!(r.uptime_bps(), 2_500);
    assert_eq!(sim.stake(0), after_three, "a passing answer costs nothing");
    // Every docked unit was burned.
    let docked = STAKE.checked_sub(after_three).unwrap();
    assert_eq!(
        sim.net.state.globals().burned,
        burned0.checked_add(docked).unwrap()
    );
}

fn tree_for(c: &orrery_ledger::entries::Challenge) -> MerkleTree {
    solve(&c.seed, c.dim as usize, c.rows)
}

#[test]
fn only_bonded_providers_are_drawn() {
    let mut sim = Sim::new(5, params(), 5);
    // 0: registered, never bonded. 1: bonded. 2: bonded, then unbonds everything.
    // 3: never registered. None of them answers.
    let register = sim
        .net
        .tx(0, TxBody::RegisterProvider(offer_of(hardware(1, 0))));
    sim.block(vec![register], 1);
    for i in [1, 2] {
        sim.provider(
            i,
            hardware(1, 0),
            Machine {
                running: false,
                ..honest(1)
            },
        );
    }
    let unbond = sim.net.tx(2, TxBody::Unbond { amount: STAKE });
    let out = sim.block(vec![unbond], 1);
    assert!(out.receipts[0].is_ok());
    let unbonded_at = sim.net.state.height();
    assert_eq!(sim.net.state.draw_list(), &[sim.net.id(1)]);
    for _ in 0..300 {
        sim.block(vec![], 1);
    }
    for e in &sim.events {
        if let Event::ChallengeDrawn {
            provider, drawn_at, ..
        } = e
        {
            assert!(
                *provider == sim.net.id(1)
                    || (*provider == sim.net.id(2) && *drawn_at <= unbonded_at),
                "{e:?}"
            );
        }
    }
    assert!(sim.record(1).challenges_drawn >= 3);
    assert_eq!(sim.record(0).challenges_drawn, 0);
    // Asking is refused too.
    let tx = sim.net.tx(0, TxBody::RequestChallenge {});
    refused(&mut sim, tx, 1, |e| matches!(e, TxError::NotBonded(_)));
    let tx = sim.net.tx(3, TxBody::RequestChallenge {});
    refused(&mut sim, tx, 1, |e| matches!(e, TxError::NotAProvider(_)));
    // A provider with a challenge open cannot ask for another.
    let tx = sim.net.tx(1, TxBody::RequestChallenge {});
    if sim.net.state.challenge(&sim.net.id(1)).is_some() {
        refused(&mut sim, tx, 1, |e| {
            matches!(e, TxError::ChallengeOpen { .. })
        });
    }
}

/// A provider offline after a missed challenge has left checking as well as routing: over
/// twenty redundantly checked leases it is never drawn, while the online providers are.
#[test]
fn an_offline_provider_is_never_drawn_to_check() {
    use orrery_types::resources::{ResourceRequest, Usage};
    use orrery_types::tx::{LeaseTerms, Verification, result_seal};
    let mut sim = quiet(4);
    let requester = 4;
    requested(&mut sim, 1);
    for _ in 0..sim.net.state.params().challenge_deadline_blocks {
        sim.block(vec![], 1);
    }
    assert!(!sim.record(1).online, "provider 1 missed and is offline");
    let offline = sim.net.id(1);
    let mut drawn = std::collections::BTreeSet::new();
    for n in 0..20u64 {
        let open = sim.net.tx(
            requester,
            TxBody::OpenLease {
                provider: sim.net.id(0),
                job: Hash::of(&n.to_be_bytes()),
                terms: LeaseTerms {
                    resources: ResourceRequest {
                        gpus: 0,
                        cpu_cores: 1,
                        ram_gib: 1,
                    },
                    prices: prices(),
                    max_seconds: 60,
                    max_units: 10,
                },
                deadline: sim.net.state.height() + 50,
                verification: Verification::Redundant { k: 3 },
            },
        );
        let out = sim.block(vec![open], 1);
        assert!(out.receipts[0].is_ok(), "{:?}", out.receipts[0]);
        let lease = sim.net.state.leases().keys().copied().max().unwrap();
        let start = sim.net.tx(0, TxBody::StartLease { lease });
        assert!(sim.block(vec![start], 1).receipts[0].is_ok());
        let usage = Usage {
            seconds: 1,
            units: 1,
        };
        let c = claim().with_units(usage.units);
        let commit = sim.net.tx(
            0,
            TxBody::CommitResult {
                lease,
                seal: result_seal(lease, &sim.net.id(0), &c),
                usage,
            },
        );
        assert!(sim.block(vec![commit], 1).receipts[0].is_ok());
        let out = sim.block(vec![], 1);
        let verifiers = out
            .events
            .iter()
            .find_map(|e| match e {
                Event::CheckDrawn {
                    lease: l,
                    verifiers,
                    unfilled,
                    ..
                } if *l == lease => Some((verifiers.clone(), *unfilled)),
                _ => None,
            })
            .expect("the check is drawn");
        assert!(
            !verifiers.0.contains(&offline),
            "lease {lease}: {verifiers:?}"
        );
        assert_eq!(verifiers.0.len(), 2, "the two online providers check it");
        drawn.extend(verifiers.0);
    }
    assert_eq!(drawn.len(), 2);
}
