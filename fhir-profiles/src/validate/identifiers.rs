//! Business identifiers, which conditional create/update match on.

use serde_json::Value;

/// Identifiers of a resource for conditional interactions: (system, value) pairs from
/// top-level `identifier` (array or single), and for DocumentReference also
/// `masterIdentifier`. Values without `value` are skipped.
pub fn identifiers(resource: &Value) -> Vec<(Option<String>, String)> {
    let mut found: Vec<&Value> = match resource.get("identifier") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single @ Value::Object(_)) => vec![single],
        _ => Vec::new(),
    };
    if resource.get("resourceType").and_then(Value::as_str) == Some("DocumentReference") {
        found.extend(resource.get("masterIdentifier").filter(|v| v.is_object()));
    }
    found
        .into_iter()
        .filter_map(|id| {
            let value = id.get("value")?.as_str()?.to_string();
            let system = id.get("system").and_then(Value::as_str).map(str::to_string);
            Some((system, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::identifiers;
    use serde_json::json;

    #[test]
    fn collects_identifiers_and_master_identifier() {
        let doc = json!({"resourceType": "DocumentReference",
            "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.3"},
            "identifier": [{"system": "s", "value": "1"}, {"value": "2"}, {"system": "s"}]});
        assert_eq!(
            identifiers(&doc),
            vec![
                (Some("s".into()), "1".into()),
                (None, "2".into()),
                (Some("urn:ietf:rfc:3986".into()), "urn:oid:1.2.3".into())
            ]
        );
    }

    #[test]
    fn single_identifier_and_other_types() {
        let p = json!({"resourceType": "Patient", "identifier": {"system": "s", "value": "v"},
            "masterIdentifier": {"value": "ignored"}});
        assert_eq!(identifiers(&p), vec![(Some("s".into()), "v".into())]);
        assert!(identifiers(&json!("x")).is_empty());
        assert!(identifiers(&json!({"identifier": [1, {"value": 3}]})).is_empty());
    }
}
