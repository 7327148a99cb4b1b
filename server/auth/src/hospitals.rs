//! Deactivated hospitals. A solution admin deactivates a hospital by setting
//! its Organization's `active` to false (or deleting it): from then on none
//! of its accounts may sign in or be issued tokens, and the tokens they hold
//! stop working — within a second on every process, since each process's
//! upkeep thread looks for newly deactivated hospitals and revokes their
//! tokens (an `organization` revocation), whichever way the Organization was
//! written (REST, Bundle, another process).

use std::collections::BTreeSet;

use fhirledger_postgres::PgStore;
use fhirledger_service::reads::{self, ReadResource, Search};
use fhirledger_service::{search, Guard, ServiceError};

use crate::AuthServer;

/// The most hospitals one look for deactivated ones returns.
const MAX_HOSPITALS: usize = 1000;

/// The server reads Organizations for itself here: whether an account's
/// hospital is active decides sign-in, not what the person may see.
const PURPOSE: &str = "authorization server: is the hospital active";

/// Whether accounts of `organization` may act: true for accounts of no
/// organization (solution level), false when the Organization is gone or
/// has `active: false`.
pub async fn is_active(
    server: &AuthServer,
    organization: Option<&str>,
) -> Result<bool, ServiceError> {
    let Some(id) = organization else {
        return Ok(true);
    };
    let guard = Guard::for_server(&server.settings.fhir_base, PURPOSE);
    let id = id.to_string();
    server
        .db
        .run_read(move |store| is_active_in(store, &guard, &id))
        .await
}

/// [`is_active`] on a blocking thread.
pub fn is_active_in(store: &PgStore, guard: &Guard, id: &str) -> Result<bool, ServiceError> {
    let op = ReadResource {
        resource_type: "Organization",
        id,
        version: None,
    };
    let content = match reads::read(store, guard, op) {
        Ok(found) => found.value.content,
        Err(e) if e.status == fhirledger_service::Status::NOT_FOUND => None,
        Err(e) => return Err(e),
    };
    let Some(content) = content else {
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
    let base = &server.settings.fhir_base;
    let request = search::parse(base, "Organization", &params, false)
        .map_err(|e| format!("{:?}", e.issues))?;
    let guard = Guard::for_server(base, PURPOSE);
    let page = reads::read(server.db.store(), &guard, Search { request: &request })
        .map_err(|e| e.to_string())?
        .value;
    Ok(page.matches.into_iter().map(|r| r.id).collect())
}

/// Revokes every token of a hospital's accounts now, on this process at
/// once (the others within their revocation sync): for the admin who has
/// just deactivated it, whose next page must already show it done. The
/// upkeep thread would find it within a second anyway.
pub async fn revoke_hospital(server: &AuthServer, organization: &str) -> Result<(), ServiceError> {
    let org = organization.to_string();
    let expire = server.revocation_expiry();
    let row = server
        .db
        .call(move |store| store.add_revocation("organization", &org, expire))
        .await
        .map_err(|_| ServiceError::unavailable("shutting down"))?
        .map_err(|e| ServiceError::unavailable(format!("revoking the hospital's tokens: {e}")))?;
    server.revocations.apply(&[row]);
    Ok(())
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
            .db
            .store()
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
