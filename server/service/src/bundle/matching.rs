//! Which entries of a Bundle criteria match (`_id`, `identifier`), without
//! the database: a conditional create or update must not match another
//! entry's resource, and a conditional reference may name an entry's.

use std::collections::{HashMap, HashSet};

use crate::conditions::{Condition, Conditions};

use super::planned::Planned;

/// (type, id) or (type, identifier value) → indices of entries.
pub(super) type Index = HashMap<(String, String), Vec<usize>>;

/// (type, id) → entries, for ids known by entry index.
pub(super) fn id_index<'a>(ids: impl Iterator<Item = (usize, &'a str, &'a str)>) -> Index {
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
pub(super) fn identifier_index(planned: &[Planned]) -> Index {
    let mut index = Index::new();
    for (i, p) in planned.iter().enumerate() {
        if let Some(prepared) = p.prepared() {
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
fn satisfies(criteria: &[Condition], id: &str, identifiers: &[(Option<String>, String)]) -> bool {
    criteria.iter().all(|c| match c {
        Condition::Id(x) => x == id,
        Condition::Identifier { system, value } => identifiers.iter().any(|(s, v)| {
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
pub(super) fn matching_entries<'p>(
    get: impl Fn(usize) -> Option<&'p Planned>,
    by_identifier: &Index,
    by_id: &Index,
    rt: &str,
    criteria: &Conditions,
    id_of: impl Fn(usize, &Planned) -> Option<String>,
) -> Vec<(usize, String)> {
    let criteria = criteria.conditions.as_slice();
    let key = match criteria.first() {
        Some(Condition::Identifier { value, .. }) => (by_identifier, value),
        Some(Condition::Id(id)) => (by_id, id),
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
            let prepared = p.prepared()?;
            if prepared.resource_type != rt {
                return None;
            }
            let id = id_of(j, p)?;
            satisfies(criteria, &id, &prepared.identifiers).then_some((j, id))
        })
        .collect()
}
