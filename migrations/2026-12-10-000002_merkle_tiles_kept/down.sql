DROP TABLE merkle_tiles_kept;
CREATE TABLE merkle_tile_backfill (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    next_tile BIGINT  NOT NULL,
    end_tile  BIGINT  NOT NULL
);
