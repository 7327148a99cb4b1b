//! Writing the search-index rows of a version. The rows travel as one array per column and
//! are expanded with `unnest` inside the statement that inserts the version, so a write
//! costs one round trip however many values it is found by.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, Integer, Nullable, Text, Timestamptz};
use fhir_profiles::search::IndexRows;

/// CTEs that replace the index rows of the resource whose row key is `$7` (its new
/// version is `$3`; version 1 has no old rows to delete) with the arrays bound from `$8`
/// on by [`bind_index_rows`].
pub(crate) fn index_write_ctes() -> String {
    index_ctes("$3", "$7", 8)
}

/// The same CTEs with the version at `version`, the row key at `res_id` and the 16 arrays
/// bound from parameter number `first_array` on.
pub(crate) fn index_ctes(version: &str, res_id: &str, first_array: usize) -> String {
    let a = |i: usize| format!("${}", first_array + i);
    format!(
        "old_tokens AS (DELETE FROM search_token WHERE {version} > 1 AND res_id = {res_id}), \
         old_strings AS (DELETE FROM search_string WHERE {version} > 1 AND res_id = {res_id}), \
         old_dates AS (DELETE FROM search_date WHERE {version} > 1 AND res_id = {res_id}), \
         old_references AS (DELETE FROM search_reference WHERE {version} > 1 AND res_id = {res_id}), \
         old_uris AS (DELETE FROM search_uri WHERE {version} > 1 AND res_id = {res_id}), \
         new_tokens AS (INSERT INTO search_token (res_id, key, system, code, text) \
             SELECT {res_id}, k, s, c, t FROM unnest({}::int4[], {}::text[], {}::text[], {}::text[]) AS u(k, s, c, t)), \
         new_strings AS (INSERT INTO search_string (res_id, key, normalized, exact) \
             SELECT {res_id}, k, n, e FROM unnest({}::int4[], {}::text[], {}::text[]) AS u(k, n, e)), \
         new_dates AS (INSERT INTO search_date (res_id, key, low, high) \
             SELECT {res_id}, k, l, h FROM unnest({}::int4[], {}::timestamptz[], {}::timestamptz[]) AS u(k, l, h)), \
         new_references AS (INSERT INTO search_reference (res_id, key, target_type, target_id, url) \
             SELECT {res_id}, k, t, i, u FROM unnest({}::int4[], {}::text[], {}::text[], {}::text[]) AS u(k, t, i, u)), \
         new_uris AS (INSERT INTO search_uri (res_id, key, uri) \
             SELECT {res_id}, k, u FROM unnest({}::int4[], {}::text[]) AS u(k, u))",
        a(0), a(1), a(2), a(3),
        a(4), a(5), a(6),
        a(7), a(8), a(9),
        a(10), a(11), a(12), a(13),
        a(14), a(15)
    )
}

/// Binds the 16 arrays of [`index_ctes`], in order.
pub(crate) fn bind_index_rows<'a>(
    query: BoxedSqlQuery<'a, Pg, SqlQuery>,
    index: &IndexRows,
) -> BoxedSqlQuery<'a, Pg, SqlQuery> {
    let tokens = &index.tokens;
    let strings = &index.strings;
    let dates = &index.dates;
    let refs = &index.references;
    let uris = &index.uris;
    query
        .bind::<Array<Integer>, _>(tokens.iter().map(|t| t.key).collect::<Vec<i32>>())
        .bind::<Array<Nullable<Text>>, _>(column(tokens, |t| pg_opt(&t.system)))
        .bind::<Array<Nullable<Text>>, _>(column(tokens, |t| pg_opt(&t.code)))
        .bind::<Array<Nullable<Text>>, _>(column(tokens, |t| pg_opt(&t.text)))
        .bind::<Array<Integer>, _>(strings.iter().map(|s| s.key).collect::<Vec<i32>>())
        .bind::<Array<Text>, _>(column(strings, |s| pg_text(&s.normalized)))
        .bind::<Array<Text>, _>(column(strings, |s| pg_text(&s.exact)))
        .bind::<Array<Integer>, _>(dates.iter().map(|d| d.key).collect::<Vec<i32>>())
        .bind::<Array<Timestamptz>, _>(column::<_, DateTime<Utc>>(dates, |d| d.low))
        .bind::<Array<Timestamptz>, _>(column::<_, DateTime<Utc>>(dates, |d| d.high))
        .bind::<Array<Integer>, _>(refs.iter().map(|r| r.key).collect::<Vec<i32>>())
        .bind::<Array<Nullable<Text>>, _>(column(refs, |r| pg_opt(&r.target_type)))
        .bind::<Array<Nullable<Text>>, _>(column(refs, |r| pg_opt(&r.target_id)))
        .bind::<Array<Nullable<Text>>, _>(column(refs, |r| pg_opt(&r.url)))
        .bind::<Array<Integer>, _>(uris.iter().map(|u| u.key).collect::<Vec<i32>>())
        .bind::<Array<Text>, _>(column(uris, |u| pg_text(&u.uri)))
}

fn column<R, T>(rows: &[R], f: impl Fn(&R) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

/// PostgreSQL text cannot hold NUL characters (FHIR strings may); they are dropped from
/// index values and from the search values compared with them alike.
pub(crate) fn pg_text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s.to_string()
    }
}

pub(crate) fn pg_opt(s: &Option<String>) -> Option<String> {
    s.as_deref().map(pg_text)
}
