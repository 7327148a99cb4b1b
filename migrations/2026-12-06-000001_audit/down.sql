DROP TABLE audit_events;
DROP FUNCTION audit_events_are_append_only();
