//! What happened in a stretch of the Merkle log, for the portal's live
//! pages: the log is the one record of AuditEvents and Consent versions in
//! commit order with gapless indexes, so reading it from the last index
//! seen misses nothing and sees nothing twice, whichever process wrote the
//! leaves. Only routing facts leave this module (which patients were
//! accessed, which readers a Consent change concerns); what a page shows
//! is read again through the access decision.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::StoreError;

/// What a stretch of the log recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogActivity {
    /// Patients whose data someone other than themselves touched (or tried
    /// to): their access logs grew by an entry they have not seen.
    pub accessed_patients: BTreeSet<String>,
    /// The readers (`Practitioner/…`, `Organization/…`, …) named by the
    /// Consent versions written, and by the versions they replaced: the
    /// people whose list of patients may have changed.
    pub consent_readers: BTreeSet<String>,
    /// A Consent version naming no reader (a rule for everyone) was written.
    pub consent_for_everyone: bool,
    /// The hospitals (`Organization/…`) whose patients changed: a Patient
    /// created, updated or deleted there (or moved from there): their
    /// doctors' lists of patients may have changed.
    pub roster_organizations: BTreeSet<String>,
}

/// The one column (`value`) every statement below answers.
#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    value: Option<String>,
}

/// The patients of the AuditEvent leaves in `[from, to)` whose event was
/// not the patient's own doing (their own pages' reads would otherwise
/// announce themselves, and a live page that refreshes on news would
/// refresh forever).
const ACCESSED_PATIENTS: &str = "\
SELECT DISTINCT a.patient_id AS value FROM merkle_leaves l \
JOIN audit_events a ON a.id = l.resource_id \
WHERE l.leaf_index >= $1 AND l.leaf_index < $2 AND l.resource_type = 'AuditEvent' \
  AND a.patient_id IS NOT NULL \
  AND NOT a.terms @> ARRAY['agent=Patient/' || a.patient_id]";

/// The readers named by the Consent versions of the leaves in `[from, to)`
/// and by the versions before them (a revocation or deletion concerns
/// whoever the Consent named until then); a version naming nobody yields
/// one NULL row.
const CONSENT_READERS: &str = "\
WITH changed AS ( \
    SELECT l.resource_id AS id, l.version_id::bigint AS version_id FROM merkle_leaves l \
    WHERE l.leaf_index >= $1 AND l.leaf_index < $2 AND l.resource_type = 'Consent' \
), versions AS ( \
    SELECT v.content FROM changed c \
    JOIN resource_versions v ON v.resource_type = 'Consent' AND v.id = c.id \
     AND v.version_id IN (c.version_id, c.version_id - 1) \
    WHERE v.content IS NOT NULL \
) \
SELECT DISTINCT r.reader AS value FROM versions \
LEFT JOIN LATERAL ( \
    SELECT x #>> '{}' AS reader \
    FROM jsonb_path_query(content::jsonb, 'lax $.provision.**.actor.reference.reference') x \
) r ON true";

/// The managing organizations of the Patients written by the AuditEvent
/// leaves in `[from, to)`, before and after the write (the two newest
/// versions with content: a move concerns both hospitals, a deletion the
/// last one).
const ROSTER_ORGANIZATIONS: &str = "\
SELECT DISTINCT v.content::jsonb #>> '{managingOrganization,reference}' AS value \
FROM merkle_leaves l \
JOIN audit_events a ON a.id = l.resource_id \
CROSS JOIN LATERAL ( \
    SELECT v.content FROM resource_versions v \
    WHERE v.resource_type = 'Patient' AND v.id = a.patient_id AND v.content IS NOT NULL \
    ORDER BY v.version_id DESC LIMIT 2 \
) v \
WHERE l.leaf_index >= $1 AND l.leaf_index < $2 AND l.resource_type = 'AuditEvent' \
  AND a.patient_id IS NOT NULL \
  AND a.codes @> ARRAY['outcome=0'] \
  AND a.codes && ARRAY['subtype=create', 'subtype=update', 'subtype=patch', 'subtype=delete'] \
  AND a.content::jsonb @? '$.entity[*] ? (@.role.code == \"4\" && @.what.reference starts with \"Patient/\")'";

impl crate::PgStore {
    /// What the log recorded at indexes `[from, to)`.
    pub fn log_activity(&self, from: u64, to: u64) -> Result<LogActivity, StoreError> {
        let (from, to) = (index(from)?, index(to)?);
        let mut activity = LogActivity::default();
        if from >= to {
            return Ok(activity);
        }
        let conn = &mut *self.conn()?;
        // The values of `sql` over the stretch.
        let mut values = |sql: &str| -> Result<Vec<Option<String>>, StoreError> {
            Ok(diesel::sql_query(sql)
                .bind::<BigInt, _>(from)
                .bind::<BigInt, _>(to)
                .load::<Row>(conn)?
                .into_iter()
                .map(|row| row.value)
                .collect())
        };
        activity.accessed_patients = values(ACCESSED_PATIENTS)?.into_iter().flatten().collect();
        for reader in values(CONSENT_READERS)? {
            match reader {
                Some(reader) => {
                    activity.consent_readers.insert(reader);
                }
                None => activity.consent_for_everyone = true,
            }
        }
        activity.roster_organizations = values(ROSTER_ORGANIZATIONS)?
            .into_iter()
            .flatten()
            .collect();
        Ok(activity)
    }
}

fn index(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Internal(format!("log index {n} beyond i64")))
}
