//! The gateway end to end: an OpenAI-shaped client call → the gateway → in-process providers
//! that sign real responses → vouchers back to the providers.

mod fakes;

use fakes::{Behaviour, FakeChain, Provider, WORDS, candidate, offer, serve};
use orrery_node::GatewayConfig;
use orrery_node::gateway::{Gateway, KeyState};
use orrery_types::amount::Amount;
use orrery_types::crypto::Keypair;
use orrery_types::inference::{ApiKey, ModelKind};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

struct Setup {
    chain: Arc<FakeChain>,
    gateway: Arc<Gateway>,
    base: String,
    key: ApiKey,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

const GPT: &str = "genesis-gpt2";
const MINI: &str = "all-minilm-l6-v2";

fn key_state(deposit: u128) -> KeyState {
    KeyState {
        owner: Keypair::from_seed(99).account(),
        limit: Amount(1_000_000_000),
        spent: Amount(0),
        deposit: Amount(deposit),
        revoked_at: None,
    }
}

async fn setup(providers: &[(Arc<Provider>, Option<&str>)]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let chain = Arc::new(FakeChain::default());
    let key = ApiKey::from_secret(&[7u8; 32]).unwrap();
    chain
        .keys
        .lock()
        .unwrap()
        .insert(key.id(), key_state(1_000_000_000));
    for (p, endpoint) in providers {
        let endpoint = match endpoint {
            Some(e) => (*e).to_owned(),
            None => serve(p.clone()).await,
        };
        chain.add_offer(candidate(p, &endpoint));
    }
    let config = GatewayConfig {
        first_token_timeout_secs: 1,
        response_timeout_secs: 5,
        connect_timeout_ms: 500,
        max_body_bytes: 64 * 1024,
        ..GatewayConfig::default()
    };
    let gateway = Arc::new(Gateway::open(dir.path(), chain.clone(), config).unwrap());
    let app = gateway.routes::<()>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Setup {
        chain,
        gateway,
        base,
        key,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Setup {
    async fn post(&self, path: &str, body: Value) -> (u16, Value, reqwest::header::HeaderMap) {
        self.post_raw(
            path,
            body.to_string().into_bytes(),
            Some(&self.key.to_text()),
        )
        .await
    }

    async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json, headers)
    }

    /// The data lines of a streamed answer.
    async fn stream(&self, body: Value) -> (u16, Vec<String>) {
        let resp = self
            .http
            .post(format!("{}/v1/chat/completions", self.base))
            .header("authorization", format!("Bearer {}", self.key.to_text()))
            .json_body(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let data = text
            .split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(str::to_owned)
            .collect();
        (status, data)
    }
}

trait JsonBody {
    fn json_body(self, v: &Value) -> Self;
}
impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, v: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(v.to_string())
    }
}

/// Wait (up to 3 s) for background voucher deliveries; in voucher order (deliveries race).
async fn vouchers_of(p: &Provider, n: usize) -> Vec<orrery_types::inference::VoucherDelivery> {
    for _ in 0..300 {
        if p.vouchers().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut v = p.vouchers();
    v.sort_by_key(|d| (d.voucher.voucher.channel, d.voucher.voucher.responses));
    v
}

fn gpt(seed: u64, b: Behaviour, price: u128) -> Arc<Provider> {
    Provider::new(seed, offer(GPT, ModelKind::Generation, price, price * 2), b)
}

fn mini(seed: u64) -> Arc<Provider> {
    Provider::new(
        seed,
        offer(MINI, ModelKind::Embedding, 1_000_000, 0),
        Behaviour::Honest,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_the_offered_names() {
    let s = setup(&[
        (gpt(1, Behaviour::Honest, 1_000_000), None),
        (mini(2), None),
    ])
    .await;
    let v: Value = s
        .http
        .get(format!("{}/v1/models", s.base))
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![MINI, GPT]);
    assert_eq!(v["data"][0]["object"], "model");
}

trait JsonValue {
    async fn json_value(self) -> Value;
}
impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_str(&self.text().await.unwrap()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_answer_floats_or_base64_and_pay_one_voucher_each() {
    let p = mini(2);
    let s = setup(&[(p.clone(), None)]).await;
    let (status, v, headers) = s
        .post(
            "/v1/embeddings",
            json!({"model": MINI, "input": ["abc", "de"]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["embedding"], json!([3.0, 0.5, -1.0]));
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["orrery"]["provider"], json!(p.id()));
    assert_eq!(v["orrery"]["price"], json!(Amount(5)));
    let receipt = v["orrery"]["receipt"].as_str().unwrap().to_owned();
    assert_eq!(headers["x-orrery-receipt"].to_str().unwrap(), receipt);
    assert_eq!(v["orrery"]["receipt_url"], format!("/#/receipts/{receipt}"));

    let (status, v, _) = s
        .post(
            "/v1/embeddings",
            json!({"model": MINI, "input": "abc", "encoding_format": "base64"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let bytes: Vec<u8> = [3.0f32, 0.5, -1.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    assert_eq!(
        v["data"][0]["embedding"],
        orrery_node::gateway::openai::base64_encode(&bytes)
    );
    assert_eq!(
        orrery_node::gateway::openai::base64_encode(b"abcd"),
        "YWJjZA=="
    );

    let vs = vouchers_of(&p, 2).await;
    assert_eq!(vs.len(), 2);
    assert_eq!(vs[0].voucher.voucher.responses, 1);
    assert_eq!(vs[1].voucher.voucher.responses, 2);
    assert_eq!(
        vs[1].voucher.voucher.total,
        Amount(8),
        "5 then 3 tokens at 1 each"
    );
    assert_eq!(vs[0].voucher.voucher.channel, vs[1].voucher.voucher.channel);
    assert_eq!(vs[0].voucher.voucher.chain_id.as_str(), fakes::CHAIN);
    let leaf = receipt.parse().unwrap();
    assert_eq!(vs[0].leaf, leaf);
    let r = s.gateway.receipt(&leaf).unwrap().expect("recorded");
    assert_eq!(r.model_name, MINI);
    assert_eq!(s.gateway.outstanding(&s.key.id()), Amount(8));
    s.chain
        .paid
        .lock()
        .unwrap()
        .insert(vs[0].voucher.voucher.channel, Amount(5));
    assert_eq!(
        s.gateway.outstanding(&s.key.id()),
        Amount(3),
        "settled part no longer outstanding"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_and_chat_answer_in_openai_shape_with_usage_and_price() {
    let p = gpt(1, Behaviour::Honest, 1_000_000);
    let s = setup(&[(p.clone(), None)]).await;
    let (status, v, headers) = s
        .post(
            "/v1/completions",
            json!({"model": GPT, "prompt": "Say hi", "max_tokens": 8, "seed": 3}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["model"], GPT);
    assert_eq!(v["choices"][0]["text"], WORDS.concat());
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 6, "completion_tokens": 2, "total_tokens": 8})
    );
    assert_eq!(v["orrery"]["price"], json!(Amount(6 + 2 * 2)));
    assert_eq!(
        headers["x-orrery-provider"].to_str().unwrap(),
        p.id().to_string()
    );
    let sent: orrery_types::inference::InferenceRequest =
        serde_json::from_slice(&p.requests.lock().unwrap()[0]).unwrap();
    assert_eq!(sent.seed(), 3, "the client's seed is kept");

    let (status, v, _) = s
        .post(
            "/v1/chat/completions",
            json!({"model": GPT, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"],
        json!({"role": "assistant", "content": WORDS.concat()})
    );
    let sent: orrery_types::inference::InferenceRequest =
        serde_json::from_slice(&p.requests.lock().unwrap()[1]).unwrap();
    match sent.task {
        orrery_types::inference::InferenceTask::Chat { sampling, .. } => {
            assert_eq!(sampling.temperature, 1.0);
            assert_eq!(sampling.top_p, 1.0);
            assert_eq!(
                sampling.max_tokens, 64,
                "half the 128-token context by default"
            );
        }
        other => panic!("chat stays chat: {other:?}"),
    }
    let vs = vouchers_of(&p, 2).await;
    assert_eq!(
        vs[1].voucher.voucher.total,
        Amount(10 + 6),
        "cumulative: 10, then 2 + 4"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_stream_sends_openai_chunks_then_done_and_pays_once_finished() {
    let p = gpt(1, Behaviour::Honest, 1_000_000);
    let s = setup(&[(p.clone(), None)]).await;
    let (status, data) = s
        .stream(
            json!({"model": GPT, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, WORDS.concat());
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["usage"]["completion_tokens"], 2);
    assert_eq!(last["orrery"]["provider"], json!(p.id()));
    let vs = vouchers_of(&p, 1).await;
    assert_eq!(vs.len(), 1);
    assert_eq!(
        vs[0].leaf.to_string(),
        last["orrery"]["receipt"].as_str().unwrap()
    );
}

/// What, route, body, bearer token, status, error code.
type Case = (
    &'static str,
    &'static str,
    Vec<u8>,
    Option<String>,
    u16,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_its_openai_error_and_nobody_is_paid() {
    let p = gpt(1, Behaviour::Honest, 1_000_000);
    let m = mini(2);
    let s = setup(&[(p.clone(), None), (m.clone(), None)]).await;
    let revoked = ApiKey::from_secret(&[8u8; 32]).unwrap();
    let broke = ApiKey::from_secret(&[9u8; 32]).unwrap();
    let poor = ApiKey::from_secret(&[10u8; 32]).unwrap();
    {
        let mut keys = s.chain.keys.lock().unwrap();
        keys.insert(
            revoked.id(),
            KeyState {
                revoked_at: Some(4),
                ..key_state(100)
            },
        );
        keys.insert(broke.id(), key_state(0));
        keys.insert(poor.id(), key_state(50));
    }
    let unknown = ApiKey::from_secret(&[11u8; 32]).unwrap();
    let chat = |extra: Value| {
        let mut b = json!({"model": GPT, "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b.to_string().into_bytes()
    };
    let good = s.key.to_text();
    let cases: Vec<Case> = vec![
        (
            "no key",
            "/v1/chat/completions",
            chat(json!({})),
            None,
            401,
            "invalid_api_key",
        ),
        (
            "malformed key",
            "/v1/chat/completions",
            chat(json!({})),
            Some("sk-nope".into()),
            401,
            "invalid_api_key",
        ),
        (
            "unknown key",
            "/v1/chat/completions",
            chat(json!({})),
            Some(unknown.to_text()),
            401,
            "invalid_api_key",
        ),
        (
            "revoked key",
            "/v1/chat/completions",
            chat(json!({})),
            Some(revoked.to_text()),
            401,
            "key_revoked",
        ),
        (
            "empty deposit",
            "/v1/chat/completions",
            chat(json!({})),
            Some(broke.to_text()),
            429,
            "insufficient_quota",
        ),
        (
            "worst case over budget",
            "/v1/chat/completions",
            chat(json!({"max_tokens": 100})),
            Some(poor.to_text()),
            429,
            "insufficient_quota",
        ),
        (
            "unknown model",
            "/v1/chat/completions",
            chat(json!({"model": "gpt-9"})),
            Some(good.clone()),
            404,
            "model_not_found",
        ),
        (
            "wrong kind",
            "/v1/embeddings",
            json!({"model": GPT, "input": "x"}).to_string().into_bytes(),
            Some(good.clone()),
            400,
            "invalid_request_error",
        ),
        (
            "malformed json",
            "/v1/chat/completions",
            b"{\"model\":".to_vec(),
            Some(good.clone()),
            400,
            "invalid_request_error",
        ),
        (
            "missing messages",
            "/v1/chat/completions",
            json!({"model": GPT}).to_string().into_bytes(),
            Some(good.clone()),
            400,
            "invalid_request_error",
        ),
        (
            "max_tokens 0",
            "/v1/chat/completions",
            chat(json!({"max_tokens": 0})),
            Some(good.clone()),
            400,
            "invalid_request_error",
        ),
        (
            "max_tokens over context",
            "/v1/chat/completions",
            chat(json!({"max_tokens": 128})),
            Some(good.clone()),
            400,
            "context_length_exceeded",
        ),
        (
            "temperature",
            "/v1/chat/completions",
            chat(json!({"temperature": 2.5})),
            Some(good.clone()),
            400,
            "invalid_request_error",
        ),
        (
            "top_p",
            "/v1/chat/completions",
            chat(json!({"top_p": 0})),
            Some(good.clone()),
            400,
            "invalid_request_error",
        ),
        (
            "n",
            "/v1/chat/completions",
            chat(json!({"n": 2})),
            Some(good.clone()),
            400,
            "invalid_request_error",
        ),
        (
            "too many inputs",
            "/v1/embeddings",
            json!({"model": MINI, "input": vec!["x"; 65]})
                .to_string()
                .into_bytes(),
            Some(good.clone()),
            400,
            "invalid_request_error",
        ),
        (
            "token inputs",
            "/v1/embeddings",
            json!({"model": MINI, "input": [1, 2]})
                .to_string()
                .into_bytes(),
            Some(good.clone()),
            400,
            "invalid_request_error",
        ),
        (
            "body too large",
            "/v1/completions",
            vec![b' '; 70 * 1024],
            Some(good.clone()),
            413,
            "request_too_large",
        ),
    ];
    for (what, path, body, token, status, code) in cases {
        let (got, v, _) = s.post_raw(path, body, token.as_deref()).await;
        assert_eq!(got, status, "{what}: {v}");
        assert_eq!(v["error"]["code"], code, "{what}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        assert!(v["error"]["type"].is_string(), "{what}");
        assert!(
            v["error"].as_object().unwrap().contains_key("param"),
            "{what}"
        );
    }
    let (_, v, _) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert!(
        v["error"]["message"].as_str().unwrap().contains(GPT),
        "lists available ids: {v}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        p.requests.lock().unwrap().is_empty(),
        "nothing bad was forwarded"
    );
    assert!(p.vouchers().is_empty() && m.vouchers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_context_error_is_the_clients_and_is_not_retried_or_paid() {
    let bad = gpt(1, Behaviour::ContextExceeded, 1_000_000);
    let honest = gpt(2, Behaviour::Honest, 2_000_000);
    let s = setup(&[(bad.clone(), None), (honest.clone(), None)]).await;
    let (status, v, _) = s
        .post("/v1/completions", json!({"model": GPT, "prompt": "long"}))
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert!(honest.requests.lock().unwrap().is_empty());
    assert!(bad.vouchers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_or_a_silent_provider_fails_over_to_the_next() {
    // Cheapest first: the closed port, then the one that hangs, then the honest one.
    let closed = gpt(1, Behaviour::Honest, 1_000_000);
    let hangs = gpt(2, Behaviour::Hangs, 2_000_000);
    let honest = gpt(3, Behaviour::Honest, 3_000_000);
    let s = setup(&[
        (closed.clone(), Some("http://127.0.0.1:1")),
        (hangs.clone(), None),
        (honest.clone(), None),
    ])
    .await;
    let (status, v, _) = s
        .post("/v1/completions", json!({"model": GPT, "prompt": "x"}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["orrery"]["provider"], json!(honest.id()));
    assert_eq!(vouchers_of(&honest, 1).await.len(), 1);
    assert!(hangs.vouchers().is_empty());
    let (status, data) = s
        .stream(
            json!({"model": GPT, "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(vouchers_of(&honest, 2).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_that_do_not_verify_are_not_paid_and_fail_over() {
    for b in [
        Behaviour::Overcharges,
        Behaviour::WrongModel,
        Behaviour::WrongRequest,
    ] {
        let cheat = gpt(1, b, 1_000_000);
        let honest = gpt(2, Behaviour::Honest, 2_000_000);
        let s = setup(&[(cheat.clone(), None), (honest.clone(), None)]).await;
        let (status, v, _) = s
            .post("/v1/completions", json!({"model": GPT, "prompt": "x"}))
            .await;
        assert_eq!(status, 200, "{b:?}: {v}");
        assert_eq!(v["orrery"]["provider"], json!(honest.id()), "{b:?}");
        assert_eq!(
            cheat.requests.lock().unwrap().len(),
            1,
            "{b:?} was tried first"
        );
        assert!(cheat.vouchers().is_empty(), "{b:?} not paid");
        let (status, data) = s
            .stream(json!({"model": GPT, "stream": true, "messages": [{"role": "user", "content": "x"}]}))
            .await;
        assert_eq!(status, 200);
        let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
        assert_eq!(
            last["error"]["code"], "provider_error",
            "{b:?}: a cheat's stream ends in an error"
        );
        assert!(cheat.vouchers().is_empty(), "{b:?} not paid for its stream");
    }
    let only = gpt(1, Behaviour::Overcharges, 1_000_000);
    let s = setup(&[(only.clone(), None)]).await;
    let (status, v, _) = s
        .post("/v1/completions", json!({"model": GPT, "prompt": "x"}))
        .await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["code"], "provider_error");
    let failing = gpt(1, Behaviour::Fails, 1_000_000);
    let s = setup(&[(failing, None)]).await;
    let (status, _, _) = s
        .post("/v1/completions", json!({"model": GPT, "prompt": "x"}))
        .await;
    assert_eq!(status, 502);
    let s = setup(&[(gpt(1, Behaviour::Honest, 1), Some("http://127.0.0.1:1"))]).await;
    let (status, v, _) = s
        .post("/v1/completions", json!({"model": GPT, "prompt": "x"}))
        .await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "provider_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_dying_mid_stream_ends_the_stream_with_an_error_and_no_voucher() {
    let dies = gpt(1, Behaviour::DiesMidStream, 1_000_000);
    let honest = gpt(2, Behaviour::Honest, 2_000_000);
    let s = setup(&[(dies.clone(), None), (honest.clone(), None)]).await;
    let (status, data) = s
        .stream(
            json!({"model": GPT, "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
    let first: Value = serde_json::from_str(&data[1]).unwrap();
    assert_eq!(
        first["choices"][0]["delta"]["content"], WORDS[0],
        "the first token reached the client"
    );
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "provider_error");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not billed")
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(dies.vouchers().is_empty());
    assert!(
        honest.requests.lock().unwrap().is_empty(),
        "no failover after the first token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_reserve_their_worst_case_against_the_key() {
    let hangs = gpt(1, Behaviour::Hangs, 1_000_000);
    let s = setup(&[(hangs, None)]).await;
    // Worst case of a 1-byte prompt with 60 tokens: 1 + 60·2 = 121; room for one at a time.
    s.chain
        .keys
        .lock()
        .unwrap()
        .insert(s.key.id(), key_state(150));
    let body = json!({"model": GPT, "prompt": "x", "max_tokens": 60});
    let (a, b) = tokio::join!(s.post("/v1/completions", body.clone()), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.post("/v1/completions", body.clone()).await
    });
    assert_eq!(a.0, 503, "the hanging provider times out: {}", a.1);
    assert_eq!(b.0, 429, "{}", b.1);
    let (c, _, _) = s.post("/v1/completions", body).await;
    assert_eq!(c, 503, "the reservation was released");
}
