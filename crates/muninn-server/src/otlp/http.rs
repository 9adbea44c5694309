//! OTLP/HTTP: `POST /v1/traces` with an `ExportTraceServiceRequest` as `application/x-protobuf`
//! or `application/json` (OTLP/JSON), optionally gzip. The answer is in the request's content
//! type: an `ExportTraceServiceResponse` (200, also when spans were rejected), or a
//! `google.rpc.Status` for a refused request — 400 undecodable, 413 too large, 415 another
//! content type or encoding, 503 with `Retry-After` while the store is overloaded.

use crate::tenant::TenantState;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use muninn_ingest::{decode_otlp_json, decode_otlp_protobuf};
use prost::Message;
use serde_json::json;

use super::{HTTP_ENDPOINT, count_request};
use crate::error::{ApiError, add_connection_close, add_retry_after};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// The two encodings of OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// From `Content-Type`, parameters (`; charset=utf-8`) ignored.
    fn of(headers: &HeaderMap) -> Option<Encoding> {
        let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let media_type = value.split(';').next()?.trim().to_ascii_lowercase();
        match media_type.as_str() {
            PROTOBUF | "application/protobuf" => Some(Encoding::Protobuf),
            JSON => Some(Encoding::Json),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }
}

pub(crate) async fn post_traces(
    TenantState(state): TenantState,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(encoding) = Encoding::of(&headers) else {
        let given = headers
            .get(header::CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let message = match given {
            Some(given) => format!(
                "Content-Type {given:?} is not supported; send OTLP as {PROTOBUF} or {JSON}"
            ),
            None => format!("Content-Type is missing; send OTLP as {PROTOBUF} or {JSON}"),
        };
        let error = ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message).body_unread();
        count_request(&state, HTTP_ENDPOINT, error.status.as_u16());
        return refusal(Encoding::Json, error);
    };
    let result = async {
        let (bytes, _reservation) = crate::ingest::read_body(&state, &headers, body).await?;
        let now = muninn_model::now_unix_nanos();
        let decoded = match encoding {
            Encoding::Protobuf => {
                decode_otlp_protobuf(&bytes, &state.otlp_mapping, &state.limits, now)?
            }
            Encoding::Json => decode_otlp_json(&bytes, &state.otlp_mapping, &state.limits, now)?,
        };
        Ok::<_, ApiError>(super::store(&state, decoded).await?)
    }
    .await;
    match result {
        Ok(rejected) => {
            count_request(&state, HTTP_ENDPOINT, 200);
            let answer = super::response(&rejected);
            let body = match encoding {
                Encoding::Protobuf => answer.encode_to_vec(),
                Encoding::Json => {
                    // Proto3 JSON: 64-bit integers as strings, unset fields left out.
                    let value = match answer.partial_success {
                        None => json!({}),
                        Some(partial) => json!({"partialSuccess": {
                            "rejectedSpans": partial.rejected_spans.to_string(),
                            "errorMessage": partial.error_message,
                        }}),
                    };
                    value.to_string().into_bytes()
                }
            };
            (
                [(header::CONTENT_TYPE, encoding.content_type())],
                Body::from(body),
            )
                .into_response()
        }
        Err(error) => {
            count_request(&state, HTTP_ENDPOINT, error.status.as_u16());
            refusal(encoding, error)
        }
    }
}

/// A refused request: its HTTP status, and a `google.rpc.Status` body with the gRPC code of that
/// status (`error.rs`, as OTLP/gRPC answers) and the message, in the request's encoding.
fn refusal(encoding: Encoding, error: ApiError) -> Response {
    let code = error.grpc_code() as i32;
    let body_unread = error.body_unread;
    let body = match encoding {
        Encoding::Protobuf => tonic_types::Status {
            code,
            message: error.message,
            details: Vec::new(),
        }
        .encode_to_vec(),
        Encoding::Json => json!({"code": code, "message": error.message})
            .to_string()
            .into_bytes(),
    };
    let mut response = (
        error.status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        Body::from(body),
    )
        .into_response();
    add_retry_after(&mut response);
    add_connection_close(&mut response, body_unread);
    response
}
