//! Query strings as FHIR reads them.

/// Decoded name/value pairs of a query string (or form body), in order.
pub fn form_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
