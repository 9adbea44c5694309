//! The one mapping from error kinds to HTTP statuses, the gRPC codes and retry advice derived
//! from those statuses (for OTLP/gRPC and the `google.rpc.Status` bodies of OTLP/HTTP), and the
//! JSON error body `{"error": {"status": 400, "message": "...", "field": "from"}}`.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use muninn_archive::{ArchiveError, ArchiveErrorKind};
use muninn_ingest::{IngestError, IngestErrorKind};
use muninn_store::{StoreError, StoreErrorKind};
use serde::Serialize;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

use crate::sampling::{FieldError, RulesError};

/// An error answer of the API.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The request's body was left unread (refused before or while it arrived): the answer
    /// says `Connection: close`, so that the client sends its next request on a new
    /// connection instead of one the server is closing.
    pub body_unread: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
            line: None,
            column: None,
            body_unread: false,
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

    /// The same error, answered with `Connection: close`: the request's body was not read.
    pub fn body_unread(self) -> Self {
        ApiError {
            body_unread: true,
            ..self
        }
    }

    /// The gRPC code of this error's status (see [`grpc_code`]).
    pub fn grpc_code(&self) -> Code {
        grpc_code(self.status)
    }

    /// The same error as a gRPC status: its code and message, and when the client should retry,
    /// a `RetryInfo` of [`RETRY_AFTER`] (OTLP clients retry `UNAVAILABLE` after it).
    pub fn into_grpc_status(self) -> tonic::Status {
        let code = self.grpc_code();
        if is_retryable(self.status) {
            tonic::Status::with_error_details(
                code,
                self.message,
                ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
            )
        } else {
            tonic::Status::new(code, self.message)
        }
    }
}

/// How long a client should wait before retrying a request the server could not take now: the
/// `Retry-After` header of HTTP answers, the `RetryInfo` of gRPC ones.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Whether an answer with this status asks the client to retry after [`RETRY_AFTER`]: the
/// server is momentarily unable (overloaded, or stopping), the request itself is fine.
fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::SERVICE_UNAVAILABLE
}

/// The gRPC code of a refusal with this HTTP status. OTLP clients retry only `UNAVAILABLE`
/// (and `RESOURCE_EXHAUSTED` when it carries a `RetryInfo`), so a request that cannot succeed
/// as it is — too large, undecodable, refused for its content — gets a code they do not retry.
pub(crate) fn grpc_code(status: StatusCode) -> Code {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => Code::ResourceExhausted,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        status if status.is_server_error() => Code::Internal,
        _ => Code::InvalidArgument,
    }
}

/// Adds `Retry-After` to `response` when its status asks the client to retry.
pub(crate) fn add_retry_after(response: &mut Response) {
    if is_retryable(response.status()) {
        set_retry_after(response);
    }
}

/// Adds `Connection: close` to the answer to a request whose body was left unread. HTTP/1.1
/// servers close such a connection after the answer; without the header a client may send its
/// next request on it meanwhile and see that request fail (HTTP/2 drops the header).
pub(crate) fn add_connection_close(response: &mut Response, error_body_unread: bool) {
    if error_body_unread {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// Sets `Retry-After: ` [`RETRY_AFTER`] on `response`, whatever its status.
pub(crate) fn set_retry_after(response: &mut Response) {
    let seconds = HeaderValue::from(RETRY_AFTER.as_secs());
    response.headers_mut().insert(header::RETRY_AFTER, seconds);
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
        add_retry_after(&mut response);
        add_connection_close(&mut response, self.body_unread);
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
            StoreErrorKind::Closed
            | StoreErrorKind::Overloaded
            | StoreErrorKind::Unavailable
            | StoreErrorKind::TimedOut => StatusCode::SERVICE_UNAVAILABLE,
            StoreErrorKind::ReadOnly => StatusCode::FORBIDDEN,
            StoreErrorKind::Io
            | StoreErrorKind::ObjectStore
            | StoreErrorKind::Corrupt
            | StoreErrorKind::Quarantined
            | StoreErrorKind::Config => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, format!("store: {}", error.message))
    }
}

impl From<ArchiveError> for ApiError {
    fn from(error: ArchiveError) -> Self {
        let status = match error.kind {
            ArchiveErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ArchiveErrorKind::NotFound => StatusCode::NOT_FOUND,
            ArchiveErrorKind::ObjectStore
            | ArchiveErrorKind::Corrupt
            | ArchiveErrorKind::Broker => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, format!("archive: {}", error.message))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store(kind: StoreErrorKind) -> ApiError {
        ApiError::from(StoreError::new(kind, "m"))
    }

    fn archive(kind: ArchiveErrorKind) -> ApiError {
        ApiError::from(ArchiveError::new(kind, "m"))
    }

    fn ingest(kind: IngestErrorKind) -> ApiError {
        ApiError::from(IngestError {
            kind,
            message: "m".to_string(),
            line: None,
            column: None,
        })
    }

    #[test]
    fn each_error_kind_has_one_http_status_and_the_grpc_code_of_that_status() {
        use IngestErrorKind::*;
        use StoreErrorKind::*;
        let cases = [
            (ingest(Malformed), 400, Code::InvalidArgument),
            (ingest(BadEncoding), 400, Code::InvalidArgument),
            (ingest(TooLarge), 413, Code::ResourceExhausted),
            (ingest(UnsupportedEncoding), 415, Code::InvalidArgument),
            (store(Overloaded), 503, Code::Unavailable),
            (store(Closed), 503, Code::Unavailable),
            (store(Unavailable), 503, Code::Unavailable),
            (store(TimedOut), 503, Code::Unavailable),
            (store(Io), 500, Code::Internal),
            (store(ObjectStore), 500, Code::Internal),
            (store(Corrupt), 500, Code::Internal),
            (store(Quarantined), 500, Code::Internal),
            (store(Config), 500, Code::Internal),
            (
                archive(ArchiveErrorKind::Invalid),
                400,
                Code::InvalidArgument,
            ),
            (
                archive(ArchiveErrorKind::NotFound),
                404,
                Code::InvalidArgument,
            ),
            (archive(ArchiveErrorKind::ObjectStore), 500, Code::Internal),
            (archive(ArchiveErrorKind::Corrupt), 500, Code::Internal),
            (archive(ArchiveErrorKind::Broker), 500, Code::Internal),
        ];
        for (error, http, grpc) in cases {
            assert_eq!(error.status.as_u16(), http, "{error:?}");
            assert_eq!(error.grpc_code(), grpc, "{error:?}");
        }
    }

    #[test]
    fn only_a_momentary_refusal_asks_for_a_retry_in_both_protocols() {
        let overloaded = store(StoreErrorKind::Overloaded);
        let response = store(StoreErrorKind::Overloaded).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let status = overloaded.into_grpc_status();
        assert_eq!(status.message(), "store: m");
        let retry = status
            .get_details_retry_info()
            .and_then(|info| info.retry_delay);
        assert_eq!(retry, Some(RETRY_AFTER));

        let malformed = ingest(IngestErrorKind::Malformed);
        assert!(
            !ingest(IngestErrorKind::Malformed)
                .into_response()
                .headers()
                .contains_key(header::RETRY_AFTER)
        );
        let status = malformed.into_grpc_status();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.get_details_retry_info().is_none());
    }
}
