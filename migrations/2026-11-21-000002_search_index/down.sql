DROP TABLE search_index_state;
DROP TABLE search_uri;
DROP TABLE search_reference;
DROP TABLE search_date;
DROP TABLE search_string;
DROP TABLE search_token;
DROP INDEX resources_by_last_updated;
DROP INDEX resources_live_in_order;
DROP INDEX resources_by_res_id;
ALTER TABLE resources DROP COLUMN res_id;
CREATE TABLE resource_identifiers (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    system        TEXT NOT NULL DEFAULT '',
    value         TEXT NOT NULL
);
CREATE INDEX resource_identifiers_lookup ON resource_identifiers (resource_type, value, system);
CREATE INDEX resource_identifiers_owner ON resource_identifiers (resource_type, id);
