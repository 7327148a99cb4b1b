//! The compliance officer's dashboard: the audit trail of their scope (a
//! hospital's, or the whole solution's), searchable by patient, person,
//! date range, action and outcome, a page at a time; an NDJSON export of
//! the selection (the stored events, byte for byte, as the ledger hashes
//! them); the ledger's status (log size, last anchor, lag); and each
//! entry's proof one click away. Every search and export is a search of
//! AuditEvent through the read path as the officer, so it is confined to
//! their scope and recorded.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use bytes::Bytes;
use chrono::NaiveDate;
use fhirledger_service::anchoring::{ledger_status, LedgerStatus};
use fhirledger_service::ServiceError;
use maud::{html, Markup};

use crate::access_log;
use crate::context::PortalContext;
use crate::fhir::{self, problem_page};
use crate::layout::{page, respond};
use crate::paging;
use crate::session::Visit;

/// Entries on one page of the trail.
const PAGE: usize = 25;
/// Events fetched per statement while exporting.
const EXPORT_BATCH: usize = 1000;

/// The trail's filters, as the form sends them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub patient: String,
    pub person: String,
    pub from: String,
    pub to: String,
    pub action: String,
    pub outcome: String,
}

impl Filters {
    pub fn parse(query: &[(String, String)]) -> Filters {
        let mut f = Filters::default();
        for (k, v) in query {
            let v = v.trim().to_string();
            match k.as_str() {
                "patient" => f.patient = v,
                "person" => f.person = v,
                "from" => f.from = v,
                "to" => f.to = v,
                "action" => f.action = v,
                "outcome" => f.outcome = v,
                _ => {}
            }
        }
        f
    }

    /// The selection as AuditEvent search parameters; what to correct when
    /// a field makes no sense.
    pub fn search_params(&self) -> Result<Vec<(String, String)>, &'static str> {
        let mut params = Vec::new();
        if !self.patient.is_empty() {
            let id = self
                .patient
                .strip_prefix("Patient/")
                .unwrap_or(&self.patient);
            if !fhir_profiles::ids::is_valid_id(id) {
                return Err("The patient is a record id, such as demo-patient.");
            }
            params.push(("patient".into(), format!("Patient/{id}")));
        }
        if !self.person.is_empty() {
            if self.person.chars().count() > 100 {
                return Err("The person's name is too long.");
            }
            // Any part of the name: a family name finds "Dr Ann Jones".
            params.push(("agent-name:contains".into(), self.person.clone()));
        }
        let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
        let from = match self.from.as_str() {
            "" => None,
            d => Some(day(d).ok_or("The first day is a date (YYYY-MM-DD).")?),
        };
        let to = match self.to.as_str() {
            "" => None,
            d => Some(day(d).ok_or("The last day is a date (YYYY-MM-DD).")?),
        };
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                return Err("The first day comes after the last day.");
            }
        }
        if let Some(from) = from {
            params.push(("date".into(), format!("ge{from}")));
        }
        if let Some(to) = to {
            // The whole last day.
            params.push(("date".into(), format!("le{to}")));
        }
        if !self.action.is_empty() {
            if !matches!(self.action.as_str(), "C" | "R" | "U" | "D" | "E") {
                return Err("Choose an action from the list.");
            }
            params.push(("action".into(), self.action.clone()));
        }
        if !self.outcome.is_empty() {
            if !matches!(self.outcome.as_str(), "0" | "4" | "8" | "12") {
                return Err("Choose an outcome from the list.");
            }
            params.push(("outcome".into(), self.outcome.clone()));
        }
        Ok(params)
    }

    /// The filters as a query string (for the pager and the export link).
    pub fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("patient", &self.patient),
            ("person", &self.person),
            ("from", &self.from),
            ("to", &self.to),
            ("action", &self.action),
            ("outcome", &self.outcome),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        q.finish()
    }
}

/// `GET /portal/trail?…`: the officer's dashboard.
pub async fn trail_page(visit: Visit, query: web::Query<Vec<(String, String)>>) -> HttpResponse {
    match render(&visit, &query).await {
        Ok((status, body)) => respond(status, page("Audit trail", Some(&visit.person()), body)),
        Err(e) => problem_page(&e),
    }
}

/// The trail page's content, for the officer's dashboard and `/portal/trail`.
pub async fn render(
    visit: &Visit,
    query: &[(String, String)],
) -> Result<(StatusCode, Markup), ServiceError> {
    let filters = Filters::parse(query);
    let cursor = paging::cursor_of(query);
    let status = ledger(visit).await?;
    let (found, error) = match filters.search_params() {
        Ok(mut params) => {
            params.push(("_sort".into(), "-date".into()));
            params.push(("_count".into(), PAGE.to_string()));
            let params = paging::at(params, cursor.as_ref());
            (
                Some(access_log::LogPage::search(visit, params).await?),
                None,
            )
        }
        Err(why) => (None, Some(why)),
    };
    let entries = found.as_ref().map(|f| f.entries()).unwrap_or_default();
    let anchored = found
        .as_ref()
        .map(|f| f.anchored.clone())
        .unwrap_or_default();
    let q = filters.query();
    let first = if q.is_empty() {
        "/portal/trail".to_string()
    } else {
        format!("/portal/trail?{q}")
    };
    let body = html! {
        h1 { "Audit trail" }
        (status_panel(&status))
        (filter_form(&filters))
        @if let Some(why) = error { p role="alert" class="error" { (why) } }
        @if let Some(found) = &found {
            (access_log::table(visit, &entries, "Events", &anchored))
            (paging::pager(&first, cursor.as_ref(), found.next.as_ref(), paging::newest_first("Older events")))
            p { a class="button" href={ "/portal/trail/export?" (q) } download { "Export these events (NDJSON)" } }
        }
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, body))
}

async fn ledger(visit: &Visit) -> Result<LedgerStatus, ServiceError> {
    let local = visit
        .req
        .app_data::<web::Data<PortalContext>>()
        .and_then(|c| c.anchoring);
    let guard = visit.guard.clone();
    visit
        .server
        .db
        .run_read(move |store| ledger_status(store, &guard, local))
        .await
}

fn status_panel(status: &LedgerStatus) -> Markup {
    html! {
        section aria-labelledby="ledger" class="ledger" {
            h2 id="ledger" { "Ledger" }
            dl class="facts" {
                dt { "Events in the log" } dd { (status.tree_size) }
                dt { "Anchored on chain" } dd { (status.anchored_size) }
                dt { "Waiting to be anchored" } dd {
                    (status.lag_leaves) " events"
                    @if status.lag_leaves > 0 { ", the oldest for " (status.lag_seconds) " s" }
                }
                @if let Some(tx) = &status.last_tx { dt { "Last anchor" } dd { code class="hash" { (fhirledger_merkle::hex_0x(tx)) } } }
                @if let Some(chain) = status.chain_id { dt { "Chain" } dd { (chain) } }
                dt { "Anchoring" } dd { (worker_words(status.worker.code())) }
                @if let Some(e) = &status.last_error { dt { "Last problem" } dd { (e) } }
            }
        }
    }
}

fn worker_words(code: &str) -> &'static str {
    match code {
        "anchoring" => "working",
        "waiting-for-chain" => "waiting for the chain",
        "standby" => "on standby",
        "chain-mismatch" => "stopped: the chain does not hold our checkpoints",
        _ => "unknown",
    }
}

fn filter_form(f: &Filters) -> Markup {
    let option = |value: &str, label: &str, current: &str| {
        html! { option value=(value) selected[value == current] { (label) } }
    };
    html! {
        form method="get" action="/portal/trail" class="filters" role="search" {
            div class="fields" {
                div { label for="f-patient" { "Patient (record id)" } input id="f-patient" type="text" name="patient" value=(f.patient); }
                div { label for="f-person" { "Person (name)" } input id="f-person" type="text" name="person" value=(f.person); }
                div { label for="f-from" { "From" } input id="f-from" type="date" name="from" value=(f.from); }
                div { label for="f-to" { "To" } input id="f-to" type="date" name="to" value=(f.to); }
                div {
                    label for="f-action" { "Action" }
                    select id="f-action" name="action" {
                        (option("", "Any", &f.action))
                        (option("R", "Read or search", &f.action))
                        (option("C", "Create", &f.action))
                        (option("U", "Update", &f.action))
                        (option("D", "Delete", &f.action))
                        (option("E", "Other (sign-in, operations)", &f.action))
                    }
                }
                div {
                    label for="f-outcome" { "Outcome" }
                    select id="f-outcome" name="outcome" {
                        (option("", "Any", &f.outcome))
                        (option("0", "Allowed", &f.outcome))
                        (option("4", "Refused", &f.outcome))
                        (option("8", "Failed", &f.outcome))
                    }
                }
            }
            p { button type="submit" { "Search" } " " a href="/portal/trail" { "Clear" } }
        }
    }
}

/// `GET /portal/trail/export?…`: every event of the selection, oldest
/// first, one stored JSON per line, streamed a batch at a time.
pub async fn export(visit: Visit, query: web::Query<Vec<(String, String)>>) -> HttpResponse {
    let filters = Filters::parse(&query);
    let params = match filters.search_params() {
        Ok(params) => params,
        Err(_) => {
            return problem_page(&ServiceError::bad_request("the filters are not valid"));
        }
    };
    // The first batch before the answer starts: a refusal is a page, not a
    // broken download.
    let first = match batch(&visit, &params, None).await {
        Ok(first) => first,
        Err(e) => return problem_page(&e),
    };
    let stream = futures_util::stream::unfold(
        (Some(first), visit, params),
        |(pending, visit, params)| async move {
            let (lines, next) = pending?;
            let following = match next {
                Some(cursor) => match batch(&visit, &params, Some(cursor)).await {
                    Ok(b) => Some(b),
                    Err(e) => {
                        tracing::warn!(error = %e.status.code(), "an NDJSON export stopped early");
                        None
                    }
                },
                None => None,
            };
            Some((
                Ok::<_, actix_web::Error>(Bytes::from(lines)),
                (following, visit, params),
            ))
        },
    );
    HttpResponse::Ok()
        .insert_header(("Content-Type", "application/fhir+ndjson"))
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"audit-trail.ndjson\"",
        ))
        .insert_header(("Cache-Control", "no-store"))
        .streaming(stream)
}

/// One batch of the export: its NDJSON lines and the next cursor.
async fn batch(
    visit: &Visit,
    params: &[(String, String)],
    cursor: Option<String>,
) -> Result<(String, Option<String>), ServiceError> {
    let mut params = params.to_vec();
    params.push(("_sort".into(), "date".into()));
    params.push(("_count".into(), EXPORT_BATCH.to_string()));
    if let Some(cursor) = cursor {
        params.push(("_cursor".into(), cursor));
    }
    let page = fhir::search_contents(visit, "AuditEvent", params).await?;
    let (contents, next) = (page.contents, page.next);
    let mut lines = String::new();
    for c in contents {
        lines.push_str(&c);
        lines.push('\n');
    }
    Ok((lines, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(pairs: &[(&str, &str)]) -> Filters {
        Filters::parse(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn filters_become_the_searches_they_mean() {
        let f = filters(&[
            ("patient", "demo-patient"),
            ("person", "Sam"),
            ("from", "2026-01-01"),
            ("to", "2026-01-31"),
            ("action", "R"),
            ("outcome", "4"),
        ]);
        assert_eq!(
            f.search_params().unwrap(),
            vec![
                ("patient".to_string(), "Patient/demo-patient".to_string()),
                ("agent-name:contains".into(), "Sam".into()),
                ("date".into(), "ge2026-01-01".into()),
                ("date".into(), "le2026-01-31".into()),
                ("action".into(), "R".into()),
                ("outcome".into(), "4".into()),
            ]
        );
        assert_eq!(
            f.query(),
            "patient=demo-patient&person=Sam&from=2026-01-01&to=2026-01-31&action=R&outcome=4"
        );
        assert!(filters(&[]).search_params().unwrap().is_empty());
        for bad in [
            [("patient", "../x")],
            [("from", "yesterday")],
            [("action", "X")],
            [("outcome", "5")],
        ] {
            assert!(filters(&bad).search_params().is_err(), "{bad:?}");
        }
        assert!(filters(&[("from", "2026-02-01"), ("to", "2026-01-01")])
            .search_params()
            .is_err());
    }
}
