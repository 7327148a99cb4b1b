//! The Merkle log's lower levels kept as tiles (`merkle_tiles`), on a
//! private PostgreSQL cluster of this binary's own (one test: the log is
//! the database's, and no other test may add leaves to it meanwhile).
//!
//! Every node a proof or the sequencer asks for must be the node RFC 9162
//! defines, whether it comes from a kept tile, from the leaves of the
//! partial tile on the right edge, or from the leaves of a tile sequenced
//! before tiles were kept; and a log from before tiles gets them written by
//! the sequencer's backfill.

mod common;

use common::{database_url, store};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea};
use fhirledger_merkle::{
    consistency_nodes, inclusion_nodes, reference, verify_consistency, verify_inclusion, Hash,
    Hasher, Keccak256Hasher, LeafData, LeafKind, Tile, TILE_HEIGHT, TILE_WIDTH,
};
use fhirledger_postgres::{PgStore, PoolConfig};

/// A store with nothing in memory yet.
fn fresh_store() -> PgStore {
    PgStore::connect(database_url(), &PoolConfig::default()).expect("a store")
}

fn connect() -> PgConnection {
    PgConnection::establish(database_url()).expect("a connection to the test database")
}

fn leaf(i: u64) -> Vec<u8> {
    LeafData {
        kind: LeafKind::AuditEvent,
        resource_type: "AuditEvent".into(),
        id: format!("tile-test-{i}"),
        version_id: "1".into(),
        content_sha256: [(i % 251) as u8; 32],
        recorded_micros: 1_767_225_600_000_000 + i as i64,
        salt: [(i % 241) as u8; 32],
    }
    .encode()
    .expect("a leaf")
}

#[derive(QueryableByName, Debug, PartialEq, Eq)]
struct TileRow {
    #[diesel(sql_type = BigInt)]
    tile_index: i64,
    #[diesel(sql_type = Bytea)]
    hashes: Vec<u8>,
}

fn tiles(conn: &mut PgConnection) -> Vec<TileRow> {
    diesel::sql_query("SELECT tile_index, hashes FROM merkle_tiles ORDER BY tile_index")
        .load(conn)
        .expect("the tiles")
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<N>(conn)
        .expect("a count")
        .n
}

/// Every leaf's inclusion proof in a tree of `size`, and the consistency
/// proof from every earlier size of `sizes`, from the store's nodes, verify
/// against the roots computed here from all the leaves.
#[track_caller]
fn proofs_hold(s: &PgStore, leaf_hashes: &[Hash], sizes: &[u64], size: u64) {
    let hasher = Keccak256Hasher;
    let root = reference::root(&hasher, &leaf_hashes[..size as usize]);
    assert_eq!(
        s.log_root_at(size).expect("root at"),
        Some(root),
        "root at {size}"
    );
    for i in 0..size {
        let nodes = inclusion_nodes(i, size).expect("inclusion nodes");
        let path = nodes
            .assemble(&hasher, &s.log_nodes(nodes.ids()).expect("the nodes"))
            .expect("a path");
        verify_inclusion(&hasher, i, size, &leaf_hashes[i as usize], &path, &root)
            .unwrap_or_else(|e| panic!("leaf {i} in {size}: {e}"));
    }
    for &earlier in sizes.iter().filter(|&&e| e > 0 && e < size) {
        let nodes = consistency_nodes(earlier, size).expect("consistency nodes");
        let path = nodes
            .assemble(&hasher, &s.log_nodes(nodes.ids()).expect("the nodes"))
            .expect("a path");
        let earlier_root = reference::root(&hasher, &leaf_hashes[..earlier as usize]);
        verify_consistency(&hasher, earlier, size, &earlier_root, &root, &path)
            .unwrap_or_else(|e| panic!("{earlier} to {size}: {e}"));
    }
}

#[test]
fn tiles_kept_computed_from_leaves_and_backfilled_give_the_same_proofs() {
    let hasher = Keccak256Hasher;
    let s = store();
    let mut conn = connect();
    // Passes of odd sizes: the right edge's tile is partial after most of
    // them, full after some, and one pass fills several tiles.
    let passes = [1u64, 6, 57, 1, 64, 300, 50, 2];
    let mut data = Vec::new();
    let mut sizes = Vec::new();
    for n in passes {
        let batch: Vec<Vec<u8>> = (0..n).map(|k| leaf(data.len() as u64 + k)).collect();
        diesel::sql_query("INSERT INTO merkle_pending (leaf_data) SELECT unnest($1::bytea[])")
            .bind::<Array<Bytea>, _>(&batch)
            .execute(&mut conn)
            .expect("pending leaves");
        data.extend(batch);
        let pass = s
            .sequence_log(1_000)
            .expect("a pass")
            .expect("the sequencer's lock");
        assert_eq!(pass.tree_size, data.len() as u64);
        let hashes: Vec<Hash> = data.iter().map(|d| hasher.leaf_hash(d)).collect();
        assert_eq!(
            pass.root,
            reference::root(&hasher, &hashes),
            "root at {}",
            pass.tree_size
        );
        sizes.push(pass.tree_size);
    }
    let size = data.len() as u64;
    let leaf_hashes: Vec<Hash> = data.iter().map(|d| hasher.leaf_hash(d)).collect();

    // Full tiles are kept, each the hashes of its leaves; no node below the
    // tile height is a row of its own.
    let kept = tiles(&mut conn);
    assert_eq!(kept.len() as u64, size / TILE_WIDTH);
    for (t, row) in kept.iter().enumerate() {
        assert_eq!(row.tile_index, t as i64);
        let first = t * TILE_WIDTH as usize;
        let tile = Tile::from_leaves(&hasher, t as u64, &leaf_hashes[first..]);
        assert_eq!(Some(row.hashes.clone()), tile.encode());
    }
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM merkle_nodes WHERE level < {TILE_HEIGHT}")
        ),
        0
    );
    for &at in &sizes {
        proofs_hold(s, &leaf_hashes, &sizes, at);
    }

    // Tiles are append-only like the rest of the log.
    let refused = conn.batch_execute("UPDATE merkle_tiles SET hashes = hashes");
    assert!(refused.is_err(), "a tile was rewritten");

    // The mark says every full tile is kept.
    let kept_below =
        |conn: &mut PgConnection| count(conn, "SELECT below AS n FROM merkle_tiles_kept");
    assert_eq!(kept_below(&mut conn), (size / TILE_WIDTH) as i64);

    // A log from before tiles were kept: no tile rows, the mark at zero, as
    // the migration leaves it. Proofs hold meanwhile (from the leaves), and
    // sequencer passes, with no new leaf to sequence, write the very same
    // tiles and move the mark to the edge.
    conn.batch_execute(
        "ALTER TABLE merkle_tiles DISABLE TRIGGER USER; DELETE FROM merkle_tiles; \
         ALTER TABLE merkle_tiles ENABLE TRIGGER USER; UPDATE merkle_tiles_kept SET below = 0;",
    )
    .expect("a log from before tiles");
    // A store of its own: the first one keeps the nodes it read in memory.
    proofs_hold(&fresh_store(), &leaf_hashes, &sizes, size);
    while kept_below(&mut conn) < (size / TILE_WIDTH) as i64 {
        let pass = s
            .sequence_log(1_000)
            .expect("a pass")
            .expect("the sequencer's lock");
        assert_eq!(pass.appended, 0);
    }
    assert_eq!(tiles(&mut conn), kept);
    proofs_hold(&fresh_store(), &leaf_hashes, &sizes, size);
}
