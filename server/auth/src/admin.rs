//! The admin HTTP endpoints, for bearer tokens of admins holding
//! `fhirledger.admin`: solution admins register clients, onboard hospital
//! admins and compliance officers; hospital admins onboard and remove the
//! doctors and patients of their own hospital — onboarding creates the FHIR
//! resource (Practitioner with its PractitionerRole, or Patient) and the
//! account with its invitation together. `POST /auth/launch` creates EHR
//! launch values for integrations holding `fhirledger.launch`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_profiles::format::FhirFormat;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use fhirledger_access::caller::Caller;
use fhirledger_access::roles::{Role, ADMIN_SCOPE};
use fhirledger_access::scope::Scope;
use fhirledger_service::write::{create_together, new_id};
use fhirledger_service::{Guard, ServiceError};

use crate::accounts::{
    create_launch, create_user, register_client, AccountError, CreatedUser, NewClient, NewUser,
    LAUNCH_SECONDS,
};
use crate::bearer::{bearer_token, validate, BearerError};
use crate::security::{self, SecurityActor, SecurityEvent};
use crate::AuthServer;

/// The scope integrations need to create EHR launches.
pub const LAUNCH_SCOPE: &str = "fhirledger.launch";

/// A JSON error answer of the admin API.
fn error(status: StatusCode, code: &str, description: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "error": code, "error_description": description.into() }))
}

/// Why an admin request is refused before it is handled.
struct Refused {
    status: StatusCode,
    code: &'static str,
    description: String,
    /// `WWW-Authenticate` for 401s.
    challenge: Option<String>,
}

impl Refused {
    fn respond(self) -> HttpResponse {
        let mut resp = error(self.status, self.code, self.description);
        if let Some(v) = self.challenge.and_then(|c| c.parse().ok()) {
            resp.headers_mut()
                .insert(actix_web::http::header::WWW_AUTHENTICATE, v);
        }
        resp
    }

    fn bad_request(description: String) -> Refused {
        Refused {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            description,
            challenge: None,
        }
    }
}

fn created(value: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(value)
}

impl AccountError {
    fn respond(&self) -> HttpResponse {
        match self {
            AccountError::Invalid(m) => {
                error(StatusCode::BAD_REQUEST, "invalid_request", m.clone())
            }
            AccountError::Conflict(m) => error(StatusCode::CONFLICT, "conflict", m.clone()),
            AccountError::Fhir(e) => error(
                StatusCode::from_u16(e.status.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "invalid_request",
                e.to_string(),
            ),
            AccountError::Store(e) => {
                tracing::error!(error = %e, "admin storage failure");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "the database is unavailable",
                )
            }
        }
    }
}

/// The caller, who must hold `scope`.
fn caller_with(req: &HttpRequest, server: &AuthServer, scope: &str) -> Result<Caller, Refused> {
    let unauthorized = |e: BearerError| {
        let (challenge, description) = match &e {
            BearerError::Missing => (
                "Bearer".to_string(),
                "an access token is required".to_string(),
            ),
            BearerError::Invalid(why) => (
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    why.replace('"', "'")
                ),
                why.clone(),
            ),
        };
        Refused {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_token",
            description,
            challenge: Some(challenge),
        }
    };
    let token = bearer_token(req)
        .map_err(unauthorized)?
        .ok_or_else(|| unauthorized(BearerError::Missing))?;
    let claims = validate(server, token).map_err(unauthorized)?;
    let caller = claims.caller().ok_or_else(|| {
        unauthorized(BearerError::Invalid(
            "the token's claims are not understood".into(),
        ))
    })?;
    if !caller.scopes.contains(&Scope::Other(scope.to_string())) {
        return Err(Refused {
            status: StatusCode::FORBIDDEN,
            code: "insufficient_scope",
            description: format!("this needs the {scope} scope"),
            challenge: None,
        });
    }
    Ok(caller)
}

/// An administration done by `admin`, as a security event.
fn administered(req: &HttpRequest, admin: &Caller, what: String) {
    let actor = SecurityActor {
        person: fhirledger_service::audit::person_of(admin),
        client_id: Some(admin.client_id.clone()),
    };
    security::record(req, SecurityEvent::Administration { what }, actor, None);
}

fn json_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Refused> {
    serde_json::from_slice(body).map_err(|e| Refused::bad_request(format!("the JSON body: {e}")))
}

/// `POST /auth/admin/clients` (solution admins).
pub async fn add_client(
    req: HttpRequest,
    server: web::Data<AuthServer>,
    body: web::Bytes,
) -> HttpResponse {
    let caller = match caller_with(&req, &server, ADMIN_SCOPE) {
        Ok(c) => c,
        Err(r) => return r.respond(),
    };
    if caller.role != Some(Role::SolutionAdmin) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only solution admins register clients",
        );
    }
    let new: NewClient = match json_body(&body) {
        Ok(n) => n,
        Err(r) => return r.respond(),
    };
    match server
        .db
        .call(move |store| register_client(store, &new))
        .await
    {
        Ok(Ok(c)) => {
            administered(&req, &caller, c.audit_description());
            created(&c)
        }
        Ok(Err(e)) => e.respond(),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "shutting down",
        ),
    }
}

/// An onboarding: the account, and optionally the FHIR resource to create for it.
#[derive(Deserialize)]
pub struct Onboarding {
    #[serde(flatten)]
    pub user: NewUser,
    /// A Patient (for patients) or Practitioner (for doctors) to create.
    #[serde(default)]
    pub resource: Option<Value>,
}

/// Which roles an admin may onboard and remove, and in which organisation.
fn may_manage(admin: &Caller, role: Role, organization: Option<&str>) -> Result<(), String> {
    match admin.role {
        Some(Role::SolutionAdmin) => match role {
            Role::SolutionAdmin | Role::HospitalAdmin | Role::ComplianceOfficer => Ok(()),
            _ => Err("doctors and patients are onboarded by their hospital's admins".into()),
        },
        Some(Role::HospitalAdmin) => {
            if !matches!(role, Role::Doctor | Role::Patient) {
                return Err("hospital admins onboard doctors and patients".into());
            }
            if organization != admin.organization.as_deref() {
                return Err("hospital admins act only within their own hospital".into());
            }
            Ok(())
        }
        _ => Err("only admins manage accounts".into()),
    }
}

/// `POST /auth/admin/users`.
pub async fn add_user(
    req: HttpRequest,
    server: web::Data<AuthServer>,
    body: web::Bytes,
) -> HttpResponse {
    let (caller, onboarding) = match admin_request(&req, &server, &body) {
        Ok(asked) => asked,
        Err(refused) => return refused.respond(),
    };
    match onboard_as(&req, &server, Arc::new(caller), onboarding).await {
        Ok(user) => created(&user),
        Err(e) => e.respond(),
    }
}

/// An admin onboards a person (their account with its invitation, and the
/// Patient or Practitioner with its PractitionerRole when one is given),
/// recorded as an administration: the admin API and the portal alike. The
/// admin must hold `fhirledger.admin` and may onboard that role in that
/// organisation (a hospital admin's own hospital is the default).
pub async fn onboard_as(
    req: &HttpRequest,
    server: &AuthServer,
    caller: Arc<Caller>,
    mut onboarding: Onboarding,
) -> Result<CreatedUser, OnboardError> {
    let refused = |status, why: String| OnboardError::Refused(status, why);
    if !caller
        .scopes
        .contains(&Scope::Other(ADMIN_SCOPE.to_string()))
    {
        return Err(refused(
            StatusCode::FORBIDDEN,
            format!("this needs the {ADMIN_SCOPE} scope"),
        ));
    }
    if caller.role == Some(Role::HospitalAdmin) && onboarding.user.organization.is_none() {
        onboarding.user.organization = caller.organization.clone();
    }
    let role: Role =
        onboarding
            .user
            .role
            .parse()
            .map_err(|e: fhirledger_access::UnknownRole| {
                refused(StatusCode::BAD_REQUEST, e.to_string())
            })?;
    may_manage(&caller, role, onboarding.user.organization.as_deref())
        .map_err(|why| refused(StatusCode::FORBIDDEN, why))?;
    // The Patient or Practitioner it creates is a FHIR create like any
    // other: its events go into the trail (and the Merkle log) with it, in
    // its transaction, beside the administration event below; a hospital's
    // doctors' open lists hear of a new patient from them.
    let guard = server.guard_in(req, caller.clone());
    let (base, issuer) = (
        server.settings.fhir_base.clone(),
        server.settings.issuer.clone(),
    );
    let limit = server.settings.max_body_bytes;
    let user = server
        .db
        .call(move |store| onboard(store, &guard, &base, &issuer, onboarding, role, limit))
        .await
        .map_err(|_| refused(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into()))??;
    administered(req, &caller, user.audit_description());
    Ok(user)
}

/// The admin asking (holding `fhirledger.admin`) and what they ask for.
fn admin_request(
    req: &HttpRequest,
    server: &AuthServer,
    body: &[u8],
) -> Result<(Caller, Onboarding), Refused> {
    let caller = caller_with(req, server, ADMIN_SCOPE)?;
    let onboarding: Onboarding = json_body(body)?;
    Ok((caller, onboarding))
}

/// Creates the person's FHIR identity when one came with the request (as
/// the admin, through the FHIR service), then their account. Blocking.
fn onboard(
    store: &fhirledger_postgres::PgStore,
    guard: &Guard,
    fhir_base: &str,
    issuer: &str,
    mut onboarding: Onboarding,
    role: Role,
    limit: u64,
) -> Result<CreatedUser, OnboardError> {
    if let Some(resource) = onboarding.resource.take() {
        let reference = create_identity(
            store,
            guard,
            fhir_base,
            role,
            onboarding.user.organization.as_deref(),
            resource,
            limit,
        )?;
        onboarding.user.fhir_user = Some(reference);
    }
    Ok(create_user(store, issuer, &onboarding.user)?)
}

/// Why an onboarding did not happen.
pub enum OnboardError {
    /// The admin may not do this (status and why).
    Refused(StatusCode, String),
    Account(AccountError),
    Fhir(ServiceError),
}

impl OnboardError {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            OnboardError::Refused(status, _) => *status,
            OnboardError::Account(AccountError::Invalid(_)) => StatusCode::BAD_REQUEST,
            OnboardError::Account(AccountError::Conflict(_)) => StatusCode::CONFLICT,
            OnboardError::Account(_) => StatusCode::SERVICE_UNAVAILABLE,
            OnboardError::Fhir(e) => {
                StatusCode::from_u16(e.status.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// What went wrong, for the person who asked (never storage details).
    pub fn message(&self) -> String {
        match self {
            OnboardError::Refused(_, why) => why.clone(),
            OnboardError::Account(AccountError::Invalid(why) | AccountError::Conflict(why)) => {
                why.clone()
            }
            OnboardError::Account(_) => "the database is unavailable".to_string(),
            OnboardError::Fhir(e) => e
                .issues
                .iter()
                .map(|i| i.diagnostics.clone())
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    fn respond(self) -> HttpResponse {
        match self {
            OnboardError::Refused(status, why) => {
                let code = match status {
                    StatusCode::FORBIDDEN => "forbidden",
                    StatusCode::BAD_REQUEST => "invalid_request",
                    _ => "temporarily_unavailable",
                };
                error(status, code, why)
            }
            OnboardError::Account(e) => e.respond(),
            OnboardError::Fhir(e) => error(
                StatusCode::from_u16(e.status.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "invalid_resource",
                e.issues
                    .iter()
                    .map(|i| i.diagnostics.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }
}

impl From<AccountError> for OnboardError {
    fn from(e: AccountError) -> Self {
        OnboardError::Account(e)
    }
}

impl From<ServiceError> for OnboardError {
    fn from(e: ServiceError) -> Self {
        OnboardError::Fhir(e)
    }
}

/// Creates the person's FHIR identity, inside the admin's reach: a Patient
/// managed by the hospital, or a Practitioner with a PractitionerRole at
/// the hospital, in one transaction. Returns `Type/id`.
fn create_identity(
    store: &fhirledger_postgres::PgStore,
    guard: &Guard,
    fhir_base: &str,
    role: Role,
    organization: Option<&str>,
    mut resource: Value,
    limit: u64,
) -> Result<String, OnboardError> {
    let org = organization.map(|o| json!({ "reference": format!("Organization/{o}") }));
    let expected = match role {
        Role::Patient => "Patient",
        Role::Doctor => "Practitioner",
        _ => {
            return Err(OnboardError::Account(AccountError::Invalid(
                "only doctors and patients are onboarded with a FHIR resource".into(),
            )))
        }
    };
    if resource["resourceType"] != expected {
        return Err(OnboardError::Account(AccountError::Invalid(format!(
            "a {role} is onboarded with a {expected} resource"
        ))));
    }
    if role == Role::Patient && resource.get("managingOrganization").is_none() {
        if let Some(org) = &org {
            resource["managingOrganization"] = org.clone();
        }
    }
    let prepared = fhirledger_service::prepare(
        expected,
        resource.to_string().as_bytes(),
        FhirFormat::Json,
        fhir_base,
    )?;
    let id = new_id();
    if role == Role::Doctor {
        // The role first: a hospital admin sees a Practitioner through it.
        let role_resource = json!({
            "resourceType": "PractitionerRole",
            "active": true,
            "practitioner": { "reference": format!("Practitioner/{id}") },
            "organization": org.clone().unwrap_or(Value::Null),
            "code": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/practitioner-role", "code": "doctor" }] }],
        });
        let role_prepared = fhirledger_service::prepare(
            "PractitionerRole",
            role_resource.to_string().as_bytes(),
            FhirFormat::Json,
            fhir_base,
        )?;
        let role_id = new_id();
        create_together(
            store,
            guard,
            &[(&role_prepared, &role_id), (&prepared, &id)],
            limit,
        )?;
    } else {
        create_together(store, guard, &[(&prepared, &id)], limit)?;
    }
    Ok(format!("{expected}/{id}"))
}

/// `GET /auth/admin/users`: the accounts an admin manages.
pub async fn list_users(req: HttpRequest, server: web::Data<AuthServer>) -> HttpResponse {
    let caller = match caller_with(&req, &server, ADMIN_SCOPE) {
        Ok(c) => c,
        Err(r) => return r.respond(),
    };
    match accounts_of(&server, &caller).await {
        Ok(users) => HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(
            users
                .iter()
                .map(|u| {
                    json!({
                        "user_id": u.user_id.to_string(), "email": u.email,
                        "role": u.role.map(|r| r.as_str()),
                        "organization": u.organization, "fhir_user": u.fhir_user, "active": u.active,
                    })
                })
                .collect::<Vec<_>>(),
        ),
        Err((StatusCode::FORBIDDEN, why)) => error(StatusCode::FORBIDDEN, "forbidden", why),
        Err((status, why)) => error(status, "temporarily_unavailable", why),
    }
}

/// `DELETE /auth/admin/users/{id}`: deactivates the account and revokes
/// every token it holds, at once.
pub async fn remove_user(
    req: HttpRequest,
    server: web::Data<AuthServer>,
    path: web::Path<String>,
) -> HttpResponse {
    let caller = match caller_with(&req, &server, ADMIN_SCOPE) {
        Ok(c) => c,
        Err(r) => return r.respond(),
    };
    let Ok(user_id) = path.parse::<Uuid>() else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such user");
    };
    match deactivate_as(&req, &server, &caller, user_id).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err((status, why)) => {
            let code = match status {
                StatusCode::NOT_FOUND => "not_found",
                StatusCode::FORBIDDEN => "forbidden",
                _ => "temporarily_unavailable",
            };
            error(status, code, why)
        }
    }
}

/// An admin deactivates an account they manage: it can no longer sign in
/// and every token it holds is revoked at once; recorded as an
/// administration. The admin API and the portal alike.
pub async fn deactivate_as(
    req: &HttpRequest,
    server: &AuthServer,
    caller: &Caller,
    user_id: Uuid,
) -> Result<(), (StatusCode, String)> {
    let unavailable = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unavailable".to_string(),
        )
    };
    if !caller
        .scopes
        .contains(&Scope::Other(ADMIN_SCOPE.to_string()))
    {
        return Err((
            StatusCode::FORBIDDEN,
            format!("this needs the {ADMIN_SCOPE} scope"),
        ));
    }
    let user = match server.db.call(move |store| store.user(user_id)).await {
        Ok(Ok(Some(u))) => u,
        Ok(Ok(None)) => return Err((StatusCode::NOT_FOUND, "no such user".to_string())),
        _ => return Err(unavailable()),
    };
    let role = user.role.parse::<Role>().map_err(|_| unavailable())?;
    may_manage(caller, role, user.organization.as_deref())
        .map_err(|why| (StatusCode::FORBIDDEN, why))?;
    let expire = server.revocation_expiry();
    match server
        .db
        .call(move |store| store.deactivate_user(user_id, expire))
        .await
    {
        Ok(Ok(_)) => {
            crate::token::sync_revocations(server).await;
            administered(
                req,
                caller,
                format!(
                    "account {user_id} ({}) deactivated, its tokens revoked",
                    user.role
                ),
            );
            Ok(())
        }
        _ => Err(unavailable()),
    }
}

/// The accounts an admin manages: every account for solution admins,
/// their hospital's for hospital admins.
pub async fn accounts_of(
    server: &AuthServer,
    caller: &Caller,
) -> Result<Vec<crate::accounts::AccountSummary>, (StatusCode, String)> {
    let org = match caller.role {
        Some(Role::SolutionAdmin) => None,
        Some(Role::HospitalAdmin) => caller.organization.clone(),
        _ => {
            return Err((
                StatusCode::FORBIDDEN,
                "only admins list accounts".to_string(),
            ))
        }
    };
    match server
        .db
        .call(move |store| store.users(org.as_deref()))
        .await
    {
        Ok(Ok(users)) => Ok(users
            .iter()
            .map(crate::accounts::AccountSummary::of)
            .collect()),
        _ => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unavailable".to_string(),
        )),
    }
}

#[derive(Deserialize)]
struct LaunchRequest {
    patient: String,
    user: String,
}

/// `POST /auth/launch`: a single-use launch value for a patient and user.
pub async fn launch(
    req: HttpRequest,
    server: web::Data<AuthServer>,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(r) = caller_with(&req, &server, LAUNCH_SCOPE) {
        return r.respond();
    }
    let asked: LaunchRequest = match json_body(&body) {
        Ok(l) => l,
        Err(r) => return r.respond(),
    };
    let Ok(user_id) = asked.user.parse::<Uuid>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "user must be a user id",
        );
    };
    let base = server.settings.fhir_base.clone();
    match server
        .db
        .call(move |store| create_launch(store, &base, &asked.patient, user_id))
        .await
    {
        Ok(Ok(launch)) => created(&json!({ "launch": launch, "expires_in": LAUNCH_SECONDS })),
        Ok(Err(e)) => e.respond(),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "shutting down",
        ),
    }
}
