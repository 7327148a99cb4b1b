//! Plain-words descriptions of scopes for the approval page.
//!
//! People approve what they can understand: "Read and search your documents"
//! rather than `patient/DocumentReference.rs`. Each line also names the scope
//! texts it stands for, so the page can show them for those who want detail.

use super::roles::ADMIN_SCOPE;
use super::scope::{Context, Permissions, ResourceScope, Scope, ScopeSet};

/// One line of the approval page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeDescription {
    /// The scope texts this line stands for.
    pub scopes: Vec<String>,
    pub text: String,
}

const IDENTITY: &str = "Know who you are (your name and role)";

/// Whose record `patient/` scopes are about, for the person approving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientRecord {
    /// The patient approves for their own record: "your documents".
    Own,
    /// A clinician approves for the patient in context: "the patient's documents".
    InContext,
}

/// Describes a scope set, one line per scope, in the set's order, except
/// that `openid`, `fhirUser` and `profile` share one line: to a person they
/// are one thing, the app learning who they are.
pub fn describe(scopes: &ScopeSet, record: PatientRecord) -> Vec<ScopeDescription> {
    let mut lines: Vec<ScopeDescription> = Vec::new();
    let mut identity_line: Option<usize> = None;
    for entry in scopes.entries() {
        let text = entry.text().to_owned();
        if matches!(
            entry.scope(),
            Scope::OpenId | Scope::FhirUser | Scope::Profile
        ) {
            if let Some(line) = identity_line.and_then(|i| lines.get_mut(i)) {
                line.scopes.push(text);
                continue;
            }
            identity_line = Some(lines.len());
        }
        lines.push(ScopeDescription {
            scopes: vec![text],
            text: describe_scope(entry.scope(), record),
        });
    }
    lines
}

/// Describes one scope.
pub fn describe_scope(scope: &Scope, record: PatientRecord) -> String {
    match scope {
        Scope::Resource(r) => describe_resource(r, record),
        Scope::OpenId | Scope::FhirUser | Scope::Profile => IDENTITY.to_owned(),
        Scope::Launch => {
            "Receive what it was opened with (such as the patient on screen)".to_owned()
        }
        Scope::LaunchPatient => "Choose which patient the app works with".to_owned(),
        Scope::LaunchEncounter => "Choose which visit the app works with".to_owned(),
        Scope::OfflineAccess => {
            "Stay connected after you close the app, even when you are not signed in".to_owned()
        }
        Scope::OnlineAccess => "Stay connected while you are signed in".to_owned(),
        Scope::Other(text) if text == ADMIN_SCOPE => {
            "Carry out administration (onboarding hospitals, staff and patients)".to_owned()
        }
        Scope::Other(text) => format!("Other permission: {text}"),
    }
}

fn describe_resource(scope: &ResourceScope, record: PatientRecord) -> String {
    let mut out = format!("{} {}", verbs(scope.permissions), object(scope, record));
    if !scope.query.is_empty() {
        let conditions: Vec<String> = scope
            .query
            .iter()
            .map(|(name, value)| format!("{} {}", param_label(name), value_label(value)))
            .collect();
        out.push_str(", only those with ");
        out.push_str(&join_words(&conditions));
    }
    out
}

/// "Read and search", "Create, read and search", …
fn verbs(permissions: Permissions) -> String {
    let words: Vec<String> = [
        (Permissions::CREATE, "create"),
        (Permissions::READ, "read"),
        (Permissions::UPDATE, "update"),
        (Permissions::DELETE, "delete"),
        (Permissions::SEARCH, "search"),
    ]
    .iter()
    .filter(|(p, _)| permissions.contains(*p))
    .map(|(_, w)| (*w).to_owned())
    .collect();
    let phrase = join_words(&words);
    let mut chars = phrase.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Do nothing with".to_owned(),
    }
}

/// What the verbs apply to, worded for the context.
fn object(scope: &ResourceScope, record: PatientRecord) -> String {
    let t = scope.resource_type.as_deref();
    let whose = match record {
        PatientRecord::Own => "your",
        PatientRecord::InContext => "the patient's",
    };
    match (scope.context, t) {
        (Context::Patient, Some("Patient")) => match record {
            PatientRecord::Own => "your patient record".to_owned(),
            PatientRecord::InContext => "the patient's record".to_owned(),
        },
        (Context::Patient, Some(t)) if crate::decision::is_directory(t) => {
            format!("the group's {}", noun(t))
        }
        (Context::Patient, Some(t)) => format!("{whose} {}", noun(t)),
        (Context::Patient, None) => format!("all {whose} health records"),
        (Context::User, Some("Organization")) => "hospital records".to_owned(),
        (Context::User, Some(t)) => format!("{} at your hospital", noun(t)),
        (Context::User, None) => "all records you can see at your hospital".to_owned(),
        (Context::System, Some(t)) => {
            format!("{} at every hospital, with no one signed in", noun(t))
        }
        (Context::System, None) => {
            "all records at every hospital, with no one signed in".to_owned()
        }
    }
}

/// A friendly plural noun for a resource type; types without one become
/// "medication request records" and the like.
fn noun(resource_type: &str) -> String {
    match resource_type {
        "DocumentReference" => "documents".to_owned(),
        "Binary" => "document contents".to_owned(),
        "Consent" => "consent decisions".to_owned(),
        "AuditEvent" => "audit records".to_owned(),
        "Patient" => "patient records".to_owned(),
        "Practitioner" => "clinician records".to_owned(),
        "PractitionerRole" => "clinician roles".to_owned(),
        "Organization" => "hospital records".to_owned(),
        other => {
            let mut words = String::new();
            for (i, ch) in other.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    words.push(' ');
                }
                words.push(ch.to_ascii_lowercase());
            }
            format!("{words} records")
        }
    }
}

/// `_tag` → "tag", `code:in` → "code", `date-recorded` → "date recorded".
fn param_label(name: &str) -> String {
    let base = name.split(':').next().unwrap_or(name);
    base.trim_start_matches('_').replace(['-', '.'], " ")
}

/// A token `system|code` shows its code, which is what a person recognises.
fn value_label(value: &str) -> &str {
    match value.rsplit_once('|') {
        Some((_, code)) if !code.is_empty() => code,
        _ => value,
    }
}

/// "a", "a and b", "a, b and c".
fn join_words(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> String {
        describe_scope(&Scope::parse(text).unwrap(), PatientRecord::Own)
    }

    #[test]
    fn resource_scopes_in_plain_words() {
        assert_eq!(
            one("patient/DocumentReference.rs"),
            "Read and search your documents"
        );
        assert_eq!(
            one("patient/DocumentReference.read"),
            "Read and search your documents"
        );
        assert_eq!(
            one("user/Patient.rs"),
            "Read and search patient records at your hospital"
        );
        assert_eq!(
            one("system/*.cruds"),
            "Create, read, update, delete and search all records at every hospital, with no one signed in"
        );
        assert_eq!(one("patient/Patient.r"), "Read your patient record");
        assert_eq!(one("patient/Binary.c"), "Create your document contents");
        assert_eq!(
            one("patient/Consent.crus"),
            "Create, read, update and search your consent decisions"
        );
        assert_eq!(
            one("patient/AuditEvent.rs"),
            "Read and search your audit records"
        );
        assert_eq!(
            one("patient/*.write"),
            "Create, update and delete all your health records"
        );
        assert_eq!(
            one("user/Organization.rs"),
            "Read and search hospital records"
        );
        assert_eq!(
            one("user/PractitionerRole.s"),
            "Search clinician roles at your hospital"
        );
        assert_eq!(
            one("user/Practitioner.r"),
            "Read clinician records at your hospital"
        );
        assert_eq!(
            one("user/MedicationRequest.r"),
            "Read medication request records at your hospital"
        );
    }

    #[test]
    fn granular_filters_are_mentioned() {
        assert_eq!(
            one("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"),
            "Read and search your observation records, only those with category laboratory"
        );
        assert_eq!(
            one("patient/DocumentReference.r?category=clinical-note&_tag=x|y&date-x:above=2020"),
            "Read your documents, only those with category clinical-note, tag y and date x 2020"
        );
    }

    #[test]
    fn other_scopes_in_plain_words() {
        assert_eq!(
            one("offline_access"),
            "Stay connected after you close the app, even when you are not signed in"
        );
        assert_eq!(
            one("online_access"),
            "Stay connected while you are signed in"
        );
        assert_eq!(
            one("launch/patient"),
            "Choose which patient the app works with"
        );
        assert_eq!(
            one("launch/encounter"),
            "Choose which visit the app works with"
        );
        assert!(one("launch").starts_with("Receive"));
        assert!(one(ADMIN_SCOPE).contains("administration"));
        assert_eq!(one("launch/foo"), "Other permission: launch/foo");
    }

    #[test]
    fn identity_scopes_share_one_line() {
        let set = ScopeSet::parse("launch/patient openid patient/*.read fhirUser profile").unwrap();
        let lines = describe(&set, PatientRecord::Own);
        assert_eq!(
            lines,
            vec![
                ScopeDescription {
                    scopes: vec!["launch/patient".into()],
                    text: "Choose which patient the app works with".into(),
                },
                ScopeDescription {
                    scopes: vec!["openid".into(), "fhirUser".into(), "profile".into()],
                    text: "Know who you are (your name and role)".into(),
                },
                ScopeDescription {
                    scopes: vec!["patient/*.read".into()],
                    text: "Read and search all your health records".into(),
                },
            ]
        );
        assert!(describe(&ScopeSet::new(), PatientRecord::Own).is_empty());
    }

    #[test]
    fn a_clinician_approves_for_the_patient_in_context() {
        let said =
            |text: &str| describe_scope(&Scope::parse(text).unwrap(), PatientRecord::InContext);
        assert_eq!(
            said("patient/DocumentReference.rs"),
            "Read and search the patient's documents"
        );
        assert_eq!(said("patient/Patient.r"), "Read the patient's record");
        assert_eq!(
            said("patient/*.rs"),
            "Read and search all the patient's health records"
        );
        assert_eq!(
            said("user/DocumentReference.rs"),
            "Read and search documents at your hospital"
        );
    }
}
