//! The one place where failures become HTTP answers. Every answer is JSON with a
//! `message`; 5xx answers stay opaque and their cause is logged here, once.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::AuthError;
use crate::orders::OrderError;
use crate::store::StoreError;

/// Seconds a client is asked to wait before trying again after a 503.
const RETRY_AFTER_UNAVAILABLE: &str = "5";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        message: String,
        field: Option<&'static str>,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// Unknown, malformed, expired or someone else's request id, or an unknown route.
    #[error("not found")]
    NotFound,
    /// The phone number has no devices.
    #[error("no devices are registered for this phone number")]
    NotInSystem,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the export could not be prepared; order it again")]
    ExportFailed,
    #[error("too many exports are being prepared; try again later")]
    QueueFull,
    #[error("too many downloads are running; try again later")]
    TooManyDownloads,
    #[error("{0} is unavailable; try again later")]
    Unavailable(&'static str),
    #[error("the request took too long; try again later")]
    Timeout,
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn bad_request(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            field: Some(field),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::NotInSystem => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::ExportFailed | ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::QueueFull | ApiError::TooManyDownloads | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.to_string();
        let body = match &self {
            ApiError::BadRequest {
                field: Some(field), ..
            } => json!({ "message": message, "field": field }),
            ApiError::NotInSystem => json!({ "message": message, "found_in_system": false }),
            _ => json!({ "message": message }),
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::QueueFull
            | ApiError::TooManyDownloads
            | ApiError::Unavailable(_)
            | ApiError::Timeout => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_UNAVAILABLE),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized(reason) => ApiError::Unauthorized(reason),
            AuthError::Forbidden(reason) => ApiError::Forbidden(reason),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_out_of_memory() {
            tracing::error!(error = %e, "Redis is out of memory");
            return ApiError::Unavailable("storage");
        }
        match e {
            StoreError::Redis(_) => {
                tracing::error!(error = %e, "Redis failed");
                ApiError::Unavailable("Redis")
            }
            _ => {
                tracing::error!(error = %e, "unexpected state in Redis");
                ApiError::Internal
            }
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::QueueFull => {
                tracing::warn!("order refused: the queue is full");
                ApiError::QueueFull
            }
            OrderError::AccessLog(cause) => {
                tracing::error!(error = %cause, "order refused: the access log could not be written");
                ApiError::Unavailable("the access log")
            }
            OrderError::Source(cause) => {
                tracing::error!(error = %cause, "PostgreSQL failed");
                ApiError::Unavailable("the source database")
            }
            OrderError::Store(cause) => cause.into(),
            OrderError::Contended => {
                tracing::warn!("order refused: concurrent orders kept colliding");
                ApiError::Unavailable("ordering")
            }
        }
    }
}
