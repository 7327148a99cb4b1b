//! The pre-check in front of quick-xml 0.25 (`format::xml_guard`): it never refuses a real
//! resource — every official example, written as XML by this crate, passes — and it refuses
//! the bodies built to hit RUSTSEC-2026-0194 (one start tag with very many attributes) and
//! RUSTSEC-2026-0195 (very many namespace declarations), and very deep nesting, whether they
//! come as an XML body or as narrative inside JSON.

mod common;

use fhir_profiles::format::xml_guard::{self, XmlLimitError};
use fhir_profiles::format::{parse_resource, to_xml_string, FhirFormat, ParseError};
use fhir_profiles::outcome::IssueType;

const HOSTILE: usize = 100_000;

#[test]
fn every_official_example_written_as_xml_passes_the_guard() {
    let examples = common::hosted_examples();
    assert!(
        examples.len() >= 75,
        "only {} examples found",
        examples.len()
    );
    let mut failures = Vec::new();
    for (name, bytes) in &examples {
        let Ok(parsed) = parse_resource(bytes, FhirFormat::Json) else {
            failures.push(format!("{name}: does not parse as JSON"));
            continue;
        };
        for pretty in [true, false] {
            match to_xml_string(&parsed, pretty) {
                Ok(xml) => {
                    if let Err(e) = xml_guard::check(xml.as_bytes()) {
                        failures.push(format!("{name} (pretty={pretty}): {e}"));
                    }
                }
                Err(e) => failures.push(format!("{name}: to XML: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A Patient whose `<active>` element carries `extra` (attributes or declarations).
fn patient_with(extra: &str) -> String {
    format!(r#"<Patient xmlns="http://hl7.org/fhir"><active value="true"{extra}/></Patient>"#)
}

/// The body is refused before parsing, as too costly, for `why`.
fn assert_refused(result: Result<serde_json::Value, ParseError>, why: &str) {
    let Err(e) = result else {
        panic!("a hostile body was accepted");
    };
    assert_eq!(e.issues.len(), 1, "{:?}", e.issues);
    assert_eq!(e.issues[0].code, IssueType::TooCostly, "{:?}", e.issues);
    let said = &e.issues[0].diagnostics;
    assert!(
        said.starts_with("the XML body was refused before parsing") && said.contains(why),
        "{said}"
    );
}

#[test]
fn a_start_tag_with_a_hundred_thousand_attributes_is_refused() {
    let attributes: String = (0..HOSTILE).map(|i| format!(" a{i}=\"\"")).collect();
    let body = patient_with(&attributes);
    assert_eq!(
        xml_guard::check(body.as_bytes()),
        Err(XmlLimitError::TooManyAttributes { at: 37 })
    );
    assert_refused(
        parse_resource(body.as_bytes(), FhirFormat::Xml),
        "more than 64 attributes",
    );
}

#[test]
fn a_hundred_thousand_namespace_declarations_are_refused() {
    let declarations: String = (0..HOSTILE)
        .map(|i| format!(" xmlns:p{i}=\"urn:x\""))
        .collect();
    let body = patient_with(&declarations);
    assert_eq!(
        xml_guard::check(body.as_bytes()),
        Err(XmlLimitError::TooManyNamespaceDeclarations { at: 37 })
    );
    assert_refused(
        parse_resource(body.as_bytes(), FhirFormat::Xml),
        "declares more than 16 XML namespaces",
    );
    // Spread over nested elements, each within the per-element limit.
    let nested: String = (0..HOSTILE / 10)
        .map(|i| {
            let ten: String = (0..10)
                .map(|j| format!(" xmlns:p{j}=\"urn:{i}\""))
                .collect();
            format!("<extension{ten}>")
        })
        .collect();
    assert_refused(
        parse_resource(
            format!(r#"<Patient xmlns="http://hl7.org/fhir">{nested}"#).as_bytes(),
            FhirFormat::Xml,
        ),
        "namespace declarations are in scope at once",
    );
}

#[test]
fn a_hundred_thousand_nested_elements_are_refused() {
    let body = format!(
        r#"<Patient xmlns="http://hl7.org/fhir">{}{}</Patient>"#,
        "<extension>".repeat(HOSTILE),
        "</extension>".repeat(HOSTILE)
    );
    assert_refused(
        parse_resource(body.as_bytes(), FhirFormat::Xml),
        "nested more than 128 levels deep",
    );
}

#[test]
fn hostile_narrative_is_refused_in_json_bodies_too() {
    let attributes: String = (0..HOSTILE).map(|i| format!(" a{i}=\"\"")).collect();
    let div = format!(r#"<div xmlns="http://www.w3.org/1999/xhtml"><p{attributes}>x</p></div>"#);
    let body = serde_json::json!({
        "resourceType": "Patient",
        "text": {"status": "generated", "div": div},
    });
    let result = parse_resource(body.to_string().as_bytes(), FhirFormat::Json);
    let Err(e) = result else {
        panic!("hostile narrative was accepted");
    };
    assert!(
        e.issues
            .iter()
            .any(|i| i.diagnostics.contains("more than 64 attributes")
                && i.expression.iter().any(|x| x == "Patient.text.div")),
        "{:?}",
        e.issues
    );
}

#[test]
fn a_bundle_hiding_a_hostile_resource_is_refused() {
    let attributes: String = (0..HOSTILE).map(|i| format!(" a{i}=\"\"")).collect();
    let body = format!(
        r#"<Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/><entry><resource>{}</resource><request><method value="POST"/><url value="Patient"/></request></entry></Bundle>"#,
        patient_with(&attributes)
    );
    assert_refused(
        parse_resource(body.as_bytes(), FhirFormat::Xml),
        "more than 64 attributes",
    );
}
