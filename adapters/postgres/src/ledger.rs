//! The Merkle log's tables (see the `merkle_log` migration): a pending leaf
//! for each Consent version and each AuditEvent, written in the transaction
//! that writes it; the sequencer that gives committed pending leaves their
//! indexes and stores the perfect subtree nodes they complete; and the reads
//! proofs are made of. What a leaf is and how the tree hashes are
//! `fhirledger-merkle`'s business; this module only keeps them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Int2, Text, Timestamptz};
use fhirledger_merkle::{
    frontier_nodes, range_hash, Frontier, Hash, Hasher, Keccak256Hasher, LeafData, LeafKind,
    NodeId, PerfectNode,
};
use sha2::{Digest, Sha256};

use crate::schema::{merkle_leaves, merkle_nodes, merkle_pending};
use crate::tx::StoredVersion;
use crate::StoreError;

/// The advisory lock (`pg_try_advisory_xact_lock`) that makes one sequencer
/// pass at a time across every server process on the database. An arbitrary
/// constant: "fhirledger merkle sequencer" hashed to 63 bits once.
const SEQUENCER_LOCK: i64 = 0x4d45_524b_4c45_5351;

/// The resource types whose versions are leaves of the log: a patient's
/// Consents decide who reads their documents, so every version of one must
/// be provable. AuditEvents are logged by [`audit_leaf`] as they are appended.
fn is_logged(resource_type: &str) -> bool {
    resource_type == "Consent"
}

/// A leaf's data, with a fresh salt: `content` is the stored bytes (none for a
/// delete, whose leaf commits to the SHA-256 of no bytes).
fn leaf_data(
    kind: LeafKind,
    resource_type: &str,
    id: &str,
    version_id: &str,
    content: Option<&str>,
    recorded: DateTime<Utc>,
) -> Result<Vec<u8>, StoreError> {
    let content_sha256: [u8; 32] = Sha256::digest(content.unwrap_or_default().as_bytes()).into();
    LeafData {
        kind,
        resource_type: resource_type.to_string(),
        id: id.to_string(),
        version_id: version_id.to_string(),
        content_sha256,
        recorded_micros: recorded.timestamp_micros(),
        salt: rand::random(),
    }
    .encode()
    .map_err(|e| StoreError::Internal(format!("{resource_type}/{id} cannot be a log leaf: {e}")))
}

/// The leaf of an AuditEvent: its id, version `1` (events never change),
/// the SHA-256 of its stored JSON and its `recorded` instant.
pub(crate) fn audit_leaf(
    id: &str,
    content: &str,
    recorded: DateTime<Utc>,
) -> Result<Vec<u8>, StoreError> {
    leaf_data(
        LeafKind::AuditEvent,
        "AuditEvent",
        id,
        "1",
        Some(content),
        recorded,
    )
}

#[derive(Insertable)]
#[diesel(table_name = merkle_pending, treat_none_as_default_value = false)]
struct NewPending<'a> {
    leaf_data: &'a [u8],
}

/// Adds pending leaves in the caller's transaction: they commit with what
/// they describe, or not at all.
pub(crate) fn add_pending(conn: &mut PgConnection, leaves: &[Vec<u8>]) -> Result<(), StoreError> {
    if leaves.is_empty() {
        return Ok(());
    }
    let rows: Vec<NewPending<'_>> = leaves.iter().map(|l| NewPending { leaf_data: l }).collect();
    diesel::copy_from(merkle_pending::table)
        .from_insertable(rows)
        .execute(conn)?;
    Ok(())
}

/// Adds the pending leaves of the logged ones among `versions` (every
/// Consent version: create, update and delete alike), in the transaction
/// that writes them. The one place a resource version enters the log.
pub(crate) fn log_versions<'a>(
    conn: &mut PgConnection,
    versions: impl IntoIterator<Item = &'a StoredVersion>,
) -> Result<(), StoreError> {
    let leaves = versions
        .into_iter()
        .filter(|v| is_logged(&v.resource_type))
        .map(|v| {
            leaf_data(
                LeafKind::ConsentVersion,
                &v.resource_type,
                &v.id,
                &v.version_id.to_string(),
                v.content.as_deref(),
                v.last_updated,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    add_pending(conn, &leaves)
}

/// What one sequencer pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequenced {
    /// Leaves given an index by this pass.
    pub appended: u64,
    /// The log's size after it.
    pub tree_size: u64,
    /// The log's root after it.
    pub root: Hash,
}

/// The log's tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHead {
    pub tree_size: u64,
    pub root: Hash,
    /// When the sequencer last moved it.
    pub updated_at: DateTime<Utc>,
}

/// A sequenced leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedLeaf {
    pub leaf_index: u64,
    /// The encoded [`LeafData`] its hash is computed over.
    pub leaf_data: Vec<u8>,
}

#[derive(QueryableByName)]
struct HeadRow {
    #[diesel(sql_type = BigInt)]
    tree_size: i64,
    #[diesel(sql_type = Bytea)]
    root: Vec<u8>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct PendingRow {
    #[diesel(sql_type = BigInt)]
    pending_id: i64,
    #[diesel(sql_type = Bytea)]
    leaf_data: Vec<u8>,
}

#[derive(QueryableByName)]
struct NodeRow {
    #[diesel(sql_type = Int2)]
    level: i16,
    #[diesel(sql_type = BigInt)]
    node_index: i64,
    #[diesel(sql_type = Bytea)]
    hash: Vec<u8>,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

#[derive(Insertable)]
#[diesel(table_name = merkle_leaves, treat_none_as_default_value = false)]
struct NewLeaf<'a> {
    leaf_index: i64,
    resource_type: &'a str,
    resource_id: &'a str,
    version_id: &'a str,
    leaf_data: &'a [u8],
    sequenced_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = merkle_nodes, treat_none_as_default_value = false)]
struct NewNode<'a> {
    level: i16,
    node_index: i64,
    hash: &'a [u8],
}

fn hash_of(bytes: &[u8], what: &str) -> Result<Hash, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Internal(format!("{what} is not a 32-byte hash")))
}

fn size_of(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Internal(format!("negative log size {n}")))
}

fn index_of(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Internal(format!("log index {n} beyond i64")))
}

pub(crate) fn head(conn: &mut PgConnection) -> Result<LogHead, StoreError> {
    let row = diesel::sql_query("SELECT tree_size, root, updated_at FROM merkle_head")
        .get_result::<HeadRow>(conn)?;
    Ok(LogHead {
        tree_size: size_of(row.tree_size)?,
        root: hash_of(&row.root, "the log's root")?,
        updated_at: row.updated_at,
    })
}

/// The hashes of `ids`, in their order; an error names the first missing.
pub(crate) fn nodes(conn: &mut PgConnection, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
    stored_nodes(conn, ids)?.map_err(|id| {
        StoreError::Internal(format!(
            "the log has no node at level {} index {}",
            id.level, id.index
        ))
    })
}

/// The hashes of `ids`, in their order, or the first that is not stored
/// (yet). Leaves (level 0) are hashed from their data in `merkle_leaves`,
/// higher nodes read from `merkle_nodes`, in one statement: a proof's few
/// dozen primary-key probes cost one round trip.
pub(crate) fn stored_nodes(
    conn: &mut PgConnection,
    ids: &[NodeId],
) -> Result<Result<Vec<Hash>, NodeId>, StoreError> {
    if ids.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    let mut leaf_indexes = Vec::new();
    let (mut levels, mut indexes) = (Vec::new(), Vec::new());
    for id in ids {
        if id.level == 0 {
            leaf_indexes.push(index_of(id.index)?);
        } else {
            levels.push(i16::from(id.level));
            indexes.push(index_of(id.index)?);
        }
    }
    let rows: Vec<NodeRow> = diesel::sql_query(
        "SELECT n.level, n.node_index, n.hash FROM merkle_nodes n \
         JOIN unnest($1::smallint[], $2::bigint[]) AS want(level, node_index) \
           ON n.level = want.level AND n.node_index = want.node_index \
         UNION ALL \
         SELECT 0::smallint, leaf_index, leaf_data FROM merkle_leaves WHERE leaf_index = ANY($3)",
    )
    .bind::<Array<Int2>, _>(&levels)
    .bind::<Array<BigInt>, _>(&indexes)
    .bind::<Array<BigInt>, _>(&leaf_indexes)
    .load::<NodeRow>(conn)?;
    let mut hashes = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(row) = rows
            .iter()
            .find(|r| r.level == i16::from(id.level) && r.node_index as u64 == id.index)
        else {
            return Ok(Err(*id));
        };
        hashes.push(if id.level == 0 {
            Keccak256Hasher.leaf_hash(&row.hash)
        } else {
            hash_of(&row.hash, "a log node")?
        });
    }
    Ok(Ok(hashes))
}

/// How many perfect nodes [`NodeCache`] keeps: every node at its levels of a
/// log of 2^25 (33 million) leaves, 2^18 entries of about 60 bytes.
const NODE_CACHE_ENTRIES: usize = 1 << 18;

/// The lowest level [`NodeCache`] keeps. A node at level `l` is in the proof
/// of `2^l` leaves, so the upper levels are asked for again and again, and
/// they are few: a 2^(8+k)-leaf log has about 2^(k+1) of them.
const NODE_CACHE_MIN_LEVEL: u8 = 8;

/// The upper perfect nodes of the log that proofs have read, in memory, so
/// that a proof reads only its lowest levels from the database. Nothing is
/// ever invalidated: a stored node never changes (the append-only triggers),
/// its hash depends only on the leaves below it. Bounded; the least used go.
pub(crate) struct NodeCache(quick_cache::sync::Cache<NodeId, Hash>);

impl NodeCache {
    pub(crate) fn new() -> Self {
        NodeCache(quick_cache::sync::Cache::new(NODE_CACHE_ENTRIES))
    }

    /// The hashes of `ids` in their order, from memory where kept, the rest
    /// from `conn` in one statement.
    pub(crate) fn nodes(
        &self,
        conn: &mut PgConnection,
        ids: &[NodeId],
    ) -> Result<Vec<Hash>, StoreError> {
        let cached: Vec<Option<Hash>> = ids
            .iter()
            .map(|id| {
                (id.level >= NODE_CACHE_MIN_LEVEL)
                    .then(|| self.0.get(id))
                    .flatten()
            })
            .collect();
        let missing: Vec<NodeId> = ids
            .iter()
            .zip(&cached)
            .filter(|(_, hit)| hit.is_none())
            .map(|(id, _)| *id)
            .collect();
        let mut fetched = nodes(conn, &missing)?.into_iter();
        let mut hashes = Vec::with_capacity(ids.len());
        for (id, hit) in ids.iter().zip(cached) {
            let hash = match hit {
                Some(hash) => hash,
                None => {
                    let hash = fetched.next().ok_or_else(|| {
                        StoreError::Internal("the log's node query lost a node".into())
                    })?;
                    if id.level >= NODE_CACHE_MIN_LEVEL {
                        self.0.insert(*id, hash);
                    }
                    hash
                }
            };
            hashes.push(hash);
        }
        Ok(hashes)
    }
}

/// One sequencer pass on `conn`, in one transaction: up to `max` committed
/// pending leaves, oldest first, get the next indexes; the nodes they
/// complete and the new head are written with them. `None` when another
/// process holds the sequencer's lock.
fn sequence(conn: &mut PgConnection, max: usize) -> Result<Option<Sequenced>, StoreError> {
    conn.transaction::<_, StoreError, _>(|conn| {
        let locked = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
            .bind::<BigInt, _>(SEQUENCER_LOCK)
            .get_result::<Locked>(conn)?;
        if !locked.locked {
            return Ok(None);
        }
        let start = head(conn)?;
        // A range of the primary key, its bound found first: no join for the
        // planner to choose. A semi-join planned while the table looked empty
        // (statistics from between two bursts) became a nested loop that
        // rescanned the batch for every pending row: a burst of a million
        // leaves held the sequencer for over a quarter of an hour.
        let mut pending = diesel::sql_query(
            "DELETE FROM merkle_pending WHERE pending_id <= \
               (SELECT max(pending_id) FROM \
                  (SELECT pending_id FROM merkle_pending ORDER BY pending_id LIMIT $1) AS batch) \
             RETURNING pending_id, leaf_data",
        )
        .bind::<BigInt, _>(i64::try_from(max).unwrap_or(i64::MAX))
        .load::<PendingRow>(conn)?;
        if pending.is_empty() {
            return Ok(Some(Sequenced {
                appended: 0,
                tree_size: start.tree_size,
                root: start.root,
            }));
        }
        pending.sort_by_key(|p| p.pending_id);
        let hasher = Keccak256Hasher;
        let edge = nodes(conn, &frontier_nodes(start.tree_size))?;
        let mut frontier = Frontier::restore(hasher, start.tree_size, edge)
            .map_err(|e| StoreError::Internal(format!("the log's right edge: {e}")))?;
        let decoded = pending
            .iter()
            .map(|p| {
                LeafData::decode(&p.leaf_data).map_err(|e| {
                    StoreError::Internal(format!("pending leaf {} is corrupt: {e}", p.pending_id))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut completed: Vec<PerfectNode> = Vec::with_capacity(pending.len() * 2);
        for p in &pending {
            frontier
                .append_with(hasher.leaf_hash(&p.leaf_data), |n| completed.push(n))
                .map_err(|e| StoreError::Internal(format!("the log is full: {e}")))?;
        }
        let now = crate::tx::now();
        let leaves = pending
            .iter()
            .zip(&decoded)
            .zip(start.tree_size..)
            .map(|((p, d), index)| {
                Ok(NewLeaf {
                    leaf_index: index_of(index)?,
                    resource_type: &d.resource_type,
                    resource_id: &d.id,
                    version_id: &d.version_id,
                    leaf_data: &p.leaf_data,
                    sequenced_at: now,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        diesel::copy_from(merkle_leaves::table)
            .from_insertable(leaves)
            .execute(conn)?;
        // Leaves' hashes (level 0) are not stored: their data is, one hash away.
        let new_nodes = completed
            .iter()
            .filter(|n| n.id.level > 0)
            .map(|n| {
                Ok(NewNode {
                    level: i16::from(n.id.level),
                    node_index: index_of(n.id.index)?,
                    hash: &n.hash,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        diesel::copy_from(merkle_nodes::table)
            .from_insertable(new_nodes)
            .execute(conn)?;
        let root = frontier.root();
        diesel::sql_query("UPDATE merkle_head SET tree_size = $1, root = $2, updated_at = $3")
            .bind::<BigInt, _>(index_of(frontier.size())?)
            .bind::<Bytea, _>(root.as_slice())
            .bind::<Timestamptz, _>(now)
            .execute(conn)?;
        Ok(Some(Sequenced {
            appended: pending.len() as u64,
            tree_size: frontier.size(),
            root,
        }))
    })
}

#[derive(QueryableByName)]
struct LeafRow {
    #[diesel(sql_type = BigInt)]
    leaf_index: i64,
    #[diesel(sql_type = Bytea)]
    leaf_data: Vec<u8>,
}

impl crate::PgStore {
    /// One sequencer pass (see the `merkle_log` migration): up to `max`
    /// committed pending leaves get the next indexes. `None` when another
    /// process is sequencing.
    pub fn sequence_log(&self, max: usize) -> Result<Option<Sequenced>, StoreError> {
        sequence(&mut *self.conn()?, max)
    }

    /// The log's tree head.
    pub fn log_head(&self) -> Result<LogHead, StoreError> {
        head(&mut *self.conn()?)
    }

    /// How many leaves are committed but not yet sequenced.
    pub fn log_pending(&self) -> Result<u64, StoreError> {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let c = diesel::sql_query("SELECT count(*) AS n FROM merkle_pending")
            .get_result::<Count>(&mut *self.conn()?)?;
        size_of(c.n)
    }

    /// The hashes of the log's perfect subtree nodes `ids`, in that order
    /// (fhirledger_merkle::inclusion_nodes, consistency_nodes).
    pub fn log_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        self.node_cache().nodes(&mut *self.conn()?, ids)
    }

    /// The root of the log's first `size` leaves (none beyond its size): from
    /// the O(log n) perfect nodes that make up a tree of that size.
    pub fn log_root_at(&self, size: u64) -> Result<Option<Hash>, StoreError> {
        let mut conn = self.conn()?;
        if size > head(&mut conn)?.tree_size {
            return Ok(None);
        }
        let hashes = nodes(&mut conn, &frontier_nodes(size))?;
        Ok(Some(
            range_hash(&Keccak256Hasher, &hashes).unwrap_or_else(|| Keccak256Hasher.empty_root()),
        ))
    }

    /// The sequenced leaves `[from, to)`, by index (fewer when the log is
    /// shorter).
    pub fn log_leaves(&self, from: u64, to: u64) -> Result<Vec<LoggedLeaf>, StoreError> {
        diesel::sql_query(
            "SELECT leaf_index, leaf_data FROM merkle_leaves \
             WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index",
        )
        .bind::<BigInt, _>(index_of(from)?)
        .bind::<BigInt, _>(index_of(to.min(i64::MAX as u64))?)
        .load::<LeafRow>(&mut *self.conn()?)?
        .into_iter()
        .map(|r| {
            Ok(LoggedLeaf {
                leaf_index: size_of(r.leaf_index)?,
                leaf_data: r.leaf_data,
            })
        })
        .collect()
    }

    /// The sequenced leaf of a resource version (`AuditEvent`, id, `1`; or
    /// `Consent`, id, version id), if it has one yet.
    pub fn log_leaf(
        &self,
        resource_type: &str,
        id: &str,
        version_id: &str,
    ) -> Result<Option<LoggedLeaf>, StoreError> {
        let row = diesel::sql_query(
            "SELECT leaf_index, leaf_data FROM merkle_leaves \
             WHERE resource_type = $1 AND resource_id = $2 AND version_id = $3",
        )
        .bind::<Text, _>(resource_type)
        .bind::<Text, _>(id)
        .bind::<Text, _>(version_id)
        .get_result::<LeafRow>(&mut *self.conn()?)
        .optional()?;
        row.map(|r| {
            Ok(LoggedLeaf {
                leaf_index: size_of(r.leaf_index)?,
                leaf_data: r.leaf_data,
            })
        })
        .transpose()
    }
}
