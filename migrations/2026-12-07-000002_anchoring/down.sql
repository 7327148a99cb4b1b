DROP TABLE merkle_anchor_status;
DROP TABLE merkle_anchor_inflight;
DROP TABLE merkle_checkpoints;
