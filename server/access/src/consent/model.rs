//! A patient's Consent as the access decision reads it: whether it is in
//! force, and its provision tree with each provision's conditions, taken from
//! the R4 JSON once when the Consent is written.

use fhir_profiles::search::date::parse_range;
use fhir_profiles::search::query::ConsentEffect;
use fhir_profiles::search::DateRange;
use serde_json::Value;

pub const CONSENT_SCOPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/consentscope";
pub const PATIENT_PRIVACY: &str = "patient-privacy";
pub const CONSENT_ACTION_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/consentaction";
pub const ACCESS: &str = "access";
pub const ACT_REASON_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// Break the glass: the purpose of emergency access.
pub const BTG: &str = "BTG";
pub const RESOURCE_TYPES_SYSTEM: &str = "http://hl7.org/fhir/resource-types";

/// A coded value: a Coding, or one coding of a CodeableConcept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code {
    pub system: Option<String>,
    pub code: String,
}

impl Code {
    pub fn new(system: &str, code: &str) -> Code {
        Code {
            system: Some(system.to_string()),
            code: code.to_string(),
        }
    }

    /// Whether a condition's code names `other`: the same code, and the same
    /// system when the condition gives one.
    pub fn covers(&self, other: &Code) -> bool {
        self.code == other.code
            && match (&self.system, &other.system) {
                (Some(a), Some(b)) => a == b,
                (Some(_), None) => false,
                (None, _) => true,
            }
    }
}

/// One `Consent.provision` (the root or a nested exception).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Provision {
    /// `type`; a provision without one takes its parent's, and a root
    /// without one decides nothing by itself (only its exceptions do).
    pub effect: Option<ConsentEffect>,
    /// `period`: when the provision applies.
    pub period: Option<DateRange>,
    /// `actor.reference`, as local `Type/id` references.
    pub actors: Vec<String>,
    /// `action` codings; empty means every action.
    pub actions: Vec<Code>,
    /// `purpose`; empty means any purpose.
    pub purposes: Vec<Code>,
    /// `class`: resource types (or other classes) the provision covers.
    pub classes: Vec<Code>,
    /// `code`: matched against a document's type and category.
    pub codes: Vec<Code>,
    /// `securityLabel`: matched against a document's `meta.security`.
    pub security_labels: Vec<Code>,
    /// `dataPeriod`: matched against a document's `date`.
    pub data_period: Option<DateRange>,
    /// `data.reference`, as local `Type/id` references.
    pub data: Vec<String>,
    /// Nested provisions: exceptions to this one.
    pub provisions: Vec<Provision>,
}

/// A Consent in force: its id, its patient and its provision tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Consent {
    pub id: String,
    /// The Patient id.
    pub patient: String,
    pub root: Provision,
}

/// Why a stored Consent decides nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotInForce {
    #[error("its status is '{0}', not active")]
    Status(String),
    #[error("its scope is not {CONSENT_SCOPE_SYSTEM}|{PATIENT_PRIVACY}")]
    Scope,
    #[error("it names no Patient of this server")]
    Patient,
    #[error("it has neither policy nor policyRule (R4 invariant ppc-1)")]
    NoPolicy,
    #[error("it has no provision")]
    NoProvision,
}

impl Consent {
    /// The Consent `id` (its stored JSON) as the decision reads it, or why it
    /// changes nothing. Whether its period covers now is left to the moment
    /// of each access. References are read relative to `fhir_base`.
    pub fn in_force(id: &str, json: &Value, fhir_base: &str) -> Result<Consent, NotInForce> {
        let status = json["status"].as_str().unwrap_or_default();
        if status != "active" {
            return Err(NotInForce::Status(status.to_string()));
        }
        let privacy = Code::new(CONSENT_SCOPE_SYSTEM, PATIENT_PRIVACY);
        if !codes_of(&json["scope"]).iter().any(|c| c == &privacy) {
            return Err(NotInForce::Scope);
        }
        let patient = json["patient"]["reference"]
            .as_str()
            .and_then(|r| local_reference(r, fhir_base))
            .and_then(|r| r.strip_prefix("Patient/").map(str::to_string))
            .ok_or(NotInForce::Patient)?;
        let has_policy = json["policy"].as_array().is_some_and(|p| !p.is_empty());
        if !has_policy && json["policyRule"].is_null() {
            return Err(NotInForce::NoPolicy);
        }
        if !json["provision"].is_object() {
            return Err(NotInForce::NoProvision);
        }
        Ok(Consent {
            id: id.to_string(),
            patient,
            root: Provision::parse(&json["provision"], fhir_base),
        })
    }
}

impl Provision {
    fn parse(json: &Value, fhir_base: &str) -> Provision {
        let references = |key: &str| -> Vec<String> {
            array(&json[key])
                .filter_map(|item| item["reference"]["reference"].as_str())
                .filter_map(|r| local_reference(r, fhir_base))
                .collect()
        };
        let effect = match json["type"].as_str() {
            Some("permit") => Some(ConsentEffect::Permit),
            Some("deny") => Some(ConsentEffect::Deny),
            _ => None,
        };
        Provision {
            effect,
            period: period(&json["period"]),
            actors: references("actor"),
            actions: array(&json["action"]).flat_map(codes_of).collect(),
            purposes: array(&json["purpose"]).filter_map(coding).collect(),
            classes: array(&json["class"]).filter_map(coding).collect(),
            codes: array(&json["code"]).flat_map(codes_of).collect(),
            security_labels: array(&json["securityLabel"]).filter_map(coding).collect(),
            data_period: period(&json["dataPeriod"]),
            data: references("data"),
            provisions: array(&json["provision"])
                .map(|p| Provision::parse(p, fhir_base))
                .collect(),
        }
    }

    /// Whether the provision names the data it covers (so it does not cover
    /// everything of the patient).
    pub fn narrows_data(&self) -> bool {
        !self.classes.is_empty()
            || !self.codes.is_empty()
            || !self.security_labels.is_empty()
            || self.data_period.is_some()
            || !self.data.is_empty()
    }

    /// Whether the provision covers reading (`access`, or every action).
    pub fn covers_reading(&self) -> bool {
        self.actions.is_empty()
            || self
                .actions
                .iter()
                .any(|a| a.covers(&Code::new(CONSENT_ACTION_SYSTEM, ACCESS)))
    }

    /// Whether the provision applies to an access made for `purpose`
    /// (`None`: an ordinary access, which provisions limited to purposes
    /// do not cover).
    pub fn covers_purpose(&self, purpose: Option<&Code>) -> bool {
        match purpose {
            None => self.purposes.is_empty(),
            Some(p) => self.purposes.is_empty() || self.purposes.iter().any(|c| c.covers(p)),
        }
    }
}

/// A reference as `Type/id`: relative ones as they are (without a
/// `_history` suffix), absolute ones under `fhir_base` made relative;
/// others (another server's, contained, logical) are `None`.
pub fn local_reference(reference: &str, fhir_base: &str) -> Option<String> {
    let base = fhir_base.trim_end_matches('/');
    let relative = match reference.strip_prefix(base) {
        Some(rest) => rest.strip_prefix('/')?,
        None if reference.contains("://") || reference.starts_with('#') => return None,
        None => reference,
    };
    let mut parts = relative.split('/');
    let (ty, id) = (parts.next()?, parts.next()?);
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) | (Some("_history"), Some(_), None) => {}
        _ => return None,
    }
    let type_ok = ty.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && ty.chars().all(|c| c.is_ascii_alphanumeric());
    (type_ok && fhir_profiles::ids::is_valid_id(id)).then(|| format!("{ty}/{id}"))
}

fn array(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

/// A Coding's code.
fn coding(value: &Value) -> Option<Code> {
    Some(Code {
        system: value["system"].as_str().map(str::to_string),
        code: value["code"].as_str()?.to_string(),
    })
}

/// The codings of a CodeableConcept.
pub fn codes_of(value: &Value) -> Vec<Code> {
    array(&value["coding"]).filter_map(coding).collect()
}

/// A Period as the closed range of instants it covers.
fn period(value: &Value) -> Option<DateRange> {
    if !value.is_object() {
        return None;
    }
    let start = value["start"].as_str().and_then(parse_range);
    let end = value["end"].as_str().and_then(parse_range);
    DateRange::between(start, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BASE: &str = "https://fhir.example/fhir";

    fn consent(extra: Value) -> Value {
        let mut c = json!({
            "resourceType": "Consent",
            "status": "active",
            "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": PATIENT_PRIVACY}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": "Patient/p1"},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
            "provision": {"type": "permit", "actor": [{"reference": {"reference": "Practitioner/d1"}}]}
        });
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                c.insert(k.clone(), v.clone());
            }
        }
        c
    }

    #[test]
    fn only_active_privacy_consents_with_a_policy_are_in_force() {
        let ok = Consent::in_force("c1", &consent(json!({})), BASE).expect("in force");
        assert_eq!(ok.patient, "p1");
        assert_eq!(ok.root.actors, vec!["Practitioner/d1"]);
        assert_eq!(ok.root.effect, Some(ConsentEffect::Permit));
        for status in [
            "draft",
            "proposed",
            "inactive",
            "rejected",
            "entered-in-error",
        ] {
            assert_eq!(
                Consent::in_force("c1", &consent(json!({"status": status})), BASE),
                Err(NotInForce::Status(status.into()))
            );
        }
        let research =
            json!({"scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": "research"}]}});
        assert_eq!(
            Consent::in_force("c1", &consent(research), BASE),
            Err(NotInForce::Scope)
        );
        let mut no_policy = consent(json!({}));
        no_policy.as_object_mut().map(|o| o.remove("policyRule"));
        assert_eq!(
            Consent::in_force("c1", &no_policy, BASE),
            Err(NotInForce::NoPolicy)
        );
        let absolute = json!({"patient": {"reference": format!("{BASE}/Patient/p2")}});
        assert_eq!(
            Consent::in_force("c1", &consent(absolute), BASE).map(|c| c.patient),
            Ok("p2".to_string())
        );
        let elsewhere = json!({"patient": {"reference": "https://other.example/fhir/Patient/p2"}});
        assert_eq!(
            Consent::in_force("c1", &consent(elsewhere), BASE),
            Err(NotInForce::Patient)
        );
    }

    #[test]
    fn references_are_made_local() {
        assert_eq!(
            local_reference("Practitioner/a", BASE).as_deref(),
            Some("Practitioner/a")
        );
        assert_eq!(
            local_reference(&format!("{BASE}/Organization/o-1"), BASE).as_deref(),
            Some("Organization/o-1")
        );
        assert_eq!(
            local_reference("DocumentReference/d/_history/3", BASE).as_deref(),
            Some("DocumentReference/d")
        );
        for foreign in [
            "https://other.example/fhir/Practitioner/a",
            "#contained",
            "Practitioner",
            "practitioner/a",
            "Practitioner/a/b",
            "Practitioner/a b",
        ] {
            assert_eq!(local_reference(foreign, BASE), None, "{foreign}");
        }
    }

    #[test]
    fn the_shared_r4_examples_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fhir-r4/examples");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut seen = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !name.starts_with("Consent-") {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if let Ok(c) = Consent::in_force("x", &json, BASE) {
                seen += 1;
                assert!(!c.patient.is_empty(), "{name}");
            }
        }
        assert!(seen >= 5, "the R4 privacy examples are in force: {seen}");
    }
}
