//! HTTP errors: a status and a one-line reason, never a panic (docs/architecture.md "Errors are values").

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answered to a client or peer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: String,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }

    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, reason)
    }

    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason)
    }

    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, reason)
    }

    /// A failure of ours; the detail is logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            tracing::info!(status = %self.status, reason = %self.reason, "request refused");
        }
        (self.status, self.reason).into_response()
    }
}

impl From<mimi_store::StoreError> for ApiError {
    fn from(e: mimi_store::StoreError) -> Self {
        Self::internal(e)
    }
}

/// Decodes a TLS-PL body exactly, answering 400 with the reason.
pub fn decode_body<T: tls_codec::Deserialize>(body: &[u8]) -> Result<T, ApiError> {
    mimi_protocol::decode_exact(body)
        .map_err(|e| ApiError::bad_request(format!("malformed body: {e}")))
}

/// Encodes a TLS-PL response.
pub fn encode_body<T: tls_codec::Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    mimi_protocol::encode(value).map_err(ApiError::internal)
}
