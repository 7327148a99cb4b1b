-- Anchoring the Merkle log on chain (ARCHITECTURE.md, "Anchoring"): the anchoring worker
-- (one at a time across replicas: a session advisory lock) writes the current tree head
-- (tree_size, root) to the AuditAnchor contract and records each checkpoint here once its
-- receipt is final.

-- Every checkpoint anchored on chain, as its receipt says. Append-only, like the log.
CREATE TABLE merkle_checkpoints (
    tree_size    BIGINT      PRIMARY KEY CHECK (tree_size > 0),
    root         BYTEA       NOT NULL CHECK (octet_length(root) = 32),
    chain_id     BIGINT      NOT NULL,
    contract     BYTEA       NOT NULL CHECK (octet_length(contract) = 20),
    tx_hash      BYTEA       NOT NULL CHECK (octet_length(tx_hash) = 32),
    block_number BIGINT      NOT NULL,
    block_hash   BYTEA       NOT NULL CHECK (octet_length(block_hash) = 32),
    anchored_at  TIMESTAMPTZ NOT NULL
);
CREATE TRIGGER merkle_checkpoints_append_only BEFORE UPDATE OR DELETE ON merkle_checkpoints
    FOR EACH ROW EXECUTE FUNCTION merkle_log_is_append_only();
CREATE TRIGGER merkle_checkpoints_no_truncate BEFORE TRUNCATE ON merkle_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION merkle_log_is_append_only();

-- The checkpoint transaction in flight, written before it is sent (with the nonce it is
-- signed for and its hash, which deterministic signing fixes before sending) and removed
-- in the transaction that records its checkpoint, or when reconciliation finds it
-- replaced or dropped. At most one: one transaction in flight at a time.
CREATE TABLE merkle_anchor_inflight (
    singleton BOOLEAN     PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    tree_size BIGINT      NOT NULL,
    root      BYTEA       NOT NULL CHECK (octet_length(root) = 32),
    chain_id  BIGINT      NOT NULL,
    contract  BYTEA       NOT NULL CHECK (octet_length(contract) = 20),
    tx_hash   BYTEA       CHECK (octet_length(tx_hash) = 32),
    nonce     BIGINT      NOT NULL,
    sent_at   TIMESTAMPTZ NOT NULL
);

-- What the active worker last observed, for `$ledger-status` on every replica.
CREATE TABLE merkle_anchor_status (
    singleton  BOOLEAN     PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    state      TEXT        NOT NULL,
    chain_id   BIGINT,
    contract   BYTEA,
    last_error TEXT,
    updated_at TIMESTAMPTZ NOT NULL
);
