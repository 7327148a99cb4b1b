//! A Consent flattened into rules the store keeps beside each document, so
//! that "does a Consent permit (or deny) this document to this doctor now?"
//! is one indexed probe inside the search statement.
//!
//! A rule is what one *deciding* provision says: a provision that applies
//! while none of its exceptions does. Whether a provision applies to a given
//! document is known when the rules are made (its data conditions); whether
//! it applies to a doctor is left to the query, as references the doctor
//! must all be (`required`: one actor of every provision on the path that
//! names actors) and references the doctor may not be (`excluded`: the
//! actors of the exceptions that would apply to the document). Time is left
//! to the query too: the span of instants between any two period boundaries
//! of the tree gets its own rules, valid for that span only.

use chrono::{DateTime, Duration, Utc};
use fhir_profiles::search::query::ConsentEffect;
use fhir_profiles::search::DateRange;

use super::document::{covers_document, Document};
use super::model::{Consent, Provision};

/// The generation of the flattening below: the store records it with the
/// rules it keeps, and the server rewrites every Consent's rules at start-up
/// when they were written by another. Change it with any change of meaning.
pub const RULES_GENERATION: &str = "consent-rules-1";

/// One rule of a Consent about one document (or, for [`patient_rules`],
/// about the patient as a whole).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    pub effect: ConsentEffect,
    /// References (`Practitioner/…`, `PractitionerRole/…`, `Organization/…`)
    /// the reader must all be; none means every reader.
    pub required: Vec<String>,
    /// References the reader may not be any of.
    pub excluded: Vec<String>,
    /// The first instant the rule holds.
    pub valid_from: DateTime<Utc>,
    /// The first instant it no longer holds.
    pub valid_until: DateTime<Utc>,
}

/// The most rules one Consent may make about one document: more actor
/// combinations or periods than this is refused when the Consent is written.
pub const MAX_RULES: usize = 256;

/// Why a Consent cannot be enforced as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TooComplex(pub String);

/// Refuses a Consent whose rules about a single document could exceed
/// [`MAX_RULES`] (many nested provisions each naming several actors, or
/// many distinct periods).
pub fn check_enforceable(consent: &Consent) -> Result<(), TooComplex> {
    let spans = spans(&consent.root).len();
    let combinations = most_combinations(&consent.root, 1);
    let nodes = count(&consent.root);
    let worst = spans.saturating_mul(combinations).saturating_mul(nodes);
    if worst > MAX_RULES * 16 {
        return Err(TooComplex(format!(
            "Consent.provision is too complex to enforce: {nodes} provisions, {spans} \
             distinct periods and up to {combinations} combinations of actors along one \
             path; nest fewer provisions naming several actors each"
        )));
    }
    Ok(())
}

/// The rules a Consent in force makes about one document.
pub fn document_rules(consent: &Consent, document: &Document) -> Vec<Rule> {
    let mut out = Vec::new();
    for (from, until) in spans(&consent.root) {
        let applies = |p: &Provision| {
            active_during(p, from, until)
                && p.covers_reading()
                && p.covers_purpose(None)
                && covers_document(p, document)
        };
        walk(
            &consent.root,
            None,
            &mut Vec::new(),
            &applies,
            (from, until),
            &mut out,
        );
    }
    tidy(out)
}

/// The permit rules of a Consent about its patient as a whole: who the
/// patient grants anything at all (which lets those doctors read the
/// Patient resource). Data conditions are ignored; an exception withholds
/// only when it narrows no data and denies.
pub fn patient_rules(consent: &Consent) -> Vec<Rule> {
    let mut out = Vec::new();
    for (from, until) in spans(&consent.root) {
        let applies = |p: &Provision| {
            active_during(p, from, until) && p.covers_reading() && p.covers_purpose(None)
        };
        let mut all = Vec::new();
        walk_patient(
            &consent.root,
            None,
            &mut Vec::new(),
            &applies,
            (from, until),
            &mut all,
        );
        out.extend(all);
    }
    tidy(out)
}

/// Emits the rules of `p` and its exceptions, given the actor lists of the
/// provisions above it (`levels`) and its inherited effect.
fn walk<'a>(
    p: &'a Provision,
    inherited: Option<ConsentEffect>,
    levels: &mut Vec<&'a [String]>,
    applies: &dyn Fn(&Provision) -> bool,
    span: (DateTime<Utc>, DateTime<Utc>),
    out: &mut Vec<Rule>,
) {
    if !applies(p) {
        return;
    }
    let effect = p.effect.or(inherited);
    let named = !p.actors.is_empty();
    if named {
        levels.push(&p.actors);
    }
    if let Some(effect) = effect {
        let exceptions: Vec<&Provision> = p.provisions.iter().filter(|c| applies(c)).collect();
        // An exception naming no actor applies whenever this provision does.
        if exceptions.iter().all(|c| !c.actors.is_empty()) {
            let excluded: Vec<String> = exceptions
                .iter()
                .flat_map(|c| c.actors.iter().cloned())
                .collect();
            emit(effect, levels, excluded, span, out);
        }
    }
    for child in &p.provisions {
        walk(child, effect, levels, applies, span, out);
    }
    if named {
        levels.pop();
    }
}

fn walk_patient<'a>(
    p: &'a Provision,
    inherited: Option<ConsentEffect>,
    levels: &mut Vec<&'a [String]>,
    applies: &dyn Fn(&Provision) -> bool,
    span: (DateTime<Utc>, DateTime<Utc>),
    out: &mut Vec<Rule>,
) {
    if !applies(p) {
        return;
    }
    let effect = p.effect.or(inherited);
    let named = !p.actors.is_empty();
    if named {
        levels.push(&p.actors);
    }
    if effect == Some(ConsentEffect::Permit) {
        let withholding: Vec<&Provision> = p
            .provisions
            .iter()
            .filter(|c| {
                applies(c)
                    && !c.narrows_data()
                    && c.effect.unwrap_or(ConsentEffect::Permit) == ConsentEffect::Deny
            })
            .collect();
        if withholding.iter().all(|c| !c.actors.is_empty()) {
            let excluded = withholding
                .iter()
                .flat_map(|c| c.actors.iter().cloned())
                .collect();
            emit(ConsentEffect::Permit, levels, excluded, span, out);
        }
    }
    for child in &p.provisions {
        walk_patient(child, effect, levels, applies, span, out);
    }
    if named {
        levels.pop();
    }
}

/// One rule per combination of one actor from each level.
fn emit(
    effect: ConsentEffect,
    levels: &[&[String]],
    excluded: Vec<String>,
    (from, until): (DateTime<Utc>, DateTime<Utc>),
    out: &mut Vec<Rule>,
) {
    let mut combinations: Vec<Vec<String>> = vec![Vec::new()];
    for level in levels {
        combinations = combinations
            .iter()
            .flat_map(|c| {
                level.iter().map(move |a| {
                    let mut next = c.clone();
                    next.push(a.clone());
                    next
                })
            })
            .collect();
    }
    for required in combinations {
        out.push(Rule {
            effect,
            required,
            excluded: excluded.clone(),
            valid_from: from,
            valid_until: until,
        });
    }
}

/// Sorted, deduplicated lists; rules that can never hold (a required
/// reference also excluded) dropped; duplicates dropped.
fn tidy(rules: Vec<Rule>) -> Vec<Rule> {
    let mut out: Vec<Rule> = rules
        .into_iter()
        .map(|mut r| {
            r.required.sort();
            r.required.dedup();
            r.excluded.sort();
            r.excluded.dedup();
            r
        })
        .filter(|r| !r.required.iter().any(|a| r.excluded.contains(a)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The first instant after every representable one: the end of the last span.
pub fn end_of_time() -> DateTime<Utc> {
    DateRange::max_instant() + Duration::microseconds(1)
}

/// The spans `[from, until)` between consecutive period boundaries of the
/// tree, covering all of time; within one, every provision is either active
/// throughout or not at all.
fn spans(root: &Provision) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let (first, last) = (DateRange::min_instant(), end_of_time());
    let mut bounds = vec![first, last];
    collect_bounds(root, &mut bounds);
    bounds.retain(|b| *b >= first && *b <= last);
    bounds.sort();
    bounds.dedup();
    bounds.windows(2).map(|w| (w[0], w[1])).collect()
}

fn collect_bounds(p: &Provision, out: &mut Vec<DateTime<Utc>>) {
    if let Some(period) = &p.period {
        out.push(period.low);
        out.push(period.high + Duration::microseconds(1));
    }
    for child in &p.provisions {
        collect_bounds(child, out);
    }
}

/// Whether `p`'s period (if any) covers all of `[from, until)`.
fn active_during(p: &Provision, from: DateTime<Utc>, until: DateTime<Utc>) -> bool {
    p.period
        .as_ref()
        .is_none_or(|r| r.low <= from && until <= r.high + Duration::microseconds(1))
}

fn most_combinations(p: &Provision, above: usize) -> usize {
    let here = above.saturating_mul(p.actors.len().max(1));
    p.provisions
        .iter()
        .map(|c| most_combinations(c, here))
        .max()
        .unwrap_or(here)
        .max(here)
}

fn count(p: &Provision) -> usize {
    1 + p.provisions.iter().map(count).sum::<usize>()
}
