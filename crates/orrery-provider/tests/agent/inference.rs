//! Inference through the real ledger: agents serving the shipped genesis-gpt2 answer requests
//! over HTTP, are paid by vouchers, settle batches, and check each other. An honest provider's
//! batch is paid without a slash; a provider serving other weights than it claims
//! (`Cheat::WrongModel`) is caught by honest checkers and refunded to the key.

use super::{config, hardware, ledger::LedgerChain};
use orrery_ledger::entries::{BatchPhase, CheckOutcome};
use orrery_ledger::{Event, Params};
use orrery_provider::Worker;
use orrery_provider::config::{Cheat, ServeConfig, ServedModelConfig};
use orrery_provider::serve::{Serving, http};
use orrery_types::amount::Amount;
use orrery_types::crypto::Keypair;
use orrery_types::inference::{
    ApiKey, InferenceRequest, InferenceTask, Sampling, SignedResponse, Voucher, VoucherDelivery,
};
use orrery_types::tx::{ChainId, TxBody};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

fn genesis_gpt2() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/genesis-gpt2")
}

fn serve_config() -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".into(),
        threads: 1,
        max_concurrent: 2,
        settle_every_blocks: 2,
        max_batch: 8,
        models: vec![ServedModelConfig {
            name: "genesis-gpt2".into(),
            dir: genesis_gpt2(),
            price_in: Amount::orr(1),
            price_out: Amount::orr(2),
            sample_bps: 10_000,
        }],
    }
}

struct Agent {
    worker: Worker<LedgerChain>,
    url: String,
}

fn agent(chain: &LedgerChain, seed: u64, data: &std::path::Path, cheat: Cheat) -> Agent {
    let mut cfg = config(seed, data, cheat);
    cfg.serve = Some(serve_config());
    let offer = cfg.offer(hardware()).unwrap();
    let mut worker =
        Worker::new(&cfg, offer, chain.clone(), Arc::new(AtomicBool::new(false))).unwrap();
    let serving = Arc::new(
        Serving::load(
            &serve_config(),
            cfg.keypair().unwrap(),
            cheat,
            &cfg.data_dir,
            None,
        )
        .unwrap(),
    );
    let server = http::start(serving.clone(), "127.0.0.1:0").unwrap();
    let url = format!("http://{}", server.addr());
    worker.serve(serving, Some(server));
    Agent { worker, url }
}

/// Tick every agent (waiting for their re-executions) and make a block, `n` times.
fn rounds(chain: &LedgerChain, agents: &mut [Agent], n: usize) {
    for _ in 0..n {
        for a in agents.iter_mut() {
            a.worker.tick().unwrap();
            a.worker.wait_for_checks(Duration::from_secs(60));
            a.worker.tick().unwrap();
        }
        chain.block();
    }
}

/// Serve `n` requests from `provider` and pay each with the key's next voucher.
fn serve_and_pay(provider: &Agent, key: &ApiKey, n: u64) -> Vec<SignedResponse> {
    let provider_id = provider.worker.account();
    let mut total = Amount::ZERO;
    (1..=n)
        .map(|i| {
            let req = InferenceRequest {
                model: orrery_ml::infer::ModelFiles::load_dir(&genesis_gpt2())
                    .unwrap()
                    .weights_hash(),
                key: key.id(),
                channel: 1,
                nonce: i,
                task: InferenceTask::Completion {
                    prompt: "In the beginning".into(),
                    sampling: Sampling {
                        max_tokens: 12,
                        temperature: 0.7,
                        top_p: 0.95,
                        seed: i,
                        stop: Vec::new(),
                    },
                },
            };
            let r: SignedResponse = ureq::post(&format!("{}/infer", provider.url))
                .send(&req.canonical_bytes()[..])
                .unwrap()
                .body_mut()
                .read_json()
                .unwrap();
            assert!(r.verify());
            total = total.checked_add(r.commitment.charged).unwrap();
            let voucher = Voucher {
                chain_id: ChainId::new(super::ledger::CHAIN).unwrap(),
                key: key.keypair().public_key().clone(),
                provider: provider_id,
                channel: 1,
                total,
                responses: i,
            }
            .sign(key.keypair());
            let delivery = VoucherDelivery {
                voucher,
                leaf: r.commitment.leaf(),
            };
            ureq::post(&format!("{}/voucher", provider.url))
                .send_json(&delivery)
                .unwrap();
            r
        })
        .collect()
}

/// Three agents serving genesis-gpt2 (`cheat` for the first), a funded API key; serve three
/// requests from the first, then play until its batch is released. Returns the chain, the
/// agents and the batch's check outcomes.
fn game(cheat: Cheat) -> (LedgerChain, Vec<Agent>, Vec<CheckOutcome>) {
    let data = tempfile::tempdir().unwrap();
    let chain = LedgerChain::new(10, Params::default());
    let mut agents: Vec<Agent> = [(1, cheat), (2, Cheat::None), (3, Cheat::None)]
        .into_iter()
        .map(|(seed, c)| agent(&chain, seed, data.path(), c))
        .collect();
    // Register, bond, offer the model.
    rounds(&chain, &mut agents, 4);
    let me = agents[0].worker.account();
    assert_eq!(
        chain.with(|n| n.state.model_offers(&me).len()),
        1,
        "the model is offered"
    );
    let key = ApiKey::from_secret(&[9; 32]).unwrap();
    chain.submit_from(
        &Keypair::from_seed(5),
        TxBody::CreateInferenceKey {
            key: key.id(),
            limit: Amount::orr(1_000),
            deposit: Amount::orr(1_000),
        },
    );
    chain.block();
    serve_and_pay(&agents[0], &key, 3);
    for _ in 0..80 {
        rounds(&chain, &mut agents, 1);
        let done = chain.with(|n| {
            n.state
                .inference_batches()
                .next()
                .is_some_and(|(_, b)| b.phase == BatchPhase::Released)
        });
        if done {
            break;
        }
    }
    let outcomes = chain.with(|n| {
        let (_, b) = n
            .state
            .inference_batches()
            .next()
            .expect("a batch was settled");
        assert_eq!(b.phase, BatchPhase::Released, "the batch's checks ended");
        assert_eq!(b.responses, 3);
        b.checks.iter().filter_map(|c| c.outcome).collect()
    });
    (chain, agents, outcomes)
}

#[test]
fn an_honest_provider_is_checked_and_paid() {
    let (chain, agents, outcomes) = game(Cheat::None);
    assert!(!outcomes.is_empty(), "responses were drawn for checks");
    assert!(
        outcomes.iter().all(|o| *o == CheckOutcome::Agreed),
        "{outcomes:?}"
    );
    assert_eq!(slashed(&chain), Vec::new());
    // Every response was checked (sample_bps = 10000), and the provider pays its own audits:
    // each agreeing checker got the response's price; nothing went back to the key.
    let (refunded, checkers_paid) = chain.with(|n| {
        let resolved = n.events.iter().filter_map(|e| match e {
            Event::InferenceCheckResolved {
                refunded,
                checkers_paid,
                ..
            } => Some((*refunded, *checkers_paid)),
            _ => None,
        });
        resolved.fold((Amount::ZERO, Amount::ZERO), |(r, c), (r2, c2)| {
            (r.checked_add(r2).unwrap(), c.checked_add(c2).unwrap())
        })
    });
    assert_eq!(refunded, Amount::ZERO);
    assert!(checkers_paid > Amount::ZERO, "the checkers were paid");
    assert_eq!(
        chain.count_events(|e| matches!(e, Event::InferenceReleased { .. })),
        1
    );
    let s = agents[0].worker.snapshot().inference.unwrap();
    assert_eq!(
        (s.serve.served, s.batches_settled, s.responses_settled),
        (3, 1, 3)
    );
    assert_eq!(s.responses_opened as usize, outcomes.len());
    let checked: u64 = agents[1..]
        .iter()
        .map(|a| a.worker.snapshot().inference.unwrap().checks_revealed)
        .sum();
    assert!(checked >= outcomes.len() as u64, "honest checkers revealed");
}

#[test]
fn a_provider_serving_other_weights_is_caught_by_the_checkers() {
    let (chain, agents, outcomes) = game(Cheat::WrongModel);
    let cheater = agents[0].worker.account();
    assert!(
        outcomes.contains(&CheckOutcome::ProviderCaught),
        "{outcomes:?}"
    );
    let slashed = slashed(&chain);
    assert!(slashed.contains(&cheater), "the cheater is slashed");
    assert!(
        slashed.iter().all(|s| *s == cheater),
        "no honest checker is slashed: {slashed:?}"
    );
    let refunded = chain.with(|n| n.state.inference_batches().next().unwrap().1.refunded);
    assert!(refunded > Amount::ZERO, "the key got its money back");
}

fn slashed(chain: &LedgerChain) -> Vec<orrery_types::crypto::AccountId> {
    chain.with(|n| {
        n.events
            .iter()
            .filter_map(|e| match e {
                Event::InferenceSlashed { party, .. } => Some(*party),
                _ => None,
            })
            .collect()
    })
}
