//! `GET /portal`: each person lands on their own dashboard, chosen by the
//! role their token carries. Every list on it is a search through the read
//! path with their guard, so it holds exactly what they may see.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use fhirledger_access::roles::Role;
use fhirledger_service::ServiceError;
use maud::{html, Markup};

use crate::access_log;
use crate::fhir::{self, person_name, reference, when, Found};
use crate::layout::{live_region, page, respond};
use crate::session::Visit;

/// How many rows a dashboard list shows.
const LIST: usize = 50;

/// `GET /portal`.
pub async fn home(visit: Visit) -> HttpResponse {
    let result = match visit.role() {
        Some(Role::Patient) => patient(&visit).await,
        Some(Role::Doctor) => doctor(&visit).await,
        Some(Role::HospitalAdmin) => hospital_admin(&visit).await,
        Some(Role::SolutionAdmin) => solution_admin(&visit).await,
        Some(Role::ComplianceOfficer) => compliance_officer(&visit).await,
        None => Ok((
            "Your dashboard",
            html! {
                h1 { "Your dashboard" }
                p { "Your account has no role in this solution yet. Ask your hospital's administrator." }
            },
        )),
    };
    match result {
        Ok((title, body)) => respond(StatusCode::OK, page(title, Some(&visit.person()), body)),
        Err(e) => fhir::problem_page(&e),
    }
}

type Dashboard = Result<(&'static str, Markup), ServiceError>;

/// The first [`LIST`] resources of a type in `sort` order that the visitor
/// may see.
async fn first_of(
    visit: &Visit,
    resource_type: &'static str,
    sort: &str,
) -> Result<Found, ServiceError> {
    let count = LIST.to_string();
    fhir::search(
        visit,
        resource_type,
        params(&[("_sort", sort), ("_count", &count)]),
    )
    .await
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What a finished action says on the dashboard (`?done=…`).
fn notice(visit: &Visit) -> Option<&'static str> {
    let query = visit.req.query_string();
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "done")
        .and_then(|(_, v)| match v.as_ref() {
            "shared" => Some("Your documents are shared. The doctor sees them from now on."),
            "revoked" => {
                Some("The share is revoked. From now on they no longer see those documents.")
            }
            "uploaded" => Some("The document is uploaded."),
            "hospital" => Some("The hospital is onboarded. Assign it an administrator below."),
            "deactivated" => Some("The hospital is deactivated: its people can no longer sign in, and their sessions have ended."),
            "reactivated" => Some("The hospital is active again."),
            "removed" => Some("The account is removed: it can no longer sign in, and its sessions have ended."),
            _ => None,
        })
}

async fn patient(visit: &Visit) -> Dashboard {
    let own = visit.caller.patient.clone().unwrap_or_default();
    let count = LIST.to_string();
    let documents = fhir::search(
        visit,
        "DocumentReference",
        params(&[("patient", &own), ("_sort", "-date"), ("_count", &count)]),
    )
    .await?;
    let log = fhir::search(
        visit,
        "AuditEvent",
        params(&[("patient", &own), ("_sort", "-date"), ("_count", "10")]),
    )
    .await?;
    let anchored = access_log::anchored(visit, &log).await?;
    let labels = crate::sharing::Labels::of(&documents.resources);
    let shares = crate::sharing::shares(visit, &labels).await?;
    Ok((
        "Your documents",
        html! {
            @if let Some(notice) = notice(visit) { p class="notice" role="status" { (notice) } }
            h1 { "Your documents" }
            (documents_table(&documents, "Your documents", false))
            (crate::upload::form(visit, None))
            (crate::sharing::who_can_see(visit, &shares))
            h2 { "Recent access to your record" }
            (live_region(access_log::LIVE_TOPIC, &access_log::table(visit, &log, "Recent access to your record", &anchored)))
            p { a href="/portal/access-log" { "Your whole access log" } }
        },
    ))
}

async fn doctor(visit: &Visit) -> Dashboard {
    let patients = first_of(visit, "Patient", "family").await?;
    Ok((
        "Your patients",
        html! {
            h1 { "Your patients" }
            p class="muted" { "The patients of your hospital, and those of other hospitals who shared their documents with you." }
            (live_region("patients", &people_table(&patients, "Your patients", true, Some("/portal/patients"))))
            (crate::emergency::form(visit, None, None))
        },
    ))
}

async fn hospital_admin(visit: &Visit) -> Dashboard {
    let (title, body) = crate::admin::hospital_admin(visit).await?;
    Ok((title, with_notice(visit, body)))
}

async fn solution_admin(visit: &Visit) -> Dashboard {
    let (title, body) = crate::admin::solution_admin(visit).await?;
    Ok((title, with_notice(visit, body)))
}

/// A dashboard's body after the notice of what was just done, if anything.
fn with_notice(visit: &Visit, body: Markup) -> Markup {
    html! {
        @if let Some(notice) = notice(visit) { p class="notice" role="status" { (notice) } }
        (body)
    }
}

async fn compliance_officer(visit: &Visit) -> Dashboard {
    let (_, body) = crate::trail::render(visit, &[]).await?;
    Ok(("Audit trail", body))
}

fn documents_table(found: &Found, caption: &str, with_patient: bool) -> Markup {
    html! {
        @if found.resources.is_empty() {
            p class="empty" { "No documents yet." }
        } @else {
            table {
                caption class="sr-only" { (caption) }
                thead { tr {
                    th scope="col" { "Document" }
                    @if with_patient { th scope="col" { "Patient" } }
                    th scope="col" { "Date" }
                    th scope="col" { "Author" }
                    th scope="col" { "Hospital" }
                } }
                tbody {
                    @for d in &found.resources {
                        tr {
                            td { a href={ "/portal/documents/" (d["id"].as_str().unwrap_or_default()) } { (document_title(d)) } }
                            @if with_patient { td { (reference(&d["subject"])) } }
                            td { time datetime=(d["date"].as_str().unwrap_or("")) { (when(&d["date"])) } }
                            td { (authors(d)) }
                            td { (reference(&d["custodian"])) }
                        }
                    }
                }
            }
            @if found.next.is_some() { p class="muted" { "Only the newest " (found.resources.len()) " are shown." } }
        }
    }
}

use crate::documents::{authors, title as document_title};

/// People (Patient or Practitioner); each name links to `{link}/{id}`
/// when given.
fn people_table(found: &Found, caption: &str, with_birth: bool, link: Option<&str>) -> Markup {
    html! {
        @if found.resources.is_empty() {
            p class="empty" { "Nobody yet." }
        } @else {
            table {
                caption class="sr-only" { (caption) }
                thead { tr {
                    th scope="col" { "Name" }
                    @if with_birth { th scope="col" { "Born" } }
                } }
                tbody {
                    @for p in &found.resources {
                        tr data-key=(p["id"].as_str().unwrap_or_default()) {
                            td {
                                @match link {
                                    Some(link) => a href={ (link) "/" (p["id"].as_str().unwrap_or_default()) } { (person_name(p)) },
                                    None => (person_name(p)),
                                }
                            }
                            @if with_birth { td { (p["birthDate"].as_str().unwrap_or("")) } }
                        }
                    }
                }
            }
            @if found.next.is_some() { p class="muted" { "Only the first " (found.resources.len()) " are shown." } }
        }
    }
}
