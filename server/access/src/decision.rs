//! The one access decision: may this caller do this interaction on
//! resources of this type, and on which of them? It combines the granted
//! scopes (with their granular filters), the confinement of each scope
//! context — the launch patient's compartment for `patient/`, the user's
//! hospital for `user/`, nothing for `system/` — and, in the Consent step,
//! the patient's Consent (added as criteria here, so every caller of the
//! decision gets it). The answer is a set of typed search criteria, so
//! searches apply it in SQL before paging, and single resources are checked
//! with the same SQL: there is one definition of "visible".

use fhir_profiles::search::query::Criterion;

use crate::allow::{Allowance, ContextGrant, Interaction};
use crate::caller::Caller;
use crate::confine::{consented_documents, consented_patients, hospital, patient_compartment};
use crate::policy::Policy;
use crate::roles::Role;
use crate::scope::Context;

/// Which resources of a type an interaction may touch.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// All of them.
    All,
    /// Those meeting every criterion. Several alternatives (granular scopes
    /// of several contexts, or several filters) arrive as one server-built
    /// [`Criterion::AnyOf`]; `AnyOf` without alternatives matches nothing.
    Only(Vec<Criterion>),
    /// Binary has no search parameters of its own: a Binary is visible when
    /// a DocumentReference visible under this access points at it
    /// (`content.attachment.url`).
    ThroughDocuments(Box<Access>),
}

impl Access {
    /// Whether everything is visible, so no check is needed.
    pub fn is_all(&self) -> bool {
        matches!(self, Access::All)
    }

    /// Matches nothing at all.
    pub fn nothing() -> Access {
        Access::Only(vec![Criterion::AnyOf {
            alternatives: Vec::new(),
        }])
    }
}

/// Why a caller may not do an interaction at all (answered with 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// Decides an interaction on a type; [`Denied`] when no granted scope
/// permits it, or when a granted scope's filter cannot be applied.
pub fn decide(
    caller: &Caller,
    policy: Policy,
    resource_type: &str,
    interaction: Interaction,
) -> Result<Access, Denied> {
    let allowed = match caller.scopes.allowance(resource_type, interaction) {
        Allowance::Denied => return Err(forbidden(caller, resource_type, interaction)),
        Allowance::Allowed(a) => a,
    };
    let asked = Asked {
        caller,
        policy,
        interaction,
    };
    if resource_type == "Binary" {
        return binary_access(&asked, &allowed.grants);
    }
    combine(&asked, resource_type, &allowed.grants)
}

/// One question to the decision.
struct Asked<'a> {
    caller: &'a Caller,
    policy: Policy,
    interaction: Interaction,
}

/// Binary follows the documents of the same contexts.
fn binary_access(asked: &Asked<'_>, grants: &[ContextGrant]) -> Result<Access, Denied> {
    if grants.iter().any(|g| g.context == Context::System) {
        return Ok(Access::All);
    }
    let unfiltered: Vec<ContextGrant> = grants
        .iter()
        .map(|g| ContextGrant {
            context: g.context,
            alternatives: None,
        })
        .collect();
    let documents = combine(asked, "DocumentReference", &unfiltered)?;
    Ok(Access::ThroughDocuments(Box::new(documents)))
}

/// ORs each context's confinement ANDed with its granular filters.
fn combine(
    asked: &Asked<'_>,
    resource_type: &str,
    grants: &[ContextGrant],
) -> Result<Access, Denied> {
    let caller = asked.caller;
    let mut alternatives: Vec<Vec<Criterion>> = Vec::new();
    for grant in grants {
        let Some(confined) = confinement(asked, grant.context, resource_type) else {
            continue;
        };
        match &grant.alternatives {
            None => alternatives.push(confined),
            Some(filters) => {
                for filter in filters {
                    let narrowed = caller
                        .filter_criteria(resource_type, filter)
                        .map_err(|why| {
                            Denied(format!(
                                "a granted scope's filter on {resource_type} cannot be applied: {why}"
                            ))
                        })?;
                    let mut both = confined.clone();
                    both.extend(narrowed.iter().cloned());
                    alternatives.push(both);
                }
            }
        }
    }
    if alternatives.iter().any(Vec::is_empty) {
        return Ok(Access::All);
    }
    if alternatives.len() == 1 {
        return Ok(Access::Only(alternatives.remove(0)));
    }
    Ok(Access::Only(vec![Criterion::AnyOf { alternatives }]))
}

/// The types of the group's directory: who the hospitals and clinicians are.
pub fn is_directory(resource_type: &str) -> bool {
    matches!(
        resource_type,
        "Organization" | "Practitioner" | "PractitionerRole"
    )
}

/// What a context confines a type to: `Some(criteria)` (empty = everything),
/// or `None` when the context gives nothing of that type.
///
/// A doctor reading or searching is confined further by Consent: documents
/// by their patients' Consents (in both contexts), patients to those of
/// their hospital and those who granted them anything. Writes keep the
/// hospital confinement: a doctor files documents for their own patients.
fn confinement(asked: &Asked<'_>, context: Context, resource_type: &str) -> Option<Vec<Criterion>> {
    let caller = asked.caller;
    let reading = matches!(asked.interaction, Interaction::Read | Interaction::Search);
    let doctor_reading = reading && caller.role == Some(Role::Doctor);
    match context {
        Context::System => Some(Vec::new()),
        Context::Patient => {
            let patient = caller.patient.as_deref()?;
            // The group's directory (its hospitals, clinicians and their
            // roles) is no one's record: a patient reads it to choose whom
            // to share with and to know who read their documents.
            if reading && is_directory(resource_type) {
                return Some(Vec::new());
            }
            let mut confined = vec![patient_compartment(resource_type, patient)?];
            if doctor_reading && resource_type == "DocumentReference" {
                confined.push(consented_documents(caller, asked.policy.consent_default));
            }
            Some(confined)
        }
        Context::User => {
            caller.role?;
            match (caller.organization.as_deref(), resource_type) {
                (_, "DocumentReference") if doctor_reading => Some(vec![consented_documents(
                    caller,
                    asked.policy.consent_default,
                )]),
                (Some(org), "Patient") if doctor_reading => {
                    Some(vec![consented_patients(caller, org)])
                }
                (None, _) => Some(Vec::new()),
                (Some(org), _) => hospital(resource_type, org).map(|c| vec![c]),
            }
        }
    }
}

/// The verb of an interaction, for messages.
pub fn verb(interaction: Interaction) -> &'static str {
    match interaction {
        Interaction::Create => "create",
        Interaction::Read => "read",
        Interaction::Update => "update",
        Interaction::Delete => "delete",
        Interaction::Search => "search",
    }
}

/// The token holds no scope for this.
fn forbidden(caller: &Caller, resource_type: &str, interaction: Interaction) -> Denied {
    Denied(format!(
        "the access token does not permit to {} {resource_type} (granted: {})",
        verb(interaction),
        caller.scopes
    ))
}
