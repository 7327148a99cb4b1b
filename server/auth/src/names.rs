//! The names a user's access token carries: theirs, from their FHIR
//! identity (Practitioner or Patient), and their hospital's. The audit
//! trail shows a patient who read their data by name and hospital, not by
//! an account id; taking the names when the token is issued keeps every
//! request's audit free of lookups, and records the names as they were
//! when the person acted.

use fhirledger_postgres::auth::UserRow;
use fhirledger_postgres::PgStore;
use fhirledger_service::reads::{self, ReadResource};
use fhirledger_service::Guard;
use serde_json::Value;

use crate::AuthServer;

/// The server reads the user's own FHIR identity and hospital for this.
const PURPOSE: &str = "authorization server: names for the audit trail";

/// A user's name and their hospital's, when known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub person: Option<String>,
    pub organization: Option<String>,
}

/// "Prefix Given Family" (or the name's `text`) of a Patient or Practitioner.
pub fn person_name(resource: &Value) -> Option<String> {
    let name = &resource["name"][0];
    if let Some(text) = name["text"].as_str().filter(|t| !t.trim().is_empty()) {
        return Some(text.trim().to_string());
    }
    let words = |element: &str| -> Vec<&str> {
        name[element]
            .as_array()
            .map(|g| g.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let mut parts = words("prefix");
    parts.extend(words("given"));
    parts.extend(name["family"].as_str());
    let full = parts.join(" ").trim().to_string();
    (!full.is_empty()).then_some(full)
}

/// The names of `user` (none for backend clients). A name that cannot be
/// read leaves that name out rather than refusing the token: the trail
/// still names the person by their FHIR identity and account.
pub async fn names_of(server: &AuthServer, user: Option<&UserRow>) -> Names {
    let Some(user) = user else {
        return Names::default();
    };
    let guard = Guard::for_server(&server.settings.fhir_base, PURPOSE);
    let fhir_user = user.fhir_user.clone();
    let organization = user.organization.clone();
    let looked = server
        .db
        .run_read(move |store| {
            let person = fhir_user
                .as_deref()
                .and_then(|f| f.split_once('/'))
                .and_then(|(t, id)| resource(store, &guard, t, id))
                .and_then(|r| person_name(&r));
            let organization = organization
                .as_deref()
                .and_then(|id| resource(store, &guard, "Organization", id))
                .and_then(|o| o["name"].as_str().map(str::to_string));
            Ok::<Names, fhirledger_service::ServiceError>(Names {
                person,
                organization,
            })
        })
        .await;
    looked.unwrap_or_else(|e| {
        tracing::warn!(error = ?e, "the names for a token could not be read");
        Names::default()
    })
}

fn resource(store: &PgStore, guard: &Guard, resource_type: &str, id: &str) -> Option<Value> {
    let op = ReadResource {
        resource_type,
        id,
        version: None,
    };
    let content = reads::read(store, guard, op).ok()?.value.content?;
    serde_json::from_str(&content).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_name_is_its_text_or_given_and_family() {
        let named = |name: Value| person_name(&json!({ "name": [name] }));
        assert_eq!(
            named(json!({ "text": "Dr Ann Jones", "family": "X" })).as_deref(),
            Some("Dr Ann Jones")
        );
        assert_eq!(
            named(json!({ "given": ["Ann", "B."], "family": "Jones" })).as_deref(),
            Some("Ann B. Jones")
        );
        assert_eq!(
            named(json!({ "prefix": ["Dr"], "given": ["Ann"], "family": "Jones" })).as_deref(),
            Some("Dr Ann Jones")
        );
        assert_eq!(
            named(json!({ "family": "Jones" })).as_deref(),
            Some("Jones")
        );
        assert_eq!(named(json!({})), None);
        assert_eq!(person_name(&json!({ "id": "p" })), None);
    }
}
