//! `POST /auth/token`: the `authorization_code`, `refresh_token` and
//! `client_credentials` grants (RFC 6749 with PKCE, SMART App Launch 2.2
//! and SMART Backend Services).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use fhirledger_postgres::auth::{CodeUse, GrantRow, RefreshUse, UserRow};

use crate::client_auth::{
    authenticate, public_refresh_client, AuthenticatedClient, ClientAuthMethod,
};
use crate::form::Params;
use crate::hospitals;
use crate::issue::{token_response, Issued, TokenRequest};
use crate::names::{names_of, Names};
use crate::oauth_error::{json_no_store, OAuthError};
use crate::secrets::{constant_time_eq, digest, is_valid_verifier, new_secret, pkce_challenge};
use crate::security::{self, SecurityActor, SecurityEvent};
use crate::AuthServer;
use fhirledger_access::grant::{intersect, is_subset};
use fhirledger_access::scope::{Scope, ScopeSet};

/// The token endpoint. Every answer is a security event: tokens issued
/// (with the scopes granted) or refused (with why), and a reused code or
/// refresh token also as an alert.
pub async fn token(
    req: HttpRequest,
    server: web::Data<AuthServer>,
    body: web::Bytes,
) -> HttpResponse {
    let params = Params::parse(&body);
    let grant_type = params.get("grant_type").unwrap_or_default().to_string();
    let result = token_inner(&req, &server, &params).await;
    record_outcome(&req, &params, grant_type, &result);
    match result {
        Ok(issued) => json_no_store(&issued.body),
        Err(e) => e.respond(),
    }
}

/// Records what a token request ended in: the tokens issued (with the
/// scopes granted) or the refusal (with why), and a reused code or refresh
/// token also as an alert.
pub(crate) fn record_outcome(
    req: &HttpRequest,
    params: &Params,
    grant_type: String,
    result: &Result<Issued, OAuthError>,
) {
    match result {
        Ok(issued) => security::record(
            req,
            SecurityEvent::TokenRequest {
                grant_type,
                scopes: issued.scopes.clone(),
            },
            SecurityActor {
                person: issued.user.as_ref().map(security::person),
                client_id: Some(issued.client_id.clone()),
            },
            None,
        ),
        Err(e) => {
            let actor = SecurityActor {
                person: None,
                client_id: crate::client_auth::claimed_client(req, params),
            };
            if e.reuse_detected {
                security::record(req, SecurityEvent::RefreshTokenReuse, actor.clone(), None);
            }
            security::record(
                req,
                SecurityEvent::TokenRequest {
                    grant_type,
                    scopes: Vec::new(),
                },
                actor,
                Some((
                    e.status.as_u16(),
                    &format!("{}: {}", e.error, e.description),
                )),
            );
        }
    }
}

async fn token_inner(
    req: &HttpRequest,
    server: &AuthServer,
    params: &Params,
) -> Result<Issued, OAuthError> {
    check_form(req)?;
    if let Some(name) = params.repeated() {
        return Err(OAuthError::invalid_request(format!(
            "'{name}' is given more than once"
        )));
    }
    let grant_type = params
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("grant_type is missing"))?;
    if !matches!(
        grant_type,
        "authorization_code" | "refresh_token" | "client_credentials"
    ) {
        return Err(OAuthError::unsupported_grant_type(format!(
            "grant_type '{grant_type}' is not supported; use authorization_code, refresh_token or client_credentials"
        )));
    }
    let public_refresh = match grant_type {
        "refresh_token" => public_refresh_client(server, req, params).await?,
        _ => None,
    };
    let client = match public_refresh {
        Some(client) => client,
        None => authenticate(server, req, params).await?,
    };
    let address =
        security::request_recorder(req).and_then(|r| r.client_address().map(str::to_string));
    crate::token_limits::admit(server, &client, address.as_deref()).await?;
    match grant_type {
        "authorization_code" => authorization_code(server, &client, params).await,
        "refresh_token" => refresh(server, &client, params).await,
        _ => client_credentials(server, &client, params).await,
    }
}

/// Token requests are form-encoded (RFC 6749 §3.2).
pub fn check_form(req: &HttpRequest) -> Result<(), OAuthError> {
    let ct = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ))
    }
}

fn required<'p>(params: &'p Params, name: &str) -> Result<&'p str, OAuthError> {
    params
        .get(name)
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
}

/// Runs blocking store work behind the fair database slots.
async fn db<T: Send + 'static>(
    server: &AuthServer,
    work: impl FnOnce(&fhirledger_postgres::PgStore) -> Result<T, fhirledger_postgres::StoreError>
        + Send
        + 'static,
) -> Result<T, OAuthError> {
    Ok(server.db.call(work).await??)
}

pub(crate) async fn authorization_code(
    server: &AuthServer,
    client: &AuthenticatedClient,
    params: &Params,
) -> Result<Issued, OAuthError> {
    let code = required(params, "code")?.to_string();
    let redirect_uri = required(params, "redirect_uri")?.to_string();
    let verifier = params
        .get("code_verifier")
        .ok_or_else(|| OAuthError::invalid_grant("code_verifier is missing (PKCE is required)"))?
        .to_string();
    let expire = server.revocation_expiry();
    let used = db(server, move |store| store.use_code(&digest(&code), expire)).await?;
    let (row, grant) = match used {
        CodeUse::Fresh(fresh) => *fresh,
        CodeUse::Replayed => {
            sync_revocations(server).await;
            return Err(OAuthError::reused(
                "this code was used before; every token issued from it is now revoked",
            ));
        }
        CodeUse::Invalid => {
            return Err(OAuthError::invalid_grant("the code is unknown or expired"))
        }
    };
    if grant.client_id != client.client.client_id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if row.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the one of the authorization request",
        ));
    }
    if !is_valid_verifier(&verifier)
        || !constant_time_eq(
            pkce_challenge(&verifier).as_bytes(),
            row.code_challenge.as_bytes(),
        )
    {
        return Err(OAuthError::invalid_grant(
            "the code_verifier does not match the code_challenge",
        ));
    }
    let user = grant_user(server, &grant).await?;
    let names = names_of(server, user.as_ref()).await;
    let scope = parse_stored(&grant.scope)?;
    let refresh_token = issue_refresh(server, &grant, &scope).await?;
    token_response(
        server,
        &TokenRequest {
            client_id: &client.client.client_id,
            scope: &scope,
            grant: Some(&grant),
            user: user.as_ref(),
            nonce: row.nonce.as_deref(),
            refresh_token,
            names,
        },
    )
}

async fn refresh(
    server: &AuthServer,
    client: &AuthenticatedClient,
    params: &Params,
) -> Result<Issued, OAuthError> {
    let presented = required(params, "refresh_token")?.to_string();
    let old = digest(&presented);
    let expire = server.revocation_expiry();
    let looked = {
        let old = old.clone();
        db(server, move |store| store.refresh_token(&old, expire)).await?
    };
    let (grant, held) = match looked {
        RefreshUse::Live { grant, scope } => (grant, scope),
        RefreshUse::Reused => return Err(reused(server).await),
        RefreshUse::Invalid => {
            return Err(OAuthError::invalid_grant(
                "the refresh token is unknown, expired or revoked",
            ))
        }
    };
    if grant.client_id != client.client.client_id {
        return Err(OAuthError::invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    let held = parse_stored(&held)?;
    let scope = match params.get("scope") {
        None => held,
        Some(asked) => {
            let asked =
                ScopeSet::parse(asked).map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
            if !is_subset(&asked, &held) {
                return Err(OAuthError::invalid_scope(
                    "a refresh can only keep or narrow the granted scopes, never widen them",
                ));
            }
            asked
        }
    };
    let user = grant_user(server, &grant).await?;
    let names = names_of(server, user.as_ref()).await;
    let new = new_secret();
    let expires = refresh_expiry(server, &scope);
    let (new_digest, scope_text) = (digest(&new), scope.to_string());
    let rotated = db(server, move |store| {
        store.rotate_refresh_token(&old, &new_digest, &scope_text, expires, expire)
    })
    .await?;
    match rotated {
        RefreshUse::Live { .. } => {}
        RefreshUse::Reused => return Err(reused(server).await),
        RefreshUse::Invalid => {
            return Err(OAuthError::invalid_grant(
                "the refresh token is unknown, expired or revoked",
            ))
        }
    }
    let keeps_refreshing =
        scope.contains(&Scope::OfflineAccess) || scope.contains(&Scope::OnlineAccess);
    token_response(
        server,
        &TokenRequest {
            client_id: &client.client.client_id,
            scope: &scope,
            grant: Some(&grant),
            user: user.as_ref(),
            nonce: None,
            refresh_token: keeps_refreshing.then_some(new),
            names,
        },
    )
}

/// A refresh token presented a second time: the grant is revoked (someone
/// else holds a copy).
async fn reused(server: &AuthServer) -> OAuthError {
    sync_revocations(server).await;
    OAuthError::reused("this refresh token was used before; the whole grant is now revoked")
}

async fn client_credentials(
    server: &AuthServer,
    client: &AuthenticatedClient,
    params: &Params,
) -> Result<Issued, OAuthError> {
    let c = &client.client;
    if c.kind != "backend" || client.method != ClientAuthMethod::PrivateKeyJwt {
        return Err(OAuthError::unauthorized_client(
            "client_credentials is for backend clients authenticating with private_key_jwt",
        ));
    }
    let asked = ScopeSet::parse(required(params, "scope")?)
        .map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
    let allowed = parse_stored(&c.scope)?;
    let granted = intersect(&asked, &allowed);
    let granted = system_only(granted);
    if granted.is_empty() {
        return Err(OAuthError::invalid_scope(format!(
            "none of the requested scopes is allowed for this client (allowed: {})",
            c.scope
        )));
    }
    token_response(
        server,
        &TokenRequest {
            client_id: &c.client_id,
            scope: &granted,
            grant: None,
            user: None,
            nonce: None,
            refresh_token: None,
            names: Names::default(),
        },
    )
}

/// Backend clients act for no user and no patient: only `system/` scopes
/// (and admin scopes) mean anything for them.
fn system_only(scopes: ScopeSet) -> ScopeSet {
    let mut kept = ScopeSet::new();
    for s in scopes.iter() {
        let keep = match s {
            Scope::Resource(r) => r.context == fhirledger_access::scope::Context::System,
            Scope::Other(_) => true,
            _ => false,
        };
        if keep {
            kept.insert(s.clone());
        }
    }
    kept
}

/// The user a grant is for, who must still be active.
async fn grant_user(server: &AuthServer, grant: &GrantRow) -> Result<Option<UserRow>, OAuthError> {
    let Some(user_id) = grant.user_id else {
        return Ok(None);
    };
    let user = match db(server, move |store| store.user(user_id)).await? {
        Some(u) if u.active => {
            let hospital_active = hospitals::is_active(server, u.organization.as_deref())
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "checking the user's hospital failed");
                    OAuthError::server_error(
                        "the authorization server's database is unavailable; retry",
                    )
                })?;
            Some((u, hospital_active))
        }
        _ => None,
    };
    match user {
        Some((u, true)) => Ok(Some(u)),
        Some((_, false)) => Err(OAuthError::invalid_grant(
            "the user's hospital has been deactivated",
        )),
        None => Err(OAuthError::invalid_grant(
            "the user of this grant is no longer active",
        )),
    }
}

/// A refresh token, when the grant asked for offline or online access.
async fn issue_refresh(
    server: &AuthServer,
    grant: &GrantRow,
    scope: &ScopeSet,
) -> Result<Option<String>, OAuthError> {
    if !(scope.contains(&Scope::OfflineAccess) || scope.contains(&Scope::OnlineAccess)) {
        return Ok(None);
    }
    let token = new_secret();
    let (hash, grant_id, text, expires) = (
        digest(&token),
        grant.grant_id,
        scope.to_string(),
        refresh_expiry(server, scope),
    );
    db(server, move |store| {
        store.create_refresh_token(&hash, grant_id, &text, expires)
    })
    .await?;
    Ok(Some(token))
}

/// Offline refresh tokens live long; online ones as long as a sign-in.
fn refresh_expiry(server: &AuthServer, scope: &ScopeSet) -> Option<chrono::DateTime<Utc>> {
    let s = &server.settings;
    let lifetime = if scope.contains(&Scope::OfflineAccess) {
        s.offline_lifetime
    } else {
        s.session_lifetime
    };
    Some(Utc::now() + lifetime)
}

/// Scopes we stored ourselves.
fn parse_stored(text: &str) -> Result<ScopeSet, OAuthError> {
    ScopeSet::parse(text).map_err(|e| {
        tracing::error!(error = %e, "stored scopes do not parse");
        OAuthError::server_error("a stored grant is unreadable")
    })
}

/// Picks up revocations the store just wrote, so they bind this process at once.
pub async fn sync_revocations(server: &AuthServer) {
    let since = server.revocations.last_seq();
    let since_ok = server
        .db
        .call(move |store| store.revocations_since(since))
        .await;
    match since_ok {
        Ok(Ok(rows)) => server.revocations.apply(&rows),
        Ok(Err(e)) => tracing::warn!(error = %e, "reading revocations failed"),
        Err(_) => {}
    }
}
