//! The confinement of each scope context as typed search criteria: the
//! launch patient's compartment for `patient/`, the user's hospital for
//! `user/`. Built directly (never parsed from text); the tests check each
//! against what the search parser makes of the equivalent query, so these
//! rules mean exactly what a client's search with the same parameters means.

use fhir_profiles::search::param_key;
use fhir_profiles::search::query::{ChainTarget, ConsentEffect, Criterion, Reader, ReferenceMatch};

use crate::caller::Caller;
use crate::policy::ConsentDefault;

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
pub fn hospital(resource_type: &str, org: &str) -> Option<Criterion> {
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
        "DocumentReference" | "Consent" => Some(of_its_patients(resource_type, org)),
        // The trail of a hospital: events about its patients
        // (`patient.organization`) and events done by its people, whose
        // hospital is their responsible agent (`agent=Organization/{org}`).
        "AuditEvent" => Some(Criterion::AnyOf {
            alternatives: vec![
                vec![of_its_patients(resource_type, org)],
                vec![reference(resource_type, "agent", "Organization", org)],
            ],
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

/// `patient.organization={org}`: about the patients of the hospital.
fn of_its_patients(resource_type: &str, org: &str) -> Criterion {
    Criterion::Chain {
        key: param_key(resource_type, "patient"),
        targets: vec![ChainTarget {
            resource_type: "Patient".to_string(),
            criterion: Box::new(reference("Patient", "organization", "Organization", org)),
        }],
    }
}

/// The doctor as Consent rules name them; `None` when their account has no
/// Practitioner, so that no Consent can name them.
pub fn reader(caller: &Caller) -> Option<Reader> {
    Some(Reader {
        practitioner: caller.practitioner.clone()?,
        organization: caller.organization.clone(),
    })
}

/// The DocumentReferences a doctor reads (ARCHITECTURE.md, "Consent"): those
/// they authored (as their Practitioner, or a PractitionerRole of it), those
/// of a patient they hold emergency access to, and otherwise those no
/// Consent in force denies them and one permits them — or, under the
/// `permit` base policy, that are about a patient of their own hospital.
pub(crate) fn consented_documents(caller: &Caller, default: ConsentDefault) -> Criterion {
    let mut alternatives = Vec::new();
    let not_denied = |reader: &Reader| Criterion::NoneOf {
        alternatives: vec![vec![Criterion::Consented {
            effect: ConsentEffect::Deny,
            reader: reader.clone(),
        }]],
    };
    if let Some(reader) = reader(caller) {
        // Most documents a doctor reads are opened by a Consent: that branch comes
        // first, its permit before its deny, so SQL stops after two probes for them.
        alternatives.push(vec![
            Criterion::Consented {
                effect: ConsentEffect::Permit,
                reader: reader.clone(),
            },
            not_denied(&reader),
        ]);
        alternatives.push(vec![authored_by(&reader.practitioner)]);
        alternatives.push(vec![Criterion::EmergencyAccess {
            reader: reader.clone(),
        }]);
        if default == ConsentDefault::Permit {
            if let Some(org) = caller.organization.as_deref() {
                alternatives.push(vec![not_denied(&reader), own_hospital_documents(org)]);
            }
        }
    } else if default == ConsentDefault::Permit {
        // A doctor no Consent can name: the base policy alone decides.
        if let Some(org) = caller.organization.as_deref() {
            alternatives.push(vec![own_hospital_documents(org)]);
        }
    }
    Criterion::AnyOf { alternatives }
}

/// The Patients a doctor reads: those of their hospital, those who granted
/// them anything in a Consent in force, and those they hold emergency
/// access to.
pub(crate) fn consented_patients(caller: &Caller, org: &str) -> Criterion {
    let mut alternatives = vec![vec![reference(
        "Patient",
        "organization",
        "Organization",
        org,
    )]];
    if let Some(reader) = reader(caller) {
        alternatives.push(vec![Criterion::Consented {
            effect: ConsentEffect::Permit,
            reader: reader.clone(),
        }]);
        alternatives.push(vec![Criterion::EmergencyAccess { reader }]);
    }
    Criterion::AnyOf { alternatives }
}

/// DocumentReference `author=Practitioner/{id}` or
/// `author:PractitionerRole.practitioner=Practitioner/{id}`.
pub fn authored_by(practitioner: &str) -> Criterion {
    Criterion::AnyOf {
        alternatives: vec![
            vec![reference(
                "DocumentReference",
                "author",
                "Practitioner",
                practitioner,
            )],
            vec![Criterion::Chain {
                key: param_key("DocumentReference", "author"),
                targets: vec![ChainTarget {
                    resource_type: "PractitionerRole".to_string(),
                    criterion: Box::new(reference(
                        "PractitionerRole",
                        "practitioner",
                        "Practitioner",
                        practitioner,
                    )),
                }],
            }],
        ],
    }
}

/// `patient.organization={org}` on DocumentReference.
fn own_hospital_documents(org: &str) -> Criterion {
    hospital("DocumentReference", org).unwrap_or(Criterion::AnyOf {
        alternatives: Vec::new(),
    })
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

    #[test]
    fn a_hospitals_trail_is_about_its_patients_or_done_by_its_people() {
        let org = "Organization/h-1";
        assert_eq!(
            hospital("AuditEvent", "h-1"),
            Some(Criterion::AnyOf {
                alternatives: vec![
                    vec![parsed("AuditEvent", "patient.organization", org)],
                    vec![parsed("AuditEvent", "agent", org)],
                ],
            })
        );
    }

    #[test]
    fn authorship_means_what_the_equivalent_searches_mean() {
        let Criterion::AnyOf { alternatives } = authored_by("d-1") else {
            panic!("authorship is alternatives");
        };
        assert_eq!(
            alternatives,
            vec![
                vec![parsed("DocumentReference", "author", "Practitioner/d-1")],
                vec![parsed(
                    "DocumentReference",
                    "author:PractitionerRole.practitioner",
                    "Practitioner/d-1"
                )],
            ]
        );
    }
}
