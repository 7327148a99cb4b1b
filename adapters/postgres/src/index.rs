//! Writing search-index rows, of one version or of many new resources. The rows travel as
//! one array per column and are expanded with `unnest` inside the statement that inserts
//! the version(s), so a write costs one round trip however many values it is found by.

use std::borrow::Cow;

use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz};
use fhir_profiles::search::record_sort::record_dates;
use fhir_profiles::search::IndexRows;

use crate::prepared::PreparedSql;

/// CTEs that replace the index rows of the resource whose row key is `$7` (its new
/// version is `$3`; version 1 has no old rows to delete) with the arrays bound from `$8`
/// on by [`bind_index_rows`].
pub(crate) fn index_write_ctes() -> String {
    index_ctes("$3", "$7", 8)
}

/// The same CTEs with the version at `version`, the row key at `res_id` and the arrays
/// bound from parameter number `first_array` on.
pub(crate) fn index_ctes(version: &str, res_id: &str, first_array: usize) -> String {
    let deletes: Vec<String> = ["token", "string", "date", "reference", "uri", "record_date"]
        .iter()
        .map(|table| {
            format!(
                "old_{table}s AS (DELETE FROM search_{table} WHERE {version} > 1 AND res_id = {res_id})"
            )
        })
        .collect();
    format!("{}, {}", deletes.join(", "), insert_ctes(first_array))
}

/// CTEs inserting the rows bound by [`bind_index_rows`] from parameter number
/// `first_array` on, each row with its own row key, so one statement serves one version
/// or a thousand.
pub(crate) fn insert_ctes(first_array: usize) -> String {
    let a = |i: usize| format!("${}", first_array + i);
    format!(
        "new_tokens AS (INSERT INTO search_token (res_id, key, system, code, text) \
             SELECT * FROM unnest({}::int8[], {}::int4[], {}::text[], {}::text[], {}::text[])), \
         new_strings AS (INSERT INTO search_string (res_id, key, normalized, exact) \
             SELECT * FROM unnest({}::int8[], {}::int4[], {}::text[], {}::text[])), \
         new_dates AS (INSERT INTO search_date (res_id, key, low, high) \
             SELECT * FROM unnest({}::int8[], {}::int4[], {}::timestamptz[], {}::timestamptz[])), \
         new_references AS (INSERT INTO search_reference (res_id, key, target_type, target_id, url) \
             SELECT * FROM unnest({}::int8[], {}::int4[], {}::text[], {}::text[], {}::text[])), \
         new_uris AS (INSERT INTO search_uri (res_id, key, uri) \
             SELECT * FROM unnest({}::int8[], {}::int4[], {}::text[])), \
         new_record_dates AS (INSERT INTO search_record_date \
             (res_id, reference_key, target_type, target_id, date_key, low, high) \
             SELECT * FROM unnest({}::int8[], {}::int4[], {}::text[], {}::text[], {}::int4[], \
                                  {}::timestamptz[], {}::timestamptz[]))",
        a(0), a(1), a(2), a(3), a(4),
        a(5), a(6), a(7), a(8),
        a(9), a(10), a(11), a(12),
        a(13), a(14), a(15), a(16), a(17),
        a(18), a(19), a(20),
        a(21), a(22), a(23), a(24), a(25), a(26), a(27)
    )
}

/// Binds the 28 column arrays of [`insert_ctes`], in order, for the index rows of each
/// resource (given by its row key).
pub(crate) fn bind_index_rows(query: PreparedSql, resources: &[(i64, &IndexRows)]) -> PreparedSql {
    let mut t = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut s = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut d = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut r = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut u = (Vec::new(), Vec::new(), Vec::new());
    let mut o = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for &(res_id, index) in resources {
        for row in &index.tokens {
            t.0.push(res_id);
            t.1.push(row.key);
            t.2.push(pg_opt(&row.system));
            t.3.push(pg_opt(&row.code));
            t.4.push(pg_opt(&row.text));
        }
        for row in &index.strings {
            s.0.push(res_id);
            s.1.push(row.key);
            s.2.push(pg_text(&row.normalized));
            s.3.push(pg_text(&row.exact));
        }
        for row in &index.dates {
            d.0.push(res_id);
            d.1.push(row.key);
            d.2.push(row.low);
            d.3.push(row.high);
        }
        for row in &index.references {
            r.0.push(res_id);
            r.1.push(row.key);
            r.2.push(pg_opt(&row.target_type));
            r.3.push(pg_opt(&row.target_id));
            r.4.push(pg_opt(&row.url));
        }
        for row in &index.uris {
            u.0.push(res_id);
            u.1.push(row.key);
            u.2.push(pg_text(&row.uri));
        }
        for row in record_dates(index) {
            o.0.push(res_id);
            o.1.push(row.reference_key);
            o.2.push(pg_text(&row.target_type));
            o.3.push(pg_text(&row.target_id));
            o.4.push(row.date_key);
            o.5.push(row.low);
            o.6.push(row.high);
        }
    }
    query
        .bind::<Array<BigInt>, _>(t.0)
        .bind::<Array<Integer>, _>(t.1)
        .bind::<Array<Nullable<Text>>, _>(t.2)
        .bind::<Array<Nullable<Text>>, _>(t.3)
        .bind::<Array<Nullable<Text>>, _>(t.4)
        .bind::<Array<BigInt>, _>(s.0)
        .bind::<Array<Integer>, _>(s.1)
        .bind::<Array<Text>, _>(s.2)
        .bind::<Array<Text>, _>(s.3)
        .bind::<Array<BigInt>, _>(d.0)
        .bind::<Array<Integer>, _>(d.1)
        .bind::<Array<Timestamptz>, _>(d.2)
        .bind::<Array<Timestamptz>, _>(d.3)
        .bind::<Array<BigInt>, _>(r.0)
        .bind::<Array<Integer>, _>(r.1)
        .bind::<Array<Nullable<Text>>, _>(r.2)
        .bind::<Array<Nullable<Text>>, _>(r.3)
        .bind::<Array<Nullable<Text>>, _>(r.4)
        .bind::<Array<BigInt>, _>(u.0)
        .bind::<Array<Integer>, _>(u.1)
        .bind::<Array<Text>, _>(u.2)
        .bind::<Array<BigInt>, _>(o.0)
        .bind::<Array<Integer>, _>(o.1)
        .bind::<Array<Text>, _>(o.2)
        .bind::<Array<Text>, _>(o.3)
        .bind::<Array<Integer>, _>(o.4)
        .bind::<Array<Nullable<Timestamptz>>, _>(o.5)
        .bind::<Array<Nullable<Timestamptz>>, _>(o.6)
}

/// PostgreSQL text cannot hold NUL characters (FHIR strings may); they are dropped from
/// index values and from the search values compared with them alike.
pub(crate) fn pg_text(s: &str) -> String {
    without_nul(s).into_owned()
}

/// [`pg_text`], borrowing `s` when it holds no NUL (most values).
pub(crate) fn without_nul(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', ""))
    } else {
        Cow::Borrowed(s)
    }
}

pub(crate) fn pg_opt(s: &Option<String>) -> Option<String> {
    s.as_deref().map(pg_text)
}
