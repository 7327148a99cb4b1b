//! Codes of required bindings: the snapshot's value sets for the hosted types' own elements,
//! the schema's enumerations inside data types.

use serde_json::Value;

use crate::defs::valuesets::{self, Membership};
use crate::outcome::{Issue, IssueType};

/// Checks a `code`, Coding or CodeableConcept against the value set `vs`.
pub(super) fn check_value_set(vs: &str, value: &Value, at: &str) -> Option<Issue> {
    let name = vs.rsplit('/').next().unwrap_or(vs);
    match value {
        Value::String(code) => {
            (valuesets::check(vs, None, code) == Membership::NotMember).then(|| {
                Issue::error(
                    IssueType::CodeInvalid,
                    format!("'{code}' is not a code of the required value set {name}"),
                )
                .at(at)
            })
        }
        Value::Object(obj) => {
            let codings: Vec<&Value> = match obj.get("coding") {
                Some(Value::Array(codings)) => codings.iter().collect(),
                Some(_) => return None,
                None => vec![value],
            };
            let verdicts: Vec<Membership> = codings
                .iter()
                .filter_map(|c| {
                    let code = c.get("code")?.as_str()?;
                    let system = c.get("system").and_then(Value::as_str);
                    Some(valuesets::check(vs, system, code))
                })
                .collect();
            let rejected =
                !verdicts.is_empty() && verdicts.iter().all(|m| *m == Membership::NotMember);
            rejected.then(|| {
                Issue::error(
                    IssueType::CodeInvalid,
                    format!(
                        "no coding is from the required value set {name} (systems: {})",
                        valuesets::systems(vs).join(", ")
                    ),
                )
                .at(at)
            })
        }
        _ => None,
    }
}

/// Checks a code against the schema's enumeration of a data type element.
pub(super) fn check_enumeration(codes: &[String], value: &Value, at: &str) -> Option<Issue> {
    let code = value.as_str()?;
    (!codes.iter().any(|c| c == code)).then(|| {
        Issue::error(
            IssueType::CodeInvalid,
            format!("'{code}' is not one of {}", codes.join(", ")),
        )
        .at(at)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const STATUS: &str = "http://hl7.org/fhir/ValueSet/document-reference-status|4.0.1";

    #[test]
    fn checks_codes_codings_and_concepts() {
        assert!(check_value_set(STATUS, &json!("current"), "x").is_none());
        assert!(check_value_set(STATUS, &json!("done"), "x").is_some());
        let coding =
            json!({"system": "http://hl7.org/fhir/document-reference-status", "code": "current"});
        assert!(check_value_set(STATUS, &coding, "x").is_none());
        let wrong = json!({"coding": [{"system": "http://other", "code": "current"}]});
        assert!(check_value_set(STATUS, &wrong, "x").is_some());
        let text_only = json!({"text": "current"});
        assert!(check_value_set(STATUS, &text_only, "x").is_none());
        let unknown_vs = "http://hl7.org/fhir/ValueSet/mimetypes";
        assert!(check_value_set(unknown_vs, &json!("whatever"), "x").is_none());
    }

    #[test]
    fn checks_enumerations() {
        let codes = vec!["usual".to_string(), "official".to_string()];
        assert!(check_enumeration(&codes, &json!("usual"), "x").is_none());
        assert!(check_enumeration(&codes, &json!("nope"), "x").is_some());
    }
}
