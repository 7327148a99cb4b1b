//! Checking the bearer token of a FHIR request: our signature (RS256 with a
//! published `kid`), our issuer, the FHIR base as audience, not expired, not
//! revoked. Anything else is a 401 with `WWW-Authenticate: Bearer`.

use actix_web::HttpRequest;
use jsonwebtoken::{Algorithm, Validation};

use std::sync::Arc;

use crate::checked_tokens::Checked;
use crate::claims::AccessClaims;
use crate::AuthServer;
use fhirledger_access::caller::Caller;

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerError {
    /// No token at all: the client should authenticate.
    Missing,
    /// A token was sent but is not acceptable.
    Invalid(String),
}

impl BearerError {
    /// The `WWW-Authenticate` challenge RFC 6750 §3 describes for a 401, and
    /// the message for the OperationOutcome beside it.
    pub fn challenge(&self, realm: &str) -> (String, String) {
        match self {
            BearerError::Missing => (
                format!("Bearer realm=\"{realm}\""),
                "this request needs an access token (Authorization: Bearer …); see /.well-known/smart-configuration".to_string(),
            ),
            BearerError::Invalid(why) => (
                format!(
                    "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                    why.replace(['"', '\\'], "'")
                ),
                format!("the access token is not valid: {why}"),
            ),
        }
    }
}

/// The token in `Authorization: Bearer …`, if any.
pub fn bearer_token(req: &HttpRequest) -> Result<Option<&str>, BearerError> {
    let Some(value) = req.headers().get("Authorization") else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| BearerError::Invalid("the Authorization header is not text".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Invalid(format!(
            "the Authorization scheme must be Bearer, not '{scheme}'"
        )));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(BearerError::Invalid("the bearer token is empty".into()));
    }
    Ok(Some(token))
}

/// Validates an access token of ours.
pub fn validate(server: &AuthServer, token: &str) -> Result<AccessClaims, BearerError> {
    let invalid = |why: &str| BearerError::Invalid(why.to_string());
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed token"))?;
    if header.alg != Algorithm::RS256 {
        return Err(invalid("unexpected signing algorithm"));
    }
    let kid = header
        .kid
        .ok_or_else(|| invalid("the token names no key"))?;
    let key = server
        .keys
        .decoding_key(&kid)
        .ok_or_else(|| invalid("the token was not signed by this server"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[server.settings.issuer.as_str()]);
    validation.set_audience(&[server.settings.fhir_base.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 0;
    // Our tokens carry no `nbf`; one that does and is not valid yet was not
    // made by this server's issuing code, and is refused like any other.
    validation.validate_nbf = true;
    let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::ExpiredSignature => invalid("the token has expired"),
            ErrorKind::ImmatureSignature => invalid("the token is not valid yet"),
            ErrorKind::InvalidIssuer => invalid("the token was issued by someone else"),
            ErrorKind::InvalidAudience => invalid("the token is meant for another server"),
            ErrorKind::InvalidSignature => invalid("the token's signature is wrong"),
            _ => invalid("malformed token"),
        }
    })?;
    if server.revocations.is_revoked(&data.claims) {
        return Err(invalid("the token has been revoked"));
    }
    Ok(data.claims)
}

/// The caller of a FHIR request with this token: [`validate`] once per
/// token and process, then from [`AuthServer::checked_tokens`] (expiry and
/// revocation checked every time).
pub fn caller(server: &AuthServer, token: &str) -> Result<Arc<Caller>, BearerError> {
    let now = chrono::Utc::now().timestamp();
    let checked = match server.checked_tokens.get(token, now) {
        Some(checked) => checked,
        None => {
            let claims = validate(server, token)?;
            let caller = claims.caller().ok_or_else(|| {
                BearerError::Invalid("the token's claims are not understood".into())
            })?;
            let checked = Arc::new(Checked {
                claims,
                caller: Arc::new(caller),
            });
            server.checked_tokens.insert(token, checked.clone(), now);
            return Ok(checked.caller.clone());
        }
    };
    if server.revocations.is_revoked(&checked.claims) {
        return Err(BearerError::Invalid("the token has been revoked".into()));
    }
    Ok(checked.caller.clone())
}
