//! Test resources with unique identifiers, and FHIR-level helpers on top of
//! the HTTP layer.

use rand::Rng;
use serde_json::{json, Value};

use crate::http::{get, post, Response};
use crate::server::server;

/// The identifier system of everything these tests create.
pub const ID_SYSTEM: &str = "urn:fhirledger:conformance";

/// The resource types the server hosts: the server's own list.
pub const HOSTED_TYPES: &[&str] = fhir_profiles::resource_types::HOSTED;

/// A random 32-hex-digit string: a valid FHIR id and a unique identifier value.
pub fn uid() -> String {
    format!("{:032x}", rand::thread_rng().gen::<u128>())
}

/// `{ID_SYSTEM}|{value}`, the token form used in conditional requests.
pub fn token(value: &str) -> String {
    format!("{ID_SYSTEM}|{value}")
}

pub fn patient(identifier: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": ID_SYSTEM, "value": identifier}],
        "active": true,
        "name": [{"family": "Conformance", "given": ["Test"]}],
        "gender": "female",
        "birthDate": "1980-02-29"
    })
}

pub fn practitioner(identifier: &str) -> Value {
    json!({
        "resourceType": "Practitioner",
        "identifier": [{"system": ID_SYSTEM, "value": identifier}],
        "active": true,
        "name": [{"family": "Doctor", "given": ["Conformance"], "prefix": ["Dr."]}]
    })
}

pub fn organization(identifier: &str) -> Value {
    json!({
        "resourceType": "Organization",
        "identifier": [{"system": ID_SYSTEM, "value": identifier}],
        "active": true,
        "name": format!("Conformance Hospital {identifier}")
    })
}

/// A DocumentReference about `Patient/{patient_id}` with a small inline
/// text attachment ("hello world", size 11).
pub fn document_reference(patient_id: &str, identifier: &str) -> Value {
    json!({
        "resourceType": "DocumentReference",
        "identifier": [{"system": ID_SYSTEM, "value": identifier}],
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}]},
        "category": [{"coding": [{
            "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
            "code": "clinical-note",
            "display": "Clinical Note"
        }]}],
        "subject": {"reference": format!("Patient/{patient_id}")},
        "date": "2024-05-01T10:00:00Z",
        "content": [{
            "attachment": {
                "contentType": "text/plain",
                "data": "aGVsbG8gd29ybGQ=",
                "size": 11,
                "title": "note.txt"
            }
        }]
    })
}

/// An active privacy Consent of `Patient/{patient_id}`.
pub fn consent(patient_id: &str, identifier: &str) -> Value {
    json!({
        "resourceType": "Consent",
        "identifier": [{"system": ID_SYSTEM, "value": identifier}],
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{patient_id}")},
        "dateTime": "2024-05-01T10:00:00Z",
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "permit"}
    })
}

/// POSTs a resource and asserts 201; returns the stored representation.
#[track_caller]
pub fn create(resource: &Value) -> Value {
    let rt = resource["resourceType"]
        .as_str()
        .expect("the resource to create has a resourceType");
    let resp = post(rt).json(resource).send();
    resp.assert_status(201);
    resp.resource(rt)
}

/// Creates a fresh Patient; returns its server id.
#[track_caller]
pub fn new_patient() -> String {
    let created = create(&patient(&uid()));
    id_of(&created)
}

/// The `id` of a resource body.
#[track_caller]
pub fn id_of(resource: &Value) -> String {
    resource["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the resource has no id: {resource}"))
        .to_string()
}

/// GETs `{type}/{id}` and asserts 200; returns the resource.
#[track_caller]
pub fn read(resource_type: &str, id: &str) -> Value {
    let resp = get(&format!("{resource_type}/{id}")).send();
    resp.assert_status(200);
    resp.resource(resource_type)
}

/// Removes the server-owned `meta.versionId` and `meta.lastUpdated` (and
/// `meta` when nothing else is left).
pub fn without_server_meta(resource: &Value) -> Value {
    let mut r = resource.clone();
    if let Some(obj) = r.as_object_mut() {
        let empty = match obj.get_mut("meta").and_then(Value::as_object_mut) {
            Some(meta) => {
                meta.remove("versionId");
                meta.remove("lastUpdated");
                meta.is_empty()
            }
            None => false,
        };
        if empty {
            obj.remove("meta");
        }
    }
    r
}

/// Every `issue.expression` and `issue.location` of an OperationOutcome.
pub fn issue_paths(outcome: &Value) -> Vec<String> {
    outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|issue| {
            ["expression", "location"]
                .iter()
                .flat_map(|k| issue[*k].as_array().cloned().unwrap_or_default())
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Asserts that some issue's expression names `path` (exactly, or as the
/// start of a longer path such as `path.value`).
#[track_caller]
pub fn assert_issue_at(resp: &Response, outcome: &Value, path: &str) {
    let paths = issue_paths(outcome);
    let hit = paths.iter().any(|p| {
        p == path
            || p.strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    });
    if !hit {
        resp.fail(&format!(
            "expected an OperationOutcome issue whose expression names {path}; got expressions {paths:?}"
        ));
    }
}

/// The entries of a Bundle.
pub fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().cloned().unwrap_or_default()
}

/// The URL of a Bundle link by relation.
pub fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .and_then(|l| l["url"].as_str())
        .map(str::to_string)
}

/// Follows `next` links from `first` (relative to the FHIR base, or
/// absolute) and returns the entries of each page. Asserts that each page is
/// a Bundle and every link is absolute on the configured base.
#[track_caller]
pub fn pages(first: &str) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    let mut next = Some(server().url(first));
    while let Some(url) = next {
        assert!(
            out.len() < 10_000,
            "more than 10,000 pages: the next links loop"
        );
        let resp = get(&url).send();
        resp.assert_status(200);
        let bundle = resp.resource("Bundle");
        for l in bundle["link"].as_array().into_iter().flatten() {
            let u = l["url"].as_str().unwrap_or_default();
            if !u.starts_with(&format!("{}/", server().fhir_base)) {
                resp.fail(&format!(
                    "link {u:?} is not an absolute URL on the configured base"
                ));
            }
        }
        out.push(entries(&bundle));
        next = link(&bundle, "next");
    }
    out
}

/// Every entry of every page from `first`, in order.
#[track_caller]
pub fn all_pages(first: &str) -> Vec<Value> {
    pages(first).into_iter().flatten().collect()
}

/// Percent-encodes a query parameter value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Puts `replacement` in place of one value somewhere in `v`: at each level
/// it stops with probability `stop` (replacing the child it picked) or goes
/// one level deeper, and replaces a leaf or an empty container it reaches.
/// For the fuzzing tests, which spoil valid resources one value at a time.
pub fn replace_somewhere(rng: &mut impl Rng, v: &mut Value, replacement: Value, stop: f64) {
    let here = rng.gen_bool(stop);
    let child = match v {
        Value::Object(map) if !map.is_empty() => {
            let i = rng.gen_range(0..map.len());
            map.values_mut().nth(i)
        }
        Value::Array(items) if !items.is_empty() => {
            let i = rng.gen_range(0..items.len());
            items.get_mut(i)
        }
        _ => None,
    };
    match child {
        Some(c) if here => *c = replacement,
        Some(c) => replace_somewhere(rng, c, replacement, stop),
        None => *v = replacement,
    }
}
