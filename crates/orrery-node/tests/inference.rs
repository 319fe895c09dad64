//! The inference read API and the gateway over a node with a real ledger: providers offer a
//! model, a key is created, the gateway serves a completion through an in-process provider,
//! the provider settles the voucher, and the batch's check shows up as a duty of its checker
//! and its provider.

mod common;
#[path = "gateway/fakes.rs"]
#[allow(dead_code)]
mod fakes;

use common::{TestChain, TestNode, config, keys, register_and_bond, sign};
use orrery_client::inference::CheckRole;
use orrery_types::amount::Amount;
use orrery_types::codec::Text;
use orrery_types::inference::{ApiKey, ModelKind};
use orrery_types::merkle::MerkleTree;
use orrery_types::tx::{ModelOffers, TxBody};
use std::time::Duration;

const GPT: &str = "genesis-gpt2";

#[test]
fn a_served_response_settles_into_a_batch_whose_check_is_listed_for_both_parties() {
    let ks = keys(4);
    let (p1, p2, owner) = (&ks[0], &ks[1], &ks[2]);
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestNode::start(config(dir.path()), TestChain::new(&ks));
    let provider = fakes::Provider::new(
        0,
        fakes::offer(GPT, ModelKind::Generation, 1_000_000, 2_000_000),
        fakes::Behaviour::Honest,
    );
    let endpoint = t.rt.block_on(fakes::serve(provider.clone()));
    // p1 serves at the fake's endpoint; p2 offers the same weights dearer (so it is the checker).
    let mut offer1 = common::offer();
    offer1.endpoint = Text::new(endpoint).unwrap();
    t.client
        .submit(&sign(p1, 0, TxBody::RegisterProvider(offer1)))
        .unwrap();
    t.client
        .submit(&sign(
            p1,
            1,
            TxBody::Bond {
                amount: Amount::orr(2_000),
            },
        ))
        .unwrap();
    register_and_bond(&t.client, std::slice::from_ref(p2));
    let mut dear = fakes::offer(GPT, ModelKind::Generation, 5_000_000, 5_000_000);
    dear.sample_bps = 10_000;
    let mut cheap = provider.offer.clone();
    cheap.sample_bps = 10_000;
    let models = |o| TxBody::OfferModels {
        models: ModelOffers::new(vec![o]).unwrap(),
    };
    t.client.submit(&sign(p1, 2, models(cheap))).unwrap();
    t.client.submit(&sign(p2, 2, models(dear))).unwrap();
    let api_key = ApiKey::from_secret(&[3u8; 32]).unwrap();
    let create = TxBody::CreateInferenceKey {
        key: api_key.id(),
        limit: Amount::orr(10),
        deposit: Amount::orr(1),
    };
    t.client.submit(&sign(owner, 0, create)).unwrap();
    t.block();

    let models = t.client.inference_models().unwrap();
    assert_eq!(models.len(), 1, "{models:?}");
    assert_eq!((models[0].name.as_str(), models[0].providers), (GPT, 2));
    assert_eq!(models[0].min_price_in, Amount(1_000_000));
    assert_eq!(models[0].median_price_in, Amount(3_000_000));
    let key = t.client.inference_key(&api_key.id()).unwrap().expect("key");
    assert_eq!(
        (key.owner, key.deposit, key.outstanding),
        (owner.account(), Amount::orr(1), Amount(0))
    );
    assert!(t.client.inference_key(&ks[3].account()).unwrap().is_none());

    // A completion through the node's gateway.
    let served = t.rt.block_on(gateway_call::complete(&t.base, &api_key));
    assert_eq!(
        served["orrery"]["provider"],
        serde_json::json!(p1.account()),
        "{served}"
    );
    let leaf = served["orrery"]["receipt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let receipt = t
        .client
        .inference_receipt(&leaf)
        .unwrap()
        .expect("recorded");
    assert_eq!(
        (receipt.model_name.as_str(), receipt.key),
        (GPT, api_key.id())
    );
    assert_eq!(
        (receipt.voucher_responses, receipt.batch),
        (1, None),
        "not settled yet"
    );
    let mut delivered = provider.vouchers();
    for _ in 0..300 {
        if !delivered.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        delivered = provider.vouchers();
    }
    let voucher = delivered[0].voucher.clone();
    let key = t.client.inference_key(&api_key.id()).unwrap().unwrap();
    assert_eq!(
        key.outstanding, voucher.voucher.total,
        "signed, not settled yet"
    );

    // The provider settles; the next block draws the check (every response at 100%).
    let settle = TxBody::SettleInference {
        voucher,
        model: provider.offer.weights,
        root: MerkleTree::new(&[leaf]).root(),
        batch: orrery_types::hash::Hash::of(b"batch file"),
    };
    t.client.submit(&sign(p1, 3, settle)).unwrap();
    t.block();
    t.block();
    let id = [0, 1]
        .into_iter()
        .find(|id| t.client.inference_batch(*id).unwrap().is_some())
        .expect("a batch");
    let batch = t.client.inference_batch(id).unwrap().unwrap();
    assert_eq!(
        (batch.provider, batch.responses, batch.model),
        (p1.account(), 1, provider.offer.weights)
    );
    assert_eq!(batch.checks.len(), 1, "{batch:?}");
    assert_eq!(
        t.client
            .inference_key(&api_key.id())
            .unwrap()
            .unwrap()
            .outstanding,
        Amount(0)
    );
    let receipt = t.client.inference_receipt(&leaf).unwrap().unwrap();
    assert_eq!(
        receipt.batch,
        Some(id),
        "the settling batch is found for the receipt"
    );
    let duties = t.client.inference_checks(&p2.account()).unwrap();
    assert_eq!(duties.len(), 1, "{duties:?}");
    assert_eq!(
        (duties[0].role, duties[0].phase.as_str(), duties[0].batch),
        (CheckRole::Checker, "seal", id)
    );
    let own = t.client.inference_checks(&p1.account()).unwrap();
    assert_eq!(own[0].role, CheckRole::Provider);
    assert!(
        t.client
            .inference_checks(&owner.account())
            .unwrap()
            .is_empty()
    );
    t.node.take();
}

mod gateway_call {
    pub async fn complete(base: &str, key: &orrery_types::inference::ApiKey) -> serde_json::Value {
        let body = serde_json::json!({"model": super::GPT, "prompt": "hi", "max_tokens": 4});
        let resp = ::reqwest::Client::new()
            .post(format!("{base}/v1/completions"))
            .header("authorization", format!("Bearer {}", key.to_text()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        serde_json::from_str(&resp.text().await.unwrap()).unwrap()
    }
}
