//! Reads for `fhirledger audit verify`: the Merkle log's leaves in index
//! order, each with the row it names, a batch at a time; the anchored
//! checkpoints in size order; the rows that have no leaf; the pending
//! leaves. All within one read-only `REPEATABLE READ` snapshot
//! ([`crate::PgStore::log_snapshot`]), so a row and its leaf (committed
//! together, sequenced atomically) are always seen together, however long
//! the verification runs.
//!
//! Nothing here judges: what a disagreement means is the verifier's
//! business. This module only reads, and hashes each row's content as the
//! log's writers did (SHA-256 of the stored text's bytes, of no bytes for a
//! Consent delete), so that no content is held longer than its batch.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea, Nullable, Text, Timestamptz};
use fhirledger_merkle::{frontier_nodes, Hash};
use sha2::{Digest, Sha256};

use crate::ledger::{head, nodes, LogHead};
use crate::StoreError;

/// The table a row lives in, with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowRef {
    /// `audit_events`, by its `seq`.
    AuditEvent { seq: i64 },
    /// `resource_versions`, by its `seq`.
    ResourceVersion { seq: i64 },
}

/// What the verifier needs of the row a leaf names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFacts {
    pub row: RowRef,
    /// SHA-256 of the row's stored content (of no bytes when it is NULL: a
    /// delete version).
    pub content_sha256: [u8; 32],
    /// `audit_events.recorded` or `resource_versions.last_updated`, µs.
    pub recorded_micros: i64,
}

/// A sequenced leaf with what the database holds about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafWithRow {
    pub leaf_index: u64,
    /// The leaf row's own columns (decoded from `leaf_data` by the sequencer).
    pub resource_type: String,
    pub resource_id: String,
    pub version_id: String,
    pub leaf_data: Vec<u8>,
    /// The row the leaf names, when there is one.
    pub row: Option<RowFacts>,
}

/// A row of `merkle_checkpoints` as stored, unchecked: unlike the anchoring
/// store's `CheckpointRow`, every column may be missing or malformed, since
/// `audit verify` reads a database it does not trust and reports such a row
/// instead of failing on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCheckpoint {
    pub tree_size: u64,
    pub root: Option<Vec<u8>>,
    pub chain_id: Option<i64>,
    pub contract: Option<Vec<u8>>,
    pub tx_hash: Option<Vec<u8>>,
    pub block_number: Option<i64>,
}

/// A row that should have a leaf and has no sequenced one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnloggedRow {
    pub resource_type: String,
    pub resource_id: String,
    pub version_id: String,
    pub row: RowRef,
}

/// A committed leaf not sequenced yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLeaf {
    pub pending_id: i64,
    pub leaf_data: Vec<u8>,
}

/// One read-only snapshot of the log and the rows it describes.
pub struct LogSnapshot<'a> {
    conn: &'a mut PgConnection,
}

fn index_of(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Internal(format!("log index {n} beyond i64")))
}

fn size_of(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Internal(format!("negative log index {n}")))
}

fn limit_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn sha256(content: Option<&str>) -> [u8; 32] {
    Sha256::digest(content.unwrap_or_default().as_bytes()).into()
}

#[derive(QueryableByName)]
struct LeafRowSql {
    #[diesel(sql_type = BigInt)]
    leaf_index: i64,
    #[diesel(sql_type = Text)]
    resource_type: String,
    #[diesel(sql_type = Text)]
    resource_id: String,
    #[diesel(sql_type = Text)]
    version_id: String,
    #[diesel(sql_type = Bytea)]
    leaf_data: Vec<u8>,
    #[diesel(sql_type = Nullable<BigInt>)]
    audit_seq: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    audit_content: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    audit_recorded: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    version_seq: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    version_content: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    version_recorded: Option<DateTime<Utc>>,
}

/// The leaves `leaf_index >= $1`, in order, `$2` at most, each with the row
/// it names. A Consent leaf's version id is
/// text in the log and a number in `resource_versions`: one that is not a
/// number names no row.
const LEAVES_WITH_ROWS: &str = "\
SELECT l.leaf_index, l.resource_type, l.resource_id, l.version_id, l.leaf_data,
       a.seq AS audit_seq, a.content AS audit_content, a.recorded AS audit_recorded,
       v.seq AS version_seq, v.content AS version_content, v.last_updated AS version_recorded
  FROM merkle_leaves l
  LEFT JOIN audit_events a ON l.resource_type = 'AuditEvent' AND a.id = l.resource_id
  LEFT JOIN resource_versions v
         ON l.resource_type = 'Consent' AND v.resource_type = 'Consent'
        AND v.id = l.resource_id
        AND v.version_id = CASE WHEN l.version_id ~ '^[0-9]{1,18}$'
                                THEN l.version_id::bigint END
 WHERE l.leaf_index >= $1
 ORDER BY l.leaf_index
 LIMIT $2";

#[derive(QueryableByName)]
struct RecordedCheckpointSql {
    #[diesel(sql_type = BigInt)]
    tree_size: i64,
    #[diesel(sql_type = Nullable<Bytea>)]
    root: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    chain_id: Option<i64>,
    #[diesel(sql_type = Nullable<Bytea>)]
    contract: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Bytea>)]
    tx_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    block_number: Option<i64>,
}

#[derive(QueryableByName)]
struct UnloggedSql {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    resource_id: String,
    #[diesel(sql_type = Text)]
    version_id: String,
}

#[derive(QueryableByName)]
struct PendingSql {
    #[diesel(sql_type = BigInt)]
    pending_id: i64,
    #[diesel(sql_type = Bytea)]
    leaf_data: Vec<u8>,
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    present: bool,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl LogSnapshot<'_> {
    /// The log's tree head as stored.
    pub fn head(&mut self) -> Result<LogHead, StoreError> {
        head(self.conn)
    }

    /// The stored hashes of the perfect nodes making up a tree of `size`
    /// leaves ([`frontier_nodes`]), largest first: where a verification
    /// starting at `size` resumes.
    pub fn frontier(&mut self, size: u64) -> Result<Vec<Hash>, StoreError> {
        nodes(self.conn, &frontier_nodes(size))
    }

    /// Up to `limit` sequenced leaves from index `from` on, in index order,
    /// each with the row it names (a gap in the indexes shows as a jump).
    pub fn leaves_with_rows(
        &mut self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LeafWithRow>, StoreError> {
        diesel::sql_query(LEAVES_WITH_ROWS)
            .bind::<BigInt, _>(index_of(from)?)
            .bind::<BigInt, _>(limit_of(limit))
            .load::<LeafRowSql>(self.conn)?
            .into_iter()
            .map(|r| {
                let row = match (
                    r.audit_seq,
                    r.audit_recorded,
                    r.version_seq,
                    r.version_recorded,
                ) {
                    (Some(seq), Some(recorded), _, _) => Some(RowFacts {
                        row: RowRef::AuditEvent { seq },
                        content_sha256: sha256(r.audit_content.as_deref()),
                        recorded_micros: recorded.timestamp_micros(),
                    }),
                    (_, _, Some(seq), Some(recorded)) => Some(RowFacts {
                        row: RowRef::ResourceVersion { seq },
                        content_sha256: sha256(r.version_content.as_deref()),
                        recorded_micros: recorded.timestamp_micros(),
                    }),
                    _ => None,
                };
                Ok(LeafWithRow {
                    leaf_index: size_of(r.leaf_index)?,
                    resource_type: r.resource_type,
                    resource_id: r.resource_id,
                    version_id: r.version_id,
                    leaf_data: r.leaf_data,
                    row,
                })
            })
            .collect()
    }

    /// Whether the anchoring worker's `merkle_checkpoints` table exists:
    /// whoever rewrites the log may drop it, and the contract's latest
    /// checkpoint is then still checked.
    pub fn has_checkpoints(&mut self) -> Result<bool, StoreError> {
        Ok(
            diesel::sql_query("SELECT to_regclass('merkle_checkpoints') IS NOT NULL AS present")
                .get_result::<Exists>(self.conn)?
                .present,
        )
    }

    /// Up to `limit` checkpoints of size above `after`, by size.
    pub fn checkpoints(
        &mut self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RecordedCheckpoint>, StoreError> {
        diesel::sql_query(
            "SELECT tree_size, root, chain_id, contract, tx_hash, block_number \
               FROM merkle_checkpoints WHERE tree_size > $1 ORDER BY tree_size LIMIT $2",
        )
        .bind::<BigInt, _>(index_of(after)?)
        .bind::<BigInt, _>(limit_of(limit))
        .load::<RecordedCheckpointSql>(self.conn)?
        .into_iter()
        .map(|c| {
            Ok(RecordedCheckpoint {
                tree_size: size_of(c.tree_size)?,
                root: c.root,
                chain_id: c.chain_id,
                contract: c.contract,
                tx_hash: c.tx_hash,
                block_number: c.block_number,
            })
        })
        .collect()
    }

    /// Up to `limit` AuditEvent rows after `seq` (by `seq`) that have no
    /// sequenced leaf.
    pub fn unlogged_audit_events(
        &mut self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<UnloggedRow>, StoreError> {
        Ok(diesel::sql_query(
            "SELECT a.seq, a.id AS resource_id, '1' AS version_id FROM audit_events a \
              WHERE a.seq > $1 AND NOT EXISTS (SELECT 1 FROM merkle_leaves l \
                     WHERE l.resource_type = 'AuditEvent' AND l.resource_id = a.id \
                       AND l.version_id = '1') \
              ORDER BY a.seq LIMIT $2",
        )
        .bind::<BigInt, _>(after_seq)
        .bind::<BigInt, _>(limit_of(limit))
        .load::<UnloggedSql>(self.conn)?
        .into_iter()
        .map(|r| UnloggedRow {
            resource_type: "AuditEvent".into(),
            resource_id: r.resource_id,
            version_id: r.version_id,
            row: RowRef::AuditEvent { seq: r.seq },
        })
        .collect())
    }

    /// Up to `limit` Consent versions after `seq` (by `seq`) that have no
    /// sequenced leaf.
    pub fn unlogged_consent_versions(
        &mut self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<UnloggedRow>, StoreError> {
        Ok(diesel::sql_query(
            "SELECT v.seq, v.id AS resource_id, v.version_id::text AS version_id \
               FROM resource_versions v \
              WHERE v.resource_type = 'Consent' AND v.seq > $1 AND NOT EXISTS ( \
                    SELECT 1 FROM merkle_leaves l WHERE l.resource_type = 'Consent' \
                       AND l.resource_id = v.id AND l.version_id = v.version_id::text) \
              ORDER BY v.seq LIMIT $2",
        )
        .bind::<BigInt, _>(after_seq)
        .bind::<BigInt, _>(limit_of(limit))
        .load::<UnloggedSql>(self.conn)?
        .into_iter()
        .map(|r| UnloggedRow {
            resource_type: "Consent".into(),
            resource_id: r.resource_id,
            version_id: r.version_id,
            row: RowRef::ResourceVersion { seq: r.seq },
        })
        .collect())
    }

    /// Up to `limit` pending (committed, not yet sequenced) leaves after
    /// `after`, by `pending_id`.
    pub fn pending(&mut self, after: i64, limit: usize) -> Result<Vec<PendingLeaf>, StoreError> {
        Ok(diesel::sql_query(
            "SELECT pending_id, leaf_data FROM merkle_pending WHERE pending_id > $1 \
              ORDER BY pending_id LIMIT $2",
        )
        .bind::<BigInt, _>(after)
        .bind::<BigInt, _>(limit_of(limit))
        .load::<PendingSql>(self.conn)?
        .into_iter()
        .map(|p| PendingLeaf {
            pending_id: p.pending_id,
            leaf_data: p.leaf_data,
        })
        .collect())
    }

    /// Exports this snapshot (`pg_export_snapshot`) for
    /// [`crate::PgStore::log_snapshot_at`]: another connection then reads the
    /// very same state, for as long as this snapshot's transaction is open.
    pub fn export(&mut self) -> Result<String, StoreError> {
        #[derive(QueryableByName)]
        struct Exported {
            #[diesel(sql_type = Text)]
            id: String,
        }
        Ok(diesel::sql_query("SELECT pg_export_snapshot() AS id")
            .get_result::<Exported>(self.conn)?
            .id)
    }

    /// How many leaves are pending.
    pub fn pending_count(&mut self) -> Result<u64, StoreError> {
        let c = diesel::sql_query("SELECT count(*) AS n FROM merkle_pending")
            .get_result::<Count>(self.conn)?;
        size_of(c.n)
    }
}

/// A failure inside [`crate::PgStore::log_snapshot`]: the store's, or the
/// work's own.
enum SnapshotError<E> {
    Store(StoreError),
    Work(E),
}

impl<E> From<diesel::result::Error> for SnapshotError<E> {
    fn from(e: diesel::result::Error) -> Self {
        SnapshotError::Store(StoreError::Database(e))
    }
}

impl crate::PgStore {
    /// [`Self::log_snapshot`] on a snapshot another transaction exported
    /// ([`LogSnapshot::export`]), still open: two connections reading one
    /// state, e.g. one streaming leaves while the other reads the rest.
    pub fn log_snapshot_at<T, E: From<StoreError>>(
        &self,
        snapshot_id: &str,
        work: impl FnOnce(&mut LogSnapshot<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        // pg_export_snapshot's ids are hex digits and dashes; anything else
        // is not one (and must not reach the statement).
        if snapshot_id.is_empty()
            || !snapshot_id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'-')
        {
            return Err(E::from(StoreError::Internal(format!(
                "'{snapshot_id}' is not an exported snapshot id"
            ))));
        }
        self.log_snapshot(|snap| {
            diesel::sql_query(format!("SET TRANSACTION SNAPSHOT '{snapshot_id}'"))
                .execute(snap.conn)
                .map_err(|e| E::from(StoreError::Database(e)))?;
            work(snap)
        })
    }

    /// Runs `work` in one read-only `REPEATABLE READ` transaction: every read
    /// of the [`LogSnapshot`] sees the same committed state, and nothing can be
    /// written (PostgreSQL refuses writes in a read-only transaction).
    pub fn log_snapshot<T, E: From<StoreError>>(
        &self,
        work: impl FnOnce(&mut LogSnapshot<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.conn()?;
        let result = conn
            .build_transaction()
            .repeatable_read()
            .read_only()
            .run::<T, SnapshotError<E>, _>(|conn| {
                work(&mut LogSnapshot { conn }).map_err(SnapshotError::Work)
            });
        match result {
            Ok(value) => Ok(value),
            Err(SnapshotError::Store(e)) => Err(E::from(e)),
            Err(SnapshotError::Work(e)) => Err(e),
        }
    }
}
