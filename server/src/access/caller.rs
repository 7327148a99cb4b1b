//! Who makes a FHIR request, as their access token says.

use crate::access::roles::Role;
use crate::access::scope::ScopeSet;
use crate::auth::claims::AccessClaims;

/// The authenticated caller of a FHIR interaction.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user id, or the backend client's id.
    pub subject: String,
    pub client_id: String,
    pub scopes: ScopeSet,
    /// The user's role; `None` for backend clients.
    pub role: Option<Role>,
    /// The user's Organization id (none for solution-level accounts).
    pub organization: Option<String>,
    /// The patient in context (launch or picker), as an id.
    pub patient: Option<String>,
    /// The token's id, for audit.
    pub token_id: String,
}

impl Caller {
    /// The caller a validated token describes; `None` when its claims are
    /// not ours to understand (a scope or role this server never issues).
    pub fn from_claims(claims: &AccessClaims) -> Option<Caller> {
        let scopes = ScopeSet::parse(&claims.scope).ok()?;
        let role = match &claims.role {
            Some(r) => Some(r.parse::<Role>().ok()?),
            None => None,
        };
        Some(Caller {
            subject: claims.sub.clone(),
            client_id: claims.client_id.clone(),
            scopes,
            role,
            organization: claims.org.clone(),
            patient: claims.patient.clone(),
            token_id: claims.jti.clone(),
        })
    }
}
