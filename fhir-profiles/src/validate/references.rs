//! Which resource type a Reference points to, and whether the element allows it.

use serde_json::Value;

use crate::ids::is_valid_id;
use crate::outcome::{Issue, IssueType};
use crate::path;
use crate::resource_types::is_r4_resource_type;

/// The resource a reference is inside of, for resolving `#id` references.
pub(super) struct Container {
    pub resource_type: String,
    /// (id, resourceType) of each contained resource.
    pub contained: Vec<(String, String)>,
}

/// What a `reference` string says about its target.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Typed(String),
    /// urn:uuid:, urn:oid:, URLs that do not end in Type/id: the type cannot be known.
    Untyped,
    Invalid(String),
}

/// Checks one Reference value against the allowed target types (`None`: any type).
pub(super) fn check(
    value: &Value,
    allowed: Option<&[&str]>,
    container: &Container,
    at: &str,
) -> Vec<Issue> {
    let Some(obj) = value.as_object() else {
        return Vec::new(); // shape problems are the structural check's
    };
    let mut issues = Vec::new();
    let mut types = Vec::new();
    if let Some(reference) = obj.get("reference").and_then(Value::as_str) {
        match target(reference, container) {
            Target::Typed(t) => types.push(t),
            Target::Untyped => {}
            Target::Invalid(why) => {
                issues.push(Issue::error(IssueType::Value, why).at(path::child(at, "reference")))
            }
        }
    }
    if let Some(declared) = obj.get("type").and_then(Value::as_str) {
        let t = declared.rsplit('/').next().unwrap_or(declared);
        if is_r4_resource_type(t) {
            types.push(t.to_string());
        } else if !declared.contains('/') {
            issues.push(
                Issue::error(
                    IssueType::Value,
                    format!("'{declared}' is not a resource type"),
                )
                .at(path::child(at, "type")),
            );
        }
    }
    if let Some(allowed) = allowed {
        for t in types {
            if !allowed.contains(&t.as_str()) {
                issues.push(
                    Issue::error(
                        IssueType::Value,
                        format!(
                            "{at} may not refer to a {t}; allowed: {}",
                            allowed.join(", ")
                        ),
                    )
                    .at(at),
                );
            }
        }
    }
    issues
}

fn target(reference: &str, container: &Container) -> Target {
    if let Some(id) = reference.strip_prefix('#') {
        if id.is_empty() {
            return Target::Typed(container.resource_type.clone());
        }
        return match container.contained.iter().find(|(cid, _)| cid == id) {
            Some((_, t)) => Target::Typed(t.clone()),
            None => Target::Invalid(format!(
                "'{reference}' refers to no contained resource (ref-1)"
            )),
        };
    }
    if reference.starts_with("urn:") {
        return Target::Untyped;
    }
    let without_query = reference.split(['?', '#']).next().unwrap_or(reference);
    if reference.contains("://") {
        let segments: Vec<&str> = without_query.split('/').filter(|s| !s.is_empty()).collect();
        return typed_tail(&segments).map_or(Target::Untyped, Target::Typed);
    }
    if let Some((t, _)) = reference.split_once('?') {
        // A conditional reference (`Patient?identifier=...`), resolved in transactions.
        return if is_r4_resource_type(t) {
            Target::Typed(t.to_string())
        } else {
            Target::Invalid(format!(
                "'{reference}' is not a valid conditional reference"
            ))
        };
    }
    let segments: Vec<&str> = reference.split('/').collect();
    match typed_tail(&segments) {
        Some(t) if segments.len() == 2 || segments.len() == 4 => Target::Typed(t),
        _ => Target::Invalid(format!(
            "'{reference}' is not a valid reference: expected Type/id, Type/id/_history/version, an absolute URL, a URN or #id"
        )),
    }
}

/// The type of a path ending in `Type/id` or `Type/id/_history/version`.
fn typed_tail(segments: &[&str]) -> Option<String> {
    let tail = match segments {
        [.., t, id, "_history", v] if is_valid_id(v) => (t, id),
        [.., t, id] => (t, id),
        _ => return None,
    };
    (is_r4_resource_type(tail.0) && is_valid_id(tail.1)).then(|| tail.0.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container() -> Container {
        Container {
            resource_type: "DocumentReference".into(),
            contained: vec![("p1".into(), "Patient".into())],
        }
    }

    #[test]
    fn reads_target_types() {
        let c = container();
        let typed = |t: &str| Target::Typed(t.to_string());
        assert_eq!(target("Patient/1", &c), typed("Patient"));
        assert_eq!(target("Patient/1/_history/2", &c), typed("Patient"));
        assert_eq!(
            target("https://x.org/fhir/Practitioner/a.b", &c),
            typed("Practitioner")
        );
        assert_eq!(
            target("https://x.org/fhir/Practitioner/a/_history/3", &c),
            typed("Practitioner")
        );
        assert_eq!(target("#p1", &c), typed("Patient"));
        assert_eq!(target("#", &c), typed("DocumentReference"));
        assert_eq!(target("Patient?identifier=x|1", &c), typed("Patient"));
        assert_eq!(
            target("urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0", &c),
            Target::Untyped
        );
        assert_eq!(target("http://x.org/documents/123", &c), Target::Untyped);
        for bad in [
            "#nope",
            "Foo/1",
            "Patient",
            "Patient/",
            "Patient/a b",
            "a/b/c",
            "Nope?x=1",
        ] {
            assert!(matches!(target(bad, &c), Target::Invalid(_)), "{bad}");
        }
    }

    #[test]
    fn checks_allowed_types() {
        let c = container();
        let v = serde_json::json!({"reference": "Practitioner/1"});
        assert_eq!(check(&v, Some(&["Patient"]), &c, "X.subject").len(), 1);
        assert!(check(&v, None, &c, "X.subject").is_empty());
        let display_only = serde_json::json!({"display": "Dr. X"});
        assert!(check(&display_only, Some(&["Patient"]), &c, "X.subject").is_empty());
        let typed = serde_json::json!({"type": "Device", "identifier": {"value": "1"}});
        assert_eq!(check(&typed, Some(&["Patient"]), &c, "X.subject").len(), 1);
    }
}
