//! What a FHIR request was, from its method and path alone: for the
//! AuditEvent of a request that was refused or failed before the service
//! could say (401, 403, 404, 4xx of any kind, 5xx).

use actix_web::http::Method;
use fhirledger_audit::Interaction;

/// The interaction `method` on `path` (under `/fhir`) asked for, and the
/// resource it named (`Type/id`), if any.
pub fn interaction_of(method: &Method, path: &str) -> (Interaction, Option<String>) {
    let rest = path.strip_prefix("/fhir").unwrap_or(path);
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| s.starts_with('$')) {
        let target = match segments.as_slice() {
            [t, id, op, ..] if !id.starts_with('$') && op.starts_with('$') => {
                Some(format!("{t}/{id}"))
            }
            _ => None,
        };
        return (Interaction::Operation, target);
    }
    let get = *method == Method::GET || *method == Method::HEAD;
    match segments.as_slice() {
        [] if *method == Method::POST => (Interaction::Transaction, None),
        [] => (Interaction::SearchSystem, None),
        ["metadata"] => (Interaction::Capabilities, None),
        ["_history"] => (Interaction::HistorySystem, None),
        ["_search"] => (Interaction::SearchSystem, None),
        [_, "_history"] => (Interaction::HistoryType, None),
        [_, "_search"] => (Interaction::SearchType, None),
        [_] if get => (Interaction::SearchType, None),
        [_] if *method == Method::POST => (Interaction::Create, None),
        [_] if *method == Method::DELETE => (Interaction::Delete, None),
        [_] => (Interaction::Update, None),
        [t, id, "_history"] => (Interaction::HistoryInstance, Some(format!("{t}/{id}"))),
        [t, id, "_history", v, ..] => (Interaction::Vread, Some(format!("{t}/{id}/_history/{v}"))),
        [t, id, ..] => {
            let interaction = match *method {
                Method::PUT => Interaction::Update,
                Method::PATCH => Interaction::Patch,
                Method::DELETE => Interaction::Delete,
                _ => Interaction::Read,
            };
            (interaction, Some(format!("{t}/{id}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_their_interaction_and_resource() {
        let cases = [
            (
                Method::GET,
                "/fhir/Patient/p1",
                Interaction::Read,
                Some("Patient/p1"),
            ),
            (
                Method::GET,
                "/fhir/Patient/p1/_history/2",
                Interaction::Vread,
                Some("Patient/p1/_history/2"),
            ),
            (
                Method::GET,
                "/fhir/Patient/p1/_history",
                Interaction::HistoryInstance,
                Some("Patient/p1"),
            ),
            (
                Method::GET,
                "/fhir/Patient/_history",
                Interaction::HistoryType,
                None,
            ),
            (
                Method::GET,
                "/fhir/_history",
                Interaction::HistorySystem,
                None,
            ),
            (
                Method::GET,
                "/fhir/DocumentReference",
                Interaction::SearchType,
                None,
            ),
            (
                Method::POST,
                "/fhir/DocumentReference/_search",
                Interaction::SearchType,
                None,
            ),
            (
                Method::POST,
                "/fhir/DocumentReference",
                Interaction::Create,
                None,
            ),
            (
                Method::PUT,
                "/fhir/DocumentReference/d1",
                Interaction::Update,
                Some("DocumentReference/d1"),
            ),
            (
                Method::PUT,
                "/fhir/DocumentReference",
                Interaction::Update,
                None,
            ),
            (
                Method::DELETE,
                "/fhir/DocumentReference/d1",
                Interaction::Delete,
                Some("DocumentReference/d1"),
            ),
            (Method::POST, "/fhir", Interaction::Transaction, None),
            (
                Method::POST,
                "/fhir/Patient/p1/$emergency-access",
                Interaction::Operation,
                Some("Patient/p1"),
            ),
            (
                Method::GET,
                "/fhir/DocumentReference/d1/$access",
                Interaction::Operation,
                Some("DocumentReference/d1"),
            ),
        ];
        for (method, path, interaction, target) in cases {
            assert_eq!(
                interaction_of(&method, path),
                (interaction, target.map(str::to_string)),
                "{method} {path}"
            );
        }
    }
}
