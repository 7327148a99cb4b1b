-- The log's lowest levels as tiles (fhirledger_merkle::tile, ARCHITECTURE.md "Merkle
-- log"): for each full run of 64 leaves, one row holding every perfect node of levels 0
-- to 5 over them (64 leaf hashes, then 32, 16, 8, 4 and 2 nodes). `merkle_nodes` keeps the
-- nodes from level 6 up. A random leaf's proof then reads one tile row where it probed
-- six node rows and a sibling leaf, and the sequencer writes one row per 64 leaves where
-- it wrote one per leaf.
--
-- The leaves of a tile not (yet) kept here, the partial tile on the log's right edge
-- and the full tiles of leaves sequenced before this migration, are read from
-- `merkle_leaves` and hashed instead: same hashes, more rows read.
CREATE TABLE merkle_tiles (
    tile_index BIGINT PRIMARY KEY,
    -- The nodes over leaves [tile_index * 64, tile_index * 64 + 64): level by level from
    -- the leaves up, each from the left; 126 hashes of 32 bytes.
    hashes     BYTEA  NOT NULL CHECK (octet_length(hashes) = 4032)
);
-- Hashes do not compress, and 4 KB fits a page: kept in the row, no TOAST look-up.
ALTER TABLE merkle_tiles ALTER COLUMN hashes SET STORAGE PLAIN;

CREATE TRIGGER merkle_tiles_append_only BEFORE UPDATE OR DELETE ON merkle_tiles
    FOR EACH ROW EXECUTE FUNCTION merkle_log_is_append_only();
CREATE TRIGGER merkle_tiles_no_truncate BEFORE TRUNCATE ON merkle_tiles
    FOR EACH STATEMENT EXECUTE FUNCTION merkle_log_is_append_only();
ALTER TABLE merkle_tiles SET (autovacuum_vacuum_insert_threshold = 10000,
                              autovacuum_analyze_threshold = 10000);

-- The full tiles of a log sequenced before tiles were kept, [next_tile, end_tile): the
-- sequencer writes a few of them on each pass until none is left, then deletes the row.
CREATE TABLE merkle_tile_backfill (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    next_tile BIGINT  NOT NULL,
    end_tile  BIGINT  NOT NULL
);
INSERT INTO merkle_tile_backfill (next_tile, end_tile)
SELECT 0, tree_size / 64 FROM merkle_head WHERE tree_size >= 64;
