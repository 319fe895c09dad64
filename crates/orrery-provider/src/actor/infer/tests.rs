//! The inference duties driven tick by tick against a fake chain, with the real serving lane
//! over HTTP: offer, cut, publish, settle, open, and check (seal then reveal).

use crate::actor::Worker;
use crate::chain::{
    Chain, ChainError, ChainHead, CheckPhase, CheckRole, InferenceCheck, ProviderRecord,
};
use crate::config::{Cheat, ProviderConfig};
use crate::decide::{Head, LeaseInfo};
use crate::serve::http;
use crate::serve::tests::{chain_id, completion, serving, voucher, write_model};
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::inference::{BatchFile, SignedResponse, VoucherDelivery, check_seal};
use orrery_types::merkle::merkle_root;
use orrery_types::resources::Hardware;
use orrery_types::tx::{LeaseId, ProviderOffer, SignedTx, TxBody};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Net {
    height: u64,
    offer: Option<ProviderOffer>,
    txs: Vec<TxBody>,
    blobs: BTreeMap<Hash, Vec<u8>>,
    checks: Vec<InferenceCheck>,
}

/// Includes every transaction at once; holds blobs; serves the checks the test sets.
#[derive(Clone, Default)]
struct FakeChain(Arc<Mutex<Net>>);

impl FakeChain {
    fn with<R>(&self, f: impl FnOnce(&mut Net) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }

    fn sent(&self, kind: &str) -> Vec<TxBody> {
        self.with(|n| n.txs.iter().filter(|t| t.kind() == kind).cloned().collect())
    }
}

impl Chain for FakeChain {
    fn head(&self) -> Result<ChainHead, ChainError> {
        Ok(ChainHead {
            chain_id: chain_id(),
            head: Head {
                height: self.with(|n| n.height),
                time_ms: 0,
            },
        })
    }
    fn account(&self, _: &AccountId) -> Result<(Amount, u64), ChainError> {
        Ok((Amount::orr(1_000_000), self.with(|n| n.txs.len() as u64)))
    }
    fn provider(&self, _: &AccountId) -> Result<Option<ProviderRecord>, ChainError> {
        Ok(self.with(|n| n.offer.clone()).map(|offer| ProviderRecord {
            offer,
            stake: Amount::orr(300),
            active_leases: 0,
            reputation: Default::default(),
            earned: Amount::ZERO,
        }))
    }
    fn active_leases(&self, _: &AccountId) -> Result<Vec<LeaseInfo>, ChainError> {
        Ok(Vec::new())
    }
    fn provider_leases(&self, _: &AccountId) -> Result<Vec<LeaseInfo>, ChainError> {
        Ok(Vec::new())
    }
    fn lease(&self, _: LeaseId) -> Result<Option<LeaseInfo>, ChainError> {
        Ok(None)
    }
    fn bundle(&self, hash: &Hash) -> Result<Option<Vec<u8>>, ChainError> {
        Ok(self.with(|n| n.blobs.get(hash).cloned()))
    }
    fn put_output(&self, bytes: &[u8]) -> Result<(), ChainError> {
        self.with(|n| n.blobs.insert(Hash::of(bytes), bytes.to_vec()));
        Ok(())
    }
    fn submit(&self, tx: &SignedTx) -> Result<Hash, ChainError> {
        self.with(|n| n.txs.push(tx.tx.body.clone()));
        Ok(tx.hash())
    }
    fn inference_checks(&self, _: &AccountId) -> Result<Vec<InferenceCheck>, ChainError> {
        Ok(self.with(|n| n.checks.clone()))
    }
}

const CONFIG: &str = r#"
node = "http://127.0.0.1:1"
key_seed = 40
data_dir = "unused"
region = "eu-west"
stake = "300"
[prices]
gpu_hour = "2"
cpu_core_hour = "0.05"
ram_gib_hour = "0"
mega_unit = "0.001"
[hardware]
cpu_cores = 16
ram_gib = 64
"#;

struct Rig {
    chain: FakeChain,
    worker: Worker<FakeChain>,
    url: String,
    weights: Hash,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ProviderConfig::from_toml(CONFIG).unwrap();
        config.data_dir = dir.path().join("data");
        let hw = Hardware {
            gpu: None,
            cpu_cores: 16,
            ram_gib: 64,
        };
        let offer = config.offer(hw).unwrap();
        let chain = FakeChain::default();
        chain.with(|n| n.offer = Some(offer.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut worker = Worker::new(&config, offer, chain.clone(), stop).unwrap();
        let serving = serving(&write_model(&dir.path().join("m")), Cheat::None, 2);
        let server = http::start(serving.clone(), "127.0.0.1:0").unwrap();
        let url = format!("http://{}", server.addr());
        let weights = serving.offers()[0].weights;
        worker.serve(serving, Some(server));
        Rig {
            chain,
            worker,
            url,
            weights,
            _dir: dir,
        }
    }

    fn tick_at(&mut self, height: u64) {
        self.chain.with(|n| n.height = height);
        self.worker.tick().unwrap();
    }

    /// Serve and pay response `n` of channel 1 (total so far `total`).
    fn serve_and_pay(&self, n: u64, total: &mut Amount) -> SignedResponse {
        let req = completion(self.weights, n, "settle", 4);
        let resp: SignedResponse = ureq::post(&format!("{}/infer", self.url))
            .send(&req.canonical_bytes()[..])
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        *total = total.checked_add(resp.commitment.charged).unwrap();
        let delivery = VoucherDelivery {
            voucher: voucher(n, *total, 1),
            leaf: resp.commitment.leaf(),
        };
        ureq::post(&format!("{}/voucher", self.url))
            .send_json(&delivery)
            .unwrap();
        resp
    }
}

#[test]
fn the_agent_offers_settles_opens_and_checks() {
    let mut rig = Rig::new();
    rig.tick_at(1);
    let offers = rig.chain.sent("offer_models");
    assert_eq!(offers.len(), 1, "models offered once registered");
    let mut total = Amount::ZERO;
    let served: Vec<SignedResponse> = (1..=4).map(|n| rig.serve_and_pay(n, &mut total)).collect();
    // max_batch = 3: three responses are cut and settled at once, the fourth waits.
    rig.tick_at(2);
    let settles = rig.chain.sent("settle_inference");
    assert_eq!(settles.len(), 1);
    let TxBody::SettleInference {
        voucher,
        model,
        root,
        batch,
    } = &settles[0]
    else {
        unreachable!()
    };
    assert_eq!(*model, rig.weights);
    assert_eq!(
        voucher.voucher.responses, 3,
        "the voucher of the batch's last response"
    );
    let file: BatchFile =
        serde_json::from_slice(&rig.chain.with(|n| n.blobs[batch].clone())).unwrap();
    let leaves: Vec<Hash> = served[..3].iter().map(|r| r.commitment.leaf()).collect();
    assert_eq!(
        file.entries.iter().map(|e| e.leaf).collect::<Vec<_>>(),
        leaves
    );
    assert_eq!(*root, merkle_root(&leaves));
    // The fourth is settled once settle_every_blocks (5) passed since it was first seen.
    rig.tick_at(6);
    assert_eq!(rig.chain.sent("settle_inference").len(), 1);
    rig.tick_at(7);
    let settles = rig.chain.sent("settle_inference");
    assert_eq!(settles.len(), 2);
    let TxBody::SettleInference { batch: second, .. } = &settles[1] else {
        unreachable!()
    };
    let first = *batch;
    // As the batch's provider: open response 1 once the seal phase closed.
    let weights = rig.weights;
    let check = |role, phase, file, batch, index| InferenceCheck {
        batch,
        index,
        round: 0,
        role,
        phase,
        seal_deadline: 20,
        reveal_deadline: 40,
        batch_file: file,
        model: weights,
        sealed: false,
        revealed: false,
        opened: false,
    };
    let provider_check = check(CheckRole::Provider, CheckPhase::Reveal, first, 1, 1);
    rig.chain.with(|n| n.checks = vec![provider_check]);
    rig.tick_at(21);
    let opens = rig.chain.sent("open_inference_response");
    let TxBody::OpenInferenceResponse {
        commitment, proof, ..
    } = &opens[0]
    else {
        panic!("an opening: {opens:?}")
    };
    assert_eq!(*commitment, served[1].commitment);
    assert!(proof.verify(root, &commitment.leaf()));
    // As a drawn checker of the second batch: re-execute, seal, then reveal.
    let drawn = check(CheckRole::Checker, CheckPhase::Seal, *second, 2, 0);
    rig.chain.with(|n| n.checks = vec![drawn.clone()]);
    rig.tick_at(22);
    for _ in 0..200 {
        if !rig.chain.sent("seal_inference_check").is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        rig.tick_at(22);
    }
    let c = &served[3].commitment;
    let me = rig.worker.account();
    let seals = rig.chain.sent("seal_inference_check");
    assert_eq!(
        seals,
        vec![TxBody::SealInferenceCheck {
            batch: 2,
            index: 0,
            seal: check_seal(2, 0, &me, &c.request, &c.output),
        }]
    );
    let reveal = InferenceCheck {
        sealed: true,
        phase: CheckPhase::Reveal,
        ..drawn
    };
    rig.chain.with(|n| n.checks = vec![reveal]);
    rig.tick_at(30);
    assert_eq!(
        rig.chain.sent("reveal_inference_check"),
        vec![TxBody::RevealInferenceCheck {
            batch: 2,
            index: 0,
            request: c.request,
            output: c.output,
        }]
    );
    let s = rig.worker.snapshot().inference.expect("serving");
    assert_eq!((s.serve.served, s.serve.vouchers), (4, 4));
    assert_eq!((s.batches_settled, s.responses_settled), (2, 4));
    assert_eq!(s.settled_amount, total);
    assert_eq!(
        (s.checks_sealed, s.checks_revealed, s.responses_opened),
        (1, 1, 1)
    );
    assert_eq!(s.pending_responses, 0);
}
