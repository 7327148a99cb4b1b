//! Create, update and delete, each as one database transaction: the
//! version, its identifier rows and (for a Binary) its bytes commit together
//! or not at all.

use fhir_profiles::ids::is_valid_id;
use fhirledger_postgres::{Criterion, PgStore, StoredVersion, Tx, WriteOutcome};

use crate::http::error::ApiError;
use crate::http::preconditions::criteria_keys;
use crate::service::prepare::{render, Prepared};

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
    Criteria(Vec<Criterion>),
}

fn lock_all(tx: &mut Tx<'_>, resource_type: &str, criteria: &[Criterion]) -> Result<(), ApiError> {
    for key in criteria_keys(criteria) {
        tx.lock_criteria(resource_type, &key)?;
    }
    Ok(())
}

/// The single live resource matching `criteria`, `None` when nothing
/// matches, 412 when several do.
fn single_match(
    tx: &mut Tx<'_>,
    resource_type: &str,
    criteria: &[Criterion],
) -> Result<Option<String>, ApiError> {
    let mut ids = tx.find(resource_type, criteria)?;
    match ids.len() {
        0 => Ok(None),
        1 => Ok(ids.pop()),
        n => Err(ApiError::precondition_failed(format!(
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
) -> Result<(), ApiError> {
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

/// `POST /{type}`, optionally conditional on `If-None-Exist`.
pub fn create(
    store: &PgStore,
    prepared: &Prepared,
    if_none_exist: Option<&[Criterion]>,
    mut upload: Option<ChunkSource>,
    limit: u64,
) -> Result<CreateOutcome, ApiError> {
    let rt = prepared.resource_type.as_str();
    store.transaction(|tx| {
        if let Some(criteria) = if_none_exist {
            lock_all(tx, rt, criteria)?;
            if let Some(existing) = single_match(tx, rt, criteria)? {
                let current = tx
                    .read(rt, &existing)?
                    .ok_or_else(|| ApiError::internal("a matched resource has no version"))?;
                return Ok(CreateOutcome::Exists(current));
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        let v = tx.create(rt, &id, &prepared.identifiers, |version, ts| {
            render(&prepared.resource, &id, version, ts)
        })?;
        write_bytes(tx, prepared, &id, v.version_id, &mut upload, limit)?;
        Ok(CreateOutcome::Created(v))
    })
}

/// `PUT /{type}/{id}` or `PUT /{type}?criteria`, with optional `If-Match`.
pub fn update(
    store: &PgStore,
    prepared: &Prepared,
    target: &UpdateTarget,
    if_match: Option<i64>,
    mut upload: Option<ChunkSource>,
    limit: u64,
) -> Result<WriteOutcome, ApiError> {
    let rt = prepared.resource_type.as_str();
    store.transaction(|tx| {
        let id = match target {
            UpdateTarget::Id(id) => {
                check_body_id(prepared, id)?;
                id.clone()
            }
            UpdateTarget::Criteria(criteria) => {
                lock_all(tx, rt, criteria)?;
                match (single_match(tx, rt, criteria)?, &prepared.body_id) {
                    (Some(found), Some(body_id)) if &found != body_id => {
                        return Err(ApiError::bad_request(format!(
                            "the criteria match {rt}/{found} but the body's id is {body_id}"
                        )))
                    }
                    (Some(found), _) => found,
                    (None, Some(body_id)) => {
                        check_id(body_id)?;
                        body_id.clone()
                    }
                    (None, None) => uuid::Uuid::new_v4().to_string(),
                }
            }
        };
        let outcome = tx.update(rt, &id, if_match, &prepared.identifiers, |version, ts| {
            render(&prepared.resource, &id, version, ts)
        })?;
        write_bytes(
            tx,
            prepared,
            &id,
            outcome.version().version_id,
            &mut upload,
            limit,
        )?;
        Ok(outcome)
    })
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "'{id}' is not a valid FHIR id (1-64 of A-Z a-z 0-9 - .)"
        )))
    }
}

/// On `PUT /{type}/{id}` the body must carry the same id.
fn check_body_id(prepared: &Prepared, url_id: &str) -> Result<(), ApiError> {
    check_id(url_id)?;
    match &prepared.body_id {
        Some(body_id) if body_id == url_id => Ok(()),
        Some(body_id) => Err(ApiError::bad_request(format!(
            "the body's id '{body_id}' differs from the id '{url_id}' in the URL"
        ))),
        None => Err(ApiError::bad_request(format!(
            "the body needs an id element equal to '{url_id}' from the URL"
        ))),
    }
}

/// `DELETE /{type}/{id}`: `None` when nothing live was there.
pub fn delete(
    store: &PgStore,
    resource_type: &str,
    id: &str,
    if_match: Option<i64>,
) -> Result<Option<StoredVersion>, ApiError> {
    store.transaction(|tx| Ok(tx.delete(resource_type, id, if_match)?))
}

/// `DELETE /{type}?criteria`: deletes the single match (412 for several).
pub fn conditional_delete(
    store: &PgStore,
    resource_type: &str,
    criteria: &[Criterion],
) -> Result<Option<StoredVersion>, ApiError> {
    store.transaction(|tx| {
        lock_all(tx, resource_type, criteria)?;
        match single_match(tx, resource_type, criteria)? {
            Some(id) => Ok(tx.delete(resource_type, &id, None)?),
            None => Ok(None),
        }
    })
}
