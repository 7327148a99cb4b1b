//! Instance, type and system history: history Bundles, newest first, paged.

use conformance::*;
use serde_json::{json, Value};

/// create, update, update, delete, update: five versions.
fn patient_with_five_versions() -> (String, Value) {
    let mut resource = create(&patient(&uid()));
    let id = id_of(&resource);
    let path = format!("Patient/{id}");
    resource["gender"] = json!("male");
    put(&path).json(&resource).send().assert_status(200);
    resource["gender"] = json!("other");
    put(&path).json(&resource).send().assert_status(200);
    delete(&path).send().assert_status(204);
    resource["gender"] = json!("unknown");
    let revived = put(&path).json(&resource).send();
    if revived.status != 200 && revived.status != 201 {
        revived.fail("an update after a delete must revive the resource");
    }
    assert_eq!(
        revived.etag_version(),
        5,
        "create, 2 updates, delete, update = 5 versions"
    );
    (id, resource)
}

fn version_of(entry: &Value) -> u64 {
    let etag = entry["response"]["etag"].as_str().unwrap_or_default();
    parse_weak_etag(etag)
        .unwrap_or_else(|| panic!("entry without a W/\"n\" response.etag: {entry}"))
}

#[test]
fn instance_history_lists_every_version_newest_first() {
    let (id, _) = patient_with_five_versions();
    let resp = get(&format!("Patient/{id}/_history")).send();
    resp.assert_status(200);
    let bundle = resp.resource("Bundle");
    assert_eq!(bundle["type"], "history");
    let entries = entries(&bundle);
    let versions: Vec<u64> = entries.iter().map(version_of).collect();
    assert_eq!(versions, vec![5, 4, 3, 2, 1], "newest first: {bundle}");
    let full_url = format!("{}/Patient/{id}", base());
    for e in &entries {
        assert_eq!(e["fullUrl"], full_url.as_str(), "{e}");
    }
    let methods: Vec<&str> = entries
        .iter()
        .map(|e| e["request"]["method"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(methods, vec!["PUT", "DELETE", "PUT", "PUT", "POST"]);
    assert_eq!(entries[4]["request"]["url"], "Patient");
    for e in &entries[..4] {
        assert_eq!(e["request"]["url"], format!("Patient/{id}").as_str(), "{e}");
    }
    let statuses: Vec<String> = entries
        .iter()
        .map(|e| {
            e["response"]["status"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(3)
                .collect()
        })
        .collect();
    assert_eq!(statuses[1], "204", "the delete entry");
    assert_eq!(statuses[2], "200");
    assert_eq!(statuses[3], "200");
    assert_eq!(statuses[4], "201");
    assert!(
        statuses[0] == "200" || statuses[0] == "201",
        "the revive: {}",
        statuses[0]
    );
    // The delete has no resource; the others carry their version.
    assert!(
        entries[1].get("resource").is_none(),
        "a delete entry has no resource: {}",
        entries[1]
    );
    for e in entries
        .iter()
        .filter(|e| e["request"]["method"] != "DELETE")
    {
        assert_eq!(
            e["resource"]["meta"]["versionId"],
            version_of(e).to_string().as_str()
        );
        assert_eq!(e["resource"]["id"], id.as_str());
    }
    assert_eq!(entries[0]["resource"]["gender"], "unknown");
    assert_eq!(entries[4]["resource"]["gender"], "female");
}

#[test]
fn instance_history_pages_with_count() {
    let (id, _) = patient_with_five_versions();
    let mut resource = read("Patient", &id);
    for _ in 0..2 {
        resource["active"] = json!(resource["active"] != true);
        put(&format!("Patient/{id}"))
            .json(&resource)
            .send()
            .assert_status(200);
    }
    // 7 versions, pages of 2.
    let first = get(&format!("Patient/{id}/_history?_count=2")).send();
    first.assert_status(200);
    let bundle = first.resource("Bundle");
    assert_eq!(entries(&bundle).len(), 2);
    let next = link(&bundle, "next")
        .unwrap_or_else(|| first.fail("a first page of 2 out of 7 needs a next link"));
    assert!(
        next.starts_with(&format!("{}/Patient/{id}/_history", base())),
        "{next}"
    );

    let pages = pages(&format!("Patient/{id}/_history?_count=2"));
    for page in &pages {
        assert!(
            page.len() <= 2,
            "a page of _count=2 holds {} entries",
            page.len()
        );
    }
    let all: Vec<Value> = pages.into_iter().flatten().collect();
    let versions: Vec<u64> = all.iter().map(version_of).collect();
    assert_eq!(
        versions,
        vec![7, 6, 5, 4, 3, 2, 1],
        "every version exactly once, in order"
    );
}

#[test]
fn invalid_count_is_400() {
    let (id, _) = patient_with_five_versions();
    get(&format!("Patient/{id}/_history?_count=abc"))
        .send()
        .assert_outcome(400);
    get(&format!("Patient/{id}/_history?_count=-1"))
        .send()
        .assert_outcome(400);
}

#[test]
fn type_history_includes_new_versions_in_order() {
    let first = create(&patient(&uid()));
    let since = first["meta"]["lastUpdated"]
        .as_str()
        .expect("lastUpdated")
        .to_string();
    let mut mine = vec![(id_of(&first), 1u64)];
    for _ in 0..3 {
        let mut p = create(&patient(&uid()));
        let id = id_of(&p);
        mine.push((id.clone(), 1));
        p["gender"] = json!("male");
        put(&format!("Patient/{id}"))
            .json(&p)
            .send()
            .assert_status(200);
        mine.push((id, 2));
    }
    // Other types are not in the Patient history.
    create(&practitioner(&uid()));

    let all = all_pages(&format!(
        "Patient/_history?_since={}&_count=3",
        url_encode(&since)
    ));
    for e in &all {
        let url = e["fullUrl"].as_str().unwrap_or_default();
        assert!(
            url.starts_with(&format!("{}/Patient/", base())),
            "only Patients: {e}"
        );
        let lu = e["resource"]["meta"]["lastUpdated"]
            .as_str()
            .unwrap_or(&since);
        // Same-format UTC instants compare as text.
        if lu.len() == since.len() && lu.ends_with('Z') && since.ends_with('Z') {
            assert!(
                lu >= since.as_str(),
                "an entry older than _since {since}: {e}"
            );
        }
    }
    let seen: Vec<(String, u64)> = all
        .iter()
        .map(|e| {
            let url = e["fullUrl"].as_str().unwrap_or_default();
            (
                url.rsplit('/').next().unwrap_or_default().to_string(),
                version_of(e),
            )
        })
        .filter(|k| mine.contains(k))
        .collect();
    let mut expected = mine.clone();
    expected.reverse();
    assert_eq!(
        seen, expected,
        "each of my versions exactly once, newest first"
    );
}

#[test]
fn system_history_spans_types() {
    let first = create(&organization(&uid()));
    let since = first["meta"]["lastUpdated"]
        .as_str()
        .expect("lastUpdated")
        .to_string();
    let prac = create(&practitioner(&uid()));
    let pat = create(&patient(&uid()));
    let want = [
        format!("{}/Organization/{}", base(), id_of(&first)),
        format!("{}/Practitioner/{}", base(), id_of(&prac)),
        format!("{}/Patient/{}", base(), id_of(&pat)),
    ];
    let resp = get(&format!("_history?_since={}", url_encode(&since))).send();
    resp.assert_status(200);
    assert_eq!(resp.resource("Bundle")["type"], "history");
    let all = all_pages(&format!("_history?_since={}&_count=2", url_encode(&since)));
    let seen: Vec<String> = all
        .iter()
        .filter_map(|e| e["fullUrl"].as_str().map(str::to_string))
        .filter(|u| want.contains(u))
        .collect();
    let mut expected = want.to_vec();
    expected.reverse();
    assert_eq!(seen, expected);
}

#[test]
fn since_in_the_future_is_empty() {
    let id = new_patient();
    let resp = get(&format!(
        "Patient/{id}/_history?_since=2999-01-01T00:00:00Z"
    ))
    .send();
    resp.assert_status(200);
    let bundle = resp.resource("Bundle");
    assert_eq!(bundle["type"], "history");
    assert!(entries(&bundle).is_empty(), "{bundle}");
    let resp = get("_history?_since=2999-01-01").send();
    resp.assert_status(200);
    assert!(entries(&resp.resource("Bundle")).is_empty());
}

#[test]
fn since_selects_later_versions_only() {
    let mut p = create(&patient(&uid()));
    let id = id_of(&p);
    p["gender"] = json!("male");
    let v2 = put(&format!("Patient/{id}")).json(&p).send();
    v2.assert_status(200);
    let since = v2.resource("Patient")["meta"]["lastUpdated"]
        .as_str()
        .expect("lastUpdated")
        .to_string();
    p["gender"] = json!("other");
    put(&format!("Patient/{id}"))
        .json(&p)
        .send()
        .assert_status(200);
    let all = all_pages(&format!(
        "Patient/{id}/_history?_since={}",
        url_encode(&since)
    ));
    let versions: Vec<u64> = all.iter().map(version_of).collect();
    assert_eq!(
        versions,
        vec![3, 2],
        "_since includes versions at or after the instant"
    );
}

#[test]
fn invalid_since_is_400() {
    get("_history?_since=yesterday").send().assert_outcome(400);
    get("Patient/_history?_since=2024-13-45")
        .send()
        .assert_outcome(400);
}

#[test]
fn unknown_parameters_are_400_unless_lenient() {
    let id = new_patient();
    get(&format!("Patient/{id}/_history?foo=bar"))
        .send()
        .assert_outcome(400);
    get("Patient/_history?foo=bar").send().assert_outcome(400);
    get("_history?foo=bar").send().assert_outcome(400);
    let lenient = get(&format!("Patient/{id}/_history?foo=bar"))
        .prefer("handling=lenient")
        .send();
    lenient.assert_status(200);
    assert_eq!(entries(&lenient.resource("Bundle")).len(), 1);
    get("_history?foo=bar&_count=1")
        .prefer("handling=lenient")
        .send()
        .assert_status(200);
}

#[test]
fn history_of_an_unknown_resource_is_404() {
    get(&format!("Patient/{}/_history", uid()))
        .send()
        .assert_outcome(404);
}

#[test]
fn history_of_a_deleted_resource_is_still_available() {
    let id = new_patient();
    delete(&format!("Patient/{id}")).send().assert_status(204);
    let resp = get(&format!("Patient/{id}/_history")).send();
    resp.assert_status(200);
    let versions: Vec<u64> = entries(&resp.resource("Bundle"))
        .iter()
        .map(version_of)
        .collect();
    assert_eq!(versions, vec![2, 1]);
}

#[test]
fn history_in_xml() {
    let (id, _) = patient_with_five_versions();
    let resp = get(&format!("Patient/{id}/_history?_format=xml")).send();
    resp.assert_status(200);
    assert_eq!(resp.media_type(), FHIR_XML);
    let text = resp.text();
    assert!(
        text.contains("<Bundle xmlns=\"http://hl7.org/fhir\""),
        "{text}"
    );
    assert!(text.contains("<type value=\"history\"/>"), "{text}");
    assert_eq!(text.matches("<entry>").count(), 5, "{text}");
}

#[test]
fn empty_history_in_xml() {
    let id = new_patient();
    let resp = get(&format!(
        "Patient/{id}/_history?_since=2999-01-01T00:00:00Z&_format=xml"
    ))
    .try_send();
    let resp = resp.unwrap_or_else(|e| panic!("an empty history in XML must be answered: {e}"));
    resp.assert_status(200);
    assert_eq!(resp.media_type(), FHIR_XML);
    let text = resp.text();
    assert!(
        text.contains("<Bundle xmlns=\"http://hl7.org/fhir\""),
        "{text}"
    );
    assert!(text.contains("<type value=\"history\"/>"), "{text}");
    assert!(!text.contains("<entry>"), "{text}");
    // And the JSON form has no empty array (FHIR JSON forbids them).
    let json = get(&format!(
        "Patient/{id}/_history?_since=2999-01-01T00:00:00Z"
    ))
    .send();
    json.assert_status(200);
    let bundle = json.resource("Bundle");
    assert!(
        bundle
            .get("entry")
            .is_none_or(|e| e.as_array().is_some_and(|a| !a.is_empty())),
        "an empty history must leave out entry rather than send []: {bundle}"
    );
}
