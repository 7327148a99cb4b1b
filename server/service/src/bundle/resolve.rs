//! Where the conditions of a transaction land, inside its database
//! transaction (criteria already locked): the resource a conditional create
//! or update finds, and the one resource each conditional reference names,
//! in the database or among the Bundle's own entries.

use std::collections::{HashMap, HashSet};

use crate::Status;
use fhir_profiles::outcome::IssueType;
use fhirledger_postgres::Tx;

use super::links::ConditionalRef;
use super::matching::{id_index, matching_entries, Index};
use super::planned::Planned;
use super::writes::{at, Claims, Failure};
use crate::error::ServiceError;
use crate::guard::Guard;
use crate::write::{matches, single_match, update_id};

/// The ids the POSTs and PUTs of a transaction end up with.
pub(super) struct Targets {
    /// Entry index → the id it writes, or for a conditional create that
    /// matched, the id of the resource it found.
    pub finals: HashMap<usize, String>,
    /// Conditional creates that found their resource: they write nothing.
    pub existing: HashSet<usize>,
}

impl Targets {
    /// The id entry `j` writes, unless it writes nothing.
    fn written(&self, j: usize) -> Option<&String> {
        self.finals.get(&j).filter(|_| !self.existing.contains(&j))
    }
}

/// Final ids: a conditional create may find its resource, a conditional
/// update its target (claimed, so that no other entry writes it).
pub(super) fn resolve_targets(
    tx: &mut Tx<'_>,
    writes: &[(usize, &Planned)],
    claims: &mut Claims,
    guard: &Guard,
) -> Result<Targets, Failure> {
    let mut targets = Targets {
        finals: HashMap::new(),
        existing: HashSet::new(),
    };
    for &(i, p) in writes {
        match p {
            Planned::Create {
                prepared,
                id,
                if_none_exist,
                ..
            } => {
                let found = match if_none_exist {
                    Some(c) => {
                        single_match(tx, guard, &prepared.resource_type, c).map_err(at(i))?
                    }
                    None => None,
                };
                if let Some(found) = found {
                    targets.existing.insert(i);
                    targets.finals.insert(i, found);
                } else {
                    targets.finals.insert(i, id.clone());
                }
            }
            Planned::Update {
                prepared,
                target,
                tentative,
                ..
            } => {
                let id =
                    update_id(tx, guard, prepared, target, || tentative.clone()).map_err(at(i))?;
                claims.claim(&prepared.resource_type, &id, i)?;
                targets.finals.insert(i, id);
            }
            _ => {}
        }
    }
    Ok(targets)
}

/// Conditional references (text → `Type/id`): each must match exactly one
/// resource, in the database or (in a transaction, `by_identifier` given)
/// among the resources the Bundle writes; else 412.
pub(super) fn resolve_references<'p>(
    tx: &mut Tx<'_>,
    writes: &[(usize, &'p Planned)],
    all: &[Result<Planned, ServiceError>],
    by_identifier: Option<&Index>,
    targets: &Targets,
    guard: &Guard,
) -> Result<HashMap<&'p str, String>, Failure> {
    let mut resolved: HashMap<&str, String> = HashMap::new();
    // (type, final id) → entries, built on the first conditional reference.
    let mut by_final: Option<Index> = None;
    for &(i, p) in writes {
        let Some(links) = p.links() else {
            continue;
        };
        for c in &links.conditional {
            if resolved.contains_key(c.text.as_str()) {
                continue;
            }
            let mut ids = matches(tx, guard, &c.rt, &c.criteria, 2).map_err(at(i))?;
            if let Some(by_identifier) = by_identifier {
                let by_final = by_final.get_or_insert_with(|| {
                    id_index(writes.iter().filter_map(|&(j, p)| {
                        let id = targets.written(j)?;
                        Some((j, p.resource_type(), id.as_str()))
                    }))
                });
                let in_bundle = matching_entries(
                    |j| all.get(j).and_then(|p| p.as_ref().ok()),
                    by_identifier,
                    by_final,
                    &c.rt,
                    &c.criteria,
                    |j, _| targets.written(j).cloned(),
                );
                ids.extend(in_bundle.into_iter().map(|(_, id)| id));
            }
            let id = single_reference(c, ids).map_err(at(i))?;
            resolved.insert(&c.text, format!("{}/{id}", c.rt));
        }
    }
    Ok(resolved)
}

/// The one id among a conditional reference's matches (412 for none or
/// several).
fn single_reference(c: &ConditionalRef, mut ids: Vec<String>) -> Result<String, ServiceError> {
    ids.sort();
    ids.dedup();
    match ids.len() {
        1 => Ok(ids.pop().unwrap_or_default()),
        0 => Err(ServiceError::new(
            Status::PRECONDITION_FAILED,
            IssueType::NotFound,
            format!(
                "the conditional reference '{}' matches no {}",
                c.text, c.rt
            ),
        )),
        n => Err(ServiceError::new(
            Status::PRECONDITION_FAILED,
            IssueType::MultipleMatches,
            format!(
                "the conditional reference '{}' matches {n} {} resources; it must match exactly one",
                c.text, c.rt
            ),
        )),
    }
}
