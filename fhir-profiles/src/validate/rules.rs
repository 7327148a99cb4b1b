//! Where this server is stricter than base R4. Applied to the resource being written, not to
//! resources contained in it.

/// A tightened element: a higher minimum and/or fewer allowed reference targets.
pub(super) struct Tightening {
    pub path: &'static str,
    pub min: Option<u32>,
    pub targets: Option<&'static [&'static str]>,
}

const TIGHTENINGS: &[Tightening] = &[
    // Already mandatory in R4; restated so a profile change cannot loosen them silently.
    required("DocumentReference.status"),
    required("DocumentReference.content"),
    required("DocumentReference.content.attachment"),
    required("Consent.status"),
    required("Consent.scope"),
    required("Consent.category"),
    // Documents are about patients, written by people or organisations we know.
    Tightening {
        path: "DocumentReference.subject",
        min: None,
        targets: Some(&["Patient"]),
    },
    Tightening {
        path: "DocumentReference.author",
        min: None,
        targets: Some(&[
            "Practitioner",
            "PractitionerRole",
            "Organization",
            "Patient",
        ]),
    },
    // Access decisions read Consent.patient, so a Consent without one could never apply.
    Tightening {
        path: "Consent.patient",
        min: Some(1),
        targets: Some(&["Patient"]),
    },
];

const fn required(path: &'static str) -> Tightening {
    Tightening {
        path,
        min: Some(1),
        targets: None,
    }
}

/// The tightening of an element path, if any.
pub(super) fn tightening(path: &str) -> Option<&'static Tightening> {
    TIGHTENINGS.iter().find(|t| t.path == path)
}
