//! Every FHIR request but the public ones (`/fhir/metadata` and the
//! discovery documents) must carry a valid access token of ours: this
//! middleware checks it before routing and leaves the [`Caller`] in the
//! request for the handlers' access decisions. It also answers CORS for the
//! FHIR API: browser apps send bearer tokens, never cookies, so any origin
//! may call it.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use std::sync::Arc;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpMessage, HttpResponse};
use fhir_profiles::outcome::IssueType;

use crate::http::client_address::TrustedProxies;
use crate::http::error::{ErrorResponse, Refusal};
use crate::http::negotiate::{error_format, ResponseFormat};
use crate::state::AppState;
use fhirledger_auth::bearer::{bearer_token, caller, BearerError};
use fhirledger_service::audit::{Recorder, RequestFacts};
use fhirledger_service::{ServiceError, Status};

/// Paths under `/fhir` anyone may read.
fn is_public(path: &str) -> bool {
    path == "/fhir/metadata" || path.starts_with("/fhir/.well-known/")
}

/// The middleware: 401 without a valid token; otherwise the request goes on
/// with its [`Caller`].
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let path = req.path();
    let fhir = path == "/fhir" || path.starts_with("/fhir/");
    if path.starts_with("/auth/") || path == "/portal" || path.starts_with("/portal/") {
        return recorded(req, next).await;
    }
    if !fhir {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    if req.method() == actix_web::http::Method::OPTIONS {
        return Ok(req.into_response(fhirledger_auth::discovery::preflight().await));
    }
    let mut response = if is_public(path) {
        next.call(req).await?.map_into_boxed_body()
    } else {
        guarded(req, next).await?
    };
    allow_any_origin(response.headers_mut());
    Ok(response)
}

/// CORS headers on a FHIR answer.
fn allow_any_origin(headers: &mut actix_web::http::header::HeaderMap) {
    use actix_web::http::header::{HeaderName, HeaderValue};
    headers.insert(
        HeaderName::from_static("access-control-allow-origin"),
        HeaderValue::from_static("*"),
    );
    headers.insert(
        HeaderName::from_static("access-control-expose-headers"),
        HeaderValue::from_static(
            "Location, ETag, Last-Modified, Content-Location, WWW-Authenticate, X-Request-Id",
        ),
    );
}

/// Authenticates a request to a guarded path.
async fn guarded(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Without the state there is no way to check a token: refuse (fail
    // closed), never pass. `app::serve` always registers it.
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        tracing::error!("the FHIR routes run without their state; refusing the request");
        let response =
            ServiceError::internal("the server is not configured to check access tokens")
                .respond(error_format(req.request()));
        return Ok(req.into_response(response));
    };
    let outcome = match bearer_token(req.request()) {
        Ok(Some(token)) => caller(&state.auth, token),
        Ok(None) => Err(BearerError::Missing),
        Err(e) => Err(e),
    };
    let request_id = request_id(&req);
    let recorder = Arc::new(Recorder::new(
        request_facts(&req, &request_id, &state.trusted_proxies),
        state.observer.clone(),
    ));
    let (method, path) = (req.method().clone(), req.path().to_string());
    let format = error_format(req.request());
    let (caller, response) = match outcome {
        Ok(caller) => {
            req.extensions_mut().insert(caller.clone());
            req.extensions_mut().insert(recorder.clone());
            (Some(caller), next.call(req).await?.map_into_boxed_body())
        }
        Err(e) => {
            let response = unauthorized(&e, &state.fhir_base, format);
            (None, req.into_response(response))
        }
    };
    // A request refused or failed before any read or write recorded it (401,
    // 403, a 404 that may hide a resource, a 4xx or 5xx of any kind) is
    // recorded as such: the patient and the compliance officer see attempts too.
    let status = response.status().as_u16();
    if status >= 400 && recorder.is_empty() {
        let why = response
            .response()
            .extensions()
            .get::<Refusal>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let (interaction, target) = fhirledger_audit::interaction_of(method.as_str(), &path);
        recorder.refused(caller.as_deref(), interaction, status, &why, target, None);
    }
    Ok(committed(&state, &recorder, response, format, &request_id).await)
}

/// A request to the authorization server (`/auth/…`) or the portal
/// (`/portal/…`): its handlers record what they do — security events
/// (sign-in, tokens, revocation, administration), and the portal's reads and
/// writes through the service — in the request's [`Recorder`], committed
/// here like a FHIR request's.
async fn recorded(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let request_id = request_id(&req);
    let recorder = Arc::new(Recorder::new(
        request_facts(&req, &request_id, &state.trusted_proxies),
        state.observer.clone(),
    ));
    req.extensions_mut().insert(recorder.clone());
    let format = error_format(req.request());
    let response = next.call(req).await?.map_into_boxed_body();
    Ok(committed(&state, &recorder, response, format, &request_id).await)
}

/// The response once the interaction's AuditEvents are durable; if they
/// cannot be, nothing of it leaves (503, fail closed). Carries the request id.
async fn committed(
    state: &AppState,
    recorder: &Recorder,
    response: ServiceResponse<BoxBody>,
    format: ResponseFormat,
    request_id: &str,
) -> ServiceResponse<BoxBody> {
    let mut response = match state.audit_log.record(recorder.take()).await {
        Ok(()) => response,
        Err(e) => {
            let (request, _) = response.into_parts();
            ServiceResponse::new(request, e.respond(format))
        }
    };
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    response
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's `X-Request-Id` when it is a plausible id (1–200 letters,
/// digits, `.`, `_`, `-`), else a new one: it ties the response to its
/// AuditEvents.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=200).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// What the audit needs of the request: its id, where it came from, and the
/// request line as sent.
fn request_facts(
    req: &ServiceRequest,
    request_id: &str,
    trusted_proxies: &TrustedProxies,
) -> RequestFacts {
    let uri = req.uri();
    let forwarded_for = req
        .headers()
        .get_all(X_FORWARDED_FOR)
        .filter_map(|v| v.to_str().ok());
    RequestFacts {
        request_id: request_id.to_string(),
        client_address: req.peer_addr().map(|a| {
            trusted_proxies
                .client_address(a.ip(), forwarded_for)
                .to_string()
        }),
        raw: format!(
            "{} {}",
            req.method(),
            uri.path_and_query()
                .map(|p| p.as_str())
                .unwrap_or(uri.path())
        ),
        tool: None,
    }
}

/// 401 with the `WWW-Authenticate` challenge and an OperationOutcome.
fn unauthorized(e: &BearerError, realm: &str, format: ResponseFormat) -> HttpResponse {
    let (challenge, message) = e.challenge(realm);
    let mut resp =
        ServiceError::new(Status::UNAUTHORIZED, IssueType::Login, message).respond(format);
    if let Ok(value) = challenge.parse() {
        resp.headers_mut()
            .insert(actix_web::http::header::WWW_AUTHENTICATE, value);
    }
    resp
}
