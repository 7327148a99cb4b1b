//! Content negotiation (`_format`, `Accept`, `Content-Type`, `_pretty`) and
//! subsets (`_summary`, `_elements`).

use conformance::*;
use serde_json::{json, Value};

fn assert_json(resp: &Response, id: &str) {
    resp.assert_status(200);
    let body = resp.resource("Patient");
    assert_eq!(body["id"], id);
}

fn assert_xml(resp: &Response, root: &str, id: &str) {
    resp.assert_status(200);
    if resp.media_type() != FHIR_XML {
        resp.fail(&format!("expected Content-Type {FHIR_XML}"));
    }
    let text = resp.text();
    let doc = text.trim_start().trim_start_matches('\u{feff}');
    let doc = if doc.starts_with("<?xml") {
        doc.split_once("?>")
            .map(|(_, rest)| rest.trim_start())
            .unwrap_or(doc)
    } else {
        doc
    };
    if !doc.starts_with(&format!("<{root} xmlns=\"http://hl7.org/fhir\"")) {
        resp.fail(&format!("expected an XML {root} in the FHIR namespace"));
    }
    if !text.contains(&format!("<id value=\"{id}\"/>")) {
        resp.fail(&format!("expected <id value=\"{id}\"/>"));
    }
}

fn patient_xml(ident: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <identifier>
    <system value="{ID_SYSTEM}"/>
    <value value="{ident}"/>
  </identifier>
  <active value="true"/>
  <name>
    <family value="Conformance"/>
    <given value="Test"/>
  </name>
  <gender value="female"/>
  <birthDate value="1980-02-29"/>
</Patient>"#
    )
}

#[test]
fn json_is_the_default_and_can_be_asked_for() {
    let id = new_patient();
    let path = format!("Patient/{id}");
    assert_json(&get(&path).send(), &id);
    for f in ["json", "application/json", "application/fhir+json"] {
        assert_json(
            &get(&format!("{path}?_format={}", f.replace('+', "%2B"))).send(),
            &id,
        );
    }
    assert_json(&get(&path).accept("application/fhir+json").send(), &id);
    let plain = get(&path).accept("application/json").send();
    plain.assert_status(200);
    let mt = plain.media_type();
    assert!(
        mt == "application/fhir+json" || mt == "application/json",
        "JSON asked, got {mt}"
    );
    assert_eq!(plain.json()["id"], id.as_str());
}

#[test]
fn xml_can_be_asked_for_by_format_and_accept() {
    let id = new_patient();
    let path = format!("Patient/{id}");
    for f in ["xml", "application/fhir+xml", "application/xml", "text/xml"] {
        assert_xml(
            &get(&format!("{path}?_format={}", f.replace('+', "%2B"))).send(),
            "Patient",
            &id,
        );
    }
    assert_xml(
        &get(&path).accept("application/fhir+xml").send(),
        "Patient",
        &id,
    );
    assert_xml(
        &get(&path)
            .accept("text/html;q=0.9, application/fhir+xml")
            .send(),
        "Patient",
        &id,
    );
}

#[test]
fn format_parameter_wins_over_accept() {
    let id = new_patient();
    let path = format!("Patient/{id}");
    assert_xml(
        &get(&format!("{path}?_format=xml"))
            .accept("application/fhir+json")
            .send(),
        "Patient",
        &id,
    );
    assert_json(
        &get(&format!("{path}?_format=json"))
            .accept("application/fhir+xml")
            .send(),
        &id,
    );
}

#[test]
fn xml_bodies_are_accepted() {
    for ct in [
        "application/fhir+xml",
        "application/xml",
        "application/fhir+xml; charset=utf-8",
    ] {
        let ident = uid();
        let resp = post("Patient")
            .content_type(ct)
            .accept(FHIR_JSON)
            .bytes(patient_xml(&ident))
            .send();
        resp.assert_status(201);
        let body = resp.resource("Patient");
        let mut expected = patient(&ident);
        expected["id"] = body["id"].clone();
        assert_eq!(
            without_server_meta(&body),
            expected,
            "XML body with Content-Type {ct}"
        );
    }
}

#[test]
fn xml_create_answers_in_xml_when_asked() {
    let ident = uid();
    let resp = post("Patient")
        .accept("application/fhir+xml")
        .xml(patient_xml(&ident))
        .send();
    resp.assert_status(201);
    assert_eq!(resp.media_type(), FHIR_XML);
    assert!(
        resp.text().contains(&format!("<value value=\"{ident}\"/>")),
        "{}",
        resp.text()
    );
}

#[test]
fn json_bodies_are_accepted_with_any_json_content_type() {
    for ct in [
        "application/fhir+json",
        "application/json",
        "application/json; charset=utf-8",
    ] {
        let resp = post("Patient")
            .content_type(ct)
            .bytes(patient(&uid()).to_string())
            .send();
        resp.assert_status(201);
    }
}

#[test]
fn pretty_output_is_indented_and_equal() {
    let id = new_patient();
    let compact = get(&format!("Patient/{id}?_pretty=false")).send();
    compact.assert_status(200);
    let pretty = get(&format!("Patient/{id}?_pretty=true")).send();
    pretty.assert_status(200);
    assert!(
        !compact.text().trim().contains('\n'),
        "_pretty=false should be compact"
    );
    assert!(
        pretty.text().contains("\n  "),
        "_pretty=true should be indented: {}",
        pretty.text()
    );
    assert_eq!(pretty.json(), compact.json());
    let pretty_xml = get(&format!("Patient/{id}?_pretty=true&_format=xml")).send();
    assert_xml(&pretty_xml, "Patient", &id);
    assert!(
        pretty_xml.text().contains("\n  <"),
        "pretty XML should be indented: {}",
        pretty_xml.text()
    );
}

#[test]
fn unsupported_format_is_406() {
    let id = new_patient();
    get(&format!("Patient/{id}?_format=html"))
        .send()
        .assert_outcome(406);
    get(&format!("Patient/{id}?_format=text/turtle"))
        .send()
        .assert_outcome(406);
}

#[test]
fn unsupported_body_content_type_is_415() {
    let body = patient(&uid()).to_string();
    post("Patient")
        .content_type("text/plain")
        .bytes(body.clone())
        .send()
        .assert_outcome(415);
    post("Patient")
        .content_type("application/x-www-form-urlencoded")
        .bytes(body.clone())
        .send()
        .assert_outcome(415);
    let id = new_patient();
    let mut resource = patient(&uid());
    resource["id"] = json!(id);
    put(&format!("Patient/{id}"))
        .content_type("text/plain")
        .bytes(resource.to_string())
        .send()
        .assert_outcome(415);
}

#[test]
fn errors_come_in_xml_when_xml_is_asked_for() {
    let resp = get(&format!("Patient/{}", uid()))
        .accept("application/fhir+xml")
        .send();
    resp.assert_status(404);
    assert_eq!(resp.media_type(), FHIR_XML);
    assert!(resp.text().contains("<OperationOutcome"), "{}", resp.text());
    let resp = get(&format!("Patient/{}?_format=xml", uid())).send();
    resp.assert_status(404);
    assert_eq!(resp.media_type(), FHIR_XML);
}

fn rich_patient() -> Value {
    json!({
        "resourceType": "Patient",
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane Doe</div>"},
        "identifier": [{"system": ID_SYSTEM, "value": uid()}],
        "active": true,
        "name": [{"family": "Doe", "given": ["Jane"]}],
        "gender": "female",
        "birthDate": "1970-01-01",
        "address": [{"city": "Springfield"}],
        "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]},
        "contact": [{"name": {"family": "Contact"}}],
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}}]
    })
}

fn has_subsetted_tag(resource: &Value) -> bool {
    resource["meta"]["tag"]
        .as_array()
        .is_some_and(|tags| tags.iter().any(|t| t["code"] == "SUBSETTED"))
}

#[test]
fn summary_true_returns_only_summary_elements() {
    let id = id_of(&create(&rich_patient()));
    let resp = get(&format!("Patient/{id}?_summary=true")).send();
    resp.assert_status(200);
    let body = resp.resource("Patient");
    assert_eq!(body["id"], id.as_str());
    for present in [
        "identifier",
        "active",
        "name",
        "gender",
        "birthDate",
        "address",
    ] {
        assert!(
            body.get(present).is_some(),
            "_summary=true must keep {present}: {body}"
        );
    }
    for absent in ["text", "contact", "communication", "maritalStatus"] {
        assert!(
            body.get(absent).is_none(),
            "_summary=true must drop {absent}: {body}"
        );
    }
    assert!(
        has_subsetted_tag(&body),
        "a summary carries the SUBSETTED tag: {body}"
    );
}

#[test]
fn summary_text_returns_the_narrative() {
    let resource = rich_patient();
    let id = id_of(&create(&resource));
    let resp = get(&format!("Patient/{id}?_summary=text")).send();
    resp.assert_status(200);
    let body = resp.resource("Patient");
    assert_eq!(body["text"], resource["text"]);
    assert_eq!(body["id"], id.as_str());
    for absent in ["name", "contact", "identifier", "birthDate"] {
        assert!(
            body.get(absent).is_none(),
            "_summary=text must drop {absent}: {body}"
        );
    }
    assert!(has_subsetted_tag(&body), "{body}");
}

#[test]
fn summary_data_drops_only_the_narrative() {
    let resource = rich_patient();
    let id = id_of(&create(&resource));
    let resp = get(&format!("Patient/{id}?_summary=data")).send();
    resp.assert_status(200);
    let body = resp.resource("Patient");
    assert!(
        body.get("text").is_none(),
        "_summary=data must drop text: {body}"
    );
    for present in [
        "name",
        "contact",
        "communication",
        "maritalStatus",
        "identifier",
    ] {
        assert_eq!(
            body[present], resource[present],
            "_summary=data must keep {present}"
        );
    }
    assert!(has_subsetted_tag(&body), "{body}");
}

#[test]
fn summary_false_is_the_whole_resource() {
    let created = create(&rich_patient());
    let id = id_of(&created);
    let resp = get(&format!("Patient/{id}?_summary=false")).send();
    resp.assert_status(200);
    assert_eq!(resp.resource("Patient"), created);
}

#[test]
fn invalid_summary_is_400() {
    let id = new_patient();
    get(&format!("Patient/{id}?_summary=foo"))
        .send()
        .assert_outcome(400);
}

#[test]
fn elements_returns_the_named_elements() {
    let patient_id = new_patient();
    let mut doc = document_reference(&patient_id, &uid());
    doc["description"] = json!("a description");
    doc["author"] = json!([{"reference": format!("Patient/{patient_id}")}]);
    let id = id_of(&create(&doc));
    let resp = get(&format!("DocumentReference/{id}?_elements=status,subject")).send();
    resp.assert_status(200);
    let body = resp.resource("DocumentReference");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["status"], "current");
    assert_eq!(body["subject"], doc["subject"]);
    for absent in [
        "description",
        "author",
        "type",
        "category",
        "date",
        "identifier",
    ] {
        assert!(
            body.get(absent).is_none(),
            "_elements=status,subject must drop {absent}: {body}"
        );
    }
    assert!(has_subsetted_tag(&body), "{body}");
}

#[test]
fn summary_in_xml() {
    let id = id_of(&create(&rich_patient()));
    let resp = get(&format!("Patient/{id}?_summary=true&_format=xml")).send();
    assert_xml(&resp, "Patient", &id);
    let text = resp.text();
    assert!(text.contains("SUBSETTED"), "{text}");
    assert!(!text.contains("<contact>"), "{text}");
}
