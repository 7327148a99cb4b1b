//! History of an instance, a type or the whole system, as `history` Bundles,
//! newest first, paged by an opaque cursor.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use fhir_profiles::ids::is_valid_id;
use fhirledger_postgres::{HistoryPage, Method, StoredVersion};
use serde_json::{json, Value};

use crate::access::allow::Interaction;
use crate::access::guard::Guard;
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::negotiate::{form_pairs, response_format};
use crate::http::preconditions::prefer_values;
use crate::http::respond::{etag, resource_body};
use crate::routes::{check_type, respond};
use crate::service::read::read_checked;
use fhir_profiles::resource_types::HOSTED;

const DEFAULT_COUNT: i64 = 20;
const MAX_COUNT: i64 = 1000;

pub async fn system_history(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    respond(&req, history(&req, &state, None, None).await)
}

pub async fn type_history(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    let rt = path.into_inner();
    respond(&req, history(&req, &state, Some(rt), None).await)
}

pub async fn instance_history(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (rt, id) = path.into_inner();
    respond(&req, history(&req, &state, Some(rt), Some(id)).await)
}

/// Who may see history: an instance's needs read access to the resource
/// (checked against its current version); a type's or the system's lists
/// versions the way a search does, but old versions cannot be filtered by
/// the search index, so it needs unrestricted search access to the type
/// (to every type for the system's).
fn history_access(guard: &Guard, rt: Option<&str>, instance: bool) -> Result<(), ApiError> {
    if instance {
        return guard
            .permit(rt.unwrap_or_default(), Interaction::Read)
            .map(|_| ());
    }
    let types: Vec<&str> = match rt {
        Some(t) => vec![t],
        None => HOSTED.to_vec(),
    };
    for t in types {
        if !guard.permit(t, Interaction::Search)?.is_all() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                fhir_profiles::outcome::IssueType::Forbidden,
                format!(
                    "the history of {} lists every version of every resource; it needs \
                     unrestricted search access (a system/ scope). Search instead, or read \
                     the history of each resource",
                    rt.unwrap_or("the whole server")
                ),
            ));
        }
    }
    Ok(())
}

/// The parameters history understands.
struct HistoryParams {
    count: i64,
    since: Option<DateTime<Utc>>,
    cursor: Option<i64>,
    /// Parameters echoed into the paging links.
    echo: Vec<(String, String)>,
}

fn parse_params(req: &HttpRequest) -> Result<HistoryParams, ApiError> {
    let lenient = prefer_values(req, "handling")
        .iter()
        .any(|v| v == "lenient");
    let mut params = HistoryParams {
        count: DEFAULT_COUNT,
        since: None,
        cursor: None,
        echo: Vec::new(),
    };
    for (name, value) in form_pairs(req.query_string()) {
        match name.as_str() {
            "_count" => {
                params.count = value
                    .parse::<i64>()
                    .ok()
                    .filter(|c| *c >= 0)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "_count must be a non-negative integer, not '{value}'"
                        ))
                    })?
                    .min(MAX_COUNT);
                params.echo.push((name, params.count.to_string()));
            }
            "_since" => {
                params.since = Some(parse_instant(&value).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "_since must be a FHIR instant or date, not '{value}'"
                    ))
                })?);
                params.echo.push((name, value));
            }
            "_cursor" => {
                params.cursor = Some(value.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("'{value}' is not a valid _cursor"))
                })?);
            }
            "_format" | "_pretty" => params.echo.push((name, value)),
            other if lenient => {
                tracing::debug!(parameter = other, "ignoring an unknown history parameter")
            }
            other => {
                return Err(ApiError::bad_request(format!(
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

async fn history(
    req: &HttpRequest,
    state: &AppState,
    rt: Option<String>,
    id: Option<String>,
) -> Result<HttpResponse, ApiError> {
    if let Some(t) = &rt {
        check_type(t)?;
    }
    if let (Some(t), Some(i)) = (&rt, &id) {
        if !is_valid_id(i) {
            return Err(ApiError::not_found(format!(
                "'{i}' is not a valid id, so there is no {t} with it"
            )));
        }
    }
    let guard = crate::http::authenticate::guard(req, state)?;
    history_access(&guard, rt.as_deref(), id.is_some())?;
    let format = response_format(req)?;
    let params = parse_params(req)?;
    let store = state.store.clone();
    let (qrt, qid, since, cursor, count) = (
        rt.clone(),
        id.clone(),
        params.since,
        params.cursor,
        params.count,
    );
    let page = state
        .db_read(move || {
            if let (Some(t), Some(i)) = (&qrt, &qid) {
                read_checked(&store, &guard, t, i, None)?;
            }
            Ok(store.history(qrt.as_deref(), qid.as_deref(), since, cursor, count)?)
        })
        .await?;
    let path = match (&rt, &id) {
        (Some(t), Some(i)) => format!("{t}/{i}/_history"),
        (Some(t), None) => format!("{t}/_history"),
        _ => "_history".to_string(),
    };
    let bundle = history_bundle(&state.fhir_base, &path, &params, page)?;
    let (ct, body) = resource_body(&bundle, format)?;
    Ok(HttpResponse::build(StatusCode::OK)
        .insert_header(("Content-Type", ct))
        .body(body))
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

fn history_bundle(
    fhir_base: &str,
    path: &str,
    params: &HistoryParams,
    page: HistoryPage,
) -> Result<Value, ApiError> {
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

fn history_entry(fhir_base: &str, v: &StoredVersion) -> Result<Value, ApiError> {
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
            .map_err(|e| ApiError::internal(format!("stored JSON is corrupt: {e}")))?;
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
