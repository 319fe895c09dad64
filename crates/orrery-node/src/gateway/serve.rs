//! The handlers: admission, budget, attempts, and the answer (whole or streamed). The flow is
//! specified in the module docs of [`crate::gateway`].

use super::Gateway;
use super::chain::KeyState;
use super::error::GatewayError;
use super::forward::{self, EventReader, Expected, ProviderFailure, Timeouts};
use super::openai::{self, Envelope, Parsed, Route, Served, Work};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use orrery_client::inference::InferenceReceiptView;
use orrery_market::{ModelCandidate, ModelQuery, ModelRouteError};
use orrery_types::amount::Amount;
use orrery_types::inference::{
    ApiKey, InferenceOutput, InferenceRequest, MAX_REQUEST_BYTES, ModelKind, SignedResponse,
    StreamEvent, VoucherDelivery,
};
use orrery_types::tx::ChainId;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::OwnedSemaphorePermit;

type Gw = State<Arc<Gateway>>;

/// Stream chunks buffered for a slow client before the provider's stream waits.
const STREAM_BUFFER: usize = 64;

pub(super) async fn models(State(gw): Gw) -> Response {
    let names = gw.model_names().await;
    axum::Json(openai::model_list(names.iter().map(String::as_str))).into_response()
}

pub(super) async fn embeddings(
    State(gw): Gw,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(gw, Route::Embeddings, headers, body).await
}

pub(super) async fn completions(
    State(gw): Gw,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(gw, Route::Completions, headers, body).await
}

pub(super) async fn chat(
    State(gw): Gw,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(gw, Route::Chat, headers, body).await
}

/// Everything an admitted request carries through its attempts.
struct Admitted {
    key: ApiKey,
    parsed: Parsed,
    max_tokens: u32,
    candidates: Vec<ModelCandidate>,
    _reservation: Reservation,
    _permit: OwnedSemaphorePermit,
}

async fn handle(
    gw: Arc<Gateway>,
    route: Route,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let admitted = match admit(&gw, route, &headers, body).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    if admitted.parsed.stream {
        stream(gw, route, admitted).await
    } else {
        match whole(&gw, route, admitted).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        }
    }
}

fn bearer(headers: &HeaderMap) -> Result<ApiKey, GatewayError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            GatewayError::invalid_key(
                "no API key: send `Authorization: Bearer sk-orr-…` (create a key with `orrery \
                 inference key create`)",
            )
        })?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .unwrap_or(value);
    ApiKey::parse(token).map_err(|e| GatewayError::invalid_key(e.to_string()))
}

async fn admit(
    gw: &Arc<Gateway>,
    route: Route,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Admitted, GatewayError> {
    let permit = gw.slots.clone().try_acquire_owned().map_err(|_| {
        GatewayError::unavailable(
            "overloaded",
            "this gateway serves too many requests; retry shortly",
        )
    })?;
    let key = bearer(headers)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            GatewayError::too_large(gw.config.max_body_bytes)
        } else {
            GatewayError::invalid(format!("the request body could not be read: {e}"))
        }
    })?;
    let gw2 = gw.clone();
    let id = key.id();
    let state = tokio::task::spawn_blocking(move || gw2.chain.key(&id))
        .await
        .map_err(|e| GatewayError::internal(format!("key lookup failed: {e}")))?;
    let state = check_key(&key, state)?;
    let parsed = openai::parse(route, &body)?;
    gw.refresh().await;
    let (max_tokens, candidates) = route_request(gw, route, &parsed)?;
    let worst = worst_case(&parsed, max_tokens, &candidates)?;
    let reservation = reserve(gw, &key, &state, worst).await?;
    Ok(Admitted {
        key,
        parsed,
        max_tokens,
        candidates,
        _reservation: reservation,
        _permit: permit,
    })
}

fn check_key(key: &ApiKey, state: Option<KeyState>) -> Result<KeyState, GatewayError> {
    let state = state.ok_or_else(|| {
        GatewayError::invalid_key(format!(
            "API key {} is not known on chain: create it with a CreateInferenceKey transaction, \
             or wait for it to be finalized",
            key.id()
        ))
    })?;
    if let Some(h) = state.revoked_at {
        return Err(GatewayError::revoked(format!(
            "API key {} was revoked at height {h}; create a new key",
            key.id()
        )));
    }
    Ok(state)
}

/// The providers to try, best first, and the request's `max_tokens`.
fn route_request(
    gw: &Gateway,
    route: Route,
    parsed: &Parsed,
) -> Result<(u32, Vec<ModelCandidate>), GatewayError> {
    let want = if route == Route::Embeddings {
        ModelKind::Embedding
    } else {
        ModelKind::Generation
    };
    let query = ModelQuery {
        name: &parsed.model,
        tokens_in: parsed.input_estimate(),
        tokens_out: 0,
        min_context: 0,
        limit: orrery_market::models::MAX_MODEL_RESULTS,
    };
    let ranked = gw.with_router(|r| match r.kind(&parsed.model) {
        Some(kind) if kind != want => Ok(Err(kind)),
        _ => r.rank(&query).map(Ok),
    });
    let ranked = match ranked {
        Ok(Ok(r)) => r,
        Ok(Err(kind)) => return Err(wrong_kind(&parsed.model, kind)),
        Err(e @ ModelRouteError::UnknownModel { .. }) => {
            return Err(GatewayError::model_not_found(format!(
                "{e}; list them with GET /v1/models"
            )));
        }
        Err(e) => return Err(GatewayError::invalid(e.to_string())),
    };
    let largest = ranked
        .iter()
        .map(|r| r.candidate.offer.context)
        .max()
        .unwrap_or(0);
    let max_tokens = parsed.max_tokens(largest)?;
    let candidates: Vec<ModelCandidate> = ranked
        .into_iter()
        .map(|r| r.candidate)
        .filter(|c| c.offer.context > max_tokens || route == Route::Embeddings)
        .take(gw.config.max_attempts as usize)
        .collect();
    Ok((max_tokens, candidates))
}

fn wrong_kind(model: &str, kind: ModelKind) -> GatewayError {
    let hint = match kind {
        ModelKind::Embedding => "an embedding model: use /v1/embeddings",
        ModelKind::Generation => "a generation model: use /v1/completions or /v1/chat/completions",
    };
    GatewayError::invalid(format!("model {model:?} is {hint}")).param("model")
}

fn worst_case(
    parsed: &Parsed,
    max_tokens: u32,
    candidates: &[ModelCandidate],
) -> Result<Amount, GatewayError> {
    let mut worst = Amount(0);
    for c in candidates {
        let cost = c
            .offer
            .cost(parsed.input_estimate(), max_tokens)
            .ok_or_else(|| GatewayError::quota("the request's worst-case price overflows"))?;
        worst = worst.max(cost);
    }
    Ok(worst)
}

/// The worst case of a request in flight, held against its key until the request ends.
struct Reservation {
    gw: Arc<Gateway>,
    key: orrery_types::crypto::AccountId,
    units: u128,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut r = self.gw.reserved.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = r.get_mut(&self.key) {
            *v = v.saturating_sub(self.units);
            if *v == 0 {
                r.remove(&self.key);
            }
        }
    }
}

async fn reserve(
    gw: &Arc<Gateway>,
    key: &ApiKey,
    state: &KeyState,
    worst: Amount,
) -> Result<Reservation, GatewayError> {
    let id = key.id();
    let spendable = state.spendable();
    if spendable == Amount(0) {
        return Err(GatewayError::quota(format!(
            "API key {id} cannot pay: deposit {} and {} of its {} limit spent; fund the key",
            state.deposit, state.spent, state.limit
        )));
    }
    let gw2 = gw.clone();
    let outstanding = tokio::task::spawn_blocking(move || gw2.outstanding(&id))
        .await
        .map_err(|e| GatewayError::internal(format!("outstanding vouchers: {e}")))?;
    let mut reserved = gw.reserved.lock().unwrap_or_else(|p| p.into_inner());
    let held = reserved.get(&id).copied().unwrap_or(0);
    let free = spendable
        .units()
        .saturating_sub(outstanding.units())
        .saturating_sub(held);
    if worst.units() > free {
        return Err(GatewayError::quota(format!(
            "this request may cost up to {worst} but API key {id} has {} free (spendable {spendable}, \
             unsettled vouchers {outstanding}, requests in flight {}); fund the key or lower max_tokens",
            Amount(free),
            Amount(held)
        )));
    }
    *reserved.entry(id).or_insert(0) += worst.units();
    Ok(Reservation {
        gw: gw.clone(),
        key: id,
        units: worst.units(),
    })
}

/// One attempt's request, as sent.
struct Prepared {
    candidate: ModelCandidate,
    bytes: Vec<u8>,
    request: InferenceRequest,
}

async fn prepare(
    gw: &Arc<Gateway>,
    a: &Admitted,
    c: &ModelCandidate,
) -> Result<Prepared, GatewayError> {
    let gw2 = gw.clone();
    let (key, provider, weights) = (a.key.id(), c.provider, c.offer.weights);
    let channel =
        tokio::task::spawn_blocking(move || gw2.store.channel_for(key, provider, weights))
            .await
            .map_err(|e| GatewayError::internal(format!("channel table: {e}")))?
            .map_err(|e| GatewayError::internal(e.to_string()))?;
    let nonce = gw.next_nonce();
    let request = InferenceRequest {
        model: weights,
        key,
        channel,
        nonce,
        task: a.parsed.task(a.max_tokens, super::splitmix(nonce ^ 0x5eed)),
    };
    let bytes = request.canonical_bytes();
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(GatewayError::invalid(format!(
            "the request is {} bytes as forwarded; providers take at most {MAX_REQUEST_BYTES}",
            bytes.len()
        )));
    }
    Ok(Prepared {
        candidate: c.clone(),
        bytes,
        request,
    })
}

impl Prepared {
    fn expected<'a>(&'a self, a: &Admitted) -> Expected<'a> {
        Expected {
            candidate: &self.candidate,
            request: &self.bytes,
            key: a.key.id(),
            seed: self.request.seed(),
            max_tokens: a.max_tokens,
            inputs: a.parsed.inputs(),
        }
    }
}

fn timeouts(gw: &Gateway) -> Timeouts {
    Timeouts {
        first: Duration::from_secs(gw.config.first_token_timeout_secs),
        total: Duration::from_secs(gw.config.response_timeout_secs),
    }
}

/// Note an attempt's outcome in the router: in flight, and the time to first byte.
fn observe(
    gw: &Gateway,
    provider: &orrery_types::crypto::AccountId,
    started: Instant,
    failure: Option<&ProviderFailure>,
) {
    let ms = match failure {
        Some(f) if f.is_unreachable() => Some(timeouts(gw).first.as_millis() as f64),
        Some(_) => None,
        None => Some(started.elapsed().as_secs_f64() * 1e3),
    };
    gw.with_router(|r| {
        r.finished(provider);
        if let Some(ms) = ms {
            r.observe_latency(provider, ms);
        }
    });
}

async fn attempt_whole(
    gw: &Gateway,
    a: &Admitted,
    p: &Prepared,
) -> Result<(SignedResponse, Amount), ProviderFailure> {
    let t = timeouts(gw);
    let endpoint = &p.candidate.endpoint;
    let resp = forward::send(&gw.http, endpoint, p.bytes.clone(), false, t).await?;
    let body = forward::read_all(resp, endpoint, t.total).await?;
    let signed: SignedResponse =
        serde_json::from_slice(&body).map_err(|e| ProviderFailure::Malformed {
            endpoint: endpoint.clone(),
            detail: format!("not a signed response: {e}"),
        })?;
    let price =
        forward::verify(&signed, &p.expected(a)).map_err(|detail| ProviderFailure::Unverified {
            endpoint: endpoint.clone(),
            detail,
        })?;
    Ok((signed, price))
}

async fn whole(gw: &Arc<Gateway>, route: Route, a: Admitted) -> Result<Response, GatewayError> {
    let mut failures = Vec::new();
    for c in &a.candidates {
        let p = prepare(gw, &a, c).await?;
        gw.with_router(|r| r.started(&c.provider));
        let started = Instant::now();
        let result = attempt_whole(gw, &a, &p).await;
        observe(gw, &c.provider, started, result.as_ref().err());
        match result {
            Ok((signed, price)) => {
                let served = pay(gw, &a, &p, &signed, price)?;
                return Ok(answer(route, &a, &p, &signed, &served));
            }
            Err(f) => {
                if f.client_fault().is_some() {
                    return Err(GatewayError::context_length(f.to_string()));
                }
                tracing::warn!(provider = %c.provider, error = %f, "provider failed; trying the next");
                failures.push(f);
            }
        }
    }
    Err(no_answer(&a.parsed.model, &failures))
}

fn no_answer(model: &str, failures: &[ProviderFailure]) -> GatewayError {
    let list: Vec<String> = failures.iter().map(ToString::to_string).collect();
    let message = format!(
        "no provider of {model:?} gave a valid answer ({} tried): {}",
        failures.len(),
        list.join("; ")
    );
    if failures.iter().all(ProviderFailure::is_unreachable) {
        GatewayError::unavailable("provider_unavailable", message)
    } else {
        GatewayError::bad_gateway(message)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sign the channel's next voucher, send it, and record the receipt.
fn pay(
    gw: &Gateway,
    a: &Admitted,
    p: &Prepared,
    signed: &SignedResponse,
    price: Amount,
) -> Result<Served, GatewayError> {
    let chain_id = ChainId::new(gw.chain.chain_id())
        .map_err(|e| GatewayError::internal(format!("chain id: {e}")))?;
    let voucher = gw
        .store
        .sign_next(&a.key, &chain_id, p.request.channel, price)
        .map_err(|e| GatewayError::internal(e.to_string()))?;
    let leaf = signed.commitment.leaf();
    let voucher_responses = voucher.voucher.responses;
    let delivery = VoucherDelivery { voucher, leaf };
    tokio::spawn(forward::deliver(
        gw.http.clone(),
        p.candidate.endpoint.clone(),
        delivery,
        gw.config.voucher_delivery_attempts,
    ));
    let receipt = InferenceReceiptView {
        leaf,
        commitment: signed.commitment.clone(),
        signature: hex::encode(signed.signature.as_ref()),
        provider: signed.provider,
        model_name: a.parsed.model.clone(),
        key: a.key.id(),
        channel: p.request.channel,
        voucher_responses,
        time_ms: now_ms(),
        batch: None,
    };
    if let Err(e) = gw.store.put_receipt(&receipt) {
        // The response is paid for; only the node's own record of it is missing.
        tracing::error!(error = %e, %leaf, "could not record a receipt");
    }
    Ok(Served {
        provider: signed.provider,
        tokens_in: signed.commitment.tokens_in,
        tokens_out: signed.commitment.tokens_out,
        price,
        receipt: leaf,
    })
}

fn with_headers(mut resp: Response, provider: &str, receipt: Option<&str>) -> Response {
    if let Ok(v) = HeaderValue::from_str(provider) {
        resp.headers_mut().insert("x-orrery-provider", v);
    }
    if let Some(r) = receipt.and_then(|r| HeaderValue::from_str(r).ok()) {
        resp.headers_mut().insert("x-orrery-receipt", r);
    }
    resp
}

fn answer(
    route: Route,
    a: &Admitted,
    p: &Prepared,
    signed: &SignedResponse,
    served: &Served,
) -> Response {
    let body =
        match (&signed.output, &a.parsed.work) {
            (InferenceOutput::Embeddings { vectors }, Work::Embeddings { base64, .. }) => {
                openai::embeddings(&a.parsed.model, vectors, *base64, served)
            }
            (
                InferenceOutput::Text {
                    text,
                    finish_reason,
                },
                _,
            ) => Envelope::new(route, &a.parsed.model, p.request.nonce, now_ms() / 1000)
                .completion(text, finish_reason, served),
            // `verify` matched the output's kind to the request's.
            _ => serde_json::Value::Null,
        };
    with_headers(
        axum::Json(body).into_response(),
        &served.provider.to_string(),
        Some(&served.receipt.to_string()),
    )
}

/// Open the stream on the first provider that sends a first event; then pump it to the
/// client.
async fn stream(gw: Arc<Gateway>, route: Route, a: Admitted) -> Response {
    let mut failures = Vec::new();
    for c in a.candidates.clone() {
        let p = match prepare(&gw, &a, &c).await {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        };
        gw.with_router(|r| r.started(&c.provider));
        let started = Instant::now();
        let opened = open_stream(&gw, &p).await;
        match opened {
            Ok((reader, first)) => {
                observe(&gw, &c.provider, started, None);
                let provider = c.provider.to_string();
                return with_headers(pump(gw, route, a, p, reader, first), &provider, None);
            }
            Err(f) => {
                observe(&gw, &c.provider, started, Some(&f));
                if f.client_fault().is_some() {
                    return GatewayError::context_length(f.to_string()).into_response();
                }
                tracing::warn!(provider = %c.provider, error = %f, "provider failed before its first token; trying the next");
                failures.push(f);
            }
        }
    }
    no_answer(&a.parsed.model, &failures).into_response()
}

async fn open_stream(
    gw: &Gateway,
    p: &Prepared,
) -> Result<(EventReader, StreamEvent), ProviderFailure> {
    let t = timeouts(gw);
    let endpoint = &p.candidate.endpoint;
    let resp = forward::send(&gw.http, endpoint, p.bytes.clone(), true, t).await?;
    let mut reader = EventReader::new(resp, endpoint);
    match reader.next(t.first).await? {
        Some(StreamEvent::Error { message }) => Err(ProviderFailure::Failed {
            endpoint: endpoint.clone(),
            message,
        }),
        Some(first) => Ok((reader, first)),
        None => Err(ProviderFailure::Malformed {
            endpoint: endpoint.clone(),
            detail: "the stream ended before its first event".into(),
        }),
    }
}

fn sse(v: &serde_json::Value) -> Event {
    Event::default().data(v.to_string())
}

fn pump(
    gw: Arc<Gateway>,
    route: Route,
    a: Admitted,
    p: Prepared,
    reader: EventReader,
    first: StreamEvent,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(STREAM_BUFFER);
    tokio::spawn(async move {
        let env = Envelope::new(route, &a.parsed.model, p.request.nonce, now_ms() / 1000);
        if route == Route::Chat {
            let _ = tx.send(sse(&env.chunk(None, None, None))).await;
        }
        let end = relay(&gw, &a, &p, &env, reader, first, &tx).await;
        match end {
            Ok(()) => {
                let _ = tx.send(Event::default().data("[DONE]")).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "stream ended without a valid answer; nothing paid");
                let _ = tx.send(sse(&e.body())).await;
            }
        }
    });
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|e| (Ok::<_, std::convert::Infallible>(e), rx))
    });
    Sse::new(events).into_response()
}

/// Pass deltas on until the provider's `done`; verify and pay; send the last chunk.
async fn relay(
    gw: &Gateway,
    a: &Admitted,
    p: &Prepared,
    env: &Envelope,
    mut reader: EventReader,
    first: StreamEvent,
    tx: &tokio::sync::mpsc::Sender<Event>,
) -> Result<(), GatewayError> {
    let died = |detail: String| {
        GatewayError::bad_gateway(format!(
            "provider {} stopped mid-answer ({detail}); this partial answer is not billed",
            p.candidate.provider
        ))
    };
    let mut streamed = String::new();
    let mut next = Some(first);
    loop {
        let event = match next.take() {
            Some(e) => e,
            None => match reader.next(timeouts(gw).total).await {
                Ok(Some(e)) => e,
                Ok(None) => {
                    return Err(died("the stream ended without its signed response".into()));
                }
                Err(f) => return Err(died(f.to_string())),
            },
        };
        match event {
            StreamEvent::Delta { text } => {
                streamed.push_str(&text);
                // A client that went away does not stop the relay: the provider's work is
                // paid for once it finishes and verifies.
                let _ = tx.send(sse(&env.chunk(Some(&text), None, None))).await;
            }
            StreamEvent::Error { message } => return Err(died(message)),
            StreamEvent::Done(signed) => {
                return finish(gw, a, p, env, &signed, &streamed, tx).await;
            }
        }
    }
}

async fn finish(
    gw: &Gateway,
    a: &Admitted,
    p: &Prepared,
    env: &Envelope,
    signed: &SignedResponse,
    streamed: &str,
    tx: &tokio::sync::mpsc::Sender<Event>,
) -> Result<(), GatewayError> {
    let unverified = |detail: String| {
        GatewayError::bad_gateway(format!(
            "provider {}'s answer does not verify ({detail}); it is not billed",
            p.candidate.provider
        ))
    };
    let price = forward::verify(signed, &p.expected(a)).map_err(unverified)?;
    let InferenceOutput::Text {
        text,
        finish_reason,
    } = &signed.output
    else {
        return Err(unverified("not a text output".into()));
    };
    if text != streamed {
        return Err(unverified(
            "the streamed text is not the committed text".into(),
        ));
    }
    let served = pay(gw, a, p, signed, price)?;
    let _ = tx
        .send(sse(&env.chunk(None, Some(finish_reason), Some(&served))))
        .await;
    Ok(())
}
