//! Search as a service, shared by `GET /{type}`, `POST /{type}/_search` and the GET entries
//! of batch and transaction Bundles: parse the parameters, run the query, and build the
//! `searchset` Bundle.
//!
//! The Bundle is written as JSON text around the stored resources' own JSON, so the common
//! case never parses or re-serialises a matched resource.

use chrono::{SecondsFormat, Utc};
use fhir_profiles::outcome::{operation_outcome, Issue, IssueType};
use fhir_profiles::search::parse_search;
use fhir_profiles::search::query::{SearchRequest, CURSOR_PARAM};
use fhir_profiles::summary::{apply_elements, apply_summary, SummaryMode};
use fhirledger_postgres::{Found, PgStore, SearchPage};

use crate::guard::Guard;
use crate::reads::{read, Search};
use serde_json::Value;

use crate::error::ServiceError;

/// Parses the parameters of a search on `resource_type`: 400 naming each bad parameter.
pub fn parse(
    fhir_base: &str,
    resource_type: &str,
    params: &[(String, String)],
    lenient: bool,
) -> Result<SearchRequest, ServiceError> {
    parse_search(resource_type, params, fhir_base, lenient)
        .map_err(|issues| ServiceError::with_issues(crate::Status::BAD_REQUEST, issues))
}

/// Runs a parsed search through the access path and renders its `searchset` Bundle as
/// compact JSON. Blocking.
pub fn execute(
    store: &PgStore,
    guard: &Guard,
    request: &SearchRequest,
) -> Result<String, ServiceError> {
    let page = read(store, guard, Search { request })?.value;
    render(guard.fhir_base(), request, &page)
}

/// Runs the search `query` (an URL query string, undecoded) on `resource_type` and returns
/// its `searchset` Bundle. Blocking: call it from a blocking context.
pub fn search_bundle(
    store: &PgStore,
    guard: &Guard,
    resource_type: &str,
    query: &str,
    lenient: bool,
) -> Result<Value, ServiceError> {
    let params = crate::query::form_pairs(query);
    let request = parse(guard.fhir_base(), resource_type, &params, lenient)?;
    let json = execute(store, guard, &request)?;
    serde_json::from_str(&json).map_err(|e| ServiceError::internal(format!("search Bundle: {e}")))
}

/// The URL of this search with `cursor` (none: the first page).
fn link(fhir_base: &str, request: &SearchRequest, cursor: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &request.link_params {
        query.append_pair(k, v);
    }
    if let Some(c) = cursor {
        query.append_pair(CURSOR_PARAM, c);
    }
    let query = query.finish();
    if query.is_empty() {
        format!("{fhir_base}/{}", request.resource_type)
    } else {
        format!("{fhir_base}/{}?{query}", request.resource_type)
    }
}

/// The `searchset` Bundle of a page.
pub fn render(
    fhir_base: &str,
    request: &SearchRequest,
    page: &SearchPage,
) -> Result<String, ServiceError> {
    let mut out = String::with_capacity(256 + page.matches.len() * 1600);
    out.push_str(r#"{"resourceType":"Bundle","id":"#);
    push_json(&mut out, &uuid::Uuid::new_v4().to_string());
    out.push_str(r#","meta":{"lastUpdated":"#);
    push_json(
        &mut out,
        &Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
    );
    out.push_str(r#"},"type":"searchset""#);
    let total = page.total.or_else(|| {
        // Without `_total`, the count is given when this single page holds every match.
        let complete = request.cursor.is_none() && page.next.is_none();
        (complete && request.total.is_none() && request.count > 0)
            .then_some(page.matches.len() as u64)
    });
    if let Some(total) = total {
        out.push_str(&format!(r#","total":{total}"#));
    }
    out.push_str(r#","link":["#);
    let mut links = vec![
        ("self", link(fhir_base, request, request.cursor.as_deref())),
        ("first", link(fhir_base, request, None)),
    ];
    if let Some(previous) = &page.previous {
        links.push(("previous", link(fhir_base, request, Some(previous))));
    }
    if let Some(next) = &page.next {
        links.push(("next", link(fhir_base, request, Some(next))));
    }
    for (i, (relation, url)) in links.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"relation":"#);
        push_json(&mut out, relation);
        out.push_str(r#","url":"#);
        push_json(&mut out, url);
        out.push('}');
    }
    out.push(']');
    let mut entries = Vec::with_capacity(page.matches.len() + page.included.len() + 1);
    for found in &page.matches {
        entries.push(entry(fhir_base, request, found, "match")?);
    }
    for found in &page.included {
        entries.push(entry(fhir_base, request, found, "include")?);
    }
    if !request.ignored.is_empty() {
        entries.push(ignored_outcome(&request.ignored));
    }
    if !entries.is_empty() {
        out.push_str(r#","entry":["#);
        out.push_str(&entries.join(","));
        out.push(']');
    }
    out.push('}');
    Ok(out)
}

/// One entry: the stored JSON as is, unless `_summary`/`_elements` asks for a part of it.
fn entry(
    fhir_base: &str,
    request: &SearchRequest,
    found: &Found,
    mode: &str,
) -> Result<String, ServiceError> {
    let mut out = String::with_capacity(found.content.len() + 128);
    out.push_str(r#"{"fullUrl":"#);
    push_json(
        &mut out,
        &format!("{fhir_base}/{}/{}", found.resource_type, found.id),
    );
    out.push_str(r#","resource":"#);
    match subset(request, &found.content)? {
        Some(value) => out.push_str(&value.to_string()),
        None => out.push_str(&found.content),
    }
    out.push_str(r#","search":{"mode":"#);
    push_json(&mut out, mode);
    out.push_str("}}");
    Ok(out)
}

/// The resource reduced by `_summary` or `_elements`; `None` when it is served whole.
fn subset(request: &SearchRequest, content: &str) -> Result<Option<Value>, ServiceError> {
    let summary = request
        .summary
        .filter(|m| *m != SummaryMode::False && *m != SummaryMode::Count);
    if summary.is_none() && request.elements.is_none() {
        return Ok(None);
    }
    let mut value: Value = serde_json::from_str(content)
        .map_err(|e| ServiceError::internal(format!("stored JSON is corrupt: {e}")))?;
    if let Some(mode) = summary {
        value = apply_summary(&value, mode);
    } else if let Some(elements) = &request.elements {
        let names: Vec<&str> = elements.iter().map(String::as_str).collect();
        value = apply_elements(&value, &names);
    }
    Ok(Some(value))
}

/// An `outcome` entry warning that lenient handling ignored some parameters.
fn ignored_outcome(ignored: &[String]) -> String {
    let issue = Issue::warning(
        IssueType::NotSupported,
        format!("ignored unknown search parameters: {}", ignored.join(", ")),
    );
    format!(
        r#"{{"resource":{},"search":{{"mode":"outcome"}}}}"#,
        operation_outcome(&[issue])
    )
}

fn push_json(out: &mut String, s: &str) {
    out.push_str(&Value::String(s.to_string()).to_string());
}
