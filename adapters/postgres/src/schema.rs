//! diesel table definitions matching `migrations/`.

diesel::table! {
    resources (resource_type, id) {
        resource_type -> Text,
        id -> Text,
        version_id -> BigInt,
        last_updated -> Timestamptz,
        deleted -> Bool,
        res_id -> BigInt,
    }
}

diesel::table! {
    resource_versions (resource_type, id, version_id) {
        seq -> BigInt,
        resource_type -> Text,
        id -> Text,
        version_id -> BigInt,
        last_updated -> Timestamptz,
        method -> Text,
        content -> Nullable<Text>,
    }
}

diesel::table! {
    binary_content (id, version_id) {
        id -> Text,
        version_id -> BigInt,
        content_type -> Text,
        size -> BigInt,
        sha256 -> Binary,
        data -> Oid,
    }
}

diesel::table! {
    audit_events (seq) {
        seq -> BigInt,
        id -> Text,
        recorded -> Timestamptz,
        patient_id -> Nullable<Text>,
        terms -> Array<Text>,
        codes -> Array<Text>,
        client_recorded -> Bool,
        content -> Text,
    }
}

diesel::table! {
    merkle_pending (pending_id) {
        pending_id -> BigInt,
        leaf_data -> Bytea,
    }
}

diesel::table! {
    merkle_leaves (leaf_index) {
        leaf_index -> BigInt,
        resource_type -> Text,
        resource_id -> Text,
        version_id -> Text,
        leaf_data -> Bytea,
        sequenced_at -> Timestamptz,
    }
}

diesel::table! {
    merkle_nodes (level, node_index) {
        level -> SmallInt,
        node_index -> BigInt,
        hash -> Bytea,
    }
}

diesel::table! {
    merkle_tiles (tile_index) {
        tile_index -> BigInt,
        hashes -> Bytea,
    }
}
