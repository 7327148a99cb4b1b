//! The confinement of each scope context as typed search criteria: the
//! launch patient's compartment for `patient/`, the user's hospital for
//! `user/`. Built directly (never parsed from text); the tests check each
//! against what the search parser makes of the equivalent query, so these
//! rules mean exactly what a client's search with the same parameters means.

use fhir_profiles::search::param_key;
use fhir_profiles::search::query::{ChainTarget, Criterion, ReferenceMatch};

/// `{param}={target_type}/{id}` on `resource_type`.
fn reference(resource_type: &str, param: &str, target_type: &str, id: &str) -> Criterion {
    Criterion::Reference {
        key: param_key(resource_type, param),
        values: vec![ReferenceMatch::Local {
            resource_type: Some(target_type.to_string()),
            id: id.to_string(),
        }],
    }
}

/// The launch patient's compartment, by the search parameters that name the
/// patient. DocumentReference uses `patient` (its subject); documents merely
/// authored by the patient about someone else stay out, on purpose.
pub(crate) fn patient_compartment(resource_type: &str, patient: &str) -> Option<Criterion> {
    match resource_type {
        "Patient" => Some(Criterion::Id {
            ids: vec![patient.to_string()],
        }),
        "DocumentReference" | "Consent" | "AuditEvent" => {
            Some(reference(resource_type, "patient", "Patient", patient))
        }
        _ => None,
    }
}

/// A hospital's resources: its patients and everything about them, its
/// clinicians and their roles, and its own Organization.
pub(crate) fn hospital(resource_type: &str, org: &str) -> Option<Criterion> {
    match resource_type {
        "Organization" => Some(Criterion::Id {
            ids: vec![org.to_string()],
        }),
        "Patient" | "PractitionerRole" => Some(reference(
            resource_type,
            "organization",
            "Organization",
            org,
        )),
        // `patient.organization`
        "DocumentReference" | "Consent" | "AuditEvent" => Some(Criterion::Chain {
            key: param_key(resource_type, "patient"),
            targets: vec![ChainTarget {
                resource_type: "Patient".to_string(),
                criterion: Box::new(reference("Patient", "organization", "Organization", org)),
            }],
        }),
        // `_has:PractitionerRole:practitioner:organization`
        "Practitioner" => Some(Criterion::Has {
            source_type: "PractitionerRole".to_string(),
            key: param_key("PractitionerRole", "practitioner"),
            criterion: Box::new(reference(
                "PractitionerRole",
                "organization",
                "Organization",
                org,
            )),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhir_profiles::resource_types::HOSTED;
    use fhir_profiles::search::parse_search;

    const BASE: &str = "https://fhir.example/fhir";

    fn parsed(resource_type: &str, param: &str, value: &str) -> Criterion {
        let params = vec![(param.to_string(), value.to_string())];
        let mut request = parse_search(resource_type, &params, BASE, false)
            .unwrap_or_else(|e| panic!("{resource_type}?{param}={value}: {e:?}"));
        assert_eq!(request.criteria.len(), 1);
        request.criteria.remove(0)
    }

    #[test]
    fn patient_compartment_means_what_the_equivalent_search_means() {
        for &t in HOSTED {
            let Some(built) = patient_compartment(t, "p-1") else {
                continue;
            };
            let expected = match t {
                "Patient" => parsed(t, "_id", "p-1"),
                _ => parsed(t, "patient", "Patient/p-1"),
            };
            assert_eq!(built, expected, "{t}");
        }
        assert!(patient_compartment("Organization", "p-1").is_none());
        assert!(patient_compartment("Binary", "p-1").is_none());
    }

    #[test]
    fn hospital_means_what_the_equivalent_search_means() {
        let org = "Organization/h-1";
        for (t, param, value) in [
            ("Organization", "_id", "h-1"),
            ("Patient", "organization", org),
            ("PractitionerRole", "organization", org),
            ("DocumentReference", "patient.organization", org),
            ("Consent", "patient.organization", org),
            ("AuditEvent", "patient.organization", org),
            (
                "Practitioner",
                "_has:PractitionerRole:practitioner:organization",
                org,
            ),
        ] {
            assert_eq!(
                hospital(t, "h-1"),
                Some(parsed(t, param, value)),
                "{t}?{param}={value}"
            );
        }
        assert!(hospital("Binary", "h-1").is_none());
    }
}
