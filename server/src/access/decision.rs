//! The one access decision: may this caller do this interaction on
//! resources of this type, and on which of them? It combines the granted
//! scopes (with their granular filters), the confinement of each scope
//! context — the launch patient's compartment for `patient/`, the user's
//! hospital for `user/`, nothing for `system/` — and, in a later step, the
//! patient's Consent. The answer is a set of search-parameter filters, so
//! searches apply it in SQL before paging and single resources are checked
//! with the same SQL: there is one definition of "visible".

use actix_web::http::StatusCode;
use fhir_profiles::outcome::IssueType;

use crate::access::allow::{Allowance, ContextGrant, Filter, Interaction};
use crate::access::caller::Caller;
use crate::access::scope::Context;
use crate::http::error::ApiError;

/// Which resources of a type an interaction may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// All of them.
    All,
    /// Those matching at least one filter (each an AND of search
    /// parameters). An empty list matches nothing.
    Only(Vec<Filter>),
    /// Binary has no search parameters of its own: a Binary is visible when
    /// a DocumentReference visible under this access points at it
    /// (`content.attachment.url`), or when its `securityContext` is visible.
    ThroughDocuments(Box<Access>),
}

impl Access {
    /// Whether everything is visible, so no check is needed.
    pub fn is_all(&self) -> bool {
        matches!(self, Access::All)
    }
}

/// Decides an interaction on a type; 403 when no granted scope permits it.
pub fn decide(
    caller: &Caller,
    resource_type: &str,
    interaction: Interaction,
) -> Result<Access, ApiError> {
    let allowed = match caller.scopes.allowance(resource_type, interaction) {
        Allowance::Denied => return Err(forbidden(caller, resource_type, interaction)),
        Allowance::Allowed(a) => a,
    };
    if resource_type == "Binary" {
        return Ok(binary_access(caller, &allowed.grants));
    }
    Ok(combine(allowed.grants.iter().map(|g| {
        (g, confinement(caller, g.context, resource_type))
    })))
}

/// Binary follows the documents of the same contexts.
fn binary_access(caller: &Caller, grants: &[ContextGrant]) -> Access {
    if grants.iter().any(|g| g.context == Context::System) {
        return Access::All;
    }
    let documents = combine(grants.iter().map(|g| {
        let unfiltered = ContextGrant {
            context: g.context,
            alternatives: None,
        };
        (
            unfiltered,
            confinement(caller, g.context, "DocumentReference"),
        )
    }));
    Access::ThroughDocuments(Box::new(documents))
}

/// ORs each context's confinement ANDed with its granular filters.
fn combine<G: std::borrow::Borrow<ContextGrant>>(
    grants: impl Iterator<Item = (G, Option<Filter>)>,
) -> Access {
    let mut alternatives: Vec<Filter> = Vec::new();
    for (grant, confined) in grants {
        let Some(confined) = confined else { continue };
        match &grant.borrow().alternatives {
            None => alternatives.push(confined),
            Some(filters) => {
                for filter in filters {
                    let mut both = confined.clone();
                    both.extend(filter.iter().cloned());
                    alternatives.push(both);
                }
            }
        }
    }
    if alternatives.iter().any(Vec::is_empty) {
        Access::All
    } else {
        Access::Only(alternatives)
    }
}

/// What a context confines a type to: `Some(filter)` (empty = everything),
/// or `None` when the context gives nothing of that type.
fn confinement(caller: &Caller, context: Context, resource_type: &str) -> Option<Filter> {
    match context {
        Context::System => Some(Vec::new()),
        Context::Patient => {
            let patient = caller.patient.as_deref()?;
            patient_compartment(resource_type, patient)
        }
        Context::User => {
            caller.role?;
            match caller.organization.as_deref() {
                None => Some(Vec::new()),
                Some(org) => hospital(resource_type, org),
            }
        }
    }
}

/// The launch patient's compartment, by the search parameters that name the
/// patient. DocumentReference uses `patient` (its subject); documents merely
/// authored by the patient about someone else stay out, on purpose.
fn patient_compartment(resource_type: &str, patient: &str) -> Option<Filter> {
    let reference = format!("Patient/{patient}");
    let param = match resource_type {
        "Patient" => return Some(vec![("_id".into(), patient.to_string())]),
        "DocumentReference" | "Consent" | "AuditEvent" => "patient",
        _ => return None,
    };
    Some(vec![(param.to_string(), reference)])
}

/// A hospital's resources: its patients and everything about them, its
/// clinicians and their roles, and its own Organization.
fn hospital(resource_type: &str, org: &str) -> Option<Filter> {
    let reference = format!("Organization/{org}");
    let (param, value) = match resource_type {
        "Organization" => ("_id", org.to_string()),
        "Patient" | "PractitionerRole" => ("organization", reference),
        "DocumentReference" | "Consent" | "AuditEvent" => ("patient.organization", reference),
        "Practitioner" => ("_has:PractitionerRole:practitioner:organization", reference),
        _ => return None,
    };
    Some(vec![(param.to_string(), value)])
}

/// 403: the token holds no scope for this.
fn forbidden(caller: &Caller, resource_type: &str, interaction: Interaction) -> ApiError {
    let verb = match interaction {
        Interaction::Create => "create",
        Interaction::Read => "read",
        Interaction::Update => "update",
        Interaction::Delete => "delete",
        Interaction::Search => "search",
    };
    ApiError::new(
        StatusCode::FORBIDDEN,
        IssueType::Forbidden,
        format!(
            "the access token does not permit to {verb} {resource_type} (granted: {})",
            caller.scopes
        ),
    )
}
