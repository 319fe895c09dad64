//! The agent's challenge duty against a real ledger: drawn, it solves on its own thread,
//! answers, opens the drawn rows and passes Freivalds' test; stopped past a deadline, it is
//! docked and offline, and when it runs again it asks for a challenge and comes back.

use super::ledger::LedgerChain;
use orrery_ledger::Params;
use orrery_provider::actor::Worker;
use orrery_provider::config::{Cheat, ProviderConfig};
use orrery_types::amount::Amount;
use orrery_types::resources::Hardware;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Draws every block, small challenges: a one-core claim is 32 rows of 64 (the floor is the
/// open rows), and the 1 s blocks of the test chain leave a generous deadline.
fn params() -> Params {
    Params {
        challenges_per_block: 1,
        challenge_every_blocks: 1,
        challenge_dim: 64,
        challenge_open_rows: 8,
        challenge_target_ms: 1,
        challenge_latency_ms: 10_000,
        challenge_deadline_blocks: 6,
        challenge_open_blocks: 6,
        ..Params::default()
    }
}

fn one_core() -> Hardware {
    Hardware {
        gpu: None,
        cpu_cores: 1,
        ram_gib: 4,
    }
}

fn agent(chain: &LedgerChain, data: &std::path::Path) -> Worker<LedgerChain> {
    let hardware = one_core();
    let cfg = ProviderConfig {
        stake: Some(
            params()
                .min_stake(&hardware)
                .unwrap()
                .checked_add(Amount::orr(100))
                .unwrap(),
        ),
        hardware: Some(hardware.clone()),
        ..super::config(0, data, Cheat::None)
    };
    let offer = cfg.offer(hardware).unwrap();
    Worker::new(&cfg, offer, chain.clone(), Arc::new(AtomicBool::new(false))).unwrap()
}

/// Tick, give the solver a moment (it runs on its own thread) and tick again, then a block.
fn round(chain: &LedgerChain, a: &mut Worker<LedgerChain>) {
    a.tick().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    a.tick().unwrap();
    chain.block();
}

#[test]
fn a_drawn_agent_answers_and_opens_its_challenges_and_is_never_docked() {
    let dir = tempfile::tempdir().unwrap();
    let chain = LedgerChain::with_challenges(2, params());
    let mut a = agent(&chain, dir.path());
    let me = a.account();
    for _ in 0..40 {
        round(&chain, &mut a);
    }
    let (proof, stake) = chain.with(|n| {
        let p = n.state.provider(&me).unwrap();
        (p.proof, p.stake)
    });
    assert!(proof.challenges_answered >= 3, "{proof:?}");
    assert_eq!(
        (
            proof.challenges_missed,
            proof.challenges_wrong,
            proof.below_claim
        ),
        (0, 0, 0),
        "{proof:?}"
    );
    assert!(proof.online && proof.proven_score_bps > 0, "{proof:?}");
    let bonded = params()
        .min_stake(&one_core())
        .unwrap()
        .checked_add(Amount::orr(100))
        .unwrap();
    assert_eq!(stake, bonded, "never docked");
    let s = a.snapshot().challenges;
    assert!(s.answered >= 3 && s.opened >= 3, "{s:?}");
}

#[test]
fn a_stopped_agent_misses_and_when_it_runs_again_asks_for_a_challenge_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    // The seed draws only every 10th block, so coming back within the 10 blocks after the
    // miss takes a challenge the agent asked for.
    let chain = LedgerChain::with_challenges(
        2,
        Params {
            challenge_every_blocks: 10,
            ..params()
        },
    );
    let mut a = agent(&chain, dir.path());
    let me = a.account();
    let proof = |chain: &LedgerChain| chain.with(|n| n.state.provider(&me).map(|p| p.proof));
    for _ in 0..5 {
        round(&chain, &mut a);
    }
    assert!(proof(&chain).is_some(), "registered");
    // The agent stops: blocks go on without it until it has missed.
    for _ in 0..30 {
        chain.block();
        if proof(&chain).unwrap().challenges_missed > 0 {
            break;
        }
    }
    let missed = proof(&chain).unwrap();
    assert!(
        missed.challenges_missed >= 1 && !missed.online,
        "{missed:?}"
    );
    // Running again: offline with nothing open, it asks, is drawn, answers and is online.
    for _ in 0..8 {
        round(&chain, &mut a);
        let p = proof(&chain).unwrap();
        if p.online && p.challenges_answered > missed.challenges_answered {
            break;
        }
    }
    let back = proof(&chain).unwrap();
    assert!(back.online, "{back:?}");
    assert!(
        back.challenges_answered > missed.challenges_answered,
        "{back:?}"
    );
    assert!(
        a.snapshot().challenges.requested >= 1 || back.challenges_drawn > missed.challenges_drawn
    );
}
