//! What the anchoring worker keeps (migration `2026-12-07-000002_anchoring`):
//! the checkpoints anchored on chain (`merkle_checkpoints`, append-only), the
//! one checkpoint transaction in flight (`merkle_anchor_inflight`), and the
//! active worker's last observed state for `$ledger-status` on every replica
//! (`merkle_anchor_status`); and what it reads of the Merkle log: the tree
//! head and the root at a past size, folded from the stored perfect nodes.
//!
//! The worker works on an [`AnchorSession`]: one connection of its own,
//! outside the pool (so the chain never holds a connection a request could
//! use), which also holds the leadership: a session-level advisory lock. A
//! dead process's connection closes, its lock vanishes with it, and the next
//! process's [`AnchorSession::try_lead`] takes over.

use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Nullable, Text, Timestamptz};

use fhirledger_merkle::{ProofNodes, Tile, TILE_WIDTH};

use crate::ledger::{LoggedLeaf, Tiles};
use crate::search::{Bind, Sql};
use crate::StoreError;

/// Session advisory lock key of the anchoring worker: `hashtextextended` of
/// this text, seed 0 (the other advisory locks of the schema use other texts).
const LEADER_LOCK_KEY: &str = "fhirledger anchoring worker";

/// A 32-byte hash (a root, a transaction or block hash).
pub type Hash32 = [u8; 32];

/// The Merkle log's current head.
pub use crate::ledger::LogHead as TreeHead;

/// A checkpoint anchored on chain, as its final receipt says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointRow {
    pub tree_size: u64,
    pub root: Hash32,
    pub chain_id: u64,
    pub contract: [u8; 20],
    pub tx_hash: Hash32,
    pub block_number: u64,
    pub block_hash: Hash32,
    pub anchored_at: DateTime<Utc>,
}

/// Where one resource version's leaf stands in the log
/// ([`crate::PgStore::leaf_inclusion`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafInclusion {
    /// Never logged, or committed but not yet sequenced.
    NotInLog,
    /// Sequenced; no anchored checkpoint covers it yet.
    NotAnchored,
    /// Covered by `checkpoint`: `hashes` are the stored nodes `nodes` names,
    /// in its order, for [`ProofNodes::assemble`].
    Anchored {
        leaf: LoggedLeaf,
        checkpoint: Box<CheckpointRow>,
        nodes: ProofNodes,
        hashes: Vec<Hash32>,
    },
}

/// The checkpoint transaction in flight: written before it is sent, its hash
/// once the node accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InflightRow {
    pub tree_size: u64,
    pub root: Hash32,
    pub chain_id: u64,
    pub contract: [u8; 20],
    pub tx_hash: Option<Hash32>,
    pub nonce: u64,
    pub sent_at: DateTime<Utc>,
}

/// What the active anchoring worker last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorStatusRow {
    /// `anchoring`, `waiting-for-chain`, `chain-mismatch` (the worker's words).
    pub state: String,
    pub chain_id: Option<u64>,
    pub contract: Option<[u8; 20]>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// Everything `$ledger-status` reads, from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSnapshot {
    pub head: TreeHead,
    pub last_checkpoint: Option<CheckpointRow>,
    /// When the first leaf not covered by the last checkpoint was sequenced
    /// (`None` when every leaf is anchored, or the leaf is not found).
    pub oldest_unanchored_at: Option<DateTime<Utc>>,
    pub status: Option<AnchorStatusRow>,
    /// The database's clock at the snapshot.
    pub now: DateTime<Utc>,
}

fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Internal(format!("{what} {value} exceeds BIGINT")))
}

fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Internal(format!("negative {what}: {value}")))
}

fn fixed<const N: usize>(bytes: Vec<u8>, what: &str) -> Result<[u8; N], StoreError> {
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| StoreError::Internal(format!("{what}: {len} bytes stored, {N} expected")))
}

#[derive(QueryableByName)]
struct CheckpointSql {
    #[diesel(sql_type = BigInt)]
    tree_size: i64,
    #[diesel(sql_type = Bytea)]
    root: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    chain_id: i64,
    #[diesel(sql_type = Bytea)]
    contract: Vec<u8>,
    #[diesel(sql_type = Bytea)]
    tx_hash: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    block_number: i64,
    #[diesel(sql_type = Bytea)]
    block_hash: Vec<u8>,
    #[diesel(sql_type = Timestamptz)]
    anchored_at: DateTime<Utc>,
}

impl CheckpointSql {
    fn into_row(self) -> Result<CheckpointRow, StoreError> {
        Ok(CheckpointRow {
            tree_size: to_u64(self.tree_size, "tree size")?,
            root: fixed(self.root, "checkpoint root")?,
            chain_id: to_u64(self.chain_id, "chain id")?,
            contract: fixed(self.contract, "checkpoint contract")?,
            tx_hash: fixed(self.tx_hash, "checkpoint tx hash")?,
            block_number: to_u64(self.block_number, "block number")?,
            block_hash: fixed(self.block_hash, "checkpoint block hash")?,
            anchored_at: self.anchored_at,
        })
    }
}

/// A leaf with the first checkpoint covering it, if any (a `LEFT JOIN`: the
/// checkpoint's columns are all null when none covers it yet).
#[derive(QueryableByName)]
struct LeafCheckpointSql {
    #[diesel(sql_type = BigInt)]
    leaf_index: i64,
    #[diesel(sql_type = Bytea)]
    leaf_data: Vec<u8>,
    /// The leaf's tile, when `merkle_tiles` keeps it.
    #[diesel(sql_type = Nullable<Bytea>)]
    tile: Option<Vec<u8>>,
    #[diesel(embed)]
    checkpoint: CoveringSql,
}

#[derive(QueryableByName)]
struct CoveringSql {
    #[diesel(sql_type = Nullable<BigInt>)]
    tree_size: Option<i64>,
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
    #[diesel(sql_type = Nullable<Bytea>)]
    block_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    anchored_at: Option<DateTime<Utc>>,
}

impl CoveringSql {
    /// `None` when the join found no checkpoint (every column null; the
    /// table's columns are `NOT NULL`).
    fn into_row(self) -> Result<Option<CheckpointRow>, StoreError> {
        let (
            Some(tree_size),
            Some(root),
            Some(chain_id),
            Some(contract),
            Some(tx_hash),
            Some(block_number),
            Some(block_hash),
            Some(anchored_at),
        ) = (
            self.tree_size,
            self.root,
            self.chain_id,
            self.contract,
            self.tx_hash,
            self.block_number,
            self.block_hash,
            self.anchored_at,
        )
        else {
            return Ok(None);
        };
        CheckpointSql {
            tree_size,
            root,
            chain_id,
            contract,
            tx_hash,
            block_number,
            block_hash,
            anchored_at,
        }
        .into_row()
        .map(Some)
    }
}

#[derive(QueryableByName)]
struct InflightSql {
    #[diesel(sql_type = BigInt)]
    tree_size: i64,
    #[diesel(sql_type = Bytea)]
    root: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    chain_id: i64,
    #[diesel(sql_type = Bytea)]
    contract: Vec<u8>,
    #[diesel(sql_type = Nullable<Bytea>)]
    tx_hash: Option<Vec<u8>>,
    #[diesel(sql_type = BigInt)]
    nonce: i64,
    #[diesel(sql_type = Timestamptz)]
    sent_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct StatusSql {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    chain_id: Option<i64>,
    #[diesel(sql_type = Nullable<Bytea>)]
    contract: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    flag: bool,
}

#[derive(QueryableByName)]
struct Instant {
    #[diesel(sql_type = Timestamptz)]
    at: DateTime<Utc>,
}

const CHECKPOINT_COLUMNS: &str =
    "tree_size, root, chain_id, contract, tx_hash, block_number, block_hash, anchored_at";

use crate::ledger::head;

fn last_checkpoint(conn: &mut PgConnection) -> Result<Option<CheckpointRow>, StoreError> {
    diesel::sql_query(format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM merkle_checkpoints ORDER BY tree_size DESC LIMIT 1"
    ))
    .get_result::<CheckpointSql>(conn)
    .optional()?
    .map(CheckpointSql::into_row)
    .transpose()
}

fn status(conn: &mut PgConnection) -> Result<Option<AnchorStatusRow>, StoreError> {
    let Some(row) = diesel::sql_query(
        "SELECT state, chain_id, contract, last_error, updated_at FROM merkle_anchor_status",
    )
    .get_result::<StatusSql>(conn)
    .optional()?
    else {
        return Ok(None);
    };
    Ok(Some(AnchorStatusRow {
        state: row.state,
        chain_id: row.chain_id.map(|id| to_u64(id, "chain id")).transpose()?,
        contract: row
            .contract
            .map(|c| fixed(c, "status contract"))
            .transpose()?,
        last_error: row.last_error,
        updated_at: row.updated_at,
    }))
}

/// The stored perfect nodes `(level, index)` asked for, their hashes in
/// that order; `None` when one is not stored (yet).
fn nodes(conn: &mut PgConnection, wanted: &[(u8, u64)]) -> Result<Option<Vec<Hash32>>, StoreError> {
    let ids: Vec<fhirledger_merkle::NodeId> = wanted
        .iter()
        .map(|(level, index)| fhirledger_merkle::NodeId::new(*level, *index))
        .collect();
    Ok(crate::ledger::stored_nodes(conn, &ids)?.ok())
}

impl crate::PgStore {
    /// What `$ledger-status` reports, from one read-only snapshot.
    pub fn ledger_snapshot(&self) -> Result<LedgerSnapshot, StoreError> {
        self.reading(true, |tx| snapshot(tx.conn))
    }

    /// Where the leaf of a resource version (`AuditEvent`, id, `1`; or
    /// `Consent`, id, version id) stands, and when it is anchored, what its
    /// proof is made of: the first anchored checkpoint covering it (the
    /// smallest anchored size above its index) and the stored nodes of its
    /// path. One statement for the leaf, its checkpoint and its tile (the
    /// path's lower levels); the upper nodes mostly come from memory
    /// (`ledger::NodeCache`), a second statement reads those that do not.
    pub fn leaf_inclusion(
        &self,
        resource_type: &str,
        id: &str,
        version_id: &str,
    ) -> Result<LeafInclusion, StoreError> {
        let mut conn = self.conn()?;
        let mut sql = Sql::default();
        let (resource_type, id, version_id) =
            (sql.text(resource_type), sql.text(id), sql.text(version_id));
        sql.push(&format!(
            "SELECT l.leaf_index, l.leaf_data, t.hashes AS tile, c.tree_size, c.root, c.chain_id, \
                    c.contract, c.tx_hash, c.block_number, c.block_hash, c.anchored_at \
             FROM merkle_leaves l \
             LEFT JOIN merkle_tiles t ON t.tile_index = l.leaf_index / {TILE_WIDTH} \
             LEFT JOIN LATERAL (SELECT * FROM merkle_checkpoints \
                                WHERE tree_size > l.leaf_index ORDER BY tree_size LIMIT 1) c ON true \
             WHERE l.resource_type = {resource_type} AND l.resource_id = {id} \
               AND l.version_id = {version_id}"
        ));
        let Some(row) = sql
            .query()
            .get_result::<LeafCheckpointSql>(&mut *conn)
            .optional()?
        else {
            return Ok(LeafInclusion::NotInLog);
        };
        let Some(checkpoint) = row.checkpoint.into_row()? else {
            return Ok(LeafInclusion::NotAnchored);
        };
        let leaf = LoggedLeaf {
            leaf_index: to_u64(row.leaf_index, "leaf index")?,
            leaf_data: row.leaf_data,
        };
        // The leaf's own tile, when kept, came with it: the path's lower
        // levels need no further read.
        let mut tiles = Tiles::new();
        let tile_index = leaf.leaf_index / TILE_WIDTH;
        if let Some(tile) = row.tile.and_then(|t| Tile::decode(tile_index, &t)) {
            tiles.insert(tile_index, tile);
        }
        let nodes = fhirledger_merkle::inclusion_nodes(leaf.leaf_index, checkpoint.tree_size)
            .map_err(|e| {
                StoreError::Internal(format!("the proof of leaf {}: {e}", leaf.leaf_index))
            })?;
        let hashes = self
            .node_cache()
            .nodes(&mut conn, nodes.ids(), &mut tiles)?;
        Ok(LeafInclusion::Anchored {
            leaf,
            checkpoint: Box::new(checkpoint),
            nodes,
            hashes,
        })
    }

    /// Which of these resources (of `resource_type`, any version) have a
    /// leaf that an anchored checkpoint covers: the "anchored" mark of a
    /// page of the access log, one statement for the page (the proof itself
    /// is [`PgStore::leaf_inclusion`], asked for one event at a time).
    pub fn anchored_among(
        &self,
        resource_type: &str,
        ids: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        #[derive(QueryableByName)]
        struct Anchored {
            #[diesel(sql_type = Text)]
            resource_id: String,
        }
        if ids.is_empty() {
            return Ok(Default::default());
        }
        // Kept prepared per connection (every page of a log asks it).
        let mut sql = Sql::default();
        let resource_type = sql.text(resource_type);
        let ids = sql.bind(Bind::Texts(ids.to_vec()));
        sql.push(&format!(
            "SELECT DISTINCT l.resource_id FROM merkle_leaves l \
             WHERE l.resource_type = {resource_type} AND l.resource_id = ANY({ids}) \
               AND l.leaf_index < (SELECT COALESCE(max(tree_size), 0) FROM merkle_checkpoints)"
        ));
        let rows = sql.query().load::<Anchored>(&mut *self.conn()?)?;
        Ok(rows.into_iter().map(|r| r.resource_id).collect())
    }

    /// The anchored checkpoint of exactly `tree_size` leaves, if any.
    pub fn checkpoint_at(&self, tree_size: u64) -> Result<Option<CheckpointRow>, StoreError> {
        diesel::sql_query(format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM merkle_checkpoints WHERE tree_size = $1"
        ))
        .bind::<BigInt, _>(to_i64(tree_size, "tree size")?)
        .get_result::<CheckpointSql>(&mut *self.conn()?)
        .optional()?
        .map(CheckpointSql::into_row)
        .transpose()
    }

    /// The perfect nodes of the log `(level, index)` asked for, or `None`
    /// when one of them is not stored (yet).
    pub fn merkle_nodes(&self, wanted: &[(u8, u64)]) -> Result<Option<Vec<Hash32>>, StoreError> {
        nodes(&mut *self.conn()?, wanted)
    }
}

fn snapshot(conn: &mut PgConnection) -> Result<LedgerSnapshot, StoreError> {
    let head = head(conn)?;
    let last_checkpoint = last_checkpoint(conn)?;
    let anchored = last_checkpoint.map(|c| c.tree_size).unwrap_or(0);
    let oldest_unanchored_at = if head.tree_size > anchored {
        diesel::sql_query("SELECT sequenced_at AS at FROM merkle_leaves WHERE leaf_index = $1")
            .bind::<BigInt, _>(to_i64(anchored, "tree size")?)
            .get_result::<Instant>(conn)
            .optional()?
            .map(|i| i.at)
    } else {
        None
    };
    let status = status(conn)?;
    let now = diesel::sql_query("SELECT now() AS at")
        .get_result::<Instant>(conn)?
        .at;
    Ok(LedgerSnapshot {
        head,
        last_checkpoint,
        oldest_unanchored_at,
        status,
        now,
    })
}

/// The anchoring worker's connection, and its leadership (a session
/// advisory lock held on it). Every statement blocks the calling thread.
pub struct AnchorSession {
    url: String,
    conn: Option<PgConnection>,
    leading: bool,
}

impl std::fmt::Debug for AnchorSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnchorSession")
            .field("connected", &self.conn.is_some())
            .field("leading", &self.leading)
            .finish()
    }
}

impl AnchorSession {
    /// A session on the database at `database_url`; the connection is
    /// opened on first use (and again after it is lost).
    pub fn new(database_url: &str) -> AnchorSession {
        AnchorSession {
            url: database_url.to_string(),
            conn: None,
            leading: false,
        }
    }

    fn conn(&mut self) -> Result<&mut PgConnection, StoreError> {
        if self.conn.is_none() {
            self.leading = false;
            let mut conn = PgConnection::establish(&self.url)?;
            conn.batch_execute("SET application_name = 'fhirledger anchoring worker'")?;
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::Internal("the anchoring connection vanished".into()))
    }

    /// Runs `f` on the connection; any error drops the connection (and with
    /// it the lock), so the worker starts over as a standby.
    fn run<T>(
        &mut self,
        f: impl FnOnce(&mut PgConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = f(self.conn()?);
        if result.is_err() {
            self.conn = None;
            self.leading = false;
        }
        result
    }

    /// Whether this session holds the leadership: takes the lock when free.
    /// Also checks that the connection (and so a lock already held) is alive.
    pub fn try_lead(&mut self) -> Result<bool, StoreError> {
        if self.leading {
            self.run(|conn| {
                conn.batch_execute("SELECT 1")?;
                Ok(())
            })?;
            return Ok(true);
        }
        let took = self.run(|conn| {
            Ok(
                diesel::sql_query("SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS flag")
                    .bind::<Text, _>(LEADER_LOCK_KEY)
                    .get_result::<Flag>(conn)?
                    .flag,
            )
        })?;
        self.leading = took;
        Ok(took)
    }

    /// Whether the last [`try_lead`](Self::try_lead) found this session leading.
    pub fn is_leading(&self) -> bool {
        self.leading
    }

    /// Gives the leadership up (closes the connection).
    pub fn resign(&mut self) {
        self.conn = None;
        self.leading = false;
    }

    /// The Merkle log's head.
    pub fn head(&mut self) -> Result<TreeHead, StoreError> {
        self.run(head)
    }

    /// The log's root over its first `size` leaves, folded from the stored
    /// frontier nodes of that size given as `(level, index)`
    /// ([`fhirledger_merkle::frontier_nodes`]); `None` when one is missing.
    pub fn frontier_hashes(
        &mut self,
        frontier: &[(u8, u64)],
    ) -> Result<Option<Vec<Hash32>>, StoreError> {
        self.run(|conn| nodes(conn, frontier))
    }

    /// The checkpoint of the largest tree size recorded.
    pub fn last_checkpoint(&mut self) -> Result<Option<CheckpointRow>, StoreError> {
        self.run(last_checkpoint)
    }

    /// The transaction in flight.
    pub fn inflight(&mut self) -> Result<Option<InflightRow>, StoreError> {
        self.run(|conn| {
            let Some(row) = diesel::sql_query(
                "SELECT tree_size, root, chain_id, contract, tx_hash, nonce, sent_at \
                 FROM merkle_anchor_inflight",
            )
            .get_result::<InflightSql>(conn)
            .optional()?
            else {
                return Ok(None);
            };
            Ok(Some(InflightRow {
                tree_size: to_u64(row.tree_size, "tree size")?,
                root: fixed(row.root, "in-flight root")?,
                chain_id: to_u64(row.chain_id, "chain id")?,
                contract: fixed(row.contract, "in-flight contract")?,
                tx_hash: row
                    .tx_hash
                    .map(|h| fixed(h, "in-flight tx hash"))
                    .transpose()?,
                nonce: to_u64(row.nonce, "nonce")?,
                sent_at: row.sent_at,
            }))
        })
    }

    /// Records the transaction about to be sent (replacing any other).
    pub fn put_inflight(&mut self, row: &InflightRow) -> Result<(), StoreError> {
        let row = *row;
        self.run(move |conn| {
            diesel::sql_query(
                "INSERT INTO merkle_anchor_inflight \
                   (tree_size, root, chain_id, contract, tx_hash, nonce, sent_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (singleton) DO UPDATE SET tree_size = EXCLUDED.tree_size, \
                   root = EXCLUDED.root, chain_id = EXCLUDED.chain_id, \
                   contract = EXCLUDED.contract, tx_hash = EXCLUDED.tx_hash, \
                   nonce = EXCLUDED.nonce, sent_at = EXCLUDED.sent_at",
            )
            .bind::<BigInt, _>(to_i64(row.tree_size, "tree size")?)
            .bind::<Bytea, _>(row.root.as_slice())
            .bind::<BigInt, _>(to_i64(row.chain_id, "chain id")?)
            .bind::<Bytea, _>(row.contract.as_slice())
            .bind::<Nullable<Bytea>, _>(row.tx_hash.as_ref().map(|h| h.as_slice()))
            .bind::<BigInt, _>(to_i64(row.nonce, "nonce")?)
            .bind::<Timestamptz, _>(row.sent_at)
            .execute(conn)?;
            Ok(())
        })
    }

    /// Forgets the transaction in flight (replaced, dropped, or failed).
    pub fn clear_inflight(&mut self) -> Result<(), StoreError> {
        self.run(|conn| {
            diesel::sql_query("DELETE FROM merkle_anchor_inflight").execute(conn)?;
            Ok(())
        })
    }

    /// Records a final checkpoint and forgets any transaction in flight for a
    /// size up to it, in one transaction. A checkpoint already recorded with
    /// the same root is left as it is; with another root it is an error
    /// (the table is append-only, and the chain holds one root per size).
    pub fn record_checkpoint(&mut self, row: &CheckpointRow) -> Result<(), StoreError> {
        let row = *row;
        self.run(move |conn| {
            conn.transaction(|conn| {
                let inserted = diesel::sql_query(format!(
                    "INSERT INTO merkle_checkpoints ({CHECKPOINT_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tree_size) DO NOTHING"
                ))
                .bind::<BigInt, _>(to_i64(row.tree_size, "tree size")?)
                .bind::<Bytea, _>(row.root.as_slice())
                .bind::<BigInt, _>(to_i64(row.chain_id, "chain id")?)
                .bind::<Bytea, _>(row.contract.as_slice())
                .bind::<Bytea, _>(row.tx_hash.as_slice())
                .bind::<BigInt, _>(to_i64(row.block_number, "block number")?)
                .bind::<Bytea, _>(row.block_hash.as_slice())
                .bind::<Timestamptz, _>(row.anchored_at)
                .execute(conn)?;
                if inserted == 0 {
                    let existing = diesel::sql_query(format!(
                        "SELECT {CHECKPOINT_COLUMNS} FROM merkle_checkpoints WHERE tree_size = $1"
                    ))
                    .bind::<BigInt, _>(to_i64(row.tree_size, "tree size")?)
                    .get_result::<CheckpointSql>(conn)?
                    .into_row()?;
                    if existing.root != row.root {
                        return Err(StoreError::Internal(format!(
                            "checkpoint {} is already recorded with another root",
                            row.tree_size
                        )));
                    }
                }
                diesel::sql_query("DELETE FROM merkle_anchor_inflight WHERE tree_size <= $1")
                    .bind::<BigInt, _>(to_i64(row.tree_size, "tree size")?)
                    .execute(conn)?;
                Ok(())
            })
        })
    }

    /// Publishes the worker's state for `$ledger-status` on every replica.
    pub fn put_status(
        &mut self,
        state: &str,
        chain_id: Option<u64>,
        contract: Option<[u8; 20]>,
        last_error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.run(|conn| {
            diesel::sql_query(
                "INSERT INTO merkle_anchor_status (state, chain_id, contract, last_error, updated_at) \
                 VALUES ($1, $2, $3, $4, now()) \
                 ON CONFLICT (singleton) DO UPDATE SET state = EXCLUDED.state, \
                   chain_id = EXCLUDED.chain_id, contract = EXCLUDED.contract, \
                   last_error = EXCLUDED.last_error, updated_at = EXCLUDED.updated_at",
            )
            .bind::<Text, _>(state)
            .bind::<Nullable<BigInt>, _>(chain_id.map(|id| to_i64(id, "chain id")).transpose()?)
            .bind::<Nullable<Bytea>, _>(contract.as_ref().map(|c| c.as_slice()))
            .bind::<Nullable<Text>, _>(last_error)
            .execute(conn)?;
            Ok(())
        })
    }
}
