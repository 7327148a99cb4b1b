//! Batch and transaction Bundles (`POST /fhir`, FHIR R4 http.html#transaction).
//!
//! Work is split so that the database transaction does database work only:
//!
//! 1. [`plan`] (CPU only, before any connection is taken): the Bundle is parsed
//!    once, strictly, as a whole; each entry's `request` is read; in a
//!    transaction every POST gets its id now and every `urn:uuid:`/`urn:oid:`
//!    (or other `fullUrl`) reference between entries is rewritten to
//!    `Type/id` (and so is an `Attachment.url` naming an entry, for MHD's
//!    DocumentReference → Binary); then each resource is validated exactly
//!    like a REST body ([`prepare_value`]).
//! 2. [`execute`]: a transaction runs in ONE database transaction: every
//!    criterion is locked up front (sorted, so concurrent Bundles cannot
//!    deadlock on them), DELETEs run, conditional targets (`ifNoneExist`,
//!    `PUT Type?criteria`, conditional references) are resolved, references
//!    to entries whose id a condition changed are fixed, then POSTs (in one
//!    multi-row insert) and PUTs (in (type, id) order) are written. Any failure rolls everything back and answers with that
//!    entry's status and OperationOutcome. GET/HEAD entries are read after
//!    the commit: they change nothing, so a missing resource is reported in
//!    its entry (404/410/304) rather than undoing the writes. A batch runs
//!    each entry in its own database transaction, in order.
//!
//! Entry responses carry status, location, etag and lastModified; the
//! resource only with `Prefer: return=representation` (GET entries always),
//! an informational outcome with `Prefer: return=OperationOutcome`.

use std::collections::{HashMap, HashSet};

use actix_web::http::StatusCode;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use fhir_profiles::format::{parse_resource, FhirFormat};
use fhir_profiles::ids::is_valid_id;
use fhir_profiles::outcome::{operation_outcome, Issue, IssueType};
use fhir_profiles::resource_types::is_r4_resource_type;
use fhir_profiles::summary::{apply_elements, apply_summary, SummaryMode};
use fhirledger_postgres::{Criterion, PgStore, StoreError, StoredVersion, Tx, WriteOutcome};
use serde_json::{json, Map, Value};

use crate::http::error::ApiError;
use crate::http::negotiate::form_pairs;
use crate::http::preconditions::{criteria_keys, parse_criteria, parse_version_tag};
use crate::routes::{check_type, check_writable};
use crate::service::prepare::{prepare, prepare_value, Prepared};
use crate::service::search::search_bundle;
use crate::service::write::{
    delete_in, insert, insert_many, new_id, put, read_matched, single_match, update_id,
    UpdateTarget,
};
use fhir_profiles::search::extract;

/// `Bundle.type` of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleKind {
    Batch,
    Transaction,
}

impl BundleKind {
    fn response_type(self) -> &'static str {
        match self {
            BundleKind::Batch => "batch-response",
            BundleKind::Transaction => "transaction-response",
        }
    }
}

/// What entry responses carry besides status, location, etag and
/// lastModified (from `Prefer: return=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EntryReturn {
    #[default]
    Minimal,
    Representation,
    OperationOutcome,
}

/// How to run a planned Bundle.
#[derive(Debug, Clone)]
pub struct BundleOptions {
    /// `{public base}/fhir`.
    pub fhir_base: String,
    /// The largest Binary accepted.
    pub limit: u64,
    /// `Prefer: handling=lenient`, handed to searches.
    pub lenient: bool,
    pub returns: EntryReturn,
}

/// A Bundle read, checked and validated, ready to run.
pub struct Plan {
    kind: BundleKind,
    /// In request order. A transaction's are all `Ok` (any error fails it
    /// while planning); a batch keeps each entry's own error.
    entries: Vec<Result<Planned, ApiError>>,
    /// (type, identifier value) → write entries carrying that identifier;
    /// transactions only, to resolve conditional references to entries.
    by_identifier: Index,
}

impl Plan {
    pub fn kind(&self) -> BundleKind {
        self.kind
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One entry, ready to run.
struct Planned {
    op: Op,
}

enum Op {
    Create {
        prepared: Prepared,
        /// Assigned while planning, so that references resolve in any order.
        id: String,
        if_none_exist: Option<Vec<Criterion>>,
        links: Links,
    },
    Update {
        prepared: Prepared,
        target: UpdateTarget,
        /// The id used for references while planning: the URL's id, else the
        /// body's, else a fresh one (a matching resource may replace it).
        tentative: String,
        if_match: Option<i64>,
        links: Links,
    },
    Delete {
        rt: String,
        target: DeleteTarget,
        if_match: Option<i64>,
    },
    Read {
        rt: String,
        id: String,
        version: Option<i64>,
        if_none_match: Option<i64>,
        if_modified_since: Option<DateTime<Utc>>,
        head: bool,
        query: String,
    },
    Search {
        rt: String,
        query: String,
        head: bool,
    },
}

impl Op {
    fn resource_type(&self) -> &str {
        match self {
            Op::Create { prepared, .. } | Op::Update { prepared, .. } => &prepared.resource_type,
            Op::Delete { rt, .. } | Op::Read { rt, .. } | Op::Search { rt, .. } => rt,
        }
    }

    fn links(&self) -> Option<&Links> {
        match self {
            Op::Create { links, .. } | Op::Update { links, .. } => Some(links),
            _ => None,
        }
    }

    /// The criteria this entry locks (conditional create, update, delete).
    fn locked_criteria(&self) -> Option<(&str, &[Criterion])> {
        match self {
            Op::Create {
                prepared,
                if_none_exist: Some(c),
                ..
            } => Some((&prepared.resource_type, c)),
            Op::Update {
                prepared,
                target: UpdateTarget::Criteria(c),
                ..
            } => Some((&prepared.resource_type, c)),
            Op::Delete {
                rt,
                target: DeleteTarget::Criteria(c),
                ..
            } => Some((rt, c)),
            _ => None,
        }
    }

    fn is_write(&self) -> bool {
        matches!(
            self,
            Op::Create { .. } | Op::Update { .. } | Op::Delete { .. }
        )
    }
}

enum DeleteTarget {
    Id(String),
    Criteria(Vec<Criterion>),
}

/// References of an entry's resource to other entries and to conditions.
#[derive(Default)]
struct Links {
    /// (entry index, the `Type/tentative-id` written into the resource).
    targets: Vec<(usize, String)>,
    /// Conditional references (`Patient?identifier=s|v`), distinct.
    conditional: Vec<ConditionalRef>,
}

struct ConditionalRef {
    text: String,
    rt: String,
    criteria: Vec<Criterion>,
}

// ---------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------

/// Reads a Bundle body and plans its entries (no database access). Errors:
/// 400 for a body that is not a batch or transaction Bundle; for a
/// transaction, the first failing entry's error (located at
/// `Bundle.entry[i]`).
pub fn plan(body: &[u8], format: FhirFormat, fhir_base: &str) -> Result<Plan, ApiError> {
    let (mut bundle, checked) = read_bundle(body, format)?;
    let kind = bundle_kind(&bundle)?;
    let entries = match bundle.get_mut("entry").map(Value::take) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(ApiError::bad_request("Bundle.entry must be an array")),
    };
    match kind {
        BundleKind::Batch => Ok(plan_batch(entries, checked, fhir_base)),
        BundleKind::Transaction => plan_transaction(entries, fhir_base),
    }
}

/// The parsed Bundle, and whether it passed the strict parse as a whole
/// (then its entries' resources are already structurally checked).
///
/// A batch whose only problems lie inside entry resources is still run: its
/// JSON is read leniently and each entry's resource parsed on its own, so
/// that each bad entry gets its own outcome. (An XML batch with such an
/// entry is refused as a whole: its entries cannot be cut out without a
/// parse.)
fn read_bundle(body: &[u8], format: FhirFormat) -> Result<(Value, bool), ApiError> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ApiError::bad_request(format!(
            "the body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        )));
    }
    let parsed = std::panic::catch_unwind(|| parse_resource(body, format))
        .map_err(|_| ApiError::bad_request("the body could not be parsed as a FHIR Bundle"))?;
    let issues = match parsed {
        Ok(bundle) => {
            check_is_bundle(&bundle)?;
            return Ok((bundle, true));
        }
        Err(e) => e.issues,
    };
    let in_entries = !issues.is_empty()
        && issues.iter().all(|i| {
            !i.expression.is_empty() && i.expression.iter().all(|e| entry_of(e).is_some())
        });
    if in_entries && format == FhirFormat::Json {
        if let Ok(value) = serde_json::from_slice::<Value>(body) {
            if value.get("resourceType").and_then(Value::as_str) == Some("Bundle")
                && value.get("type").and_then(Value::as_str) == Some("batch")
            {
                return Ok((value, false));
            }
        }
    }
    // A missing element inside an entry's resource is a broken rule (422),
    // as it is for a REST body; anything else is an unreadable Bundle (400).
    let missing_element =
        |i: &Issue| i.code == IssueType::Required && i.expression.iter().any(|x| x.contains('.'));
    let status = if in_entries && issues.iter().all(missing_element) {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::BAD_REQUEST
    };
    Err(ApiError::with_issues(status, issues))
}

/// The entry index of an expression inside an entry's resource
/// (`Bundle.entry[3].resource...`).
fn entry_of(expression: &str) -> Option<usize> {
    let rest = expression.strip_prefix("Bundle.entry[")?;
    let (index, rest) = rest.split_once(']')?;
    if rest == ".resource" || rest.starts_with(".resource.") || rest.starts_with(".resource[") {
        index.parse().ok()
    } else {
        None
    }
}

fn check_is_bundle(value: &Value) -> Result<(), ApiError> {
    match value.get("resourceType").and_then(Value::as_str) {
        Some("Bundle") => Ok(()),
        other => Err(ApiError::with_issues(
            StatusCode::BAD_REQUEST,
            vec![Issue::error(
                IssueType::Invalid,
                format!(
                    "POST to the base takes a batch or transaction Bundle, not {}",
                    other.unwrap_or("this body")
                ),
            )
            .at("resourceType")],
        )),
    }
}

fn bundle_kind(bundle: &Value) -> Result<BundleKind, ApiError> {
    match bundle.get("type").and_then(Value::as_str) {
        Some("batch") => Ok(BundleKind::Batch),
        Some("transaction") => Ok(BundleKind::Transaction),
        other => Err(ApiError::with_issues(
            StatusCode::BAD_REQUEST,
            vec![Issue::error(
                IssueType::Invalid,
                match other {
                    Some(t) => format!(
                        "Bundle.type is '{t}'; POST to the base takes a batch or a transaction"
                    ),
                    None => "Bundle.type is missing; it must be batch or transaction".into(),
                },
            )
            .at("Bundle.type")],
        )),
    }
}

/// An entry's request, before its resource is validated.
struct Draft {
    full_url: Option<String>,
    resource: Option<Value>,
    op: DraftOp,
}

enum DraftOp {
    Create {
        rt: String,
        if_none_exist: Option<Vec<Criterion>>,
    },
    Update {
        rt: String,
        target: UpdateTarget,
        if_match: Option<i64>,
    },
    Delete {
        rt: String,
        target: DeleteTarget,
        if_match: Option<i64>,
    },
    Read {
        rt: String,
        id: String,
        version: Option<i64>,
        if_none_match: Option<i64>,
        if_modified_since: Option<DateTime<Utc>>,
        head: bool,
        query: String,
    },
    Search {
        rt: String,
        query: String,
        head: bool,
    },
}

impl DraftOp {
    fn resource_type(&self) -> &str {
        match self {
            DraftOp::Create { rt, .. }
            | DraftOp::Update { rt, .. }
            | DraftOp::Delete { rt, .. }
            | DraftOp::Read { rt, .. }
            | DraftOp::Search { rt, .. } => rt,
        }
    }
}

fn entry_error(message: impl Into<String>, at: &str) -> ApiError {
    ApiError::with_issues(
        StatusCode::BAD_REQUEST,
        vec![Issue::error(IssueType::Invalid, message).at(at)],
    )
}

fn text_of<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

/// Reads one entry's `request` (and takes its resource).
fn draft(entry: Value, fhir_base: &str) -> Result<Draft, ApiError> {
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
    let if_match = text_of(request, "ifMatch")
        .map(|raw| {
            parse_version_tag(raw).ok_or_else(|| {
                entry_error(
                    format!("ifMatch must be a version tag like W/\"1\", not '{raw}'"),
                    "request.ifMatch",
                )
            })
        })
        .transpose()?;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let rt = segs.first().copied().unwrap_or("").to_string();
    let op = match method {
        "GET" | "HEAD" => {
            check_type(&rt)?;
            let head = method == "HEAD";
            let if_none_match = text_of(request, "ifNoneMatch")
                .map(|raw| {
                    parse_version_tag(raw).ok_or_else(|| {
                        entry_error(
                            format!("ifNoneMatch must be a version tag like W/\"1\", not '{raw}'"),
                            "request.ifNoneMatch",
                        )
                    })
                })
                .transpose()?;
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
            let read = |id: &str, version: Option<i64>| DraftOp::Read {
                rt: rt.clone(),
                id: id.to_string(),
                version,
                if_none_match,
                if_modified_since,
                head,
                query: query.clone().unwrap_or_default(),
            };
            match segs.as_slice() {
                [_] => DraftOp::Search {
                    rt: rt.clone(),
                    query: query.clone().unwrap_or_default(),
                    head,
                },
                [_, id] if !id.starts_with('_') && !id.starts_with('$') => {
                    if !is_valid_id(id) {
                        return Err(ApiError::not_found(format!(
                            "'{id}' is not a valid id, so there is no {rt} with it"
                        )));
                    }
                    read(id, None)
                }
                [_, id, "_history", vid] => match vid.parse::<i64>() {
                    Ok(v) if v > 0 && is_valid_id(id) => read(id, Some(v)),
                    _ => {
                        return Err(ApiError::not_found(format!(
                            "'{vid}' is not a version of {rt}/{id}"
                        )))
                    }
                },
                _ => return Err(unsupported_url(method, url)),
            }
        }
        "POST" => {
            check_writable(&rt)?;
            if segs.len() != 1 || query.is_some() {
                return Err(unsupported_url(method, url));
            }
            let if_none_exist = text_of(request, "ifNoneExist")
                .map(|raw| {
                    let q = raw.split_once('?').map(|(_, q)| q).unwrap_or(raw);
                    parse_criteria(q).map_err(|e| relocate(e, "request.ifNoneExist"))
                })
                .transpose()?;
            DraftOp::Create { rt, if_none_exist }
        }
        "PUT" => {
            check_writable(&rt)?;
            let target = match (segs.as_slice(), &query) {
                ([_, id], None) if !id.starts_with('_') && !id.starts_with('$') => {
                    UpdateTarget::Id(id.to_string())
                }
                ([_], Some(q)) => UpdateTarget::Criteria(
                    parse_criteria(q).map_err(|e| relocate(e, "request.url"))?,
                ),
                _ => return Err(unsupported_url(method, url)),
            };
            DraftOp::Update {
                rt,
                target,
                if_match,
            }
        }
        "DELETE" => {
            check_writable(&rt)?;
            let target = match (segs.as_slice(), &query) {
                ([_, id], None) if !id.starts_with('_') && !id.starts_with('$') => {
                    if !is_valid_id(id) {
                        return Err(ApiError::not_found(format!(
                            "'{id}' is not a valid id, so there is no {rt} with it"
                        )));
                    }
                    DeleteTarget::Id(id.to_string())
                }
                ([_], Some(q)) => DeleteTarget::Criteria(
                    parse_criteria(q).map_err(|e| relocate(e, "request.url"))?,
                ),
                _ => return Err(unsupported_url(method, url)),
            };
            DraftOp::Delete {
                rt,
                target,
                if_match,
            }
        }
        "PATCH" => {
            return Err(ApiError::with_issues(
                StatusCode::BAD_REQUEST,
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
    let needs_resource = matches!(op, DraftOp::Create { .. } | DraftOp::Update { .. });
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
        op,
    })
}

fn unsupported_url(method: &str, url: &str) -> ApiError {
    entry_error(
        format!("{method} {url} is not supported in a Bundle entry: use Type, Type/id, Type?criteria or Type/id/_history/version as the interaction allows"),
        "request.url",
    )
}

/// Replaces the expressions of `e` by `at` (for errors about a request
/// element, not about a resource).
fn relocate(mut e: ApiError, at: &str) -> ApiError {
    for issue in &mut e.issues {
        issue.expression = vec![at.to_string()];
    }
    e
}

/// The path segments and query of an entry URL: relative (`Patient/1`) or
/// absolute under this server's base.
fn split_url(url: &str, fhir_base: &str) -> Result<(Vec<String>, Option<String>), ApiError> {
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

/// Turns a draft into a runnable entry: validates its resource (already
/// rewritten, for a transaction).
fn finish(
    fhir_base: &str,
    draft: DraftOp,
    resource: Option<Value>,
    checked: bool,
    id: Option<String>,
    links: Links,
) -> Result<Planned, ApiError> {
    let prepare_resource = |rt: &str, resource: Option<Value>| -> Result<Prepared, ApiError> {
        let resource = resource.unwrap_or(Value::Null);
        if checked {
            prepare_value(rt, resource, fhir_base)
        } else {
            prepare(
                rt,
                &serde_json::to_vec(&resource).unwrap_or_default(),
                FhirFormat::Json,
                fhir_base,
            )
        }
    };
    let op = match draft {
        DraftOp::Create { rt, if_none_exist } => Op::Create {
            prepared: prepare_resource(&rt, resource)?,
            id: id.unwrap_or_else(new_id),
            if_none_exist,
            links,
        },
        DraftOp::Update {
            rt,
            target,
            if_match,
        } => {
            let prepared = prepare_resource(&rt, resource)?;
            let tentative = id.unwrap_or_else(|| tentative_update_id(&target, &prepared));
            Op::Update {
                prepared,
                target,
                tentative,
                if_match,
                links,
            }
        }
        DraftOp::Delete {
            rt,
            target,
            if_match,
        } => Op::Delete {
            rt,
            target,
            if_match,
        },
        DraftOp::Read {
            rt,
            id,
            version,
            if_none_match,
            if_modified_since,
            head,
            query,
        } => Op::Read {
            rt,
            id,
            version,
            if_none_match,
            if_modified_since,
            head,
            query,
        },
        DraftOp::Search { rt, query, head } => Op::Search { rt, query, head },
    };
    Ok(Planned { op })
}

/// The id an update is expected to write before its criteria are resolved.
fn tentative_update_id(target: &UpdateTarget, prepared: &Prepared) -> String {
    match target {
        UpdateTarget::Id(id) => id.clone(),
        UpdateTarget::Criteria(_) => prepared
            .body_id
            .clone()
            .filter(|id| is_valid_id(id))
            .unwrap_or_else(new_id),
    }
}

fn tentative_draft_id(op: &DraftOp, resource: Option<&Value>) -> Option<String> {
    match op {
        DraftOp::Create { .. } => Some(new_id()),
        DraftOp::Update {
            target: UpdateTarget::Id(id),
            ..
        } => Some(id.clone()),
        DraftOp::Update { .. } => Some(
            resource
                .and_then(|r| r.get("id"))
                .and_then(Value::as_str)
                .filter(|id| is_valid_id(id))
                .map(str::to_string)
                .unwrap_or_else(new_id),
        ),
        _ => None,
    }
}

fn plan_batch(entries: Vec<Value>, checked: bool, fhir_base: &str) -> Plan {
    let entries = entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let mut rt = None;
            let planned = draft(entry, fhir_base).and_then(|d| {
                rt = Some(d.op.resource_type().to_string());
                let mut resource = d.resource;
                let mut links = Links::default();
                if let Some(r) = resource.as_mut() {
                    collect_conditional(r, &mut links)?;
                }
                finish(fhir_base, d.op, resource, checked, None, links)
            });
            planned.map_err(|e| at_entry(e, i, rt.as_deref()))
        })
        .collect();
    Plan {
        kind: BundleKind::Batch,
        entries,
        by_identifier: HashMap::new(),
    }
}

fn collect_conditional(resource: &mut Value, links: &mut Links) -> Result<(), ApiError> {
    visit_links(resource, "", &mut |s, field| {
        if field == Field::Reference && is_conditional(s) {
            add_conditional(links, s)?;
        }
        Ok(())
    })
}

fn add_conditional(links: &mut Links, text: &str) -> Result<(), ApiError> {
    if links.conditional.iter().any(|c| c.text == text) {
        return Ok(());
    }
    let (rt, query) = text.split_once('?').unwrap_or((text, ""));
    let fail = |why: String| {
        entry_error(
            format!("the conditional reference '{text}' cannot be resolved: {why}"),
            "",
        )
    };
    check_type(rt).map_err(|e| fail(first_diagnostics(&e)))?;
    let criteria = parse_criteria(query).map_err(|e| fail(first_diagnostics(&e)))?;
    links.conditional.push(ConditionalRef {
        text: text.to_string(),
        rt: rt.to_string(),
        criteria,
    });
    Ok(())
}

fn first_diagnostics(e: &ApiError) -> String {
    e.issues
        .first()
        .map(|i| i.diagnostics.clone())
        .unwrap_or_default()
}

fn plan_transaction(entries: Vec<Value>, fhir_base: &str) -> Result<Plan, ApiError> {
    let n = entries.len();
    let mut drafts = Vec::with_capacity(n);
    for (i, entry) in entries.into_iter().enumerate() {
        drafts.push(draft(entry, fhir_base).map_err(|e| at_entry(e, i, None))?);
    }
    // Ids first, so that references resolve whatever the order of entries.
    let ids: Vec<Option<String>> = drafts
        .iter()
        .map(|d| tentative_draft_id(&d.op, d.resource.as_ref()))
        .collect();
    let mut by_full_url: HashMap<String, usize> = HashMap::new();
    for (i, d) in drafts.iter().enumerate() {
        let (Some(full_url), Some(_)) = (&d.full_url, &ids[i]) else {
            continue;
        };
        if let Some(first) = by_full_url.insert(full_url.clone(), i) {
            return Err(at_entry(
                entry_error(
                    format!("fullUrl '{full_url}' is also the fullUrl of Bundle.entry[{first}]"),
                    "fullUrl",
                ),
                i,
                None,
            ));
        }
    }
    let typed_ids: Vec<Option<String>> = drafts
        .iter()
        .zip(&ids)
        .map(|(d, id)| {
            id.as_ref()
                .map(|id| format!("{}/{id}", d.op.resource_type()))
        })
        .collect();
    let mut planned = Vec::with_capacity(n);
    for (i, (d, id)) in drafts.into_iter().zip(ids).enumerate() {
        let rt = d.op.resource_type().to_string();
        let mut resource = d.resource;
        let mut links = Links::default();
        if let Some(r) = resource.as_mut() {
            let base = entry_base(d.full_url.as_deref(), fhir_base);
            rewrite_links(r, &base, &by_full_url, &typed_ids, &mut links)
                .map_err(|e| at_entry(e, i, Some(&rt)))?;
        }
        let p = finish(fhir_base, d.op, resource, true, id, links)
            .map_err(|e| at_entry(e, i, Some(&rt)))?;
        planned.push(p);
    }
    let by_identifier = identifier_index(&planned);
    check_overlaps(&planned, &by_identifier)?;
    Ok(Plan {
        kind: BundleKind::Transaction,
        entries: planned.into_iter().map(Ok).collect(),
        by_identifier,
    })
}

/// The base that relative references of an entry resolve against: that of
/// its `fullUrl` when it is a RESTful URL, else this server's.
fn entry_base(full_url: Option<&str>, fhir_base: &str) -> String {
    if let Some(url) = full_url {
        if url.starts_with("http://") || url.starts_with("https://") {
            let mut parts = url.rsplitn(3, '/');
            let (_id, ty, base) = (parts.next(), parts.next(), parts.next());
            if let (Some(ty), Some(base)) = (ty, base) {
                if is_r4_resource_type(ty) {
                    return base.to_string();
                }
            }
        }
    }
    fhir_base.to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Reference,
    AttachmentUrl,
}

/// Elements of type Attachment whose `url` may name a Bundle entry (an MHD
/// DocumentReference points at its Binary this way).
const ATTACHMENT_KEYS: &[&str] = &[
    "attachment",
    "photo",
    "sourceAttachment",
    "valueAttachment",
    "contentAttachment",
    "presentedForm",
];

/// Calls `f` on every `Reference.reference` string and every `Attachment.url`
/// of a resource (contained resources included).
fn visit_links<F>(value: &mut Value, parent: &str, f: &mut F) -> Result<(), ApiError>
where
    F: FnMut(&mut String, Field) -> Result<(), ApiError>,
{
    match value {
        Value::Object(map) => {
            let attachment = ATTACHMENT_KEYS.contains(&parent);
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if key == "reference" => f(s, Field::Reference)?,
                    Value::String(s) if attachment && key == "url" => f(s, Field::AttachmentUrl)?,
                    Value::Object(_) | Value::Array(_) => visit_links(v, key, f)?,
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                visit_links(item, parent, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn is_conditional(reference: &str) -> bool {
    match reference.split_once('?') {
        Some((ty, _)) => {
            !ty.is_empty() && !ty.contains('/') && !ty.contains(':') && !ty.starts_with('#')
        }
        None => false,
    }
}

/// Rewrites references to other entries to `Type/id`, and collects
/// conditional references.
fn rewrite_links(
    resource: &mut Value,
    base: &str,
    by_full_url: &HashMap<String, usize>,
    typed_ids: &[Option<String>],
    links: &mut Links,
) -> Result<(), ApiError> {
    visit_links(resource, "", &mut |s, field| {
        let mut target = by_full_url.get(s.as_str()).copied();
        if target.is_none() && field == Field::Reference && is_relative_instance(s) {
            target = by_full_url.get(&format!("{base}/{s}")).copied();
        }
        if let Some(j) = target {
            if let Some(Some(typed)) = typed_ids.get(j) {
                links.targets.push((j, typed.clone()));
                s.clone_from(typed);
                return Ok(());
            }
        }
        if field != Field::Reference {
            return Ok(());
        }
        if is_conditional(s) {
            return add_conditional(links, s);
        }
        if s.starts_with("urn:uuid:") || s.starts_with("urn:oid:") {
            return Err(entry_error(
                format!("the reference '{s}' matches the fullUrl of no entry of this transaction"),
                "",
            ));
        }
        Ok(())
    })
}

/// `Type/id` (a relative reference that could name an entry).
fn is_relative_instance(s: &str) -> bool {
    match s.split_once('/') {
        Some((ty, id)) => is_r4_resource_type(ty) && is_valid_id(id),
        None => false,
    }
}

/// (type, id) or (type, identifier value) → indices of entries.
type Index = HashMap<(String, String), Vec<usize>>;

/// (type, id) → entries, for ids known by entry index.
fn id_index<'a>(ids: impl Iterator<Item = (usize, &'a str, &'a str)>) -> Index {
    let mut index = Index::new();
    for (i, rt, id) in ids {
        index
            .entry((rt.to_string(), id.to_string()))
            .or_default()
            .push(i);
    }
    index
}

/// (type, identifier value) → indices of write entries carrying it.
fn identifier_index(planned: &[Planned]) -> Index {
    let mut index = Index::new();
    for (i, p) in planned.iter().enumerate() {
        if let Op::Create { prepared, .. } | Op::Update { prepared, .. } = &p.op {
            let mut seen = HashSet::new();
            for (_, value) in &prepared.identifiers {
                if seen.insert(value) {
                    index
                        .entry((prepared.resource_type.clone(), value.clone()))
                        .or_default()
                        .push(i);
                }
            }
        }
    }
    index
}

/// Whether a resource with `id` and `identifiers` satisfies `criteria`.
fn satisfies(criteria: &[Criterion], id: &str, identifiers: &[(Option<String>, String)]) -> bool {
    criteria.iter().all(|c| match c {
        Criterion::Id(x) => x == id,
        Criterion::Identifier { system, value } => identifiers.iter().any(|(s, v)| {
            v == value
                && system
                    .as_deref()
                    .is_none_or(|sys| s.as_deref().unwrap_or("") == sys)
        }),
    })
}

/// Entries writing a `rt` that `criteria` match, among those of this
/// Bundle (`get` finds an entry by index), with the id each is known by
/// (`id_of`; `None` leaves the entry out).
/// The candidates come from the index of the first criterion (`by_id`:
/// (type, id) → entries), so that matching stays linear in the Bundle.
fn matching_entries<'p>(
    get: impl Fn(usize) -> Option<&'p Planned>,
    by_identifier: &Index,
    by_id: &Index,
    rt: &str,
    criteria: &[Criterion],
    id_of: impl Fn(usize, &Planned) -> Option<String>,
) -> Vec<(usize, String)> {
    let key = match criteria.first() {
        Some(Criterion::Identifier { value, .. }) => (by_identifier, value),
        Some(Criterion::Id(id)) => (by_id, id),
        None => return Vec::new(),
    };
    let candidates = key
        .0
        .get(&(rt.to_string(), key.1.clone()))
        .map(Vec::as_slice)
        .unwrap_or_default();
    candidates
        .iter()
        .copied()
        .filter_map(|j| {
            let p = get(j)?;
            let (Op::Create { prepared, .. } | Op::Update { prepared, .. }) = &p.op else {
                return None;
            };
            if prepared.resource_type != rt {
                return None;
            }
            let id = id_of(j, p)?;
            satisfies(criteria, &id, &prepared.identifiers).then_some((j, id))
        })
        .collect()
}

fn planned_id(p: &Planned) -> Option<String> {
    match &p.op {
        Op::Create { id, .. } => Some(id.clone()),
        Op::Update { tentative, .. } => Some(tentative.clone()),
        _ => None,
    }
}

/// A conditional create or update whose criteria match another entry's
/// resource would write the same resource twice (or create a duplicate):
/// refused with 400 before anything runs.
fn check_overlaps(planned: &[Planned], by_identifier: &Index) -> Result<(), ApiError> {
    let ids: Vec<Option<String>> = planned.iter().map(planned_id).collect();
    let by_id = id_index(
        planned
            .iter()
            .zip(&ids)
            .enumerate()
            .filter_map(|(i, (p, id))| id.as_deref().map(|id| (i, p.op.resource_type(), id))),
    );
    for (i, p) in planned.iter().enumerate() {
        let criteria = match &p.op {
            Op::Create {
                if_none_exist: Some(c),
                ..
            } => c,
            Op::Update {
                target: UpdateTarget::Criteria(c),
                ..
            } => c,
            _ => continue,
        };
        let rt = p.op.resource_type();
        let others = matching_entries(
            |j| planned.get(j),
            by_identifier,
            &by_id,
            rt,
            criteria,
            |j, p| if j == i { None } else { planned_id(p) },
        );
        if let Some((j, _)) = others.first() {
            return Err(at_entry(
                ApiError::bad_request(format!(
                    "the conditions of this entry also match the {rt} of Bundle.entry[{j}]: two entries would write the same resource"
                )),
                i,
                None,
            ));
        }
    }
    Ok(())
}

/// Locates the issues of an entry's error at `Bundle.entry[i]`: expressions
/// about its resource (`Patient.name`) become `Bundle.entry[i].resource.name`,
/// those about the entry (`request.url`) `Bundle.entry[i].request.url`.
fn at_entry(mut e: ApiError, i: usize, rt: Option<&str>) -> ApiError {
    let entry = format!("Bundle.entry[{i}]");
    for issue in &mut e.issues {
        let expressions: Vec<String> = issue
            .expression
            .iter()
            .filter(|x| !x.is_empty())
            .map(|x| {
                if x.starts_with("Bundle.entry[") {
                    return x.clone();
                }
                if x == "resourceType" {
                    return format!("{entry}.resource.resourceType");
                }
                if let Some(rt) = rt {
                    if let Some(rest) = x.strip_prefix(rt) {
                        if rest.is_empty() || rest.starts_with('.') || rest.starts_with('[') {
                            return format!("{entry}.resource{rest}");
                        }
                    }
                }
                if x.starts_with(|c: char| c.is_ascii_uppercase()) {
                    // Another resource type's path: the entry's resource.
                    let rest = x.find(['.', '[']).map(|p| &x[p..]).unwrap_or("");
                    return format!("{entry}.resource{rest}");
                }
                format!("{entry}.{x}")
            })
            .collect();
        issue.expression = if expressions.is_empty() {
            vec![entry.clone()]
        } else {
            expressions
        };
    }
    e
}

// ---------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------

/// What one entry came to.
enum Done {
    Created(StoredVersion),
    Updated(StoredVersion),
    /// A conditional create matched this resource; nothing was written.
    Exists(StoredVersion),
    Deleted(Option<StoredVersion>),
    Read(StoredVersion, Option<Value>),
    NotModified(StoredVersion),
    Found(Value),
    /// A HEAD search: the status only.
    Searched,
    Failed(ApiError),
}

/// Why a transaction stopped: an entry's failure (or the database's).
struct Failure {
    index: Option<usize>,
    error: ApiError,
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure {
            index: None,
            error: e.into(),
        }
    }
}

fn at(i: usize) -> impl Fn(ApiError) -> Failure {
    move |error| Failure {
        index: Some(i),
        error,
    }
}

/// Runs a plan and returns the `batch-response` or `transaction-response`
/// Bundle; a failed transaction is the failing entry's error. Blocking.
pub fn execute(store: &PgStore, plan: Plan, options: &BundleOptions) -> Result<Value, ApiError> {
    let mut results: Vec<Option<Done>> = (0..plan.entries.len()).map(|_| None).collect();
    match plan.kind {
        BundleKind::Transaction => {
            let writes: Vec<(usize, &Planned)> = plan
                .entries
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.as_ref().ok().map(|p| (i, p)))
                .filter(|(_, p)| p.op.is_write())
                .collect();
            if !writes.is_empty() {
                let done = store
                    .transaction(|tx| {
                        run_writes(
                            tx,
                            &writes,
                            &plan.entries,
                            Some(&plan.by_identifier),
                            options,
                        )
                    })
                    .map_err(|f| match f.index {
                        Some(i) => {
                            let rt = plan.entries[i]
                                .as_ref()
                                .ok()
                                .map(|p| p.op.resource_type().to_string());
                            at_entry(f.error, i, rt.as_deref())
                        }
                        None => f.error,
                    })?;
                for (i, d) in done {
                    results[i] = Some(d);
                }
            }
            for (i, p) in plan.entries.iter().enumerate() {
                if let Ok(p) = p {
                    if !p.op.is_write() {
                        results[i] = Some(run_read(store, &p.op, options, i));
                    }
                }
            }
        }
        BundleKind::Batch => {
            for (i, p) in plan.entries.iter().enumerate() {
                let done = match p {
                    Err(e) => Done::Failed(ApiError::with_issues(e.status, e.issues.clone())),
                    Ok(p) if p.op.is_write() => {
                        let one = [(i, p)];
                        match store
                            .transaction(|tx| run_writes(tx, &one, &plan.entries, None, options))
                        {
                            Ok(mut done) => done
                                .pop()
                                .map(|(_, d)| d)
                                .unwrap_or_else(|| Done::Failed(ApiError::internal("no outcome"))),
                            Err(f) => {
                                Done::Failed(at_entry(f.error, i, Some(p.op.resource_type())))
                            }
                        }
                    }
                    Ok(p) => run_read(store, &p.op, options, i),
                };
                results[i] = Some(done);
            }
        }
    }
    Ok(response_bundle(plan.kind, results, options))
}

/// The writes of a transaction (or of one batch entry), in the order the
/// specification sets: DELETE, then POST, then PUT.
fn run_writes(
    tx: &mut Tx<'_>,
    writes: &[(usize, &Planned)],
    all: &[Result<Planned, ApiError>],
    by_identifier: Option<&Index>,
    options: &BundleOptions,
) -> Result<Vec<(usize, Done)>, Failure> {
    let (limit, fhir_base) = (options.limit, options.fhir_base.as_str());
    // Every criterion locked up front, in one order for everyone.
    let mut keys: Vec<(&str, String)> = Vec::new();
    for (_, p) in writes {
        if let Some((rt, criteria)) = p.op.locked_criteria() {
            keys.extend(criteria_keys(criteria).into_iter().map(|k| (rt, k)));
        }
    }
    keys.sort();
    keys.dedup();
    for (rt, key) in &keys {
        tx.lock_criteria(rt, key)?;
    }

    let mut done: Vec<(usize, Done)> = Vec::with_capacity(writes.len());
    // Which entry writes each resource, to refuse two writes of one.
    let mut claimed: HashMap<(String, String), usize> = HashMap::new();
    let mut claim = |rt: &str, id: &str, i: usize| -> Result<(), Failure> {
        match claimed.insert((rt.to_string(), id.to_string()), i) {
            Some(other) if other != i => Err(at(i)(ApiError::bad_request(format!(
                "{rt}/{id} is also written by Bundle.entry[{other}]; an entry may not write a resource another entry writes"
            )))),
            _ => Ok(()),
        }
    };

    let mut deletes = Vec::new();
    for &(i, p) in writes {
        if let Op::Delete {
            rt,
            target,
            if_match,
        } = &p.op
        {
            let id = match target {
                DeleteTarget::Id(id) => Some(id.clone()),
                DeleteTarget::Criteria(c) => single_match(tx, rt, c).map_err(at(i))?,
            };
            if let Some(id) = &id {
                claim(rt, id, i)?;
            }
            deletes.push((i, rt, id, *if_match));
        }
    }
    // Every target is known (and claimed) before the first delete, so two
    // entries deleting one resource are caught whatever their conditions.
    // Rows are locked in one order (type, id), as the PUTs below, so that
    // concurrent Bundles touching the same resources queue, not deadlock.
    deletes.sort_by(|a, b| (a.1, &a.2).cmp(&(b.1, &b.2)));
    for (i, rt, id, if_match) in deletes {
        let deleted = match id {
            Some(id) => delete_in(tx, rt, &id, if_match).map_err(at(i))?,
            None => None,
        };
        done.push((i, Done::Deleted(deleted)));
    }

    // Final ids: a conditional create may find its resource, a conditional
    // update its target.
    let mut finals: HashMap<usize, String> = HashMap::new();
    let mut existing: HashSet<usize> = HashSet::new();
    for &(i, p) in writes {
        match &p.op {
            Op::Create {
                prepared,
                id,
                if_none_exist,
                ..
            } => {
                let found = match if_none_exist {
                    Some(c) => single_match(tx, &prepared.resource_type, c).map_err(at(i))?,
                    None => None,
                };
                if let Some(found) = found {
                    existing.insert(i);
                    finals.insert(i, found);
                } else {
                    finals.insert(i, id.clone());
                }
            }
            Op::Update {
                prepared,
                target,
                tentative,
                ..
            } => {
                let id = update_id(tx, prepared, target, || tentative.clone()).map_err(at(i))?;
                claim(&prepared.resource_type, &id, i)?;
                finals.insert(i, id);
            }
            _ => {}
        }
    }

    // Conditional references: one database match, or one entry's resource.
    let mut resolved: HashMap<&str, String> = HashMap::new();
    let mut by_final: Option<Index> = None;
    for &(i, p) in writes {
        let Some(links) = p.op.links() else {
            continue;
        };
        for c in &links.conditional {
            if resolved.contains_key(c.text.as_str()) {
                continue;
            }
            let mut ids: Vec<String> = tx.find(&c.rt, &c.criteria).map_err(|e| at(i)(e.into()))?;
            if let Some(by_identifier) = by_identifier {
                let by_final = by_final.get_or_insert_with(|| {
                    id_index(writes.iter().filter_map(|&(j, p)| {
                        let id = finals.get(&j).filter(|_| !existing.contains(&j))?;
                        Some((j, p.op.resource_type(), id.as_str()))
                    }))
                });
                let in_bundle = matching_entries(
                    |j| all.get(j).and_then(|p| p.as_ref().ok()),
                    by_identifier,
                    by_final,
                    &c.rt,
                    &c.criteria,
                    |j, _| {
                        if existing.contains(&j) {
                            None
                        } else {
                            finals.get(&j).cloned()
                        }
                    },
                );
                ids.extend(in_bundle.into_iter().map(|(_, id)| id));
            }
            ids.sort();
            ids.dedup();
            let id = match ids.len() {
                1 => ids.pop().unwrap_or_default(),
                0 => {
                    return Err(at(i)(ApiError::new(
                        StatusCode::PRECONDITION_FAILED,
                        IssueType::NotFound,
                        format!(
                            "the conditional reference '{}' matches no {}",
                            c.text, c.rt
                        ),
                    )))
                }
                n => {
                    return Err(at(i)(ApiError::new(
                        StatusCode::PRECONDITION_FAILED,
                        IssueType::MultipleMatches,
                        format!(
                            "the conditional reference '{}' matches {n} {} resources; it must match exactly one",
                            c.text, c.rt
                        ),
                    )))
                }
            };
            resolved.insert(&c.text, format!("{}/{id}", c.rt));
        }
    }

    // POSTs, then PUTs. The POSTs (but Binaries, which bring their bytes)
    // go in one multi-row insert.
    let mut plain: Vec<(usize, String, Option<Prepared>, &Prepared)> = Vec::new();
    for &(i, p) in writes {
        let Op::Create { prepared, .. } = &p.op else {
            continue;
        };
        let id = finals.get(&i).cloned().unwrap_or_default();
        if existing.contains(&i) {
            let v = read_matched(tx, &prepared.resource_type, &id).map_err(at(i))?;
            done.push((i, Done::Exists(v)));
            continue;
        }
        let fixed = fix_links(fhir_base, p, &finals, &resolved);
        if prepared.binary.is_some() {
            let prepared = fixed.as_ref().unwrap_or(prepared);
            let v = insert(tx, prepared, &id, &mut None, limit).map_err(at(i))?;
            done.push((i, Done::Created(v)));
        } else {
            plain.push((i, id, fixed, prepared));
        }
    }
    if !plain.is_empty() {
        let items: Vec<(&Prepared, &str)> = plain
            .iter()
            .map(|(_, id, fixed, prepared)| (fixed.as_ref().unwrap_or(prepared), id.as_str()))
            .collect();
        let only = (plain.len() == 1).then(|| plain[0].0);
        let versions = insert_many(tx, &items).map_err(|error| Failure { index: only, error })?;
        for ((i, ..), v) in plain.iter().zip(versions) {
            done.push((*i, Done::Created(v)));
        }
    }
    let mut updates: Vec<(&str, String, usize, &Planned)> = writes
        .iter()
        .filter(|(_, p)| matches!(p.op, Op::Update { .. }))
        .map(|&(i, p)| {
            let id = finals.get(&i).cloned().unwrap_or_default();
            (p.op.resource_type(), id, i, p)
        })
        .collect();
    updates.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    for (_, id, i, p) in updates {
        if let Op::Update {
            prepared, if_match, ..
        } = &p.op
        {
            let fixed = fix_links(fhir_base, p, &finals, &resolved);
            let prepared = fixed.as_ref().unwrap_or(prepared);
            let d = match put(tx, prepared, &id, *if_match, &mut None, limit).map_err(at(i))? {
                WriteOutcome::Created(v) => Done::Created(v),
                WriteOutcome::Updated(v) => Done::Updated(v),
            };
            done.push((i, d));
        }
    }
    Ok(done)
}

/// A copy of an entry's resource whose references follow what the
/// transaction resolved, when that differs from what planning wrote into it
/// (a conditional create or update that found its resource, a conditional
/// reference); `None` when nothing changes, which is the common case.
fn fix_links(
    fhir_base: &str,
    p: &Planned,
    finals: &HashMap<usize, String>,
    resolved: &HashMap<&str, String>,
) -> Option<Prepared> {
    let (Op::Create {
        prepared, links, ..
    }
    | Op::Update {
        prepared, links, ..
    }) = &p.op
    else {
        return None;
    };
    let mut replace: HashMap<&str, String> = HashMap::new();
    for (j, typed) in &links.targets {
        let Some(final_id) = finals.get(j) else {
            continue;
        };
        let (ty, tentative) = typed.split_once('/').unwrap_or(("", typed));
        if tentative != final_id {
            replace.insert(typed, format!("{ty}/{final_id}"));
        }
    }
    for c in &links.conditional {
        if let Some(r) = resolved.get(c.text.as_str()) {
            replace.insert(&c.text, r.clone());
        }
    }
    if replace.is_empty() {
        return None;
    }
    let mut resource = prepared.resource.clone();
    let _ = visit_links(&mut resource, "", &mut |s, _| {
        if let Some(r) = replace.get(s.as_str()) {
            s.clone_from(r);
        }
        Ok(())
    });
    Some(Prepared {
        resource_type: prepared.resource_type.clone(),
        body_id: prepared.body_id.clone(),
        index: extract(&resource, fhir_base),
        resource,
        identifiers: prepared.identifiers.clone(),
        binary: prepared.binary.clone(),
    })
}

/// A GET or HEAD entry.
fn run_read(store: &PgStore, op: &Op, options: &BundleOptions, i: usize) -> Done {
    let result = match op {
        Op::Read {
            rt,
            id,
            version,
            if_none_match,
            if_modified_since,
            head,
            query,
        } => read_entry(
            store,
            rt,
            id,
            *version,
            *if_none_match,
            *if_modified_since,
            *head,
            query,
        ),
        Op::Search { rt, query, head } => {
            search_bundle(store, &options.fhir_base, rt, query, options.lenient).map(|bundle| {
                if *head {
                    Done::Searched
                } else {
                    Done::Found(bundle)
                }
            })
        }
        _ => Err(ApiError::internal("not a read")),
    };
    result.unwrap_or_else(|e| Done::Failed(at_entry(e, i, Some(op.resource_type()))))
}

#[allow(clippy::too_many_arguments)]
fn read_entry(
    store: &PgStore,
    rt: &str,
    id: &str,
    version: Option<i64>,
    if_none_match: Option<i64>,
    if_modified_since: Option<DateTime<Utc>>,
    head: bool,
    query: &str,
) -> Result<Done, ApiError> {
    let found = match version {
        None => store.read(rt, id)?,
        Some(v) => store.vread(rt, id, v)?,
    };
    let v = match found {
        None => {
            return Err(match version {
                None => ApiError::not_found(format!("{rt}/{id} does not exist")),
                Some(n) => ApiError::not_found(format!("{rt}/{id} has no version {n}")),
            })
        }
        Some(v) if v.is_deleted() => {
            return Err(ApiError::gone(format!(
                "{rt}/{id} was deleted (version {})",
                v.version_id
            )))
        }
        Some(v) => v,
    };
    let unchanged = if_none_match == Some(v.version_id)
        || if_modified_since.is_some_and(|since| v.last_updated.timestamp() <= since.timestamp());
    if unchanged {
        return Ok(Done::NotModified(v));
    }
    if head {
        return Ok(Done::Read(v, None));
    }
    let mut resource: Value = serde_json::from_str(v.content.as_deref().unwrap_or("{}"))
        .map_err(|e| ApiError::internal(format!("stored JSON is corrupt: {e}")))?;
    if rt == "Binary" {
        if let Some(mut reader) = store.binary_reader(&v.id, v.version_id)? {
            let data = reader.read_to_end()?;
            if !data.is_empty() {
                resource["data"] =
                    Value::String(base64::engine::general_purpose::STANDARD.encode(&data));
            }
        }
    }
    for (name, value) in form_pairs(query) {
        match name.as_str() {
            "_summary" => {
                let mode = value
                    .parse::<SummaryMode>()
                    .map_err(|e| ApiError::bad_request(format!("_summary: {e}")))?;
                resource = apply_summary(&resource, mode);
            }
            "_elements" => {
                let names: Vec<&str> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                resource = apply_elements(&resource, &names);
            }
            _ => {}
        }
    }
    Ok(Done::Read(v, Some(resource)))
}

// ---------------------------------------------------------------------------
// The response Bundle
// ---------------------------------------------------------------------------

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

fn instant(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn stored_resource(v: &StoredVersion) -> Option<Value> {
    v.content
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
}

fn response_bundle(kind: BundleKind, results: Vec<Option<Done>>, options: &BundleOptions) -> Value {
    let entries: Vec<Value> = results
        .into_iter()
        .map(|d| {
            response_entry(
                d.unwrap_or_else(|| Done::Failed(ApiError::internal("the entry was not run"))),
                options,
            )
        })
        .collect();
    let mut bundle = Map::new();
    bundle.insert("resourceType".into(), json!("Bundle"));
    bundle.insert("id".into(), json!(new_id()));
    bundle.insert("type".into(), json!(kind.response_type()));
    if !entries.is_empty() {
        bundle.insert("entry".into(), Value::Array(entries));
    }
    Value::Object(bundle)
}

fn response_entry(done: Done, options: &BundleOptions) -> Value {
    let representation = options.returns == EntryReturn::Representation;
    let mut entry = Map::new();
    let mut response = Map::new();
    let mut resource = None;
    let mut outcome = None;
    let mut note = None;
    let versioned = |entry: &mut Map<String, Value>,
                     response: &mut Map<String, Value>,
                     status: StatusCode,
                     v: &StoredVersion,
                     location: bool| {
        entry.insert(
            "fullUrl".into(),
            json!(format!(
                "{}/{}/{}",
                options.fhir_base, v.resource_type, v.id
            )),
        );
        response.insert("status".into(), json!(status_text(status)));
        if location {
            response.insert(
                "location".into(),
                json!(format!(
                    "{}/{}/_history/{}",
                    v.resource_type, v.id, v.version_id
                )),
            );
        }
        response.insert("etag".into(), json!(format!("W/\"{}\"", v.version_id)));
        response.insert("lastModified".into(), json!(instant(v.last_updated)));
    };
    match done {
        Done::Created(v) => {
            versioned(&mut entry, &mut response, StatusCode::CREATED, &v, true);
            resource = representation.then(|| stored_resource(&v)).flatten();
            note = Some("created".to_string());
        }
        Done::Updated(v) => {
            versioned(&mut entry, &mut response, StatusCode::OK, &v, true);
            resource = representation.then(|| stored_resource(&v)).flatten();
            note = Some("updated".to_string());
        }
        Done::Exists(v) => {
            versioned(&mut entry, &mut response, StatusCode::OK, &v, true);
            resource = representation.then(|| stored_resource(&v)).flatten();
            note = Some("a matching resource already exists; nothing was created".to_string());
        }
        Done::Deleted(Some(v)) => {
            response.insert("status".into(), json!(status_text(StatusCode::NO_CONTENT)));
            response.insert("etag".into(), json!(format!("W/\"{}\"", v.version_id)));
            response.insert("lastModified".into(), json!(instant(v.last_updated)));
            note = Some(format!(
                "deleted {}/{} (version {})",
                v.resource_type, v.id, v.version_id
            ));
        }
        Done::Deleted(None) => {
            response.insert("status".into(), json!(status_text(StatusCode::NO_CONTENT)));
            note = Some("nothing to delete".to_string());
        }
        Done::Read(v, r) => {
            versioned(&mut entry, &mut response, StatusCode::OK, &v, false);
            resource = r;
        }
        Done::NotModified(v) => {
            versioned(
                &mut entry,
                &mut response,
                StatusCode::NOT_MODIFIED,
                &v,
                false,
            );
        }
        Done::Found(bundle) => {
            response.insert("status".into(), json!(status_text(StatusCode::OK)));
            resource = Some(bundle);
        }
        Done::Searched => {
            response.insert("status".into(), json!(status_text(StatusCode::OK)));
        }
        Done::Failed(e) => {
            response.insert("status".into(), json!(status_text(e.status)));
            outcome = Some(operation_outcome(&e.issues));
        }
    }
    if outcome.is_none() && options.returns == EntryReturn::OperationOutcome {
        outcome = note.map(|n| operation_outcome(&[Issue::information(n)]));
    }
    if let Some(outcome) = outcome {
        response.insert("outcome".into(), outcome);
    }
    if let Some(r) = resource {
        entry.insert("resource".into(), r);
    }
    entry.insert("response".into(), Value::Object(response));
    Value::Object(entry)
}
