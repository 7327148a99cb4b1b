//! Everything FHIR-specific and pure (no I/O) that the fhirledger server needs.
//!
//! The API below is the contract the server codes against; see each module. The R4
//! definitions it relies on are generated from the official 4.0.1 files into `data/`
//! (see data/README.md) and embedded at build time.

pub mod capability;
pub mod format;
pub mod ids;
pub mod outcome;
pub mod resource_types;
pub mod search;
pub mod summary;
pub mod validate;

mod defs;
mod path;
mod structure;
mod xhtml;
