//! Patient Consent, pure: which Consents are in force, what their provision
//! trees say about a document and a doctor ([`evaluate`]), and the same
//! flattened into [`rules`] the store keeps beside each document so that the
//! decision runs inside the search statement. ARCHITECTURE.md ("Consent")
//! has the evaluation with a worked example.

#[cfg(any(test, feature = "strategies"))]
pub mod arbitrary;
pub mod document;
pub mod evaluate;
pub mod model;
pub mod rules;

#[cfg(test)]
mod tests;

pub use document::Document;
pub use evaluate::{consent_says, consents_say, refuses_emergency_access};
pub use model::{local_reference, Consent, NotInForce, Provision};
pub use rules::{
    check_enforceable, document_rules, patient_rules, Rule, TooComplex, RULES_GENERATION,
};

use chrono::{DateTime, Utc};
use fhir_profiles::search::query::ConsentEffect;

/// What kept rules say for a reader at an instant, read the way the store's
/// SQL reads them: deny if a deny rule holds, else permit if a permit rule
/// holds. A rule holds when the reader is every `required` reference, none
/// of the `excluded` ones, and `at` is within its validity.
pub fn rules_say(rules: &[Rule], reader: &[String], at: DateTime<Utc>) -> Option<ConsentEffect> {
    let holds = |r: &&Rule| {
        r.required.iter().all(|a| reader.contains(a))
            && !r.excluded.iter().any(|a| reader.contains(a))
            && r.valid_from <= at
            && at < r.valid_until
    };
    let held: Vec<ConsentEffect> = rules.iter().filter(holds).map(|r| r.effect).collect();
    if held.contains(&ConsentEffect::Deny) {
        Some(ConsentEffect::Deny)
    } else if held.contains(&ConsentEffect::Permit) {
        Some(ConsentEffect::Permit)
    } else {
        None
    }
}
