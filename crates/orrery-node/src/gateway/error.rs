//! Every refusal of the gateway, in OpenAI's error shape
//! `{"error": {"message", "type", "param", "code"}}`, so OpenAI clients raise their usual
//! exceptions (`AuthenticationError`, `RateLimitError`, `NotFoundError`, `BadRequestError`,
//! `APIStatusError`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An OpenAI-shaped error answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct GatewayError {
    /// HTTP status.
    pub status: StatusCode,
    /// OpenAI's `type` (`invalid_request_error`, `insufficient_quota`, `server_error`).
    pub kind: &'static str,
    /// Stable code (`invalid_api_key`, `model_not_found`, …), listed in `docs/api.md`.
    pub code: &'static str,
    /// The request field at fault, if one is.
    pub param: Option<&'static str>,
    /// What went wrong and what to do.
    pub message: String,
}

impl GatewayError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> GatewayError {
        GatewayError {
            status,
            kind,
            code,
            param: None,
            message: message.into(),
        }
    }

    /// Name the request field at fault.
    pub fn param(mut self, param: &'static str) -> GatewayError {
        self.param = Some(param);
        self
    }

    /// 400 `invalid_request_error`: the request cannot be served as written.
    pub fn invalid(message: impl Into<String>) -> GatewayError {
        GatewayError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request_error",
            message,
        )
    }

    /// 400 `context_length_exceeded`: prompt plus `max_tokens` exceed the model's context.
    pub fn context_length(message: impl Into<String>) -> GatewayError {
        GatewayError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "context_length_exceeded",
            message,
        )
    }

    /// 401 `invalid_api_key`: missing, malformed or unknown.
    pub fn invalid_key(message: impl Into<String>) -> GatewayError {
        GatewayError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            message,
        )
    }

    /// 401 `key_revoked`.
    pub fn revoked(message: impl Into<String>) -> GatewayError {
        GatewayError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "key_revoked",
            message,
        )
    }

    /// 429 `insufficient_quota`: the key cannot pay for the request's worst case.
    pub fn quota(message: impl Into<String>) -> GatewayError {
        GatewayError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            "insufficient_quota",
            message,
        )
    }

    /// 404 `model_not_found`.
    pub fn model_not_found(message: impl Into<String>) -> GatewayError {
        GatewayError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            message,
        )
        .param("model")
    }

    /// 413 `request_too_large`.
    pub fn too_large(limit: usize) -> GatewayError {
        GatewayError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("the request body is over this gateway's limit of {limit} bytes"),
        )
    }

    /// 502 `provider_error`: providers were reached but none gave a valid answer.
    pub fn bad_gateway(message: impl Into<String>) -> GatewayError {
        GatewayError::new(
            StatusCode::BAD_GATEWAY,
            "server_error",
            "provider_error",
            message,
        )
    }

    /// 503 `provider_unavailable` (no provider answered) or `overloaded` (this gateway).
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> GatewayError {
        GatewayError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            code,
            message,
        )
    }

    /// 500 for a fault inside this node (its disk).
    pub fn internal(message: impl Into<String>) -> GatewayError {
        GatewayError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal",
            message,
        )
    }

    /// The JSON body, also sent as the last event of a broken stream.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let retry = matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY
        );
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
        }
        resp
    }
}
