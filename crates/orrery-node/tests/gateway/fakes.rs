//! Fakes for the gateway tests: a chain held in memory and an in-process provider that signs
//! real responses with a real key pair, honestly or in one of several broken ways.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use orrery_ledger::entries::Reputation;
use orrery_market::ModelCandidate;
use orrery_node::gateway::{InferenceChain, KeyState};
use orrery_types::amount::Amount;
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::hash::Hash;
use orrery_types::inference::{
    InferenceOutput, InferenceRequest, InferenceTask, ModelKind, ModelName, ModelOffer,
    ResponseCommitment, SignedResponse, StreamEvent, VoucherDelivery, output_digest,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const CHAIN: &str = "orrery-test";

/// The chain as the gateway reads it.
#[derive(Default)]
pub struct FakeChain {
    pub height: Mutex<u64>,
    pub keys: Mutex<HashMap<AccountId, KeyState>>,
    pub offers: Mutex<Vec<ModelCandidate>>,
    pub paid: Mutex<HashMap<u64, Amount>>,
}

impl InferenceChain for FakeChain {
    fn chain_id(&self) -> String {
        CHAIN.into()
    }
    fn height(&self) -> u64 {
        *self.height.lock().unwrap()
    }
    fn key(&self, id: &AccountId) -> Option<KeyState> {
        self.keys.lock().unwrap().get(id).copied()
    }
    fn channel_paid(&self, _key: &AccountId, _provider: &AccountId, channel: u64) -> Amount {
        self.paid
            .lock()
            .unwrap()
            .get(&channel)
            .copied()
            .unwrap_or_default()
    }
    fn candidates(&self) -> Vec<ModelCandidate> {
        self.offers.lock().unwrap().clone()
    }
}

impl FakeChain {
    pub fn add_offer(&self, c: ModelCandidate) {
        self.offers.lock().unwrap().push(c);
        *self.height.lock().unwrap() += 1;
    }
}

/// How a fake provider behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Honest,
    /// 500 to everything.
    Fails,
    /// Answers nothing for 10 s.
    Hangs,
    /// Charges one unit more than its offer.
    Overcharges,
    /// Commits to other weights.
    WrongModel,
    /// Commits to another request hash.
    WrongRequest,
    /// Streams one delta, then drops the connection.
    DiesMidStream,
    /// 400 context_length_exceeded.
    ContextExceeded,
}

pub struct Provider {
    pub keypair: Keypair,
    pub offer: ModelOffer,
    pub behaviour: Behaviour,
    pub vouchers: Mutex<Vec<VoucherDelivery>>,
    pub requests: Mutex<Vec<Vec<u8>>>,
}

pub fn offer(name: &str, kind: ModelKind, price_in: u128, price_out: u128) -> ModelOffer {
    ModelOffer {
        name: ModelName::new(name).unwrap(),
        weights: Hash::of(name.as_bytes()),
        kind,
        context: 128,
        price_in: Amount(price_in),
        price_out: Amount(price_out),
        sample_bps: 500,
    }
}

/// The words every honest generation streams.
pub const WORDS: [&str; 2] = ["hello", " world"];

impl Provider {
    pub fn new(seed: u64, offer: ModelOffer, behaviour: Behaviour) -> Arc<Provider> {
        Arc::new(Provider {
            keypair: Keypair::from_seed(seed),
            offer,
            behaviour,
            vouchers: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
        })
    }

    pub fn id(&self) -> AccountId {
        self.keypair.account()
    }

    pub fn vouchers(&self) -> Vec<VoucherDelivery> {
        self.vouchers.lock().unwrap().clone()
    }

    fn respond(&self, bytes: &[u8], req: &InferenceRequest) -> SignedResponse {
        let (output, tokens_in, tokens_out) = match &req.task {
            InferenceTask::Embeddings { inputs } => (
                InferenceOutput::Embeddings {
                    vectors: inputs
                        .iter()
                        .map(|t| vec![t.len() as f32, 0.5, -1.0])
                        .collect(),
                },
                inputs.iter().map(|t| t.len() as u32).sum(),
                0,
            ),
            InferenceTask::Completion { prompt, .. } => (text_output(), prompt.len() as u32, 2),
            InferenceTask::Chat { messages, .. } => (
                text_output(),
                messages.iter().map(|m| m.content.len() as u32).sum(),
                2,
            ),
        };
        let mut charged = self.offer.cost(tokens_in, tokens_out).unwrap();
        let mut model = req.model;
        let mut request = orrery_types::inference::request_hash(bytes);
        match self.behaviour {
            Behaviour::Overcharges => charged = Amount(charged.units() + 1),
            Behaviour::WrongModel => model = Hash::of(b"other weights"),
            Behaviour::WrongRequest => request = Hash::of(b"another request"),
            _ => {}
        }
        let commitment = ResponseCommitment {
            model,
            key: req.key,
            request,
            seed: req.seed(),
            output: output_digest(tokens_in, tokens_out, &output.digest_bytes()),
            tokens_in,
            tokens_out,
            charged,
        };
        SignedResponse {
            signature: commitment.sign(&self.keypair),
            output,
            commitment,
            provider: self.id(),
            provider_key: self.keypair.public_key().clone(),
        }
    }
}

fn text_output() -> InferenceOutput {
    InferenceOutput::Text {
        text: WORDS.concat(),
        finish_reason: "stop".into(),
    }
}

fn sse(e: &StreamEvent) -> Bytes {
    Bytes::from(format!("data: {}\n\n", serde_json::to_string(e).unwrap()))
}

async fn infer(p: Arc<Provider>, headers: HeaderMap, body: Bytes) -> Response {
    p.requests.lock().unwrap().push(body.to_vec());
    match p.behaviour {
        Behaviour::Fails => return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        Behaviour::Hangs => tokio::time::sleep(Duration::from_secs(10)).await,
        Behaviour::ContextExceeded => {
            let e = serde_json::json!({"error": {"message": "prompt is 300 tokens; context is 128", "code": "context_length_exceeded"}});
            return (StatusCode::BAD_REQUEST, axum::Json(e)).into_response();
        }
        _ => {}
    }
    let req: InferenceRequest = serde_json::from_slice(&body).unwrap();
    let signed = p.respond(&body, &req);
    let streaming = headers
        .get("accept")
        .is_some_and(|v| v.to_str().unwrap_or("").contains("text/event-stream"));
    if !streaming {
        return axum::Json(signed).into_response();
    }
    let mut events: Vec<Result<Bytes, std::io::Error>> = WORDS
        .iter()
        .map(|w| Ok(sse(&StreamEvent::Delta { text: (*w).into() })))
        .collect();
    if p.behaviour == Behaviour::DiesMidStream {
        events.truncate(1);
        events.push(Err(std::io::Error::other("provider died")));
    } else {
        events.push(Ok(sse(&StreamEvent::Done(Box::new(signed)))));
    }
    let stream = futures::stream::iter(events).then(|e| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        e
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

use futures::StreamExt as _;

async fn voucher(p: Arc<Provider>, body: Bytes) -> StatusCode {
    let d: VoucherDelivery = serde_json::from_slice(&body).unwrap();
    assert!(d.voucher.verify(), "the gateway signs with the key");
    p.vouchers.lock().unwrap().push(d);
    StatusCode::OK
}

/// Serve a fake provider; its endpoint.
pub async fn serve(p: Arc<Provider>) -> String {
    let (a, b) = (p.clone(), p.clone());
    let app = axum::Router::new()
        .route(
            "/infer",
            post(move |h: HeaderMap, body: Bytes| infer(a.clone(), h, body)),
        )
        .route(
            "/voucher",
            post(move |body: Bytes| voucher(b.clone(), body)),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

pub fn candidate(p: &Provider, endpoint: &str) -> ModelCandidate {
    ModelCandidate {
        provider: p.id(),
        endpoint: endpoint.to_owned(),
        reputation: Reputation::default(),
        offer: p.offer.clone(),
    }
}
