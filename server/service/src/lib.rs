//! The FHIR service: every interaction in terms of the store, independent of
//! HTTP, so the REST routes, batch/transaction Bundles, the authorization
//! server and the command-line tools share one implementation.
//!
//! - Reads go through one path, [`reads`]: a [`reads::ReadOp`] is decided by
//!   the caller's [`Guard`] and run in a store transaction by
//!   [`reads::read`] / `reads::read_in`, returning what was accessed with the
//!   decision that allowed it.
//! - Writes go through [`write`] (and Bundles through [`bundle`], which uses
//!   its building blocks): one store transaction per interaction, with the
//!   target, the condition matches (through the read path) and every version
//!   written checked by the same guard.
//! - Errors are [`ServiceError`]s: a FHIR status and OperationOutcome issues,
//!   no transport types.

pub mod anchoring;
pub mod audit;
pub mod audit_export;
mod audit_log;
pub mod bundle;
pub mod conditions;
mod consent;
pub mod consent_operations;
mod database;
mod error;
pub mod guard;
pub mod health;
pub mod history;
pub mod ledger;
pub mod live;
pub mod prepare;
pub mod proofs;
pub mod query;
pub mod reads;
pub mod search;
pub mod types;
mod visibility;
pub mod write;

pub use audit_log::{AuditLog, AuditWriters};
pub use conditions::{parse_conditions, Condition, Conditions};
pub use consent::ensure_rules_current as ensure_consent_rules_current;
pub use database::{Database, Stopped};
pub use error::{ServiceError, Status};
pub use guard::{Guard, Principal};
pub use prepare::{prepare, BinaryPayload, Prepared};
pub use reads::{read, Accessed, ReadOp};
pub use write::{conditional_delete, create, delete, update, CreateOutcome, UpdateTarget};
