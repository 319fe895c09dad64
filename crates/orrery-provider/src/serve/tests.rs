//! The serving lane over HTTP with a tiny GPT-2-layout model (the project's own transformer,
//! exported), and its books: voucher continuity, restarts, batches and proofs.

use super::book::{Book, MAX_UNPAID, VoucherError};
use super::model::ServedModel;
use super::{ServeStats, Serving, http};
use crate::config::{Cheat, ServeConfig, ServedModelConfig};
use orrery_ml::infer::ModelFiles;
use orrery_ml::infer::export::transformer_to_gpt2;
use orrery_ml::model::{ModelConfig, TransformerConfig};
use orrery_types::amount::Amount;
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::hash::Hash;
use orrery_types::inference::{
    ApiKey, BatchFile, InferenceOutput, InferenceRequest, InferenceTask, ResponseCommitment,
    Sampling, SignedResponse, SignedVoucher, StreamEvent, Voucher, VoucherDelivery, request_hash,
};
use orrery_types::tx::ChainId;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) const CONTEXT: usize = 48;

/// A tiny GPT-2-layout model: 96-character vocabulary, context [`CONTEXT`].
pub(crate) fn tiny_files() -> ModelFiles {
    let cfg = TransformerConfig {
        vocab_size: 96,
        d_model: 16,
        n_layers: 2,
        n_heads: 2,
        context: CONTEXT,
        ff_mult: 4,
    };
    let params = ModelConfig::Transformer(cfg.clone()).init_params(11);
    transformer_to_gpt2(&cfg, &params).expect("the tiny model exports")
}

/// The tiny model's files in `dir`.
pub(crate) fn write_model(dir: &Path) -> PathBuf {
    let files = tiny_files();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("model.safetensors"), &files.weights).unwrap();
    std::fs::write(dir.join("config.json"), &files.config).unwrap();
    std::fs::write(dir.join("tokenizer.json"), &files.tokenizer).unwrap();
    dir.to_path_buf()
}

pub(crate) fn model_config(dir: &Path) -> ServedModelConfig {
    ServedModelConfig {
        name: "tiny-gpt2".into(),
        dir: dir.to_path_buf(),
        price_in: Amount::orr(1),
        price_out: Amount::orr(2),
        sample_bps: 100,
    }
}

pub(crate) fn serve_config(dir: &Path, max_concurrent: usize) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".into(),
        threads: 2,
        max_concurrent,
        settle_every_blocks: 5,
        max_batch: 3,
        models: vec![model_config(dir)],
    }
}

pub(crate) fn provider_key() -> Keypair {
    Keypair::from_seed(40)
}

pub(crate) fn chain_id() -> ChainId {
    ChainId::new("orrery-test").unwrap()
}

/// A serving lane for the tiny model in `dir`, books in memory.
pub(crate) fn serving(dir: &Path, cheat: Cheat, max_concurrent: usize) -> Arc<Serving> {
    let config = serve_config(dir, max_concurrent);
    let model = ServedModel::load(&config.models[0], cheat).unwrap();
    let s = Serving::new(&config, provider_key(), vec![model], Book::in_memory());
    s.set_chain_id(chain_id());
    Arc::new(s)
}

pub(crate) fn api_key() -> ApiKey {
    ApiKey::from_secret(&[7; 32]).unwrap()
}

pub(crate) fn completion(
    model: Hash,
    nonce: u64,
    prompt: &str,
    max_tokens: u32,
) -> InferenceRequest {
    InferenceRequest {
        model,
        key: api_key().id(),
        channel: 1,
        nonce,
        task: InferenceTask::Completion {
            prompt: prompt.into(),
            sampling: Sampling {
                max_tokens,
                temperature: 0.8,
                top_p: 0.9,
                seed: 42 + nonce,
                stop: Vec::new(),
            },
        },
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    )
}

/// POST `body` to `url`; status and body text.
fn post(url: &str, body: &[u8], accept: Option<&str>) -> (u16, String) {
    let mut req = agent().post(url).header("content-type", "application/json");
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let mut resp = req.send(body).expect("the server answers");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).expect("a JSON error");
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

struct Server {
    serving: Arc<Serving>,
    handle: http::ServerHandle,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(cheat: Cheat, max_concurrent: usize) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let serving = serving(&write_model(&dir.path().join("m")), cheat, max_concurrent);
        let handle = http::start(serving.clone(), "127.0.0.1:0").unwrap();
        Server {
            serving,
            handle,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.handle.addr())
    }

    fn weights(&self) -> Hash {
        self.serving.offers()[0].weights
    }

    fn infer(&self, req: &InferenceRequest) -> SignedResponse {
        let (status, body) = post(&self.url("/infer"), &req.canonical_bytes(), None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("a signed response")
    }
}

#[test]
fn infer_returns_a_signed_response_that_an_independent_run_reproduces() {
    let server = Server::start(Cheat::None, 2);
    let req = completion(server.weights(), 1, "hello wor", 12);
    let r = server.infer(&req);
    assert!(r.verify(), "the response verifies");
    assert_eq!(r.provider, provider_key().account());
    let c = &r.commitment;
    assert_eq!(c.model, server.weights());
    assert_eq!(c.key, api_key().id());
    assert_eq!(c.request, req.hash());
    assert_eq!(c.seed, 42 + 1);
    assert_eq!(c.tokens_in, 9, "one token per character");
    assert!(c.tokens_out >= 1 && c.tokens_out <= 12);
    let offer = &server.serving.offers()[0];
    assert_eq!(Some(c.charged), offer.cost(c.tokens_in, c.tokens_out));
    // A second, independent load of the same files reproduces the digest bit for bit.
    let dir = tempfile::tempdir().unwrap();
    let again = ServedModel::load(&model_config(&write_model(dir.path())), Cheat::None).unwrap();
    let computed = again.compute(&req.task, 1).unwrap();
    assert_eq!(computed.digest(), c.output);
    assert_eq!(computed.output, r.output);
    // The response is remembered until paid.
    assert_eq!(server.serving.book().unpaid_len(), 1);
    assert_eq!(server.serving.stats().served, 1);
}

#[test]
fn a_stream_sends_deltas_then_the_signed_response() {
    let server = Server::start(Cheat::None, 2);
    let req = completion(server.weights(), 2, "abc", 10);
    let (status, body) = post(
        &server.url("/infer"),
        &req.canonical_bytes(),
        Some("text/event-stream"),
    );
    assert_eq!(status, 200, "{body}");
    let events: Vec<StreamEvent> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("a stream event"))
        .collect();
    let (last, deltas) = events.split_last().expect("events");
    let StreamEvent::Done(done) = last else {
        panic!("the stream ends with done: {last:?}");
    };
    assert!(done.verify());
    let streamed: String = deltas
        .iter()
        .map(|e| match e {
            StreamEvent::Delta { text } => text.as_str(),
            other => panic!("only deltas before done: {other:?}"),
        })
        .collect();
    let InferenceOutput::Text { text, .. } = &done.output else {
        panic!("a text output");
    };
    assert_eq!(&streamed, text, "the deltas spell the final text");
    assert!(!deltas.is_empty());
    // The same request without streaming gives the same commitment.
    assert_eq!(server.infer(&req).commitment, done.commitment);
}

#[test]
fn bad_requests_get_4xx_with_codes() {
    let server = Server::start(Cheat::None, 2);
    let url = server.url("/infer");
    let good = completion(server.weights(), 3, "hi", 4);
    // Non-canonical: the same request, pretty-printed.
    let pretty = serde_json::to_vec_pretty(&good).unwrap();
    let (status, body) = post(&url, &pretty, None);
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "non_canonical_request")
    );
    // Not a request at all.
    let (status, body) = post(&url, b"{\"model\": 1}", None);
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "invalid_request_error")
    );
    // Unknown model.
    let other = completion(Hash::of(b"another model"), 3, "hi", 4);
    let (status, body) = post(&url, &other.canonical_bytes(), None);
    assert_eq!(
        (status, error_code(&body).as_str()),
        (404, "model_not_found")
    );
    // Prompt plus max_tokens over the context, in both modes.
    let long = completion(server.weights(), 3, "hi", CONTEXT as u32);
    for accept in [None, Some("text/event-stream")] {
        let (status, body) = post(&url, &long.canonical_bytes(), accept);
        assert_eq!(
            (status, error_code(&body).as_str()),
            (400, "context_length_exceeded"),
            "{body}"
        );
    }
    // max_tokens 0.
    let zero = completion(server.weights(), 3, "hi", 0);
    let (status, body) = post(&url, &zero.canonical_bytes(), None);
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "invalid_request_error")
    );
    assert!(body.contains("max_tokens"), "{body}");
    // An embeddings request to a generation model.
    let mut emb = good.clone();
    emb.task = InferenceTask::Embeddings {
        inputs: vec!["x".into()],
    };
    let (status, body) = post(&url, &emb.canonical_bytes(), None);
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "invalid_request_error")
    );
    // Too large.
    let (status, body) = post(&url, &vec![b' '; 70_000], None);
    assert_eq!(status, 413, "{body}");
    assert_eq!(server.serving.book().unpaid_len(), 0, "nothing was served");
    assert_eq!(server.serving.stats().served, 0);
}

#[test]
fn a_request_over_max_concurrent_is_turned_away_at_once() {
    let server = Server::start(Cheat::None, 1);
    // Every compute place is taken (as by a long generation).
    let held = server
        .serving
        .permits()
        .clone()
        .try_acquire_owned()
        .unwrap();
    let req = completion(server.weights(), 4, "hi", 4);
    let (status, body) = post(&server.url("/infer"), &req.canonical_bytes(), None);
    assert_eq!((status, error_code(&body).as_str()), (503, "overloaded"));
    assert_eq!(server.serving.stats().overloaded, 1);
    drop(held);
    server.infer(&req);
    // The health endpoint reports the places.
    let mut resp = agent().get(&server.url("/health")).call().unwrap();
    let health: serde_json::Value =
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["max_concurrent"], 1);
    assert_eq!(health["models"][0], "tiny-gpt2");
}

pub(crate) fn voucher(responses: u64, total: Amount, channel: u64) -> SignedVoucher {
    Voucher {
        chain_id: chain_id(),
        key: api_key().keypair().public_key().clone(),
        provider: provider_key().account(),
        channel,
        total,
        responses,
    }
    .sign(api_key().keypair())
}

#[test]
fn vouchers_over_http_pay_responses_and_refusals_say_why() {
    let server = Server::start(Cheat::None, 2);
    let url = server.url("/voucher");
    let r = server.infer(&completion(server.weights(), 5, "pay me", 3));
    let leaf = r.commitment.leaf();
    let deliver = |v: SignedVoucher| {
        let body = serde_json::to_vec(&VoucherDelivery { voucher: v, leaf }).unwrap();
        post(&url, &body, None)
    };
    let charged = r.commitment.charged;
    let (status, body) = deliver(voucher(2, charged, 1));
    assert_eq!((status, error_code(&body).as_str()), (409, "voucher_gap"));
    let (status, body) = deliver(voucher(1, Amount(charged.units() - 1), 1));
    assert_eq!((status, error_code(&body).as_str()), (409, "wrong_total"));
    let mut forged = voucher(1, charged, 1);
    forged.voucher.total = Amount(charged.units() * 2);
    let (status, body) = deliver(forged);
    assert_eq!((status, error_code(&body).as_str()), (401, "bad_signature"));
    let (status, body) = deliver(voucher(1, charged, 1));
    assert_eq!(status, 200, "{body}");
    // Paid once: the same leaf is no longer payable.
    let (status, body) = deliver(voucher(2, Amount(charged.units() * 2), 1));
    assert_eq!(
        (status, error_code(&body).as_str()),
        (404, "unknown_response")
    );
    let stats: ServeStats = server.serving.stats();
    assert_eq!((stats.vouchers, stats.vouchers_amount), (1, charged));
    assert_eq!(stats.vouchers_refused, 4);
    assert_eq!(server.serving.book().pending()[0].1, 1);
}

pub(crate) fn commitment(n: u64, charged: u128) -> (String, ResponseCommitment) {
    let req = completion(Hash::of(b"weights"), n, "x", 1);
    let text = String::from_utf8(req.canonical_bytes()).unwrap();
    let c = ResponseCommitment {
        model: req.model,
        key: req.key,
        request: request_hash(text.as_bytes()),
        seed: req.seed(),
        output: Hash::of(&n.to_le_bytes()),
        tokens_in: 1,
        tokens_out: 1,
        charged: Amount(charged),
    };
    (text, c)
}

fn me() -> AccountId {
    provider_key().account()
}

#[test]
fn voucher_continuity_rules() {
    let mut book = Book::in_memory();
    let (text, c) = commitment(1, 100);
    let leaf = c.leaf();
    book.remember(text, c, 0);
    let id = chain_id();
    let other_provider = VoucherError::WrongProvider(Keypair::from_seed(9).account());
    let mut v = voucher(1, Amount(100), 1);
    v.voucher.provider = Keypair::from_seed(9).account();
    let v = v.voucher.sign(api_key().keypair());
    assert_eq!(book.accept(&v, &leaf, &me(), &id), Err(other_provider));
    let wrong_chain = ChainId::new("another-chain").unwrap();
    assert!(matches!(
        book.accept(&voucher(1, Amount(100), 1), &leaf, &me(), &wrong_chain),
        Err(VoucherError::WrongChain { .. })
    ));
    // Another channel than the request named.
    assert!(matches!(
        book.accept(&voucher(1, Amount(100), 2), &leaf, &me(), &id),
        Err(VoucherError::WrongChannel { .. })
    ));
    // Signed by another key.
    let stranger = Voucher {
        key: Keypair::from_seed(5).public_key().clone(),
        ..voucher(1, Amount(100), 1).voucher
    }
    .sign(&Keypair::from_seed(5));
    assert!(matches!(
        book.accept(&stranger, &leaf, &me(), &id),
        Err(VoucherError::WrongChannel { .. })
    ));
    assert_eq!(
        book.accept(&voucher(3, Amount(100), 1), &leaf, &me(), &id),
        Err(VoucherError::Gap { got: 3, want: 1 })
    );
    assert_eq!(
        book.accept(&voucher(1, Amount(99), 1), &leaf, &me(), &id),
        Err(VoucherError::WrongTotal {
            got: Amount(99),
            want: Amount(100)
        })
    );
    assert!(book.pending().is_empty(), "refusals change nothing");
    assert_eq!(
        book.accept(&voucher(1, Amount(100), 1), &leaf, &me(), &id),
        Ok(Amount(100))
    );
    // The next response continues from (1, 100).
    let (text, c) = commitment(2, 50);
    let leaf2 = c.leaf();
    book.remember(text, c, 1);
    assert_eq!(
        book.accept(&voucher(2, Amount(100), 1), &leaf2, &me(), &id),
        Err(VoucherError::WrongTotal {
            got: Amount(100),
            want: Amount(150)
        })
    );
    assert_eq!(
        book.accept(&voucher(2, Amount(150), 1), &leaf2, &me(), &id),
        Ok(Amount(50))
    );
}

#[test]
fn unpaid_responses_expire_and_are_bounded() {
    let mut book = Book::in_memory();
    let (text, c) = commitment(1, 1);
    let leaf = c.leaf();
    book.remember(text, c, 0);
    let (text, c) = commitment(2, 1);
    book.remember(text, c, super::book::UNPAID_TTL_MS + 1);
    assert_eq!(book.unpaid_len(), 1, "the first expired");
    assert_eq!(
        book.accept(&voucher(1, Amount(1), 1), &leaf, &me(), &chain_id()),
        Err(VoucherError::UnknownResponse(leaf))
    );
    for n in 0..(MAX_UNPAID as u64 + 10) {
        let (text, c) = commitment(100 + n, 1);
        book.remember(text, c, super::book::UNPAID_TTL_MS + 2);
    }
    assert_eq!(book.unpaid_len(), MAX_UNPAID);
}

fn pay(book: &mut Book, n: u64) -> Hash {
    let (text, c) = commitment(n, 10);
    let leaf = c.leaf();
    book.remember(text, c, 0);
    let v = voucher(n, Amount(10 * u128::from(n)), 1);
    book.accept(&v, &leaf, &me(), &chain_id()).unwrap();
    leaf
}

#[test]
fn pending_responses_and_batches_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key = api_key().id();
    {
        let mut book = Book::open(dir.path()).unwrap();
        for n in 1..=4 {
            pay(&mut book, n);
        }
    }
    let mut book = Book::open(dir.path()).unwrap();
    assert_eq!(
        book.pending(),
        vec![((key, 1), 4)],
        "paid responses survive"
    );
    let latest = book.channel(&key, 1).unwrap().latest.clone().unwrap();
    assert_eq!(
        (latest.voucher.responses, latest.voucher.total),
        (4, Amount(40))
    );
    let hash = book.cut(&key, 1, 3).unwrap().expect("a batch");
    book.mark_uploaded(&hash).unwrap();
    drop(book);
    let mut book = Book::open(dir.path()).unwrap();
    assert_eq!(
        book.pending(),
        vec![((key, 1), 1)],
        "one left after a cut of three"
    );
    let batch = book
        .batches()
        .get(&hash)
        .expect("the batch survives")
        .clone();
    assert!(batch.uploaded && batch.sent_at.is_none());
    assert_eq!(
        batch.voucher.voucher.responses, 3,
        "paid by its last response's voucher"
    );
    assert_eq!(batch.voucher.voucher.total, Amount(30));
    // The channel continues from its latest voucher after the restart.
    pay(&mut book, 5);
    book.mark_sent(&hash, 10).unwrap();
    assert!(
        book.forget_old(10 + super::book::BATCH_RETENTION_BLOCKS)
            .is_empty()
    );
    assert_eq!(
        book.forget_old(11 + super::book::BATCH_RETENTION_BLOCKS),
        vec![hash]
    );
    drop(book);
    assert!(Book::open(dir.path()).unwrap().batches().is_empty());
}

#[test]
fn batch_file_root_and_proofs_agree() {
    let mut book = Book::in_memory();
    let leaves: Vec<Hash> = (1..=5).map(|n| pay(&mut book, n)).collect();
    let hash = book.cut(&api_key().id(), 1, 16).unwrap().unwrap();
    let batch = book.batches()[&hash].clone();
    let bytes = batch.file_bytes();
    assert_eq!(Hash::of(&bytes), hash);
    let file: BatchFile = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        file.entries.iter().map(|e| e.leaf).collect::<Vec<_>>(),
        leaves
    );
    for (i, e) in file.entries.iter().enumerate() {
        let req: InferenceRequest = serde_json::from_str(&e.request).unwrap();
        assert_eq!(
            req.canonical_bytes(),
            e.request.as_bytes(),
            "entries are canonical"
        );
        let (c, proof) = batch.opening(i as u64).unwrap();
        assert_eq!(c.leaf(), e.leaf);
        assert_eq!(c.request, request_hash(e.request.as_bytes()));
        assert!(proof.verify(&batch.root(), &c.leaf()), "proof {i}");
    }
    assert!(batch.opening(5).is_none());
    assert_eq!(
        orrery_types::merkle::merkle_root(&leaves),
        batch.root(),
        "the root is the Merkle root over the leaves"
    );
}

#[test]
fn wrong_model_serves_other_outputs_under_the_real_hash() {
    let dir = tempfile::tempdir().unwrap();
    let m = model_config(&write_model(dir.path()));
    let honest = ServedModel::load(&m, Cheat::None).unwrap();
    let cheat = ServedModel::load(&m, Cheat::WrongModel).unwrap();
    assert_eq!(
        honest.offer(),
        cheat.offer(),
        "the cheater claims the same model"
    );
    let req = completion(honest.weights(), 1, "the same prompt", 16);
    let a = honest.compute(&req.task, 1).unwrap();
    let b = cheat.compute(&req.task, 1).unwrap();
    assert_ne!(a.digest(), b.digest());
}

/// A provider with a GPU backend serves from it: the same response, bit for bit, as the CPU
/// (so checkers on any device agree). Skips without an adapter unless `ORRERY_GPU_TESTS=1`.
#[test]
fn gpu_served_model_answers_as_the_cpu() {
    let Some(gpu) = crate::gpu::gpu_or_skip("gpu_served_model_answers_as_the_cpu") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let m = model_config(&write_model(dir.path()));
    let cpu = ServedModel::load(&m, Cheat::None).unwrap();
    let mut on_gpu = ServedModel::load(&m, Cheat::None).unwrap();
    on_gpu.use_device(&gpu).unwrap();
    let req = completion(cpu.weights(), 5, "on the gpu", 12);
    assert_eq!(
        on_gpu.compute(&req.task, 1).unwrap(),
        cpu.compute(&req.task, 1).unwrap()
    );
}

/// For `orrery_ml`'s deterministic engine: generation is the same on 1 and 2 threads.
#[test]
fn thread_count_does_not_change_a_response() {
    let dir = tempfile::tempdir().unwrap();
    let m = ServedModel::load(&model_config(&write_model(dir.path())), Cheat::None).unwrap();
    let req = completion(m.weights(), 9, "threads", 20);
    assert_eq!(
        m.compute(&req.task, 1).unwrap(),
        m.compute(&req.task, 2).unwrap()
    );
}

#[test]
fn serving_loads_from_config_and_reports_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(&dir.path().join("m"));
    let config = serve_config(&path, 1);
    config.validate().unwrap();
    let s = Serving::load(
        &config,
        provider_key(),
        Cheat::None,
        &dir.path().join("data"),
        None,
    )
    .unwrap();
    assert_eq!(s.offers()[0].context, CONTEXT as u32);
    std::fs::remove_file(path.join("tokenizer.json")).unwrap();
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("tokenizer.json is missing"), "{err}");
}

/// all-MiniLM-L6-v2 as `scripts/fetch-models.sh` unpacks it (`$ORRERY_MODELS`, default
/// `<repo>/target/models`); `None` (the test says "skipped") when absent,
/// unless `ORRERY_E2E=1`, where the test fails saying how to get it.
fn minilm_dir() -> Option<PathBuf> {
    orrery_ml::infer::files::reference_model_for_tests("all-minilm-l6-v2")
}

#[test]
fn embeddings_are_served_signed_and_reproducible() {
    let Some(dir) = minilm_dir() else {
        return;
    };
    let mut config = serve_config(&dir, 1);
    config.models[0].name = "all-minilm-l6-v2".into();
    let model = ServedModel::load(&config.models[0], Cheat::None).unwrap();
    let weights = model.weights();
    let s = Serving::new(&config, provider_key(), vec![model], Book::in_memory());
    let serving = Arc::new(s);
    let handle = http::start(serving.clone(), "127.0.0.1:0").unwrap();
    let url = format!("http://{}/infer", handle.addr());
    let mut req = completion(weights, 1, "x", 1);
    req.task = InferenceTask::Embeddings {
        inputs: vec![
            "A cat sat on the mat.".into(),
            "Orrery serves models.".into(),
        ],
    };
    let (status, body) = post(&url, &req.canonical_bytes(), None);
    assert_eq!(status, 200, "{body}");
    let r: SignedResponse = serde_json::from_str(&body).unwrap();
    assert!(r.verify());
    let InferenceOutput::Embeddings { vectors } = &r.output else {
        panic!("embeddings expected");
    };
    assert_eq!(vectors.len(), 2);
    for v in vectors {
        assert_eq!(v.len(), 384);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length: {norm}");
    }
    assert_eq!((r.commitment.tokens_out, r.commitment.seed), (0, 0));
    let again = ServedModel::load(&config.models[0], Cheat::None).unwrap();
    assert_eq!(
        again.compute(&req.task, 2).unwrap().digest(),
        r.commitment.output
    );
    // Too many inputs; an input over the model's 256 tokens; a completion.
    req.task = InferenceTask::Embeddings {
        inputs: vec!["x".into(); 65],
    };
    let (status, body) = post(&url, &req.canonical_bytes(), None);
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "invalid_request_error")
    );
    req.task = InferenceTask::Embeddings {
        inputs: vec!["word ".repeat(400)],
    };
    let (status, body) = post(&url, &req.canonical_bytes(), None);
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "context_length_exceeded")
    );
    let generation = completion(weights, 2, "hello", 3);
    let (status, body) = post(&url, &generation.canonical_bytes(), None);
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "invalid_request_error")
    );
}

#[test]
fn the_serve_table_parses_and_bad_fields_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(&dir.path().join("m"));
    let base = format!(
        r#"
node = "http://127.0.0.1:7420"
key_seed = 3
data_dir = "/tmp/orrery-serve-test"
region = "eu-west"
stake = "300"
cheat = "wrong_model"
[prices]
gpu_hour = "2"
cpu_core_hour = "0.05"
ram_gib_hour = "0"
mega_unit = "0.001"
[serve]
listen = "127.0.0.1:7100"
max_concurrent = 3
[[serve.models]]
name = "tiny"
dir = "{}"
price_in = "0.1"
price_out = "0.4"
sample_bps = 100
"#,
        model.display()
    );
    let c = crate::config::ProviderConfig::from_toml(&base).unwrap();
    assert_eq!(c.cheat, Cheat::WrongModel);
    let serve = c.serve.clone().unwrap();
    assert_eq!(
        (serve.max_concurrent, serve.threads, serve.max_batch),
        (3, 1, 256)
    );
    assert_eq!(serve.models[0].price_out, "0.4".parse().unwrap());
    serve.validate().unwrap();
    let err = |text: String| match crate::config::ProviderConfig::from_toml(&text) {
        Err(e) => e.to_string(),
        Ok(c) => c.serve.unwrap().validate().unwrap_err().to_string(),
    };
    let e = err(base.replace("max_concurrent = 3", "max_concurent = 3"));
    assert!(e.contains("max_concurent"), "{e}");
    let e = err(base.replace("sample_bps = 100", "sample_bps = 100\nprice = \"1\""));
    assert!(e.contains("price"), "{e}");
    let e = err(base.replace("\"0.1\"", "\"-1\""));
    assert!(e.contains("-1") || e.contains("price_in"), "{e}");
    let e = err(base.replace("\"0.1\"", "\"0\"").replace("\"0.4\"", "\"0\""));
    assert!(e.contains("both 0"), "{e}");
    let e = err(base.replace("sample_bps = 100", "sample_bps = 0"));
    assert!(e.contains("sample_bps"), "{e}");
    let e = err(base.replace("max_concurrent = 3", "max_concurrent = 0"));
    assert!(e.contains("max_concurrent"), "{e}");
    let e = err(base.replace("127.0.0.1:7100", "not an address"));
    assert!(e.contains("listen"), "{e}");
    let e = err(base.replace(&model.display().to_string(), "/nonexistent/model"));
    assert!(e.contains("model.safetensors is missing"), "{e}");
}
