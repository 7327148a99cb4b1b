//! The audit trail's table (`audit_events`, see its migration): events are
//! appended — in a write's own transaction, or many reads' at once — and
//! never changed. What an event says and what it is searched by are decided
//! above this layer (`fhirledger-audit`).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;

use fhir_profiles::search::query::Criterion;

use crate::index::without_nul;
use crate::tx::Tx;
use crate::StoreError;

/// One AuditEvent as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: String,
    pub recorded: DateTime<Utc>,
    /// The one patient the event is about (`fhirledger_audit::subject`).
    pub patient_id: Option<String>,
    /// `param=value` search terms (`fhirledger_audit::index`); stored in
    /// `terms` or `codes` by their parameter ([`CODE_PARAMS`]).
    pub terms: Vec<String>,
    /// Sent by a backend client rather than recorded by this server.
    pub client_recorded: bool,
    /// The AuditEvent's JSON, exactly as reads return it.
    pub content: String,
}

/// The search parameters kept in the unindexed `codes` column rather than
/// the GIN-indexed `terms` (see the `audit_codes` migration): coded facts
/// of which each value is shared by a large share of the trail, so a scan
/// by date finds them as fast as an index would, and indexing them cost
/// two thirds of every append's index work.
pub(crate) const CODE_PARAMS: &[&str] = &[
    "type",
    "subtype",
    "action",
    "outcome",
    "agent-role",
    "entity-role",
    "entity-type",
    "site",
    "source",
];

/// Whether values of search parameter `param` (its name, or
/// `name:identifier`) are stored in `codes`.
pub(crate) fn is_code_param(param: &str) -> bool {
    let name = param.split(':').next().unwrap_or(param);
    CODE_PARAMS.contains(&name)
}

/// The parameter of a `param=value` term.
fn param_of(term: &str) -> &str {
    term.split('=').next().unwrap_or(term)
}

/// One event as `COPY` sends it.
#[derive(Insertable)]
#[diesel(table_name = crate::schema::audit_events, treat_none_as_default_value = false)]
struct NewEvent<'a> {
    id: &'a str,
    recorded: DateTime<Utc>,
    patient_id: Option<&'a str>,
    terms: &'a [&'a str],
    codes: &'a [&'a str],
    client_recorded: bool,
    content: &'a str,
}

/// Any number of events in one binary `COPY`, in the order given (so they
/// get increasing `seq`), with their pending Merkle log leaves: PostgreSQL's bulk path, which fills heap pages
/// several rows at a time and skips the executor an `INSERT` of the same
/// rows goes through. Each event's terms go to `terms` or `codes` by their
/// parameter.
fn append(conn: &mut PgConnection, rows: &[AuditRow]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    // PostgreSQL text cannot hold NUL (a value a client sent may): dropped,
    // as from every other indexed value.
    let clean: Vec<Vec<Cow<'_, str>>> = rows
        .iter()
        .map(|r| r.terms.iter().map(|t| without_nul(t)).collect())
        .collect();
    let split: Vec<(Vec<&str>, Vec<&str>)> = clean
        .iter()
        .map(|terms| {
            terms
                .iter()
                .map(|t| t.as_ref())
                .partition(|t| !is_code_param(param_of(t)))
        })
        .collect();
    let patients: Vec<Option<Cow<'_, str>>> = rows
        .iter()
        .map(|r| r.patient_id.as_deref().map(without_nul))
        .collect();
    let events: Vec<NewEvent<'_>> = rows
        .iter()
        .zip(&split)
        .zip(&patients)
        .map(|((r, (terms, codes)), patient)| NewEvent {
            id: &r.id,
            recorded: r.recorded,
            patient_id: patient.as_deref(),
            terms,
            codes,
            client_recorded: r.client_recorded,
            content: &r.content,
        })
        .collect();
    diesel::copy_from(crate::schema::audit_events::table)
        .from_insertable(events)
        .execute(conn)?;
    // Every event is a leaf of the Merkle log, pending in the same transaction.
    let leaves = rows
        .iter()
        .map(|r| crate::ledger::audit_leaf(&r.id, &r.content, r.recorded))
        .collect::<Result<Vec<_>, _>>()?;
    crate::ledger::add_pending(conn, &leaves)
}

/// [`append`] in a transaction of its own: the events and their pending
/// leaves commit together (two statements; one flush at the commit).
fn append_atomically(conn: &mut PgConnection, rows: &[AuditRow]) -> Result<(), StoreError> {
    conn.transaction(|conn| append(conn, rows))
}

/// Events fetched per statement by [`crate::PgStore::each_audit_event`].
const EXPORT_BATCH: usize = 1000;

#[derive(QueryableByName)]
struct Content {
    #[diesel(sql_type = Text)]
    content: String,
}

/// Appends batches of reads' events on one connection of its own, outside
/// the pool: no check-out, no validation round trip per batch, the append
/// statement prepared once. After any failure the connection is dropped
/// (its state is unknown) and the next batch opens a fresh one; a batch
/// that found the connection closed (the database restarted or failed
/// over since the last batch) is tried once more on a fresh one.
pub struct AuditAppender {
    url: String,
    statement_timeout: std::time::Duration,
    conn: Option<PgConnection>,
}

impl AuditAppender {
    pub(crate) fn new(url: &str, statement_timeout: std::time::Duration) -> AuditAppender {
        AuditAppender {
            url: url.to_string(),
            statement_timeout,
            conn: None,
        }
    }

    /// Appends `rows` in one statement of its own: durable when this
    /// returns.
    pub fn append(&mut self, rows: &[AuditRow]) -> Result<(), StoreError> {
        let mut retried = false;
        loop {
            let conn = match &mut self.conn {
                Some(conn) => conn,
                None => self
                    .conn
                    .insert(connect(&self.url, self.statement_timeout)?),
            };
            match append_atomically(conn, rows) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.conn = None;
                    if retried || !connection_lost(&e) {
                        return Err(e);
                    }
                    retried = true;
                }
            }
        }
    }
}

fn connect(url: &str, statement_timeout: std::time::Duration) -> Result<PgConnection, StoreError> {
    use diesel::connection::SimpleConnection;
    let mut conn = PgConnection::establish(url)?;
    conn.batch_execute(crate::store::SESSION_SETTINGS)?;
    conn.batch_execute(&format!(
        "SET statement_timeout = {}",
        statement_timeout.as_millis().max(1)
    ))?;
    // Named for operators: `pg_stat_activity` shows which session is the trail's writer.
    conn.batch_execute("SET application_name = 'fhirledger audit writer'")?;
    Ok(conn)
}

/// Whether `e` says the connection was gone before the statement ran.
fn connection_lost(e: &StoreError) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(
        e,
        StoreError::Database(Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _))
    )
}

impl Tx<'_> {
    /// Appends events in this transaction: they commit with it, or not at all.
    pub fn append_audit_events(&mut self, rows: &[AuditRow]) -> Result<(), StoreError> {
        append(self.conn, rows)
    }
}

impl crate::PgStore {
    /// Appends events in one statement of their own: durable when this
    /// returns (the server's own commands; reads' events go through an
    /// [`AuditAppender`]).
    pub fn append_audit_events(&self, rows: &[AuditRow]) -> Result<(), StoreError> {
        append_atomically(&mut *self.conn()?, rows)
    }

    /// Moves the search terms of events appended since the last call from
    /// the index's pending list into the index proper (`gin_clean_pending_list`),
    /// and says how many pending pages that took. Appends only list their
    /// terms (`fastupdate`, migration `audit_terms_merged_in_background`);
    /// merged here in sorted batches, the terms every event shares cost one
    /// index descent per batch instead of one per event.
    pub fn merge_audit_terms(&self) -> Result<i64, StoreError> {
        #[derive(QueryableByName)]
        struct Merged {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            pages: i64,
        }
        Ok(diesel::sql_query(
            "SELECT gin_clean_pending_list('audit_events_by_term'::regclass) AS pages",
        )
        .get_result::<Merged>(&mut *self.conn()?)?
        .pages)
    }

    /// The stored JSON of every event carrying the search term `term`
    /// (`param=value`, see `fhirledger_audit::terms`), oldest first.
    pub fn audit_events_with(&self, term: &str) -> Result<Vec<String>, StoreError> {
        Ok(diesel::sql_query(
            "SELECT content FROM audit_events \
             WHERE terms @> ARRAY[$1]::text[] OR codes @> ARRAY[$1]::text[] ORDER BY seq",
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
