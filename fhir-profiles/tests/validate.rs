//! validate_resource: the snapshot rules, terminology, reference targets, this server's
//! tightening and Attachment integrity, each located by FHIRPath.

use fhir_profiles::outcome::{IssueType, Severity};
use fhir_profiles::validate::validate_resource;
use serde_json::{json, Value};

/// (code, first expression) of every error.
fn errors(resource: &Value) -> Vec<(IssueType, String)> {
    validate_resource(resource)
        .into_iter()
        .filter(|i| i.severity == Severity::Error)
        .map(|i| (i.code, i.expression.first().cloned().unwrap_or_default()))
        .collect()
}

fn has_error(resource: &Value, code: IssueType, at: &str) -> bool {
    let found = errors(resource);
    let ok = found.iter().any(|(c, e)| *c == code && e == at);
    if !ok {
        eprintln!("expected {code:?} at {at}, got {found:?}");
    }
    ok
}

fn document() -> Value {
    json!({"resourceType": "DocumentReference", "status": "current",
        "subject": {"reference": "Patient/p1"},
        "author": [{"reference": "Practitioner/d1"}, {"reference": "https://h.example/fhir/Organization/o1/_history/2"}],
        "content": [{"attachment": {"contentType": "text/plain", "data": "aGVsbG8=", "size": 5,
            "hash": "qvTGHdzF6KLavt4PO0gs2a6pQ00="}}],
        "context": {"encounter": [{"reference": "Encounter/1"}]}})
}

fn consent() -> Value {
    json!({"resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p1"},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "permit", "provision": [{"type": "deny"}]}})
}

fn with(mut base: Value, pointer: &str, value: Option<Value>) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    let target = base.pointer_mut(parent).and_then(Value::as_object_mut);
    let Some(target) = target else {
        panic!("no {parent}");
    };
    match value {
        Some(v) => target.insert(key.to_string(), v),
        None => target.remove(key),
    };
    base
}

#[test]
fn valid_resources_pass() {
    assert_eq!(errors(&document()), vec![]);
    assert_eq!(errors(&consent()), vec![]);
}

#[test]
fn document_reference_status_is_required_and_bound() {
    let missing = with(document(), "/status", None);
    assert!(has_error(
        &missing,
        IssueType::Required,
        "DocumentReference.status"
    ));
    let bad = with(document(), "/status", Some(json!("final")));
    assert!(has_error(
        &bad,
        IssueType::CodeInvalid,
        "DocumentReference.status"
    ));
    let bad_doc_status = with(document(), "/docStatus", Some(json!("done")));
    assert!(has_error(
        &bad_doc_status,
        IssueType::CodeInvalid,
        "DocumentReference.docStatus"
    ));
}

#[test]
fn document_reference_needs_content_with_attachment() {
    let none = with(document(), "/content", None);
    assert!(has_error(
        &none,
        IssueType::Required,
        "DocumentReference.content"
    ));
    let no_attachment = with(
        document(),
        "/content",
        Some(json!([{"format": {"code": "x"}}])),
    );
    assert!(has_error(
        &no_attachment,
        IssueType::Required,
        "DocumentReference.content[0].attachment"
    ));
}

#[test]
fn document_reference_subject_must_be_a_patient() {
    let practitioner = with(
        document(),
        "/subject",
        Some(json!({"reference": "Practitioner/d1"})),
    );
    assert!(has_error(
        &practitioner,
        IssueType::Value,
        "DocumentReference.subject"
    ));
    // Group and Device are allowed by R4 but not by this server.
    let group = with(
        document(),
        "/subject",
        Some(json!({"reference": "Group/g1"})),
    );
    assert!(has_error(
        &group,
        IssueType::Value,
        "DocumentReference.subject"
    ));
    let typed = with(
        document(),
        "/subject",
        Some(json!({"type": "Device", "display": "x"})),
    );
    assert!(has_error(
        &typed,
        IssueType::Value,
        "DocumentReference.subject"
    ));
    for fine in [
        json!({"reference": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"}),
        json!({"identifier": {"system": "s", "value": "1"}}),
        json!({"display": "Jane"}),
        json!({"reference": "Patient/p1/_history/3"}),
        json!({"reference": "http://other.example/fhir/Patient/9"}),
    ] {
        assert_eq!(
            errors(&with(document(), "/subject", Some(fine.clone()))),
            vec![],
            "{fine}"
        );
    }
}

#[test]
fn document_reference_author_types() {
    let device = with(
        document(),
        "/author",
        Some(json!([{"reference": "Device/x"}])),
    );
    assert!(has_error(
        &device,
        IssueType::Value,
        "DocumentReference.author[0]"
    ));
    let related = with(
        document(),
        "/author",
        Some(json!([{"reference": "Patient/p1"}, {"reference": "RelatedPerson/r"}])),
    );
    assert!(has_error(
        &related,
        IssueType::Value,
        "DocumentReference.author[1]"
    ));
    let encounter = with(
        document(),
        "/author",
        Some(json!([{"reference": "Encounter/e1"}])),
    );
    assert!(has_error(
        &encounter,
        IssueType::Value,
        "DocumentReference.author[0]"
    ));
    let role = with(
        document(),
        "/author",
        Some(json!([{"reference": "PractitionerRole/r1"}])),
    );
    assert_eq!(errors(&role), vec![]);
}

#[test]
fn contained_references_take_the_contained_type() {
    let wrong = with(
        with(
            document(),
            "/contained",
            Some(json!([{"resourceType": "Practitioner", "id": "c1"}])),
        ),
        "/subject",
        Some(json!({"reference": "#c1"})),
    );
    assert!(has_error(
        &wrong,
        IssueType::Value,
        "DocumentReference.subject"
    ));
    let right = with(
        with(
            document(),
            "/contained",
            Some(json!([{"resourceType": "Patient", "id": "c1"}])),
        ),
        "/subject",
        Some(json!({"reference": "#c1"})),
    );
    assert_eq!(errors(&right), vec![]);
    let dangling = with(document(), "/subject", Some(json!({"reference": "#nope"})));
    assert!(has_error(
        &dangling,
        IssueType::Value,
        "DocumentReference.subject.reference"
    ));
}

#[test]
fn references_to_types_not_hosted_are_accepted_where_allowed() {
    let doc = document();
    assert_eq!(doc["context"]["encounter"][0]["reference"], "Encounter/1");
    assert_eq!(errors(&doc), vec![]);
    let episode = with(
        document(),
        "/context",
        Some(json!({"encounter": [{"reference": "EpisodeOfCare/2"}]})),
    );
    assert_eq!(errors(&episode), vec![]);
    let wrong = with(
        document(),
        "/context",
        Some(json!({"encounter": [{"reference": "Task/2"}]})),
    );
    assert!(has_error(
        &wrong,
        IssueType::Value,
        "DocumentReference.context.encounter[0]"
    ));
    let malformed = with(
        document(),
        "/context",
        Some(json!({"related": [{"reference": "not a reference"}]})),
    );
    assert!(has_error(
        &malformed,
        IssueType::Value,
        "DocumentReference.context.related[0].reference"
    ));
}

#[test]
fn consent_requires_patient_scope_category_and_status() {
    for (field, code) in [
        ("patient", IssueType::Required),
        ("scope", IssueType::Required),
        ("category", IssueType::Required),
        ("status", IssueType::Required),
    ] {
        let missing = with(consent(), &format!("/{field}"), None);
        assert!(
            has_error(&missing, code, &format!("Consent.{field}")),
            "{field}"
        );
    }
    let bad_status = with(consent(), "/status", Some(json!("approved")));
    assert!(has_error(
        &bad_status,
        IssueType::CodeInvalid,
        "Consent.status"
    ));
}

#[test]
fn consent_patient_must_be_a_patient() {
    let group = with(
        consent(),
        "/patient",
        Some(json!({"reference": "Group/g1"})),
    );
    assert!(has_error(&group, IssueType::Value, "Consent.patient"));
}

#[test]
fn nested_provisions_use_the_referenced_definition() {
    let bad = with(
        consent(),
        "/provision",
        Some(json!({"type": "permit", "provision": [{"type": "maybe",
        "actor": [{"role": {"text": "x"}}]}]})),
    );
    assert!(has_error(
        &bad,
        IssueType::CodeInvalid,
        "Consent.provision.provision[0].type"
    ));
    assert!(has_error(
        &bad,
        IssueType::Required,
        "Consent.provision.provision[0].actor[0].reference"
    ));
}

#[test]
fn attachment_size_and_hash_must_match_the_data() {
    let size = with(document(), "/content/0/attachment/size", Some(json!(6)));
    assert!(has_error(
        &size,
        IssueType::Value,
        "DocumentReference.content[0].attachment.size"
    ));
    let hash = with(
        document(),
        "/content/0/attachment/hash",
        Some(json!("AAAAAAAAAAAAAAAAAAAAAAAAAAA=")),
    );
    assert!(has_error(
        &hash,
        IssueType::Value,
        "DocumentReference.content[0].attachment.hash"
    ));
    let base64 = with(
        document(),
        "/content/0/attachment/data",
        Some(json!("@@@@")),
    );
    assert!(has_error(
        &base64,
        IssueType::Value,
        "DocumentReference.content[0].attachment.data"
    ));
    // Anywhere in a resource, not just DocumentReference.content.
    let photo = json!({"resourceType": "Patient", "photo": [{"data": "aGVsbG8=", "size": 4}]});
    assert!(has_error(&photo, IssueType::Value, "Patient.photo[0].size"));
}

#[test]
fn cardinality_and_choice_types() {
    let two =
        json!({"resourceType": "Patient", "deceasedBoolean": true, "deceasedDateTime": "2020"});
    assert!(has_error(&two, IssueType::Structure, "Patient.deceased"));
    let link = json!({"resourceType": "Patient", "link": [{"type": "seealso"}]});
    assert!(has_error(
        &link,
        IssueType::Required,
        "Patient.link[0].other"
    ));
    let extension_only = json!({"resourceType": "DocumentReference",
        "_status": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]},
        "content": [{"attachment": {"url": "http://x"}}]});
    assert_eq!(errors(&extension_only), vec![]);
    let audit = json!({"resourceType": "AuditEvent", "type": {"code": "rest"}, "recorded": "2020-01-01T00:00:00Z",
        "agent": [{"requestor": true}], "source": {"observer": {"display": "x"}}, "action": "X"});
    assert!(has_error(
        &audit,
        IssueType::CodeInvalid,
        "AuditEvent.action"
    ));
}

#[test]
fn data_type_codes_use_the_schema_enumerations() {
    let p = json!({"resourceType": "Patient", "gender": "F", "identifier": [{"use": "primary", "value": "1"}],
        "telecom": [{"system": "pager2", "value": "1"}]});
    assert!(has_error(&p, IssueType::CodeInvalid, "Patient.gender"));
    assert!(has_error(
        &p,
        IssueType::CodeInvalid,
        "Patient.identifier[0].use"
    ));
    assert!(has_error(
        &p,
        IssueType::CodeInvalid,
        "Patient.telecom[0].system"
    ));
}

#[test]
fn contained_resources_follow_their_own_profile_and_dom_rules() {
    let doc = with(
        document(),
        "/contained",
        Some(json!([
        {"resourceType": "Patient", "id": "c1", "gender": "x", "meta": {"versionId": "1"},
         "contained": [{"resourceType": "Organization", "id": "o"}]}])),
    );
    let doc = with(doc, "/subject", Some(json!({"reference": "#c1"})));
    assert!(has_error(
        &doc,
        IssueType::CodeInvalid,
        "DocumentReference.contained[0].gender"
    ));
    assert!(has_error(
        &doc,
        IssueType::Invariant,
        "DocumentReference.contained[0].meta.versionId"
    ));
    assert!(has_error(
        &doc,
        IssueType::Invariant,
        "DocumentReference.contained[0].contained[0]"
    ));
    let unreferenced = with(
        document(),
        "/contained",
        Some(json!([{"resourceType": "Patient", "id": "c1"}])),
    );
    assert_eq!(errors(&unreferenced), vec![]);
    let warnings = validate_resource(&unreferenced);
    assert!(warnings.iter().any(|i| i.severity == Severity::Warning
        && i.expression == vec!["DocumentReference.contained[0]".to_string()]));
}

#[test]
fn narrative_must_not_carry_scripts() {
    let doc = with(
        document(),
        "/text",
        Some(json!({"status": "generated",
        "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p onclick=\"steal()\">x</p></div>"})),
    );
    assert!(has_error(
        &doc,
        IssueType::Invariant,
        "DocumentReference.text.div"
    ));
}

#[test]
fn structural_problems_are_reported_too() {
    let doc = with(document(), "/bogus", Some(json!(1)));
    assert!(has_error(
        &doc,
        IssueType::Structure,
        "DocumentReference.bogus"
    ));
    assert!(!errors(&json!("not a resource")).is_empty());
    assert!(!errors(&json!({"resourceType": "Nope"})).is_empty());
}

#[test]
fn bundle_entries_are_checked_on_their_own_terms() {
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "DocumentReference", "status": "current",
            "content": [{"attachment": {"data": "aGVsbG8=", "size": 3}}]}}]});
    let found = errors(&bundle);
    assert_eq!(
        found,
        vec![(
            IssueType::Value,
            "Bundle.entry[0].resource.content[0].attachment.size".to_string()
        )]
    );
}
