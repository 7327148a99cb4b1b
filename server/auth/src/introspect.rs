//! Token introspection (RFC 7662) and revocation (RFC 7009). Both need an
//! authenticated client; a public client may only ask about its own tokens.
//! Revocation takes effect on the very next request to this process (and
//! within a second on the others).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use crate::bearer::validate;
use crate::claims::AccessClaims;
use crate::client_auth::{authenticate, AuthenticatedClient, ClientAuthMethod};
use crate::form::Params;
use crate::oauth_error::{json_no_store, OAuthError};
use crate::secrets::digest;
use crate::security::{self, SecurityActor, SecurityEvent};
use crate::token::{check_form, sync_revocations};
use crate::AuthServer;

/// `POST /auth/introspect`.
pub async fn introspect(
    req: HttpRequest,
    server: web::Data<AuthServer>,
    body: web::Bytes,
) -> HttpResponse {
    match introspect_inner(&req, &server, &body).await {
        Ok(v) => json_no_store(&v),
        Err(e) => e.respond(),
    }
}

async fn introspect_inner(
    req: &HttpRequest,
    server: &AuthServer,
    body: &[u8],
) -> Result<Value, OAuthError> {
    let (client, params) = authenticated(req, server, body).await?;
    let token = params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    let inactive = json!({ "active": false });
    if let Ok(claims) = validate(server, token) {
        if !may_see(&client, &claims.client_id) {
            return Ok(inactive);
        }
        return Ok(access_token_info(&claims));
    }
    let hash = digest(token);
    let found = server
        .db
        .call(move |store| store.peek_refresh_token(&hash))
        .await??;
    match found {
        Some(fhirledger_postgres::auth::LiveRefresh {
            grant,
            scope,
            expires_at: expires,
        }) if may_see(&client, &grant.client_id) => {
            let mut info = json!({
                "active": true,
                "scope": scope,
                "client_id": grant.client_id,
                "token_type": "refresh_token",
                "iss": server.settings.issuer,
            });
            if let Some(exp) = expires {
                info["exp"] = json!(exp.timestamp());
            }
            if let Some(user) = grant.user_id {
                info["sub"] = json!(user.to_string());
            }
            if let Some(p) = grant.patient {
                info["patient"] = json!(p);
            }
            Ok(info)
        }
        _ => Ok(inactive),
    }
}

fn access_token_info(claims: &AccessClaims) -> Value {
    let mut info = json!({
        "active": true,
        "scope": claims.scope,
        "client_id": claims.client_id,
        "exp": claims.exp,
        "iat": claims.iat,
        "sub": claims.sub,
        "aud": claims.aud,
        "iss": claims.iss,
        "token_type": "Bearer",
    });
    if let Some(f) = &claims.fhir_user {
        info["fhirUser"] = json!(f);
    }
    if let Some(p) = &claims.patient {
        info["patient"] = json!(p);
    }
    info
}

/// Confidential clients and resource servers may ask about any token; a
/// public client (which proves nothing) only about its own.
fn may_see(client: &AuthenticatedClient, token_client: &str) -> bool {
    client.method != ClientAuthMethod::None || client.client.client_id == token_client
}

/// `POST /auth/revoke`: always 200 for a token that is unknown or not the
/// client's, as RFC 7009 §2.2 asks.
pub async fn revoke(
    req: HttpRequest,
    server: web::Data<AuthServer>,
    body: web::Bytes,
) -> HttpResponse {
    // A revocation is a security event; so is a refused one. Asking to
    // revoke what is not the client's (or nothing) changes nothing and is
    // answered 200 as RFC 7009 says, without an event.
    match revoke_inner(&req, &server, &body).await {
        Ok(revoked) => {
            if let Some(actor) = revoked {
                security::record(&req, SecurityEvent::Revocation, actor, None);
            }
            json_no_store(&json!({}))
        }
        Err(e) => {
            let actor = SecurityActor {
                person: None,
                client_id: crate::client_auth::claimed_client(&req, &Params::parse(&body)),
            };
            let why = format!("{}: {}", e.error, e.description);
            security::record(
                &req,
                SecurityEvent::Revocation,
                actor,
                Some((e.status.as_u16(), &why)),
            );
            e.respond()
        }
    }
}

/// Revokes the token if it is the client's; returns who it was issued to.
async fn revoke_inner(
    req: &HttpRequest,
    server: &AuthServer,
    body: &[u8],
) -> Result<Option<SecurityActor>, OAuthError> {
    let (client, params) = authenticated(req, server, body).await?;
    let token = params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?
        .to_string();
    let own = |owner: &str| owner == client.client.client_id;
    let revoked = SecurityActor {
        person: None,
        client_id: Some(client.client.client_id.clone()),
    };
    if let Some(claims) = our_access_token(server, &token) {
        if !own(&claims.client_id) {
            return Ok(None);
        }
        let expires = Utc
            .timestamp_opt(claims.exp, 0)
            .single()
            .unwrap_or_else(Utc::now);
        let jti = claims.jti.clone();
        let row = server
            .db
            .call(move |store| store.add_revocation("token", &jti, expires))
            .await??;
        server.revocations.apply(&[row]);
        return Ok(Some(SecurityActor {
            person: claims
                .caller()
                .as_ref()
                .and_then(fhirledger_service::audit::person_of),
            ..revoked
        }));
    }
    let hash = digest(&token);
    let found = server
        .db
        .call(move |store| store.peek_refresh_token(&hash))
        .await??;
    if let Some(fhirledger_postgres::auth::LiveRefresh { grant, .. }) = found {
        if own(&grant.client_id) {
            let expire = server.revocation_expiry();
            server
                .db
                .call(move |store| store.revoke_grant(grant.grant_id, expire))
                .await??;
            sync_revocations(server).await;
            return Ok(Some(revoked));
        }
    }
    Ok(None)
}

/// An access token we signed, even if already expired or revoked.
fn our_access_token(server: &AuthServer, token: &str) -> Option<AccessClaims> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    let key = server.keys.decoding_key(header.kid.as_deref()?)?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.set_issuer(&[server.settings.issuer.as_str()]);
    validation.set_audience(&[server.settings.fhir_base.as_str()]);
    jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
        .ok()
        .map(|d| d.claims)
}

async fn authenticated(
    req: &HttpRequest,
    server: &AuthServer,
    body: &[u8],
) -> Result<(AuthenticatedClient, Params), OAuthError> {
    check_form(req)?;
    let params = Params::parse(body);
    if let Some(name) = params.repeated() {
        return Err(OAuthError::invalid_request(format!(
            "'{name}' is given more than once"
        )));
    }
    let client = authenticate(server, req, &params).await?;
    Ok((client, params))
}
