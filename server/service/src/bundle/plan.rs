//! Planning (CPU only, before any connection is taken): every entry's
//! request read, references between entries rewritten, resources validated,
//! so that the database transaction does database work only.

use std::collections::HashMap;

use fhir_profiles::format::FhirFormat;
use fhir_profiles::ids::is_valid_id;
use serde_json::Value;

use super::errors::{at_entry, entry_error};
use super::links::{collect_conditional, entry_base, rewrite_links, Links};
use super::matching::{id_index, identifier_index, matching_entries, Index};
use super::parse::{bundle_kind, read_bundle, take_entries};
use super::planned::Planned;
use super::request::{draft, Request};
use super::{BundleKind, Plan};
use crate::error::ServiceError;
use crate::prepare::{prepare, prepare_value, Prepared};
use crate::write::{new_id, UpdateTarget};

/// Reads a Bundle body and plans its entries (no database access). Errors:
/// 400 for a body that is not a batch or transaction Bundle; for a
/// transaction, the first failing entry's error (located at
/// `Bundle.entry[i]`).
pub fn plan(body: &[u8], format: FhirFormat, fhir_base: &str) -> Result<Plan, ServiceError> {
    let (mut bundle, checked) = read_bundle(body, format)?;
    let kind = bundle_kind(&bundle)?;
    let entries = take_entries(&mut bundle)?;
    match kind {
        BundleKind::Batch => Ok(plan_batch(entries, checked, fhir_base)),
        BundleKind::Transaction => plan_transaction(entries, fhir_base),
    }
}

/// A batch: each entry planned on its own, keeping its own error.
fn plan_batch(entries: Vec<Value>, checked: bool, fhir_base: &str) -> Plan {
    let requested = entries
        .iter()
        .map(|entry| {
            let request = &entry["request"];
            fhirledger_audit::interaction_of(
                request["method"].as_str().unwrap_or_default(),
                request["url"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let entries = entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let mut rt = None;
            let planned = draft(entry, fhir_base).and_then(|d| {
                rt = Some(d.request.resource_type().to_string());
                let mut resource = d.resource;
                let links = match resource.as_mut() {
                    Some(r) => collect_conditional(r)?,
                    None => Links::default(),
                };
                finish(fhir_base, d.request, resource, checked, None, links)
            });
            planned.map_err(|e| at_entry(e, i, rt.as_deref()))
        })
        .collect();
    Plan {
        kind: BundleKind::Batch,
        entries,
        requested,
        by_identifier: HashMap::new(),
    }
}

/// A transaction: ids for every POST and PUT first, then references between
/// entries rewritten to them; the first failing entry fails the whole.
fn plan_transaction(entries: Vec<Value>, fhir_base: &str) -> Result<Plan, ServiceError> {
    let n = entries.len();
    let mut drafts = Vec::with_capacity(n);
    for (i, entry) in entries.into_iter().enumerate() {
        drafts.push(draft(entry, fhir_base).map_err(|e| at_entry(e, i, None))?);
    }
    // Ids first, so that references resolve whatever the order of entries.
    let ids: Vec<Option<String>> = drafts
        .iter()
        .map(|d| tentative_draft_id(&d.request, d.resource.as_ref()))
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
                .map(|id| format!("{}/{id}", d.request.resource_type()))
        })
        .collect();
    let mut planned = Vec::with_capacity(n);
    for (i, (d, id)) in drafts.into_iter().zip(ids).enumerate() {
        let rt = d.request.resource_type().to_string();
        let mut resource = d.resource;
        let links = match resource.as_mut() {
            Some(r) => {
                let base = entry_base(d.full_url.as_deref(), fhir_base);
                rewrite_links(r, &base, &by_full_url, &typed_ids)
                    .map_err(|e| at_entry(e, i, Some(&rt)))?
            }
            None => Links::default(),
        };
        let p = finish(fhir_base, d.request, resource, true, id, links)
            .map_err(|e| at_entry(e, i, Some(&rt)))?;
        planned.push(p);
    }
    let by_identifier = identifier_index(&planned);
    check_overlaps(&planned, &by_identifier)?;
    Ok(Plan {
        kind: BundleKind::Transaction,
        entries: planned.into_iter().map(Ok).collect(),
        requested: Vec::new(),
        by_identifier,
    })
}

/// Turns a draft into a runnable entry: validates its resource (already
/// rewritten, for a transaction). `checked`: the resource passed the strict
/// parse of the whole Bundle; otherwise it is parsed on its own here.
fn finish(
    fhir_base: &str,
    request: Request,
    resource: Option<Value>,
    checked: bool,
    id: Option<String>,
    links: Links,
) -> Result<Planned, ServiceError> {
    let prepare_resource = |rt: &str, resource: Option<Value>| -> Result<Prepared, ServiceError> {
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
    Ok(match request {
        Request::Create { rt, if_none_exist } => Planned::Create {
            prepared: prepare_resource(&rt, resource)?,
            id: id.unwrap_or_else(new_id),
            if_none_exist,
            links,
        },
        Request::Update {
            rt,
            target,
            if_match,
        } => {
            let prepared = prepare_resource(&rt, resource)?;
            let tentative = id.unwrap_or_else(|| tentative_update_id(&target, &prepared));
            Planned::Update {
                prepared,
                target,
                tentative,
                if_match,
                links,
            }
        }
        Request::Delete(delete) => Planned::Delete(delete),
        Request::Read(read) => Planned::Read(read),
        Request::Search(search) => Planned::Search(search),
    })
}

/// The id a batch update is expected to write before its criteria are
/// resolved.
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

/// The id a transaction's POST or PUT is known by while planning: a fresh
/// one for a POST, the URL's or the body's (else a fresh one) for a PUT.
fn tentative_draft_id(request: &Request, resource: Option<&Value>) -> Option<String> {
    match request {
        Request::Create { .. } => Some(new_id()),
        Request::Update {
            target: UpdateTarget::Id(id),
            ..
        } => Some(id.clone()),
        Request::Update { .. } => Some(
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

/// A conditional create or update whose criteria match another entry's
/// resource would write the same resource twice (or create a duplicate):
/// refused with 400 before anything runs.
fn check_overlaps(planned: &[Planned], by_identifier: &Index) -> Result<(), ServiceError> {
    let ids: Vec<Option<String>> = planned.iter().map(Planned::planned_id).collect();
    let by_id = id_index(
        planned
            .iter()
            .zip(&ids)
            .enumerate()
            .filter_map(|(i, (p, id))| id.as_deref().map(|id| (i, p.resource_type(), id))),
    );
    for (i, p) in planned.iter().enumerate() {
        let Some(criteria) = p.write_criteria() else {
            continue;
        };
        let rt = p.resource_type();
        let others = matching_entries(
            |j| planned.get(j),
            by_identifier,
            &by_id,
            rt,
            criteria,
            |j, p| if j == i { None } else { p.planned_id() },
        );
        if let Some((j, _)) = others.first() {
            return Err(at_entry(
                ServiceError::bad_request(format!(
                    "the conditions of this entry also match the {rt} of Bundle.entry[{j}]: two entries would write the same resource"
                )),
                i,
                None,
            ));
        }
    }
    Ok(())
}
