//! Minting tokens: signed access tokens, id tokens, and the token
//! endpoint's success answer.

use chrono::Utc;
use fhirledger_postgres::auth::{GrantRow, UserRow};
use serde_json::{json, Map, Value};

use crate::claims::{AccessClaims, IdClaims};
use crate::keys::KeyError;
use crate::names::Names;
use crate::oauth_error::OAuthError;
use crate::secrets::new_secret;
use crate::AuthServer;
use fhirledger_access::scope::{Scope, ScopeSet};

/// What a token is issued for.
pub struct TokenRequest<'a> {
    pub client_id: &'a str,
    pub scope: &'a ScopeSet,
    pub grant: Option<&'a GrantRow>,
    /// The user, for apps acting for one; `None` for backend clients.
    pub user: Option<&'a UserRow>,
    /// The `nonce` of the authorization request, for the id token.
    pub nonce: Option<&'a str>,
    /// A new refresh token to hand out with it.
    pub refresh_token: Option<String>,
    /// The user's name and hospital's, for the audit trail.
    pub names: Names,
}

impl From<KeyError> for OAuthError {
    fn from(e: KeyError) -> Self {
        tracing::error!(error = %e, "signing a token failed");
        OAuthError::server_error("tokens cannot be signed right now")
    }
}

/// What the token endpoint issued, and to whom (for its security event).
#[derive(Debug)]
pub struct Issued {
    /// The token endpoint's JSON answer.
    pub body: Value,
    pub client_id: String,
    pub user: Option<UserRow>,
    /// The granted scopes.
    pub scopes: Vec<String>,
}

/// Signs an access token (and an id token when `openid` was granted) and
/// builds the token endpoint's JSON answer.
pub fn token_response(server: &AuthServer, req: &TokenRequest<'_>) -> Result<Issued, OAuthError> {
    let s = &server.settings;
    let lifetime = if req.user.is_some() {
        s.access_token_lifetime
    } else {
        s.backend_token_lifetime
    };
    let now = Utc::now().timestamp();
    let patient = req.grant.and_then(|g| g.patient.clone());
    let fhir_user = req
        .user
        .and_then(|u| u.fhir_user.as_ref())
        .map(|f| format!("{}/{f}", s.fhir_base));
    let claims = AccessClaims {
        iss: s.issuer.clone(),
        sub: req
            .user
            .map(|u| u.user_id.to_string())
            .unwrap_or_else(|| req.client_id.to_string()),
        aud: s.fhir_base.clone(),
        exp: now + lifetime.num_seconds(),
        iat: now,
        jti: new_secret(),
        client_id: req.client_id.to_string(),
        scope: req.scope.to_string(),
        grant: req.grant.map(|g| g.grant_id.to_string()),
        patient: patient.clone(),
        fhir_user: fhir_user.clone(),
        role: req.user.map(|u| u.role.clone()),
        org: req.user.and_then(|u| u.organization.clone()),
        name: req.names.person.clone(),
        org_name: req.names.organization.clone(),
    };
    let access_token = server.keys.sign(&claims)?;
    let mut out = Map::new();
    out.insert("access_token".into(), json!(access_token));
    out.insert("token_type".into(), json!("Bearer"));
    out.insert("expires_in".into(), json!(lifetime.num_seconds()));
    out.insert("scope".into(), json!(req.scope.to_string()));
    if let Some(refresh) = &req.refresh_token {
        out.insert("refresh_token".into(), json!(refresh));
    }
    if let Some(user) = req.user {
        if req.scope.contains(&Scope::OpenId) {
            let id = IdClaims {
                iss: s.issuer.clone(),
                sub: user.user_id.to_string(),
                aud: req.client_id.to_string(),
                exp: now + lifetime.num_seconds(),
                iat: now,
                nonce: req.nonce.map(str::to_string),
                fhir_user: fhir_user
                    .clone()
                    .filter(|_| req.scope.contains(&Scope::FhirUser)),
                email: Some(user.email.clone()).filter(|_| req.scope.contains(&Scope::Profile)),
            };
            out.insert("id_token".into(), json!(server.keys.sign(&id)?));
        }
        if let Some(p) = &patient {
            out.insert("patient".into(), json!(p));
        }
        out.insert(
            "need_patient_banner".into(),
            json!(req.grant.is_some_and(|g| g.need_patient_banner)),
        );
        out.insert("smart_style_url".into(), json!(s.url("style")));
    }
    Ok(Issued {
        body: Value::Object(out),
        client_id: req.client_id.to_string(),
        user: req.user.cloned(),
        scopes: req.scope.iter().map(|s| s.to_string()).collect(),
    })
}
