//! Failures: the right status, an OperationOutcome that says where, and
//! nothing half-written.

use conformance::*;
use serde_json::{json, Value};

fn post_json_text(rt: &str, text: &str) -> Response {
    post(rt)
        .content_type(FHIR_JSON)
        .bytes(text.as_bytes().to_vec())
        .send()
}

#[test]
fn unparseable_json_is_400() {
    for text in [
        r#"{"resourceType": "Patient", "active": true"#,
        r#"{"resourceType": "Patient",}"#,
        "",
        "not json at all",
        r#"{"resourceType": "Patient", "active": tru}"#,
    ] {
        post_json_text("Patient", text).assert_outcome(400);
    }
}

#[test]
fn json_that_is_not_a_resource_is_400() {
    for text in [
        "[]",
        "42",
        "\"Patient\"",
        "null",
        "{}",
        r#"{"active": true}"#,
    ] {
        post_json_text("Patient", text).assert_outcome(400);
    }
}

#[test]
fn wrong_json_types_are_400() {
    let mut p = patient(&uid());
    p["active"] = json!("yes");
    post("Patient").json(&p).send().assert_outcome(400);
    let mut p = patient(&uid());
    p["name"] = json!({"family": "not an array"});
    post("Patient").json(&p).send().assert_outcome(400);
}

#[test]
fn unparseable_xml_is_400() {
    for text in [
        "<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\"/>",
        "<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\"></Patient>",
        "not xml",
        "<Patient><active value=\"true\"/></Patient>",
        "<Patient xmlns=\"http://hl7.org/fhir\"><foo value=\"1\"/></Patient>",
    ] {
        post("Patient")
            .xml(text)
            .accept(FHIR_JSON)
            .send()
            .assert_outcome(400);
    }
}

#[test]
fn unknown_elements_are_400_with_their_path() {
    let patient_id = new_patient();
    let mut doc = document_reference(&patient_id, &uid());
    doc["content"][0]["attachment"]["foo"] = json!("bar");
    let resp = post("DocumentReference").json(&doc).send();
    let oo = resp.assert_outcome(400);
    assert_issue_at(&resp, &oo, "DocumentReference.content[0].attachment.foo");

    let mut p = patient(&uid());
    p["favouriteColour"] = json!("blue");
    let resp = post("Patient").json(&p).send();
    let oo = resp.assert_outcome(400);
    assert_issue_at(&resp, &oo, "Patient.favouriteColour");
}

fn assert_422_at(resource: &Value, path: &str) {
    let rt = resource["resourceType"].as_str().expect("has a type");
    let resp = post(rt).json(resource).send();
    let oo = resp.assert_outcome(422);
    assert_issue_at(&resp, &oo, path);
}

#[test]
fn document_reference_without_status_is_422() {
    let mut doc = document_reference(&new_patient(), &uid());
    doc.as_object_mut().expect("object").remove("status");
    assert_422_at(&doc, "DocumentReference.status");
}

#[test]
fn document_reference_with_a_bad_status_code_is_422() {
    let mut doc = document_reference(&new_patient(), &uid());
    doc["status"] = json!("bogus");
    assert_422_at(&doc, "DocumentReference.status");
}

#[test]
fn document_reference_about_a_practitioner_is_422() {
    let prac = id_of(&create(&practitioner(&uid())));
    let mut doc = document_reference(&new_patient(), &uid());
    doc["subject"] = json!({"reference": format!("Practitioner/{prac}")});
    assert_422_at(&doc, "DocumentReference.subject");
}

#[test]
fn consent_without_patient_is_422() {
    let mut c = consent(&new_patient(), &uid());
    c.as_object_mut().expect("object").remove("patient");
    assert_422_at(&c, "Consent.patient");
}

#[test]
fn attachment_size_must_match_data() {
    let mut doc = document_reference(&new_patient(), &uid());
    doc["content"][0]["attachment"]["size"] = json!(12);
    assert_422_at(&doc, "DocumentReference.content[0].attachment");
}

#[test]
fn rule_breaking_updates_are_422_too() {
    let created = create(&document_reference(&new_patient(), &uid()));
    let id = id_of(&created);
    let mut bad = created.clone();
    bad["status"] = json!("bogus");
    let resp = put(&format!("DocumentReference/{id}")).json(&bad).send();
    let oo = resp.assert_outcome(422);
    assert_issue_at(&resp, &oo, "DocumentReference.status");
}

#[test]
fn body_type_must_match_the_url_type() {
    post("Practitioner")
        .json(&patient(&uid()))
        .send()
        .assert_outcome(400);
    let id = new_patient();
    let mut p = patient(&uid());
    p["id"] = json!(id);
    put(&format!("Practitioner/{id}"))
        .json(&p)
        .send()
        .assert_outcome(400);
    get(&format!("Practitioner/{id}"))
        .send()
        .assert_outcome(404);
}

#[test]
fn unknown_resource_types_are_404() {
    get("Foo").send().assert_outcome(404);
    get("Foo/1").send().assert_outcome(404);
    get("Foo/1/_history").send().assert_outcome(404);
    post("Foo")
        .json(&json!({"resourceType": "Foo"}))
        .send()
        .assert_outcome(404);
    put("Foo/1")
        .json(&json!({"resourceType": "Foo", "id": "1"}))
        .send()
        .assert_outcome(404);
    // Resource type names are case-sensitive.
    get(&format!("patient/{}", uid()))
        .send()
        .assert_outcome(404);
}

#[test]
fn non_hosted_r4_types_are_404() {
    get("Observation/1").send().assert_outcome(404);
    get("Observation/1/_history/1").send().assert_outcome(404);
    get("Observation/_history").send().assert_outcome(404);
    post("Observation")
        .json(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}))
        .send()
        .assert_outcome(404);
}

#[test]
fn unsupported_interactions_are_405() {
    let id = new_patient();
    request("PATCH", &format!("Patient/{id}"))
        .content_type("application/json-patch+json")
        .bytes(r#"[{"op": "replace", "path": "/active", "value": false}]"#)
        .send()
        .assert_outcome(405);
    post(&format!("Patient/{id}"))
        .json(&patient(&uid()))
        .send()
        .assert_outcome(405);
    request("PATCH", "Patient/1").send().assert_outcome(405);
    post("Patient/1")
        .json(&patient(&uid()))
        .send()
        .assert_outcome(405);
    post("metadata")
        .json(&patient(&uid()))
        .send()
        .assert_outcome(405);
    delete("metadata").send().assert_outcome(405);
    post(&format!("Patient/{id}/_history"))
        .json(&patient(&uid()))
        .send()
        .assert_outcome(405);
    delete(&format!("Patient/{id}/_history/1"))
        .send()
        .assert_outcome(405);
    // And nothing changed.
    let r = get(&format!("Patient/{id}")).send();
    r.assert_status(200);
    assert_eq!(r.required_header("etag"), "W/\"1\"");
}

#[test]
fn audit_events_are_never_changed() {
    let example = conformance::examples::load("AuditEvent-example.json");
    let mut body = example.clone();
    body.as_object_mut().expect("object").remove("id");
    // A backend client may add an event (the official example), never change one.
    let created = post("AuditEvent").json(&body).send();
    created.assert_status(201);
    let id = id_of(&created.json());
    put(&format!("AuditEvent/{id}"))
        .json(&created.json())
        .send()
        .assert_outcome(405);
    delete(&format!("AuditEvent/{id}"))
        .send()
        .assert_outcome(405);
    put("AuditEvent/example")
        .json(&example)
        .send()
        .assert_outcome(405);
    delete("AuditEvent/example").send().assert_outcome(405);
    put(&format!("AuditEvent?identifier={}", token(&uid())))
        .json(&body)
        .send()
        .assert_outcome(405);
    delete(&format!("AuditEvent?identifier={}", token(&uid())))
        .send()
        .assert_outcome(405);
    get("AuditEvent/example").send().assert_outcome(404);
    get(&format!("AuditEvent/{}", uid()))
        .send()
        .assert_outcome(404);
}

#[test]
fn a_rejected_update_leaves_the_resource_unchanged() {
    let created = create(&document_reference(&new_patient(), &uid()));
    let id = id_of(&created);
    let path = format!("DocumentReference/{id}");

    let mut bad = created.clone();
    bad.as_object_mut().expect("object").remove("status");
    put(&path).json(&bad).send().assert_outcome(422);
    let mut unknown = created.clone();
    unknown["foo"] = json!(1);
    put(&path).json(&unknown).send().assert_outcome(400);
    put(&path)
        .if_match("W/\"7\"")
        .json(&created)
        .send()
        .assert_outcome(412);

    let now = get(&path).send();
    now.assert_status(200);
    assert_eq!(now.required_header("etag"), "W/\"1\"");
    assert_eq!(now.resource("DocumentReference"), created);
    let history = get(&format!("{path}/_history")).send();
    history.assert_status(200);
    assert_eq!(
        entries(&history.resource("Bundle")).len(),
        1,
        "a refused update must not add a version"
    );
    get(&format!("{path}/_history/2"))
        .send()
        .assert_outcome(404);
}

#[test]
fn a_failed_create_leaves_nothing_behind() {
    let patient_created = create(&patient(&uid()));
    let patient_id = id_of(&patient_created);
    let ident = uid();
    let mut bad = document_reference(&patient_id, &ident);
    bad["status"] = json!("bogus");
    post("DocumentReference")
        .json(&bad)
        .send()
        .assert_outcome(422);

    // No DocumentReference with this identifier exists: a conditional create creates.
    let good = document_reference(&patient_id, &ident);
    post("DocumentReference")
        .header("If-None-Exist", format!("identifier={}", token(&ident)))
        .json(&good)
        .send()
        .assert_status(201);

    // And the type history holds exactly that one version for the identifier.
    let since = url_encode(
        patient_created["meta"]["lastUpdated"]
            .as_str()
            .unwrap_or_default(),
    );
    let with_ident = all_pages(&format!(
        "DocumentReference/_history?_since={since}&_count=100"
    ))
    .into_iter()
    .filter(|e| e["resource"]["identifier"][0]["value"] == ident.as_str())
    .count();
    assert_eq!(
        with_ident, 1,
        "the refused create must leave no history entry"
    );
}

#[test]
fn unknown_paths_are_404_with_an_outcome() {
    get("does/not/exist/at/all/really")
        .send()
        .assert_outcome(404);
    get("/nothing-here").send().assert_outcome(404);
}

#[test]
fn invalid_utf8_in_an_xml_body_is_400() {
    let mut body = b"<Patient xmlns=\"http://hl7.org/fhir\"><name><family value=\"".to_vec();
    body.extend_from_slice(&[0xff, 0xfe, b'x']);
    body.extend_from_slice(b"\"/></name></Patient>");
    post("Patient")
        .content_type(FHIR_XML)
        .accept(FHIR_JSON)
        .bytes(body)
        .send()
        .assert_outcome(400);

    let mut body = b"<Patient xmlns=\"http://hl7.org/fhir\"><".to_vec();
    body.extend_from_slice(&[0xc3, 0x28]);
    body.extend_from_slice(b"/></Patient>");
    post("Patient")
        .content_type(FHIR_XML)
        .accept(FHIR_JSON)
        .bytes(body)
        .send()
        .assert_outcome(400);

    // In the namespace: found by the fuzz run (the XML reader panicked, 500).
    let mut body = b"<Patient xmlns=\"http://hl7.org/".to_vec();
    body.push(0xff);
    body.extend_from_slice(b"hir\"><active value=\"true\"/></Patient>");
    post("Patient")
        .content_type(FHIR_XML)
        .accept(FHIR_JSON)
        .bytes(body)
        .send()
        .assert_outcome(400);
}

#[test]
fn invalid_utf8_in_a_json_body_is_400() {
    let mut body = br#"{"resourceType": "Patient", "name": [{"family": ""#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe, b'x']);
    body.extend_from_slice(br#""}]}"#);
    post("Patient")
        .content_type(FHIR_JSON)
        .bytes(body)
        .send()
        .assert_outcome(400);
}

/// FHIR strings may not hold characters below U+0020 other than tab, CR
/// and LF (R4 datatypes, string); XML could not even carry a NUL.
#[test]
fn nul_in_a_string_is_refused() {
    let mut p = patient(&uid());
    p["name"][0]["family"] = json!("a\u{0}b");
    let resp = post("Patient").json(&p).send();
    if resp.status == 201 {
        let id = id_of(&resp.json());
        let xml = get(&format!("Patient/{id}?_format=xml")).send();
        let at = xml
            .body
            .windows(6)
            .position(|w| w == b"family")
            .unwrap_or(0);
        resp.fail(&format!(
            "a NUL character in a string was stored (201); reading it as XML then gives {}: ...{}",
            xml.status,
            snippet(&xml.body[at..], 40)
        ));
    }
    if resp.status != 400 && resp.status != 422 {
        resp.fail("a NUL character in a string must be refused with 400 or 422");
    }
    resp.assert_outcome(resp.status);
}

/// NUL characters in the places the store indexes or keeps as columns:
/// refused, never a 5xx.
#[test]
fn nul_in_ids_identifiers_and_content_types_is_refused() {
    let binary =
        json!({"resourceType": "Binary", "contentType": "text/plain\u{0}", "data": "aGVsbG8="});
    let resp = {
        // This might store a Binary; keep it apart from the "nothing stored" checks.
        let _guard = body_limit::lock();
        post("Binary").json(&binary).send()
    };
    if resp.status != 400 && resp.status != 422 {
        resp.fail("a NUL character in Binary.contentType must be refused with 400 or 422");
    }
    resp.assert_outcome(resp.status);

    let p = patient(&format!("a\u{0}{}", uid()));
    let resp = post("Patient").json(&p).send();
    if resp.status != 400 && resp.status != 422 {
        resp.fail("NUL characters in an identifier must be refused with 400 or 422");
    }
    resp.assert_outcome(resp.status);

    let id = format!("x\u{0}y{}", &uid()[..8]);
    let mut p = patient(&uid());
    p["id"] = json!(id);
    put(&format!("Patient/{}", url_encode(&id)))
        .json(&p)
        .send()
        .assert_outcome(400);

    // NUL in a URL id or a conditional criterion.
    get("Patient/a%00b").send().assert_outcome(404);
    post("Patient")
        .header("If-None-Exist", "identifier=a%00b")
        .json(&patient(&uid()))
        .send()
        .assert_outcome(400);
}

/// Request bodies over `FHIRLEDGER_MAX_BODY_BYTES` are refused with 413 and
/// leave nothing stored. These run against a second server on the same
/// database whose limit is small ([`SMALL_BODY_LIMIT`]).
mod body_limit {
    use std::sync::Mutex;

    use conformance::raw::{Framing, RawRequest, RawResponse};
    use conformance::*;
    use serde_json::{json, Value};

    /// Tests that check "nothing was stored" by looking at the newest Binary
    /// version must not overlap with tests that create (or might create)
    /// Binaries; in this test binary, every such test holds this lock.
    static BINARY_WRITES: Mutex<()> = Mutex::new(());

    pub fn lock() -> std::sync::MutexGuard<'static, ()> {
        BINARY_WRITES.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn srv() -> &'static TestServer {
        small_limit_server()
    }

    fn send_raw(req: RawRequest) -> RawResponse {
        req.send(srv()).unwrap_or_else(|e| {
            panic!(
                "the exchange failed: {e}\nserver log:\n{}",
                srv().log_tail(20)
            )
        })
    }

    fn assert_413(resp: &RawResponse) {
        assert_eq!(resp.status, 413, "expected 413, got {resp:?}");
        assert_eq!(resp.media_type(), FHIR_JSON, "{resp:?}");
        let oo: Value = serde_json::from_slice(&resp.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {resp:?}"));
        assert_eq!(oo["resourceType"], "OperationOutcome", "{oo}");
    }

    /// The newest Binary version known to the server (fullUrl and etag).
    fn newest_binary_version() -> Option<(String, String)> {
        let resp = Request::on(srv(), "GET", "Binary/_history?_count=1").send();
        resp.assert_status(200);
        let bundle = resp.resource("Bundle");
        entries(&bundle).first().map(|e| {
            (
                e["fullUrl"].as_str().unwrap_or_default().to_string(),
                e["response"]["etag"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
    }

    fn big_patient(bytes: usize) -> Vec<u8> {
        let mut p = patient(&uid());
        p["text"] = json!({
            "status": "generated",
            "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>", "x".repeat(bytes))
        });
        p.to_string().into_bytes()
    }

    fn still_healthy() {
        Request::on(srv(), "GET", "metadata")
            .send()
            .assert_status(200);
    }

    #[test]
    fn the_limit_is_configured() {
        assert_eq!(srv().max_body_bytes, Some(SMALL_BODY_LIMIT));
    }

    #[test]
    fn a_resource_over_the_limit_is_413() {
        let body = big_patient(SMALL_BODY_LIMIT as usize + 10);
        let resp = send_raw(
            RawRequest::new("POST", "Patient")
                .header("Content-Type", FHIR_JSON)
                .header("Accept", FHIR_JSON)
                .body(body, Framing::Length),
        );
        assert_413(&resp);
        still_healthy();
    }

    #[test]
    fn a_chunked_resource_over_the_limit_is_413() {
        let body = big_patient(SMALL_BODY_LIMIT as usize * 2);
        let resp = send_raw(
            RawRequest::new("POST", "Patient")
                .header("Content-Type", FHIR_JSON)
                .header("Accept", FHIR_JSON)
                .body(body, Framing::Chunked(16 * 1024)),
        );
        assert_413(&resp);
        still_healthy();
    }

    #[test]
    fn a_resource_under_the_limit_is_accepted() {
        let body = big_patient(SMALL_BODY_LIMIT as usize / 2);
        let resp = Request::on(srv(), "POST", "Patient")
            .content_type(FHIR_JSON)
            .bytes(body)
            .send();
        resp.assert_status(201);
    }

    #[test]
    fn a_binary_upload_over_the_limit_is_413_and_stores_nothing() {
        let _guard = lock();
        let before = newest_binary_version();
        let resp = send_raw(
            RawRequest::new("POST", "Binary")
                .header("Content-Type", "application/octet-stream")
                .header("Accept", FHIR_JSON)
                .body(vec![7u8; SMALL_BODY_LIMIT as usize + 1], Framing::Length),
        );
        assert_413(&resp);
        assert_eq!(
            newest_binary_version(),
            before,
            "a refused upload must store nothing"
        );
        still_healthy();
    }

    #[test]
    fn a_chunked_binary_upload_over_the_limit_is_413_and_stores_nothing() {
        let _guard = lock();
        let before = newest_binary_version();
        let resp = send_raw(
            RawRequest::new("POST", "Binary")
                .header("Content-Type", "application/pdf")
                .header("Accept", FHIR_JSON)
                .body(
                    vec![1u8; SMALL_BODY_LIMIT as usize * 3],
                    Framing::Chunked(64 * 1024),
                ),
        );
        assert_413(&resp);
        assert_eq!(
            newest_binary_version(),
            before,
            "a refused upload must store nothing"
        );
        still_healthy();
    }

    #[test]
    fn a_binary_of_exactly_the_limit_is_accepted() {
        let _guard = lock();
        let bytes = vec![9u8; SMALL_BODY_LIMIT as usize];
        let resp = Request::on(srv(), "POST", "Binary")
            .content_type("application/octet-stream")
            .bytes(bytes.clone())
            .send();
        resp.assert_status(201);
        let location = resp.required_header("location");
        let read = Request::on(srv(), "GET", &location.replace("/_history/1", ""))
            .accept("*/*")
            .send();
        read.assert_status(200);
        assert!(read.body == bytes, "the bytes differ");
    }

    #[test]
    fn a_binary_update_over_the_limit_leaves_the_old_version() {
        let _guard = lock();
        let resp = Request::on(srv(), "POST", "Binary")
            .content_type("text/plain")
            .bytes(b"small".to_vec())
            .send();
        resp.assert_status(201);
        let location = resp.required_header("location");
        let path = location.replace("/_history/1", "");
        let path_only = path
            .strip_prefix(&srv().public_base)
            .unwrap_or_else(|| panic!("{location} is not on {}", srv().public_base))
            .to_string();
        let refused = send_raw(
            RawRequest::new("PUT", &path_only)
                .header("Content-Type", "text/plain")
                .header("Accept", FHIR_JSON)
                .body(
                    vec![b'a'; SMALL_BODY_LIMIT as usize + 100],
                    Framing::Chunked(32 * 1024),
                ),
        );
        assert_413(&refused);
        let now = Request::on(srv(), "GET", &path).accept("*/*").send();
        now.assert_status(200);
        assert_eq!(now.required_header("etag"), "W/\"1\"");
        assert_eq!(now.body, b"small");
    }
}
