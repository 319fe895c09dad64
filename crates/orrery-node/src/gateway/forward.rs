//! Talking to providers: `POST {endpoint}/infer` with the canonical request bytes, a whole
//! [`SignedResponse`] back or a stream of [`StreamEvent`]s; `POST {endpoint}/voucher` after;
//! and the checks a response must pass before anyone is paid.

use orrery_market::ModelCandidate;
use orrery_types::amount::Amount;
use orrery_types::hash::Hash;
use orrery_types::inference::{
    InferenceOutput, SignedResponse, StreamEvent, VoucherDelivery, request_hash,
};
use std::time::Duration;

/// Largest answer or single stream event read from a provider: a full-context generation or
/// 64 embeddings of a few thousand floats as JSON fit well within it.
pub const MAX_PROVIDER_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// Why a provider's attempt failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderFailure {
    /// Could not connect, or the connection broke.
    #[error("provider {endpoint} could not be reached: {detail}")]
    Unreachable {
        /// Where.
        endpoint: String,
        /// Why.
        detail: String,
    },
    /// It did not answer in time.
    #[error("provider {endpoint} did not answer within {secs} s")]
    Timeout {
        /// Where.
        endpoint: String,
        /// The limit.
        secs: u64,
    },
    /// It answered an HTTP error.
    #[error("provider {endpoint} answered HTTP {status}: {message}")]
    Refused {
        /// Where.
        endpoint: String,
        /// The status.
        status: u16,
        /// Its error code, if it gave one.
        code: Option<String>,
        /// Its message.
        message: String,
    },
    /// Its answer is not what the protocol says.
    #[error("provider {endpoint} answered something malformed: {detail}")]
    Malformed {
        /// Where.
        endpoint: String,
        /// What.
        detail: String,
    },
    /// Its signed response does not check out (see [`verify`]).
    #[error("provider {endpoint}'s response does not verify: {detail}")]
    Unverified {
        /// Where.
        endpoint: String,
        /// Which check failed.
        detail: String,
    },
    /// It reported an error in its stream.
    #[error("provider {endpoint} failed: {message}")]
    Failed {
        /// Where.
        endpoint: String,
        /// Its message.
        message: String,
    },
}

impl ProviderFailure {
    /// The provider's error code when it refused the request as the client's fault (the
    /// prompt is longer than the context): no other provider would answer differently.
    pub fn client_fault(&self) -> Option<&str> {
        match self {
            ProviderFailure::Refused {
                code: Some(code), ..
            } if code == "context_length_exceeded" => Some(code),
            _ => None,
        }
    }

    /// Whether the provider never answered at all (counts against its latency).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ProviderFailure::Unreachable { .. } | ProviderFailure::Timeout { .. }
        )
    }
}

/// What a response must match: the request as sent and the offer that prices it.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    /// The provider routed to.
    pub candidate: &'a ModelCandidate,
    /// The canonical bytes sent.
    pub request: &'a [u8],
    /// The paying key.
    pub key: orrery_types::crypto::AccountId,
    /// The request's seed.
    pub seed: u64,
    /// `max_tokens` (0 for embeddings).
    pub max_tokens: u32,
    /// Embedding inputs, for an embeddings request.
    pub inputs: Option<usize>,
}

/// Check a signed response against the request and the on-chain offer. `Err` names the first
/// check that failed.
pub fn verify(r: &SignedResponse, e: &Expected<'_>) -> Result<Amount, String> {
    let c = &r.commitment;
    let offer = &e.candidate.offer;
    if r.provider != e.candidate.provider {
        return Err(format!(
            "signed by {} instead of {}",
            r.provider, e.candidate.provider
        ));
    }
    if !r.verify() {
        return Err("bad signature or an output that is not the committed one".into());
    }
    let checks: [(bool, &str); 5] = [
        (
            c.model == offer.weights,
            "commits to other weights than the offer's",
        ),
        (c.key == e.key, "names another key"),
        (
            c.request == request_hash(e.request),
            "commits to another request",
        ),
        (c.seed == e.seed, "commits to another seed"),
        (
            c.tokens_out <= e.max_tokens,
            "generated more than max_tokens",
        ),
    ];
    if let Some((_, why)) = checks.iter().find(|(ok, _)| !ok) {
        return Err((*why).to_owned());
    }
    let price = offer
        .cost(c.tokens_in, c.tokens_out)
        .ok_or("the price overflows")?;
    if c.charged != price {
        return Err(format!(
            "charges {} where the offer prices {} in / {} out tokens at {price}",
            c.charged, c.tokens_in, c.tokens_out
        ));
    }
    match (&r.output, e.inputs) {
        (InferenceOutput::Embeddings { vectors }, Some(n)) if vectors.len() == n => Ok(price),
        (InferenceOutput::Embeddings { vectors }, Some(n)) => {
            Err(format!("{} vectors for {n} inputs", vectors.len()))
        }
        (InferenceOutput::Text { .. }, None) => Ok(price),
        _ => Err("the output is of the wrong kind".into()),
    }
}

/// Timeouts of one attempt.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Until the first byte (or streamed event).
    pub first: Duration,
    /// For the whole answer, and between two streamed events.
    pub total: Duration,
}

fn url(endpoint: &str, path: &str) -> String {
    format!("{}{path}", endpoint.trim_end_matches('/'))
}

/// Send the request; `Ok` once the provider answered 200 (headers read).
pub async fn send(
    http: &reqwest::Client,
    endpoint: &str,
    body: Vec<u8>,
    stream: bool,
    t: Timeouts,
) -> Result<reqwest::Response, ProviderFailure> {
    let accept = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let req = http
        .post(url(endpoint, "/infer"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::ACCEPT, accept)
        .body(body)
        .send();
    let resp = match tokio::time::timeout(t.first, req).await {
        Err(_) => {
            return Err(ProviderFailure::Timeout {
                endpoint: endpoint.to_owned(),
                secs: t.first.as_secs(),
            });
        }
        Ok(Err(e)) => {
            return Err(ProviderFailure::Unreachable {
                endpoint: endpoint.to_owned(),
                detail: e.to_string(),
            });
        }
        Ok(Ok(r)) => r,
    };
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let body = read_all(resp, endpoint, t.first).await.unwrap_or_default();
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v["error"][k].as_str().map(str::to_owned))
    };
    Err(ProviderFailure::Refused {
        endpoint: endpoint.to_owned(),
        status,
        code: field("code"),
        message: field("message")
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()),
    })
}

/// Read a whole body, bounded.
pub async fn read_all(
    mut resp: reqwest::Response,
    endpoint: &str,
    limit: Duration,
) -> Result<Vec<u8>, ProviderFailure> {
    let read = async {
        let mut buf = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ProviderFailure::Unreachable {
                endpoint: endpoint.to_owned(),
                detail: e.to_string(),
            })?
        {
            if buf.len() + chunk.len() > MAX_PROVIDER_ANSWER_BYTES {
                return Err(ProviderFailure::Malformed {
                    endpoint: endpoint.to_owned(),
                    detail: format!("answer over {MAX_PROVIDER_ANSWER_BYTES} bytes"),
                });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    };
    tokio::time::timeout(limit, read)
        .await
        .map_err(|_| ProviderFailure::Timeout {
            endpoint: endpoint.to_owned(),
            secs: limit.as_secs(),
        })?
}

/// A provider's server-sent events, one [`StreamEvent`] at a time.
pub struct EventReader {
    resp: reqwest::Response,
    endpoint: String,
    buf: Vec<u8>,
}

impl EventReader {
    /// Read events from an answered request.
    pub fn new(resp: reqwest::Response, endpoint: &str) -> EventReader {
        EventReader {
            resp,
            endpoint: endpoint.to_owned(),
            buf: Vec::new(),
        }
    }

    fn malformed(&self, detail: impl Into<String>) -> ProviderFailure {
        ProviderFailure::Malformed {
            endpoint: self.endpoint.clone(),
            detail: detail.into(),
        }
    }

    /// The next event, waiting at most `limit`; `Ok(None)` when the stream ended.
    pub async fn next(&mut self, limit: Duration) -> Result<Option<StreamEvent>, ProviderFailure> {
        loop {
            if let Some(data) = self.take_event()? {
                return serde_json::from_str(&data)
                    .map(Some)
                    .map_err(|e| self.malformed(format!("bad event: {e}")));
            }
            let chunk = match tokio::time::timeout(limit, self.resp.chunk()).await {
                Err(_) => {
                    return Err(ProviderFailure::Timeout {
                        endpoint: self.endpoint.clone(),
                        secs: limit.as_secs(),
                    });
                }
                Ok(Err(e)) => {
                    return Err(ProviderFailure::Unreachable {
                        endpoint: self.endpoint.clone(),
                        detail: e.to_string(),
                    });
                }
                Ok(Ok(None)) => return Ok(None),
                Ok(Ok(Some(c))) => c,
            };
            if self.buf.len() + chunk.len() > MAX_PROVIDER_ANSWER_BYTES {
                return Err(self.malformed(format!("event over {MAX_PROVIDER_ANSWER_BYTES} bytes")));
            }
            self.buf.extend_from_slice(&chunk);
        }
    }

    /// The data of the next complete event in the buffer (comments and other fields are
    /// skipped; an event without data is skipped).
    fn take_event(&mut self) -> Result<Option<String>, ProviderFailure> {
        loop {
            let Some((end, sep)) = find_blank_line(&self.buf) else {
                return Ok(None);
            };
            let raw: Vec<u8> = self.buf.drain(..end + sep).collect();
            let text = std::str::from_utf8(&raw[..end])
                .map_err(|_| self.malformed("an event is not UTF-8"))?;
            let mut data = String::new();
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            if !data.is_empty() {
                return Ok(Some(data));
            }
        }
    }
}

/// Where the first event ends: the index of the blank line and its separator's length.
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Deliver a voucher, retrying with backoff from 200 ms; logs and gives up after `attempts`.
pub async fn deliver(
    http: reqwest::Client,
    endpoint: String,
    delivery: VoucherDelivery,
    attempts: u32,
) {
    let Ok(body) = serde_json::to_vec(&delivery) else {
        return;
    };
    let mut wait = Duration::from_millis(200);
    for attempt in 1..=attempts.max(1) {
        let sent = http
            .post(url(&endpoint, "/voucher"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                tracing::warn!(%endpoint, status = r.status().as_u16(), attempt, "voucher refused")
            }
            Err(e) => tracing::warn!(%endpoint, error = %e, attempt, "voucher delivery failed"),
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    tracing::error!(
        %endpoint,
        channel = delivery.voucher.voucher.channel,
        responses = delivery.voucher.voucher.responses,
        "voucher not delivered; the channel's next voucher covers it"
    );
}

/// The receipt's leaf of a verified response.
pub fn leaf(r: &SignedResponse) -> Hash {
    r.commitment.leaf()
}
