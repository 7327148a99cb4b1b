-- A hospital's trail is found by what the events say, not by a column of their own:
-- events about its patients (`patient_id` of a patient of the hospital, current as of
-- the search) and events done by its people (their hospital is the event's responsible
-- agent, the term `agent=Organization/{id}`). The `organizations` column duplicated the
-- second and could not know the first when a patient moves; dropping it saves an index
-- update per recorded event.
DROP INDEX audit_events_by_organization;
ALTER TABLE audit_events DROP COLUMN organizations;

-- `patient_id` is the one patient an event is about (fhirledger_audit::subject): the
-- trail's `patient` search parameter.
COMMENT ON COLUMN audit_events.patient_id IS
    'the one patient the event is about: whose data it touched, else who acted';
