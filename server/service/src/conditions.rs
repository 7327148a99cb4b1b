//! The criteria of conditional interactions (`If-None-Exist`, conditional
//! update and delete, conditional references in Bundles): `_id` and
//! `identifier`, refused otherwise rather than silently matching too much.
//!
//! They are matched in the database by the search engine, under the
//! caller's read access ([`crate::reads::Matching`]), and among a
//! transaction Bundle's own entries by `bundle::matching`, which needs them
//! as values; lock keys serialise conditional writes on the same criteria.

use fhir_profiles::search::parse_search;
use fhir_profiles::search::query::Criterion;

use crate::error::ServiceError;
use crate::query::form_pairs;

/// One condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Id(String),
    /// `system|value`; `None` system matches any system.
    Identifier {
        system: Option<String>,
        value: String,
    },
}

/// The conditions of a conditional interaction, with the search criteria
/// they mean.
#[derive(Debug, Clone, PartialEq)]
pub struct Conditions {
    pub conditions: Vec<Condition>,
    /// What the search parser makes of the same parameters.
    pub(crate) criteria: Vec<Criterion>,
}

impl Conditions {
    /// Lock keys, sorted so that concurrent conditional writes take their
    /// advisory locks in the same order (no deadlocks). Identifiers are
    /// keyed by value alone, so `|v` and `s|v` serialise against each other.
    pub fn lock_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .conditions
            .iter()
            .map(|c| match c {
                Condition::Id(id) => format!("_id={id}"),
                Condition::Identifier { value, .. } => format!("identifier={value}"),
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// Parses the criteria of a conditional interaction on `resource_type` (a
/// query string, undecoded): `_id` and `identifier` (`value`,
/// `system|value` or `|value`); 400 for anything else.
pub fn parse_conditions(resource_type: &str, query: &str) -> Result<Conditions, ServiceError> {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    for (name, value) in form_pairs(query) {
        if matches!(name.as_str(), "_format" | "_pretty") {
            continue;
        }
        if value.contains('\0') {
            return Err(ServiceError::bad_request(format!(
                "parameter '{name}' contains a NUL character"
            )));
        }
        match name.as_str() {
            "_id" => conditions.push(Condition::Id(value.clone())),
            "identifier" => {
                if value.contains(',') {
                    return Err(ServiceError::bad_request(
                        "conditional interactions take one identifier per parameter (no comma lists)",
                    ));
                }
                let (system, code) = match value.split_once('|') {
                    Some((system, code)) => (Some(system.to_string()), code.to_string()),
                    None => (None, value.clone()),
                };
                if code.is_empty() {
                    return Err(ServiceError::bad_request("identifier needs a value"));
                }
                conditions.push(Condition::Identifier {
                    system,
                    value: code,
                });
            }
            other => {
                return Err(ServiceError::bad_request(format!(
                    "parameter '{other}' is not supported in conditional interactions; use _id or identifier"
                )))
            }
        }
        params.push((name, value));
    }
    if conditions.is_empty() {
        return Err(ServiceError::bad_request(
            "a conditional interaction needs criteria (_id or identifier)",
        ));
    }
    let criteria = parse_search(resource_type, &params, "", false)
        .map_err(|issues| ServiceError::with_issues(crate::Status::BAD_REQUEST, issues))?
        .criteria;
    Ok(Conditions {
        conditions,
        criteria,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_id_and_identifier_are_conditions() {
        let c = parse_conditions("Patient", "identifier=urn:s%7C42&_id=p1").expect("parses");
        assert_eq!(
            c.conditions,
            vec![
                Condition::Identifier {
                    system: Some("urn:s".into()),
                    value: "42".into()
                },
                Condition::Id("p1".into())
            ]
        );
        assert_eq!(c.criteria.len(), 2);
        assert_eq!(c.lock_keys(), vec!["_id=p1", "identifier=42"]);
        for bad in [
            "name=x",
            "",
            "identifier=a,b",
            "identifier=s%7C",
            "_format=json",
        ] {
            assert_eq!(
                parse_conditions("Patient", bad).map_err(|e| e.status),
                Err(crate::Status::BAD_REQUEST),
                "{bad}"
            );
        }
    }
}
