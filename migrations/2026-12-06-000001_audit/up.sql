-- The audit trail (ARCHITECTURE.md, "Audit"): one row per AuditEvent, in its own
-- table rather than the generic resource and search-index tables, because every read
-- writes one: one row and four indexes per event, not ~30 index rows in five tables.
--
-- `content` is the AuditEvent exactly as a compact JSON read returns it (the bytes the
-- Merkle log hashes); the other columns are what the trail is searched by: the
-- recorded instant, the one patient whose data the access touched (a request touching
-- several patients records one event per patient), the hospitals whose compliance
-- officers see it (the patient's and the acting person's), and `terms`, the event's
-- other search values as `param|value` strings (fhirledger_audit::terms).
CREATE TABLE audit_events (
    seq             BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT        NOT NULL UNIQUE,
    recorded        TIMESTAMPTZ NOT NULL,
    patient_id      TEXT,
    organizations   TEXT[]      NOT NULL,
    terms           TEXT[]      NOT NULL,
    -- Sent by a backend client (an EHR forwarding its own events), not recorded by
    -- this server.
    client_recorded BOOLEAN     NOT NULL DEFAULT FALSE,
    content         TEXT        NOT NULL
);
CREATE INDEX audit_events_by_patient ON audit_events (patient_id, recorded DESC, seq DESC)
    WHERE patient_id IS NOT NULL;
CREATE INDEX audit_events_by_recorded ON audit_events (recorded DESC, seq DESC);
CREATE INDEX audit_events_by_organization ON audit_events USING GIN (organizations);
CREATE INDEX audit_events_by_term ON audit_events USING GIN (terms);

-- Recorded events are never changed or removed, whoever asks: not through the API
-- (405), not by a command, not by a stray statement.
CREATE FUNCTION audit_events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_are_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_are_append_only();
