//! Who makes a FHIR request, as their access token says, with the granular
//! filters of their scopes already compiled into typed search criteria.
//!
//! A caller is built once per token and process (the authorization server
//! keeps it with the checked token), so the filters a scope carries are
//! parsed once, not on every request.

use std::collections::HashMap;

use fhir_profiles::resource_types::HOSTED;
use fhir_profiles::search::parse_search;
use fhir_profiles::search::query::Criterion;

use crate::allow::Filter;
use crate::roles::Role;
use crate::scope::ScopeSet;

/// Who a token was issued to, as its claims say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id, or the backend client's id.
    pub subject: String,
    pub client_id: String,
    /// The user's role; `None` for backend clients.
    pub role: Option<Role>,
    /// The user's Organization id (none for solution-level accounts).
    pub organization: Option<String>,
    /// The patient in context (launch or picker), as an id.
    pub patient: Option<String>,
    /// The user's Practitioner id, when their FHIR identity is one (doctors):
    /// how Consents name them.
    pub practitioner: Option<String>,
    /// The token's id, for audit.
    pub token_id: String,
    /// The person's name, for the audit trail.
    pub name: Option<String>,
    /// Their hospital's name, for the audit trail.
    pub organization_name: Option<String>,
}

/// The Practitioner id a `fhirUser` names (`Practitioner/{id}`, relative or
/// absolute), if it names one.
pub fn practitioner_of(fhir_user: &str) -> Option<String> {
    let mut segments = fhir_user.rsplit('/');
    let id = segments.next()?;
    (segments.next()? == "Practitioner" && fhir_profiles::ids::is_valid_id(id))
        .then(|| id.to_string())
}

/// The authenticated caller of a FHIR interaction.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    pub client_id: String,
    pub scopes: ScopeSet,
    pub role: Option<Role>,
    pub organization: Option<String>,
    pub patient: Option<String>,
    pub practitioner: Option<String>,
    pub token_id: String,
    /// The person's name and their hospital's, as the token says: what the
    /// audit trail shows a patient of who read their data.
    pub name: Option<String>,
    pub organization_name: Option<String>,
    /// (type, granular filter) → its criteria, or why they cannot be
    /// applied (a filter naming a parameter the type does not have).
    compiled: HashMap<(String, Filter), Result<Vec<Criterion>, String>>,
}

impl Caller {
    /// A caller holding `scopes`; every granular filter is compiled against
    /// each hosted type it applies to, with references resolved against
    /// `fhir_base`.
    pub fn new(identity: Identity, scopes: ScopeSet, fhir_base: &str) -> Caller {
        let mut compiled = HashMap::new();
        for scope in scopes.resource_scopes() {
            if scope.query.is_empty() {
                continue;
            }
            for &t in HOSTED.iter().filter(|t| scope.applies_to(t)) {
                compiled
                    .entry((t.to_string(), scope.query.clone()))
                    .or_insert_with(|| compile(t, &scope.query, fhir_base));
            }
        }
        let Identity {
            subject,
            client_id,
            role,
            organization,
            patient,
            practitioner,
            token_id,
            name,
            organization_name,
        } = identity;
        Caller {
            subject,
            client_id,
            scopes,
            role,
            organization,
            patient,
            practitioner,
            token_id,
            name,
            organization_name,
            compiled,
        }
    }

    /// The criteria of a granular filter on `resource_type`; `Err` says why
    /// it cannot be applied, which refuses the request rather than widening it.
    pub(crate) fn filter_criteria(
        &self,
        resource_type: &str,
        filter: &Filter,
    ) -> Result<&[Criterion], &str> {
        match self
            .compiled
            .get(&(resource_type.to_string(), filter.clone()))
        {
            Some(Ok(criteria)) => Ok(criteria),
            Some(Err(why)) => Err(why),
            None => Err("the filter was not compiled for this type"),
        }
    }
}

fn compile(
    resource_type: &str,
    filter: &Filter,
    fhir_base: &str,
) -> Result<Vec<Criterion>, String> {
    parse_search(resource_type, filter, fhir_base, false)
        .map(|request| request.criteria)
        .map_err(|issues| {
            issues
                .iter()
                .map(|i| i.diagnostics.clone())
                .collect::<Vec<_>>()
                .join("; ")
        })
}
