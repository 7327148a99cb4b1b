//! fhirledger's own client: the portal at `/portal`.
//!
//! The portal is a SMART app like any other — it sends the person through
//! `/auth/authorize` with PKCE, gets a code, exchanges it, and calls the FHIR
//! service with the access token's `Caller`, so every datum it shows passes
//! the one access decision and is audited with the portal as the client
//! application. Three things set it apart, because the person signs in to the
//! product itself rather than lending their access to a third party:
//!
//! - the server registers it (a fixed client id, its redirect URIs from the
//!   deployment's public address) at start-up, on every process;
//! - there is no approval page and no patient picker: staff get their
//!   role's `user/` scopes, a patient their own record's `patient/` scopes,
//!   each narrowed by the role's ceiling as every grant is;
//! - it exchanges its codes in-process ([`exchange_code`]), with the same
//!   checks as `POST /auth/token` (single use, redirect URI, PKCE) and the
//!   same security event.

use actix_web::HttpRequest;
use fhirledger_postgres::auth::ClientRow;
use fhirledger_postgres::{PgStore, StoreError};
use serde_json::Value;
use uuid::Uuid;

use crate::client_auth::{AuthenticatedClient, ClientAuthMethod};
use crate::form::Params;
use crate::oauth_error::OAuthError;
use crate::security::{self, SecurityActor, SecurityEvent};
use crate::{AuthServer, AuthSettings};

/// The portal's client id (fixed: the server registers it itself).
pub const PORTAL_CLIENT_ID: &str = "fhirledger-portal";

/// The name people see for it, in their access log among other apps.
pub const PORTAL_NAME: &str = "fhirledger portal";

/// What the portal asks for. Each person's role ceiling narrows it to what
/// they may hold (a patient gets no `user/` scope, an admin no clinical
/// data), as in every grant.
pub const PORTAL_SCOPE: &str =
    "openid fhirUser profile user/*.cruds patient/*.cruds fhirledger.admin";

/// Whether a client is the server's own (no approval page, no picker).
pub fn is_first_party(client_id: &str) -> bool {
    client_id == PORTAL_CLIENT_ID
}

/// Where the portal receives its codes.
pub fn callback_url(settings: &AuthSettings) -> String {
    format!("{}/portal/callback", settings.public_base)
}

/// Where the person lands after signing out of the portal.
pub fn signed_out_url(settings: &AuthSettings) -> String {
    format!("{}/portal/signed-out", settings.public_base)
}

/// Registers the portal's client, or brings its registration up to date
/// with this deployment's public address.
pub fn register_portal(store: &PgStore, settings: &AuthSettings) -> Result<(), StoreError> {
    store.upsert_client(&ClientRow {
        client_id: PORTAL_CLIENT_ID.to_string(),
        name: PORTAL_NAME.to_string(),
        kind: "public".to_string(),
        secret_sha256: None,
        redirect_uris: vec![callback_url(settings), signed_out_url(settings)],
        jwks: None,
        jwks_uri: None,
        scope: PORTAL_SCOPE.to_string(),
        active: true,
    })
}

/// What the portal keeps of a code exchange.
#[derive(Debug, Clone)]
pub struct PortalTokens {
    pub access_token: String,
    /// For `/auth/logout`'s `id_token_hint` when the person signs out.
    pub id_token: Option<String>,
    /// Seconds the access token lives.
    pub expires_in: i64,
}

/// Exchanges the portal's code for its tokens, in-process: the checks of
/// `POST /auth/token` for a public client with PKCE, recorded in `req`'s
/// audit recorder as the token endpoint records them.
pub async fn exchange_code(
    req: &HttpRequest,
    server: &AuthServer,
    code: &str,
    verifier: &str,
) -> Result<PortalTokens, OAuthError> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("client_id", PORTAL_CLIENT_ID)
        .append_pair("code", code)
        .append_pair("redirect_uri", &callback_url(&server.settings))
        .append_pair("code_verifier", verifier);
    let params = Params::parse(form.finish().as_bytes());
    let result = async {
        let client = server
            .db
            .call(|store| store.client(PORTAL_CLIENT_ID))
            .await??
            .filter(|c| c.active)
            .ok_or_else(|| OAuthError::invalid_client("the portal is not registered"))?;
        let client = AuthenticatedClient {
            client,
            method: ClientAuthMethod::None,
        };
        crate::token::authorization_code(server, &client, &params).await
    }
    .await;
    crate::token::record_outcome(req, &params, "authorization_code".into(), &result);
    let body = result?.body;
    let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_string);
    Ok(PortalTokens {
        access_token: text("access_token")
            .ok_or_else(|| OAuthError::server_error("no access token was issued"))?,
        id_token: text("id_token"),
        expires_in: body.get("expires_in").and_then(Value::as_i64).unwrap_or(0),
    })
}

/// Revokes the grant behind a portal session (sign-out): every token of it
/// stops working on every process within the revocation sync.
pub async fn end_grant(
    req: &HttpRequest,
    server: &AuthServer,
    grant: Uuid,
    person: Option<fhirledger_audit::Person>,
) -> Result<(), OAuthError> {
    let expire = server.revocation_expiry();
    server
        .db
        .call(move |store| store.revoke_grant(grant, expire))
        .await??;
    crate::token::sync_revocations(server).await;
    security::record(
        req,
        SecurityEvent::Revocation,
        SecurityActor {
            person,
            client_id: Some(PORTAL_CLIENT_ID.to_string()),
        },
        None,
    );
    Ok(())
}
