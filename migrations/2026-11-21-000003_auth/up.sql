-- The SMART authorization server's state. Every secret a client or browser
-- presents (codes, refresh tokens, sessions, launch values, invitations,
-- client secrets) is stored only as its SHA-256: they are 256-bit random
-- values, so a hash is enough, and a stolen table holds nothing usable.

-- Keys signing access and id tokens. A retired key no longer signs but is
-- still published until every token it signed has expired.
CREATE TABLE auth_signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_pem TEXT NOT NULL,
    public_jwk  JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at  TIMESTAMPTZ
);

CREATE TABLE auth_clients (
    client_id     TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('public', 'confidential', 'asymmetric', 'backend')),
    secret_sha256 BYTEA,
    redirect_uris TEXT[] NOT NULL DEFAULT '{}',
    jwks          JSONB,
    jwks_uri      TEXT,
    scope         TEXT NOT NULL,
    active        BOOLEAN NOT NULL DEFAULT true,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE auth_users (
    user_id        UUID PRIMARY KEY,
    email          TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('solution-admin', 'hospital-admin', 'doctor', 'patient', 'compliance-officer')),
    organization   TEXT,
    fhir_user      TEXT,
    password_hash  TEXT,
    active         BOOLEAN NOT NULL DEFAULT true,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    deactivated_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX auth_users_by_email ON auth_users (lower(email));

-- Which external provider subject signs in as which account.
CREATE TABLE auth_identities (
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    UUID NOT NULL REFERENCES auth_users ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX auth_identities_by_user ON auth_identities (user_id);

CREATE TABLE auth_invitations (
    code_sha256 BYTEA PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES auth_users ON DELETE CASCADE,
    expires_at  TIMESTAMPTZ NOT NULL,
    redeemed_at TIMESTAMPTZ
);

-- Browser sessions of signed-in people (the cookie holds the raw value).
CREATE TABLE auth_sessions (
    id_sha256  BYTEA PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES auth_users ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);

-- Authorization requests between /auth/authorize and the redirect back to
-- the app: the validated request, who signed in, the patient chosen, and an
-- external login in progress.
CREATE TABLE auth_requests (
    id_sha256     BYTEA PRIMARY KEY,
    request       JSONB NOT NULL,
    session_sha256 BYTEA,
    patient       TEXT,
    pending_login JSONB,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX auth_requests_by_expiry ON auth_requests (expires_at);

-- EHR launch values: single use, bound to a patient and a user.
CREATE TABLE auth_launches (
    launch_sha256 BYTEA PRIMARY KEY,
    patient       TEXT NOT NULL,
    user_id       UUID NOT NULL REFERENCES auth_users ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL,
    used_at       TIMESTAMPTZ
);

-- What a user (or a backend client) was granted; every code, refresh token
-- and access token descends from one grant, so revoking it revokes them all.
CREATE TABLE auth_grants (
    grant_id            UUID PRIMARY KEY,
    client_id           TEXT NOT NULL REFERENCES auth_clients ON DELETE CASCADE,
    user_id             UUID REFERENCES auth_users ON DELETE CASCADE,
    scope               TEXT NOT NULL,
    patient             TEXT,
    need_patient_banner BOOLEAN NOT NULL DEFAULT false,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at          TIMESTAMPTZ
);
CREATE INDEX auth_grants_by_user ON auth_grants (user_id);

CREATE TABLE auth_codes (
    code_sha256    BYTEA PRIMARY KEY,
    grant_id       UUID NOT NULL REFERENCES auth_grants ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    nonce          TEXT,
    expires_at     TIMESTAMPTZ NOT NULL,
    used_at        TIMESTAMPTZ
);

-- Refresh tokens rotate: each use marks the token used and issues a new one
-- in the same grant; presenting a used one again revokes the grant.
CREATE TABLE auth_refresh_tokens (
    token_sha256 BYTEA PRIMARY KEY,
    grant_id     UUID NOT NULL REFERENCES auth_grants ON DELETE CASCADE,
    scope        TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ,
    used_at      TIMESTAMPTZ
);
CREATE INDEX auth_refresh_tokens_by_grant ON auth_refresh_tokens (grant_id);

-- `jti`s of backend client assertions seen, until they expire (replay guard).
CREATE TABLE auth_client_assertions (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (client_id, jti)
);
-- The upkeep thread drops expired rows in the background (never a request).
CREATE INDEX auth_client_assertions_by_expiry ON auth_client_assertions (expires_at);

-- Revocations every server process keeps in memory: a token (jti), a grant,
-- every token of a user, of a client, or of a hospital's accounts issued up to revoked_at.
-- Rows are kept until every token they can affect has expired.
CREATE TABLE auth_revocations (
    seq        BIGSERIAL PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('token', 'grant', 'user', 'client', 'organization')),
    subject    TEXT NOT NULL,
    revoked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);
