//! What a FHIR interaction can fail with, independent of any transport: a
//! status (the FHIR RESTful API's codes, which also appear inside Bundle
//! entries as `response.status`) and the issues of the OperationOutcome
//! that explains it. The HTTP layer turns it into a response.

use fhir_profiles::outcome::{Issue, IssueType};
use fhirledger_access::Denied;
use fhirledger_postgres::StoreError;

/// A FHIR interaction's status code, as the RESTful API and Bundle entry
/// responses use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(u16);

impl Status {
    pub const OK: Status = Status(200);
    pub const CREATED: Status = Status(201);
    pub const NO_CONTENT: Status = Status(204);
    pub const NOT_MODIFIED: Status = Status(304);
    pub const BAD_REQUEST: Status = Status(400);
    pub const UNAUTHORIZED: Status = Status(401);
    pub const FORBIDDEN: Status = Status(403);
    pub const NOT_FOUND: Status = Status(404);
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    pub const NOT_ACCEPTABLE: Status = Status(406);
    pub const CONFLICT: Status = Status(409);
    pub const GONE: Status = Status(410);
    pub const PRECONDITION_FAILED: Status = Status(412);
    pub const PAYLOAD_TOO_LARGE: Status = Status(413);
    pub const UNSUPPORTED_MEDIA_TYPE: Status = Status(415);
    pub const UNPROCESSABLE_ENTITY: Status = Status(422);
    pub const INTERNAL_SERVER_ERROR: Status = Status(500);
    pub const SERVICE_UNAVAILABLE: Status = Status(503);

    /// The numeric code.
    pub fn code(self) -> u16 {
        self.0
    }

    /// The reason phrase (`Created`), empty for codes this server never uses.
    pub fn reason(self) -> &'static str {
        match self.0 {
            200 => "OK",
            201 => "Created",
            204 => "No Content",
            304 => "Not Modified",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            409 => "Conflict",
            410 => "Gone",
            412 => "Precondition Failed",
            413 => "Payload Too Large",
            415 => "Unsupported Media Type",
            422 => "Unprocessable Entity",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            _ => "",
        }
    }

    /// `201 Created`, as `Bundle.entry.response.status` is usually written.
    pub fn line(self) -> String {
        match self.reason() {
            "" => self.0.to_string(),
            reason => format!("{} {reason}", self.0),
        }
    }
}

/// A failed interaction: the status and the issues explaining it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} {}", status.code(), first_diagnostics(issues))]
pub struct ServiceError {
    pub status: Status,
    pub issues: Vec<Issue>,
}

fn first_diagnostics(issues: &[Issue]) -> &str {
    issues.first().map(|i| i.diagnostics.as_str()).unwrap_or("")
}

impl ServiceError {
    pub fn new(status: Status, code: IssueType, diagnostics: impl Into<String>) -> Self {
        ServiceError {
            status,
            issues: vec![Issue::error(code, diagnostics)],
        }
    }

    pub fn with_issues(status: Status, issues: Vec<Issue>) -> Self {
        ServiceError { status, issues }
    }

    pub fn bad_request(diagnostics: impl Into<String>) -> Self {
        Self::new(Status::BAD_REQUEST, IssueType::Invalid, diagnostics)
    }

    /// 422 for content that is valid FHIR but cannot be accepted, located
    /// by a FHIRPath `expression`.
    pub fn unprocessable_at(expression: &str, diagnostics: impl Into<String>) -> Self {
        ServiceError::with_issues(
            Status::UNPROCESSABLE_ENTITY,
            vec![Issue::error(IssueType::Processing, diagnostics).at(expression)],
        )
    }

    pub fn forbidden(diagnostics: impl Into<String>) -> Self {
        Self::new(Status::FORBIDDEN, IssueType::Forbidden, diagnostics)
    }

    pub fn not_found(diagnostics: impl Into<String>) -> Self {
        Self::new(Status::NOT_FOUND, IssueType::NotFound, diagnostics)
    }

    /// 404 for a read (`version` None) or vread of something that is not there.
    pub fn no_such_version(resource_type: &str, id: &str, version: Option<i64>) -> Self {
        match version {
            None => Self::not_found(format!("{resource_type}/{id} does not exist")),
            Some(n) => Self::not_found(format!("{resource_type}/{id} has no version {n}")),
        }
    }

    pub fn gone(diagnostics: impl Into<String>) -> Self {
        Self::new(Status::GONE, IssueType::Deleted, diagnostics)
    }

    pub fn method_not_allowed(diagnostics: impl Into<String>) -> Self {
        Self::new(
            Status::METHOD_NOT_ALLOWED,
            IssueType::NotSupported,
            diagnostics,
        )
    }

    pub fn precondition_failed(diagnostics: impl Into<String>) -> Self {
        Self::new(
            Status::PRECONDITION_FAILED,
            IssueType::Conflict,
            diagnostics,
        )
    }

    pub fn too_large(limit: u64) -> Self {
        Self::new(
            Status::PAYLOAD_TOO_LARGE,
            IssueType::TooLong,
            format!("the request body exceeds the limit of {limit} bytes"),
        )
    }

    pub fn unsupported_media_type(diagnostics: impl Into<String>) -> Self {
        Self::new(
            Status::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            diagnostics,
        )
    }

    pub fn not_acceptable(diagnostics: impl Into<String>) -> Self {
        Self::new(Status::NOT_ACCEPTABLE, IssueType::NotSupported, diagnostics)
    }

    pub fn internal(diagnostics: impl Into<String>) -> Self {
        Self::new(
            Status::INTERNAL_SERVER_ERROR,
            IssueType::Exception,
            diagnostics,
        )
    }

    /// The server is stopping or the database cannot be reached.
    pub fn unavailable(diagnostics: impl Into<String>) -> Self {
        Self::new(
            Status::SERVICE_UNAVAILABLE,
            IssueType::Exception,
            diagnostics,
        )
    }
}

impl From<Denied> for ServiceError {
    fn from(denied: Denied) -> Self {
        ServiceError::forbidden(denied.0)
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::VersionConflict { .. } | StoreError::VersionConflictMissing { .. } => {
                ServiceError::precondition_failed(e.to_string())
            }
            StoreError::TooLarge { limit } => ServiceError::too_large(limit),
            StoreError::InvalidCursor(_) => ServiceError::bad_request(format!(
                "{e}; follow the next/previous links of the search as given"
            )),
            StoreError::Unsupported(what) => ServiceError::with_issues(
                Status::BAD_REQUEST,
                vec![Issue::error(
                    IssueType::NotSupported,
                    format!("not supported: {what}"),
                )],
            ),
            StoreError::UploadAborted(reason) => {
                ServiceError::bad_request(format!("the upload was aborted: {reason}"))
            }
            other => {
                tracing::error!(error = %other, "storage failure");
                ServiceError::unavailable(
                    "the database is unavailable; nothing was changed, please retry",
                )
            }
        }
    }
}
