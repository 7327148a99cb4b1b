//! Rebuilding the search index of every live resource, for when the rules that extract index
//! values change (a new server version) or the index tables are new.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::PgConnection;
use fhir_profiles::search::IndexRows;

use crate::index::{bind_index_rows, index_ctes};
use crate::prepared::PreparedSql;
use crate::{PgStore, StoreError};

/// Resources rebuilt per transaction.
const BATCH: i64 = 500;

#[derive(QueryableByName)]
struct LiveRow {
    #[diesel(sql_type = BigInt)]
    res_id: i64,
    #[diesel(sql_type = Text)]
    resource_type: String,
    #[diesel(sql_type = Text)]
    content: String,
}

#[derive(QueryableByName)]
struct Generation {
    #[diesel(sql_type = Text)]
    generation: String,
}

impl PgStore {
    /// The index generation recorded by the last complete rebuild (or first start).
    pub fn index_generation(&self) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn()?;
        Ok(
            diesel::sql_query("SELECT generation FROM search_index_state")
                .get_result::<Generation>(&mut *conn)
                .optional()?
                .map(|g| g.generation),
        )
    }

    /// Rebuilds the index rows of every live resource with `extract` (given the type and
    /// stored JSON), in batches that each commit on their own, then records `generation`.
    /// Writes that run meanwhile index themselves, so the result is complete. Returns the
    /// number of resources rebuilt; `progress` hears the running count after each batch.
    pub fn reindex(
        &self,
        generation: &str,
        extract: impl Fn(&str, &str) -> IndexRows,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn()?;
        let mut after = 0i64;
        let mut done = 0u64;
        loop {
            let rows = conn.transaction::<_, StoreError, _>(|c| {
                let rows = live_batch(c, after)?;
                for row in &rows {
                    let index = extract(&row.resource_type, &row.content);
                    replace_rows(c, row.res_id, &index)?;
                }
                Ok(rows)
            })?;
            let Some(last) = rows.last() else { break };
            after = last.res_id;
            done += rows.len() as u64;
            progress(done);
        }
        diesel::sql_query(
            "INSERT INTO search_index_state (generation) VALUES ($1) \
             ON CONFLICT (singleton) DO UPDATE SET generation = EXCLUDED.generation",
        )
        .bind::<Text, _>(generation)
        .execute(&mut *conn)?;
        Ok(done)
    }
}

/// The next live resources after row key `after`, with their current content.
fn live_batch(conn: &mut PgConnection, after: i64) -> Result<Vec<LiveRow>, StoreError> {
    Ok(diesel::sql_query(
        "SELECT r.res_id, r.resource_type, v.content FROM resources r \
         JOIN resource_versions v ON v.resource_type = r.resource_type AND v.id = r.id \
              AND v.version_id = r.version_id \
         WHERE r.res_id > $1 AND NOT r.deleted AND v.content IS NOT NULL \
         ORDER BY r.res_id LIMIT $2 FOR UPDATE OF r",
    )
    .bind::<BigInt, _>(after)
    .bind::<BigInt, _>(BATCH)
    .load::<LiveRow>(conn)?)
}

fn replace_rows(conn: &mut PgConnection, res_id: i64, index: &IndexRows) -> Result<(), StoreError> {
    let sql = format!("WITH {} SELECT 1", index_ctes("2", "$1", 2));
    let query = PreparedSql::new(sql).bind::<BigInt, _>(res_id);
    bind_index_rows(query, &[(res_id, index)]).execute(conn)?;
    Ok(())
}
