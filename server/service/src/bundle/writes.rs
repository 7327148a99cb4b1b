//! The writes of a transaction (or of one batch entry) inside one database
//! transaction, in the order the specification sets: every criterion
//! locked, DELETE, conditional targets resolved, then POST, then PUT.

use std::collections::HashMap;

use fhirledger_postgres::{StoreError, Tx, WriteOutcome};

use super::links::fix_links;
use super::matching::Index;
use super::planned::{Delete, DeleteTarget, Planned};
use super::resolve::{resolve_references, resolve_targets, Targets};
use super::response::Done;
use super::BundleOptions;
use crate::error::ServiceError;
use crate::prepare::Prepared;
use crate::write::{delete_in, finish, insert, insert_many, put, read_matched, single_match};

/// Why a transaction stopped: an entry's failure (or the database's).
pub(super) struct Failure {
    pub index: Option<usize>,
    pub error: ServiceError,
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure {
            index: None,
            error: e.into(),
        }
    }
}

/// Blames entry `i` for an error.
pub(super) fn at(i: usize) -> impl Fn(ServiceError) -> Failure {
    move |error| Failure {
        index: Some(i),
        error,
    }
}

/// Which entry writes each resource, to refuse two writes of one.
#[derive(Default)]
pub(super) struct Claims(HashMap<(String, String), usize>);

impl Claims {
    /// Entry `i` writes `rt/id`: a 400 when another entry already does.
    pub fn claim(&mut self, rt: &str, id: &str, i: usize) -> Result<(), Failure> {
        match self.0.insert((rt.to_string(), id.to_string()), i) {
            Some(other) if other != i => Err(at(i)(ServiceError::bad_request(format!(
                "{rt}/{id} is also written by Bundle.entry[{other}]; an entry may not write a resource another entry writes"
            )))),
            _ => Ok(()),
        }
    }
}

/// Runs `writes` (entry index, entry) inside `tx`. `all` is every entry of
/// the Bundle and `by_identifier` its identifier index, for conditional
/// references to entries (`None` in a batch: its entries stand alone).
pub(super) fn run_writes(
    tx: &mut Tx<'_>,
    writes: &[(usize, &Planned)],
    all: &[Result<Planned, ServiceError>],
    by_identifier: Option<&Index>,
    options: &BundleOptions,
) -> Result<Vec<(usize, Done)>, Failure> {
    lock_all_criteria(tx, writes)?;
    let mut claims = Claims::default();
    let mut done = run_deletes(tx, writes, &mut claims, options)?;
    let targets = resolve_targets(tx, writes, &mut claims, &options.guard)?;
    let resolved = resolve_references(tx, writes, all, by_identifier, &targets, &options.guard)?;
    run_creates(tx, writes, &targets, &resolved, options, &mut done)?;
    run_puts(tx, writes, &targets, &resolved, options, &mut done)?;
    let written: Vec<(usize, &str, &str)> = done
        .iter()
        .filter_map(|(i, d)| match d {
            Done::Created(v) | Done::Updated(v) => {
                Some((*i, v.resource_type.as_str(), v.id.as_str()))
            }
            _ => None,
        })
        .collect();
    let all: Vec<(&str, &str)> = written.iter().map(|(_, t, id)| (*t, *id)).collect();
    // Blame the one entry when there is one; the Bundle as a whole otherwise.
    let only = (written.len() == 1).then(|| written[0].0);
    finish(tx, &options.guard, &all).map_err(|error| Failure { index: only, error })?;
    Ok(done)
}

/// Every criterion locked up front, in one order for everyone, so that
/// concurrent Bundles (and REST conditional writes) queue, not deadlock.
fn lock_all_criteria(tx: &mut Tx<'_>, writes: &[(usize, &Planned)]) -> Result<(), Failure> {
    let mut keys: Vec<(&str, String)> = Vec::new();
    for (_, p) in writes {
        if let Some((rt, criteria)) = p.locked_criteria() {
            keys.extend(criteria.lock_keys().into_iter().map(|k| (rt, k)));
        }
    }
    keys.sort();
    keys.dedup();
    for (rt, key) in &keys {
        tx.lock_criteria(rt, key)?;
    }
    Ok(())
}

/// The DELETEs. Every target is known (and claimed) before the first
/// delete, so two entries deleting one resource are caught whatever their
/// conditions. Rows are locked in one order (type, id), as the PUTs, so that
/// concurrent Bundles touching the same resources queue, not deadlock.
fn run_deletes(
    tx: &mut Tx<'_>,
    writes: &[(usize, &Planned)],
    claims: &mut Claims,
    options: &BundleOptions,
) -> Result<Vec<(usize, Done)>, Failure> {
    let mut deletes = Vec::new();
    for &(i, p) in writes {
        if let Planned::Delete(Delete {
            rt,
            target,
            if_match,
        }) = p
        {
            let id = match target {
                DeleteTarget::Id(id) => Some(id.clone()),
                DeleteTarget::Criteria(c) => {
                    single_match(tx, &options.guard, rt, c).map_err(at(i))?
                }
            };
            if let Some(id) = &id {
                claims.claim(rt, id, i)?;
            }
            deletes.push((i, rt, id, *if_match));
        }
    }
    deletes.sort_by(|a, b| (a.1, &a.2).cmp(&(b.1, &b.2)));
    let mut done = Vec::with_capacity(deletes.len());
    for (i, rt, id, if_match) in deletes {
        let deleted = match id {
            Some(id) => delete_in(tx, &options.guard, rt, &id, if_match).map_err(at(i))?,
            None => None,
        };
        done.push((i, Done::Deleted(deleted)));
    }
    Ok(done)
}

/// The POSTs: a conditional create that found its resource reads it; the
/// others (but Binaries, which bring their bytes) go in one multi-row
/// insert.
fn run_creates(
    tx: &mut Tx<'_>,
    writes: &[(usize, &Planned)],
    targets: &Targets,
    resolved: &HashMap<&str, String>,
    options: &BundleOptions,
    done: &mut Vec<(usize, Done)>,
) -> Result<(), Failure> {
    let mut plain: Vec<(usize, String, Option<Prepared>, &Prepared)> = Vec::new();
    for &(i, p) in writes {
        let Planned::Create { prepared, .. } = p else {
            continue;
        };
        let id = targets.finals.get(&i).cloned().unwrap_or_default();
        if targets.existing.contains(&i) {
            let v = read_matched(tx, &prepared.resource_type, &id).map_err(at(i))?;
            done.push((i, Done::Exists(v)));
            continue;
        }
        let fixed = fix_links(&options.fhir_base, p, &targets.finals, resolved);
        if prepared.binary.is_some() {
            let prepared = fixed.as_ref().unwrap_or(prepared);
            let v = insert(tx, &options.guard, prepared, &id, &mut None, options.limit)
                .map_err(at(i))?;
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
        let versions = insert_many(tx, &options.guard, &items)
            .map_err(|error| Failure { index: only, error })?;
        for ((i, ..), v) in plain.iter().zip(versions) {
            done.push((*i, Done::Created(v)));
        }
    }
    Ok(())
}

/// The PUTs, in (type, id) order (see [`run_deletes`]).
fn run_puts(
    tx: &mut Tx<'_>,
    writes: &[(usize, &Planned)],
    targets: &Targets,
    resolved: &HashMap<&str, String>,
    options: &BundleOptions,
    done: &mut Vec<(usize, Done)>,
) -> Result<(), Failure> {
    let mut updates: Vec<(&str, String, usize, &Planned)> = writes
        .iter()
        .filter(|(_, p)| matches!(p, Planned::Update { .. }))
        .map(|&(i, p)| {
            let id = targets.finals.get(&i).cloned().unwrap_or_default();
            (p.resource_type(), id, i, p)
        })
        .collect();
    updates.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    for (_, id, i, p) in updates {
        if let Planned::Update {
            prepared, if_match, ..
        } = p
        {
            let fixed = fix_links(&options.fhir_base, p, &targets.finals, resolved);
            let prepared = fixed.as_ref().unwrap_or(prepared);
            let outcome = put(
                tx,
                &options.guard,
                prepared,
                &id,
                *if_match,
                &mut None,
                options.limit,
            )
            .map_err(at(i))?;
            let d = match outcome {
                WriteOutcome::Created(v) => Done::Created(v),
                WriteOutcome::Updated(v) => Done::Updated(v),
            };
            done.push((i, d));
        }
    }
    Ok(())
}
