DROP TABLE merkle_head;
DROP TABLE merkle_nodes;
DROP TABLE merkle_leaves;
DROP TABLE merkle_pending;
DROP FUNCTION merkle_log_is_append_only();
