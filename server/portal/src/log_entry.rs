//! An AuditEvent as a row of an access log reads it, and that row in
//! words. Only the fields a row shows are deserialised, borrowing from the
//! stored JSON where it needs no unescaping; serde skips the rest. A
//! log's entries are its largest resources (a search's event names every
//! resource it returned), and building whole `serde_json::Value` trees of
//! them was most of a log page's time (BENCHMARKS.md, "Portal pages").

use std::borrow::Cow;

use fhirledger_auth::first_party;
use serde::Deserialize;

type Text<'a> = Option<Cow<'a, str>>;

/// What a log row shows of one AuditEvent.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Entry<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub recorded: Cow<'a, str>,
    #[serde(borrow)]
    outcome: Text<'a>,
    #[serde(borrow, rename = "type")]
    kind: Option<Coding<'a>>,
    #[serde(borrow)]
    subtype: Vec<Coding<'a>>,
    #[serde(borrow)]
    purpose_of_event: Vec<Concept<'a>>,
    #[serde(borrow)]
    agent: Vec<Agent<'a>>,
    #[serde(borrow)]
    entity: Vec<Entity<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Coding<'a> {
    #[serde(borrow)]
    system: Text<'a>,
    #[serde(borrow)]
    code: Text<'a>,
    #[serde(borrow)]
    display: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Concept<'a> {
    #[serde(borrow)]
    coding: Vec<Coding<'a>>,
    #[serde(borrow)]
    text: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Agent<'a> {
    requestor: Option<bool>,
    #[serde(borrow)]
    who: Option<Reference<'a>>,
    #[serde(borrow)]
    name: Text<'a>,
    policy: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Reference<'a> {
    #[serde(borrow)]
    reference: Text<'a>,
    #[serde(borrow)]
    display: Text<'a>,
    #[serde(borrow)]
    identifier: Option<Identifier<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Identifier<'a> {
    #[serde(borrow)]
    system: Text<'a>,
    #[serde(borrow)]
    value: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Entity<'a> {
    #[serde(borrow)]
    what: Option<Reference<'a>>,
    #[serde(borrow)]
    role: Option<Coding<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Coding<'a>>,
    #[serde(borrow)]
    query: Text<'a>,
    #[serde(borrow)]
    description: Text<'a>,
}

fn text<'t>(t: &'t Text<'_>) -> Option<&'t str> {
    t.as_deref()
}

fn code_is(c: &Option<Coding<'_>>, code: &str) -> bool {
    c.as_ref().and_then(|c| text(&c.code)) == Some(code)
}

impl<'a> Entry<'a> {
    /// The entries of a search's stored JSON; one that does not parse (it
    /// cannot: the server wrote it) is left out, with a warning.
    pub fn parse_all(contents: &'a [String]) -> Vec<Entry<'a>> {
        contents
            .iter()
            .filter_map(|c| match serde_json::from_str::<Entry<'a>>(c) {
                Ok(entry) => Some(entry),
                Err(e) => {
                    tracing::warn!(error = %e, "a stored AuditEvent did not read as a log entry");
                    None
                }
            })
            .collect()
    }

    /// Refused or failed (any outcome but `0`).
    pub fn refused(&self) -> bool {
        text(&self.outcome).is_some_and(|o| o != "0")
    }

    /// Emergency access (break the glass): `BTG` among the purposes.
    pub fn is_emergency(&self) -> bool {
        self.purpose_of_event
            .iter()
            .any(|p| p.coding.iter().any(|c| text(&c.code) == Some("BTG")))
    }

    fn requestor(&self) -> Option<&Agent<'a>> {
        self.agent.iter().find(|a| a.requestor == Some(true))
    }

    /// Who acted: the requestor's name; "You" for the visitor's own
    /// identity (`own`) when the event does not name it (their own sign-ins
    /// and tokens are recorded by account, without a display name).
    pub fn who(&self, own: Option<&str>) -> String {
        let Some(agent) = self.requestor() else {
            return "Someone not signed in".to_string();
        };
        let reference = agent.who.as_ref().and_then(|w| text(&w.reference));
        agent
            .who
            .as_ref()
            .and_then(|w| text(&w.display))
            .or_else(|| text(&agent.name))
            .map(str::to_string)
            .or_else(|| (reference.is_some() && reference == own).then(|| "You".to_string()))
            .or_else(|| reference.map(str::to_string))
            .unwrap_or_default()
    }

    /// Through which application: the BALP agent of the client (the Source
    /// of a query or write, the Destination of a read, the Application of a
    /// security event), which names it by the client id our authorization
    /// server (`issuer`) gave it.
    pub fn app(&self, issuer: &str) -> String {
        let client = self.agent.iter().find_map(|a| {
            let id = a.who.as_ref()?.identifier.as_ref()?;
            (text(&id.system) == Some(issuer))
                .then(|| text(&id.value))
                .flatten()
        });
        match client {
            Some(first_party::PORTAL_CLIENT_ID) => first_party::PORTAL_NAME.to_string(),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    }

    /// What was done, in words: the interaction and the types it touched.
    pub fn action(&self) -> String {
        let code = self
            .subtype
            .first()
            .and_then(|s| text(&s.code))
            .unwrap_or("");
        let verb = match code {
            "read" | "vread" => "Read",
            "search-type" | "search-system" | "search" => "Searched",
            "history-instance" | "history-type" | "history-system" => "Read the history of",
            "create" => "Created",
            "update" | "patch" => "Updated",
            "delete" => "Deleted",
            "batch" | "transaction" => "Sent a batch of changes to",
            "operation" => "Ran an operation on",
            _ => return self.security_action(),
        };
        let mut types: Vec<&str> = self
            .entity
            .iter()
            .filter(|e| code_is(&e.role, "4"))
            .filter_map(|e| e.what.as_ref().and_then(|w| text(&w.reference)))
            .filter_map(|r| r.split('/').next())
            .collect();
        types.sort_unstable();
        types.dedup();
        if types.is_empty() && verb == "Searched" {
            if let Some(searched) = self.searched_type() {
                return format!("Searched {searched} (none found)");
            }
        }
        if types.is_empty() {
            return verb
                .trim_end_matches(" of")
                .trim_end_matches(" to")
                .trim_end_matches(" on")
                .to_string();
        }
        // A search that included what its matches name (a document's author
        // and hospital) says what it searched first.
        if verb == "Searched" && types.len() > 1 {
            if let Some(searched) = self.searched_type().filter(|s| types.contains(&s.as_str())) {
                types.retain(|t| *t != searched);
                return format!("Searched {searched}, with {}", types.join(", "));
            }
        }
        format!("{verb} {}", types.join(", "))
    }

    /// The type a search was of, from its query entity: the FHIR search a
    /// portal page performed (`description`), else the request as sent
    /// (`query`, base64): `GET /fhir/Consent?patient=…` → `Consent`.
    fn searched_type(&self) -> Option<String> {
        let query = self.entity.iter().find(|e| code_is(&e.kind, "2"))?;
        let request = match text(&query.description) {
            Some(described) => described.to_string(),
            None => {
                use base64::Engine;
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(text(&query.query)?)
                    .ok()?;
                String::from_utf8(raw).ok()?
            }
        };
        let path = request.split_whitespace().nth(1)?.split('?').next()?;
        let last = path.rsplit('/').next()?;
        (last.chars().next()?.is_ascii_uppercase() && last.chars().all(|c| c.is_ascii_alphabetic()))
            .then(|| last.to_string())
    }

    /// Security events (sign-in, tokens, revocation) in words.
    fn security_action(&self) -> String {
        let subtype = self.subtype.first();
        match subtype.and_then(|s| text(&s.code)).unwrap_or("") {
            "110122" => "Signed in".to_string(),
            "ITI-71" => "Got access".to_string(),
            "token-revoked" => "Signed out or revoked access".to_string(),
            "refresh-token-reuse" => "Reused a sign-in (blocked)".to_string(),
            _ => subtype
                .or(self.kind.as_ref())
                .and_then(|c| text(&c.display).or(text(&c.code)))
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// Why it was allowed: the rule that decided (the requestor's
    /// `policy`), and an emergency's stated reason.
    pub fn why(&self) -> String {
        let mut reasons: Vec<String> = self
            .requestor()
            .map(|a| a.policy.iter().map(|p| rule_in_words(p)).collect())
            .unwrap_or_default();
        if self.is_emergency() {
            let stated = self.purpose_of_event.iter().find_map(|p| text(&p.text));
            reasons.retain(|r| r != "Emergency access");
            reasons.insert(
                0,
                match stated {
                    Some(t) => format!("Emergency access: {t}"),
                    None => "Emergency access".to_string(),
                },
            );
        }
        reasons.dedup();
        reasons.join("; ")
    }
}

/// A deciding rule in words: a Consent, or one of the server's rules.
fn rule_in_words(policy: &str) -> String {
    if policy.contains("/Consent/") {
        return "The patient's consent".to_string();
    }
    match policy.rsplit(':').next().unwrap_or(policy) {
        "own-record" => "Their own record".to_string(),
        "author" | "authorship" => "They wrote it".to_string(),
        "emergency-access" => "Emergency access".to_string(),
        other => {
            let words = other.replace(['-', '.'], " ");
            let mut chars = words.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(value: serde_json::Value) -> String {
        value.to_string()
    }

    fn parsed(json: &str) -> Entry<'_> {
        serde_json::from_str(json).expect("an entry")
    }

    #[test]
    fn rules_read_in_words() {
        assert_eq!(
            rule_in_words("http://h/fhir/Consent/c-1"),
            "The patient's consent"
        );
        assert_eq!(
            rule_in_words("urn:fhirledger:access:own-record"),
            "Their own record"
        );
        assert_eq!(
            rule_in_words("urn:fhirledger:access:hospital-staff"),
            "Hospital staff"
        );
    }

    #[test]
    fn an_emergency_says_why() {
        let e = entry(json!({
            "purposeOfEvent": [{"coding": [{"code": "BTG"}], "text": "unconscious in the \"ER\""}],
            "agent": [{"requestor": true, "policy": ["urn:fhirledger:access:emergency-access"]}]
        }));
        let e = parsed(&e);
        assert!(e.is_emergency());
        assert_eq!(e.why(), "Emergency access: unconscious in the \"ER\"");
    }

    #[test]
    fn a_search_that_found_nothing_names_what_it_searched() {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD.encode("GET /fhir/Consent?patient=p-1");
        let api = entry(json!({
            "subtype": [{"code": "search-type"}],
            "entity": [{"type": {"code": "2"}, "query": raw}]
        }));
        assert_eq!(parsed(&api).action(), "Searched Consent (none found)");
        let page = entry(json!({
            "subtype": [{"code": "search-type"}],
            "entity": [{"type": {"code": "2"}, "query": "R0VUIC9wb3J0YWw=",
                        "description": "GET Practitioner?name=smith"}]
        }));
        assert_eq!(parsed(&page).action(), "Searched Practitioner (none found)");
        let unknown = entry(json!({"subtype": [{"code": "search-system"}], "entity": []}));
        assert_eq!(parsed(&unknown).action(), "Searched");
    }

    #[test]
    fn a_search_with_includes_names_what_it_searched_first() {
        let documents = entry(json!({
            "subtype": [{"code": "search-type"}],
            "entity": [
                {"type": {"code": "2"}, "query": "R0VUIC9wb3J0YWw=",
                 "description": "GET DocumentReference?patient=p-1&_include=DocumentReference:author"},
                {"role": {"code": "4"}, "what": {"reference": "DocumentReference/d-1/_history/2"}},
                {"role": {"code": "4"}, "what": {"reference": "Practitioner/dr-1/_history/1"}},
                {"role": {"code": "4"}, "what": {"reference": "Organization/h-1/_history/1"}},
                {"role": {"code": "1"}, "what": {"reference": "Patient/p-1"}}
            ]
        }));
        assert_eq!(
            parsed(&documents).action(),
            "Searched DocumentReference, with Organization, Practitioner"
        );
    }

    #[test]
    fn a_row_reads_who_which_app_and_what() {
        let e = entry(json!({
            "id": "e-1", "recorded": "2026-12-06T10:00:00Z", "outcome": "0",
            "subtype": [{"code": "read"}],
            "agent": [
                {"requestor": true, "who": {"reference": "Patient/p-1"}},
                {"requestor": false, "who": {"identifier": {"system": "https://h/auth", "value": "fhirledger-portal"}}}
            ],
            "entity": [
                {"role": {"code": "4"}, "what": {"reference": "DocumentReference/d-1/_history/1"}},
                {"role": {"code": "1"}, "what": {"reference": "Patient/p-1"}}
            ]
        }));
        let e = parsed(&e);
        assert!(!e.refused());
        assert_eq!(e.who(Some("Patient/p-1")), "You");
        assert_eq!(e.who(None), "Patient/p-1");
        assert_eq!(e.app("https://h/auth"), first_party::PORTAL_NAME);
        assert_eq!(e.action(), "Read DocumentReference");
        assert_eq!(e.id, "e-1");
    }
}
