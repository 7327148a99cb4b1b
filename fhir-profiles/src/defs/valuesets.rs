//! Expansions of the value sets that the hosted types bind `required`, and the list of those
//! that could not be expanded (their bindings are not checked).

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

const VALUESETS_JSON: &str = include_str!("../../data/valuesets.json");

#[derive(Debug, Deserialize)]
struct Code {
    system: Option<String>,
    code: String,
}

#[derive(Debug, Deserialize)]
struct Expansion {
    codes: Vec<Code>,
}

#[derive(Debug, Default, Deserialize)]
struct Tables {
    expansions: HashMap<String, Expansion>,
    /// Read by tests only: at run time a value set missing from `expansions` is skipped.
    #[cfg(test)]
    #[serde(default)]
    unavailable: HashMap<String, String>,
}

static TABLES: LazyLock<Tables> =
    LazyLock::new(|| serde_json::from_str(VALUESETS_JSON).unwrap_or_default());

/// Whether a code is in a value set, as far as this crate can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Membership {
    Member,
    NotMember,
    /// The value set is not available here; the binding is not checked.
    Unknown,
}

/// Looks `code` (optionally qualified by `system`) up in the value set `url`.
pub(crate) fn check(url: &str, system: Option<&str>, code: &str) -> Membership {
    let url = url.split('|').next().unwrap_or(url);
    let Some(expansion) = TABLES.expansions.get(url) else {
        return Membership::Unknown;
    };
    let found = expansion.codes.iter().any(|c| {
        c.code == code
            && match (system, c.system.as_deref()) {
                (Some(given), Some(known)) => given == known,
                _ => true,
            }
    });
    if found {
        Membership::Member
    } else {
        Membership::NotMember
    }
}

/// The code systems a value set draws on, to tell a foreign coding from a wrong one.
pub(crate) fn systems(url: &str) -> Vec<&'static str> {
    let url = url.split('|').next().unwrap_or(url);
    let mut out: Vec<&str> = TABLES
        .expansions
        .get(url)
        .into_iter()
        .flat_map(|e| e.codes.iter().filter_map(|c| c.system.as_deref()))
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
pub(crate) fn unavailable() -> Vec<&'static str> {
    TABLES.unavailable.keys().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansions_answer_membership() {
        let vs = "http://hl7.org/fhir/ValueSet/document-reference-status|4.0.1";
        assert_eq!(check(vs, None, "current"), Membership::Member);
        assert_eq!(check(vs, None, "final"), Membership::NotMember);
        assert_eq!(
            check(
                vs,
                Some("http://hl7.org/fhir/document-reference-status"),
                "superseded"
            ),
            Membership::Member
        );
        assert_eq!(
            check(vs, Some("http://other"), "current"),
            Membership::NotMember
        );
        let gender = "http://hl7.org/fhir/ValueSet/administrative-gender";
        assert_eq!(check(gender, None, "female"), Membership::Member);
        assert_eq!(check(gender, None, "F"), Membership::NotMember);
        assert_eq!(
            check("http://hl7.org/fhir/ValueSet/mimetypes", None, "text/plain"),
            Membership::Unknown
        );
        assert!(unavailable().contains(&"http://hl7.org/fhir/ValueSet/mimetypes"));
        assert_eq!(
            systems(vs),
            vec!["http://hl7.org/fhir/document-reference-status"]
        );
    }
}
