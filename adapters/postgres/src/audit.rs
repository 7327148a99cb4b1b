//! The audit trail's table (`audit_events`, see its migration): events are
//! appended — in a write's own transaction, or many reads' at once — and
//! never changed. What an event says and what it is searched by are decided
//! above this layer (`fhirledger-audit`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;

use fhir_profiles::search::query::Criterion;

use crate::search::{Bind, Sql};
use crate::tx::Tx;
use crate::StoreError;

/// One AuditEvent as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: String,
    pub recorded: DateTime<Utc>,
    /// The one patient the event is about (`fhirledger_audit::subject`).
    pub patient_id: Option<String>,
    /// `param=value` search terms (`fhirledger_audit::index`).
    pub terms: Vec<String>,
    /// Sent by a backend client rather than recorded by this server.
    pub client_recorded: bool,
    /// The AuditEvent's JSON, exactly as reads return it.
    pub content: String,
}

/// One statement for any number of events: the arrays are unnested in
/// order, so events get increasing `seq` in the order given. Every event's
/// terms travel in one flat array, each event taking its slice
/// (`first`..`last`), so nothing is parsed on the way in; the statement
/// is kept prepared per connection (one shape for every batch).
const APPEND: &str = "INSERT INTO audit_events \
     (id, recorded, patient_id, terms, client_recorded, content) \
     SELECT e.id, e.recorded, e.patient_id, ($4::text[])[e.first:e.last], e.client_recorded, e.content \
     FROM unnest($1::text[], $2::timestamptz[], $3::text[], $5::int[], $6::int[], \
                 $7::bool[], $8::text[]) \
          WITH ORDINALITY AS e(id, recorded, patient_id, first, last, client_recorded, content, n) \
     ORDER BY e.n";

fn append(conn: &mut PgConnection, rows: &[AuditRow]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut terms = Vec::with_capacity(rows.len() * 32);
    let (mut first, mut last) = (
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
    );
    for r in rows {
        first.push(terms.len() as i32 + 1);
        terms.extend(r.terms.iter().cloned());
        last.push(terms.len() as i32);
    }
    let mut sql = Sql::default();
    sql.bind(Bind::Texts(rows.iter().map(|r| r.id.clone()).collect()));
    sql.bind(Bind::Instants(rows.iter().map(|r| r.recorded).collect()));
    sql.bind(Bind::OptionalTexts(
        rows.iter().map(|r| r.patient_id.clone()).collect(),
    ));
    sql.bind(Bind::Texts(terms));
    sql.bind(Bind::Ints(first));
    sql.bind(Bind::Ints(last));
    sql.bind(Bind::Bools(
        rows.iter().map(|r| r.client_recorded).collect(),
    ));
    sql.bind(Bind::Texts(
        rows.iter().map(|r| r.content.clone()).collect(),
    ));
    sql.push(APPEND);
    sql.query().execute(conn)?;
    Ok(())
}

/// Events fetched per statement by [`crate::PgStore::each_audit_event`].
const EXPORT_BATCH: usize = 1000;

#[derive(QueryableByName)]
struct Content {
    #[diesel(sql_type = Text)]
    content: String,
}

impl Tx<'_> {
    /// Appends events in this transaction: they commit with it, or not at all.
    pub fn append_audit_events(&mut self, rows: &[AuditRow]) -> Result<(), StoreError> {
        append(self.conn, rows)
    }
}

impl crate::PgStore {
    /// Appends events in one statement of their own: durable when this
    /// returns (the group commit of reads' events).
    pub fn append_audit_events(&self, rows: &[AuditRow]) -> Result<(), StoreError> {
        append(&mut *self.conn()?, rows)
    }

    /// The stored JSON of every event carrying the search term `term`
    /// (`param=value`, see `fhirledger_audit::terms`), oldest first.
    pub fn audit_events_with(&self, term: &str) -> Result<Vec<String>, StoreError> {
        Ok(diesel::sql_query(
            "SELECT content FROM audit_events WHERE terms @> ARRAY[$1]::text[] ORDER BY seq",
        )
        .bind::<Text, _>(term)
        .load::<Content>(&mut *self.conn()?)?
        .into_iter()
        .map(|c| c.content)
        .collect())
    }

    /// How many events meet `criteria` (AuditEvent search criteria).
    pub fn count_audit_events(&self, criteria: &[Criterion]) -> Result<u64, StoreError> {
        self.reading(true, |tx| {
            crate::search::audit::count_matching(tx.conn, criteria)
        })
    }

    /// Hands the stored JSON of every event meeting `criteria` to `each`,
    /// oldest first, from one snapshot, a batch at a time: constant memory
    /// for any size of trail. Returns how many.
    pub fn each_audit_event(
        &self,
        criteria: &[Criterion],
        mut each: impl FnMut(&str) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        self.reading(true, |tx| {
            crate::search::audit::each_matching(tx.conn, criteria, EXPORT_BATCH, &mut each)
        })
    }

    /// The stored JSON of event `id`.
    pub fn audit_event(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            diesel::sql_query("SELECT content FROM audit_events WHERE id = $1")
                .bind::<Text, _>(id)
                .get_result::<Content>(&mut *self.conn()?)
                .optional()?
                .map(|c| c.content),
        )
    }
}
