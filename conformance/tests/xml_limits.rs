//! XML bodies built to hit quick-xml 0.25's known faults — one start tag with
//! very many attributes (RUSTSEC-2026-0194), very many namespace
//! declarations (RUSTSEC-2026-0195) — and very deep nesting are refused with
//! 400 and an OperationOutcome before the parser sees them, whether they come
//! as a resource, inside a transaction Bundle, or as narrative in JSON; and
//! the server goes on serving.

use conformance::*;
use serde_json::{json, Value};

const HOSTILE: usize = 100_000;

fn attributes(n: usize) -> String {
    (0..n).map(|i| format!(" a{i}=\"\"")).collect()
}

/// A Patient (with an identifier of its own) whose `<active>` carries `extra`.
fn patient_xml_with(extra: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <identifier><system value="{ID_SYSTEM}"/><value value="{}"/></identifier>
  <active value="true"{extra}/>
</Patient>"#,
        uid()
    )
}

/// 400 with an OperationOutcome whose issue is `code` and says `why`.
#[track_caller]
fn assert_refused(resp: &Response, code: &str, why: &str) {
    let outcome = resp.assert_outcome(400);
    let issues = outcome["issue"].as_array().cloned().unwrap_or_default();
    if !issues
        .iter()
        .any(|i| i["code"] == code && i["diagnostics"].as_str().is_some_and(|d| d.contains(why)))
    {
        resp.fail(&format!("expected an issue '{code}' saying '{why}'"));
    }
}

fn post_xml(path: &str, body: String) -> Response {
    post(path)
        .content_type(FHIR_XML)
        .accept(FHIR_JSON)
        .bytes(body)
        .send()
}

#[test]
fn a_start_tag_with_a_hundred_thousand_attributes_is_refused() {
    let resp = post_xml("Patient", patient_xml_with(&attributes(HOSTILE)));
    assert_refused(&resp, "too-costly", "more than 64 attributes");

    let id = new_patient();
    let resp = put(&format!("Patient/{id}"))
        .content_type(FHIR_XML)
        .accept(FHIR_JSON)
        .bytes(patient_xml_with(&attributes(HOSTILE)).replace(
            "<Patient xmlns=\"http://hl7.org/fhir\">",
            &format!("<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"{id}\"/>"),
        ))
        .send();
    assert_refused(&resp, "too-costly", "more than 64 attributes");
}

#[test]
fn a_hundred_thousand_namespace_declarations_are_refused() {
    let on_one_tag: String = (0..HOSTILE)
        .map(|i| format!(" xmlns:p{i}=\"urn:x\""))
        .collect();
    let resp = post_xml("Patient", patient_xml_with(&on_one_tag));
    assert_refused(&resp, "too-costly", "declares more than 16 XML namespaces");

    let nested: String = (0..HOSTILE / 10)
        .map(|i| {
            let ten: String = (0..10)
                .map(|j| format!(" xmlns:p{j}=\"urn:{i}\""))
                .collect();
            format!("<extension{ten}>")
        })
        .collect();
    let resp = post_xml(
        "Patient",
        format!(r#"<Patient xmlns="http://hl7.org/fhir">{nested}"#),
    );
    assert_refused(&resp, "too-costly", "in scope at once");
}

#[test]
fn a_hundred_thousand_nested_elements_are_refused() {
    let body = format!(
        r#"<Patient xmlns="http://hl7.org/fhir">{}{}</Patient>"#,
        "<extension>".repeat(HOSTILE),
        "</extension>".repeat(HOSTILE)
    );
    let resp = post_xml("Patient", body);
    assert_refused(&resp, "too-costly", "nested more than 128 levels deep");
}

#[test]
fn a_transaction_bundle_hiding_a_hostile_resource_is_refused() {
    let patient = patient_xml_with(&attributes(HOSTILE));
    let patient = patient.trim_start_matches(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let body = format!(
        r#"<Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/><entry><fullUrl value="urn:uuid:{}"/><resource>{patient}</resource><request><method value="POST"/><url value="Patient"/></request></entry></Bundle>"#,
        uuid::Uuid::new_v4()
    );
    let resp = post_xml(&base(), body);
    assert_refused(&resp, "too-costly", "more than 64 attributes");
}

#[test]
fn hostile_narrative_in_a_json_body_is_refused() {
    let div = format!(
        r#"<div xmlns="http://www.w3.org/1999/xhtml"><p{}>x</p></div>"#,
        attributes(HOSTILE)
    );
    let mut body: Value = patient(&uid());
    body["text"] = json!({"status": "generated", "div": div});
    let resp = post("Patient").json(&body).send();
    assert_refused(&resp, "value", "more than 64 attributes");
}

#[test]
fn the_server_goes_on_serving_ordinary_xml() {
    post_xml("Patient", patient_xml_with("")).assert_status(201);
    // A narrative and attributes right at the limit are fine.
    let div = format!(
        r#"<div xmlns="http://www.w3.org/1999/xhtml"><p{}>x</p></div>"#,
        attributes(63)
    );
    let mut body: Value = patient(&uid());
    body["text"] = json!({"status": "generated", "div": div});
    post("Patient").json(&body).send().assert_status(201);
}
