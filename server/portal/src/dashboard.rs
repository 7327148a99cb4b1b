//! `GET /portal`: each person lands on their own dashboard, chosen by the
//! role their token carries. Every list on it is a search through the read
//! path with their guard, so it holds exactly what they may see.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use fhirledger_access::roles::Role;
use fhirledger_service::ServiceError;
use maud::{html, Markup};

use crate::access_log;
use crate::fhir::{self, person_name, Found};
use crate::layout::{live_region, page, respond};
use crate::paging;
use crate::session::Visit;

/// How many rows a dashboard list shows.
const LIST: usize = 50;

/// How many of their newest documents a patient's dashboard shows; the rest
/// are a page of their own (`/portal/documents`), as the access log is.
const NEWEST_DOCUMENTS: usize = 10;

/// `GET /portal`.
pub async fn home(visit: Visit, query: web::Query<Vec<(String, String)>>) -> HttpResponse {
    let result = match visit.role() {
        Some(Role::Patient) => patient(&visit).await,
        Some(Role::Doctor) => doctor(&visit, paging::cursor_of(&query)).await,
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
    // Their newest documents, their newest accesses and their Consents:
    // three searches (each decided and audited on its own) in one visit to
    // the database.
    let (documents, log, consents) = fhir::reading(visit, move |reads| {
        let documents = reads.search(
            "DocumentReference",
            crate::documents::with_names(params(&[
                ("patient", &own),
                ("_sort", "-date"),
                ("_count", &NEWEST_DOCUMENTS.to_string()),
            ])),
        )?;
        let log = access_log::LogPage::read(
            reads,
            params(&[("patient", &own), ("_sort", "-date"), ("_count", "10")]),
        )?;
        let consents = crate::sharing::consents_in_force(reads, &own)?;
        Ok((documents, log, consents))
    })
    .await?;
    let entries = log.entries();
    let labels = crate::sharing::Labels::of(&documents.resources);
    let shares = crate::sharing::shares_of(&consents, labels);
    Ok((
        "Your documents",
        html! {
            @if let Some(notice) = notice(visit) { p class="notice" role="status" { (notice) } }
            h1 { "Your documents" }
            (crate::documents::table(&documents, "Your documents", "No documents yet."))
            @if documents.next.is_some() { p { a href="/portal/documents" { "All your documents" } } }
            (crate::upload::form(visit, None))
            (crate::sharing::who_can_see(visit, &shares))
            h2 { "Recent access to your record" }
            (live_region(access_log::LIVE_TOPIC, &access_log::table(visit, &entries, "Recent access to your record", &log.anchored)))
            p { a href="/portal/access-log" { "Your whole access log" } }
        },
    ))
}

/// A doctor's patients, a page at a time (`cursor`: the page shown; the
/// first without one).
async fn doctor(visit: &Visit, cursor: Option<String>) -> Dashboard {
    let search = params(&[("_sort", "family"), ("_count", &LIST.to_string())]);
    let patients = fhir::search(visit, "Patient", paging::at(search, cursor.as_ref())).await?;
    Ok((
        "Your patients",
        html! {
            h1 { "Your patients" }
            p class="muted" { "The patients of your hospital, and those of other hospitals who shared their documents with you." }
            (live_region("patients", &patients_table(&patients)))
            (paging::pager("/portal", cursor.as_ref(), patients.next.as_ref(), paging::Labels { first: "First patients", next: "More patients" }))
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

/// A doctor's patients: each name links to the patient's page.
fn patients_table(found: &Found) -> Markup {
    html! {
        @if found.resources.is_empty() {
            p class="empty" { "Nobody yet." }
        } @else {
            table {
                caption class="sr-only" { "Your patients" }
                thead { tr {
                    th scope="col" { "Name" }
                    th scope="col" { "Born" }
                } }
                tbody {
                    @for p in &found.resources {
                        @let id = p["id"].as_str().unwrap_or_default();
                        tr data-key=(id) {
                            td { a href={ "/portal/patients/" (id) } { (person_name(p)) } }
                            td { (p["birthDate"].as_str().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}
