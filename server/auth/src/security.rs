//! The authorization server's security events, recorded as AuditEvents
//! (DICOM `110114` User Authentication, `110113` Security Alert) in the
//! request's [`Recorder`], which the HTTP layer opened for the request and
//! commits before the answer leaves (fail closed, like every FHIR request):
//! sign-ins and their failures, tokens issued and refused, reused codes and
//! refresh tokens, revocations, and the administration of accounts and
//! clients. A patient's own sign-ins name them, so they are in their log.

use std::sync::Arc;

use actix_web::{HttpMessage, HttpRequest};
use fhirledger_audit::Person;
use fhirledger_postgres::auth::UserRow;
use fhirledger_service::audit::Recorder;

pub use fhirledger_audit::SecurityEvent;
pub use fhirledger_service::audit::SecurityActor;

/// Adds a security event to the request's AuditEvents; `failure` is the
/// The audit recorder the HTTP layer opened for request `req`, if any.
pub fn request_recorder(req: &HttpRequest) -> Option<Arc<Recorder>> {
    req.extensions().get::<Arc<Recorder>>().cloned()
}

/// status and what the client was told when it was refused.
pub fn record(
    req: &HttpRequest,
    event: SecurityEvent,
    actor: SecurityActor,
    failure: Option<(u16, &str)>,
) {
    match request_recorder(req) {
        Some(recorder) => recorder.security(event, actor, failure),
        None => tracing::error!(
            ?event,
            "a security event without the request's audit recorder was not recorded"
        ),
    }
}

/// An account as the person of a security event.
pub fn person(user: &UserRow) -> Person {
    Person {
        fhir_user: user.fhir_user.clone(),
        account: user.user_id.to_string(),
        name: None,
        role: Some(user.role.clone()),
        organization: user.organization.clone(),
        organization_name: None,
    }
}
