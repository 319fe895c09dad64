//! OpenAI's request and response shapes, as the official clients send and read them, and
//! their translation to and from the network's [`InferenceTask`].
//!
//! Accepted and ignored (they change nothing a provider computes): `user`,
//! `presence_penalty`, `frequency_penalty`, `logit_bias`, `stream_options`, `dimensions`,
//! `response_format`. Refused with 400 because the network cannot honour them: `n` or
//! `best_of` above 1, `echo`, `logprobs`, `suffix`, `tools`, token-array inputs, non-text
//! message parts.

use super::error::GatewayError;
use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::inference::{
    ChatMessage, InferenceTask, MAX_EMBEDDING_INPUTS, MAX_STOP_STRINGS, Sampling,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// `max_tokens` of a completion when the client gives none (OpenAI's own default).
pub const DEFAULT_COMPLETION_MAX_TOKENS: u32 = 16;
/// Most tokens a chat answer gets when the client gives no `max_tokens`: half the model's
/// context, at most this, so the prompt keeps room.
pub const DEFAULT_CHAT_MAX_TOKENS: u32 = 256;
/// Tokens a chat template adds per message, for the worst-case price estimate.
pub const TEMPLATE_TOKENS_PER_MESSAGE: u32 = 8;

/// Which OpenAI route a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/v1/embeddings`.
    Embeddings,
    /// `/v1/completions`.
    Completions,
    /// `/v1/chat/completions`.
    Chat,
}

/// How a generation samples, before the model's context is known.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// As given; [`Parsed::sampling`] applies the default.
    pub max_tokens: Option<u32>,
    /// Default 1.0, as OpenAI.
    pub temperature: f32,
    /// Default 1.0.
    pub top_p: f32,
    /// The client's seed, if it gave one.
    pub seed: Option<u64>,
    /// Stop strings.
    pub stop: Vec<String>,
}

/// What the request asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    /// Embed each input.
    Embeddings {
        /// The texts.
        inputs: Vec<String>,
        /// Answer vectors as base64 of little-endian f32 (what the Python client asks for).
        base64: bool,
    },
    /// Continue a prompt.
    Completion {
        /// The prompt.
        prompt: String,
        /// Sampling.
        sampling: SamplingParams,
    },
    /// Answer a conversation.
    Chat {
        /// The conversation.
        messages: Vec<ChatMessage>,
        /// Sampling.
        sampling: SamplingParams,
    },
}

/// A checked OpenAI request.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    /// The model name asked for.
    pub model: String,
    /// Whether to answer as server-sent events.
    pub stream: bool,
    /// What to compute.
    pub work: Work,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrList {
    One(String),
    Many(Vec<String>),
    Other(Value),
}

#[derive(Deserialize)]
struct EmbeddingsBody {
    model: String,
    input: TextOrList,
    encoding_format: Option<String>,
}

#[derive(Deserialize)]
struct GenerationBody {
    model: String,
    prompt: Option<TextOrList>,
    messages: Option<Vec<MessageBody>>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<i64>,
    stop: Option<TextOrList>,
    stream: Option<bool>,
    n: Option<u32>,
    best_of: Option<u32>,
    echo: Option<bool>,
    logprobs: Option<Value>,
    suffix: Option<String>,
    tools: Option<Value>,
}

#[derive(Deserialize)]
struct MessageBody {
    role: String,
    content: Option<Content>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

fn json_error(e: serde_json::Error) -> GatewayError {
    GatewayError::invalid(format!("the request body is not a valid request: {e}"))
}

/// Parse and check a request body for `route`.
pub fn parse(route: Route, body: &[u8]) -> Result<Parsed, GatewayError> {
    match route {
        Route::Embeddings => parse_embeddings(body),
        Route::Completions | Route::Chat => parse_generation(route, body),
    }
}

fn parse_embeddings(body: &[u8]) -> Result<Parsed, GatewayError> {
    let b: EmbeddingsBody = serde_json::from_slice(body).map_err(json_error)?;
    let inputs = match b.input {
        TextOrList::One(s) => vec![s],
        TextOrList::Many(v) => v,
        TextOrList::Other(_) => {
            return Err(GatewayError::invalid(
                "`input` must be a string or a list of strings (token arrays are not supported)",
            )
            .param("input"));
        }
    };
    if inputs.is_empty() || inputs.len() > MAX_EMBEDDING_INPUTS {
        return Err(GatewayError::invalid(format!(
            "`input` must hold 1 to {MAX_EMBEDDING_INPUTS} texts; got {}",
            inputs.len()
        ))
        .param("input"));
    }
    if inputs.iter().any(String::is_empty) {
        return Err(GatewayError::invalid("`input` texts must not be empty").param("input"));
    }
    let base64 = match b.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(GatewayError::invalid(format!(
                "`encoding_format` must be \"float\" or \"base64\", not {other:?}"
            ))
            .param("encoding_format"));
        }
    };
    Ok(Parsed {
        model: b.model,
        stream: false,
        work: Work::Embeddings { inputs, base64 },
    })
}

fn parse_generation(route: Route, body: &[u8]) -> Result<Parsed, GatewayError> {
    let b: GenerationBody = serde_json::from_slice(body).map_err(json_error)?;
    refuse_unsupported(&b)?;
    let sampling = sampling(&b)?;
    let work = if route == Route::Chat {
        let messages = b
            .messages
            .ok_or_else(|| GatewayError::invalid("missing field `messages`").param("messages"))?;
        Work::Chat {
            messages: chat_messages(messages)?,
            sampling,
        }
    } else {
        let prompt = match b.prompt {
            Some(TextOrList::One(p)) => p,
            Some(TextOrList::Many(mut v)) if v.len() == 1 => v.remove(0),
            Some(_) => {
                return Err(GatewayError::invalid(
                    "`prompt` must be one string (lists of prompts and token arrays are not supported)",
                )
                .param("prompt"));
            }
            None => return Err(GatewayError::invalid("missing field `prompt`").param("prompt")),
        };
        Work::Completion { prompt, sampling }
    };
    Ok(Parsed {
        model: b.model,
        stream: b.stream.unwrap_or(false),
        work,
    })
}

fn refuse_unsupported(b: &GenerationBody) -> Result<(), GatewayError> {
    let refuse = |param: &'static str, what: &str| {
        Err(GatewayError::invalid(format!("{what} is not supported by this gateway")).param(param))
    };
    if b.n.is_some_and(|n| n != 1) {
        return refuse("n", "more than one choice (`n` > 1)");
    }
    if b.best_of.is_some_and(|n| n != 1) {
        return refuse("best_of", "`best_of` > 1");
    }
    if b.echo == Some(true) {
        return refuse("echo", "`echo`");
    }
    if b.logprobs
        .as_ref()
        .is_some_and(|v| !v.is_null() && v != &json!(false))
    {
        return refuse("logprobs", "`logprobs`");
    }
    if b.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
        return refuse("suffix", "`suffix`");
    }
    if b.tools.as_ref().is_some_and(|v| !v.is_null()) {
        return refuse("tools", "tool calling");
    }
    Ok(())
}

fn sampling(b: &GenerationBody) -> Result<SamplingParams, GatewayError> {
    let max_tokens = b.max_completion_tokens.or(b.max_tokens);
    if max_tokens == Some(0) {
        return Err(GatewayError::invalid("`max_tokens` must be at least 1").param("max_tokens"));
    }
    let temperature = b.temperature.unwrap_or(1.0);
    if !(temperature.is_finite() && (0.0..=2.0).contains(&temperature)) {
        return Err(
            GatewayError::invalid("`temperature` must be between 0 and 2").param("temperature"),
        );
    }
    let top_p = b.top_p.unwrap_or(1.0);
    if !(top_p.is_finite() && top_p > 0.0 && top_p <= 1.0) {
        return Err(GatewayError::invalid("`top_p` must be in (0, 1]").param("top_p"));
    }
    let stop = match &b.stop {
        None => Vec::new(),
        Some(TextOrList::One(s)) => vec![s.clone()],
        Some(TextOrList::Many(v)) => v.clone(),
        Some(TextOrList::Other(v)) if v.is_null() => Vec::new(),
        Some(TextOrList::Other(_)) => {
            return Err(
                GatewayError::invalid("`stop` must be a string or a list of strings").param("stop"),
            );
        }
    };
    if stop.len() > MAX_STOP_STRINGS || stop.iter().any(String::is_empty) {
        return Err(GatewayError::invalid(format!(
            "`stop` takes at most {MAX_STOP_STRINGS} non-empty strings"
        ))
        .param("stop"));
    }
    Ok(SamplingParams {
        max_tokens,
        temperature,
        top_p,
        // OpenAI's seed is a signed integer; its bits are the seed.
        seed: b.seed.map(|s| s as u64),
        stop,
    })
}

fn chat_messages(messages: Vec<MessageBody>) -> Result<Vec<ChatMessage>, GatewayError> {
    if messages.is_empty() {
        return Err(GatewayError::invalid("`messages` must not be empty").param("messages"));
    }
    messages
        .into_iter()
        .map(|m| {
            let role = match m.role.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                other => {
                    return Err(GatewayError::invalid(format!(
                        "message role {other:?} is not supported (system, user, assistant)"
                    ))
                    .param("messages"));
                }
            };
            let content = match m.content {
                None => String::new(),
                Some(Content::Text(t)) => t,
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for p in parts {
                        match (p.kind.as_str(), p.text) {
                            ("text", Some(t)) => text.push_str(&t),
                            _ => {
                                return Err(GatewayError::invalid(
                                    "only text message parts are supported",
                                )
                                .param("messages"));
                            }
                        }
                    }
                    text
                }
            };
            Ok(ChatMessage {
                role: role.to_owned(),
                content,
            })
        })
        .collect()
}

impl Parsed {
    /// Generated tokens the request may produce once the model's context is known (0 for
    /// embeddings), or 400 when `max_tokens` does not fit the context.
    pub fn max_tokens(&self, context: u32) -> Result<u32, GatewayError> {
        let (given, default) = match &self.work {
            Work::Embeddings { .. } => return Ok(0),
            Work::Completion { sampling, .. } => {
                (sampling.max_tokens, DEFAULT_COMPLETION_MAX_TOKENS)
            }
            Work::Chat { sampling, .. } => (
                sampling.max_tokens,
                DEFAULT_CHAT_MAX_TOKENS.min(context / 2),
            ),
        };
        match given {
            Some(n) if n >= context => Err(GatewayError::context_length(format!(
                "`max_tokens` is {n} but model {:?} has a context of {context} tokens (prompt \
                 included); ask for fewer",
                self.model
            ))
            .param("max_tokens")),
            Some(n) => Ok(n),
            None => Ok(default.clamp(1, context.saturating_sub(1).max(1))),
        }
    }

    /// An upper estimate of the input tokens, for the worst-case price: one token per byte
    /// (byte-level tokenizers never produce more), plus the chat template.
    pub fn input_estimate(&self) -> u32 {
        let bytes: usize = match &self.work {
            Work::Embeddings { inputs, .. } => inputs.iter().map(String::len).sum(),
            Work::Completion { prompt, .. } => prompt.len(),
            Work::Chat { messages, .. } => messages
                .iter()
                .map(|m| m.content.len() + TEMPLATE_TOKENS_PER_MESSAGE as usize)
                .sum(),
        };
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }

    /// Embedding inputs, if this is an embeddings request.
    pub fn inputs(&self) -> Option<usize> {
        match &self.work {
            Work::Embeddings { inputs, .. } => Some(inputs.len()),
            _ => None,
        }
    }

    /// The network's task, with `max_tokens` resolved and `seed` the client's or `drawn`.
    pub fn task(&self, max_tokens: u32, drawn: u64) -> InferenceTask {
        let sampling = |s: &SamplingParams| Sampling {
            max_tokens,
            temperature: s.temperature,
            top_p: s.top_p,
            seed: s.seed.unwrap_or(drawn),
            stop: s.stop.clone(),
        };
        match &self.work {
            Work::Embeddings { inputs, .. } => InferenceTask::Embeddings {
                inputs: inputs.clone(),
            },
            Work::Completion {
                prompt,
                sampling: s,
            } => InferenceTask::Completion {
                prompt: prompt.clone(),
                sampling: sampling(s),
            },
            Work::Chat {
                messages,
                sampling: s,
            } => InferenceTask::Chat {
                messages: messages.clone(),
                sampling: sampling(s),
            },
        }
    }
}

/// Who answered and what it cost: the `orrery` object of every answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Served {
    /// The provider paid.
    pub provider: AccountId,
    /// Tokens billed.
    pub tokens_in: u32,
    /// Tokens billed.
    pub tokens_out: u32,
    /// What the key paid.
    pub price: Amount,
    /// The commitment's leaf.
    pub receipt: Hash,
}

impl Served {
    /// The `orrery` object.
    pub fn json(&self) -> Value {
        json!({
            "provider": self.provider,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "price": self.price,
            "receipt": self.receipt,
            "receipt_url": format!("/explorer/#/receipts/{}", self.receipt),
        })
    }

    /// OpenAI's `usage`.
    pub fn usage(&self) -> Value {
        json!({
            "prompt_tokens": self.tokens_in,
            "completion_tokens": self.tokens_out,
            "total_tokens": u64::from(self.tokens_in) + u64::from(self.tokens_out),
        })
    }
}

/// Ids, the creation time and the model name shared by an answer and its chunks.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// `cmpl-…` or `chatcmpl-…`.
    pub id: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// The model name the client asked for.
    pub model: String,
    /// Which route.
    pub route: Route,
}

impl Envelope {
    /// The envelope of an answer to request number `nonce`.
    pub fn new(route: Route, model: &str, nonce: u64, created: u64) -> Envelope {
        let prefix = if route == Route::Chat {
            "chatcmpl"
        } else {
            "cmpl"
        };
        Envelope {
            id: format!("{prefix}-{nonce:016x}"),
            created,
            model: model.to_owned(),
            route,
        }
    }

    /// A whole (non-streamed) generation answer.
    pub fn completion(&self, text: &str, finish: &str, served: &Served) -> Value {
        let choice = if self.route == Route::Chat {
            json!({"index": 0, "message": {"role": "assistant", "content": text},
                   "logprobs": null, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish})
        };
        json!({
            "id": self.id,
            "object": if self.route == Route::Chat { "chat.completion" } else { "text_completion" },
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": served.usage(),
            "orrery": served.json(),
        })
    }

    /// One streamed chunk: new text, or (with `finish`) the last one, which also carries
    /// `usage` and `orrery`.
    pub fn chunk(
        &self,
        text: Option<&str>,
        finish: Option<&str>,
        served: Option<&Served>,
    ) -> Value {
        let choice = if self.route == Route::Chat {
            let delta = match text {
                Some(t) => json!({"content": t}),
                None if finish.is_none() => json!({"role": "assistant", "content": ""}),
                None => json!({}),
            };
            json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish})
        };
        let mut v = json!({
            "id": self.id,
            "object": if self.route == Route::Chat { "chat.completion.chunk" } else { "text_completion" },
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        });
        if let Some(s) = served {
            v["usage"] = s.usage();
            v["orrery"] = s.json();
        }
        v
    }
}

/// An embeddings answer.
pub fn embeddings(model: &str, vectors: &[Vec<f32>], base64: bool, served: &Served) -> Value {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64_encode(&bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": served.tokens_in, "total_tokens": served.tokens_in},
        "orrery": served.json(),
    })
}

/// `GET /v1/models`.
pub fn model_list<'a>(names: impl Iterator<Item = &'a str>) -> Value {
    let data: Vec<Value> = names
        .map(|n| json!({"id": n, "object": "model", "created": 0, "owned_by": "orrery"}))
        .collect();
    json!({"object": "list", "data": data})
}

/// Standard base64 with padding (RFC 4648), as Python's `base64.b64decode` reads it.
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
