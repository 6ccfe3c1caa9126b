//! Errors as the Kubernetes API answers them: a `metav1.Status` JSON body (`kind: Status`, `status: Failure`, a
//! `reason` and the HTTP `code`), which is what client-go decodes from a failed call to an aggregated API. Every
//! handler's error and every unknown path goes through [`ApiError`], so the HPA and AIBrix see one envelope.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};

/// An API error, answered as a `metav1.Status`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `reason` (`NotFound`, `BadRequest`, …).
    pub reason: &'static str,
    /// `message`.
    pub message: String,
}

impl ApiError {
    /// 404.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            reason: "NotFound",
            message: message.into(),
        }
    }

    /// 400.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason: "BadRequest",
            message: message.into(),
        }
    }

    /// 500.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            reason: "InternalError",
            message: message.into(),
        }
    }

    /// 405: the adapter serves GET only.
    pub(crate) fn method_not_allowed(method: &http::Method) -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            reason: "MethodNotAllowed",
            message: format!("the server does not allow this method: {method}"),
        }
    }

    /// The `Status` body.
    pub fn body(&self) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason,
            "code": self.status.as_u16(),
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, &self.body())
    }
}

/// `value` as compact JSON with `Content-Type: application/json` (exactly that, no charset, as the adapter has
/// always answered).
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bodies() {
        let body = ApiError::not_found("nope").body();
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], "NotFound");
        assert_eq!(body["code"], 404);
    }
}
