//! `_include` and `_revinclude`: resources the page's matches reference, and resources
//! that reference them, through the reference index. `:iterate` repeats over what was
//! added, a bounded number of times.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel::PgConnection;
use fhir_profiles::search::query::{Criterion, Include, SearchRequest, Visibility};

use crate::search::binds::{Bind, Sql};
use crate::search::criteria::{per_candidate, predicate};
use crate::search::Found;
use crate::StoreError;

/// Rounds of `:iterate` followed at most.
const MAX_ITERATIONS: usize = 4;
/// Included resources per page at most, so one page cannot pull in the whole database.
const MAX_INCLUDED: usize = 1000;

#[derive(QueryableByName)]
struct IncludedRow {
    #[diesel(sql_type = Text)]
    resource_type: String,
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = BigInt)]
    version_id: i64,
    #[diesel(sql_type = Timestamptz)]
    last_updated: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    content: Option<String>,
}

/// The resources `_include`/`_revinclude` add to a page of `matches`, each once and none
/// that is already a match.
pub(crate) fn included(
    conn: &mut PgConnection,
    request: &SearchRequest,
    visibility: &Visibility,
    matches: &[Found],
) -> Result<Vec<Found>, StoreError> {
    if request.includes.is_empty() && request.revincludes.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen: HashSet<(String, String)> = matches
        .iter()
        .map(|f| (f.resource_type.clone(), f.id.clone()))
        .collect();
    let mut added: Vec<Found> = Vec::new();
    let mut sources: Vec<(String, String)> = seen.iter().cloned().collect();
    for round in 0..MAX_ITERATIONS {
        if sources.is_empty() || added.len() >= MAX_INCLUDED {
            break;
        }
        let mut fresh = Vec::new();
        let this_round = request.includes.iter().filter(|i| round == 0 || i.iterate);
        for include in merged(this_round) {
            fresh.extend(forward(conn, visibility, &include, &sources)?);
        }
        for include in &request.revincludes {
            if round == 0 || include.iterate {
                fresh.extend(reverse(conn, visibility, include, &sources)?);
            }
        }
        sources = Vec::new();
        for f in fresh {
            let key = (f.resource_type.clone(), f.id.clone());
            if added.len() < MAX_INCLUDED && seen.insert(key.clone()) {
                sources.push(key);
                added.push(f);
            }
        }
    }
    Ok(added)
}

/// The forward includes of one round with those from the same source type to the same
/// target type as one (their parameters together): one statement follows
/// `_include=DocumentReference:author&_include=DocumentReference:custodian`, and what
/// it adds is the same.
fn merged<'a>(includes: impl Iterator<Item = &'a Include>) -> Vec<Include> {
    let mut merged: Vec<Include> = Vec::new();
    for include in includes {
        match merged
            .iter_mut()
            .find(|m| m.source_type == include.source_type && m.target_type == include.target_type)
        {
            Some(m) => {
                for key in &include.keys {
                    if !m.keys.contains(key) {
                        m.keys.push(*key);
                    }
                }
            }
            None => merged.push(include.clone()),
        }
    }
    merged
}

/// Ids of `sources` of type `resource_type`.
fn ids_of(sources: &[(String, String)], resource_type: &str) -> Vec<String> {
    sources
        .iter()
        .filter(|(t, _)| t == resource_type)
        .map(|(_, id)| id.clone())
        .collect()
}

const INCLUDED_COLUMNS: &str = "t.resource_type, t.id, t.version_id, t.last_updated, v.content";

/// ` AND …` limiting the included rows `t` (of `resource_type` when the include names
/// one, else of any type) to what [`Visibility::includes`] lets the caller see;
/// `None` when no row could pass, so the query need not run. Being part of the statement,
/// the condition also holds before `LIMIT`, and a hidden resource never becomes a source
/// of a later `:iterate` round.
fn visible(
    sql: &mut Sql,
    visibility: &Visibility,
    t: &str,
    resource_type: Option<&str>,
) -> Option<String> {
    let types: Vec<(&str, &[Criterion])> = match (&visibility.includes, resource_type) {
        (None, _) => return Some(String::new()),
        (Some(_), Some(rt)) => vec![(rt, visibility.include_criteria(rt)?)],
        (Some(access), None) => access
            .iter()
            .map(|(rt, criteria)| (rt.as_str(), criteria.as_slice()))
            .collect(),
    };
    if types.is_empty() {
        return None;
    }
    let per_type: Vec<String> = types
        .into_iter()
        .map(|(rt, criteria)| {
            let mut condition = format!("{t}.resource_type = {}", sql.type_name(rt));
            for criterion in criteria {
                let p = per_candidate(predicate(sql, criterion, t, rt));
                condition.push_str(&format!(" AND {p}"));
            }
            format!("({condition})")
        })
        .collect();
    Some(format!(" AND ({})", per_type.join(" OR ")))
}

/// Resources that the sources of the include's type reference through its parameters.
fn forward(
    conn: &mut PgConnection,
    visibility: &Visibility,
    include: &Include,
    sources: &[(String, String)],
) -> Result<Vec<Found>, StoreError> {
    let ids = ids_of(sources, &include.source_type);
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::default();
    let Some(visible) = visible(&mut sql, visibility, "t", include.target_type.as_deref()) else {
        return Ok(Vec::new());
    };
    let source_type = sql.type_name(&include.source_type);
    let ids = sql.bind(Bind::Texts(ids));
    let keys = sql.bind(Bind::Ints(include.keys.clone()));
    let target_filter = match &include.target_type {
        Some(t) => format!(" AND x.target_type = {}", sql.type_name(t)),
        None => String::new(),
    };
    let limit = sql.bind(Bind::BigInt(MAX_INCLUDED as i64));
    sql.push(&format!(
        "SELECT DISTINCT {INCLUDED_COLUMNS} FROM resources s \
         JOIN search_reference x ON x.res_id = s.res_id \
         JOIN resources t ON t.resource_type = x.target_type AND t.id = x.target_id AND NOT t.deleted \
         JOIN resource_versions v ON v.resource_type = t.resource_type AND v.id = t.id AND v.version_id = t.version_id \
         WHERE s.resource_type = {source_type} AND s.id = ANY({ids}) AND x.key = ANY({keys}){target_filter}{visible} \
         LIMIT {limit}"
    ));
    load(conn, &sql)
}

/// Resources of the include's source type whose parameters reference the sources.
fn reverse(
    conn: &mut PgConnection,
    visibility: &Visibility,
    include: &Include,
    sources: &[(String, String)],
) -> Result<Vec<Found>, StoreError> {
    let mut types: Vec<&str> = sources.iter().map(|(t, _)| t.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    let mut found = Vec::new();
    for target_type in types {
        if include
            .target_type
            .as_deref()
            .is_some_and(|t| t != target_type)
        {
            continue;
        }
        let mut sql = Sql::default();
        let Some(visible) = visible(&mut sql, visibility, "t", Some(&include.source_type)) else {
            continue;
        };
        let ids = sql.bind(Bind::Texts(ids_of(sources, target_type)));
        let target_type = sql.type_name(target_type);
        let keys = sql.bind(Bind::Ints(include.keys.clone()));
        let limit = sql.bind(Bind::BigInt(MAX_INCLUDED as i64));
        sql.push(&format!(
            "SELECT DISTINCT {INCLUDED_COLUMNS} FROM search_reference x \
             JOIN resources t ON t.res_id = x.res_id AND NOT t.deleted \
             JOIN resource_versions v ON v.resource_type = t.resource_type AND v.id = t.id AND v.version_id = t.version_id \
             WHERE x.key = ANY({keys}) AND x.target_type = {target_type} AND x.target_id = ANY({ids}){visible} \
             LIMIT {limit}"
        ));
        found.extend(load(conn, &sql)?);
    }
    Ok(found)
}

fn load(conn: &mut PgConnection, sql: &Sql) -> Result<Vec<Found>, StoreError> {
    Ok(sql
        .query()
        .load::<IncludedRow>(conn)?
        .into_iter()
        .filter_map(|row| {
            Some(Found {
                resource_type: row.resource_type,
                id: row.id,
                version_id: row.version_id,
                last_updated: row.last_updated,
                content: row.content?,
                patient: None,
            })
        })
        .collect())
}
