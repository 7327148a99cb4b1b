//! Search as a service, shared by `GET /{type}`, `POST /{type}/_search` and the GET entries
//! of batch and transaction Bundles.

use fhirledger_postgres::PgStore;
use serde_json::Value;

use crate::http::error::ApiError;

/// Runs the search `query` (an URL query string, undecoded) on `resource_type` and returns
/// its `searchset` Bundle. Blocking: call it from a blocking context.
pub fn search_bundle(
    store: &PgStore,
    fhir_base: &str,
    resource_type: &str,
    query: &str,
    lenient: bool,
) -> Result<Value, ApiError> {
    let _ = (store, fhir_base, resource_type, query, lenient);
    Err(ApiError::method_not_allowed("search is not available yet"))
}
