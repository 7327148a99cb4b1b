//! `GET|POST /auth/authorize`: checks an authorization request and starts
//! the sign-in. Problems with the client or its redirect URI are shown to
//! the person (never redirected: the URI is not trusted); every other
//! problem goes back to the app as `error=…&state=…`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use fhirledger_postgres::auth::ClientRow;
use serde::{Deserialize, Serialize};

use crate::form::Params;
use crate::pages::error_page;
use crate::secrets::{digest, new_secret};
use crate::AuthServer;
use fhirledger_access::scope::{Scope, ScopeSet};

/// How long a person has to sign in and approve.
const REQUEST_LIFETIME_MINUTES: i64 = 15;

/// A checked authorization request, kept in the store while the person
/// signs in, picks a patient and approves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uri: String,
    /// The scopes asked for, as given.
    pub scope: String,
    pub state: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    /// An EHR launch: the patient and user it was made for.
    pub launch_patient: Option<String>,
    pub launch_user: Option<String>,
}

impl AuthorizationRequest {
    pub fn scopes(&self) -> ScopeSet {
        ScopeSet::parse(&self.scope).unwrap_or_default()
    }
}

pub async fn authorize_get(req: HttpRequest, server: web::Data<AuthServer>) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes());
    authorize(&server, params).await
}

pub async fn authorize_post(
    req: HttpRequest,
    server: web::Data<AuthServer>,
    body: web::Bytes,
) -> HttpResponse {
    let mut params = Params::parse(&body);
    if body.is_empty() {
        params = Params::parse(req.query_string().as_bytes());
    }
    authorize(&server, params).await
}

async fn authorize(server: &AuthServer, params: Params) -> HttpResponse {
    let client = match trusted_client(server, &params).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let redirect_uri = params.get("redirect_uri").unwrap_or_default().to_string();
    let state = params.get("state").map(str::to_string);
    let back = |error: &str, description: &str| {
        redirect_error(&redirect_uri, error, description, state.as_deref())
    };
    if let Some(name) = params.repeated() {
        return back(
            "invalid_request",
            &format!("'{name}' is given more than once"),
        );
    }
    match checked(server, &client, &params).await {
        Ok(request) => {
            let id = new_secret();
            let value = match serde_json::to_value(&request) {
                Ok(v) => v,
                Err(_) => return back("server_error", "the request could not be kept"),
            };
            let expires = Utc::now() + chrono::Duration::minutes(REQUEST_LIFETIME_MINUTES);
            let hash = digest(&id);
            match server
                .db
                .call(move |store| store.create_auth_request(&hash, &value, expires))
                .await
            {
                Ok(Ok(())) => see_other(&format!("continue?request={id}")),
                _ => back(
                    "temporarily_unavailable",
                    "the authorization server's database is unavailable",
                ),
            }
        }
        Err((error, description)) => back(error, &description),
    }
}

/// The client and redirect URI, which must be known before anything can be
/// redirected; otherwise the person sees an error page.
async fn trusted_client(server: &AuthServer, params: &Params) -> Result<ClientRow, HttpResponse> {
    let bad = |msg: &str| {
        error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in request is not valid",
            msg,
        )
    };
    let Some(client_id) = params.get("client_id") else {
        return Err(bad("The app did not say who it is (client_id is missing)."));
    };
    let id = client_id.to_string();
    let client = match server.db.call(move |store| store.client(&id)).await {
        Ok(Ok(Some(c))) if c.active => c,
        Ok(Ok(_)) => return Err(bad("The app is not registered with this server.")),
        _ => {
            return Err(error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable",
                "The authorization server cannot reach its database. Please try again shortly.",
            ))
        }
    };
    match params.get("redirect_uri") {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => Ok(client),
        Some(_) => Err(bad(
            "The app asked to return to an address it has not registered.",
        )),
        None => Err(bad(
            "The app did not say where to return (redirect_uri is missing).",
        )),
    }
}

type Refusal = (&'static str, String);

/// Everything else about the request; errors go back to the app.
async fn checked(
    server: &AuthServer,
    client: &ClientRow,
    params: &Params,
) -> Result<AuthorizationRequest, Refusal> {
    let invalid = |m: &str| ("invalid_request", m.to_string());
    if client.kind == "backend" {
        return Err((
            "unauthorized_client",
            "backend clients use client_credentials, not authorize".into(),
        ));
    }
    match params.get("response_type") {
        Some("code") => {}
        Some(other) => {
            return Err((
                "unsupported_response_type",
                format!("response_type '{other}' is not supported; use code"),
            ))
        }
        None => return Err(invalid("response_type is missing")),
    }
    let state = params
        .get("state")
        .ok_or_else(|| invalid("state is missing"))?;
    let challenge = params
        .get("code_challenge")
        .ok_or_else(|| invalid("code_challenge is missing: PKCE (S256) is required"))?;
    match params.get("code_challenge_method") {
        Some("S256") => {}
        Some(other) => {
            return Err(invalid(&format!(
                "code_challenge_method '{other}' is not supported; use S256"
            )))
        }
        None => return Err(invalid("code_challenge_method is missing: use S256")),
    }
    if challenge.len() != 43
        || !challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid(
            "code_challenge is not an S256 challenge (43 base64url characters)",
        ));
    }
    let aud = params
        .get("aud")
        .ok_or_else(|| invalid("aud is missing: give the FHIR base URL"))?;
    if aud.trim_end_matches('/') != server.settings.fhir_base {
        return Err(invalid(&format!(
            "aud '{aud}' is not this server's FHIR base URL ({})",
            server.settings.fhir_base
        )));
    }
    let scope_text = params
        .get("scope")
        .ok_or_else(|| ("invalid_scope", "scope is missing".to_string()))?;
    let scopes = ScopeSet::parse(scope_text).map_err(|e| ("invalid_scope", e.to_string()))?;
    let (launch_patient, launch_user) = match params.get("launch") {
        None => (None, None),
        Some(launch) => {
            if !scopes.contains(&Scope::Launch) {
                return Err((
                    "invalid_scope",
                    "a launch value needs the launch scope".into(),
                ));
            }
            let hash = digest(launch);
            let found = server
                .db
                .call(move |store| store.take_launch(&hash))
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
                .ok_or_else(|| invalid("the launch value is unknown, expired or already used"))?;
            (Some(found.patient), Some(found.user_id.to_string()))
        }
    };
    if launch_patient.is_none() && scopes.contains(&Scope::Launch) {
        return Err(invalid(
            "the launch scope needs a launch value (EHR launch)",
        ));
    }
    Ok(AuthorizationRequest {
        client_id: client.client_id.clone(),
        client_name: client.name.clone(),
        redirect_uri: params.get("redirect_uri").unwrap_or_default().to_string(),
        scope: scopes.to_string(),
        state: state.to_string(),
        code_challenge: challenge.to_string(),
        nonce: params.get("nonce").map(str::to_string),
        launch_patient,
        launch_user,
    })
}

/// `303 See Other` to `location`.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", location))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

/// Back to the app with an error (RFC 6749 §4.1.2.1), `state` as given.
pub fn redirect_error(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> HttpResponse {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("error", error);
    query.append_pair("error_description", description);
    if let Some(s) = state {
        query.append_pair("state", s);
    }
    see_other(&append_query(redirect_uri, &query.finish()))
}

/// `uri` with more query parameters.
pub fn append_query(uri: &str, query: &str) -> String {
    let (base, fragment) = match uri.split_once('#') {
        Some((b, _)) => (b, ""),
        None => (uri, ""),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{query}{fragment}")
}
