//! Reads and writes of versioned resources, usable inside one transaction.
//!
//! Concurrency control rests on the `resources` row of each logical
//! resource: an update or delete bumps its version with a single
//! `UPDATE ... RETURNING`, which row-locks it, so concurrent writers queue up
//! and each gets its own version; with `If-Match` the expected version is part
//! of the `WHERE` clause and exactly one of several racing writers matches.

use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel::PgConnection;
use fhir_profiles::search::IndexRows;

use fhir_profiles::search::query::{Criterion, SearchRequest, Visibility};

use crate::index::{bind_index_rows, index_write_ctes};
use crate::prepared::PreparedSql;
use crate::schema::{resource_versions, resources};
use crate::search::SearchPage;
use crate::StoreError;

/// How a version came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }

    fn parse(s: &str) -> Method {
        match s {
            "POST" => Method::Post,
            "DELETE" => Method::Delete,
            _ => Method::Put,
        }
    }
}

/// One stored version of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVersion {
    pub seq: i64,
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    pub last_updated: DateTime<Utc>,
    pub method: Method,
    /// Canonical FHIR JSON with meta set; `None` for a delete.
    pub content: Option<String>,
}

impl StoredVersion {
    pub fn is_deleted(&self) -> bool {
        self.method == Method::Delete
    }
}

/// A page of history entries, newest first, and the cursor of the next page.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub entries: Vec<StoredVersion>,
    pub next_before_seq: Option<i64>,
}

/// Whether an update created the resource or added a version.
#[derive(Debug, Clone)]
pub enum WriteOutcome {
    Created(StoredVersion),
    Updated(StoredVersion),
}

impl WriteOutcome {
    pub fn version(&self) -> &StoredVersion {
        match self {
            WriteOutcome::Created(v) | WriteOutcome::Updated(v) => v,
        }
    }
}

type VersionRow = (
    i64,
    String,
    String,
    i64,
    DateTime<Utc>,
    String,
    Option<String>,
);

fn to_version(row: VersionRow) -> StoredVersion {
    let (seq, resource_type, id, version_id, last_updated, method, content) = row;
    StoredVersion {
        seq,
        resource_type,
        id,
        version_id,
        last_updated,
        method: Method::parse(&method),
        content,
    }
}

macro_rules! version_columns {
    () => {
        (
            resource_versions::seq,
            resource_versions::resource_type,
            resource_versions::id,
            resource_versions::version_id,
            resource_versions::last_updated,
            resource_versions::method,
            resource_versions::content,
        )
    };
}

pub(crate) fn read_current(
    conn: &mut PgConnection,
    resource_type: &str,
    id: &str,
) -> Result<Option<StoredVersion>, StoreError> {
    let row = resource_versions::table
        .filter(resource_versions::resource_type.eq(resource_type))
        .filter(resource_versions::id.eq(id))
        .order(resource_versions::version_id.desc())
        .select(version_columns!())
        .first::<VersionRow>(conn)
        .optional()?;
    Ok(row.map(to_version))
}

pub(crate) fn read_version(
    conn: &mut PgConnection,
    resource_type: &str,
    id: &str,
    version_id: i64,
) -> Result<Option<StoredVersion>, StoreError> {
    let row = resource_versions::table
        .filter(resource_versions::resource_type.eq(resource_type))
        .filter(resource_versions::id.eq(id))
        .filter(resource_versions::version_id.eq(version_id))
        .select(version_columns!())
        .first::<VersionRow>(conn)
        .optional()?;
    Ok(row.map(to_version))
}

pub(crate) fn history(
    conn: &mut PgConnection,
    resource_type: Option<&str>,
    id: Option<&str>,
    since: Option<DateTime<Utc>>,
    before_seq: Option<i64>,
    count: i64,
) -> Result<HistoryPage, StoreError> {
    let mut query = resource_versions::table
        .select(version_columns!())
        .order(resource_versions::seq.desc())
        .limit(count + 1)
        .into_boxed();
    if let Some(t) = resource_type {
        query = query.filter(resource_versions::resource_type.eq(t));
    }
    if let Some(i) = id {
        query = query.filter(resource_versions::id.eq(i));
    }
    if let Some(s) = since {
        query = query.filter(resource_versions::last_updated.ge(s));
    }
    if let Some(b) = before_seq {
        query = query.filter(resource_versions::seq.lt(b));
    }
    let mut entries: Vec<StoredVersion> = query
        .load::<VersionRow>(conn)?
        .into_iter()
        .map(to_version)
        .collect();
    let next_before_seq = if entries.len() as i64 > count {
        entries.truncate(count as usize);
        entries.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(HistoryPage {
        entries,
        next_before_seq,
    })
}

/// Truncated to what PostgreSQL stores, so the time in the JSON and in the
/// row are the same instant.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A transaction's handle on the store.
pub struct Tx<'c> {
    pub(crate) conn: &'c mut PgConnection,
}

impl<'c> Tx<'c> {
    pub(crate) fn new(conn: &'c mut PgConnection) -> Self {
        Tx { conn }
    }

    pub fn read(
        &mut self,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<StoredVersion>, StoreError> {
        read_current(self.conn, resource_type, id)
    }

    /// The current version of a live resource if it meets `visibility`, in
    /// one statement: a restricted read needs no snapshot for its check and
    /// its read to agree.
    pub fn read_visible(
        &mut self,
        resource_type: &str,
        id: &str,
        visibility: &Visibility,
    ) -> Result<Option<StoredVersion>, StoreError> {
        let row = crate::search::read_visible(self.conn, resource_type, id, visibility)?;
        Ok(row.map(|v| StoredVersion {
            seq: v.seq,
            resource_type: resource_type.to_string(),
            id: id.to_string(),
            version_id: v.version_id,
            last_updated: v.last_updated,
            method: Method::parse(&v.method),
            content: v.content,
        }))
    }

    /// One page of a search limited to `visibility`, seeing this transaction's writes.
    pub fn search(
        &mut self,
        request: &SearchRequest,
        visibility: &Visibility,
    ) -> Result<SearchPage, StoreError> {
        crate::search::search(self.conn, request, visibility)
    }

    /// One page of a search of the audit trail limited to `visibility`
    /// (the caller's access criteria on AuditEvent).
    pub fn search_audit_events(
        &mut self,
        request: &SearchRequest,
        visibility: &[Criterion],
    ) -> Result<SearchPage, StoreError> {
        crate::search::audit::search(self.conn, request, visibility)
    }

    /// AuditEvent `id` if it meets `visibility`.
    pub fn read_audit_event(
        &mut self,
        id: &str,
        visibility: &[Criterion],
    ) -> Result<Option<StoredVersion>, StoreError> {
        crate::search::audit::read(self.conn, id, visibility)
    }

    /// A specific version of a resource.
    pub fn vread(
        &mut self,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> Result<Option<StoredVersion>, StoreError> {
        read_version(self.conn, resource_type, id, version_id)
    }

    /// A page of history, newest first (see [`PgStore::history`](crate::PgStore::history)).
    pub fn history(
        &mut self,
        resource_type: Option<&str>,
        id: Option<&str>,
        since: Option<DateTime<Utc>>,
        before_seq: Option<i64>,
        count: i64,
    ) -> Result<HistoryPage, StoreError> {
        history(self.conn, resource_type, id, since, before_seq, count)
    }

    /// Serialises conditional interactions on the same criteria until this
    /// transaction ends, so two conditional creates cannot both create.
    pub fn lock_criteria(&mut self, resource_type: &str, key: &str) -> Result<(), StoreError> {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind::<Text, _>(crate::index::pg_text(&format!("{resource_type}?{key}")))
            .execute(self.conn)?;
        Ok(())
    }

    /// Creates version 1 of a new resource with a fresh id, found by `index`. `render`
    /// gets the version id and timestamp and returns the JSON to store.
    pub fn create(
        &mut self,
        resource_type: &str,
        id: &str,
        index: &IndexRows,
        render: impl FnOnce(i64, DateTime<Utc>) -> String,
    ) -> Result<StoredVersion, StoreError> {
        let ts = now();
        let Some(res_id) = self.insert_row(resource_type, id, ts)? else {
            return Err(StoreError::Internal(format!(
                "{resource_type}/{id} already exists"
            )));
        };
        let version = NewVersion {
            res_id,
            version_id: 1,
            ts,
            method: Method::Post,
        };
        self.append_version(resource_type, id, version, Some(render(1, ts)), index)
    }

    /// Adds a version to a resource, or creates it with the given id when it
    /// never existed (update-as-create). With `if_match`, only the writer that
    /// saw the current version succeeds. The version is found by `index`.
    pub fn update(
        &mut self,
        resource_type: &str,
        id: &str,
        if_match: Option<i64>,
        index: &IndexRows,
        render: impl FnOnce(i64, DateTime<Utc>) -> String,
    ) -> Result<WriteOutcome, StoreError> {
        let ts = now();
        let (bumped, created) = self.put_version(resource_type, id, if_match, ts)?;
        let version = NewVersion {
            res_id: bumped.res_id,
            version_id: bumped.version_id,
            ts,
            method: Method::Put,
        };
        let content = render(bumped.version_id, ts);
        let v = self.append_version(resource_type, id, version, Some(content), index)?;
        Ok(if created {
            WriteOutcome::Created(v)
        } else {
            WriteOutcome::Updated(v)
        })
    }

    /// The version a PUT writes, and whether it creates the resource. The
    /// common case is an update of an existing resource, so that is tried
    /// first; only when there is no row does update-as-create insert one.
    /// Losing that insert to a concurrent creator means the row exists now,
    /// so the version bump after it succeeds.
    fn put_version(
        &mut self,
        resource_type: &str,
        id: &str,
        if_match: Option<i64>,
        ts: DateTime<Utc>,
    ) -> Result<(Bumped, bool), StoreError> {
        if if_match.is_none() {
            if let Some(bumped) = self.try_bump(resource_type, id, None, ts)? {
                return Ok((bumped, false));
            }
            if let Some(res_id) = self.insert_row(resource_type, id, ts)? {
                return Ok((
                    Bumped {
                        version_id: 1,
                        res_id,
                    },
                    true,
                ));
            }
        }
        Ok((self.bump(resource_type, id, if_match, ts)?, false))
    }

    /// Inserts the `resources` row of a new resource at version 1 and returns
    /// its row key; `None` when a row with that id already exists.
    fn insert_row(
        &mut self,
        resource_type: &str,
        id: &str,
        ts: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        Ok(diesel::insert_into(resources::table)
            .values((
                resources::resource_type.eq(resource_type),
                resources::id.eq(id),
                resources::version_id.eq(1i64),
                resources::last_updated.eq(ts),
                resources::deleted.eq(false),
            ))
            .on_conflict_do_nothing()
            .returning(resources::res_id)
            .get_result::<i64>(self.conn)
            .optional()?)
    }

    /// Deletes a resource by adding a delete marker version and removing its
    /// index rows, so no search finds it. Returns `None` when there was
    /// nothing live to delete.
    pub fn delete(
        &mut self,
        resource_type: &str,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<Option<StoredVersion>, StoreError> {
        let ts = now();
        let bumped = diesel::update(
            resources::table
                .filter(resources::resource_type.eq(resource_type))
                .filter(resources::id.eq(id))
                .filter(resources::deleted.eq(false)),
        )
        .set((
            resources::version_id.eq(resources::version_id + 1),
            resources::last_updated.eq(ts),
            resources::deleted.eq(true),
        ))
        .returning((resources::version_id, resources::res_id))
        .get_result::<(i64, i64)>(self.conn)
        .optional()?;
        let Some((version_id, res_id)) = bumped else {
            if let Some(expected) = if_match {
                return Err(self.conflict(resource_type, id, expected)?);
            }
            return Ok(None);
        };
        if let Some(expected) = if_match {
            if version_id - 1 != expected {
                return Err(StoreError::VersionConflict {
                    expected,
                    current: version_id - 1,
                });
            }
        }
        let version = NewVersion {
            res_id,
            version_id,
            ts,
            method: Method::Delete,
        };
        let v = self.append_version(resource_type, id, version, None, &IndexRows::default())?;
        Ok(Some(v))
    }

    /// Increments the version of an existing resource (creating the row for a
    /// guarded update of a missing resource is a conflict).
    fn bump(
        &mut self,
        resource_type: &str,
        id: &str,
        if_match: Option<i64>,
        ts: DateTime<Utc>,
    ) -> Result<Bumped, StoreError> {
        match (self.try_bump(resource_type, id, if_match, ts)?, if_match) {
            (Some(v), _) => Ok(v),
            (None, Some(expected)) => Err(self.conflict(resource_type, id, expected)?),
            (None, None) => Err(StoreError::Internal(format!(
                "{resource_type}/{id} vanished during its update"
            ))),
        }
    }

    /// Bumps the version (and revives a deleted resource); `None` when no row
    /// matched (missing, or not at the `if_match` version).
    fn try_bump(
        &mut self,
        resource_type: &str,
        id: &str,
        if_match: Option<i64>,
        ts: DateTime<Utc>,
    ) -> Result<Option<Bumped>, StoreError> {
        let target = resources::table
            .filter(resources::resource_type.eq(resource_type))
            .filter(resources::id.eq(id));
        let set = (
            resources::version_id.eq(resources::version_id + 1),
            resources::last_updated.eq(ts),
            resources::deleted.eq(false),
        );
        let returned = (resources::version_id, resources::res_id);
        let row = match if_match {
            Some(expected) => diesel::update(target.filter(resources::version_id.eq(expected)))
                .set(set)
                .returning(returned)
                .get_result::<(i64, i64)>(self.conn)
                .optional()?,
            None => diesel::update(target)
                .set(set)
                .returning(returned)
                .get_result::<(i64, i64)>(self.conn)
                .optional()?,
        };
        Ok(row.map(|(version_id, res_id)| Bumped { version_id, res_id }))
    }

    fn conflict(
        &mut self,
        resource_type: &str,
        id: &str,
        expected: i64,
    ) -> Result<StoreError, StoreError> {
        let current = resources::table
            .filter(resources::resource_type.eq(resource_type))
            .filter(resources::id.eq(id))
            .select(resources::version_id)
            .first::<i64>(self.conn)
            .optional()?;
        Ok(match current {
            Some(current) => StoreError::VersionConflict { expected, current },
            None => StoreError::VersionConflictMissing { expected },
        })
    }

    /// Inserts a version and replaces the search-index rows of the resource
    /// with those of this version, in one statement (one round trip): the
    /// CTEs all see the snapshot before the statement, so the deletes remove
    /// only the old rows.
    fn append_version(
        &mut self,
        resource_type: &str,
        id: &str,
        version: NewVersion,
        content: Option<String>,
        index: &IndexRows,
    ) -> Result<StoredVersion, StoreError> {
        #[derive(QueryableByName)]
        struct Seq {
            #[diesel(sql_type = BigInt)]
            seq: i64,
        }
        let sql = format!(
            "WITH {} \
             INSERT INTO resource_versions (resource_type, id, version_id, last_updated, method, content) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
            index_write_ctes()
        );
        let query = PreparedSql::new(sql)
            .bind::<Text, _>(resource_type.to_string())
            .bind::<Text, _>(id.to_string())
            .bind::<BigInt, _>(version.version_id)
            .bind::<Timestamptz, _>(version.ts)
            .bind::<Text, _>(version.method.as_str().to_string())
            .bind::<Nullable<Text>, _>(content.clone())
            .bind::<BigInt, _>(version.res_id);
        let row =
            bind_index_rows(query, &[(version.res_id, index)]).get_result::<Seq>(self.conn)?;
        let stored = StoredVersion {
            seq: row.seq,
            resource_type: resource_type.to_string(),
            id: id.to_string(),
            version_id: version.version_id,
            last_updated: version.ts,
            method: version.method,
            content,
        };
        crate::ledger::log_versions(self.conn, [&stored])?;
        Ok(stored)
    }
}

/// The row key and new version number of a bumped resource.
struct Bumped {
    version_id: i64,
    res_id: i64,
}

/// What a new version row records besides its content.
struct NewVersion {
    res_id: i64,
    version_id: i64,
    ts: DateTime<Utc>,
    method: Method,
}
