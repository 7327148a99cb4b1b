//! Search: a parsed [`SearchRequest`] becomes one SQL statement over `resources` with an
//! `EXISTS` per criterion, keyset-paged on the sort keys and the row key, joined to the
//! current versions' content; `_include`/`_revinclude` follow the reference index.

pub(crate) mod audit;
mod binds;
mod consent;
mod criteria;
mod cursor;
mod include;

pub(crate) use binds::{Bind, Sql};
pub(crate) use consent::{grounds, held_rules, reader_references_of};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz};
use diesel::PgConnection;
use std::borrow::Cow;

use fhir_profiles::search::query::{
    Criterion, ReferenceMatch, SearchRequest, SortField, SortKey, StringMode, TotalMode, UriMode,
    Visibility,
};
use fhir_profiles::search::record_sort::is_record_sorted;
use fhir_profiles::search::{ParamKey, ParamType};
use fhir_profiles::summary::SummaryMode;

use crate::search::criteria::{driver_rows, per_candidate, predicate, table_of};
use crate::search::cursor::Cursor;
use crate::StoreError;

/// The current version of a resource a search returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    pub last_updated: DateTime<Utc>,
    /// Canonical FHIR JSON with meta set.
    pub content: String,
    /// Whose data it is, when the store knows without reading `content`
    /// (an AuditEvent's `patient_id`; `Some(None)`: no patient's). `None`:
    /// the caller reads it from `content` if it needs it.
    pub patient: Option<Option<String>>,
}

/// One page of a search.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    /// The matches of this page, in order.
    pub matches: Vec<Found>,
    /// Resources added by `_include` and `_revinclude`.
    pub included: Vec<Found>,
    /// Cursor of the following page, when there is one.
    pub next: Option<String>,
    /// Cursor of the preceding page, when this is not the first.
    pub previous: Option<String>,
    /// The number of matches, when asked for (exact or estimated as asked).
    pub total: Option<u64>,
}

#[derive(QueryableByName)]
struct PageRow {
    #[diesel(sql_type = BigInt)]
    res_id: i64,
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = BigInt)]
    version_id: i64,
    #[diesel(sql_type = Timestamptz)]
    last_updated: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    content: Option<String>,
    #[diesel(sql_type = Array<Nullable<Text>>)]
    keys: Vec<Option<String>>,
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the statement that fetches the page of `request`.
pub(crate) fn explain(
    conn: &mut PgConnection,
    request: &SearchRequest,
) -> Result<String, StoreError> {
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let cursor = decode_cursor(request, &Visibility::everything())?;
    let mut sql = page_sql(request, cursor.as_ref())?;
    sql.hoist_common();
    let statement = format!("{}\n-- parameters: {:?}", sql.text, sql.binds);
    sql.text = format!("EXPLAIN (ANALYZE, BUFFERS) {}", sql.text);
    // Twice: in a fresh session the first run's planning also fills the catalog caches,
    // which a pooled connection has long done.
    sql.query().load::<Line>(conn)?;
    let lines = sql.query().load::<Line>(conn)?;
    let plan = lines.into_iter().map(|l| l.line).collect::<Vec<_>>();
    Ok(format!("{statement}\n\n{}", plan.join("\n")))
}

/// Runs a search: its page (from `request.cursor`), its includes and the total asked for,
/// limited to what `visibility` lets the caller see.
pub(crate) fn search(
    conn: &mut PgConnection,
    request: &SearchRequest,
    visibility: &Visibility,
) -> Result<SearchPage, StoreError> {
    let scoped = scoped(request, visibility);
    let request = scoped.as_ref();
    let cursor = decode_cursor(request, visibility)?;
    let count_only = request.summary == Some(SummaryMode::Count);
    let mut page = SearchPage::default();
    if !count_only && request.count > 0 {
        fill_page(conn, request, visibility, cursor.as_ref(), &mut page)?;
        page.included = include::included(conn, request, visibility, &page.matches)?;
    }
    let total_mode = match request.total {
        Some(mode) => mode,
        None if count_only => TotalMode::Accurate,
        None => TotalMode::None,
    };
    page.total = match total_mode {
        TotalMode::None => None,
        TotalMode::Accurate => Some(count(conn, request)?),
        // The planner's estimate comes from statistics over every row, the
        // ones the caller may not see among them: under restricted access it
        // would hint at hidden resources (how many documents a patient has),
        // so a restricted caller's estimate is the count of what they see.
        TotalMode::Estimate if !visibility.criteria.is_empty() => Some(count(conn, request)?),
        TotalMode::Estimate => Some(estimate(conn, request)?),
    };
    Ok(page)
}

/// The version row [`read_visible`] returns.
#[derive(QueryableByName)]
pub(crate) struct VisibleVersion {
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = BigInt)]
    pub version_id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub last_updated: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub method: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub content: Option<String>,
}

/// The current version of `resource_type/id` if it is live and meets the
/// visibility's criteria, in one statement (no transaction is needed for a
/// check and a read to agree).
pub(crate) fn read_visible(
    conn: &mut PgConnection,
    resource_type: &str,
    id: &str,
    visibility: &Visibility,
) -> Result<Option<VisibleVersion>, StoreError> {
    let mut request = SearchRequest::new(resource_type);
    request.criteria.push(Criterion::Id {
        ids: vec![id.to_string()],
    });
    request.criteria.extend(visibility.criteria.iter().cloned());
    let mut sql = Sql::default();
    let (from, _) = filtered(&mut sql, &request);
    let rt = sql.type_name(resource_type);
    sql.push(&format!(
        "SELECT v.seq, v.version_id, v.last_updated, v.method, v.content \
         FROM (SELECT r.id, r.version_id {from}) m \
         JOIN resource_versions v ON v.resource_type = {rt} AND v.id = m.id \
         AND v.version_id = m.version_id"
    ));
    Ok(sql.query().get_result::<VisibleVersion>(conn).optional()?)
}

/// The client's request with the visibility's criteria added: one statement filters both.
fn scoped<'r>(request: &'r SearchRequest, visibility: &Visibility) -> Cow<'r, SearchRequest> {
    if visibility.criteria.is_empty() {
        return Cow::Borrowed(request);
    }
    let mut scoped = request.clone();
    for limit in &visibility.criteria {
        // A criterion of the client's that the limit implies adds nothing
        // (a patient's `patient=<themselves>` beside their own-record
        // limit): checking it too would probe the same index rows again
        // for every candidate.
        scoped.criteria.retain(|c| !implies(limit, c));
        scoped.criteria.push(limit.clone());
    }
    Cow::Owned(scoped)
}

/// Whether every resource matching `stricter` matches `looser`: the same
/// criterion, or the same reference to one resource where `looser` names
/// its type no more narrowly.
fn implies(stricter: &Criterion, looser: &Criterion) -> bool {
    if stricter == looser {
        return true;
    }
    match (stricter, looser) {
        (
            Criterion::Reference {
                key: k1,
                values: v1,
            },
            Criterion::Reference {
                key: k2,
                values: v2,
            },
        ) if k1 == k2 => match (v1.as_slice(), v2.as_slice()) {
            (
                [ReferenceMatch::Local {
                    resource_type: t1,
                    id: i1,
                }],
                [ReferenceMatch::Local {
                    resource_type: t2,
                    id: i2,
                }],
            ) => i1 == i2 && (t2.is_none() || t2 == t1),
            _ => false,
        },
        _ => false,
    }
}

/// Identifies a search for its cursors: the type, criteria (the caller's access
/// restrictions among them), sort order and what included resources are limited to, so a
/// cursor issued under one caller's access does not validate under another's.
fn fingerprint(request: &SearchRequest, visibility: &Visibility) -> String {
    format!(
        "{}|{:?}|{:?}|{:?}",
        request.resource_type, request.criteria, request.sort, visibility.includes
    )
}

fn decode_cursor(
    request: &SearchRequest,
    visibility: &Visibility,
) -> Result<Option<Cursor>, StoreError> {
    request
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c, request.sort.len(), &fingerprint(request, visibility)))
        .transpose()
}

/// `FROM resources r WHERE …` of the matches of `request`.
/// `FROM … WHERE …` of the matches of `request`, as rows `r` with `res_id` and, when
/// `with_row` is returned true, the `resources` columns `id`, `version_id` and
/// `last_updated` too. Criteria and sort keys that need those columns (`_id`,
/// `_lastUpdated`, `_has`, sorting by `_id` or `_lastUpdated`) ask for them; otherwise
/// only the page's rows are looked up in `resources`, after the `LIMIT`.
fn filtered(sql: &mut Sql, request: &SearchRequest) -> (String, bool) {
    let rt = sql.type_name(&request.resource_type);
    // The search starts from the index rows of its most selective criterion and checks
    // the others per candidate with an index probe on `res_id` (see `per_candidate`).
    // `OFFSET 0` fences and `LATERAL` fix that order, so a generic plan cached per
    // connection cannot pick another: the index tables mix every parameter, and their
    // statistics (or a plan made while they were small) misled the planner badly.
    // `_id` filters `resources` directly through its primary key instead.
    let has_id = request
        .criteria
        .iter()
        .any(|c| matches!(c, Criterion::Id { .. }));
    let driver = request
        .criteria
        .iter()
        .enumerate()
        .filter(|_| !has_id)
        .filter_map(|(i, c)| drive_rank(c).map(|rank| (rank, i)))
        .min()
        .and_then(|(_, i)| {
            let rows = driver_rows(sql, &request.criteria[i], &request.resource_type)?;
            Some((i, rows))
        });
    // Index rows belong to live resources of the key's type only, so a driver's row keys
    // need no check against `resources`.
    let needs_row = request
        .criteria
        .iter()
        .any(|c| reads_row(c, &request.resource_type))
        || request
            .sort
            .iter()
            .any(|k| matches!(k.field, SortField::Id | SortField::LastUpdated));
    let (mut text, with_row) = match &driver {
        Some((_, rows)) if !needs_row => (
            format!("FROM (SELECT DISTINCT d0.res_id FROM ({rows}) d0) r WHERE TRUE"),
            false,
        ),
        Some((_, rows)) => (
            format!(
                "FROM (SELECT DISTINCT d0.res_id FROM ({rows}) d0) d, \
                 LATERAL (SELECT r0.res_id, r0.id, r0.version_id, r0.last_updated FROM resources r0 \
                          WHERE r0.res_id = d.res_id AND r0.resource_type = {rt} AND NOT r0.deleted \
                          OFFSET 0) r WHERE TRUE"
            ),
            true,
        ),
        None => (
            format!("FROM resources r WHERE r.resource_type = {rt} AND NOT r.deleted"),
            true,
        ),
    };
    for (i, criterion) in request.criteria.iter().enumerate() {
        if driver.as_ref().is_some_and(|(d, _)| *d == i) {
            continue;
        }
        let p = predicate(sql, criterion, "r", &request.resource_type);
        let p = if matches!(criterion, Criterion::Id { .. }) {
            p
        } else {
            per_candidate(p)
        };
        text.push_str(&format!(" AND {p}"));
    }
    (text, with_row)
}

/// Whether a criterion reads columns of the candidate's `resources` row beyond `res_id`
/// (`id`, `last_updated`), also from inside alternatives. The Consent probes read the
/// `id` of a Patient; of a DocumentReference, only its `res_id`.
fn reads_row(criterion: &Criterion, resource_type: &str) -> bool {
    match criterion {
        Criterion::Id { .. } | Criterion::LastUpdated { .. } | Criterion::Has { .. } => true,
        Criterion::Consented { .. } | Criterion::EmergencyAccess { .. } => {
            resource_type == "Patient"
        }
        Criterion::AnyOf { alternatives } | Criterion::NoneOf { alternatives } => alternatives
            .iter()
            .flatten()
            .any(|c| reads_row(c, resource_type)),
        _ => false,
    }
}

/// How well a criterion narrows a search when the search starts from it (lower is
/// better); `None` for criteria that should never drive (negations, `:missing`,
/// substring and text matches, which cannot use a value index well).
fn drive_rank(criterion: &Criterion) -> Option<u8> {
    match criterion {
        Criterion::Id { .. } => Some(0),
        Criterion::Reference { .. } => Some(1),
        Criterion::Token {
            negated: false,
            values,
            ..
        } if values.iter().all(|v| v.code.is_some()) => Some(2),
        Criterion::String {
            mode: StringMode::Exact,
            ..
        }
        | Criterion::Uri {
            mode: UriMode::Exact,
            ..
        } => Some(2),
        Criterion::Chain { .. } | Criterion::Has { .. } => Some(3),
        Criterion::String {
            mode: StringMode::Prefix,
            ..
        } => Some(4),
        Criterion::Date { .. } => Some(5),
        // Alternatives are ORed, so no one index range holds all their matches.
        Criterion::AnyOf { .. } | Criterion::NoneOf { .. } => None,
        _ => None,
    }
}

/// The exact number of matches.
fn count(conn: &mut PgConnection, request: &SearchRequest) -> Result<u64, StoreError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut sql = Sql::default();
    let (from, _) = filtered(&mut sql, request);
    sql.push(&format!("SELECT count(*) AS n {from}"));
    let n = sql.query().get_result::<Count>(conn)?.n;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The planner's estimate of the number of matches (cheap on any size).
fn estimate(conn: &mut PgConnection, request: &SearchRequest) -> Result<u64, StoreError> {
    #[derive(QueryableByName)]
    struct Plan {
        #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
        plan: String,
    }
    let mut sql = Sql::default();
    let (from, _) = filtered(&mut sql, request);
    sql.push(&format!("SELECT 1 {from}"));
    sql.hoist_common();
    sql.text = format!("EXPLAIN (FORMAT JSON) {}", sql.text);
    let plan = sql.query().get_result::<Plan>(conn)?.plan;
    let rows = serde_json::from_str::<serde_json::Value>(&plan)
        .ok()
        .and_then(|v| v.get(0)?.get("Plan")?.get("Plan Rows")?.as_f64())
        .unwrap_or(0.0);
    Ok(rows.max(0.0).round() as u64)
}

/// A sort key as an SQL expression over `r`, and whether its values are instants.
fn sort_expression(sql: &mut Sql, key: &SortKey) -> (String, bool) {
    let aggregate = if key.descending { "max" } else { "min" };
    match &key.field {
        SortField::Id => ("r.id".into(), false),
        SortField::LastUpdated => ("r.last_updated".into(), true),
        SortField::Param { key: param, kind } => {
            let (column, instant) = match kind {
                ParamType::Date if key.descending => ("x.high", true),
                ParamType::Date => ("x.low", true),
                ParamType::String => ("x.normalized", false),
                ParamType::Uri => ("x.uri", false),
                ParamType::Reference => (
                    "coalesce(x.target_type || '/' || x.target_id, x.url)",
                    false,
                ),
                _ => ("x.code", false),
            };
            let Some(table) = table_of(*kind) else {
                return ("NULL::text".into(), false);
            };
            let param = sql.key(*param);
            (
                format!("(SELECT {aggregate}({column}) FROM {table} x WHERE x.res_id = r.res_id AND x.key = {param})"),
                instant,
            )
        }
    }
}

/// A search that names one patient record and sorts by one of its type's dates
/// ([`fhir_profiles::search::record_sort`]): which of its criteria names the record, and
/// the order.
struct RecordOrder {
    /// The criterion naming the record, in `request.criteria`.
    criterion: usize,
    reference_key: ParamKey,
    target_type: String,
    target_id: String,
    date_key: ParamKey,
    descending: bool,
}

/// The [`RecordOrder`] of `request`, when its page can be read in order from the
/// record's date rows: one date sort key, a criterion matching exactly one local target
/// of typed record reference, and no criterion that reads the `resources` row.
fn record_order(request: &SearchRequest) -> Option<RecordOrder> {
    let [SortKey {
        field:
            SortField::Param {
                key: date_key,
                kind: ParamType::Date,
            },
        descending,
    }] = request.sort.as_slice()
    else {
        return None;
    };
    if request
        .criteria
        .iter()
        .any(|c| reads_row(c, &request.resource_type))
    {
        return None;
    }
    request
        .criteria
        .iter()
        .enumerate()
        .find_map(|(criterion, c)| match c {
            Criterion::Reference { key, values } if is_record_sorted(*key, *date_key) => {
                match values.as_slice() {
                    // Untyped, one id could name records of several types: each would
                    // be a row of its own.
                    [ReferenceMatch::Local {
                        resource_type: Some(target_type),
                        id,
                    }] => Some(RecordOrder {
                        criterion,
                        reference_key: *key,
                        target_type: target_type.clone(),
                        target_id: id.clone(),
                        date_key: *date_key,
                        descending: *descending,
                    }),
                    _ => None,
                }
            }
            _ => None,
        })
}

/// `FROM … WHERE …` of the matches of `request` as rows `r` of the record's date rows
/// (`res_id`, `low`, `high`), the other criteria checked per row: walked in the sort
/// order by an index, so the page's `LIMIT` ends the walk.
fn record_ordered(sql: &mut Sql, request: &SearchRequest, order: &RecordOrder) -> String {
    let reference = sql.key(order.reference_key);
    let target_type = sql.text(order.target_type.clone());
    let target_id = sql.text(order.target_id.clone());
    let date = sql.key(order.date_key);
    let mut text = format!(
        "FROM search_record_date r WHERE r.reference_key = {reference} \
         AND r.target_id = {target_id} AND r.target_type = {target_type} AND r.date_key = {date}"
    );
    for (i, criterion) in request.criteria.iter().enumerate() {
        if i == order.criterion {
            continue;
        }
        let p = per_candidate(predicate(sql, criterion, "r", &request.resource_type));
        text.push_str(&format!(" AND {p}"));
    }
    text
}

/// The statement of one page: the matches after the cursor in sort order, one row more
/// than asked so the caller knows whether another page follows.
fn page_sql(request: &SearchRequest, cursor: Option<&Cursor>) -> Result<Sql, StoreError> {
    let backwards = cursor.is_some_and(|c| c.backwards);
    let mut sql = Sql::default();
    let (keys, from, with_row) = match record_order(request) {
        Some(order) => {
            let from = record_ordered(&mut sql, request, &order);
            let column = if order.descending { "r.high" } else { "r.low" };
            (
                vec![(column.to_string(), true, order.descending)],
                from,
                false,
            )
        }
        None => {
            let keys: Vec<(String, bool, bool)> = request
                .sort
                .iter()
                .map(|k| {
                    let (expr, instant) = sort_expression(&mut sql, k);
                    (expr, instant, k.descending)
                })
                .collect();
            let (from, with_row) = filtered(&mut sql, request);
            (keys, from, with_row)
        }
    };
    let key_columns: String = keys
        .iter()
        .enumerate()
        .map(|(i, (expr, _, _))| format!(", {expr} AS k{i}"))
        .collect();
    let keyset = match cursor {
        Some(c) => keyset_condition(&mut sql, &keys, c)?,
        None => "TRUE".into(),
    };
    let order = |prefix: &str| -> String {
        let mut parts: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, (_, _, desc))| {
                // Reading backwards flips every direction, so NULLS LAST becomes FIRST.
                let descending = *desc != backwards;
                let nulls = if backwards { "FIRST" } else { "LAST" };
                let dir = if descending { "DESC" } else { "ASC" };
                format!("{prefix}k{i} {dir} NULLS {nulls}")
            })
            .collect();
        parts.push(format!(
            "{prefix}res_id {}",
            if backwards { "DESC" } else { "ASC" }
        ));
        parts.join(", ")
    };
    let limit = sql.bind(Bind::BigInt(request.count as i64 + 1));
    let rt = sql.type_name(&request.resource_type);
    let key_array = if keys.is_empty() {
        "ARRAY[]::text[]".to_string()
    } else {
        // Instants as RFC 3339 in UTC with microseconds, so a cursor's values read back exactly.
        let items: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, (_, instant, _))| {
                if *instant {
                    format!(
                        "to_char(p.k{i} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
                    )
                } else {
                    format!("p.k{i}::text")
                }
            })
            .collect();
        format!("ARRAY[{}]::text[]", items.join(", "))
    };
    let (order_inner, order_outer) = (order("s."), order("p."));
    if with_row {
        sql.push(&format!(
            "SELECT p.res_id, p.id, p.version_id, p.last_updated, v.content, {key_array} AS keys \
             FROM (SELECT s.* FROM (SELECT r.res_id, r.id, r.version_id, r.last_updated{key_columns} {from}) s \
                   WHERE {keyset} ORDER BY {order_inner} LIMIT {limit}) p \
             JOIN resource_versions v ON v.resource_type = {rt} AND v.id = p.id AND v.version_id = p.version_id \
             ORDER BY {order_outer}"
        ));
    } else {
        sql.push(&format!(
            "SELECT p.res_id, w.id, w.version_id, w.last_updated, v.content, {key_array} AS keys \
             FROM (SELECT s.* FROM (SELECT r.res_id{key_columns} {from}) s \
                   WHERE {keyset} ORDER BY {order_inner} LIMIT {limit}) p, \
             LATERAL (SELECT w0.id, w0.version_id, w0.last_updated FROM resources w0 \
                      WHERE w0.res_id = p.res_id OFFSET 0) w \
             JOIN resource_versions v ON v.resource_type = {rt} AND v.id = w.id AND v.version_id = w.version_id \
             ORDER BY {order_outer}"
        ));
    }
    Ok(sql)
}

/// Fetches one page (one row more than asked, to know whether another follows).
fn fill_page(
    conn: &mut PgConnection,
    request: &SearchRequest,
    visibility: &Visibility,
    cursor: Option<&Cursor>,
    page: &mut SearchPage,
) -> Result<(), StoreError> {
    let backwards = cursor.is_some_and(|c| c.backwards);
    let sql = page_sql(request, cursor)?;
    let mut rows = sql.query().load::<PageRow>(conn)?;
    let more = rows.len() > request.count;
    rows.truncate(request.count);
    if backwards {
        rows.reverse();
    }
    let search = fingerprint(request, visibility);
    let boundary = |row: &PageRow, backwards: bool| {
        Cursor {
            keys: row.keys.clone(),
            res_id: row.res_id,
            backwards,
        }
        .encode(&search)
    };
    let (has_next, has_previous) = if backwards {
        (true, more)
    } else {
        (more, cursor.is_some())
    };
    if has_next {
        page.next = rows.last().map(|r| boundary(r, false));
    }
    if has_previous {
        page.previous = rows.first().map(|r| boundary(r, true));
    }
    page.matches = rows
        .into_iter()
        .filter_map(|row| {
            Some(Found {
                resource_type: request.resource_type.clone(),
                id: row.id,
                version_id: row.version_id,
                last_updated: row.last_updated,
                content: row.content?,
                patient: None,
            })
        })
        .collect();
    Ok(())
}

/// Rows strictly beyond the cursor's row in the page's reading direction, over the
/// columns `s.k0…` and `s.res_id`. Sort keys place missing values last (first when
/// reading backwards).
fn keyset_condition(
    sql: &mut Sql,
    keys: &[(String, bool, bool)],
    cursor: &Cursor,
) -> Result<String, StoreError> {
    let backwards = cursor.backwards;
    let res_id = sql.bind(Bind::BigInt(cursor.res_id));
    let mut condition = format!("s.res_id {} {res_id}", if backwards { "<" } else { ">" });
    for (i, ((_, instant, desc), value)) in keys.iter().zip(&cursor.keys).enumerate().rev() {
        let column = format!("s.k{i}");
        let descending = *desc != backwards;
        let nulls_last = !backwards;
        let (beyond, equal) = match value {
            None if nulls_last => ("FALSE".to_string(), format!("{column} IS NULL")),
            None => (format!("{column} IS NOT NULL"), format!("{column} IS NULL")),
            Some(v) => {
                let p = sql.text(v.clone());
                let p = if *instant {
                    format!("{p}::timestamptz")
                } else {
                    p
                };
                let cmp = if descending { "<" } else { ">" };
                let beyond = if nulls_last {
                    format!("({column} {cmp} {p} OR {column} IS NULL)")
                } else {
                    format!("{column} {cmp} {p}")
                };
                (beyond, format!("{column} = {p}"))
            }
        };
        condition = format!("({beyond} OR ({equal} AND {condition}))");
    }
    Ok(condition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhir_profiles::search::param_key;

    fn reference(resource_type: Option<&str>, id: &str) -> Criterion {
        Criterion::Reference {
            key: param_key("DocumentReference", "patient"),
            values: vec![ReferenceMatch::Local {
                resource_type: resource_type.map(str::to_string),
                id: id.to_string(),
            }],
        }
    }

    #[test]
    fn a_limit_to_one_patient_implies_the_same_patient_asked_for() {
        let limit = reference(Some("Patient"), "p-1");
        assert!(implies(&limit, &reference(Some("Patient"), "p-1")));
        assert!(implies(&limit, &reference(None, "p-1")));
        assert!(!implies(&limit, &reference(Some("Group"), "p-1")));
        assert!(!implies(&limit, &reference(Some("Patient"), "p-2")));
        assert!(!implies(&reference(None, "p-1"), &limit));
        let both = Criterion::Reference {
            key: param_key("DocumentReference", "patient"),
            values: vec![
                ReferenceMatch::Local {
                    resource_type: Some("Patient".into()),
                    id: "p-1".into(),
                },
                ReferenceMatch::Local {
                    resource_type: Some("Patient".into()),
                    id: "p-2".into(),
                },
            ],
        };
        assert!(!implies(&limit, &both), "p-2 would be dropped");
    }

    #[test]
    fn a_scoped_search_checks_an_implied_criterion_once() {
        let mut request = SearchRequest::new("DocumentReference");
        request.criteria.push(reference(None, "p-1"));
        let visibility = Visibility {
            criteria: vec![reference(Some("Patient"), "p-1")],
            ..Visibility::everything()
        };
        let scoped = scoped(&request, &visibility);
        assert_eq!(scoped.criteria, vec![reference(Some("Patient"), "p-1")]);
    }
}
