//! Applying an [`Access`] answer: as extra criteria of a search (so the
//! database filters before paging and counting), and as a check whether one
//! resource is visible, run through the same search machinery.

use std::collections::BTreeMap;

use fhir_profiles::resource_types::HOSTED;
use fhir_profiles::search::query::{Criterion, SearchRequest, TotalMode};
use fhirledger_postgres::{SearchPage, StoreError};

use crate::access::allow::{Filter, Interaction};
use crate::access::caller::Caller;
use crate::access::decision::{decide, Access};
use crate::http::error::ApiError;
use crate::service::search::parse;

/// The criteria a search must add to see only what `access` allows.
pub fn access_criteria(
    fhir_base: &str,
    resource_type: &str,
    access: &Access,
) -> Result<Vec<Criterion>, ApiError> {
    match access {
        Access::All => Ok(Vec::new()),
        Access::Only(filters) => {
            let mut alternatives = filters
                .iter()
                .map(|f| filter_criteria(fhir_base, resource_type, f))
                .collect::<Result<Vec<_>, _>>()?;
            if alternatives.len() == 1 {
                Ok(alternatives.remove(0))
            } else {
                Ok(vec![Criterion::AnyOf { alternatives }])
            }
        }
        Access::ThroughDocuments(_) => Err(ApiError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            fhir_profiles::outcome::IssueType::Forbidden,
            format!(
                "{resource_type} can be searched only with system/ scopes; read each one by id \
                 from the DocumentReference that points to it"
            ),
        )),
    }
}

/// One filter's parameters as parsed criteria. The filters come from
/// granted scopes and from this server's own confinement rules; a granular
/// scope whose parameters do not parse refuses the request rather than
/// widening it.
fn filter_criteria(
    fhir_base: &str,
    resource_type: &str,
    filter: &Filter,
) -> Result<Vec<Criterion>, ApiError> {
    let request = parse(fhir_base, resource_type, filter, false).map_err(|e| {
        ApiError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            fhir_profiles::outcome::IssueType::Forbidden,
            format!(
                "a granted scope's filter on {resource_type} cannot be applied: {}",
                e.issues
                    .iter()
                    .map(|i| i.diagnostics.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )
    })?;
    Ok(request.criteria)
}

/// Restricts a parsed search to what the caller may see: its matches (and
/// so its pages and totals) by the search decision, its included resources
/// by the read decision of each type.
pub fn restrict_search(
    caller: &Caller,
    fhir_base: &str,
    request: &mut SearchRequest,
) -> Result<(), ApiError> {
    let access = decide(caller, &request.resource_type, Interaction::Search)?;
    let extra = access_criteria(fhir_base, &request.resource_type, &access)?;
    request.criteria.extend(extra);
    if !request.includes.is_empty() || !request.revincludes.is_empty() {
        request.include_access = Some(include_access(caller, fhir_base)?);
    }
    Ok(())
}

/// Per type, what included resources must match (types the caller may not
/// read are absent, so they are never included).
fn include_access(
    caller: &Caller,
    fhir_base: &str,
) -> Result<BTreeMap<String, Vec<Criterion>>, ApiError> {
    let mut map = BTreeMap::new();
    for &t in HOSTED {
        let Ok(access) = decide(caller, t, Interaction::Read) else {
            continue;
        };
        match access {
            Access::ThroughDocuments(_) => continue,
            other => {
                map.insert(t.to_string(), access_criteria(fhir_base, t, &other)?);
            }
        }
    }
    Ok(map)
}

/// Whether the live resource `resource_type/id` is visible under `access`,
/// asked of the database through `search` (the store, or an open transaction
/// that must see its own writes).
pub fn is_visible(
    fhir_base: &str,
    resource_type: &str,
    id: &str,
    access: &Access,
    search: &mut dyn FnMut(&SearchRequest) -> Result<SearchPage, StoreError>,
) -> Result<bool, ApiError> {
    match access {
        Access::All => Ok(true),
        Access::Only(_) => {
            let mut request = by_id(fhir_base, resource_type, "_id", id)?;
            request
                .criteria
                .extend(access_criteria(fhir_base, resource_type, access)?);
            Ok(!search(&request)?.matches.is_empty())
        }
        Access::ThroughDocuments(documents) => {
            let urls = format!("{fhir_base}/Binary/{id},Binary/{id}");
            let mut request = by_id(fhir_base, "DocumentReference", "location", &urls)?;
            request
                .criteria
                .extend(access_criteria(fhir_base, "DocumentReference", documents)?);
            Ok(!search(&request)?.matches.is_empty())
        }
    }
}

/// Whether a DocumentReference the caller may not see (under `documents`)
/// points at Binary `id`: such a Binary is someone else's, and pointing a
/// document of one's own at it must not open it.
pub fn binary_claimed_by_others(
    fhir_base: &str,
    id: &str,
    documents: &Access,
    search: &mut dyn FnMut(&SearchRequest) -> Result<SearchPage, StoreError>,
) -> Result<bool, ApiError> {
    if documents.is_all() {
        return Ok(false);
    }
    let urls = format!("{fhir_base}/Binary/{id},Binary/{id}");
    let mut all = by_id(fhir_base, "DocumentReference", "location", &urls)?;
    all.total = Some(TotalMode::Accurate);
    let everyone = search(&all)?.total.unwrap_or(0);
    let mut visible = all.clone();
    visible
        .criteria
        .extend(access_criteria(fhir_base, "DocumentReference", documents)?);
    Ok(everyone > search(&visible)?.total.unwrap_or(0))
}

/// The ids of the Binaries a document's attachments point at on this server.
pub fn linked_binaries(fhir_base: &str, document: &serde_json::Value) -> Vec<String> {
    let absolute = format!("{fhir_base}/Binary/");
    document["content"]
        .as_array()
        .map(|contents| {
            contents
                .iter()
                .filter_map(|c| c["attachment"]["url"].as_str())
                .filter_map(|url| {
                    url.strip_prefix(&absolute)
                        .or_else(|| url.strip_prefix("Binary/"))
                })
                .map(|id| id.split('/').next().unwrap_or(id).to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A one-result search `{type}?{param}={value}`.
fn by_id(
    fhir_base: &str,
    resource_type: &str,
    param: &str,
    value: &str,
) -> Result<SearchRequest, ApiError> {
    let params = vec![
        (param.to_string(), value.to_string()),
        ("_count".to_string(), "1".to_string()),
    ];
    parse(fhir_base, resource_type, &params, false)
}
