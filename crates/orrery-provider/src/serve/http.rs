//! The serving lane's HTTP server (see [`crate::serve`] for the endpoints and their rules).

use super::model::{ComputeError, Computed, ServedModel};
use super::{Serving, VoucherError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use orrery_types::hash::Hash;
use orrery_types::inference::{
    InferenceOutput, InferenceRequest, MAX_REQUEST_BYTES, ResponseCommitment, SignedResponse,
    StreamEvent, VoucherDelivery,
};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

/// Largest `/voucher` body: a delivery is a few hundred bytes of JSON.
pub const MAX_VOUCHER_BYTES: usize = 16 * 1024;
/// Stream events buffered per response before the generation waits for the client.
pub const STREAM_BUFFER: usize = 64;
/// Threads of the server's runtime that handle connections (computing is on its blocking
/// pool): two keep one slow client from delaying the others' answers.
pub const SERVER_THREADS: usize = 2;
/// How long stopping waits for responses still streaming.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why serving could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A model could not be loaded.
    #[error(transparent)]
    Model(#[from] super::model::ModelError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source} (set [serve] listen to a free address)")]
    Bind {
        /// The address.
        addr: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The data directory or the runtime failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// A running server; dropping it stops the server (waiting up to [`SHUTDOWN_GRACE`]).
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address bound (the real port when `listen` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct App {
    serving: Arc<Serving>,
    started: Instant,
}

/// Bind `listen` and serve `serving` on a thread of its own.
pub fn start(serving: Arc<Serving>, listen: &str) -> Result<ServerHandle, ServeError> {
    let bind = |source| ServeError::Bind {
        addr: listen.to_string(),
        source,
    };
    let listener = std::net::TcpListener::bind(listen).map_err(bind)?;
    listener.set_nonblocking(true).map_err(bind)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(SERVER_THREADS)
        .max_blocking_threads(serving.max_concurrent() + 1)
        .thread_name("orrery-serve")
        .enable_io()
        .enable_time()
        .build()?;
    let app = Arc::new(App {
        serving,
        started: Instant::now(),
    });
    let (shutdown, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("orrery-serve".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "the serving lane cannot use its socket");
                        return;
                    }
                };
                // Token deltas are small writes: TCP_NODELAY keeps Nagle's algorithm from
                // holding each behind the gateway's delayed ACK.
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                });
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, router(app)).await {
                        tracing::error!(error = %e, "the serving lane's server stopped");
                    }
                });
                let _ = stopped.await;
            });
            runtime.shutdown_timeout(SHUTDOWN_GRACE);
        })?;
    tracing::info!(%addr, "serving inference");
    Ok(ServerHandle {
        addr,
        shutdown: Some(shutdown),
        thread: Some(thread),
    })
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/infer",
            post(infer).layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES + 1)),
        )
        .route(
            "/voucher",
            post(voucher).layer(DefaultBodyLimit::max(MAX_VOUCHER_BYTES)),
        )
        .route("/health", get(health))
        .route("/status", get(status))
        .with_state(app)
}

/// A JSON error: `{"error": {"message", "code"}}`.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({"error": {"message": message.into(), "code": code}});
    (status, axum::Json(body)).into_response()
}

fn compute_error(e: &ComputeError) -> Response {
    let status = if e.is_client_error() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    error(status, e.code, e.message.clone())
}

/// Why a request was turned away before any model time: status, code, message.
struct Refusal(StatusCode, &'static str, String);

/// A request that passed the checks that need no model time.
struct Checked {
    request: InferenceRequest,
    text: String,
    hash: Hash,
    model: Arc<ServedModel>,
}

impl App {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn refused(&self, response: Response) -> Response {
        self.serving.stats_mut().refused += 1;
        response
    }

    fn check(&self, body: &[u8]) -> Result<Checked, Refusal> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(Refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("a request is at most {MAX_REQUEST_BYTES} bytes"),
            ));
        }
        let request: InferenceRequest = serde_json::from_slice(body).map_err(|e| {
            Refusal(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("not an inference request: {e}"),
            )
        })?;
        if request.canonical_bytes() != body {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "non_canonical_request",
                "the body is not the request's canonical JSON (serde_json of InferenceRequest, \
                 fields in order, no extra whitespace): send the canonical bytes so both sides \
                 hash the same request"
                    .into(),
            ));
        }
        let model = self.serving.model(&request.model).ok_or_else(|| {
            Refusal(
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!(
                    "this provider serves no model with weights {}",
                    request.model
                ),
            )
        })?;
        // Canonical bytes are serde_json's output, which is UTF-8.
        let text = String::from_utf8_lossy(body).into_owned();
        Ok(Checked {
            hash: orrery_types::inference::request_hash(body),
            request,
            text,
            model,
        })
    }

    /// Sign the commitment for a computed answer and remember it until paid.
    fn finish(&self, c: &Checked, computed: Computed) -> Result<SignedResponse, ComputeError> {
        let charged = c
            .model
            .cost(computed.tokens_in, computed.tokens_out)
            .ok_or_else(|| ComputeError {
                code: "model_error",
                message: "the response's price overflows".into(),
            })?;
        let commitment = ResponseCommitment {
            model: c.model.weights(),
            key: c.request.key,
            request: c.hash,
            seed: c.request.seed(),
            output: computed.digest(),
            tokens_in: computed.tokens_in,
            tokens_out: computed.tokens_out,
            charged,
        };
        let key = self.serving.key();
        let signature = commitment.sign(key);
        self.serving
            .book()
            .remember(c.text.clone(), commitment.clone(), self.now_ms());
        {
            let mut s = self.serving.stats_mut();
            s.served += 1;
            s.tokens_in += u64::from(computed.tokens_in);
            s.tokens_out += u64::from(computed.tokens_out);
        }
        Ok(SignedResponse {
            output: computed.output,
            commitment,
            provider: self.serving.account(),
            provider_key: key.public_key().clone(),
            signature,
        })
    }
}

async fn infer(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let checked = match app.check(&body) {
        Ok(c) => c,
        Err(Refusal(status, code, message)) => {
            return app.refused(error(status, code, message));
        }
    };
    let Ok(permit) = app.serving.permits().clone().try_acquire_owned() else {
        app.serving.stats_mut().overloaded += 1;
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!(
                "all {} compute places are busy: try another provider",
                app.serving.max_concurrent()
            ),
        );
    };
    let stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if stream {
        infer_stream(app, checked, permit).await
    } else {
        infer_json(app, checked, permit).await
    }
}

async fn infer_json(app: Arc<App>, c: Checked, permit: OwnedSemaphorePermit) -> Response {
    let threads = app.serving.threads();
    let app2 = app.clone();
    let done = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let prepared = c.model.prepare(&c.request.task)?;
        let computed = c.model.run(&prepared, threads, &mut |_| true)?;
        app2.finish(&c, computed)
    })
    .await;
    match done {
        Ok(Ok(response)) => axum::Json(response).into_response(),
        Ok(Err(e)) => app.refused(compute_error(&e)),
        Err(e) => app.refused(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("the computation failed: {e}"),
        )),
    }
}

async fn infer_stream(app: Arc<App>, c: Checked, permit: OwnedSemaphorePermit) -> Response {
    let threads = app.serving.threads();
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), ComputeError>>();
    let (tx, rx) = mpsc::channel::<StreamEvent>(STREAM_BUFFER);
    let app2 = app.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let prepared = match c.model.prepare(&c.request.task) {
            Ok(p) => p,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        if ready_tx.send(Ok(())).is_err() {
            return;
        }
        let mut streamed = String::new();
        let mut delta = |text: &str| {
            streamed.push_str(text);
            tx.blocking_send(StreamEvent::Delta { text: text.into() })
                .is_ok()
        };
        let computed = c.model.run(&prepared, threads, &mut delta);
        if tx.is_closed() {
            // The gateway is gone: nobody will pay for this answer; nothing to remember.
            return;
        }
        // Text the decoder held back until the end (an incomplete character) goes out last.
        if let Ok(Computed {
            output: InferenceOutput::Text { text, .. },
            ..
        }) = &computed
            && let Some(rest) = text.strip_prefix(streamed.as_str())
            && !rest.is_empty()
        {
            let _ = tx.blocking_send(StreamEvent::Delta { text: rest.into() });
        }
        let event = match computed.and_then(|computed| app2.finish(&c, computed)) {
            Ok(r) => StreamEvent::Done(Box::new(r)),
            Err(e) => StreamEvent::Error { message: e.message },
        };
        let _ = tx.blocking_send(event);
    });
    match ready_rx.await {
        Ok(Ok(())) => {
            let events = futures::stream::unfold(rx, |mut rx| async move {
                let ev = rx.recv().await?;
                let data = serde_json::to_string(&ev).unwrap_or_default();
                Some((Ok::<_, Infallible>(Event::default().data(data)), rx))
            });
            Sse::new(events).into_response()
        }
        Ok(Err(e)) => app.refused(compute_error(&e)),
        Err(_) => app.refused(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the computation ended before it started",
        )),
    }
}

fn voucher_error(e: &VoucherError) -> Response {
    let (status, code) = match e {
        VoucherError::BadSignature => (StatusCode::UNAUTHORIZED, "bad_signature"),
        VoucherError::WrongProvider(_) => (StatusCode::BAD_REQUEST, "wrong_provider"),
        VoucherError::WrongChain { .. } => (StatusCode::BAD_REQUEST, "wrong_chain"),
        VoucherError::UnknownResponse(_) => (StatusCode::NOT_FOUND, "unknown_response"),
        VoucherError::WrongChannel { .. } => (StatusCode::BAD_REQUEST, "wrong_channel"),
        VoucherError::Gap { .. } => (StatusCode::CONFLICT, "voucher_gap"),
        VoucherError::WrongTotal { .. } => (StatusCode::CONFLICT, "wrong_total"),
        VoucherError::TooManyChannels => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
        VoucherError::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
    };
    error(status, code, e.to_string())
}

async fn voucher(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let delivery: VoucherDelivery = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("not a voucher delivery: {e}"),
            );
        }
    };
    let Some(chain_id) = app.serving.chain_id() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the provider has not read the chain yet: try again in a few seconds",
        );
    };
    let serving = app.serving.clone();
    let accepted = tokio::task::spawn_blocking(move || {
        let me = serving.account();
        let result = serving
            .book()
            .accept(&delivery.voucher, &delivery.leaf, &me, &chain_id);
        let mut stats = serving.stats_mut();
        match &result {
            Ok(charged) => {
                stats.vouchers += 1;
                stats.vouchers_amount = stats
                    .vouchers_amount
                    .checked_add(*charged)
                    .unwrap_or(stats.vouchers_amount);
            }
            Err(_) => stats.vouchers_refused += 1,
        }
        result.map(|_| delivery.voucher.voucher)
    })
    .await;
    match accepted {
        Ok(Ok(v)) => axum::Json(serde_json::json!({
            "accepted": true,
            "channel": v.channel,
            "responses": v.responses,
            "total": v.total,
        }))
        .into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "voucher refused");
            voucher_error(&e)
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            e.to_string(),
        ),
    }
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let models: Vec<String> = app
        .serving
        .offers()
        .iter()
        .map(|o| o.name.as_str().to_string())
        .collect();
    let max = app.serving.max_concurrent();
    axum::Json(serde_json::json!({
        "status": "ok",
        "provider": app.serving.account(),
        "models": models,
        "offers": app.serving.offers(),
        "in_flight": max - app.serving.permits().available_permits().min(max),
        "max_concurrent": max,
    }))
    .into_response()
}

async fn status(State(app): State<Arc<App>>) -> Response {
    axum::Json(app.serving.report()).into_response()
}
