//! create, read, vread, update, delete: statuses, headers and bodies.

use conformance::*;
use serde_json::{json, Value};

fn is_uuid(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A FHIR instant with time zone, e.g. 2024-05-01T10:00:00.123Z.
fn is_instant(s: &str) -> bool {
    s.len() >= 20
        && s.as_bytes()[4] == b'-'
        && s.as_bytes()[10] == b'T'
        && (s.ends_with('Z') || s[19..].contains('+') || s[19..].contains('-'))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn is_http_date(s: &str) -> bool {
    s.len() == 29 && s.ends_with(" GMT") && s.as_bytes()[3] == b','
}

#[test]
fn create_assigns_an_id_and_answers_201_with_location_etag_and_body() {
    let mut sent = patient(&uid());
    sent["id"] = json!("client-chosen-id");
    let resp = post("Patient").json(&sent).send();
    resp.assert_status(201);
    let body = resp.resource("Patient");
    let id = id_of(&body);
    assert_ne!(
        id, "client-chosen-id",
        "the server must ignore a client id on create"
    );
    assert!(is_uuid(&id), "the server id should be a UUID, got {id}");
    assert_eq!(
        resp.required_header("location"),
        format!("{}/Patient/{id}/_history/1", base()),
        "Location must be the absolute version URL on the configured base"
    );
    assert_eq!(resp.required_header("etag"), "W/\"1\"");
    let last_modified = resp.required_header("last-modified");
    assert!(
        is_http_date(&last_modified),
        "Last-Modified {last_modified:?} is not an HTTP date"
    );
    assert_eq!(body["meta"]["versionId"], "1");
    let last_updated = body["meta"]["lastUpdated"].as_str().unwrap_or_default();
    assert!(
        is_instant(last_updated),
        "meta.lastUpdated {last_updated:?} is not an instant"
    );
    let mut expected = sent.clone();
    expected["id"] = json!(id);
    assert_eq!(
        without_server_meta(&body),
        expected,
        "the stored resource differs from what was sent"
    );
}

#[test]
fn ids_are_unique_per_create() {
    let resource = patient(&uid());
    let a = id_of(&create(&resource));
    let b = id_of(&create(&resource));
    assert_ne!(a, b);
}

#[test]
fn read_returns_the_resource_with_etag_and_last_modified() {
    let created = create(&patient(&uid()));
    let id = id_of(&created);
    let resp = get(&format!("Patient/{id}")).send();
    resp.assert_status(200);
    assert_eq!(resp.resource("Patient"), created);
    assert_eq!(resp.required_header("etag"), "W/\"1\"");
    assert!(is_http_date(&resp.required_header("last-modified")));
}

#[test]
fn read_of_an_unknown_id_is_404_with_an_operation_outcome() {
    let resp = get(&format!("Patient/{}", uid())).send();
    resp.assert_outcome(404);
    for rt in [
        "DocumentReference",
        "Consent",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Binary",
        "AuditEvent",
    ] {
        get(&format!("{rt}/{}", uid())).send().assert_outcome(404);
    }
}

#[test]
fn head_answers_like_get_without_a_body() {
    let id = new_patient();
    let resp = head(&format!("Patient/{id}")).send();
    resp.assert_status(200);
    assert_eq!(resp.required_header("etag"), "W/\"1\"");
    resp.required_header("last-modified");
    assert!(resp.body.is_empty(), "HEAD must not return a body");
    let missing = head(&format!("Patient/{}", uid())).send();
    missing.assert_status(404);
    assert!(missing.body.is_empty());
}

#[test]
fn vread_returns_each_version_and_404_for_unknown_versions() {
    let mut resource = create(&patient(&uid()));
    let id = id_of(&resource);
    resource["gender"] = json!("male");
    put(&format!("Patient/{id}"))
        .json(&resource)
        .send()
        .assert_status(200);

    let v1 = get(&format!("Patient/{id}/_history/1")).send();
    v1.assert_status(200);
    assert_eq!(v1.required_header("etag"), "W/\"1\"");
    let body1 = v1.resource("Patient");
    assert_eq!(body1["gender"], "female");
    assert_eq!(body1["meta"]["versionId"], "1");

    let v2 = get(&format!("Patient/{id}/_history/2")).send();
    v2.assert_status(200);
    assert_eq!(v2.required_header("etag"), "W/\"2\"");
    assert_eq!(v2.resource("Patient")["gender"], "male");

    get(&format!("Patient/{id}/_history/3"))
        .send()
        .assert_outcome(404);
    get(&format!("Patient/{id}/_history/999"))
        .send()
        .assert_outcome(404);
    get(&format!("Patient/{}/_history/1", uid()))
        .send()
        .assert_outcome(404);
}

#[test]
fn update_creates_a_new_version() {
    let mut resource = create(&patient(&uid()));
    let id = id_of(&resource);
    resource["name"] = json!([{"family": "Renamed"}]);
    let resp = put(&format!("Patient/{id}")).json(&resource).send();
    resp.assert_status(200);
    assert_eq!(resp.required_header("etag"), "W/\"2\"");
    assert_eq!(
        resp.required_header("location"),
        format!("{}/Patient/{id}/_history/2", base())
    );
    let body = resp.resource("Patient");
    assert_eq!(body["meta"]["versionId"], "2");
    assert_eq!(body["name"][0]["family"], "Renamed");
    let read_back = read("Patient", &id);
    assert_eq!(read_back, body);
}

#[test]
fn update_as_create_with_a_client_id_answers_201() {
    let id = uid();
    let mut resource = patient(&uid());
    resource["id"] = json!(id);
    let resp = put(&format!("Patient/{id}")).json(&resource).send();
    resp.assert_status(201);
    assert_eq!(resp.required_header("etag"), "W/\"1\"");
    assert_eq!(
        resp.required_header("location"),
        format!("{}/Patient/{id}/_history/1", base())
    );
    let body = resp.resource("Patient");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(without_server_meta(&body), resource);
    assert_eq!(read("Patient", &id), body);
}

#[test]
fn update_with_a_64_character_id_is_accepted() {
    let id = format!("{}{}", uid(), uid());
    assert_eq!(id.len(), 64);
    let mut resource = patient(&uid());
    resource["id"] = json!(id);
    put(&format!("Patient/{id}"))
        .json(&resource)
        .send()
        .assert_status(201);
    read("Patient", &id);
}

#[test]
fn update_body_id_must_equal_the_url_id() {
    let created = create(&patient(&uid()));
    let id = id_of(&created);

    let mut other = created.clone();
    other["id"] = json!(uid());
    other["gender"] = json!("other");
    put(&format!("Patient/{id}"))
        .json(&other)
        .send()
        .assert_outcome(400);

    let mut missing = created.clone();
    missing
        .as_object_mut()
        .expect("a resource is an object")
        .remove("id");
    missing["gender"] = json!("other");
    put(&format!("Patient/{id}"))
        .json(&missing)
        .send()
        .assert_outcome(400);

    // Nothing changed.
    let after = get(&format!("Patient/{id}")).send();
    after.assert_status(200);
    assert_eq!(after.required_header("etag"), "W/\"1\"");
    assert_eq!(after.resource("Patient"), created);
}

#[test]
fn update_with_an_invalid_id_is_400() {
    for bad in [
        "a".repeat(65),
        "a_b".to_string(),
        "a b".to_string(),
        "ä".to_string(),
    ] {
        let mut resource = patient(&uid());
        resource["id"] = json!(bad);
        let path = format!("Patient/{}", url_encode(&bad));
        put(&path).json(&resource).send().assert_outcome(400);
    }
}

#[test]
fn delete_then_read_is_gone_but_old_versions_stay_readable() {
    let mut resource = create(&patient(&uid()));
    let id = id_of(&resource);
    resource["gender"] = json!("male");
    put(&format!("Patient/{id}"))
        .json(&resource)
        .send()
        .assert_status(200);

    delete(&format!("Patient/{id}")).send().assert_status(204);
    get(&format!("Patient/{id}")).send().assert_outcome(410);
    get(&format!("Patient/{id}/_history/1"))
        .send()
        .assert_status(200);
    get(&format!("Patient/{id}/_history/2"))
        .send()
        .assert_status(200);

    // Deleting again is fine.
    delete(&format!("Patient/{id}")).send().assert_status(204);
    get(&format!("Patient/{id}")).send().assert_outcome(410);

    // An update revives it with a new version.
    resource["gender"] = json!("other");
    let revived = put(&format!("Patient/{id}")).json(&resource).send();
    if revived.status != 200 && revived.status != 201 {
        revived.fail("an update after a delete must revive the resource (200 or 201)");
    }
    let version = revived.etag_version();
    assert!(
        version > 2,
        "the revived resource needs a new version, got {version}"
    );
    let body = revived.resource("Patient");
    assert_eq!(body["meta"]["versionId"], version.to_string());
    let read_back = get(&format!("Patient/{id}")).send();
    read_back.assert_status(200);
    assert_eq!(read_back.etag_version(), version);
    assert_eq!(read_back.resource("Patient")["gender"], "other");
}

#[test]
fn server_owns_version_id_and_last_updated_but_keeps_tags_and_profiles() {
    let mut resource = patient(&uid());
    resource["meta"] = json!({
        "versionId": "99",
        "lastUpdated": "2001-01-01T00:00:00Z",
        "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"],
        "tag": [{"system": "urn:example:tags", "code": "keep-me"}],
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}]
    });
    let created = create(&resource);
    let meta = &created["meta"];
    assert_eq!(meta["versionId"], "1");
    assert_ne!(meta["lastUpdated"], "2001-01-01T00:00:00Z");
    assert_eq!(meta["profile"], resource["meta"]["profile"]);
    assert_eq!(meta["tag"], resource["meta"]["tag"]);
    assert_eq!(meta["security"], resource["meta"]["security"]);

    let id = id_of(&created);
    let mut update = resource.clone();
    update["id"] = json!(id);
    update["meta"]["versionId"] = json!("1000");
    let resp = put(&format!("Patient/{id}")).json(&update).send();
    resp.assert_status(200);
    let body = resp.resource("Patient");
    assert_eq!(body["meta"]["versionId"], "2");
    assert_eq!(body["meta"]["tag"], resource["meta"]["tag"]);
}

/// Narrative, extensions (also on primitives, with nulls in arrays),
/// contained resources and decimal precision come back exactly.
#[test]
fn content_comes_back_exactly() {
    // Parsed from text: the json! macro would go through f64 and lose 1.50.
    let text = r##"{
        "resourceType": "Patient",
        "text": {
            "status": "generated",
            "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Jane <b>Doe</b> &amp; family</p></div>"
        },
        "contained": [{
            "resourceType": "Organization",
            "id": "org1",
            "name": "Contained Clinic"
        }],
        "extension": [
            {"url": "http://example.org/fhir/StructureDefinition/weight", "valueDecimal": 1.50},
            {"url": "http://example.org/fhir/StructureDefinition/score", "valueDecimal": 0.000100},
            {"url": "http://example.org/fhir/StructureDefinition/big", "valueDecimal": 12345678901234567890.123},
            {"url": "http://example.org/fhir/StructureDefinition/nested", "extension": [
                {"url": "a", "valueString": "x"},
                {"url": "b", "valueInteger": -7}
            ]}
        ],
        "identifier": [{"system": "urn:fhirledger:conformance", "value": "IDENTIFIER"}],
        "active": true,
        "name": [{
            "family": "Doe",
            "_family": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/humanname-own-prefix", "valueString": "VV"}]},
            "given": ["Jane", "Q"],
            "_given": [null, {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier", "valueCode": "IN"}]}]
        }],
        "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
        "managingOrganization": {"reference": "#org1"},
        "multipleBirthInteger": 2
    }"##
    .replace("IDENTIFIER", &uid());
    let resource: Value = serde_json::from_str(&text).expect("the test resource is JSON");
    let created = create(&resource);
    let id = id_of(&created);
    let mut expected = resource.clone();
    expected["id"] = json!(id);
    assert_eq!(without_server_meta(&created), expected);
    assert_eq!(without_server_meta(&read("Patient", &id)), expected);
    // Decimal precision is kept textually, not only numerically.
    let raw = get(&format!("Patient/{id}")).send().text();
    assert!(raw.contains("1.50"), "1.50 lost its trailing zero: {raw}");
    assert!(
        raw.contains("0.000100"),
        "0.000100 lost its precision: {raw}"
    );
    assert!(
        raw.contains("12345678901234567890.123"),
        "a long decimal was rounded: {raw}"
    );
}

#[test]
fn every_writable_hosted_type_round_trips() {
    let patient_id = new_patient();
    let org = create(&organization(&uid()));
    let prac = create(&practitioner(&uid()));
    let role = json!({
        "resourceType": "PractitionerRole",
        "identifier": [{"system": ID_SYSTEM, "value": uid()}],
        "active": true,
        "practitioner": {"reference": format!("Practitioner/{}", id_of(&prac))},
        "organization": {"reference": format!("Organization/{}", id_of(&org))},
        "code": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/practitioner-role", "code": "doctor"}]}]
    });
    for resource in [
        organization(&uid()),
        practitioner(&uid()),
        role,
        patient(&uid()),
        consent(&patient_id, &uid()),
        document_reference(&patient_id, &uid()),
    ] {
        let rt = resource["resourceType"]
            .as_str()
            .expect("has a type")
            .to_string();
        let created = create(&resource);
        let id = id_of(&created);
        let mut expected = resource.clone();
        expected["id"] = json!(id);
        assert_eq!(without_server_meta(&created), expected, "{rt} create");
        assert_eq!(read(&rt, &id), created, "{rt} read");
    }
}

#[test]
fn prefer_return_minimal_has_no_body_but_keeps_the_headers() {
    let resp = post("Patient")
        .prefer("return=minimal")
        .json(&patient(&uid()))
        .send();
    resp.assert_status(201);
    assert!(
        resp.body.is_empty(),
        "return=minimal must not return a body"
    );
    let location = resp.required_header("location");
    assert!(
        location.starts_with(&format!("{}/Patient/", base())),
        "{location}"
    );
    assert!(location.ends_with("/_history/1"), "{location}");
    assert_eq!(resp.required_header("etag"), "W/\"1\"");

    let id = location
        .trim_start_matches(&format!("{}/Patient/", base()))
        .trim_end_matches("/_history/1")
        .to_string();
    let mut resource = read("Patient", &id);
    resource["gender"] = json!("male");
    let upd = put(&format!("Patient/{id}"))
        .prefer("return=minimal")
        .json(&resource)
        .send();
    upd.assert_status(200);
    assert!(upd.body.is_empty());
    assert_eq!(upd.required_header("etag"), "W/\"2\"");
}

#[test]
fn prefer_return_operation_outcome_answers_with_an_outcome() {
    let resp = post("Patient")
        .prefer("return=OperationOutcome")
        .json(&patient(&uid()))
        .send();
    resp.assert_status(201);
    let oo = resp.resource("OperationOutcome");
    assert!(
        oo["issue"].as_array().is_some_and(|i| !i.is_empty()),
        "{oo}"
    );
    resp.required_header("location");
    assert_eq!(resp.required_header("etag"), "W/\"1\"");
}

#[test]
fn prefer_return_representation_is_the_default() {
    let sent = patient(&uid());
    let explicit = post("Patient")
        .prefer("return=representation")
        .json(&sent)
        .send();
    explicit.assert_status(201);
    let body = explicit.resource("Patient");
    assert_eq!(body["identifier"], sent["identifier"]);
    let default = post("Patient").json(&sent).send();
    default.assert_status(201);
    assert_eq!(
        default.resource("Patient")["identifier"],
        sent["identifier"]
    );
}

#[test]
fn last_modified_and_last_updated_agree() {
    let created = create(&patient(&uid()));
    let id = id_of(&created);
    let resp = get(&format!("Patient/{id}")).send();
    let last_modified = resp.required_header("last-modified");
    // lastUpdated 2024-05-01T10:11:12.345Z → "01 May 2024 10:11:12"
    let lu = created["meta"]["lastUpdated"].as_str().unwrap_or_default();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month: usize = lu.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(0);
    let expected = format!(
        "{} {} {} {}",
        lu.get(8..10).unwrap_or(""),
        months.get(month.wrapping_sub(1)).unwrap_or(&"?"),
        lu.get(0..4).unwrap_or(""),
        lu.get(11..19).unwrap_or("")
    );
    assert!(
        lu.ends_with('Z') && last_modified.contains(&expected),
        "Last-Modified {last_modified:?} does not match meta.lastUpdated {lu:?}"
    );
}

#[test]
fn documents_and_consents_round_trip_through_update() {
    let patient_id = new_patient();
    let mut doc = create(&document_reference(&patient_id, &uid()));
    let id = id_of(&doc);
    doc["description"] = json!("updated description");
    doc["status"] = json!("superseded");
    let resp = put(&format!("DocumentReference/{id}")).json(&doc).send();
    resp.assert_status(200);
    let body: Value = resp.resource("DocumentReference");
    assert_eq!(body["status"], "superseded");
    assert_eq!(body["description"], "updated description");

    let mut c = create(&consent(&patient_id, &uid()));
    let cid = id_of(&c);
    c["status"] = json!("inactive");
    put(&format!("Consent/{cid}"))
        .json(&c)
        .send()
        .assert_status(200);
    assert_eq!(read("Consent", &cid)["status"], "inactive");
}
