//! FHIR interactions in terms of the store, independent of HTTP, so the REST
//! routes and batch/transaction Bundles share one implementation.

pub mod bundle;
pub mod prepare;
pub mod read;
pub mod search;
pub mod write;

pub use prepare::{prepare, BinaryPayload, Prepared};
pub use write::{conditional_delete, create, delete, update, CreateOutcome, UpdateTarget};
