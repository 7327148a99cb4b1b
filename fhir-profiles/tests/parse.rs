//! parse_resource: what it accepts, what it keeps exactly, and where it says problems are.

mod common;

use fhir_profiles::format::{
    json_bytes_to_xml, parse_resource, to_json_bytes, to_xml_string, FhirFormat,
};
use fhir_profiles::outcome::IssueType;
use serde_json::json;

fn json_error(body: &str) -> (Vec<String>, String, IssueType) {
    match parse_resource(body.as_bytes(), FhirFormat::Json) {
        Ok(v) => panic!("accepted: {v}"),
        Err(e) => first(e),
    }
}

fn xml_error(body: &str) -> (Vec<String>, String, IssueType) {
    match parse_resource(body.as_bytes(), FhirFormat::Xml) {
        Ok(v) => panic!("accepted: {v}"),
        Err(e) => first(e),
    }
}

fn first(e: fhir_profiles::format::ParseError) -> (Vec<String>, String, IssueType) {
    let message = e.to_string();
    let Some(issue) = e.issues.into_iter().next() else {
        panic!("no issues");
    };
    assert_eq!(message, issue.diagnostics);
    (issue.expression, issue.diagnostics, issue.code)
}

const DOC_JSON: &str = r#"{"resourceType": "DocumentReference", "status": "current",
  "content": [{"attachment": {"contentType": "text/plain", "foo": "bar"}}]}"#;

const DOC_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DocumentReference xmlns="http://hl7.org/fhir">
  <status value="current"/>
  <content>
    <attachment>
      <contentType value="text/plain"/>
      <foo value="bar"/>
    </attachment>
  </content>
</DocumentReference>"#;

#[test]
fn unknown_element_is_located_in_json() {
    let (expression, diagnostics, code) = json_error(DOC_JSON);
    assert_eq!(
        expression,
        vec!["DocumentReference.content[0].attachment.foo"]
    );
    assert!(diagnostics.contains("foo"), "{diagnostics}");
    assert_eq!(code, IssueType::Structure);
}

#[test]
fn unknown_element_is_located_in_xml() {
    let (expression, diagnostics, code) = xml_error(DOC_XML);
    assert_eq!(
        expression,
        vec!["DocumentReference.content[0].attachment.foo"]
    );
    assert!(diagnostics.contains("foo"), "{diagnostics}");
    assert_eq!(code, IssueType::Structure);
}

#[test]
fn unknown_elements_deeper_and_in_extensions() {
    let body = r#"{"resourceType": "Patient", "name": [{"family": "x"}, {"given": ["a"], "_given": [{"extension": [{"url": "u", "valueFoo": 1}]}]}]}"#;
    let (expression, diagnostics, _) = json_error(body);
    assert_eq!(
        expression,
        vec!["Patient.name[1].given[0].extension[0].valueFoo"]
    );
    assert!(diagnostics.contains("valueFoo"));
    let xml = r#"<Patient xmlns="http://hl7.org/fhir"><contact><relationship><coding><bogus value="1"/></coding></relationship></contact></Patient>"#;
    let (expression, _, _) = xml_error(xml);
    assert_eq!(
        expression,
        vec!["Patient.contact[0].relationship[0].coding[0].bogus"]
    );
}

#[test]
fn repeated_single_element_in_xml_is_located() {
    let xml = r#"<Patient xmlns="http://hl7.org/fhir"><active value="true"/><active value="false"/></Patient>"#;
    let (expression, _, code) = xml_error(xml);
    assert_eq!(expression, vec!["Patient.active"]);
    assert_eq!(code, IssueType::Structure);
}

#[test]
fn malformed_bodies_are_errors() {
    for body in [
        "",
        "{",
        "{\"resourceType\": \"Patient\",}",
        "[]",
        "null",
        "\"Patient\"",
        "\u{0}",
    ] {
        let result = parse_resource(body.as_bytes(), FhirFormat::Json);
        assert!(result.is_err(), "{body:?}");
    }
    for body in [
        "",
        "<",
        "<Patient xmlns=\"http://hl7.org/fhir\">",
        "<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\"></Patient>",
        "<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\"/></Patient><x/>",
        "<Patient><active value=\"true\"/></Patient>",
        "just text",
        "<Patient xmlns=\"http://hl7.org/fhir\">text</Patient>",
    ] {
        let result = parse_resource(body.as_bytes(), FhirFormat::Xml);
        assert!(result.is_err(), "{body:?}");
    }
    assert!(parse_resource(&[0xff, 0xfe, 0x00], FhirFormat::Xml).is_err());
    assert!(parse_resource(&[0xff, 0xfe, 0x00], FhirFormat::Json).is_err());
}

#[test]
fn missing_or_unknown_resource_type() {
    let (expression, _, code) = json_error(r#"{"id": "x"}"#);
    assert!(expression.is_empty());
    assert_eq!(code, IssueType::Required);
    let (expression, diagnostics, _) = json_error(r#"{"resourceType": "Nonsense"}"#);
    assert_eq!(expression, vec!["resourceType"]);
    assert!(diagnostics.contains("Nonsense"));
    let (_, diagnostics, _) = json_error(r#"{"resourceType": 12}"#);
    assert!(diagnostics.contains("string"));
    assert!(parse_resource(br#"{"resourceType": "DomainResource"}"#, FhirFormat::Json).is_err());
    assert!(parse_resource(
        b"<Nonsense xmlns=\"http://hl7.org/fhir\"/>",
        FhirFormat::Xml
    )
    .is_err());
}

#[test]
fn type_errors_are_located() {
    let (expression, _, code) = json_error(
        r#"{"resourceType": "DocumentReference", "status": "current", "content": [{"attachment": "x"}]}"#,
    );
    assert_eq!(expression, vec!["DocumentReference.content[0].attachment"]);
    assert_eq!(code, IssueType::Structure);
    let (expression, _, _) = json_error(r#"{"resourceType": "Patient", "active": "true"}"#);
    assert_eq!(expression, vec!["Patient.active"]);
    let (expression, _, _) = json_error(r#"{"resourceType": "Patient", "name": {"family": "x"}}"#);
    assert_eq!(expression, vec!["Patient.name"]);
    let (expression, _, code) =
        json_error(r#"{"resourceType": "Patient", "birthDate": "2020-13-01"}"#);
    assert_eq!(expression, vec!["Patient.birthDate"]);
    assert_eq!(code, IssueType::Value);
    let (expression, _, _) = json_error(r#"{"resourceType": "Patient", "id": "has space"}"#);
    assert_eq!(expression, vec!["Patient.id"]);
    let (expression, _, _) =
        json_error(r#"{"resourceType": "Patient", "multipleBirthInteger": 3000000000}"#);
    assert_eq!(expression, vec!["Patient.multipleBirthInteger"]);
    let (expression, _, _) = json_error(
        r#"{"resourceType": "Patient", "text": {"status": "generated", "div": "<div>no namespace</div>"}}"#,
    );
    assert_eq!(expression, vec!["Patient.text.div"]);
    let (expression, _, _) = xml_error(
        r#"<Patient xmlns="http://hl7.org/fhir"><birthDate value="yesterday"/></Patient>"#,
    );
    assert_eq!(expression, vec!["Patient.birthDate"]);
}

#[test]
fn missing_mandatory_primitive_is_located() {
    let (expression, _, code) = json_error(
        r#"{"resourceType": "DocumentReference", "content": [{"attachment": {"url": "http://x"}}]}"#,
    );
    assert_eq!(expression, vec!["DocumentReference.status"]);
    assert_eq!(code, IssueType::Required);
    let (expression, _, _) = xml_error(
        r#"<DocumentReference xmlns="http://hl7.org/fhir"><content><attachment><url value="http://x"/></attachment></content></DocumentReference>"#,
    );
    assert_eq!(expression, vec!["DocumentReference.status"]);
    let (expression, _, code) =
        json_error(r#"{"resourceType": "DocumentReference", "status": "current"}"#);
    assert_eq!(expression, vec!["DocumentReference.content"]);
    assert_eq!(code, IssueType::Required);
}

#[test]
fn duplicate_json_keys_are_rejected() {
    let body = r#"{"resourceType": "Patient", "active": true, "active": false}"#;
    assert!(parse_resource(body.as_bytes(), FhirFormat::Json).is_err());
}

#[test]
fn decimals_extensions_narrative_and_contained_survive_exactly() {
    let body = r##"{"resourceType": "Patient",
      "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">\n  <p>a  &amp; <b>b</b> </p>\n\t</div>"},
      "contained": [{"resourceType": "Organization", "id": "o1", "name": "Org"}],
      "extension": [{"url": "http://x/decimal", "valueDecimal": 1.50},
                    {"url": "http://x/big", "valueDecimal": 12345678901234567890.123456789000},
                    {"url": "http://x/q", "valueQuantity": {"value": 0.00010, "unit": "mg"}}],
      "birthDate": "1970-01-01", "_birthDate": {"extension": [{"url": "http://x/time", "valueTime": "10:00:00"}]},
      "name": [{"given": ["A", null], "_given": [null, {"id": "g2", "extension": [{"url": "u", "valueString": "line1\nline2\t\"q\" <&>"}]}]}],
      "managingOrganization": {"reference": "#o1"}}"##;
    let original = common::json(body.as_bytes());
    let Ok(parsed) = parse_resource(body.as_bytes(), FhirFormat::Json) else {
        panic!("rejected");
    };
    assert_eq!(parsed, original);
    assert_eq!(parsed["extension"][0]["valueDecimal"].to_string(), "1.50");
    assert!(
        String::from_utf8_lossy(&to_json_bytes(&parsed, false)).contains("\"valueDecimal\":1.50")
    );
    for pretty in [false, true] {
        let Ok(xml) = to_xml_string(&parsed, pretty) else {
            panic!("no XML");
        };
        assert!(xml.contains("<valueDecimal value=\"1.50\"/>"), "{xml}");
        assert!(
            xml.contains("line1&#10;line2&#9;&#34;q&#34; &#60;&#38;&#62;"),
            "{xml}"
        );
        assert!(xml.contains("<p>a  &amp; <b>b</b> </p>\n\t</div>"), "{xml}");
        assert_eq!(
            pretty,
            xml.contains("<Patient xmlns=\"http://hl7.org/fhir\">\n")
        );
        let back = parse_resource(xml.as_bytes(), FhirFormat::Xml);
        assert_eq!(back.ok(), Some(original.clone()));
    }
    let Ok(from_bytes) = json_bytes_to_xml(&to_json_bytes(&parsed, true), false) else {
        panic!("no XML from bytes");
    };
    assert_eq!(
        Ok(from_bytes),
        to_xml_string(&parsed, false).map_err(|e| e.to_string())
    );
}

#[test]
fn xml_input_converges_with_json() {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <!-- comments are fine -->
  <id value="p1"/>
  <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>Hi  there</p></div></text>
  <active value="true"/>
  <name><given value="A"/><given id="g"><extension url="u"><valueDecimal value="2.0"/></extension></given></name>
</Patient>"#;
    let expected = json!({"resourceType": "Patient", "id": "p1",
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Hi  there</p></div>"},
        "active": true,
        "name": [{"given": ["A", null], "_given": [null, {"id": "g", "extension": [{"url": "u", "valueDecimal": 2.0}]}]}]});
    let parsed = parse_resource(xml.as_bytes(), FhirFormat::Xml);
    assert_eq!(
        parsed.ok().map(|v| v.to_string()),
        Some(expected.to_string())
    );
}

#[test]
fn stored_json_that_is_not_fhir_cannot_be_rendered() {
    assert!(json_bytes_to_xml(b"not json", false).is_err());
    assert!(to_xml_string(
        &json!({"resourceType": "Patient", "text": {"div": "<p>unclosed"}}),
        false
    )
    .is_err());
}

#[test]
fn placeholder_lookalikes_do_not_confuse_narrative_handling() {
    let body = r#"{"resourceType": "Patient", "text": {"status": "generated",
      "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">fhirledger-narrative-placeholder-0</div>"},
      "name": [{"family": "<div xmlns=\"http://www.w3.org/1999/xhtml\">fhirledger-narrative-placeholder-0</div>"}]}"#;
    let Ok(parsed) = parse_resource(body.as_bytes(), FhirFormat::Json) else {
        panic!("rejected");
    };
    let Ok(xml) = to_xml_string(&parsed, true) else {
        panic!("no XML");
    };
    let back = parse_resource(xml.as_bytes(), FhirFormat::Xml);
    assert_eq!(back.ok(), Some(parsed));
}

#[test]
fn xml_declaration_and_bom_variants_are_accepted() {
    let expected = json!({"resourceType": "Patient", "active": true});
    for prefix in [
        "",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"no\"?>",
        "\u{FEFF}<?xml version=\"1.0\"?>",
    ] {
        let body = format!(
            "{prefix}<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\"/></Patient>"
        );
        let parsed = parse_resource(body.as_bytes(), FhirFormat::Xml);
        assert_eq!(parsed.ok(), Some(expected.clone()), "{prefix:?}");
    }
    let latin1 =
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Patient xmlns=\"http://hl7.org/fhir\"/>";
    assert!(parse_resource(latin1.as_bytes(), FhirFormat::Xml).is_err());
    let bom_json = "\u{FEFF}{\"resourceType\": \"Patient\", \"active\": true}";
    assert_eq!(
        parse_resource(bom_json.as_bytes(), FhirFormat::Json).ok(),
        Some(expected)
    );
}

/// Whole numbers beyond 64 bits in a decimal are refused with where and why
/// (the model underneath would store another number, or fail to render it
/// as XML); written with a decimal point they are kept as written, in JSON
/// and XML, both ways.
#[test]
fn huge_decimals_are_kept_exactly_or_refused_never_changed() {
    let with = |n: &str| {
        format!(
            r#"{{"resourceType":"Patient","extension":[{{"url":"http://example.org/n","valueDecimal":{n}}}]}}"#
        )
    };
    for whole in [
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890",
    ] {
        let refused = parse_resource(with(whole).as_bytes(), FhirFormat::Json).expect_err(whole);
        let text = format!("{refused:?}");
        assert!(text.contains("decimal point"), "{whole}: {text}");
        assert!(
            text.contains("Patient.extension[0].valueDecimal"),
            "{whole}: {text}"
        );
        let xml = format!(
            r#"<Patient xmlns="http://hl7.org/fhir"><extension url="http://example.org/n"><valueDecimal value="{whole}"/></extension></Patient>"#
        );
        assert!(
            parse_resource(xml.as_bytes(), FhirFormat::Xml).is_err(),
            "{whole} in XML"
        );
    }
    for kept in [
        "9223372036854775807",
        "18446744073709551615.0",
        "123456789012345678901234567890.5",
        "-9223372036854775809.0",
    ] {
        let parsed = parse_resource(with(kept).as_bytes(), FhirFormat::Json).expect(kept);
        let json = String::from_utf8(to_json_bytes(&parsed, false)).expect("UTF-8");
        assert!(json.contains(&format!(":{kept}}}")), "{kept}: {json}");
        let xml = to_xml_string(&parsed, false).expect(kept);
        assert!(xml.contains(&format!("value=\"{kept}\"")), "{kept}: {xml}");
        let back = parse_resource(xml.as_bytes(), FhirFormat::Xml).expect(kept);
        assert_eq!(back, parsed, "{kept} through XML");
    }
}
