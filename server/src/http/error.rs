//! Every failure a client can see, answered as a FHIR OperationOutcome with
//! the right status code in the negotiated format.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use fhir_profiles::outcome::{operation_outcome, Issue, IssueType};
use fhirledger_postgres::StoreError;
use fhirledger_service::{ServiceError, Stopped};

use crate::http::negotiate::ResponseFormat;
use crate::http::respond::resource_body;

/// A failed interaction: the status and the issues explaining it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub issues: Vec<Issue>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: IssueType, diagnostics: impl Into<String>) -> Self {
        ApiError {
            status,
            issues: vec![Issue::error(code, diagnostics)],
        }
    }

    pub fn with_issues(status: StatusCode, issues: Vec<Issue>) -> Self {
        ApiError { status, issues }
    }

    pub fn bad_request(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, IssueType::Invalid, diagnostics)
    }

    pub fn not_found(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, IssueType::NotFound, diagnostics)
    }

    /// 404 for a read (`version` None) or vread of something that is not there.
    pub fn no_such_version(resource_type: &str, id: &str, version: Option<i64>) -> Self {
        match version {
            None => Self::not_found(format!("{resource_type}/{id} does not exist")),
            Some(n) => Self::not_found(format!("{resource_type}/{id} has no version {n}")),
        }
    }

    pub fn gone(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, IssueType::Deleted, diagnostics)
    }

    pub fn method_not_allowed(diagnostics: impl Into<String>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            IssueType::NotSupported,
            diagnostics,
        )
    }

    pub fn precondition_failed(diagnostics: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            IssueType::Conflict,
            diagnostics,
        )
    }

    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            IssueType::TooLong,
            format!("the request body exceeds the limit of {limit} bytes"),
        )
    }

    pub fn unsupported_media_type(diagnostics: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            diagnostics,
        )
    }

    pub fn not_acceptable(diagnostics: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            IssueType::NotSupported,
            diagnostics,
        )
    }

    pub fn internal(diagnostics: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            IssueType::Exception,
            diagnostics,
        )
    }

    /// Renders the OperationOutcome; XML when the client asked for XML.
    pub fn respond(&self, format: ResponseFormat) -> HttpResponse {
        let outcome = operation_outcome(&self.issues);
        match resource_body(&outcome, format) {
            Ok((content_type, body)) => HttpResponse::build(self.status)
                .insert_header(("Content-Type", content_type))
                .body(body),
            Err(_) => HttpResponse::build(self.status)
                .insert_header(("Content-Type", "application/fhir+json; charset=utf-8"))
                .body(outcome.to_string()),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let status =
            StatusCode::from_u16(e.status.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError {
            status,
            issues: e.issues,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<Stopped> for ApiError {
    fn from(e: Stopped) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(_: actix_web::error::BlockingError) -> Self {
        ApiError::internal("the worker pool is shutting down")
    }
}
