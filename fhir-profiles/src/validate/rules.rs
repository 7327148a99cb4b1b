//! Where this server is stricter than base R4. Applied to the resource being written, not to
//! resources contained in it.

/// A tightened element: a higher minimum, fewer allowed reference targets, and/or a
/// value set its codes must come from where R4 only binds one as extensible or example.
pub(super) struct Tightening {
    pub path: &'static str,
    pub min: Option<u32>,
    pub targets: Option<&'static [&'static str]>,
    /// A value set bound `required` here (its expansion is generated into data/ with the
    /// base required bindings, see `tools/generator.rs`).
    pub binding: Option<&'static str>,
}

const TIGHTENINGS: &[Tightening] = &[
    // Already mandatory in R4; restated so a profile change cannot loosen them silently.
    required("DocumentReference.status"),
    required("DocumentReference.content"),
    required("DocumentReference.content.attachment"),
    required("Consent.status"),
    required("Consent.category"),
    // Documents are about patients, written by people or organisations we know.
    Tightening {
        path: "DocumentReference.subject",
        min: None,
        targets: Some(&["Patient"]),
        binding: None,
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
        binding: None,
    },
    // Access decisions read Consent.patient, so a Consent without one could never apply.
    Tightening {
        path: "Consent.patient",
        min: Some(1),
        targets: Some(&["Patient"]),
        binding: None,
    },
    // Access decisions read the scope and the actions: a code outside the R4 code systems
    // would silently mean nothing (a scope R4 binds extensibly, actions by example).
    Tightening {
        path: "Consent.scope",
        min: Some(1),
        targets: None,
        binding: Some(CONSENT_SCOPE),
    },
    Tightening {
        path: "Consent.provision.action",
        min: None,
        targets: None,
        binding: Some(CONSENT_ACTION),
    },
];

/// The value sets this server binds `required` beyond R4.
const CONSENT_SCOPE: &str = "http://hl7.org/fhir/ValueSet/consent-scope";
const CONSENT_ACTION: &str = "http://hl7.org/fhir/ValueSet/consent-action";

const fn required(path: &'static str) -> Tightening {
    Tightening {
        path,
        min: Some(1),
        targets: None,
        binding: None,
    }
}

/// The tightening of an element path, if any.
pub(super) fn tightening(path: &str) -> Option<&'static Tightening> {
    TIGHTENINGS.iter().find(|t| t.path == path)
}
