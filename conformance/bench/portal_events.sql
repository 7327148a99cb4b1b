-- portal.sh's variant of events.sql: grows ONE patient's access log in SQL from
-- one real event of that patient, as the server would have written them.
-- events.sql spreads its copies over synthetic patients; the portal pages read
-- a real, signed-in patient's log, so here every copy keeps the template's
-- patient (its patient_id, and the patient references inside the JSON and the
-- search terms stay as recorded) and only its id and time change.
--
-- Load with the template's id: psql -v template=<AuditEvent id> -f portal_events.sql
--
-- bench_portal_template: that event, with the text its copies replace.
CREATE TABLE bench_portal_template AS
SELECT content, terms, codes, patient_id, id,
       to_char(recorded AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS recorded_text
FROM audit_events WHERE id = :'template';

-- bench_portal_events(n, at_first, step): n events of the template's patient
-- recorded from at_first, step apart, each with its pending leaf in the same
-- statement (format 1: kind 2, "AuditEvent", id, version "1", SHA-256 of the
-- stored JSON, recorded µs, a random salt), as the audit trail's append writes
-- them. The leaves go to merkle_pending, so the running server sequences and
-- anchors them like any other: the access log's "Verified on chain" marks are
-- the real lookup, not a shortcut.
CREATE FUNCTION bench_portal_events(n int, at_first timestamptz, step interval)
RETURNS void LANGUAGE sql AS $$
WITH ev AS (
    INSERT INTO audit_events (id, recorded, patient_id, terms, codes, client_recorded, content)
    SELECT i.id, e.recorded, t.patient_id, t.terms, t.codes, false,
           replace(replace(t.content, t.id, i.id),
                   t.recorded_text, to_char(e.recorded AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
    FROM generate_series(1, n) g
    CROSS JOIN bench_portal_template t
    CROSS JOIN LATERAL (SELECT at_first + step * g AS recorded) e
    -- Time-ordered ids, as the server makes them (UUIDv7: the millisecond first).
    CROSS JOIN LATERAL (SELECT overlay(replace(gen_random_uuid()::text, '-', '')
        PLACING lpad(to_hex((extract(epoch FROM e.recorded) * 1000)::bigint), 12, '0') FROM 1 FOR 12)::uuid::text AS id) i
    RETURNING id, recorded, content
)
INSERT INTO merkle_pending (leaf_data)
SELECT '\x0102'::bytea
       || int2send(10::int2) || convert_to('AuditEvent', 'UTF8')
       || int2send(octet_length(id)::int2) || convert_to(id, 'UTF8')
       || int2send(1::int2) || convert_to('1', 'UTF8')
       || sha256(convert_to(content, 'UTF8'))
       || int8send((extract(epoch FROM recorded) * 1000000)::int8)
       || sha256(convert_to(gen_random_uuid()::text, 'UTF8'))
FROM ev
$$;
