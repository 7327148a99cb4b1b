//! The Consent criteria as SQL: probes of the rules kept in `consent_rules`
//! and of the emergency grants in `emergency_access`, for the candidate
//! row `r` (see `migrations/…_consent/up.sql` for what the rows mean).

use fhir_profiles::search::param_key;
use fhir_profiles::search::query::{ConsentEffect, Reader};

use crate::search::binds::{Bind, Sql};

/// The references a doctor is known by in Consent rules, as a scalar
/// `text[]` expression evaluated once per statement (a common table
/// expression every probe of the statement shares): their Practitioner,
/// the Organization of their account, and every live PractitionerRole of
/// the Practitioner with that role's Organization.
pub(crate) fn reader_references(sql: &mut Sql, reader: &Reader) -> String {
    let key = format!(
        "reader {} {}",
        reader.practitioner,
        reader.organization.as_deref().unwrap_or("")
    );
    let name = sql.common(&key, |sql| {
        let mut own = vec![format!("Practitioner/{}", reader.practitioner)];
        if let Some(org) = &reader.organization {
            own.push(format!("Organization/{org}"));
        }
        let own = sql.bind(Bind::Texts(own));
        let practitioner = sql.text(reader.practitioner.clone());
        let by_practitioner = param_key("PractitionerRole", "practitioner");
        let by_organization = param_key("PractitionerRole", "organization");
        let (x, pr, o) = (sql.alias("x"), sql.alias("pr"), sql.alias("o"));
        format!(
            "SELECT {own}::text[] || COALESCE(array_agg(z.ref), '{{}}'::text[]) AS refs FROM ( \
             SELECT 'PractitionerRole/' || {pr}.id AS ref FROM search_reference {x} \
             JOIN resources {pr} ON {pr}.res_id = {x}.res_id \
             WHERE {x}.key = {by_practitioner} AND {x}.target_type = 'Practitioner' \
             AND {x}.target_id = {practitioner} AND NOT {pr}.deleted \
             UNION SELECT 'Organization/' || {o}.target_id FROM search_reference {x} \
             JOIN resources {pr} ON {pr}.res_id = {x}.res_id \
             JOIN search_reference {o} ON {o}.res_id = {pr}.res_id AND {o}.key = {by_organization} \
             AND {o}.target_type = 'Organization' \
             WHERE {x}.key = {by_practitioner} AND {x}.target_type = 'Practitioner' \
             AND {x}.target_id = {practitioner} AND NOT {pr}.deleted) z"
        )
    });
    format!("(SELECT refs FROM {name})")
}

/// A kept rule with `effect` holds for the reader now: on a
/// DocumentReference, a rule about that document; on a Patient, a rule
/// about the patient as a whole.
pub(crate) fn consented(
    sql: &mut Sql,
    effect: ConsentEffect,
    reader: &Reader,
    r: &str,
    resource_type: &str,
) -> String {
    let about = match resource_type {
        "DocumentReference" => "document = {r}.res_id",
        "Patient" => "document IS NULL AND {c}.patient_id = {r}.id",
        _ => return "FALSE".into(),
    };
    let c = sql.alias("c");
    let about = about.replace("{r}", r).replace("{c}", &c);
    let references = reader_references(sql, reader);
    let effect = sql.type_name(effect.code());
    format!(
        "EXISTS (SELECT 1 FROM consent_rules {c} WHERE {c}.{about} AND {c}.effect = {effect} \
         AND {c}.required <@ {references} AND NOT ({c}.excluded && {references}) \
         AND {c}.valid_from <= now() AND now() < {c}.valid_until)"
    )
}

/// The reader holds an unexpired emergency grant for the patient the
/// candidate is (Patient) or is about (DocumentReference).
pub(crate) fn emergency_access(
    sql: &mut Sql,
    reader: &Reader,
    r: &str,
    resource_type: &str,
) -> String {
    let (e, any) = (sql.alias("e"), sql.alias("e"));
    let practitioner = sql.text(reader.practitioner.clone());
    let current =
        |e: &str| format!("{e}.practitioner_id = {practitioner} AND {e}.expires_at > now()");
    // Whether the reader holds any grant at all, checked once per statement (an
    // uncorrelated subquery), so candidates are probed only when they do; the
    // probe itself is fenced like every per-candidate probe (`OFFSET 0`).
    let holds_any = format!(
        "EXISTS (SELECT 1 FROM emergency_access {any} WHERE {})",
        current(&any)
    );
    let current = current(&e);
    match resource_type {
        "Patient" => format!(
            "({holds_any} AND EXISTS (SELECT 1 FROM emergency_access {e} \
             WHERE {e}.patient_id = {r}.id AND {current} OFFSET 0))"
        ),
        "DocumentReference" => {
            let x = sql.alias("x");
            let key = param_key("DocumentReference", "patient");
            format!(
                "({holds_any} AND EXISTS (SELECT 1 FROM search_reference {x} \
                 JOIN emergency_access {e} ON {e}.patient_id = {x}.target_id \
                 WHERE {x}.res_id = {r}.res_id AND {x}.key = {key} \
                 AND {x}.target_type = 'Patient' AND {current} OFFSET 0))"
            )
        }
        _ => "FALSE".into(),
    }
}

/// The Consents with a rule about `document` that holds for the reader now,
/// with each rule's effect (`permit` or `deny`), denies first.
pub(crate) fn held_rules(
    conn: &mut diesel::PgConnection,
    document: i64,
    reader: &Reader,
) -> Result<Vec<(String, String)>, crate::StoreError> {
    use diesel::prelude::*;
    use diesel::sql_types::Text;
    #[derive(QueryableByName)]
    struct Held {
        #[diesel(sql_type = Text)]
        consent_id: String,
        #[diesel(sql_type = Text)]
        effect: String,
    }
    let mut sql = Sql::default();
    let references = reader_references(&mut sql, reader);
    let document = sql.bind(Bind::BigInt(document));
    sql.text = format!(
        "SELECT DISTINCT c.consent_id, c.effect FROM consent_rules c \
         WHERE c.document = {document} AND c.required <@ {references} \
         AND NOT (c.excluded && {references}) \
         AND c.valid_from <= now() AND now() < c.valid_until \
         ORDER BY c.effect, c.consent_id"
    );
    Ok(sql
        .query()
        .load::<Held>(conn)?
        .into_iter()
        .map(|h| (h.consent_id, h.effect))
        .collect())
}

/// The references of [`reader_references`], evaluated on their own.
pub(crate) fn reader_references_of(
    conn: &mut diesel::PgConnection,
    reader: &Reader,
) -> Result<Vec<String>, crate::StoreError> {
    use diesel::prelude::*;
    use diesel::sql_types::{Array, Text};
    #[derive(QueryableByName)]
    struct References {
        #[diesel(sql_type = Array<Text>)]
        refs: Vec<String>,
    }
    let mut sql = Sql::default();
    let references = reader_references(&mut sql, reader);
    sql.text = format!("SELECT {references} AS refs");
    Ok(sql.query().get_result::<References>(conn)?.refs)
}

/// Why a doctor sees each of the DocumentReferences `ids`, in one statement:
/// whether `authored` (their authorship, as the access decision defines it)
/// holds, whether they hold emergency access to its patient, and which
/// Consent in force permits it to them (the first by id, when several do).
pub(crate) fn grounds(
    conn: &mut diesel::PgConnection,
    ids: &[String],
    reader: &Reader,
    authored: &fhir_profiles::search::query::Criterion,
) -> Result<Vec<Grounds>, crate::StoreError> {
    use diesel::prelude::*;
    let mut sql = Sql::default();
    let r = "r";
    let authored = crate::search::criteria::predicate(&mut sql, authored, r, "DocumentReference");
    let emergency = emergency_access(&mut sql, reader, r, "DocumentReference");
    let references = reader_references(&mut sql, reader);
    let ids = sql.bind(Bind::Texts(ids.to_vec()));
    sql.text = format!(
        "SELECT {r}.id, {authored} AS authored, {emergency} AS emergency, \
         (SELECT c.consent_id FROM consent_rules c WHERE c.document = {r}.res_id \
          AND c.effect = 'permit' AND c.required <@ {references} \
          AND NOT (c.excluded && {references}) \
          AND c.valid_from <= now() AND now() < c.valid_until \
          ORDER BY c.consent_id LIMIT 1) AS permit \
         FROM resources {r} WHERE {r}.resource_type = 'DocumentReference' AND {r}.id = ANY({ids})"
    );
    Ok(sql.query().load::<Grounds>(conn)?)
}

/// What [`grounds`] finds for one document.
#[derive(diesel::QueryableByName)]
pub(crate) struct Grounds {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub id: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub authored: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub emergency: bool,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub permit: Option<String>,
}
