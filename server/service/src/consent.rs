//! Patient Consent in the write path. Every write of a Consent or of a
//! DocumentReference, inside its transaction,
//!
//! - keeps the rules that enforce Consent in SQL (`consent_rules`, see
//!   `fhirledger_access::consent::rules`) equal to what the Consents in
//!   force say about each document ([`keep_rules`], right after the write),
//!   so the next statement of any process sees the change;
//! - refuses (422) references that decide access but name nothing here: a
//!   document's `subject` and Practitioner `author`s, a Consent's `patient`
//!   and `provision.actor`s, and a patient's Consent about someone else
//!   ([`check_references`], once the whole transaction is written).
//!
//! The rules of one patient change under an advisory lock of that patient:
//! a Consent writer takes it exclusively, document writers shared (they do
//! not wait for each other), so a document written while a Consent of its
//! patient is written cannot miss it (both run at READ COMMITTED: the second
//! one's statements see what the first committed).

use fhir_profiles::outcome::IssueType;
use fhirledger_access::consent::{
    check_enforceable, document_rules, local_reference, patient_rules, Consent, Document, Rule,
    RULES_GENERATION,
};
use fhirledger_access::Role;
use std::collections::HashMap;

use fhirledger_postgres::{ConsentRuleRow, PgStore, Tx};
use serde_json::Value;

use crate::error::{ServiceError, Status};
use crate::guard::Guard;
use crate::prepare::Prepared;

/// What a write left of a resource, for [`keep_rules`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Written<'a> {
    /// A resource that did not exist before (so it has no rules yet), with its JSON.
    Created(&'a Value),
    /// A new version of an existing resource, with its JSON.
    Updated(&'a Value),
    Deleted,
}

impl<'a> Written<'a> {
    fn json(self) -> Option<&'a Value> {
        match self {
            Written::Created(j) | Written::Updated(j) => Some(j),
            Written::Deleted => None,
        }
    }
}

/// After `resource_type/id` was written (or deleted) in `tx`: brings the
/// Consent rules up to date, at once, so the rest of the transaction (and a
/// Bundle's later entries) see them.
pub(crate) fn keep_rules(
    tx: &mut Tx<'_>,
    guard: &Guard,
    resource_type: &str,
    id: &str,
    written: Written<'_>,
) -> Result<(), ServiceError> {
    match resource_type {
        "DocumentReference" => keep_document_rules(tx, guard.fhir_base(), id, written),
        "Consent" => {
            if let Some(json) = written.json() {
                check_own(guard, json)?;
            }
            keep_consent_rules(tx, guard.fhir_base(), id, written.json())
        }
        _ => Ok(()),
    }
}

/// A patient records Consent only for themselves: 422 naming
/// `Consent.patient` otherwise (before the compartment check would answer
/// a less helpful 403).
fn check_own(guard: &Guard, consent: &Value) -> Result<(), ServiceError> {
    let Some(caller) = guard.caller() else {
        return Ok(());
    };
    if caller.role != Some(Role::Patient) {
        return Ok(());
    }
    let fhir_base = guard.fhir_base();
    let patient = consent["patient"]["reference"].as_str();
    let own = caller.patient.as_deref().map(|p| format!("Patient/{p}"));
    let named = patient.and_then(|r| local_reference(r, fhir_base));
    if named.is_some() && named == own {
        return Ok(());
    }
    Err(unprocessable(
        format!(
            "a patient records Consent only for themselves ({}), not for {}",
            own.unwrap_or_else(|| "no patient".into()),
            patient.unwrap_or("nobody")
        ),
        "Consent.patient",
    ))
}

/// [`keep_rules`] for many resources just created together (a transaction
/// Bundle's POSTs), in a constant number of statements for their documents:
/// new documents have no rules yet, so only the Consents of their patients
/// (looked up once for all of them, under all their locks) make any.
pub(crate) fn keep_rules_of_created(
    tx: &mut Tx<'_>,
    guard: &Guard,
    created: &[(&Prepared, &str)],
) -> Result<(), ServiceError> {
    let fhir_base = guard.fhir_base();
    let mut documents: Vec<(&str, String, &Value)> = Vec::new();
    for (prepared, id) in created {
        match prepared.resource_type.as_str() {
            "DocumentReference" => {
                if let Some(patient) = patient_of(&prepared.resource, "subject", fhir_base) {
                    documents.push((id, patient, &prepared.resource));
                }
            }
            "Consent" => keep_rules(
                tx,
                guard,
                "Consent",
                id,
                Written::Created(&prepared.resource),
            )?,
            _ => {}
        }
    }
    if documents.is_empty() {
        return Ok(());
    }
    let mut patients: Vec<String> = documents.iter().map(|(_, p, _)| p.clone()).collect();
    patients.sort();
    patients.dedup();
    tx.share_patients_rules(&patients)?;
    let mut consents: HashMap<String, Vec<Consent>> = HashMap::new();
    for (patient, stored) in tx.referencing_any("Consent", "patient", "Patient", &patients)? {
        let json: Value = serde_json::from_str(&stored.content)
            .map_err(|e| ServiceError::internal(format!("stored JSON is corrupt: {e}")))?;
        if let Ok(consent) = Consent::in_force(&stored.id, &json, fhir_base) {
            if consent.patient == patient {
                consents.entry(patient).or_default().push(consent);
            }
        }
    }
    if consents.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = documents.iter().map(|(id, _, _)| *id).collect();
    let keys: HashMap<String, i64> = tx
        .live_keys("DocumentReference", &ids)?
        .into_iter()
        .collect();
    let mut rows: HashMap<(String, String), Vec<ConsentRuleRow>> = HashMap::new();
    for (id, patient, json) in documents {
        let (Some(of_patient), Some(key)) = (consents.get(&patient), keys.get(id)) else {
            continue;
        };
        let facts = Document::from_json(id, json);
        for consent in of_patient {
            rows.entry((consent.id.clone(), patient.clone()))
                .or_default()
                .extend(to_rows(Some(*key), document_rules(consent, &facts)));
        }
    }
    for ((consent, patient), rows) in rows {
        tx.insert_rules(&consent, &patient, &rows)?;
    }
    Ok(())
}

/// Once everything of a transaction is written (a Bundle's later entries
/// may create what an earlier one references): the references of the
/// current versions of the `written` resources that decide access must
/// resolve (422 naming the element otherwise), and their Consents must be
/// enforceable. Two statements however many were written.
pub(crate) fn check_references(
    tx: &mut Tx<'_>,
    guard: &Guard,
    written: &[(&str, &str)],
) -> Result<(), ServiceError> {
    let mut current = |kind: &str| -> Result<Vec<Value>, ServiceError> {
        let ids: Vec<&str> = written
            .iter()
            .filter(|(t, _)| *t == kind)
            .map(|(_, id)| *id)
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        tx.current_contents(kind, &ids)?
            .iter()
            .map(|(_, content)| parse(content))
            .collect()
    };
    let documents = current("DocumentReference")?;
    let consents = current("Consent")?;
    let documents: Vec<&Value> = documents.iter().collect();
    let consents: Vec<&Value> = consents.iter().collect();
    check_references_of(tx, guard, &documents, &consents)
}

/// [`check_references`] of resources whose written JSON is at hand (a REST
/// write), without reading them back.
pub(crate) fn check_references_of(
    tx: &mut Tx<'_>,
    guard: &Guard,
    documents: &[&Value],
    consents: &[&Value],
) -> Result<(), ServiceError> {
    let fhir_base = guard.fhir_base();
    let mut wanted = Vec::new();
    for document in documents {
        document_references(document, &mut wanted);
    }
    for consent in consents {
        consent_references(consent, fhir_base, &mut wanted);
        if let Ok(parsed) = Consent::in_force("", consent, fhir_base) {
            check_enforceable(&parsed)
                .map_err(|why| unprocessable(why.to_string(), "Consent.provision"))?;
        }
    }
    let mut targets = Vec::with_capacity(wanted.len());
    for w in &wanted {
        match w.reference.and_then(|r| split(r, fhir_base)) {
            Some((t, id)) if w.types.contains(&t.as_str()) => targets.push((t, id)),
            _ => return Err(dangling(w)),
        }
    }
    match tx.missing(&targets)?.first() {
        Some(&i) => Err(dangling(&wanted[i])),
        None => Ok(()),
    }
}

/// A reference that must name a live resource of one of `types` here.
struct Wanted<'a> {
    reference: Option<&'a str>,
    types: &'static [&'static str],
    expression: &'static str,
}

fn dangling(w: &Wanted<'_>) -> ServiceError {
    unprocessable(
        format!(
            "{} must reference an existing {} on this server; '{}' does not",
            w.expression,
            w.types.join(" or "),
            w.reference.unwrap_or("nothing")
        ),
        w.expression,
    )
}

/// Rewrites the rules of every live Consent (each in its own transaction,
/// under its patient's lock) and records their generation: at start-up,
/// when the database's rules were written by another flattening or by none
/// (Consents stored before Consent was enforced). Returns how many
/// Consents were rewritten.
pub fn ensure_rules_current(store: &PgStore, fhir_base: &str) -> Result<u64, ServiceError> {
    if store.consent_rules_generation()?.as_deref() == Some(RULES_GENERATION) {
        return Ok(0);
    }
    let mut rewritten = 0;
    for id in store.live_ids("Consent")? {
        store.transaction(|tx| {
            let consent = current(tx, "Consent", &id)?;
            keep_consent_rules(tx, fhir_base, &id, consent.as_ref())
        })?;
        rewritten += 1;
    }
    store.record_consent_rules_generation(RULES_GENERATION)?;
    Ok(rewritten)
}

/// Before a delete: a Patient with documents or Consents stays (409), so no
/// document or Consent is left about nobody.
pub(crate) fn before_delete(
    tx: &mut Tx<'_>,
    resource_type: &str,
    id: &str,
) -> Result<(), ServiceError> {
    if resource_type != "Patient" {
        return Ok(());
    }
    for kind in ["DocumentReference", "Consent"] {
        let n = tx.count_referencing(kind, "patient", "Patient", id)?;
        if n > 0 {
            return Err(ServiceError::new(
                Status::CONFLICT,
                IssueType::Conflict,
                format!("Patient/{id} still has {n} {kind} resource(s); delete them first"),
            ));
        }
    }
    Ok(())
}

/// The current content of a live resource as JSON; `None` once deleted.
fn current(tx: &mut Tx<'_>, resource_type: &str, id: &str) -> Result<Option<Value>, ServiceError> {
    let Some(content) = tx.read(resource_type, id)?.and_then(|v| v.content) else {
        return Ok(None);
    };
    serde_json::from_str(&content)
        .map(Some)
        .map_err(|e| ServiceError::internal(format!("stored JSON is corrupt: {e}")))
}

fn parse(content: &str) -> Result<Value, ServiceError> {
    serde_json::from_str(content)
        .map_err(|e| ServiceError::internal(format!("stored JSON is corrupt: {e}")))
}

/// `Type/id` of a reference on this server, split.
fn split(reference: &str, fhir_base: &str) -> Option<(String, String)> {
    let local = local_reference(reference, fhir_base)?;
    let (t, id) = local.split_once('/')?;
    Some((t.to_string(), id.to_string()))
}

fn unprocessable(diagnostics: String, expression: &str) -> ServiceError {
    ServiceError::unprocessable_at(expression, diagnostics)
}

const AUTHORS: &[&str] = &["Practitioner", "PractitionerRole"];
const ACTORS: &[&str] = &[
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Patient",
];

/// A document's subject must be an existing Patient (else no Consent could
/// ever share it), and the Practitioners and PractitionerRoles it names as
/// authors must exist (authorship opens it to them). A document about
/// nobody in particular (no subject, or only a logical identifier) is its
/// author's and the backends' alone.
fn document_references<'a>(document: &'a Value, out: &mut Vec<Wanted<'a>>) {
    if let Some(subject) = document["subject"]["reference"].as_str() {
        out.push(Wanted {
            reference: Some(subject),
            types: &["Patient"],
            expression: "DocumentReference.subject",
        });
    }
    for author in document["author"].as_array().into_iter().flatten() {
        let Some(reference) = author["reference"].as_str() else {
            continue;
        };
        let named_type = reference.rsplit('/').nth(1).unwrap_or_default();
        if AUTHORS.contains(&named_type) {
            out.push(Wanted {
                reference: Some(reference),
                types: AUTHORS,
                expression: "DocumentReference.author",
            });
        }
    }
}

/// A Consent's patient must exist, and every actor it names on this server.
fn consent_references<'a>(consent: &'a Value, fhir_base: &str, out: &mut Vec<Wanted<'a>>) {
    out.push(Wanted {
        reference: consent["patient"]["reference"].as_str(),
        types: &["Patient"],
        expression: "Consent.patient",
    });
    let mut actors = Vec::new();
    collect_actors(&consent["provision"], &mut actors);
    for actor in actors {
        if split(actor, fhir_base).is_some() {
            out.push(Wanted {
                reference: Some(actor),
                types: ACTORS,
                expression: "Consent.provision.actor.reference",
            });
        }
    }
}

/// Every `actor.reference.reference` of a provision tree.
fn collect_actors<'a>(provision: &'a Value, out: &mut Vec<&'a str>) {
    for actor in provision["actor"].as_array().into_iter().flatten() {
        if let Some(r) = actor["reference"]["reference"].as_str() {
            out.push(r);
        }
    }
    for nested in provision["provision"].as_array().into_iter().flatten() {
        collect_actors(nested, out);
    }
}

/// The patient a document or Consent is about, by its stored index.
fn patient_of(json: &Value, element: &str, fhir_base: &str) -> Option<String> {
    let (t, id) = split(json[element]["reference"].as_str()?, fhir_base)?;
    (t == "Patient").then_some(id)
}

/// Rewrites the rules of Consent `id` from its current version: none when it
/// was deleted or is not in force, else those about its patient and each of
/// their documents.
fn keep_consent_rules(
    tx: &mut Tx<'_>,
    fhir_base: &str,
    id: &str,
    json: Option<&Value>,
) -> Result<(), ServiceError> {
    let consent = json.and_then(|j| Consent::in_force(id, j, fhir_base).ok());
    if let Some(c) = &consent {
        tx.lock_patient_rules(&c.patient)?;
    }
    tx.delete_rules_of_consent(id)?;
    let Some(consent) = consent else {
        return Ok(());
    };
    let mut rows = to_rows(None, patient_rules(&consent));
    for document in tx.referencing("DocumentReference", "patient", "Patient", &consent.patient)? {
        let facts = Document::from_stored(&document.id, &document.content)
            .map_err(|e| ServiceError::internal(format!("stored JSON is corrupt: {e}")))?;
        rows.extend(to_rows(
            Some(document.res_id),
            document_rules(&consent, &facts),
        ));
    }
    tx.insert_rules(&consent.id, &consent.patient, &rows)?;
    Ok(())
}

/// Rewrites the rules about document `id` from what was written and the
/// Consents in force of its patient: under the patient's lock, the old
/// rules go (a new document has none) and each Consent makes its own.
fn keep_document_rules(
    tx: &mut Tx<'_>,
    fhir_base: &str,
    id: &str,
    written: Written<'_>,
) -> Result<(), ServiceError> {
    let json = written.json();
    let patient = json.and_then(|j| patient_of(j, "subject", fhir_base));
    if let Some(p) = &patient {
        tx.share_patient_rules(p)?;
    }
    if !matches!(written, Written::Created(_)) {
        tx.delete_rules_of_document_id(id)?;
    }
    let (Some(json), Some(patient)) = (json, patient) else {
        return Ok(());
    };
    let mut consents = Vec::new();
    for stored in tx.referencing("Consent", "patient", "Patient", &patient)? {
        if let Ok(consent) = Consent::in_force(&stored.id, &parse(&stored.content)?, fhir_base) {
            if consent.patient == patient {
                consents.push(consent);
            }
        }
    }
    if consents.is_empty() {
        return Ok(());
    }
    let Some(key) = tx.live_key("DocumentReference", id)? else {
        return Ok(());
    };
    let facts = Document::from_json(id, json);
    for consent in &consents {
        let rows = to_rows(Some(key), document_rules(consent, &facts));
        tx.insert_rules(&consent.id, &patient, &rows)?;
    }
    Ok(())
}

fn to_rows(document: Option<i64>, rules: Vec<Rule>) -> Vec<ConsentRuleRow> {
    rules
        .into_iter()
        .map(|r| ConsentRuleRow {
            document,
            effect: r.effect,
            required: r.required,
            excluded: r.excluded,
            valid_from: r.valid_from,
            valid_until: r.valid_until,
        })
        .collect()
}
