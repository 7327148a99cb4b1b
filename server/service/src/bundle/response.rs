//! The `batch-response` / `transaction-response` Bundle: one entry per
//! request entry, in order, with status, location, etag and lastModified,
//! and the resource or an outcome as `Prefer: return=` asks.

use crate::Status;
use chrono::{DateTime, SecondsFormat, Utc};
use fhir_profiles::outcome::{operation_outcome, Issue};
use fhirledger_postgres::StoredVersion;
use serde_json::{json, Map, Value};

use super::{BundleKind, BundleOptions, EntryReturn};
use crate::error::ServiceError;
use crate::types::etag;
use crate::write::new_id;

/// What one entry came to.
pub(super) enum Done {
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
    Failed(ServiceError),
}

/// The response Bundle; `results` by entry index (`None`: never run, which
/// would be a bug, answered as a 500 in that entry).
pub(super) fn response_bundle(
    kind: BundleKind,
    results: Vec<Option<Done>>,
    options: &BundleOptions,
) -> Value {
    let entries: Vec<Value> = results
        .into_iter()
        .map(|d| {
            response_entry(
                d.unwrap_or_else(|| Done::Failed(ServiceError::internal("the entry was not run"))),
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
    let with_version = |status, v: &StoredVersion, location| {
        version_parts(&options.fhir_base, status, v, location)
    };
    match done {
        Done::Created(v) => {
            (entry, response) = with_version(Status::CREATED, &v, true);
            resource = representation.then(|| stored_resource(&v)).flatten();
            note = Some("created".to_string());
        }
        Done::Updated(v) => {
            (entry, response) = with_version(Status::OK, &v, true);
            resource = representation.then(|| stored_resource(&v)).flatten();
            note = Some("updated".to_string());
        }
        Done::Exists(v) => {
            (entry, response) = with_version(Status::OK, &v, true);
            resource = representation.then(|| stored_resource(&v)).flatten();
            note = Some("a matching resource already exists; nothing was created".to_string());
        }
        Done::Deleted(Some(v)) => {
            response.insert("status".into(), json!(status_text(Status::NO_CONTENT)));
            response.insert("etag".into(), json!(etag(v.version_id)));
            response.insert("lastModified".into(), json!(instant(v.last_updated)));
            note = Some(format!(
                "deleted {}/{} (version {})",
                v.resource_type, v.id, v.version_id
            ));
        }
        Done::Deleted(None) => {
            response.insert("status".into(), json!(status_text(Status::NO_CONTENT)));
            note = Some("nothing to delete".to_string());
        }
        Done::Read(v, r) => {
            (entry, response) = with_version(Status::OK, &v, false);
            resource = r;
        }
        Done::NotModified(v) => {
            (entry, response) = with_version(Status::NOT_MODIFIED, &v, false);
        }
        Done::Found(bundle) => {
            response.insert("status".into(), json!(status_text(Status::OK)));
            resource = Some(bundle);
        }
        Done::Searched => {
            response.insert("status".into(), json!(status_text(Status::OK)));
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

/// The entry (its `fullUrl`) and the response (status, `location` for
/// writes, relative as the specification shows it, `etag`, `lastModified`)
/// of an entry about a stored version.
fn version_parts(
    fhir_base: &str,
    status: Status,
    v: &StoredVersion,
    location: bool,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut entry = Map::new();
    entry.insert(
        "fullUrl".into(),
        json!(format!("{fhir_base}/{}/{}", v.resource_type, v.id)),
    );
    let mut response = Map::new();
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
    response.insert("etag".into(), json!(etag(v.version_id)));
    response.insert("lastModified".into(), json!(instant(v.last_updated)));
    (entry, response)
}

/// `201 Created`, as `Bundle.entry.response.status` is usually written.
fn status_text(status: Status) -> String {
    status.line()
}

/// A FHIR instant, to the microsecond as `meta.lastUpdated`.
fn instant(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn stored_resource(v: &StoredVersion) -> Option<Value> {
    v.content
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
}
