//! The patient decides who sees their documents: who can see them now (every
//! Consent in force, in words, and what the base policy gives their own
//! hospital), sharing with a doctor or a hospital of the group (all
//! documents, some types, or chosen documents, until a date) and revoking a
//! share in one click. Each change is a proper FHIR Consent written through
//! the service as the patient — validated, decided and audited as through the
//! API — whose rules the access decision enforces from the next statement.

use std::collections::{BTreeMap, HashMap};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{NaiveDate, Utc};
use fhirledger_access::policy::ConsentDefault;
use fhirledger_service::ServiceError;
use maud::{html, Markup};
use serde_json::{json, Value};

use crate::fhir::{self, concept, person_name, problem_page, Found, Reads};
use crate::layout::{page, problem, problem_with_way_on, respond, see_other};
use crate::session::Visit;

const CONSENT_SCOPE: &str = "http://terminology.hl7.org/CodeSystem/consentscope";
const CONSENT_ACTION: &str = "http://terminology.hl7.org/CodeSystem/consentaction";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const RESOURCE_TYPES: &str = "http://hl7.org/fhir/resource-types";
/// LOINC "Patient consent".
const LOINC_CONSENT: &str = "59284-0";

/// One share as the patient reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    pub consent_id: String,
    pub version: i64,
    /// Doctors and hospitals it names (all doctors when empty).
    pub who: Vec<String>,
    pub what: String,
    /// The last day, when it ends.
    pub until: Option<String>,
    /// Permit (else: deny).
    pub permit: bool,
    /// Nested provisions make exceptions the summary leaves out.
    pub exceptions: bool,
}

/// How the patient's documents are named: titles by document id, and
/// kinds (`system|code` of their types) by their display.
#[derive(Debug, Default, Clone)]
pub struct Labels {
    pub titles: HashMap<String, String>,
    pub kinds: BTreeMap<String, String>,
}

impl Labels {
    /// The labels of these documents.
    pub fn of(documents: &[Value]) -> Labels {
        let mut labels = Labels::default();
        labels.add(documents.iter());
        labels
    }

    /// Adds the labels of these documents.
    pub fn add<'a>(&mut self, documents: impl Iterator<Item = &'a Value>) {
        let labels = self;
        for d in documents {
            if let Some(id) = d["id"].as_str() {
                labels.titles.insert(id.to_string(), document_label(d));
            }
            for c in d["type"]["coding"].as_array().into_iter().flatten() {
                if let (Some(system), Some(code)) = (c["system"].as_str(), c["code"].as_str()) {
                    let label = c["display"].as_str().unwrap_or(code).to_string();
                    labels.kinds.insert(format!("{system}|{code}"), label);
                }
            }
        }
    }

    /// A provision's `code` in words: the kind's label when one of the
    /// patient's documents has it, else the concept's own words.
    fn kind(&self, code: &Value) -> String {
        let coding = &code["coding"][0];
        let key = format!(
            "{}|{}",
            coding["system"].as_str().unwrap_or_default(),
            coding["code"].as_str().unwrap_or_default()
        );
        self.kinds
            .get(&key)
            .cloned()
            .unwrap_or_else(|| concept(code))
    }
}

/// What a Consent says, in words, for the patient's list: its root
/// provision (who, what, until) and whether it permits or denies.
/// `names` names the doctors and hospitals it may point at.
pub fn summarize(
    consent: &Value,
    version: i64,
    names: &fhir::Names,
    labels: &Labels,
) -> Option<Share> {
    let provision = &consent["provision"];
    let consent_id = consent["id"].as_str()?.to_string();
    let who = provision["actor"]
        .as_array()
        .map(|actors| {
            actors
                .iter()
                .map(|a| names.reference(&a["reference"]))
                .collect()
        })
        .unwrap_or_default();
    let documents: Vec<String> = provision["data"]
        .as_array()
        .map(|data| {
            data.iter()
                .filter_map(|d| fhir::reference_id(&d["reference"], "DocumentReference"))
                .map(|id| {
                    labels
                        .titles
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| id.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let codes: Vec<String> = provision["code"]
        .as_array()
        .map(|codes| codes.iter().map(|c| labels.kind(c)).collect())
        .unwrap_or_default();
    let what = match (documents.is_empty(), codes.is_empty()) {
        (false, _) => format!("These documents: {}", documents.join(", ")),
        (true, false) => format!("Documents of these kinds: {}", codes.join(", ")),
        (true, true) => "All your documents".to_string(),
    };
    Some(Share {
        consent_id,
        version,
        who,
        what,
        until: provision["period"]["end"]
            .as_str()
            .map(|e| e.chars().take(10).collect()),
        permit: provision["type"].as_str() != Some("deny"),
        exceptions: provision["provision"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
    })
}

/// The patient's Consents in force: one search, which includes the doctors
/// and hospitals they name and the documents they name one by one, so that
/// [`shares_of`] reads each by names and titles.
pub fn consents_in_force(reads: &Reads<'_>, patient: &str) -> Result<Found, ServiceError> {
    reads.search(
        "Consent",
        vec![
            ("patient".into(), patient.to_string()),
            ("status".into(), "active".into()),
            ("_include".into(), "Consent:actor".into()),
            ("_include".into(), "Consent:data".into()),
            ("_count".into(), "100".into()),
        ],
    )
}

/// Each Consent [`consents_in_force`] found as a share in words; `labels`
/// names the kinds of the documents the page lists already, and gains the
/// titles of the documents the Consents name.
pub fn shares_of(consents: &Found, mut labels: Labels) -> Vec<Share> {
    let names = fhir::Names::of(&consents.included);
    let named_documents = consents
        .included
        .iter()
        .filter(|r| r["resourceType"] == "DocumentReference");
    labels.add(named_documents);
    consents
        .resources
        .iter()
        .filter_map(|c| {
            let version = c["meta"]["versionId"].as_str()?.parse().ok()?;
            summarize(c, version, &names, &labels)
        })
        .collect()
}

/// The "who can see your documents" section of the patient's dashboard.
pub fn who_can_see(visit: &Visit, shares: &[Share]) -> Markup {
    let hospital = visit
        .caller
        .organization_name
        .clone()
        .unwrap_or_else(|| "your hospital".to_string());
    let csrf = visit.csrf_token();
    html! {
        h2 id="who-can-see" { "Who can see your documents" }
        p {
            "Doctors always see the documents they wrote themselves. "
            @match visit.server.settings.policy.consent_default {
                ConsentDefault::Deny => { "Other doctors, including those of " (hospital) ", see only what you share with them below." }
                ConsentDefault::Permit => { "The doctors of " (hospital) " see your documents unless you deny it; other doctors see only what you share with them below." }
            }
        }
        @if shares.is_empty() {
            p class="empty" { "You have not shared any documents." }
        } @else {
            table {
                caption class="sr-only" { "Your shares" }
                thead { tr {
                    th scope="col" { "With" }
                    th scope="col" { "What" }
                    th scope="col" { "Until" }
                    th scope="col" { span class="sr-only" { "Action" } }
                } }
                tbody {
                    @for s in shares {
                        tr {
                            td {
                                @if s.who.is_empty() { "Every doctor" } @else { (s.who.join(", ")) }
                                @if !s.permit { " " strong { "(denied)" } }
                            }
                            td {
                                (s.what)
                                @if s.exceptions { br; span class="muted" { "with exceptions" } }
                            }
                            td { (s.until.clone().unwrap_or_else(|| "until you revoke it".to_string())) }
                            td {
                                form method="post" action={ "/portal/sharing/" (s.consent_id) "/revoke" } {
                                    input type="hidden" name=(crate::csrf::FIELD) value=(csrf);
                                    input type="hidden" name="version" value=(s.version);
                                    button type="submit" class="secondary" aria-label={ "Revoke sharing with " (s.who.join(", ")) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        p { a class="button" href="/portal/sharing/new" { "Share your documents" } }
    }
}

/// One match of the directory search: a doctor (with their hospitals) or a
/// hospital.
struct Candidate {
    reference: String,
    label: String,
}

/// `GET /portal/sharing/new?q=…`: find whom to share with, choose what and
/// until when.
pub async fn new_share(visit: Visit, query: web::Query<Vec<(String, String)>>) -> HttpResponse {
    let q = query
        .iter()
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    match share_form(&visit, &q, None).await {
        Ok(markup) => respond(StatusCode::OK, markup),
        Err(e) => problem_page(&e),
    }
}

async fn share_form(visit: &Visit, q: &str, error: Option<&str>) -> Result<Markup, ServiceError> {
    let own = visit.caller.patient.clone().unwrap_or_default();
    let documents = fhir::search(
        visit,
        "DocumentReference",
        vec![
            ("patient".into(), own),
            ("_sort".into(), "-date".into()),
            ("_count".into(), "100".into()),
        ],
    )
    .await?;
    let kinds = Labels::of(&documents.resources).kinds;
    let candidates = if q.is_empty() {
        Vec::new()
    } else {
        directory_search(visit, q).await?
    };
    let tomorrow = (Utc::now().date_naive() + chrono::Days::new(1)).to_string();
    let a_year = (Utc::now().date_naive() + chrono::Days::new(365)).to_string();
    let body = html! {
        h1 { "Share your documents" }
        @if let Some(error) = error { p role="alert" class="error" { (error) } }
        form method="get" action="/portal/sharing/new" role="search" {
            label for="q" { "Find a doctor or hospital of the group by name" }
            input id="q" type="search" name="q" value=(q) autocomplete="off";
            " "
            button type="submit" { "Search" }
        }
        @if !q.is_empty() && candidates.is_empty() {
            p class="empty" { "No doctor or hospital of the group matches \u{201c}" (q) "\u{201d}." }
        }
        @if !candidates.is_empty() {
            form method="post" action="/portal/sharing" {
                input type="hidden" name=(crate::csrf::FIELD) value=(visit.csrf_token());
                fieldset {
                    legend { "Share with" }
                    @for (i, c) in candidates.iter().enumerate() {
                        div class="choice" {
                            input type="radio" id={ "with-" (i) } name="with" value=(c.reference) required checked[i == 0];
                            label for={ "with-" (i) } { (c.label) }
                        }
                    }
                }
                fieldset {
                    legend { "What" }
                    div class="choice" {
                        input type="radio" id="what-all" name="what" value="all" checked;
                        label for="what-all" { "All your documents, present and future" }
                    }
                    div class="choice" {
                        input type="radio" id="what-types" name="what" value="types";
                        label for="what-types" { "Documents of these kinds:" }
                    }
                    @for (i, (key, label)) in kinds.iter().enumerate() {
                        div class="choice nested" {
                            input type="checkbox" id={ "type-" (i) } name="type" value=(key);
                            label for={ "type-" (i) } { (label) }
                        }
                    }
                    div class="choice" {
                        input type="radio" id="what-documents" name="what" value="documents";
                        label for="what-documents" { "Only these documents:" }
                    }
                    @for (i, d) in documents.resources.iter().enumerate() {
                        div class="choice nested" {
                            input type="checkbox" id={ "document-" (i) } name="document" value=(d["id"].as_str().unwrap_or_default());
                            label for={ "document-" (i) } { (document_label(d)) }
                        }
                    }
                }
                label for="until" { "Until (the last day they may see it)" }
                input id="until" type="date" name="until" required min=(tomorrow) value=(a_year);
                p { button type="submit" { "Share" } " " a href="/portal" { "Cancel" } }
            }
        }
    };
    Ok(page("Share your documents", Some(&visit.person()), body))
}

fn document_label(d: &Value) -> String {
    let title = d["description"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| concept(&d["type"]));
    let date: String = d["date"].as_str().unwrap_or("").chars().take(10).collect();
    if date.is_empty() {
        title
    } else {
        format!("{title} ({date})")
    }
}

/// Doctors (with their hospitals) and hospitals of the group whose name
/// matches.
async fn directory_search(visit: &Visit, q: &str) -> Result<Vec<Candidate>, ServiceError> {
    let by_name = |t: &'static str| {
        fhir::search(
            visit,
            t,
            vec![
                ("name".into(), q.to_string()),
                ("_count".into(), "20".into()),
            ],
        )
    };
    let doctors = by_name("Practitioner").await?;
    let hospitals = by_name("Organization").await?;
    let mut hospital_of: HashMap<String, Vec<String>> = HashMap::new();
    if !doctors.resources.is_empty() {
        let ids: Vec<String> = doctors
            .resources
            .iter()
            .filter_map(|d| d["id"].as_str().map(|id| format!("Practitioner/{id}")))
            .collect();
        let roles = fhir::search_with_included(
            visit,
            "PractitionerRole",
            vec![
                ("practitioner".into(), ids.join(",")),
                ("_include".into(), "PractitionerRole:organization".into()),
                ("_count".into(), "100".into()),
            ],
        )
        .await?;
        let org_names: HashMap<String, String> = roles
            .included
            .iter()
            .filter(|r| r["resourceType"] == "Organization")
            .filter_map(|o| {
                Some((
                    format!("Organization/{}", o["id"].as_str()?),
                    o["name"].as_str()?.to_string(),
                ))
            })
            .collect();
        for role in &roles.resources {
            let (Some(p), Some(o)) = (
                role["practitioner"]["reference"].as_str(),
                role["organization"]["reference"].as_str(),
            ) else {
                continue;
            };
            if let Some(name) = org_names.get(o) {
                hospital_of
                    .entry(p.to_string())
                    .or_default()
                    .push(name.clone());
            }
        }
    }
    let mut out: Vec<Candidate> = doctors
        .resources
        .iter()
        .filter_map(|d| {
            let reference = format!("Practitioner/{}", d["id"].as_str()?);
            let mut label = person_name(d);
            if let Some(h) = hospital_of.get(&reference) {
                label.push_str(&format!(", {}", h.join(", ")));
            }
            Some(Candidate { reference, label })
        })
        .collect();
    out.extend(hospitals.resources.iter().filter_map(|o| {
        Some(Candidate {
            reference: format!("Organization/{}", o["id"].as_str()?),
            label: format!("{} (all its doctors)", o["name"].as_str()?),
        })
    }));
    Ok(out)
}

/// What the share form says.
#[derive(Debug, Default, PartialEq)]
pub struct ShareForm {
    pub csrf: Option<String>,
    pub with: Option<String>,
    pub what: Option<String>,
    pub types: Vec<String>,
    pub documents: Vec<String>,
    pub until: Option<String>,
}

impl ShareForm {
    pub fn parse(body: &[u8]) -> ShareForm {
        let mut form = ShareForm::default();
        for (k, v) in form_urlencoded::parse(body) {
            let v = v.into_owned();
            match k.as_ref() {
                crate::csrf::FIELD => form.csrf = Some(v),
                "with" => form.with = Some(v),
                "what" => form.what = Some(v),
                "type" => form.types.push(v),
                "document" => form.documents.push(v),
                "until" => form.until = Some(v),
                _ => {}
            }
        }
        form
    }
}

/// What a share grants, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    All,
    /// `system|code` of document types.
    Types(Vec<(String, String)>),
    Documents(Vec<String>),
}

/// A share ready to become a Consent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewShare {
    /// `Practitioner/…` or `Organization/…`.
    pub with: String,
    pub scope: Scope,
    pub until: NaiveDate,
}

/// Checks the form: whom (a doctor or hospital reference), what (with at
/// least one kind or document when those are chosen), until (a day after
/// `today`). The message says what to correct.
pub fn check(form: &ShareForm, today: NaiveDate) -> Result<NewShare, &'static str> {
    let with = form
        .with
        .as_deref()
        .filter(|w| is_directory_reference(w))
        .ok_or("Choose a doctor or a hospital to share with.")?;
    let scope = match form.what.as_deref() {
        Some("all") => Scope::All,
        Some("types") => {
            let types: Vec<(String, String)> = form
                .types
                .iter()
                .filter_map(|t| t.split_once('|'))
                .filter(|(s, c)| !s.is_empty() && !c.is_empty() && s.len() < 256 && c.len() < 256)
                .map(|(s, c)| (s.to_string(), c.to_string()))
                .collect();
            if types.is_empty() {
                return Err("Tick at least one kind of document, or choose all documents.");
            }
            Scope::Types(types)
        }
        Some("documents") => {
            let documents: Vec<String> = form
                .documents
                .iter()
                .filter(|d| fhir_profiles::ids::is_valid_id(d))
                .cloned()
                .collect();
            if documents.is_empty() {
                return Err("Tick at least one document, or choose all documents.");
            }
            Scope::Documents(documents)
        }
        _ => return Err("Choose what to share."),
    };
    let until = form
        .until
        .as_deref()
        .and_then(|u| NaiveDate::parse_from_str(u, "%Y-%m-%d").ok())
        .filter(|u| *u > today)
        .ok_or("Choose the last day of the share: a date after today.")?;
    Ok(NewShare {
        with: with.to_string(),
        scope,
        until,
    })
}

fn is_directory_reference(r: &str) -> bool {
    let Some((t, id)) = r.split_once('/') else {
        return false;
    };
    matches!(t, "Practitioner" | "Organization") && fhir_profiles::ids::is_valid_id(id)
}

/// The Consent a share is: a patient-privacy opt-in whose one provision
/// permits access to DocumentReferences (all, some types, or named ones)
/// by the named actor for the period from now to the end of `until`.
pub fn consent(
    patient: &str,
    share: &NewShare,
    display: &str,
    now: chrono::DateTime<Utc>,
) -> Value {
    let mut provision = json!({
        "type": "permit",
        "period": {
            "start": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "end": format!("{}T23:59:59Z", share.until),
        },
        "actor": [{
            "role": { "coding": [{ "system": PARTICIPATION, "code": "IRCP", "display": "information recipient" }] },
            "reference": { "reference": share.with, "display": display },
        }],
        "action": [{ "coding": [{ "system": CONSENT_ACTION, "code": "access" }] }],
        "class": [{ "system": RESOURCE_TYPES, "code": "DocumentReference" }],
    });
    match &share.scope {
        Scope::All => {}
        Scope::Types(types) => {
            provision["code"] = types
                .iter()
                .map(|(s, c)| json!({ "coding": [{ "system": s, "code": c }] }))
                .collect();
        }
        Scope::Documents(ids) => {
            provision["data"] = ids
                .iter()
                .map(|id| json!({ "meaning": "instance", "reference": { "reference": format!("DocumentReference/{id}") } }))
                .collect();
        }
    }
    json!({
        "resourceType": "Consent",
        "status": "active",
        "scope": { "coding": [{ "system": CONSENT_SCOPE, "code": "patient-privacy" }] },
        "category": [{ "coding": [{ "system": "http://loinc.org", "code": LOINC_CONSENT }] }],
        "patient": { "reference": format!("Patient/{patient}") },
        "dateTime": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "performer": [{ "reference": format!("Patient/{patient}") }],
        "policyRule": { "coding": [{ "system": ACT_CODE, "code": "OPTIN" }] },
        "provision": provision,
    })
}

/// `POST /portal/sharing`: the share written as a Consent.
pub async fn create_share(visit: Visit, body: web::Bytes) -> HttpResponse {
    let form = ShareForm::parse(&body);
    if !visit.csrf_valid(form.csrf.as_deref()) {
        return forged();
    }
    let Some(patient) = visit.caller.patient.clone() else {
        return problem(
            StatusCode::FORBIDDEN,
            "Only patients share their documents",
            "Sharing is for the patient whose documents they are.",
        );
    };
    let share = match check(&form, Utc::now().date_naive()) {
        Ok(share) => share,
        Err(why) => {
            return match share_form(&visit, "", Some(why)).await {
                Ok(markup) => respond(StatusCode::UNPROCESSABLE_ENTITY, markup),
                Err(e) => problem_page(&e),
            }
        }
    };
    let (t, id) = share.with.split_once('/').unwrap_or_default();
    let display = match t {
        "Organization" => fhir::read(&visit, "Organization", id)
            .await
            .map(|(o, _)| o["name"].as_str().unwrap_or(id).to_string()),
        _ => fhir::read(&visit, "Practitioner", id)
            .await
            .map(|(p, _)| person_name(&p)),
    };
    let display = match display {
        Ok(d) => d,
        Err(e) => return problem_page(&e),
    };
    match fhir::create(&visit, consent(&patient, &share, &display, Utc::now())).await {
        Ok(_) => see_other("/portal?done=shared#who-can-see"),
        Err(e) => problem_page(&e),
    }
}

/// `POST /portal/sharing/{id}/revoke`: the Consent's new version is
/// `inactive` (its history keeps what was shared, and when it ended).
pub async fn revoke_share(visit: Visit, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let Some(form) = visit.checked_form(&body) else {
        return forged();
    };
    let id = path.into_inner();
    let (mut consent, version) = match fhir::read(&visit, "Consent", &id).await {
        Ok(found) => found,
        Err(e) => return problem_page(&e),
    };
    // Twice (two windows, a button pressed again): nothing more to do.
    if consent["status"] == "inactive" {
        return problem_with_way_on(
            StatusCode::CONFLICT,
            "Already revoked",
            "This share was already revoked, perhaps from another window. Nothing was changed.",
            ("/portal#who-can-see", "See who can see your documents"),
        );
    }
    // The version the person saw: a change made meanwhile is not overwritten.
    let seen = form.get("version").and_then(|v| v.parse::<i64>().ok());
    if seen.is_some_and(|seen| seen != version) {
        return problem_with_way_on(
            StatusCode::CONFLICT,
            "This share changed meanwhile",
            "It was changed since you opened the page, so nothing was changed now. Look at it again, then revoke it if you still want to.",
            ("/portal#who-can-see", "See who can see your documents"),
        );
    }
    consent["status"] = json!("inactive");
    match fhir::update(&visit, &id, version, consent).await {
        Ok(()) => see_other("/portal?done=revoked#who-can-see"),
        Err(e) => problem_page(&e),
    }
}

/// A form that did not come from this session's pages.
pub fn forged() -> HttpResponse {
    problem(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "The page it came from is out of date or was not sent by the portal. Nothing was changed.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn form(pairs: &str) -> ShareForm {
        ShareForm::parse(pairs.as_bytes())
    }

    #[test]
    fn a_share_names_a_doctor_or_hospital_what_and_a_future_day() {
        let today = day("2026-12-06");
        let ok = check(
            &form("with=Practitioner/d-1&what=all&until=2027-01-31"),
            today,
        )
        .unwrap();
        assert_eq!(ok.with, "Practitioner/d-1");
        assert_eq!(ok.scope, Scope::All);
        assert_eq!(ok.until, day("2027-01-31"));
        let types = check(
            &form("with=Organization/h-2&what=types&type=http%3A%2F%2Floinc.org%7C11506-3&until=2026-12-07"),
            today,
        )
        .unwrap();
        assert_eq!(
            types.scope,
            Scope::Types(vec![("http://loinc.org".into(), "11506-3".into())])
        );
        let docs = check(
            &form("with=Practitioner/d-1&what=documents&document=a&document=b&until=2027-01-01"),
            today,
        )
        .unwrap();
        assert_eq!(docs.scope, Scope::Documents(vec!["a".into(), "b".into()]));

        for bad in [
            "what=all&until=2027-01-31",
            "with=Patient/p-1&what=all&until=2027-01-31",
            "with=Practitioner/..%2Fx&what=all&until=2027-01-31",
            "with=Practitioner/d-1&until=2027-01-31",
            "with=Practitioner/d-1&what=types&until=2027-01-31",
            "with=Practitioner/d-1&what=documents&until=2027-01-31",
            "with=Practitioner/d-1&what=all&until=2026-12-06",
            "with=Practitioner/d-1&what=all&until=tomorrow",
        ] {
            assert!(check(&form(bad), today).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_share_reads_back_as_what_was_chosen() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let share = NewShare {
            with: "Practitioner/d-2".into(),
            scope: Scope::Types(vec![("http://loinc.org".into(), "11506-3".into())]),
            until: day("2027-03-01"),
        };
        let mut c = consent("p-1", &share, "Dr Second", now);
        c["id"] = json!("c-1");
        assert_eq!(c["provision"]["period"]["end"], "2027-03-01T23:59:59Z");
        let names = fhir::Names::of(&[json!({"resourceType": "Practitioner", "id": "d-2",
            "name": [{"prefix": ["Dr"], "given": ["Second"]}]})]);
        let labels = Labels::of(&[
            json!({"id": "doc-1", "description": "Note", "date": "2026-01-02",
            "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}]}}),
        ]);
        let s = summarize(&c, 3, &names, &labels).unwrap();
        assert_eq!(s.who, vec!["Dr Second"]);
        assert_eq!(s.what, "Documents of these kinds: Progress note");
        assert_eq!(labels.titles["doc-1"], "Note (2026-01-02)");
        assert_eq!(s.until.as_deref(), Some("2027-03-01"));
        assert!(s.permit && !s.exceptions);
        assert_eq!(s.version, 3);
    }
}
