//! Deactivated hospitals. A solution admin deactivates a hospital by setting
//! its Organization's `active` to false (or deleting it): from then on none
//! of its accounts may sign in or be issued tokens, and the tokens they hold
//! stop working — within a second on every process, since each process's
//! upkeep thread looks for newly deactivated hospitals and revokes their
//! tokens (an `organization` revocation), whichever way the Organization was
//! written (REST, Bundle, another process).

use std::collections::BTreeSet;

use fhirledger_postgres::{PgStore, StoreError};

use crate::auth::AuthServer;
use crate::service::search::parse;

/// The most hospitals one look for deactivated ones returns.
const MAX_HOSPITALS: usize = 1000;

/// Whether accounts of `organization` may act: true for accounts of no
/// organization (solution level), false when the Organization is gone or
/// has `active: false`.
pub fn is_active(store: &PgStore, organization: Option<&str>) -> Result<bool, StoreError> {
    let Some(id) = organization else {
        return Ok(true);
    };
    let Some(content) = store.read("Organization", id)?.and_then(|v| v.content) else {
        return Ok(false);
    };
    let resource: serde_json::Value = serde_json::from_str(&content).unwrap_or_default();
    Ok(resource["active"] != serde_json::Value::Bool(false))
}

/// The ids of Organizations with `active: false`.
fn deactivated(server: &AuthServer) -> Result<BTreeSet<String>, String> {
    let params = vec![
        ("active".to_string(), "false".to_string()),
        ("_count".to_string(), MAX_HOSPITALS.to_string()),
    ];
    let request = parse(&server.settings.fhir_base, "Organization", &params, false)
        .map_err(|e| format!("{:?}", e.issues))?;
    let page = server.store.search(&request).map_err(|e| e.to_string())?;
    Ok(page.matches.into_iter().map(|r| r.id).collect())
}

/// Revokes the tokens of hospitals deactivated since the last look
/// (`known`: those deactivated then). Run by the upkeep thread.
pub fn revoke_newly_deactivated(server: &AuthServer, known: &mut BTreeSet<String>) {
    let now = match deactivated(server) {
        Ok(now) => now,
        Err(e) => {
            tracing::warn!(error = %e, "looking for deactivated hospitals failed");
            return;
        }
    };
    for org in now.difference(known) {
        match server
            .store
            .add_revocation("organization", org, server.revocation_expiry())
        {
            Ok(row) => {
                server.revocations.apply(&[row]);
                tracing::info!(organization = %org, "hospital deactivated: its accounts' tokens are revoked");
            }
            Err(e) => {
                tracing::warn!(error = %e, organization = %org, "revoking a deactivated hospital's tokens failed")
            }
        }
    }
    *known = now;
}
