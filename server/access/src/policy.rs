//! The deployment's access policy: what the decision needs besides the
//! caller (`FHIRLEDGER_CONSENT_DEFAULT`, `FHIRLEDGER_EMERGENCY_ACCESS_MINUTES`).

/// What a deployment decides when a patient's Consents say nothing about a
/// document (`FHIRLEDGER_CONSENT_DEFAULT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsentDefault {
    /// Opt-in: no doctor reads a document no Consent permits to them.
    #[default]
    Deny,
    /// Opt-out: doctors of the patient's own hospital read their documents
    /// unless a Consent denies it.
    Permit,
}

impl std::str::FromStr for ConsentDefault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deny" => Ok(ConsentDefault::Deny),
            "permit" => Ok(ConsentDefault::Permit),
            other => Err(format!("'{other}' is neither 'deny' nor 'permit'")),
        }
    }
}

impl ConsentDefault {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentDefault::Deny => "deny",
            ConsentDefault::Permit => "permit",
        }
    }
}

/// The deployment's access policy: what the decision needs besides the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub consent_default: ConsentDefault,
    /// How long an emergency access (`$emergency-access`) lasts, in minutes.
    pub emergency_access_minutes: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            consent_default: ConsentDefault::Deny,
            emergency_access_minutes: 60,
        }
    }
}
