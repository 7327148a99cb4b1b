//! The official R4 definitions this crate needs, embedded as compact tables generated from
//! ../shared/fhir-r4 (see data/README.md), loaded once on first use.
//!
//! Loading cannot fail at run time in practice: the files are fixed at build time and the
//! tests load every table. Should one ever be unreadable it loads empty, which makes parsing
//! and validation fail closed (every element unknown) rather than panic.

pub(crate) mod elements;
pub(crate) mod profiles;
pub(crate) mod valuesets;
