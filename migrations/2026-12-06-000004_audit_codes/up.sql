-- An event's search terms split by how they are searched (ARCHITECTURE.md, "Audit"):
--
-- * `terms` keeps what names someone or something — agents, entities, names, addresses,
--   policies, identifiers — under the GIN index: selective values that find a few events
--   among millions;
-- * `codes` keeps the coded facts every event carries a handful of — type, subtype,
--   action, outcome, agent and entity roles and types, site, source — without an index.
--   Each value of these is shared by a large share of the trail, so an index entry per
--   event bought nothing a scan by date does not do, and cost two thirds of the GIN
--   work of every append (about 20 of an event's 30 terms).
--
-- The `patient=` terms go: the trail's `patient` parameter is the `patient_id` column.
ALTER TABLE audit_events ADD COLUMN codes TEXT[] NOT NULL DEFAULT '{}';
ALTER TABLE audit_events ALTER COLUMN codes SET COMPRESSION lz4;

-- Events recorded before this migration carry everything in `terms`. Moving their codes
-- rewrites what they are found by, never what they say (`content`, the bytes the ledger
-- hashes), so the append-only rule steps aside for this statement alone.
ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only;
UPDATE audit_events
   SET codes = ARRAY(SELECT t FROM unnest(terms) t
                      WHERE split_part(split_part(t, '=', 1), ':', 1) IN
                            ('type', 'subtype', 'action', 'outcome', 'agent-role',
                             'entity-role', 'entity-type', 'site', 'source')),
       terms = ARRAY(SELECT t FROM unnest(terms) t
                      WHERE split_part(split_part(t, '=', 1), ':', 1) NOT IN
                            ('type', 'subtype', 'action', 'outcome', 'agent-role',
                             'entity-role', 'entity-type', 'site', 'source', 'patient'));
ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only;

-- A compressed event stays in its row (`MAIN`): a page of the trail is read without a
-- second fetch per event from the TOAST table.
ALTER TABLE audit_events ALTER COLUMN content SET STORAGE MAIN;
ALTER TABLE audit_events ALTER COLUMN terms SET STORAGE MAIN;
ALTER TABLE audit_events ALTER COLUMN codes SET STORAGE MAIN;

-- With a handful of terms per event, entering them into the index at once costs less
-- than the pending list did: its clean-ups stalled the append that overflowed it for
-- tens of milliseconds — every read waiting on that group commit with it (audited reads'
-- p99 went from 35 to 25 ms without them) — and every search of the trail scanned it.
ALTER INDEX audit_events_by_term SET (fastupdate = off);

-- An append-only table needs vacuum only to freeze and to mark pages all-visible, not
-- to reclaim anything: the defaults (1,000 rows plus a fifth of the table) vacuumed and
-- analysed a young trail every few seconds under load, a core's worth of work each time.
ALTER TABLE audit_events SET (autovacuum_vacuum_insert_threshold = 100000,
                              autovacuum_analyze_threshold = 100000);
