//! The Merkle log's tables (see the `merkle_log` migration): a pending leaf
//! for each Consent version and each AuditEvent, written in the transaction
//! that writes it; the sequencer that gives committed pending leaves their
//! indexes and stores the perfect subtree nodes they complete; and the reads
//! proofs are made of. What a leaf is and how the tree hashes are
//! `fhirledger-merkle`'s business; this module only keeps them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea, Int2, Text, Timestamptz};
use std::collections::HashMap;

use fhirledger_merkle::{
    frontier_nodes, range_hash, tile_of, Frontier, Hash, Hasher, Keccak256Hasher, LeafData,
    LeafKind, NodeId, PerfectNode, Tile, TILE_HEIGHT, TILE_WIDTH,
};
use sha2::{Digest, Sha256};

use crate::schema::{merkle_leaves, merkle_nodes, merkle_pending, merkle_tiles};
use crate::search::{Bind, Sql};
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
#[diesel(table_name = merkle_tiles, treat_none_as_default_value = false)]
struct NewTile {
    tile_index: i64,
    hashes: Vec<u8>,
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
    node_hashes(conn, ids, &mut Tiles::new(), None)?.map_err(no_node)
}

/// What a node the log should have but lacks makes of a read.
fn no_node(id: NodeId) -> StoreError {
    StoreError::Internal(format!(
        "the log has no node at level {} index {}",
        id.level, id.index
    ))
}

/// The hashes of `ids`, in their order, or the first that is not stored
/// (yet). See [`node_hashes`].
pub(crate) fn stored_nodes(
    conn: &mut PgConnection,
    ids: &[NodeId],
) -> Result<Result<Vec<Hash>, NodeId>, StoreError> {
    node_hashes(conn, ids, &mut Tiles::new(), None)
}

/// Tiles by index (`fhirledger_merkle::tile`): a full tile as
/// `merkle_tiles` keeps it, or, for a tile it does not keep (the log's
/// partial right edge, or sequenced before tiles were kept), built from its
/// leaves as far as `merkle_leaves` holds them.
pub(crate) type Tiles = HashMap<u64, Tile>;

#[derive(QueryableByName)]
struct NodeOrTileRow {
    /// The node's level, or [`TILE_ROW`] for a tile.
    #[diesel(sql_type = Int2)]
    level: i16,
    /// The node's index, or the tile's.
    #[diesel(sql_type = BigInt)]
    node_index: i64,
    /// The node's hash, or the tile's leaf hashes.
    #[diesel(sql_type = Bytea)]
    hash: Vec<u8>,
}

/// The `level` of a tile's row in the node query.
const TILE_ROW: i16 = -1;

/// The hashes of `ids`, in their order, or the first that is not stored
/// (yet). Each comes from `cache` when it holds it; otherwise nodes from
/// level [`TILE_HEIGHT`] up are `merkle_nodes` rows, and lower ones are
/// taken from their tile: from `tiles` when the caller has it (a proof's
/// own tile, the sequencer's right edge), else read from `merkle_tiles`,
/// else built from the tile's leaves. One statement for the nodes and
/// tiles, a second only for tiles not kept. Tiles read are added to
/// `tiles`.
pub(crate) fn node_hashes(
    conn: &mut PgConnection,
    ids: &[NodeId],
    tiles: &mut Tiles,
    cache: Option<&NodeCache>,
) -> Result<Result<Vec<Hash>, NodeId>, StoreError> {
    // Nodes known without computing: the cache's, and those read here.
    let mut known: HashMap<NodeId, Hash> = HashMap::new();
    let (mut levels, mut indexes, mut wanted_tiles) = (Vec::new(), Vec::new(), Vec::new());
    for id in ids {
        if let Some(hash) = cache.and_then(|c| c.get(id)) {
            known.insert(*id, hash);
            continue;
        }
        match tile_of(*id) {
            Some(tile) => {
                let tile = index_of(tile)?;
                if !tiles.contains_key(&(tile as u64)) && !wanted_tiles.contains(&tile) {
                    wanted_tiles.push(tile);
                }
            }
            None => {
                levels.push(i32::from(id.level));
                indexes.push(index_of(id.index)?);
            }
        }
    }
    // Lower nodes from tiles read here go to the cache too: a proof's own
    // tile comes with its leaf (and is different for every proof), so the
    // tiles read here are the ones many proofs share, such as the partial
    // tile on the right edge of the checkpoint they are proven in.
    let read_here: Vec<u64> = wanted_tiles.iter().map(|t| *t as u64).collect();
    if !levels.is_empty() || !wanted_tiles.is_empty() {
        let mut sql = Sql::default();
        let (levels, indexes) = (
            sql.bind(Bind::Ints(levels)),
            sql.bind(Bind::BigInts(indexes)),
        );
        let wanted = sql.bind(Bind::BigInts(wanted_tiles.clone()));
        sql.push(&format!(
            "SELECT n.level, n.node_index, n.hash FROM merkle_nodes n \
             JOIN unnest({levels}::int[], {indexes}::bigint[]) AS want(level, node_index) \
               ON n.level = want.level AND n.node_index = want.node_index \
             UNION ALL \
             SELECT {TILE_ROW}::smallint, tile_index, hashes FROM merkle_tiles \
             WHERE tile_index = ANY({wanted})"
        ));
        for row in sql.query().load::<NodeOrTileRow>(conn)? {
            if row.level == TILE_ROW {
                let index = size_of(row.node_index)?;
                let tile = Tile::decode(index, &row.hash)
                    .ok_or_else(|| StoreError::Internal(format!("tile {index} is damaged")))?;
                tiles.insert(index, tile);
            } else {
                let id = NodeId::new(
                    u8::try_from(row.level)
                        .map_err(|_| StoreError::Internal("a log node's level".into()))?,
                    size_of(row.node_index)?,
                );
                let hash = hash_of(&row.hash, "a log node")?;
                if let Some(cache) = cache {
                    cache.insert(id, hash);
                }
                known.insert(id, hash);
            }
        }
    }
    wanted_tiles.retain(|t| !tiles.contains_key(&(*t as u64)));
    if !wanted_tiles.is_empty() {
        read_tiles_from_leaves(conn, &wanted_tiles, tiles)?;
    }
    let mut hashes = Vec::with_capacity(ids.len());
    for id in ids {
        let hash = match (known.get(id), tile_of(*id)) {
            (Some(hash), _) => Some(*hash),
            (None, Some(tile)) => {
                let hash = tiles.get(&tile).and_then(|t| t.node(*id));
                if let (Some(hash), Some(cache)) = (hash, cache) {
                    if read_here.contains(&tile) {
                        cache.insert(*id, hash);
                    }
                }
                hash
            }
            (None, None) => None,
        };
        match hash {
            Some(hash) => hashes.push(hash),
            None => return Ok(Err(*id)),
        }
    }
    Ok(Ok(hashes))
}

/// The leaf hashes of tiles `merkle_tiles` does not keep, from their leaves
/// (as many as are sequenced), into `tiles`: one range of the leaves'
/// primary key per run of consecutive tiles. Planned for each call, with
/// its bounds: a generic plan (or a join with the list of tiles) cannot
/// know how few leaves a range holds and went to a parallel scan of them
/// all.
fn read_tiles_from_leaves(
    conn: &mut PgConnection,
    wanted: &[i64],
    tiles: &mut Tiles,
) -> Result<(), StoreError> {
    let mut sorted = wanted.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for tile in sorted {
        match runs.last_mut() {
            Some((_, end)) if *end == tile => *end += 1,
            _ => runs.push((tile, tile + 1)),
        }
    }
    let width = TILE_WIDTH as i64;
    let mut leaves: HashMap<u64, Vec<Hash>> = HashMap::new();
    for (first, end) in runs {
        let rows = diesel::sql_query(
            "SELECT leaf_index, leaf_data FROM merkle_leaves \
             WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index",
        )
        .bind::<BigInt, _>(first.saturating_mul(width))
        .bind::<BigInt, _>(end.saturating_mul(width))
        .load::<LeafRow>(conn)?;
        for row in rows {
            let index = size_of(row.leaf_index)?;
            let tile = index / TILE_WIDTH;
            let hashes = leaves.entry(tile).or_default();
            // Leaf indexes are gapless: anything else is a damaged log,
            // which leaves the tile's later nodes unknown rather than wrong.
            if index == tile * TILE_WIDTH + hashes.len() as u64 {
                hashes.push(Keccak256Hasher.leaf_hash(&row.leaf_data));
            }
        }
    }
    for tile in wanted {
        let tile = size_of(*tile)?;
        let hashes = leaves.remove(&tile).unwrap_or_default();
        tiles.insert(tile, Tile::from_leaves(&Keccak256Hasher, tile, &hashes));
    }
    Ok(())
}

/// How many perfect nodes [`NodeCache`] keeps: every node at its levels of a
/// log of 2^25 (33 million) leaves, 2^18 entries of about 60 bytes.
const NODE_CACHE_ENTRIES: usize = 1 << 18;

/// The perfect nodes of the log that proofs share, in memory, so that a
/// proof reads only its own tile from the database: the nodes from
/// [`TILE_HEIGHT`] up (a node at level `l` is in the proof of `2^l` leaves,
/// so they are asked for again and again, and they are few: a
/// 2^(6+k)-leaf log has about 2^(k+1) of them) and the lower nodes of tiles
/// other than a proof's own (the right edge of a checkpoint, which nearly
/// every proof in that checkpoint needs). Nothing is ever invalidated: a
/// stored node never changes (the append-only triggers), its hash depends
/// only on the leaves below it. Bounded; the least used go.
pub(crate) struct NodeCache(quick_cache::sync::Cache<NodeId, Hash>);

impl NodeCache {
    pub(crate) fn new() -> Self {
        NodeCache(quick_cache::sync::Cache::new(NODE_CACHE_ENTRIES))
    }

    fn get(&self, id: &NodeId) -> Option<Hash> {
        self.0.get(id)
    }

    fn insert(&self, id: NodeId, hash: Hash) {
        self.0.insert(id, hash);
    }

    /// The hashes of `ids` in their order: upper nodes from memory where
    /// kept, the rest (and the tiles of the lower ones not in `tiles`) from
    /// `conn`.
    pub(crate) fn nodes(
        &self,
        conn: &mut PgConnection,
        ids: &[NodeId],
        tiles: &mut Tiles,
    ) -> Result<Vec<Hash>, StoreError> {
        node_hashes(conn, ids, tiles, Some(self))?.map_err(no_node)
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
        let tiles_caught_up = backfill_tiles(conn, start.tree_size)?;
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
        // The right edge's tile as far as it is sequenced: its leaves give
        // the frontier's lower nodes, and it is written once full.
        let mut tile_index = start.tree_size / TILE_WIDTH;
        let mut tiles = Tiles::new();
        if start.tree_size % TILE_WIDTH == 0 {
            tiles.insert(tile_index, Tile::default());
        } else {
            read_tiles_from_leaves(conn, &[index_of(tile_index)?], &mut tiles)?;
        }
        let edge = node_hashes(conn, &frontier_nodes(start.tree_size), &mut tiles, None)?.map_err(
            |id| {
                StoreError::Internal(format!(
                    "the log's right edge lacks its node at level {} index {}",
                    id.level, id.index
                ))
            },
        )?;
        let mut frontier = Frontier::restore(hasher, start.tree_size, edge)
            .map_err(|e| StoreError::Internal(format!("the log's right edge: {e}")))?;
        let mut tile: Vec<Hash> = tiles
            .remove(&tile_index)
            .map(|t| t.leaf_hashes().to_vec())
            .unwrap_or_default();
        if tile.len() as u64 != start.tree_size % TILE_WIDTH {
            return Err(StoreError::Internal(format!(
                "the log's last tile ({tile_index}) has {} of its leaves, not {}",
                tile.len(),
                start.tree_size % TILE_WIDTH
            )));
        }
        let decoded = pending
            .iter()
            .map(|p| {
                LeafData::decode(&p.leaf_data).map_err(|e| {
                    StoreError::Internal(format!("pending leaf {} is corrupt: {e}", p.pending_id))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Nodes below the tiles' height are kept in their tiles, not as rows.
        let mut completed: Vec<PerfectNode> = Vec::new();
        let mut full_tiles: Vec<NewTile> = Vec::new();
        for p in &pending {
            let leaf = hasher.leaf_hash(&p.leaf_data);
            frontier
                .append_with(leaf, |n| {
                    if n.id.level >= TILE_HEIGHT {
                        completed.push(n)
                    }
                })
                .map_err(|e| StoreError::Internal(format!("the log is full: {e}")))?;
            tile.push(leaf);
            if tile.len() as u64 == TILE_WIDTH {
                let full = Tile::from_leaves(&hasher, tile_index, &tile);
                full_tiles.push(NewTile {
                    tile_index: index_of(tile_index)?,
                    hashes: full.encode().ok_or_else(|| {
                        StoreError::Internal(format!("tile {tile_index} is not full"))
                    })?,
                });
                tile.clear();
                tile_index += 1;
            }
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
        if !full_tiles.is_empty() {
            diesel::copy_from(merkle_tiles::table)
                .from_insertable(full_tiles)
                .execute(conn)?;
            if tiles_caught_up {
                keep_tiles_below(conn, index_of(frontier.size() / TILE_WIDTH)?)?;
            }
        }
        let new_nodes = completed
            .iter()
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

/// Full tiles missing below the log's right edge (a log sequenced before
/// tiles were kept, or extended since by processes of such a version) that
/// one sequencer pass writes at most: 8,192 leaves read and hashed, a few
/// milliseconds.
const BACKFILL_TILES_PER_PASS: i64 = 128;

/// Moves `merkle_tiles_kept.below` (every full tile below it is kept) up to
/// the full tiles of a log of `tree_size` leaves, at most
/// [`BACKFILL_TILES_PER_PASS`] tiles at a time, writing those missing from
/// their leaves; in the sequencer's transaction. Says whether it reached
/// them all: a pass that starts caught up keeps the mark at the edge itself.
fn backfill_tiles(conn: &mut PgConnection, tree_size: u64) -> Result<bool, StoreError> {
    #[derive(QueryableByName)]
    struct Kept {
        #[diesel(sql_type = BigInt)]
        below: i64,
    }
    #[derive(QueryableByName)]
    struct Present {
        #[diesel(sql_type = BigInt)]
        tile_index: i64,
    }
    let below = diesel::sql_query("SELECT below FROM merkle_tiles_kept")
        .get_result::<Kept>(conn)?
        .below;
    let end = index_of(tree_size / TILE_WIDTH)?;
    if below >= end {
        return Ok(true);
    }
    let until = below.saturating_add(BACKFILL_TILES_PER_PASS).min(end);
    let present: Vec<i64> = diesel::sql_query(
        "SELECT tile_index FROM merkle_tiles WHERE tile_index >= $1 AND tile_index < $2",
    )
    .bind::<BigInt, _>(below)
    .bind::<BigInt, _>(until)
    .load::<Present>(conn)?
    .into_iter()
    .map(|p| p.tile_index)
    .collect();
    let missing: Vec<i64> = (below..until).filter(|t| !present.contains(t)).collect();
    if !missing.is_empty() {
        let mut tiles = Tiles::new();
        read_tiles_from_leaves(conn, &missing, &mut tiles)?;
        let rows = missing
            .iter()
            .map(|t| {
                let hashes = tiles
                    .get(&size_of(*t)?)
                    .and_then(Tile::encode)
                    .ok_or_else(|| {
                        StoreError::Internal(format!("tile {t} to backfill lacks leaves"))
                    })?;
                Ok(NewTile {
                    tile_index: *t,
                    hashes,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        diesel::copy_from(merkle_tiles::table)
            .from_insertable(rows)
            .execute(conn)?;
        tracing::debug!(tiles = missing.len(), until, "log tiles backfilled");
    }
    keep_tiles_below(conn, until)?;
    Ok(until == end)
}

fn keep_tiles_below(conn: &mut PgConnection, below: i64) -> Result<(), StoreError> {
    diesel::sql_query("UPDATE merkle_tiles_kept SET below = $1")
        .bind::<BigInt, _>(below)
        .execute(conn)?;
    Ok(())
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
        self.node_cache()
            .nodes(&mut *self.conn()?, ids, &mut Tiles::new())
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
