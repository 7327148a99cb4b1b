//! _summary and _elements.

use fhir_profiles::summary::{apply_elements, apply_summary, SummaryMode};
use serde_json::{json, Value};

fn patient() -> Value {
    json!({"resourceType": "Patient", "id": "p1",
        "meta": {"versionId": "2", "tag": [{"system": "http://x", "code": "y"}]},
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
        "identifier": [{"value": "1"}], "active": true, "_active": {"id": "a"},
        "name": [{"family": "F"}], "maritalStatus": {"text": "M"},
        "deceasedBoolean": false, "photo": [{"url": "http://p"}],
        "contact": [{"name": {"text": "c"}}], "link": [{"other": {"reference": "Patient/2"}, "type": "seealso"}]})
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn subsetted(v: &Value) -> bool {
    v["meta"]["tag"].as_array().is_some_and(|tags| {
        tags.iter().any(|t| {
            t["system"] == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
                && t["code"] == "SUBSETTED"
        })
    })
}

#[test]
fn parses_summary_modes() {
    assert_eq!("true".parse(), Ok(SummaryMode::True));
    assert_eq!("text".parse(), Ok(SummaryMode::Text));
    assert_eq!("data".parse(), Ok(SummaryMode::Data));
    assert_eq!("count".parse(), Ok(SummaryMode::Count));
    assert_eq!("false".parse(), Ok(SummaryMode::False));
    assert!("TRUE".parse::<SummaryMode>().is_err());
    assert!("".parse::<SummaryMode>().is_err());
}

#[test]
fn summary_true_keeps_summary_elements() {
    let s = apply_summary(&patient(), SummaryMode::True);
    assert_eq!(
        keys(&s),
        vec![
            "resourceType",
            "id",
            "meta",
            "identifier",
            "active",
            "_active",
            "name",
            "deceasedBoolean",
            "link"
        ]
    );
    assert!(subsetted(&s));
    assert_eq!(s["meta"]["versionId"], "2");
    assert_eq!(s["meta"]["tag"].as_array().map(Vec::len), Some(2));
}

#[test]
fn summary_text_keeps_text_and_mandatory() {
    let s = apply_summary(&patient(), SummaryMode::Text);
    assert_eq!(keys(&s), vec!["resourceType", "id", "meta", "text"]);
    let doc = json!({"resourceType": "DocumentReference", "status": "current", "description": "d",
        "content": [{"attachment": {"url": "http://x"}}]});
    let s = apply_summary(&doc, SummaryMode::Text);
    assert_eq!(keys(&s), vec!["resourceType", "meta", "status", "content"]);
    assert!(subsetted(&s));
}

#[test]
fn summary_data_drops_text_and_false_is_identity() {
    let s = apply_summary(&patient(), SummaryMode::Data);
    assert!(s.get("text").is_none());
    assert!(s.get("photo").is_some());
    assert!(subsetted(&s));
    assert_eq!(apply_summary(&patient(), SummaryMode::False), patient());
    assert_eq!(apply_summary(&patient(), SummaryMode::Count), patient());
}

#[test]
fn subsetted_tag_is_not_duplicated() {
    let once = apply_summary(&patient(), SummaryMode::Data);
    let twice = apply_summary(&once, SummaryMode::Data);
    assert_eq!(once, twice);
}

#[test]
fn elements_keeps_listed_and_mandatory() {
    let s = apply_elements(&patient(), &["name", "deceased", " photo ", "nonsense"]);
    assert_eq!(
        keys(&s),
        vec![
            "resourceType",
            "id",
            "meta",
            "name",
            "deceasedBoolean",
            "photo"
        ]
    );
    assert!(subsetted(&s));
    let consent = json!({"resourceType": "Consent", "id": "c", "status": "active", "scope": {"text": "s"},
        "category": [{"text": "c"}], "patient": {"reference": "Patient/1"}, "dateTime": "2020"});
    let s = apply_elements(&consent, &["patient"]);
    assert_eq!(
        keys(&s),
        vec![
            "resourceType",
            "id",
            "meta",
            "status",
            "scope",
            "category",
            "patient"
        ]
    );
    let s = apply_elements(
        &json!({"resourceType": "Observation", "valueQuantity": {"value": 1}, "status": "final",
        "code": {"text": "x"}, "note": [{"text": "n"}]}),
        &["value[x]"],
    );
    // Without a snapshot only the schema's mandatory complex elements are known (code, not status).
    assert_eq!(
        keys(&s),
        vec!["resourceType", "meta", "valueQuantity", "code"]
    );
}

#[test]
fn non_objects_are_returned_as_they_are() {
    assert_eq!(apply_summary(&json!([1]), SummaryMode::True), json!([1]));
    assert_eq!(apply_elements(&json!("x"), &["a"]), json!("x"));
}
