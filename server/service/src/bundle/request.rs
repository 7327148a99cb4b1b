//! Reading one entry's `request` (method, url, conditions) into what it asks
//! for, before its resource is validated.

use crate::Status;
use chrono::{DateTime, Utc};
use fhir_profiles::ids::is_valid_id;
use fhir_profiles::outcome::{Issue, IssueType};
use serde_json::{Map, Value};

use super::errors::entry_error;
use super::planned::{Delete, DeleteTarget, Read, Search};
use crate::conditions::{parse_conditions, Conditions};
use crate::error::ServiceError;
use crate::types::{check_type, check_writable, parse_version_tag};
use crate::write::UpdateTarget;
use fhirledger_access::Interaction;

/// An entry's request, before its resource is validated.
pub(super) struct Draft {
    pub full_url: Option<String>,
    /// Kept for POST and PUT only.
    pub resource: Option<Value>,
    pub request: Request,
}

/// What an entry asks for. DELETE, GET and HEAD are complete as read; POST
/// and PUT still need their resource validated.
pub(super) enum Request {
    Create {
        rt: String,
        if_none_exist: Option<Conditions>,
    },
    Update {
        rt: String,
        target: UpdateTarget,
        if_match: Option<i64>,
    },
    Delete(Delete),
    Read(Read),
    Search(Search),
}

impl Request {
    pub fn resource_type(&self) -> &str {
        match self {
            Request::Create { rt, .. }
            | Request::Update { rt, .. }
            | Request::Delete(Delete { rt, .. })
            | Request::Read(Read { rt, .. })
            | Request::Search(Search { rt, .. }) => rt,
        }
    }
}

/// Reads one entry's `request` (and takes its resource).
pub(super) fn draft(entry: Value, fhir_base: &str) -> Result<Draft, ServiceError> {
    let Value::Object(mut entry) = entry else {
        return Err(entry_error("a Bundle entry must be an object", ""));
    };
    let full_url = text_of(&entry, "fullUrl").map(str::to_string);
    let resource = entry.remove("resource");
    let Some(Value::Object(request)) = entry.get("request") else {
        return Err(entry_error(
            "entries of a batch or transaction need a request (method and url)",
            "request",
        ));
    };
    let method = text_of(request, "method")
        .ok_or_else(|| entry_error("request.method is missing", "request.method"))?;
    let url = text_of(request, "url")
        .ok_or_else(|| entry_error("request.url is missing", "request.url"))?;
    let (segments, query) = split_url(url, fhir_base)?;
    let if_match = version_tag(request, "ifMatch")?;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let rt = segs.first().copied().unwrap_or("").to_string();
    let unsupported = || unsupported_url(method, url);
    let op = match method {
        "GET" | "HEAD" => read_request(request, method == "HEAD", rt, &segs, query, unsupported)?,
        "POST" => {
            check_writable(&rt, Interaction::Create)?;
            if segs.len() != 1 || query.is_some() {
                return Err(unsupported());
            }
            let if_none_exist = text_of(request, "ifNoneExist")
                .map(|raw| {
                    let q = raw.split_once('?').map(|(_, q)| q).unwrap_or(raw);
                    parse_conditions(&rt, q).map_err(|e| relocate(e, "request.ifNoneExist"))
                })
                .transpose()?;
            Request::Create { rt, if_none_exist }
        }
        "PUT" => {
            check_writable(&rt, Interaction::Update)?;
            let target = match (segs.as_slice(), &query) {
                ([_, id], None) if names_instance(id) => UpdateTarget::Id(id.to_string()),
                ([_], Some(q)) => UpdateTarget::Criteria(criteria_of_url(&rt, q)?),
                _ => return Err(unsupported()),
            };
            Request::Update {
                rt,
                target,
                if_match,
            }
        }
        "DELETE" => {
            check_writable(&rt, Interaction::Delete)?;
            let target = match (segs.as_slice(), &query) {
                ([_, id], None) if names_instance(id) => {
                    if !is_valid_id(id) {
                        return Err(no_such_id(&rt, id));
                    }
                    DeleteTarget::Id(id.to_string())
                }
                ([_], Some(q)) => DeleteTarget::Criteria(criteria_of_url(&rt, q)?),
                _ => return Err(unsupported()),
            };
            Request::Delete(Delete {
                rt,
                target,
                if_match,
            })
        }
        "PATCH" => {
            return Err(ServiceError::with_issues(
                Status::BAD_REQUEST,
                vec![Issue::error(
                    IssueType::NotSupported,
                    "PATCH is not supported by this server",
                )
                .at("request.method")],
            ))
        }
        other => {
            return Err(entry_error(
                format!(
                    "request.method '{other}' is not one of GET, HEAD, POST, PUT, DELETE, PATCH"
                ),
                "request.method",
            ))
        }
    };
    let needs_resource = matches!(op, Request::Create { .. } | Request::Update { .. });
    let resource = if needs_resource {
        match resource {
            Some(r @ Value::Object(_)) => Some(r),
            _ => {
                return Err(entry_error(
                    format!("a {method} entry needs a resource"),
                    "resource",
                ))
            }
        }
    } else {
        None
    };
    Ok(Draft {
        full_url,
        resource,
        request: op,
    })
}

/// A GET or HEAD entry: a search (`Type?params`), a read (`Type/id`) or a
/// vread (`Type/id/_history/v`), with its cache conditions.
fn read_request(
    request: &Map<String, Value>,
    head: bool,
    rt: String,
    segs: &[&str],
    query: Option<String>,
    unsupported: impl Fn() -> ServiceError,
) -> Result<Request, ServiceError> {
    check_type(&rt)?;
    let if_none_match = version_tag(request, "ifNoneMatch")?;
    let if_modified_since = text_of(request, "ifModifiedSince")
        .map(|raw| {
            DateTime::parse_from_rfc3339(raw)
                .or_else(|_| DateTime::parse_from_rfc2822(raw))
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    entry_error(
                        format!("ifModifiedSince must be an instant, not '{raw}'"),
                        "request.ifModifiedSince",
                    )
                })
        })
        .transpose()?;
    let query = query.unwrap_or_default();
    let read = |id: &str, version: Option<i64>| {
        Request::Read(Read {
            rt: rt.clone(),
            id: id.to_string(),
            version,
            if_none_match,
            if_modified_since,
            head,
            query: query.clone(),
        })
    };
    Ok(match segs {
        [_] => Request::Search(Search {
            rt: rt.clone(),
            query: query.clone(),
            head,
        }),
        [_, id] if names_instance(id) => {
            if !is_valid_id(id) {
                return Err(no_such_id(&rt, id));
            }
            read(id, None)
        }
        [_, id, "_history", vid] => match vid.parse::<i64>() {
            Ok(v) if v > 0 && is_valid_id(id) => read(id, Some(v)),
            _ => {
                return Err(ServiceError::not_found(format!(
                    "'{vid}' is not a version of {rt}/{id}"
                )))
            }
        },
        _ => return Err(unsupported()),
    })
}

fn text_of<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

/// A version tag element of the request (`ifMatch`, `ifNoneMatch`), read
/// as the `If-Match` header is.
fn version_tag(request: &Map<String, Value>, key: &str) -> Result<Option<i64>, ServiceError> {
    text_of(request, key)
        .map(|raw| {
            parse_version_tag(raw).ok_or_else(|| {
                entry_error(
                    format!("{key} must be a version tag like W/\"1\", not '{raw}'"),
                    &format!("request.{key}"),
                )
            })
        })
        .transpose()
}

/// A path segment after the type that names an instance (not `_history`,
/// `_search`, `$operation`).
fn names_instance(segment: &str) -> bool {
    !segment.starts_with('_') && !segment.starts_with('$')
}

/// An id that cannot exist is a 404, as on the REST routes.
fn no_such_id(rt: &str, id: &str) -> ServiceError {
    ServiceError::not_found(format!(
        "'{id}' is not a valid id, so there is no {rt} with it"
    ))
}

/// The criteria of a conditional PUT or DELETE url.
fn criteria_of_url(rt: &str, query: &str) -> Result<Conditions, ServiceError> {
    parse_conditions(rt, query).map_err(|e| relocate(e, "request.url"))
}

fn unsupported_url(method: &str, url: &str) -> ServiceError {
    entry_error(
        format!("{method} {url} is not supported in a Bundle entry: use Type, Type/id, Type?criteria or Type/id/_history/version as the interaction allows"),
        "request.url",
    )
}

/// Replaces the expressions of `e` by `at` (for errors about a request
/// element, not about a resource).
fn relocate(mut e: ServiceError, at: &str) -> ServiceError {
    for issue in &mut e.issues {
        issue.expression = vec![at.to_string()];
    }
    e
}

/// The path segments and query of an entry URL: relative (`Patient/1`) or
/// absolute under this server's base.
fn split_url(url: &str, fhir_base: &str) -> Result<(Vec<String>, Option<String>), ServiceError> {
    let relative = if url.starts_with("http://") || url.starts_with("https://") {
        url.strip_prefix(fhir_base)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| {
                entry_error(
                    format!("request.url '{url}' is not on this server's base {fhir_base}"),
                    "request.url",
                )
            })?
    } else {
        url.trim_start_matches('/')
    };
    let (path, query) = match relative.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (relative, None),
    };
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if segments.is_empty() {
        return Err(entry_error(
            format!("request.url '{url}' names no resource type"),
            "request.url",
        ));
    }
    Ok((segments, query.filter(|q| !q.is_empty())))
}
