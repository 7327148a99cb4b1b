//! History of an instance, a type or the whole server as `history` Bundles,
//! newest first, paged by an opaque cursor: the parameters, the read
//! (through the access path) and the Bundle.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use fhirledger_postgres::{HistoryPage, Method, PgStore, StoredVersion};
use serde_json::{json, Value};

use crate::error::ServiceError;
use crate::guard::Guard;
use crate::query::form_pairs;
use crate::reads::{read, History};
use crate::types::etag;

const DEFAULT_COUNT: i64 = 20;
const MAX_COUNT: i64 = 1000;

/// The parameters history understands.
pub struct HistoryParams {
    pub count: i64,
    pub since: Option<DateTime<Utc>>,
    pub cursor: Option<i64>,
    /// Parameters echoed into the paging links.
    pub echo: Vec<(String, String)>,
}

/// Parses the parameters of a history request (a query string, undecoded);
/// with `lenient`, unknown ones are ignored instead of refused.
pub fn parse_params(query: &str, lenient: bool) -> Result<HistoryParams, ServiceError> {
    let mut params = HistoryParams {
        count: DEFAULT_COUNT,
        since: None,
        cursor: None,
        echo: Vec::new(),
    };
    for (name, value) in form_pairs(query) {
        match name.as_str() {
            "_count" => {
                params.count = value
                    .parse::<i64>()
                    .ok()
                    .filter(|c| *c >= 0)
                    .ok_or_else(|| {
                        ServiceError::bad_request(format!(
                            "_count must be a non-negative integer, not '{value}'"
                        ))
                    })?
                    .min(MAX_COUNT);
                params.echo.push((name, params.count.to_string()));
            }
            "_since" => {
                params.since = Some(parse_instant(&value).ok_or_else(|| {
                    ServiceError::bad_request(format!(
                        "_since must be a FHIR instant or date, not '{value}'"
                    ))
                })?);
                params.echo.push((name, value));
            }
            "_cursor" => {
                params.cursor = Some(value.parse::<i64>().map_err(|_| {
                    ServiceError::bad_request(format!("'{value}' is not a valid _cursor"))
                })?);
            }
            "_format" | "_pretty" => params.echo.push((name, value)),
            other if lenient => {
                tracing::debug!(parameter = other, "ignoring an unknown history parameter")
            }
            other => {
                return Err(ServiceError::bad_request(format!(
                    "history does not support the parameter '{other}' (supported: _count, _since)"
                )))
            }
        }
    }
    Ok(params)
}

/// A FHIR instant, dateTime with time zone, or a plain date (midnight UTC).
fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(ts) = DateTime::parse_from_rfc3339(s) {
        return Some(ts.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// The history Bundle of `{type}/{id}`, `{type}` or the server (`None`s),
/// read through the access path. Blocking.
pub fn history(
    store: &PgStore,
    guard: &Guard,
    resource_type: Option<&str>,
    id: Option<&str>,
    params: &HistoryParams,
) -> Result<Value, ServiceError> {
    let op = History {
        resource_type,
        id,
        since: params.since,
        before_seq: params.cursor,
        count: params.count,
    };
    let page = read(store, guard, op)?.value;
    let path = match (resource_type, id) {
        (Some(t), Some(i)) => format!("{t}/{i}/_history"),
        (Some(t), None) => format!("{t}/_history"),
        _ => "_history".to_string(),
    };
    history_bundle(guard.fhir_base(), &path, params, page)
}

fn link(fhir_base: &str, path: &str, echo: &[(String, String)], cursor: Option<i64>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in echo {
        query.append_pair(k, v);
    }
    if let Some(c) = cursor {
        query.append_pair("_cursor", &c.to_string());
    }
    let query = query.finish();
    if query.is_empty() {
        format!("{fhir_base}/{path}")
    } else {
        format!("{fhir_base}/{path}?{query}")
    }
}

pub fn history_bundle(
    fhir_base: &str,
    path: &str,
    params: &HistoryParams,
    page: HistoryPage,
) -> Result<Value, ServiceError> {
    let mut links = vec![
        json!({"relation": "self", "url": link(fhir_base, path, &params.echo, params.cursor)}),
    ];
    if let Some(next) = page.next_before_seq {
        links.push(
            json!({"relation": "next", "url": link(fhir_base, path, &params.echo, Some(next))}),
        );
    }
    let entries = page
        .entries
        .iter()
        .map(|v| history_entry(fhir_base, v))
        .collect::<Result<Vec<_>, _>>()?;
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "history",
        "link": links,
    });
    // FHIR JSON forbids empty arrays: an empty page has no `entry` at all.
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    Ok(bundle)
}

fn history_entry(fhir_base: &str, v: &StoredVersion) -> Result<Value, ServiceError> {
    let (method, url, status) = match v.method {
        Method::Post => ("POST", v.resource_type.clone(), "201 Created"),
        Method::Put if v.version_id == 1 => (
            "PUT",
            format!("{}/{}", v.resource_type, v.id),
            "201 Created",
        ),
        Method::Put => ("PUT", format!("{}/{}", v.resource_type, v.id), "200 OK"),
        Method::Delete => (
            "DELETE",
            format!("{}/{}", v.resource_type, v.id),
            "204 No Content",
        ),
    };
    let mut entry = json!({"fullUrl": format!("{fhir_base}/{}/{}", v.resource_type, v.id)});
    if let Some(content) = &v.content {
        let resource: Value = serde_json::from_str(content)
            .map_err(|e| ServiceError::internal(format!("stored JSON is corrupt: {e}")))?;
        entry["resource"] = resource;
    }
    entry["request"] = json!({"method": method, "url": url});
    entry["response"] = json!({
        "status": status,
        "etag": etag(v.version_id),
        "lastModified": v.last_updated.to_rfc3339_opts(SecondsFormat::Micros, true),
    });
    Ok(entry)
}
