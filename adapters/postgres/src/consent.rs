//! The rows that enforce patient Consent (`consent_rules`) and the emergency
//! grants (`emergency_access`), written in the transaction of the write that
//! changes them. What the rules mean is decided above this layer (the access
//! crate flattens a Consent into rules); this module only keeps them and
//! answers the few questions the service asks about them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz};
use fhir_profiles::search::param_key;
use fhir_profiles::search::query::{ConsentEffect, Criterion, Reader};
use std::collections::HashMap;

use crate::search::{Bind, Sql};
use crate::tx::Tx;
use crate::StoreError;

/// One kept rule of a Consent: about one document (`document`, its row key)
/// or, with `None`, about the patient as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRuleRow {
    pub document: Option<i64>,
    pub effect: ConsentEffect,
    pub required: Vec<String>,
    pub excluded: Vec<String>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
}

/// A live resource that references another one, with its row key.
#[derive(Debug, Clone, PartialEq)]
pub struct Referencing {
    pub res_id: i64,
    pub id: String,
    pub content: String,
}

/// A rule holding now for a reader, as `$access` explains it.
/// Why a doctor sees a document (see [`Tx::document_grounds`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentGround {
    Author,
    EmergencyAccess,
    /// The id of the Consent whose rule permits it.
    Consent(String),
    BasePolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRule {
    pub consent_id: String,
    pub effect: ConsentEffect,
}

/// An emergency grant to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmergencyGrant {
    pub practitioner_id: String,
    pub patient_id: String,
    pub user_id: String,
    pub client_id: String,
    pub token_id: String,
    pub reason: String,
    pub granted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Key {
    #[diesel(sql_type = BigInt)]
    res_id: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A statement the connection keeps prepared (these run on every write of
/// a document or Consent, so planning them each time would cost more than
/// running them).
fn prepared(text: &str, binds: Vec<Bind>) -> Sql {
    let mut sql = Sql::default();
    for b in binds {
        sql.bind(b);
    }
    sql.text = text.to_string();
    sql
}

#[derive(QueryableByName)]
struct Generation {
    #[diesel(sql_type = Text)]
    generation: String,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
    id: String,
}

impl crate::PgStore {
    /// The generation of the Consent rules the database holds (`None`: never recorded).
    pub fn consent_rules_generation(&self) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn()?;
        Ok(
            diesel::sql_query("SELECT generation FROM consent_rules_state")
                .get_result::<Generation>(&mut *conn)
                .optional()?
                .map(|g| g.generation),
        )
    }

    /// Records the generation of the Consent rules.
    pub fn record_consent_rules_generation(&self, generation: &str) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        diesel::sql_query(
            "INSERT INTO consent_rules_state (generation) VALUES ($1) \
             ON CONFLICT (singleton) DO UPDATE SET generation = EXCLUDED.generation",
        )
        .bind::<Text, _>(generation)
        .execute(&mut *conn)?;
        Ok(())
    }

    /// The ids of every live resource of a type.
    pub fn live_ids(&self, resource_type: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn()?;
        Ok(diesel::sql_query(
            "SELECT id FROM resources WHERE resource_type = $1 AND NOT deleted ORDER BY res_id",
        )
        .bind::<Text, _>(resource_type)
        .load::<Id>(&mut *conn)?
        .into_iter()
        .map(|i| i.id)
        .collect())
    }
}

impl Tx<'_> {
    /// The row key of the live resource `resource_type/id`.
    pub fn live_key(&mut self, resource_type: &str, id: &str) -> Result<Option<i64>, StoreError> {
        Ok(prepared(
            "SELECT res_id FROM resources WHERE resource_type = $1 AND id = $2 AND NOT deleted",
            vec![Bind::Text(resource_type.into()), Bind::Text(id.into())],
        )
        .query()
        .get_result::<Key>(self.conn)
        .optional()?
        .map(|k| k.res_id))
    }

    /// Which of `references` (type, id) name no live resource, by their
    /// positions in the order given; one statement.
    pub fn missing(&mut self, references: &[(String, String)]) -> Result<Vec<usize>, StoreError> {
        if references.is_empty() {
            return Ok(Vec::new());
        }
        #[derive(QueryableByName)]
        struct Position {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let types: Vec<&str> = references.iter().map(|(t, _)| t.as_str()).collect();
        let ids: Vec<&str> = references.iter().map(|(_, id)| id.as_str()).collect();
        let types = types.into_iter().map(str::to_string).collect();
        let ids = ids.into_iter().map(str::to_string).collect();
        Ok(prepared(
            "SELECT t.n FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(rt, id, n) \
             WHERE NOT EXISTS (SELECT 1 FROM resources r WHERE r.resource_type = t.rt \
             AND r.id = t.id AND NOT r.deleted) ORDER BY t.n",
            vec![Bind::Texts(types), Bind::Texts(ids)],
        )
        .query()
        .load::<Position>(self.conn)?
        .into_iter()
        .filter_map(|p| usize::try_from(p.n - 1).ok())
        .collect())
    }

    /// The current content of the live resources among `ids` of a type.
    pub fn current_contents(
        &mut self,
        resource_type: &str,
        ids: &[&str],
    ) -> Result<Vec<(String, String)>, StoreError> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            id: String,
            #[diesel(sql_type = Text)]
            content: String,
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.iter().map(|id| id.to_string()).collect();
        Ok(prepared(
            "SELECT r.id, v.content FROM resources r JOIN resource_versions v \
             ON v.resource_type = r.resource_type AND v.id = r.id AND v.version_id = r.version_id \
             WHERE r.resource_type = $1 AND r.id = ANY($2) AND NOT r.deleted \
             AND v.content IS NOT NULL",
            vec![Bind::Text(resource_type.into()), Bind::Texts(ids)],
        )
        .query()
        .load::<Row>(self.conn)?
        .into_iter()
        .map(|r| (r.id, r.content))
        .collect())
    }

    /// The live resources of `resource_type` whose search parameter `param`
    /// references `target_type/target_id`, with their current content.
    pub fn referencing(
        &mut self,
        resource_type: &str,
        param: &str,
        target_type: &str,
        target_id: &str,
    ) -> Result<Vec<Referencing>, StoreError> {
        let rows =
            self.referencing_any(resource_type, param, target_type, &[target_id.to_string()])?;
        Ok(rows.into_iter().map(|(_, r)| r).collect())
    }

    /// How many live resources of `resource_type` reference the target by `param`.
    pub fn count_referencing(
        &mut self,
        resource_type: &str,
        param: &str,
        target_type: &str,
        target_id: &str,
    ) -> Result<i64, StoreError> {
        Ok(diesel::sql_query(
            "SELECT count(*) AS n FROM search_reference x \
             JOIN resources r ON r.res_id = x.res_id AND NOT r.deleted \
             WHERE x.key = $1 AND x.target_type = $2 AND x.target_id = $3",
        )
        .bind::<Integer, _>(param_key(resource_type, param))
        .bind::<Text, _>(target_type)
        .bind::<Text, _>(target_id)
        .get_result::<Count>(self.conn)?
        .n)
    }

    /// Takes the Consent-rules lock of one patient exclusively until this
    /// transaction ends: a writer of the patient's Consents waits for every
    /// writer of their documents (who hold it shared) and they for it, so a
    /// document written while a Consent is being written cannot miss it.
    pub fn lock_patient_rules(&mut self, patient_id: &str) -> Result<(), StoreError> {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))")
            .bind::<Text, _>(format!("consent-rules:Patient/{patient_id}"))
            .execute(self.conn)?;
        Ok(())
    }

    /// Takes the Consent-rules lock of one patient shared until this
    /// transaction ends: writers of the patient's documents (and emergency
    /// grants) do not wait for each other, only for a Consent writer.
    pub fn share_patient_rules(&mut self, patient_id: &str) -> Result<(), StoreError> {
        prepared(
            "SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 1))",
            vec![Bind::Text(format!("consent-rules:Patient/{patient_id}"))],
        )
        .query()
        .execute(self.conn)?;
        Ok(())
    }

    /// The row keys of the live resources among `ids` of a type.
    pub fn live_keys(
        &mut self,
        resource_type: &str,
        ids: &[&str],
    ) -> Result<Vec<(String, i64)>, StoreError> {
        #[derive(QueryableByName)]
        struct Keyed {
            #[diesel(sql_type = Text)]
            id: String,
            #[diesel(sql_type = BigInt)]
            res_id: i64,
        }
        Ok(diesel::sql_query(
            "SELECT id, res_id FROM resources WHERE resource_type = $1 AND id = ANY($2) \
             AND NOT deleted",
        )
        .bind::<Text, _>(resource_type)
        .bind::<Array<Text>, _>(ids)
        .load::<Keyed>(self.conn)?
        .into_iter()
        .map(|k| (k.id, k.res_id))
        .collect())
    }

    /// [`Tx::share_patient_rules`] for several patients at once, in one
    /// order for everyone (so that writers cannot deadlock on them).
    pub fn share_patients_rules(&mut self, patient_ids: &[String]) -> Result<(), StoreError> {
        let mut keys: Vec<String> = patient_ids
            .iter()
            .map(|p| format!("consent-rules:Patient/{p}"))
            .collect();
        keys.sort();
        keys.dedup();
        diesel::sql_query(
            "SELECT pg_advisory_xact_lock_shared(hashtextextended(k, 1)) \
             FROM unnest($1::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n",
        )
        .bind::<Array<Text>, _>(keys)
        .execute(self.conn)?;
        Ok(())
    }

    /// [`Tx::referencing`] for several targets at once: each live resource
    /// with the id of the target it references.
    pub fn referencing_any(
        &mut self,
        resource_type: &str,
        param: &str,
        target_type: &str,
        target_ids: &[String],
    ) -> Result<Vec<(String, Referencing)>, StoreError> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            target_id: String,
            #[diesel(sql_type = BigInt)]
            res_id: i64,
            #[diesel(sql_type = Text)]
            id: String,
            #[diesel(sql_type = Text)]
            content: String,
        }
        // The parameter key is written into the text (it comes from the
        // registry), so each kind of look-up is its own prepared statement.
        let key = param_key(resource_type, param);
        let rows = prepared(
            &format!(
                "SELECT x.target_id, r.res_id, r.id, v.content FROM search_reference x \
                 JOIN resources r ON r.res_id = x.res_id AND NOT r.deleted \
                 JOIN resource_versions v ON v.resource_type = r.resource_type AND v.id = r.id \
                 AND v.version_id = r.version_id \
                 WHERE x.key = {key} AND x.target_type = $1 AND x.target_id = ANY($2) \
                 AND v.content IS NOT NULL ORDER BY r.res_id"
            ),
            vec![
                Bind::Text(target_type.into()),
                Bind::Texts(target_ids.to_vec()),
            ],
        )
        .query()
        .load::<Row>(self.conn)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.target_id,
                    Referencing {
                        res_id: r.res_id,
                        id: r.id,
                        content: r.content,
                    },
                )
            })
            .collect())
    }

    /// Removes every rule a Consent made.
    pub fn delete_rules_of_consent(&mut self, consent_id: &str) -> Result<(), StoreError> {
        diesel::sql_query("DELETE FROM consent_rules WHERE consent_id = $1")
            .bind::<Text, _>(consent_id)
            .execute(self.conn)?;
        Ok(())
    }

    /// Removes every rule about the DocumentReference `id` (live or deleted).
    pub fn delete_rules_of_document_id(&mut self, id: &str) -> Result<(), StoreError> {
        prepared(
            "DELETE FROM consent_rules WHERE document = (SELECT res_id FROM resources \
             WHERE resource_type = 'DocumentReference' AND id = $1)",
            vec![Bind::Text(id.into())],
        )
        .query()
        .execute(self.conn)?;
        Ok(())
    }

    /// Adds rules of a Consent of `patient_id`, in one statement.
    pub fn insert_rules(
        &mut self,
        consent_id: &str,
        patient_id: &str,
        rules: &[ConsentRuleRow],
    ) -> Result<(), StoreError> {
        if rules.is_empty() {
            return Ok(());
        }
        let documents: Vec<Option<i64>> = rules.iter().map(|r| r.document).collect();
        let effects: Vec<&str> = rules.iter().map(|r| r.effect.code()).collect();
        // Arrays of arrays must be rectangular in PostgreSQL, so the
        // reference lists travel as one text each (unit-separated) and are
        // split back in the statement.
        let join = |v: &Vec<String>| v.join("\u{1f}");
        let required: Vec<String> = rules.iter().map(|r| join(&r.required)).collect();
        let excluded: Vec<String> = rules.iter().map(|r| join(&r.excluded)).collect();
        let from: Vec<DateTime<Utc>> = rules.iter().map(|r| r.valid_from).collect();
        let until: Vec<DateTime<Utc>> = rules.iter().map(|r| r.valid_until).collect();
        diesel::sql_query(
            "INSERT INTO consent_rules \
             (consent_id, patient_id, document, effect, required, excluded, valid_from, valid_until) \
             SELECT $1, $2, d, e, \
             CASE WHEN q = '' THEN '{}'::text[] ELSE string_to_array(q, E'\\x1f') END, \
             CASE WHEN x = '' THEN '{}'::text[] ELSE string_to_array(x, E'\\x1f') END, f, u \
             FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], \
             $7::timestamptz[], $8::timestamptz[]) AS t(d, e, q, x, f, u)",
        )
        .bind::<Text, _>(consent_id)
        .bind::<Text, _>(patient_id)
        .bind::<Array<Nullable<BigInt>>, _>(documents)
        .bind::<Array<Text>, _>(effects)
        .bind::<Array<Text>, _>(required)
        .bind::<Array<Text>, _>(excluded)
        .bind::<Array<Timestamptz>, _>(from)
        .bind::<Array<Timestamptz>, _>(until)
        .execute(self.conn)?;
        Ok(())
    }

    /// The rules about `document` that hold for `reader` now, deny first.
    pub fn rules_holding(
        &mut self,
        document: i64,
        reader: &Reader,
    ) -> Result<Vec<HeldRule>, StoreError> {
        let rows = crate::search::held_rules(self.conn, document, reader)?;
        Ok(rows
            .into_iter()
            .map(|(consent_id, effect)| HeldRule {
                effect: if effect == "deny" {
                    ConsentEffect::Deny
                } else {
                    ConsentEffect::Permit
                },
                consent_id,
            })
            .collect())
    }

    /// Why the doctor `reader` sees each of the DocumentReferences `ids`
    /// (those it sees; `authored` is authorship as the access decision
    /// defines it), in the precedence `$access` explains it with:
    /// authorship, emergency access, a Consent's permit, else the base
    /// policy. One statement for any number of documents.
    pub fn document_grounds(
        &mut self,
        ids: &[String],
        reader: &Reader,
        authored: &Criterion,
    ) -> Result<HashMap<String, DocumentGround>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(crate::search::grounds(self.conn, ids, reader, authored)?
            .into_iter()
            .map(|g| {
                let ground = match (g.authored, g.emergency, g.permit) {
                    (true, _, _) => DocumentGround::Author,
                    (_, true, _) => DocumentGround::EmergencyAccess,
                    (_, _, Some(consent)) => DocumentGround::Consent(consent),
                    _ => DocumentGround::BasePolicy,
                };
                (g.id, ground)
            })
            .collect())
    }

    /// Records an emergency grant.
    pub fn grant_emergency_access(&mut self, grant: &EmergencyGrant) -> Result<(), StoreError> {
        diesel::sql_query(
            "INSERT INTO emergency_access (practitioner_id, patient_id, user_id, client_id, \
             token_id, reason, granted_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind::<Text, _>(&grant.practitioner_id)
        .bind::<Text, _>(&grant.patient_id)
        .bind::<Text, _>(&grant.user_id)
        .bind::<Text, _>(&grant.client_id)
        .bind::<Text, _>(&grant.token_id)
        .bind::<Text, _>(&grant.reason)
        .bind::<Timestamptz, _>(grant.granted_at)
        .bind::<Timestamptz, _>(grant.expires_at)
        .execute(self.conn)?;
        Ok(())
    }

    /// Whether the practitioner holds an unexpired emergency grant for the patient.
    pub fn holds_emergency_access(
        &mut self,
        practitioner_id: &str,
        patient_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(diesel::sql_query(
            "SELECT count(*) AS n FROM emergency_access WHERE practitioner_id = $1 \
             AND patient_id = $2 AND expires_at > now()",
        )
        .bind::<Text, _>(practitioner_id)
        .bind::<Text, _>(patient_id)
        .get_result::<Count>(self.conn)?
        .n > 0)
    }

    /// The references a doctor is known by in Consent rules (their
    /// Practitioner, their account's Organization, their PractitionerRoles
    /// and the Organizations of those), as the search statement computes them.
    pub fn reader_references(&mut self, reader: &Reader) -> Result<Vec<String>, StoreError> {
        crate::search::reader_references_of(self.conn, reader)
    }

    /// The Organization of the active doctor account whose FHIR identity is
    /// `fhir_user` (`Practitioner/{id}`).
    pub fn doctor_organization(&mut self, fhir_user: &str) -> Result<Option<String>, StoreError> {
        #[derive(QueryableByName)]
        struct Org {
            #[diesel(sql_type = Nullable<Text>)]
            organization: Option<String>,
        }
        Ok(diesel::sql_query(
            "SELECT organization FROM auth_users WHERE fhir_user = $1 AND role = 'doctor' \
             AND active ORDER BY created_at LIMIT 1",
        )
        .bind::<Text, _>(fhir_user)
        .get_result::<Org>(self.conn)
        .optional()?
        .and_then(|o| o.organization))
    }

    /// The Organization managing a Patient (its `organization` search parameter).
    pub fn patient_organization(&mut self, patient_id: &str) -> Result<Option<String>, StoreError> {
        #[derive(QueryableByName)]
        struct Target {
            #[diesel(sql_type = Text)]
            target_id: String,
        }
        Ok(diesel::sql_query(
            "SELECT x.target_id FROM resources r JOIN search_reference x ON x.res_id = r.res_id \
             WHERE r.resource_type = 'Patient' AND r.id = $1 AND NOT r.deleted \
             AND x.key = $2 AND x.target_type = 'Organization' LIMIT 1",
        )
        .bind::<Text, _>(patient_id)
        .bind::<Integer, _>(param_key("Patient", "organization"))
        .get_result::<Target>(self.conn)
        .optional()?
        .map(|t| t.target_id))
    }

    /// The database's clock, the one the rules are checked against.
    pub fn database_now(&mut self) -> Result<DateTime<Utc>, StoreError> {
        #[derive(QueryableByName)]
        struct Now {
            #[diesel(sql_type = Timestamptz)]
            now: DateTime<Utc>,
        }
        Ok(diesel::sql_query("SELECT now() AS now")
            .get_result::<Now>(self.conn)?
            .now)
    }
}
