DROP TABLE merkle_tile_backfill;
DROP TABLE merkle_tiles;
