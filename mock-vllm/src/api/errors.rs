//! [`ApiError`]: every error the HTTP API returns, in vLLM's envelope and with vLLM's status codes.
//!
//! The body is `{"error": {"message", "type", "param", "code"}}` with `code` equal to the HTTP status (vLLM ≥ 0.10.1,
//! PR #22099). `type` is `BadRequestError` / `NotFoundError` … for errors raised by request checks, and the HTTP
//! phrase (`Bad Request`) for schema validation failures, as vLLM's `RequestValidationError` handler does. Client
//! mistakes are always 4xx; a 5xx carries a short message and the details go to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error response.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status (also the envelope's `code`).
    pub status: StatusCode,
    /// Human-readable message.
    pub message: String,
    /// The envelope's `type`.
    pub kind: String,
    /// The offending parameter, if known.
    pub param: Option<String>,
}

/// The OpenAI SDK error class for a status, as vLLM names them.
pub fn error_type_for(status: StatusCode) -> String {
    match status.as_u16() {
        400 => "BadRequestError".into(),
        401 => "AuthenticationError".into(),
        403 => "PermissionDeniedError".into(),
        404 => "NotFoundError".into(),
        409 => "ConflictError".into(),
        422 => "UnprocessableEntityError".into(),
        429 => "RateLimitError".into(),
        500 => "InternalServerError".into(),
        501 => "NotImplementedError".into(),
        503 => "ServiceUnavailableError".into(),
        _ => status.canonical_reason().unwrap_or("Error").to_string(),
    }
}

impl ApiError {
    /// An error of `status` with the SDK type for it.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind: error_type_for(status),
            param: None,
        }
    }

    /// 400 `BadRequestError`: a value vLLM's request checks reject.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400 with type `Bad Request`: the body does not match the schema (vLLM replaces FastAPI's 422 with this).
    pub fn validation(message: impl Into<String>, param: Option<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "Bad Request".into(),
            param,
        }
    }

    /// 404 for a model that is not served.
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("The model `{model}` does not exist."),
        )
        .with_param("model")
    }

    /// An HTTP-level error (unknown route, wrong method): `type` is the HTTP phrase.
    pub fn http(status: StatusCode) -> Self {
        let phrase = status.canonical_reason().unwrap_or("Error");
        Self {
            status,
            message: phrase.into(),
            kind: phrase.into(),
            param: None,
        }
    }

    /// Sets `param`.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// The envelope as JSON (also used for mid-stream SSE errors).
    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.status.as_u16(),
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_matches_vllm() {
        let body = ApiError::model_not_found("gpt-x").body();
        assert_eq!(
            body,
            json!({"error": {"message": "The model `gpt-x` does not exist.", "type": "NotFoundError",
                             "param": "model", "code": 404}})
        );
        assert_eq!(
            ApiError::http(StatusCode::METHOD_NOT_ALLOWED).kind,
            "Method Not Allowed"
        );
        assert_eq!(
            error_type_for(StatusCode::SERVICE_UNAVAILABLE),
            "ServiceUnavailableError"
        );
    }
}
