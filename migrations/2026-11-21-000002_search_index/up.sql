-- Search indexes: one generic table per search-parameter type, each row one value a
-- current, live resource version is found by. `key` identifies the parameter of the
-- resource type (a stable hash computed by fhir-profiles, see search::param_key), so one
-- index serves every type. Rows are replaced in the transaction of every write and removed
-- on delete. Values compared by prefix use the "C" collation so btree indexes serve LIKE.

-- A compact surrogate key for index rows and keyset paging; insertion order is the default
-- order of search results.
ALTER TABLE resources ADD COLUMN res_id BIGINT GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX resources_by_res_id ON resources (res_id);
CREATE INDEX resources_live_in_order ON resources (resource_type, res_id) WHERE NOT deleted;
CREATE INDEX resources_by_last_updated ON resources (resource_type, last_updated);

CREATE TABLE search_token (
    res_id BIGINT NOT NULL,
    key    INTEGER NOT NULL,
    system TEXT COLLATE "C",
    code   TEXT COLLATE "C",
    text   TEXT COLLATE "C"
);
CREATE INDEX search_token_owner ON search_token (res_id);
CREATE INDEX search_token_value ON search_token (key, code, system, res_id);

CREATE TABLE search_string (
    res_id     BIGINT NOT NULL,
    key        INTEGER NOT NULL,
    normalized TEXT COLLATE "C" NOT NULL,
    exact      TEXT NOT NULL
);
CREATE INDEX search_string_owner ON search_string (res_id);
CREATE INDEX search_string_value ON search_string (key, normalized, res_id);

CREATE TABLE search_date (
    res_id BIGINT NOT NULL,
    key    INTEGER NOT NULL,
    low    TIMESTAMPTZ NOT NULL,
    high   TIMESTAMPTZ NOT NULL
);
CREATE INDEX search_date_owner ON search_date (res_id);
CREATE INDEX search_date_low ON search_date (key, low, res_id);
CREATE INDEX search_date_high ON search_date (key, high, res_id);

CREATE TABLE search_reference (
    res_id      BIGINT NOT NULL,
    key         INTEGER NOT NULL,
    target_type TEXT,
    target_id   TEXT,
    url         TEXT COLLATE "C"
);
CREATE INDEX search_reference_owner ON search_reference (res_id);
CREATE INDEX search_reference_target ON search_reference (key, target_id, target_type, res_id);
CREATE INDEX search_reference_url ON search_reference (key, url, res_id) WHERE url IS NOT NULL;

CREATE TABLE search_uri (
    res_id BIGINT NOT NULL,
    key    INTEGER NOT NULL,
    uri    TEXT COLLATE "C" NOT NULL
);
CREATE INDEX search_uri_owner ON search_uri (res_id);
CREATE INDEX search_uri_value ON search_uri (key, uri, res_id);

-- Identifiers are now token rows of each type's `identifier` parameter.
DROP TABLE resource_identifiers;

-- Which generation of the index rows the database holds: the server rebuilds them when its
-- extraction rules (the search-parameter registry) differ from those that wrote them.
CREATE TABLE search_index_state (
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    generation TEXT NOT NULL
);
