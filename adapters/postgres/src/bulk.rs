//! Creating many resources in one transaction with a constant number of statements: one
//! multi-row insert each for the resource rows, the versions and every index table. A
//! transaction Bundle of a thousand documents then costs a handful of round trips instead
//! of thousands.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text, Timestamptz};
use fhir_profiles::search::IndexRows;

use crate::index::{bind_index_rows, insert_ctes};
use crate::prepared::PreparedSql;
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
        let stored: Vec<StoredVersion> = resources
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
            .collect();
        crate::ledger::log_versions(self.conn, &stored)?;
        Ok(stored)
    }
}

/// Every index row of every new resource, one multi-row insert per table in one statement.
fn insert_index_rows(
    tx: &mut Tx<'_>,
    resources: &[NewResource<'_>],
    res_ids: &[i64],
) -> Result<(), StoreError> {
    let rows: Vec<(i64, &IndexRows)> = res_ids
        .iter()
        .zip(resources)
        .map(|(&res_id, r)| (res_id, r.index))
        .collect();
    let query = PreparedSql::new(format!("WITH {} SELECT 1", insert_ctes(1)));
    bind_index_rows(query, &rows).execute(tx.conn)?;
    Ok(())
}
