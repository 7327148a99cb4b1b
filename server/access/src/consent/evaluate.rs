//! The Consent rules evaluated directly on the provision tree, in memory:
//! the definition the flattened rules (and so the SQL) must agree with — a
//! property test compares the two — and the check whether a patient has
//! switched emergency access off.
//!
//! A provision *applies* to an access when its period covers the instant,
//! it covers reading (`action` absent or `access`), its purpose matches, its
//! actors (if any) include one of the reader's references, its data
//! conditions hold for the document, and its parent applies. What a
//! provision that applies says: if none of its exceptions applies, its own
//! `type` (inherited from its parent when absent; nothing for a root without
//! one); otherwise `deny` if any applying exception says deny, else
//! `permit` if any says permit. Across Consents, deny wins.

use chrono::{DateTime, Utc};
use fhir_profiles::search::query::ConsentEffect;

use super::document::{covers_document, Document};
use super::model::{Code, Consent, Provision, ACT_REASON_SYSTEM, BTG};

/// What one Consent says about reading `document` by a reader known by
/// `reader` references, at `at`; `None` when it says nothing.
pub fn consent_says(
    consent: &Consent,
    document: &Document,
    reader: &[String],
    at: DateTime<Utc>,
) -> Option<ConsentEffect> {
    let applies = |p: &Provision| {
        active_at(p, at)
            && p.covers_reading()
            && p.covers_purpose(None)
            && names(p, reader)
            && covers_document(p, document)
    };
    says(&consent.root, None, &applies)
}

/// What all of a patient's Consents in force say together: deny if any
/// denies, else permit if any permits, else nothing (the base policy decides).
pub fn consents_say(
    consents: &[Consent],
    document: &Document,
    reader: &[String],
    at: DateTime<Utc>,
) -> Option<ConsentEffect> {
    let said: Vec<ConsentEffect> = consents
        .iter()
        .filter_map(|c| consent_says(c, document, reader, at))
        .collect();
    combine(&said)
}

/// Whether a Consent switches emergency access off for this reader: a deny
/// provision whose `purpose` is break-the-glass (`v3-ActReason|BTG`)
/// applies to them at `at` (its data conditions do not matter).
pub fn refuses_emergency_access(consent: &Consent, reader: &[String], at: DateTime<Utc>) -> bool {
    let btg = Code::new(ACT_REASON_SYSTEM, BTG);
    let applies =
        |p: &Provision| active_at(p, at) && names(p, reader) && p.covers_purpose(Some(&btg));
    fn find(
        p: &Provision,
        inherited: Option<ConsentEffect>,
        btg: &Code,
        applies: &dyn Fn(&Provision) -> bool,
    ) -> bool {
        if !applies(p) {
            return false;
        }
        let effect = p.effect.or(inherited);
        let explicit = p.purposes.iter().any(|c| c.covers(btg));
        (effect == Some(ConsentEffect::Deny) && explicit)
            || p.provisions.iter().any(|c| find(c, effect, btg, applies))
    }
    find(&consent.root, None, &btg, &applies)
}

fn says(
    p: &Provision,
    inherited: Option<ConsentEffect>,
    applies: &dyn Fn(&Provision) -> bool,
) -> Option<ConsentEffect> {
    if !applies(p) {
        return None;
    }
    let effect = p.effect.or(inherited);
    let exceptions: Vec<&Provision> = p.provisions.iter().filter(|c| applies(c)).collect();
    if exceptions.is_empty() {
        return effect;
    }
    let said: Vec<ConsentEffect> = exceptions
        .iter()
        .filter_map(|c| says(c, effect, applies))
        .collect();
    combine(&said).or(effect)
}

fn combine(said: &[ConsentEffect]) -> Option<ConsentEffect> {
    if said.contains(&ConsentEffect::Deny) {
        Some(ConsentEffect::Deny)
    } else if said.contains(&ConsentEffect::Permit) {
        Some(ConsentEffect::Permit)
    } else {
        None
    }
}

fn active_at(p: &Provision, at: DateTime<Utc>) -> bool {
    p.period
        .as_ref()
        .is_none_or(|r| r.low <= at && at <= r.high)
}

/// Whether the provision names no actor, or one of the reader's references.
fn names(p: &Provision, reader: &[String]) -> bool {
    p.actors.is_empty() || p.actors.iter().any(|a| reader.contains(a))
}
