//! The one mapping from error kinds to HTTP statuses, and the JSON error body
//! `{"error": {"status": 400, "message": "...", "field": "from"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use muninn_ingest::{IngestError, IngestErrorKind};
use muninn_store::{StoreError, StoreErrorKind};
use serde::Serialize;

use crate::sampling::{FieldError, RulesError};

/// An error answer of the API.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
            line: None,
            column: None,
        }
    }
    pub fn bad_field(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.to_string()),
            ..ApiError::new(StatusCode::BAD_REQUEST, message)
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    status: u16,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<usize>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                status: self.status.as_u16(),
                message: &self.message,
                field: self.field.as_deref(),
                line: self.line,
                column: self.column,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        let status = match error.kind {
            IngestErrorKind::Malformed | IngestErrorKind::BadEncoding => StatusCode::BAD_REQUEST,
            IngestErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            IngestErrorKind::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        };
        ApiError {
            line: error.line,
            column: error.column,
            ..ApiError::new(status, error.message)
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let status = match error.kind {
            StoreErrorKind::Closed | StoreErrorKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            StoreErrorKind::Io
            | StoreErrorKind::ObjectStore
            | StoreErrorKind::Corrupt
            | StoreErrorKind::Config => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, format!("store: {}", error.message))
    }
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        if error.field.is_empty() {
            ApiError::new(StatusCode::BAD_REQUEST, error.message)
        } else {
            ApiError::bad_field(&error.field, error.message)
        }
    }
}

impl From<RulesError> for ApiError {
    fn from(error: RulesError) -> Self {
        match error {
            RulesError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, message),
            RulesError::NotFound(message) => ApiError::not_found(message),
            RulesError::Io(message) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message),
        }
    }
}
