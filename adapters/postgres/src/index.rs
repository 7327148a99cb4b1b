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
pub(crate) const INDEX_WRITE_CTES: &str = "\
    old_tokens AS (DELETE FROM search_token WHERE $3 > 1 AND res_id = $7), \
    old_strings AS (DELETE FROM search_string WHERE $3 > 1 AND res_id = $7), \
    old_dates AS (DELETE FROM search_date WHERE $3 > 1 AND res_id = $7), \
    old_references AS (DELETE FROM search_reference WHERE $3 > 1 AND res_id = $7), \
    old_uris AS (DELETE FROM search_uri WHERE $3 > 1 AND res_id = $7), \
    new_tokens AS (INSERT INTO search_token (res_id, key, system, code, text) \
        SELECT $7, k, s, c, t FROM unnest($8::int4[], $9::text[], $10::text[], $11::text[]) AS u(k, s, c, t)), \
    new_strings AS (INSERT INTO search_string (res_id, key, normalized, exact) \
        SELECT $7, k, n, e FROM unnest($12::int4[], $13::text[], $14::text[]) AS u(k, n, e)), \
    new_dates AS (INSERT INTO search_date (res_id, key, low, high) \
        SELECT $7, k, l, h FROM unnest($15::int4[], $16::timestamptz[], $17::timestamptz[]) AS u(k, l, h)), \
    new_references AS (INSERT INTO search_reference (res_id, key, target_type, target_id, url) \
        SELECT $7, k, t, i, u FROM unnest($18::int4[], $19::text[], $20::text[], $21::text[]) AS u(k, t, i, u)), \
    new_uris AS (INSERT INTO search_uri (res_id, key, uri) \
        SELECT $7, k, u FROM unnest($22::int4[], $23::text[]) AS u(k, u))";

/// Binds `$8` to `$23` of [`INDEX_WRITE_CTES`].
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
        .bind::<Array<Nullable<Text>>, _>(column(tokens, |t| t.system.clone()))
        .bind::<Array<Nullable<Text>>, _>(column(tokens, |t| t.code.clone()))
        .bind::<Array<Nullable<Text>>, _>(column(tokens, |t| t.text.clone()))
        .bind::<Array<Integer>, _>(strings.iter().map(|s| s.key).collect::<Vec<i32>>())
        .bind::<Array<Text>, _>(column(strings, |s| s.normalized.clone()))
        .bind::<Array<Text>, _>(column(strings, |s| s.exact.clone()))
        .bind::<Array<Integer>, _>(dates.iter().map(|d| d.key).collect::<Vec<i32>>())
        .bind::<Array<Timestamptz>, _>(column::<_, DateTime<Utc>>(dates, |d| d.low))
        .bind::<Array<Timestamptz>, _>(column::<_, DateTime<Utc>>(dates, |d| d.high))
        .bind::<Array<Integer>, _>(refs.iter().map(|r| r.key).collect::<Vec<i32>>())
        .bind::<Array<Nullable<Text>>, _>(column(refs, |r| r.target_type.clone()))
        .bind::<Array<Nullable<Text>>, _>(column(refs, |r| r.target_id.clone()))
        .bind::<Array<Nullable<Text>>, _>(column(refs, |r| r.url.clone()))
        .bind::<Array<Integer>, _>(uris.iter().map(|u| u.key).collect::<Vec<i32>>())
        .bind::<Array<Text>, _>(column(uris, |u| u.uri.clone()))
}

fn column<R, T>(rows: &[R], f: impl Fn(&R) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}
