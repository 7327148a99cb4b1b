//! What a FHIR request was, from its method and path alone: for the
//! AuditEvent of a request that was refused or failed before the service
//! could say (401, 403, 404, 4xx of any kind, 5xx), over HTTP or as an
//! entry of a batch Bundle.

use crate::event::Interaction;

/// The interaction `method` (`GET`, `POST`, …) on `path` (under `/fhir`,
/// or relative to it as a Bundle entry's `request.url`; a query is
/// ignored) asked for, and the resource it named (`Type/id`), if any.
pub fn interaction_of(method: &str, path: &str) -> (Interaction, Option<String>) {
    let path = path.split('?').next().unwrap_or(path);
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
    let get = method == "GET" || method == "HEAD";
    match segments.as_slice() {
        [] if method == "POST" => (Interaction::Transaction, None),
        [] => (Interaction::SearchSystem, None),
        ["metadata"] => (Interaction::Capabilities, None),
        ["_history"] => (Interaction::HistorySystem, None),
        ["_search"] => (Interaction::SearchSystem, None),
        [_, "_history"] => (Interaction::HistoryType, None),
        [_, "_search"] => (Interaction::SearchType, None),
        [_] if get => (Interaction::SearchType, None),
        [_] if method == "POST" => (Interaction::Create, None),
        [_] if method == "DELETE" => (Interaction::Delete, None),
        [_] => (Interaction::Update, None),
        [t, id, "_history"] => (Interaction::HistoryInstance, Some(format!("{t}/{id}"))),
        [t, id, "_history", v, ..] => (Interaction::Vread, Some(format!("{t}/{id}/_history/{v}"))),
        [t, id, ..] => {
            let interaction = match method {
                "PUT" => Interaction::Update,
                "PATCH" => Interaction::Patch,
                "DELETE" => Interaction::Delete,
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
                "GET",
                "/fhir/Patient/p1",
                Interaction::Read,
                Some("Patient/p1"),
            ),
            (
                "GET",
                "/fhir/Patient/p1/_history/2",
                Interaction::Vread,
                Some("Patient/p1/_history/2"),
            ),
            (
                "GET",
                "/fhir/Patient/p1/_history",
                Interaction::HistoryInstance,
                Some("Patient/p1"),
            ),
            (
                "GET",
                "/fhir/Patient/_history",
                Interaction::HistoryType,
                None,
            ),
            ("GET", "/fhir/_history", Interaction::HistorySystem, None),
            (
                "GET",
                "/fhir/DocumentReference",
                Interaction::SearchType,
                None,
            ),
            (
                "POST",
                "/fhir/DocumentReference/_search",
                Interaction::SearchType,
                None,
            ),
            ("POST", "/fhir/DocumentReference", Interaction::Create, None),
            (
                "PUT",
                "/fhir/DocumentReference/d1",
                Interaction::Update,
                Some("DocumentReference/d1"),
            ),
            ("PUT", "/fhir/DocumentReference", Interaction::Update, None),
            (
                "DELETE",
                "/fhir/DocumentReference/d1",
                Interaction::Delete,
                Some("DocumentReference/d1"),
            ),
            ("POST", "/fhir", Interaction::Transaction, None),
            (
                "POST",
                "/fhir/Patient/p1/$emergency-access",
                Interaction::Operation,
                Some("Patient/p1"),
            ),
            (
                "GET",
                "/fhir/DocumentReference/d1/$access",
                Interaction::Operation,
                Some("DocumentReference/d1"),
            ),
        ];
        let cases = cases.into_iter().chain([
            // A Bundle entry's request.url.
            ("POST", "DocumentReference", Interaction::Create, None),
            (
                "GET",
                "DocumentReference?patient=p1",
                Interaction::SearchType,
                None,
            ),
        ]);
        for (method, path, interaction, target) in cases {
            assert_eq!(
                interaction_of(method, path),
                (interaction, target.map(str::to_string)),
                "{method} {path}"
            );
        }
    }
}
