//! Create, update and delete.
//!
//! Every write exists in two forms: a `*_in` function that runs inside a
//! caller's transaction (`&mut Tx`), so that a transaction Bundle can put
//! many writes in one, and the REST form, a thin `store.transaction` wrapper
//! around it: the version, its search-index rows and (for a Binary) its bytes
//! commit together or not at all.
//!
//! Each takes the interaction's [`Guard`]: targets of updates and deletes
//! must be visible to the caller, conditions only match what the caller may
//! read, and every version written must be within the caller's reach, all
//! checked inside the transaction.
//!
//! The building blocks are public too, for callers that must order the steps
//! themselves (a transaction Bundle locks every criterion up front, resolves
//! every conditional target, and only then writes):
//! [`lock_criteria`], [`single_match`], [`update_id`], and [`insert`] /
//! [`insert_many`] / [`put`], which hold the only calls to `Tx::create`,
//! `Tx::create_many` and `Tx::update`.

use fhir_profiles::ids::is_valid_id;
use fhirledger_postgres::{AuditRow, NewResource, PgStore, StoredVersion, Tx, WriteOutcome};

use crate::audit::Touched;
use crate::conditions::Conditions;
use crate::consent::{self, Written};
use crate::error::ServiceError;
use crate::guard::Guard;
use crate::prepare::{render, Prepared};
use crate::reads::{decide_and_read_in, Matching};
use fhirledger_access::Interaction;
use fhirledger_audit::Interaction as Audited;
use serde_json::Value;

/// A stream of Binary bytes arriving from the client, consumed inside the
/// transaction.
pub type ChunkSource = Box<dyn Iterator<Item = Result<Vec<u8>, String>> + Send>;

/// What a (possibly conditional) create did.
#[derive(Debug)]
pub enum CreateOutcome {
    Created(StoredVersion),
    /// `If-None-Exist` matched this existing resource; nothing was written.
    Exists(StoredVersion),
}

/// Where an update goes.
#[derive(Debug, Clone)]
pub enum UpdateTarget {
    /// `PUT /{type}/{id}`.
    Id(String),
    /// `PUT /{type}?criteria`.
    Criteria(Conditions),
}

/// The checks that need the whole transaction written (a Bundle's later
/// entries may create what an earlier one references): every reference of
/// the `written` resources that decides access must resolve. Every unit of
/// writing calls it last: the REST writes here, and each transaction or
/// batch entry of a Bundle.
pub fn finish(
    tx: &mut Tx<'_>,
    guard: &Guard,
    written: &[(&str, &str)],
) -> Result<(), ServiceError> {
    consent::check_references(tx, guard, written)
}

/// [`finish`] for one resource whose written JSON is at hand (a REST write).
fn finish_one(tx: &mut Tx<'_>, guard: &Guard, prepared: &Prepared) -> Result<(), ServiceError> {
    let json = [&prepared.resource];
    match prepared.resource_type.as_str() {
        "DocumentReference" => consent::check_references_of(tx, guard, &json, &[]),
        "Consent" => consent::check_references_of(tx, guard, &[], &json),
        _ => Ok(()),
    }
}

/// A fresh server-assigned id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Takes the advisory locks of `criteria` (sorted) until the transaction
/// ends, so that conditional writes on the same criteria queue up.
pub fn lock_criteria(
    tx: &mut Tx<'_>,
    resource_type: &str,
    criteria: &Conditions,
) -> Result<(), ServiceError> {
    for key in criteria.lock_keys() {
        tx.lock_criteria(resource_type, &key)?;
    }
    Ok(())
}

/// The live resources matching `criteria` that the caller may read (the
/// others are treated as absent), at most `limit`, through the read path.
pub fn matches(
    tx: &mut Tx<'_>,
    guard: &Guard,
    resource_type: &str,
    criteria: &Conditions,
    limit: usize,
) -> Result<Vec<String>, ServiceError> {
    let matching = Matching {
        resource_type,
        conditions: criteria,
        limit,
    };
    Ok(decide_and_read_in(tx, guard, &matching)?.value)
}

/// The single live resource matching `criteria`, `None` when nothing
/// matches, 412 when several do.
pub fn single_match(
    tx: &mut Tx<'_>,
    guard: &Guard,
    resource_type: &str,
    criteria: &Conditions,
) -> Result<Option<String>, ServiceError> {
    let mut ids = matches(tx, guard, resource_type, criteria, 2)?;
    match ids.len() {
        0 => Ok(None),
        1 => Ok(ids.pop()),
        n => Err(ServiceError::precondition_failed(format!(
            "the criteria match {n} {resource_type} resources; they must match at most one"
        ))),
    }
}

/// Writes the bytes of a Binary version from the prepared payload or the
/// streamed upload.
fn write_bytes(
    tx: &mut Tx<'_>,
    prepared: &Prepared,
    id: &str,
    version_id: i64,
    upload: &mut Option<ChunkSource>,
    limit: u64,
) -> Result<(), ServiceError> {
    let Some(payload) = &prepared.binary else {
        return Ok(());
    };
    match upload.take() {
        Some(chunks) => tx.write_binary(id, version_id, &payload.content_type, chunks, limit)?,
        None => tx.write_binary(
            id,
            version_id,
            &payload.content_type,
            std::iter::once(Ok(payload.data.clone())),
            limit,
        )?,
    };
    Ok(())
}

/// Version 1 of a new resource with the given (fresh) id, and its bytes for
/// a Binary. No conditions: see [`create_in`] for `If-None-Exist`.
pub fn insert(
    tx: &mut Tx<'_>,
    guard: &Guard,
    prepared: &Prepared,
    id: &str,
    upload: &mut Option<ChunkSource>,
    limit: u64,
) -> Result<StoredVersion, ServiceError> {
    let rt = prepared.resource_type.as_str();
    guard.permit(rt, Interaction::Create)?;
    if rt == "AuditEvent" {
        return insert_client_event(tx, guard, prepared, id);
    }
    let v = tx.create(rt, id, &prepared.index, |version, ts| {
        render(&prepared.resource, id, version, ts)
    })?;
    write_bytes(tx, prepared, id, v.version_id, upload, limit)?;
    consent::keep_rules(tx, guard, rt, id, Written::Created(&prepared.resource))?;
    guard.check_written(tx, rt, id, Interaction::Create)?;
    audit(
        tx,
        guard,
        Audited::Create,
        &[(&v, Some(&prepared.resource))],
    )?;
    Ok(v)
}

/// An AuditEvent a backend client sends (an EHR forwarding its own events,
/// as an IHE ATNA audit repository accepts them): stored in the trail like
/// the server's own, marked as client-recorded (`meta.tag`), never changed
/// after. Like the server's, it must be about one patient at most (BALP
/// records one event per patient), so each patient's log is exact.
fn insert_client_event(
    tx: &mut Tx<'_>,
    guard: &Guard,
    prepared: &Prepared,
    id: &str,
) -> Result<StoredVersion, ServiceError> {
    let received = chrono::Utc::now();
    let mut event: Value = serde_json::from_str(&render(&prepared.resource, id, 1, received))
        .map_err(|e| ServiceError::internal(format!("rendered AuditEvent: {e}")))?;
    let tag = serde_json::json!({
        "system": fhirledger_audit::CLIENT_RECORDED_SYSTEM,
        "code": "client-recorded",
        "display": "recorded by a client application, not by this server",
    });
    match event["meta"]["tag"].as_array_mut() {
        Some(tags) => tags.push(tag),
        None => event["meta"]["tag"] = serde_json::json!([tag]),
    }
    let indexed = fhirledger_audit::index_value(&event).ok_or_else(|| {
        ServiceError::unprocessable_at(
            "AuditEvent",
            "an element of this AuditEvent does not have its R4 type",
        )
    })?;
    if indexed.patients.len() > 1 {
        return Err(ServiceError::unprocessable_at(
            "AuditEvent.entity",
            format!(
                "this AuditEvent names {} patients; record one event per patient (IHE BALP), \
                 so that each patient's access log holds exactly their events",
                indexed.patients.len()
            ),
        ));
    }
    let recorded = indexed.recorded.ok_or_else(|| {
        ServiceError::unprocessable_at("AuditEvent.recorded", "recorded must be an instant")
    })?;
    let content = event.to_string();
    tx.append_audit_events(&[AuditRow {
        id: id.to_string(),
        recorded,
        patient_id: indexed.subject,
        terms: indexed.terms,
        client_recorded: true,
        content: content.clone(),
    }])?;
    let v = StoredVersion {
        seq: 0,
        resource_type: "AuditEvent".to_string(),
        id: id.to_string(),
        version_id: 1,
        last_updated: received,
        method: fhirledger_postgres::Method::Post,
        content: Some(content),
    };
    audit(tx, guard, Audited::Create, &[(&v, Some(&event))])?;
    Ok(v)
}

/// An Organization counts as active unless it says `active: false`.
fn is_active(organization: &Value) -> bool {
    organization["active"] != Value::Bool(false)
}

/// A hospital deactivated (its Organization set `active: false`, or
/// deleted): a security alert, in the write's transaction, since it ends
/// every session of its people (the authorization server revokes their
/// tokens when it sees it).
fn deactivated(tx: &mut Tx<'_>, guard: &Guard, id: &str) -> Result<(), ServiceError> {
    let Some(recorder) = guard.recorder() else {
        return Ok(());
    };
    let actor = crate::audit::SecurityActor {
        person: guard.caller().and_then(crate::audit::person_of),
        client_id: guard.caller().map(|c| c.client_id.clone()),
    };
    let event = fhirledger_audit::SecurityEvent::Administration {
        what: format!("Organization/{id} deactivated: its accounts can no longer sign in"),
    };
    tx.append_audit_events(&[recorder.security_row(event, actor, None)])?;
    Ok(())
}

/// The AuditEvents of versions just written, appended in the same
/// transaction: one per resource, with the patient its JSON names.
fn audit(
    tx: &mut Tx<'_>,
    guard: &Guard,
    interaction: Audited,
    written: &[(&StoredVersion, Option<&Value>)],
) -> Result<(), ServiceError> {
    let Some(recorder) = guard.recorder() else {
        return Ok(());
    };
    let touched: Vec<Touched> = written
        .iter()
        .map(|(v, json)| Touched::written(v, *json))
        .collect();
    tx.append_audit_events(&recorder.written(guard.caller(), interaction, &touched))?;
    Ok(())
}

/// Version 1 of many new resources (each with its fresh id) in a constant
/// number of statements, for the POSTs of a transaction Bundle. Not for
/// Binary resources, whose bytes [`insert`] writes.
pub fn insert_many(
    tx: &mut Tx<'_>,
    guard: &Guard,
    items: &[(&Prepared, &str)],
) -> Result<Vec<StoredVersion>, ServiceError> {
    for (p, _) in items {
        guard.permit(&p.resource_type, Interaction::Create)?;
    }
    if items.iter().any(|(p, _)| p.resource_type == "AuditEvent") {
        // Client-recorded events go to the trail, one by one.
        return items
            .iter()
            .map(|(p, id)| insert(tx, guard, p, id, &mut None, 0))
            .collect();
    }
    if let Some((p, id)) = items.iter().find(|(p, _)| p.binary.is_some()) {
        return Err(ServiceError::internal(format!(
            "{}/{id} carries bytes; insert it on its own",
            p.resource_type
        )));
    }
    let resources: Vec<NewResource<'_>> = items
        .iter()
        .map(|(p, id)| NewResource {
            resource_type: &p.resource_type,
            id,
            index: &p.index,
        })
        .collect();
    let versions = tx.create_many(&resources, |i, ts| {
        let (p, id) = items[i];
        render(&p.resource, id, 1, ts)
    })?;
    consent::keep_rules_of_created(tx, guard, items)?;
    for (p, id) in items {
        guard.check_written(tx, &p.resource_type, id, Interaction::Create)?;
    }
    let written: Vec<(&StoredVersion, Option<&Value>)> = versions
        .iter()
        .zip(items)
        .map(|(v, (p, _))| (v, Some(&p.resource)))
        .collect();
    audit(tx, guard, Audited::Create, &written)?;
    Ok(versions)
}

/// A new version of `{type}/{id}` (created when it never existed), guarded
/// by `if_match`, and its bytes for a Binary.
pub fn put(
    tx: &mut Tx<'_>,
    guard: &Guard,
    prepared: &Prepared,
    id: &str,
    if_match: Option<i64>,
    upload: &mut Option<ChunkSource>,
    limit: u64,
) -> Result<WriteOutcome, ServiceError> {
    let rt = prepared.resource_type.as_str();
    guard.check_target(tx, rt, id, Interaction::Update)?;
    let outcome = tx.update(rt, id, if_match, &prepared.index, |version, ts| {
        render(&prepared.resource, id, version, ts)
    })?;
    write_bytes(
        tx,
        prepared,
        id,
        outcome.version().version_id,
        upload,
        limit,
    )?;
    let interaction = match outcome {
        WriteOutcome::Created(_) => Interaction::Create,
        WriteOutcome::Updated(_) => Interaction::Update,
    };
    let written = match outcome {
        WriteOutcome::Created(_) => Written::Created(&prepared.resource),
        WriteOutcome::Updated(_) => Written::Updated(&prepared.resource),
    };
    consent::keep_rules(tx, guard, rt, id, written)?;
    guard.check_written(tx, rt, id, interaction)?;
    let audited = match outcome {
        WriteOutcome::Created(_) => Audited::Create,
        WriteOutcome::Updated(_) => Audited::Update,
    };
    if rt == "Organization" && prepared.resource["active"] == Value::Bool(false) {
        let previous = outcome.version().version_id - 1;
        let was_active = previous > 0
            && tx
                .vread(rt, id, previous)?
                .and_then(|v| v.content)
                .and_then(|c| serde_json::from_str::<Value>(&c).ok())
                .is_some_and(|o| is_active(&o));
        if was_active {
            deactivated(tx, guard, id)?;
        }
    }
    audit(
        tx,
        guard,
        audited,
        &[(outcome.version(), Some(&prepared.resource))],
    )?;
    Ok(outcome)
}

/// A create inside the caller's transaction, with `id` as the new id;
/// conditional on `if_none_exist` (its criteria are locked here).
pub fn create_in(
    tx: &mut Tx<'_>,
    guard: &Guard,
    prepared: &Prepared,
    id: &str,
    if_none_exist: Option<&Conditions>,
    upload: &mut Option<ChunkSource>,
    limit: u64,
) -> Result<CreateOutcome, ServiceError> {
    let rt = prepared.resource_type.as_str();
    if let Some(criteria) = if_none_exist {
        lock_criteria(tx, rt, criteria)?;
        if let Some(existing) = single_match(tx, guard, rt, criteria)? {
            return Ok(CreateOutcome::Exists(read_matched(tx, rt, &existing)?));
        }
    }
    Ok(CreateOutcome::Created(insert(
        tx, guard, prepared, id, upload, limit,
    )?))
}

/// The current version of a resource a condition just matched.
pub fn read_matched(tx: &mut Tx<'_>, rt: &str, id: &str) -> Result<StoredVersion, ServiceError> {
    tx.read(rt, id)?
        .ok_or_else(|| ServiceError::internal("a matched resource has no version"))
}

/// The id an update writes: the URL's id (which the body must repeat), or
/// for criteria their single match, else the body's id, else `fresh()`.
/// Does not lock: callers lock the criteria first ([`lock_criteria`]).
pub fn update_id(
    tx: &mut Tx<'_>,
    guard: &Guard,
    prepared: &Prepared,
    target: &UpdateTarget,
    fresh: impl FnOnce() -> String,
) -> Result<String, ServiceError> {
    let rt = prepared.resource_type.as_str();
    match target {
        UpdateTarget::Id(id) => {
            check_body_id(prepared, id)?;
            Ok(id.clone())
        }
        UpdateTarget::Criteria(criteria) => {
            match (single_match(tx, guard, rt, criteria)?, &prepared.body_id) {
                (Some(found), Some(body_id)) if &found != body_id => {
                    Err(ServiceError::bad_request(format!(
                        "the criteria match {rt}/{found} but the body's id is {body_id}"
                    )))
                }
                (Some(found), _) => Ok(found),
                (None, Some(body_id)) => {
                    check_id(body_id)?;
                    Ok(body_id.clone())
                }
                (None, None) => Ok(fresh()),
            }
        }
    }
}

/// An update (by id or by criteria, optionally guarded by `if_match`)
/// inside the caller's transaction.
pub fn update_in(
    tx: &mut Tx<'_>,
    guard: &Guard,
    prepared: &Prepared,
    target: &UpdateTarget,
    if_match: Option<i64>,
    upload: &mut Option<ChunkSource>,
    limit: u64,
) -> Result<WriteOutcome, ServiceError> {
    if let UpdateTarget::Criteria(criteria) = target {
        lock_criteria(tx, &prepared.resource_type, criteria)?;
    }
    let id = update_id(tx, guard, prepared, target, new_id)?;
    put(tx, guard, prepared, &id, if_match, upload, limit)
}

/// A delete by id inside the caller's transaction: `None` when nothing live
/// was there (412 instead when `if_match` expected a version).
pub fn delete_in(
    tx: &mut Tx<'_>,
    guard: &Guard,
    resource_type: &str,
    id: &str,
    if_match: Option<i64>,
) -> Result<Option<StoredVersion>, ServiceError> {
    guard.check_target(tx, resource_type, id, Interaction::Delete)?;
    consent::before_delete(tx, resource_type, id)?;
    // The patient of what is deleted, from its last version, for the event.
    let last: Option<Value> = match guard.recorder() {
        Some(_) => tx
            .read(resource_type, id)?
            .and_then(|v| v.content)
            .and_then(|c| serde_json::from_str(&c).ok()),
        None => None,
    };
    let deleted = tx.delete(resource_type, id, if_match)?;
    if let Some(v) = &deleted {
        consent::keep_rules(tx, guard, resource_type, id, Written::Deleted)?;
        audit(tx, guard, Audited::Delete, &[(v, last.as_ref())])?;
        if resource_type == "Organization" && last.as_ref().is_some_and(is_active) {
            deactivated(tx, guard, id)?;
        }
    }
    Ok(deleted)
}

/// A conditional delete inside the caller's transaction: deletes the single
/// match (412 for several), guarded by `if_match` when given.
pub fn conditional_delete_in(
    tx: &mut Tx<'_>,
    guard: &Guard,
    resource_type: &str,
    criteria: &Conditions,
    if_match: Option<i64>,
) -> Result<Option<StoredVersion>, ServiceError> {
    lock_criteria(tx, resource_type, criteria)?;
    match single_match(tx, guard, resource_type, criteria)? {
        Some(id) => delete_in(tx, guard, resource_type, &id, if_match),
        None => Ok(None),
    }
}

fn check_id(id: &str) -> Result<(), ServiceError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(ServiceError::bad_request(format!(
            "'{id}' is not a valid FHIR id (1-64 of A-Z a-z 0-9 - .)"
        )))
    }
}

/// On `PUT /{type}/{id}` the body must carry the same id.
fn check_body_id(prepared: &Prepared, url_id: &str) -> Result<(), ServiceError> {
    check_id(url_id)?;
    match &prepared.body_id {
        Some(body_id) if body_id == url_id => Ok(()),
        Some(body_id) => Err(ServiceError::bad_request(format!(
            "the body's id '{body_id}' differs from the id '{url_id}' in the URL"
        ))),
        None => Err(ServiceError::bad_request(format!(
            "the body needs an id element equal to '{url_id}' from the URL"
        ))),
    }
}

/// `POST /{type}`, optionally conditional on `If-None-Exist`.
pub fn create(
    store: &PgStore,
    guard: &Guard,
    prepared: &Prepared,
    if_none_exist: Option<&Conditions>,
    mut upload: Option<ChunkSource>,
    limit: u64,
) -> Result<CreateOutcome, ServiceError> {
    let id = new_id();
    store.transaction(|tx| {
        let outcome = create_in(tx, guard, prepared, &id, if_none_exist, &mut upload, limit)?;
        if let CreateOutcome::Created(_) = &outcome {
            finish_one(tx, guard, prepared)?;
        }
        Ok(outcome)
    })
}

/// `PUT /{type}/{id}` or `PUT /{type}?criteria`, with optional `If-Match`.
pub fn update(
    store: &PgStore,
    guard: &Guard,
    prepared: &Prepared,
    target: &UpdateTarget,
    if_match: Option<i64>,
    mut upload: Option<ChunkSource>,
    limit: u64,
) -> Result<WriteOutcome, ServiceError> {
    store.transaction(|tx| {
        let outcome = update_in(tx, guard, prepared, target, if_match, &mut upload, limit)?;
        finish_one(tx, guard, prepared)?;
        Ok(outcome)
    })
}

/// Several new resources created together in one transaction, in order
/// (each with its fresh id): all of them or none, each checked like a
/// create. For onboarding, where a Practitioner and its PractitionerRole
/// arrive together.
pub fn create_together(
    store: &PgStore,
    guard: &Guard,
    resources: &[(&Prepared, &str)],
    limit: u64,
) -> Result<Vec<StoredVersion>, ServiceError> {
    store.transaction(|tx| {
        let versions = resources
            .iter()
            .map(|(prepared, id)| insert(tx, guard, prepared, id, &mut None, limit))
            .collect::<Result<Vec<_>, _>>()?;
        let written: Vec<(&str, &str)> = versions
            .iter()
            .map(|v| (v.resource_type.as_str(), v.id.as_str()))
            .collect();
        finish(tx, guard, &written)?;
        Ok(versions)
    })
}

/// A document and its content in one transaction: the Binary streamed from
/// `upload`, then the DocumentReference that `document` builds for it (given
/// the Binary's id and size), both checked like any create — both or
/// neither, so a failed upload or a refused document leaves nothing behind.
/// For uploads through the portal. Returns (document, binary).
pub fn create_document_with_content<F>(
    store: &PgStore,
    guard: &Guard,
    binary: &Prepared,
    upload: ChunkSource,
    limit: u64,
    document: F,
) -> Result<(StoredVersion, StoredVersion), ServiceError>
where
    F: FnOnce(&str, u64) -> Result<Prepared, ServiceError>,
{
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let size = Arc::new(AtomicU64::new(0));
    let counted = size.clone();
    let counting: ChunkSource = Box::new(upload.inspect(move |chunk| {
        if let Ok(bytes) = chunk {
            counted.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
    }));
    let mut upload = Some(counting);
    let mut document = Some(document);
    let (binary_id, document_id) = (new_id(), new_id());
    store.transaction(|tx| {
        let stored_binary = insert(tx, guard, binary, &binary_id, &mut upload, limit)?;
        let build = document.take().ok_or_else(|| {
            ServiceError::unavailable("the upload cannot be retried; send it again")
        })?;
        let prepared = build(&binary_id, size.load(Ordering::Relaxed))?;
        let stored_document = insert(tx, guard, &prepared, &document_id, &mut None, limit)?;
        finish(
            tx,
            guard,
            &[
                ("Binary", binary_id.as_str()),
                ("DocumentReference", document_id.as_str()),
            ],
        )?;
        Ok((stored_document, stored_binary))
    })
}

/// `DELETE /{type}/{id}`: `None` when nothing live was there.
pub fn delete(
    store: &PgStore,
    guard: &Guard,
    resource_type: &str,
    id: &str,
    if_match: Option<i64>,
) -> Result<Option<StoredVersion>, ServiceError> {
    store.transaction(|tx| delete_in(tx, guard, resource_type, id, if_match))
}

/// `DELETE /{type}?criteria`: deletes the single match (412 for several).
pub fn conditional_delete(
    store: &PgStore,
    guard: &Guard,
    resource_type: &str,
    criteria: &Conditions,
) -> Result<Option<StoredVersion>, ServiceError> {
    store.transaction(|tx| conditional_delete_in(tx, guard, resource_type, criteria, None))
}
