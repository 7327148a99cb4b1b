//! The portal's session: the access token of its grant in an HttpOnly,
//! `SameSite=Lax` cookie scoped to `/portal` (never sent to `/fhir` or
//! `/auth`, never readable by scripts), checked on every request by the
//! same bearer check as a FHIR request's. Nothing of the session is kept
//! on the server, so any replica serves any page, and revoking the grant
//! (sign-out, a deactivated hospital or account) ends it everywhere.
//!
//! [`Visit`] is the extractor every signed-in page starts from: the
//! caller and its [`Guard`], recording into the request's audit recorder.

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use fhirledger_access::roles::Role;
use fhirledger_access::Caller;
use fhirledger_auth::AuthServer;
use fhirledger_service::Guard;

use crate::layout;

/// The cookie holding the session's access token.
pub const SESSION_COOKIE: &str = "fhirledger_portal";
/// The cookie holding the id token, sent only to the sign-out route (it is
/// the `id_token_hint` that lets `/auth/logout` end the sign-in at once).
pub const ID_COOKIE: &str = "fhirledger_portal_id";
/// The cookie carrying a sign-in's `state` and PKCE verifier to the callback.
pub const LOGIN_COOKIE: &str = "fhirledger_portal_login";

/// A signed-in person's request to the portal.
pub struct Visit {
    pub req: HttpRequest,
    pub server: web::Data<AuthServer>,
    pub caller: Arc<Caller>,
    /// The caller's guard, recording into the request's AuditEvents.
    pub guard: Guard,
    access_token: String,
}

impl Visit {
    /// The token forms must carry ([`crate::csrf`]).
    pub fn csrf_token(&self) -> String {
        crate::csrf::token(&self.access_token)
    }

    /// Whether a posted form carries this session's token.
    pub fn csrf_valid(&self, sent: Option<&str>) -> bool {
        crate::csrf::check(&self.access_token, sent)
    }

    /// A posted form's fields (trimmed), once its CSRF token is this
    /// session's; `None` for a form that did not come from this session's
    /// pages (answer it with `sharing::forged`).
    pub fn checked_form(&self, body: &[u8]) -> Option<std::collections::HashMap<String, String>> {
        let fields: std::collections::HashMap<String, String> = form_urlencoded::parse(body)
            .into_owned()
            .map(|(k, v)| (k, v.trim().to_string()))
            .collect();
        self.csrf_valid(fields.get(crate::csrf::FIELD).map(String::as_str))
            .then_some(fields)
    }

    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    pub fn role(&self) -> Option<Role> {
        self.caller.role
    }

    /// What the header shows of the person: their name (or account), role
    /// and hospital.
    pub fn person(&self) -> layout::Person {
        layout::Person {
            name: self
                .caller
                .name
                .clone()
                .unwrap_or_else(|| "Signed in".to_string()),
            role: self.caller.role.map(role_label).unwrap_or("").to_string(),
            organization: self.caller.organization_name.clone(),
            csrf: self.csrf_token(),
        }
    }
}

/// A role in plain words.
pub fn role_label(role: Role) -> &'static str {
    match role {
        Role::SolutionAdmin => "Solution administrator",
        Role::HospitalAdmin => "Hospital administrator",
        Role::Doctor => "Doctor",
        Role::Patient => "Patient",
        Role::ComplianceOfficer => "Compliance officer",
    }
}

impl FromRequest for Visit {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(visit(req))
    }
}

/// A response in place of the page (actix's error type carries it).
fn instead(response: HttpResponse) -> actix_web::Error {
    actix_web::error::InternalError::from_response("not signed in", response).into()
}

fn visit(req: &HttpRequest) -> Result<Visit, actix_web::Error> {
    let Some(server) = req.app_data::<web::Data<AuthServer>>().cloned() else {
        tracing::error!("the portal runs without the authorization server; refusing");
        return Err(instead(layout::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "The portal is unavailable",
            "The server is not configured to check sign-ins. Please try again later.",
        )));
    };
    let token = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
    let caller = token
        .as_deref()
        .map(|t| fhirledger_auth::bearer::caller(&server, t));
    let (token, caller) = match (token, caller) {
        (Some(token), Some(Ok(caller))) => (token, caller),
        (_, Some(Err(why))) => {
            tracing::debug!(?why, "a portal session ended");
            return Err(instead(signed_out(req, true)));
        }
        _ => return Err(instead(signed_out(req, false))),
    };
    let guard = server.guard_in(req, caller.clone());
    Ok(Visit {
        req: req.clone(),
        server,
        caller,
        guard,
        access_token: token,
    })
}

/// Without a live session: a page read goes through sign-in and comes back;
/// a form post is not replayed (it would act without the person seeing
/// it), the person is told and offered to sign in.
fn signed_out(req: &HttpRequest, expired: bool) -> HttpResponse {
    if req.method() == Method::GET {
        let here = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/portal");
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("next", here);
        if expired {
            q.append_pair("expired", "1");
        }
        let mut response = layout::see_other(&format!("/portal/sign-in?{}", q.finish()));
        remove(&mut response, SESSION_COOKIE, "/portal");
        return response;
    }
    let mut response = layout::problem(
        StatusCode::UNAUTHORIZED,
        "Your session has ended",
        "For your safety, nothing was changed. Sign in again and repeat what you were doing.",
    );
    remove(&mut response, SESSION_COOKIE, "/portal");
    response
}

/// A cookie of the portal: HttpOnly, `SameSite=Lax`, `Secure` behind HTTPS.
pub fn cookie(
    server: &AuthServer,
    name: &'static str,
    value: String,
    path: &'static str,
    max_age_seconds: i64,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(server.settings.public_base.starts_with("https://"))
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_seconds))
        .finish()
}

/// Adds the removal of a cookie to a response.
pub fn remove(response: &mut HttpResponse, name: &'static str, path: &'static str) {
    let mut cookie = Cookie::build(name, "").path(path).finish();
    cookie.make_removal();
    let _ = response.add_cookie(&cookie);
}
