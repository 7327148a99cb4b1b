//! Every failure a client can see is a [`ServiceError`] (a FHIR status and the
//! issues explaining it, the service's own type); here it becomes a response:
//! an OperationOutcome in the negotiated format.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use fhir_profiles::outcome::operation_outcome;
use fhirledger_service::ServiceError;

use crate::http::negotiate::ResponseFormat;
use crate::http::respond::resource_body;

/// Seconds a client is told to wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: &str = "2";

/// Renders an error as an HTTP response.
pub trait ErrorResponse {
    /// The OperationOutcome with the error's status; XML when the client asked for XML.
    fn respond(&self, format: ResponseFormat) -> HttpResponse;
}

impl ErrorResponse for ServiceError {
    fn respond(&self, format: ResponseFormat) -> HttpResponse {
        let status =
            StatusCode::from_u16(self.status.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let outcome = operation_outcome(&self.issues);
        let mut response = match resource_body(&outcome, format) {
            Ok((content_type, body)) => HttpResponse::build(status)
                .insert_header(("Content-Type", content_type))
                .body(body),
            Err(_) => HttpResponse::build(status)
                .insert_header(("Content-Type", "application/fhir+json; charset=utf-8"))
                .body(outcome.to_string()),
        };
        // 503 says "try again": the database or the audit trail is away for
        // the moment (a failover takes seconds). A balancer or client that
        // retries waits at least this long rather than hammering a replica
        // that cannot answer yet.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        // What the client was told, for the AuditEvent of the refusal.
        response.extensions_mut().insert(Refusal(
            self.issues
                .first()
                .map(|i| fhir_profiles::outcome::fhir_string(&i.diagnostics))
                .unwrap_or_default(),
        ));
        response
    }
}

/// The diagnostics of an error response, kept on the response for its AuditEvent.
#[derive(Debug, Clone)]
pub struct Refusal(pub String);
