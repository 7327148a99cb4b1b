use std::time::Duration;

use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use parking_lot::{MappedMutexGuard, Mutex, MutexGuard};

use fhir_profiles::search::query::{SearchRequest, Visibility};

use crate::search::{self, SearchPage};
use crate::tx::{self, HistoryPage, StoredVersion, Tx};
use crate::{pending_migrations, run_migrations, StoreError};

/// Sizing of the connection pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub max_size: u32,
    pub connection_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_size: 16,
            connection_timeout: Duration::from_secs(10),
        }
    }
}

type PgPool = Pool<ConnectionManager<PgConnection>>;
type Pooled = PooledConnection<ConnectionManager<PgConnection>>;

/// A connection to run statements on: the visit's own ([`PgStore::for_visit`])
/// or, outside a visit or while the visit's is in use further up the stack,
/// one checked out of the pool for this call.
pub(crate) enum Conn<'a> {
    Pooled(Pooled),
    Visit(MappedMutexGuard<'a, Pooled>),
}

impl std::ops::Deref for Conn<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match self {
            Conn::Pooled(conn) => conn,
            Conn::Visit(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Conn::Pooled(conn) => conn,
            Conn::Visit(conn) => conn,
        }
    }
}

/// Settings every pooled session gets.
///
/// `plan_cache_mode = force_generic_plan`: searches run as prepared statements of a few
/// shapes whose structure (which index drives, which are probed per candidate) the
/// adapter fixes itself, so a plan made once per connection serves every value. Left to
/// choose, PostgreSQL kept re-planning each execution, and planning cost more than
/// running a typical patient-scoped search (2,300 against 5,000 searches/s).
///
/// No sequential scans: every statement of this adapter is an index lookup or probe (the
/// searches are written so their order is fixed), and a generic plan made while a table
/// was small or not yet analysed must not keep scanning it once it has grown.
///
/// No JIT compilation: a generic plan over a large table is costed past `jit_above_cost`
/// (its `LIMIT $n` unknown), and PostgreSQL then compiles it at every execution: some
/// 40 ms for statements that run in one or a few. `audit verify`'s batches of 4,000
/// leaves took 125-165 ms with it and 40-47 ms without, on a 3,000,000-leaf log.
pub(crate) const SESSION_SETTINGS: &str =
    "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; SET jit = off";

/// The start-up lock's key: `hashtextextended` of this text, seed 0 (the
/// other advisory locks of the schema use other texts or constants).
const STARTUP_LOCK_KEY: &str = "fhirledger start-up";

/// The start-up lock of [`PgStore::startup_lock`]; released when dropped
/// (its connection closes).
pub struct StartupLock {
    _conn: PgConnection,
}

#[derive(Debug)]
struct SessionSettings;

impl diesel::r2d2::CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        use diesel::connection::SimpleConnection;
        conn.batch_execute(SESSION_SETTINGS)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// The resource store. Cheap to clone; every method blocks the calling
/// thread, so async callers run them on a blocking thread pool.
pub struct PgStore {
    pool: PgPool,
    /// Where the pool connects, for connections kept outside it
    /// ([`crate::AuditAppender`]).
    url: String,
    /// The log's upper nodes proofs have read (they never change), shared by
    /// the clones.
    node_cache: std::sync::Arc<crate::ledger::NodeCache>,
    /// The connection of one visit ([`PgStore::for_visit`]): checked out at
    /// its first statement, back to the pool when the visit's store drops.
    visit: Option<Mutex<Option<Pooled>>>,
}

/// A clone is a store of its own: it never shares the visit's connection, so
/// a clone kept beyond the visit cannot hold it.
impl Clone for PgStore {
    fn clone(&self) -> Self {
        PgStore {
            pool: self.pool.clone(),
            url: self.url.clone(),
            node_cache: self.node_cache.clone(),
            visit: None,
        }
    }
}

/// How often a transaction that lost a serialization race is retried.
const MAX_ATTEMPTS: usize = 5;

impl PgStore {
    /// Opens a pool to `url` and checks that a connection can be made.
    pub fn connect(url: &str, config: &PoolConfig) -> Result<Self, StoreError> {
        let manager = ConnectionManager::<PgConnection>::new(url);
        let pool = Pool::builder()
            .max_size(config.max_size)
            .connection_timeout(config.connection_timeout)
            .connection_customizer(Box::new(SessionSettings))
            .build(manager)
            .map_err(|e| StoreError::Cluster(format!("cannot open the pool: {e}")))?;
        Ok(PgStore {
            pool,
            url: url.to_string(),
            node_cache: std::sync::Arc::new(crate::ledger::NodeCache::new()),
            visit: None,
        })
    }

    /// The store for one visit: the several calls of one page or request
    /// share one pooled connection. A checkout costs a validation round trip
    /// (`SELECT 1`: a failed-over server must not hand out dead
    /// connections), and a patient's dashboard, which makes four calls, paid
    /// it four times.
    pub fn for_visit(&self) -> PgStore {
        PgStore {
            visit: Some(Mutex::new(None)),
            ..self.clone()
        }
    }

    /// A writer of reads' audit events on a connection of its own (see
    /// [`crate::AuditAppender`]), to the same database, whose statements
    /// give up after `statement_timeout` (then the connection is replaced):
    /// a stalled append fails its batch instead of holding the writer, and
    /// every read after it, forever.
    pub fn audit_appender(&self, statement_timeout: Duration) -> crate::AuditAppender {
        crate::AuditAppender::new(&self.url, statement_timeout)
    }

    pub(crate) fn node_cache(&self) -> &crate::ledger::NodeCache {
        &self.node_cache
    }

    /// A connection for one call: the visit's when there is one and no call
    /// further up the stack is using it (a call within a call then gets one
    /// of its own from the pool rather than waiting for itself).
    pub(crate) fn conn(&self) -> Result<Conn<'_>, StoreError> {
        if let Some(mut slot) = self.visit.as_ref().and_then(Mutex::try_lock) {
            if slot.is_none() {
                *slot = Some(self.pool.get()?);
            }
            if let Ok(conn) = MutexGuard::try_map(slot, Option::as_mut) {
                return Ok(Conn::Visit(conn));
            }
        }
        Ok(Conn::Pooled(self.pool.get()?))
    }

    /// What a readiness probe asks of the database: a pooled connection
    /// within `timeout` (checked out, so validated), and the migrations this
    /// build carries that the database lacks. A probe never waits longer
    /// than `timeout` for a connection, even when the pool is busy: a
    /// replica whose pool cannot hand one out in time is not ready.
    pub fn probe(&self, timeout: Duration) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool.get_timeout(timeout)?;
        pending_migrations(&mut conn)
    }

    /// Holds the database's start-up lock until dropped: the work a server
    /// does before it serves (migrations, a search index rebuild after new
    /// indexing rules, rewriting Consent rules) runs in one process at a
    /// time. Replicas started together on a new database would otherwise
    /// each apply the same migration, and all but one fail on the tables
    /// the first created; after an upgrade each would rebuild the index.
    /// The lock is a session advisory lock on a connection of its own
    /// (never returned to the pool with the lock held); a process that dies
    /// holding it releases it with its connection.
    pub fn startup_lock(&self) -> Result<StartupLock, StoreError> {
        use diesel::connection::SimpleConnection;
        let mut conn = PgConnection::establish(&self.url)
            .map_err(|e| StoreError::Cluster(format!("cannot connect: {e}")))?;
        #[derive(QueryableByName)]
        struct Locked {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            locked: bool,
        }
        let first: Locked = diesel::sql_query(format!(
            "SELECT pg_try_advisory_lock(hashtextextended('{STARTUP_LOCK_KEY}', 0)) AS locked"
        ))
        .get_result(&mut conn)?;
        if !first.locked {
            tracing::info!("another server process is starting on this database: waiting for it");
            conn.batch_execute(&format!(
                "SELECT pg_advisory_lock(hashtextextended('{STARTUP_LOCK_KEY}', 0))"
            ))?;
        }
        Ok(StartupLock { _conn: conn })
    }

    /// Applies pending migrations.
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        run_migrations(&mut *self.conn()?)
    }

    /// The newest version of a resource (a delete marker when it was deleted).
    pub fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredVersion>, StoreError> {
        tx::read_current(&mut *self.conn()?, resource_type, id)
    }

    /// One specific version of a resource.
    pub fn vread(
        &self,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> Result<Option<StoredVersion>, StoreError> {
        tx::read_version(&mut *self.conn()?, resource_type, id, version_id)
    }

    /// A page of history, newest first. `resource_type`/`id` narrow it to a
    /// type or an instance; `before_seq` is the cursor of the previous page.
    pub fn history(
        &self,
        resource_type: Option<&str>,
        id: Option<&str>,
        since: Option<chrono::DateTime<chrono::Utc>>,
        before_seq: Option<i64>,
        count: i64,
    ) -> Result<HistoryPage, StoreError> {
        tx::history(
            &mut *self.conn()?,
            resource_type,
            id,
            since,
            before_seq,
            count,
        )
    }

    /// One page of a search limited to `visibility`, with its includes and the total
    /// asked for.
    pub fn search(
        &self,
        request: &SearchRequest,
        visibility: &Visibility,
    ) -> Result<SearchPage, StoreError> {
        search::search(&mut *self.conn()?, request, visibility)
    }

    /// The PostgreSQL plan, with actual timings, of the statement fetching a search's page.
    pub fn explain_search(&self, request: &SearchRequest) -> Result<String, StoreError> {
        search::explain(&mut *self.conn()?, request)
    }

    /// Runs `work`, which only reads, on one connection. With `snapshot`, in one
    /// `READ ONLY` transaction at `REPEATABLE READ`, so that its several statements (a
    /// visibility check and the read it allows) see the same state of the database;
    /// without, each statement is its own snapshot, which is enough for a single one and
    /// saves the round trips of `BEGIN` and `COMMIT`.
    pub fn reading<T, E, F>(&self, snapshot: bool, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
        E: From<StoreError>,
    {
        let mut conn = self.conn().map_err(E::from)?;
        if !snapshot {
            return work(&mut Tx::new(&mut conn));
        }
        let mut outcome: Option<Result<T, E>> = None;
        let result = conn
            .build_transaction()
            .read_only()
            .repeatable_read()
            .run::<(), diesel::result::Error, _>(|c| {
                outcome = Some(work(&mut Tx::new(c)));
                Ok(())
            });
        match (result, outcome) {
            (Ok(()), Some(outcome)) => outcome,
            (Err(e), _) => Err(E::from(StoreError::Database(e))),
            (Ok(()), None) => Err(E::from(StoreError::Internal(
                "a read produced no outcome".into(),
            ))),
        }
    }

    /// Runs `work` in one database transaction: everything it writes commits
    /// together or not at all. A transaction that loses a serialization race
    /// with a concurrent writer is retried from the start.
    pub fn transaction<T, E, F>(&self, mut work: F) -> Result<T, E>
    where
        F: FnMut(&mut Tx<'_>) -> Result<T, E>,
        E: From<StoreError>,
    {
        let mut conn = self.conn().map_err(E::from)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut outcome: Option<Result<T, E>> = None;
            let result = conn.transaction::<(), TxAbort, _>(|c| {
                let mut tx = Tx::new(c);
                match work(&mut tx) {
                    Ok(value) => {
                        outcome = Some(Ok(value));
                        Ok(())
                    }
                    Err(e) => {
                        outcome = Some(Err(e));
                        Err(TxAbort::Work)
                    }
                }
            });
            match result {
                Ok(()) | Err(TxAbort::Work) => {
                    return outcome.unwrap_or_else(|| {
                        Err(E::from(StoreError::Internal(
                            "transaction produced no outcome".into(),
                        )))
                    })
                }
                Err(TxAbort::Db(e)) => {
                    let err = StoreError::Database(e);
                    if err.is_retryable() && attempt < MAX_ATTEMPTS {
                        tracing::debug!(
                            attempt,
                            "retrying a transaction after a serialization failure"
                        );
                        continue;
                    }
                    return Err(E::from(err));
                }
            }
        }
    }
}

/// Why a diesel transaction closure stopped: the caller's work failed (its
/// error is kept aside) or the database failed (commit, for example).
enum TxAbort {
    Work,
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for TxAbort {
    fn from(e: diesel::result::Error) -> Self {
        TxAbort::Db(e)
    }
}
