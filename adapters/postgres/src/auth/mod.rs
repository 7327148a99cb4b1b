//! Storage of the SMART authorization server: signing keys, clients, user
//! accounts and their external identities, browser sessions, authorization
//! requests, launches, grants with their codes and refresh tokens, backend
//! assertion `jti`s and revocations.
//!
//! Single-use values (codes, refresh tokens, launches, invitations) are
//! consumed with one `UPDATE … WHERE used_at IS NULL RETURNING`, so two
//! racing requests can never both use the same value.

mod accounts;
mod flow;
mod grants;
mod keys;
mod schema;
mod throttle;

pub use accounts::{ClientRow, UserRow};
pub use flow::{AuthRequestRow, CodeRow, CodeUse, LaunchRow};
pub use grants::{GrantRow, LiveRefresh, RefreshUse, RevocationRow};
pub use keys::SigningKeyRow;
pub use throttle::{FailureCount, RequestCount};

/// A unique constraint was hit (an email already in use, say).
pub(crate) fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}
