//! One JSON error shape for every route ([`crate::api::ErrorBody`]):
//! `{"error": {"code": "connection_not_found", "message": "…", "hint": "…"}}`.
//!
//! `code` is stable and machine-readable. Internal causes (database and I/O
//! errors) are logged with their detail and returned as a generic
//! `internal` error, never verbatim.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{Error, ErrorKind};
use crate::pop::PopError;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl ApiError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> ApiError {
        self.hint = Some(hint.into());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = crate::api::ErrorBody {
            error: crate::api::ErrorDetail {
                code: self.code.into(),
                message: self.message,
                hint: self.hint,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let code = e.code();
        let status = match (code, e.kind()) {
            ("wrong_master_key" | "vault_integrity", _) => StatusCode::INTERNAL_SERVER_ERROR,
            // 401, not 410: the resource (the connection, the provider) is
            // still there, what is missing is a valid authorization for it,
            // and "log in again" is what a client does on a 401. 403 would
            // say the caller may not have it at all, 400 that the request was
            // malformed; neither is true. The daemon's own PoP failures are
            // 401 too but carry the code `unauthorized`: clients tell them
            // apart by `code`, never by status alone.
            (_, ErrorKind::Expired) => StatusCode::UNAUTHORIZED,
            ("store_unavailable", _) => {
                tracing::error!(error = %e, "the store is unreachable");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the daemon's store is unreachable",
                )
                .with_hint("try again shortly; on the server, `authsome doctor` checks the store");
            }
            ("internal", _) => {
                tracing::error!(error = %e, "internal error");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the daemon log",
                )
                .with_hint("run `authsome daemon logs`");
            }
            (_, ErrorKind::InvalidInput) => StatusCode::BAD_REQUEST,
            (_, ErrorKind::Unsupported) => StatusCode::NOT_IMPLEMENTED,
            (_, ErrorKind::Conflict) => StatusCode::CONFLICT,
            (_, ErrorKind::NotFound) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let hint = e.hint();
        ApiError {
            status,
            code,
            message: e.to_string(),
            hint,
        }
    }
}

impl From<PopError> for ApiError {
    fn from(e: PopError) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// `Json<T>` whose rejection is our error shape. axum's own rejection is a
/// plain-text body quoting serde's message, and serde quotes the offending
/// value (`invalid type: string "sk-…", expected u16`): a secret sent in the
/// wrong field would come back in the response. This answer names no value.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "invalid_body",
                "the request body is not the JSON this route expects",
            )
            .with_hint("see /openapi.json for the expected body")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_credential_is_401_expired_with_its_hint() {
        let e = ApiError::from(Error::expired("gone", Some("log in".into())));
        assert_eq!(
            (e.status, e.code, e.hint.as_deref()),
            (StatusCode::UNAUTHORIZED, "expired", Some("log in"))
        );
    }
}
