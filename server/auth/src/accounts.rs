//! Registering clients, creating user accounts with their invitations, and
//! creating EHR launch values — shared by the command line and the admin
//! HTTP endpoints so both check the same rules.

use chrono::Utc;
use fhirledger_postgres::auth::{ClientRow, UserRow};
use fhirledger_postgres::{PgStore, StoreError};
use fhirledger_service::reads::{self, ReadResource};
use fhirledger_service::{Guard, ServiceError, Status};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::client_keys::validate_jwks;
use crate::passwords;
use crate::secrets::{digest, new_secret};
use fhirledger_access::roles::Role;
use fhirledger_access::scope::ScopeSet;

/// How long an invitation can be redeemed.
const INVITATION_DAYS: i64 = 14;
/// How long a launch value is good for.
pub const LAUNCH_SECONDS: i64 = 300;

/// Scopes a client may hold when none are given at registration: whatever
/// the user's role allows (apps), read access to everything (backend).
const DEFAULT_APP_SCOPES: &str = "openid fhirUser profile launch launch/patient offline_access online_access patient/*.cruds user/*.cruds";
const DEFAULT_BACKEND_SCOPES: &str = "system/*.rs";

/// Why an account or client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Fhir(ServiceError),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate(what) => {
                AccountError::Conflict(format!("that {what} is already taken"))
            }
            other => AccountError::Store(other),
        }
    }
}

/// A client registration.
#[derive(Debug, Clone, Deserialize)]
pub struct NewClient {
    pub name: String,
    /// `public`, `confidential`, `asymmetric` or `backend`.
    pub kind: String,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// What registration hands back (the secret only now, only to confidential clients).
#[derive(Debug, Clone, Serialize)]
pub struct RegisteredClient {
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub kind: String,
    pub scope: String,
}

impl RegisteredClient {
    /// What the audit trail says was done (the admin API and the command
    /// line alike).
    pub fn audit_description(&self) -> String {
        format!(
            "client {} registered ({}, scopes: {})",
            self.client_id, self.kind, self.scope
        )
    }
}

/// Checks and stores a client.
pub fn register_client(store: &PgStore, new: &NewClient) -> Result<RegisteredClient, AccountError> {
    let invalid = |m: String| AccountError::Invalid(m);
    let name = new.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(invalid(
            "the client needs a name of at most 200 characters".into(),
        ));
    }
    let kind = new.kind.as_str();
    if !matches!(kind, "public" | "confidential" | "asymmetric" | "backend") {
        return Err(invalid(format!(
            "kind '{kind}' is not one of public, confidential, asymmetric, backend"
        )));
    }
    for uri in &new.redirect_uris {
        check_redirect_uri(uri).map_err(invalid)?;
    }
    if kind == "backend" && !new.redirect_uris.is_empty() {
        return Err(invalid("backend clients have no redirect URIs".into()));
    }
    if kind != "backend" && new.redirect_uris.is_empty() {
        return Err(invalid(format!(
            "a {kind} client needs at least one redirect URI"
        )));
    }
    let keyed = matches!(kind, "asymmetric" | "backend");
    match (&new.jwks, &new.jwks_uri, keyed) {
        (Some(_), Some(_), _) => {
            return Err(invalid(
                "give either a JWK Set or a JWK Set URL, not both".into(),
            ))
        }
        (None, None, true) => {
            return Err(invalid(format!(
                "a {kind} client needs its public keys (a JWK Set or its URL)"
            )))
        }
        (Some(_), _, false) | (_, Some(_), false) => {
            return Err(invalid(format!(
                "a {kind} client does not sign assertions; it takes no keys"
            )))
        }
        (Some(jwks), None, true) => validate_jwks(jwks).map_err(invalid)?,
        (None, Some(uri), true) => check_jwks_uri(uri).map_err(invalid)?,
        (None, None, false) => {}
    }
    let default = if kind == "backend" {
        DEFAULT_BACKEND_SCOPES
    } else {
        DEFAULT_APP_SCOPES
    };
    let scope = ScopeSet::parse(new.scope.as_deref().unwrap_or(default))
        .map_err(|e| invalid(format!("scope: {e}")))?;
    if scope.is_empty() {
        return Err(invalid("the client needs at least one scope".into()));
    }
    let secret = (kind == "confidential").then(new_secret);
    let row = ClientRow {
        client_id: Uuid::new_v4().to_string(),
        name: name.to_string(),
        kind: kind.to_string(),
        secret_sha256: secret.as_deref().map(digest),
        redirect_uris: new.redirect_uris.clone(),
        jwks: new.jwks.clone(),
        jwks_uri: new.jwks_uri.clone(),
        scope: scope.to_string(),
        active: true,
    };
    store.insert_client(&row)?;
    Ok(RegisteredClient {
        client_id: row.client_id,
        client_secret: secret,
        kind: row.kind,
        scope: row.scope,
    })
}

/// Redirect URIs are absolute, without a fragment (RFC 6749 §3.1.2).
fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let ok = (uri.starts_with("https://") || uri.starts_with("http://"))
        && !uri.contains('#')
        && !uri.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "redirect URI '{uri}' must be an absolute http(s) URL without a fragment"
        ))
    }
}

fn check_jwks_uri(uri: &str) -> Result<(), String> {
    if (uri.starts_with("https://") || uri.starts_with("http://"))
        && !uri.chars().any(char::is_whitespace)
    {
        Ok(())
    } else {
        Err(format!(
            "JWK Set URL '{uri}' must be an absolute http(s) URL"
        ))
    }
}

/// An account as an admin sees it in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub user_id: Uuid,
    pub email: String,
    /// `None` for a role this server no longer knows.
    pub role: Option<fhirledger_access::roles::Role>,
    pub organization: Option<String>,
    /// `Patient/…`, `Practitioner/…` or `Person/…`.
    pub fhir_user: Option<String>,
    pub active: bool,
}

impl AccountSummary {
    pub fn of(user: &UserRow) -> AccountSummary {
        AccountSummary {
            user_id: user.user_id,
            email: user.email.clone(),
            role: user.role.parse().ok(),
            organization: user.organization.clone(),
            fhir_user: user.fhir_user.clone(),
            active: user.active,
        }
    }
}

/// A new user account.
#[derive(Debug, Clone, Deserialize)]
pub struct NewUser {
    pub role: String,
    pub email: String,
    #[serde(default)]
    pub organization: Option<String>,
    /// `Patient/…`, `Practitioner/…` or `Person/…`.
    #[serde(default)]
    pub fhir_user: Option<String>,
    /// A local password (development sign-in).
    #[serde(default)]
    pub password: Option<String>,
}

/// The account made, with the invitation its person redeems at first sign-in.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedUser {
    pub user_id: String,
    pub role: String,
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    /// The invitation URL (`{issuer}/invite/{code}`).
    pub invitation: String,
}

impl CreatedUser {
    /// What the audit trail says was done (the admin API and the command
    /// line alike).
    pub fn audit_description(&self) -> String {
        format!(
            "account {} created ({}{})",
            self.user_id,
            self.role,
            self.organization
                .as_deref()
                .map(|o| format!(" of Organization/{o}"))
                .unwrap_or_default()
        )
    }
}

/// Checks the rules of a role and stores the account and its invitation.
pub fn create_user(
    store: &PgStore,
    issuer: &str,
    new: &NewUser,
) -> Result<CreatedUser, AccountError> {
    let invalid = |m: String| AccountError::Invalid(m);
    let role: Role = new
        .role
        .parse()
        .map_err(|e: fhirledger_access::roles::UnknownRole| invalid(e.to_string()))?;
    let email = new.email.trim();
    if !plausible_email(email) {
        return Err(invalid(format!("'{email}' is not an email address")));
    }
    if !role.accepts_organization(new.organization.as_ref()) {
        return Err(invalid(match role {
            Role::SolutionAdmin => "a solution admin belongs to no organization".to_string(),
            _ => format!("a {role} belongs to one organization (give its Organization id)"),
        }));
    }
    if let Some(org) = &new.organization {
        if !fhir_profiles::ids::is_valid_id(org) {
            return Err(invalid(format!("'{org}' is not an Organization id")));
        }
    }
    if let Some(fhir_user) = &new.fhir_user {
        let (ty, id) = fhir_user
            .split_once('/')
            .ok_or_else(|| invalid(format!("fhirUser '{fhir_user}' must be TYPE/ID")))?;
        if !role.fhir_user_types().contains(&ty) || !fhir_profiles::ids::is_valid_id(id) {
            return Err(invalid(format!(
                "a {role}'s FHIR identity is a {} reference, not '{fhir_user}'",
                role.fhir_user_types().join(" or ")
            )));
        }
    } else if role == Role::Patient {
        return Err(invalid(
            "a patient account needs its Patient (fhirUser Patient/ID)".into(),
        ));
    }
    let password_hash = match &new.password {
        Some(p) if p.chars().count() < 8 => {
            return Err(invalid("a password needs at least 8 characters".into()))
        }
        Some(p) => Some(passwords::hash(p).map_err(invalid)?),
        None => None,
    };
    let row = UserRow {
        user_id: Uuid::new_v4(),
        email: email.to_string(),
        role: role.as_str().to_string(),
        organization: new.organization.clone(),
        fhir_user: new.fhir_user.clone(),
        password_hash,
        active: true,
    };
    store.insert_user(&row)?;
    let code = new_secret();
    store.create_invitation(
        &digest(&code),
        row.user_id,
        Utc::now() + chrono::Duration::days(INVITATION_DAYS),
    )?;
    Ok(CreatedUser {
        user_id: row.user_id.to_string(),
        role: row.role,
        email: row.email,
        organization: row.organization,
        fhir_user: row.fhir_user,
        invitation: format!("{issuer}/invite/{code}"),
    })
}

fn plausible_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && email.len() <= 254
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// Creates a single-use EHR launch value for a patient and a user.
pub fn create_launch(
    store: &PgStore,
    fhir_base: &str,
    patient: &str,
    user_id: Uuid,
) -> Result<String, AccountError> {
    if !fhir_profiles::ids::is_valid_id(patient) {
        return Err(AccountError::Invalid(format!(
            "'{patient}' is not a Patient id"
        )));
    }
    match store.user(user_id)? {
        Some(u) if u.active => {}
        _ => {
            return Err(AccountError::Invalid(format!(
                "there is no active user {user_id}"
            )))
        }
    }
    // The server looks the patient up for itself: the launch is made by an
    // EHR (or an operator) entitled to name any patient of the group.
    let guard = Guard::for_server(fhir_base, "EHR launch: does the patient exist");
    let op = ReadResource {
        resource_type: "Patient",
        id: patient,
        version: None,
    };
    match reads::read(store, &guard, op) {
        Ok(found) if !found.value.is_deleted() => {}
        Ok(_) => {
            return Err(AccountError::Invalid(format!(
                "there is no Patient/{patient}"
            )))
        }
        Err(e) if e.status == Status::NOT_FOUND => {
            return Err(AccountError::Invalid(format!(
                "there is no Patient/{patient}"
            )))
        }
        Err(e) => return Err(AccountError::Fhir(e)),
    }
    let launch = new_secret();
    store.create_launch(
        &digest(&launch),
        patient,
        user_id,
        Utc::now() + chrono::Duration::seconds(LAUNCH_SECONDS),
    )?;
    Ok(launch)
}
