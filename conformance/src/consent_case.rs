//! What the Consent tests share (`tests/consent.rs`, `tests/replicas.rs`):
//! a patient of a hospital with three documents a Consent can tell apart
//! (a note, a restricted lab report, an image whose content is a Binary),
//! and the small pieces of Consents and of the answers they decide.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::smart_flow::new_patient_in;
use crate::{base, create, entries, id_of, post, uid, Response};

pub const LOINC: &str = "http://loinc.org";
/// The documents' LOINC types: progress note, lab report, image.
pub const NOTE: &str = "11506-3";
pub const LAB: &str = "11502-2";
pub const IMAGE: &str = "18748-4";
pub const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";

/// A patient and their three documents, written with the shared server's
/// system token: the note (2024), the lab report labelled restricted (`R`,
/// 2023) and the image (2022) whose attachment is the Binary.
pub struct PatientDocuments {
    pub patient: String,
    pub note: String,
    pub lab: String,
    pub img: String,
    pub binary: String,
}

impl PatientDocuments {
    /// A new patient of hospital `org` named `family`, with the three documents.
    pub fn create(org: &str, family: &str) -> PatientDocuments {
        let patient = new_patient_in(org, family);
        let note = id_of(&create(&document_of(
            &patient,
            NOTE,
            "2024-05-01T10:00:00Z",
        )));
        let mut lab = document_of(&patient, LAB, "2023-01-10T10:00:00Z");
        lab["meta"] = json!({ "security": [{ "system": CONFIDENTIALITY, "code": "R" }] });
        let lab = id_of(&create(&lab));
        let resp = post("Binary")
            .content_type("application/pdf")
            .bytes(b"%PDF-1.4 image".to_vec())
            .send();
        resp.assert_status(201);
        let location = resp.required_header("location");
        let binary = location
            .strip_prefix(&format!("{}/Binary/", base()))
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| resp.fail("no Binary id in Location"))
            .to_string();
        let mut img = document_of(&patient, IMAGE, "2022-06-01T10:00:00Z");
        img["content"] = json!([{ "attachment": {
            "contentType": "application/pdf", "url": format!("Binary/{binary}") } }]);
        let img = id_of(&create(&img));
        PatientDocuments {
            patient,
            note,
            lab,
            img,
            binary,
        }
    }

    /// The documents by name.
    pub fn documents(&self) -> [(&'static str, &str); 3] {
        [("note", &self.note), ("lab", &self.lab), ("img", &self.img)]
    }

    /// The names of the documents among `ids`.
    pub fn names(&self, ids: &BTreeSet<String>) -> BTreeSet<&'static str> {
        self.documents()
            .into_iter()
            .filter(|(_, id)| ids.contains(*id))
            .map(|(name, _)| name)
            .collect()
    }
}

/// A current DocumentReference of `patient` of LOINC type `code`.
pub fn document_of(patient: &str, code: &str, date: &str) -> Value {
    json!({
        "resourceType": "DocumentReference",
        "identifier": [{ "system": "urn:test", "value": uid() }],
        "status": "current",
        "type": { "coding": [{ "system": LOINC, "code": code }] },
        "subject": { "reference": format!("Patient/{patient}") },
        "date": date,
        "content": [{ "attachment": { "contentType": "text/plain", "data": "aGVsbG8=" } }]
    })
}

/// A provision's actor: the recipient (`IRCP`) `reference`.
pub fn actor(reference: &str) -> Value {
    json!({
        "role": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP" }] },
        "reference": { "reference": reference }
    })
}

/// A read that Consent decides: 200 (shown) or 404 (hidden), nothing else.
#[track_caller]
pub fn status_of(resp: &Response) -> bool {
    match resp.status {
        200 => true,
        404 => false,
        _ => resp.fail("expected 200 or 404"),
    }
}

/// The ids of the DocumentReferences in a searchset.
pub fn doc_ids(bundle: &Value) -> BTreeSet<String> {
    entries(bundle)
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "DocumentReference")
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect()
}
