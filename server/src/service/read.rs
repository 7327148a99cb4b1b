//! Reading one resource (read or vread) as the access decision allows it,
//! shared by the REST routes and the GET entries of Bundles.

use fhirledger_postgres::{PgStore, StoredVersion};

use crate::access::allow::Interaction;
use crate::access::guard::Guard;
use crate::http::error::ApiError;

/// The version asked for; a delete marker when the resource was deleted.
/// For a caller whose access is restricted, a resource outside it answers
/// 404 exactly like one that never existed (so does a deleted one: its
/// former owner cannot be checked any more). Blocking.
pub fn read_checked(
    store: &PgStore,
    guard: &Guard,
    resource_type: &str,
    id: &str,
    version: Option<i64>,
) -> Result<StoredVersion, ApiError> {
    let access = guard.permit(resource_type, Interaction::Read)?;
    if !access.is_all() {
        guard.check_visible(resource_type, id, Interaction::Read, &mut |r| {
            store.search(r)
        })?;
    }
    let found = match version {
        None => store.read(resource_type, id)?,
        Some(v) => store.vread(resource_type, id, v)?,
    };
    found.ok_or_else(|| ApiError::no_such_version(resource_type, id, version))
}
