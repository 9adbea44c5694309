//! OTLP trace ingest, shared by its two transports: `POST /v1/traces` on the HTTP port
//! (`http.rs`) and `opentelemetry.proto.collector.trace.v1.TraceService/Export` on the gRPC port
//! (`grpc.rs`). Both decode into `muninn_ingest`'s mapping, store what is valid, and answer an
//! `ExportTraceServiceResponse` whose `partial_success` counts and describes the rejected spans.

use muninn_ingest::{Decoded, Rejection};
use muninn_model::Span;
use muninn_store::StoreError;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};

use crate::server::AppState;

pub(crate) mod grpc;
pub(crate) mod http;

/// The metrics label of each transport.
pub(crate) const HTTP_ENDPOINT: &str = "/v1/traces";
pub(crate) const GRPC_ENDPOINT: &str =
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// How many rejections `error_message` describes; the count covers all of them.
const MAX_DESCRIBED_REJECTIONS: usize = 5;

/// Stores the valid spans of a decoded request and counts them; gives back the rejections.
pub(crate) async fn store(
    state: &AppState,
    decoded: Decoded<Span>,
) -> Result<Vec<Rejection>, StoreError> {
    let n_records = decoded.records.len() as u64;
    if n_records > 0 {
        state.store.append(decoded.records, Vec::new()).await?;
        state.metrics.ingested_spans.inc_by(n_records);
    }
    for rejection in &decoded.rejected {
        state.metrics.count_rejection("span", &rejection.field);
    }
    Ok(decoded.rejected)
}

/// The answer to a request whose valid spans were stored: no `partial_success` when nothing
/// was rejected, else how many spans were and what was wrong with the first few.
pub(crate) fn response(rejected: &[Rejection]) -> ExportTraceServiceResponse {
    if rejected.is_empty() {
        return ExportTraceServiceResponse {
            partial_success: None,
        };
    }
    let mut message = format!(
        "{} span{} rejected, the others stored: ",
        rejected.len(),
        if rejected.len() == 1 { "" } else { "s" }
    );
    for (position, rejection) in rejected.iter().take(MAX_DESCRIBED_REJECTIONS).enumerate() {
        if position > 0 {
            message.push_str("; ");
        }
        message.push_str(&rejection.field);
        message.push_str(": ");
        message.push_str(&rejection.reason);
    }
    if rejected.len() > MAX_DESCRIBED_REJECTIONS {
        message.push_str(&format!(
            "; and {} more",
            rejected.len() - MAX_DESCRIBED_REJECTIONS
        ));
    }
    ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: i64::try_from(rejected.len()).unwrap_or(i64::MAX),
            error_message: message,
        }),
    }
}

/// Counts one request of `endpoint` by the HTTP status it was answered with (for gRPC, the
/// HTTP status of the same outcome).
pub(crate) fn count_request(state: &AppState, endpoint: &str, status: u16) {
    state
        .metrics
        .ingest_requests
        .get_or_create(&vec![
            ("endpoint".into(), endpoint.into()),
            ("status".into(), status.to_string()),
        ])
        .inc();
}
