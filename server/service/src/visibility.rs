//! Applying an [`Access`] answer in the store: as criteria a search adds (so
//! the database filters before paging and counting), and as a check whether
//! one resource is visible, run through the same search machinery.

use fhir_profiles::search::param_key;
use fhir_profiles::search::query::{Criterion, SearchRequest, TotalMode, UriMode, Visibility};
use fhirledger_access::Access;
use fhirledger_postgres::Tx;

use crate::error::ServiceError;

/// The criteria a search of `resource_type` adds to see only what `access` allows.
pub(crate) fn criteria_of(
    resource_type: &str,
    access: &Access,
) -> Result<Vec<Criterion>, ServiceError> {
    match access {
        Access::All => Ok(Vec::new()),
        Access::Only(criteria) => Ok(criteria.clone()),
        Access::ThroughDocuments(_) => Err(ServiceError::forbidden(format!(
            "{resource_type} can be searched only with system/ scopes; read each one by id \
             from the DocumentReference that points to it"
        ))),
    }
}

/// Whether the live resource `resource_type/id` is visible under `access`,
/// asked in the transaction `tx` (which sees its own writes).
pub(crate) fn is_visible(
    tx: &mut Tx<'_>,
    fhir_base: &str,
    resource_type: &str,
    id: &str,
    access: &Access,
) -> Result<bool, ServiceError> {
    match access {
        Access::All => Ok(true),
        Access::Only(criteria) => {
            let request = one(resource_type, by_id(id));
            let visibility = Visibility {
                criteria: criteria.clone(),
                includes: None,
            };
            Ok(!tx.search(&request, &visibility)?.matches.is_empty())
        }
        Access::ThroughDocuments(documents) => {
            let request = one("DocumentReference", pointing_at(fhir_base, id));
            let visibility = Visibility {
                criteria: criteria_of("DocumentReference", documents)?,
                includes: None,
            };
            Ok(!tx.search(&request, &visibility)?.matches.is_empty())
        }
    }
}

/// Whether a DocumentReference the caller may not see (under `documents`)
/// points at Binary `id`: such a Binary is someone else's, and pointing a
/// document of one's own at it must not open it.
pub(crate) fn binary_claimed_by_others(
    tx: &mut Tx<'_>,
    fhir_base: &str,
    id: &str,
    documents: &Access,
) -> Result<bool, ServiceError> {
    if documents.is_all() {
        return Ok(false);
    }
    let mut all = one("DocumentReference", pointing_at(fhir_base, id));
    all.total = Some(TotalMode::Accurate);
    let everyone = tx
        .search(&all, &Visibility::everything())?
        .total
        .unwrap_or(0);
    let visibility = Visibility {
        criteria: criteria_of("DocumentReference", documents)?,
        includes: None,
    };
    Ok(everyone > tx.search(&all, &visibility)?.total.unwrap_or(0))
}

/// The ids of the Binaries a document's attachments point at on this server.
pub(crate) fn linked_binaries(fhir_base: &str, document: &serde_json::Value) -> Vec<String> {
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

/// `_id={id}`.
fn by_id(id: &str) -> Criterion {
    Criterion::Id {
        ids: vec![id.to_string()],
    }
}

/// DocumentReference `location={base}/Binary/{id},Binary/{id}`: documents
/// whose attachment points at the Binary, by absolute or relative URL.
fn pointing_at(fhir_base: &str, id: &str) -> Criterion {
    Criterion::Uri {
        key: param_key("DocumentReference", "location"),
        mode: UriMode::Exact,
        values: vec![format!("{fhir_base}/Binary/{id}"), format!("Binary/{id}")],
    }
}

/// A search for at most one match of `criterion`.
fn one(resource_type: &str, criterion: Criterion) -> SearchRequest {
    let mut request = SearchRequest::new(resource_type);
    request.criteria.push(criterion);
    request.count = 1;
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhir_profiles::search::parse_search;

    #[test]
    fn built_criteria_mean_what_the_equivalent_search_means() {
        let base = "https://fhir.example/fhir";
        let parsed = |rt: &str, param: &str, value: &str| {
            let params = vec![(param.to_string(), value.to_string())];
            parse_search(rt, &params, base, false)
                .expect("parses")
                .criteria
        };
        assert_eq!(vec![by_id("x-1")], parsed("Patient", "_id", "x-1"));
        assert_eq!(
            vec![pointing_at(base, "b-1")],
            parsed(
                "DocumentReference",
                "location",
                &format!("{base}/Binary/b-1,Binary/b-1")
            )
        );
    }
}
