//! Request headers that change what an interaction does: `Prefer`,
//! `If-Match` and `If-None-Exist` (whose criteria the service parses).

use actix_web::HttpRequest;
use fhirledger_service::types::parse_version_tag;
use fhirledger_service::{parse_conditions, Conditions};

use fhirledger_service::ServiceError;

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

/// The version required by `If-Match`, if any (400 when malformed).
pub fn if_match(req: &HttpRequest) -> Result<Option<i64>, ServiceError> {
    match req.headers().get("If-Match") {
        None => Ok(None),
        Some(v) => {
            let raw = v.to_str().unwrap_or("");
            parse_version_tag(raw).map(Some).ok_or_else(|| {
                ServiceError::bad_request(format!(
                    "If-Match must be a version tag like W/\"1\", not '{raw}'"
                ))
            })
        }
    }
}

/// The criteria of `If-None-Exist` on `resource_type`, if the header is present.
pub fn if_none_exist(
    req: &HttpRequest,
    resource_type: &str,
) -> Result<Option<Conditions>, ServiceError> {
    match req.headers().get("If-None-Exist") {
        None => Ok(None),
        Some(v) => {
            let raw = v
                .to_str()
                .map_err(|_| ServiceError::bad_request("If-None-Exist must be ASCII"))?;
            let query = raw.split_once('?').map(|(_, q)| q).unwrap_or(raw);
            Ok(Some(parse_conditions(resource_type, query)?))
        }
    }
}
