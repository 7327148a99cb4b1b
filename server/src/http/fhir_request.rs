//! The extractor every FHIR interaction handler starts from: the caller's
//! [`Guard`] (present on every request the authentication middleware let
//! through), with the request's formats and preferences on demand, so a
//! handler reads like the interaction it serves.

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use fhirledger_access::{Caller, Interaction};
use fhirledger_service::audit::Recorder;
use fhirledger_service::types::{check_type, check_writable};
use fhirledger_service::Guard;

use crate::http::error::ErrorResponse;
use crate::http::negotiate::{error_format, response_format, ResponseFormat};
use crate::http::preconditions::{if_match, prefer_values, return_preference, ReturnPreference};
use crate::state::AppState;
use fhirledger_service::ServiceError;

/// An authenticated FHIR request.
pub struct FhirRequest {
    pub req: HttpRequest,
    pub state: web::Data<AppState>,
    pub guard: Guard,
}

/// What a write answers with: the negotiated format and `Prefer: return=`.
#[derive(Debug, Clone, Copy)]
pub struct WriteAnswer {
    pub format: ResponseFormat,
    pub preference: ReturnPreference,
}

impl FhirRequest {
    /// 404 for a type this server does not host; 403 when the token may not
    /// do `interaction` on it at all.
    pub fn permit(
        &self,
        resource_type: &str,
        interaction: Interaction,
    ) -> Result<(), ServiceError> {
        check_type(resource_type)?;
        self.guard.permit(resource_type, interaction)?;
        Ok(())
    }

    /// The start of a create, update or delete: the type must be writable
    /// by clients (405 for AuditEvent) and the interaction permitted; then
    /// the answer's format (406) and preference.
    pub fn begin_write(
        &self,
        resource_type: &str,
        interaction: Interaction,
    ) -> Result<WriteAnswer, ServiceError> {
        check_writable(resource_type, interaction)?;
        self.guard.permit(resource_type, interaction)?;
        Ok(WriteAnswer {
            format: self.format()?,
            preference: return_preference(&self.req),
        })
    }

    /// The response format (`_format`, then `Accept`; 406 when unsupported).
    pub fn format(&self) -> Result<ResponseFormat, ServiceError> {
        response_format(&self.req)
    }

    /// `If-Match` as a version (400 when malformed).
    pub fn if_match(&self) -> Result<Option<i64>, ServiceError> {
        if_match(&self.req)
    }

    /// `Prefer: handling=lenient`.
    pub fn lenient(&self) -> bool {
        prefer_values(&self.req, "handling")
            .iter()
            .any(|v| v == "lenient")
    }

    /// The response, or the error as an OperationOutcome in the negotiated format.
    pub fn answer(&self, result: Result<HttpResponse, ServiceError>) -> HttpResponse {
        result.unwrap_or_else(|e| e.respond(error_format(&self.req)))
    }
}

impl FromRequest for FhirRequest {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(extract(req).map_err(|e| {
            let response = e.respond(error_format(req));
            actix_web::error::InternalError::from_response("refused", response).into()
        }))
    }
}

fn extract(req: &HttpRequest) -> Result<FhirRequest, ServiceError> {
    // actix decodes the path once when it routes, all but the escapes of
    // reserved characters (`%2F`, `%25`, …), and `web::Path` decodes each
    // segment again: a segment that still holds a '%' would be decoded twice
    // (`%%32%65` → `%2e` → `.`). No FHIR type, id, version or operation name
    // contains '%', so such a segment names nothing here.
    if let Some((_, segment)) = req.match_info().iter().find(|(_, s)| s.contains('%')) {
        return Err(ServiceError::not_found(format!(
            "'{segment}' is not a valid resource type, id or version, so nothing here has that name"
        )));
    }
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ServiceError::internal("the FHIR routes run without their state"))?;
    // The authentication middleware leaves a caller on every request it lets
    // through to a guarded path; without one, nothing is served.
    let caller = req
        .extensions()
        .get::<Arc<Caller>>()
        .cloned()
        .ok_or_else(|| ServiceError::internal("the request was not authenticated"))?;
    let mut guard = Guard::for_caller(caller, &state.fhir_base, state.policy);
    if let Some(recorder) = req.extensions().get::<Arc<Recorder>>().cloned() {
        guard = guard.recording(recorder);
    }
    Ok(FhirRequest {
        req: req.clone(),
        state,
        guard,
    })
}
