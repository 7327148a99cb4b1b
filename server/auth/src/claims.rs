//! What our access tokens and id tokens say.

use fhirledger_access::{practitioner_of, Caller, Identity, Role, ScopeSet};
use serde::{Deserialize, Serialize};

/// An access token's claims. Everything the access decision needs travels
/// in the token, so checking a request costs one signature check and a
/// look at the in-memory revocation list, not a database query.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    pub iss: String,
    /// The user id, or the client id of a backend client.
    pub sub: String,
    /// The FHIR base URL.
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The grant this token descends from (revoking it revokes the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// The patient in context, as an id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// The user's FHIR identity as an absolute URL.
    #[serde(default, rename = "fhirUser", skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    /// The user's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The user's Organization id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The user's name (from their FHIR identity when the token was
    /// issued), for the audit trail of their requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Their Organization's name, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_name: Option<String>,
}

/// An OpenID Connect id token (we mint it; the app's identity of the user).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    /// The client id.
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(rename = "fhirUser", skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl AccessClaims {
    /// The caller these (validated) claims describe, with its scopes'
    /// granular filters compiled against the FHIR base the token is for;
    /// `None` when the claims are not ours to understand (a scope or role
    /// this server never issues).
    pub fn caller(&self) -> Option<Caller> {
        let scopes = ScopeSet::parse(&self.scope).ok()?;
        let role = match &self.role {
            Some(r) => Some(r.parse::<Role>().ok()?),
            None => None,
        };
        let identity = Identity {
            subject: self.sub.clone(),
            client_id: self.client_id.clone(),
            role,
            organization: self.org.clone(),
            patient: self.patient.clone(),
            practitioner: self.fhir_user.as_deref().and_then(practitioner_of),
            token_id: self.jti.clone(),
            name: self.name.clone(),
            organization_name: self.org_name.clone(),
        };
        Some(Caller::new(
            identity,
            scopes,
            self.aud.trim_end_matches('/'),
        ))
    }
}
