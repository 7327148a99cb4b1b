//! The resource types this server hosts, and which of them clients write.

use fhir_profiles::resource_types::{is_hosted, is_r4_resource_type};

use crate::error::ServiceError;
use fhirledger_access::Interaction;

/// 404 for a type this server does not host, saying whether it is a FHIR
/// R4 type at all.
pub fn unknown_type(t: &str) -> ServiceError {
    if is_r4_resource_type(t) {
        ServiceError::not_found(format!("resource type {t} is not hosted by this server"))
    } else {
        ServiceError::not_found(format!("'{t}' is not a FHIR R4 resource type"))
    }
}

/// 404 unless this server hosts the type.
pub fn check_type(t: &str) -> Result<(), ServiceError> {
    if is_hosted(t) {
        Ok(())
    } else {
        Err(unknown_type(t))
    }
}

/// 404 for a type not hosted; 405 for changing or deleting an AuditEvent.
/// AuditEvents are never changed: the server records its own, and backend
/// clients with `AuditEvent.c` may only add theirs (as an audit repository
/// accepts an EHR's events).
pub fn check_writable(t: &str, interaction: Interaction) -> Result<(), ServiceError> {
    check_type(t)?;
    if t == "AuditEvent" && interaction != Interaction::Create {
        return Err(ServiceError::method_not_allowed(
            "AuditEvents are never changed or deleted; backend clients may only create them",
        ));
    }
    Ok(())
}

/// A weak ETag for a version: `W/"3"`.
pub fn etag(version_id: i64) -> String {
    format!("W/\"{version_id}\"")
}

/// Parses a version tag `W/"3"`, `"3"` or `3`.
pub fn parse_version_tag(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    let raw = raw.strip_prefix("W/").unwrap_or(raw);
    let raw = raw.trim_matches('"');
    raw.parse::<i64>().ok().filter(|v| *v > 0)
}
