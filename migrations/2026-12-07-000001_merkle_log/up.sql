-- The Merkle log (ARCHITECTURE.md, "Merkle log"): one append-only log per deployment
-- whose leaves are every Consent version and every AuditEvent, hashed as RFC 9162 with
-- Keccak-256 (fhirledger-merkle), so that its checkpoints can be anchored on chain and
-- any leaf proven against them.
--
-- A leaf is written in two steps:
--
-- * `merkle_pending`: the leaf's data (fhirledger_merkle::LeafData, encoded, salt
--   included) is inserted in the transaction that writes what it describes, so it
--   commits with it or not at all: a writer that rolls back leaves nothing behind;
-- * the sequencer (one at a time across replicas: an advisory lock) moves committed
--   pending leaves into `merkle_leaves` a batch at a time, giving them the next leaf
--   indexes, and stores the perfect subtree nodes they complete in `merkle_nodes`.
--
-- Leaf indexes are therefore gapless and fixed once given, and follow commit order:
-- every leaf committed before a sequencer pass precedes every leaf committed after it
-- (within one pass, by `pending_id`). Handing out indexes inside each writer's
-- transaction would serialise every audited request on one row lock held through its
-- commit's flush.
CREATE TABLE merkle_pending (
    pending_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    leaf_data  BYTEA NOT NULL
);

CREATE TABLE merkle_leaves (
    leaf_index    BIGINT      PRIMARY KEY,
    -- What the leaf describes, decoded from `leaf_data` for finding a resource's leaf.
    resource_type TEXT        NOT NULL,
    resource_id   TEXT        NOT NULL,
    version_id    TEXT        NOT NULL,
    -- The canonical encoding the leaf hash is computed over (salt included).
    leaf_data     BYTEA       NOT NULL,
    sequenced_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX merkle_leaves_by_resource ON merkle_leaves (resource_type, resource_id, version_id);

-- Every perfect subtree of the log above the leaves: a node covers leaves
-- [node_index * 2^level, (node_index + 1) * 2^level). Inclusion and consistency proofs
-- read O(log n) of them (fhirledger_merkle::inclusion_nodes, consistency_nodes). A leaf's
-- own hash (level 0) is not kept: it is one Keccak-256 of its `merkle_leaves` data away,
-- and keeping it would cost a row and an index entry per audited access.
CREATE TABLE merkle_nodes (
    level      SMALLINT NOT NULL,
    node_index BIGINT   NOT NULL,
    hash       BYTEA    NOT NULL,
    PRIMARY KEY (level, node_index)
);

-- The tree head: its size and root, moved by the sequencer in the transaction that adds
-- the leaves.
CREATE TABLE merkle_head (
    singleton  BOOLEAN     PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    tree_size  BIGINT      NOT NULL,
    root       BYTEA       NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
-- The empty log's root: Keccak-256 of no bytes.
INSERT INTO merkle_head (tree_size, root, updated_at)
VALUES (0, '\xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470', now());

-- Sequenced leaves and nodes are never changed or removed, whoever asks.
CREATE FUNCTION merkle_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the Merkle log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER merkle_leaves_append_only BEFORE UPDATE OR DELETE ON merkle_leaves
    FOR EACH ROW EXECUTE FUNCTION merkle_log_is_append_only();
CREATE TRIGGER merkle_leaves_no_truncate BEFORE TRUNCATE ON merkle_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION merkle_log_is_append_only();
CREATE TRIGGER merkle_nodes_append_only BEFORE UPDATE OR DELETE ON merkle_nodes
    FOR EACH ROW EXECUTE FUNCTION merkle_log_is_append_only();
CREATE TRIGGER merkle_nodes_no_truncate BEFORE TRUNCATE ON merkle_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION merkle_log_is_append_only();

-- Append-only tables: vacuum only freezes, as for the audit trail.
ALTER TABLE merkle_leaves SET (autovacuum_vacuum_insert_threshold = 100000,
                               autovacuum_analyze_threshold = 100000);
ALTER TABLE merkle_nodes SET (autovacuum_vacuum_insert_threshold = 100000,
                              autovacuum_analyze_threshold = 100000);
