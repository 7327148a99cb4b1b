//! Conditional create, update and delete, and If-Match.

use conformance::*;
use serde_json::json;

fn conditional_create(resource: &serde_json::Value, criteria: &str) -> Response {
    let rt = resource["resourceType"].as_str().expect("has a type");
    post(rt)
        .header("If-None-Exist", criteria)
        .json(resource)
        .send()
}

#[test]
fn conditional_create_by_identifier_creates_once() {
    let ident = uid();
    let first = conditional_create(&patient(&ident), &format!("identifier={}", token(&ident)));
    first.assert_status(201);
    let created = first.resource("Patient");
    let id = id_of(&created);

    let mut changed = patient(&ident);
    changed["gender"] = json!("male");
    let second = conditional_create(&changed, &format!("identifier={}", token(&ident)));
    second.assert_status(200);
    if !second.body.is_empty() {
        let body = second.resource("Patient");
        assert_eq!(body["id"], id.as_str(), "the existing resource is returned");
        assert_eq!(
            body["gender"], "female",
            "the existing resource must not be changed"
        );
    }
    // Nothing new was written.
    let now = get(&format!("Patient/{id}")).send();
    now.assert_status(200);
    assert_eq!(now.required_header("etag"), "W/\"1\"");
    assert_eq!(now.resource("Patient"), created);
    let history = get(&format!("Patient/{id}/_history")).send();
    history.assert_status(200);
    assert_eq!(entries(&history.resource("Bundle")).len(), 1);
}

#[test]
fn conditional_create_with_a_value_only_token() {
    let ident = uid();
    conditional_create(&patient(&ident), &format!("identifier={}", token(&ident)))
        .assert_status(201);
    // `identifier=value` (any system) matches too.
    conditional_create(&patient(&ident), &format!("identifier={ident}")).assert_status(200);
}

#[test]
fn conditional_create_by_id() {
    let created = create(&patient(&uid()));
    let id = id_of(&created);
    let again = conditional_create(&patient(&uid()), &format!("_id={id}"));
    again.assert_status(200);
    if !again.body.is_empty() {
        assert_eq!(again.resource("Patient")["id"], id.as_str());
    }
    conditional_create(&patient(&uid()), &format!("_id={}", uid())).assert_status(201);
}

#[test]
fn conditional_create_with_several_matches_is_412() {
    let ident = uid();
    create(&patient(&ident));
    create(&patient(&ident));
    conditional_create(&patient(&ident), &format!("identifier={}", token(&ident)))
        .assert_outcome(412);
}

#[test]
fn conditional_create_with_an_unsupported_parameter_is_400() {
    let ident = uid();
    conditional_create(&patient(&ident), "name=Conformance").assert_outcome(400);
    conditional_create(
        &patient(&ident),
        &format!("identifier={}&birthdate=1980", token(&ident)),
    )
    .assert_outcome(400);
    // Nothing was created by the refused requests.
    conditional_create(&patient(&ident), &format!("identifier={}", token(&ident)))
        .assert_status(201);
}

#[test]
fn conditional_create_works_for_other_types() {
    let patient_id = new_patient();
    let ident = uid();
    let doc = document_reference(&patient_id, &ident);
    conditional_create(&doc, &format!("identifier={}", token(&ident))).assert_status(201);
    conditional_create(&doc, &format!("identifier={}", token(&ident))).assert_status(200);
    // The same identifier on another type is another resource.
    conditional_create(
        &practitioner(&ident),
        &format!("identifier={}", token(&ident)),
    )
    .assert_status(201);
}

#[test]
fn conditional_update_creates_then_updates_the_match() {
    let ident = uid();
    let path = format!("Patient?identifier={}", token(&ident));
    let first = put(&path).json(&patient(&ident)).send();
    first.assert_status(201);
    assert_eq!(first.required_header("etag"), "W/\"1\"");
    let id = id_of(&first.resource("Patient"));
    assert!(first
        .required_header("location")
        .starts_with(&format!("{}/Patient/{id}/_history/1", base())));

    let mut changed = patient(&ident);
    changed["gender"] = json!("male");
    let second = put(&path).json(&changed).send();
    second.assert_status(200);
    assert_eq!(second.required_header("etag"), "W/\"2\"");
    let body = second.resource("Patient");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["gender"], "male");
    assert_eq!(read("Patient", &id)["gender"], "male");
}

#[test]
fn conditional_update_with_several_matches_is_412() {
    let ident = uid();
    let a = id_of(&create(&patient(&ident)));
    let b = id_of(&create(&patient(&ident)));
    let mut changed = patient(&ident);
    changed["gender"] = json!("male");
    put(&format!("Patient?identifier={}", token(&ident)))
        .json(&changed)
        .send()
        .assert_outcome(412);
    for id in [a, b] {
        let r = get(&format!("Patient/{id}")).send();
        r.assert_status(200);
        assert_eq!(
            r.required_header("etag"),
            "W/\"1\"",
            "Patient/{id} must be unchanged"
        );
    }
}

#[test]
fn conditional_delete_deletes_the_single_match() {
    let ident = uid();
    let id = id_of(&create(&patient(&ident)));
    let keep = id_of(&create(&patient(&uid())));
    delete(&format!("Patient?identifier={}", token(&ident)))
        .send()
        .assert_status(204);
    get(&format!("Patient/{id}")).send().assert_outcome(410);
    get(&format!("Patient/{keep}")).send().assert_status(200);
}

#[test]
fn conditional_delete_with_several_matches_is_412() {
    let ident = uid();
    let a = id_of(&create(&patient(&ident)));
    let b = id_of(&create(&patient(&ident)));
    delete(&format!("Patient?identifier={}", token(&ident)))
        .send()
        .assert_outcome(412);
    get(&format!("Patient/{a}")).send().assert_status(200);
    get(&format!("Patient/{b}")).send().assert_status(200);
}

#[test]
fn conditional_interactions_refuse_unsupported_criteria() {
    put("Patient?name=Conformance")
        .json(&patient(&uid()))
        .send()
        .assert_outcome(400);
    delete("Patient?name=Conformance")
        .send()
        .assert_outcome(400);
}

#[test]
fn if_match_guards_updates() {
    let mut resource = create(&patient(&uid()));
    let id = id_of(&resource);
    resource["gender"] = json!("male");
    put(&format!("Patient/{id}"))
        .if_match("W/\"1\"")
        .json(&resource)
        .send()
        .assert_status(200);

    // Stale version: refused, nothing written.
    resource["gender"] = json!("other");
    put(&format!("Patient/{id}"))
        .if_match("W/\"1\"")
        .json(&resource)
        .send()
        .assert_outcome(412);
    let now = get(&format!("Patient/{id}")).send();
    assert_eq!(now.required_header("etag"), "W/\"2\"");
    assert_eq!(now.resource("Patient")["gender"], "male");

    // Current version: accepted.
    let ok = put(&format!("Patient/{id}"))
        .if_match("W/\"2\"")
        .json(&resource)
        .send();
    ok.assert_status(200);
    assert_eq!(ok.required_header("etag"), "W/\"3\"");

    // Malformed.
    for bad in ["garbage", "W/", "\"unterminated"] {
        put(&format!("Patient/{id}"))
            .if_match(bad)
            .json(&resource)
            .send()
            .assert_outcome(400);
    }
    assert_eq!(get(&format!("Patient/{id}")).send().etag_version(), 3);
}

#[test]
fn if_match_on_a_missing_resource_is_not_a_create() {
    let id = uid();
    let mut resource = patient(&uid());
    resource["id"] = json!(id);
    let resp = put(&format!("Patient/{id}"))
        .if_match("W/\"1\"")
        .json(&resource)
        .send();
    if resp.status != 404 && resp.status != 409 && resp.status != 412 {
        resp.fail("If-Match on a resource that does not exist must fail (404, 409 or 412)");
    }
    resp.assert_outcome(resp.status);
    get(&format!("Patient/{id}")).send().assert_status(404);
}

#[test]
fn if_match_guards_deletes() {
    let mut resource = create(&patient(&uid()));
    let id = id_of(&resource);
    resource["gender"] = json!("male");
    put(&format!("Patient/{id}"))
        .json(&resource)
        .send()
        .assert_status(200);
    delete(&format!("Patient/{id}"))
        .if_match("W/\"1\"")
        .send()
        .assert_outcome(412);
    get(&format!("Patient/{id}")).send().assert_status(200);
    delete(&format!("Patient/{id}"))
        .if_match("W/\"2\"")
        .send()
        .assert_status(204);
    get(&format!("Patient/{id}")).send().assert_outcome(410);
}
