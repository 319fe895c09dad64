//! Every refusal the API gives: an HTTP status, a stable code, a message a user can act on,
//! and a JSON body `{"error": "...", "code": "..."}`. Codes are listed in `docs/api.md`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orrery_client::api::ErrorBody;

/// An error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// `Retry-After` seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Ask the client to retry after `secs` seconds.
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 with a code.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 500 for a fault inside the node (index or disk); logged where it happens.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 503 when the chain backend cannot answer.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message).retry_after(1)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            code: self.code.to_string(),
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Adds to every operation of the OpenAPI document the refusals that the layers around the
/// handlers can give to any request: 429 `rate_limited` (the per-IP limiter runs before
/// routing) and 503 `overloaded`/`timeout`/`unavailable`/`too_many_stream_clients` (request
/// slots, the request timeout, a chain backend that does not answer, the stream's client cap),
/// both with `Retry-After`; and 500 `internal` to every operation that reads the index, the
/// chain's state or the disk. Handlers document their own answers (200, 400, 404, ...).
pub struct CommonRefusals;

/// Operations that read neither the index nor the chain's state, so never answer 500: blob
/// reads (a missing or unreadable file is a 404) and the event stream.
const NEVER_INTERNAL: [(&str, &str); 3] = [
    ("/api/v1/blobs/{hash}", "get"),
    ("/api/v1/blobs/{hash}", "head"),
    ("/api/v1/events", "get"),
];

impl utoipa::Modify for CommonRefusals {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, RefOr};
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, response) in common_responses() {
            components
                .responses
                .insert(name.to_string(), RefOr::T(response));
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            let operations = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("head", &mut item.head),
                ("patch", &mut item.patch),
                ("options", &mut item.options),
                ("trace", &mut item.trace),
            ];
            for (method, op) in operations {
                let Some(op) = op else { continue };
                let mut add = |status: &str, name: &str| {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| {
                            RefOr::Ref(Ref::new(format!("#/components/responses/{name}")))
                        });
                };
                add("429", "RateLimited");
                add("503", "Unavailable");
                if !NEVER_INTERNAL.contains(&(path.as_str(), method)) {
                    add("500", "Internal");
                }
            }
        }
    }
}

fn common_responses() -> [(&'static str, utoipa::openapi::Response); 3] {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder, header::Header};
    let error_body = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build()
    };
    let retry_after = || {
        let mut h = Header::new(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1u64)),
        );
        h.description = Some("Seconds to wait before retrying.".to_string());
        h
    };
    [
        (
            "RateLimited",
            ResponseBuilder::new()
                .description("rate_limited: this address sent too many requests; retry after Retry-After seconds")
                .content("application/json", error_body())
                .header("Retry-After", retry_after())
                .build(),
        ),
        (
            "Unavailable",
            ResponseBuilder::new()
                .description(
                    "overloaded (too many requests in flight or a full mempool), timeout, \
                     unavailable (the chain did not answer) or too_many_stream_clients; retry \
                     after Retry-After seconds",
                )
                .content("application/json", error_body())
                .header("Retry-After", retry_after())
                .build(),
        ),
        (
            "Internal",
            ResponseBuilder::new()
                .description("internal: disk or index trouble on the node (logged there)")
                .content("application/json", error_body())
                .build(),
        ),
    ]
}
