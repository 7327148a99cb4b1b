//! Discovery documents: SMART's `/.well-known/smart-configuration` under
//! the FHIR base, OpenID Connect's `/.well-known/openid-configuration` at
//! the issuer, the JWK Set, and the style document `smart_style_url` names.
//! They advertise only what this server does, are public, and carry CORS
//! headers so browser apps can read them.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use crate::AuthServer;
use crate::AuthSettings;

/// SMART App Launch 2.2 capabilities this server implements.
pub const CAPABILITIES: &[&str] = &[
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "sso-openid-connect",
    "context-banner",
    "context-style",
    "context-ehr-patient",
    "context-standalone-patient",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
];

/// Scopes a client may ask for (granular forms of these work too).
pub const SCOPES_SUPPORTED: &[&str] = &[
    "openid",
    "fhirUser",
    "profile",
    "launch",
    "launch/patient",
    "offline_access",
    "online_access",
    "patient/*.cruds",
    "user/*.cruds",
    "system/*.cruds",
    "patient/*.read",
    "patient/*.write",
    "user/*.read",
    "user/*.write",
    "system/*.read",
    "system/*.write",
];

/// Algorithms accepted for `private_key_jwt` client assertions.
pub const ASSERTION_ALGS: &[&str] = &["RS384", "ES384", "RS256", "ES256"];

/// `GET /fhir/.well-known/smart-configuration`.
pub fn smart_configuration(settings: &AuthSettings) -> Value {
    json!({
        "issuer": settings.issuer,
        "jwks_uri": settings.url("jwks"),
        "authorization_endpoint": settings.url("authorize"),
        "token_endpoint": settings.token_url(),
        "introspection_endpoint": settings.url("introspect"),
        "revocation_endpoint": settings.url("revoke"),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "scopes_supported": SCOPES_SUPPORTED,
        "code_challenge_methods_supported": ["S256"],
        "capabilities": CAPABILITIES,
    })
}

/// `GET /auth/.well-known/openid-configuration`: the issuer of our id tokens.
pub fn openid_configuration(settings: &AuthSettings) -> Value {
    json!({
        "issuer": settings.issuer,
        "authorization_endpoint": settings.url("authorize"),
        "token_endpoint": settings.token_url(),
        "jwks_uri": settings.url("jwks"),
        "introspection_endpoint": settings.url("introspect"),
        "revocation_endpoint": settings.url("revoke"),
        "end_session_endpoint": settings.url("logout"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "fhirUser", "profile", "offline_access", "online_access"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser", "email"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "code_challenge_methods_supported": ["S256"],
    })
}

/// The style document apps may use to blend in (`smart_style_url`).
pub fn style() -> Value {
    json!({
        "color_background": "#f7f8fa",
        "color_error": "#b3261e",
        "color_highlight": "#0b6bcb",
        "color_modal_backdrop": "#00000066",
        "color_success": "#1e7d32",
        "color_text": "#1b1f24",
        "dim_border_radius": "6px",
        "dim_font_size": "16px",
        "dim_spacing_size": "16px",
        "font_family_body": "system-ui, sans-serif",
        "font_family_heading": "system-ui, sans-serif",
    })
}

/// A public JSON answer with CORS, as discovery documents must be.
pub fn public_json(value: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .insert_header(("Cache-Control", "public, max-age=300"))
        .body(value.to_string())
}

pub async fn smart_configuration_route(server: web::Data<AuthServer>) -> HttpResponse {
    public_json(&smart_configuration(&server.settings))
}

pub async fn openid_configuration_route(server: web::Data<AuthServer>) -> HttpResponse {
    public_json(&openid_configuration(&server.settings))
}

pub async fn jwks_route(server: web::Data<AuthServer>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .insert_header(("Cache-Control", "public, max-age=60"))
        .body(server.keys.jwks().to_string())
}

pub async fn style_route() -> HttpResponse {
    public_json(&style())
}

/// The answer to a CORS preflight on the public documents and endpoints.
pub async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .insert_header(("Access-Control-Allow-Methods", "GET, POST, OPTIONS"))
        .insert_header((
            "Access-Control-Allow-Headers",
            "Authorization, Content-Type",
        ))
        .insert_header(("Access-Control-Max-Age", "600"))
        .finish()
}
