//! The portal's reads through the FHIR service, with the visitor's guard:
//! the one read path decides and audits each of them as it would a FHIR
//! API call by the same token. And how FHIR values read in a page.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use fhirledger_service::reads::{self, Search};
use fhirledger_service::{search, ServiceError};
use serde_json::Value;

use crate::layout::problem;
use crate::session::Visit;

/// One page of a search, as the caller may see it.
pub struct Found {
    pub resources: Vec<Value>,
    /// Whether more matches follow this page.
    pub more: bool,
}

/// A search of `resource_type` with `params`, through the read path.
pub async fn search(
    visit: &Visit,
    resource_type: &'static str,
    params: Vec<(String, String)>,
) -> Result<Found, ServiceError> {
    let guard = visit.guard.clone();
    let base = visit.server.settings.fhir_base.clone();
    visit
        .server
        .db
        .run_read(move |store| -> Result<Found, ServiceError> {
            let request = search::parse(&base, resource_type, &params, false)?;
            let page = reads::read(store, &guard, Search { request: &request })?.value;
            Ok(Found {
                more: page.next.is_some(),
                resources: page
                    .matches
                    .iter()
                    .filter_map(|m| serde_json::from_str(&m.content).ok())
                    .collect(),
            })
        })
        .await
}

/// A service error as the person should read it.
pub fn problem_page(e: &ServiceError) -> HttpResponse {
    match e.status.code() {
        401 => problem(
            StatusCode::UNAUTHORIZED,
            "Your session has ended",
            "Sign in again to go on.",
        ),
        403 => problem(
            StatusCode::FORBIDDEN,
            "You do not have access to this",
            "Your role or the patient's consent does not allow it. The attempt has been recorded.",
        ),
        404 | 410 => problem(
            StatusCode::NOT_FOUND,
            "Not found",
            "It does not exist, or you do not have access to it.",
        ),
        code if code < 500 => problem(
            StatusCode::BAD_REQUEST,
            "That did not work",
            "The request could not be understood. Please check what you entered and try again.",
        ),
        _ => {
            tracing::warn!(status = e.status.code(), "a portal page failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The server could not complete this just now. Please try again shortly.",
            )
        }
    }
}

/// A person's name (Patient, Practitioner).
pub fn person_name(resource: &Value) -> String {
    fhirledger_auth::names::person_name(resource)
        .or_else(|| resource["id"].as_str().map(str::to_string))
        .unwrap_or_else(|| "unnamed".to_string())
}

/// How a CodeableConcept reads: its text, else its first coding's display
/// or code.
pub fn concept(value: &Value) -> String {
    if let Some(text) = value["text"].as_str() {
        return text.to_string();
    }
    let coding = &value["coding"][0];
    coding["display"]
        .as_str()
        .or_else(|| coding["code"].as_str())
        .unwrap_or("")
        .to_string()
}

/// How a Reference reads: its display, else the reference itself.
pub fn reference(value: &Value) -> String {
    value["display"]
        .as_str()
        .or_else(|| value["reference"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The id of a local reference `Type/id`.
pub fn reference_id<'a>(value: &'a Value, resource_type: &str) -> Option<&'a str> {
    value["reference"]
        .as_str()?
        .strip_prefix(resource_type)?
        .strip_prefix('/')
}

/// A date or instant as a person reads it: `2026-12-06 14:05 UTC`, or the
/// date alone; the `time` element carries the machine form.
pub fn when(value: &Value) -> String {
    let Some(text) = value.as_str() else {
        return String::new();
    };
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M UTC")
            .to_string(),
        Err(_) => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_read_as_people_expect() {
        assert_eq!(
            concept(&json!({"coding":[{"code":"x","display":"Discharge summary"}]})),
            "Discharge summary"
        );
        assert_eq!(
            concept(&json!({"text":"Letter","coding":[{"code":"x"}]})),
            "Letter"
        );
        assert_eq!(
            reference(&json!({"reference":"Practitioner/1"})),
            "Practitioner/1"
        );
        assert_eq!(
            reference_id(&json!({"reference":"Patient/p-1"}), "Patient"),
            Some("p-1")
        );
        assert_eq!(
            reference_id(&json!({"reference":"Group/p-1"}), "Patient"),
            None
        );
        assert_eq!(
            when(&json!("2026-12-06T14:05:09+01:00")),
            "2026-12-06 13:05 UTC"
        );
        assert_eq!(when(&json!("2026-12-06")), "2026-12-06");
    }
}
