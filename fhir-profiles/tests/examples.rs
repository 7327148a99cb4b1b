//! Every official R4 example of a hosted type parses strictly, survives JSON → XML → JSON
//! unchanged (decimals, extensions, narrative, contained), and validates without errors.

mod common;

use fhir_profiles::format::{parse_resource, to_json_bytes, to_xml_string, FhirFormat};
use fhir_profiles::outcome::{has_errors, Severity};
use fhir_profiles::validate::validate_resource;

#[test]
fn official_examples_round_trip_and_validate() {
    let examples = common::hosted_examples();
    assert!(
        examples.len() >= 75,
        "only {} examples found",
        examples.len()
    );
    let mut failures = Vec::new();
    for (name, bytes) in &examples {
        if let Err(why) = check(bytes) {
            failures.push(format!("{name}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn check(bytes: &[u8]) -> Result<(), String> {
    let original = common::json(bytes);
    let parsed = parse_resource(bytes, FhirFormat::Json)
        .map_err(|e| format!("JSON parse: {:?}", e.issues))?;
    if parsed != original {
        return Err(format!(
            "canonical JSON differs from the original:\n{}",
            diff(&original, &parsed)
        ));
    }
    let reparsed = parse_resource(&to_json_bytes(&parsed, true), FhirFormat::Json)
        .map_err(|e| format!("JSON re-parse: {:?}", e.issues))?;
    if reparsed != original {
        return Err("JSON bytes round trip differs".into());
    }
    for pretty in [true, false] {
        let xml = to_xml_string(&parsed, pretty).map_err(|e| format!("to XML: {e}"))?;
        let back = parse_resource(xml.as_bytes(), FhirFormat::Xml)
            .map_err(|e| format!("XML parse (pretty={pretty}): {:?}\n{xml}", e.issues))?;
        if back != original {
            return Err(format!(
                "XML round trip (pretty={pretty}) differs:\n{}",
                diff(&original, &back)
            ));
        }
    }
    let issues = validate_resource(&parsed);
    if has_errors(&issues) {
        let errors: Vec<_> = issues
            .iter()
            .filter(|i| i.severity == Severity::Error)
            .collect();
        return Err(format!("validation errors: {errors:?}"));
    }
    Ok(())
}

/// First differing paths, to make failures readable.
fn diff(a: &serde_json::Value, b: &serde_json::Value) -> String {
    let mut out = Vec::new();
    walk("", a, b, &mut out);
    out.truncate(10);
    out.join("\n")
}

fn walk(at: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value::*;
    match (a, b) {
        (Object(x), Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => walk(&format!("{at}.{k}"), v, w, out),
                    None => out.push(format!("{at}.{k}: missing")),
                }
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                out.push(format!("{at}.{k}: added"));
            }
        }
        (Array(x), Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                walk(&format!("{at}[{i}]"), v, w, out);
            }
        }
        _ if a != b => out.push(format!("{at}: {a} != {b}")),
        _ => {}
    }
}
