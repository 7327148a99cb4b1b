-- Date sort keys within a patient record (fhir_profiles::search::record_sort): for a
-- resource whose record reference (`patient`, `subject`) names a local target, one row
-- per date parameter of its type with the keys a search sorts by (the least `low`
-- ascending, the greatest `high` descending; NULL without a value). A search that names
-- one record and sorts by one date walks these in order and stops after its page, where
-- computing the key of every resource of the record grew with the record's size.
-- Written with the other index rows; filled by the index rebuild that the new
-- extraction revision starts.
CREATE TABLE search_record_date (
    res_id        BIGINT NOT NULL,
    reference_key INTEGER NOT NULL,
    target_type   TEXT NOT NULL,
    target_id     TEXT NOT NULL,
    date_key      INTEGER NOT NULL,
    low           TIMESTAMPTZ,
    high          TIMESTAMPTZ
);
CREATE INDEX search_record_date_owner ON search_record_date (res_id);
-- Newest first (`_sort=-date`; read backwards for the previous page).
CREATE INDEX search_record_date_high ON search_record_date
    (reference_key, target_id, date_key, high DESC NULLS LAST, res_id);
-- Oldest first (`_sort=date`).
CREATE INDEX search_record_date_low ON search_record_date
    (reference_key, target_id, date_key, low ASC NULLS LAST, res_id);
