-- Every full tile below `below` is kept in `merkle_tiles`. The sequencer moves the
-- mark: with the tiles it writes as the log grows, and by writing the missing ones
-- from their leaves, 128 a pass — for a log sequenced before tiles were kept, or
-- extended since by processes of an older version during a rolling upgrade, whose
-- leaves get no tiles.
--
-- It replaces `merkle_tile_backfill`, a range fixed when the tiles migration ran: that
-- migration may run while older processes keep sequencing (or before any leaf
-- exists, from a tool that migrates first), and the tiles of what they sequence
-- afterwards were never written. From zero, the sequencer checks every tile once.
DROP TABLE merkle_tile_backfill;
CREATE TABLE merkle_tiles_kept (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    below     BIGINT  NOT NULL
);
INSERT INTO merkle_tiles_kept (below) VALUES (0);
