-- The versioned resource store: one row per logical resource (its current state,
-- used for concurrency control) and one row per version (the content, kept forever).

CREATE TABLE resources (
    resource_type TEXT        NOT NULL,
    id            TEXT        NOT NULL,
    version_id    BIGINT      NOT NULL,
    last_updated  TIMESTAMPTZ NOT NULL,
    deleted       BOOLEAN     NOT NULL DEFAULT FALSE,
    PRIMARY KEY (resource_type, id)
);

-- Every version of every resource. `seq` orders history across resources;
-- `content` is the canonical FHIR JSON with meta.versionId/lastUpdated set,
-- NULL for a delete.
CREATE TABLE resource_versions (
    seq           BIGSERIAL   NOT NULL,
    resource_type TEXT        NOT NULL,
    id            TEXT        NOT NULL,
    version_id    BIGINT      NOT NULL,
    last_updated  TIMESTAMPTZ NOT NULL,
    method        TEXT        NOT NULL CHECK (method IN ('POST', 'PUT', 'DELETE')),
    content       TEXT,
    PRIMARY KEY (resource_type, id, version_id),
    CHECK ((method = 'DELETE') = (content IS NULL))
);
CREATE INDEX resource_versions_by_type ON resource_versions (resource_type, seq);
CREATE UNIQUE INDEX resource_versions_by_seq ON resource_versions (seq);

-- Identifiers of current versions, for conditional create/update/delete.
CREATE TABLE resource_identifiers (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    system        TEXT NOT NULL DEFAULT '',
    value         TEXT NOT NULL
);
CREATE INDEX resource_identifiers_lookup ON resource_identifiers (resource_type, value, system);
CREATE INDEX resource_identifiers_owner ON resource_identifiers (resource_type, id);

-- Bytes of Binary versions, kept as large objects so they can be streamed in
-- and out in chunks. `sha256` is of the exact bytes.
CREATE TABLE binary_content (
    id           TEXT   NOT NULL,
    version_id   BIGINT NOT NULL,
    content_type TEXT   NOT NULL,
    size         BIGINT NOT NULL,
    sha256       BYTEA  NOT NULL,
    data         OID    NOT NULL,
    PRIMARY KEY (id, version_id)
);
