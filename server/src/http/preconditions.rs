//! Request headers that change what an interaction does: `Prefer`,
//! `If-Match`, `If-None-Exist`, and the search criteria of conditional
//! interactions.

use actix_web::HttpRequest;
use fhirledger_postgres::Criterion;

use crate::http::error::ApiError;
use crate::http::negotiate::form_pairs;

/// `Prefer: return=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReturnPreference {
    Minimal,
    #[default]
    Representation,
    OperationOutcome,
}

/// The `return` preference of a request; unknown values are ignored, as
/// RFC 7240 asks.
pub fn return_preference(req: &HttpRequest) -> ReturnPreference {
    prefer_values(req, "return")
        .into_iter()
        .find_map(|v| match v.as_str() {
            "minimal" => Some(ReturnPreference::Minimal),
            "representation" => Some(ReturnPreference::Representation),
            "OperationOutcome" => Some(ReturnPreference::OperationOutcome),
            _ => None,
        })
        .unwrap_or_default()
}

/// Values of one `Prefer` token, across repeated headers and lists.
pub fn prefer_values(req: &HttpRequest, token: &str) -> Vec<String> {
    req.headers()
        .get_all("Prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k.trim() == token).then(|| v.trim().trim_matches('"').to_string())
        })
        .collect()
}

/// Parses a version tag `W/"3"`, `"3"` or `3`.
pub fn parse_version_tag(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    let raw = raw.strip_prefix("W/").unwrap_or(raw);
    let raw = raw.trim_matches('"');
    raw.parse::<i64>().ok().filter(|v| *v > 0)
}

/// The version required by `If-Match`, if any (400 when malformed).
pub fn if_match(req: &HttpRequest) -> Result<Option<i64>, ApiError> {
    match req.headers().get("If-Match") {
        None => Ok(None),
        Some(v) => {
            let raw = v.to_str().unwrap_or("");
            parse_version_tag(raw).map(Some).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "If-Match must be a version tag like W/\"1\", not '{raw}'"
                ))
            })
        }
    }
}

/// The criteria of `If-None-Exist`, if the header is present.
pub fn if_none_exist(req: &HttpRequest) -> Result<Option<Vec<Criterion>>, ApiError> {
    match req.headers().get("If-None-Exist") {
        None => Ok(None),
        Some(v) => {
            let raw = v
                .to_str()
                .map_err(|_| ApiError::bad_request("If-None-Exist must be ASCII"))?;
            let query = raw.split_once('?').map(|(_, q)| q).unwrap_or(raw);
            parse_criteria(query).map(Some)
        }
    }
}

/// Criteria of a conditional interaction: `_id` and `identifier`
/// (`value`, `system|value` or `|value`); anything else is refused with 400
/// rather than silently matching too much.
pub fn parse_criteria(query: &str) -> Result<Vec<Criterion>, ApiError> {
    let mut criteria = Vec::new();
    for (name, value) in form_pairs(query) {
        if name.starts_with('_') && matches!(name.as_str(), "_format" | "_pretty") {
            continue;
        }
        if value.contains('\0') {
            return Err(ApiError::bad_request(format!(
                "parameter '{name}' contains a NUL character"
            )));
        }
        match name.as_str() {
            "_id" => criteria.push(Criterion::Id(value)),
            "identifier" => {
                if value.contains(',') {
                    return Err(ApiError::bad_request(
                        "conditional interactions take one identifier per parameter (no comma lists)",
                    ));
                }
                let criterion = match value.split_once('|') {
                    Some((system, code)) => Criterion::Identifier {
                        system: Some(system.to_string()),
                        value: code.to_string(),
                    },
                    None => Criterion::Identifier {
                        system: None,
                        value: value.clone(),
                    },
                };
                if matches!(&criterion, Criterion::Identifier { value, .. } if value.is_empty()) {
                    return Err(ApiError::bad_request("identifier needs a value"));
                }
                criteria.push(criterion);
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "parameter '{other}' is not supported in conditional interactions; use _id or identifier"
                )))
            }
        }
    }
    if criteria.is_empty() {
        return Err(ApiError::bad_request(
            "a conditional interaction needs criteria (_id or identifier)",
        ));
    }
    Ok(criteria)
}

/// Lock keys for criteria, sorted so that concurrent conditional writes take
/// their advisory locks in the same order (no deadlocks). Identifiers are
/// keyed by value alone, so `|v` and `s|v` serialise against each other.
pub fn criteria_keys(criteria: &[Criterion]) -> Vec<String> {
    let mut keys: Vec<String> = criteria
        .iter()
        .map(|c| match c {
            Criterion::Id(id) => format!("_id={id}"),
            Criterion::Identifier { value, .. } => format!("identifier={value}"),
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}
