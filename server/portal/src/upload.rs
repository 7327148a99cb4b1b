//! Uploading a document: a file becomes a Binary and a DocumentReference
//! (kind, category, date, title; the doctor's hospital as custodian), in
//! one transaction through the service as the uploader. Patients upload to
//! their own record, doctors for a patient of their hospital. The file is
//! streamed from the browser into the database a chunk at a time (never
//! held whole in memory), up to `FHIRLEDGER_MAX_UPLOAD_BYTES`, which the
//! form states before anything is sent. The form works without JavaScript;
//! `/portal/assets/portal.js` adds a progress bar.

use actix_multipart::{Field, Multipart};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{NaiveDate, SecondsFormat, Utc};
use fhir_profiles::format::FhirFormat;
use fhirledger_access::roles::Role;
use fhirledger_service::prepare;
use fhirledger_service::prepare::raw_binary;
use fhirledger_service::write::{create_document_with_content, ChunkSource};
use futures_util::StreamExt;
use maud::{html, Markup};
use serde_json::{json, Value};

use crate::context::PortalContext;
use crate::fhir::{human_size, problem_page};
use crate::layout::{problem, see_other};
use crate::session::Visit;
use crate::sharing::forged;

/// The kinds of document one may upload (LOINC document types).
pub const KINDS: &[(&str, &str)] = &[
    ("11506-3", "Progress note"),
    ("11502-2", "Laboratory report"),
    ("18842-5", "Discharge summary"),
    ("11488-4", "Consult note"),
    ("57133-1", "Referral note"),
    ("18748-4", "Diagnostic imaging study"),
    ("34133-9", "Summary of episode note"),
    ("51851-4", "Administrative note"),
];

const CATEGORY_SYSTEM: &str =
    "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category";
/// Bytes a text field of the form may have.
const FIELD_LIMIT: usize = 4096;
/// Bytes handed to the database at a time.
const CHUNK: usize = 256 * 1024;

fn max_upload(visit: &Visit) -> u64 {
    visit
        .req
        .app_data::<web::Data<PortalContext>>()
        .map(|c| c.max_upload_bytes)
        .unwrap_or(64 * 1024 * 1024)
}

/// The upload form, for a patient (`None`: the visitor's own record).
pub fn form(visit: &Visit, patient: Option<&str>) -> Markup {
    let limit = max_upload(visit);
    let today = Utc::now().date_naive().to_string();
    html! {
        section aria-labelledby="upload" class="upload" {
            h2 id="upload" { "Upload a document" }
            form method="post" action="/portal/upload" enctype="multipart/form-data" data-upload {
                input type="hidden" name=(crate::csrf::FIELD) value=(visit.csrf_token());
                @if let Some(p) = patient { input type="hidden" name="patient" value=(p); }
                label for="upload-title" { "Title" }
                input id="upload-title" type="text" name="title" required maxlength="200";
                label for="upload-kind" { "Kind" }
                select id="upload-kind" name="kind" required {
                    @for (code, label) in KINDS { option value=(code) { (label) } }
                }
                label for="upload-date" { "Date of the document" }
                input id="upload-date" type="date" name="date" value=(today) max=(today);
                label for="upload-file" { "File (at most " (human_size(limit)) ")" }
                input id="upload-file" type="file" name="file" required data-max-bytes=(limit);
                progress hidden max="100" value="0" aria-label="Upload progress" {}
                p class="upload-status" role="status" {}
                p { button type="submit" { "Upload" } }
            }
        }
    }
}

/// What the form said before its file.
#[derive(Debug, Default)]
struct Metadata {
    csrf: Option<String>,
    patient: Option<String>,
    title: String,
    kind: String,
    date: String,
}

/// `POST /portal/upload` (multipart: the text fields first, the file last).
pub async fn upload(visit: Visit, mut multipart: Multipart) -> HttpResponse {
    let mut meta = Metadata::default();
    let mut file: Option<Field> = None;
    while let Some(next) = multipart.next().await {
        let Ok(mut field) = next else {
            return bad("The upload could not be read. Please try again.");
        };
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            file = Some(field);
            break;
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.next().await {
            let Ok(chunk) = chunk else {
                return bad("The upload could not be read. Please try again.");
            };
            if value.len() + chunk.len() > FIELD_LIMIT {
                return bad("A field of the form is too long.");
            }
            value.extend_from_slice(&chunk);
        }
        let value = String::from_utf8_lossy(&value).trim().to_string();
        match name.as_str() {
            crate::csrf::FIELD => meta.csrf = Some(value),
            "patient" => meta.patient = Some(value),
            "title" => meta.title = value,
            "kind" => meta.kind = value,
            "date" => meta.date = value,
            _ => {}
        }
    }
    if !visit.csrf_valid(meta.csrf.as_deref()) {
        return forged();
    }
    let Some(file) = file else {
        return bad("Choose a file to upload.");
    };
    let target = match target(&visit, &meta) {
        Ok(target) => target,
        Err(why) => return bad(why),
    };
    let content_type = file
        .content_type()
        .map(|m| m.essence_str().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "application/octet-stream".to_string());
    let filename = file
        .content_disposition()
        .and_then(|d| d.get_filename())
        .map(str::to_string)
        .unwrap_or_else(|| "document".to_string());
    let limit = max_upload(&visit);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, String>>(4);
    let source: ChunkSource = Box::new(std::iter::from_fn(move || rx.blocking_recv()));
    let guard = visit.guard.clone();
    let base = visit.server.settings.fhir_base.clone();
    let binary = raw_binary(content_type.clone(), None, None);
    let patient = target.patient.clone();
    let job = visit.server.db.run(move |store| {
        create_document_with_content(store, &guard, &binary, source, limit, |binary_id, size| {
            let document = document(&target, binary_id, size, &content_type, &filename);
            prepare(
                "DocumentReference",
                document.to_string().as_bytes(),
                FhirFormat::Json,
                &base,
            )
        })
    });
    let pump = pump(file, tx, limit);
    let (result, ()) = tokio::join!(job, pump);
    match result {
        Ok(_) => match visit.role() {
            Some(Role::Doctor) => see_other(&format!("/portal/patients/{patient}?done=uploaded")),
            _ => see_other("/portal?done=uploaded"),
        },
        Err(e) if e.status.code() == 413 => problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The file is too large",
            &format!(
                "Files of at most {} can be uploaded. Nothing was saved.",
                human_size(limit)
            ),
        ),
        Err(e) => problem_page(&e),
    }
}

fn bad(why: &str) -> HttpResponse {
    problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "The document was not uploaded",
        why,
    )
}

/// Whose record and what the document is, checked.
struct Target {
    patient: String,
    author: String,
    custodian: Option<String>,
    title: String,
    kind: (&'static str, &'static str),
    date: String,
}

fn target(visit: &Visit, meta: &Metadata) -> Result<Target, &'static str> {
    let caller = &visit.caller;
    let (patient, author) = match caller.role {
        Some(Role::Patient) => {
            let own = caller
                .patient
                .clone()
                .ok_or("Your account names no patient record.")?;
            (own.clone(), format!("Patient/{own}"))
        }
        Some(Role::Doctor) => {
            let patient = meta
                .patient
                .clone()
                .filter(|p| fhir_profiles::ids::is_valid_id(p))
                .ok_or("Choose the patient the document is for.")?;
            let practitioner = caller
                .practitioner
                .clone()
                .ok_or("Your account names no Practitioner record.")?;
            (patient, format!("Practitioner/{practitioner}"))
        }
        _ => return Err("Only patients and doctors upload documents."),
    };
    if meta.title.is_empty() || meta.title.chars().count() > 200 {
        return Err("Give the document a title (at most 200 characters).");
    }
    let kind = KINDS
        .iter()
        .find(|(code, _)| *code == meta.kind)
        .copied()
        .ok_or("Choose the kind of document from the list.")?;
    let date = match meta.date.as_str() {
        "" => Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        d => {
            let day = NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| "The date is a day (YYYY-MM-DD).")?;
            if day > Utc::now().date_naive() {
                return Err("The document's date cannot be in the future.");
            }
            format!("{day}T00:00:00Z")
        }
    };
    Ok(Target {
        patient,
        author,
        custodian: caller
            .organization
            .clone()
            .filter(|_| caller.role == Some(Role::Doctor)),
        title: meta.title.clone(),
        kind,
        date,
    })
}

/// The DocumentReference of an uploaded file.
fn document(
    target: &Target,
    binary_id: &str,
    size: u64,
    content_type: &str,
    filename: &str,
) -> Value {
    let mut document = json!({
        "resourceType": "DocumentReference",
        "status": "current",
        "type": { "coding": [{ "system": "http://loinc.org", "code": target.kind.0, "display": target.kind.1 }] },
        "category": [{ "coding": [{ "system": CATEGORY_SYSTEM, "code": "clinical-note", "display": "Clinical Note" }] }],
        "subject": { "reference": format!("Patient/{}", target.patient) },
        "date": target.date,
        "author": [{ "reference": target.author }],
        "description": target.title,
        "content": [{ "attachment": {
            "contentType": content_type,
            "url": format!("Binary/{binary_id}"),
            "size": size,
            "title": filename,
        } }],
    });
    if let Some(org) = &target.custodian {
        document["custodian"] = json!({ "reference": format!("Organization/{org}") });
    }
    document
}

/// Moves the file into the channel in chunks, stopping when the consumer is
/// gone or the limit is passed (the store then refuses with 413).
async fn pump(mut file: Field, tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, String>>, limit: u64) {
    let mut buffer = Vec::with_capacity(CHUNK);
    let mut total: u64 = 0;
    while let Some(chunk) = file.next().await {
        match chunk {
            Ok(bytes) => {
                total += bytes.len() as u64;
                buffer.extend_from_slice(&bytes);
                let flush = buffer.len() >= CHUNK || total > limit;
                if flush {
                    let full = std::mem::replace(&mut buffer, Vec::with_capacity(CHUNK));
                    if tx.send(Ok(full)).await.is_err() || total > limit {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = tx
                    .send(Err(format!("the upload could not be read: {e}")))
                    .await;
                return;
            }
        }
    }
    if !buffer.is_empty() {
        let _ = tx.send(Ok(buffer)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_a_document_pointing_at_its_binary() {
        let target = Target {
            patient: "p-1".into(),
            author: "Practitioner/d-1".into(),
            custodian: Some("h-1".into()),
            title: "Scan".into(),
            kind: KINDS[5],
            date: "2026-12-01T00:00:00Z".into(),
        };
        let d = document(&target, "b-1", 42, "application/pdf", "scan.pdf");
        assert_eq!(d["content"][0]["attachment"]["url"], "Binary/b-1");
        assert_eq!(d["content"][0]["attachment"]["size"], 42);
        assert_eq!(d["type"]["coding"][0]["code"], "18748-4");
        assert_eq!(d["custodian"]["reference"], "Organization/h-1");
        assert_eq!(d["subject"]["reference"], "Patient/p-1");
    }
}
