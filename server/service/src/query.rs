//! Query strings as FHIR reads them.

/// Decodes `a=b&c=d` (percent-encoding and `+`), keeping order and repeats.
pub fn form_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
