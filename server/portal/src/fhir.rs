//! The portal's reads through the FHIR service, with the visitor's guard:
//! the one read path decides and audits each of them as it would a FHIR
//! API call by the same token. And how FHIR values read in a page.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use fhir_profiles::format::FhirFormat;
use fhirledger_service::proofs::anchored_events;
use fhirledger_service::reads::{self, PgStore, ReadResource, Search, SearchPage};
use fhirledger_service::Guard;
use fhirledger_service::{prepare, search, CreateOutcome, ServiceError, UpdateTarget};
use serde_json::Value;
use std::collections::HashSet;

use crate::layout::problem;
use crate::session::Visit;

/// One page of a search, as the caller may see it.
pub struct Found {
    pub resources: Vec<Value>,
    /// What `_include` added (only what the caller may see).
    pub included: Vec<Value>,
    /// The cursor of the next page (`_cursor`), when more matches follow.
    pub next: Option<String>,
}

/// The search a page performs, as its AuditEvents describe it (the page's
/// own request is the raw query): `GET DocumentReference?patient=…`.
fn performed(resource_type: &str, params: &[(String, String)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    format!("GET {resource_type}?{}", query.finish())
}

/// A search of `resource_type` with `params`, through the read path.
pub async fn search(
    visit: &Visit,
    resource_type: &'static str,
    params: Vec<(String, String)>,
) -> Result<Found, ServiceError> {
    reading(visit, move |reads| reads.search(resource_type, params)).await
}

/// [`search`], for searches with `_include` (the same call: the name says
/// the caller reads [`Found::included`]).
pub async fn search_with_included(
    visit: &Visit,
    resource_type: &'static str,
    params: Vec<(String, String)>,
) -> Result<Found, ServiceError> {
    search(visit, resource_type, params).await
}

/// The reads of one page, run in one visit to the database: one wait for a
/// read slot and one hand-over to a blocking thread however many reads the
/// page makes (each of those cost a pair of thread switches, and a page's
/// reads queued again behind other pages' between its steps). Each read is
/// still its own interaction through the read path: decided and audited
/// as through the API.
pub async fn reading<T, F>(visit: &Visit, work: F) -> Result<T, ServiceError>
where
    F: FnOnce(&Reads<'_>) -> Result<T, ServiceError> + Send + 'static,
    T: Send + 'static,
{
    let guard = visit.guard.clone();
    let base = visit.server.settings.fhir_base.clone();
    visit
        .server
        .db
        .run_read(move |store| {
            work(&Reads {
                store,
                guard: &guard,
                base: &base,
            })
        })
        .await
}

/// What a page's reads run with ([`reading`]): the store, handed on to the
/// service's reads only, and the visitor's guard.
pub struct Reads<'a> {
    store: &'a PgStore,
    guard: &'a Guard,
    base: &'a str,
}

impl Reads<'_> {
    /// A search of `resource_type` with `params` (with `_include`s, the
    /// included resources the visitor may see).
    pub fn search(
        &self,
        resource_type: &'static str,
        params: Vec<(String, String)>,
    ) -> Result<Found, ServiceError> {
        let page = self.page(resource_type, &params)?;
        Ok(Found {
            next: page.next.clone(),
            resources: parse_all(page.matches.iter().map(|m| m.content.as_str())),
            included: parse_all(page.included.iter().map(|m| m.content.as_str())),
        })
    }

    /// A search's matches as stored (the JSON bytes the ledger hashes) with
    /// their ids, and the next page's cursor.
    pub fn search_contents(
        &self,
        resource_type: &'static str,
        params: Vec<(String, String)>,
    ) -> Result<Contents, ServiceError> {
        let page = self.page(resource_type, &params)?;
        let (ids, contents) = page.matches.into_iter().map(|m| (m.id, m.content)).unzip();
        Ok(Contents {
            ids,
            contents,
            next: page.next,
        })
    }

    /// Which of these AuditEvents are anchored (one statement for a page
    /// of a log).
    pub fn anchored(&self, ids: &[String]) -> Result<HashSet<String>, ServiceError> {
        anchored_events(self.store, self.guard, ids)
    }

    fn page(
        &self,
        resource_type: &'static str,
        params: &[(String, String)],
    ) -> Result<SearchPage, ServiceError> {
        let guard = self
            .guard
            .clone()
            .performing(performed(resource_type, params));
        let request = search::parse(self.base, resource_type, params, false)?;
        Ok(reads::read(self.store, &guard, Search { request: &request })?.value)
    }
}

/// A page of a search as stored ([`Reads::search_contents`]).
pub struct Contents {
    pub ids: Vec<String>,
    pub contents: Vec<String>,
    pub next: Option<String>,
}

/// A search's matches as stored (the JSON bytes the ledger hashes), and
/// the next page's cursor: for exports.
pub async fn search_contents(
    visit: &Visit,
    resource_type: &'static str,
    params: Vec<(String, String)>,
) -> Result<Contents, ServiceError> {
    reading(visit, move |reads| {
        reads.search_contents(resource_type, params)
    })
    .await
}

fn parse_all<'a>(contents: impl Iterator<Item = &'a str>) -> Vec<Value> {
    contents
        .filter_map(|c| serde_json::from_str(c).ok())
        .collect()
}

/// The current version of a resource the caller may see: its JSON and
/// version (404 when it is missing or hidden, as through the API).
pub async fn read(
    visit: &Visit,
    resource_type: &'static str,
    id: &str,
) -> Result<(Value, i64), ServiceError> {
    let guard = visit.guard.clone();
    let id = id.to_string();
    visit
        .server
        .db
        .run_read(move |store| -> Result<(Value, i64), ServiceError> {
            let op = ReadResource {
                resource_type,
                id: &id,
                version: None,
            };
            let version = reads::read(store, &guard, op)?.value;
            let gone = || ServiceError::not_found(format!("{resource_type}/{id} is not available"));
            let content = version.content.as_deref().ok_or_else(gone)?;
            let json = serde_json::from_str(content).map_err(|_| gone())?;
            Ok((json, version.version_id))
        })
        .await
}

/// Creates a resource as the caller (validated, decided and audited as a
/// `POST` to the API would be); its new id.
pub async fn create(visit: &Visit, resource: Value) -> Result<String, ServiceError> {
    let resource_type = resource_type_of(&resource)?;
    let guard = visit.guard.clone();
    let base = visit.server.settings.fhir_base.clone();
    let limit = visit.server.settings.max_body_bytes;
    visit
        .server
        .db
        .run(move |store| -> Result<String, ServiceError> {
            let prepared = prepare_json(&resource_type, &resource, &base)?;
            match fhirledger_service::create(store, &guard, &prepared, None, None, limit)? {
                CreateOutcome::Created(v) | CreateOutcome::Exists(v) => Ok(v.id),
            }
        })
        .await
}

/// Replaces a resource as the caller, if it is still at `version` (409/412
/// otherwise, as `If-Match` makes it through the API).
pub async fn update(
    visit: &Visit,
    id: &str,
    version: i64,
    resource: Value,
) -> Result<(), ServiceError> {
    let resource_type = resource_type_of(&resource)?;
    let guard = visit.guard.clone();
    let base = visit.server.settings.fhir_base.clone();
    let limit = visit.server.settings.max_body_bytes;
    let id = id.to_string();
    visit
        .server
        .db
        .run(move |store| -> Result<(), ServiceError> {
            let prepared = prepare_json(&resource_type, &resource, &base)?;
            let target = UpdateTarget::Id(id);
            fhirledger_service::update(
                store,
                &guard,
                &prepared,
                &target,
                Some(version),
                None,
                limit,
            )?;
            Ok(())
        })
        .await
}

/// Parses and validates a resource the portal built, as a JSON body sent
/// to the API would be.
fn prepare_json(
    resource_type: &str,
    resource: &Value,
    fhir_base: &str,
) -> Result<fhirledger_service::Prepared, ServiceError> {
    prepare(
        resource_type,
        resource.to_string().as_bytes(),
        FhirFormat::Json,
        fhir_base,
    )
}

fn resource_type_of(resource: &Value) -> Result<String, ServiceError> {
    resource["resourceType"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ServiceError::bad_request("the resource has no resourceType"))
}

/// A service error as the person should read it.
pub fn problem_page(e: &ServiceError) -> HttpResponse {
    match e.status.code() {
        401 => problem(
            StatusCode::UNAUTHORIZED,
            "Your session has ended",
            "Sign in again to go on.",
        ),
        403 => problem(
            StatusCode::FORBIDDEN,
            "You do not have access to this",
            "Your role or the patient's consent does not allow it. The attempt has been recorded.",
        ),
        409 | 412 => problem(
            StatusCode::CONFLICT,
            "Someone changed this meanwhile",
            "Nothing was saved. Go back, look at it again, and repeat your change if it is still needed.",
        ),
        404 | 410 => problem(
            StatusCode::NOT_FOUND,
            "Not found",
            "It does not exist, or you do not have access to it.",
        ),
        code if code < 500 => problem(
            StatusCode::BAD_REQUEST,
            "That did not work",
            "The request could not be understood. Please check what you entered and try again.",
        ),
        _ => {
            tracing::warn!(status = e.status.code(), "a portal page failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The server could not complete this just now. Please try again shortly.",
            )
        }
    }
}

/// A person's name (Patient, Practitioner).
pub fn person_name(resource: &Value) -> String {
    fhirledger_auth::names::person_name(resource)
        .or_else(|| resource["id"].as_str().map(str::to_string))
        .unwrap_or_else(|| "unnamed".to_string())
}

/// How a CodeableConcept reads: its text, else its first coding's display
/// or code.
pub fn concept(value: &Value) -> String {
    if let Some(text) = value["text"].as_str() {
        return text.to_string();
    }
    let coding = &value["coding"][0];
    coding["display"]
        .as_str()
        .or_else(|| coding["code"].as_str())
        .unwrap_or("")
        .to_string()
}

/// How a Reference reads: its display, else the reference itself.
pub fn reference(value: &Value) -> String {
    value["display"]
        .as_str()
        .or_else(|| value["reference"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The names of the resources a search included (`_include`), so that a
/// reference reads as the person or hospital it points at.
#[derive(Debug, Default)]
pub struct Names(std::collections::HashMap<String, String>);

impl Names {
    pub fn of(included: &[Value]) -> Names {
        Names(
            included
                .iter()
                .filter_map(|r| {
                    let rt = r["resourceType"].as_str()?;
                    let id = r["id"].as_str()?;
                    let name = match rt {
                        "Organization" => r["name"].as_str()?.to_string(),
                        "Practitioner" | "Patient" | "RelatedPerson" => person_name(r),
                        _ => return None,
                    };
                    Some((format!("{rt}/{id}"), name))
                })
                .collect(),
        )
    }

    /// How a Reference reads: its `display`, else the name of the resource
    /// it points at when that was included, else the reference itself.
    pub fn reference(&self, value: &Value) -> String {
        if let Some(display) = value["display"].as_str() {
            return display.to_string();
        }
        let target = value["reference"].as_str().unwrap_or("");
        self.0
            .get(target)
            .cloned()
            .unwrap_or_else(|| target.to_string())
    }
}

/// The [`Names`] of the directory resources (Practitioner, Organization)
/// that `references` point at, found in one search per type; a reference
/// to anything else, or that the visitor may not read, reads as itself.
pub async fn names_of(visit: &Visit, references: &[&Value]) -> Result<Names, ServiceError> {
    let mut included = Vec::new();
    for resource_type in ["Practitioner", "Organization"] {
        let ids: Vec<&str> = references
            .iter()
            .filter_map(|r| reference_id(r, resource_type))
            .collect();
        if ids.is_empty() {
            continue;
        }
        let found = search(
            visit,
            resource_type,
            vec![("_id".to_string(), ids.join(","))],
        )
        .await?;
        included.extend(found.resources);
    }
    Ok(Names::of(&included))
}

/// The id of a local reference `Type/id`.
pub fn reference_id<'a>(value: &'a Value, resource_type: &str) -> Option<&'a str> {
    value["reference"]
        .as_str()?
        .strip_prefix(resource_type)?
        .strip_prefix('/')
}

/// A date or instant as a person reads it: `2026-12-06 14:05 UTC`, or the
/// date alone; the `time` element carries the machine form.
pub fn when(value: &Value) -> String {
    value.as_str().map(when_text).unwrap_or_default()
}

/// A size in plain words.
pub fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} bytes")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{:.1} MiB", b / (KIB * KIB))
    }
}

/// [`when`] of a string.
pub fn when_text(text: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M UTC")
            .to_string(),
        Err(_) => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_read_as_people_expect() {
        assert_eq!(human_size(2048), "2.0 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(
            concept(&json!({"coding":[{"code":"x","display":"Discharge summary"}]})),
            "Discharge summary"
        );
        assert_eq!(
            concept(&json!({"text":"Letter","coding":[{"code":"x"}]})),
            "Letter"
        );
        assert_eq!(
            reference(&json!({"reference":"Practitioner/1"})),
            "Practitioner/1"
        );
        assert_eq!(
            reference_id(&json!({"reference":"Patient/p-1"}), "Patient"),
            Some("p-1")
        );
        assert_eq!(
            reference_id(&json!({"reference":"Group/p-1"}), "Patient"),
            None
        );
        assert_eq!(
            when(&json!("2026-12-06T14:05:09+01:00")),
            "2026-12-06 13:05 UTC"
        );
        assert_eq!(when(&json!("2026-12-06")), "2026-12-06");
    }
}
