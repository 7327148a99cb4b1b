//! Every official R4 example of a hosted type survives the server: stored
//! with its own id as JSON, read back equal (apart from the server-owned
//! meta), read as XML, stored again from that XML, and read back equal again.

use conformance::examples::{hosted_examples, Example};
use conformance::*;
use serde_json::Value;

/// What must survive: everything but meta.versionId/lastUpdated. A Binary's
/// base64 may legitimately come back without the whitespace the file has.
fn normalised(resource: &Value) -> Value {
    let mut r = without_server_meta(resource);
    if r["resourceType"] == "Binary" {
        if let Some(data) = r["data"].as_str() {
            let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
            r["data"] = Value::String(compact);
        }
    }
    r
}

fn diff(expected: &Value, got: &Value, path: &str, out: &mut Vec<String>) {
    match (expected, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) => diff(v, w, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k} is missing")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{k} was added: {}", b[k]));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                diff(v, w, &format!("{path}[{i}]"), out);
            }
        }
        _ if expected != got => {
            let show = |v: &Value| {
                let s = v.to_string();
                if s.len() > 200 {
                    format!(
                        "{}...",
                        &s[..s.char_indices().nth(200).map(|(i, _)| i).unwrap_or(s.len())]
                    )
                } else {
                    s
                }
            };
            out.push(format!(
                "{path}: expected {} got {}",
                show(expected),
                show(got)
            ));
        }
        _ => {}
    }
}

fn compare(stage: &str, expected: &Value, got: &Value) -> Result<(), String> {
    let (e, g) = (normalised(expected), normalised(got));
    if e == g {
        return Ok(());
    }
    let mut out = Vec::new();
    diff(&e, &g, "", &mut out);
    Err(format!("{stage}: the resource changed: {}", out.join("; ")))
}

fn expect_status(stage: &str, resp: &Response, ok: &[u16]) -> Result<(), String> {
    if ok.contains(&resp.status) {
        Ok(())
    } else {
        let described = resp.describe();
        let cut: String = described.chars().take(1500).collect();
        Err(format!(
            "{stage}: expected {ok:?}, got {}\n{cut}",
            resp.status
        ))
    }
}

fn json_of(stage: &str, resp: &Response) -> Result<Value, String> {
    serde_json::from_slice(&resp.body).map_err(|e| format!("{stage}: the body is not JSON: {e}"))
}

/// Every relative `Patient/…`, `Practitioner/…`, `PractitionerRole/…` and
/// `Organization/…` reference in a resource.
fn references_of(value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("reference") {
                if let Some((t, id)) = r.split_once('/') {
                    let hosted = [
                        "Patient",
                        "Practitioner",
                        "PractitionerRole",
                        "Organization",
                    ];
                    if hosted.contains(&t) && !id.contains('/') {
                        out.push((t.to_string(), id.to_string()));
                    }
                }
            }
            map.values().for_each(|v| references_of(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| references_of(v, out)),
        _ => {}
    }
}

/// The server refuses documents and Consents whose patient, authors or
/// actors do not exist (they decide who reads what), so the resources an
/// example names are created first, as a real EHR's would be, unless they
/// already exist.
fn referenced_first(ex: &Example) -> Result<(), String> {
    let mut references = Vec::new();
    references_of(&ex.resource, &mut references);
    for (t, id) in references {
        let path = format!("{t}/{id}");
        if get(&path).try_send()?.status == 200 {
            continue;
        }
        let stub = serde_json::json!({
            "resourceType": t, "id": id,
            "text": { "status": "generated",
                      "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">named by an example</div>" }
        });
        let mut stub = stub;
        if t == "Organization" {
            stub["name"] = Value::String(format!("Organization {id}"));
        }
        let resp = put(&path).json(&stub).try_send()?;
        expect_status(
            &format!("PUT {path} (named by the example)"),
            &resp,
            &[200, 201],
        )?;
    }
    Ok(())
}

fn round_trip(ex: &Example) -> Result<(), String> {
    referenced_first(ex)?;
    let path = format!("{}/{}", ex.resource_type, ex.id);
    let put_json = put(&path).json(&ex.resource).try_send()?;
    expect_status("PUT JSON", &put_json, &[200, 201])?;

    let read = get(&path).accept(FHIR_JSON).try_send()?;
    expect_status("GET JSON", &read, &[200])?;
    compare(
        "GET JSON after PUT JSON",
        &ex.resource,
        &json_of("GET JSON", &read)?,
    )?;

    let xml = get(&format!("{path}?_format=xml")).try_send()?;
    expect_status("GET XML", &xml, &[200])?;
    if xml.media_type() != FHIR_XML {
        return Err(format!("GET XML: Content-Type is {:?}", xml.media_type()));
    }
    let put_xml = put(&path).xml(xml.text()).try_send()?;
    expect_status("PUT the XML back", &put_xml, &[200])?;

    let again = get(&path).accept(FHIR_JSON).try_send()?;
    expect_status("GET JSON after PUT XML", &again, &[200])?;
    compare(
        "GET JSON after the XML round trip",
        &ex.resource,
        &json_of("GET JSON", &again)?,
    )
}

fn read_only(ex: &Example) -> Result<(), String> {
    let path = format!("{}/{}", ex.resource_type, ex.id);
    let resp = put(&path).json(&ex.resource).try_send()?;
    expect_status("PUT of a server-written type", &resp, &[405])?;
    let resp = get(&path).try_send()?;
    expect_status("GET after the refused PUT", &resp, &[404])
}

fn check_type(resource_type: &str) {
    let examples: Vec<Example> = hosted_examples()
        .into_iter()
        .filter(|e| e.resource_type == resource_type)
        .collect();
    assert!(
        !examples.is_empty(),
        "no official {resource_type} examples found"
    );
    let mut failures = Vec::new();
    for ex in &examples {
        let result = if resource_type == "AuditEvent" {
            read_only(ex)
        } else {
            round_trip(ex)
        };
        if let Err(e) = result {
            failures.push(format!("== {}\n{e}", ex.file));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} official {resource_type} examples failed:\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n")
    );
}

#[test]
fn all_hosted_examples_are_found() {
    let all = hosted_examples();
    assert!(
        all.len() >= 70,
        "expected the ~77 official examples of hosted types, found {}",
        all.len()
    );
}

#[test]
fn official_patient_examples() {
    check_type("Patient");
}

#[test]
fn official_practitioner_examples() {
    check_type("Practitioner");
}

#[test]
fn official_practitioner_role_examples() {
    check_type("PractitionerRole");
}

#[test]
fn official_organization_examples() {
    check_type("Organization");
}

#[test]
fn official_consent_examples() {
    check_type("Consent");
}

#[test]
fn official_document_reference_examples() {
    check_type("DocumentReference");
}

#[test]
fn official_binary_examples() {
    check_type("Binary");
}

#[test]
fn official_audit_event_examples_cannot_be_written() {
    check_type("AuditEvent");
}
