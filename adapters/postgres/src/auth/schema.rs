//! diesel table definitions of the authorization server's tables
//! (`migrations/*_auth`).

diesel::table! {
    auth_signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        private_pem -> Text,
        public_jwk -> Jsonb,
        created_at -> Timestamptz,
        retired_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    auth_clients (client_id) {
        client_id -> Text,
        name -> Text,
        kind -> Text,
        secret_sha256 -> Nullable<Bytea>,
        redirect_uris -> Array<Text>,
        jwks -> Nullable<Jsonb>,
        jwks_uri -> Nullable<Text>,
        scope -> Text,
        active -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    auth_users (user_id) {
        user_id -> Uuid,
        email -> Text,
        role -> Text,
        organization -> Nullable<Text>,
        fhir_user -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        active -> Bool,
        created_at -> Timestamptz,
        deactivated_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    auth_identities (issuer, subject) {
        issuer -> Text,
        subject -> Text,
        user_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    auth_invitations (code_sha256) {
        code_sha256 -> Bytea,
        user_id -> Uuid,
        expires_at -> Timestamptz,
        redeemed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    auth_sessions (id_sha256) {
        id_sha256 -> Bytea,
        user_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    auth_requests (id_sha256) {
        id_sha256 -> Bytea,
        request -> Jsonb,
        session_sha256 -> Nullable<Bytea>,
        patient -> Nullable<Text>,
        pending_login -> Nullable<Jsonb>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    auth_launches (launch_sha256) {
        launch_sha256 -> Bytea,
        patient -> Text,
        user_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    auth_grants (grant_id) {
        grant_id -> Uuid,
        client_id -> Text,
        user_id -> Nullable<Uuid>,
        scope -> Text,
        patient -> Nullable<Text>,
        need_patient_banner -> Bool,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    auth_codes (code_sha256) {
        code_sha256 -> Bytea,
        grant_id -> Uuid,
        redirect_uri -> Text,
        code_challenge -> Text,
        nonce -> Nullable<Text>,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    auth_refresh_tokens (token_sha256) {
        token_sha256 -> Bytea,
        grant_id -> Uuid,
        scope -> Text,
        created_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    auth_client_assertions (client_id, jti) {
        client_id -> Text,
        jti -> Text,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    auth_revocations (seq) {
        seq -> BigInt,
        kind -> Text,
        subject -> Text,
        revoked_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::joinable!(auth_identities -> auth_users (user_id));
diesel::joinable!(auth_sessions -> auth_users (user_id));
diesel::joinable!(auth_invitations -> auth_users (user_id));
diesel::allow_tables_to_appear_in_same_query!(
    auth_users,
    auth_identities,
    auth_sessions,
    auth_invitations
);
