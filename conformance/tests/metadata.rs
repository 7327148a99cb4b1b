//! The CapabilityStatement at `/fhir/metadata`.

use conformance::*;
use serde_json::Value;

fn capability() -> Value {
    let resp = get("metadata").send();
    resp.assert_status(200);
    resp.resource("CapabilityStatement")
}

fn interactions(resource: &Value) -> Vec<String> {
    resource["interaction"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["code"].as_str().map(str::to_string))
        .collect()
}

fn server_resources(cs: &Value) -> Vec<Value> {
    let rest = cs["rest"].as_array().cloned().unwrap_or_default();
    let server = rest
        .iter()
        .find(|r| r["mode"] == "server")
        .unwrap_or_else(|| panic!("no rest entry with mode server: {cs}"));
    server["resource"].as_array().cloned().unwrap_or_default()
}

#[test]
fn metadata_is_an_r4_capability_statement() {
    let cs = capability();
    assert_eq!(cs["fhirVersion"], "4.0.1");
    assert_eq!(cs["kind"], "instance");
    assert!(cs["status"].is_string(), "status is required: {cs}");
    assert!(cs["date"].is_string(), "date is required: {cs}");
    let formats: Vec<String> = cs["format"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_ascii_lowercase))
        .collect();
    assert!(
        formats
            .iter()
            .any(|f| f == "json" || f == "application/fhir+json"),
        "{formats:?}"
    );
    assert!(
        formats
            .iter()
            .any(|f| f == "xml" || f == "application/fhir+xml"),
        "{formats:?}"
    );
}

#[test]
fn metadata_needs_no_authentication() {
    // The shared client sends no Authorization header.
    let resp = get("metadata").send();
    resp.assert_status(200);
    assert!(resp.header("www-authenticate").is_none());
}

#[test]
fn metadata_lists_the_hosted_types_and_their_interactions() {
    let cs = capability();
    let resources = server_resources(&cs);
    let types: Vec<&str> = resources
        .iter()
        .filter_map(|r| r["type"].as_str())
        .collect();
    for &t in HOSTED_TYPES {
        assert!(
            types.contains(&t),
            "{t} is hosted but not listed: {types:?}"
        );
    }
    assert!(
        !types.contains(&"Observation"),
        "Observation is not hosted: {types:?}"
    );
    for r in &resources {
        let t = r["type"].as_str().unwrap_or_default();
        let got = interactions(r);
        assert!(
            got.iter().any(|i| i == "read"),
            "{t} must list read: {got:?}"
        );
        assert!(
            got.iter().any(|i| i == "vread"),
            "{t} must list vread: {got:?}"
        );
        assert!(
            got.iter().any(|i| i == "history-instance"),
            "{t} must list history-instance: {got:?}"
        );
        if t == "AuditEvent" {
            // Append-only: backend clients may add events, nobody changes one.
            assert!(got.iter().any(|i| i == "create"), "{got:?}");
            for write in ["update", "delete", "patch", "history-type"] {
                assert!(
                    !got.iter().any(|i| i == write),
                    "AuditEvent is append-only but lists {write}"
                );
            }
        } else {
            for write in ["create", "update", "delete"] {
                assert!(
                    got.iter().any(|i| i == write),
                    "{t} must list {write}: {got:?}"
                );
            }
            assert!(
                !got.iter().any(|i| i == "patch"),
                "{t}: PATCH is not supported but listed"
            );
        }
    }
}

#[test]
fn metadata_in_xml() {
    let resp = get("metadata?_format=xml").send();
    resp.assert_status(200);
    assert_eq!(resp.media_type(), FHIR_XML);
    let text = resp.text();
    assert!(
        text.contains("<CapabilityStatement xmlns=\"http://hl7.org/fhir\""),
        "{text}"
    );
    assert!(text.contains("<fhirVersion value=\"4.0.1\"/>"), "{text}");
    assert!(
        text.contains("<type value=\"DocumentReference\"/>"),
        "{text}"
    );
    let by_accept = get("metadata").accept("application/fhir+xml").send();
    by_accept.assert_status(200);
    assert_eq!(by_accept.media_type(), FHIR_XML);
}

#[test]
fn metadata_pretty() {
    let pretty = get("metadata?_pretty=true").send();
    pretty.assert_status(200);
    assert!(pretty.text().contains("\n  "), "pretty output is indented");
    assert_eq!(pretty.json(), capability());
}
