//! Who is calling the token, introspection and revocation endpoints: public
//! clients by id alone, confidential ones by secret (HTTP Basic or form),
//! asymmetric and backend ones by a signed assertion (`private_key_jwt`,
//! RFC 7523 as SMART Backend Services profiles it).

use actix_web::HttpRequest;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{TimeZone, Utc};
use fhirledger_postgres::auth::ClientRow;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::form::Params;
use crate::oauth_error::OAuthError;
use crate::secrets::{constant_time_eq, digest};
use crate::AuthServer;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// An assertion may be valid for at most this long (SMART: five minutes).
const MAX_ASSERTION_LIFETIME: i64 = 300;
/// Clock skew tolerated on `exp`/`nbf`/`iat`.
const LEEWAY: i64 = 30;

/// How the client proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    None,
    Secret,
    PrivateKeyJwt,
}

/// A client that proved its identity.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub client: ClientRow,
    pub method: ClientAuthMethod,
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    exp: i64,
    jti: Option<String>,
}

/// Authenticates the client of a token-endpoint-style request.
pub async fn authenticate(
    server: &AuthServer,
    req: &HttpRequest,
    params: &Params,
) -> Result<AuthenticatedClient, OAuthError> {
    let basic = basic_credentials(req)?;
    let assertion = match (
        params.get("client_assertion_type"),
        params.get("client_assertion"),
    ) {
        (Some(ASSERTION_TYPE), Some(jwt)) => Some(jwt),
        (Some(other), _) => {
            return Err(OAuthError::invalid_client(format!(
                "client_assertion_type '{other}' is not supported; use {ASSERTION_TYPE}"
            )))
        }
        (None, Some(_)) => {
            return Err(OAuthError::invalid_client(
                "client_assertion needs client_assertion_type",
            ))
        }
        (None, None) => None,
    };
    let methods = basic.is_some() as u8
        + params.get("client_secret").is_some() as u8
        + assertion.is_some() as u8;
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "use exactly one way of authenticating the client",
        ));
    }
    if let Some(jwt) = assertion {
        return authenticate_assertion(server, params, jwt).await;
    }
    let (client_id, secret) = match basic {
        Some((id, secret)) => (id, Some(secret)),
        None => (
            params
                .get("client_id")
                .ok_or_else(|| OAuthError::invalid_client("client_id is missing"))?
                .to_string(),
            params.get("client_secret").map(str::to_string),
        ),
    };
    if let Some(given) = params.get("client_id") {
        if given != client_id {
            return Err(OAuthError::invalid_client(
                "client_id does not match the credentials",
            ));
        }
    }
    let client = load_client(server, &client_id).await?;
    match (client.kind.as_str(), secret) {
        ("public", None) => Ok(AuthenticatedClient {
            client,
            method: ClientAuthMethod::None,
        }),
        ("public", Some(_)) => Err(OAuthError::invalid_client("a public client has no secret")),
        ("confidential", Some(secret)) => {
            let stored = client.secret_sha256.as_deref().unwrap_or_default();
            if constant_time_eq(&digest(&secret), stored) {
                Ok(AuthenticatedClient {
                    client,
                    method: ClientAuthMethod::Secret,
                })
            } else {
                Err(OAuthError::invalid_client("the client secret is wrong"))
            }
        }
        ("confidential", None) => Err(OAuthError::invalid_client(
            "this client must authenticate with its secret",
        )),
        _ => Err(OAuthError::invalid_client(
            "this client must authenticate with a signed client_assertion (private_key_jwt)",
        )),
    }
}

/// The client of a refresh request that carries no client identification
/// at all: SMART App Launch lets public apps refresh with only `grant_type`
/// and `refresh_token` ("for public apps, authentication is not possible (and
/// thus not required)"), and fhirclient does so by default. A live refresh
/// token names its client; when that client is public it is the caller.
/// `None` (authenticate as usual) when anything identifies a client, or the
/// token is not live, or its client is not public.
pub async fn public_refresh_client(
    server: &AuthServer,
    req: &HttpRequest,
    params: &Params,
) -> Result<Option<AuthenticatedClient>, OAuthError> {
    let identified = req.headers().contains_key("Authorization")
        || [
            "client_id",
            "client_secret",
            "client_assertion",
            "client_assertion_type",
        ]
        .iter()
        .any(|name| params.get(name).is_some());
    let Some(token) = params.get("refresh_token").filter(|_| !identified) else {
        return Ok(None);
    };
    let hash = digest(token);
    let Some(live) = server
        .db
        .call(move |store| store.peek_refresh_token(&hash))
        .await??
    else {
        return Ok(None);
    };
    let client = load_client(server, &live.grant.client_id).await?;
    Ok((client.kind == "public").then_some(AuthenticatedClient {
        client,
        method: ClientAuthMethod::None,
    }))
}

async fn load_client(server: &AuthServer, client_id: &str) -> Result<ClientRow, OAuthError> {
    let id = client_id.to_string();
    let client = server.db.call(move |store| store.client(&id)).await??;
    match client {
        Some(c) if c.active => Ok(c),
        _ => Err(OAuthError::invalid_client(format!(
            "unknown client '{client_id}'"
        ))),
    }
}

/// The client a token request says it comes from, before (or without)
/// authenticating it: `client_id`, the Basic user, or the assertion's
/// `iss`. Only for naming who was refused in the audit trail.
pub fn claimed_client(req: &HttpRequest, params: &Params) -> Option<String> {
    if let Some(id) = params.get("client_id") {
        return Some(id.to_string());
    }
    if let Ok(Some((id, _))) = basic_credentials(req) {
        return Some(id);
    }
    let payload = params.get("client_assertion")?.split('.').nth(1)?;
    let bytes =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["iss"].as_str().map(str::to_string)
}

/// `Authorization: Basic` credentials (RFC 6749 §2.3.1: both parts form-encoded).
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = req.headers().get("Authorization") else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| OAuthError::invalid_client("the Authorization header is not text"))?;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Err(OAuthError::invalid_client(
            "only Basic authentication is accepted here",
        ));
    };
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// Checks a `private_key_jwt` assertion against the client's registered keys.
async fn authenticate_assertion(
    server: &AuthServer,
    params: &Params,
    jwt: &str,
) -> Result<AuthenticatedClient, OAuthError> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| {
        OAuthError::invalid_client(format!("the client assertion is not a JWT: {e}"))
    })?;
    let alg = header.alg;
    if !matches!(
        alg,
        Algorithm::RS384 | Algorithm::ES384 | Algorithm::RS256 | Algorithm::ES256
    ) {
        return Err(OAuthError::invalid_client(format!(
            "client assertions must be signed with RS384 or ES384, not {alg:?}"
        )));
    }
    let unverified: AssertionClaims = jsonwebtoken::dangerous::insecure_decode_claims(jwt)
        .map_err(|e| OAuthError::invalid_client(format!("the client assertion's claims: {e}")))?;
    if unverified.iss != unverified.sub {
        return Err(OAuthError::invalid_client(
            "the assertion's iss and sub must both be the client id",
        ));
    }
    if let Some(given) = params.get("client_id") {
        if given != unverified.iss {
            return Err(OAuthError::invalid_client(
                "client_id does not match the assertion",
            ));
        }
    }
    let client = load_client(server, &unverified.iss).await?;
    if !matches!(client.kind.as_str(), "asymmetric" | "backend") {
        return Err(OAuthError::invalid_client(
            "this client has no registered keys; authenticate with its secret or as a public client",
        ));
    }
    let keys = server
        .client_keys
        .keys_for(&client, header.kid.as_deref(), alg)
        .await
        .map_err(OAuthError::invalid_client)?;
    let mut validation = Validation::new(alg);
    validation.set_audience(&[server.settings.token_url()]);
    validation.set_issuer(&[client.client_id.as_str()]);
    validation.sub = Some(client.client_id.clone());
    validation.leeway = LEEWAY as u64;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let mut last_error = String::from("no registered key matches the assertion");
    let mut verified = None;
    for key in &keys {
        match jsonwebtoken::decode::<AssertionClaims>(jwt, key, &validation) {
            Ok(data) => {
                verified = Some(data.claims);
                break;
            }
            Err(e) => last_error = format!("the client assertion was refused: {e}"),
        }
    }
    let claims = verified.ok_or_else(|| OAuthError::invalid_client(last_error))?;
    let now = Utc::now().timestamp();
    if claims.exp > now + MAX_ASSERTION_LIFETIME + LEEWAY {
        return Err(OAuthError::invalid_client(
            "the client assertion's exp is more than five minutes ahead",
        ));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or_else(|| OAuthError::invalid_client("the client assertion has no jti"))?;
    let expires = Utc
        .timestamp_opt(claims.exp + LEEWAY, 0)
        .single()
        .ok_or_else(|| OAuthError::invalid_client("the client assertion's exp is out of range"))?;
    let client_id = client.client_id.clone();
    let fresh = server
        .db
        .call(move |store| store.remember_assertion(&client_id, &jti, expires))
        .await??;
    if !fresh {
        return Err(OAuthError::invalid_client(
            "this client assertion (jti) was used before",
        ));
    }
    Ok(AuthenticatedClient {
        client,
        method: ClientAuthMethod::PrivateKeyJwt,
    })
}
