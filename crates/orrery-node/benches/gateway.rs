//! The gateway's added latency: the same completion sent straight to an in-process provider
//! and through the gateway (auth, budget, routing among 1,000,000 model offers, forwarding,
//! verification, voucher signing and receipt), in the same run; and requests no provider can
//! serve (an unknown model name with 1,000,000 offers in the router).
//!
//! `cargo bench -p orrery-node --bench gateway` (set `ORRERY_BENCH_REQUESTS`, default 2,000 per
//! kind). Prints p50 and p99 of each and the difference; the target is < 5 ms added.

#[path = "../tests/gateway/fakes.rs"]
#[allow(dead_code)]
mod fakes;

use fakes::{Behaviour, FakeChain, Provider, candidate, offer};
use orrery_ledger::entries::Reputation;
use orrery_market::ModelCandidate;
use orrery_node::GatewayConfig;
use orrery_node::gateway::{Gateway, KeyState};
use orrery_types::amount::Amount;
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::inference::{
    ApiKey, InferenceRequest, InferenceTask, ModelKind, ModelName, Sampling,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

const OFFERS: usize = 1_000_000;
const NAME: &str = "bench-gpt";

fn synthetic(i: usize) -> ModelCandidate {
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(&(i as u64 + 1_000).to_be_bytes());
    let mut o = offer(NAME, ModelKind::Generation, 9_000_000, 9_000_000);
    // Every 10,000th offer serves the benched name (dearer, never tried); the rest spread
    // over 10,000 other names.
    if !i.is_multiple_of(10_000) {
        o.name = ModelName::new(format!("model-{}", i % 10_000)).unwrap();
        o.weights = orrery_types::hash::Hash::of(o.name.as_str().as_bytes());
    }
    ModelCandidate {
        provider: AccountId(id),
        endpoint: "http://127.0.0.1:1".into(),
        reputation: Reputation::default(),
        offer: o,
    }
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[(v.len() * 99 / 100).min(v.len() - 1)])
}

async fn time(n: usize, mut f: impl AsyncFnMut() -> u16, expect: u16) -> (Duration, Duration) {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let status = f().await;
        v.push(t.elapsed());
        assert_eq!(status, expect);
    }
    percentiles(v)
}

async fn post(http: &reqwest::Client, url: &str, key: Option<&str>, body: &str) -> u16 {
    let mut r = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(k) = key {
        r = r.header("authorization", format!("Bearer {k}"));
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let _ = resp.bytes().await.unwrap();
    status
}

/// The provider, its endpoint, the paying key, the gateway's base URL (over 1M offers) and
/// its data directory.
async fn start() -> (Arc<Provider>, String, ApiKey, String, tempfile::TempDir) {
    let provider = Provider::new(
        1,
        offer(NAME, ModelKind::Generation, 1_000_000, 1_000_000),
        Behaviour::Honest,
    );
    let endpoint = fakes::serve(provider.clone()).await;
    let chain = Arc::new(FakeChain::default());
    let key = ApiKey::from_secret(&[7u8; 32]).unwrap();
    let state = KeyState {
        owner: Keypair::from_seed(9).account(),
        limit: Amount(u128::MAX / 4),
        spent: Amount(0),
        deposit: Amount(u128::MAX / 4),
        revoked_at: None,
    };
    chain.keys.lock().unwrap().insert(key.id(), state);
    let t = Instant::now();
    {
        let mut offers = chain.offers.lock().unwrap();
        offers.extend((0..OFFERS).map(synthetic));
        offers.push(candidate(&provider, &endpoint));
    }
    let dir = tempfile::tempdir().unwrap();
    let gw = Arc::new(Gateway::open(dir.path(), chain.clone(), GatewayConfig::default()).unwrap());
    let app = gw.routes::<()>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let names = gw.model_names().await.len();
    println!(
        "{} model offers over {names} names loaded in {:.1?}",
        OFFERS + 1,
        t.elapsed()
    );

    (provider, endpoint, key, base, dir)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("ORRERY_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let (provider, endpoint, key, base, _dir) = start().await;
    let http = reqwest::Client::new();
    let direct_body = |nonce: u64| {
        serde_json::to_string(&InferenceRequest {
            model: provider.offer.weights,
            key: key.id(),
            channel: 1,
            nonce,
            task: InferenceTask::Completion {
                prompt: "Say hi".into(),
                sampling: Sampling {
                    max_tokens: 8,
                    temperature: 1.0,
                    top_p: 1.0,
                    seed: nonce,
                    stop: Vec::new(),
                },
            },
        })
        .unwrap()
    };
    let via = serde_json::json!({"model": NAME, "prompt": "Say hi", "max_tokens": 8}).to_string();
    let unknown = serde_json::json!({"model": "no-such-model", "prompt": "Say hi"}).to_string();
    let (infer, completions) = (
        format!("{endpoint}/infer"),
        format!("{base}/v1/completions"),
    );
    let token = key.to_text();
    // Warm up both paths (connections, the router's first load).
    for i in 0..50 {
        post(&http, &infer, None, &direct_body(i)).await;
        post(&http, &completions, Some(&token), &via).await;
    }
    let mut nonce = 1_000u64;
    let (d50, d99) = time(
        n,
        async || {
            nonce += 1;
            post(&http, &infer, None, &direct_body(nonce)).await
        },
        200,
    )
    .await;
    let (g50, g99) = time(
        n,
        async || post(&http, &completions, Some(&token), &via).await,
        200,
    )
    .await;
    let (u50, u99) = time(
        n,
        async || post(&http, &completions, Some(&token), &unknown).await,
        404,
    )
    .await;
    println!("provider directly:            p50 {d50:>9.2?}  p99 {d99:>9.2?}  ({n} requests)");
    println!("through the gateway:          p50 {g50:>9.2?}  p99 {g99:>9.2?}  ({n} requests)");
    println!(
        "gateway added:                p50 {:>9.2?}  p99 {:>9.2?}  (target < 5 ms)",
        g50.saturating_sub(d50),
        g99.saturating_sub(d99)
    );
    println!("unknown model (404), 1M offers: p50 {u50:>9.2?}  p99 {u99:>9.2?}  ({n} requests)");
    let paid = provider.vouchers().len();
    println!("vouchers delivered to the provider: {paid}");
}
