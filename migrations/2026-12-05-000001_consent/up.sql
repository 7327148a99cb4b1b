-- Patient Consent, enforced in SQL (see ARCHITECTURE.md, "Consent").
--
-- Each Consent in force is kept as rules, written in the transaction of every write of the
-- Consent or of a document of its patient: one row per deciding provision, per document
-- it applies to (`document`, the res_id of the DocumentReference), or about the patient as
-- a whole (`document` NULL: whom the patient grants anything, which opens their Patient
-- resource). A rule holds for a reader (a doctor known by their Practitioner,
-- PractitionerRoles and Organizations, as `Type/id` references) when the reader is every
-- `required` reference and none of the `excluded` ones, at an instant within
-- [valid_from, valid_until). Searches probe these rows in the same statement, before
-- paging and counting.
CREATE TABLE consent_rules (
    consent_id  TEXT        NOT NULL,
    patient_id  TEXT        NOT NULL,
    document    BIGINT,
    effect      TEXT        NOT NULL CHECK (effect IN ('permit', 'deny')),
    required    TEXT[]      NOT NULL,
    excluded    TEXT[]      NOT NULL,
    valid_from  TIMESTAMPTZ NOT NULL,
    valid_until TIMESTAMPTZ NOT NULL
);
CREATE INDEX consent_rules_by_document ON consent_rules (document, effect) WHERE document IS NOT NULL;
CREATE INDEX consent_rules_by_patient ON consent_rules (patient_id) WHERE document IS NULL;
CREATE INDEX consent_rules_by_consent ON consent_rules (consent_id);

-- Emergency ("break the glass") access: a doctor reads one patient's documents until
-- `expires_at`, whatever their Consents say, with a reason. Kept forever for the audit trail.
CREATE TABLE emergency_access (
    grant_id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    practitioner_id TEXT        NOT NULL,
    patient_id      TEXT        NOT NULL,
    user_id         TEXT        NOT NULL,
    client_id       TEXT        NOT NULL,
    token_id        TEXT        NOT NULL,
    reason          TEXT        NOT NULL,
    granted_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX emergency_access_current ON emergency_access (practitioner_id, patient_id, expires_at);
CREATE INDEX emergency_access_by_patient ON emergency_access (patient_id, granted_at);

-- Which generation of the Consent rules the database holds: the server rewrites every
-- Consent's rules at start-up when its flattening (fhirledger-access, consent/rules.rs)
-- differs from the one that wrote them, and on first start over existing Consents.
CREATE TABLE consent_rules_state (
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    generation TEXT NOT NULL
);
