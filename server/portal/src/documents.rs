//! Documents in the browser: a patient's documents as a doctor may see them
//! (`/portal/patients/{id}`), one document's details
//! (`/portal/documents/{id}`) and its content to view or download
//! (`/portal/documents/{id}/content`). Every read goes through the read path
//! with the visitor's token, so a document the patient did not share reads
//! as "not found" here exactly as through the API, and each view is in the
//! patient's access log.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use fhirledger_access::roles::Role;
use fhirledger_service::reads::{self, BinaryBytes, ReadBinary};
use fhirledger_service::ServiceError;
use maud::{html, Markup};
use serde_json::Value;

use crate::fhir::{
    self, concept, human_size, person_name, problem_page, reference, when, Found, Names,
};
use crate::layout::{page, respond};
use crate::paging;
use crate::session::Visit;

/// `GET /portal/patients/{id}`: the patient and the documents the visitor
/// may read.
pub async fn patient_page(
    visit: Visit,
    path: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> HttpResponse {
    let id = path.into_inner();
    // Until when an emergency access just granted lasts (shown, not trusted:
    // the access decision reads the grant from the database).
    let emergency_until = query
        .iter()
        .find(|(k, _)| k == "emergency-until")
        .and_then(|(_, v)| chrono::DateTime::parse_from_rfc3339(v).ok())
        .map(|t| when(&Value::String(t.to_rfc3339())));
    let cursor = paging::cursor_of(&query);
    let result = async {
        let (patient, _) = fhir::read(&visit, "Patient", &id).await?;
        let documents = fhir::search_with_included(
            &visit,
            "DocumentReference",
            page_params(&id, cursor.as_ref()),
        )
        .await?;
        Ok::<_, ServiceError>((patient, documents))
    }
    .await;
    let (patient, documents) = match result {
        Ok(found) => found,
        Err(e) if e.status.code() == 404 && visit.role() == Some(Role::Doctor) => {
            let body = html! {
                p { a href="/portal" { "← Your patients" } }
                h1 { "You have no access to this patient" }
                p { "This patient is not of your hospital and has not shared their documents with you, or there is no such patient." }
                (crate::emergency::form(&visit, Some(&id), None))
            };
            return respond(
                StatusCode::NOT_FOUND,
                page("No access", Some(&visit.person()), body),
            );
        }
        Err(e) => return problem_page(&e),
    };
    let name = person_name(&patient);
    let uploaded = query.iter().any(|(k, v)| k == "done" && v == "uploaded");
    // Doctors file documents for their own hospital's patients.
    let of_my_hospital = visit.role() == Some(Role::Doctor)
        && visit.caller.organization.as_deref().is_some_and(|org| {
            fhir::reference_id(&patient["managingOrganization"], "Organization") == Some(org)
        });
    let body = html! {
        p { a href="/portal" { "← Your patients" } }
        @if uploaded { p class="notice" role="status" { "The document is uploaded." } }
        @if let Some(until) = &emergency_until {
            p class="notice emergency" role="status" { "Emergency access until " (until) ". The patient will see it, with your reason, in their access log." }
        }
        h1 { (name) }
        p class="muted" {
            @if let Some(born) = patient["birthDate"].as_str() { "Born " (born) ". " }
            @if let Some(org) = patient["managingOrganization"]["display"].as_str() { "Patient of " (org) "." }
        }
        h2 { "Documents you may read" }
        (table(&documents, "Documents you may read", "None: this patient has not shared any documents with you, and you wrote none."))
        (paging::pager(&format!("/portal/patients/{id}"), cursor.as_ref(), documents.next.as_ref(), paging::newest_first("Older documents")))
    };
    let body = html! {
        (body)
        @if of_my_hospital { (crate::upload::form(&visit, Some(&id))) }
    };
    respond(StatusCode::OK, page(&name, Some(&visit.person()), body))
}

/// A document's title: its description, else its attachment's title, else
/// its kind.
pub fn title(document: &Value) -> String {
    document["description"]
        .as_str()
        .or_else(|| document["content"][0]["attachment"]["title"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| concept(&document["type"]))
}

/// Who wrote a document.
pub fn authors(document: &Value, names: &Names) -> String {
    document["author"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| names.reference(r))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// A search of DocumentReference's parameters, with the authors and
/// hospitals included so that [`table`] can name them.
pub fn with_names(mut params: Vec<(String, String)>) -> Vec<(String, String)> {
    params.push(("_include".into(), "DocumentReference:author".into()));
    params.push(("_include".into(), "DocumentReference:custodian".into()));
    params
}

/// Documents as a table: title (linking to the document), kind, date,
/// author and hospital, named from what the search included
/// ([`with_names`]); `empty` says what no documents means here.
pub fn table(found: &Found, caption: &str, empty: &str) -> Markup {
    let names = Names::of(&found.included);
    html! {
        @if found.resources.is_empty() {
            p class="empty" { (empty) }
        } @else {
            table {
                caption class="sr-only" { (caption) }
                thead { tr {
                    th scope="col" { "Document" }
                    th scope="col" { "Kind" }
                    th scope="col" { "Date" }
                    th scope="col" { "Author" }
                    th scope="col" { "Hospital" }
                } }
                tbody {
                    @for d in &found.resources {
                        tr data-key=(d["id"].as_str().unwrap_or_default()) {
                            td { a href={ "/portal/documents/" (d["id"].as_str().unwrap_or_default()) } { (title(d)) } }
                            td { (concept(&d["type"])) }
                            td { time datetime=(d["date"].as_str().unwrap_or("")) { (when(&d["date"])) } }
                            td { (authors(d, &names)) }
                            td { (names.reference(&d["custodian"])) }
                        }
                    }
                }
            }
        }
    }
}

/// How many documents a page of documents lists.
pub const PAGE: usize = 25;

/// The newest documents first, a page at a time: the search parameters of
/// the page at `cursor` (the first page without one) of `patient`'s
/// documents, with their authors and hospitals.
fn page_params(patient: &str, cursor: Option<&String>) -> Vec<(String, String)> {
    let params = vec![
        ("patient".into(), patient.to_string()),
        ("_sort".into(), "-date".into()),
        ("_count".into(), PAGE.to_string()),
    ];
    with_names(paging::at(params, cursor))
}

/// `GET /portal/documents[?cursor=…]`: all of a patient's own documents,
/// newest first, a page at a time (their dashboard shows the newest few).
pub async fn own_documents_page(
    visit: Visit,
    query: web::Query<Vec<(String, String)>>,
) -> HttpResponse {
    let Some(own) = visit.caller.patient.clone() else {
        // Only a patient has documents of their own; others find a
        // patient's on the patient's page.
        return crate::layout::see_other("/portal");
    };
    let cursor = paging::cursor_of(&query);
    let found = match fhir::search_with_included(
        &visit,
        "DocumentReference",
        page_params(&own, cursor.as_ref()),
    )
    .await
    {
        Ok(found) => found,
        Err(e) => return problem_page(&e),
    };
    let body = html! {
        p { a href="/portal" { "← Your dashboard" } }
        h1 { "All your documents" }
        (table(&found, "All your documents", "No documents yet."))
        (paging::pager("/portal/documents", cursor.as_ref(), found.next.as_ref(), paging::newest_first("Older documents")))
    };
    respond(
        StatusCode::OK,
        page("All your documents", Some(&visit.person()), body),
    )
}

/// `GET /portal/documents/{id}`.
pub async fn document_page(visit: Visit, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    let (document, _) = match fhir::read(&visit, "DocumentReference", &id).await {
        Ok(found) => found,
        Err(e) => return problem_page(&e),
    };
    let attachment = &document["content"][0]["attachment"];
    let name = title(&document);
    let mut named: Vec<&Value> = document["author"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    named.push(&document["custodian"]);
    let names = match fhir::names_of(&visit, &named).await {
        Ok(names) => names,
        Err(e) => return problem_page(&e),
    };
    let body = html! {
        h1 { (name) }
        dl class="facts" {
            dt { "Kind" } dd { (concept(&document["type"])) }
            dt { "Date" } dd { time datetime=(document["date"].as_str().unwrap_or("")) { (when(&document["date"])) } }
            dt { "Patient" } dd { (reference(&document["subject"])) }
            dt { "Author" } dd { (authors(&document, &names)) }
            @if document["custodian"].is_object() { dt { "Hospital" } dd { (names.reference(&document["custodian"])) } }
            @if let Some(t) = attachment["contentType"].as_str() { dt { "Format" } dd { (t) } }
            @if let Some(size) = attachment["size"].as_u64() { dt { "Size" } dd { (human_size(size)) } }
        }
        @if attachment.is_object() {
            p {
                a class="button" href={ "/portal/documents/" (id) "/content" } { "View" }
                " "
                a class="button secondary" href={ "/portal/documents/" (id) "/content?download=1" } download { "Download" }
            }
        } @else {
            p class="empty" { "This document has no content." }
        }
    };
    respond(StatusCode::OK, page(&name, Some(&visit.person()), body))
}

/// Where a document's content is: inline, or in a Binary of this server.
enum Content {
    Inline(Vec<u8>),
    Binary(String),
}

/// The first attachment's content: its `data`, or its `url` naming a
/// Binary of this server (`Binary/{id}` or `{fhir base}/Binary/{id}`).
fn content_of(document: &Value, fhir_base: &str) -> Option<Content> {
    let attachment = &document["content"][0]["attachment"];
    if let Some(data) = attachment["data"].as_str() {
        return STANDARD.decode(data).ok().map(Content::Inline);
    }
    let url = attachment["url"].as_str()?;
    let local = url
        .strip_prefix(fhir_base)
        .map(|rest| rest.trim_start_matches('/'))
        .unwrap_or(url);
    let id = local.strip_prefix("Binary/")?;
    fhir_profiles::ids::is_valid_id(id).then(|| Content::Binary(id.to_string()))
}

/// `GET /portal/documents/{id}/content[?download=1]`: the bytes, under the
/// document's own access (a Binary through the document pointing at it).
pub async fn document_content(
    visit: Visit,
    path: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> HttpResponse {
    let id = path.into_inner();
    let download = query.iter().any(|(k, v)| k == "download" && v == "1");
    let (document, _) = match fhir::read(&visit, "DocumentReference", &id).await {
        Ok(found) => found,
        Err(e) => return problem_page(&e),
    };
    let attachment = &document["content"][0]["attachment"];
    let mut content_type = attachment["contentType"]
        .as_str()
        .unwrap_or("application/octet-stream")
        .to_string();
    let body = match content_of(&document, &visit.server.settings.fhir_base) {
        Some(Content::Inline(bytes)) => Body::Whole(bytes),
        Some(Content::Binary(binary)) => {
            let guard = visit.guard.clone();
            let read = visit
                .server
                .db
                .run_read(move |store| {
                    reads::read(
                        store,
                        &guard,
                        ReadBinary {
                            id: &binary,
                            version: None,
                        },
                    )
                    .map(|found| found.value)
                })
                .await;
            match read {
                Ok((stored, Some(at))) => {
                    if let Some(t) = stored
                        .content
                        .as_deref()
                        .and_then(|c| serde_json::from_str::<Value>(c).ok())
                        .and_then(|b| b["contentType"].as_str().map(str::to_string))
                    {
                        content_type = t;
                    }
                    Body::Streamed(BinaryBytes::new(visit.server.db.clone(), at))
                }
                Ok((_, None)) => return problem_page(&ServiceError::not_found("deleted")),
                Err(e) => return problem_page(&e),
            }
        }
        None => return problem_page(&ServiceError::not_found("no content")),
    };
    let filename = attachment["title"]
        .as_str()
        .map(safe_filename)
        .unwrap_or_else(|| format!("{id}.bin"));
    // Content people upload is shown only as what cannot run here: other
    // types are downloaded, and nothing is sniffed or framed.
    let inline = !download && is_safe_inline(&content_type);
    let disposition = if inline { "inline" } else { "attachment" };
    let mut response = HttpResponse::Ok();
    response
        .insert_header(("Content-Type", content_type))
        .insert_header((
            "Content-Disposition",
            format!("{disposition}; filename=\"{filename}\""),
        ))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox",
        ));
    match body {
        Body::Whole(bytes) => response.body(bytes),
        Body::Streamed(bytes) => {
            let size = u64::try_from(bytes.meta().size).unwrap_or(0);
            response.no_chunking(size).streaming(bytes.into_stream())
        }
    }
}

/// A document's content: inline in the DocumentReference, or a Binary's
/// bytes streamed from the database a chunk at a time.
enum Body {
    Whole(Vec<u8>),
    Streamed(BinaryBytes),
}

/// Types a browser shows without running anything of the document's.
fn is_safe_inline(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        mime.as_str(),
        "text/plain" | "application/pdf" | "image/png" | "image/jpeg" | "image/gif"
    )
}

/// A filename for `Content-Disposition`: printable ASCII without quotes or
/// path separators.
fn safe_filename(title: &str) -> String {
    let cleaned: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '/' | ';') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    if cleaned.trim().is_empty() {
        "document".to_string()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_is_inline_data_or_a_local_binary() {
        let base = "http://h/fhir";
        let inline = json!({"content": [{"attachment": {"data": "aGk="}}]});
        assert!(matches!(content_of(&inline, base), Some(Content::Inline(b)) if b == b"hi"));
        for url in ["Binary/b-1", "http://h/fhir/Binary/b-1"] {
            let d = json!({"content": [{"attachment": {"url": url}}]});
            assert!(
                matches!(content_of(&d, base), Some(Content::Binary(id)) if id == "b-1"),
                "{url}"
            );
        }
        for url in ["http://elsewhere/Binary/b-1", "Binary/../x", "Patient/p"] {
            let d = json!({"content": [{"attachment": {"url": url}}]});
            assert!(content_of(&d, base).is_none(), "{url}");
        }
    }

    #[test]
    fn downloads_are_named_safely_and_only_inert_types_shown_inline() {
        assert_eq!(
            safe_filename("report \"final\"/v2.pdf"),
            "report _final__v2.pdf"
        );
        assert_eq!(safe_filename("été"), "_t_");
        assert!(is_safe_inline("text/plain; charset=utf-8"));
        assert!(!is_safe_inline("text/html"));
        assert!(!is_safe_inline("image/svg+xml"));
    }
}
