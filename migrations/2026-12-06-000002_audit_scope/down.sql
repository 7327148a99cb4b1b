COMMENT ON COLUMN audit_events.patient_id IS NULL;
ALTER TABLE audit_events ADD COLUMN organizations TEXT[] NOT NULL DEFAULT '{}';
CREATE INDEX audit_events_by_organization ON audit_events USING GIN (organizations);
