//! Parsing a search request's parameters into a [`SearchRequest`].

use crate::outcome::Issue;
use crate::search::query::SearchRequest;

/// Parses the parameters of a search on `resource_type` (decoded name/value pairs, in
/// order). `fhir_base` recognises absolute references to this server; with `lenient`,
/// unknown parameters are ignored (and listed in `ignored`) instead of refused. Errors
/// name the offending parameter.
pub fn parse_search(
    resource_type: &str,
    params: &[(String, String)],
    fhir_base: &str,
    lenient: bool,
) -> Result<SearchRequest, Vec<Issue>> {
    let _ = (resource_type, params, fhir_base, lenient);
    todo!("helper B")
}
