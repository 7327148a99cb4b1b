//! Creating many resources in one transaction with a constant number of statements: one
//! multi-row insert each for the resource rows, the versions and every index table. A
//! transaction Bundle of a thousand documents then costs a handful of round trips instead
//! of thousands.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz};
use fhir_profiles::search::IndexRows;

use crate::index::{pg_opt, pg_text};
use crate::tx::{now, Method, StoredVersion, Tx};
use crate::StoreError;

/// A resource to create with a fresh id.
#[derive(Debug, Clone)]
pub struct NewResource<'a> {
    pub resource_type: &'a str,
    pub id: &'a str,
    pub index: &'a IndexRows,
}

/// The row key and version sequence number of one new resource.
struct Inserted {
    res_id: i64,
    seq: i64,
}

#[derive(QueryableByName)]
struct Returned {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    is_row: bool,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Text)]
    resource_type: String,
    #[diesel(sql_type = Text)]
    id: String,
}

impl Tx<'_> {
    /// Creates version 1 of each resource; `render(i, ts)` returns the JSON of the `i`-th
    /// (all share one timestamp). Fails without writing anything visible (the caller's
    /// transaction rolls back) if any id is taken.
    pub fn create_many(
        &mut self,
        resources: &[NewResource<'_>],
        render: impl Fn(usize, DateTime<Utc>) -> String,
    ) -> Result<Vec<StoredVersion>, StoreError> {
        if resources.is_empty() {
            return Ok(Vec::new());
        }
        let ts = now();
        let types: Vec<&str> = resources.iter().map(|r| r.resource_type).collect();
        let ids: Vec<&str> = resources.iter().map(|r| r.id).collect();
        let contents: Vec<String> = (0..resources.len()).map(|i| render(i, ts)).collect();
        // Rows and versions in one statement; each CTE returns its keys by id, matched up
        // here (a join of the two in SQL was planned as a nested loop over both).
        let returned = diesel::sql_query(
            "WITH input AS ( \
                 SELECT t, i, c FROM unnest($1::text[], $2::text[], $3::text[]) AS u(t, i, c)), \
             rows AS ( \
                 INSERT INTO resources (resource_type, id, version_id, last_updated, deleted) \
                 SELECT t, i, 1, $4, FALSE FROM input \
                 RETURNING res_id, resource_type, id), \
             versions AS ( \
                 INSERT INTO resource_versions (resource_type, id, version_id, last_updated, method, content) \
                 SELECT t, i, 1, $4, 'POST', c FROM input \
                 RETURNING seq, resource_type, id) \
             SELECT TRUE AS is_row, res_id AS n, resource_type, id FROM rows \
             UNION ALL SELECT FALSE, seq, resource_type, id FROM versions",
        )
        .bind::<Array<Text>, _>(&types)
        .bind::<Array<Text>, _>(&ids)
        .bind::<Array<Text>, _>(&contents)
        .bind::<Timestamptz, _>(ts)
        .load::<Returned>(self.conn)?;
        let mut keys: HashMap<(String, String), (Option<i64>, Option<i64>)> = HashMap::new();
        for r in returned {
            let slot = keys.entry((r.resource_type, r.id)).or_default();
            if r.is_row {
                slot.0 = Some(r.n);
            } else {
                slot.1 = Some(r.n);
            }
        }
        let inserted: Vec<Inserted> = resources
            .iter()
            .filter_map(
                |r| match keys.get(&(r.resource_type.to_string(), r.id.to_string())) {
                    Some((Some(res_id), Some(seq))) => Some(Inserted {
                        res_id: *res_id,
                        seq: *seq,
                    }),
                    _ => None,
                },
            )
            .collect();
        let res_ids: Vec<i64> = inserted.iter().map(|r| r.res_id).collect();
        insert_index_rows(self, resources, &res_ids)?;
        Ok(resources
            .iter()
            .zip(inserted)
            .zip(contents)
            .map(|((r, row), content)| StoredVersion {
                seq: row.seq,
                resource_type: r.resource_type.to_string(),
                id: r.id.to_string(),
                version_id: 1,
                last_updated: ts,
                method: Method::Post,
                content: Some(content),
            })
            .collect())
    }
}

/// Every index row of every new resource, one multi-row insert per table in one statement.
fn insert_index_rows(
    tx: &mut Tx<'_>,
    resources: &[NewResource<'_>],
    res_ids: &[i64],
) -> Result<(), StoreError> {
    let mut t = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut s = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut d = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut r = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut u = (Vec::new(), Vec::new(), Vec::new());
    for (resource, &res_id) in resources.iter().zip(res_ids) {
        let index = resource.index;
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
    }
    diesel::sql_query(
        "WITH tokens AS (INSERT INTO search_token (res_id, key, system, code, text) \
             SELECT * FROM unnest($1::int8[], $2::int4[], $3::text[], $4::text[], $5::text[])), \
         strings AS (INSERT INTO search_string (res_id, key, normalized, exact) \
             SELECT * FROM unnest($6::int8[], $7::int4[], $8::text[], $9::text[])), \
         dates AS (INSERT INTO search_date (res_id, key, low, high) \
             SELECT * FROM unnest($10::int8[], $11::int4[], $12::timestamptz[], $13::timestamptz[])), \
         refs AS (INSERT INTO search_reference (res_id, key, target_type, target_id, url) \
             SELECT * FROM unnest($14::int8[], $15::int4[], $16::text[], $17::text[], $18::text[])) \
         INSERT INTO search_uri (res_id, key, uri) SELECT * FROM unnest($19::int8[], $20::int4[], $21::text[])",
    )
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
    .execute(tx.conn)?;
    Ok(())
}
