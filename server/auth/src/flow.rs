//! The person's side of an authorization request, after `/auth/authorize`
//! kept it: sign in (`/auth/login`, or an external provider), pick a
//! patient when the app asked for one (`/auth/patient`), approve or deny
//! (`/auth/approve`), and back to the app with a code. `/auth/continue`
//! shows whichever step is next.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use fhirledger_postgres::auth::{AuthRequestRow, GrantRow, UserRow};
use uuid::Uuid;

use fhirledger_access::describe::{describe, PatientRecord};
use fhirledger_access::grant::intersect;
use fhirledger_access::roles::Role;
use fhirledger_access::scope::{Context, Scope, ScopeSet};
use fhirledger_access::{practitioner_of, Caller, Identity};
use fhirledger_postgres::StoredVersion;
use fhirledger_service::reads::{self, ReadResource, Search};
use fhirledger_service::{search, Guard, ServiceError};

use crate::authorize::{append_query, redirect_error, see_other, AuthorizationRequest};
use crate::form::Params;
use crate::pages::{
    approval_page, error_page, login_page, picker_page, PatientChoice, ProviderLink,
};
use crate::passwords::Login;
use crate::secrets::{digest, new_secret};
use crate::security::{self, SecurityActor, SecurityEvent};
use crate::session::{current_user, start};
use crate::sign_in_limits;
use crate::AuthServer;

/// Codes expire within a minute (SMART asks for a short life).
const CODE_LIFETIME_SECONDS: i64 = 60;
/// Patients the picker lists at once.
const PICKER_PAGE: usize = 20;

/// A kept request, by the id in the page's URL or form.
pub struct Pending {
    pub id: String,
    pub row: AuthRequestRow,
    pub request: AuthorizationRequest,
}

/// Loads a kept request; an error page when it expired or never was.
pub async fn pending(server: &AuthServer, id: Option<&str>) -> Result<Pending, HttpResponse> {
    let expired = || {
        error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired",
            "The request is unknown or took too long. Start again from the app.",
        )
    };
    let id = id.ok_or_else(expired)?.to_string();
    let hash = digest(&id);
    let row = server
        .db
        .call(move |store| store.auth_request(&hash))
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
        .ok_or_else(expired)?;
    let request: AuthorizationRequest =
        serde_json::from_value(row.request.clone()).map_err(|_| expired())?;
    Ok(Pending { id, row, request })
}

fn unavailable() -> HttpResponse {
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is unavailable",
        "The authorization server cannot reach its database. Please try again shortly.",
    )
}

/// `GET /auth/continue?request=…`: the next step of a request.
pub async fn continue_route(req: HttpRequest, server: web::Data<AuthServer>) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes());
    let p = match pending(&server, params.get("request")).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let Some((user, session)) = current_user(&server, &req).await else {
        return login_page(
            Some(&p.request.client_name),
            &p.id,
            &provider_links(&server, &p.id),
            server.settings.local_login,
            None,
        );
    };
    if p.row.session_sha256.as_deref() != Some(session.as_slice()) {
        let (id, s) = (digest(&p.id), session.clone());
        if server
            .db
            .call(move |store| store.bind_auth_request(&id, &s))
            .await
            .is_err()
        {
            return unavailable();
        }
    }
    next_step(&req, &server, &p, &user, params.get("q")).await
}

/// Where a request's next step is shown.
pub fn continue_url(server: &AuthServer, request: &str) -> String {
    server.settings.url(&format!("continue?request={request}"))
}

/// External providers offered on the sign-in page.
pub fn provider_links(server: &AuthServer, request: &str) -> Vec<ProviderLink> {
    server
        .providers
        .iter()
        .map(|p| ProviderLink {
            label: p.label().to_string(),
            href: format!("login/{}?request={request}", p.name()),
        })
        .collect()
}

/// What a signed-in person sees next: the picker or the approval page.
async fn next_step(
    req: &HttpRequest,
    server: &AuthServer,
    p: &Pending,
    user: &UserRow,
    query: Option<&str>,
) -> HttpResponse {
    let back =
        |e: &str, d: &str| redirect_error(&p.request.redirect_uri, e, d, Some(&p.request.state));
    match refusal(req, server, p, user).await {
        Ok(None) => {}
        Ok(Some(why)) => return back("access_denied", why),
        Err(()) => return unavailable(),
    }
    let candidate = match candidate_scopes(server, &p.request, user).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    if candidate.iter().all(|s| matches!(s, Scope::Launch)) {
        return back(
            "invalid_scope",
            "none of the requested scopes can be granted to this user",
        );
    }
    if crate::first_party::is_first_party(&p.request.client_id) {
        return first_party_grant(server, p, user, &candidate).await;
    }
    let context = match patient_context(p, user, &candidate) {
        Ok(c) => c,
        Err(why) => return back("access_denied", why),
    };
    let patient = match context {
        PatientContext::Needed => return picker(req, server, p, user, query.unwrap_or("")).await,
        PatientContext::Chosen(id) => Some(id),
        PatientContext::None => None,
    };
    let patient_label = match &patient {
        Some(id) => Some(patient_label(server, id).await),
        None => None,
    };
    let shown = without_launch(&candidate);
    approval_page(
        &p.id,
        &p.request.client_name,
        &user.email,
        patient_label.as_deref(),
        &describe(
            &shown,
            if own_patient(user).is_some() {
                PatientRecord::Own
            } else {
                PatientRecord::InContext
            },
        ),
    )
}

/// requested ∩ the client's allowed scopes ∩ the role's ceiling.
async fn candidate_scopes(
    server: &AuthServer,
    request: &AuthorizationRequest,
    user: &UserRow,
) -> Result<ScopeSet, HttpResponse> {
    let client_id = request.client_id.clone();
    let client = match server.db.call(move |store| store.client(&client_id)).await {
        Ok(Ok(Some(c))) if c.active => c,
        Ok(Ok(_)) => {
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                "This app is no longer registered",
                "Ask its provider.",
            ))
        }
        _ => return Err(unavailable()),
    };
    let role: Role = user.role.parse().map_err(|_| unavailable())?;
    let allowed = ScopeSet::parse(&client.scope).unwrap_or_default();
    Ok(intersect(
        &intersect(&request.scopes(), &allowed),
        &role.ceiling(),
    ))
}

enum PatientContext {
    None,
    /// A standalone launch asked for a patient and the user must pick one.
    Needed,
    Chosen(String),
}

/// The patient the grant will be about: the EHR launch's, the patient's own
/// record, the one picked, or none; `Err` when an EHR launch is about
/// another patient than the one signed in.
fn patient_context(
    p: &Pending,
    user: &UserRow,
    candidate: &ScopeSet,
) -> Result<PatientContext, &'static str> {
    let own = own_patient(user);
    if let Some(launched) = &p.request.launch_patient {
        if own.is_some() && own.as_ref() != Some(launched) {
            return Err("this launch is about another patient");
        }
        return Ok(PatientContext::Chosen(launched.clone()));
    }
    if let Some(own) = own {
        return Ok(PatientContext::Chosen(own));
    }
    let wants_patient = candidate.contains(&Scope::LaunchPatient)
        || candidate
            .resource_scopes()
            .any(|s| s.context == Context::Patient);
    if !wants_patient {
        return Ok(PatientContext::None);
    }
    match &p.row.patient {
        Some(chosen) => Ok(PatientContext::Chosen(chosen.clone())),
        None if may_pick(user) => Ok(PatientContext::Needed),
        None => Ok(PatientContext::None),
    }
}

/// A patient's own record id.
fn own_patient(user: &UserRow) -> Option<String> {
    if user.role != "patient" {
        return None;
    }
    user.fhir_user
        .as_deref()?
        .strip_prefix("Patient/")
        .map(str::to_string)
}

/// Who may choose among several patients: whoever may read patient records.
fn may_pick(user: &UserRow) -> bool {
    user.role.parse::<Role>().is_ok_and(|r| {
        r.ceiling()
            .allows("Patient", fhirledger_access::allow::Interaction::Search)
    })
}

/// The user's own access as a caller (for the picker's search and checks),
/// on behalf of the app asking (`client_id`); what it reads is audited in
/// the request's recorder like any read: the patients a picker listed, the
/// record a launch or a choice was checked against.
fn user_guard(
    req: &HttpRequest,
    server: &AuthServer,
    user: &UserRow,
    client_id: &str,
) -> Option<Guard> {
    let role: Role = user.role.parse().ok()?;
    let user_scopes: ScopeSet = role
        .ceiling()
        .iter()
        .filter(|s| matches!(s, Scope::Resource(r) if r.context == Context::User))
        .cloned()
        .collect();
    let identity = Identity {
        subject: user.user_id.to_string(),
        client_id: client_id.to_string(),
        role: Some(role),
        organization: user.organization.clone(),
        patient: None,
        practitioner: user.fhir_user.as_deref().and_then(practitioner_of),
        token_id: String::new(),
        name: None,
        organization_name: None,
    };
    let caller = Caller::new(identity, user_scopes, &server.settings.fhir_base);
    Some(server.guard_in(req, Arc::new(caller)))
}

/// The picker: patients the user may read, filtered by name.
async fn picker(
    req: &HttpRequest,
    server: &AuthServer,
    p: &Pending,
    user: &UserRow,
    query: &str,
) -> HttpResponse {
    let Some(guard) = user_guard(req, server, user, &p.request.client_id) else {
        return unavailable();
    };
    let mut params = vec![
        ("_count".to_string(), PICKER_PAGE.to_string()),
        ("_sort".to_string(), "family".to_string()),
    ];
    if !query.trim().is_empty() {
        params.push(("name".to_string(), query.trim().to_string()));
    }
    let base = server.settings.fhir_base.clone();
    let found = server
        .db
        .run_read(move |store| -> Result<Vec<PatientChoice>, ServiceError> {
            let request = search::parse(&base, "Patient", &params, true)?;
            let page = reads::read(store, &guard, Search { request: &request })?.value;
            Ok(page
                .matches
                .iter()
                .filter_map(|m| {
                    let v: serde_json::Value = serde_json::from_str(m.content.as_str()).ok()?;
                    Some(PatientChoice {
                        id: m.id.clone(),
                        name: display_name(&v),
                        detail: v["birthDate"]
                            .as_str()
                            .map(|d| format!("born {d}"))
                            .unwrap_or_default(),
                    })
                })
                .collect())
        })
        .await;
    match found {
        Ok(patients) => picker_page(&p.id, &p.request.client_name, query, &patients),
        _ => unavailable(),
    }
}

/// "Given Family" of a Patient resource, or its id.
fn display_name(patient: &serde_json::Value) -> String {
    crate::names::person_name(patient).unwrap_or_else(|| {
        patient["id"]
            .as_str()
            .unwrap_or("unnamed patient")
            .to_string()
    })
}

async fn patient_label(server: &AuthServer, id: &str) -> String {
    // The person approving either is this patient or was checked to open
    // this patient's record (`may_open`); the name is read by the server
    // for the page they are shown.
    let guard = Guard::for_server(
        &server.settings.fhir_base,
        "approval page: the patient's name",
    );
    let pid = id.to_string();
    let found = server
        .db
        .run_read(move |store| -> Result<StoredVersion, ServiceError> {
            let op = ReadResource {
                resource_type: "Patient",
                id: &pid,
                version: None,
            };
            Ok(reads::read(store, &guard, op)?.value)
        })
        .await;
    match found {
        Ok(v) => v
            .content
            .as_deref()
            .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
            .map(|v| display_name(&v))
            .unwrap_or_else(|| id.to_string()),
        _ => id.to_string(),
    }
}

/// The approval page does not list `launch` itself: it is the EHR's
/// context, not a permission.
fn without_launch(scopes: &ScopeSet) -> ScopeSet {
    scopes
        .iter()
        .filter(|s| !matches!(s, Scope::Launch))
        .cloned()
        .collect()
}

/// The signed-in user of a request's own session, or an error page.
async fn request_user(
    server: &AuthServer,
    req: &HttpRequest,
    p: &Pending,
) -> Result<UserRow, HttpResponse> {
    let forbidden = || {
        error_page(
            StatusCode::FORBIDDEN,
            "Please sign in again",
            "This step must come from the browser that signed in for this request.",
        )
    };
    let (user, session) = current_user(server, req).await.ok_or_else(forbidden)?;
    if p.row.session_sha256.as_deref() != Some(session.as_slice()) {
        return Err(forbidden());
    }
    Ok(user)
}

/// Whether `user` may open the record of `patient` (read it with their own
/// access): the rule for a picked patient and for an EHR launch's patient.
/// `Err` when the database cannot say.
async fn may_open(
    req: &HttpRequest,
    server: &AuthServer,
    p: &Pending,
    user: &UserRow,
    patient: &str,
) -> Result<bool, ()> {
    let guard = user_guard(req, server, user, &p.request.client_id).ok_or(())?;
    let pid = patient.to_string();
    let visible = server
        .db
        .run_read(move |store| -> Result<bool, ServiceError> {
            let op = ReadResource {
                resource_type: "Patient",
                id: &pid,
                version: None,
            };
            Ok(!reads::read(store, &guard, op)?.value.is_deleted())
        })
        .await;
    match visible {
        Ok(visible) => Ok(visible),
        Err(e) if e.status.code() < 500 => Ok(false),
        Err(_) => Err(()),
    }
}

/// Why a request may not go on for this user: their hospital has been
/// deactivated, or an EHR launch was made for someone else, or its patient
/// is outside what the user may open (a patient's own record is checked by
/// [`patient_context`]). Checked wherever a request advances, since each
/// form can be posted without the page before it.
async fn refusal(
    req: &HttpRequest,
    server: &AuthServer,
    p: &Pending,
    user: &UserRow,
) -> Result<Option<&'static str>, ()> {
    let hospital_active = crate::hospitals::is_active(server, user.organization.as_deref())
        .await
        .map_err(|_| ())?;
    if !hospital_active {
        return Ok(Some("your hospital's access has been deactivated"));
    }
    if let Some(launch_user) = &p.request.launch_user {
        if *launch_user != user.user_id.to_string() {
            return Ok(Some("this launch was made for another user"));
        }
    }
    match &p.request.launch_patient {
        Some(patient) if own_patient(user).is_none() => {
            if may_open(req, server, p, user, patient).await? {
                Ok(None)
            } else {
                Ok(Some("this launch is about a patient you may not open"))
            }
        }
        _ => Ok(None),
    }
}

/// `POST /auth/patient`: the picker's choice, which the user must be able to see.
pub async fn patient_post(
    req: HttpRequest,
    server: web::Data<AuthServer>,
    body: web::Bytes,
) -> HttpResponse {
    let params = Params::parse(&body);
    let p = match pending(&server, params.get("request")).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let user = match request_user(&server, &req, &p).await {
        Ok(u) => u,
        Err(page) => return page,
    };
    let Some(patient) = params.get("patient").map(str::to_string) else {
        return see_other(&continue_url(&server, &p.id));
    };
    if !matches!(may_open(&req, &server, &p, &user, &patient).await, Ok(true)) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Patient not available",
            "You may not open this patient's record.",
        );
    }
    let hash = digest(&p.id);
    if server
        .db
        .call(move |store| store.set_auth_request_patient(&hash, &patient))
        .await
        .is_err()
    {
        return unavailable();
    }
    see_other(&continue_url(&server, &p.id))
}

/// `POST /auth/approve`: the person's decision. Approving issues a code for
/// the scopes left ticked (never more than the candidate set).
pub async fn approve_post(
    req: HttpRequest,
    server: web::Data<AuthServer>,
    body: web::Bytes,
) -> HttpResponse {
    let form = ApprovalForm::parse(&body);
    let p = match pending(&server, form.request_id.as_deref()).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let user = match request_user(&server, &req, &p).await {
        Ok(u) => u,
        Err(page) => return page,
    };
    let back =
        |e: &str, d: &str| redirect_error(&p.request.redirect_uri, e, d, Some(&p.request.state));
    // Checked here too: the form can be posted without the page being shown.
    match refusal(&req, &server, &p, &user).await {
        Ok(None) => {}
        Ok(Some(why)) => return back("access_denied", why),
        Err(()) => return unavailable(),
    }
    if !form.approved {
        let _ = finish_request(&server, &p.id).await;
        return back("access_denied", "the user denied access");
    }
    let candidate = match candidate_scopes(&server, &p.request, &user).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let scope = approved_scopes(&candidate, &form.ticked);
    let patient = match patient_context(&p, &user, &candidate) {
        Ok(PatientContext::Chosen(id)) => Some(id),
        Ok(PatientContext::Needed) => return see_other(&continue_url(&server, &p.id)),
        Ok(PatientContext::None) => None,
        Err(why) => return back("access_denied", why),
    };
    grant_and_return(&server, &p, &user, scope, patient).await
}

/// Answers the request (once): the grant and its code, and back to the app.
async fn grant_and_return(
    server: &AuthServer,
    p: &Pending,
    user: &UserRow,
    scope: ScopeSet,
    patient: Option<String>,
) -> HttpResponse {
    let back =
        |e: &str, d: &str| redirect_error(&p.request.redirect_uri, e, d, Some(&p.request.state));
    match finish_request(server, &p.id).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return back("access_denied", "this request was already answered"),
        _ => return unavailable(),
    }
    match issue_code(server, p, user, scope, patient).await {
        Some(code) => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("code", &code);
            query.append_pair("state", &p.request.state);
            see_other(&append_query(&p.request.redirect_uri, &query.finish()))
        }
        None => back(
            "temporarily_unavailable",
            "the authorization server's database is unavailable",
        ),
    }
}

/// The server's own portal ([`crate::first_party`]): no picker and no
/// approval page. A patient works on their own record (`patient/` scopes),
/// everyone else with their role's `user/` scopes and no patient context.
async fn first_party_grant(
    server: &AuthServer,
    p: &Pending,
    user: &UserRow,
    candidate: &ScopeSet,
) -> HttpResponse {
    let patient = own_patient(user);
    let scope: ScopeSet = candidate
        .iter()
        .filter(|s| match s {
            Scope::Resource(r) => (r.context == Context::Patient) == patient.is_some(),
            Scope::Launch | Scope::LaunchPatient => false,
            _ => true,
        })
        .cloned()
        .collect();
    grant_and_return(server, p, user, scope, patient).await
}

/// What the approval form says.
struct ApprovalForm {
    request_id: Option<String>,
    /// The person pressed "approve" (anything else denies).
    approved: bool,
    /// The scopes left ticked.
    ticked: Vec<String>,
}

impl ApprovalForm {
    fn parse(body: &[u8]) -> ApprovalForm {
        let mut form = ApprovalForm {
            request_id: None,
            approved: false,
            ticked: Vec::new(),
        };
        for (k, v) in form_urlencoded::parse(body) {
            match k.as_ref() {
                "request" => form.request_id = Some(v.to_string()),
                "decision" => form.approved = v == "approve",
                "scope" => form.ticked.push(v.to_string()),
                _ => {}
            }
        }
        form
    }
}

/// The scopes granted: those ticked among those offered, and `launch` when
/// offered (the EHR's context, never shown as a permission).
fn approved_scopes(candidate: &ScopeSet, ticked: &[String]) -> ScopeSet {
    let chosen = ScopeSet::parse(&ticked.join(" ")).unwrap_or_default();
    let mut approved = intersect(&chosen, candidate);
    if candidate.contains(&Scope::Launch) {
        approved.insert(Scope::Launch);
    }
    approved
}

/// Marks the authorization request answered; `Ok(Ok(false))` when it
/// already was (a second post of the same form).
async fn finish_request(
    server: &AuthServer,
    id: &str,
) -> Result<Result<bool, fhirledger_postgres::StoreError>, fhirledger_service::Stopped> {
    let hash = digest(id);
    server
        .db
        .call(move |store| store.finish_auth_request(&hash))
        .await
}

/// Records the grant and its single-use code; the code, or `None` when the
/// database could not keep it.
async fn issue_code(
    server: &AuthServer,
    p: &Pending,
    user: &UserRow,
    scope: ScopeSet,
    patient: Option<String>,
) -> Option<String> {
    let grant = GrantRow {
        grant_id: Uuid::new_v4(),
        client_id: p.request.client_id.clone(),
        user_id: Some(user.user_id),
        scope: scope.to_string(),
        need_patient_banner: patient.is_some() && p.request.launch_patient.is_none(),
        patient,
    };
    let code = new_secret();
    let (hash, redirect, challenge, nonce) = (
        digest(&code),
        p.request.redirect_uri.clone(),
        p.request.code_challenge.clone(),
        p.request.nonce.clone(),
    );
    let expires = Utc::now() + chrono::Duration::seconds(CODE_LIFETIME_SECONDS);
    let saved = server
        .db
        .call(move |store| {
            store.create_grant_with_code(
                &grant,
                &hash,
                &redirect,
                &challenge,
                nonce.as_deref(),
                expires,
            )
        })
        .await;
    matches!(saved, Ok(Ok(()))).then_some(code)
}

/// `POST /auth/login`: a local (development) password sign-in.
pub async fn login_post(
    req: HttpRequest,
    server: web::Data<AuthServer>,
    body: web::Bytes,
) -> HttpResponse {
    let params = Params::parse(&body);
    let p = match pending(&server, params.get("request")).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let again = |msg: &str| {
        login_page(
            Some(&p.request.client_name),
            &p.id,
            &provider_links(&server, &p.id),
            server.settings.local_login,
            Some(msg),
        )
    };
    if !server.settings.local_login {
        return again("Password sign-in is not enabled on this server.");
    }
    let (Some(email), Some(password)) = (params.get("email"), params.get("password")) else {
        return again("Enter your email and password.");
    };
    let client_id = Some(p.request.client_id.clone());
    let refused = |person: Option<&UserRow>, status: u16, why: &str| {
        let actor = SecurityActor {
            person: person.map(security::person),
            client_id: client_id.clone(),
        };
        security::record(&req, SecurityEvent::SignIn, actor, Some((status, why)));
    };
    let address =
        security::request_recorder(&req).and_then(|r| r.client_address().map(str::to_string));
    let limits = sign_in_limits::Keys::of(email, address.as_deref());
    // A locked account or address: refused before any password is checked.
    match sign_in_limits::locked_until(&server, &limits).await {
        Ok(None) => {}
        Ok(Some(until)) => {
            let person = account_of(&server, email).await;
            refused(
                person.as_ref(),
                429,
                &format!(
                    "sign-in locked until {} after repeated failures",
                    until.to_rfc3339()
                ),
            );
            return too_many(
                again("Too many failed sign-ins. Wait a while before trying again."),
                until,
            );
        }
        Err(()) => return unavailable(),
    }
    let failed = |person: Option<UserRow>, why: String| {
        let server = server.clone();
        let refused = &refused;
        let again = &again;
        let limits = &limits;
        async move {
            refused(person.as_ref(), 401, &why);
            match sign_in_limits::failed(&server, limits).await {
                Ok(None) => again("The email or password is wrong."),
                Ok(Some(lock)) => {
                    // The lock is an event of its own: the owner sees it.
                    refused(
                        person.as_ref(),
                        429,
                        &format!(
                            "{} locked until {} after {} failed sign-ins",
                            lock.what,
                            lock.until.to_rfc3339(),
                            lock.failures
                        ),
                    );
                    too_many(
                        again("Too many failed sign-ins. Wait a while before trying again."),
                        lock.until,
                    )
                }
                Err(()) => unavailable(),
            }
        }
    };
    let user = match crate::passwords::check_login(&server, email, password).await {
        Ok(Login::Valid(u)) => u,
        Ok(Login::Refused(u)) => {
            return failed(
                Some(u),
                "wrong password, or the account is inactive".to_string(),
            )
            .await;
        }
        Ok(Login::Unknown) => {
            return failed(None, format!("no account has the email '{email}'")).await;
        }
        Err(()) => return unavailable(),
    };
    sign_in_limits::succeeded(&server, &limits).await;
    let actor = SecurityActor {
        person: Some(security::person(&user)),
        client_id: client_id.clone(),
    };
    security::record(&req, SecurityEvent::SignIn, actor, None);
    signed_in(&server, &p.id, user.user_id, &req).await
}

/// A refused sign-in page as 429 with `Retry-After`.
fn too_many(mut page: HttpResponse, until: chrono::DateTime<chrono::Utc>) -> HttpResponse {
    *page.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    if let Ok(value) = sign_in_limits::seconds_until(until).to_string().parse() {
        page.headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, value);
    }
    page
}

/// The account an email names, for the events of a locked sign-in.
async fn account_of(server: &AuthServer, email: &str) -> Option<UserRow> {
    let email = email.to_string();
    match server
        .db
        .call(move |store| store.user_by_email(&email))
        .await
    {
        Ok(Ok(user)) => user,
        _ => None,
    }
}

/// Starts the session, binds the request to it, and continues.
pub async fn signed_in(
    server: &AuthServer,
    request_id: &str,
    user_id: Uuid,
    _req: &HttpRequest,
) -> HttpResponse {
    let Ok((cookie, session)) = start(server, user_id).await else {
        return unavailable();
    };
    let hash = digest(request_id);
    if server
        .db
        .call(move |store| store.bind_auth_request(&hash, &session))
        .await
        .is_err()
    {
        return unavailable();
    }
    let mut resp = see_other(&continue_url(server, request_id));
    let _ = resp.add_cookie(&cookie);
    resp
}
