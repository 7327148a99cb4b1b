-- Shared by audit.sh and ledger.sh: grows the trail (and the log) in SQL from
-- one real event of a read, as the server would have written them. Load it
-- after one audited read of a patient's document.
--
-- bench_template: that read's event, with the text its copies replace.
CREATE TABLE bench_template AS
SELECT content, terms, codes, patient_id, id,
       to_char(recorded AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS recorded_text
FROM audit_events WHERE patient_id IS NOT NULL AND content LIKE '%"code":"read"%' LIMIT 1;
-- bench_events(n, patients, at_first, step): n events recorded from at_first,
-- step apart, over `patients` synthetic patients, each with its pending leaf (format 1: kind 2,
-- "AuditEvent", id, version "1", SHA-256 of the stored JSON, recorded µs, a
-- random salt) in the same statement, as the audit trail's append writes them.
CREATE FUNCTION bench_events(n int, patients int, at_first timestamptz, step interval)
RETURNS void LANGUAGE sql AS $$
WITH ev AS (
    INSERT INTO audit_events (id, recorded, patient_id, terms, codes, client_recorded, content)
    SELECT i.id, e.recorded, 'synthetic-' || (g % patients),
           ARRAY(SELECT replace(x, t.patient_id, 'synthetic-' || (g % patients)) FROM unnest(t.terms) x),
           t.codes, false,
           replace(replace(replace(t.content, t.id, i.id), t.patient_id, 'synthetic-' || (g % patients)),
                   t.recorded_text, to_char(e.recorded AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
    FROM generate_series(1, n) g
    CROSS JOIN bench_template t
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
