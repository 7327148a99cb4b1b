//! GET and HEAD entries, run after a transaction commits (they change
//! nothing, so a missing resource is reported in its entry rather than
//! undoing the writes).

use base64::Engine;
use fhir_profiles::summary::{apply_elements, apply_summary, SummaryMode};
use fhirledger_postgres::PgStore;
use serde_json::Value;

use super::errors::at_entry;
use super::planned::{Planned, Read, Search};
use super::response::Done;
use super::BundleOptions;
use crate::error::ServiceError;
use crate::guard::Guard;
use crate::query::form_pairs;
use crate::reads::{self, ReadBinary, ReadResource};
use crate::search::search_bundle;

/// Runs entry `i`, a GET or HEAD; its failure is its own outcome.
pub(super) fn run_read(store: &PgStore, p: &Planned, options: &BundleOptions, i: usize) -> Done {
    let result = match p {
        Planned::Read(read) => read_entry(store, &options.guard, read),
        Planned::Search(Search { rt, query, head }) => {
            search_bundle(store, &options.guard, rt, query, options.lenient).map(|bundle| {
                if *head {
                    Done::Searched
                } else {
                    Done::Found(bundle)
                }
            })
        }
        _ => Err(ServiceError::internal("not a read")),
    };
    result.unwrap_or_else(|e| Done::Failed(at_entry(e, i, Some(p.resource_type()))))
}

/// A read or vread: 404/410 as on the REST routes, 304 for a matching
/// `ifNoneMatch`/`ifModifiedSince`; a Binary carries its bytes as `data`.
fn read_entry(store: &PgStore, guard: &Guard, read: &Read) -> Result<Done, ServiceError> {
    let Read {
        rt,
        id,
        version,
        if_none_match,
        if_modified_since,
        head,
        query,
    } = read;
    let (v, bytes) = if rt == "Binary" {
        reads::read(
            store,
            guard,
            ReadBinary {
                id,
                version: *version,
            },
        )?
        .value
    } else {
        let op = ReadResource {
            resource_type: rt,
            id,
            version: *version,
        };
        (reads::read(store, guard, op)?.value, None)
    };
    let v = match v {
        v if v.is_deleted() => {
            return Err(ServiceError::gone(format!(
                "{rt}/{id} was deleted (version {})",
                v.version_id
            )))
        }
        v => v,
    };
    let unchanged = *if_none_match == Some(v.version_id)
        || if_modified_since.is_some_and(|since| v.last_updated.timestamp() <= since.timestamp());
    if unchanged {
        return Ok(Done::NotModified(v));
    }
    if *head {
        return Ok(Done::Read(v, None));
    }
    let mut resource: Value = serde_json::from_str(v.content.as_deref().unwrap_or("{}"))
        .map_err(|e| ServiceError::internal(format!("stored JSON is corrupt: {e}")))?;
    if let Some(at) = bytes {
        let data = store.binary_bytes(&at)?;
        if !data.is_empty() {
            resource["data"] =
                Value::String(base64::engine::general_purpose::STANDARD.encode(&data));
        }
    }
    for (name, value) in form_pairs(query) {
        match name.as_str() {
            "_summary" => {
                let mode = value
                    .parse::<SummaryMode>()
                    .map_err(|e| ServiceError::bad_request(format!("_summary: {e}")))?;
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
