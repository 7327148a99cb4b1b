ALTER TABLE audit_events RESET (autovacuum_vacuum_insert_threshold, autovacuum_analyze_threshold);
ALTER INDEX audit_events_by_term RESET (fastupdate);
ALTER TABLE audit_events ALTER COLUMN content SET STORAGE EXTENDED;
ALTER TABLE audit_events ALTER COLUMN terms SET STORAGE EXTENDED;
ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only;
UPDATE audit_events SET terms = terms || codes;
ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only;
ALTER TABLE audit_events DROP COLUMN codes;
